/* The config: defaults, validation, FLOPs, and the plan (layers, tensor table,
 * buffer sizes) that ae_model_create allocates from. */
#include "nn/kernels/direct.h"
#include "nn/kernels/isa.h"
#include "nn/model.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define AE_MAX_SIDE 65536
#define AE_MAX_WIDTH 65536            /* filters, latent */
#define AE_MAX_MEMORY (64ULL << 30)   /* bytes: a config over this is a mistake */

void ae_config_init(ae_config *cfg, int height, int width, int channels)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->height = height;
    cfg->width = width;
    cfg->channels = channels;
    cfg->num_filters = 3;
    cfg->filters[0] = 16;
    cfg->filters[1] = 32;
    cfg->filters[2] = 64;
    cfg->latent_dim = 32;
    cfg->leaky_slope = 0.3f;
    cfg->bn_momentum = 0.99f;
    cfg->bn_epsilon = 1e-3f;
}

static int add_size(size_t *acc, size_t v)
{
    if (v > SIZE_MAX - *acc)
        return 0;
    *acc += v;
    return 1;
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

int ae_plan_applies_sigmoid(const ae_plan *p, int i)
{
    return i >= 0 && i + 1 < p->num_layers && p->layers[i].kind == AE_LAYER_DECONV &&
           p->layers[i + 1].kind == AE_LAYER_SIGMOID;
}

ae_chain_layer ae_plan_chain_layer(const ae_plan *p, int i)
{
    const ae_layer *l = &p->layers[i];
    return (ae_chain_layer){NULL, NULL, &l->geom, l->in_c, l->out_c, NULL,
                            l->kind == AE_LAYER_CONV};
}

static int is_conv(const ae_plan *p, int i)
{
    return i >= 0 && i < p->num_layers &&
           (p->layers[i].kind == AE_LAYER_CONV || p->layers[i].kind == AE_LAYER_DECONV);
}

/* The convolution that reads convolution i's output through a BatchNorm
 * (and the LeakyReLU before it), or -1. */
static int conv_above(const ae_plan *p, int i)
{
    const int bn = i + 1 < p->num_layers && p->layers[i + 1].kind == AE_LAYER_LEAKY ? i + 2 : i + 1;
    return bn < p->num_layers && p->layers[bn].kind == AE_LAYER_BN && is_conv(p, bn + 1) ? bn + 1
                                                                                         : -1;
}

/* count, if the count layers at index[] make a chain (ae_chain_fits), else 0;
 * the chain's scratch goes into the plan's sizes. */
static int chain_of(ae_plan *p, const int *index, int count, int score)
{
    ae_chain_layer layers[AE_CHAIN_MAX];
    for (int k = 0; k < count; k++)
        layers[k] = ae_plan_chain_layer(p, index[k]);
    if (!ae_chain_fits(layers, count, score, p->isa))
        return 0;
    p->pad_floats = max_size(p->pad_floats, ae_chain_floats(layers, count, score));
    p->wt_floats = max_size(p->wt_floats, ae_chain_wt_floats(layers, count));
    return count;
}

static void plan_encoder_chain(ae_plan *p)
{
    int count = 0;
    for (int i = 0; i >= 0 && count < AE_CHAIN_MAX && p->layers[i].kind == AE_LAYER_CONV;
         i = conv_above(p, i))
        p->encoder_chain[count++] = i;
    p->encoder_chain_count = chain_of(p, p->encoder_chain, count, 0);
}

static void plan_score_chain(ae_plan *p)
{
    const int out = p->num_layers - 2;
    if (!ae_plan_applies_sigmoid(p, out))
        return;
    int below[AE_CHAIN_MAX], count = 0; /* from the output layer down */
    below[count++] = out;
    for (int i = out - 1; i >= 0 && count < AE_CHAIN_MAX; i--)
        if (is_conv(p, i)) {
            if (conv_above(p, i) != below[count - 1])
                break;
            below[count++] = i;
        }
    for (int k = 0; k < count; k++)
        p->score_chain[k] = below[count - 1 - k];
    p->score_chain_count = chain_of(p, p->score_chain, count, 1);
}

static ae_status check_values(const ae_config *cfg, int max_batch, ae_error *err)
{
    if (cfg->height < 1 || cfg->width < 1 || cfg->height > AE_MAX_SIDE || cfg->width > AE_MAX_SIDE)
        return ae_fail(err, AE_ERR_USAGE, "model: image size %dx%d must be 1..%d on each side",
                       cfg->height, cfg->width, AE_MAX_SIDE);
    if (cfg->channels < 1 || cfg->channels > 4)
        return ae_fail(err, AE_ERR_USAGE, "model: %d channels: must be 1..4", cfg->channels);
    if (cfg->num_filters < 1 || cfg->num_filters > AE_MAX_FILTERS)
        return ae_fail(err, AE_ERR_USAGE, "model: %d convolution layers: must be 1..%d",
                       cfg->num_filters, AE_MAX_FILTERS);
    for (int i = 0; i < cfg->num_filters; i++)
        if (cfg->filters[i] < 1 || cfg->filters[i] > AE_MAX_WIDTH)
            return ae_fail(err, AE_ERR_USAGE, "model: filters[%d] = %d: must be 1..%d", i,
                           cfg->filters[i], AE_MAX_WIDTH);
    if (cfg->latent_dim < 1 || cfg->latent_dim > AE_MAX_WIDTH)
        return ae_fail(err, AE_ERR_USAGE, "model: latent size %d: must be 1..%d", cfg->latent_dim,
                       AE_MAX_WIDTH);
    int scale = 1 << cfg->num_filters;
    if (cfg->height % scale || cfg->width % scale)
        return ae_fail(err, AE_ERR_USAGE,
                       "model: image size %dx%d is not divisible by 2^%d = %d (one halving per "
                       "convolution layer)",
                       cfg->height, cfg->width, cfg->num_filters, scale);
    if (!isfinite(cfg->leaky_slope))
        return ae_fail(err, AE_ERR_USAGE, "model: LeakyReLU slope %g is not finite",
                       (double)cfg->leaky_slope);
    if (!(cfg->bn_momentum >= 0.0f && cfg->bn_momentum <= 1.0f))
        return ae_fail(err, AE_ERR_USAGE, "model: BatchNorm momentum %g: must be in [0, 1]",
                       (double)cfg->bn_momentum);
    if (!(cfg->bn_epsilon > 0.0f && isfinite(cfg->bn_epsilon)))
        return ae_fail(err, AE_ERR_USAGE, "model: BatchNorm epsilon %g: must be positive",
                       (double)cfg->bn_epsilon);
    if (max_batch < 1)
        return ae_fail(err, AE_ERR_USAGE, "model: batch size %d: must be at least 1", max_batch);
    /* One image's largest layer must fit in an int (ae_gemm's sizes, our
     * layer fields); every factor is at most 65536, so size_t cannot overflow here. */
    size_t largest = (size_t)cfg->height * cfg->width * cfg->channels;
    for (int i = 0; i < cfg->num_filters; i++) {
        size_t h = (size_t)cfg->height >> i, w = (size_t)cfg->width >> i;
        size_t level = h * w * (size_t)cfg->filters[i];
        largest = level > largest ? level : largest;
    }
    if (largest > INT_MAX)
        return ae_fail(err, AE_ERR_USAGE,
                       "model: one image's activations (%zu values in the largest layer) exceed "
                       "what one GEMM can index; use smaller images or fewer filters",
                       largest);
    return AE_OK;
}

/* Appends a tensor; its offset goes at the end of the parameters or the state. */
static size_t add_tensor(ae_plan *p, const char *name, int is_state, int ndim, int d0, int d1,
                         int d2, int d3)
{
    ae_tensor_info *t = &p->tensors[p->num_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->is_state = is_state;
    t->ndim = ndim;
    int dims[4] = {d0, d1, d2, d3};
    t->size = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = dims[i];
        t->size *= (size_t)dims[i]; /* small: the caller bounds every dimension */
    }
    size_t *end = is_state ? &p->num_state : &p->num_params;
    t->offset = *end;
    *end += t->size;
    return t->offset;
}

static ae_layer *add_layer(ae_plan *p, ae_layer_kind kind, const char *name, int h, int w, int c)
{
    ae_layer *l = &p->layers[p->num_layers];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    snprintf(l->name, sizeof l->name, "%s", name);
    if (p->num_layers > 0) {
        const ae_layer *prev = &p->layers[p->num_layers - 1];
        l->in_h = prev->out_h;
        l->in_w = prev->out_w;
        l->in_c = prev->out_c;
    } else {
        l->in_h = p->image_h;
        l->in_w = p->image_w;
        l->in_c = p->image_c;
    }
    l->out_h = h;
    l->out_w = w;
    l->out_c = c;
    p->num_layers++;
    return l;
}

static void add_conv_block(ae_plan *p, const char *prefix, ae_layer_kind kind, int h, int w, int c,
                           int stride)
{
    char name[48];
    const char *what = kind == AE_LAYER_CONV ? "conv" : "deconv";
    snprintf(name, sizeof name, "%s.%s", prefix, what);
    ae_layer *l = add_layer(p, kind, name, h, w, c);
    if (kind == AE_LAYER_CONV) {
        ae_conv_geom_init(&l->geom, l->in_h, l->in_w, l->in_c, stride);
        snprintf(name, sizeof name, "%s.conv.kernel", prefix);
        l->kernel = add_tensor(p, name, 0, 4, 3, 3, l->in_c, c);
    } else {
        ae_conv_geom_init(&l->geom, h, w, c, stride);
        snprintf(name, sizeof name, "%s.deconv.kernel", prefix);
        l->kernel = add_tensor(p, name, 0, 4, 3, 3, c, l->in_c);
    }
    snprintf(name, sizeof name, "%s.%s.bias", prefix, what);
    l->bias = add_tensor(p, name, 0, 1, c, 0, 0, 0);
}

static void add_leaky_bn(ae_plan *p, const char *prefix, int h, int w, int c)
{
    char name[48];
    snprintf(name, sizeof name, "%s.leaky", prefix);
    add_layer(p, AE_LAYER_LEAKY, name, h, w, c);
    snprintf(name, sizeof name, "%s.bn", prefix);
    ae_layer *bn = add_layer(p, AE_LAYER_BN, name, h, w, c);
    static const char *parts[4] = {"gamma", "beta", "moving_mean", "moving_var"};
    size_t off[4];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.bn.%s", prefix, parts[i]);
        off[i] = add_tensor(p, name, i >= 2, 1, c, 0, 0, 0);
    }
    bn->kernel = off[0];
    bn->bias = off[1];
    bn->moving_mean = off[2];
    bn->moving_var = off[3];
    bn->saved = p->num_saved; /* mean, invstd, scale, shift */
    p->num_saved += 4 * (size_t)c;
}

