/* Where BatchNorm's fused pieces live (a BatchNorm's output and its dz are
 * never stored; model_run.c picks the fusion for each layer):
 *   forward, training
 *     per-image statistics  ae_bn_stats_image (here), called band by band by
 *                           the convolution under it (conv2d.c, conv2d_transpose.c
 *                           *_forward_stats); the sums: ops->bn_sums
 *                           (kernels/direct_passes.h) or image_sums (here)
 *     merge, moving stats,  ae_batchnorm_finish_train (here; _from for a batch
 *     scale and shift       spread over ranks: model_dist.c)
 *   forward, inference      ae_batchnorm_forward_infer (here); whole chains of
 *                           layers image by image: infer_chain.c
 *   y = scale leaky(z) + shift, made where the next convolution reads it:
 *                           ae_conv_input* (im2col.c) through ops->apply_xform and
 *                           ops->planar_xform_row (kernels/direct_passes.h);
 *                           ae_bn_apply (here) for ae_model_layer_output
 *   backward, first pass: sums of dy and dy xhat
 *                           ae_bn_grad_sums_image (here), called band by band by
 *                           the layer above as it makes its input gradient
 *                           (conv2d.c, conv2d_transpose.c *_backward_through);
 *                           the output layer's head takes them without dx'
 *                           (conv2d_transpose.c, ae_deconv2d_train_head); the
 *                           sums: ops->bn_grad_sums (kernels/direct_passes.h)
 *                           or grad_sums_add (here)
 *     dgamma, dbeta and the ae_batchnorm_backward_finish (here; _from: model_dist.c)
 *     transform of dz
 *   backward, second pass: dz = leaky'(z) k_dy (dy - k_mean - xhat k_xhat)
 *                           under a transposed convolution, band by band in
 *                           ae_conv_grad_rows (im2col.c); under a convolution, an
 *                           image at a time in ae_conv2d_backward_through
 *                           (conv2d.c); otherwise ae_batchnorm_backward_apply
 *                           (here); the kernel: ops->bn_grad_apply
 *                           (kernels/direct_passes.h) or ae_bn_grad_apply (here)
 *
 * BatchNormalization over the channel axis, Keras' way, of a = leaky(z): the
 * LeakyReLU before each BatchNorm is folded in, so that its output is never
 * stored (slope 1 makes it the identity):
 *   training:  mean, var = batch statistics of a (biased variance), and
 *              moving_mean -= (moving_mean - mean) (1 - momentum)
 *              moving_var  -= (moving_var - var * N / (N - 1)) (1 - momentum)
 *   inference: mean, var = the moving statistics
 *   y = a * scale + shift, scale = gamma / sqrt(var + eps), shift = beta - mean * scale
 * with N = n * pixels; the variance from sums of squared deviations over
 * cache-sized chunks of each image, merged exactly (Chan et al.), so that
 * each image is read once from memory.
 * scale and shift are kept (p->scale, p->shift) so that
 * the next convolution can apply them while it reads z (ae_input_xform) and y
 * need not be stored either. Batch sums are per-image partials in double,
 * summed in image order (the same result for any thread count).
 *
 * Backward (training statistics), xhat = (a - mean) * invstd:
 *   dbeta = sum dy, dgamma = sum dy xhat,
 *   da = gamma invstd (dy - dbeta / N - xhat dgamma / N),  dz = da * leaky'(z) */
#include "nn/batchnorm_dist.h"
#include "nn/kernels/direct.h"

#include <assert.h>
#include <math.h>

static inline float leaky(float z, float slope) { return z > 0.0f ? z : slope * z; }

typedef struct {
    float *y;
    const float *z;
    const ae_input_xform *xform;
    int c;
    const ae_direct_ops *ops;
} apply_job;

static void apply_chunk(void *arg, size_t begin, size_t end)
{
    const apply_job *j = arg;
    ae_bn_apply(j->ops, j->y + begin * j->c, j->z + begin * j->c, j->xform, end - begin, j->c);
}

