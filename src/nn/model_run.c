/* Running the model: forward (whole, encoder or decoder), loss, backward, Adam,
 * the checked training step, and the one scoring path. Nothing here allocates. */
#include "nn/kernels/direct.h"
#include "nn/model.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static float *layer_out(ae_model *m, int i) { return m->acts + m->plan.layers[i].act; }

/* BatchNorm layer i's parameters and saved statistics (see layers.h). Its
 * input is the LeakyReLU before it, folded in through the slope. */
ae_bn_params ae_model_bn_params(ae_model *m, int i)
{
    const ae_layer *l = &m->plan.layers[i];
    float *saved = m->saved + l->saved;
    const size_t c = (size_t)l->out_c;
    ae_bn_params bn = {m->params + l->kernel, m->params + l->bias,
                       m->state + l->moving_mean, m->state + l->moving_var,
                       saved, saved + c, saved + 2 * c, saved + 3 * c,
                       m->cfg.bn_momentum, m->cfg.bn_epsilon, 1.0f};
    if (i > 0 && m->plan.layers[i - 1].kind == AE_LAYER_LEAKY)
        bn.slope = m->cfg.leaky_slope;
    return bn;
}

static ae_bn_params bn_params(ae_model *m, int i) { return ae_model_bn_params(m, i); }

/* The stored tensor under layer i's input: the LeakyReLU before a BatchNorm
 * is skipped (the BatchNorm applies it). */
static const float *bn_source(ae_model *m, int i)
{
    return layer_out(m, m->plan.layers[i - 1].kind == AE_LAYER_LEAKY ? i - 2 : i - 1);
}

/* Layer i's input, in a run that starts at layer `from` with `in`. When the
 * layer before is a BatchNorm that is not stored, the input is the
 * convolution output under it and *xform (returned) is that BatchNorm. */
static const float *layer_input(ae_model *m, int i, int from, const float *in,
                                ae_input_xform *xform, const ae_input_xform **use)
{
    *use = NULL;
    if (i == from)
        return in;
    const ae_layer *prev = &m->plan.layers[i - 1];
    if (prev->stored)
        return layer_out(m, i - 1);
    ae_bn_params bn = bn_params(m, i - 1);
    xform->scale = bn.scale;
    xform->shift = bn.shift;
    xform->slope = bn.slope;
    *use = xform;
    return bn_source(m, i - 1);
}

/* The BatchNorm whose input is layer i's output (through a LeakyReLU or
 * not), below `to`; -1 if none. */
static int bn_above(const ae_model *m, int i, int to)
{
    const ae_layer *l = m->plan.layers;
    int k = i + 1 < to && l[i + 1].kind == AE_LAYER_LEAKY ? i + 2 : i + 1;
    return k < to && l[k].kind == AE_LAYER_BN ? k : -1;
}

/* Layers [from, to) on n images; layer from reads `in`, the others their
 * predecessor. In training, a convolution under a BatchNorm adds the
 * BatchNorm's per-image statistics as it computes its output bands (one
 * read of its output fewer); the BatchNorm then only merges them. */
