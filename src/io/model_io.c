/* Saving and loading an ae_model through the model file format: the model's
 * config and preprocessing become metadata keys, its tensors become file
 * tensors (params, BatchNorm state, and in checkpoints Adam's moments). */
#include "aedet/model_file.h"
#include "common/file_internal.h"
#include "nn/model.h" /* ae_plan: a file's tensors checked without building the model */

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *kind_name(ae_tensor_kind k)
{
    switch (k) {
    case AE_KIND_PARAM: return "parameter";
    case AE_KIND_STATE: return "state";
    case AE_KIND_ADAM_M: return "adam_m";
    case AE_KIND_ADAM_V: return "adam_v";
    }
    return "?";
}

/* The keys that describe the model itself, always the model's own values. */
static ae_status set_model_keys(ae_meta *meta, const ae_model *m, int with_optimizer,
                                ae_error *err)
{
    const ae_config *c = ae_model_config(m);
    int64_t filters[AE_MAX_FILTERS];
    for (int i = 0; i < c->num_filters; i++)
        filters[i] = c->filters[i];
    ae_status st = AE_OK;
    if (st == AE_OK) st = ae_meta_set_str(meta, AE_KEY_VERSION, AE_VERSION_STRING, err);
    if (st == AE_OK) st = ae_meta_set_int(meta, AE_KEY_HEIGHT, c->height, err);
    if (st == AE_OK) st = ae_meta_set_int(meta, AE_KEY_WIDTH, c->width, err);
    if (st == AE_OK) st = ae_meta_set_int(meta, AE_KEY_CHANNELS, c->channels, err);
    if (st == AE_OK) st = ae_meta_set_ints(meta, AE_KEY_FILTERS, filters, (size_t)c->num_filters, err);
    if (st == AE_OK) st = ae_meta_set_int(meta, AE_KEY_LATENT, c->latent_dim, err);
    if (st == AE_OK) st = ae_meta_set_float(meta, AE_KEY_SLOPE, c->leaky_slope, err);
    if (st == AE_OK) st = ae_meta_set_float(meta, AE_KEY_MOMENTUM, c->bn_momentum, err);
    if (st == AE_OK) st = ae_meta_set_float(meta, AE_KEY_EPSILON, c->bn_epsilon, err);
    if (st == AE_OK) st = ae_meta_set_int(meta, AE_KEY_PRE_HEIGHT, c->height, err);
    if (st == AE_OK) st = ae_meta_set_int(meta, AE_KEY_PRE_WIDTH, c->width, err);
    if (st == AE_OK) st = ae_meta_set_int(meta, AE_KEY_PRE_CHANNELS, c->channels, err);
    if (st == AE_OK) st = ae_meta_set_str(meta, AE_KEY_PRE_RESIZE, AE_PREPROCESS_RESIZE, err);
    if (st == AE_OK) st = ae_meta_set_float(meta, AE_KEY_PRE_SCALE, AE_PREPROCESS_SCALE, err);
    if (st == AE_OK && with_optimizer)
        st = ae_meta_set_int(meta, AE_KEY_ITERATIONS, ae_model_iterations(m), err);
    if (!with_optimizer)
        ae_meta_remove(meta, AE_KEY_ITERATIONS);
    return st;
}

static void describe(ae_file_tensor *t, const ae_tensor_info *info, ae_tensor_kind kind,
                     const float *base)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", info->name);
    t->kind = kind;
    t->ndim = info->ndim;
    for (int d = 0; d < info->ndim; d++)
        t->shape[d] = info->shape[d];
    t->count = info->size;
    t->data = base + info->offset;
}

