/* The geometry of TensorFlow's "same" 3x3 convolution and the im2col / col2im
 * pair that turns it (and its transpose) into one GEMM per image. */
#include "nn/kernels/direct.h"

#include <assert.h>
#include <string.h>


void ae_conv_geom_init(ae_conv_geom *g, int big_h, int big_w, int big_c, int stride)
{
    assert(big_h > 0 && big_w > 0 && big_c > 0 && stride > 0);
    g->big_h = big_h;
    g->big_w = big_w;
    g->big_c = big_c;
    g->stride = stride;
    g->small_h = (big_h + stride - 1) / stride;
    g->small_w = (big_w + stride - 1) / stride;
    int total_h = (g->small_h - 1) * stride + 3 - big_h;
    int total_w = (g->small_w - 1) * stride + 3 - big_w;
    /* TF: the odd extra padding goes after (bottom/right). */
    g->pad_top = total_h > 0 ? total_h / 2 : 0;
    g->pad_left = total_w > 0 ? total_w / 2 : 0;
}

/* col[(oy*small_w + ox)][(kh*3 + kw)*c + ch] = img[oy*s + kh - pad_top][ox*s + kw - pad_left][ch],
 * zero outside the image. */
void ae_im2col(const float *img, const ae_conv_geom *g, float *col)
{
    const int c = g->big_c, row_len = 9 * c;
    for (int oy = 0; oy < g->small_h; oy++) {
        for (int ox = 0; ox < g->small_w; ox++) {
            float *row = col + ((size_t)oy * g->small_w + ox) * row_len;
            for (int kh = 0; kh < 3; kh++) {
                int iy = oy * g->stride + kh - g->pad_top;
                for (int kw = 0; kw < 3; kw++) {
                    int ix = ox * g->stride + kw - g->pad_left;
                    float *dst = row + (kh * 3 + kw) * c;
                    if (iy < 0 || iy >= g->big_h || ix < 0 || ix >= g->big_w) {
                        for (int ch = 0; ch < c; ch++)
                            dst[ch] = 0.0f;
                    } else {
                        const float *src = img + ((size_t)iy * g->big_w + ix) * c;
                        for (int ch = 0; ch < c; ch++)
                            dst[ch] = src[ch];
                    }
                }
            }
        }
    }
}

/* The adjoint of ae_im2col: every column entry is added to the pixel it came
 * from; entries that fell in the padding are dropped (for the stride-2
 * transpose this is TF's crop of the last row and column). */
void ae_col2im_add(const float *col, const ae_conv_geom *g, float *img)
{
    const int c = g->big_c, row_len = 9 * c;
    for (int oy = 0; oy < g->small_h; oy++) {
        for (int ox = 0; ox < g->small_w; ox++) {
            const float *row = col + ((size_t)oy * g->small_w + ox) * row_len;
            for (int kh = 0; kh < 3; kh++) {
                int iy = oy * g->stride + kh - g->pad_top;
                if (iy < 0 || iy >= g->big_h)
                    continue;
                for (int kw = 0; kw < 3; kw++) {
                    int ix = ox * g->stride + kw - g->pad_left;
                    if (ix < 0 || ix >= g->big_w)
                        continue;
                    const float *src = row + (kh * 3 + kw) * c;
                    float *dst = img + ((size_t)iy * g->big_w + ix) * c;
                    for (int ch = 0; ch < c; ch++)
                        dst[ch] += src[ch];
                }
            }
        }
    }
}

/* dst = xform(src) over w pixels x c. */
static void transform_row(const ae_direct_ops *ops, float *dst, const float *src,
                          const ae_input_xform *xform, int w, int c)
{
    if (!xform) {
        memcpy(dst, src, (size_t)w * c * sizeof *dst);
    } else {
        ae_bn_apply(ops, dst, src, xform, (size_t)w, c);
    }
}

/* Padded row r of a band whose first row is lo, w x c values between zero
 * borders: the borders zeroed, and its inside returned for the caller to
 * fill; NULL for the zero rows above and below the image (zeroed whole). */
