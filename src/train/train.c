/* The training loop: epochs of shuffled batches, validation loss, checkpoints
 * at epoch ends, and a clean stop between steps on request. */
#include "aedet/train.h"
#include "train/train_dist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
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
    free(st->best_params);
    free(st->best_state);
    st->train_loss = st->val_loss = NULL;
    st->best_params = st->best_state = NULL;
}

ae_status ae_train_state_keep_best(ae_train_state *st, const ae_model *m, ae_error *err)
{
    if (st->best_params)
        return AE_OK;
    size_t np = ae_model_num_params(m), ns = ae_model_num_state(m);
    st->best_params = malloc(np * sizeof *st->best_params);
    st->best_state = malloc((ns ? ns : 1) * sizeof *st->best_state);
    if (!st->best_params || !st->best_state) {
        free(st->best_params), free(st->best_state);
        st->best_params = st->best_state = NULL;
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for a copy of the best weights");
    }
    return AE_OK;
}

/* After an epoch: remember its weights when its validation loss is the
 * lowest yet; 1 when patience says to stop. */
static int track_best(ae_model *m, const ae_train_options *opt, ae_train_state *st, double val_loss)
{
    if (isnan(val_loss))
        return 0;
    if (!st->best_epoch || val_loss < st->val_loss[st->best_epoch - 1]) {
        st->best_epoch = st->epoch;
        memcpy(st->best_params, ae_model_params(m), ae_model_num_params(m) * sizeof(float));
        memcpy(st->best_state, ae_model_state((ae_model *)m), ae_model_num_state(m) * sizeof(float));
    }
    return opt->patience > 0 && st->epoch - st->best_epoch >= opt->patience;
}

/* The augmentations of one batch, in place (tmp holds one image): x holds
 * its images [first, first + n) (a rank's share), whose draws come after
 * those of the images before them. */