static void run_layers(ae_model *m, int from, int to, const float *in, int n, ae_mode mode)
{
    m->last_n = n;
    m->last_mode = mode;
    int stats_ready = -1; /* the BatchNorm whose per-image statistics are in the slots */
    ae_bn_stats stats;
    for (int i = from; i < to; i++) {
        double start = omp_get_wtime();
        const ae_layer *l = &m->plan.layers[i];
        ae_input_xform xform;
        const ae_input_xform *use = NULL;
        const float *x = NULL;
        if (l->kind != AE_LAYER_LEAKY && l->kind != AE_LAYER_BN)
            x = layer_input(m, i, from, in, &xform, &use);
        float *y = l->stored ? layer_out(m, i) : NULL;
        const float *w = m->params + l->kernel, *b = m->params + l->bias;
        size_t count = (size_t)n * l->out_count;
        const ae_bn_stats *add_stats = NULL;
        if ((l->kind == AE_LAYER_CONV || l->kind == AE_LAYER_DECONV) && mode == AE_MODE_TRAIN) {
            int k = bn_above(m, i, to);
            if (k >= 0) {
                ae_bn_stats_init(&stats, &m->scratch, n, (size_t)l->out_h * l->out_w, l->out_c,
                                 bn_params(m, k).slope);
                add_stats = &stats;
                stats_ready = k;
            }
        }
        switch (l->kind) {
        case AE_LAYER_CONV:
            ae_conv2d_forward_stats(y, x, use, w, b, n, &l->geom, l->out_c, &m->scratch,
                                    add_stats);
            break;
        case AE_LAYER_DECONV:
            if (ae_plan_applies_sigmoid(&m->plan, i))
                ae_deconv2d_forward_sigmoid(layer_out(m, i + 1), x, use, w, b, n, &l->geom,
                                            l->in_c, &m->scratch);
            else
                ae_deconv2d_forward_stats(y, x, use, w, b, n, &l->geom, l->in_c, &m->scratch,
                                          add_stats);
            break;
        case AE_LAYER_DENSE:
            ae_dense_forward(y, x, w, b, n, (int)l->in_count, (int)l->out_count,
                             &m->scratch);
            break;
        case AE_LAYER_LEAKY: /* applied by the BatchNorm after it */
            break;
        case AE_LAYER_SIGMOID:
            if (!ae_plan_applies_sigmoid(&m->plan, i - 1) || i == from)
                ae_sigmoid_forward_with(ae_direct_ops_for(m->scratch.isa), &m->scratch, y, x,
                                        count);
            break;
        case AE_LAYER_BN: {
            size_t pixels = (size_t)l->out_h * l->out_w;
            ae_bn_params bn = bn_params(m, i);
            const float *z = i == from ? in : bn_source(m, i);
            if (mode == AE_MODE_TRAIN && m->dist)
                ae_dist_bn_forward(m, &bn, y, z, n, pixels, l->out_c, stats_ready == i);
            else if (mode == AE_MODE_TRAIN && stats_ready == i)
                ae_batchnorm_finish_train(y, z, &bn, n, pixels, l->out_c, &m->scratch);
            else if (mode == AE_MODE_TRAIN)
                ae_batchnorm_forward_train(y, z, &bn, n, pixels, l->out_c, &m->scratch);
            else
                ae_batchnorm_forward_infer(y, z, &bn, n, pixels, l->out_c, &m->scratch);
            break;
        }
        }
        m->forward_s[i] += omp_get_wtime() - start;
    }
}

/* A recomputed layer's output (a LeakyReLU, a BatchNorm, or the output
 * layer under the sigmoid) for inspection. */
const float *ae_model_view(ae_model *m, int i)
{
    const ae_layer *l = &m->plan.layers[i];
    if (!m->view && !(m->view = malloc(m->plan.view_floats * sizeof(float))))
        return NULL;
    size_t pixels = (size_t)m->last_n * l->out_h * l->out_w;
    if (l->kind == AE_LAYER_DECONV) {
        ae_input_xform xform;
        const ae_input_xform *use;
        const float *x = layer_input(m, i, -1, NULL, &xform, &use);
        ae_deconv2d_forward(m->view, x, use, m->params + l->kernel, m->params + l->bias,
                            m->last_n, &l->geom, l->in_c, &m->scratch);
    } else if (l->kind == AE_LAYER_LEAKY) {
        ae_leaky_forward(m->view, layer_out(m, i - 1), pixels * l->out_c, m->cfg.leaky_slope);
    } else {
        ae_bn_params bn = bn_params(m, i);
        ae_input_xform xform = {bn.scale, bn.shift, bn.slope};
        ae_bn_apply(ae_direct_ops_for(m->scratch.isa), m->view, bn_source(m, i), &xform, pixels,
                    l->out_c);
    }
    return m->view;
}

