/* Shared by the Keras weights import (keras_h5.c) and export
 * (keras_h5_export.c), defined in keras_layers.c: libhdf5's error printing,
 * and the tutorial model's layers in Keras' terms. */
#ifndef AEDET_KERAS_H5_INTERNAL_H
#define AEDET_KERAS_H5_INTERNAL_H

#include <stddef.h>

#include <hdf5.h>

/* libhdf5 prints its error stack to stderr by default; the library never
 * prints, so the automatic printing is off between begin and end (and the
 * caller's setting put back). */
typedef struct {
    H5E_auto2_t func;
    void *data;
} ae_h5_quiet;
void ae_h5_quiet_begin(ae_h5_quiet *q);
void ae_h5_quiet_end(const ae_h5_quiet *q);

/* The innermost message of libhdf5's current error stack ("" if none), for
 * the end of our own messages. */
const char *ae_h5_reason(char *buf, size_t size);

/* The model's layers in the order they run, for k filters 4k + 3 of them:
 * (Conv2D, BatchNormalization) x k, Dense, Dense,
 * (Conv2DTranspose, BatchNormalization) x k, Conv2DTranspose. */
typedef enum { AE_KL_CONV, AE_KL_DECONV, AE_KL_BN, AE_KL_DENSE } ae_kl_kind;

int ae_kl_count(int k);
ae_kl_kind ae_kl_kind_of(int k, int i);
int ae_kl_in_encoder(int k, int i);
/* The aedet tensor name of layer i's weight var (ae_kl_vars order):
 * "enc0.conv.kernel", "dec1.bn.moving_var", ... */
void ae_kl_tensor_name(int k, int i, int var, char *out, size_t size);
/* The Keras class's name stem: conv2d, conv2d_transpose, batch_normalization, dense. */
const char *ae_kl_keras_stem(ae_kl_kind kind);

/* A layer's weights as Keras names them, in Keras' order: kernel, bias; or
 * gamma, beta, moving_mean, moving_variance (the last two not trainable). */
int ae_kl_num_vars(ae_kl_kind kind);
const char *ae_kl_var(ae_kl_kind kind, int var);
int ae_kl_var_trainable(ae_kl_kind kind, int var);

#endif