static void augment_batch(const ae_config *c, float *x, int first, int n, unsigned flags,
                          uint64_t seed, float *tmp)
{
    ae_rng rng;
    ae_rng_seed(&rng, seed);
    int h = c->height, w = c->width, ch = c->channels;
    size_t per_image = (size_t)h * (size_t)w * (size_t)ch;
    int reach = w / 16 > 1 ? w / 16 : 1;
    for (int i = 0; i < first + n; i++) {
        float *img = x + (size_t)(i - first) * per_image;
        /* every draw is taken whatever the flags, so each flag's draws do
         * not depend on which others are on */
        int flip = (int)ae_rng_below(&rng, 2);
        int dy = (int)ae_rng_below(&rng, (uint64_t)(2 * reach + 1)) - reach;
        int dx = (int)ae_rng_below(&rng, (uint64_t)(2 * reach + 1)) - reach;
        float gain = (float)(0.9 + 0.2 * ae_rng_uniform(&rng));
        if (i < first)
            continue;
        if (!(flags & AE_AUGMENT_SHIFT))
            dx = dy = 0;
        if (!(flags & AE_AUGMENT_FLIP))
            flip = 0;
        if (flip || dx || dy) {
            memcpy(tmp, img, per_image * sizeof *tmp);
            for (int y = 0; y < h; y++) {
                int sy = y - dy < 0 ? 0 : (y - dy >= h ? h - 1 : y - dy);
                for (int u = 0; u < w; u++) {
                    int su = (flip ? w - 1 - u : u) - dx;
                    su = su < 0 ? 0 : (su >= w ? w - 1 : su);
                    memcpy(img + ((size_t)y * (size_t)w + (size_t)u) * (size_t)ch,
                           tmp + ((size_t)sy * (size_t)w + (size_t)su) * (size_t)ch, (size_t)ch * sizeof *img);
                }
            }
        }
        if (flags & AE_AUGMENT_BRIGHTNESS)
            for (size_t p = 0; p < per_image; p++) {
                float v = img[p] * gain;
                img[p] = v > 1 ? 1 : v;
            }
    }
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

static uint64_t augment_seed(const ae_train_options *opt, const ae_train_state *st)
{
    return ae_epoch_seed(opt->seed ^ 0xa5a5a5a5a5a5a5a5ULL, st->epoch) + (uint64_t)st->batch;
}

/* Runs one epoch from st->batch on; returns with st updated after every step. */
static ae_status train_epoch(ae_model *m, ae_loader *train, const ae_train_options *opt,
                             ae_train_state *st, float *x, float *tmp, ae_error *err)
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
        if (opt->augment)
            augment_batch(ae_model_config(m), x, 0, b.count, opt->augment,
                          augment_seed(opt, st), tmp);
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

/* train_epoch on one rank of several: its share of every global batch
 * (ae_loader_start_shard), the ranks agreeing before each step whether to
 * go on, so that they all stop after the same one. */
static ae_status train_epoch_dist(train_dist *td, ae_model *m, ae_loader *train,
                                  const ae_train_options *opt, ae_train_state *st, float *x,
                                  float *tmp, ae_error *err)
{
    const ae_collective *c = td->comm;
    const int batch = opt->batch_size;
    ae_status s = ae_loader_start_shard(train, batch, 1, ae_epoch_seed(opt->seed, st->epoch),
                                        c->rank, c->size, err);
    const size_t total = ae_loader_count(train);
    const int steps = (int)((total + (size_t)batch - 1) / (size_t)batch);
    ae_batch b;
    /* Resuming mid-epoch: the same order, so skip this rank's share of the
     * batches already trained. */
    for (int k = 0; s == AE_OK && k < st->batch && k < steps; k++)
        s = ae_loader_next(train, &b, err);
    if (s != AE_OK)
        return s;
    for (int k = st->batch;; k++) {
        const int n_total = k < steps ? (int)(total - (size_t)k * batch < (size_t)batch
                                                  ? total - (size_t)k * batch
                                                  : (size_t)batch)
                                      : 0;
        const int n = ae_shard_count(n_total, c->rank, c->size);
        ae_error mine = {0};
        ae_status got = AE_OK;
        if (n > 0 && (got = ae_loader_next(train, &b, &mine)) == AE_OK && b.count != n)
            got = ae_fail(&mine, AE_ERR_USAGE, "the loader gave %d images of the %d of this rank",
                          b.count, n);
        int stop;
        if ((s = train_dist_agree(td, opt->stop && *opt->stop, got, &mine, &stop, err)) != AE_OK)
            return s;
        if (stop)
            return ae_fail(err, AE_ERR_INTERRUPTED, "stopped at epoch %d, batch %d", st->epoch + 1,
                           st->batch);
        if (k >= steps)
            return AE_OK;
        for (int r = 0; r < c->size; r++)
            td->counts[r] = ae_shard_count(n_total, r, c->size);
        td->step.n_total = n_total;
        td->step.counts = td->counts;
        if (n > 0) {
            ae_pixels_to_float(b.pixels, batch_floats(m, n), x);
            if (opt->augment)
                augment_batch(ae_model_config(m), x, ae_shard_first(n_total, c->rank, c->size), n,
                              opt->augment, augment_seed(opt, st), tmp);
        }
        float loss;
        s = ae_model_train_step_dist(m, &opt->adam, x, n, &td->step, &loss, err);
        if (s != AE_OK) {
            ae_error_prefix(err, "epoch %d, batch %d", st->epoch + 1, st->batch + 1);
            return s;
        }
        st->batch++;
        st->loss_sum += (double)loss * n_total;
        st->loss_count += (size_t)n_total;
        if (opt->on_step && c->rank == 0)
            opt->on_step(opt->user, st->epoch + 1, st->loss_count, total, loss);
    }
}

/* The epoch's end on rank 0 (its callbacks: the checkpoint) and what the
 * others learn of it. */
static ae_status end_epoch(train_dist *td, const ae_train_options *opt, ae_train_state *st,
                           double train_loss, double val_loss, double seconds, ae_error *err)
{
    int root = !td || td->comm->rank == 0;
    if (root && opt->on_epoch)
        opt->on_epoch(opt->user, st->epoch, train_loss, val_loss, seconds);
    ae_error mine = {0};
    ae_status s = root && opt->on_checkpoint ? opt->on_checkpoint(opt->user, td ? &mine : err)
                                             : AE_OK;
    int stop;
    return td ? train_dist_agree(td, 0, s, &mine, &stop, err) : s;
}

/* The epochs, on this process alone (td NULL) or on one rank of several. */
static ae_status train_run(ae_model *m, ae_loader *train, ae_loader *val,
                           const ae_train_options *opt, ae_train_state *st, train_dist *td,
                           ae_error *err)
{
    const int capacity = td ? ae_shard_count(opt->batch_size, 0, td->comm->size) : opt->batch_size;
    if (opt->batch_size < 1 || capacity > ae_model_max_batch(m))
        return ae_fail(err, AE_ERR_USAGE, "batch size %d is outside 1..%d", opt->batch_size,
                       ae_model_max_batch(m));
    if (ae_loader_count(train) == 0)
        return ae_fail(err, AE_ERR_DATA, "no training images");
    int keep = (opt->patience > 0 || opt->keep_best) && val && ae_loader_count(val) > 0;
    if (keep && ae_train_state_keep_best(st, m, err) != AE_OK)
        return err ? err->code : AE_ERR_NOMEM;
    float *x = ae_alloc_floats(batch_floats(m, capacity));
    float *tmp = ae_alloc_floats(batch_floats(m, 1));
    if (!x || !tmp) {
        ae_free_floats(x);
        ae_free_floats(tmp);
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for a batch");
    }
    ae_status s = AE_OK;
    st->stopped_early = 0;
    while (st->epoch < opt->epochs && !st->stopped_early) {
        double start = now_seconds();
        s = td ? train_epoch_dist(td, m, train, opt, st, x, tmp, err)
               : train_epoch(m, train, opt, st, x, tmp, err);
        if (s != AE_OK)
            break;
        double val_loss = NAN;
        if (val && ae_loader_count(val) > 0 &&
            (s = td ? train_dist_mean_error(td, m, val, opt->batch_size, &val_loss, err)
                    : ae_mean_error(m, val, opt->batch_size, &val_loss, err)) != AE_OK)
            break;
        double train_loss = st->loss_sum / (double)st->loss_count;
        st->train_loss[st->epoch] = train_loss;
        st->val_loss[st->epoch] = val_loss;
        st->num_history = st->epoch + 1;
        st->epoch++;
        st->batch = 0;
        st->loss_sum = 0;
        st->loss_count = 0;
        if (keep)
            st->stopped_early = track_best(m, opt, st, val_loss);
        /* a checkpoint is a copy of rank 0's model: the others must hold it too */
        if (td && (s = train_dist_same_weights(td, m, st, "after an epoch", err)) != AE_OK)
            break;
        if ((s = end_epoch(td, opt, st, train_loss, val_loss, now_seconds() - start, err)) != AE_OK)
            break;
    }
    if (s == AE_OK && keep && st->best_epoch) { /* end with the best epoch's weights */
        memcpy(ae_model_params(m), st->best_params, ae_model_num_params(m) * sizeof(float));
        memcpy(ae_model_state(m), st->best_state, ae_model_num_state(m) * sizeof(float));
    }
    ae_free_floats(x);
    ae_free_floats(tmp);
    return s;
}

/* ae_train on one rank of several (opt->comm). */
static ae_status train_spread(ae_model *m, ae_loader *train, ae_loader *val,
                              const ae_train_options *opt, ae_train_state *st, ae_error *err)
{
    train_dist td;
    ae_status s = train_dist_init(&td, m, opt, st, err);
    if (s != AE_OK)
        return s;
    s = train_run(m, train, val, opt, st, &td, err);
    train_dist_free(&td);
    return s;
}

ae_status ae_train(ae_model *m, ae_loader *train, ae_loader *val, const ae_train_options *opt,
                   ae_train_state *st, ae_error *err)
{
    if (opt->comm && opt->comm->size > 1)
        return train_spread(m, train, val, opt, st, err);
    return train_run(m, train, val, opt, st, NULL, err);
}