static ae_status check_batch(const ae_model *m, int n, const char *what, ae_error *err)
{
    if (n < 1 || n > m->max_batch)
        return ae_fail(err, AE_ERR_USAGE, "%s: %d images: must be 1..%d (the model's batch size)",
                       what, n, m->max_batch);
    return AE_OK;
}

ae_status ae_model_forward(ae_model *m, const float *x, int n, ae_mode mode, ae_error *err)
{
    ae_status st = check_batch(m, n, "forward", err);
    if (st == AE_OK)
        run_layers(m, 0, m->plan.num_layers, x, n, mode);
    return st;
}

typedef struct {
    const float *y, *x;
    size_t d;
    double *sums;
    float *dy; /* NULL: the sums alone */
    float scale;
    int sigmoid;
} loss_job;

static void image_loss(void *arg, int i, int t)
{
    (void)t;
    const loss_job *j = arg;
    const size_t at = (size_t)i * j->d;
    j->sums[i] = j->dy ? ae_sum_squared_diff_grad(j->y + at, j->x + at, j->d, j->dy + at,
                                                  j->scale, j->sigmoid)
                       : ae_sum_squared_diff(j->y + at, j->x + at, j->d);
}

/* The loss's gradient scale, 2 / (n d), as ae_mse_backward has it; n the
 * whole batch's images in a data-parallel step. */
static float loss_scale(const ae_model *m, int n, size_t d)
{
    if (m->dist)
        n = m->dist->n_total;
    return (float)(2.0 / ((double)n * (double)d));
}

/* The batch mean from the images' sums in m->image_sums, added in image order. */
static float batch_loss(const ae_model *m, int n, size_t d, float *per_image)
{
    double total = 0;
    for (int i = 0; i < n; i++) {
        if (per_image)
            per_image[i] = (float)(m->image_sums[i] / (double)d);
        total += m->image_sums[i];
    }
    return n > 0 ? (float)(total / ((double)n * (double)d)) : 0.0f;
}

/* ae_mse_forward with the images' sums on the pool, added in image order:
 * the same bits. With dy, the same pass writes the loss's gradient, 2 (y -
 * x) / count as ae_mse_backward, through the sigmoid's backward (y (1 - y))
 * when the last layer is one. */
static float loss_pass(const ae_model *m, const float *x, int n, float *per_image, float *dy)
{
    const ae_layer *last = &m->plan.layers[m->plan.num_layers - 1];
    const size_t d = last->out_count;
    const ae_scratch *s = &m->scratch;
    loss_job j = {ae_model_output(m), x, d, m->image_sums, dy, loss_scale(m, n, d),
                  last->kind == AE_LAYER_SIGMOID};
    const int threads = (size_t)n * d >= ae_parallel_values() ? ae_scratch_threads(s) : 1;
    ae_pool_run(s->pool, threads, n, image_loss, &j);
    return batch_loss(m, n, d, per_image);
}

/* What ae_model_loss and ae_model_backward need: x, and n images, the
 * number the last forward ran (in training, for the backward). */
static ae_status check_after_forward(const ae_model *m, const float *x, int n, int train,
                                     const char *what, ae_error *err)
{
    if (!m || !x)
        return ae_fail(err, AE_ERR_USAGE, "%s: no %s", what, m ? "images" : "model");
    ae_status st = check_batch(m, n, what, err);
    if (st != AE_OK)
        return st;
    if (n != m->last_n)
        return ae_fail(err, AE_ERR_USAGE, "%s: %d images, but the last forward ran %d", what, n,
                       m->last_n);
    if (train && m->last_mode != AE_MODE_TRAIN)
        return ae_fail(err, AE_ERR_USAGE, "%s: the last forward was not in training mode",
                       what);
    return AE_OK;
}

ae_status ae_model_loss(const ae_model *m, const float *x, int n, float *per_image, float *loss,
                        ae_error *err)
{
    ae_status st = check_after_forward(m, x, n, 0, "loss", err);
    if (st != AE_OK)
        return st;
    const float l = loss_pass(m, x, n, per_image, NULL);
    if (loss)
        *loss = l;
    return AE_OK;
}