/* y = xform(z) over pixels x c values, on the scratch's pool, by the kernel
 * the convolutions read their input through (the C loop took 5.3 ms of a
 * 256x256x3 training step where the kernel takes 0.4). */
static void apply_all(ae_scratch *s, float *y, const float *z, const ae_input_xform *xform,
                      size_t pixels, int c)
{
    apply_job j = {y, z, xform, c, ae_direct_ops_for(s->isa)};
    ae_parallel_chunks(s, pixels, 4096, pixels * (size_t)c, apply_chunk, &j);
}

/* part (n slots of stride doubles) -> out[ch] = sum over images, in order. */
static void sum_slots(double *out, const double *part, size_t stride, int n, int c)
{
    for (int ch = 0; ch < c; ch++)
        out[ch] = 0;
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            out[ch] += part[(size_t)i * stride + ch];
}

void ae_bn_apply(const ae_direct_ops *ops, float *y, const float *z,
                 const ae_input_xform *xform, size_t pixels, int c)
{
    if (ops) {
        ops->apply_xform(y, z, pixels, c, xform->scale, xform->shift, xform->slope);
        return;
    }
    const float *scale = xform->scale, *shift = xform->shift, slope = xform->slope;
    for (size_t p = 0; p < pixels; p++) {
        const float *zp = z + p * c;
        float *yp = y + p * c;
        for (int ch = 0; ch < c; ch++)
            yp[ch] = leaky(zp[ch], slope) * scale[ch] + shift[ch];
    }
}

/* The BatchNorm sums, the same way in every kernel (kernels/direct_passes.h):
 * runs of BN_RUN pixels summed in float in four chains (pixel offset mod 4), added as
 * (a0 + a1) + (a2 + a3), each run's sum added to a double. Floats keep the
 * vectors full (half the work of summing every value in double); runs of 32
 * keep their rounding far below the statistics' own spread. */
enum { BN_RUN = 32 };

/* One run's sum of its n <= BN_RUN terms. */
static float run_sum(const float *t, size_t n)
{
    float a[4] = {0, 0, 0, 0};
    for (size_t k = 0; k < n; k++)
        a[k % 4] += t[k];
    return (a[0] + a[1]) + (a[2] + a[3]);
}

/* acc[ch] = sum over the pixels of a or, with mean given, of (a - (float)mean)^2. */
static void image_sums(double *acc, const float *z, size_t pixels, int c, float slope,
                       const double *mean)
{
    for (int ch = 0; ch < c; ch++) {
        const float mu = mean ? (float)mean[ch] : 0.0f;
        double total = 0;
        for (size_t p0 = 0; p0 < pixels; p0 += BN_RUN) {
            const size_t n = pixels - p0 < BN_RUN ? pixels - p0 : BN_RUN;
            float t[BN_RUN];
            for (size_t k = 0; k < n; k++) {
                float a = leaky(z[(p0 + k) * c + ch], slope), d = a - mu;
                t[k] = mean ? d * d : a;
            }
            total += (double)run_sum(t, n);
        }
        acc[ch] = total;
    }
}

/* Image i's sum of leaky(z) (first c of its slot) and sum of squared
 * deviations from its own mean (next c). In chunks of pixels small enough to
 * stay in L2 between the chunk's two passes (sum, then squared deviations
 * from the chunk's mean), merged in order by Chan et al.'s formula: one read
 * of the image from memory. The chunks whose pixels are all below `done`
 * (all of them when done = pixels) are added, from *next on; a convolution
 * calls this after each band of its output, while the band is in cache. */