static void build_layers(ae_plan *p, const ae_config *cfg)
{
    char prefix[16];
    int h = cfg->height, w = cfg->width, c = cfg->channels, k = cfg->num_filters;
    p->image_h = h;
    p->image_w = w;
    p->image_c = c;
    for (int i = 0; i < k; i++) {
        snprintf(prefix, sizeof prefix, "enc%d", i);
        h /= 2;
        w /= 2;
        c = cfg->filters[i];
        add_conv_block(p, prefix, AE_LAYER_CONV, h, w, c, 2);
        add_leaky_bn(p, prefix, h, w, c);
    }
    /* Flatten is a view: the NHWC bytes are Keras' flatten order already. */
    int flat = h * w * c;
    ae_layer *enc = add_layer(p, AE_LAYER_DENSE, "enc.dense", 1, 1, cfg->latent_dim);
    enc->kernel = add_tensor(p, "enc.dense.kernel", 0, 2, flat, cfg->latent_dim, 0, 0);
    enc->bias = add_tensor(p, "enc.dense.bias", 0, 1, cfg->latent_dim, 0, 0, 0);
    p->first_decoder = p->num_layers;
    ae_layer *dec = add_layer(p, AE_LAYER_DENSE, "dec.dense", h, w, c); /* Reshape: a view */
    dec->kernel = add_tensor(p, "dec.dense.kernel", 0, 2, cfg->latent_dim, flat, 0, 0);
    dec->bias = add_tensor(p, "dec.dense.bias", 0, 1, flat, 0, 0, 0);
    for (int i = 0; i < k; i++) {
        snprintf(prefix, sizeof prefix, "dec%d", i);
        h *= 2;
        w *= 2;
        c = cfg->filters[k - 1 - i];
        add_conv_block(p, prefix, AE_LAYER_DECONV, h, w, c, 2);
        add_leaky_bn(p, prefix, h, w, c);
    }
    add_conv_block(p, "out", AE_LAYER_DECONV, h, w, cfg->channels, 1);
    add_layer(p, AE_LAYER_SIGMOID, "out.sigmoid", h, w, cfg->channels);
}

