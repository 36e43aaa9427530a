/* The tutorial model's layers in Keras' terms, and libhdf5's error printing:
 * what the Keras import and export share (keras_h5_internal.h). */
#include "io/keras_h5_internal.h"

#include <stdio.h>

void ae_h5_quiet_begin(ae_h5_quiet *q)
{
    q->func = NULL;
    q->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void ae_h5_quiet_end(const ae_h5_quiet *q)
{
    H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

static herr_t innermost(unsigned n, const H5E_error2_t *e, void *data)
{
    char **buf = data;
    if (n == 0 && e->desc)
        snprintf(buf[0], (size_t)(buf[1] - buf[0]), "%s", e->desc);
    return 0;
}

const char *ae_h5_reason(char *buf, size_t size)
{
    if (!size)
        return "";
    buf[0] = '\0';
    char *span[2] = {buf, buf + size};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, span);
    return buf;
}

int ae_kl_count(int k)
{
    return 4 * k + 3;
}

ae_kl_kind ae_kl_kind_of(int k, int i)
{
    if (i < 2 * k)
        return i % 2 ? AE_KL_BN : AE_KL_CONV;
    if (i < 2 * k + 2)
        return AE_KL_DENSE;
    if (i < 4 * k + 2)
        return (i - 2 * k - 2) % 2 ? AE_KL_BN : AE_KL_DECONV;
    return AE_KL_DECONV;
}

int ae_kl_in_encoder(int k, int i)
{
    return i <= 2 * k;
}

static const char *const conv_vars[] = {"kernel", "bias"};
static const char *const bn_vars[] = {"gamma", "beta", "moving_mean", "moving_variance"};

int ae_kl_num_vars(ae_kl_kind kind)
{
    return kind == AE_KL_BN ? 4 : 2;
}

const char *ae_kl_var(ae_kl_kind kind, int var)
{
    return kind == AE_KL_BN ? bn_vars[var] : conv_vars[var];
}

int ae_kl_var_trainable(ae_kl_kind kind, int var)
{
    return kind != AE_KL_BN || var < 2;
}

void ae_kl_tensor_name(int k, int i, int var, char *out, size_t size)
{
    ae_kl_kind kind = ae_kl_kind_of(k, i);
    /* aedet calls Keras' moving_variance moving_var (ae_tensor_info) */
    const char *v = kind == AE_KL_BN && var == 3 ? "moving_var" : ae_kl_var(kind, var);
    if (i < 2 * k)
        snprintf(out, size, "enc%d.%s.%s", i / 2, kind == AE_KL_BN ? "bn" : "conv", v);
    else if (i == 2 * k)
        snprintf(out, size, "enc.dense.%s", v);
    else if (i == 2 * k + 1)
        snprintf(out, size, "dec.dense.%s", v);
    else if (i < 4 * k + 2)
        snprintf(out, size, "dec%d.%s.%s", (i - 2 * k - 2) / 2, kind == AE_KL_BN ? "bn" : "deconv", v);
    else
        snprintf(out, size, "out.deconv.%s", v);
}

const char *ae_kl_keras_stem(ae_kl_kind kind)
{
    switch (kind) {
    case AE_KL_CONV: return "conv2d";
    case AE_KL_DECONV: return "conv2d_transpose";
    case AE_KL_BN: return "batch_normalization";
    case AE_KL_DENSE: return "dense";
    }
    return "?";
}