ae_status ae_model_save(const char *path, const ae_model *m, const ae_meta *meta,
                        int with_optimizer, ae_error *err)
{
    if (!path || !m)
        return ae_fail(err, AE_ERR_USAGE, "saving a model: no path or no model");
    /* The accessors take a non-const model; saving only reads through them. */
    ae_model *model = (ae_model *)m;
    int n = ae_model_num_tensors(m), num_params = 0;
    for (int i = 0; i < n; i++)
        num_params += !ae_model_tensor(m, i)->is_state;
    int total = n + (with_optimizer ? 2 * num_params : 0);

    ae_meta *all = NULL;
    ae_status st = ae_meta_copy(meta, &all, err);
    if (st != AE_OK)
        return st;
    ae_file_tensor *t = calloc((size_t)(total > 0 ? total : 1), sizeof *t);
    if (!t) {
        ae_meta_free(all);
        return ae_fail(err, AE_ERR_NOMEM, "saving %s: out of memory", path);
    }
    st = set_model_keys(all, m, with_optimizer, err);
    int k = 0;
    for (int i = 0; i < n; i++) {
        const ae_tensor_info *info = ae_model_tensor(m, i);
        if (info->is_state)
            describe(&t[k++], info, AE_KIND_STATE, ae_model_state(model));
        else
            describe(&t[k++], info, AE_KIND_PARAM, ae_model_params(model));
    }
    for (int i = 0; i < n && with_optimizer; i++) {
        const ae_tensor_info *info = ae_model_tensor(m, i);
        if (!info->is_state) {
            describe(&t[k++], info, AE_KIND_ADAM_M, ae_model_adam_m(model));
            describe(&t[k++], info, AE_KIND_ADAM_V, ae_model_adam_v(model));
        }
    }
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (st == AE_OK)
        st = ae_model_file_encode(all, t, total, &bytes, &len, err);
    if (st == AE_OK)
        st = ae_write_file_atomic(path, bytes, len, err);
    if (st != AE_OK)
        ae_error_prefix(err, "saving the model to %s", path);
    free(bytes);
    free(t);
    ae_meta_free(all);
    return st;
}

static ae_status get_count(const ae_meta *meta, const char *name, const char *key, int *out,
                           ae_error *err)
{
    int64_t v;
    if (!ae_meta_get_int(meta, key, &v))
        return ae_fail(err, AE_ERR_FORMAT, "%s: the key '%s' is missing or not an int64", name,
                       key);
    if (v < 1 || v > INT_MAX)
        return ae_fail(err, AE_ERR_FORMAT, "%s: '%s' is %lld, out of range", name, key,
                       (long long)v);
    *out = (int)v;
    return AE_OK;
}

static ae_status get_real(const ae_meta *meta, const char *name, const char *key, float *out,
                          ae_error *err)
{
    double v;
    if (!ae_meta_get_float(meta, key, &v))
        return ae_fail(err, AE_ERR_FORMAT, "%s: the key '%s' is missing or not a number", name,
                       key);
    if (!isfinite(v) || fabs(v) > 1e30)
        return ae_fail(err, AE_ERR_FORMAT, "%s: '%s' is %g, out of range", name, key, v);
    *out = (float)v;
    return AE_OK;
}

