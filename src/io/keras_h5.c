/* Importing a Keras HDF5 weights file (include/aedet/keras.h): the file is
 * read whole, opened from memory with libhdf5's core driver, walked the way
 * Keras' load_weights walks it (layer_names, then each group's weight_names
 * in order), grouped into layers by the variables' names, matched against
 * the tutorial's layer sequence, and copied into a model tensor by tensor
 * with every shape checked. */
#include "aedet/keras.h"
#include "aedet/file.h"
#include "io/keras_h5_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAMES 4096   /* entries of one names attribute */
#define MAX_NAME 256     /* bytes of a layer or weight name */
#define MAX_WEIGHTS 256  /* the model has 12 k + 6 for k levels: 102 for 8 */
#define MAX_LAYERS 64    /* and 4 k + 3: 35 */

typedef struct {
    char **v;
    int n;
} names;

static void names_free(names *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

typedef struct {
    char group[MAX_NAME]; /* the top-level layer's group */
    char name[MAX_NAME];  /* as weight_names has it: a path under the group */
    int ndim;
    long long dims[4];
} kweight;

typedef struct {
    char key[2 * MAX_NAME + 2]; /* group/variable prefix: the Keras layer */
    int is_bn, kind;            /* ae_kl_kind once classified */
    int w[4];                   /* indices into the weights, by ae_kl_var order; -1 absent */
} klayer;

typedef struct {
    const char *path;
    const char *under; /* "" or "model_weights/" */
    hid_t file, root;
    kweight *w;
    int nw;
    klayer l[MAX_LAYERS];
    int nl, k;
    ae_keras_summary sum;
} kfile;

/* A failure of libhdf5, with its own innermost message after ours. */
static ae_status fail_h5(ae_error *err, ae_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ae_status fail_h5(ae_error *err, ae_status code, const char *fmt, ...)
{
    char what[768], reason[240];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    ae_h5_reason(reason, sizeof reason);
    return ae_fail(err, code, "%s (libhdf5: %s)", what, reason[0] ? reason : "no reason given");
}

/* ---- attributes ---- */

static ae_status add_name(names *s, const char *text, size_t len, const char *path, const char *attr,
                          ae_error *err)
{
    if (s->n >= MAX_NAMES)
        return ae_fail(err, AE_ERR_FORMAT, "%s: the attribute '%s' lists more than %d names", path, attr,
                       MAX_NAMES);
    if (len >= MAX_NAME)
        return ae_fail(err, AE_ERR_FORMAT, "%s: the attribute '%s' holds a name of %zu bytes (at most %d)",
                       path, attr, len, MAX_NAME - 1);
    char **v = realloc(s->v, (size_t)(s->n + 1) * sizeof *v);
    if (!v)
        return ae_fail(err, AE_ERR_NOMEM, "%s: out of memory reading '%s'", path, attr);
    s->v = v;
    if (!(v[s->n] = malloc(len + 1)))
        return ae_fail(err, AE_ERR_NOMEM, "%s: out of memory reading '%s'", path, attr);
    memcpy(v[s->n], text, len);
    v[s->n++][len] = '\0';
    return AE_OK;
}

/* One attribute that holds strings, fixed-length (h5py 2, numpy 'S' arrays)
 * or variable-length (h5py 3); an empty one may have any type (h5py stores
 * [] as an empty float64 array). */
static ae_status read_names_attr(hid_t obj, const char *attr, const char *path, const char *where,
                                 names *out, ae_error *err)
{
    ae_status st = AE_OK;
    hid_t a = H5Aopen(obj, attr, H5P_DEFAULT), type = -1, space = -1, mem = -1;
    if (a < 0)
        return fail_h5(err, AE_ERR_FORMAT, "%s: cannot open the attribute %s", path, attr);
    space = H5Aget_space(a);
    type = H5Aget_type(a);
    hssize_t n = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
    if (n < 0 || type < 0) {
        st = fail_h5(err, AE_ERR_FORMAT, "%s: cannot read the attribute %s", path, attr);
        goto done;
    }
    if (n == 0)
        goto done;
    if (H5Tget_class(type) != H5T_STRING || n > MAX_NAMES) {
        st = ae_fail(err, AE_ERR_FORMAT, "%s: the attribute '%s' of %s is not a list of names", path, attr,
                     where);
        goto done;
    }
    mem = H5Tcopy(H5T_C_S1);
    if (H5Tis_variable_str(type) > 0) {
        char **v = calloc((size_t)n, sizeof *v);
        if (!v) {
            st = ae_fail(err, AE_ERR_NOMEM, "%s: out of memory reading '%s'", path, attr);
            goto done;
        }
        if (mem < 0 || H5Tset_size(mem, H5T_VARIABLE) < 0 || H5Aread(a, mem, v) < 0)
            st = fail_h5(err, AE_ERR_FORMAT, "%s: cannot read the names of %s", path, attr);
        for (hssize_t i = 0; st == AE_OK && i < n; i++)
            st = add_name(out, v[i] ? v[i] : "", v[i] ? strlen(v[i]) : 0, path, attr, err);
#if H5_VERSION_GE(1, 12, 0)
        H5Treclaim(mem, space, H5P_DEFAULT, v);
#else
        H5Dvlen_reclaim(mem, space, H5P_DEFAULT, v);
#endif
        free(v);
    } else {
        size_t size = H5Tget_size(type);
        char *v = size && size <= 65536 ? malloc((size_t)n * size) : NULL;
        if (!v) {
            st = ae_fail(err, AE_ERR_FORMAT, "%s: the names in '%s' are %zu bytes each", path, attr, size);
            goto done;
        }
        if (mem < 0 || H5Tset_size(mem, size) < 0 || H5Tset_strpad(mem, H5T_STR_NULLPAD) < 0 ||
            H5Aread(a, mem, v) < 0)
            st = fail_h5(err, AE_ERR_FORMAT, "%s: cannot read the names of %s", path, attr);
        for (hssize_t i = 0; st == AE_OK && i < n; i++) {
            const char *s = v + (size_t)i * size;
            const char *end = memchr(s, '\0', size);
            st = add_name(out, s, end ? (size_t)(end - s) : size, path, attr, err);
        }
        free(v);
    }
done:
    if (mem >= 0) H5Tclose(mem);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    H5Aclose(a);
    return st;
}

/* Keras' load_attributes_from_hdf5_group: the attribute, or when it was too
 * big for one object header, its pieces name0, name1, ... *found = 0 when
 * neither is there. */
static ae_status read_names(hid_t obj, const char *attr, const char *path, const char *where, names *out,
                            int *found, ae_error *err)
{
    *found = 0;
    if (H5Aexists(obj, attr) > 0) {
        *found = 1;
        return read_names_attr(obj, attr, path, where, out, err);
    }
    for (int i = 0; i < MAX_NAMES; i++) {
        char piece[64];
        snprintf(piece, sizeof piece, "%s%d", attr, i);
        if (H5Aexists(obj, piece) <= 0)
            break;
        *found = 1;
        ae_status st = read_names_attr(obj, piece, path, where, out, err);
        if (st != AE_OK)
            return st;
    }
    return AE_OK;
}

/* A scalar string attribute (keras_version, backend) into buf; "" when absent. */
static void read_text_attr(hid_t obj, const char *attr, char *buf, size_t size)
{
    buf[0] = '\0';
    if (H5Aexists(obj, attr) <= 0)
        return;
    names s = {0};
    ae_error ignored;
    if (read_names_attr(obj, attr, "", "", &s, &ignored) == AE_OK && s.n == 1)
        snprintf(buf, size, "%s", s.v[0]);
    names_free(&s);
}

/* ---- links ---- */

/* Whether path (components split by '/') leads somewhere under loc:
 * H5Lexists fails, rather than saying no, when a middle component is missing. */
static int path_exists(hid_t loc, const char *path)
{
    char buf[2 * MAX_NAME + 2];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf || !buf[0])
        return 0;
    for (char *p = buf;; p++) {
        if (*p != '/' && *p)
            continue;
        char c = *p;
        *p = '\0';
        if (buf[0] && H5Lexists(loc, buf, H5P_DEFAULT) <= 0)
            return 0;
        if (!c)
            return H5Oexists_by_name(loc, buf, H5P_DEFAULT) > 0;
        *p = c;
    }
}

/* ---- walking the file ---- */

static int var_index(int is_bn, const char *var, size_t len)
{
    for (int i = 0; i < (is_bn ? 4 : 2); i++) {
        const char *v = ae_kl_var(is_bn ? AE_KL_BN : AE_KL_CONV, i);
        if (strlen(v) == len && !memcmp(v, var, len))
            return i;
    }
    return -1;
}

static const char *kind_name(const klayer *l)
{
    if (l->is_bn)
        return "BatchNormalization";
    switch (l->kind) {
    case AE_KL_CONV: return "convolution";
    case AE_KL_DENSE: return "Dense";
    default: return "kernel+bias";
    }
}

/* Puts weight i in its layer: the variable's name without its last part
 * ("conv2d/kernel:0" -> layer "conv2d", var "kernel"). */
static ae_status place_weight(kfile *f, int i, ae_error *err)
{
    const kweight *w = &f->w[i];
    const char *slash = strrchr(w->name, '/');
    const char *var = slash ? slash + 1 : w->name;
    size_t len = strcspn(var, ":");
    int is_bn = var_index(1, var, len) >= 0;
    int v = var_index(is_bn, var, len);
    if (v < 0)
        return ae_fail(err, AE_ERR_FORMAT,
                       "%s: the weight '%s%s/%s' is not a kernel, bias or BatchNormalization statistic: "
                       "not the tutorial's model",
                       f->path, f->under, w->group, w->name);
    char key[sizeof f->l[0].key];
    snprintf(key, sizeof key, "%s/%.*s", w->group, slash ? (int)(slash - w->name) : 0, w->name);
    int at = 0;
    while (at < f->nl && strcmp(f->l[at].key, key))
        at++;
    if (at == f->nl) {
        if (f->nl == MAX_LAYERS)
            return ae_fail(err, AE_ERR_FORMAT, "%s: more than %d layers with weights: not the tutorial's model",
                           f->path, MAX_LAYERS);
        klayer *l = &f->l[f->nl++];
        memset(l, 0, sizeof *l);
        snprintf(l->key, sizeof l->key, "%s", key);
        l->is_bn = is_bn;
        l->kind = -1;
        for (int j = 0; j < 4; j++)
            l->w[j] = -1;
    }
    klayer *l = &f->l[at];
    if (l->is_bn != is_bn || l->w[v] >= 0)
        return ae_fail(err, AE_ERR_FORMAT, "%s: the layer '%s%s' has %s weights: not the tutorial's model",
                       f->path, f->under, key, l->w[v] >= 0 ? "two such" : "BatchNormalization and other");
    l->w[v] = i;
    return AE_OK;
}

static ae_status add_weight(kfile *f, hid_t group, const char *gname, const char *wname, ae_error *err)
{
    if (f->nw == MAX_WEIGHTS)
        return ae_fail(err, AE_ERR_FORMAT, "%s: more than %d weights: not the tutorial's model", f->path,
                       MAX_WEIGHTS);
    kweight *w = &f->w[f->nw];
    memset(w, 0, sizeof *w);
    snprintf(w->group, sizeof w->group, "%s", gname);
    snprintf(w->name, sizeof w->name, "%s", wname);
    if (!path_exists(group, wname))
        return ae_fail(err, AE_ERR_FORMAT, "%s: '%s%s' lists the weight '%s' in weight_names, but there is no "
                       "dataset %s%s/%s",
                       f->path, f->under, gname, wname, f->under, gname, wname);
    hid_t d = H5Dopen2(group, wname, H5P_DEFAULT);
    if (d < 0) {
        return fail_h5(err, AE_ERR_FORMAT, "%s: %s%s/%s is not a readable dataset", f->path, f->under, gname,
                       wname);
    }
    hid_t type = H5Dget_type(d), space = H5Dget_space(d);
    int rank = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
    hsize_t dims[H5S_MAX_RANK];
    ae_status st = AE_OK;
    if (type < 0 || H5Tget_class(type) != H5T_FLOAT)
        st = ae_fail(err, AE_ERR_FORMAT, "%s: the dataset %s%s/%s is not floating point", f->path, f->under,
                     gname, wname);
    else if ((rank != 1 && rank != 2 && rank != 4) || H5Sget_simple_extent_dims(space, dims, NULL) != rank)
        st = ae_fail(err, AE_ERR_FORMAT, "%s: the dataset %s%s/%s has %d dimensions, not 1, 2 or 4", f->path,
                     f->under, gname, wname, rank);
    if (st == AE_OK) {
        w->ndim = rank;
        for (int j = 0; j < rank; j++) {
            if (dims[j] > (hsize_t)1 << 30)
                st = ae_fail(err, AE_ERR_FORMAT, "%s: the dataset %s%s/%s has %llu values along axis %d",
                             f->path, f->under, gname, wname, (unsigned long long)dims[j], j);
            w->dims[j] = (long long)dims[j];
        }
        f->nw += st == AE_OK;
    }
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    H5Dclose(d);
    return st == AE_OK ? place_weight(f, f->nw - 1, err) : st;
}

static ae_status walk_layers(kfile *f, const names *layers, ae_error *err)
{
    int groups_with_weights = 0;
    ae_status st = AE_OK;
    for (int i = 0; i < layers->n && st == AE_OK; i++) {
        const char *gname = layers->v[i];
        if (!path_exists(f->root, gname))
            return ae_fail(err, AE_ERR_FORMAT, "%s: layer_names lists '%s' but there is no group %s%s", f->path,
                           gname, f->under, gname);
        hid_t g = H5Gopen2(f->root, gname, H5P_DEFAULT);
        if (g < 0)
            return fail_h5(err, AE_ERR_FORMAT, "%s: cannot open the group %s%s", f->path, f->under, gname);
        names w = {0};
        int found;
        st = read_names(g, "weight_names", f->path, gname, &w, &found, err);
        groups_with_weights += w.n > 0;
        for (int j = 0; j < w.n && st == AE_OK; j++)
            st = add_weight(f, g, gname, w.v[j], err);
        names_free(&w);
        H5Gclose(g);
    }
    f->sum.nested = f->nl > groups_with_weights;
    return st;
}

/* The layers must be the tutorial's, in its order. */
static ae_status match_sequence(kfile *f, ae_error *err)
{
    for (int i = 0; i < f->nl; i++) {
        klayer *l = &f->l[i];
        int nv = l->is_bn ? 4 : 2;
        for (int v = 0; v < nv; v++)
            if (l->w[v] < 0)
                return ae_fail(err, AE_ERR_FORMAT, "%s: the layer '%s%s' has no '%s' weight%s", f->path,
                               f->under, l->key, ae_kl_var(l->is_bn ? AE_KL_BN : AE_KL_CONV, v),
                               l->is_bn ? " (aedet's BatchNormalization has gamma, beta and both statistics)"
                                        : " (aedet's layers all have biases)");
        if (!l->is_bn) {
            int nd = f->w[l->w[0]].ndim;
            l->kind = nd == 4 ? AE_KL_CONV : nd == 2 ? AE_KL_DENSE : -1;
        } else {
            l->kind = AE_KL_BN;
        }
    }
    int k = (f->nl - 3) / 4, ok = f->nl >= 7 && (f->nl - 3) % 4 == 0 && k <= AE_MAX_FILTERS;
    for (int i = 0; ok && i < f->nl; i++) {
        ae_kl_kind want = ae_kl_kind_of(k, i);
        ok = (int)(want == AE_KL_DECONV ? AE_KL_CONV : want) == f->l[i].kind;
        if (ok && want == AE_KL_DECONV)
            f->l[i].kind = AE_KL_DECONV;
    }
    if (!ok) {
        char list[640] = "";
        for (int i = 0; i < f->nl && strlen(list) < sizeof list - 80; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s (%s)", i ? ", " : "", f->l[i].key,
                     kind_name(&f->l[i]));
        return ae_fail(err, AE_ERR_FORMAT,
                       "%s: %d layers with weights: %s%s; the tutorial's model has, for k filters, k x "
                       "(Conv2D, BatchNormalization), Dense, Dense, k x (Conv2DTranspose, "
                       "BatchNormalization), Conv2DTranspose",
                       f->path, f->nl, f->nl ? list : "none", strlen(list) >= sizeof list - 80 ? ", ..." : "");
    }
    f->k = k;
    return AE_OK;
}

static const kweight *weight_of(const kfile *f, int layer, int var)
{
    return &f->w[f->l[layer].w[var]];
}

/* The config the shapes say (the size aside); the rest is checked tensor by
 * tensor when the values are read. */
static ae_status summarize(kfile *f, ae_error *err)
{
    ae_keras_summary *s = &f->sum;
    int k = f->k;
    s->num_filters = k;
    s->num_weights = f->nw;
    s->channels = (int)weight_of(f, 0, 0)->dims[2];
    for (int i = 0; i < k; i++)
        s->filters[i] = (int)weight_of(f, 2 * i, 0)->dims[3];
    const kweight *dense = weight_of(f, 2 * k, 0);
    s->latent_dim = (int)dense->dims[1];
    long long last = s->filters[k - 1];
    for (int i = 0; i < k; i++)
        if (s->filters[i] < 1 || s->channels < 1 || s->latent_dim < 1)
            return ae_fail(err, AE_ERR_FORMAT, "%s: a kernel of zero size", f->path);
    if (dense->dims[0] < 1 || dense->dims[0] % last)
        return ae_fail(err, AE_ERR_FORMAT,
                       "%s: the encoder's Dense kernel %s%s/%s takes %lld inputs, not a multiple of the last "
                       "convolution's %lld filters",
                       f->path, f->under, dense->group, dense->name, dense->dims[0], last);
    s->grid_cells = dense->dims[0] / last;
    return AE_OK;
}

static int has_hdf5_signature(const uint8_t *b, size_t len)
{
    static const uint8_t sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    for (size_t at = 0; at + 8 <= len; at = at ? 2 * at : 512)
        if (!memcmp(b + at, sig, 8))
            return 1;
    return 0;
}

static ae_status open_file(kfile *f, const char *path, ae_error *err)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    f->under = "";
    f->file = f->root = -1;
    uint8_t *bytes = NULL;
    size_t len = 0;
    ae_status st = ae_read_file(path, &bytes, &len, err);
    if (st != AE_OK)
        return st;
    if (len >= 8 && !memcmp(bytes, "AEDETMDL", 8))
        st = ae_fail(err, AE_ERR_FORMAT, "%s: an aedet model file, not Keras weights", path);
    else if (!has_hdf5_signature(bytes, len))
        st = ae_fail(err, AE_ERR_FORMAT, "%s: not an HDF5 file (no HDF5 signature), so not Keras weights", path);
    if (st != AE_OK) {
        free(bytes);
        return st;
    }
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_core(fapl, 1 << 20, 0) < 0 || H5Pset_file_image(fapl, bytes, len) < 0)
        st = fail_h5(err, AE_ERR_NOMEM, "%s: libhdf5 cannot take the file's %zu bytes", path, len);
    /* With an image, the core driver refuses a name that exists on disk;
     * this one cannot (/dev/null is no folder). */
    else if ((f->file = H5Fopen("/dev/null/aedet-keras-image.h5", H5F_ACC_RDONLY, fapl)) < 0)
        st = fail_h5(err, AE_ERR_FORMAT, "%s: HDF5, but libhdf5 cannot open it: truncated or corrupt", path);
    if (fapl >= 0)
        H5Pclose(fapl);
    free(bytes);
    if (st == AE_OK && (f->root = H5Gopen2(f->file, "/", H5P_DEFAULT)) < 0)
        st = fail_h5(err, AE_ERR_FORMAT, "%s: cannot open the root group", path);
    return st;
}

