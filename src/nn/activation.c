/* Element-wise activations over count values; the backward may run in place
 * (dx == dy).
 *   LeakyReLU: y = x > 0 ? x : slope x         dx = dy * (x > 0 ? 1 : slope)
 *   sigmoid:   y = 1 / (1 + exp(-x))           dx = dy * y (1 - y) */
#include "nn/layers.h"

#include <math.h>

void ae_leaky_forward(float *y, const float *x, size_t count, float slope)
{
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++)
        y[i] = x[i] > 0.0f ? x[i] : slope * x[i];
}

void ae_leaky_backward(float *dx, const float *dy, const float *x, size_t count, float slope)
{
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++)
        dx[i] = x[i] > 0.0f ? dy[i] : slope * dy[i];
}

void ae_sigmoid_forward(float *y, const float *x, size_t count)
{
    /* exp of a non-positive number only: no overflow for large |x|. */
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++) {
        float e = expf(-fabsf(x[i]));
        y[i] = x[i] >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    }
}

void ae_sigmoid_backward(float *dx, const float *dy, const float *y, size_t count)
{
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++)
        dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}
