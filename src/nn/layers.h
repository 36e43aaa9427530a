/* Internal: the layer kernels of the autoencoder (one file each, forward and
 * backward side by side). Every tensor is float, NHWC, contiguous.
 *
 * Threading and determinism: kernels that reduce over the batch (weight and
 * bias gradients, BatchNorm statistics) write one partial result per IMAGE into
 * caller-provided slots and then sum the slots in image order. The sum order
 * therefore does not depend on the number of threads, and results are
 * bit-identical for any thread count. BLAS runs single-threaded inside the
 * OpenMP loops over images. */
#ifndef AEDET_NN_LAYERS_H
#define AEDET_NN_LAYERS_H

#include <stddef.h>

/* Geometry shared by a 3x3 convolution and its transpose. The "big" image is the
 * convolution's input (the transpose's output): big_h x big_w x big_c. The
 * "small" image has small_h x small_w pixels: small = ceil(big / stride).
 * pad_top/pad_left follow TensorFlow's "same": total = max((small-1)*stride + 3 - big, 0),
 * top = total / 2 (the extra row goes to the bottom). */
typedef struct {
    int big_h, big_w, big_c;
    int small_h, small_w;
    int stride, pad_top, pad_left;
} ae_conv_geom;

void ae_conv_geom_init(ae_conv_geom *g, int big_h, int big_w, int big_c, int stride);

/* Per-thread scratch for one image, and per-image partial-sum slots. */
typedef struct {
    int num_threads;       /* scratch buffers available */
    int isa;               /* AE_ISA_* (isa.h): 0 is the portable im2col + BLAS path */
    float **col;           /* portable path: num_threads buffers of col_floats each */
    size_t col_floats;
    float **pad;           /* direct path: num_threads buffers of pad_floats each */
    size_t pad_floats;     /* a padded big image plus a padded small one */
    float *wt;             /* direct path: a transposed kernel, wt_floats */
    size_t wt_floats;
    float *slots;          /* max_batch x slot_floats: per-image weight-gradient partials */
    size_t slot_floats;
    double *dslots;        /* max_batch x dslot_doubles: per-image BatchNorm partials */
    size_t dslot_doubles;
    float *channel;        /* 4 x max channels: per-channel coefficients */
} ae_scratch;

/* scratch.c. Threads to use now: the caller's OpenMP setting, capped by the
 * scratch buffers made. */
int ae_scratch_threads(const ae_scratch *s);
/* dst[j] = sum over images i = 0..n-1, in that order, of slots[i*stride + j]. */
void ae_reduce_slots(float *dst, const float *slots, size_t stride, int n, size_t count,
                     int threads);

/* db[o] = sum over pixels of dy[p][o] (one image), in pixel order. */
void ae_bias_grad(float *db, const float *dy, size_t pixels, int c);

/* im2col.c. col is (small_h*small_w) x (9*big_c), row (kh*3+kw)*big_c + c. */
void ae_im2col(const float *img, const ae_conv_geom *g, float *col);
/* Adds col back into img (which the caller zeroes or pre-fills). */
void ae_col2im_add(const float *col, const ae_conv_geom *g, float *img);

/* conv2d.c: x (n, big_h, big_w, in) -> y (n, small_h, small_w, out);
 * w (3,3,in,out), b (out). Forward overwrites y. Backward OVERWRITES dw, db
 * and (when dx is not NULL) dx. */
void ae_conv2d_forward(float *y, const float *x, const float *w, const float *b, int n,
                       const ae_conv_geom *g, int out_c, ae_scratch *s);
void ae_conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, int n, const ae_conv_geom *g, int out_c, ae_scratch *s);

/* conv2d_transpose.c: x (n, small_h, small_w, in) -> y (n, big_h, big_w, big_c);
 * w (3,3,big_c,in) as Keras stores it, b (big_c). Same overwrite rules. */
void ae_deconv2d_forward(float *y, const float *x, const float *w, const float *b, int n,
                         const ae_conv_geom *g, int in_c, ae_scratch *s);
void ae_deconv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                          const float *w, int n, const ae_conv_geom *g, int in_c, ae_scratch *s);

/* dense.c: x (n, in) -> y (n, out); w (in, out), b (out). Backward overwrites
 * dw, db, dx (dx may be NULL). One single-threaded GEMM over the batch. */
void ae_dense_forward(float *y, const float *x, const float *w, const float *b, int n, int in,
                      int out);
void ae_dense_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                       const float *w, int n, int in, int out);

/* batchnorm.c over x (n, pixels, c), per channel. Training: batch statistics
 * (biased variance) normalize, and saved_mean/saved_invstd (c each) keep them
 * for the backward; moving_mean/moving_var (c each) move towards the batch
 * statistics (unbiased variance) with the momentum. Inference: the moving
 * statistics. Backward overwrites dx (may alias dy), dgamma, dbeta. */
void ae_batchnorm_forward_train(float *y, const float *x, const float *gamma, const float *beta,
                                float *moving_mean, float *moving_var, float *saved_mean,
                                float *saved_invstd, int n, size_t pixels, int c, float momentum,
                                float epsilon, ae_scratch *s);
void ae_batchnorm_forward_infer(float *y, const float *x, const float *gamma, const float *beta,
                                const float *moving_mean, const float *moving_var, int n,
                                size_t pixels, int c, float epsilon, ae_scratch *s);
void ae_batchnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
                           const float *x, const float *gamma, const float *saved_mean,
                           const float *saved_invstd, int n, size_t pixels, int c, ae_scratch *s);

/* activation.c, over count values. dx may alias dy. */
void ae_leaky_forward(float *y, const float *x, size_t count, float slope);
void ae_leaky_backward(float *dx, const float *dy, const float *x, size_t count, float slope);
void ae_sigmoid_forward(float *y, const float *x, size_t count);
void ae_sigmoid_backward(float *dx, const float *dy, const float *y, size_t count);

/* loss.c: mean squared error of y against x, n images of d values each.
 * per_image (may be NULL) gets each image's mean; returns the batch mean.
 * The gradient of the batch mean: dy = 2 (y - x) / (n d). */
double ae_mse_forward(const float *y, const float *x, int n, size_t d, float *per_image);
void ae_mse_backward(float *dy, const float *y, const float *x, int n, size_t d);

/* adam.c: one Keras Adam update of count parameters at step t = iterations + 1
 * with learning rate lr_t. With commit 0 nothing is written: it only counts
 * the parameters whose new value (or moment) would not be finite. With commit
 * 1 it writes w, m, v and returns the same count. */
size_t ae_adam_update(float *w, float *m, float *v, const float *g, size_t count, double lr_t,
                      double beta1, double beta2, double epsilon, long long t, int commit);

#endif
