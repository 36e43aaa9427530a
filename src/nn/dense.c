/* Dense: one GEMM over the whole batch (single-threaded BLAS, so the result
 * does not depend on the thread count).
 *
 *   x (n, in), w (in, out) as Keras stores it, b (out), y (n, out) = x @ w + b
 *   backward: dw = x^T @ dy, db = sum over images of dy, dx = dy @ w^T (overwritten) */
#include "nn/layers.h"

#include <cblas.h>
#include <string.h>

void ae_dense_forward(float *y, const float *x, const float *w, const float *b, int n, int in,
                      int out)
{
    for (int i = 0; i < n; i++)
        memcpy(y + (size_t)i * out, b, (size_t)out * sizeof *b);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, out, in, 1.0f, x, in, w, out, 1.0f,
                y, out);
}

void ae_dense_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                       const float *w, int n, int in, int out)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in, out, n, 1.0f, x, in, dy, out, 0.0f,
                dw, out);
    for (int o = 0; o < out; o++)
        db[o] = 0.0f;
    for (int i = 0; i < n; i++) {
        const float *row = dy + (size_t)i * out;
        for (int o = 0; o < out; o++)
            db[o] += row[o];
    }
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, in, out, 1.0f, dy, out, w, out,
                    0.0f, dx, in);
}
