/* The convolution products of direct.h (big_to_small, small_to_big,
 * weight_grad) over vectors of channels: register blocks, the few-channel
 * and pairs variants, tap chunks. Part of direct_body.h (included once per
 * ISA, with its macros).
 * Register blocking: a block keeps R pixels x V vectors of output channels
 * (or 3 taps x CB channels x V vectors for the weight gradient) in registers;
 * every loop bound inside a kernel is a compile-time constant after inlining,
 * so the accumulators never touch memory. */

/* Vectors of output channels per block: 4 where the ISA defines RMAX4. */
#ifdef RMAX4
#define BLOCK_VMAX 4
#define BLOCK_RMAX4 RMAX4
#else
#define BLOCK_VMAX 2
#define BLOCK_RMAX4 1
#endif

/* How a register block (below) reads its arrays src, wt and dst: ntaps
 * taps of k channels, a tap's pixels rstride floats apart (a tile's rows
 * srow apart) and its weights a channel ldw floats apart; outputs dstride
 * floats apart (a tile's rows drow apart), the last vector masked by last;
 * init and resume as below. The arrays themselves stay arguments: taken
 * from a struct, clang 14 no longer sees that they miss the accumulators,
 * and keeps those in memory. */
typedef struct {
    int ntaps, rstride;
    size_t srow;
    int k, ldw, dstride;
    size_t drow;
    vmask last;
    const float *init;
    int resume;
    /* COLS = 0 (flat tiles): pixel r at src[t] + flat_src[r] and dst + flat_dst[r] */
    const size_t *flat_src, *flat_dst;
} FN(block_layout);

/* acc[r][v] = sum over ntaps taps, k channels: src[t][pos(r) + c] wt[t][c ldw + v VW],
 * pos(r) = (r / COLS) srow + (r % COLS) rstride: R pixels as R / COLS rows of
 * COLS (one row when COLS = R; a tile of several rows when rows are short;
 * COLS = 0: anywhere, pos(r) = lay->flat_src[r], and flat_dst for dst);
 * then dst[(r / COLS) drow + (r % COLS) dstride + v VW] = acc + init (channels
 * past the mask are not written). Each output sums taps, then channels, in
 * the same order whatever tile it is in: the tile shape never changes bits.
 * RS > 0 is rstride as a compile-time constant (the caller's rstride equals it).
 * resume: acc starts from dst instead of 0 (and init should be NULL until the
 * last taps): a sum split over calls at tap boundaries adds its terms in the
 * same order, so it has the same bits as one call. */
