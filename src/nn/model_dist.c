/* Data-parallel training steps: what a rank adds to the model's own step so
 * that every rank computes with the whole batch (aedet/train.h). BatchNorm's
 * per-image sums and the images' errors are gathered from every rank and
 * added in image order, as one process adds them, so the statistics and the
 * loss have one process's bits; the gradient is summed by the carrier's
 * allreduce, in parts as the backward finishes them when it can. */
#include "aedet/train.h"
#include "nn/batchnorm_dist.h"
#include "nn/model.h"

#include <stdlib.h>
#include <string.h>

/* By default a part of the gradient is handed over once this many floats
 * (4 MiB) are final: in the default model the two dense layers, which are
 * most of it, go while the convolutions under them run their backward, and
 * small layers do not cost a collective each. */
enum { PART_FLOATS = 1 << 20 };

static int has_params(const ae_layer *l)
{
    return l->kind == AE_LAYER_CONV || l->kind == AE_LAYER_DECONV || l->kind == AE_LAYER_DENSE ||
           l->kind == AE_LAYER_BN;
}

/* Where layer l's parameters (and gradients) begin. */
static size_t params_start(const ae_layer *l) { return l->kernel < l->bias ? l->kernel : l->bias; }

/* Whether the parameters lie layer after layer, so that once the backward
 * is past layer i the gradient from layer i's start on is final. */
static int params_in_layer_order(const ae_plan *p)
{
    size_t last = 0;
    int first = 1;
    for (int i = 0; i < p->num_layers; i++) {
        const ae_layer *l = &p->layers[i];
        if (!has_params(l))
            continue;
        if (!first && params_start(l) <= last)
            return 0;
        last = params_start(l);
        first = 0;
    }
    return 1;
}

ae_status ae_dist_step_init(ae_dist_step *d, const ae_model *m, const ae_collective *comm,
                            int max_total, ae_error *err)
{
    *d = (ae_dist_step){.comm = comm};
    /* an image's BatchNorm sums (2 x the widest BatchNorm), or its error */
    size_t per = m->plan.dslot_doubles > 0 ? m->plan.dslot_doubles : 1;
    d->mine_doubles = (size_t)m->max_batch * per;
    d->all_doubles = (size_t)max_total * per;
    d->gather_counts = malloc((size_t)comm->size * sizeof *d->gather_counts);
    d->mine = malloc(d->mine_doubles * sizeof *d->mine);
    d->all = malloc(d->all_doubles * sizeof *d->all);
    if (!d->gather_counts || !d->mine || !d->all) {
        ae_dist_step_free(d);
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for the statistics of %d images",
                       max_total);
    }
    d->overlap = comm->allreduce_begin && comm->allreduce_end && params_in_layer_order(&m->plan);
    return AE_OK;
}

void ae_dist_step_free(ae_dist_step *d)
{
    free(d->gather_counts);
    free(d->mine);
    free(d->all);
    d->gather_counts = NULL;
    d->mine = d->all = NULL;
}

void ae_dist_step_begin(ae_model *m)
{
    ae_dist_step *d = m->dist;
    d->ready = d->begun = m->plan.num_params;
    d->parts = 0;
    d->status = AE_OK;
    ae_error_clear(&d->error);
}

/* Every rank's `per` doubles an image, from this rank's n images at `from`
 * (stride doubles apart), into d->all in image order. */
static void gather(ae_model *m, const double *from, size_t stride, int n, size_t per)
{
    ae_dist_step *d = m->dist;
    const ae_collective *c = d->comm;
    for (int i = 0; i < n; i++)
        memcpy(d->mine + (size_t)i * per, from + (size_t)i * stride, per * sizeof *d->mine);
    for (int r = 0; r < c->size; r++)
        d->gather_counts[r] = d->counts[r] * (int)per;
    if (d->status == AE_OK)
        d->status = c->allgather(c->ctx, d->mine, d->all, d->gather_counts, &d->error);
}

