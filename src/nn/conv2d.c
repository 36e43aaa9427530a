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
    ae_conv_io io;
    const ae_bn_stats *stats; /* forward: the BatchNorm statistics of y, or NULL */
    const ae_conv_geom *g;
    int out_c;
    ae_scratch *s;
    const ae_direct_ops *ops;
} conv_job;

static void forward_image(void *arg, int i, int t)
{
    const conv_job *j = arg;
    const ae_conv_io *io = &j->io;
    const ae_conv_geom *g = j->g;
    ae_scratch *s = j->s;
    const size_t in_size = (size_t)g->big_h * g->big_w * g->big_c;
    const int pixels = g->small_h * g->small_w, k = 9 * g->big_c, out_c = j->out_c;
    const float *xi = io->x + (size_t)i * in_size;
    float *yi = io->y + (size_t)i * pixels * out_c;
    size_t next = 0; /* the first pixel of yi not yet in the statistics */
    if (j->ops) { /* in bands of output rows, each band's input padded just before */
        const int band = ae_direct_band(g, 1, g->big_c);
        ae_band_rows held = {0, 0};
        const ae_band_buf buf = {.ops = j->ops, .dst = s->pad[t], .h = g->big_h, .w = g->big_w,
                                 .c = g->big_c, .held = &held};
        for (int first = 0; first < g->small_h; first += band) {
            int end = first + band < g->small_h ? first + band : g->small_h, lo, hi;
            ae_direct_rows_needed(g, 1, first, end, &lo, &hi);
            ae_conv_input_rows(&buf, xi, 0, io->xform, lo, hi);
            j->ops->big_to_small(s->pad[t], lo, g, out_c, io->w, io->b, yi, 0, first, end);
            if (j->stats)
                ae_bn_stats_image(j->stats, yi, i, t, (size_t)end * g->small_w, &next);
        }
        return;
    }
    if (io->xform) {
        ae_conv_input(NULL, s->pad[t], xi, io->xform, g->big_h, g->big_w, g->big_c, 0);
        xi = s->pad[t];
    }
    float *col = s->col[t];
    ae_im2col(xi, g, col);
    for (int p = 0; p < pixels; p++)
        memcpy(yi + (size_t)p * out_c, io->b, (size_t)out_c * sizeof *io->b);
    ae_gemm(&(ae_gemm_job){.m = pixels, .n = out_c, .k = k, .a = col, .lda = k, .b = io->w,
                           .ldb = out_c, .c = yi, .ldc = out_c, .accumulate = 1});
    if (j->stats)
        ae_bn_stats_image(j->stats, yi, i, t, (size_t)pixels, &next);
}

