/* The three products of direct.h (big_to_small, small_to_big, weight_grad)
 * in bfloat16 on AMX tiles: the opt-in bf16 mode. One tile product
 * C[16][16] += A[16][k] B[k][16], k <= 32, sums in float32 in the tile. For
 * the first two, A is 16 pixels (its rows, read straight from a bfloat16
 * copy of the padded input: a row stride of one pixel) by up to 32 input
 * channels, B one tap of the kernel, packed in pairs of input channels as
 * the tiles want them, and C 16 pixels by 16 output channels; the weight
 * gradient sums over pixels instead (below).
 *
 * Each call converts the input rows its output rows read to bfloat16 once,
 * and the kernel once, into buffers of its thread (fixed sizes: a layer or
 * a row too large for them takes the avx512 kernels, as do channel counts
 * that are not multiples of 16 and rows of under 16 pixels). A row's last
 * block of 16 pixels overlaps the one before it when the row is not a
 * multiple of 16: those pixels are made twice, with the same bits. */
#include "nn/kernels/direct.h"

#if defined(__x86_64__) && defined(__linux__)
#include "nn/kernels/direct_bf16_rows.h"

#include <asm/prctl.h> /* ARCH_REQ_XCOMP_PERM */
#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512bf16,amx-tile,amx-bf16")))

/* The tiles' data, as an extended state component (arch_prctl asks for it) */
enum { XFEATURE_XTILEDATA = 18 };

enum {
    TILE_PX = 16,                /* pixels per tile (its rows) */
    TILE_CH = 16,                /* output channels per tile */
    IN_CAP = 256 * 1024,         /* bfloat16 values of converted input rows */
    W_CAP = 9 * 128 * 128,       /* bfloat16 values of a packed kernel */
    MAX_GROUPS = 128 / TILE_CH,  /* output channels up to 128 */
};

static _Thread_local uint16_t in_bf16[IN_CAP] __attribute__((aligned(64)));
static _Thread_local uint16_t w_bf16[W_CAP] __attribute__((aligned(64)));

size_t ae_amx_thread_bytes(void) { return sizeof in_bf16 + sizeof w_bf16; }

int ae_amx_usable(void)
{
    /* asked once (threads that race here ask twice, harmlessly); the
     * permission holds for every thread of the process */
    static _Atomic int usable = -1;
    if (usable >= 0)
        return usable;
    unsigned a, b, c, d;
    int ok = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 22 & 1) /* amx-bf16 */ &&
             (d >> 24 & 1) /* amx-tile */ && (b >> 16 & 1) /* avx512f */ &&
             (b >> 30 & 1) /* avx512bw */ && (b >> 31 & 1) /* avx512vl */;
    ok = ok && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 5 & 1); /* avx512-bf16 */
    /* Linux hands out the tiles' state only on request (ARCH_REQ_XCOMP_PERM, XTILEDATA) */
    ok = ok && syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
    usable = ok;
    return usable;
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* Tiles 0-3: C for 2 pixel blocks x 2 channel groups; 4-5: A; 6-7: B. */
static TARGET void configure(int kc)
{
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 4; t++)
        cfg.rows[t] = TILE_PX, cfg.colsb[t] = TILE_CH * sizeof(float);
    for (int t = 4; t < 6; t++)
        cfg.rows[t] = TILE_PX, cfg.colsb[t] = (uint16_t)(kc * sizeof(uint16_t));
    for (int t = 6; t < 8; t++)
        cfg.rows[t] = (uint8_t)(kc / 2), cfg.colsb[t] = TILE_CH * 2 * sizeof(uint16_t);
    /* gcc's _tile_loadconfig names 8 of the 64 bytes it reads, so the
     * compiler may drop the stores to the rest: name them all */
    __asm__ volatile("ldtilecfg %0" ::"m"(cfg));
}

/* gcc's _tile_loadd names no memory it reads: a barrier keeps the stores
 * that made a tile's input (the packed kernel, the bias; the converted rows
 * have bf16_convert_rows's) before it. */
#define STORES_DONE() __asm__ volatile("" ::: "memory")

/* Input channels per tile product: 32, or 16 when k is an odd multiple of 16. */
static int chunk(int k) { return k % 32 == 0 ? 32 : k % 16 == 0 ? 16 : 0; }

/* Nine k x n matrices m[tap][k][n] (a layer's kernel, as the avx512 kernels
 * read it) into B tiles: for tap t, chunk q of kc rows, channel group j, tile
 * row r holds the pairs (m[t][q kc + 2r][16 j + col], m[t][q kc + 2r + 1][16 j + col]). */
