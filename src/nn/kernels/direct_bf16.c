/* The three products of direct.h (big_to_small, small_to_big, weight_grad)
 * in bfloat16 by AVX512-BF16 dot products, for CPUs without AMX tiles (AMD
 * Zen 4 and later, Intel Cooper Lake): the opt-in bf16 mode there. One
 * vdpbf16ps adds to each of 16 float32 lanes the two products of a pair of
 * bfloat16 values, so it does twice the multiply-adds of a float32 FMA; the
 * sums stay float32, as on the tiles.
 *
 * For the first two products a lane is an output channel and the pair two
 * input channels: the kernel is packed once per call as pairs of input
 * channels ([tap][pair][16 outputs][2]), and each pixel's pair is read
 * straight from a bfloat16 copy of the padded input rows (a 32-bit
 * broadcast). The weight gradient sums over pixels instead, so there the
 * pair is two neighbouring pixels of a row: both images are copied as pairs
 * of pixels (below). Register blocks of R pixels (or input channels) x V
 * vectors of 16 output channels, as the float32 kernels; a row's last block
 * of pixels overlaps the one before it rather than running a narrower one
 * (those pixels are made twice, with the same bits).
 *
 * Odd channel counts (the RGB or grayscale input, the output layer) and
 * shapes too large for the thread's buffers go to the avx512 kernels, as
 * on the tiles; so does small_to_big_narrow (the output layer's forward). */
#include "nn/kernels/direct.h"

#if defined(__x86_64__) || defined(__i386__)
#include "nn/kernels/direct_bf16_rows.h"

#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define TARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512bf16,fma,avx2")))
#define ALWAYS_INLINE inline __attribute__((always_inline))
#ifdef __clang__
#define UNROLL _Pragma("unroll")
#else
#define UNROLL _Pragma("GCC unroll 32")
#endif

enum {
    LANES = 16,                 /* output channels per vector */
    IN_CAP = 256 * 1024,        /* bfloat16 values of converted input rows */
    W_CAP = 9 * 128 * 128,      /* bfloat16 values of a packed kernel */
    VMAX = 4,                   /* vectors of output channels per block */
};

static _Thread_local uint16_t in_bf16[IN_CAP] __attribute__((aligned(64)));
static _Thread_local uint16_t w_bf16[W_CAP] __attribute__((aligned(64)));

size_t ae_avx512bf16_thread_bytes(void) { return sizeof in_bf16 + sizeof w_bf16; }

int ae_avx512bf16_usable(void)
{
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 5 & 1);
}

static inline __mmask16 lanes_first(int n)
{
    return (__mmask16)(n >= LANES ? 0xFFFFu : n <= 0 ? 0u : (1u << n) - 1u);
}

/* vdpbf16ps takes a pair as (low, high) halves of a 32-bit lane: two
 * vectors of 16 values, a and b, into (a0, b0, a1, b1, ...). */
static TARGET ALWAYS_INLINE __m512i interleave(__m512 a, __m512 b)
{
    const __m512i pairs = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                           24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                           16, 0);
    return _mm512_permutexvar_epi16(pairs, (__m512i)_mm512_cvtne2ps_pbh(b, a));
}

/* ---- big_to_small and small_to_big: a lane per output channel ---- */

typedef struct {
    int k, n, groups;        /* input channels (even), output channels, vectors of them */
    const uint16_t *kernel;  /* [tap][k / 2][groups][16][2] */
    const float *init;       /* n values, or NULL */
} bf_layer;

/* m[tap][k][n] (a kernel as the avx512 kernels read it) into L->kernel, zero
 * past n. */
static TARGET void pack_kernel(uint16_t *dst, const float *m, int k, int n)
{
    const int groups = (n + LANES - 1) / LANES;
    for (int t = 0; t < 9; t++)
        for (int q = 0; q < k / 2; q++)
            for (int j = 0; j < groups; j++, dst += 2 * LANES) {
                const __mmask16 mask = lanes_first(n - j * LANES);
                const float *row = m + ((size_t)t * k + 2 * q) * n + j * LANES;
                _mm512_store_si512((void *)dst,
                                   interleave(_mm512_maskz_loadu_ps(mask, row),
                                              _mm512_maskz_loadu_ps(mask, row + n)));
            }
}

