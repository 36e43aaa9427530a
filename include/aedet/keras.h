/* aedet: the model's weights as a Keras HDF5 weights file, both ways.
 *
 * The tutorial saves its model with `autoencoder.save_weights('x.h5')`
 * (Keras 2.x, tf.keras): one group per top-level layer of the functional
 * model `autoencoder` (input_1, and the nested models encoder and decoder), a
 * `layer_names` attribute at the top, a `weight_names` attribute per group,
 * and one float dataset per weight named after its variable, such as
 * `encoder/conv2d/kernel:0`; within a nested model the trainable weights come
 * first and the BatchNorm moving statistics after them. Keras' kernel
 * layouts are aedet's own (ae_tensor_info): Conv2D (3, 3, in, out),
 * Conv2DTranspose (3, 3, out, in), Dense (in, out) with Flatten and Reshape
 * in height-width-channel order, so weights are copied, never transposed.
 *
 * Import reads what Keras' load_weights reads: layer_names, then each
 * group's weight_names in order (the names themselves may be anything), and
 * a file that `model.save('x.h5')` wrote (the same under model_weights/; the
 * optimizer's state there is ignored). A flat model (every layer a top-level
 * group) is read too. The layers must be the tutorial's: for each filter a
 * convolution and a BatchNormalization, a Dense, a Dense, for each filter a
 * transposed convolution and a BatchNormalization, a transposed convolution.
 * Export writes what Keras 2.x writes for the tutorial's model built in a
 * fresh session, which its load_weights accepts (docs/MODEL_FORMAT.md,
 * "Keras weights", says what is and is not carried).
 *
 * The files are parsed by libhdf5, which is not hardened against hostile
 * files: import only files you trust. Like libhdf5 (Debian's serial build),
 * these functions must not run in two threads at once. Nothing is printed:
 * libhdf5's own error printing is turned off while they run. */
#ifndef AEDET_KERAS_H
#define AEDET_KERAS_H

#include "aedet/common.h"
#include "aedet/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the weights file does not hold (the image size, LeakyReLU's alpha,
 * BatchNorm's epsilon and momentum), and checks of what it does. */
typedef struct {
    int height, width;  /* the model's input: required, the weights fix only (H/2^k) x (W/2^k) */
    int channels;       /* 0: the first kernel's; else it must match */
    int num_filters;    /* 0: the file's; else filters[] must match */
    int filters[AE_MAX_FILTERS];
    int latent_dim;     /* 0: the file's; else it must match */
    float leaky_slope;  /* LeakyReLU alpha of the Keras model [0.3, the tutorial's] */
    float bn_epsilon;   /* BatchNormalization epsilon [1e-3, Keras'] */
    float bn_momentum;  /* BatchNormalization momentum [0.99, Keras'] */
} ae_keras_options;

/* Everything 0 but the defaults in brackets above. */
AE_API void ae_keras_options_init(ae_keras_options *opt);

/* What a weights file describes, read without knowing the image size. */
typedef struct {
    int channels, num_filters, filters[AE_MAX_FILTERS], latent_dim;
    long long grid_cells;   /* (H/2^k) x (W/2^k): the encoder Dense's inputs / the last filters */
    int num_weights;        /* datasets (16 for filters of two levels) */
    int nested;             /* 1: encoder and decoder are nested models; 0: flat */
    int full_model;         /* 1: model.save's file (weights under model_weights/) */
    char keras_version[32]; /* as the file says, "" when absent */
    char backend[32];
} ae_keras_summary;

/* Reads and checks a weights file's structure and shapes (not its values).
 * AE_ERR_IO when it cannot be read, AE_ERR_FORMAT (with the file name and
 * the attribute, group or dataset concerned) when it is not HDF5 or not
 * weights of the tutorial's model. */
AE_API ae_status ae_keras_inspect(const char *path, ae_keras_summary *out, ae_error *err);

/* Builds a model for batches of up to max_batch images with the file's
 * weights and BatchNorm moving statistics (Adam state reset, iterations 0).
 * Every dataset must have exactly the shape the model needs; values must be
 * finite and the moving variances not negative (AE_ERR_FORMAT, naming the
 * dataset). Options that contradict the file, or a size the file's Dense
 * kernel does not fit, are AE_ERR_USAGE. summary may be NULL. */
AE_API ae_status ae_keras_import(const char *path, const ae_keras_options *opt, int max_batch, ae_model **out,
                          ae_keras_summary *summary, ae_error *err);

/* The weights file of m, in memory (*out from malloc), and written to path
 * atomically (ae_write_file_atomic). Layer and weight names are those a
 * fresh Keras session gives the tutorial's build(); keras_version says
 * 2.11.0 and an aedet_version attribute says who wrote it. */
AE_API ae_status ae_keras_export_bytes(const ae_model *m, uint8_t **out, size_t *len, ae_error *err);
AE_API ae_status ae_keras_export(const char *path, const ae_model *m, ae_error *err);

#ifdef __cplusplus
}
#endif
#endif