void ae_bn_stats_image(const ae_bn_stats *st, const float *zi, int i, int t, size_t done,
                       size_t *next)
{
    enum { CHUNK_VALUES = 1 << 15 };
    const int c = st->c;
    const size_t chunk = CHUNK_VALUES / (size_t)c > 0 ? CHUNK_VALUES / (size_t)c : 1;
    double *sum = st->part + (size_t)i * st->stride, *m2 = sum + c;
    double *chunk_sum = st->temp + (size_t)t * 2 * st->stride, *chunk_m2 = chunk_sum + c;
    double *chunk_mean = chunk_sum + 2 * c;
    void (*sums)(double *, const float *, size_t, int, float, const double *) =
        st->ops ? st->ops->bn_sums : image_sums;
    for (size_t p0 = *next; p0 < st->pixels; p0 += chunk) {
        const size_t len = st->pixels - p0 < chunk ? st->pixels - p0 : chunk;
        if (p0 + len > done) {
            *next = p0;
            return;
        }
        double *into_sum = p0 == 0 ? sum : chunk_sum, *into_m2 = p0 == 0 ? m2 : chunk_m2;
        sums(into_sum, zi + p0 * c, len, c, st->slope, NULL);
        for (int ch = 0; ch < c; ch++)
            chunk_mean[ch] = into_sum[ch] / (double)len;
        sums(into_m2, zi + p0 * c, len, c, st->slope, chunk_mean);
        if (p0 == 0)
            continue;
        const double na = (double)p0, nb = (double)len, n = na + nb;
        for (int ch = 0; ch < c; ch++) {
            double delta = chunk_mean[ch] - sum[ch] / na;
            m2[ch] += chunk_m2[ch] + delta * delta * na * nb / n;
            sum[ch] += chunk_sum[ch];
        }
    }
    *next = st->pixels;
}

void ae_bn_stats_init(ae_bn_stats *st, ae_scratch *s, int n, size_t pixels, int c, float slope)
{
    assert(c > 0 && 2 * (size_t)c <= s->dslot_doubles); /* a slot holds 2 sums a channel */
    const size_t stride = s->dslot_doubles;
    /* slot i per image, then the total (2 slots), then 2 slots per thread */
    *st = (ae_bn_stats){.part = s->dslots, .temp = s->dslots + ((size_t)n + 2) * stride,
                        .stride = stride, .pixels = pixels, .c = c, .slope = slope,
                        .ops = ae_direct_ops_for(s->isa)};
}

typedef struct {
    const ae_bn_stats *st;
    const float *z;
} stats_job;

static void image_stats(void *arg, int i, int t)
{
    const stats_job *j = arg;
    size_t next = 0;
    ae_bn_stats_image(j->st, j->z + (size_t)i * j->st->pixels * j->st->c, i, t, j->st->pixels,
                      &next);
}

/* Threads for a pass over `values` values. */
static int pass_threads(const ae_scratch *s, size_t values)
{
    return values >= ae_parallel_values() ? ae_scratch_threads(s) : 1;
}

void ae_batchnorm_stats_only(const float *z, const ae_bn_params *bn, int n, size_t pixels, int c,
                             ae_scratch *s)
{
    /* One read of each image from memory: its sum, then (from cache) its sum of
     * squared deviations from its own mean. Slot i: sum (c), then that (c). */
    ae_bn_stats st;
    ae_bn_stats_init(&st, s, n, pixels, c, bn->slope);
    stats_job j = {&st, z};
    ae_pool_run(s->pool, pass_threads(s, n * pixels * c), n, image_stats, &j);
}

void ae_batchnorm_forward_train(float *y, const float *z, const ae_bn_params *bn, int n,
                                size_t pixels, int c, ae_scratch *s)
{
    ae_batchnorm_stats_only(z, bn, n, pixels, c, s);
    ae_batchnorm_finish_train(y, z, bn, n, pixels, c, s);
}

void ae_batchnorm_finish_train(float *y, const float *z, const ae_bn_params *bn, int n,
                               size_t pixels, int c, ae_scratch *s)
{
    const ae_bn_slots own = {s->dslots, n, s->dslot_doubles};
    ae_batchnorm_finish_train_from(y, z, bn, n, &own, pixels, c, s);
}