ae_status ae_model_config_from_meta(const ae_meta *meta, const char *name, ae_config *cfg,
                                    ae_error *err)
{
    ae_config c;
    memset(&c, 0, sizeof c);
    ae_status st = AE_OK;
    if (st == AE_OK) st = get_count(meta, name, AE_KEY_HEIGHT, &c.height, err);
    if (st == AE_OK) st = get_count(meta, name, AE_KEY_WIDTH, &c.width, err);
    if (st == AE_OK) st = get_count(meta, name, AE_KEY_CHANNELS, &c.channels, err);
    if (st == AE_OK) st = get_count(meta, name, AE_KEY_LATENT, &c.latent_dim, err);
    if (st == AE_OK) st = get_real(meta, name, AE_KEY_SLOPE, &c.leaky_slope, err);
    if (st == AE_OK) st = get_real(meta, name, AE_KEY_MOMENTUM, &c.bn_momentum, err);
    if (st == AE_OK) st = get_real(meta, name, AE_KEY_EPSILON, &c.bn_epsilon, err);
    if (st != AE_OK)
        return st;
    size_t n;
    const int64_t *filters = ae_meta_get_ints(meta, AE_KEY_FILTERS, &n);
    if (!filters || n < 1 || n > AE_MAX_FILTERS)
        return ae_fail(err, AE_ERR_FORMAT, "%s: the key '%s' is missing or not 1 to %d int64s",
                       name, AE_KEY_FILTERS, AE_MAX_FILTERS);
    c.num_filters = (int)n;
    for (size_t i = 0; i < n; i++) {
        if (filters[i] < 1 || filters[i] > INT_MAX)
            return ae_fail(err, AE_ERR_FORMAT, "%s: filter count %lld is out of range", name,
                           (long long)filters[i]);
        c.filters[i] = (int)filters[i];
    }
    *cfg = c;
    return AE_OK;
}

/* The file must ask for exactly the preprocessing this aedet does. */
static ae_status check_preprocessing(const ae_meta *meta, const char *name, const ae_config *c,
                                     ae_error *err)
{
    int h = 0, w = 0, ch = 0;
    ae_status st = AE_OK;
    if (st == AE_OK) st = get_count(meta, name, AE_KEY_PRE_HEIGHT, &h, err);
    if (st == AE_OK) st = get_count(meta, name, AE_KEY_PRE_WIDTH, &w, err);
    if (st == AE_OK) st = get_count(meta, name, AE_KEY_PRE_CHANNELS, &ch, err);
    if (st != AE_OK)
        return st;
    if (h != c->height || w != c->width || ch != c->channels)
        return ae_fail(err, AE_ERR_FORMAT,
                       "%s: preprocessing makes %dx%dx%d images but the model takes %dx%dx%d",
                       name, h, w, ch, c->height, c->width, c->channels);
    const char *resize = ae_meta_get_str(meta, AE_KEY_PRE_RESIZE);
    if (!resize || strcmp(resize, AE_PREPROCESS_RESIZE) != 0)
        return ae_fail(err, AE_ERR_FORMAT, "%s: resize method '%s' is not one this aedet knows (%s)",
                       name, resize ? resize : "(missing)", AE_PREPROCESS_RESIZE);
    double scale;
    if (!ae_meta_get_float(meta, AE_KEY_PRE_SCALE, &scale) || scale != AE_PREPROCESS_SCALE)
        return ae_fail(err, AE_ERR_FORMAT, "%s: pixel scale is missing or not 1/255", name);
    return AE_OK;
}

/* What every loader checks before building anything: a file this aedet
 * wrote (docs/MODEL_FORMAT.md requires aedet.version), for images it can
 * feed (decoders give gray or RGB: a 2- or 4-channel model could pass `info`
 * and never score), with the preprocessing it does, and a buildable config. */
static ae_status check_model_keys(const ae_meta *meta, const char *name, ae_config *cfg, ae_error *err)
{
    if (!ae_meta_get_str(meta, AE_KEY_VERSION))
        return ae_fail(err, AE_ERR_FORMAT, "%s: bad model file: the key '%s' is missing or not a string", name,
                       AE_KEY_VERSION);
    ae_status st = ae_model_config_from_meta(meta, name, cfg, err);
    if (st == AE_OK && cfg->channels != 1 && cfg->channels != 3)
        st = ae_fail(err, AE_ERR_FORMAT, "%s: bad model file: %d channels; aedet models take 1 (gray) or 3 (RGB)",
                     name, cfg->channels);
    if (st == AE_OK)
        st = check_preprocessing(meta, name, cfg, err);
    if (st == AE_OK && ae_config_check(cfg, 1, err) != AE_OK) {
        ae_error_prefix(err, "%s describes a model that cannot be built", name);
        st = err ? (err->code = AE_ERR_FORMAT) : AE_ERR_FORMAT;
    }
    return st;
}