static void close_file(kfile *f)
{
    if (f->root >= 0)
        H5Gclose(f->root);
    if (f->file >= 0)
        H5Fclose(f->file);
    free(f->w);
    f->w = NULL;
}

static ae_status read_structure(kfile *f, ae_error *err)
{
    names layers = {0};
    int found = 0;
    ae_status st = read_names(f->root, "layer_names", f->path, "the file", &layers, &found, err);
    /* model.save puts the weights under model_weights/, the model's config
     * and the optimizer's state beside them. */
    if (st == AE_OK && !found && path_exists(f->root, "model_weights")) {
        hid_t g = H5Gopen2(f->root, "model_weights", H5P_DEFAULT);
        if (g >= 0) {
            H5Gclose(f->root);
            f->root = g;
            f->under = "model_weights/";
            f->sum.full_model = 1;
            st = read_names(f->root, "layer_names", f->path, "model_weights", &layers, &found, err);
        }
    }
    if (st == AE_OK && !found)
        st = ae_fail(err, AE_ERR_FORMAT,
                     "%s: HDF5, but no layer_names attribute at the top (nor under model_weights/): not a "
                     "Keras weights file",
                     f->path);
    if (st == AE_OK) {
        read_text_attr(f->root, "keras_version", f->sum.keras_version, sizeof f->sum.keras_version);
        read_text_attr(f->root, "backend", f->sum.backend, sizeof f->sum.backend);
        const char *v = f->sum.keras_version;
        if (v[0] == '1' && (v[1] == '\0' || v[1] == '.'))
            st = ae_fail(err, AE_ERR_FORMAT, "%s: written by Keras %s, whose kernels Keras 2 converts on "
                         "loading: load and save it with Keras 2 first", f->path, v);
        else if (!strcmp(f->sum.backend, "theano"))
            st = ae_fail(err, AE_ERR_FORMAT, "%s: written with the theano backend, whose convolution kernels "
                         "are flipped: load and save it with TensorFlow's Keras first", f->path);
    }
    if (st == AE_OK && !(f->w = calloc(MAX_WEIGHTS, sizeof *f->w)))
        st = ae_fail(err, AE_ERR_NOMEM, "%s: out of memory", f->path);
    if (st == AE_OK)
        st = walk_layers(f, &layers, err);
    names_free(&layers);
    if (st == AE_OK)
        st = match_sequence(f, err);
    if (st == AE_OK)
        st = summarize(f, err);
    return st;
}

