/* Internal: the layer kernels of the autoencoder (one file each, forward and
 * backward side by side). Every tensor is float, NHWC, contiguous.
 *
 * Threading and determinism: kernels that reduce over the batch (weight and
 * bias gradients, BatchNorm statistics) write one partial result per IMAGE into
 * caller-provided slots and then sum the slots in image order. The sum order
 * therefore does not depend on the number of threads, and results are
 * bit-identical for any thread count. The loops over images run on the
 * model's thread pool (pool.h). */
#ifndef AEDET_NN_LAYERS_H
#define AEDET_NN_LAYERS_H

#include "nn/pool.h"

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
    ae_pool *pool;         /* runs the per-image loops (NULL: one thread) */
    int isa;               /* AE_ISA_* (isa.h): 0 is the portable im2col + ae_gemm path */
    float **col;           /* portable path: num_threads buffers of col_floats each */
    size_t col_floats;
    float **pad;           /* num_threads buffers of pad_floats each: one image's */
    size_t pad_floats;     /* transformed input, padded (direct) or not (portable), a
                              padded output gradient (direct conv backward), a row, and
                              a convolution's output gradient (under a BatchNorm) */
    float *wt;             /* direct path: a transposed kernel, wt_floats */
    size_t wt_floats;
    float *slots;          /* max_batch x slot_floats: per-image weight-gradient partials */
    size_t slot_floats;
    double *dslots;        /* (max_batch + 2 + 2 num_threads) x dslot_doubles: per-image
                              BatchNorm partials, totals, per-thread temporaries */
    size_t dslot_doubles;
    float *channel;        /* 4 x max channels: per-channel coefficients */
} ae_scratch;

/* scratch.c. Threads to use now: the thread count setting
 * (ae_set_num_threads), capped by the scratch buffers made. */
int ae_scratch_threads(const ae_scratch *s);

/* Below these sizes a pass runs on the calling thread alone: handing work to
 * the pool (pool.c) and waiting for it costs a few microseconds, ~0.1 ms when
 * a worker has gone to sleep. 2M multiply-adds is ~30 us of one core;
 * element-wise passes count values (64K). */
#define AE_PARALLEL_VALUES ((size_t)1 << 16)
#define AE_PARALLEL_MACS 2e6
/* ae_scratch_threads(s), or 1 for a convolution of fewer multiply-adds than
 * the threshold (AE_PARALLEL_MACS). */
int ae_threads_for(const ae_scratch *s, double macs);
/* The element-wise threshold (AE_PARALLEL_VALUES). */
size_t ae_parallel_values(void);
/* For tests: other thresholds (0, 0 makes every pass parallel). */
void ae_set_parallel_thresholds(double macs, size_t values);
/* dst[j] = sum over images i = 0..n-1, in that order, of slots[i*stride + j]. */
void ae_reduce_slots(float *dst, const float *slots, size_t stride, int n, size_t count,
                     ae_scratch *s);
/* fn(ctx, begin, end) over [0, count) in chunks of `chunk`, on the scratch's
 * pool when work (in values) reaches AE_PARALLEL_VALUES (s NULL: on the
 * caller). fn must give the same result whatever the split (element-wise
 * work), or the chunks must be fixed by the caller's count and chunk alone. */
typedef void (*ae_chunk_fn)(void *ctx, size_t begin, size_t end);
void ae_parallel_chunks(ae_scratch *s, size_t count, size_t chunk, size_t work, ae_chunk_fn fn,
                        void *ctx);

/* db[o] = the sum over pixels of dy[p][o] (one image; _add adds that sum to
 * db[o]), in four float chains by pixel offset mod 4, (a0 + a1) + (a2 + a3),
 * as the vector kernels take it. */
void ae_bias_grad(float *db, const float *dy, size_t pixels, int c);
void ae_bias_grad_add(float *db, const float *dy, size_t pixels, int c);

/* Images per weight-gradient slot in a convolution's backward: images
 * [k G, k G + G) add their gradients into slot k, in index order (so the
 * result does not depend on the thread count), and the slots are summed in
 * order. Small images share slots (G = AE_GRAD_GROUP_MAX) to save zeroing and
 * summing one kernel-sized slot per image; big ones get one each (G = 1),
 * which spreads the work evenly over the threads. */
enum { AE_GRAD_GROUP_MAX = 8 };
int ae_grad_group(double macs_per_image, size_t kernel_floats);
/* A convolution's backward over n images (macs multiply-adds in all) on the
 * pool: image(ctx, i, t, slot, overwrite) adds image i's kernel gradient
 * (kernel floats) and bias gradient (bias floats after it) into its slot,
 * overwriting it when it is the slot's first image; then dw and db are the
 * slots' sums, in order. */
