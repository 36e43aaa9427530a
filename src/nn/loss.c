/* Mean squared error: the training loss and the anomaly score come from the
 * same loop (per-image sums of squares in double), so they cannot disagree. */
#include "nn/layers.h"

/* One image's sum of squared differences in double, as 16 interleaved
 * partial sums (element j goes to lane j % 16) added in lane order at the
 * end: independent chains the compiler can put in vectors without reordering
 * any addition, so every build and machine gives the same bits. GRAD 1 also
 * writes the gradient dy = scale (y - x) as it goes, GRAD 2 that times
 * y (1 - y) (a sigmoid's backward): the float operations of ae_scaled_diff
 * and ae_sigmoid_backward, in their order. */
static inline __attribute__((always_inline)) double squared_diff(const float *y, const float *x,
                                                                 size_t d, float *dy,
                                                                 float scale, const int GRAD)
{
    enum { LANES = 16 };
    double lane[LANES] = {0};
    size_t j = 0;
    for (; j + LANES <= d; j += LANES)
        for (int k = 0; k < LANES; k++) {
            const float yv = y[j + k], xv = x[j + k];
            double diff = (double)yv - xv;
            lane[k] += diff * diff;
            if (GRAD) {
                float g = scale * (yv - xv);
                dy[j + k] = GRAD == 2 ? g * yv * (1.0f - yv) : g;
            }
        }
    for (int k = 0; j < d; j++, k++) {
        const float yv = y[j], xv = x[j];
        double diff = (double)yv - xv;
        lane[k] += diff * diff;
        if (GRAD) {
            float g = scale * (yv - xv);
            dy[j] = GRAD == 2 ? g * yv * (1.0f - yv) : g;
        }
    }
    double sum = 0;
    for (int k = 0; k < LANES; k++)
        sum += lane[k];
    return sum;
}

double ae_sum_squared_diff(const float *y, const float *x, size_t d)
{
    return squared_diff(y, x, d, NULL, 0.0f, 0);
}

double ae_sum_squared_diff_grad(const float *y, const float *x, size_t d, float *dy, float scale,
                                int sigmoid)
{
    return sigmoid ? squared_diff(y, x, d, dy, scale, 2) : squared_diff(y, x, d, dy, scale, 1);
}

double ae_mse_forward(const float *y, const float *x, int n, size_t d, float *per_image)
{
    double total = 0;
    for (int i = 0; i < n; i++) {
        double sum = ae_sum_squared_diff(y + (size_t)i * d, x + (size_t)i * d, d);
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