ae_status ae_keras_inspect(const char *path, ae_keras_summary *out, ae_error *err)
{
    if (!path || !out)
        return ae_fail(err, AE_ERR_USAGE, "reading Keras weights: no path or no summary");
    ae_h5_quiet q;
    ae_h5_quiet_begin(&q);
    kfile f;
    ae_status st = open_file(&f, path, err);
    if (st == AE_OK)
        st = read_structure(&f, err);
    if (st == AE_OK)
        *out = f.sum;
    close_file(&f);
    ae_h5_quiet_end(&q);
    return st;
}

/* ---- import ---- */

void ae_keras_options_init(ae_keras_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->leaky_slope = 0.3f;
    opt->bn_epsilon = 1e-3f;
    opt->bn_momentum = 0.99f;
}

static void list_filters(const int *f, int n, char *buf, size_t size)
{
    buf[0] = '\0';
    for (int i = 0; i < n; i++)
        snprintf(buf + strlen(buf), size - strlen(buf), "%s%d", i ? "," : "", f[i]);
}

static ae_status make_config(const kfile *f, const ae_keras_options *o, int max_batch, ae_config *c,
                             ae_error *err)
{
    const ae_keras_summary *s = &f->sum;
    char want[128], have[128];
    list_filters(s->filters, s->num_filters, have, sizeof have);
    if (o->height <= 0 || o->width <= 0) {
        long long side = llround(sqrt((double)s->grid_cells)) << s->num_filters;
        char square[96] = "";
        if ((side >> s->num_filters) * (side >> s->num_filters) == s->grid_cells)
            snprintf(square, sizeof square, ", %lldx%lld if they are square", side, side);
        return ae_fail(err, AE_ERR_USAGE,
                       "%s: the weights do not say the image size: give it (the file's model takes images "
                       "whose (H/%d) x (W/%d) = %lld%s)",
                       f->path, 1 << s->num_filters, 1 << s->num_filters, s->grid_cells, square);
    }
    if (o->channels > 0 && o->channels != s->channels)
        return ae_fail(err, AE_ERR_USAGE, "%s: the first convolution takes %d channels, not %d", f->path,
                       s->channels, o->channels);
    if (s->channels != 1 && s->channels != 3)
        return ae_fail(err, AE_ERR_FORMAT, "%s: the first convolution takes %d channels; aedet reads 1 or 3",
                       f->path, s->channels);
    if (o->num_filters > 0 && (o->num_filters != s->num_filters ||
                               memcmp(o->filters, s->filters, (size_t)s->num_filters * sizeof *o->filters))) {
        list_filters(o->filters, o->num_filters, want, sizeof want);
        return ae_fail(err, AE_ERR_USAGE, "%s: the file's model has filters %s, not %s", f->path, have, want);
    }
    if (o->latent_dim > 0 && o->latent_dim != s->latent_dim)
        return ae_fail(err, AE_ERR_USAGE, "%s: the file's model has a latent of %d, not %d", f->path,
                       s->latent_dim, o->latent_dim);
    ae_config_init(c, o->height, o->width, s->channels);
    c->num_filters = s->num_filters;
    memcpy(c->filters, s->filters, sizeof c->filters);
    c->latent_dim = s->latent_dim;
    c->leaky_slope = o->leaky_slope;
    c->bn_epsilon = o->bn_epsilon;
    c->bn_momentum = o->bn_momentum;
    ae_status st = ae_config_check(c, max_batch, err);
    if (st != AE_OK) {
        ae_error_prefix(err, "%s: ", f->path);
        return st;
    }
    int k = s->num_filters;
    long long cells = (long long)(o->height >> k) * (o->width >> k);
    if (cells != s->grid_cells)
        return ae_fail(err, AE_ERR_USAGE,
                       "%s: %dx%d images make a %lldx%d grid of %lld cells before the Dense layer, but the "
                       "file's model has %lld: the weights are for another image size",
                       f->path, o->height, o->width, (long long)(o->height >> k), o->width >> k, cells,
                       s->grid_cells);
    size_t need = ae_config_memory_bytes(c, max_batch), limit = ae_get_memory_limit();
    if (need > limit)
        return ae_fail(err, AE_ERR_USAGE, "%s: a %dx%d model for batches of %d needs %zu MiB, over the limit of "
                       "%zu MiB", f->path, o->height, o->width, max_batch, need >> 20, limit >> 20);
    return AE_OK;
}