static TARGET void pack_kernel(uint16_t *dst, const float *m, int k, int n, int kc)
{
    __m512i pairs;
    {
        uint16_t idx[32];
        for (int col = 0; col < 16; col++)
            idx[2 * col] = (uint16_t)col, idx[2 * col + 1] = (uint16_t)(16 + col);
        pairs = _mm512_loadu_si512(idx);
    }
    for (int t = 0; t < 9; t++)
        for (int q = 0; q < k / kc; q++)
            for (int j = 0; j < n / TILE_CH; j++)
                for (int r = 0; r < kc / 2; r++, dst += 32) {
                    const float *row = m + ((size_t)t * k + q * kc + 2 * r) * n + j * TILE_CH;
                    __m512bh both = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + n),
                                                        _mm512_loadu_ps(row));
                    _mm512_store_si512((void *)dst,
                                       _mm512_permutexvar_epi16(pairs, (__m512i)both));
                }
}

typedef struct {
    int k, kc, n;               /* input channels (summed), per product, output channels */
    const uint16_t *kernel;     /* pack_kernel's */
    const float *bias;          /* n / 16 tiles of 16 rows, each the group's init; NULL: zero */
} amx_layer;

/* dst[p dstride + o] = init[o] + sum over the ntaps taps and k channels of
 * src[a][p rstride + c] kernel[tap[a]][c][o], for the px >= 16 pixels of a
 * row (a bf16_row_fn; layer: an amx_layer). */
static TARGET void amx_row(const void *layer, const uint16_t *const *src, const int *tap,
                           int ntaps, int rstride, int px, float *dst, int dstride)
{
    const amx_layer *L = layer;
    const int groups = L->n / TILE_CH, blocks = (px + TILE_PX - 1) / TILE_PX, nq = L->k / L->kc;
    const size_t a_stride = (size_t)rstride * sizeof(uint16_t), b_floats = (size_t)L->kc * TILE_CH;
    const size_t c_stride = (size_t)dstride * sizeof(float);
    for (int j = 0; j < groups; j += 2) {
        const int two_groups = j + 1 < groups;
        for (int blk = 0; blk < blocks; blk += 2) {
            const int two_blocks = blk + 1 < blocks;
            const int p0 = blk + 1 < blocks ? blk * TILE_PX : px - TILE_PX;
            const int p1 = blk + 2 < blocks ? (blk + 1) * TILE_PX : px - TILE_PX;
            if (L->bias) {
                const float *b0 = L->bias + (size_t)j * TILE_PX * TILE_CH;
                const float *b1 = b0 + TILE_PX * TILE_CH;
                _tile_loadd(0, b0, TILE_CH * sizeof(float));
                _tile_loadd(2, b0, TILE_CH * sizeof(float));
                if (two_groups) {
                    _tile_loadd(1, b1, TILE_CH * sizeof(float));
                    _tile_loadd(3, b1, TILE_CH * sizeof(float));
                }
            } else {
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
            }
            for (int a = 0; a < ntaps; a++)
                for (int q = 0; q < nq; q++) {
                    const uint16_t *s = src[a] + q * L->kc;
                    const uint16_t *w =
                        L->kernel + (((size_t)tap[a] * nq + q) * groups + j) * b_floats;
                    _tile_loadd(4, s + (size_t)p0 * rstride, a_stride);
                    _tile_loadd(6, w, TILE_CH * 2 * sizeof(uint16_t));
                    _tile_dpbf16ps(0, 4, 6);
                    if (two_groups) {
                        _tile_loadd(7, w + b_floats, TILE_CH * 2 * sizeof(uint16_t));
                        _tile_dpbf16ps(1, 4, 7);
                    }
                    if (two_blocks) {
                        _tile_loadd(5, s + (size_t)p1 * rstride, a_stride);
                        _tile_dpbf16ps(2, 5, 6);
                        if (two_groups)
                            _tile_dpbf16ps(3, 5, 7);
                    }
                }
            float *d0 = dst + (size_t)p0 * dstride + j * TILE_CH;
            float *d1 = dst + (size_t)p1 * dstride + j * TILE_CH;
            _tile_stored(0, d0, c_stride);
            if (two_groups)
                _tile_stored(1, d0 + TILE_CH, c_stride);
            if (two_blocks) {
                _tile_stored(2, d1, c_stride);
                if (two_groups)
                    _tile_stored(3, d1 + TILE_CH, c_stride);
            }
        }
    }
}