void ae_batchnorm_finish_train_from(float *y, const float *z, const ae_bn_params *bn, int n,
                                    const ae_bn_slots *slots, size_t pixels, int c,
                                    ae_scratch *s)
{
    const double *part = slots->part;
    const int n_part = slots->count;
    const size_t stride = slots->stride;
    /* the slot after this rank's images is free: the totals go there */
    const double count = (double)n_part * (double)pixels;
    double *total = s->dslots + (size_t)n * s->dslot_doubles;
    double *mean = total + c;
    /* Chan et al.'s pairwise combination, in image order: the batch's sum of
     * squared deviations is sum_i [M2_i + pixels (mean_i - mean)^2]. */
    for (int ch = 0; ch < c; ch++)
        total[ch] = 0;
    for (int i = 0; i < n_part; i++)
        for (int ch = 0; ch < c; ch++)
            total[ch] += part[(size_t)i * stride + ch];
    for (int ch = 0; ch < c; ch++) {
        mean[ch] = total[ch] / count;
        total[ch] = 0;
    }
    for (int i = 0; i < n_part; i++)
        for (int ch = 0; ch < c; ch++) {
            const double *pi = part + (size_t)i * stride;
            double d = pi[ch] / (double)pixels - mean[ch];
            total[ch] += pi[c + ch] + (double)pixels * d * d;
        }

    const float keep = 1.0f - bn->momentum;
    for (int ch = 0; ch < c; ch++) {
        double var = total[ch] / count;
        /* One value per channel has no unbiased variance: keep the biased one (0). */
        double unbiased = count > 1 ? total[ch] / (count - 1) : var;
        float invstd = (float)(1.0 / sqrt(var + (double)bn->epsilon));
        bn->mean[ch] = (float)mean[ch];
        bn->invstd[ch] = invstd;
        bn->scale[ch] = bn->gamma[ch] * invstd;
        bn->shift[ch] = bn->beta[ch] - bn->mean[ch] * bn->scale[ch];
        bn->moving_mean[ch] -= (bn->moving_mean[ch] - bn->mean[ch]) * keep;
        bn->moving_var[ch] -= (bn->moving_var[ch] - (float)unbiased) * keep;
    }
    if (y) {
        ae_input_xform xform = {bn->scale, bn->shift, bn->slope};
        apply_all(s, y, z, &xform, (size_t)n * pixels, c);
    }
}

void ae_batchnorm_forward_infer(float *y, const float *z, const ae_bn_params *bn, int n,
                                size_t pixels, int c, ae_scratch *s)
{
    for (int ch = 0; ch < c; ch++) {
        bn->scale[ch] = bn->gamma[ch] *
                        (float)(1.0 / sqrt((double)bn->moving_var[ch] + (double)bn->epsilon));
        bn->shift[ch] = bn->beta[ch] - bn->moving_mean[ch] * bn->scale[ch];
    }
    if (y) {
        ae_input_xform xform = {bn->scale, bn->shift, bn->slope};
        apply_all(s, y, z, &xform, (size_t)n * pixels, c);
    }
}

/* acc[ch] += sum of dy, acc[c + ch] += sum of dy xhat over the pixels, each
 * in runs as image_sums. */
static void grad_sums_add(double *acc, const float *dy, const float *z, size_t pixels, int c,
                          float slope, const float *mean, const float *invstd)
{
    for (int ch = 0; ch < c; ch++) {
        double total_dy = 0, total_dy_xhat = 0;
        for (size_t p0 = 0; p0 < pixels; p0 += BN_RUN) {
            const size_t n = pixels - p0 < BN_RUN ? pixels - p0 : BN_RUN;
            float g[BN_RUN], gx[BN_RUN];
            for (size_t k = 0; k < n; k++) {
                const size_t at = (p0 + k) * c + ch;
                float xhat = (leaky(z[at], slope) - mean[ch]) * invstd[ch];
                g[k] = dy[at];
                gx[k] = dy[at] * xhat;
            }
            total_dy += (double)run_sum(g, n);
            total_dy_xhat += (double)run_sum(gx, n);
        }
        acc[ch] += total_dy;
        acc[c + ch] += total_dy_xhat;
    }
}

