/* aedet: the convolutional autoencoder of the tutorial (see docs/DESIGN.md).
 *
 *   encoder: for f in filters: Conv2D(f, 3x3, stride 2, same) -> LeakyReLU -> BatchNorm
 *            Flatten -> Dense(latent)
 *   decoder: Dense(H/2^k * W/2^k * filters[k-1]) -> Reshape
 *            for f in reversed(filters): Conv2DTranspose(f, 3x3, stride 2, same)
 *                                        -> LeakyReLU -> BatchNorm
 *            Conv2DTranspose(channels, 3x3, stride 1, same) -> sigmoid
 *
 * Images are float NHWC (batch, height, width, channels) in [0, 1]. Parameters,
 * gradients, Adam's two moments and the BatchNorm moving statistics each live in
 * one contiguous buffer; activations are sized once for max_batch, and nothing
 * is allocated after ae_model_create.
 *
 * Determinism: every sum over the batch is taken per image and then added in
 * image order, so the same seed and data give bit-identical weights for any
 * number of threads (ae_set_num_threads), with the same kernels: the library
 * picks AVX-512, AVX2 or portable code for the CPU it runs on (the
 * environment variable AEDET_ISA=portable|avx2|avx512 caps the choice), and
 * those sum in different orders (within ~1e-6 of each other). */
#ifndef AEDET_NN_H
#define AEDET_NN_H

#include "aedet/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AE_MAX_FILTERS 8

typedef struct {
    int height, width, channels;
    int num_filters;
    int filters[AE_MAX_FILTERS];
    int latent_dim;
    float leaky_slope; /* LeakyReLU alpha, 0.3 */
    float bn_momentum; /* 0.99 */
    float bn_epsilon;  /* 1e-3 */
} ae_config;

/* The tutorial's model for images of height x width x channels:
 * filters 16, 32, 64; latent 32; slope 0.3; momentum 0.99; epsilon 1e-3. */
AE_API void ae_config_init(ae_config *cfg, int height, int width, int channels);

/* AE_ERR_USAGE with a message for a config that cannot work: non-positive sizes,
 * a size not divisible by 2^num_filters, too many filters, a model or
 * activation memory over a sane bound for max_batch. */
AE_API ae_status ae_config_check(const ae_config *cfg, int max_batch, ae_error *err);

/* The bytes ae_model_create would allocate for cfg and max_batch (the figure
 * ae_config_check bounds), computed without allocating; 0 for a config that
 * fails ae_config_check, SIZE_MAX when the size overflows. */
AE_API size_t ae_config_memory_bytes(const ae_config *cfg, int max_batch);

/* Multiply-adds x 2 of one image's forward pass (convolutions and dense layers),
 * for the benchmark's GFLOP/s; a training step is about 3x this. */
AE_API double ae_config_forward_flops(const ae_config *cfg);

/* One named tensor of the model, in Keras' layout, for model files and tests.
 * Names: "enc<i>.conv.kernel" (3,3,in,out), "enc<i>.conv.bias", "enc<i>.bn.gamma",
 * "enc<i>.bn.beta", "enc<i>.bn.moving_mean", "enc<i>.bn.moving_var",
 * "enc.dense.kernel" (in,out), "enc.dense.bias", "dec.dense.kernel", "dec.dense.bias",
 * "dec<i>.deconv.kernel" (3,3,out,in), "dec<i>.deconv.bias", "dec<i>.bn.*",
 * "out.deconv.kernel", "out.deconv.bias". enc<i>/dec<i> count from 0 in the
 * order the layers run. */
typedef struct {
    char name[48];
    int is_state; /* 0: in the parameter buffer; 1: in the state buffer (BN moving stats) */
    size_t offset; /* in floats, into the parameters or the state */
    size_t size;
    int ndim;
    int shape[4];
} ae_tensor_info;

typedef struct ae_model ae_model;

/* Allocates every buffer (ae_config_check's errors, or AE_ERR_NOMEM; *out is
 * NULL on failure) and initialises the weights with seed 0. Per-thread scratch
 * and the model's worker threads (which sleep between jobs) are made for
 * ae_get_num_threads() threads: set the thread count first (a later, larger
 * setting is capped to it). */
AE_API ae_status ae_model_create(const ae_config *cfg, int max_batch, ae_model **out, ae_error *err);
AE_API void ae_model_free(ae_model *m);
AE_API const ae_config *ae_model_config(const ae_model *m);
AE_API int ae_model_max_batch(const ae_model *m);

/* Keras' initial values: glorot-uniform kernels, zero biases, gamma 1, beta 0,
 * moving mean 0, moving variance 1; Adam moments and step count reset. */