/* The layer's kernel packed, its bias as tiles (in bias, MAX_GROUPS tiles),
 * the tiles configured; 0 when the shape does not fit the tiles or buffers. */
static TARGET int amx_setup(amx_layer *L, float *bias, const float *m, const float *init, int k,
                            int n, int px, size_t row_values)
{
    L->k = k, L->n = n, L->kc = chunk(k);
    if (!ae_amx_usable() || L->kc == 0 || n % TILE_CH != 0 || n > MAX_GROUPS * TILE_CH ||
        px < TILE_PX || 9 * (size_t)k * n > W_CAP || 3 * row_values > IN_CAP)
        return 0;
    pack_kernel(w_bf16, m, k, n, L->kc);
    L->kernel = w_bf16;
    L->bias = NULL;
    if (init) {
        for (int j = 0; j < n / TILE_CH; j++)
            for (int r = 0; r < TILE_PX; r++)
                memcpy(bias + ((size_t)j * TILE_PX + r) * TILE_CH, init + j * TILE_CH,
                       TILE_CH * sizeof(float));
        L->bias = bias;
    }
    configure(L->kc);
    STORES_DONE();
    return 1;
}

TARGET void ae_amx_big_to_small(const float *pad, int row0, const ae_conv_geom *g, int cs,
                                const float *w, const float *init, float *small, int small_row0,
                                int oy0, int oy1)
{
    const size_t row_values = (size_t)(g->big_w + 2) * g->big_c;
    amx_layer L;
    float bias[MAX_GROUPS * TILE_PX * TILE_CH];
    if (!amx_setup(&L, bias, w, init, g->big_c, cs, g->small_w, row_values)) {
        ae_direct_avx512.big_to_small(pad, row0, g, cs, w, init, small, small_row0, oy0, oy1);
        return;
    }
    const bf16_kernel k = {in_bf16, IN_CAP, amx_row, &L};
    bf16_big_to_small_rows(&k, pad, row0, g, cs, small, small_row0, oy0, oy1);
    _tile_release();
}

TARGET void ae_amx_small_to_big(const float *pad, int row0, const ae_conv_geom *g, int cs,
                                const float *wt, const float *init, float *big, int big_row0,
                                int y0, int y1)
{
    const size_t row_values = (size_t)(g->small_w + 2) * cs;
    amx_layer L;
    float bias[MAX_GROUPS * TILE_PX * TILE_CH];
    /* every phase's row must hold a tile's 16 pixels: big_w / s of them or more */
    if (!amx_setup(&L, bias, wt, init, cs, g->big_c, g->big_w / g->stride, row_values)) {
        ae_direct_avx512.small_to_big(pad, row0, g, cs, wt, init, big, big_row0, y0, y1);
        return;
    }
    const bf16_kernel k = {in_bf16, IN_CAP, amx_row, &L};
    bf16_small_to_big_rows(&k, pad, row0, g, cs, big, big_row0, y0, y1);
    _tile_release();
}

/* ---- The weight gradient ----
 * dw[tap][c][o] += sum over pixels p of big[pos(p, tap)][c] small[p][o], as
 * tile products over pixels: C[o][c] (16 x 16, transposed into dw at the end)
 * += A[o][p] B[p][c], 32 pixels a product. A is the small image transposed
 * (its channels as rows, one row of pixels each), made once for all taps; B
 * holds pairs of the pixels a tap reads, for each column offset kw (the
 * pairs start at other pixels for each), made once for all kh. A row's
 * pixels are padded with zeros to a multiple of 32. */

/* Rows [first, end) of small (rows from srow0; cs channels, w pixels) into
 * at[(r cs + o) kp + x] = small[first + r][x][o], x < kp (zero past w). */
static TARGET void transpose_rows(uint16_t *at, const float *small, int srow0, int first, int end,
                                  int w, int cs, int kp)
{
    const __m512i step = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(cs));
    for (int y = first; y < end; y++) {
        const float *row = small + (size_t)(y - srow0) * w * cs;
        for (int o = 0; o < cs; o++) {
            uint16_t *dst = at + ((size_t)(y - first) * cs + o) * kp;
            for (int x = 0; x < kp; x += 32) {
                __m512 half[2];
                for (int h = 0; h < 2; h++) {
                    int x0 = x + 16 * h, n = w - x0 < 0 ? 0 : w - x0 > 16 ? 16 : w - x0;
                    const __mmask16 m = (__mmask16)((1u << n) - 1u);
                    half[h] = n == 0 ? _mm512_setzero_ps() /* past the row: no address */
                                     : _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, step,
                                                                row + (size_t)x0 * cs + o, 4);
                }
                _mm512_store_si512((void *)(dst + x), (__m512i)_mm512_cvtne2ps_pbh(half[1], half[0]));
            }
        }
    }
}