/* One row of outputs for bf_row: for each of ntaps taps a, the row's input
 * (src[a], pixels rstride values apart) and its kernel tap (tap[a]); the
 * outputs' pixels dstride floats apart in dst. */
typedef struct {
    const bf_layer *L;
    const uint16_t *const *src;
    const int *tap;
    int ntaps, rstride;
    float *dst;
    int dstride;
} bf_row_job;

/* R pixels p0, p0 + 1, ... x V vectors of outputs from group j0:
 * dst[p dstride + o] = init[o] + sum over taps a, pairs q of the pair
 * src[a][p rstride + 2q ..] . kernel[tap[a]][q][o]. RS > 0 is rstride as a
 * compile-time constant: the pixels' offsets then fit in the instructions
 * (at run time, R of them do not fit in the general registers). */
static TARGET ALWAYS_INLINE void row_block(const int R, const int V, const int RS,
                                           const bf_row_job *job, int p0, int j0)
{
    /* the job in locals, as arguments were: the loops below do not reload it */
    const bf_layer *L = job->L;
    const uint16_t *const *src = job->src;
    const int *tap = job->tap;
    const int ntaps = job->ntaps, dstride = job->dstride;
    int rstride = job->rstride;
    float *dst = job->dst;
    __m512 acc[24][VMAX];
    if (RS > 0)
        rstride = RS;
    UNROLL
    for (int v = 0; v < V; v++) {
        const __mmask16 m = lanes_first(L->n - (j0 + v) * LANES);
        const __m512 b = L->init ? _mm512_maskz_loadu_ps(m, L->init + (j0 + v) * LANES)
                                 : _mm512_setzero_ps();
        UNROLL
        for (int r = 0; r < R; r++)
            acc[r][v] = b;
    }
    const int pairs = L->k / 2;
    const size_t wstep = (size_t)L->groups * 2 * LANES;
    for (int a = 0; a < ntaps; a++) {
        const uint16_t *s = src[a] + (size_t)p0 * rstride;
        const uint16_t *w = L->kernel + (size_t)tap[a] * pairs * wstep + (size_t)j0 * 2 * LANES;
        for (int q = 0; q < pairs; q++, s += 2, w += wstep) {
            __m512bh wv[VMAX];
            UNROLL
            for (int v = 0; v < V; v++)
                wv[v] = (__m512bh)_mm512_load_si512((const void *)(w + v * 2 * LANES));
            UNROLL
            for (int r = 0; r < R; r++) {
                int32_t pair;
                memcpy(&pair, s + (size_t)r * rstride, sizeof pair);
                const __m512bh x = (__m512bh)_mm512_set1_epi32(pair);
                UNROLL
                for (int v = 0; v < V; v++)
                    acc[r][v] = _mm512_dpbf16_ps(acc[r][v], x, wv[v]);
            }
        }
    }
    UNROLL
    for (int v = 0; v < V; v++) {
        const __mmask16 m = lanes_first(L->n - (j0 + v) * LANES);
        UNROLL
        for (int r = 0; r < R; r++)
            _mm512_mask_storeu_ps(dst + (size_t)(p0 + r) * dstride + (j0 + v) * LANES, m,
                                  acc[r][v]);
    }
}

typedef void (*row_block_fn)(const bf_row_job *, int, int);
#define ROW_BLOCK(V, R, RS)                                                                     \
    static TARGET void row_block_##V##_##R##_##RS(const bf_row_job *job, int p0, int j0)        \
    {                                                                                           \
        row_block(R, V, RS, job, p0, j0);                                                       \
    }
/* 24 accumulators where the vectors allow (of 32 registers: V weights and a
 * broadcast besides), then fewer pixels for short rows (a 32x32 model's
 * rows of 4 to 16: at least 8 accumulators where a row has 8 pixels), each
 * with the pixel strides of 16, 32 and 64 channels, and 64 at stride 2; one
 * pixel at a time for rows under 4. */
#define ROW_BLOCKS(V, R)                                                                        \
    ROW_BLOCK(V, R, 0)                                                                          \
    ROW_BLOCK(V, R, 16)                                                                         \
    ROW_BLOCK(V, R, 32)                                                                         \
    ROW_BLOCK(V, R, 64)                                                                         \
    ROW_BLOCK(V, R, 128)
