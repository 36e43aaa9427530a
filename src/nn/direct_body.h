/* The direct convolution kernels of direct.h, written once for any vector
 * width. Included by direct_avx512.c and direct_avx2.c, which define:
 *   VW (floats per vector), vec, vmask, TARGET (the function attribute),
 *   V_ZERO(), V_LOAD(p), V_LOADM(p, m), V_STORE(p, v), V_STOREM(p, m, v),
 *   V_SET1(x), V_FMA(a, b, c) (a b + c), V_ADD, V_SUB, V_MUL, V_DIV, V_MAX(a, b)
 *   (b when either is NaN), V_ROUND (to nearest), V_NEG_ABS (-|v|), V_SCALE2(v, n)
 *   (v 2^n), V_SELECT_POS(c, a, b) / V_SELECT_NONNEG (c > 0 / c >= 0 ? a : b),
 *   vecd (VW/2 doubles), VD_LOAD, VD_STORE, VD_ADD, VD_SUB, VD_MUL, VD_LO(v) /
 *   VD_HI(v) (a float vector's halves as doubles), vidx, VI_STEP(k) (lane i: i k),
 *   V_GATHERM(base, idx, m) (lane i: base[idx_i] where m is set, else 0), mask_first(n),
 *   optionally V_INTERLEAVE3(dst, a, b, c, init) (dst[3i + k] = plane_k[i] + init[k]
 *   for VW pixels, init may be NULL) and V_TRANSPOSE16(dst, stride, regs)
 *   (dst[ch stride + p] = regs[p][ch], 16 x 16; the vec array may be clobbered),
 *   FN(name) (the ISA-suffixed name), RMAX1/RMAX2 (pixels per block for one
 *   or two vectors of channels), CBMAX1/CBMAX2 (input channels per block of
 *   the weight gradient).
 * Register blocking: a block keeps R pixels x V vectors of output channels
 * (or 3 taps x CB channels x V vectors for the weight gradient) in registers;
 * every loop bound inside a kernel is a compile-time constant after inlining,
 * so the accumulators never touch memory. */
#include "nn/direct.h"

#include <stdint.h>
#include <string.h>

#define ALWAYS_INLINE inline __attribute__((always_inline))
/* Unrolled before scalar replacement, so that gcc keeps acc[][] in registers
 * (clang: fully, whatever the count, as its own pragma says). */
#ifdef __clang__
#define AE_DIRECT_CLANG 1
#define UNROLL _Pragma("unroll")
#define UNROLL_ALL _Pragma("unroll")
#else
#define AE_DIRECT_CLANG 0
#define UNROLL _Pragma("GCC unroll 16")
#define UNROLL_ALL _Pragma("GCC unroll 64")
#endif

/* Vectors of output channels per block: 4 where the ISA defines RMAX4. */
#ifdef RMAX4
#define BLOCK_VMAX 4
#define BLOCK_RMAX4 RMAX4
#else
#define BLOCK_VMAX 2
#define BLOCK_RMAX4 1
#endif

/* acc[r][v] = sum over ntaps taps, k channels: src[t][pos(r) + c] wt[t][c ldw + v VW],
 * pos(r) = (r / COLS) srow + (r % COLS) rstride: R pixels as R / COLS rows of
 * COLS (one row when COLS = R; a tile of several rows when rows are short);
 * then dst[(r / COLS) drow + (r % COLS) dstride + v VW] = acc + init (channels
 * past the mask are not written). Each output sums taps, then channels, in
 * the same order whatever tile it is in: the tile shape never changes bits.
 * RS > 0 is rstride as a compile-time constant (the caller's rstride equals it).
 * resume: acc starts from dst instead of 0 (and init should be NULL until the
 * last taps): a sum split over calls at tap boundaries adds its terms in the
 * same order, so it has the same bits as one call. */
static TARGET ALWAYS_INLINE void FN(block)(const int R, const int V, const int COLS,
                                           const int RS, const float *const *src, int ntaps,
                                           int rstride, size_t srow, int k,
                                           const float *const *wt, int ldw, float *dst,
                                           int dstride, size_t drow, vmask last,
                                           const float *init, int resume)
{
    vec acc[RMAX1][BLOCK_VMAX];
    if (RS > 0)
        rstride = RS;
    UNROLL
    for (int r = 0; r < R; r++) {
        const float *d = dst + (size_t)(r / COLS) * drow + (size_t)(r % COLS) * dstride;
        UNROLL
        for (int v = 0; v < V; v++)
            acc[r][v] = !resume          ? V_ZERO()
                        : v == V - 1 ? V_LOADM(d + v * VW, last)
                                     : V_LOAD(d + v * VW);
    }
    for (int t = 0; t < ntaps; t++) {
        const float *s = src[t], *w = wt[t];
        for (int c = 0; c < k; c++, w += ldw) {
            vec wv[BLOCK_VMAX];
            UNROLL
            for (int v = 0; v < V; v++)
                wv[v] = v == V - 1 ? V_LOADM(w + v * VW, last) : V_LOAD(w + v * VW);
            UNROLL
            for (int r = 0; r < R; r++) {
                vec b = V_SET1(s[(size_t)(r / COLS) * srow + (size_t)(r % COLS) * rstride + c]);
                UNROLL
                for (int v = 0; v < V; v++)
                    acc[r][v] = V_FMA(b, wv[v], acc[r][v]);
            }
        }
    }
    vec bias[BLOCK_VMAX];
    UNROLL
    for (int v = 0; v < V; v++)
        bias[v] = !init ? V_ZERO() : v == V - 1 ? V_LOADM(init + v * VW, last)
                                                : V_LOAD(init + v * VW);
    UNROLL
    for (int r = 0; r < R; r++) {
        float *d = dst + (size_t)(r / COLS) * drow + (size_t)(r % COLS) * dstride;
        UNROLL
        for (int v = 0; v < V; v++) {
            if (v == V - 1)
                V_STOREM(d + v * VW, last, V_ADD(acc[r][v], bias[v]));
            else
                V_STORE(d + v * VW, V_ADD(acc[r][v], bias[v]));
        }
    }
}

typedef void (*FN(block_fn))(const float *const *, int, int, size_t, int, const float *const *,
                             int, float *, int, size_t, vmask, const float *, int);

#define BLOCK_VARIANT_RS(NAME, V, R, COLS, RS)                                                  \
    static TARGET void FN(NAME)(const float *const *src, int ntaps, int rstride, size_t srow,   \
                                int k, const float *const *wt, int ldw, float *dst,            \
                                int dstride, size_t drow, vmask last, const float *init,       \
                                int resume)                                                    \
    {                                                                                           \
        FN(block)(R, V, COLS, RS, src, ntaps, rstride, srow, k, wt, ldw, dst, dstride, drow,    \
                  last, init, resume);                                                          \
    }
#define BLOCK_VARIANT(V, R, COLS) BLOCK_VARIANT_RS(block_##V##_##R##_##COLS, V, R, COLS, 0)
BLOCK_VARIANT(1, RMAX1, RMAX1)
/* With the pixel stride built in, the widest one-vector block addresses its
 * pixels by constant offsets; at run time their RMAX1 offsets do not fit in
 * the general registers. 3 and 6: an RGB image read at stride 1 and 2. */
BLOCK_VARIANT_RS(block_1_RMAX1_RMAX1_rs3, 1, RMAX1, RMAX1, 3)
BLOCK_VARIANT_RS(block_1_RMAX1_RMAX1_rs6, 1, RMAX1, RMAX1, 6)
BLOCK_VARIANT(1, 4, 4)
BLOCK_VARIANT(1, 1, 1)
BLOCK_VARIANT(2, RMAX2, RMAX2)
BLOCK_VARIANT(2, 4, 4)
BLOCK_VARIANT(2, 1, 1)
#ifdef RMAX4
BLOCK_VARIANT(4, RMAX4, RMAX4)
BLOCK_VARIANT(4, 4, 4)
BLOCK_VARIANT(4, 1, 1)
#endif
/* Tiles of several short rows (TILE_ROWS_<V>_<COLS> rows of COLS pixels, set
 * by the ISA file for the row widths where one row gives too few chains). */
#ifdef TILE_ROWS_1_4
BLOCK_VARIANT(1, TILE_PX_1_4, 4)
#endif
#ifdef TILE_ROWS_1_2
BLOCK_VARIANT(1, TILE_PX_1_2, 2)
#endif
#ifdef TILE_ROWS_2_4
BLOCK_VARIANT(2, TILE_PX_2_4, 4)
#endif
#ifdef TILE_ROWS_2_2
BLOCK_VARIANT(2, TILE_PX_2_2, 2)
#endif

static TARGET FN(block_fn) FN(widest_1)(int rstride)
{
    switch (rstride) {
    case 3:
        return FN(block_1_RMAX1_RMAX1_rs3);
    case 6:
        return FN(block_1_RMAX1_RMAX1_rs6);
    default:
        return FN(block_1_RMAX1_RMAX1);
    }
}