/* Copies the tensor (name, kind) of the file into dst after checking its shape. */
static ae_status load_tensor(const ae_model_file *f, const char *name, const ae_tensor_info *info,
                             ae_tensor_kind kind, float *dst, ae_error *err)
{
    int at = ae_model_file_find(f, info->name, kind);
    if (at < 0)
        return ae_fail(err, AE_ERR_FORMAT, "%s: the %s tensor '%s' is missing", name,
                       kind_name(kind), info->name);
    const ae_file_tensor *t = ae_model_file_tensor(f, at);
    int same = t->ndim == info->ndim && t->count == info->size;
    for (int d = 0; same && d < t->ndim; d++)
        same = t->shape[d] == info->shape[d];
    if (!same) {
        char have[96] = "", want[96] = "";
        for (int d = 0; d < t->ndim; d++)
            snprintf(have + strlen(have), sizeof have - strlen(have), "%s%lld", d ? "x" : "",
                     (long long)t->shape[d]);
        for (int d = 0; d < info->ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", d ? "x" : "",
                     info->shape[d]);
        return ae_fail(err, AE_ERR_FORMAT,
                       "%s: the %s tensor '%s' has shape %s but the config needs %s", name,
                       kind_name(kind), info->name, have, want);
    }
    ae_model_file_copy_tensor(f, at, dst + info->offset);
    return AE_OK;
}

/* A file whose checksum is right can still hold values no training makes:
 * NaN or Inf weights or moments, or a negative BatchNorm variance (which
 * would make NaN scores). That is a bad model file, not bad data. */
static ae_status check_values(const char *name, ae_model *m, ae_error *err)
{
    for (int i = 0; i < ae_model_num_tensors(m); i++) {
        const ae_tensor_info *info = ae_model_tensor(m, i);
        const float *v = (info->is_state ? ae_model_state(m) : ae_model_params(m)) + info->offset;
        const float *am = info->is_state ? NULL : ae_model_adam_m(m) + info->offset;
        const float *av = info->is_state ? NULL : ae_model_adam_v(m) + info->offset;
        int variance = strstr(info->name, "moving_var") != NULL;
        for (size_t k = 0; k < info->size; k++) {
            if (!isfinite(v[k]) || (variance && v[k] < 0))
                return ae_fail(err, AE_ERR_FORMAT, "%s: bad model file: %s[%zu] is %g", name, info->name, k,
                               (double)v[k]);
            if (am && (!isfinite(am[k]) || !isfinite(av[k]) || av[k] < 0))
                return ae_fail(err, AE_ERR_FORMAT, "%s: bad model file: the Adam moments of %s[%zu] are %g, %g",
                               name, info->name, k, (double)am[k], (double)av[k]);
        }
    }
    return AE_OK;
}