#define ROW_TABLE(V, R)                                                                         \
    {R,                                                                                         \
     {row_block_##V##_##R##_0, row_block_##V##_##R##_16, row_block_##V##_##R##_32,              \
      row_block_##V##_##R##_64, row_block_##V##_##R##_128}}
ROW_BLOCKS(1, 24)
ROW_BLOCKS(1, 16)
ROW_BLOCKS(1, 8)
ROW_BLOCKS(1, 4)
ROW_BLOCKS(2, 12)
ROW_BLOCKS(2, 8)
ROW_BLOCKS(2, 4)
ROW_BLOCKS(3, 8)
ROW_BLOCKS(3, 4)
ROW_BLOCKS(4, 6)
ROW_BLOCKS(4, 4)
ROW_BLOCK(1, 1, 0)
ROW_BLOCK(2, 1, 0)
ROW_BLOCK(3, 1, 0)
ROW_BLOCK(4, 1, 0)

typedef struct {
    int pixels;
    row_block_fn fn[5]; /* rstride 0 (any), 16, 32, 64, 128 */
} row_blocks;

/* For V vectors, the widest first; the last entry's pixels are 4. */
static const row_blocks blocks_1[] = {ROW_TABLE(1, 24), ROW_TABLE(1, 16), ROW_TABLE(1, 8),
                                      ROW_TABLE(1, 4)};
static const row_blocks blocks_2[] = {ROW_TABLE(2, 12), ROW_TABLE(2, 8), ROW_TABLE(2, 4)};
static const row_blocks blocks_3[] = {ROW_TABLE(3, 8), ROW_TABLE(3, 4)};
static const row_blocks blocks_4[] = {ROW_TABLE(4, 6), ROW_TABLE(4, 4)};
static const row_blocks *const blocks[VMAX] = {blocks_1, blocks_2, blocks_3, blocks_4};
static const row_block_fn one_pixel[VMAX] = {row_block_1_1_0, row_block_2_1_0, row_block_3_1_0,
                                             row_block_4_1_0};

/* The px pixels of a row: the widest block that fits, the last one
 * overlapping the one before it. */
static TARGET void bf_row(const bf_row_job *job, int px)
{
    const bf_layer *L = job->L;
    const int rstride = job->rstride;
    const int rs = rstride == 16 ? 1 : rstride == 32 ? 2 : rstride == 64 ? 3 : rstride == 128 ? 4
                                                                                             : 0;
    for (int j0 = 0; j0 < L->groups; j0 += VMAX) {
        const int V = L->groups - j0 < VMAX ? L->groups - j0 : VMAX;
        int r = 1;
        row_block_fn fn = one_pixel[V - 1];
        if (px >= 4) {
            const row_blocks *b = blocks[V - 1];
            while (b->pixels > px)
                b++;
            r = b->pixels, fn = b->fn[rs];
        }
        for (int p0 = 0; p0 < px; p0 += r)
            fn(job, p0 + r <= px ? p0 : px - r, j0);
    }
}

/* bf_row as a bf16_row_fn (layer: a bf_layer), for direct_bf16_rows.h. */
static TARGET void bf_layer_row(const void *layer, const uint16_t *const *src, const int *tap,
                                int ntaps, int rstride, int px, float *dst, int dstride)
{
    const bf_row_job row = {.L = layer, .src = src, .tap = tap, .ntaps = ntaps,
                            .rstride = rstride, .dst = dst, .dstride = dstride};
    bf_row(&row, px);
}

/* The kernel packed into w_bf16; 0 when the shape takes the avx512 kernels. */
static TARGET int bf_setup(bf_layer *L, const float *m, const float *init, int k, int n,
                           size_t row_values)
{
    L->k = k, L->n = n, L->groups = (n + LANES - 1) / LANES, L->init = init;
    if (k % 2 != 0 || 9 * (size_t)k * L->groups * LANES > W_CAP || 3 * row_values > IN_CAP)
        return 0;
    pack_kernel(w_bf16, m, k, n);
    L->kernel = w_bf16;
    return 1;
}

TARGET void ae_bf16_big_to_small(const float *pad, int row0, const ae_conv_geom *g, int cs,
                                 const float *w, const float *init, float *small, int small_row0,
                                 int oy0, int oy1)
{
    const size_t row_values = (size_t)(g->big_w + 2) * g->big_c;
    bf_layer L;
    if (!bf_setup(&L, w, init, g->big_c, cs, row_values)) {
        ae_direct_avx512.big_to_small(pad, row0, g, cs, w, init, small, small_row0, oy0, oy1);
        return;
    }
    const bf16_kernel k = {in_bf16, IN_CAP, bf_layer_row, &L};
    bf16_big_to_small_rows(&k, pad, row0, g, cs, small, small_row0, oy0, oy1);
}

TARGET void ae_bf16_small_to_big(const float *pad, int row0, const ae_conv_geom *g, int cs,
                                 const float *wt, const float *init, float *big, int big_row0,
                                 int y0, int y1)
{
    const size_t row_values = (size_t)(g->small_w + 2) * cs;
    bf_layer L;
    if (!bf_setup(&L, wt, init, cs, g->big_c, row_values)) {
        ae_direct_avx512.small_to_big(pad, row0, g, cs, wt, init, big, big_row0, y0, y1);
        return;
    }
    const bf16_kernel k = {in_bf16, IN_CAP, bf_layer_row, &L};
    bf16_small_to_big_rows(&k, pad, row0, g, cs, big, big_row0, y0, y1);
}

/* ---- The weight gradient: a lane per output channel, pairs of pixels ----
 * dw[tap][c][o] += sum over small rows y and pixels x of
 * big[pos(y, x, tap)][c] small[y][x][o], the pixels taken in pairs (x, x + 1)
 * along a row (a row of odd width ends with a zero pixel):
 *   sp[(y - y0) J + j][g][16][2]: small[y][2j + e][16 g + lane], e = 0, 1
 *   bp[((kw (hi - lo) + r) J + j) cb + c][2]: padded big row lo + r, at the
 *       columns pixels 2j + e read through tap column kw
 * with J = ceil(small_w / 2) pairs a row; sp in w_bf16, bp in in_bf16. */

static TARGET void small_pairs(uint16_t *sp, const float *small, int srow0, int y0, int y1,
                               int w, int cs, int J)
{
    const int groups = (cs + LANES - 1) / LANES;
    for (int y = y0; y < y1; y++) {
        const float *row = small + (size_t)(y - srow0) * w * cs;
        for (int j = 0; j < J; j++)
            for (int g = 0; g < groups; g++, sp += 2 * LANES) {
                const __mmask16 m = lanes_first(cs - g * LANES);
                const float *a = row + (size_t)2 * j * cs + g * LANES;
                const __m512 b = 2 * j + 1 < w ? _mm512_maskz_loadu_ps(m, a + cs)
                                               : _mm512_setzero_ps();
                _mm512_store_si512((void *)sp, interleave(_mm512_maskz_loadu_ps(m, a), b));
            }
    }
}

static TARGET void big_pairs(uint16_t *bp, const float *pad, int row0, const ae_conv_geom *g,
                             int lo, int hi, int J)
{
    const int cb = g->big_c, s = g->stride, pw = g->big_w + 2, w = g->small_w;
    for (int kw = 0; kw < 3; kw++)
        for (int r = lo; r < hi; r++) {
            const float *row = pad + ((size_t)(r - row0) * pw + kw + 1 - g->pad_left) * cb;
            uint16_t *dst = bp + ((size_t)kw * (hi - lo) + (r - lo)) * J * cb * 2;
            for (int j = 0; j < J; j++)
                for (int c = 0; c < cb; c += LANES) {
                    const __mmask16 m = lanes_first(cb - c);
                    const float *a = row + (size_t)2 * j * s * cb + c;
                    const __m512 b = 2 * j + 1 < w ? _mm512_maskz_loadu_ps(m, a + (size_t)s * cb)
                                                   : _mm512_setzero_ps();
                    const __m512i both = interleave(_mm512_maskz_loadu_ps(m, a), b);
                    const int n = cb - c < LANES ? cb - c : LANES;
                    _mm512_mask_storeu_epi32(dst + ((size_t)j * cb + c) * 2, lanes_first(n), both);
                }
        }
}

/* One pass of the weight gradient over small rows [y0, y1), the pairs of
 * both images (sp, bp) holding them and bp padded big rows [lo, hi); its
 * sums are added to dw. The pairs themselves stay arguments of the blocks:
 * taken from a struct, clang 14 no longer sees that they miss the
 * accumulators, and keeps those in memory. */
typedef struct {
    const ae_conv_geom *g;
    int cs, J;
    int lo, hi, y0, y1;
    float *dw;
} bf_wgrad_pass;

/* CB input channels from c0 x V vectors of outputs from group g0, tap (kh, kw),
 * over the pass's rows of the pairs; added to dw. */
static TARGET ALWAYS_INLINE void wgrad_block(const int CB, const int V, const uint16_t *sp,
                                             const uint16_t *bp, const bf_wgrad_pass *pass,
                                             int kh, int kw, int c0, int g0)
{
    /* the pass in locals, as arguments were: the loops below do not reload it */
    const ae_conv_geom *g = pass->g;
    const int cs = pass->cs, J = pass->J, lo = pass->lo, hi = pass->hi;
    const int y0 = pass->y0, y1 = pass->y1;
    float *dw = pass->dw;
    const int cb = g->big_c, groups = (cs + LANES - 1) / LANES;
    __m512 acc[16][VMAX];
    UNROLL
    for (int c = 0; c < CB; c++)
        UNROLL
        for (int v = 0; v < V; v++)
            acc[c][v] = _mm512_setzero_ps();
    for (int y = y0; y < y1; y++) {
        const int r = y * g->stride + kh - g->pad_top + 1 - lo; /* padded big row, from lo */
        const uint16_t *b = bp + (((size_t)kw * (hi - lo) + r) * J * cb + c0) * 2;
        const uint16_t *a = sp + ((size_t)(y - y0) * J * groups + g0) * 2 * LANES;
        for (int j = 0; j < J; j++, a += (size_t)groups * 2 * LANES, b += (size_t)cb * 2) {
            __m512bh av[VMAX];
            UNROLL
            for (int v = 0; v < V; v++)
                av[v] = (__m512bh)_mm512_load_si512((const void *)(a + v * 2 * LANES));
            UNROLL
            for (int c = 0; c < CB; c++) {
                int32_t pair;
                memcpy(&pair, b + 2 * c, sizeof pair);
                const __m512bh x = (__m512bh)_mm512_set1_epi32(pair);
                UNROLL
                for (int v = 0; v < V; v++)
                    acc[c][v] = _mm512_dpbf16_ps(acc[c][v], x, av[v]);
            }
        }
    }
    float *d = dw + ((size_t)(kh * 3 + kw) * cb + c0) * cs + g0 * LANES;
    UNROLL
    for (int v = 0; v < V; v++) {
        const __mmask16 m = lanes_first(cs - (g0 + v) * LANES);
        UNROLL
        for (int c = 0; c < CB; c++) {
            float *at = d + (size_t)c * cs + v * LANES;
            _mm512_mask_storeu_ps(at, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, at), acc[c][v]));
        }
    }
}

