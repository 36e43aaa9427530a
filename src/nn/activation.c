/* Element-wise activations over count values; the backward may run in place
 * (dx == dy).
 *   LeakyReLU: y = x > 0 ? x : slope x         dx = dy * (x > 0 ? 1 : slope)
 *   sigmoid:   y = 1 / (1 + exp(-x))           dx = dy * y (1 - y) */
#include "nn/kernels/direct.h"

#include <math.h>

void ae_leaky_forward(float *y, const float *x, size_t count, float slope)
{
    for (size_t i = 0; i < count; i++)
        y[i] = x[i] > 0.0f ? x[i] : slope * x[i];
}

void ae_leaky_backward(float *dx, const float *dy, const float *x, size_t count, float slope)
{
    for (size_t i = 0; i < count; i++)
        dx[i] = x[i] > 0.0f ? dy[i] : slope * dy[i];
}

void ae_sigmoid_forward(float *y, const float *x, size_t count)
{
    /* exp of a non-positive number only: no overflow for large |x|. */
    for (size_t i = 0; i < count; i++) {
        float e = expf(-fabsf(x[i]));
        y[i] = x[i] >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    }
}

typedef struct {
    const ae_direct_ops *ops;
    float *y;
    const float *x;
} sigmoid_job;

static void sigmoid_chunk(void *arg, size_t begin, size_t end)
{
    const sigmoid_job *j = arg;
    if (j->ops)
        j->ops->sigmoid(j->y + begin, j->x + begin, end - begin);
    else
        ae_sigmoid_forward(j->y + begin, j->x + begin, end - begin);
}

void ae_sigmoid_forward_with(const ae_direct_ops *ops, ae_scratch *s, float *y, const float *x,
                             size_t count)
{
    sigmoid_job j = {ops, y, x};
    if (!s) {
        sigmoid_chunk(&j, 0, count);
        return;
    }
    ae_parallel_chunks(s, count, 1 << 16, count, sigmoid_chunk, &j);
}

void ae_sigmoid_backward(float *dx, const float *dy, const float *y, size_t count)
{
    for (size_t i = 0; i < count; i++)
        dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}
