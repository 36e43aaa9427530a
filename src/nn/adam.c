/* Adam as TensorFlow's ApplyAdam kernel (Keras' legacy optimizer) computes it:
 *   m += (g - m) (1 - beta1);  v += (g^2 - v) (1 - beta2)
 *   w -= lr_t sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + epsilon)
 * with epsilon added before the bias correction, t = iterations + 1. */
#include "nn/layers.h"

#include <math.h>

size_t ae_adam_update(float *w, float *m, float *v, const float *g, size_t count, double lr_t,
                      double beta1, double beta2, double epsilon, long long t, int commit)
{
    const float alpha = (float)(lr_t * sqrt(1.0 - pow(beta2, (double)t)) / (1.0 - pow(beta1, (double)t)));
    const float one_minus_b1 = (float)(1.0 - beta1), one_minus_b2 = (float)(1.0 - beta2);
    const float eps = (float)epsilon;
    size_t bad = 0;
    for (size_t i = 0; i < count; i++) {
        float mi = m[i] + (g[i] - m[i]) * one_minus_b1;
        float vi = v[i] + (g[i] * g[i] - v[i]) * one_minus_b2;
        float wi = w[i] - alpha * mi / (sqrtf(vi) + eps);
        /* x - x == 0 exactly for finite x, NaN for NaN and Inf: a branch-free test. */
        bad += !((wi - wi) == 0.0f && (vi - vi) == 0.0f);
        if (commit) {
            m[i] = mi;
            v[i] = vi;
            w[i] = wi;
        }
    }
    return bad;
}
