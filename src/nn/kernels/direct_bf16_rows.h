/* Internal to direct_amx.c and direct_bf16.c (x86 only): how both bfloat16
 * kernels walk big_to_small and small_to_big. The padded input rows a band
 * of output rows reads are converted to bfloat16 once, into the kernel's
 * thread buffer; then each output row (each phase of one, for small_to_big)
 * lists the taps that reach it and hands them to the kernel's row function.
 * One copy for both, so that the AMX path, which few machines can run,
 * walks the rows exactly as the AVX512-BF16 path that the tests run does. */
#ifndef AEDET_NN_KERNELS_DIRECT_BF16_ROWS_H
#define AEDET_NN_KERNELS_DIRECT_BF16_ROWS_H

#include "nn/kernels/direct.h"

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

/* What both kernels' targets have (each adds its own) */
#define BF16_ROWS_TARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512bf16")))

/* One output row of a product, for the kernel's layer: for each of ntaps
 * taps a, the row's input (src[a], pixels rstride values apart) and its
 * kernel tap (tap[a]); px pixels, dstride floats apart in dst. */
typedef void (*bf16_row_fn)(const void *layer, const uint16_t *const *src, const int *tap,
                            int ntaps, int rstride, int px, float *dst, int dstride);

/* A kernel as the walks below see it: its thread's buffer for the converted
 * input rows (cap values) and its row function, for its layer. */
typedef struct {
    uint16_t *rows;
    size_t cap;
    bf16_row_fn row;
    const void *layer;
} bf16_kernel;

/* count floats to bfloat16, rounding to nearest even. */
static inline BF16_ROWS_TARGET void bf16_from_floats(uint16_t *dst, const float *src,
                                                     size_t count)
{
    size_t i = 0;
    for (; i + 32 <= count; i += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
        _mm512_storeu_si512((void *)(dst + i), (__m512i)v);
    }
    for (; i < count; i += 16) {
        const __mmask16 m = (__mmask16)(count - i >= 16 ? 0xFFFFu : (1u << (count - i)) - 1u);
        __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i));
        _mm256_mask_storeu_epi16(dst + i, m, (__m256i)v);
    }
}

/* Output rows [first, *end) whose padded input rows [*lo, *hi) fit k's
 * buffer (at least one row: the kernels' setups check that three fit),
 * converted from pad (rows from row0) into it. */
static inline BF16_ROWS_TARGET void bf16_convert_rows(const bf16_kernel *k, const float *pad,
                                                      int row0, const ae_conv_geom *g,
                                                      int to_small, size_t row_values, int first,
                                                      int *end, int *lo, int *hi)
{
    int stop = first + 1;
    ae_direct_rows_needed(g, to_small, first, stop, lo, hi);
    while (stop < *end) {
        int l2, h2;
        ae_direct_rows_needed(g, to_small, first, stop + 1, &l2, &h2);
        if ((size_t)(h2 - l2) * row_values > k->cap)
            break;
        stop++, *lo = l2, *hi = h2;
    }
    *end = stop;
    bf16_from_floats(k->rows, pad + (size_t)(*lo - row0) * row_values,
                     (size_t)(*hi - *lo) * row_values);
    /* gcc's _tile_loadd names no memory it reads: the AMX kernel's loads of
     * these rows must not move above the stores that made them */
    __asm__ volatile("" ::: "memory");
}

/* big_to_small's output rows [oy0, oy1) (small holds rows from small_row0)
 * by k: every output row reads all nine taps. */
static inline BF16_ROWS_TARGET void bf16_big_to_small_rows(const bf16_kernel *k, const float *pad,
                                                           int row0, const ae_conv_geom *g,
                                                           int cs, float *small, int small_row0,
                                                           int oy0, int oy1)
{
    const int cb = g->big_c, s = g->stride, pw = g->big_w + 2;
    static const int taps[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
    for (int first = oy0; first < oy1;) {
        int end = oy1, lo, hi;
        bf16_convert_rows(k, pad, row0, g, 1, (size_t)pw * cb, first, &end, &lo, &hi);
        for (int oy = first; oy < end; oy++) {
            const uint16_t *src[9];
            for (int kh = 0; kh < 3; kh++)
                for (int kw = 0; kw < 3; kw++) {
                    int py = oy * s + kh - g->pad_top + 1 - lo, px = kw - g->pad_left + 1;
                    src[kh * 3 + kw] = k->rows + ((size_t)py * pw + px) * cb;
                }
            k->row(k->layer, src, taps, 9, s * cb, g->small_w,
                   small + (size_t)(oy - small_row0) * g->small_w * cs, cs);
        }
        first = end;
    }
}

/* small_to_big's output rows [y0, y1) (big holds rows from big_row0) by k:
 * a row's pixels phase, phase + s, ... are one output row each, with the
 * taps that reach them. */
static inline BF16_ROWS_TARGET void bf16_small_to_big_rows(const bf16_kernel *k, const float *pad,
                                                           int row0, const ae_conv_geom *g,
                                                           int cs, float *big, int big_row0,
                                                           int y0, int y1)
{
    const int cb = g->big_c, s = g->stride, pw = g->small_w + 2;
    for (int first = y0; first < y1;) {
        int end = y1, lo, hi;
        bf16_convert_rows(k, pad, row0, g, 0, (size_t)pw * cs, first, &end, &lo, &hi);
        for (int y = first; y < end; y++)
            for (int phase = 0; phase < s; phase++) { /* pixels x = phase, phase + s, ... */
                const uint16_t *src[9];
                int tap[9], ntaps = 0;
                for (int kh = 0; kh < 3; kh++) {
                    int ty = y + g->pad_top - kh;
                    if ((ty + 2 * s) % s != 0)
                        continue;
                    for (int kw = 0; kw < 3; kw++) {
                        int tx = phase + g->pad_left - kw;
                        if ((tx + 2 * s) % s != 0)
                            continue;
                        src[ntaps] = k->rows + ((size_t)(ty / s + 1 - lo) * pw + (tx / s + 1)) * cs;
                        tap[ntaps++] = kh * 3 + kw;
                    }
                }
                k->row(k->layer, src, tap, ntaps, cs, (g->big_w - phase + s - 1) / s,
                       big + ((size_t)(y - big_row0) * g->big_w + phase) * cb, s * cb);
            }
        first = end;
    }
}

#endif