/* For the backward of convolution i: the gradient sums of the BatchNorm
 * that gives its input (use: that BatchNorm's transform), to be added as dx
 * is computed; NULL when there is none. */
static const ae_bn_grad_sums *bn_sums_below(ae_model *m, int i, const ae_input_xform *use,
                                            const float *dx, ae_bn_grad_sums *sums,
                                            int *sums_ready)
{
    if (!use || !dx)
        return NULL;
    const ae_layer *bn_layer = &m->plan.layers[i - 1];
    ae_bn_params bn = bn_params(m, i - 1);
    ae_bn_grad_sums_init(sums, &m->scratch, &bn, bn_source(m, i - 1),
                         (size_t)bn_layer->out_h * bn_layer->out_w, bn_layer->out_c);
    *sums_ready = i - 1;
    return sums;
}

/* The gradient on its way down: dy the gradient of the next layer's output,
 * spare the buffer its input gradient goes to. A convolution over a
 * BatchNorm adds that BatchNorm's gradient sums as it computes its input
 * gradient (one read of it fewer): the BatchNorm then only merges them. */
typedef struct {
    float *dy, *spare;
    ae_bn_grad_sums sums;
    int sums_ready; /* the BatchNorm whose per-image sums are in the slots, or -1 */
    /* set when dy is the training head's padded output gradient (its kernel,
     * its geometry), from which the layer under the next BatchNorm makes dy */
    const float *above_w;
    const ae_conv_geom *above_g;
} grad_flow;

static grad_flow grad_flow_start(ae_model *m)
{
    return (grad_flow){.dy = m->grad_a, .spare = m->grad_b, .sums_ready = -1};
}

static void grad_flow_swap(grad_flow *f)
{
    float *t = f->spare;
    f->spare = f->dy;
    f->dy = t;
}

/* The backward of layers top, top - 1, ..., 0; f->dy holds the gradient of
 * layer top's output (the loss's, from loss_pass, when top is the last). */
static void backward(ae_model *m, const float *x, int n, int top, grad_flow *f)
{
    const ae_plan *p = &m->plan;
    /* A BatchNorm over a convolution leaves its second pass to the
     * convolution's backward (ae_conv2d_backward_through, and
     * ae_deconv2d_backward_through on the direct kernels): dz is never stored. */
    const int fuse = ae_direct_ops_for(m->scratch.isa) != NULL;
    ae_grad_xform gxform;
    const ae_grad_xform *pending = NULL;
    for (int i = top; i >= 0; i--) {
        double start = omp_get_wtime();
        const ae_layer *l = &p->layers[i];
        ae_input_xform xform;
        const ae_input_xform *use = NULL;
        const float *in = NULL;
        if (l->kind != AE_LAYER_LEAKY && l->kind != AE_LAYER_BN && l->kind != AE_LAYER_SIGMOID)
            in = layer_input(m, i, 0, x, &xform, &use);
        const float *w = m->params + l->kernel;
        float *dw = m->grads + l->kernel, *db = m->grads + l->bias;
        float *dy = f->dy, *dx = i > 0 ? f->spare : NULL; /* nothing needs the images' gradient */
        int swap = 1;
        switch (l->kind) {
        case AE_LAYER_SIGMOID: /* the last layer: done with the loss's gradient */
            swap = 0;
            break;
        case AE_LAYER_LEAKY: /* folded into the BatchNorm's backward */
            swap = 0;
            break;
        case AE_LAYER_BN: {
            ae_bn_params bn = bn_params(m, i);
            const size_t pixels = (size_t)l->out_h * l->out_w;
            const int under = p->layers[i - 1].kind == AE_LAYER_LEAKY ? i - 2 : i - 1;
            const float *z = bn_source(m, i);
            if (m->dist)
                ae_dist_bn_backward(m, dw, db, &bn, dy, z, n, pixels, l->out_c, f->sums_ready == i,
                                    &gxform);
            else if (f->sums_ready == i)
                ae_batchnorm_backward_finish(dw, db, &bn, z, n, pixels, l->out_c, &m->scratch,
                                             &gxform);
            else
                ae_batchnorm_backward_sums(dw, db, dy, z, &bn, n, pixels, l->out_c,
                                           &m->scratch, &gxform);
            gxform.above_w = f->above_w; /* (head_defers: a transposed convolution under it) */
            gxform.above_g = f->above_g;
            f->above_w = NULL, f->above_g = NULL;
            if (p->layers[under].kind == AE_LAYER_CONV ||
                (fuse && p->layers[under].kind == AE_LAYER_DECONV))
                pending = &gxform;
            else
                ae_batchnorm_backward_apply(dy, dy, &gxform, n, pixels, l->out_c, &m->scratch);
            swap = 0;
            break;
        }
        case AE_LAYER_CONV:
        case AE_LAYER_DECONV: {
            const ae_conv_io io = {
                .x = in, .xform = use, .w = w, .dy = dy, .gxform = pending, .dx = dx, .dw = dw,
                .db = db, .sums = bn_sums_below(m, i, use, dx, &f->sums, &f->sums_ready)};
            const int conv = l->kind == AE_LAYER_CONV;
            const ae_conv_shape shape = {.g = &l->geom, .small_c = conv ? l->out_c : l->in_c,
                                         .n = n};
            if (conv)
                ae_conv2d_backward_through(&io, &shape, &m->scratch);
            else
                ae_deconv2d_backward_through(&io, &shape, &m->scratch);
            pending = NULL;
            break;
        }
        case AE_LAYER_DENSE:
            ae_dense_backward(dx, dw, db, dy, in, w, n, (int)l->in_count, (int)l->out_count,
                              &m->scratch);
            break;
        }
        m->backward_s[i] += omp_get_wtime() - start;
        if (swap)
            grad_flow_swap(f);
        if (m->dist)
            ae_dist_grads_ready(m, i);
    }
}

