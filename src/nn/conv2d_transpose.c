/* Conv2DTranspose, 3x3, stride 1 or 2, TensorFlow "same": the input-gradient of
 * the forward "same" convolution from the big image to the small one. For
 * stride 2 the full scatter y[2i + k] += x[i] w[k] covers 0..2n and TF keeps
 * [0, 2n): col2im's padding rule drops the last row and column by itself.
 *
 *   x  (n, small_h, small_w, in)
 *   w  (3, 3, out, in) as Keras stores it = a (9 out) x in matrix
 *   y  (n, big_h, big_w, out)       y = col2im(x @ w^T) + b,  out = g->big_c
 *
 * Backward: dx = im2col(dy) @ w, dw = sum_i im2col(dy_i)^T @ x_i, db = sum of
 * dy over pixels. All three are overwritten.
 *
 * With a vector ISA (s->isa) the direct kernels of direct.h replace GEMM +
 * col2im: forward = small_to_big, dx = big_to_small, dw = weight_grad. */
#include "nn/direct.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

void ae_deconv2d_forward(float *y, const float *x, const float *w, const float *b, int n,
                         const ae_conv_geom *g, int in_c, ae_scratch *s)
{
    const int out_c = g->big_c, pixels = g->small_h * g->small_w, k = 9 * out_c;
    const size_t in_size = (size_t)pixels * in_c;
    const size_t big_pixels = (size_t)g->big_h * g->big_w, out_size = big_pixels * out_c;
    const ae_direct_ops *ops = ae_direct_ops_for(s->isa);
    if (ops) {
        ae_direct_transpose_kernel(s->wt, w, out_c, in_c);
#pragma omp parallel for num_threads(ae_scratch_threads(s)) schedule(static)
        for (int i = 0; i < n; i++) {
            float *pad = s->pad[omp_get_thread_num()];
            ae_direct_pad(pad, x + (size_t)i * in_size, g->small_h, g->small_w, in_c);
            ops->small_to_big(pad, g, in_c, s->wt, b, y + (size_t)i * out_size);
        }
        return;
    }
#pragma omp parallel for num_threads(ae_scratch_threads(s)) schedule(static)
    for (int i = 0; i < n; i++) {
        float *col = s->col[omp_get_thread_num()];
        float *yi = y + (size_t)i * out_size;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, pixels, k, in_c, 1.0f,
                    x + (size_t)i * in_size, in_c, w, in_c, 0.0f, col, k);
        for (size_t p = 0; p < big_pixels; p++)
            memcpy(yi + p * out_c, b, (size_t)out_c * sizeof *b);
        ae_col2im_add(col, g, yi);
    }
}

void ae_deconv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                          const float *w, int n, const ae_conv_geom *g, int in_c, ae_scratch *s)
{
    const int out_c = g->big_c, pixels = g->small_h * g->small_w, k = 9 * out_c;
    const size_t in_size = (size_t)pixels * in_c, kernel = (size_t)k * in_c;
    const size_t big_pixels = (size_t)g->big_h * g->big_w, out_size = big_pixels * out_c;
    const int threads = ae_scratch_threads(s);
    const ae_direct_ops *ops = ae_direct_ops_for(s->isa);
    if (ops) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int i = 0; i < n; i++) {
            float *pad = s->pad[omp_get_thread_num()];
            float *dw_i = s->slots + (size_t)i * s->slot_floats, *db_i = dw_i + kernel;
            const float *dy_i = dy + (size_t)i * out_size, *x_i = x + (size_t)i * in_size;
            ae_direct_pad(pad, dy_i, g->big_h, g->big_w, out_c);
            ops->weight_grad(pad, x_i, g, in_c, dw_i);
            if (dx)
                ops->big_to_small(pad, g, in_c, w, NULL, dx + (size_t)i * in_size);
            ae_bias_grad(db_i, dy_i, big_pixels, out_c);
        }
        ae_reduce_slots(dw, s->slots, s->slot_floats, n, kernel, threads);
        ae_reduce_slots(db, s->slots + kernel, s->slot_floats, n, (size_t)out_c, threads);
        return;
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int i = 0; i < n; i++) {
        float *col = s->col[omp_get_thread_num()];
        float *dw_i = s->slots + (size_t)i * s->slot_floats, *db_i = dw_i + kernel;
        const float *dy_i = dy + (size_t)i * out_size, *x_i = x + (size_t)i * in_size;
        ae_im2col(dy_i, g, col);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, in_c, pixels, 1.0f, col, k, x_i,
                    in_c, 0.0f, dw_i, in_c);
        if (dx)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, pixels, in_c, k, 1.0f, col, k,
                        w, in_c, 0.0f, dx + (size_t)i * in_size, in_c);
        ae_bias_grad(db_i, dy_i, big_pixels, out_c);
    }
    ae_reduce_slots(dw, s->slots, s->slot_floats, n, kernel, threads);
    ae_reduce_slots(db, s->slots + kernel, s->slot_floats, n, (size_t)out_c, threads);
}
