/* Conv2DTranspose, 3x3, stride 1 or 2, TensorFlow "same": the input-gradient of
 * the forward "same" convolution from the big image to the small one. For
 * stride 2 the full scatter y[2i + k] += x[i] w[k] covers 0..2n and TF keeps
 * [0, 2n): col2im's padding rule drops the last row and column by itself.
 *
 *   x  (n, small_h, small_w, in)    read through xform (layers.h)
 *   w  (3, 3, out, in) as Keras stores it = a (9 out) x in matrix
 *   y  (n, big_h, big_w, out)       y = col2im(x' @ w^T) + b,  out = g->big_c
 *
 * Backward: dx = im2col(dy) @ w, dw = sum_i im2col(dy_i)^T @ x'_i, db = sum of
 * dy over pixels. All three are overwritten.
 *
 * Direct kernels (direct.h) when s->isa is a vector ISA: forward =
 * small_to_big (small_to_big_narrow for the stride-1 output layer's few
 * channels), dx = big_to_small, dw = weight_grad; otherwise GEMM + col2im
 * (portable). One image per work item either way. */
#include "nn/kernels/direct.h"
#include "nn/kernels/gemm.h"

#include <assert.h>
#include <string.h>

typedef struct {
    ae_conv_io io;
    const ae_bn_stats *stats; /* forward: the BatchNorm statistics of y, or NULL */
    const ae_conv_geom *g;
    int in_c, narrow, sigmoid; /* forward: y = sigmoid(the layer's output) */
    ae_head_loss loss;         /* the head's */
    ae_scratch *s;
    const ae_direct_ops *ops;
} deconv_job;

static void forward_image(void *arg, int i, int t)
{
    const deconv_job *j = arg;
    const ae_conv_io *io = &j->io;
    const ae_conv_geom *g = j->g;
    ae_scratch *s = j->s;
    const int out_c = g->big_c, pixels = g->small_h * g->small_w, k = 9 * out_c, in_c = j->in_c;
    const size_t big_pixels = (size_t)g->big_h * g->big_w;
    const float *xi = io->x + (size_t)i * pixels * in_c;
    float *yi = io->y + (size_t)i * big_pixels * out_c;
    size_t next = 0; /* the first pixel of yi not yet in the statistics */
    if (j->ops) { /* in bands of output rows, each band's input padded just before */
        const int band = ae_direct_band(g, 0, in_c);
        const ae_kept_rows tmp = {
            .rows = s->pad[t] + ae_direct_padded_floats(g->small_h, g->small_w, in_c), .count = 1};
        ae_band_rows held = {0, 0};
        const ae_band_buf buf = {.ops = j->ops, .dst = s->pad[t], .h = g->small_h,
                                 .w = g->small_w, .c = in_c, .held = &held};
        for (int first = 0; first < g->big_h; first += band) {
            int end = first + band < g->big_h ? first + band : g->big_h, lo, hi;
            ae_direct_rows_needed(g, 0, first, end, &lo, &hi);
            if (j->narrow) {
                ae_conv_input_planar_rows(&buf, xi, 0, io->xform, lo, hi, &tmp);
                j->ops->small_to_big_narrow(s->pad[t], lo, g, in_c, io->w, io->b, yi, first, end);
            } else {
                ae_conv_input_rows(&buf, xi, 0, io->xform, lo, hi);
                j->ops->small_to_big(s->pad[t], lo, g, in_c, s->wt, io->b, yi, 0, first, end);
            }
            if (j->sigmoid) { /* while the band is in cache */
                const size_t at = (size_t)first * g->big_w * out_c;
                j->ops->sigmoid(yi + at, yi + at, (size_t)(end - first) * g->big_w * out_c);
            }
            if (j->stats)
                ae_bn_stats_image(j->stats, yi, i, t, (size_t)end * g->big_w, &next);
        }
        return;
    }
    if (io->xform) {
        ae_conv_input(NULL, s->pad[t], xi, io->xform, g->small_h, g->small_w, in_c, 0);
        xi = s->pad[t];
    }
    float *col = s->col[t];
    ae_gemm(&(ae_gemm_job){.m = pixels, .n = k, .k = in_c, .a = xi, .lda = in_c, .b = io->w,
                           .ldb = in_c, .b_t = 1, .c = col, .ldc = k});
    for (size_t p = 0; p < big_pixels; p++)
        memcpy(yi + p * out_c, io->b, (size_t)out_c * sizeof *io->b);
    ae_col2im_add(col, g, yi);
    if (j->sigmoid)
        ae_sigmoid_forward(yi, yi, big_pixels * out_c);
    if (j->stats)
        ae_bn_stats_image(j->stats, yi, i, t, big_pixels, &next);
}