/* The multi-row tile for rows of n pixels and V vectors (NULL: none), and its rows. */
static TARGET FN(block_fn) FN(row_tile)(int V, int n, int *rows)
{
    *rows = 1;
#ifdef TILE_ROWS_1_4
    if (V == 1 && n == 4)
        return *rows = TILE_ROWS_1_4, FN(block_1_TILE_PX_1_4_4);
#endif
#ifdef TILE_ROWS_1_2
    if (V == 1 && n == 2)
        return *rows = TILE_ROWS_1_2, FN(block_1_TILE_PX_1_2_2);
#endif
#ifdef TILE_ROWS_2_4
    if (V == 2 && n == 4)
        return *rows = TILE_ROWS_2_4, FN(block_2_TILE_PX_2_4_4);
#endif
#ifdef TILE_ROWS_2_2
    if (V == 2 && n == 2)
        return *rows = TILE_ROWS_2_2, FN(block_2_TILE_PX_2_2_2);
#endif
    (void)V, (void)n;
    return NULL;
}

/* nrows rows of n pixels: pixels rstride floats apart in every src[t] (rows
 * srow apart) and dstride apart in dst (rows drow apart). Short rows go in
 * multi-row tiles while enough rows are left; otherwise a row goes in blocks
 * of the widest variant, then of 4, then one by one. */
static TARGET void FN(blocks)(int V, int n, int nrows, const float *const *src0, int ntaps,
                              int rstride, size_t srow, int k, const float *const *wt, int ldw,
                              float *dst0, int dstride, size_t drow, vmask last,
                              const float *init, int resume)
{
    const int rmax = V == 1 ? RMAX1 : V == 2 ? RMAX2 : BLOCK_RMAX4;
    const float *src[9];
    int tile_rows;
    FN(block_fn) tile = FN(row_tile)(V, n, &tile_rows);
    int row = 0;
    if (tile)
        for (; row + tile_rows <= nrows; row += tile_rows) {
            for (int t = 0; t < ntaps; t++)
                src[t] = src0[t] + (size_t)row * srow;
            tile(src, ntaps, rstride, srow, k, wt, ldw, dst0 + (size_t)row * drow, dstride,
                 drow, last, init, resume);
        }
    for (; row < nrows; row++) {
        for (int t = 0; t < ntaps; t++)
            src[t] = src0[t] + (size_t)row * srow;
        float *dst = dst0 + (size_t)row * drow;
        int done = 0;
        while (done < n) {
            int r = n - done >= rmax ? rmax : n - done >= 4 ? 4 : 1;
            /* 4-vector blocks: 6-pixel blocks leave a row of 32 with 2 single
             * pixels (slow: a load per 4 FMAs), so end such rows in 4-pixel blocks */
            if (V == 4 && r == rmax && n - done != rmax && n - done < rmax + 4)
                r = 4;
            FN(block_fn) f;
            if (V == 1)
                f = r == rmax ? FN(widest_1)(rstride) : r == 4 ? FN(block_1_4_4)
                                                                : FN(block_1_1_1);
#ifdef RMAX4
            else if (V == 4)
                f = r == rmax ? FN(block_4_RMAX4_RMAX4) : r == 4 ? FN(block_4_4_4)
                                                                 : FN(block_4_1_1);
#endif
            else
                f = r == rmax ? FN(block_2_RMAX2_RMAX2) : r == 4 ? FN(block_2_4_4)
                                                                 : FN(block_2_1_1);
            f(src, ntaps, rstride, 0, k, wt, ldw, dst, dstride, 0, last, init, resume);
            for (int t = 0; t < ntaps; t++)
                src[t] += (size_t)r * rstride;
            dst += (size_t)r * dstride;
            done += r;
        }
    }
}

/* Taps per call of blocks when a tap's weights are tap_floats floats: as
 * many as fit in TAP_CHUNK_BYTES (at least one). */
