/* BatchNormalization over the channel axis of x (n, pixels, c), Keras' way:
 *   training:  mean, var = batch statistics (biased variance), and
 *              moving_mean -= (moving_mean - mean) (1 - momentum)
 *              moving_var  -= (moving_var - var * N / (N - 1)) (1 - momentum)
 *   inference: mean, var = the moving statistics
 *   y = x * scale + shift, scale = gamma / sqrt(var + eps), shift = beta - mean * scale
 * with N = n * pixels. Batch sums are per-image partials in double, summed in
 * image order (the same result for any thread count).
 *
 * Backward (training statistics), xhat = (x - mean) * invstd:
 *   dbeta = sum dy, dgamma = sum dy xhat,
 *   dx = gamma invstd (dy - dbeta / N - xhat dgamma / N) */
#include "nn/layers.h"

#include <math.h>

/* part (n slots of stride doubles) -> out[ch] = sum over images, in order. */
static void sum_slots(double *out, const double *part, size_t stride, int n, int c)
{
    for (int ch = 0; ch < c; ch++)
        out[ch] = 0;
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            out[ch] += part[(size_t)i * stride + ch];
}

static void normalize(float *y, const float *x, const float *scale, const float *shift, int n,
                      size_t pixels, int c, int threads)
{
    const size_t per_image = pixels * c;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int i = 0; i < n; i++) {
        for (size_t p = 0; p < pixels; p++) {
            const float *xp = x + (size_t)i * per_image + p * c;
            float *yp = y + (size_t)i * per_image + p * c;
            for (int ch = 0; ch < c; ch++)
                yp[ch] = xp[ch] * scale[ch] + shift[ch];
        }
    }
}

void ae_batchnorm_forward_train(float *y, const float *x, const float *gamma, const float *beta,
                                float *moving_mean, float *moving_var, float *saved_mean,
                                float *saved_invstd, int n, size_t pixels, int c, float momentum,
                                float epsilon, ae_scratch *s)
{
    const int threads = ae_scratch_threads(s);
    const size_t per_image = pixels * c, stride = s->dslot_doubles;
    const double count = (double)n * (double)pixels;
    double *part = s->dslots, *total = s->dslots + (size_t)n * stride;
    double *mean = total + c;

#pragma omp parallel for num_threads(threads) schedule(static)
    for (int i = 0; i < n; i++) {
        double *pi = part + (size_t)i * stride;
        for (int ch = 0; ch < c; ch++)
            pi[ch] = 0;
        for (size_t p = 0; p < pixels; p++) {
            const float *xp = x + (size_t)i * per_image + p * c;
            for (int ch = 0; ch < c; ch++)
                pi[ch] += xp[ch];
        }
    }
    sum_slots(total, part, stride, n, c);
    for (int ch = 0; ch < c; ch++)
        mean[ch] = total[ch] / count;

    /* Two passes: the sum of squared deviations does not cancel like E[x^2] - E[x]^2. */
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int i = 0; i < n; i++) {
        double *pi = part + (size_t)i * stride;
        for (int ch = 0; ch < c; ch++)
            pi[ch] = 0;
        for (size_t p = 0; p < pixels; p++) {
            const float *xp = x + (size_t)i * per_image + p * c;
            for (int ch = 0; ch < c; ch++) {
                double d = xp[ch] - mean[ch];
                pi[ch] += d * d;
            }
        }
    }
    sum_slots(total, part, stride, n, c);

    float *scale = s->channel, *shift = s->channel + c;
    const float keep = 1.0f - momentum;
    for (int ch = 0; ch < c; ch++) {
        double var = total[ch] / count;
        /* One value per channel has no unbiased variance: keep the biased one (0). */
        double unbiased = count > 1 ? total[ch] / (count - 1) : var;
        float invstd = (float)(1.0 / sqrt(var + (double)epsilon));
        saved_mean[ch] = (float)mean[ch];
        saved_invstd[ch] = invstd;
        scale[ch] = gamma[ch] * invstd;
        shift[ch] = beta[ch] - saved_mean[ch] * scale[ch];
        moving_mean[ch] -= (moving_mean[ch] - saved_mean[ch]) * keep;
        moving_var[ch] -= (moving_var[ch] - (float)unbiased) * keep;
    }
    normalize(y, x, scale, shift, n, pixels, c, threads);
}

void ae_batchnorm_forward_infer(float *y, const float *x, const float *gamma, const float *beta,
                                const float *moving_mean, const float *moving_var, int n,
                                size_t pixels, int c, float epsilon, ae_scratch *s)
{
    float *scale = s->channel, *shift = s->channel + c;
    for (int ch = 0; ch < c; ch++) {
        scale[ch] = gamma[ch] * (float)(1.0 / sqrt((double)moving_var[ch] + (double)epsilon));
        shift[ch] = beta[ch] - moving_mean[ch] * scale[ch];
    }
    normalize(y, x, scale, shift, n, pixels, c, ae_scratch_threads(s));
}

void ae_batchnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
                           const float *x, const float *gamma, const float *saved_mean,
                           const float *saved_invstd, int n, size_t pixels, int c, ae_scratch *s)
{
    const int threads = ae_scratch_threads(s);
    const size_t per_image = pixels * c, stride = s->dslot_doubles;
    const double count = (double)n * (double)pixels;
    double *part = s->dslots, *total = s->dslots + (size_t)n * stride;

    /* Slot i holds image i's sum of dy (first c) and of dy * xhat (next c). */
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int i = 0; i < n; i++) {
        double *sum_dy = part + (size_t)i * stride, *sum_dy_xhat = sum_dy + c;
        for (int ch = 0; ch < 2 * c; ch++)
            sum_dy[ch] = 0;
        for (size_t p = 0; p < pixels; p++) {
            const size_t at = (size_t)i * per_image + p * c;
            for (int ch = 0; ch < c; ch++) {
                float xhat = (x[at + ch] - saved_mean[ch]) * saved_invstd[ch];
                sum_dy[ch] += dy[at + ch];
                sum_dy_xhat[ch] += (double)dy[at + ch] * xhat;
            }
        }
    }
    sum_slots(total, part, stride, n, 2 * c);

    float *k_dy = s->channel, *k_mean = k_dy + c, *k_xhat = k_dy + 2 * c;
    for (int ch = 0; ch < c; ch++) {
        dbeta[ch] = (float)total[ch];
        dgamma[ch] = (float)total[c + ch];
        k_dy[ch] = gamma[ch] * saved_invstd[ch];
        k_mean[ch] = (float)(total[ch] / count);
        k_xhat[ch] = (float)(total[c + ch] / count);
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int i = 0; i < n; i++) {
        for (size_t p = 0; p < pixels; p++) {
            const size_t at = (size_t)i * per_image + p * c;
            for (int ch = 0; ch < c; ch++) {
                float xhat = (x[at + ch] - saved_mean[ch]) * saved_invstd[ch];
                dx[at + ch] = k_dy[ch] * (dy[at + ch] - k_mean[ch] - xhat * k_xhat[ch]);
            }
        }
    }
}