static void forward(float *y, const float *x, const ae_input_xform *xform, const float *w,
                    const float *b, int n, const ae_conv_geom *g, int in_c, ae_scratch *s,
                    const ae_bn_stats *stats, int sigmoid)
{
    const double macs = (double)n * g->small_h * g->small_w * 9 * g->big_c * in_c;
    deconv_job j = {.io = {.x = x, .xform = xform, .w = w, .b = b, .y = y}, .stats = stats,
                    .g = g, .in_c = in_c, .sigmoid = sigmoid, .s = s,
                    .ops = ae_direct_ops_for(s->isa)};
    j.narrow = j.ops && AE_NARROW(g);
    if (j.ops && !j.narrow)
        ae_direct_transpose_kernel(s->wt, w, g->big_c, in_c);
    ae_pool_run(s->pool, ae_threads_for(s, macs), n, forward_image, &j);
}

void ae_deconv2d_forward(float *y, const float *x, const ae_input_xform *xform, const float *w,
                         const float *b, int n, const ae_conv_geom *g, int in_c, ae_scratch *s)
{
    forward(y, x, xform, w, b, n, g, in_c, s, NULL, 0);
}

void ae_deconv2d_forward_stats(float *y, const float *x, const ae_input_xform *xform,
                               const float *w, const float *b, int n, const ae_conv_geom *g,
                               int in_c, ae_scratch *s, const ae_bn_stats *stats)
{
    forward(y, x, xform, w, b, n, g, in_c, s, stats, 0);
}

void ae_deconv2d_forward_sigmoid(float *y, const float *x, const ae_input_xform *xform,
                                 const float *w, const float *b, int n, const ae_conv_geom *g,
                                 int in_c, ae_scratch *s)
{
    forward(y, x, xform, w, b, n, g, in_c, s, NULL, 1);
}

/* Small rows per backward band; with the BatchNorm sums, dx, z and x' of a
 * band stay in cache too. */
static int backward_band(const deconv_job *j)
{
    const int band = ae_direct_band(j->g, 1, j->g->big_c);
    return j->io.sums ? ae_direct_band_fit(band, 3 * (size_t)j->g->small_w * j->in_c) : band;
}

