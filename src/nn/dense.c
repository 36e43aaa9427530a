/* Dense. The forward runs one matrix-vector product per image, so an image's
 * result does not depend on the batch it came in: OpenBLAS picks different
 * GEMM kernels (and so rounding) for different batch sizes, and a score must
 * be the same whether an image is scored alone or with 31 others. The weights
 * are read once per image, a small cost next to the convolutions. The
 * backward is one GEMM over the batch (single-threaded BLAS, so the result
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
    for (int i = 0; i < n; i++) {
        float *yi = y + (size_t)i * out;
        memcpy(yi, b, (size_t)out * sizeof *b);
        cblas_sgemv(CblasRowMajor, CblasTrans, in, out, 1.0f, w, out, x + (size_t)i * in, 1, 1.0f, yi, 1);
    }
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