typedef void (*ae_image_grad_fn)(const void *ctx, int i, int t, float *slot, int overwrite);
void ae_grad_slots_run(ae_scratch *s, int n, double macs, size_t kernel, size_t bias,
                       ae_image_grad_fn image, const void *ctx, float *dw, float *db);

/* im2col.c. col is (small_h*small_w) x (9*big_c), row (kh*3+kw)*big_c + c. */
void ae_im2col(const float *img, const ae_conv_geom *g, float *col);
/* Adds col back into img (which the caller zeroes or pre-fills). */
void ae_col2im_add(const float *col, const ae_conv_geom *g, float *img);

/* A per-channel transform the convolutions apply to their input x as they
 * read it: x' = scale[c] * leaky(x) + shift[c], leaky(x) = x > 0 ? x : slope x.
 * It is a BatchNorm (and the LeakyReLU before it) whose output is never
 * stored. NULL means x as is. */
typedef struct {
    const float *scale, *shift;
    float slope;
} ae_input_xform;

/* The gradient a BatchNorm (with the LeakyReLU before it) passes down,
 * computed where the layer under it reads it instead of being stored:
 *   dz = leaky'(z) k_dy (dy - k_mean - xhat k_xhat), xhat = (leaky(z) - mean) invstd
 * per channel: the second pass of ae_batchnorm_backward, the same values to
 * the bit. z is the BatchNorm's input for the whole batch, laid out as dy. */
typedef struct {
    const float *z, *mean, *invstd, *k_dy, *k_mean, *k_xhat;
    float slope;
    /* When dy itself is not stored either (the output layer's training head
     * defers its input gradient): dy holds each image's padded output
     * gradient of the layer above (ae_direct_padded_floats of above_g's big
     * image), and each row of dy is made from it, as that layer's backward
     * would, with above_w, just before the row is read. NULL: dy as is. */
    const float *above_w;
    const ae_conv_geom *above_g;
} ae_grad_xform;

/* conv2d.c: x (n, big_h, big_w, in) -> y (n, small_h, small_w, out);
 * w (3,3,in,out), b (out). Forward overwrites y. Backward OVERWRITES dw, db
 * and (when dx is not NULL) dx, the gradient with respect to the transformed
 * input x'. xform may be NULL. */
void ae_conv2d_forward(float *y, const float *x, const ae_input_xform *xform, const float *w,
                       const float *b, int n, const ae_conv_geom *g, int out_c, ae_scratch *s);
void ae_conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const ae_input_xform *xform, const float *w, int n, const ae_conv_geom *g,
                        int out_c, ae_scratch *s);

/* conv2d_transpose.c: x (n, small_h, small_w, in) -> y (n, big_h, big_w, big_c);
 * w (3,3,big_c,in) as Keras stores it, b (big_c). Same rules. */
void ae_deconv2d_forward(float *y, const float *x, const ae_input_xform *xform, const float *w,
                         const float *b, int n, const ae_conv_geom *g, int in_c, ae_scratch *s);
void ae_deconv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                          const ae_input_xform *xform, const float *w, int n, const ae_conv_geom *g,
                          int in_c, ae_scratch *s);
/* dense.c: x (n, in) -> y (n, out); w (in, out), b (out). The forward sums
 * each image's values in a fixed order (the same bits for any batch and any
 * thread count), on s's pool (s NULL: on the caller). Backward overwrites
 * dw, db, dx (dx may be NULL): GEMMs over the batch for fixed chunks of the
 * inputs, on s's pool (s NULL: on the caller), the same bits either way. */
void ae_dense_forward(float *y, const float *x, const float *w, const float *b, int n, int in,
                      int out, ae_scratch *s);
void ae_dense_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                       const float *w, int n, int in, int out, ae_scratch *s);

/* batchnorm.c: BatchNorm of a = leaky(z) over z (n, pixels, c), per channel,
 * the LeakyReLU before it folded in (slope 1: none). Training: batch
 * statistics (biased variance) normalize, mean/invstd keep them for the
 * backward; moving_mean/moving_var move towards the batch statistics
 * (unbiased variance) with the momentum. Inference: the moving statistics.
 * Both write scale and shift (y = scale * a + shift) and, when y is not
 * NULL, y. Backward: dz (may alias dy), dgamma, dbeta are overwritten; dz is
 * the gradient with respect to z (through the LeakyReLU). */
typedef struct {
    const float *gamma, *beta;
    float *moving_mean, *moving_var;
    float *mean, *invstd; /* c each: the batch statistics, for the backward */
    float *scale, *shift; /* c each: written by both forwards */
    float momentum, epsilon, slope;
} ae_bn_params;