void ae_bn_grad_sums_init(ae_bn_grad_sums *st, ae_scratch *s, const ae_bn_params *bn,
                          const float *z, size_t pixels, int c)
{
    assert(c > 0 && 2 * (size_t)c <= s->dslot_doubles);
    *st = (ae_bn_grad_sums){.part = s->dslots, .stride = s->dslot_doubles, .pixels = pixels,
                            .c = c, .slope = bn->slope, .z = z, .mean = bn->mean,
                            .invstd = bn->invstd, .gamma = bn->gamma, .beta = bn->beta,
                            .ops = ae_direct_ops_for(s->isa)};
}

double *ae_bn_grad_sums_slot(const ae_bn_grad_sums *st, int i)
{
    return st->part + (size_t)i * st->stride;
}

/* The sums go over fixed chunks of each image, whatever bands the caller
 * computes, so that every way of calling gives the same bits. */
void ae_bn_grad_sums_image(const ae_bn_grad_sums *st, const float *dy_i, int i, size_t done,
                           size_t *next)
{
    enum { CHUNK_VALUES = 1 << 15 };
    const int c = st->c;
    const size_t chunk = CHUNK_VALUES / (size_t)c > 0 ? CHUNK_VALUES / (size_t)c : 1;
    double *acc = st->part + (size_t)i * st->stride;
    const float *z_i = st->z + (size_t)i * st->pixels * c;
    if (*next == 0)
        for (int ch = 0; ch < 2 * c; ch++)
            acc[ch] = 0;
    for (size_t p0 = *next; p0 < st->pixels; p0 += chunk) {
        const size_t len = st->pixels - p0 < chunk ? st->pixels - p0 : chunk;
        if (p0 + len > done) {
            *next = p0;
            return;
        }
        (st->ops ? st->ops->bn_grad_sums : grad_sums_add)(acc, dy_i + p0 * c, z_i + p0 * c, len,
                                                          c, st->slope, st->mean, st->invstd);
    }
    *next = st->pixels;
}

typedef struct {
    const ae_bn_grad_sums *st;
    const float *dy;
} grad_sums_job;

static void image_grad_sums(void *arg, int i, int t)
{
    (void)t;
    const grad_sums_job *j = arg;
    size_t next = 0;
    ae_bn_grad_sums_image(j->st, j->dy + (size_t)i * j->st->pixels * j->st->c, i,
                          j->st->pixels, &next);
}

void ae_batchnorm_backward_finish(float *dgamma, float *dbeta, const ae_bn_params *bn,
                                  const float *z, int n, size_t pixels, int c, ae_scratch *s,
                                  ae_grad_xform *gxform)
{
    const ae_bn_slots own = {s->dslots, n, s->dslot_doubles};
    ae_batchnorm_backward_finish_from(dgamma, dbeta, bn, z, &own, n, pixels, c, s, gxform);
}