static ae_status fill_model(const ae_model_file *f, const char *name, ae_model *m,
                            int *has_optimizer, ae_error *err)
{
    int n = ae_model_num_tensors(m), num_params = 0, num_adam = 0;
    for (int i = 0; i < ae_model_file_num_tensors(f); i++)
        num_adam += ae_model_file_tensor(f, i)->kind >= AE_KIND_ADAM_M;
    int with_optimizer = num_adam > 0;
    ae_status st = AE_OK;
    for (int i = 0; i < n && st == AE_OK; i++) {
        const ae_tensor_info *info = ae_model_tensor(m, i);
        if (info->is_state) {
            st = load_tensor(f, name, info, AE_KIND_STATE, ae_model_state(m), err);
            continue;
        }
        num_params++;
        st = load_tensor(f, name, info, AE_KIND_PARAM, ae_model_params(m), err);
        if (st == AE_OK && with_optimizer)
            st = load_tensor(f, name, info, AE_KIND_ADAM_M, ae_model_adam_m(m), err);
        if (st == AE_OK && with_optimizer)
            st = load_tensor(f, name, info, AE_KIND_ADAM_V, ae_model_adam_v(m), err);
    }
    if (st != AE_OK)
        return st;
    /* Every tensor the model needs is there; anything more is not ours. */
    if (ae_model_file_num_tensors(f) != n + (with_optimizer ? 2 * num_params : 0)) {
        for (int i = 0; i < ae_model_file_num_tensors(f); i++) {
            const ae_file_tensor *t = ae_model_file_tensor(f, i);
            int j = ae_model_find_tensor(m, t->name);
            int state = j >= 0 && ae_model_tensor(m, j)->is_state;
            if (j < 0 || state != (t->kind == AE_KIND_STATE))
                return ae_fail(err, AE_ERR_FORMAT, "%s: the %s tensor '%s' is not part of this model",
                               name, kind_name(t->kind), t->name);
        }
        return ae_fail(err, AE_ERR_FORMAT, "%s: unexpected tensors in the file", name);
    }
    int64_t iterations = 0;
    if (with_optimizer) {
        if (!ae_meta_get_int(ae_model_file_meta(f), AE_KEY_ITERATIONS, &iterations) ||
            iterations < 0)
            return ae_fail(err, AE_ERR_FORMAT,
                           "%s: has Adam moments but '%s' is missing or negative", name,
                           AE_KEY_ITERATIONS);
    } else {
        memset(ae_model_adam_m(m), 0, ae_model_num_params(m) * sizeof(float));
        memset(ae_model_adam_v(m), 0, ae_model_num_params(m) * sizeof(float));
    }
    ae_model_set_iterations(m, iterations);
    if (has_optimizer)
        *has_optimizer = with_optimizer;
    return check_values(name, m, err);
}

ae_status ae_model_load_bytes(const uint8_t *bytes, size_t len, const char *name, int max_batch,
                              ae_model **model, ae_meta **meta, int *has_optimizer,
                              ae_error *err)
{
    if (!name)
        name = "model";
    ae_model_file *f = NULL;
    ae_status st = ae_model_file_parse(bytes, len, name, &f, err);
    if (st != AE_OK)
        return st;
    ae_config cfg;
    ae_model *m = NULL;
    st = check_model_keys(ae_model_file_meta(f), name, &cfg, err);
    /* The plan's bytes before any allocation: a small file may declare huge images. */
    size_t need = st == AE_OK ? ae_config_memory_bytes(&cfg, max_batch) : 0;
    if (need == SIZE_MAX && ae_config_check(&cfg, max_batch, err) != AE_OK) /* its own message */
        st = err ? (err->code = AE_ERR_FORMAT) : AE_ERR_FORMAT;
    else if (st == AE_OK && need > ae_get_memory_limit())
        st = ae_fail(err, AE_ERR_FORMAT,
                     "%s: a model for %dx%dx%d images needs %zu bytes for batches of %d, over the memory "
                     "limit of %zu bytes (--memory-limit raises it; a smaller --batch needs less)",
                     name, cfg.height, cfg.width, cfg.channels, need, max_batch, ae_get_memory_limit());
    if (st == AE_OK)
        st = ae_model_create(&cfg, max_batch, &m, err);
    if (st == AE_OK)
        st = fill_model(f, name, m, has_optimizer, err);
    ae_meta *taken = NULL;
    if (st == AE_OK && meta && !(taken = ae_model_file_take_meta(f)))
        st = ae_fail(err, AE_ERR_NOMEM, "%s: out of memory", name);
    ae_model_file_free(f);
    if (st != AE_OK) {
        ae_model_free(m);
        return st;
    }
    *model = m;
    if (meta)
        *meta = taken;
    return AE_OK;
}

/* ae_model_load's and ae_model_inspect's results, for ae_parse_file. */
typedef struct {
    int max_batch;
    ae_model **model;
    ae_model_summary *summary;
    ae_meta **meta;
    int *has_optimizer;
} load_args;