static float *padded_row(float *dst, int lo, int r, int h, int w, int c)
{
    const size_t inner = (size_t)w * c, row = inner + 2 * (size_t)c;
    float *d = dst + (size_t)(r - lo) * row;
    if (r == 0 || r == h + 1) {
        memset(d, 0, row * sizeof *d);
        return NULL;
    }
    memset(d, 0, (size_t)c * sizeof *d);
    memset(d + c + inner, 0, (size_t)c * sizeof *d);
    return d + c;
}

/* The first of rows [lo, hi) to make into dst (ae_band_rows): the rows held
 * from lo on are moved to dst's front first. */
static int reuse_held_rows(float *dst, size_t row, ae_band_rows *held, int lo, int hi)
{
    int from = lo;
    if (held && held->lo <= lo && lo < held->hi) {
        from = held->hi < hi ? held->hi : hi;
        memmove(dst, dst + (size_t)(lo - held->lo) * row,
                (size_t)(from - lo) * row * sizeof *dst);
    }
    if (held) {
        held->lo = lo;
        held->hi = hi;
    }
    return from;
}

void ae_conv_input_rows(const ae_band_buf *buf, const float *x, int x_row0,
                        const ae_input_xform *xform, int lo, int hi)
{
    const ae_direct_ops *ops = buf->ops;
    float *dst = buf->dst;
    const int h = buf->h, w = buf->w, c = buf->c;
    const int from = reuse_held_rows(dst, (size_t)(w + 2) * c, buf->held, lo, hi);
    for (int r = from; r < hi; r++) {
        float *d = padded_row(dst, lo, r, h, w, c);
        if (d)
            transform_row(ops, d, x + (size_t)(r - 1 - x_row0) * w * c, xform, w, c);
    }
}

void ae_conv_grad_rows(const ae_band_buf *buf, const float *dy, const float *z,
                       const ae_grad_xform *gxform, int lo, int hi, float *db, int *summed)
{
    const ae_direct_ops *ops = buf->ops;
    float *dst = buf->dst;
    const int h = buf->h, w = buf->w, c = buf->c;
    const int from = reuse_held_rows(dst, (size_t)(w + 2) * c, buf->held, lo, hi);
    for (int r = from; r < hi; r++) {
        float *d = padded_row(dst, lo, r, h, w, c);
        if (!d)
            continue;
        const size_t at = (size_t)(r - 1) * w * c;
        if (gxform && gxform->above_w) { /* dy's row made in place, then dz over it */
            ops->big_to_small(dy, 0, gxform->above_g, c, gxform->above_w, NULL, d, r - 1, r - 1, r);
            ops->bn_grad_apply(d, d, z + at, (size_t)w, c, gxform->slope, gxform->mean,
                               gxform->invstd, gxform->k_dy, gxform->k_mean, gxform->k_xhat);
        } else if (gxform) {
            ops->bn_grad_apply(d, dy + at, z + at, (size_t)w, c, gxform->slope, gxform->mean,
                               gxform->invstd, gxform->k_dy, gxform->k_mean, gxform->k_xhat);
        } else
            memcpy(d, dy + at, (size_t)w * c * sizeof *d);
        if (r - 1 == *summed) {
            ops->bias_grad_add(db, d, (size_t)w, c);
            (*summed)++;
        }
    }
}

void ae_conv_input(const ae_direct_ops *ops, float *dst, const float *x,
                   const ae_input_xform *xform, int h, int w, int c, int pad)
{
    if (pad) {
        const ae_band_buf whole = {.ops = ops, .dst = dst, .h = h, .w = w, .c = c};
        ae_conv_input_rows(&whole, x, 0, xform, 0, h + 2);
        return;
    }
    const size_t inner = (size_t)w * c;
    for (int y = 0; y < h; y++)
        transform_row(ops, dst + (size_t)y * inner, x + (size_t)y * inner, xform, w, c);
}