/* Image i's gradients, its dw and db added to dw_i, db_i (overwritten when overwrite is set). */
static void backward_image(const void *arg, int i, int t, float *dw_i, int overwrite)
{
    const deconv_job *j = arg;
    const ae_conv_io *io = &j->io;
    const ae_conv_geom *g = j->g;
    ae_scratch *s = j->s;
    const ae_direct_ops *ops = j->ops;
    const int out_c = g->big_c, pixels = g->small_h * g->small_w, k = 9 * out_c, in_c = j->in_c;
    const size_t in_size = (size_t)pixels * in_c, kernel = (size_t)k * in_c;
    const size_t big_pixels = (size_t)g->big_h * g->big_w;
    float *db_i = dw_i + kernel;
    const ae_conv_geom *above = io->gxform && io->gxform->above_w ? io->gxform->above_g : NULL;
    const size_t dy_size = above ? ae_direct_padded_floats(above->big_h, above->big_w, above->big_c)
                                 : big_pixels * out_c;
    const float *dy_i = io->dy + (size_t)i * dy_size, *xi = io->x + (size_t)i * in_size;
    float *dx_i = io->dx ? io->dx + (size_t)i * in_size : NULL;
    /* With gxform, dz = gxform(dy) is made band by band, as dy's padded rows are. */
    const float *z_i = io->gxform ? io->gxform->z + (size_t)i * big_pixels * out_c : NULL;
    int summed = 0; /* image rows of dz added to db_i */
    size_t next = 0; /* the first pixel of dx_i not yet in the BatchNorm sums */
    if (ops) { /* the bias sums are added row by row as the bands read dy */
        if (overwrite)
            memset(db_i, 0, (size_t)out_c * sizeof *db_i);
    } else {
        (overwrite ? ae_bias_grad : ae_bias_grad_add)(db_i, dy_i, big_pixels, out_c);
    }
    if (ops) { /* in bands of small rows: dy's padded rows, then x' of the same rows */
        const int band = backward_band(j);
        float *pad_dy = s->pad[t];
        float *xt = pad_dy + ae_direct_padded_floats(g->big_h, g->big_w, out_c);
        if (overwrite)
            memset(dw_i, 0, kernel * sizeof *dw_i);
        ae_band_rows held = {0, 0};
        const ae_band_buf dy_rows = {.ops = ops, .dst = pad_dy, .h = g->big_h, .w = g->big_w,
                                     .c = out_c, .held = &held};
        for (int first = 0; first < g->small_h; first += band) {
            int end = first + band < g->small_h ? first + band : g->small_h, lo, hi;
            ae_direct_rows_needed(g, 1, first, end, &lo, &hi);
            ae_conv_grad_rows(&dy_rows, dy_i, z_i, io->gxform, lo, hi, db_i, &summed);
            const float *x_rows = xi;
            int x_row0 = 0;
            if (io->xform) {
                const size_t row = (size_t)g->small_w * in_c;
                ae_conv_input(ops, xt, xi + first * row, io->xform, end - first, g->small_w, in_c,
                              0);
                x_rows = xt;
                x_row0 = first;
            }
            ops->weight_grad(pad_dy, lo, x_rows, x_row0, g, in_c, dw_i, first, end);
            if (dx_i)
                ops->big_to_small(pad_dy, lo, g, in_c, io->w, NULL, dx_i, 0, first, end);
            if (io->sums)
                ae_bn_grad_sums_image(io->sums, dx_i, i, (size_t)end * g->small_w, &next);
        }
        /* Rows no band read (none in TF's geometry) still count for the bias. */
        ae_band_buf rest = dy_rows;
        rest.held = NULL; /* a row at a time, none kept */
        while (summed < g->big_h)
            ae_conv_grad_rows(&rest, dy_i, z_i, io->gxform, summed + 1, summed + 2, db_i, &summed);
        return;
    }
    if (io->xform) {
        ae_conv_input(NULL, s->pad[t], xi, io->xform, g->small_h, g->small_w, in_c, 0);
        xi = s->pad[t];
    }
    float *col = s->col[t];
    ae_im2col(dy_i, g, col);
    ae_gemm(&(ae_gemm_job){.m = k, .n = in_c, .k = pixels, .a = col, .lda = k, .a_t = 1,
                           .b = xi, .ldb = in_c, .c = dw_i, .ldc = in_c,
                           .accumulate = !overwrite});
    if (dx_i)
        ae_gemm(&(ae_gemm_job){.m = pixels, .n = in_c, .k = k, .a = col, .lda = k, .b = io->w,
                               .ldb = in_c, .c = dx_i, .ldc = in_c});
    if (io->sums)
        ae_bn_grad_sums_image(io->sums, dx_i, i, (size_t)pixels, &next);
}

