/* Exporting a model as the Keras HDF5 weights file that Keras 2.x's
 * save_weights writes for the tutorial's model (include/aedet/keras.h):
 * built in memory with libhdf5's core driver, then written atomically. */
#include "aedet/keras.h"
#include "aedet/file.h"
#include "io/keras_h5_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KERAS_VERSION "2.11.0"

typedef struct {
    hid_t file;
    ae_error *err;
    ae_status st;
} writer;

static int failed(writer *w, herr_t rc, const char *what)
{
    if (rc >= 0 || w->st != AE_OK)
        return w->st != AE_OK;
    char reason[240];
    ae_h5_reason(reason, sizeof reason);
    w->st = ae_fail(w->err, AE_ERR_IO, "making the Keras weights file: libhdf5 failed at %s (%s)", what,
                    reason[0] ? reason : "no reason given");
    return 1;
}

/* Strings as h5py 3 stores Python lists of bytes: variable-length ASCII; a
 * scalar when n < 0. An empty list is what h5py makes of []: an empty
 * float64 array. */
static void put_names(writer *w, hid_t obj, const char *name, const char *const *v, int n)
{
    if (w->st != AE_OK)
        return;
    hsize_t dims[1] = {(hsize_t)(n < 0 ? 1 : n)};
    hid_t type = n == 0 ? H5Tcopy(H5T_IEEE_F64LE) : H5Tcopy(H5T_C_S1);
    hid_t space = n < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL);
    if (!failed(w, type, name) && !failed(w, space, name) &&
        !failed(w, n ? H5Tset_size(type, H5T_VARIABLE) : 0, name)) {
        hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
        if (!failed(w, a, name) && n)
            failed(w, H5Awrite(a, type, v), name);
        if (a >= 0)
            H5Aclose(a);
    }
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
}

typedef struct {
    char names[4 * AE_MAX_FILTERS + 3][48]; /* each layer's Keras name */
} keras_names;

/* The names a fresh session gives the tutorial's layers: a counter per class
 * over the whole build (conv2d, conv2d_1, ...; the decoder's BatchNorms go on
 * from the encoder's). */
static void name_layers(int k, keras_names *kn)
{
    int count[4] = {0};
    for (int i = 0; i < ae_kl_count(k); i++) {
        ae_kl_kind kind = ae_kl_kind_of(k, i);
        int n = count[kind]++;
        if (n)
            snprintf(kn->names[i], sizeof kn->names[i], "%s_%d", ae_kl_keras_stem(kind), n);
        else
            snprintf(kn->names[i], sizeof kn->names[i], "%s", ae_kl_keras_stem(kind));
    }
}

/* One nested model's group: its weights in _legacy_weights order (every
 * layer's trainable weights, then the BatchNorm moving statistics). */
static void put_model(writer *w, const ae_model *m, const keras_names *kn, const char *group, int first,
                      int last)
{
    int k = ae_model_config(m)->num_filters;
    hid_t g = H5Gcreate2(w->file, group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (failed(w, g, group) || failed(w, lcpl, group) ||
        failed(w, H5Pset_create_intermediate_group(lcpl, 1), group))
        goto done;
    char names[4 * (4 * AE_MAX_FILTERS + 3)][64];
    const char *list[4 * (4 * AE_MAX_FILTERS + 3)];
    int layer_of[4 * (4 * AE_MAX_FILTERS + 3)], var_of[4 * (4 * AE_MAX_FILTERS + 3)], n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = first; i <= last; i++) {
            ae_kl_kind kind = ae_kl_kind_of(k, i);
            for (int v = 0; v < ae_kl_num_vars(kind); v++) {
                if (ae_kl_var_trainable(kind, v) != !pass)
                    continue;
                snprintf(names[n], sizeof names[n], "%s/%s:0", kn->names[i], ae_kl_var(kind, v));
                list[n] = names[n];
                layer_of[n] = i;
                var_of[n++] = v;
            }
        }
    put_names(w, g, "weight_names", list, n);
    ae_model *model = (ae_model *)m; /* the accessors take a non-const model; this only reads */
    for (int j = 0; j < n && w->st == AE_OK; j++) {
        char tname[64];
        ae_kl_tensor_name(k, layer_of[j], var_of[j], tname, sizeof tname);
        int t = ae_model_find_tensor(model, tname);
        if (t < 0) {
            w->st = ae_fail(w->err, AE_ERR_USAGE, "exporting Keras weights: the model has no tensor %s", tname);
            break;
        }
        const ae_tensor_info *info = ae_model_tensor(model, t);
        hsize_t dims[4];
        for (int d = 0; d < info->ndim; d++)
            dims[d] = (hsize_t)info->shape[d];
        const float *src = (info->is_state ? ae_model_state(model) : ae_model_params(model)) + info->offset;
        hid_t space = H5Screate_simple(info->ndim, dims, NULL);
        hid_t d = space < 0 ? -1 : H5Dcreate2(g, names[j], H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (!failed(w, d, names[j]))
            failed(w, H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, src), names[j]);
        if (d >= 0)
            H5Dclose(d);
        if (space >= 0)
            H5Sclose(space);
    }
done:
    if (lcpl >= 0)
        H5Pclose(lcpl);
    if (g >= 0)
        H5Gclose(g);
}