ae_status ae_model_backward(ae_model *m, const float *x, int n, ae_error *err)
{
    ae_status st = check_after_forward(m, x, n, 1, "backward", err);
    if (st != AE_OK)
        return st;
    grad_flow f = grad_flow_start(m);
    loss_pass(m, x, n, NULL, f.dy);
    backward(m, x, n, m->plan.num_layers - 1, &f);
    return AE_OK;
}

/* The layer whose training head (ae_deconv2d_train_head) can run the
 * output layer, its sigmoid, the loss and their backward in one pass; -1
 * when there is none (the portable path, or a wide output layer). */
static int head_layer(const ae_model *m)
{
    const int i = m->plan.num_layers - 2;
    return ae_plan_applies_sigmoid(&m->plan, i) &&
                   ae_deconv2d_has_head(&m->plan.layers[i].geom, m->scratch.isa)
               ? i
               : -1;
}

/* Whether head layer i's input is a BatchNorm (with its LeakyReLU) over a
 * transposed convolution, whose backward can make the head's input gradient
 * rows itself as it reads them (ae_grad_xform.above_w): the head then defers it. */
static int head_defers(const ae_model *m, int i)
{
    const ae_layer *l = m->plan.layers;
    return i >= 3 && l[i - 1].kind == AE_LAYER_BN && l[i - 2].kind == AE_LAYER_LEAKY &&
           l[i - 3].kind == AE_LAYER_DECONV;
}

/* The training head of layer i: its output (the sigmoid's, as the forward
 * leaves it), the batch loss, returned, and in f->dy the input gradient or,
 * deferred, the padded output gradient it is made from; timed as the
 * layer's backward. */
