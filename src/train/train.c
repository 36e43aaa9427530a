/* The training loop: epochs of shuffled batches, validation loss, checkpoints
 * at epoch ends, and a clean stop between steps on request. */
#include "aedet/train.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

ae_status ae_train_state_init(ae_train_state *st, int epochs, ae_error *err)
{
    *st = (ae_train_state){0};
    if (epochs < 1)
        return ae_fail(err, AE_ERR_USAGE, "epochs must be at least 1 (got %d)", epochs);
    st->train_loss = calloc((size_t)epochs, sizeof *st->train_loss);
    st->val_loss = calloc((size_t)epochs, sizeof *st->val_loss);
    if (!st->train_loss || !st->val_loss) {
        ae_train_state_free(st);
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for the loss history");
    }
    return AE_OK;
}

void ae_train_state_free(ae_train_state *st)
{
    free(st->train_loss);
    free(st->val_loss);
    st->train_loss = st->val_loss = NULL;
}

uint64_t ae_epoch_seed(uint64_t seed, int epoch)
{
    /* One splitmix64 round mixes the epoch in, so nearby epochs differ fully. */
    uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(epoch + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static size_t batch_floats(const ae_model *m, int batch_size)
{
    const ae_config *c = ae_model_config(m);
    return (size_t)batch_size * (size_t)c->height * (size_t)c->width * (size_t)c->channels;
}

/* Runs one epoch from st->batch on; returns with st updated after every step. */
static ae_status train_epoch(ae_model *m, ae_loader *train, const ae_train_options *opt,
                             ae_train_state *st, float *x, ae_error *err)
{
    ae_status s = ae_loader_start(train, opt->batch_size, 1, ae_epoch_seed(opt->seed, st->epoch), err);
    if (s != AE_OK)
        return s;
    size_t total = ae_loader_count(train);
    ae_batch b;
    /* Resuming mid-epoch: the same order, so skip the batches already trained. */
    for (int i = 0; i < st->batch; i++)
        if ((s = ae_loader_next(train, &b, err)) != AE_OK)
            return s;
    for (;;) {
        if (opt->stop && *opt->stop)
            return ae_fail(err, AE_ERR_INTERRUPTED, "stopped at epoch %d, batch %d", st->epoch + 1,
                           st->batch);
        if ((s = ae_loader_next(train, &b, err)) != AE_OK)
            return s;
        if (b.count == 0)
            return AE_OK;
        ae_pixels_to_float(b.pixels, batch_floats(m, b.count), x);
        float loss;
        s = ae_model_train_step(m, &opt->adam, x, b.count, &loss, err);
        if (s != AE_OK) {
            ae_error_prefix(err, "epoch %d, batch %d", st->epoch + 1, st->batch + 1);
            return s;
        }
        st->batch++;
        st->loss_sum += (double)loss * b.count;
        st->loss_count += (size_t)b.count;
        if (opt->on_step)
            opt->on_step(opt->user, st->epoch + 1, st->loss_count, total, loss);
    }
}

ae_status ae_train(ae_model *m, ae_loader *train, ae_loader *val, const ae_train_options *opt,
                   ae_train_state *st, ae_error *err)
{
    if (opt->batch_size < 1 || opt->batch_size > ae_model_max_batch(m))
        return ae_fail(err, AE_ERR_USAGE, "batch size %d is outside 1..%d", opt->batch_size,
                       ae_model_max_batch(m));
    if (ae_loader_count(train) == 0)
        return ae_fail(err, AE_ERR_DATA, "no training images");
    float *x = ae_alloc_floats(batch_floats(m, opt->batch_size));
    if (!x)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for a batch");
    ae_status s = AE_OK;
    while (st->epoch < opt->epochs) {
        double start = now_seconds();
        if ((s = train_epoch(m, train, opt, st, x, err)) != AE_OK)
            break;
        double val_loss = NAN;
        if (val && ae_loader_count(val) > 0 &&
            (s = ae_mean_error(m, val, opt->batch_size, &val_loss, err)) != AE_OK)
            break;
        double train_loss = st->loss_sum / (double)st->loss_count;
        st->train_loss[st->epoch] = train_loss;
        st->val_loss[st->epoch] = val_loss;
        st->num_history = st->epoch + 1;
        st->epoch++;
        st->batch = 0;
        st->loss_sum = 0;
        st->loss_count = 0;
        if (opt->on_epoch)
            opt->on_epoch(opt->user, st->epoch, train_loss, val_loss, now_seconds() - start);
        if (opt->on_checkpoint && (s = opt->on_checkpoint(opt->user, err)) != AE_OK)
            break;
    }
    ae_free_floats(x);
    return s;
}
