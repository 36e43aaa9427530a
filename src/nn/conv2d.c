/* Conv2D, 3x3, stride 1 or 2, TensorFlow "same" padding.
 *
 *   x  (n, big_h, big_w, in)        in = g->big_c; read through xform (layers.h)
 *   w  (3, 3, in, out) = a (9 in) x out matrix, Keras' layout
 *   y  (n, small_h, small_w, out)   y = im2col(x') @ w + b
 *
 * Backward: dw = sum_i im2col(x'_i)^T @ dy_i, db = sum of dy over pixels,
 * dx = col2im(dy @ w^T). All three are overwritten.
 *
 * Two paths, one image per work item either way (so per-image partial sums,
 * and results that do not depend on the thread count):
 *  - direct kernels (s->isa a vector ISA, direct.h): forward = big_to_small,
 *    dx = small_to_big, dw = weight_grad, on a zero-padded copy of the image;
 *  - portable: im2col + one ae_gemm per image (NHWC makes the GEMM's output
 *    the next layer's input as is; gemm.h: the same bits on every CPU). */
#include "nn/kernels/direct.h"
#include "nn/kernels/gemm.h"

#include <string.h>

typedef struct {
    float *y, *dx, *dw, *db;
    const float *x, *dy, *w, *b;
    const ae_input_xform *xform;
    const ae_bn_stats *stats; /* forward: the BatchNorm statistics of y, or NULL */
    const ae_bn_grad_sums *sums; /* backward: the BatchNorm sums of dx, or NULL */
    const ae_grad_xform *gxform; /* backward: dy is above a BatchNorm (see layers.h) */
    const ae_conv_geom *g;
    int out_c;
    ae_scratch *s;
    const ae_direct_ops *ops;
} conv_job;

static void forward_image(void *arg, int i, int t)
{
    const conv_job *j = arg;
    const ae_conv_geom *g = j->g;
    ae_scratch *s = j->s;
    const size_t in_size = (size_t)g->big_h * g->big_w * g->big_c;
    const int pixels = g->small_h * g->small_w, k = 9 * g->big_c, out_c = j->out_c;
    const float *xi = j->x + (size_t)i * in_size;
    float *yi = j->y + (size_t)i * pixels * out_c;
    size_t next = 0; /* the first pixel of yi not yet in the statistics */
    if (j->ops) { /* in bands of output rows, each band's input padded just before */
        const int band = ae_direct_band(g, 1, g->big_c);
        ae_band_rows held = {0, 0};
        for (int first = 0; first < g->small_h; first += band) {
            int end = first + band < g->small_h ? first + band : g->small_h, lo, hi;
            ae_direct_rows_needed(g, 1, first, end, &lo, &hi);
            ae_conv_input_rows(j->ops, s->pad[t], xi, 0, j->xform, g->big_h, g->big_w, g->big_c, lo,
                               hi, &held);
            j->ops->big_to_small(s->pad[t], lo, g, out_c, j->w, j->b, yi, 0, first, end);
            if (j->stats)
                ae_bn_stats_image(j->stats, yi, i, t, (size_t)end * g->small_w, &next);
        }
        return;
    }
    if (j->xform) {
        ae_conv_input(NULL, s->pad[t], xi, j->xform, g->big_h, g->big_w, g->big_c, 0);
        xi = s->pad[t];
    }
    float *col = s->col[t];
    ae_im2col(xi, g, col);
    for (int p = 0; p < pixels; p++)
        memcpy(yi + (size_t)p * out_c, j->b, (size_t)out_c * sizeof *j->b);
    ae_gemm(0, 0, pixels, out_c, k, col, k, j->w, out_c, 1, yi, out_c);
    if (j->stats)
        ae_bn_stats_image(j->stats, yi, i, t, (size_t)pixels, &next);
}

void ae_conv2d_forward_stats(float *y, const float *x, const ae_input_xform *xform, const float *w,
                             const float *b, int n, const ae_conv_geom *g, int out_c,
                             ae_scratch *s, const ae_bn_stats *stats)
{
    const double macs = (double)n * g->small_h * g->small_w * 9 * g->big_c * out_c;
    conv_job j = {.y = y, .x = x, .w = w, .b = b, .xform = xform, .stats = stats, .g = g,
                  .out_c = out_c, .s = s, .ops = ae_direct_ops_for(s->isa)};
    ae_pool_run(s->pool, ae_threads_for(s, macs), n, forward_image, &j);
}

void ae_conv2d_forward(float *y, const float *x, const ae_input_xform *xform, const float *w,
                       const float *b, int n, const ae_conv_geom *g, int out_c, ae_scratch *s)
{
    ae_conv2d_forward_stats(y, x, xform, w, b, n, g, out_c, s, NULL);
}