/* Padded big rows [lo, hi) (pad holds rows from row0) into pairs for each
 * kw: bp[((kw (hi - lo) + r) kp / 2 + j) 2 cb + 2 c + e] = big[lo + r][col][c],
 * col = (2 j + e) s + kw + 1 - pad_left, zero where 2 j + e >= small_w. */
static TARGET void pair_rows(uint16_t *bp, const float *pad, int row0, const ae_conv_geom *g,
                             int lo, int hi, int kp)
{
    const int cb = g->big_c, s = g->stride, pw = g->big_w + 2, w = g->small_w;
    __m512i pairs;
    {
        uint16_t idx[32];
        for (int col = 0; col < 16; col++)
            idx[2 * col] = (uint16_t)col, idx[2 * col + 1] = (uint16_t)(16 + col);
        pairs = _mm512_loadu_si512(idx);
    }
    for (int kw = 0; kw < 3; kw++)
        for (int r = lo; r < hi; r++) {
            const float *row = pad + ((size_t)(r - row0) * pw + kw + 1 - g->pad_left) * cb;
            uint16_t *dst = bp + ((size_t)kw * (hi - lo) + (r - lo)) * kp * cb;
            for (int j = 0; j < kp / 2; j++)
                for (int c = 0; c < cb; c += 16, dst += 32) {
                    const int p = 2 * j;
                    __m512 a = p < w ? _mm512_loadu_ps(row + (size_t)p * s * cb + c)
                                     : _mm512_setzero_ps();
                    __m512 b = p + 1 < w ? _mm512_loadu_ps(row + (size_t)(p + 1) * s * cb + c)
                                         : _mm512_setzero_ps();
                    _mm512_store_si512((void *)dst,
                                       _mm512_permutexvar_epi16(
                                           pairs, (__m512i)_mm512_cvtne2ps_pbh(b, a)));
                }
        }
}

/* C[o][c] of tile t (16 x 16) added to dw[tap][c][o] (cs floats a row). */
static TARGET void add_transposed(float *dw, int cs, int t)
{
    float c_tile[TILE_CH * TILE_PX] __attribute__((aligned(64)));
    switch (t) { /* tile numbers are immediates */
    case 0: _tile_stored(0, c_tile, TILE_CH * sizeof(float)); break;
    case 1: _tile_stored(1, c_tile, TILE_CH * sizeof(float)); break;
    case 2: _tile_stored(2, c_tile, TILE_CH * sizeof(float)); break;
    default: _tile_stored(3, c_tile, TILE_CH * sizeof(float)); break;
    }
    for (int c = 0; c < TILE_CH; c++)
        for (int o = 0; o < TILE_PX; o++)
            dw[(size_t)c * cs + o] += c_tile[o * TILE_CH + c];
}

/* Small rows per pass, so that both operands fit their buffers (0: not one). */
static int wgrad_rows(const ae_conv_geom *g, int cs, int kp, int first, int end)
{
    int rows = 0;
    for (int stop = first + 1; stop <= end; stop++) {
        int lo, hi;
        ae_direct_rows_needed(g, 1, first, stop, &lo, &hi);
        if ((size_t)3 * (hi - lo) * kp * g->big_c > IN_CAP ||
            (size_t)(stop - first) * cs * kp > W_CAP)
            break;
        rows = stop - first;
    }
    return rows;
}