void ae_dist_bn_forward(ae_model *m, const ae_bn_params *bn, float *y, const float *z, int n,
                        size_t pixels, int c, int local)
{
    ae_scratch *s = &m->scratch;
    if (!local)
        ae_batchnorm_stats_only(z, bn, n, pixels, c, s);
    gather(m, s->dslots, s->dslot_doubles, n, 2 * (size_t)c);
    const ae_bn_slots all = {m->dist->all, m->dist->n_total, 2 * (size_t)c};
    ae_batchnorm_finish_train_from(y, z, bn, n, &all, pixels, c, s);
}

void ae_dist_bn_backward(ae_model *m, float *dgamma, float *dbeta, const ae_bn_params *bn,
                         const float *dy, const float *z, int n, size_t pixels, int c, int local,
                         ae_grad_xform *gxform)
{
    ae_scratch *s = &m->scratch;
    if (!local)
        ae_batchnorm_backward_sums_only(dy, z, bn, n, pixels, c, s);
    gather(m, s->dslots, s->dslot_doubles, n, 2 * (size_t)c);
    const ae_bn_slots all = {m->dist->all, m->dist->n_total, 2 * (size_t)c};
    ae_batchnorm_backward_finish_from(dgamma, dbeta, bn, z, &all, n, pixels, c, s, gxform);
    /* These are the whole batch's already: rank 0's alone go into the sum. */
    if (m->dist->comm->rank != 0) {
        memset(dgamma, 0, (size_t)c * sizeof *dgamma);
        memset(dbeta, 0, (size_t)c * sizeof *dbeta);
    }
}

float ae_dist_loss(ae_model *m, int n, size_t d)
{
    gather(m, m->image_sums, 1, n, 1);
    double total = 0;
    for (int i = 0; i < m->dist->n_total; i++)
        total += m->dist->all[i];
    return (float)(total / ((double)m->dist->n_total * (double)d));
}

void ae_dist_grads_ready(ae_model *m, int i)
{
    ae_dist_step *d = m->dist;
    const ae_collective *c = d->comm;
    const ae_layer *l = &m->plan.layers[i];
    if (has_params(l) && params_start(l) < d->ready)
        d->ready = params_start(l);
    const size_t part = c->part_floats ? c->part_floats : PART_FLOATS;
    if (d->overlap && d->begun - d->ready >= part && d->status == AE_OK) {
        d->status = c->allreduce_begin(c->ctx, m->grads + d->ready, d->begun - d->ready, &d->error);
        d->begun = d->ready;
        d->parts++;
    }
    if (d->parts && c->progress)
        c->progress(c->ctx);
}

ae_status ae_dist_grads_finish(ae_model *m, ae_error *err)
{
    ae_dist_step *d = m->dist;
    const ae_collective *c = d->comm;
    if (d->status == AE_OK && d->begun > 0)
        d->status = c->allreduce(c->ctx, m->grads, d->begun, &d->error);
    if (d->status == AE_OK && d->parts)
        d->status = c->allreduce_end(c->ctx, &d->error);
    if (d->status != AE_OK && err)
        *err = d->error;
    return d->status;
}

float ae_dist_idle_forward(ae_model *m)
{
    const ae_plan *p = &m->plan;
    for (int i = 0; i < p->num_layers; i++)
        if (p->layers[i].kind == AE_LAYER_BN) {
            const ae_layer *l = &p->layers[i];
            ae_bn_params bn = ae_model_bn_params(m, i);
            ae_dist_bn_forward(m, &bn, NULL, NULL, 0, (size_t)l->out_h * (size_t)l->out_w,
                               l->out_c, 1);
        }
    return ae_dist_loss(m, 0, p->layers[p->num_layers - 1].out_count);
}

void ae_dist_idle_backward(ae_model *m)
{
    const ae_plan *p = &m->plan;
    memset(m->grads, 0, p->num_params * sizeof *m->grads);
    for (int i = p->num_layers - 1; i >= 0; i--) {
        const ae_layer *l = &p->layers[i];
        if (l->kind == AE_LAYER_BN) {
            ae_bn_params bn = ae_model_bn_params(m, i);
            ae_grad_xform gxform;
            ae_dist_bn_backward(m, m->grads + l->kernel, m->grads + l->bias, &bn, NULL, NULL, 0,
                                (size_t)l->out_h * (size_t)l->out_w, l->out_c, 1, &gxform);
        }
        ae_dist_grads_ready(m, i);
    }
}