static void put_empty_group(writer *w, const char *name)
{
    hid_t g = H5Gcreate2(w->file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (!failed(w, g, name))
        put_names(w, g, "weight_names", NULL, 0);
    if (g >= 0)
        H5Gclose(g);
}

ae_status ae_keras_export_bytes(const ae_model *m, uint8_t **out, size_t *len, ae_error *err)
{
    if (!m || !out || !len)
        return ae_fail(err, AE_ERR_USAGE, "exporting Keras weights: no model or no output");
    *out = NULL;
    *len = 0;
    ae_h5_quiet q;
    ae_h5_quiet_begin(&q);
    writer w = {-1, err, AE_OK};
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* In memory only (no backing store): the bytes go out atomically after. */
    if (!failed(&w, fapl, "the file access list") && !failed(&w, H5Pset_fapl_core(fapl, 1 << 20, 0), "the core driver"))
        w.file = H5Fcreate("aedet-keras-export.h5", H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (fapl >= 0)
        H5Pclose(fapl);
    if (!failed(&w, w.file, "creating the file")) {
        /* The top level: Keras' `autoencoder` = Model(input_1 -> decoder(encoder(input_1))). */
        static const char *const layers[] = {"input_1", "encoder", "decoder"};
        const char *backend[] = {"tensorflow"}, *version[] = {KERAS_VERSION}, *aedet[] = {AE_VERSION_STRING};
        put_names(&w, w.file, "layer_names", layers, 3);
        put_names(&w, w.file, "backend", backend, -1);
        put_names(&w, w.file, "keras_version", version, -1);
        put_names(&w, w.file, "aedet_version", aedet, -1);
        int k = ae_model_config(m)->num_filters;
        keras_names kn;
        name_layers(k, &kn);
        put_model(&w, m, &kn, "encoder", 0, 2 * k);
        put_model(&w, m, &kn, "decoder", 2 * k + 1, ae_kl_count(k) - 1);
        put_empty_group(&w, "input_1");
        put_empty_group(&w, "top_level_model_weights");
    }
    if (w.st == AE_OK)
        failed(&w, H5Fflush(w.file, H5F_SCOPE_GLOBAL), "flushing the file");
    ssize_t size = w.st == AE_OK ? H5Fget_file_image(w.file, NULL, 0) : -1;
    if (w.st == AE_OK && !failed(&w, size > 0 ? 0 : -1, "taking the file's image")) {
        if (!(*out = malloc((size_t)size)))
            w.st = ae_fail(err, AE_ERR_NOMEM, "exporting Keras weights: out of memory for %zd bytes", size);
        else if (!failed(&w, H5Fget_file_image(w.file, *out, (size_t)size) == size ? 0 : -1, "copying the file"))
            *len = (size_t)size;
    }
    if (w.file >= 0)
        H5Fclose(w.file);
    ae_h5_quiet_end(&q);
    if (w.st != AE_OK) {
        free(*out);
        *out = NULL;
        *len = 0;
    }
    return w.st;
}

ae_status ae_keras_export(const char *path, const ae_model *m, ae_error *err)
{
    if (!path)
        return ae_fail(err, AE_ERR_USAGE, "exporting Keras weights: no path");
    uint8_t *bytes;
    size_t len;
    ae_status st = ae_keras_export_bytes(m, &bytes, &len, err);
    if (st == AE_OK)
        st = ae_write_file_atomic(path, bytes, len, err);
    free(bytes);
    return st;
}
