/* Adam as TensorFlow's ApplyAdam kernel (Keras' legacy optimizer) computes it:
 *   m += (g - m) (1 - beta1);  v += (g^2 - v) (1 - beta2)
 *   w -= lr_t sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + epsilon)
 * with epsilon added before the bias correction, t = iterations + 1. */
#include "nn/layers.h"

#include <float.h>
#include <math.h>
#include <stdint.h>

typedef struct {
    float alpha, one_minus_b1, one_minus_b2, eps, inv_eps;
} adam_consts;

/* One parameter's new moments. */
static inline void moments(float m, float v, float g, const adam_consts *k, float *m_new,
                           float *v_new)
{
    *m_new = m + (g - m) * k->one_minus_b1;
    *v_new = v + (g * g - v) * k->one_minus_b2;
}

/* One parameter's new weight and moments. */
static inline void update(float w, float m, float v, float g, const adam_consts *k,
                          float *w_new, float *m_new, float *v_new)
{
    float mi, vi;
    moments(m, v, g, k, &mi, &vi);
    *w_new = w - k->alpha * mi / (sqrtf(vi) + k->eps);
    *m_new = mi;
    *v_new = vi;
}

/* x - x == 0 exactly for finite x, NaN for NaN and Inf: a branch-free test. */
static inline size_t not_finite(float w, float v) { return !(((w - w) == 0.0f) & ((v - v) == 0.0f)); }

/* The four arrays (17 MB each for the tutorial's model at 256x256) stream
 * from memory: by the hardware's prefetchers alone both passes read them at
 * 15-16 GB/s; asked for 4 KB ahead, at 22-24 (8.5 -> 6 ms a step). */
static inline void prefetch4(const float *w, const float *m, const float *v, const float *g,
                             size_t i)
{
    const uintptr_t ahead = 4096;
    __builtin_prefetch((const void *)((uintptr_t)(w + i) + ahead), 0, 1);
    __builtin_prefetch((const void *)((uintptr_t)(m + i) + ahead), 0, 1);
    __builtin_prefetch((const void *)((uintptr_t)(v + i) + ahead), 0, 1);
    __builtin_prefetch((const void *)((uintptr_t)(g + i) + ahead), 0, 1);
}

/* Commits n updates; returns those not finite. */
static inline size_t commit_run(float *restrict w, float *restrict m, float *restrict v,
                                const float *restrict g, size_t n, const adam_consts *k)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        update(w[i], m[i], v[i], g[i], k, &w[i], &m[i], &v[i]);
        bad += not_finite(w[i], v[i]);
    }
    return bad;
}

/* The updates of n parameters that would not be finite, computed as the
 * commit computes them. */
static inline size_t check_exact(const float *w, const float *m, const float *v, const float *g,
                                 size_t n, const adam_consts *k)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float wi, mi, vi;
        update(w[i], m[i], v[i], g[i], k, &wi, &mi, &vi);
        bad += not_finite(wi, vi);
    }
    return bad;
}

/* The check needs only whether each update stays finite, and where a bound
 * says so it skips the square root and the division, which set this pass's
 * speed: with v' in [0, FLT_MAX] and epsilon > 0, the divisor sqrt(v') +
 * epsilon >= epsilon, so |w'| <= |w| + |alpha m'| / epsilon (rounding
 * included, within the margin of a factor 4). A NaN anywhere fails the
 * bound; then, and only then, the n updates are computed (check_exact).
 * Adds the gradients that are not finite to *grads. */
static inline size_t check_run(const float *restrict w, const float *restrict m,
                               const float *restrict v, const float *restrict g, size_t n,
                               const adam_consts *k, size_t *grads)
{
    size_t unsure = 0, bad_g = 0;
    for (size_t i = 0; i < n; i++) {
        float mi, vi;
        moments(m[i], v[i], g[i], k, &mi, &vi);
        const float bound = fabsf(w[i]) + fabsf(k->alpha * mi) * k->inv_eps;
        unsure += !((vi >= 0.0f) & (vi <= FLT_MAX) & (bound < FLT_MAX / 4));
        bad_g += not_finite(g[i], 0.0f);
    }
    *grads += bad_g;
    return unsure ? check_exact(w, m, v, g, n, k) : 0;
}

size_t ae_adam_update(float *w, float *m, float *v, const float *g, size_t count,
                      const ae_adam_step *step, int commit, size_t *bad_grads)
{
    const double lr_t = step->lr_t, beta1 = step->beta1, beta2 = step->beta2;
    const double epsilon = step->epsilon;
    const long long t = step->t;
    const float eps = (float)epsilon;
    const adam_consts k = {
        .alpha = (float)(lr_t * sqrt(1.0 - pow(beta2, (double)t)) / (1.0 - pow(beta1, (double)t))),
        .one_minus_b1 = (float)(1.0 - beta1),
        .one_minus_b2 = (float)(1.0 - beta2),
        .eps = eps,
        .inv_eps = eps > 0.0f ? 1.0f / eps : INFINITY,
    };
    /* Chunks of a constant 16 parameters, so that the loops run in vectors
     * without tests (sqrtf inline: the build does not ask math functions for
     * errno); then the tail. */
    enum { CHUNK = 16 };
    const size_t whole = count - count % CHUNK;
    size_t bad = 0, grads = 0;
    if (commit) {
        for (size_t i = 0; i < whole; i += CHUNK) {
            prefetch4(w, m, v, g, i);
            bad += commit_run(w + i, m + i, v + i, g + i, CHUNK, &k);
        }
        bad += commit_run(w + whole, m + whole, v + whole, g + whole, count - whole, &k);
    } else {
        for (size_t i = 0; i < whole; i += CHUNK) {
            prefetch4(w, m, v, g, i);
            bad += check_run(w + i, m + i, v + i, g + i, CHUNK, &k, &grads);
        }
        bad += check_run(w + whole, m + whole, v + whole, g + whole, count - whole, &k, &grads);
        if (bad_grads)
            *bad_grads += grads;
    }
    return bad;
}