ae_status ae_plan_make(ae_plan *p, const ae_config *cfg, int max_batch, int threads,
                       ae_error *err)
{
    ae_status st = check_values(cfg, max_batch, err);
    if (st != AE_OK)
        return st;
    memset(p, 0, sizeof *p);
    p->threads = threads < 1 ? 1 : threads;
    p->isa = ae_isa_best();
    build_layers(p, cfg);
    size_t bn_c = 0, act = 0;
    for (int i = 0; i < p->num_layers; i++) {
        ae_layer *l = &p->layers[i];
        l->in_count = (size_t)l->in_h * l->in_w * l->in_c;
        l->out_count = (size_t)l->out_h * l->out_w * l->out_c;
        if (l->kind == AE_LAYER_CONV || l->kind == AE_LAYER_DECONV) {
            size_t small = (size_t)l->geom.small_h * l->geom.small_w;
            size_t taps = 9 * (size_t)l->geom.big_c;
            int other_c = l->kind == AE_LAYER_CONV ? l->out_c : l->in_c;
            if (p->isa == AE_ISA_PORTABLE)
                p->col_floats = max_size(p->col_floats, small * taps);
            /* the transformed or padded input, a padded gradient and a row (direct.h);
             * a convolution's backward then makes its whole output gradient */
            p->pad_floats =
                max_size(p->pad_floats,
                         ae_direct_padded_floats(l->geom.big_h, l->geom.big_w, l->geom.big_c) +
                             ae_direct_padded_floats(l->geom.small_h, l->geom.small_w, other_c) +
                             (size_t)l->geom.small_w * other_c +
                             (l->kind == AE_LAYER_CONV ? l->out_count : 0));
            if (ae_plan_applies_sigmoid(p, i)) /* the training head (layers.h) */
                p->pad_floats =
                    max_size(p->pad_floats, ae_deconv2d_head_floats(&l->geom, l->in_c));
            p->wt_floats = max_size(p->wt_floats, taps * other_c);
            /* one image's kernel gradient, then its bias gradient */
            p->slot_floats = max_size(p->slot_floats, taps * other_c + (size_t)l->out_c);
        }
        if (l->kind == AE_LAYER_BN)
            bn_c = max_size(bn_c, (size_t)l->out_c);
    }
    plan_encoder_chain(p);
    plan_score_chain(p);
    for (int i = 0; i < p->num_layers; i++) {
        ae_layer *l = &p->layers[i];
        size_t batch_count;
        if (!ae_mul_size(l->out_count, (size_t)max_batch, &batch_count))
            goto overflow;
        /* A LeakyReLU and the BatchNorm after it are recomputed from the
         * convolution's output z wherever they are read; only a BatchNorm
         * that feeds the dense layer (a GEMM input) is kept. The output
         * layer writes the sigmoid's output, never its own. */
        l->stored = !(l->kind == AE_LAYER_LEAKY || ae_plan_applies_sigmoid(p, i) ||
                      (l->kind == AE_LAYER_BN &&
                       (i + 1 == p->num_layers || p->layers[i + 1].kind != AE_LAYER_DENSE)));
        l->act = act;
        if (l->stored && !add_size(&act, batch_count))
            goto overflow;
        if (!l->stored && batch_count > p->view_floats)
            p->view_floats = batch_count;
        if (batch_count > p->grad_floats)
            p->grad_floats = batch_count;
        /* the training head may leave its padded output gradient there instead */
        if (ae_plan_applies_sigmoid(p, i) && ae_deconv2d_head_floats(&l->geom, l->in_c) > 0) {
            if (!ae_mul_size(ae_direct_padded_floats(l->out_h, l->out_w, l->out_c),
                             (size_t)max_batch, &batch_count))
                goto overflow;
            if (batch_count > p->grad_floats)
                p->grad_floats = batch_count;
        }
    }
    p->act_floats = act;
    p->dslot_doubles = 2 * bn_c;
    p->channel_floats = 4 * bn_c;

    /* Bytes: parameters x4 (weights, gradients, Adam m and v), state x2 (and a
     * backup), activations, two gradient buffers, scratch. */
    size_t bytes = 0, part;
    size_t floats = 0;
    if (!ae_mul_size(p->num_params, 4, &part) || !add_size(&floats, part) ||
        !add_size(&floats, 2 * p->num_state) || !add_size(&floats, p->num_saved) ||
        !add_size(&floats, p->act_floats) || !ae_mul_size(p->grad_floats, 2, &part) ||
        !add_size(&floats, part) || !ae_mul_size(p->col_floats, (size_t)p->threads, &part) ||
        !add_size(&floats, part) || !ae_mul_size(p->slot_floats, (size_t)max_batch, &part) ||
        !add_size(&floats, part) || !add_size(&floats, p->channel_floats) ||
        !ae_mul_size(p->pad_floats, (size_t)p->threads, &part) || !add_size(&floats, part) ||
        !add_size(&floats, p->wt_floats) ||
        !ae_mul_size(floats, sizeof(float), &bytes) ||
        !ae_mul_size(p->dslot_doubles, (size_t)max_batch + 2 + 2 * (size_t)p->threads, &part) ||
        !add_size(&part, (size_t)max_batch) || /* the loss's per-image sums */
        !ae_mul_size(part, sizeof(double), &part) || !add_size(&bytes, part))
        goto overflow;
    p->memory_bytes = bytes;
    if (bytes > AE_MAX_MEMORY)
        return ae_fail(err, AE_ERR_USAGE,
                       "model: %dx%dx%d images, batch %d would need %.1f GiB (limit %.0f GiB); "
                       "use a smaller batch, smaller images or fewer filters",
                       cfg->height, cfg->width, cfg->channels, max_batch,
                       (double)bytes / (1 << 30), (double)AE_MAX_MEMORY / (1 << 30));
    return AE_OK;
overflow:
    return ae_fail(err, AE_ERR_USAGE,
                   "model: %dx%dx%d images, batch %d: the memory needed overflows a size_t",
                   cfg->height, cfg->width, cfg->channels, max_batch);
}