void ae_deconv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                          const ae_input_xform *xform, const float *w, int n, const ae_conv_geom *g,
                          int in_c, ae_scratch *s)
{
    const ae_conv_io io = {.x = x, .xform = xform, .w = w, .dy = dy, .dx = dx, .dw = dw, .db = db};
    ae_deconv2d_backward_through(&io, &(ae_conv_shape){.g = g, .small_c = in_c, .n = n}, s);
}

void ae_deconv2d_backward_through(const ae_conv_io *io, const ae_conv_shape *shape,
                                  ae_scratch *s)
{
    const ae_conv_geom *g = shape->g;
    const int n = shape->n, in_c = shape->small_c;
    const double macs = 2.0 * n * g->small_h * g->small_w * 9 * g->big_c * in_c;
    deconv_job j = {.io = *io, .g = g, .in_c = in_c, .s = s, .ops = ae_direct_ops_for(s->isa)};
    if (!io->dx)
        j.io.sums = NULL;
    assert(!io->gxform || j.ops); /* dz made band by band needs the direct kernels */
    ae_grad_slots_run(s, n, macs, 9 * (size_t)g->big_c * in_c, (size_t)g->big_c,
                      backward_image, &j, io->dw, io->db);
}

/* The deferred head's end of image i (see ae_deconv2d_train_head): with
 * S[tap][o] the sum of dy over the pixels tap reads (dy's whole image but
 * the row and the column a tap reaches past), dx' = sum_{tap,o} dy w has
 * sum over pixels sum_{tap,o} w S, and sum dx' xhat = sum_{tap,o} w G, G =
 * sum dy xhat (g_hat, what weight_grad made from xhat); and as x' = gamma
 * xhat + beta, the image's dw is gamma G + beta S. row_sums: dy's sums over
 * the first and the last row, then over all rows, per channel. */
static void head_deferred_end(const deconv_job *j, int i, const float *pad_dy,
                              const float *g_hat, const double row_sums[3][4], float *dw_i)
{
    const ae_conv_io *io = &j->io;
    const ae_conv_geom *g = j->g;
    const int out_c = g->big_c, in_c = j->in_c, h = g->big_h, w = g->big_w;
    const size_t padded_row = (size_t)(w + 2) * out_c;
    const float *first = pad_dy + padded_row + out_c, *last = first + (size_t)(h - 1) * padded_row;
    double col_sums[2][4] = {{0}}, taps[9][4];
    for (int r = 0; r < h; r++)
        for (int o = 0; o < out_c; o++) {
            col_sums[0][o] += first[(size_t)r * padded_row + o];
            col_sums[1][o] += first[(size_t)r * padded_row + (size_t)(w - 1) * out_c + o];
        }
    for (int kh = 0; kh < 3; kh++) /* kh 0 reads rows -1 .. h - 2, kh 2 rows 1 .. h (-1, h: zero) */
        for (int kw = 0; kw < 3; kw++)
            for (int o = 0; o < out_c; o++) {
                double v = row_sums[2][o];
                if (kh != 1)
                    v -= row_sums[kh == 0 ? 1 : 0][o];
                if (kw != 1)
                    v -= col_sums[kw == 0 ? 1 : 0][o];
                if (kh != 1 && kw != 1) /* the corner both took away */
                    v += (kh == 0 ? last : first)[(kw == 0 ? (size_t)(w - 1) * out_c : 0) + o];
                taps[kh * 3 + kw][o] = v;
            }
    double *acc = ae_bn_grad_sums_slot(io->sums, i);
    for (int c = 0; c < in_c; c++) {
        double dy_sum = 0, dy_xhat_sum = 0;
        for (int tap = 0; tap < 9; tap++)
            for (int o = 0; o < out_c; o++) {
                const size_t at = ((size_t)tap * out_c + o) * in_c + c;
                dy_sum += (double)io->w[at] * taps[tap][o];
                dy_xhat_sum += (double)io->w[at] * (double)g_hat[at];
                dw_i[at] +=
                    io->sums->gamma[c] * g_hat[at] + io->sums->beta[c] * (float)taps[tap][o];
            }
        acc[c] = dy_sum;
        acc[in_c + c] = dy_xhat_sum;
    }
}