#ifndef TAP_CHUNK_BYTES
#define TAP_CHUNK_BYTES (32 << 10)
#endif
static inline int tap_chunk(int tap_floats)
{
    if (ae_direct_plain_blocks())
        return 9;
    int n = TAP_CHUNK_BYTES / (tap_floats * (int)sizeof(float));
    return n < 1 ? 1 : n > 9 ? 9 : n;
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

/* The output channel groups of blocks: four vectors where the ISA has the
 * registers for them (RMAX4: pixels of such a block) and the rows are long
 * enough (n pixels: a block of 4 vectors reads each input value once for 64
 * channels, where two groups of two read it twice), else as group_vectors. */
static TARGET int block_vectors(int remaining, int n, vmask *last)
{
#ifdef RMAX4
    if (remaining > 3 * VW && n >= RMAX4 && !ae_direct_plain_blocks()) {
        *last = mask_first(remaining < 4 * VW ? remaining - 3 * VW : VW);
        return 4;
    }
#endif
    (void)n;
    return group_vectors(remaining, last);
}

/* big_to_small from CB = 1 or 3 big channels (Conv2D on a gray or an RGB
 * image, the gray or RGB output layer's input gradient), one vector of small
 * channels, stride S: a kernel row's 3 CB tap vectors stay in registers and
 * each input value is broadcast once for the up to three pixels of the row
 * that it reaches (instead of once per pixel and tap). row points at kernel
 * row 0, column kw = 0 of the first pixel, pw floats a padded row; per
 * output the terms still add in order kh, kw, channel, as in block. */
static TARGET ALWAYS_INLINE void FN(few_channels)(const int CB, const int R, const int S,
                                                  const float *row, size_t pw, const float *w,
                                                  int ldt, float *dst, int dstride, vmask last,
                                                  const float *init)
{
    vec acc[RMAX1];
    UNROLL
    for (int r = 0; r < R; r++)
        acc[r] = V_ZERO();
    UNROLL
    for (int kh = 0; kh < 3; kh++, row += pw) {
        vec wv[3][3];
        UNROLL
        for (int kw = 0; kw < 3; kw++)
            UNROLL
            for (int c = 0; c < CB; c++)
                wv[kw][c] = V_LOADM(w + (size_t)((kh * 3 + kw) * CB + c) * ldt, last);
        UNROLL_ALL
        for (int j = 0; j < (R - 1) * S + 3; j++)
            UNROLL
            for (int c = 0; c < CB; c++) {
                vec b = V_SET1(row[j * CB + c]);
                UNROLL_ALL
                for (int r = 0; r < R; r++)
                    if (j - r * S >= 0 && j - r * S < 3)
                        acc[r] = V_FMA(b, wv[j - r * S][c], acc[r]);
            }
    }
    vec bias = init ? V_LOADM(init, last) : V_ZERO();
    UNROLL
    for (int r = 0; r < R; r++)
        V_STOREM(dst + (size_t)r * dstride, last, V_ADD(acc[r], bias));
}

#define FEW_CHANNELS_VARIANT(CB, R, S)                                                          \
    static TARGET void FN(few_channels_##CB##_##R##_##S)(const float *row, size_t pw,          \
                                                         const float *w, int ldt, float *dst,  \
                                                         int dstride, vmask last,              \
                                                         const float *init)                    \
    {                                                                                           \
        FN(few_channels)(CB, R, S, row, pw, w, ldt, dst, dstride, last, init);                  \
    }
#define FEW_CHANNELS_VARIANTS(CB)                                                               \
    FEW_CHANNELS_VARIANT(CB, ONE_CHANNEL_R, 1)                                                  \
    FEW_CHANNELS_VARIANT(CB, 4, 1)                                                              \
    FEW_CHANNELS_VARIANT(CB, 1, 1)                                                              \
    FEW_CHANNELS_VARIANT(CB, ONE_CHANNEL_R, 2)                                                  \
    FEW_CHANNELS_VARIANT(CB, 4, 2)                                                              \
    FEW_CHANNELS_VARIANT(CB, 1, 2)
FEW_CHANNELS_VARIANTS(1)
FEW_CHANNELS_VARIANTS(3)

static TARGET void FN(big_to_small_few_channels)(const float *pad, int row0,
                                                 const ae_conv_geom *g, int cs, const float *w,
                                                 const float *init, float *small,
                                                 int small_row0, int oy0, int oy1)
{
    typedef void (*few_fn)(const float *, size_t, const float *, int, float *, int, vmask,
                           const float *);
    /* [cb == 3][stride 2][ONE_CHANNEL_R, 4, 1 pixels] */
    static const few_fn fns[2][2][3] = {
        {{FN(few_channels_1_ONE_CHANNEL_R_1), FN(few_channels_1_4_1), FN(few_channels_1_1_1)},
         {FN(few_channels_1_ONE_CHANNEL_R_2), FN(few_channels_1_4_2), FN(few_channels_1_1_2)}},
        {{FN(few_channels_3_ONE_CHANNEL_R_1), FN(few_channels_3_4_1), FN(few_channels_3_1_1)},
         {FN(few_channels_3_ONE_CHANNEL_R_2), FN(few_channels_3_4_2), FN(few_channels_3_1_2)}}};
    const int s = g->stride, cb = g->big_c, pw = g->big_w + 2;
    const few_fn *f = fns[cb == 3][s == 2];
    for (int oy = oy0; oy < oy1; oy++) {
        const float *row =
            pad + ((size_t)(oy * s - g->pad_top + 1 - row0) * pw + 1 - g->pad_left) * cb;
        for (int o0 = 0; o0 < cs; o0 += VW) {
            const vmask last = mask_first(cs - o0);
            float *dst = small + (size_t)(oy - small_row0) * g->small_w * cs + o0;
            for (int x = 0; x < g->small_w;) {
                const int left = g->small_w - x, k = left >= ONE_CHANNEL_R ? 0 : left >= 4 ? 1 : 2;
                f[k](row + (size_t)x * s * cb, (size_t)pw * cb, w + o0, cs, dst + (size_t)x * cs,
                     cs, last, init ? init + o0 : NULL);
                x += k == 0 ? ONE_CHANNEL_R : k == 1 ? 4 : 1;
            }
        }
    }
}

static TARGET void FN(big_to_small)(const float *pad, int row0, const ae_conv_geom *g, int cs,
                                    const float *w, const float *init, float *small,
                                    int small_row0, int oy0, int oy1)
{
    const int cb = g->big_c, s = g->stride, pw = g->big_w + 2;
    /* clang leaves few_channels' conditional taps in memory: blocks are faster there */
    if ((cb == 1 || cb == 3) && (s == 1 || s == 2) && !AE_DIRECT_CLANG) {
        FN(big_to_small_few_channels)(pad, row0, g, cs, w, init, small, small_row0, oy0, oy1);
        return;
    }
    /* rows per pass: a multi-row tile's when small rows are short */
    int step = 1;
    for (int o0 = 0, v; o0 < cs; o0 += v * VW) {
        vmask unused;
        int rows;
        v = block_vectors(cs - o0, g->small_w, &unused);
        if (FN(row_tile)(v, g->small_w, &rows) && rows > step)
            step = rows;
    }
    for (int oy = oy0; oy < oy1; oy += step) {
        const int nrows = oy1 - oy < step ? oy1 - oy : step;
        for (int o0 = 0, v; o0 < cs; o0 += v * VW) {
            vmask last;
            v = block_vectors(cs - o0, g->small_w, &last);
            const float *src[9], *wt[9];
            for (int kh = 0; kh < 3; kh++)
                for (int kw = 0; kw < 3; kw++) {
                    int py = oy * s + kh - g->pad_top + 1 - row0, px = kw - g->pad_left + 1;
                    src[kh * 3 + kw] = pad + ((size_t)py * pw + px) * cb;
                    wt[kh * 3 + kw] = w + (size_t)(kh * 3 + kw) * cb * cs + o0;
                }
            /* Taps in chunks whose weights stay in L1 (a block reads all of
             * them; 9 taps of 32 or 64 channels do not fit), each chunk over
             * the whole row before the next. */
            const int chunk = tap_chunk(cb * v * VW);
            for (int t0 = 0; t0 < 9; t0 += chunk) {
                const int n = 9 - t0 < chunk ? 9 - t0 : chunk;
                FN(blocks)(v, g->small_w, nrows, src + t0, n, s * cb, (size_t)s * pw * cb, cb,
                           wt + t0, cs, small + (size_t)(oy - small_row0) * g->small_w * cs + o0,
                           cs, (size_t)g->small_w * cs, last,
                           init && t0 + n == 9 ? init + o0 : NULL, t0 > 0);
            }
        }
    }
}

/* small_to_big for stride 2 without left/top padding (even sizes) and at most
 * one vector of output channels (the 16-channel layer), where gathering
 * loads one input value per FMA. Here each input value feeds the three
 * output pixels of its row that it reaches: output columns 2m (taps kw = 0
 * from small column m, kw = 2 from m - 1) and 2m + 1 (kw = 1 from m), so R
 * pairs of output pixels read R + 1 input values per kernel row and channel,
 * three FMAs each. acc[0][i]: column 2 (m0 + i); acc[1][i]: column 2 (m0 + i) + 1. */
static TARGET ALWAYS_INLINE void FN(pairs_block)(const int R, const int CS,
                                                 const float *const *rows, const int *khs,
                                                 int nkh, int cs, const float *wt, int cb,
                                                 int m0, float *dst, vmask last,
                                                 const float *init)
{
    vec acc[2][RMAX2];
    if (CS > 0)
        cs = CS;
    UNROLL
    for (int q = 0; q < 2; q++)
        UNROLL
        for (int i = 0; i < R; i++)
            acc[q][i] = V_ZERO();
    for (int a = 0; a < nkh; a++) {
        const float *src = rows[a] + (size_t)m0 * cs; /* padded column m0 = small column m0 - 1 */
        const float *w = wt + (size_t)khs[a] * 3 * cs * cb;
        for (int o = 0; o < cs; o++) {
            vec w0 = V_LOADM(w + (size_t)o * cb, last);
            vec w1 = V_LOADM(w + ((size_t)cs + o) * cb, last);
            vec w2 = V_LOADM(w + ((size_t)2 * cs + o) * cb, last);
            UNROLL
            for (int i = 0; i <= R; i++) {
                vec b = V_SET1(src[(size_t)i * cs + o]);
                if (i < R)
                    acc[0][i] = V_FMA(b, w2, acc[0][i]);
                if (i > 0) {
                    acc[0][i - 1] = V_FMA(b, w0, acc[0][i - 1]);
                    acc[1][i - 1] = V_FMA(b, w1, acc[1][i - 1]);
                }
            }
        }
    }
    vec bias = init ? V_LOADM(init, last) : V_ZERO();
    UNROLL
    for (int i = 0; i < R; i++) {
        V_STOREM(dst + (size_t)(2 * i) * cb, last, V_ADD(acc[0][i], bias));
        V_STOREM(dst + (size_t)(2 * i + 1) * cb, last, V_ADD(acc[1][i], bias));
    }
}

#define PAIRS_VARIANT(R, CS)                                                                    \
    static TARGET void FN(pairs_##R##_##CS)(const float *const *rows, const int *khs, int nkh,  \
                                            int cs, const float *wt, int cb, int m0,           \
                                            float *dst, vmask last, const float *init)         \
    {                                                                                           \
        FN(pairs_block)(R, CS, rows, khs, nkh, cs, wt, cb, m0, dst, last, init);                \
    }
/* With the pixel stride cs built in, the R + 1 pixels of a block are constant
 * offsets; at run time gcc keeps them on the stack and reloads them for every
 * channel (15% slower at 32 channels). 16, 32, 64: --filters' defaults. */
PAIRS_VARIANT(RMAX2, 0)
PAIRS_VARIANT(RMAX2, 16)
PAIRS_VARIANT(RMAX2, 32)
PAIRS_VARIANT(RMAX2, 64)
PAIRS_VARIANT(1, 0)

typedef void (*FN(pairs_fn))(const float *const *, const int *, int, int, const float *, int,
                             int, float *, vmask, const float *);

static TARGET FN(pairs_fn) FN(pairs_widest)(int cs)
{
    switch (cs) {
    case 16:
        return FN(pairs_RMAX2_16);
    case 32:
        return FN(pairs_RMAX2_32);
    case 64:
        return FN(pairs_RMAX2_64);
    default:
        return FN(pairs_RMAX2_0);
    }
}

static TARGET void FN(small_to_big_pairs)(const float *pad, int row0, const ae_conv_geom *g,
                                          int cs, const float *wt, const float *init, float *big,
                                          int big_row0, int y0, int y1)
{
    const int cb = g->big_c, pw = g->small_w + 2;
    const vmask last = mask_first(cb);
    const FN(pairs_fn) widest = FN(pairs_widest)(cs);
    for (int y = y0; y < y1; y++) {
        const float *rows[2];
        int khs[2], nkh = 0;
        for (int kh = y % 2; kh < 3; kh += 2) { /* y - kh even: small row (y - kh) / 2 */
            rows[nkh] = pad + (size_t)((y - kh) / 2 + 1 - row0) * pw * cs;
            khs[nkh++] = kh;
        }
        float *dst = big + (size_t)(y - big_row0) * g->big_w * cb;
        int m0 = 0;
        for (; m0 + RMAX2 <= g->small_w; m0 += RMAX2)
            widest(rows, khs, nkh, cs, wt, cb, m0, dst + (size_t)2 * m0 * cb, last, init);
        for (; m0 < g->small_w; m0++)
            FN(pairs_1_0)(rows, khs, nkh, cs, wt, cb, m0, dst + (size_t)2 * m0 * cb, last, init);
    }
}

/* Each big pixel gathers its taps: in row y the kernel rows kh with
 * y + pad_top - kh divisible by the stride contribute, from small row
 * (y + pad_top - kh) / stride; likewise for columns, which splits a row into
 * `stride` phases of pixels `stride` apart that share their taps. */
static TARGET void FN(small_to_big)(const float *pad, int row0, const ae_conv_geom *g, int cs,
                                    const float *wt, const float *init, float *big, int big_row0,
                                    int y0, int y1)
{
    const int cb = g->big_c, s = g->stride, pw = g->small_w + 2;
    if (s == 2 && g->pad_top == 0 && g->pad_left == 0 && cb <= VW &&
        g->big_w == 2 * g->small_w) {
        FN(small_to_big_pairs)(pad, row0, g, cs, wt, init, big, big_row0, y0, y1);
        return;
    }
    /* Rows y, y + s, y + 2 s, ... take the same taps from consecutive small
     * rows: when a phase's rows are short, a multi-row tile takes several. */
    int step = 1;
    for (int phase = 0; phase < s && phase < g->big_w; phase++)
        for (int c0 = 0, v; c0 < cb; c0 += v * VW) {
            vmask unused;
            int rows, n = (g->big_w - phase + s - 1) / s;
            v = block_vectors(cb - c0, n, &unused);
            if (FN(row_tile)(v, n, &rows) && rows > step)
                step = rows;
        }
    for (int yb = y0; yb < y1; yb += s * step)
        for (int y = yb; y < yb + s && y < y1; y++) {
            const int nrows = (y1 - y + s - 1) / s < step ? (y1 - y + s - 1) / s : step;
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
                for (int c0 = 0, v; c0 < cb; c0 += v * VW) {
                    vmask last;
                    v = block_vectors(cb - c0, n, &last);
                    const float *src[9], *w[9];
                    int ntaps = 0;
                    for (int a = 0; a < nkh; a++)
                        for (int kw = 0; kw < 3; kw++) {
                            int t = phase + g->pad_left - kw;
                            if ((t + 2 * s) % s != 0)
                                continue;
                            int ox = t / s;
                            src[ntaps] =
                                pad + ((size_t)(oy_list[a] + 1 - row0) * pw + (ox + 1)) * cs;
                            w[ntaps++] = wt + (size_t)(kh_list[a] * 3 + kw) * cs * cb + c0;
                        }
                    float *dst = big + ((size_t)(y - big_row0) * g->big_w + phase) * cb + c0;
                    /* taps in chunks, as in big_to_small (one call even without taps:
                     * it writes the bias) */
                    const int chunk = tap_chunk(cs * v * VW);
                    for (int t0 = 0; t0 == 0 || t0 < ntaps; t0 += chunk) {
                        const int m = ntaps - t0 < chunk ? ntaps - t0 : chunk;
                        FN(blocks)(v, n, nrows, src + t0, m, cs, (size_t)pw * cs, cs, w + t0, cb,
                                   dst, s * cb, (size_t)s * g->big_w * cb, last,
                                   init && t0 + m == ntaps ? init + c0 : NULL, t0 > 0);
                    }
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

/* wgrad for CB = 1 or 3 big channels (a gray or RGB image, or the output
 * layer's gradient) and one vector of small channels: the nine taps at once
 * (9 CB chains instead of 3 CB per kernel row, and each small vector read
 * once instead of three times); each tap's sum runs over the same pixels in
 * the same order as wgrad's. */
static TARGET ALWAYS_INLINE void FN(wgrad_taps)(const int CB, const float *big, size_t big_row,
                                                int big_px, size_t prow, const float *small,
                                                size_t small_row, int small_px, int rows,
                                                int cols, float *dw, size_t tap_stride,
                                                int ldw, vmask last)
{
    vec acc[27];
    UNROLL_ALL
    for (int t = 0; t < 9 * CB; t++)
        acc[t] = V_ZERO();
    for (int row = 0; row < rows; row++) {
        const float *b = big + row * big_row, *sm = small + row * small_row;
        for (int p = 0; p < cols; p++, b += big_px, sm += small_px) {
            const vec sv = V_LOADM(sm, last);
            /* Opaque to the optimizer: otherwise gcc keeps an offset for each
             * tap of kernel rows 1 and 2, more than the general registers,
             * and reloads them from the stack for every pixel. */
            const float *krow[3] = {b, b + prow, b + 2 * prow};
            __asm__("" : "+r"(krow[1]), "+r"(krow[2]));
            UNROLL
            for (int kh = 0; kh < 3; kh++)
                UNROLL
                for (int kw = 0; kw < 3; kw++)
                    UNROLL
                    for (int c = 0; c < CB; c++)
                        acc[(kh * 3 + kw) * CB + c] = V_FMA(V_SET1(krow[kh][kw * CB + c]), sv,
                                                            acc[(kh * 3 + kw) * CB + c]);
        }
    }
    UNROLL
    for (int t = 0; t < 9; t++)
        UNROLL
        for (int c = 0; c < CB; c++) {
            float *d = dw + t * tap_stride + (size_t)c * ldw;
            V_STOREM(d, last, V_ADD(V_LOADM(d, last), acc[t * CB + c]));
        }
}

#define WGRAD_TAPS_VARIANT(CB)                                                                  \
    static TARGET void FN(wgrad_taps_##CB)(const float *big, size_t big_row, int big_px,        \
                                           size_t prow, const float *small, size_t small_row,   \
                                           int small_px, int rows, int cols, float *dw,         \
                                           size_t tap_stride, int ldw, vmask last)              \
    {                                                                                           \
        FN(wgrad_taps)(CB, big, big_row, big_px, prow, small, small_row, small_px, rows, cols,  \
                       dw, tap_stride, ldw, last);                                              \
    }
WGRAD_TAPS_VARIANT(1)
WGRAD_TAPS_VARIANT(3)

/* Rows of the small image go in bands, so that a band's pixels stay in cache
 * while every tap row and channel block passes over them. */
static TARGET void FN(weight_grad)(const float *pad, int row0, const float *small, int srow0,
                                   const ae_conv_geom *g, int cs, float *dw, int first,
                                   int last_row)
{
    enum { BAND = 4 };
    const int cb = g->big_c, s = g->stride, pw = g->big_w + 2;
    const size_t tap_stride = (size_t)cb * cs;
    for (int oy0 = first; oy0 < last_row; oy0 += BAND) {
        int rows = last_row - oy0 < BAND ? last_row - oy0 : BAND;
        /* the band's first 3 x 3 window */
        const float *window = pad + ((size_t)(oy0 * s - g->pad_top + 1 - row0) * pw + 1 -
                                     g->pad_left) * cb;
        if (cb == 1 || (cb == 3 && cs <= VW)) {
            for (int o0 = 0; o0 < cs; o0 += VW)
                (cb == 1 ? FN(wgrad_taps_1) : FN(wgrad_taps_3))(
                    window, (size_t)s * pw * cb, s * cb, (size_t)pw * cb,
                    small + (size_t)(oy0 - srow0) * g->small_w * cs + o0, (size_t)g->small_w * cs,
                    cs, rows, g->small_w, dw + o0, tap_stride, cs, mask_first(cs - o0));
            continue;
        }
        for (int o0 = 0; o0 < cs; o0 += 2 * VW) {
            vmask last;
            int v = group_vectors(cs - o0, &last);
            const int cbmax = v == 1 ? CBMAX1 : CBMAX2;
            for (int kh = 0; kh < 3; kh++) {
                const float *brow = window + (size_t)kh * pw * cb;
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
                      small + (size_t)(oy0 - srow0) * g->small_w * cs + o0,
                      (size_t)g->small_w * cs, cs,
                      rows, g->small_w, dw + (size_t)kh * 3 * tap_stride + (size_t)c0 * cs + o0,
                      tap_stride, cs, last);
                    c0 += n;
                }
            }
        }
    }
}

/* ---- Transposed convolution, stride 1, to at most 4 channels (the output
 * layer) ----
 * Vectors over channels would use 3 of 16 lanes here, so this one runs along
 * the pixels of a row instead: it reads the small image channel-planar
 * (padded row r, channel o: pad[(r cs + o) pw + col], pw = small_w + 2) and
 * keeps XV vectors of pixels x CB channels in registers.
 * big[y][x][c] = init[c] + sum_{kh,kw,o} pad[(y+2-kh) cs + o][x+2-kw] w[kh][kw][c][o]. */
static TARGET ALWAYS_INLINE void FN(narrow_block)(const int CB, const int XV, const float *pad,
                                                  int cs, int pw, const float *w, int y, int x0,
                                                  vmask last, float *out)
{
    /* S independent partial sums over the input channels keep at least 8 FMA
     * chains in flight when CB x XV is small. */
    enum { SMAX = 4 };
    const int S = CB * XV >= 8 ? 1 : CB * XV >= 4 ? 2 : SMAX;
    vec acc[SMAX][4][4];
    UNROLL
    for (int q = 0; q < S; q++)
        UNROLL
        for (int c = 0; c < CB; c++)
            UNROLL
            for (int v = 0; v < XV; v++)
                acc[q][c][v] = V_ZERO();
    for (int kh = 0; kh < 3; kh++) {
        const float *rows = pad + (size_t)(y + 2 - kh) * cs * pw + x0;
        for (int o0 = 0; o0 < cs; o0 += S) {
            UNROLL
            for (int q = 0; q < S; q++) {
                const int o = o0 + q;
                if (o >= cs)
                    break;
                const float *row = rows + (size_t)o * pw;
                UNROLL
                for (int kw = 0; kw < 3; kw++) {
                    vec xv[4];
                    UNROLL
                    for (int v = 0; v < XV; v++)
                        xv[v] = v == XV - 1 ? V_LOADM(row + 2 - kw + v * VW, last)
                                            : V_LOAD(row + 2 - kw + v * VW);
                    const float *wk = w + (size_t)(kh * 3 + kw) * CB * cs + o;
                    UNROLL
                    for (int c = 0; c < CB; c++) {
                        vec wv = V_SET1(wk[(size_t)c * cs]);
                        UNROLL
                        for (int v = 0; v < XV; v++)
                            acc[q][c][v] = V_FMA(wv, xv[v], acc[q][c][v]);
                    }
                }
            }
        }
    }
    UNROLL
    for (int c = 0; c < CB; c++)
        UNROLL
        for (int v = 0; v < XV; v++) {
            vec sum = acc[0][c][v];
            UNROLL
            for (int q = 1; q < S; q++)
                sum = V_ADD(sum, acc[q][c][v]);
            V_STORE(out + (size_t)c * 4 * VW + v * VW, sum);
        }
}

#define NARROW_VARIANT(CB, XV)                                                                  \
    static TARGET void FN(narrow_##CB##_##XV)(const float *pad, int cs, int pw, const float *w, \
                                              int y, int x0, vmask last, float *out)            \
    {                                                                                           \
        FN(narrow_block)(CB, XV, pad, cs, pw, w, y, x0, last, out);                             \
    }
NARROW_VARIANT(1, 4)
NARROW_VARIANT(1, 2)
NARROW_VARIANT(1, 1)
NARROW_VARIANT(2, 4)
NARROW_VARIANT(2, 2)
NARROW_VARIANT(2, 1)
NARROW_VARIANT(3, 4)
NARROW_VARIANT(3, 2)
NARROW_VARIANT(3, 1)
NARROW_VARIANT(4, 4)
NARROW_VARIANT(4, 2)
NARROW_VARIANT(4, 1)

typedef void (*FN(narrow_fn))(const float *, int, int, const float *, int, int, vmask, float *);

/* The same to ONE channel (cb = 1, a gray image's output layer): YR output
 * rows x XV vectors of pixels, so that each loaded input vector serves the up
 * to three output rows that read it (narrow_block loads it once per row).
 * Per output the terms add in the order o, kw, kh = 2, 1, 0 whatever YR is. */
static TARGET ALWAYS_INLINE void FN(narrow_rows)(const int YR, const int XV, const float *pad,
                                                 int cs, int pw, const float *w, vmask last,
                                                 float *dst, int width, const float *init)
{
    vec acc[NARROW_ROWS][2];
    UNROLL
    for (int y = 0; y < YR; y++)
        UNROLL
        for (int v = 0; v < XV; v++)
            acc[y][v] = V_ZERO();
    for (int o = 0; o < cs; o++) {
        const float *in = pad + (size_t)o * pw;
        UNROLL
        for (int kw = 0; kw < 3; kw++) {
            vec wk[3];
            UNROLL
            for (int kh = 0; kh < 3; kh++)
                wk[kh] = V_SET1(w[(size_t)(kh * 3 + kw) * cs + o]);
            UNROLL
            for (int r = 0; r < YR + 2; r++) {
                vec xv[2];
                UNROLL
                for (int v = 0; v < XV; v++) {
                    const float *p = in + (size_t)r * cs * pw + 2 - kw + v * VW;
                    xv[v] = v == XV - 1 ? V_LOADM(p, last) : V_LOAD(p);
                }
                UNROLL
                for (int y = 0; y < YR; y++)
                    if (y + 2 - r >= 0 && y + 2 - r < 3)
                        UNROLL
                        for (int v = 0; v < XV; v++)
                            acc[y][v] = V_FMA(wk[y + 2 - r], xv[v], acc[y][v]);
            }
        }
    }
    const vec bias = init ? V_SET1(init[0]) : V_ZERO();
    UNROLL
    for (int y = 0; y < YR; y++)
        UNROLL
        for (int v = 0; v < XV; v++) {
            float *d = dst + (size_t)y * width + v * VW;
            if (v == XV - 1)
                V_STOREM(d, last, V_ADD(acc[y][v], bias));
            else
                V_STORE(d, V_ADD(acc[y][v], bias));
        }
}

#define NARROW_ROWS_VARIANT(YR, XV)                                                             \
    static TARGET void FN(narrow_rows_##YR##_##XV)(const float *pad, int cs, int pw,           \
                                                   const float *w, vmask last, float *dst,     \
                                                   int width, const float *init)               \
    {                                                                                           \
        FN(narrow_rows)(YR, XV, pad, cs, pw, w, last, dst, width, init);                        \
    }
NARROW_ROWS_VARIANT(NARROW_ROWS, 2)
NARROW_ROWS_VARIANT(NARROW_ROWS, 1)
NARROW_ROWS_VARIANT(4, 2)
NARROW_ROWS_VARIANT(4, 1)
NARROW_ROWS_VARIANT(2, 2)
NARROW_ROWS_VARIANT(2, 1)
NARROW_ROWS_VARIANT(1, 2)
NARROW_ROWS_VARIANT(1, 1)

static TARGET void FN(small_to_big_narrow_one)(const float *pad, int row0, const ae_conv_geom *g,
                                               int cs, const float *w, const float *init,
                                               float *big, int y0, int y1)
{
    typedef void (*rows_fn)(const float *, int, int, const float *, vmask, float *, int,
                            const float *);
    static const rows_fn two[4] = {FN(narrow_rows_NARROW_ROWS_2), FN(narrow_rows_4_2),
                                   FN(narrow_rows_2_2), FN(narrow_rows_1_2)};
    static const rows_fn one[4] = {FN(narrow_rows_NARROW_ROWS_1), FN(narrow_rows_4_1),
                                   FN(narrow_rows_2_1), FN(narrow_rows_1_1)};
    static const int heights[4] = {NARROW_ROWS, 4, 2, 1};
    const int pw = g->small_w + 2, width = g->big_w;
    for (int y = y0; y < y1;) {
        int k = 0;
        while (heights[k] > y1 - y)
            k++;
        const float *band = pad + (size_t)(y - row0) * cs * pw;
        for (int x0 = 0; x0 < width;) {
            int left = width - x0;
            if (left > VW) {
                int n = left < 2 * VW ? left : 2 * VW;
                two[k](band + x0, cs, pw, w, mask_first(n - VW), big + (size_t)y * width + x0,
                       width, init);
                x0 += n;
            } else {
                one[k](band + x0, cs, pw, w, mask_first(left), big + (size_t)y * width + x0,
                       width, init);
                x0 += left;
            }
        }
        y += heights[k];
    }
}

static TARGET void FN(small_to_big_narrow)(const float *pad, int row0, const ae_conv_geom *g,
                                           int cs, const float *w, const float *init, float *big,
                                           int y0, int y1)
{
    static const FN(narrow_fn) wide[4] = {FN(narrow_1_4), FN(narrow_2_4), FN(narrow_3_4),
                                          FN(narrow_4_4)};
    static const FN(narrow_fn) two[4] = {FN(narrow_1_2), FN(narrow_2_2), FN(narrow_3_2),
                                         FN(narrow_4_2)};
    static const FN(narrow_fn) one[4] = {FN(narrow_1_1), FN(narrow_2_1), FN(narrow_3_1),
                                         FN(narrow_4_1)};
    const int cb = g->big_c, pw = g->small_w + 2, width = g->big_w;
    float out[4 * 4 * VW];
    if (cb == 1) {
        FN(small_to_big_narrow_one)(pad, row0, g, cs, w, init, big, y0, y1);
        return;
    }
    for (int y = y0; y < y1; y++) {
        for (int x0 = 0; x0 < width;) {
            int left = width - x0;
            int n = left >= 4 * VW ? 4 * VW : left >= 2 * VW ? 2 * VW : left < VW ? left : VW;
            /* the kernel reads padded rows y .. y + 2: pass the band as if it began at y */
            const float *band = pad + (size_t)(y - row0) * cs * pw;
            if (n == 4 * VW)
                wide[cb - 1](band, cs, pw, w, 0, x0, mask_first(VW), out);
            else if (n == 2 * VW)
                two[cb - 1](band, cs, pw, w, 0, x0, mask_first(VW), out);
            else
                one[cb - 1](band, cs, pw, w, 0, x0, mask_first(n), out);
            float *dst = big + ((size_t)y * width + x0) * cb;
            int x = 0;
#ifdef V_INTERLEAVE3
            if (cb == 3) /* whole vectors of pixels: interleave the planes in registers */
                for (; x + VW <= n; x += VW)
                    V_INTERLEAVE3(dst + (size_t)x * 3, out + x, out + 4 * VW + x,
                                  out + 8 * VW + x, init);
#endif
            for (; x < n; x++)
                for (int c = 0; c < cb; c++)
                    dst[x * cb + c] = out[c * 4 * VW + x] + (init ? init[c] : 0.0f);
            x0 += n;
        }
    }
}

/* ---- Element-wise passes over (pixels, c) tensors, channels in vectors ----
 * The BatchNorm sums go as the portable loops do (batchnorm.c), so that their
 * bits are the same: runs of BN_RUN pixels summed in float in four chains
 * (pixel offset mod 4), added as (a0 + a1) + (a2 + a3), each run's sum added
 * to a double; no fused multiply-adds. */

enum { BN_RUN = 32 };

/* The passes below stream activations from memory (the transforms, the
 * BatchNorm gradient); by the hardware's prefetchers alone they read them at
 * 9-11 GB/s, against the 15-18 of a plain sum. Each pixel's line is asked
 * for 4 KB ahead, into L2 (locality 1: the passes alone ran 10-20% faster
 * than with lines asked into L1; a whole training step, the same). Past the
 * end of an array it is harmless: a prefetch never faults (and the address
 * is an integer, not a pointer out of bounds). */
enum { PREFETCH_BYTES = 4096 };

static inline void prefetch_ahead(const float *p)
{
    __builtin_prefetch((const void *)((uintptr_t)p + PREFETCH_BYTES), 0, 1);
}

static TARGET ALWAYS_INLINE vec FN(leaky)(vec v, vec slope)
{
    return V_SELECT_POS(v, v, V_MUL(v, slope));
}

/* One pixel's term of bn_sums: leaky(z) or, with squares, (leaky(z) - mu)^2. */
static TARGET ALWAYS_INLINE vec FN(bn_term)(const float *zp, vmask m, vec slope, int squares,
                                            vec mu)
{
    vec v = FN(leaky)(V_LOADM(zp, m), slope);
    if (squares) {
        v = V_SUB(v, mu);
        v = V_MUL(v, v);
    }
    return v;
}

/* A run's sum of a float vector term, four chains, as described above. */
#define BN_RUN_SUM(sum, p0, p1, term)                                                   \
    do {                                                                                \
        /* four named chains, not an array: an array indexed by the tail's        */   \
        /* counter would live on the stack, each add waiting on a store and a load */  \
        vec a0_ = V_ZERO(), a1_ = V_ZERO(), a2_ = V_ZERO(), a3_ = V_ZERO();             \
        size_t p = (p0);                                                                \
        for (; p + 4 <= (p1); p += 4) {                                                 \
            a0_ = V_ADD(a0_, term(p));                                                  \
            a1_ = V_ADD(a1_, term(p + 1));                                              \
            a2_ = V_ADD(a2_, term(p + 2));                                              \
            a3_ = V_ADD(a3_, term(p + 3));                                              \
        }                                                                               \
        if (p < (p1))                                                                   \
            a0_ = V_ADD(a0_, term(p));                                                  \
        if (p + 1 < (p1))                                                               \
            a1_ = V_ADD(a1_, term(p + 1));                                              \
        if (p + 2 < (p1))                                                               \
            a2_ = V_ADD(a2_, term(p + 2));                                              \
        (sum) = V_ADD(V_ADD(a0_, a1_), V_ADD(a2_, a3_));                                \
    } while (0)

/* The sums below take the channels in groups of up to SUM_GROUP vectors, and
 * each run of pixels for the whole group before the next run: a pass over the
 * pixels reads all of their lines (64 channels: 4 a pixel). One vector of
 * channels at a time, a pass reads every second or fourth line, and ran at
 * 7-8 GB/s from memory instead of 14. A channel's run sums and their order
 * are the same either way. */
enum { SUM_GROUP = 4 };

/* The vectors of channels in the group from channel g0 on (the last may be partial). */
static inline int sum_group_vectors(int c, int g0)
{
    const int left = (c - g0 + VW - 1) / VW;
    return left < SUM_GROUP ? left : SUM_GROUP;
}

/* acc[ch] = sum over pixels of leaky(z) or, with mean, of (leaky(z) - (float)mean)^2. */
static TARGET void FN(bn_sums)(double *acc, const float *z, size_t pixels, int c, float slope,
                               const double *mean)
{
    const vec vslope = V_SET1(slope);
    for (int g0 = 0; g0 < c; g0 += SUM_GROUP * VW) {
        const int nv = sum_group_vectors(c, g0);
        vmask m[SUM_GROUP];
        vec vmu[SUM_GROUP];
        vecd t[SUM_GROUP][2];
        for (int v = 0; v < nv; v++) {
            const int c0 = g0 + v * VW, width = c - c0 < VW ? c - c0 : VW;
            float mu[VW];
            for (int j = 0; j < VW; j++)
                mu[j] = mean && j < width ? (float)mean[c0 + j] : 0.0f;
            m[v] = mask_first(width);
            vmu[v] = V_LOADM(mu, m[v]);
            t[v][0] = t[v][1] = VD_LO(V_ZERO());
        }
        for (size_t p0 = 0; p0 < pixels; p0 += BN_RUN) {
            const size_t p1 = pixels - p0 < BN_RUN ? pixels : p0 + BN_RUN;
            for (int v = 0; v < nv; v++) {
                const float *zc = z + g0 + v * VW;
                vec sum;
#define TERM(q) FN(bn_term)(zc + (q) * c, m[v], vslope, mean != NULL, vmu[v])
                BN_RUN_SUM(sum, p0, p1, TERM);
#undef TERM
                t[v][0] = VD_ADD(t[v][0], VD_LO(sum));
                t[v][1] = VD_ADD(t[v][1], VD_HI(sum));
            }
        }
        for (int v = 0; v < nv; v++) {
            const int c0 = g0 + v * VW, width = c - c0 < VW ? c - c0 : VW;
            double a[VW];
            VD_STORE(a, t[v][0]);
            VD_STORE(a + VW / 2, t[v][1]);
            for (int j = 0; j < width; j++)
                acc[c0 + j] = a[j];
        }
    }
}

/* xhat = (leaky(z) - mean) invstd for one pixel. */
static TARGET ALWAYS_INLINE vec FN(bn_xhat)(const float *zp, vmask m, vec slope, vec mu, vec is)
{
    return V_MUL(V_SUB(FN(leaky)(V_LOADM(zp, m), slope), mu), is);
}

/* acc[ch] += sum of dy, acc[c + ch] += sum of dy * xhat, xhat = (leaky(z) - mean) invstd. */
static TARGET void FN(bn_grad_sums)(double *acc, const float *dy, const float *z, size_t pixels,
                                    int c, float slope, const float *mean, const float *invstd)
{
    const vec vslope = V_SET1(slope);
    for (int g0 = 0; g0 < c; g0 += SUM_GROUP * VW) { /* as bn_sums */
        const int nv = sum_group_vectors(c, g0);
        vmask m[SUM_GROUP];
        vec mu[SUM_GROUP], is[SUM_GROUP];
        vecd t[SUM_GROUP][4];
        for (int v = 0; v < nv; v++) {
            const int c0 = g0 + v * VW;
            m[v] = mask_first(c - c0 < VW ? c - c0 : VW);
            mu[v] = V_LOADM(mean + c0, m[v]);
            is[v] = V_LOADM(invstd + c0, m[v]);
            t[v][0] = t[v][1] = t[v][2] = t[v][3] = VD_LO(V_ZERO());
        }
        for (size_t p0 = 0; p0 < pixels; p0 += BN_RUN) {
            const size_t p1 = pixels - p0 < BN_RUN ? pixels : p0 + BN_RUN;
            for (int v = 0; v < nv; v++) {
                const float *zc = z + g0 + v * VW, *dyc = dy + g0 + v * VW;
                for (size_t p = p0; p < p1; p++) {
                    prefetch_ahead(zc + p * c);
                    prefetch_ahead(dyc + p * c);
                }
                vec sum_dy, sum_dy_xhat;
#define DY(q) V_LOADM(dyc + (q) * c, m[v])
#define DY_XHAT(q) V_MUL(DY(q), FN(bn_xhat)(zc + (q) * c, m[v], vslope, mu[v], is[v]))
                BN_RUN_SUM(sum_dy, p0, p1, DY);
                BN_RUN_SUM(sum_dy_xhat, p0, p1, DY_XHAT);
#undef DY
#undef DY_XHAT
                t[v][0] = VD_ADD(t[v][0], VD_LO(sum_dy));
                t[v][1] = VD_ADD(t[v][1], VD_HI(sum_dy));
                t[v][2] = VD_ADD(t[v][2], VD_LO(sum_dy_xhat));
                t[v][3] = VD_ADD(t[v][3], VD_HI(sum_dy_xhat));
            }
        }
        for (int v = 0; v < nv; v++) {
            const int c0 = g0 + v * VW, width = c - c0 < VW ? c - c0 : VW;
            double a[2 * VW];
            for (int k = 0; k < 4; k++)
                VD_STORE(a + k * (VW / 2), t[v][k]);
            for (int j = 0; j < width; j++) {
                acc[c0 + j] += a[j];
                acc[c + c0 + j] += a[VW + j];
            }
        }
    }
}

/* dz = leaky'(z) k_dy (dy - k_mean - xhat k_xhat) for one vector of channels
 * [c0, c0 + VW) (m: those there are); dz may alias dy. */
static TARGET ALWAYS_INLINE void FN(bn_grad_one)(float *dz, const float *dy, const float *z,
                                                vmask m, vec slope, vec mu, vec is, vec kd,
                                                vec km, vec kx)
{
    prefetch_ahead(z);
    prefetch_ahead(dy);
    const vec zv = V_LOADM(z, m);
    const vec xhat = V_MUL(V_SUB(FN(leaky)(zv, slope), mu), is);
    const vec da = V_MUL(kd, V_SUB(V_SUB(V_LOADM(dy, m), km), V_MUL(xhat, kx)));
    V_STOREM(dz, m, V_SELECT_POS(zv, da, V_MUL(slope, da)));
}

/* dz = leaky'(z) k_dy (dy - k_mean - xhat k_xhat); dz may alias dy. Pixel
 * after pixel, all of a pixel's channels at once: by vectors of channels in
 * turn, each pass over the pixels reads every other line of z and dy (32
 * channels), and the pass ran at 9-10 GB/s instead of 14. */
static TARGET void FN(bn_grad_apply)(float *dz, const float *dy, const float *z, size_t pixels,
                                     int c, float slope, const float *mean, const float *invstd,
                                     const float *k_dy, const float *k_mean, const float *k_xhat)
{
    const vec vslope = V_SET1(slope);
    if (c <= VW) { /* the channels' constants stay in registers */
        const vmask m = mask_first(c);
        const vec mu = V_LOADM(mean, m), is = V_LOADM(invstd, m), kd = V_LOADM(k_dy, m);
        const vec km = V_LOADM(k_mean, m), kx = V_LOADM(k_xhat, m);
        for (size_t p = 0; p < pixels; p++)
            FN(bn_grad_one)(dz + p * c, dy + p * c, z + p * c, m, vslope, mu, is, kd, km, kx);
        return;
    }
    for (size_t p = 0; p < pixels; p++)
        for (int c0 = 0; c0 < c; c0 += VW) {
            const vmask m = mask_first(c - c0 < VW ? c - c0 : VW);
            const size_t at = p * c + c0;
            FN(bn_grad_one)(dz + at, dy + at, z + at, m, vslope, V_LOADM(mean + c0, m),
                            V_LOADM(invstd + c0, m), V_LOADM(k_dy + c0, m),
                            V_LOADM(k_mean + c0, m), V_LOADM(k_xhat + c0, m));
        }
}

/* dst = tf(x) over pixels x c (one image row or more): leaky, then scale and shift. */
static TARGET void FN(apply_tf)(float *dst, const float *x, size_t pixels, int c,
                                const float *scale, const float *shift, float slope)
{
    const vec vslope = V_SET1(slope);
    if (c <= VW) {
        vmask m = mask_first(c);
        vec sc = V_LOADM(scale, m), sh = V_LOADM(shift, m);
        for (size_t p = 0; p < pixels; p++) {
            prefetch_ahead(x + p * c);
            V_STOREM(dst + p * c, m,
                     V_ADD(V_MUL(FN(leaky)(V_LOADM(x + p * c, m), vslope), sc), sh));
        }
        return;
    }
    for (size_t p = 0; p < pixels; p++)
        for (int c0 = 0; c0 < c; c0 += VW) {
            vmask m = mask_first(c - c0 < VW ? c - c0 : VW);
            prefetch_ahead(x + p * c + c0);
            vec v = FN(leaky)(V_LOADM(x + p * c + c0, m), vslope);
            V_STOREM(dst + p * c + c0, m,
                     V_ADD(V_MUL(v, V_LOADM(scale + c0, m)), V_LOADM(shift + c0, m)));
        }
}

/* Channel-planar copy of one row: rows[ch pw + 1 + x] = src[x c + ch]. */
static TARGET void FN(planar_row)(float *rows, const float *src, int w, int c, size_t pw)
{
    const vidx step = VI_STEP(c);
    int first = 0; /* pixels before `first` are done */
#ifdef V_TRANSPOSE16
    if (c == 16) /* whole blocks of 16 pixels by an in-register transpose */
        for (; first + 16 <= w; first += 16) {
            vec t[16];
            for (int p = 0; p < 16; p++)
                t[p] = V_LOAD(src + (size_t)(first + p) * 16);
            V_TRANSPOSE16(rows + 1 + first, pw, t);
        }
#endif
    for (int ch = 0; ch < c; ch++)
        for (int x0 = first; x0 < w; x0 += VW) {
            vmask m = mask_first(w - x0 < VW ? w - x0 : VW);
            V_STOREM(rows + (size_t)ch * pw + 1 + x0, m,
                     V_GATHERM(src + (size_t)x0 * c + ch, step, m));
        }
}

/* planar_row of x' = tf(src) for the first pixels of a row of 16 channels,
 * in one read of src: whole blocks of 16 pixels, through an in-register
 * transpose; keep gets the same pixels of keep_tf(src) (of x' when keep_tf is
 * NULL), pixel-major. The values are apply_tf's. Returns the pixels done (0
 * where there is no in-register transpose); the caller does the rest. */
static TARGET int FN(planar_tf_row)(float *rows, float *keep, const float *src, int w, int c,
                                    size_t pw, const ae_input_tf *tf, const ae_input_tf *keep_tf)
{
    int first = 0;
#ifdef V_TRANSPOSE16
    if (c != 16)
        return 0;
    const vec slope = V_SET1(tf->slope), sc = V_LOAD(tf->scale), sh = V_LOAD(tf->shift);
    const vec kslope = V_SET1(keep_tf ? keep_tf->slope : 0.0f);
    const vec ksc = keep_tf ? V_LOAD(keep_tf->scale) : sc;
    const vec ksh = keep_tf ? V_LOAD(keep_tf->shift) : sh;
    for (; first + 16 <= w; first += 16) {
        vec t[16];
        for (int p = 0; p < 16; p++) {
            const size_t at = (size_t)(first + p) * 16;
            const vec v = V_LOAD(src + at);
            t[p] = V_ADD(V_MUL(FN(leaky)(v, slope), sc), sh);
            if (keep)
                V_STORE(keep + at, keep_tf ? V_ADD(V_MUL(FN(leaky)(v, kslope), ksc), ksh) : t[p]);
        }
        V_TRANSPOSE16(rows + 1 + first, pw, t);
    }
#else
    (void)rows, (void)keep, (void)src, (void)w, (void)c, (void)pw, (void)tf, (void)keep_tf;
#endif
    return first;
}

/* db[ch] = (or +=, with add) the sum over pixels of dy, as the portable loop
 * takes it (scratch.c): four chains by pixel offset mod 4, (a0 + a1) +
 * (a2 + a3), in float. */
static TARGET ALWAYS_INLINE void FN(bias_sum)(float *db, const float *dy, size_t pixels, int c,
                                              const int add)
{
    if (4 * c <= VW) {
        /* Few channels (the output layer's): the four chains side by side in
         * one vector, lane j c + ch chain j's channel ch, so four pixels are
         * one load (four masked loads of c lanes were slower than the adds).
         * The masked tail adds +0.0 to the chains it does not reach, which
         * leaves them as they are (a chain that starts at +0.0 is never -0.0). */
        vec acc = V_ZERO();
        const vmask four = mask_first(4 * c);
        size_t p = 0;
        for (; p + 4 <= pixels; p += 4)
            acc = V_ADD(acc, V_LOADM(dy + p * c, four));
        acc = V_ADD(acc, V_LOADM(dy + p * c, mask_first((int)(pixels - p) * c)));
        float a[VW];
        V_STORE(a, acc);
        for (int ch = 0; ch < c; ch++) {
            const float sum = (a[ch] + a[c + ch]) + (a[2 * c + ch] + a[3 * c + ch]);
            db[ch] = add ? db[ch] + sum : sum;
        }
        return;
    }
    for (int c0 = 0; c0 < c; c0 += VW) {
        vmask m = mask_first(c - c0 < VW ? c - c0 : VW);
        vec a0 = V_ZERO(), a1 = V_ZERO(), a2 = V_ZERO(), a3 = V_ZERO();
        const float *d = dy + c0;
        size_t p = 0;
        for (; p + 4 <= pixels; p += 4) {
            a0 = V_ADD(a0, V_LOADM(d + p * c, m));
            a1 = V_ADD(a1, V_LOADM(d + (p + 1) * c, m));
            a2 = V_ADD(a2, V_LOADM(d + (p + 2) * c, m));
            a3 = V_ADD(a3, V_LOADM(d + (p + 3) * c, m));
        }
        if (p < pixels)
            a0 = V_ADD(a0, V_LOADM(d + p * c, m));
        if (p + 1 < pixels)
            a1 = V_ADD(a1, V_LOADM(d + (p + 1) * c, m));
        if (p + 2 < pixels)
            a2 = V_ADD(a2, V_LOADM(d + (p + 2) * c, m));
        vec sum = V_ADD(V_ADD(a0, a1), V_ADD(a2, a3));
        V_STOREM(db + c0, m, add ? V_ADD(V_LOADM(db + c0, m), sum) : sum);
    }
}

static TARGET void FN(bias_grad)(float *db, const float *dy, size_t pixels, int c)
{
    FN(bias_sum)(db, dy, pixels, c, 0);
}

static TARGET void FN(bias_grad_add)(float *db, const float *dy, size_t pixels, int c)
{
    FN(bias_sum)(db, dy, pixels, c, 1);
}

/* ---- Dense forward (dense.c) ----
 * R images x two vectors of outputs in registers, over inputs [k0, k1):
 * acc = (k0 == 0 ? b : y), then acc = x[i][k] w[k][o] + acc (one FMA) for k
 * in order. R = 8 or 1 and masked output tails do the same per-lane FMAs,
 * so an image gets the same bits in any block. */
static TARGET ALWAYS_INLINE void FN(dense_block)(const int R, float *y, const float *x,
                                                 const float *w, const float *b, int i0, int o0,
                                                 int k0, int k1, int in, int out)
{
    const int left = out - o0;
    const vmask m0 = mask_first(left < VW ? left : VW);
    const vmask m1 = mask_first(left - VW < VW ? (left - VW > 0 ? left - VW : 0) : VW);
    vec acc[8][2];
    UNROLL
    for (int r = 0; r < R; r++) {
        const float *from = k0 == 0 ? b + o0 : y + (size_t)(i0 + r) * out + o0;
        acc[r][0] = V_LOADM(from, m0);
        acc[r][1] = V_LOADM(from + VW, m1);
    }
    for (int k = k0; k < k1; k++) {
        const float *wk = w + (size_t)k * out + o0;
        const vec w0 = V_LOADM(wk, m0), w1 = V_LOADM(wk + VW, m1);
        UNROLL
        for (int r = 0; r < R; r++) {
            const vec xv = V_SET1(x[(size_t)(i0 + r) * in + k]);
            acc[r][0] = V_FMA(xv, w0, acc[r][0]);
            acc[r][1] = V_FMA(xv, w1, acc[r][1]);
        }
    }
    UNROLL
    for (int r = 0; r < R; r++) {
        float *to = y + (size_t)(i0 + r) * out + o0;
        V_STOREM(to, m0, acc[r][0]);
        V_STOREM(to + VW, m1, acc[r][1]);
    }
}

/* Outputs [o_begin, o_end) of n images (o_begin a multiple of 2 VW, o_end
 * out or one), in chunks of 1024 inputs so that a chunk of the weights stays
 * in cache for every block of images. */
static TARGET void FN(dense_forward)(float *y, const float *x, const float *w, const float *b,
                                     int n, int in, int out, int o_begin, int o_end)
{
    enum { K_CHUNK = 1024 };
    const int full_i = n - n % 8;
    for (int k0 = 0; k0 < in; k0 += K_CHUNK) {
        const int k1 = in - k0 < K_CHUNK ? in : k0 + K_CHUNK;
        for (int o0 = o_begin; o0 < o_end; o0 += 2 * VW) {
            for (int i0 = 0; i0 < full_i; i0 += 8)
                FN(dense_block)(8, y, x, w, b, i0, o0, k0, k1, in, out);
            for (int i = full_i; i < n; i++)
                FN(dense_block)(1, y, x, w, b, i, o0, k0, k1, in, out);
        }
    }
}

/* y = 1 / (1 + exp(-x)) with exp of -|x| only (no overflow): exp(r) for
 * r = -|x| = n ln2 + f, |f| <= ln2 / 2, by Cephes' expf polynomial (about
 * 2 ulp), scaled by 2^n. */
static TARGET void FN(sigmoid)(float *y, const float *x, size_t count)
{
    const vec one = V_SET1(1.0f), log2e = V_SET1(1.44269504088896341f);
    const vec c1 = V_SET1(0.693359375f), c2 = V_SET1(-2.12194440e-4f), lo = V_SET1(-88.0f);
    const vec p0 = V_SET1(1.9875691500e-4f), p1 = V_SET1(1.3981999507e-3f),
              p2 = V_SET1(8.3334519073e-3f), p3 = V_SET1(4.1665795894e-2f),
              p4 = V_SET1(1.6666665459e-1f), p5 = V_SET1(5.0000001201e-1f);
    for (size_t i = 0; i < count; i += VW) {
        vmask m = mask_first(count - i < VW ? (int)(count - i) : VW);
        vec v = V_LOADM(x + i, m);
        vec r = V_MAX(lo, V_NEG_ABS(v)); /* NaN stays NaN */
        vec n = V_ROUND(V_MUL(r, log2e));
        vec f = V_SUB(V_SUB(r, V_MUL(n, c1)), V_MUL(n, c2));
        vec p = V_FMA(V_FMA(V_FMA(V_FMA(V_FMA(p0, f, p1), f, p2), f, p3), f, p4), f, p5);
        vec e = V_SCALE2(V_ADD(V_FMA(V_MUL(p, f), f, f), one), n);
        /* x >= 0: 1 / (1 + e); x < 0: e / (1 + e) (one division: they are slow) */
        V_STOREM(y + i, m, V_DIV(V_SELECT_NONNEG(v, one, e), V_ADD(one, e)));
    }
}

/* ae_loss_lanes_add (loss.c) with its whole runs of AE_LOSS_LANES elements in
 * vectors: each lane takes the same operations in the same order, so the
 * same bits; the pieces before and after go to loss.c's loop. */
static TARGET void FN(loss_lanes_add)(double *lane, size_t at, const float *y, const float *x,
                                      size_t d, float *dy, float scale)
{
    enum { LANES = AE_LOSS_LANES, ACC = 2 * AE_LOSS_LANES / VW }; /* VW / 2 lanes a vecd */
    size_t j = (LANES - at % LANES) % LANES; /* up to the next lane 0 */
    j = j < d ? j : d;
    ae_loss_lanes_add(lane, at, y, x, j, dy, scale);
    vecd acc[ACC];
    for (int k = 0; k < ACC; k++)
        acc[k] = VD_LOAD(lane + k * (VW / 2));
    const vec vscale = V_SET1(scale), one = V_SET1(1.0f);
    for (; j + LANES <= d; j += LANES)
        UNROLL
        for (int k = 0; k < LANES; k += VW) {
            const vec yv = V_LOAD(y + j + k), xv = V_LOAD(x + j + k);
            const vecd lo = VD_SUB(VD_LO(yv), VD_LO(xv)), hi = VD_SUB(VD_HI(yv), VD_HI(xv));
            acc[2 * k / VW] = VD_ADD(acc[2 * k / VW], VD_MUL(lo, lo));
            acc[2 * k / VW + 1] = VD_ADD(acc[2 * k / VW + 1], VD_MUL(hi, hi));
            if (dy) /* scale (y - x) y (1 - y): a sigmoid's backward */
                V_STORE(dy + j + k,
                        V_MUL(V_MUL(V_MUL(vscale, V_SUB(yv, xv)), yv), V_SUB(one, yv)));
        }
    for (int k = 0; k < ACC; k++)
        VD_STORE(lane + k * (VW / 2), acc[k]);
    ae_loss_lanes_add(lane, at + j, y + j, x + j, d - j, dy ? dy + j : NULL, scale);
}

/* The ops table; direct_avx512.c makes a second one with the AMX products. */
#define DIRECT_TABLE(TABLE, LABEL, BIG_TO_SMALL, SMALL_TO_BIG, WEIGHT_GRAD)                     \
    const ae_direct_ops TABLE = {                                                               \
        .name = LABEL,                                                                          \
        .big_to_small = BIG_TO_SMALL,                                                           \
        .small_to_big = SMALL_TO_BIG,                                                           \
        .weight_grad = WEIGHT_GRAD,                                                             \
        .small_to_big_narrow = FN(small_to_big_narrow),                                         \
        .bn_sums = FN(bn_sums),                                                                 \
        .bn_grad_sums = FN(bn_grad_sums),                                                       \
        .bn_grad_apply = FN(bn_grad_apply),                                                     \
        .apply_tf = FN(apply_tf),                                                               \
        .bias_grad = FN(bias_grad),                                                             \
        .bias_grad_add = FN(bias_grad_add),                                                     \
        .dense_forward = FN(dense_forward),                                                     \
        .planar_row = FN(planar_row),                                                           \
        .planar_tf_row = FN(planar_tf_row),                                                     \
        .sigmoid = FN(sigmoid),                                                                 \
        .loss_lanes_add = FN(loss_lanes_add),                                                   \
    };
DIRECT_TABLE(FN(ae_direct), FN_NAME, FN(big_to_small), FN(small_to_big), FN(weight_grad))