static float run_head(ae_model *m, const float *x, int n, int i, grad_flow *f)
{
    double start = omp_get_wtime();
    const ae_layer *l = &m->plan.layers[i];
    ae_input_xform xform;
    const ae_input_xform *use;
    const float *in = layer_input(m, i, 0, x, &xform, &use);
    const ae_bn_grad_sums *sums =
        head_defers(m, i) ? bn_sums_below(m, i, use, f->spare, &f->sums, &f->sums_ready) : NULL;
    const ae_conv_io io = {.x = in, .xform = use, .w = m->params + l->kernel,
                           .b = m->params + l->bias, .y = layer_out(m, i + 1), .dx = f->spare,
                           .dw = m->grads + l->kernel, .db = m->grads + l->bias, .sums = sums};
    const ae_head_loss loss = {.target = x, .scale = loss_scale(m, n, l->out_count),
                               .image_sums = m->image_sums};
    ae_deconv2d_train_head(&io, &loss, &(ae_conv_shape){.g = &l->geom, .small_c = l->in_c, .n = n},
                           &m->scratch);
    if (sums) {
        f->above_w = m->params + l->kernel;
        f->above_g = &l->geom;
    }
    grad_flow_swap(f);
    m->backward_s[i] += omp_get_wtime() - start;
    return batch_loss(m, n, l->out_count, NULL);
}

void ae_adam_config_init(ae_adam_config *cfg, float learning_rate, int decay_epochs)
{
    cfg->learning_rate = learning_rate;
    cfg->beta1 = 0.9f;
    cfg->beta2 = 0.999f;
    cfg->epsilon = 1e-7f;
    cfg->decay = decay_epochs > 0 ? learning_rate / (float)decay_epochs : 0.0f;
}

typedef struct {
    ae_model *m;
    ae_adam_step step;
    int commit;
    /* summed with atomics: integers, so the order does not matter */
    size_t bad, bad_grads; /* updates, and (commit 0) gradients, not finite */
} adam_job;

static void adam_chunk(void *arg, size_t begin, size_t end)
{
    adam_job *j = arg;
    ae_model *m = j->m;
    size_t bad_grads = 0;
    size_t bad = ae_adam_update(m->params + begin, m->adam_m + begin, m->adam_v + begin,
                                m->grads + begin, end - begin, &j->step, j->commit, &bad_grads);
    __atomic_fetch_add(&j->bad, bad, __ATOMIC_RELAXED);
    __atomic_fetch_add(&j->bad_grads, bad_grads, __ATOMIC_RELAXED);
}

/* Keras' legacy time decay, with the iteration count before this step.
 * Returns the updates that would not be finite; with commit 0, the
 * gradients that are not finite go to *bad_grads. */
static size_t adam(ae_model *m, const ae_adam_config *cfg, int commit, size_t *bad_grads)
{
    const ae_adam_step step = {
        .lr_t = cfg->learning_rate / (1.0 + (double)cfg->decay * (double)m->iterations),
        .beta1 = cfg->beta1,
        .beta2 = cfg->beta2,
        .epsilon = cfg->epsilon,
        .t = (long long)m->iterations + 1,
    };
    adam_job j = {m, step, commit, 0, 0};
    ae_parallel_chunks(&m->scratch, m->plan.num_params, 1 << 16, m->plan.num_params, adam_chunk,
                       &j);
    if (bad_grads)
        *bad_grads = j.bad_grads;
    return j.bad;
}

void ae_model_adam_step(ae_model *m, const ae_adam_config *cfg)
{
    adam(m, cfg, 1, NULL);
    m->iterations++;
}

/* The forward of a training step up to the loss: its value (the whole
 * batch's in a data-parallel step), with f->dy (or the head's deferred
 * gradient) ready for the backward from *top down. A rank with no images
 * in a data-parallel step takes part in the BatchNorms' and the loss's
 * collectives alone. */
static float train_forward(ae_model *m, const float *x, int n, grad_flow *f, int *top)
{
    const int head = head_layer(m);
    *top = m->plan.num_layers - 1;
    float value;
    if (n == 0)
        return ae_dist_idle_forward(m);
    if (head >= 0) {
        run_layers(m, 0, head, x, n, AE_MODE_TRAIN);
        value = run_head(m, x, n, head, f);
        *top = head - 1;
    } else {
        run_layers(m, 0, m->plan.num_layers, x, n, AE_MODE_TRAIN);
        value = loss_pass(m, x, n, NULL, f->dy); /* and its gradient */
    }
    return m->dist ? ae_dist_loss(m, n, m->plan.layers[m->plan.num_layers - 1].out_count) : value;
}

