/* Internal: the training step taken apart (forward, loss, backward, Adam)
 * and the activations layer by layer, for the tests (which compare each
 * piece with PyTorch's) and the benchmark's per-layer breakdown. Not
 * installed and not exported from libaedet.so: users train with
 * ae_model_train_step and score with ae_model_score (aedet/nn.h), which keep
 * the model consistent; the tests and benchmarks link libaedet.a. */
#ifndef AEDET_NN_MODEL_HOOKS_H
#define AEDET_NN_MODEL_HOOKS_H

#include "aedet/nn.h"

typedef enum { AE_MODE_INFER = 0, AE_MODE_TRAIN = 1 } ae_mode;

/* Runs the autoencoder on n <= max_batch images x (NHWC). In AE_MODE_TRAIN,
 * BatchNorm uses batch statistics and updates its moving statistics; in
 * AE_MODE_INFER it uses the moving statistics. The result stays inside the
 * model until the next call (ae_model_output, ae_model_latent). */
ae_status ae_model_forward(ae_model *m, const float *x, int n, ae_mode mode, ae_error *err);

/* Mean squared error of the last forward against x, the n images it ran:
 * *loss (may be NULL) gets the mean over every pixel and channel of the
 * batch, per_image (may be NULL) each image's own mean squared error: the
 * anomaly score. The same code computes both. AE_ERR_USAGE (nothing
 * written) without a model or x, or when n is not the last forward's. */
ae_status ae_model_loss(const ae_model *m, const float *x, int n, float *per_image, float *loss,
                        ae_error *err);

/* Gradient of ae_model_loss with respect to every parameter, after a forward in
 * AE_MODE_TRAIN of the same n images x. Overwrites the gradient buffer.
 * AE_ERR_USAGE (nothing written) without a model or x, when n is not the
 * last forward's or that forward was not in training mode. */
ae_status ae_model_backward(ae_model *m, const float *x, int n, ae_error *err);
float *ae_model_grads(ae_model *m);

/* One Adam step from the gradient buffer, Keras' way (epsilon added before the
 * bias correction); increments the iteration count. */
void ae_model_adam_step(ae_model *m, const ae_adam_config *cfg);

/* Activations after the last forward, for tests and debugging: layer i of
 * ae_model_num_layers, named like "enc0.conv", "enc0.leaky", "enc0.bn",
 * "enc.dense", "dec.dense", "dec0.deconv", ..., "out.deconv", "out.sigmoid".
 * The model does not keep LeakyReLU outputs, nor BatchNorm outputs that feed
 * a convolution (they are recomputed from the convolution output where they
 * are read): for those, the first call allocates a buffer the size of the
 * largest one, and the values are computed into it and valid until the next
 * call (NULL if that allocation fails). ae_model_score runs the encoder's
 * convolutions, and the decoder's with the output layer, depth-first (on the
 * vector kernels) and stores only the last encoder convolution's output and
 * the model's: after it, the other convolutions (with the LeakyReLUs and
 * BatchNorms over them, and "out.deconv") show the last ae_model_forward's or
 * training step's values; the last encoder convolution, its BatchNorm, the
 * dense layers (the latent) and "out.sigmoid" (the model's output) show the
 * score's. */
int ae_model_num_layers(const ae_model *m);
const char *ae_model_layer_name(const ae_model *m, int i);
const float *ae_model_layer_output(ae_model *m, int i, size_t *count_per_image);

/* Seconds spent in layer i's forward and backward since the model was made
 * or the times were reset (summed over calls; the loss's backward counts
 * with the last layer), for the benchmark's per-layer breakdown. Returns -1
 * for a bad index. On the vector kernels, ae_model_train_step runs the
 * output layer's forward, its sigmoid, the loss and their backward as one
 * pass, counted as the output layer's backward. */
int ae_model_layer_times(const ae_model *m, int i, double *forward_s, double *backward_s);
void ae_model_reset_layer_times(ae_model *m);

#endif