typedef void (*wgrad_block_fn)(const uint16_t *, const uint16_t *, const bf_wgrad_pass *, int,
                               int, int, int);
#define WGRAD_BLOCK(V, CB)                                                                      \
    static TARGET void wgrad_block_##V##_##CB(const uint16_t *sp, const uint16_t *bp,           \
                                              const bf_wgrad_pass *pass, int kh, int kw,       \
                                              int c0, int g0)                                  \
    {                                                                                           \
        wgrad_block(CB, V, sp, bp, pass, kh, kw, c0, g0);                                       \
    }
/* Channels per block: 16 accumulators or more, then what is left in 8, 4, 2, 1. */
WGRAD_BLOCK(1, 16)
WGRAD_BLOCK(1, 8)
WGRAD_BLOCK(1, 4)
WGRAD_BLOCK(1, 2)
WGRAD_BLOCK(1, 1)
WGRAD_BLOCK(2, 12)
WGRAD_BLOCK(2, 8)
WGRAD_BLOCK(2, 4)
WGRAD_BLOCK(2, 2)
WGRAD_BLOCK(2, 1)
WGRAD_BLOCK(3, 8)
WGRAD_BLOCK(3, 4)
WGRAD_BLOCK(3, 2)
WGRAD_BLOCK(3, 1)
WGRAD_BLOCK(4, 6)
WGRAD_BLOCK(4, 4)
WGRAD_BLOCK(4, 2)
WGRAD_BLOCK(4, 1)