/* The backward from top down (the head's gradient, when it ran, is final
 * already), and in a data-parallel step the gradient summed over the ranks. */
static ae_status train_backward(ae_model *m, const float *x, int n, int top, grad_flow *f,
                                ae_error *err)
{
    if (n == 0)
        ae_dist_idle_backward(m);
    else {
        if (m->dist && top < m->plan.num_layers - 1)
            ae_dist_grads_ready(m, top + 1);
        backward(m, x, n, top, f);
    }
    return m->dist ? ae_dist_grads_finish(m, err) : AE_OK;
}

static ae_status train_step(ae_model *m, const ae_adam_config *cfg, const float *x, int n,
                            ae_dist_step *dist, float *loss, ae_error *err)
{
    ae_status st = dist && n == 0 ? AE_OK : check_batch(m, n, "training step", err);
    if (st != AE_OK)
        return st;
    const long long step = (long long)m->iterations + 1;
    size_t state_bytes = m->plan.num_state * sizeof(float);
    /* The forward moves BatchNorm's statistics: keep them to undo a bad step. */
    memcpy(m->state_backup, m->state, state_bytes);
    m->dist = dist;
    if (dist)
        ae_dist_step_begin(m);
    grad_flow f = grad_flow_start(m);
    int top;
    float value = train_forward(m, x, n, &f, &top);
    if (loss)
        *loss = value;
    const char *bad = NULL;
    size_t count = 0;
    if (dist && dist->status != AE_OK) {
        st = dist->status;
    } else if (!isfinite(value)) { /* the same on every rank: the batch's loss */
        bad = "the loss";
    } else if ((st = train_backward(m, x, n, top, &f, err)) == AE_OK) {
        size_t bad_grads, bad_updates = adam(m, cfg, 0, &bad_grads); /* one pass checks both */
        if ((count = bad_grads) > 0)
            bad = "the gradients";
        else if ((count = bad_updates) > 0)
            bad = "the updated weights";
    }
    m->dist = NULL;
    if (st != AE_OK) {
        memcpy(m->state, m->state_backup, state_bytes);
        if (dist && dist->status != AE_OK && err)
            *err = dist->error;
        ae_error_prefix(err, "training step %lld", step);
        return st;
    }
    if (bad) {
        memcpy(m->state, m->state_backup, state_bytes);
        if (count)
            return ae_fail(err, AE_ERR_NUMERIC,
                           "training step %lld: %s would hold %zu NaN or Inf values; weights "
                           "left as before the step (try a lower learning rate)",
                           step, bad, count);
        return ae_fail(err, AE_ERR_NUMERIC,
                       "training step %lld: the loss is %g; weights left as before the step "
                       "(check the input for NaN or Inf, or lower the learning rate)",
                       step, (double)value);
    }
    adam(m, cfg, 1, NULL);
    m->iterations++;
    return AE_OK;
}

ae_status ae_model_train_step(ae_model *m, const ae_adam_config *cfg, const float *x, int n,
                              float *loss, ae_error *err)
{
    return train_step(m, cfg, x, n, NULL, loss, err);
}

ae_status ae_model_train_step_dist(ae_model *m, const ae_adam_config *cfg, const float *x, int n,
                                   ae_dist_step *d, float *loss, ae_error *err)
{
    if (n < 0 || n > m->max_batch || n > d->n_total)
        return ae_fail(err, AE_ERR_USAGE, "training step: %d images of a batch of %d on this rank: "
                       "must be 0..%d", n, d->n_total, m->max_batch);
    return train_step(m, cfg, x, n, d, loss, err);
}

