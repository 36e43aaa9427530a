/* The direct convolution kernels of direct.h, written once for any vector
 * width. Included by direct_avx512.c and direct_avx2.c, which define:
 *   VW (floats per vector), vec, vmask, TARGET (the function attribute),
 *   V_ZERO(), V_LOAD(p), V_LOADM(p, m), V_STORE(p, v), V_STOREM(p, m, v),
 *   V_SET1(x), V_FMA(a, b, c) (a b + c), V_ADD(a, b), mask_first(n),
 *   FN(name) (the ISA-suffixed name), RMAX1/RMAX2 (pixels per block for one
 *   or two vectors of channels), CBMAX1/CBMAX2 (input channels per block of
 *   the weight gradient).
 * Register blocking: a block keeps R pixels x V vectors of output channels
 * (or 3 taps x CB channels x V vectors for the weight gradient) in registers;
 * every loop bound inside a kernel is a compile-time constant after inlining,
 * so the accumulators never touch memory. */
#include "nn/direct.h"

#include <string.h>

#define ALWAYS_INLINE inline __attribute__((always_inline))
/* Unrolled before scalar replacement, so that gcc keeps acc[][] in registers. */
#define UNROLL _Pragma("GCC unroll 16")

/* acc[r][v] = sum over ntaps taps, k channels: src[t][r rstride + c] wt[t][c ldw + v VW];
 * then dst[r dstride + v VW] = acc + init (channels past the mask are not written). */
static TARGET ALWAYS_INLINE void FN(block)(const int R, const int V, const float *const *src,
                                           int ntaps, int rstride, int k,
                                           const float *const *wt, int ldw, float *dst,
                                           int dstride, vmask last, const float *init)
{
    vec acc[RMAX1][2];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int v = 0; v < V; v++)
            acc[r][v] = V_ZERO();
    for (int t = 0; t < ntaps; t++) {
        const float *s = src[t], *w = wt[t];
        for (int c = 0; c < k; c++, w += ldw) {
            vec wv[2];
            wv[0] = V == 1 ? V_LOADM(w, last) : V_LOAD(w);
            if (V == 2)
                wv[1] = V_LOADM(w + VW, last);
            UNROLL
            for (int r = 0; r < R; r++) {
                vec b = V_SET1(s[(size_t)r * rstride + c]);
                UNROLL
                for (int v = 0; v < V; v++)
                    acc[r][v] = V_FMA(b, wv[v], acc[r][v]);
            }
        }
    }
    vec bias[2] = {V_ZERO(), V_ZERO()};
    if (init) {
        bias[0] = V == 1 ? V_LOADM(init, last) : V_LOAD(init);
        if (V == 2)
            bias[1] = V_LOADM(init + VW, last);
    }
    UNROLL
    for (int r = 0; r < R; r++) {
        float *d = dst + (size_t)r * dstride;
        if (V == 1) {
            V_STOREM(d, last, V_ADD(acc[r][0], bias[0]));
        } else {
            V_STORE(d, V_ADD(acc[r][0], bias[0]));
            V_STOREM(d + VW, last, V_ADD(acc[r][1], bias[1]));
        }
    }
}

#define BLOCK_VARIANT(V, R)                                                                     \
    static TARGET void FN(block_##V##_##R)(const float *const *src, int ntaps, int rstride,     \
                                           int k, const float *const *wt, int ldw, float *dst,  \
                                           int dstride, vmask last, const float *init)          \
    {                                                                                           \
        FN(block)(R, V, src, ntaps, rstride, k, wt, ldw, dst, dstride, last, init);             \
    }
BLOCK_VARIANT(1, RMAX1)
BLOCK_VARIANT(1, 1)
BLOCK_VARIANT(2, RMAX2)
BLOCK_VARIANT(2, 1)

/* n pixels, rstride floats apart in every src[t] and dstride apart in dst, in
 * blocks of the widest variant, then one by one. */
static TARGET void FN(blocks)(int V, int n, const float **src, int ntaps, int rstride, int k,
                              const float *const *wt, int ldw, float *dst, int dstride,
                              vmask last, const float *init)
{
    const int rmax = V == 1 ? RMAX1 : RMAX2;
    int done = 0;
    while (done < n) {
        int r = n - done >= rmax ? rmax : 1;
        if (V == 1 && r == rmax)
            FN(block_1_RMAX1)(src, ntaps, rstride, k, wt, ldw, dst, dstride, last, init);
        else if (V == 1)
            FN(block_1_1)(src, ntaps, rstride, k, wt, ldw, dst, dstride, last, init);
        else if (r == rmax)
            FN(block_2_RMAX2)(src, ntaps, rstride, k, wt, ldw, dst, dstride, last, init);
        else
            FN(block_2_1)(src, ntaps, rstride, k, wt, ldw, dst, dstride, last, init);
        for (int t = 0; t < ntaps; t++)
            src[t] += (size_t)r * rstride;
        dst += (size_t)r * dstride;
        done += r;
    }
}