/* The output layer's training head for image i (stride 1, so the small and
 * the big image have the same rows): bands of forward rows, each followed by
 * the sigmoid, the loss's sums and gradient of its rows, and every backward
 * band (backward_band's partition of the rows, as backward_image) whose dy
 * rows are all known by then. The input is read and transformed once: the
 * forward leaves its x' rows (deferred: xhat rows) in a ring of rows that
 * the backward reads (the ring, a whole number of backward bands, holds
 * every row from the oldest one the backward still needs to the newest the
 * forward makes), and dy never leaves the cache (deferred: it is kept). */
static void head_image(const void *arg, int i, int t, float *dw_i, int overwrite)
{
    const deconv_job *j = arg;
    const ae_conv_io *io = &j->io;
    const ae_conv_geom *g = j->g;
    const ae_direct_ops *ops = j->ops;
    const int out_c = g->big_c, in_c = j->in_c, h = g->big_h, w = g->big_w;
    const size_t kernel = 9 * (size_t)out_c * in_c, in_row = (size_t)w * in_c;
    const size_t out_row = (size_t)w * out_c, padded_row = (size_t)(w + 2) * out_c;
    const size_t padded_dy = ae_direct_padded_floats(h, w, out_c);
    const float *xi = io->x + (size_t)i * h * in_row;
    const float *target = j->loss.target + (size_t)i * h * out_row;
    float *yi = io->y + (size_t)i * h * out_row;
    const int defer = io->sums != NULL;
    float *dx_i = io->dx && !defer ? io->dx + (size_t)i * h * in_row : NULL;
    float *db_i = dw_i + kernel;
    /* ae_deconv2d_head_floats: the whole padded dy, the forward's planar
     * band, x' rows, then (deferred) G and xhat's transform */
    float *pad_dy = defer ? io->dx + (size_t)i * padded_dy : j->s->pad[t];
    float *planar = j->s->pad[t] + padded_dy;
    float *ring = planar + ae_direct_padded_floats(h, w, in_c);
    float *g_hat = ring + in_row * h, *hat_scale = g_hat + kernel, *hat_shift = hat_scale + in_c;
    float *dw_rows = defer ? g_hat : dw_i; /* what weight_grad adds to */
    double row_sums[3][4] = {{0}};
    if (overwrite) {
        memset(dw_i, 0, kernel * sizeof *dw_i);
        memset(db_i, 0, (size_t)out_c * sizeof *db_i);
    }
    const ae_input_xform hat = {hat_scale, hat_shift,
                                io->xform ? io->xform->slope : 0.0f}; /* xhat */
    if (defer) {
        memset(g_hat, 0, kernel * sizeof *g_hat);
        for (int c = 0; c < in_c; c++) {
            hat_scale[c] = io->sums->invstd[c];
            hat_shift[c] = -io->sums->mean[c] * io->sums->invstd[c];
        }
    }
    memset(pad_dy, 0, padded_row * sizeof *pad_dy); /* the zero border */
    memset(pad_dy + (size_t)(h + 1) * padded_row, 0, padded_row * sizeof *pad_dy);
    for (int r = 1; r <= h; r++) {
        memset(pad_dy + r * padded_row, 0, (size_t)out_c * sizeof *pad_dy);
        memset(pad_dy + (r + 1) * padded_row - out_c, 0, (size_t)out_c * sizeof *pad_dy);
    }
    const int back = backward_band(j);
    int band = ae_direct_band(g, 0, in_c);
    band = band < h ? (band + back - 1) / back * back : h; /* whole backward bands */
    /* The backward lags at most back rows behind a forward band, whose input
     * reaches one row past it: rows [first - back, first + band] are live. */
    int ring_rows = (band + 2 * back + 1) / back * back;
    ring_rows = ring_rows < h ? ring_rows : h;
    double lanes[AE_LOSS_LANES] = {0};
    int done = 0; /* rows of dx and dw done */
    ae_band_rows held = {0, 0};
    const ae_band_buf buf = {.ops = ops, .dst = planar, .h = h, .w = w, .c = in_c, .held = &held};
    const ae_kept_rows kept = {.rows = ring, .count = ring_rows, .xform = defer ? &hat : NULL};
    for (int first = 0; first < h; first += band) {
        const int end = first + band < h ? first + band : h;
        int lo, hi;
        ae_direct_rows_needed(g, 0, first, end, &lo, &hi);
        ae_conv_input_planar_rows(&buf, xi, 0, io->xform, lo, hi, &kept);
        ops->small_to_big_narrow(planar, lo, g, in_c, io->w, io->b, yi, first, end);
        ops->sigmoid(yi + first * out_row, yi + first * out_row, (size_t)(end - first) * out_row);
        for (int r = first; r < end; r++) {
            float *dy = pad_dy + (r + 1) * padded_row + out_c, sum[4];
            ops->loss_lanes_add(lanes, r * out_row, yi + r * out_row, target + r * out_row,
                                out_row, dy, j->loss.scale);
            ops->bias_grad(sum, dy, (size_t)w, out_c); /* db_i + sum: bias_grad_add's bits */
            for (int o = 0; o < out_c; o++) {
                db_i[o] += sum[o];
                if (r == 0)
                    row_sums[0][o] = sum[o];
                row_sums[1][o] = sum[o]; /* the last row's, in the end */
                row_sums[2][o] += sum[o];
            }
        }
        /* A band of rows [done, stop) reads dy rows done - 1 .. stop. */
        for (int stop; done < h && ((stop = done + back < h ? done + back : h) < end || end == h);
             done = stop) {
            /* x' rows [done, stop): one piece of the ring (ring_rows is a
             * multiple of back, or h) */
            const float *x_rows = io->xform ? ring + (size_t)(done % ring_rows) * in_row : xi;
            ops->weight_grad(pad_dy, 0, x_rows, io->xform ? done : 0, g, in_c, dw_rows, done, stop);
            if (dx_i)
                ops->big_to_small(pad_dy, 0, g, in_c, io->w, NULL, dx_i, 0, done, stop);
        }
    }
    if (defer)
        head_deferred_end(j, i, pad_dy, g_hat, row_sums, dw_i);
    j->loss.image_sums[i] = ae_loss_lanes_total(lanes);
}