static const struct {
    int cb;
    wgrad_block_fn fn;
} wgrad_blocks[VMAX][5] = {
    {{16, wgrad_block_1_16}, {8, wgrad_block_1_8}, {4, wgrad_block_1_4}, {2, wgrad_block_1_2},
     {1, wgrad_block_1_1}},
    {{12, wgrad_block_2_12}, {8, wgrad_block_2_8}, {4, wgrad_block_2_4}, {2, wgrad_block_2_2},
     {1, wgrad_block_2_1}},
    {{8, wgrad_block_3_8}, {4, wgrad_block_3_4}, {2, wgrad_block_3_2}, {1, wgrad_block_3_1},
     {0, NULL}},
    {{6, wgrad_block_4_6}, {4, wgrad_block_4_4}, {2, wgrad_block_4_2}, {1, wgrad_block_4_1},
     {0, NULL}},
};

/* The block for `left` channels of V vectors: the widest that splits them
 * evenly with 16 accumulators or more (16 channels: 16 x 1, 8 x 2, 8 x 3,
 * 4 x 4), else the widest that fits. */
static int wgrad_pick(int V, int left)
{
    int fits = -1;
    for (int b = 0; b < 5 && wgrad_blocks[V - 1][b].cb > 0; b++) {
        const int n = wgrad_blocks[V - 1][b].cb;
        if (n > left)
            continue;
        if (left % n == 0 && n * V >= 16)
            return b;
        if (fits < 0)
            fits = b;
    }
    return fits;
}