void ae_batchnorm_backward_finish_from(float *dgamma, float *dbeta, const ae_bn_params *bn,
                                       const float *z, const ae_bn_slots *slots, int n,
                                       size_t pixels, int c, ae_scratch *s,
                                       ae_grad_xform *gxform)
{
    const double *part = slots->part;
    const int n_part = slots->count;
    const size_t stride = slots->stride;
    const double count = (double)n_part * (double)pixels;
    double *total = s->dslots + (size_t)n * s->dslot_doubles;
    float *k_dy = s->channel, *k_mean = k_dy + c, *k_xhat = k_dy + 2 * c;
    sum_slots(total, part, stride, n_part, 2 * c);
    for (int ch = 0; ch < c; ch++) {
        dbeta[ch] = (float)total[ch];
        dgamma[ch] = (float)total[c + ch];
        k_dy[ch] = bn->gamma[ch] * bn->invstd[ch];
        k_mean[ch] = (float)(total[ch] / count);
        k_xhat[ch] = (float)(total[c + ch] / count);
    }
    *gxform = (ae_grad_xform){.z = z, .mean = bn->mean, .invstd = bn->invstd, .k_dy = k_dy,
                        .k_mean = k_mean, .k_xhat = k_xhat, .slope = bn->slope};
}

void ae_batchnorm_backward_sums_only(const float *dy, const float *z, const ae_bn_params *bn, int n,
                                     size_t pixels, int c, ae_scratch *s)
{
    ae_bn_grad_sums st;
    ae_bn_grad_sums_init(&st, s, bn, z, pixels, c);
    grad_sums_job j = {&st, dy};
    ae_pool_run(s->pool, pass_threads(s, n * pixels * c), n, image_grad_sums, &j);
}

void ae_batchnorm_backward_sums(float *dgamma, float *dbeta, const float *dy, const float *z,
                                const ae_bn_params *bn, int n, size_t pixels, int c,
                                ae_scratch *s, ae_grad_xform *gxform)
{
    ae_batchnorm_backward_sums_only(dy, z, bn, n, pixels, c, s);
    ae_batchnorm_backward_finish(dgamma, dbeta, bn, z, n, pixels, c, s, gxform);
}

typedef struct {
    float *dz;
    const float *dy;
    const ae_grad_xform *gxform;
    size_t pixels;
    int c;
    const ae_direct_ops *ops;
} apply_grad_job;

void ae_bn_grad_apply(const struct ae_direct_ops_s *ops, float *dz, const float *dy,
                      const float *z, const ae_grad_xform *g, size_t pixels, int c)
{
    if (ops) {
        ops->bn_grad_apply(dz, dy, z, pixels, c, g->slope, g->mean, g->invstd, g->k_dy,
                           g->k_mean, g->k_xhat);
        return;
    }
    for (size_t p = 0; p < pixels * c; p += c)
        for (int ch = 0; ch < c; ch++) {
            float zi = z[p + ch];
            float xhat = (leaky(zi, g->slope) - g->mean[ch]) * g->invstd[ch];
            float da = g->k_dy[ch] * (dy[p + ch] - g->k_mean[ch] - xhat * g->k_xhat[ch]);
            dz[p + ch] = zi > 0.0f ? da : g->slope * da;
        }
}

static void image_grad_apply(void *arg, int i, int t)
{
    (void)t;
    const apply_grad_job *j = arg;
    const size_t at = (size_t)i * j->pixels * j->c;
    ae_bn_grad_apply(j->ops, j->dz + at, j->dy + at, j->gxform->z + at, j->gxform, j->pixels, j->c);
}

void ae_batchnorm_backward_apply(float *dz, const float *dy, const ae_grad_xform *gxform, int n,
                                 size_t pixels, int c, ae_scratch *s)
{
    apply_grad_job j = {dz, dy, gxform, pixels, c, ae_direct_ops_for(s->isa)};
    ae_pool_run(s->pool, pass_threads(s, n * pixels * c), n, image_grad_apply, &j);
}

void ae_batchnorm_backward(float *dz, float *dgamma, float *dbeta, const float *dy,
                           const float *z, const ae_bn_params *bn, int n, size_t pixels, int c,
                           ae_scratch *s)
{
    ae_grad_xform gxform;
    ae_batchnorm_backward_sums(dgamma, dbeta, dy, z, bn, n, pixels, c, s, &gxform);
    ae_batchnorm_backward_apply(dz, dy, &gxform, n, pixels, c, s);
}
