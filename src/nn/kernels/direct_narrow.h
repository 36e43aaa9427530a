/* The transposed convolution to at most 4 channels (the output layer's
 * forward, small_to_big_narrow of direct.h), vectorized along pixels. Part
 * of direct_body.h (included once per ISA, with its macros). */

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
                    for (int v = 0; v < XV; v++) {
                        xv[v] = v == XV - 1 ? V_LOADM(row + 2 - kw + v * VW, last)
                                            : V_LOAD(row + 2 - kw + v * VW);
                        V_IN_REGISTER(xv[v]); /* for CB FMAs (0.80 -> 0.53 ms an image, Zen 4) */
                    }
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
/* The widest blocks: 4 vectors of pixels, or NARROW_WIDE for 3 and 4
 * channels where the ISA sets it (AVX2: 3; with 16 registers, 3 x 4
 * accumulators, 4 input vectors and a broadcast spilled to the stack). A
 * lane's sums are the same either way (S = 1 from 8 accumulators on). */
#ifndef NARROW_WIDE
#define NARROW_WIDE 4
#endif
NARROW_VARIANT(1, 4)
NARROW_VARIANT(1, 2)
NARROW_VARIANT(1, 1)
NARROW_VARIANT(2, 4)
NARROW_VARIANT(2, 2)
NARROW_VARIANT(2, 1)
NARROW_VARIANT(3, NARROW_WIDE)
NARROW_VARIANT(3, 2)
NARROW_VARIANT(3, 1)
NARROW_VARIANT(4, NARROW_WIDE)
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
                    V_IN_REGISTER(xv[v]); /* for up to 3 rows' FMAs */
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
    static const FN(narrow_fn) wide[4] = {FN(narrow_1_4), FN(narrow_2_4),
                                          FN(narrow_3_NARROW_WIDE), FN(narrow_4_NARROW_WIDE)};
    static const FN(narrow_fn) two[4] = {FN(narrow_1_2), FN(narrow_2_2), FN(narrow_3_2),
                                         FN(narrow_4_2)};
    static const FN(narrow_fn) one[4] = {FN(narrow_1_1), FN(narrow_2_1), FN(narrow_3_1),
                                         FN(narrow_4_1)};
    const int cb = g->big_c, pw = g->small_w + 2, width = g->big_w;
    const int wide_px = (cb >= 3 ? NARROW_WIDE : 4) * VW;
    float out[4 * 4 * VW];
    if (cb == 1) {
        FN(small_to_big_narrow_one)(pad, row0, g, cs, w, init, big, y0, y1);
        return;
    }
    for (int y = y0; y < y1; y++) {
        for (int x0 = 0; x0 < width;) {
            int left = width - x0;
            int n = left >= wide_px ? wide_px : left >= 2 * VW ? 2 * VW : left < VW ? left : VW;
            /* the kernel reads padded rows y .. y + 2: pass the band as if it began at y */
            const float *band = pad + (size_t)(y - row0) * cs * pw;
            if (n == wide_px)
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