int ae_deconv2d_has_head(const ae_conv_geom *g, int isa)
{
    return AE_NARROW(g) && ae_direct_ops_for(isa) != NULL;
}

size_t ae_deconv2d_head_floats(const ae_conv_geom *g, int in_c)
{
    if (!AE_NARROW(g))
        return 0;
    return ae_direct_padded_floats(g->big_h, g->big_w, g->big_c) +
           ae_direct_padded_floats(g->small_h, g->small_w, in_c) +
           (size_t)g->small_w * in_c * (size_t)g->small_h + /* the ring: at most every row */
           9 * (size_t)g->big_c * in_c + 2 * (size_t)in_c;
}

void ae_deconv2d_train_head(const ae_conv_io *io, const ae_head_loss *loss,
                            const ae_conv_shape *shape, ae_scratch *s)
{
    const ae_conv_geom *g = shape->g;
    const int n = shape->n, in_c = shape->small_c;
    assert(ae_deconv2d_has_head(g, s->isa));
    const double macs = 3.0 * n * g->small_h * g->small_w * 9 * g->big_c * in_c;
    deconv_job j = {.io = *io, .g = g, .in_c = in_c, .loss = *loss, .s = s,
                    .ops = ae_direct_ops_for(s->isa)};
    if (!io->dx)
        j.io.sums = NULL;
    ae_grad_slots_run(s, n, macs, 9 * (size_t)g->big_c * in_c, (size_t)g->big_c, head_image, &j,
                      io->dw, io->db);
}
