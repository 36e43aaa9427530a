/* Conv2D, 3x3, stride 1 or 2, TensorFlow "same" padding, as im2col + one GEMM
 * per image (NHWC makes the GEMM's output the next layer's input as is).
 *
 *   x  (n, big_h, big_w, in)        in = g->big_c
 *   w  (3, 3, in, out) = a (9 in) x out matrix, Keras' layout
 *   y  (n, small_h, small_w, out)   y = im2col(x) @ w + b
 *
 * Backward: dw = sum_i im2col(x_i)^T @ dy_i, db = sum of dy over pixels,
 * dx = col2im(dy @ w^T). All three are overwritten.
 *
 * With a vector ISA (s->isa) the direct kernels of direct.h replace im2col +
 * GEMM: forward = big_to_small, dx = small_to_big, dw = weight_grad, each on
 * a zero-padded copy of one image in the thread's pad buffer. */
#include "nn/direct.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

void ae_conv2d_forward(float *y, const float *x, const float *w, const float *b, int n,
                       const ae_conv_geom *g, int out_c, ae_scratch *s)
{
    const size_t in_size = (size_t)g->big_h * g->big_w * g->big_c;
    const int pixels = g->small_h * g->small_w, k = 9 * g->big_c;
    const size_t out_size = (size_t)pixels * out_c;
    const ae_direct_ops *ops = ae_direct_ops_for(s->isa);
    if (ops) {
#pragma omp parallel for num_threads(ae_scratch_threads(s)) schedule(static)
        for (int i = 0; i < n; i++) {
            float *pad = s->pad[omp_get_thread_num()];
            ae_direct_pad(pad, x + (size_t)i * in_size, g->big_h, g->big_w, g->big_c);
            ops->big_to_small(pad, g, out_c, w, b, y + (size_t)i * out_size);
        }
        return;
    }
#pragma omp parallel for num_threads(ae_scratch_threads(s)) schedule(static)
    for (int i = 0; i < n; i++) {
        float *col = s->col[omp_get_thread_num()];
        float *yi = y + (size_t)i * out_size;
        ae_im2col(x + (size_t)i * in_size, g, col);
        for (int p = 0; p < pixels; p++)
            memcpy(yi + (size_t)p * out_c, b, (size_t)out_c * sizeof *b);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, pixels, out_c, k, 1.0f, col, k, w,
                    out_c, 1.0f, yi, out_c);
    }
}

void ae_conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, int n, const ae_conv_geom *g, int out_c, ae_scratch *s)
{
    const size_t in_size = (size_t)g->big_h * g->big_w * g->big_c;
    const int pixels = g->small_h * g->small_w, k = 9 * g->big_c;
    const size_t out_size = (size_t)pixels * out_c, kernel = (size_t)k * out_c;
    const int threads = ae_scratch_threads(s);
    const ae_direct_ops *ops = ae_direct_ops_for(s->isa);
    if (ops) {
        const size_t big_padded = ae_direct_padded_floats(g->big_h, g->big_w, g->big_c);
        if (dx)
            ae_direct_transpose_kernel(s->wt, w, g->big_c, out_c);
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int i = 0; i < n; i++) {
            float *pad_x = s->pad[omp_get_thread_num()], *pad_dy = pad_x + big_padded;
            float *dw_i = s->slots + (size_t)i * s->slot_floats, *db_i = dw_i + kernel;
            const float *dy_i = dy + (size_t)i * out_size;
            ae_direct_pad(pad_x, x + (size_t)i * in_size, g->big_h, g->big_w, g->big_c);
            ops->weight_grad(pad_x, dy_i, g, out_c, dw_i);
            ae_bias_grad(db_i, dy_i, (size_t)pixels, out_c);
            if (dx) {
                ae_direct_pad(pad_dy, dy_i, g->small_h, g->small_w, out_c);
                ops->small_to_big(pad_dy, g, out_c, s->wt, NULL, dx + (size_t)i * in_size);
            }
        }
        ae_reduce_slots(dw, s->slots, s->slot_floats, n, kernel, threads);
        ae_reduce_slots(db, s->slots + kernel, s->slot_floats, n, (size_t)out_c, threads);
        return;
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int i = 0; i < n; i++) {
        float *col = s->col[omp_get_thread_num()];
        float *dw_i = s->slots + (size_t)i * s->slot_floats, *db_i = dw_i + kernel;
        const float *dy_i = dy + (size_t)i * out_size;
        ae_im2col(x + (size_t)i * in_size, g, col);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, out_c, pixels, 1.0f, col, k, dy_i,
                    out_c, 0.0f, dw_i, out_c);
        ae_bias_grad(db_i, dy_i, (size_t)pixels, out_c);
        if (dx) {
            float *dx_i = dx + (size_t)i * in_size;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, pixels, k, out_c, 1.0f, dy_i,
                        out_c, w, out_c, 0.0f, col, k);
            memset(dx_i, 0, in_size * sizeof *dx_i);
            ae_col2im_add(col, g, dx_i);
        }
    }
    ae_reduce_slots(dw, s->slots, s->slot_floats, n, kernel, threads);
    ae_reduce_slots(db, s->slots + kernel, s->slot_floats, n, (size_t)out_c, threads);
}
