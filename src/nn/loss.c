/* Mean squared error: the training loss and the anomaly score come from the
 * same loop (per-image sums of squares in double), so they cannot disagree. */
#include "nn/layers.h"

double ae_mse_forward(const float *y, const float *x, int n, size_t d, float *per_image)
{
    double total = 0;
    for (int i = 0; i < n; i++) {
        const float *yi = y + (size_t)i * d, *xi = x + (size_t)i * d;
        double sum = 0;
        for (size_t j = 0; j < d; j++) {
            double diff = (double)yi[j] - xi[j];
            sum += diff * diff;
        }
        if (per_image)
            per_image[i] = (float)(sum / (double)d);
        total += sum;
    }
    return n > 0 ? total / ((double)n * (double)d) : 0.0;
}

void ae_scaled_diff(float *dy, const float *y, const float *x, size_t count, float scale)
{
    for (size_t i = 0; i < count; i++)
        dy[i] = scale * (y[i] - x[i]);
}

void ae_mse_backward(float *dy, const float *y, const float *x, int n, size_t d)
{
    const size_t count = (size_t)n * d;
    ae_scaled_diff(dy, y, x, count, (float)(2.0 / (double)count));
}