ae_status ae_config_check(const ae_config *cfg, int max_batch, ae_error *err)
{
    ae_plan plan;
    return ae_plan_make(&plan, cfg, max_batch, ae_get_num_threads(), err);
}

size_t ae_config_memory_bytes(const ae_config *cfg, int max_batch)
{
    ae_plan plan;
    ae_error err;
    if (ae_plan_make(&plan, cfg, max_batch, ae_get_num_threads(), &err) == AE_OK)
        return plan.memory_bytes;
    /* over AE_MAX_MEMORY or overflowing: more than any limit */
    return ae_plan_make(&plan, cfg, 1, 1, &err) == AE_OK ? SIZE_MAX : 0;
}

double ae_config_forward_flops(const ae_config *cfg)
{
    double macs = 0;
    int h = cfg->height, w = cfg->width, c = cfg->channels, k = cfg->num_filters;
    if (k < 1 || k > AE_MAX_FILTERS)
        return 0;
    for (int i = 0; i < k; i++) {
        h /= 2;
        w /= 2;
        macs += (double)h * w * 9.0 * c * cfg->filters[i];
        c = cfg->filters[i];
    }
    double flat = (double)h * w * c;
    macs += 2.0 * flat * cfg->latent_dim;
    for (int i = k - 1; i >= 0; i--) {
        /* A transpose reads every input pixel once per tap: input pixels x 9 x in x out. */
        macs += (double)h * w * 9.0 * c * cfg->filters[i];
        c = cfg->filters[i];
        h *= 2;
        w *= 2;
    }
    macs += (double)h * w * 9.0 * c * cfg->channels;
    return 2.0 * macs;
}