static TARGET ALWAYS_INLINE void FN(block)(const int R, const int V, const int COLS,
                                           const int RS, const float *const *src,
                                           const float *const *wt, float *dst,
                                           const FN(block_layout) *lay)
{
    /* the layout in locals, as arguments were: the loops below do not reload it */
    const int ntaps = lay->ntaps, k = lay->k, ldw = lay->ldw, dstride = lay->dstride;
    int rstride = lay->rstride;
    const size_t srow = lay->srow, drow = lay->drow;
    const vmask last = lay->last;
    const float *init = lay->init;
    const int resume = lay->resume;
    vec acc[RMAX1][BLOCK_VMAX];
    size_t flat_src[RMAX1], flat_dst[RMAX1];
    if (RS > 0)
        rstride = RS;
    UNROLL
    for (int r = 0; r < R; r++) {
        flat_src[r] = COLS ? 0 : lay->flat_src[r];
        flat_dst[r] = COLS ? 0 : lay->flat_dst[r];
    }
    /* Offsets as expressions, not an array filled for every COLS: for tiles
     * and rows they stay constants after unrolling (an array of RMAX1 of
     * them would live on the stack and be reloaded for every channel). */
#define BLOCK_SRC_AT(r)                                                                         \
    (COLS ? (size_t)((r) / COLS) * srow + (size_t)((r) % COLS) * rstride : flat_src[r])
#define BLOCK_DST_AT(r)                                                                         \
    (COLS ? (size_t)((r) / COLS) * drow + (size_t)((r) % COLS) * dstride : flat_dst[r])
    UNROLL
    for (int r = 0; r < R; r++) {
        const float *d = dst + BLOCK_DST_AT(r);
        UNROLL
        for (int v = 0; v < V; v++)
            acc[r][v] = !resume          ? V_ZERO()
                        : v == V - 1 ? V_LOADM(d + v * VW, last)
                                     : V_LOAD(d + v * VW);
    }
    for (int t = 0; t < ntaps; t++) {
        const float *s = src[t], *w = wt[t];
#ifdef BLOCK_UNROLL_CHANNELS
        UNROLL_2
#endif
        for (int c = 0; c < k; c++, w += ldw) {
            vec wv[BLOCK_VMAX];
            UNROLL
            for (int v = 0; v < V; v++)
                wv[v] = v == V - 1 ? V_LOADM(w + v * VW, last) : V_LOAD(w + v * VW);
            UNROLL
            for (int r = 0; r < R; r++) {
                vec b = V_SET1(s[BLOCK_SRC_AT(r) + c]);
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
        float *d = dst + BLOCK_DST_AT(r);
        UNROLL
        for (int v = 0; v < V; v++) {
            if (v == V - 1)
                V_STOREM(d + v * VW, last, V_ADD(acc[r][v], bias[v]));
            else
                V_STORE(d + v * VW, V_ADD(acc[r][v], bias[v]));
        }
    }
#undef BLOCK_SRC_AT
#undef BLOCK_DST_AT
}

typedef void (*FN(block_fn))(const float *const *, const float *const *, float *,
                             const FN(block_layout) *);

#define BLOCK_VARIANT_RS(NAME, V, R, COLS, RS)                                                  \
    static TARGET void FN(NAME)(const float *const *src, const float *const *wt, float *dst,    \
                                const FN(block_layout) *lay)                                    \
    {                                                                                           \
        FN(block)(R, V, COLS, RS, src, wt, dst, lay);                                           \
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

/* Flat tiles (FLAT_2 set by the ISA file): rows that are not whole
 * FLAT_2-pixel blocks would end in 4-pixel blocks, whose 8 accumulator
 * chains (two vectors of channels) are too few to hide the FMA latency.
 * Instead, pixels go FLAT_2 at a time, in order across the rows, wherever a
 * row ends; the pixels' offsets are in the layout (COLS = 0). Short rows (up
 * to 4 FLAT_2 pixels) go all in flat tiles, a call taking all the rows it
 * has; long ones in their widest blocks, and the n % FLAT_2 pixels left at
 * their ends in flat tiles, FLAT_TAIL_ROWS rows a call (3: a tail of 2 or 4
 * pixels makes whole tiles). */
#ifdef FLAT_2
BLOCK_VARIANT(2, FLAT_2, 0)
BLOCK_VARIANT(2, 4, 0)
BLOCK_VARIANT(2, 1, 0)

/* Whether rows of n pixels go in flat tiles of two vectors: all of them, or their tails. */
static inline int flat_rows(int n)
{
    return n % FLAT_2 != 0 && n <= 4 * FLAT_2 && !ae_direct_plain_blocks();
}
static inline int flat_tails(int n) /* the rest of the row: whole widest blocks */
{
    return n % FLAT_2 != 0 && n > 4 * FLAT_2 && RMAX2 == FLAT_2 && !ae_direct_plain_blocks();
}
enum { FLAT_TAIL_ROWS = 3 };

static TARGET void FN(blocks_flat)(int n, int nrows, const float *const *src,
                                   const float *const *wt, float *dst, const FN(block_layout) *lay)
{
    const int total = n * nrows;
    size_t src_at[FLAT_2], dst_at[FLAT_2];
    FN(block_layout) flat = *lay;
    flat.flat_src = src_at;
    flat.flat_dst = dst_at;
    size_t row_src = 0, row_dst = 0; /* the offsets of the next pixel's row */
    int col = 0;                      /* and its column */
    for (int p = 0, r; p < total; p += r) {
        const int left = total - p; /* 8 left: 4 + 4 rather than 6 + 1 + 1 */
        r = left >= FLAT_2 && left != FLAT_2 + 2 ? FLAT_2 : left >= 4 ? 4 : 1;
        for (int i = 0; i < r; i++) {
            src_at[i] = row_src + (size_t)col * lay->rstride;
            dst_at[i] = row_dst + (size_t)col * lay->dstride;
            if (++col == n) {
                col = 0;
                row_src += lay->srow;
                row_dst += lay->drow;
            }
        }
        if (r == FLAT_2)
            FN(block_2_FLAT_2_0)(src, wt, dst, &flat);
        else if (r == 4)
            FN(block_2_4_0)(src, wt, dst, &flat);
        else
            FN(block_2_1_0)(src, wt, dst, &flat);
    }
}
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

/* Rows per call of blocks for rows of n pixels and V vectors: a multi-row
 * tile's, every row for flat tiles (a call takes as many as it has),
 * FLAT_TAIL_ROWS for flat tails, else 1. */
static TARGET int FN(rows_per_call)(int V, int n)
{
#ifdef FLAT_2
    if (V == 2 && flat_rows(n))
        return 1 << 20; /* more rows than an image has */
    if (V == 2 && flat_tails(n))
        return FLAT_TAIL_ROWS;
#endif
    int rows;
    return FN(row_tile)(V, n, &rows) ? rows : 1;
}

/* nrows rows of n pixels from src0[t] and dst0 (the first row's first
 * pixels; rows lay->srow and lay->drow floats apart). Flat tiles where the
 * ISA has them (above); short rows in multi-row tiles while enough rows
 * are left; otherwise a row goes in blocks of the widest variant, then of
 * 4, then one by one. */
static TARGET void FN(blocks)(int V, int n, int nrows, const float *const *src0,
                              const float *const *wt, float *dst0, const FN(block_layout) *lay)
{
    const int rmax = V == 1 ? RMAX1 : V == 2 ? RMAX2 : BLOCK_RMAX4;
    const int ntaps = lay->ntaps, rstride = lay->rstride, dstride = lay->dstride;
    const size_t srow = lay->srow, drow = lay->drow;
    const float *src[9];
    int row_px = n; /* each row's pixels in the row blocks below */
#ifdef FLAT_2
    if (V == 2 && flat_rows(n)) {
        FN(blocks_flat)(n, nrows, src0, wt, dst0, lay);
        return;
    }
    if (V == 2 && flat_tails(n)) {
        const int tail = n % FLAT_2;
        row_px = n - tail;
        for (int t = 0; t < ntaps; t++)
            src[t] = src0[t] + (size_t)row_px * rstride;
        FN(blocks_flat)(tail, nrows, src, wt, dst0 + (size_t)row_px * dstride, lay);
    }
#endif
    int tile_rows;
    FN(block_fn) tile = FN(row_tile)(V, n, &tile_rows);
    int row = 0;
    if (tile)
        for (; row + tile_rows <= nrows; row += tile_rows) {
            for (int t = 0; t < ntaps; t++)
                src[t] = src0[t] + (size_t)row * srow;
            tile(src, wt, dst0 + (size_t)row * drow, lay);
        }
    /* the blocks below are one row each (COLS = R): they never read srow or drow */
    for (; row < nrows; row++) {
        for (int t = 0; t < ntaps; t++)
            src[t] = src0[t] + (size_t)row * srow;
        float *dst = dst0 + (size_t)row * drow;
        int done = 0;
        while (done < row_px) {
            const int left = row_px - done;
            int r = left >= rmax ? rmax : left >= 4 ? 4 : 1;
            /* A widest block that would leave 1-3 pixels (a row of 8 in 6-pixel
             * blocks: 6 + 1 + 1) ends the row in 4-pixel blocks instead: a
             * single pixel has one accumulator chain per vector, too few to
             * hide the FMA latency, and one load per V FMAs. */
            if (r == rmax && left != rmax && left < rmax + 4 && left >= 8)
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
            f(src, wt, dst, lay);
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

#ifdef ONE_CHANNEL_R
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
#endif

static TARGET void FN(big_to_small)(const float *pad, int row0, const ae_conv_geom *g, int cs,
                                    const float *w, const float *init, float *small,
                                    int small_row0, int oy0, int oy1)
{
    const int cb = g->big_c, s = g->stride, pw = g->big_w + 2;
#ifdef ONE_CHANNEL_R
    /* clang leaves few_channels' conditional taps in memory: blocks are faster there */
    if ((cb == 1 || cb == 3) && (s == 1 || s == 2) && !AE_DIRECT_CLANG) {
        FN(big_to_small_few_channels)(pad, row0, g, cs, w, init, small, small_row0, oy0, oy1);
        return;
    }
#endif
    /* rows per pass: a multi-row tile's when small rows are short */
    int step = 1;
    for (int o0 = 0, v; o0 < cs; o0 += v * VW) {
        vmask unused;
        v = block_vectors(cs - o0, g->small_w, &unused);
        const int rows = FN(rows_per_call)(v, g->small_w);
        step = rows > step ? rows : step;
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
                const FN(block_layout) lay = {
                    .ntaps = n, .rstride = s * cb, .srow = (size_t)s * pw * cb, .k = cb,
                    .ldw = cs, .dstride = cs, .drow = (size_t)g->small_w * cs, .last = last,
                    .init = init && t0 + n == 9 ? init + o0 : NULL, .resume = t0 > 0};
                FN(blocks)(v, g->small_w, nrows, src + t0, wt + t0,
                           small + (size_t)(oy - small_row0) * g->small_w * cs + o0, &lay);
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
            const int n = (g->big_w - phase + s - 1) / s;
            v = block_vectors(cb - c0, n, &unused);
            const int rows = FN(rows_per_call)(v, n);
            step = rows > step ? rows : step;
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
                        const FN(block_layout) lay = {
                            .ntaps = m, .rstride = cs, .srow = (size_t)pw * cs, .k = cs,
                            .ldw = cb, .dstride = s * cb, .drow = (size_t)s * g->big_w * cb,
                            .last = last, .init = init && t0 + m == ntaps ? init + c0 : NULL,
                            .resume = t0 > 0};
                        FN(blocks)(v, n, nrows, src + t0, w + t0, dst, &lay);
                    }
                }
            }
        }
}

/* How a weight-gradient block (wgrad, wgrad_taps) reads its arrays: rows
 * x cols pixels of big's window (pixels big_px floats apart, rows big_row)
 * and of small (small_px, small_row); the taps' sums go to dw, taps
 * tap_stride floats apart, channels ldw, the last vector masked by last.
 * The arrays stay arguments, as for block. */
typedef struct {
    size_t big_row;
    int big_px;
    int cstep;   /* wgrad: floats between a kernel row's taps in big */
    size_t prow; /* wgrad_taps: floats between the kernel's rows in big */
    size_t small_row;
    int small_px, rows, cols;
    size_t tap_stride;
    int ldw;
    vmask last;
} FN(wgrad_layout);

/* dw[t][cb][v] += sum over rows x pixels of big[t cstep + cb] small[v], for
 * the 3 taps of one kernel row (t = kw: cstep floats apart in big). */
static TARGET ALWAYS_INLINE void FN(wgrad)(const int CB, const int V, const float *big,
                                           const float *small, float *dw,
                                           const FN(wgrad_layout) *lay)
{
    /* the layout in locals, as arguments were: the loops below do not reload it */
    const size_t big_row = lay->big_row, small_row = lay->small_row, tap_stride = lay->tap_stride;
    const int big_px = lay->big_px, cstep = lay->cstep, small_px = lay->small_px;
    const int rows = lay->rows, cols = lay->cols, ldw = lay->ldw;
    const vmask last = lay->last;
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
    static TARGET void FN(wgrad_##V##_##CB)(const float *big, const float *small, float *dw,     \
                                            const FN(wgrad_layout) *lay)                        \
    {                                                                                           \
        FN(wgrad)(CB, V, big, small, dw, lay);                                                  \
    }
WGRAD_VARIANT(1, CBMAX1)
WGRAD_VARIANT(1, 3)
WGRAD_VARIANT(1, 1)
WGRAD_VARIANT(2, CBMAX2)
WGRAD_VARIANT(2, 3)
WGRAD_VARIANT(2, 1)

typedef void (*FN(wgrad_fn))(const float *, const float *, float *, const FN(wgrad_layout) *);

/* wgrad for CB = 1 or 3 big channels (a gray or RGB image, or the output
 * layer's gradient) and one vector of small channels: the nine taps at once
 * (9 CB chains instead of 3 CB per kernel row, and each small vector read
 * once instead of three times); each tap's sum runs over the same pixels in
 * the same order as wgrad's. */
static TARGET ALWAYS_INLINE void FN(wgrad_taps)(const int CB, const float *big,
                                                const float *small, float *dw,
                                                const FN(wgrad_layout) *lay)
{
    /* the layout in locals, as arguments were: the loops below do not reload it */
    const size_t big_row = lay->big_row, small_row = lay->small_row, tap_stride = lay->tap_stride;
    const size_t prow = lay->prow;
    const int big_px = lay->big_px, small_px = lay->small_px;
    const int rows = lay->rows, cols = lay->cols, ldw = lay->ldw;
    const vmask last = lay->last;
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
    static TARGET void FN(wgrad_taps_##CB)(const float *big, const float *small, float *dw,      \
                                           const FN(wgrad_layout) *lay)                         \
    {                                                                                           \
        FN(wgrad_taps)(CB, big, small, dw, lay);                                                \
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
            for (int o0 = 0; o0 < cs; o0 += VW) {
                const FN(wgrad_layout) lay = {
                    .big_row = (size_t)s * pw * cb, .big_px = s * cb, .prow = (size_t)pw * cb,
                    .small_row = (size_t)g->small_w * cs, .small_px = cs, .rows = rows,
                    .cols = g->small_w, .tap_stride = tap_stride, .ldw = cs,
                    .last = mask_first(cs - o0)};
                (cb == 1 ? FN(wgrad_taps_1) : FN(wgrad_taps_3))(
                    window, small + (size_t)(oy0 - srow0) * g->small_w * cs + o0, dw + o0, &lay);
            }
            continue;
        }
        for (int o0 = 0; o0 < cs; o0 += 2 * VW) {
            vmask last;
            int v = group_vectors(cs - o0, &last);
            const int cbmax = v == 1 ? CBMAX1 : CBMAX2;
            const float *small_o0 = small + (size_t)(oy0 - srow0) * g->small_w * cs + o0;
            const FN(wgrad_layout) lay = {
                .big_row = (size_t)s * pw * cb, .big_px = s * cb, .cstep = cb,
                .small_row = (size_t)g->small_w * cs, .small_px = cs, .rows = rows,
                .cols = g->small_w, .tap_stride = tap_stride, .ldw = cs, .last = last};
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
                    f(brow + c0, small_o0,
                      dw + (size_t)kh * 3 * tap_stride + (size_t)c0 * cs + o0, &lay);
                    c0 += n;
                }
            }
        }
    }
}
