/* Per-thread scratch and the fixed-order reduction of per-image partials that
 * makes gradients independent of the thread count. */
#include "nn/layers.h"

#include <omp.h>

int ae_scratch_threads(const ae_scratch *s)
{
    int t = omp_get_max_threads();
    return t < s->num_threads ? t : s->num_threads;
}

void ae_reduce_slots(float *dst, const float *slots, size_t stride, int n, size_t count,
                     int threads)
{
    /* Each element's sum runs over the images in order, whoever computes it. */
#pragma omp parallel for num_threads(threads) schedule(static) if (count > 4096)
    for (size_t j = 0; j < count; j++) {
        double sum = 0;
        for (int i = 0; i < n; i++)
            sum += slots[(size_t)i * stride + j];
        dst[j] = (float)sum;
    }
}

void ae_bias_grad(float *db, const float *dy, size_t pixels, int c)
{
    for (int o = 0; o < c; o++)
        db[o] = 0.0f;
    for (size_t p = 0; p < pixels; p++) {
        const float *row = dy + p * c;
        for (int o = 0; o < c; o++)
            db[o] += row[o];
    }
}
