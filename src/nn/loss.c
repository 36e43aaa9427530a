/* Mean squared error: the training loss and the anomaly score come from the
 * same loop (per-image sums of squares in double), so they cannot disagree. */
#include "nn/layers.h"

#include <string.h>

/* One image's sum of squared differences in double, as 16 interleaved
 * partial sums (element j goes to lane j % 16) added in lane order at the
 * end: independent chains the compiler can put in vectors without reordering
 * any addition, so every build and machine gives the same bits. This adds
 * elements [at, at + d) of an image to its lanes, so that an image can be
 * taken in pieces, in order, with the bits of one call. GRAD 1 also writes
 * the gradient dy = scale (y - x) as it goes, GRAD 2 that times y (1 - y)
 * (a sigmoid's backward): the float operations of ae_scaled_diff and
 * ae_sigmoid_backward, in their order. add_one: element j of a piece into
 * lane k. */
static inline __attribute__((always_inline)) void add_one(double *lane, int k, const float *y,
                                                          const float *x, size_t j, float *dy,
                                                          float scale, const int GRAD)
{
    const float yv = y[j], xv = x[j];
    double diff = (double)yv - xv;
    lane[k] += diff * diff;
    if (GRAD) {
        float g = scale * (yv - xv);
        dy[j] = GRAD == 2 ? g * yv * (1.0f - yv) : g;
    }
}

static inline __attribute__((always_inline)) void add_lanes(double lane[AE_LOSS_LANES],
                                                            size_t at, const float *y,
                                                            const float *x, size_t d, float *dy,
                                                            float scale, const int GRAD)
{
    enum { LANES = AE_LOSS_LANES };
    size_t j = 0;
    for (; j < d && (at + j) % LANES; j++) /* up to the next lane 0 */
        add_one(lane, (int)((at + j) % LANES), y, x, j, dy, scale, GRAD);
    for (; j + LANES <= d; j += LANES)
        for (int k = 0; k < LANES; k++)
            add_one(lane, k, y, x, j + k, dy, scale, GRAD);
    for (int k = 0; j < d; j++, k++)
        add_one(lane, k, y, x, j, dy, scale, GRAD);
}

double ae_loss_lanes_total(const double lane[AE_LOSS_LANES])
{
    double sum = 0;
    for (int k = 0; k < AE_LOSS_LANES; k++)
        sum += lane[k];
    return sum;
}

void ae_loss_lanes_add(double lane[AE_LOSS_LANES], size_t at, const float *y, const float *x,
                       size_t d, float *dy, float scale)
{
    double local[AE_LOSS_LANES]; /* in registers: the caller's could alias dy for all gcc knows */
    memcpy(local, lane, sizeof local);
    if (dy)
        add_lanes(local, at, y, x, d, dy, scale, 2);
    else
        add_lanes(local, at, y, x, d, NULL, 0.0f, 0);
    memcpy(lane, local, sizeof local);
}

static inline __attribute__((always_inline)) double squared_diff(const float *y, const float *x,
                                                                 size_t d, float *dy,
                                                                 float scale, const int GRAD)
{
    double lane[AE_LOSS_LANES] = {0};
    add_lanes(lane, 0, y, x, d, dy, scale, GRAD);
    return ae_loss_lanes_total(lane);
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