static ae_status load_bytes(const uint8_t *bytes, size_t len, const char *name, void *out, ae_error *err)
{
    load_args *a = out;
    return ae_model_load_bytes(bytes, len, name, a->max_batch, a->model, a->meta, a->has_optimizer, err);
}

ae_status ae_model_load(const char *path, int max_batch, ae_model **model, ae_meta **meta,
                        int *has_optimizer, ae_error *err)
{
    load_args a = {.max_batch = max_batch, .model = model, .meta = meta, .has_optimizer = has_optimizer};
    return ae_parse_file(path, load_bytes, &a, err);
}

static ae_status inspect_bytes(const uint8_t *bytes, size_t len, const char *path, void *args, ae_error *err)
{
    ae_model_summary *out = ((load_args *)args)->summary;
    ae_meta **meta = ((load_args *)args)->meta;
    ae_model_file *f = NULL;
    ae_plan plan;
    float *params = NULL, *state = NULL;
    ae_status st = ae_model_file_parse(bytes, len, path, &f, err);
    if (st == AE_OK)
        st = check_model_keys(ae_model_file_meta(f), path, &out->config, err);
    if (st == AE_OK)
        st = ae_plan_make(&plan, &out->config, 1, 1, err);
    /* Room for the weights only (the file's own size), never the activations. */
    if (st == AE_OK && (!(params = malloc((plan.num_params ? plan.num_params : 1) * sizeof *params)) ||
                        !(state = malloc((plan.num_state ? plan.num_state : 1) * sizeof *state))))
        st = ae_fail(err, AE_ERR_NOMEM, "%s: out of memory", path);
    int num_adam = 0, expected = 0;
    for (int i = 0; st == AE_OK && i < ae_model_file_num_tensors(f); i++)
        num_adam += ae_model_file_tensor(f, i)->kind >= AE_KIND_ADAM_M;
    for (int i = 0; st == AE_OK && i < plan.num_tensors; i++) {
        const ae_tensor_info *info = &plan.tensors[i];
        int num_kinds = info->is_state ? 1 : num_adam ? 3 : 1;
        for (int k = 0; st == AE_OK && k < num_kinds; k++) {
            ae_tensor_kind kind = info->is_state ? AE_KIND_STATE : (ae_tensor_kind)(AE_KIND_PARAM + (k ? k + 1 : 0));
            float *dst = info->is_state ? state : params;
            st = load_tensor(f, path, info, kind, dst, err);
            int variance = kind == AE_KIND_ADAM_V || strstr(info->name, "moving_var") != NULL;
            for (size_t j = 0; st == AE_OK && j < info->size; j++)
                if (!isfinite(dst[info->offset + j]) || (variance && dst[info->offset + j] < 0))
                    st = ae_fail(err, AE_ERR_FORMAT, "%s: bad model file: %s %s[%zu] is %g", path, kind_name(kind),
                                 info->name, j, (double)dst[info->offset + j]);
            expected++;
        }
    }
    if (st == AE_OK && ae_model_file_num_tensors(f) != expected)
        st = ae_fail(err, AE_ERR_FORMAT, "%s: unexpected tensors in the file", path);
    if (st == AE_OK) {
        out->num_params = plan.num_params;
        out->num_tensors = plan.num_tensors;
        out->has_optimizer = num_adam > 0;
        if (meta && !(*meta = ae_model_file_take_meta(f)))
            st = ae_fail(err, AE_ERR_NOMEM, "%s: out of memory", path);
    }
    free(params);
    free(state);
    ae_model_file_free(f);
    return st;
}

ae_status ae_model_inspect(const char *path, ae_model_summary *out, ae_meta **meta, ae_error *err)
{
    memset(out, 0, sizeof *out);
    load_args a = {.summary = out, .meta = meta};
    return ae_parse_file(path, inspect_bytes, &a, err);
}