static void shape_text(int ndim, const long long *dims, char *buf, size_t size)
{
    buf[0] = '\0';
    for (int d = 0; d < ndim; d++)
        snprintf(buf + strlen(buf), size - strlen(buf), "%s%lld", d ? "x" : "", dims[d]);
}

static ae_status read_values(const kfile *f, int layer, int var, ae_model *m, ae_error *err)
{
    char tname[64];
    ae_kl_tensor_name(f->k, layer, var, tname, sizeof tname);
    int t = ae_model_find_tensor(m, tname);
    if (t < 0)
        return ae_fail(err, AE_ERR_USAGE, "%s: the model has no tensor %s", f->path, tname);
    const ae_tensor_info *info = ae_model_tensor(m, t);
    const kweight *w = weight_of(f, layer, var);
    long long need[4];
    int same = w->ndim == info->ndim;
    for (int d = 0; d < info->ndim; d++) {
        need[d] = info->shape[d];
        same = same && w->dims[d] == need[d];
    }
    if (!same) {
        char have[96], want[96];
        shape_text(w->ndim, w->dims, have, sizeof have);
        shape_text(info->ndim, need, want, sizeof want);
        return ae_fail(err, AE_ERR_FORMAT, "%s: the dataset %s%s/%s has shape %s, but the model needs %s there (%s)",
                       f->path, f->under, w->group, w->name, have, want, tname);
    }
    float *dst = (info->is_state ? ae_model_state(m) : ae_model_params(m)) + info->offset;
    hid_t g = H5Gopen2(f->root, w->group, H5P_DEFAULT);
    hid_t d = g < 0 ? -1 : H5Dopen2(g, w->name, H5P_DEFAULT);
    ae_status st = AE_OK;
    if (d < 0 || H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0) {
        st = fail_h5(err, AE_ERR_FORMAT, "%s: cannot read the dataset %s%s/%s", f->path, f->under, w->group,
                     w->name);
    }
    if (d >= 0) H5Dclose(d);
    if (g >= 0) H5Gclose(g);
    int variance = info->is_state && var == 3;
    for (size_t i = 0; st == AE_OK && i < info->size; i++)
        if (!isfinite(dst[i]) || (variance && dst[i] < 0))
            st = ae_fail(err, AE_ERR_FORMAT, "%s: %s%s/%s[%zu] is %g%s", f->path, f->under, w->group, w->name, i,
                         (double)dst[i], variance && isfinite(dst[i]) ? ": a variance cannot be negative" : "");
    return st;
}

ae_status ae_keras_import(const char *path, const ae_keras_options *opt, int max_batch, ae_model **out,
                          ae_keras_summary *summary, ae_error *err)
{
    if (out)
        *out = NULL;
    if (!path || !opt || !out)
        return ae_fail(err, AE_ERR_USAGE, "importing Keras weights: no path, options or output");
    ae_h5_quiet q;
    ae_h5_quiet_begin(&q);
    kfile f;
    ae_config cfg;
    ae_model *m = NULL;
    ae_status st = open_file(&f, path, err);
    if (st == AE_OK)
        st = read_structure(&f, err);
    if (st == AE_OK)
        st = make_config(&f, opt, max_batch, &cfg, err);
    if (st == AE_OK)
        st = ae_model_create(&cfg, max_batch, &m, err);
    for (int i = 0; st == AE_OK && i < f.nl; i++)
        for (int v = 0; st == AE_OK && v < ae_kl_num_vars(f.l[i].kind); v++)
            st = read_values(&f, i, v, m, err);
    if (st == AE_OK && summary)
        *summary = f.sum;
    close_file(&f);
    ae_h5_quiet_end(&q);
    if (st != AE_OK) {
        ae_model_free(m);
        return st;
    }
    *out = m;
    return AE_OK;
}