/* Small rows per pass from first, so that both copies fit their buffers (0: not one). */
static int wgrad_rows(const ae_conv_geom *g, int cs, int J, int first, int end)
{
    const size_t per_row = (size_t)J * ((cs + LANES - 1) / LANES) * 2 * LANES;
    int rows = 0;
    for (int stop = first + 1; stop <= end; stop++) {
        int lo, hi;
        ae_direct_rows_needed(g, 1, first, stop, &lo, &hi);
        if ((size_t)3 * (hi - lo) * J * g->big_c * 2 > IN_CAP ||
            (size_t)(stop - first) * per_row > W_CAP)
            break;
        rows = stop - first;
    }
    return rows;
}

TARGET void ae_bf16_weight_grad(const float *pad, int row0, const float *small, int srow0,
                                const ae_conv_geom *g, int cs, float *dw, int first, int end)
{
    const int cb = g->big_c, J = (g->small_w + 1) / 2, groups = (cs + LANES - 1) / LANES;
    if (cb % 2 != 0 || wgrad_rows(g, cs, J, first, first + 1) == 0) {
        ae_direct_avx512.weight_grad(pad, row0, small, srow0, g, cs, dw, first, end);
        return;
    }
    for (int y0 = first; y0 < end;) {
        const int y1 = y0 + wgrad_rows(g, cs, J, y0, end);
        int lo, hi;
        ae_direct_rows_needed(g, 1, y0, y1, &lo, &hi);
        small_pairs(w_bf16, small, srow0, y0, y1, g->small_w, cs, J);
        big_pairs(in_bf16, pad, row0, g, lo, hi, J);
        const bf_wgrad_pass pass = {.g = g, .cs = cs, .J = J, .lo = lo, .hi = hi, .y0 = y0,
                                    .y1 = y1, .dw = dw};
        for (int g0 = 0; g0 < groups; g0 += VMAX) {
            const int V = groups - g0 < VMAX ? groups - g0 : VMAX;
            for (int t = 0; t < 9; t++)
                for (int c0 = 0; c0 < cb;) {
                    const int b = wgrad_pick(V, cb - c0);
                    wgrad_blocks[V - 1][b].fn(w_bf16, in_bf16, &pass, t / 3, t % 3, c0, g0);
                    c0 += wgrad_blocks[V - 1][b].cb;
                }
        }
        y0 = y1;
    }
}

#else
/* Not an x86 target: ae_isa_supported never offers AE_ISA_AVX512_BF16. */
int ae_avx512bf16_usable(void) { return 0; }
size_t ae_avx512bf16_thread_bytes(void) { return 0; }
#endif