void ae_conv2d_forward_stats(float *y, const float *x, const ae_input_xform *xform, const float *w,
                             const float *b, int n, const ae_conv_geom *g, int out_c,
                             ae_scratch *s, const ae_bn_stats *stats)
{
    const double macs = (double)n * g->small_h * g->small_w * 9 * g->big_c * out_c;
    conv_job j = {.io = {.x = x, .xform = xform, .w = w, .b = b, .y = y}, .stats = stats, .g = g,
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
    const ae_conv_io *io = &j->io;
    const ae_conv_geom *g = j->g;
    ae_scratch *s = j->s;
    const ae_direct_ops *ops = j->ops;
    const size_t in_size = (size_t)g->big_h * g->big_w * g->big_c;
    const int pixels = g->small_h * g->small_w, k = 9 * g->big_c, out_c = j->out_c;
    const size_t kernel = (size_t)k * out_c;
    float *db_i = dw_i + kernel;
    const float *dy_i = io->dy + (size_t)i * pixels * out_c, *xi = io->x + (size_t)i * in_size;
    float *dx_i = io->dx ? io->dx + (size_t)i * in_size : NULL;
    size_t next = 0; /* the first pixel of dx_i not yet in the BatchNorm sums */
    if (io->gxform) { /* dz = gxform(dy), after a padded input, a padded dz and a row (ae_plan_make)
                      */
        float *dz_i = s->pad[t] + ae_direct_padded_floats(g->big_h, g->big_w, g->big_c) +
                      ae_direct_padded_floats(g->small_h, g->small_w, out_c) +
                      (size_t)g->small_w * out_c;
        ae_bn_grad_apply(ops, dz_i, dy_i, io->gxform->z + (size_t)i * pixels * out_c, io->gxform,
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
        const ae_band_buf x_rows = {.ops = ops, .dst = pad, .h = g->big_h, .w = g->big_w,
                                    .c = g->big_c, .held = &held};
        for (int first = 0; first < g->small_h; first += band) {
            int end = first + band < g->small_h ? first + band : g->small_h;
            ae_direct_rows_needed(g, 1, first, end, &lo, &hi);
            ae_conv_input_rows(&x_rows, xi, 0, io->xform, lo, hi);
            ops->weight_grad(pad, lo, dy_i, 0, g, out_c, dw_i, first, end);
        }
        if (!dx_i)
            return;
        band = ae_direct_band(g, 0, out_c);
        if (io->sums) /* dx and z of a band stay in cache for the sums */
            band = ae_direct_band_fit(band, 2 * (size_t)g->big_w * g->big_c);
        held = (ae_band_rows){0, 0}; /* pad now takes dy's rows */
        const ae_band_buf dy_rows = {.ops = ops, .dst = pad, .h = g->small_h, .w = g->small_w,
                                     .c = out_c, .held = &held};
        for (int first = 0; first < g->big_h; first += band) {
            int end = first + band < g->big_h ? first + band : g->big_h;
            ae_direct_rows_needed(g, 0, first, end, &lo, &hi);
            ae_conv_input_rows(&dy_rows, dy_i, 0, NULL, lo, hi);
            ops->small_to_big(pad, lo, g, out_c, s->wt, NULL, dx_i, 0, first, end);
            if (io->sums)
                ae_bn_grad_sums_image(io->sums, dx_i, i, (size_t)end * g->big_w, &next);
        }
        return;
    }
    (overwrite ? ae_bias_grad : ae_bias_grad_add)(db_i, dy_i, (size_t)pixels, out_c);
    if (io->xform) {
        ae_conv_input(NULL, s->pad[t], xi, io->xform, g->big_h, g->big_w, g->big_c, 0);
        xi = s->pad[t];
    }
    float *col = s->col[t];
    ae_im2col(xi, g, col);
    ae_gemm(&(ae_gemm_job){.m = k, .n = out_c, .k = pixels, .a = col, .lda = k, .a_t = 1,
                           .b = dy_i, .ldb = out_c, .c = dw_i, .ldc = out_c,
                           .accumulate = !overwrite});
    if (dx_i) {
        ae_gemm(&(ae_gemm_job){.m = pixels, .n = k, .k = out_c, .a = dy_i, .lda = out_c,
                               .b = io->w, .ldb = out_c, .b_t = 1, .c = col, .ldc = k});
        memset(dx_i, 0, in_size * sizeof *dx_i);
        ae_col2im_add(col, g, dx_i);
        if (io->sums)
            ae_bn_grad_sums_image(io->sums, dx_i, i, (size_t)g->big_h * g->big_w, &next);
    }
}

void ae_conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const ae_input_xform *xform, const float *w, int n, const ae_conv_geom *g,
                        int out_c, ae_scratch *s)
{
    const ae_conv_io io = {.x = x, .xform = xform, .w = w, .dy = dy, .dx = dx, .dw = dw, .db = db};
    ae_conv2d_backward_through(&io, &(ae_conv_shape){.g = g, .small_c = out_c, .n = n}, s);
}

void ae_conv2d_backward_through(const ae_conv_io *io, const ae_conv_shape *shape, ae_scratch *s)
{
    const ae_conv_geom *g = shape->g;
    const int n = shape->n, out_c = shape->small_c;
    const double macs = 2.0 * n * g->small_h * g->small_w * 9 * g->big_c * out_c;
    conv_job j = {.io = *io, .g = g, .out_c = out_c, .s = s, .ops = ae_direct_ops_for(s->isa)};
    if (!io->dx)
        j.io.sums = NULL;
    if (j.ops && io->dx)
        ae_direct_transpose_kernel(s->wt, io->w, g->big_c, out_c);
    ae_grad_slots_run(s, n, macs, 9 * (size_t)g->big_c * out_c, (size_t)out_c, backward_image,
                      &j, io->dw, io->db);
}