void ae_batchnorm_forward_train(float *y, const float *z, const ae_bn_params *bn, int n,
                                size_t pixels, int c, ae_scratch *s);
void ae_batchnorm_forward_infer(float *y, const float *z, const ae_bn_params *bn, int n,
                                size_t pixels, int c, ae_scratch *s);
void ae_batchnorm_backward(float *dz, float *dgamma, float *dbeta, const float *dy,
                           const float *z, const ae_bn_params *bn, int n, size_t pixels, int c,
                           ae_scratch *s);
/* ae_batchnorm_backward without its second pass: dgamma and dbeta, and in
 * *gxform the transform that gives dz from dy (ae_grad_xform; its coefficients live
 * in s->channel until the next BatchNorm backward). */
void ae_batchnorm_backward_sums(float *dgamma, float *dbeta, const float *dy, const float *z,
                                const ae_bn_params *bn, int n, size_t pixels, int c,
                                ae_scratch *s, ae_grad_xform *gxform);
/* ae_batchnorm_backward_sums in two steps, so that the layer above can add
 * each image's sums while its input gradient (the BatchNorm's dy) is in
 * cache: ae_bn_grad_sums_init (the per-image slots in s->dslots; z the
 * BatchNorm's input for the whole batch), ae_bn_grad_sums_image for every
 * image as ae_bn_stats_image (dy_i the image's dy, done its pixels computed
 * so far, *next from 0), then ae_batchnorm_backward_finish (the same bits as
 * ae_batchnorm_backward_sums). ae_batchnorm_backward_apply is the second
 * pass (dz may alias dy). */
typedef struct {
    double *part;
    size_t stride, pixels;
    int c;
    float slope;
    const float *z, *mean, *invstd, *gamma, *beta;
    const struct ae_direct_ops_s *ops;
} ae_bn_grad_sums;
void ae_bn_grad_sums_init(ae_bn_grad_sums *st, ae_scratch *s, const ae_bn_params *bn,
                          const float *z, size_t pixels, int c);
void ae_bn_grad_sums_image(const ae_bn_grad_sums *st, const float *dy_i, int i, size_t done,
                           size_t *next);
/* Image i's two sums, for a caller that takes them another way: sum of dy
 * over pixels at [0, c), sum of dy xhat at [c, 2c). */
double *ae_bn_grad_sums_slot(const ae_bn_grad_sums *st, int i);
void ae_batchnorm_backward_finish(float *dgamma, float *dbeta, const ae_bn_params *bn,
                                  const float *z, int n, size_t pixels, int c, ae_scratch *s,
                                  ae_grad_xform *gxform);
void ae_batchnorm_backward_apply(float *dz, const float *dy, const ae_grad_xform *gxform, int n,
                                 size_t pixels, int c, ae_scratch *s);
/* The same over pixels x c values of one image (z: its part of gxform->z), on
 * the calling thread; ops (may be NULL) vectorizes it. */
void ae_bn_grad_apply(const struct ae_direct_ops_s *ops, float *dz, const float *dy,
                      const float *z, const ae_grad_xform *gxform, size_t pixels, int c);
/* A convolution's batch, for the calls below that take one: the geometry,
 * the small image's channels (Conv2D: its output's; Conv2DTranspose: its
 * input's, the "in" of the layer's functions above) and the images. */
typedef struct {
    const ae_conv_geom *g;
    int small_c;
    int n;
} ae_conv_shape;

/* A convolution's tensors in training, named as above (the transposed
 * convolution's too); each call below says which it reads and writes, and
 * ignores the rest. */
typedef struct {
    const float *x;
    const ae_input_xform *xform; /* x's transform, or NULL */
    const float *w, *b;
    float *y;
    const float *dy;
    const ae_grad_xform *gxform; /* dy is above a BatchNorm (below), or NULL */
    float *dx, *dw, *db;         /* overwritten; dx may be NULL */
    const ae_bn_grad_sums *sums; /* the BatchNorm sums of dx (below), or NULL */
} ae_conv_io;

/* The convolutions' backward with two BatchNorm passes folded in (both may
 * be NULL): dx, dw and db from dy, x, w and the two below (y and b unused).
 *  - gxform: dy is the gradient above a BatchNorm and gxform its transform; the
 *    layer's output gradient dz = gxform(dy) is never stored. The transposed
 *    convolution makes it band by band as its kernels read it, which needs
 *    the direct kernels (ae_direct_ops_for(s->isa) not NULL); the
 *    convolution, whose output is the small image, makes an image's dz at
 *    once in a per-thread buffer that its two passes (dw, dx) read from cache;
 *  - sums: x is a BatchNorm's input and dx that BatchNorm's dy; each image's
 *    sums are added (ae_bn_grad_sums_image) as dx's bands are computed. */