AE_API void ae_model_init_weights(ae_model *m, uint64_t seed);

AE_API size_t ae_model_num_params(const ae_model *m);
AE_API float *ae_model_params(ae_model *m);
AE_API float *ae_model_adam_m(ae_model *m);
AE_API float *ae_model_adam_v(ae_model *m);
AE_API size_t ae_model_num_state(const ae_model *m);
AE_API float *ae_model_state(ae_model *m);
AE_API int64_t ae_model_iterations(const ae_model *m); /* Adam steps taken */
AE_API void ae_model_set_iterations(ae_model *m, int64_t iterations);

AE_API int ae_model_num_tensors(const ae_model *m);
AE_API const ae_tensor_info *ae_model_tensor(const ae_model *m, int i);
AE_API int ae_model_find_tensor(const ae_model *m, const char *name); /* index, or -1 */

/* Bytes the model holds (parameters, optimizer, activations, scratch); the
 * same figure ae_config_check bounds (64 GiB), plus, in the bf16 mode, each
 * thread's buffers for the bfloat16 copies (800 KB a thread). */
AE_API size_t ae_model_memory_bytes(const ae_model *m);

/* The last ae_model_score's (or training step's) reconstruction and latent,
 * inside the model until the next call. */
AE_API const float *ae_model_output(const ae_model *m); /* n x H x W x C reconstruction */
AE_API const float *ae_model_latent(const ae_model *m); /* n x latent_dim */

/* The kernels in use: "avx512", "avx2", "portable" (im2col + GEMM), or
 * "amx-bf16" or "avx512-bf16" (ae_model_set_bf16). */
AE_API const char *ae_model_kernels(const ae_model *m);

/* Opt-in bfloat16 (on = 1): the convolutions' three products (forward,
 * input gradient, weight gradient) round their operands to bfloat16 and run
 * on AMX tiles ("amx-bf16") or, on CPUs without them, by AVX512-BF16 dot
 * products ("avx512-bf16"), summing in float32; BatchNorm, the dense
 * layers, the loss, Adam and the weights themselves stay float32 (a model
 * file is the same either way; `aedet train` records the kernels in its
 * metadata). On the tiles, layers whose channel counts are not multiples of
 * 16 (the first and the output layer), or whose rows are under 16 pixels,
 * stay float32; on the dot products, those with odd channel counts. The
 * results differ from float32 by about bfloat16's precision (2^-8 relative
 * per product; docs/PERFORMANCE.md measures what it does to training).
 * AE_ERR_USAGE when the CPU or OS has neither, or the model runs the
 * portable or avx2 kernels (AEDET_ISA). on = 0: float32. */
AE_API ae_status ae_model_set_bf16(ae_model *m, int on, ae_error *err);

typedef struct {
    float learning_rate; /* 1e-3 */
    float beta1;         /* 0.9 */
    float beta2;         /* 0.999 */
    float epsilon;       /* 1e-7 */
    float decay;         /* Keras' legacy time decay: lr / (1 + decay * iteration) */
} ae_adam_config;

/* Keras' defaults with the tutorial's decay = learning_rate / decay_epochs
 * (decay_epochs 0 means no decay). */
AE_API void ae_adam_config_init(ae_adam_config *cfg, float learning_rate, int decay_epochs);

/* forward (train) + loss + backward + Adam. Checks the loss, the gradients and
 * the updated weights: a NaN or Inf gives AE_ERR_NUMERIC naming the step, and
 * the weights, Adam moments, iteration count and BatchNorm moving statistics
 * are left as they were before the step. n must be 1..max_batch (AE_ERR_USAGE). */
AE_API ae_status ae_model_train_step(ae_model *m, const ae_adam_config *cfg, const float *x, int n,
                              float *loss, ae_error *err);

/* Inference. The one scoring path: per-image mean squared reconstruction error
 * (n values), optionally the reconstruction too (n x H x W x C, may be NULL);
 * the bits of the step-by-step forward and loss (nn/model_hooks.h). */
AE_API ae_status ae_model_score(ae_model *m, const float *x, int n, float *errors, float *recon,
                         ae_error *err);
/* The encoder alone: n x latent_dim. */
AE_API ae_status ae_model_encode(ae_model *m, const float *x, int n, float *latent, ae_error *err);
/* The decoder alone: latent (n x latent_dim) -> n x H x W x C. */
AE_API ae_status ae_model_decode(ae_model *m, const float *latent, int n, float *out, ae_error *err);

#ifdef __cplusplus
}
#endif
#endif