/* Output channels come in groups of up to two vectors; the last vector of a
 * group may be partial (masked). */
static TARGET int group_vectors(int remaining, vmask *last)
{
    int width = remaining < 2 * VW ? remaining : 2 * VW;
    int v = width > VW ? 2 : 1;
    *last = mask_first(width - (v - 1) * VW);
    return v;
}

static TARGET void FN(big_to_small)(const float *pad, const ae_conv_geom *g, int cs,
                                    const float *w, const float *init, float *small)
{
    const int cb = g->big_c, s = g->stride, pw = g->big_w + 2;
    for (int oy = 0; oy < g->small_h; oy++) {
        for (int o0 = 0; o0 < cs; o0 += 2 * VW) {
            vmask last;
            int v = group_vectors(cs - o0, &last);
            const float *src[9], *wt[9];
            for (int kh = 0; kh < 3; kh++)
                for (int kw = 0; kw < 3; kw++) {
                    int py = oy * s + kh - g->pad_top + 1, px = kw - g->pad_left + 1;
                    src[kh * 3 + kw] = pad + ((size_t)py * pw + px) * cb;
                    wt[kh * 3 + kw] = w + (size_t)(kh * 3 + kw) * cb * cs + o0;
                }
            FN(blocks)(v, g->small_w, src, 9, s * cb, cb, wt, cs,
                       small + (size_t)oy * g->small_w * cs + o0, cs, last,
                       init ? init + o0 : NULL);
        }
    }
}

/* Each big pixel gathers its taps: in row y the kernel rows kh with
 * y + pad_top - kh divisible by the stride contribute, from small row
 * (y + pad_top - kh) / stride; likewise for columns, which splits a row into
 * `stride` phases of pixels `stride` apart that share their taps. */
static TARGET void FN(small_to_big)(const float *pad, const ae_conv_geom *g, int cs,
                                    const float *wt, const float *init, float *big)
{
    const int cb = g->big_c, s = g->stride, pw = g->small_w + 2;
    for (int y = 0; y < g->big_h; y++) {
        int kh_list[3], oy_list[3], nkh = 0;
        for (int kh = 0; kh < 3; kh++) {
            int t = y + g->pad_top - kh;
            if ((t + 2 * s) % s == 0) {
                kh_list[nkh] = kh;
                oy_list[nkh++] = t / s;
            }
        }
        for (int phase = 0; phase < s && phase < g->big_w; phase++) {
            int n = (g->big_w - phase + s - 1) / s;
            for (int c0 = 0; c0 < cb; c0 += 2 * VW) {
                vmask last;
                int v = group_vectors(cb - c0, &last);
                const float *src[9], *w[9];
                int ntaps = 0;
                for (int a = 0; a < nkh; a++)
                    for (int kw = 0; kw < 3; kw++) {
                        int t = phase + g->pad_left - kw;
                        if ((t + 2 * s) % s != 0)
                            continue;
                        int ox = t / s;
                        src[ntaps] = pad + ((size_t)(oy_list[a] + 1) * pw + (ox + 1)) * cs;
                        w[ntaps++] = wt + (size_t)(kh_list[a] * 3 + kw) * cs * cb + c0;
                    }
                float *dst = big + ((size_t)y * g->big_w + phase) * cb + c0;
                FN(blocks)(v, n, src, ntaps, cs, cs, w, cb, dst, s * cb, last,
                           init ? init + c0 : NULL);
            }
        }
    }
}

/* dw[t][cb][v] += sum over rows x pixels of big[t cstep + cb] small[v], for
 * the 3 taps of one kernel row (t = kw: cstep floats apart in big). */