/* Image i's gradients, its dw and db added to dw_i, db_i (overwritten when overwrite is set). */
static void backward_image(const void *arg, int i, int t, float *dw_i, int overwrite)
{
    const conv_job *j = arg;
    const ae_conv_geom *g = j->g;
    ae_scratch *s = j->s;
    const ae_direct_ops *ops = j->ops;
    const size_t in_size = (size_t)g->big_h * g->big_w * g->big_c;
    const int pixels = g->small_h * g->small_w, k = 9 * g->big_c, out_c = j->out_c;
    const size_t kernel = (size_t)k * out_c;
    float *db_i = dw_i + kernel;
    const float *dy_i = j->dy + (size_t)i * pixels * out_c, *xi = j->x + (size_t)i * in_size;
    float *dx_i = j->dx ? j->dx + (size_t)i * in_size : NULL;
    size_t next = 0; /* the first pixel of dx_i not yet in the BatchNorm sums */
    if (j->gxform) { /* dz = gxform(dy), after a padded input, a padded dz and a row (ae_plan_make)
                      */
        float *dz_i = s->pad[t] + ae_direct_padded_floats(g->big_h, g->big_w, g->big_c) +
                      ae_direct_padded_floats(g->small_h, g->small_w, out_c) +
                      (size_t)g->small_w * out_c;
        ae_bn_grad_apply(ops, dz_i, dy_i, j->gxform->z + (size_t)i * pixels * out_c, j->gxform,
                         (size_t)pixels, out_c);
        dy_i = dz_i;
    }
    if (ops) { /* in bands of rows, each band's input padded just before */
        float *pad = s->pad[t];
        (overwrite ? ops->bias_grad : ops->bias_grad_add)(db_i, dy_i, (size_t)pixels, out_c);
        if (overwrite)
            memset(dw_i, 0, kernel * sizeof *dw_i);
        int band = ae_direct_band(g, 1, g->big_c), lo, hi;
        ae_band_rows held = {0, 0};
        for (int first = 0; first < g->small_h; first += band) {
            int end = first + band < g->small_h ? first + band : g->small_h;
            ae_direct_rows_needed(g, 1, first, end, &lo, &hi);
            ae_conv_input_rows(ops, pad, xi, 0, j->xform, g->big_h, g->big_w, g->big_c, lo, hi,
                               &held);
            ops->weight_grad(pad, lo, dy_i, 0, g, out_c, dw_i, first, end);
        }
        if (!dx_i)
            return;
        band = ae_direct_band(g, 0, out_c);
        if (j->sums) /* dx and z of a band stay in cache for the sums */
            band = ae_direct_band_fit(band, 2 * (size_t)g->big_w * g->big_c);
        held = (ae_band_rows){0, 0}; /* pad now takes dy's rows */
        for (int first = 0; first < g->big_h; first += band) {
            int end = first + band < g->big_h ? first + band : g->big_h;
            ae_direct_rows_needed(g, 0, first, end, &lo, &hi);
            ae_conv_input_rows(ops, pad, dy_i, 0, NULL, g->small_h, g->small_w, out_c, lo, hi,
                               &held);
            ops->small_to_big(pad, lo, g, out_c, s->wt, NULL, dx_i, 0, first, end);
            if (j->sums)
                ae_bn_grad_sums_image(j->sums, dx_i, i, (size_t)end * g->big_w, &next);
        }
        return;
    }
    (overwrite ? ae_bias_grad : ae_bias_grad_add)(db_i, dy_i, (size_t)pixels, out_c);
    if (j->xform) {
        ae_conv_input(NULL, s->pad[t], xi, j->xform, g->big_h, g->big_w, g->big_c, 0);
        xi = s->pad[t];
    }
    float *col = s->col[t];
    ae_im2col(xi, g, col);
    ae_gemm(1, 0, k, out_c, pixels, col, k, dy_i, out_c, !overwrite, dw_i, out_c);
    if (dx_i) {
        ae_gemm(0, 1, pixels, k, out_c, dy_i, out_c, j->w, out_c, 0, col, k);
        memset(dx_i, 0, in_size * sizeof *dx_i);
        ae_col2im_add(col, g, dx_i);
        if (j->sums)
            ae_bn_grad_sums_image(j->sums, dx_i, i, (size_t)g->big_h * g->big_w, &next);
    }
}

void ae_conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const ae_input_xform *xform, const float *w, int n, const ae_conv_geom *g,
                        int out_c, ae_scratch *s)
{
    ae_conv2d_backward_through(dx, dw, db, dy, NULL, x, xform, w, n, g, out_c, s, NULL);
}

void ae_conv2d_backward_through(float *dx, float *dw, float *db, const float *dy,
                                const ae_grad_xform *gxform, const float *x,
                                const ae_input_xform *xform, const float *w, int n,
                                const ae_conv_geom *g, int out_c, ae_scratch *s,
                                const ae_bn_grad_sums *sums)
{
    const double macs = 2.0 * n * g->small_h * g->small_w * 9 * g->big_c * out_c;
    conv_job j = {.dx = dx, .dy = dy, .x = x, .w = w, .xform = xform, .sums = dx ? sums : NULL,
                  .gxform = gxform, .g = g, .out_c = out_c, .s = s,
                  .ops = ae_direct_ops_for(s->isa)};
    if (j.ops && dx)
        ae_direct_transpose_kernel(s->wt, w, g->big_c, out_c);
    ae_grad_slots_run(s, n, macs, 9 * (size_t)g->big_c * out_c, (size_t)out_c, backward_image,
                      &j, dw, db);
}