/* The inference chain of count layers at index[] (the plan's): their
 * weights and the transforms of the BatchNorms inside it from the moving
 * statistics, then ae_chain_forward (into the top's output) or, with score,
 * ae_chain_score; timed as the top layer's forward. */
static void run_chain(ae_model *m, const float *x, int n, const int *index, int count,
                      int score)
{
    const ae_layer *l = m->plan.layers;
    const double start = omp_get_wtime();
    ae_chain_layer layers[AE_CHAIN_MAX];
    ae_input_xform xform[AE_CHAIN_MAX];
    const float *in = NULL;
    for (int k = 0; k < count; k++) {
        const int i = index[k];
        if (k > 0) { /* the BatchNorm under layer i: its scale and shift */
            ae_bn_params bn = bn_params(m, i - 1);
            ae_batchnorm_forward_infer(NULL, NULL, &bn, n, 0, l[i - 1].out_c, &m->scratch);
        }
        layers[k] = ae_plan_chain_layer(&m->plan, i);
        const float *input = layer_input(m, i, 0, x, &xform[k], &layers[k].xform);
        if (k == 0)
            in = input;
        layers[k].w = m->params + l[i].kernel;
        layers[k].b = m->params + l[i].bias;
    }
    const int top = index[count - 1];
    if (score)
        ae_chain_score(layer_out(m, top + 1), m->image_sums, x, in, layers, count, n,
                       &m->scratch);
    else
        ae_chain_forward(layer_out(m, top), in, layers, count, n, &m->scratch);
    m->forward_s[top] += omp_get_wtime() - start;
}

ae_status ae_model_score(ae_model *m, const float *x, int n, float *errors, float *recon,
                         ae_error *err)
{
    ae_status st = check_batch(m, n, "score", err);
    if (st != AE_OK)
        return st;
    const ae_plan *p = &m->plan;
    int next = 0; /* the first layer not run yet, and its input */
    const float *in = x;
    if (p->encoder_chain_count > 0) {
        run_chain(m, x, n, p->encoder_chain, p->encoder_chain_count, 0);
        next = p->encoder_chain[p->encoder_chain_count - 1] + 1;
        in = layer_out(m, next - 1);
    }
    if (p->score_chain_count > 0 && p->score_chain[0] >= next) {
        run_layers(m, next, p->score_chain[0], in, n, AE_MODE_INFER);
        run_chain(m, x, n, p->score_chain, p->score_chain_count, 1);
        batch_loss(m, n, p->layers[p->num_layers - 1].out_count, errors);
    } else {
        run_layers(m, next, p->num_layers, in, n, AE_MODE_INFER);
        loss_pass(m, x, n, errors, NULL);
    }
    if (recon)
        memcpy(recon, ae_model_output(m),
               (size_t)n * m->plan.layers[m->plan.num_layers - 1].out_count * sizeof(float));
    return AE_OK;
}

ae_status ae_model_encode(ae_model *m, const float *x, int n, float *latent, ae_error *err)
{
    ae_status st = check_batch(m, n, "encode", err);
    if (st != AE_OK)
        return st;
    run_layers(m, 0, m->plan.first_decoder, x, n, AE_MODE_INFER);
    memcpy(latent, ae_model_latent(m), (size_t)n * (size_t)m->cfg.latent_dim * sizeof(float));
    return AE_OK;
}

ae_status ae_model_decode(ae_model *m, const float *latent, int n, float *out, ae_error *err)
{
    ae_status st = check_batch(m, n, "decode", err);
    if (st != AE_OK)
        return st;
    /* The latent goes where the encoder would have left it, so that the layer
     * outputs stay consistent for inspection. */
    float *z = layer_out(m, m->plan.first_decoder - 1);
    memmove(z, latent, (size_t)n * (size_t)m->cfg.latent_dim * sizeof(float));
    run_layers(m, m->plan.first_decoder, m->plan.num_layers, z, n, AE_MODE_INFER);
    memcpy(out, ae_model_output(m),
           (size_t)n * m->plan.layers[m->plan.num_layers - 1].out_count * sizeof(float));
    return AE_OK;
}