static TARGET ALWAYS_INLINE void FN(wgrad)(const int CB, const int V, const float *big,
                                           size_t big_row, int big_px, int cstep,
                                           const float *small, size_t small_row, int small_px,
                                           int rows, int cols, float *dw, size_t tap_stride,
                                           int ldw, vmask last)
{
    vec acc[3][CBMAX1][2];
    UNROLL
    for (int t = 0; t < 3; t++)
        UNROLL
        for (int c = 0; c < CB; c++)
            UNROLL
            for (int v = 0; v < V; v++)
                acc[t][c][v] = V_ZERO();
    for (int row = 0; row < rows; row++) {
        const float *b = big + row * big_row, *sm = small + row * small_row;
        for (int p = 0; p < cols; p++, b += big_px, sm += small_px) {
            vec sv[2];
            sv[0] = V == 1 ? V_LOADM(sm, last) : V_LOAD(sm);
            if (V == 2)
                sv[1] = V_LOADM(sm + VW, last);
            UNROLL
            for (int t = 0; t < 3; t++)
                UNROLL
                for (int c = 0; c < CB; c++) {
                    vec x = V_SET1(b[t * cstep + c]);
                    UNROLL
                    for (int v = 0; v < V; v++)
                        acc[t][c][v] = V_FMA(x, sv[v], acc[t][c][v]);
                }
        }
    }
    UNROLL
    for (int t = 0; t < 3; t++)
        UNROLL
        for (int c = 0; c < CB; c++) {
            float *d = dw + t * tap_stride + (size_t)c * ldw;
            if (V == 1) {
                V_STOREM(d, last, V_ADD(V_LOADM(d, last), acc[t][c][0]));
            } else {
                V_STORE(d, V_ADD(V_LOAD(d), acc[t][c][0]));
                V_STOREM(d + VW, last, V_ADD(V_LOADM(d + VW, last), acc[t][c][1]));
            }
        }
}

#define WGRAD_VARIANT(V, CB)                                                                    \
    static TARGET void FN(wgrad_##V##_##CB)(const float *big, size_t big_row, int big_px,       \
                                            int cstep, const float *small, size_t small_row,    \
                                            int small_px, int rows, int cols, float *dw,        \
                                            size_t tap_stride, int ldw, vmask last)             \
    {                                                                                           \
        FN(wgrad)(CB, V, big, big_row, big_px, cstep, small, small_row, small_px, rows, cols,   \
                  dw, tap_stride, ldw, last);                                                   \
    }
WGRAD_VARIANT(1, CBMAX1)
WGRAD_VARIANT(1, 3)
WGRAD_VARIANT(1, 1)
WGRAD_VARIANT(2, CBMAX2)
WGRAD_VARIANT(2, 3)
WGRAD_VARIANT(2, 1)

typedef void (*FN(wgrad_fn))(const float *, size_t, int, int, const float *, size_t, int, int,
                             int, float *, size_t, int, vmask);

/* Rows of the small image go in bands, so that a band's pixels stay in cache
 * while every tap row and channel block passes over them. */
static TARGET void FN(weight_grad)(const float *pad, const float *small, const ae_conv_geom *g,
                                   int cs, float *dw)
{
    enum { BAND = 4 };
    const int cb = g->big_c, s = g->stride, pw = g->big_w + 2;
    const size_t tap_stride = (size_t)cb * cs;
    memset(dw, 0, 9 * tap_stride * sizeof *dw);
    for (int oy0 = 0; oy0 < g->small_h; oy0 += BAND) {
        int rows = g->small_h - oy0 < BAND ? g->small_h - oy0 : BAND;
        for (int o0 = 0; o0 < cs; o0 += 2 * VW) {
            vmask last;
            int v = group_vectors(cs - o0, &last);
            const int cbmax = v == 1 ? CBMAX1 : CBMAX2;
            for (int kh = 0; kh < 3; kh++) {
                int py = oy0 * s + kh - g->pad_top + 1, px = 1 - g->pad_left;
                const float *brow = pad + ((size_t)py * pw + px) * cb;
                for (int c0 = 0; c0 < cb;) {
                    int left = cb - c0, n;
                    FN(wgrad_fn) f;
                    if (left >= cbmax)
                        n = cbmax, f = v == 1 ? FN(wgrad_1_CBMAX1) : FN(wgrad_2_CBMAX2);
                    else if (left >= 3)
                        n = 3, f = v == 1 ? FN(wgrad_1_3) : FN(wgrad_2_3);
                    else
                        n = 1, f = v == 1 ? FN(wgrad_1_1) : FN(wgrad_2_1);
                    f(brow + c0, (size_t)s * pw * cb, s * cb, cb,
                      small + (size_t)oy0 * g->small_w * cs + o0, (size_t)g->small_w * cs, cs,
                      rows, g->small_w, dw + (size_t)kh * 3 * tap_stride + (size_t)c0 * cs + o0,
                      tap_stride, cs, last);
                    c0 += n;
                }
            }
        }
    }
}

const ae_direct_ops FN(ae_direct) = {
    .name = FN_NAME,
    .big_to_small = FN(big_to_small),
    .small_to_big = FN(small_to_big),
    .weight_grad = FN(weight_grad),
};