void ae_conv2d_backward_through(const ae_conv_io *io, const ae_conv_shape *shape, ae_scratch *s);
void ae_deconv2d_backward_through(const ae_conv_io *io, const ae_conv_shape *shape,
                                  ae_scratch *s);
/* ae_batchnorm_forward_train in two steps, so that a convolution can add
 * each image's statistics while its output is in cache: ae_bn_stats_init
 * (the per-image slots in s->dslots), ae_bn_stats_image for every image
 * (done: the image's pixels computed so far; *next, from 0: the first pixel
 * not yet added; i the image, t the calling pool thread), then
 * ae_batchnorm_finish_train (the same bits as ae_batchnorm_forward_train). */
typedef struct {
    double *part, *temp;
    size_t stride, pixels;
    int c;
    float slope;
    const struct ae_direct_ops_s *ops;
} ae_bn_stats;
void ae_bn_stats_init(ae_bn_stats *st, ae_scratch *s, int n, size_t pixels, int c, float slope);
void ae_bn_stats_image(const ae_bn_stats *st, const float *zi, int i, int t, size_t done,
                       size_t *next);
void ae_batchnorm_finish_train(float *y, const float *z, const ae_bn_params *bn, int n,
                               size_t pixels, int c, ae_scratch *s);
/* ae_conv2d_forward / ae_deconv2d_forward that also add each image's
 * BatchNorm statistics of y (stats from ae_bn_stats_init, for y's pixels
 * and channels; NULL: none) band by band, as its rows are computed. */
void ae_conv2d_forward_stats(float *y, const float *x, const ae_input_xform *xform, const float *w,
                             const float *b, int n, const ae_conv_geom *g, int out_c,
                             ae_scratch *s, const ae_bn_stats *stats);
void ae_deconv2d_forward_stats(float *y, const float *x, const ae_input_xform *xform,
                               const float *w, const float *b, int n, const ae_conv_geom *g,
                               int in_c, ae_scratch *s, const ae_bn_stats *stats);
/* ae_deconv2d_forward followed by a sigmoid (ae_sigmoid_forward's bits on
 * each path), applied to each band of y while it is in cache: the layer's
 * own output is never stored. */
void ae_deconv2d_forward_sigmoid(float *y, const float *x, const ae_input_xform *xform,
                                 const float *w, const float *b, int n, const ae_conv_geom *g,
                                 int in_c, ae_scratch *s);
/* The output layer's training head: for the stride-1 transposed convolution
 * with a sigmoid after it (ae_deconv2d_has_head: the narrow direct kernels),
 * the forward with the sigmoid (y), the squared-error sums against target
 * (image_sums[i], the bits of ae_sum_squared_diff), their gradient (scale
 * 2 / (n d)) through the sigmoid, and the layer's backward with that
 * gradient (dx, dw, db), image by image in one pass: the same bits as those
 * steps run apart, without storing dy or reading x twice.
 * With sums (x' a BatchNorm's output, xform its transform), the head defers dx:
 * dx gets each image's padded dy instead (ae_direct_padded_floats(big_h,
 * big_w, big_c) floats an image), which is a fifth of dx's size at 16
 * channels, and the layer under the BatchNorm makes dx's rows from it as it
 * reads them (ae_grad_xform.above_w); the BatchNorm's per-image sums come from
 * G = sum dy xhat (weight_grad on xhat) and S, the sums of dy each tap reads,
 * and dw from gamma G + beta S: the same sums as the steps apart, in another
 * order. s->pad must hold ae_deconv2d_head_floats (0 when the head does not
 * apply). */
int ae_deconv2d_has_head(const ae_conv_geom *g, int isa);
size_t ae_deconv2d_head_floats(const ae_conv_geom *g, int in_c);
/* The head's loss: its target (laid out as y), the gradient's scale, and
 * each image's sum of squared errors (written). */
typedef struct {
    const float *target;
    float scale;
    double *image_sums;
} ae_head_loss;
/* Reads io's x, xform, w, b and sums; writes y, dx, dw and db (dy and
 * gxform unused: the head makes dy). */
void ae_deconv2d_train_head(const ae_conv_io *io, const ae_head_loss *loss,
                            const ae_conv_shape *shape, ae_scratch *s);