void ae_conv_input_planar_rows(const ae_band_buf *buf, const float *x, int x_row0,
                               const ae_input_xform *xform, int lo, int hi,
                               const ae_kept_rows *keep)
{
    const ae_direct_ops *ops = buf->ops;
    float *dst = buf->dst, *tmp = keep->rows;
    const int h = buf->h, w = buf->w, c = buf->c, tmp_rows = keep->count;
    const ae_input_xform *tmp_xform = keep->xform;
    const size_t pw = (size_t)w + 2, plane_row = pw * c, inner = (size_t)w * c;
    const int from = reuse_held_rows(dst, plane_row, buf->held, lo, hi);
    for (int r = from; r < hi; r++) {
        float *rows = dst + (size_t)(r - lo) * plane_row;
        if (r == 0 || r == h + 1) {
            memset(rows, 0, plane_row * sizeof *rows);
            continue;
        }
        for (int ch = 0; ch < c; ch++) {
            rows[(size_t)ch * pw] = 0.0f;
            rows[(size_t)ch * pw + pw - 1] = 0.0f;
        }
        const float *x_row = x + (size_t)(r - 1 - x_row0) * inner, *src = x_row;
        float *kept = xform ? tmp + (size_t)((r - 1) % tmp_rows) * inner : NULL;
        /* the pixels the vector kernels do in one read of x's row, then the rest */
        const int done =
            xform && ops ? ops->planar_xform_row(rows, kept, x_row, w, c, pw, xform, tmp_xform) : 0;
        const size_t skip = (size_t)done * c;
        if (xform) {
            transform_row(ops, kept + skip, x_row + skip, xform, w - done, c);
            src = kept;
        }
        if (ops) {
            ops->planar_row(rows + done, src + skip, w - done, c, pw);
        } else {
            for (int px = 0; px < w; px++)
                for (int ch = 0; ch < c; ch++)
                    rows[(size_t)ch * pw + 1 + px] = src[(size_t)px * c + ch];
        }
        if (xform && tmp_xform) /* while x's row is in cache */
            transform_row(ops, kept + skip, x_row + skip, tmp_xform, w - done, c);
    }
}

void ae_direct_rows_needed(const ae_conv_geom *g, int to_small, int first, int end, int *lo,
                           int *hi)
{
    const int s = g->stride;
    if (to_small) { /* padded big rows oy s + kh - pad_top + 1, kh = 0..2 */
        *lo = first * s - g->pad_top + 1;
        *hi = (end - 1) * s - g->pad_top + 4;
        if (*hi > g->big_h + 2)
            *hi = g->big_h + 2;
    } else { /* padded small rows (y + pad_top - kh) / s + 1 */
        int a = first + g->pad_top - 2;
        *lo = (a >= 0 ? a / s : -((-a + s - 1) / s)) + 1;
        *hi = (end - 1 + g->pad_top) / s + 2;
        if (*hi > g->small_h + 2)
            *hi = g->small_h + 2;
    }
    if (*lo < 0)
        *lo = 0;
}

static int band_override;

void ae_direct_set_band(int rows) { band_override = rows; }

static int plain_blocks;

void ae_direct_set_plain_blocks(int on) { plain_blocks = on; }

int ae_direct_plain_blocks(void) { return plain_blocks; }

int ae_direct_band(const ae_conv_geom *g, int to_small, int in_c)
{
    if (band_override > 0)
        return band_override;
    const int in_w = (to_small ? g->big_w : g->small_w) + 2;
    const int in_rows_per_out = to_small ? g->stride : 1;
    int band = (int)(65536 / ((size_t)in_w * in_c * in_rows_per_out + 1));
    return band < 1 ? 1 : band;
}

int ae_direct_band_fit(int band, size_t floats_per_row)
{
    if (band_override > 0)
        return band_override;
    int fit = (int)(65536 / (floats_per_row + 1));
    fit = fit < 1 ? 1 : fit;
    return band < fit ? band : fit;
}