TARGET void ae_amx_weight_grad(const float *pad, int row0, const float *small, int srow0,
                               const ae_conv_geom *g, int cs, float *dw, int first, int end)
{
    const int cb = g->big_c, s = g->stride, kp = (g->small_w + 31) / 32 * 32;
    if (!ae_amx_usable() || cb % TILE_CH != 0 || cs % TILE_CH != 0 || g->small_w < TILE_PX ||
        wgrad_rows(g, cs, kp, first, first + 1) == 0) {
        ae_direct_avx512.weight_grad(pad, row0, small, srow0, g, cs, dw, first, end);
        return;
    }
    configure(32);
    const int a_items = cs / TILE_CH, b_items = 9 * (cb / TILE_CH);
    const size_t a_stride = (size_t)kp * sizeof(uint16_t), b_stride = (size_t)2 * cb * sizeof(uint16_t);
    for (int y0 = first; y0 < end;) {
        const int rows = wgrad_rows(g, cs, kp, y0, end), y1 = y0 + rows;
        int lo, hi;
        ae_direct_rows_needed(g, 1, y0, y1, &lo, &hi);
        transpose_rows(w_bf16, small, srow0, y0, y1, g->small_w, cs, kp);
        pair_rows(in_bf16, pad, row0, g, lo, hi, kp);
        STORES_DONE();
        for (int ai = 0; ai < a_items; ai += 2) {
            const int two_a = ai + 1 < a_items;
            for (int bi = 0; bi < b_items; bi += 2) {
                const int two_b = bi + 1 < b_items;
                /* b item: tap t = bi / (cb / 16), channels 16 (bi % (cb / 16)) on */
                const int t0 = bi / (cb / TILE_CH), c0 = bi % (cb / TILE_CH) * TILE_CH;
                const int t1 = (bi + 1) / (cb / TILE_CH), c1 = (bi + 1) % (cb / TILE_CH) * TILE_CH;
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
                for (int y = y0; y < y1; y++) {
                    const uint16_t *a0 = w_bf16 + (size_t)((y - y0) * cs + ai * TILE_CH) * kp;
                    const uint16_t *a1 = a0 + (size_t)TILE_CH * kp;
                    /* padded big row of tap kh: y s + kh - pad_top + 1 */
                    const int r0 = y * s + t0 / 3 - g->pad_top + 1 - lo;
                    const int r1 = y * s + t1 / 3 - g->pad_top + 1 - lo;
                    const uint16_t *b0 =
                        in_bf16 + ((size_t)(t0 % 3) * (hi - lo) + r0) * kp * cb + 2 * c0;
                    const uint16_t *b1 =
                        in_bf16 + ((size_t)(t1 % 3) * (hi - lo) + r1) * kp * cb + 2 * c1;
                    for (int x = 0; x < kp; x += 32) {
                        _tile_loadd(4, a0 + x, a_stride);
                        _tile_loadd(6, b0 + (size_t)x * cb, b_stride);
                        _tile_dpbf16ps(0, 4, 6);
                        if (two_b) {
                            _tile_loadd(7, b1 + (size_t)x * cb, b_stride);
                            _tile_dpbf16ps(1, 4, 7);
                        }
                        if (two_a) {
                            _tile_loadd(5, a1 + x, a_stride);
                            _tile_dpbf16ps(2, 5, 6);
                            if (two_b)
                                _tile_dpbf16ps(3, 5, 7);
                        }
                    }
                }
                float *d0 = dw + ((size_t)t0 * cb + c0) * cs + ai * TILE_CH;
                float *d1 = dw + ((size_t)t1 * cb + c1) * cs + ai * TILE_CH;
                add_transposed(d0, cs, 0);
                if (two_b)
                    add_transposed(d1, cs, 1);
                if (two_a) {
                    add_transposed(d0 + TILE_CH, cs, 2);
                    if (two_b)
                        add_transposed(d1 + TILE_CH, cs, 3);
                }
            }
        }
        y0 = y1;
    }
    _tile_release();
}

#else
/* No tiles on this target or OS: ae_isa_supported never offers AE_ISA_AMX_BF16,
 * and the table of direct_avx512.c (x86 only) gets the float32 kernels. */
int ae_amx_usable(void) { return 0; }
size_t ae_amx_thread_bytes(void) { return 0; }

#if defined(__x86_64__) || defined(__i386__)
void ae_amx_big_to_small(const float *pad, int row0, const ae_conv_geom *g, int cs,
                         const float *w, const float *init, float *small, int small_row0,
                         int oy0, int oy1)
{
    ae_direct_avx512.big_to_small(pad, row0, g, cs, w, init, small, small_row0, oy0, oy1);
}

void ae_amx_small_to_big(const float *pad, int row0, const ae_conv_geom *g, int cs,
                         const float *wt, const float *init, float *big, int big_row0, int y0,
                         int y1)
{
    ae_direct_avx512.small_to_big(pad, row0, g, cs, wt, init, big, big_row0, y0, y1);
}

void ae_amx_weight_grad(const float *pad, int row0, const float *small, int srow0,
                        const ae_conv_geom *g, int cs, float *dw, int first, int end)
{
    ae_direct_avx512.weight_grad(pad, row0, small, srow0, g, cs, dw, first, end);
}
#endif
#endif