/* Inference chains (infer_chain.c): count convolutions, bottom up, each
 * under the BatchNorm and LeakyReLU that the next one's xform applies (from its
 * moving statistics), run depth-first image by image, storing none of the
 * outputs under the top's. x: the bottom layer's input.
 * ae_chain_forward: y = the top's output (n whole images).
 * ae_chain_score: the top is the output layer (a narrow transposed
 * convolution) with its sigmoid: y, and each image's squared-error sums
 * against target (image_sums[i], the bits of ae_sum_squared_diff).
 * Both give the bits of the layer-by-layer forward (and ae_model_loss).
 * s->pad must hold ae_chain_floats, s->wt ae_chain_wt_floats. */
enum { AE_CHAIN_MAX = 8 };
typedef struct {
    const float *w, *b; /* the kernel as Keras stores it, the bias */
    const ae_conv_geom *g;
    int in_c, out_c;
    const ae_input_xform *xform; /* the layer's input transform, or NULL */
    int conv;              /* Conv2D (big to small), or Conv2DTranspose */
} ae_chain_layer;
int ae_chain_fits(const ae_chain_layer *layers, int count, int score, int isa);
size_t ae_chain_floats(const ae_chain_layer *layers, int count, int score);
size_t ae_chain_wt_floats(const ae_chain_layer *layers, int count);
void ae_chain_forward(float *y, const float *x, const ae_chain_layer *layers, int count, int n,
                      ae_scratch *s);
void ae_chain_score(float *y, double *image_sums, const float *target, const float *x,
                    const ae_chain_layer *layers, int count, int n, ae_scratch *s);
/* y = xform(z) over pixels x c values; ops (may be NULL) vectorizes it, with
 * the same bits. */
void ae_bn_apply(const struct ae_direct_ops_s *ops, float *y, const float *z,
                 const ae_input_xform *xform, size_t pixels, int c);

/* activation.c, over count values. dx may alias dy. */
void ae_leaky_forward(float *y, const float *x, size_t count, float slope);
void ae_leaky_backward(float *dx, const float *dy, const float *x, size_t count, float slope);
void ae_sigmoid_forward(float *y, const float *x, size_t count);
void ae_sigmoid_backward(float *dx, const float *dy, const float *y, size_t count);

/* loss.c: mean squared error of y against x, n images of d values each.
 * per_image (may be NULL) gets each image's mean; returns the batch mean.
 * The gradient of the batch mean: dy = 2 (y - x) / (n d). */
double ae_mse_forward(const float *y, const float *x, int n, size_t d, float *per_image);
/* One image's sum of (y - x)^2 over d values, the sum ae_mse_forward takes. */
double ae_sum_squared_diff(const float *y, const float *x, size_t d);
/* The same sum (the same bits), and in the same pass the loss's gradient
 * dy = scale (y - x) (ae_scaled_diff), times y (1 - y) with sigmoid (y a
 * sigmoid's output: ae_sigmoid_backward's factor). */
double ae_sum_squared_diff_grad(const float *y, const float *x, size_t d, float *dy, float scale,
                                int sigmoid);
/* The same sum taken in pieces, with (dy not NULL) the gradient through a
 * sigmoid, as ae_sum_squared_diff_grad with sigmoid set: an image's lanes
 * start at zero, each call adds its elements [at, at + d) (pieces in order),
 * and ae_loss_lanes_total gives the bits of ae_sum_squared_diff over the
 * whole image. */
enum { AE_LOSS_LANES = 16 };
void ae_loss_lanes_add(double lane[AE_LOSS_LANES], size_t at, const float *y, const float *x,
                       size_t d, float *dy, float scale);
double ae_loss_lanes_total(const double lane[AE_LOSS_LANES]);
void ae_mse_backward(float *dy, const float *y, const float *x, int n, size_t d);
/* dy = scale (y - x) over count values: ae_mse_backward's loop, scale = 2 / (n d). */
void ae_scaled_diff(float *dy, const float *y, const float *x, size_t count, float scale);

/* adam.c: one Keras Adam step's constants: the learning rate lr_t (after
 * the decay), the moments' rates, epsilon, and the step t = iterations + 1. */
typedef struct {
    double lr_t, beta1, beta2, epsilon;
    long long t;
} ae_adam_step;
/* One Keras Adam update of count parameters. With commit 0 nothing is
 * written: it only counts the parameters whose new value (or moment) would
 * not be finite, and adds the number of gradients that are not finite to
 * *bad_grads (may be NULL), in the same pass. With commit 1 it writes w, m,
 * v and returns the same count. */
size_t ae_adam_update(float *w, float *m, float *v, const float *g, size_t count,
                      const ae_adam_step *step, int commit, size_t *bad_grads);

#endif
