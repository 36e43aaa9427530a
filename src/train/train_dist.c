/* The data-parallel side of the training loop: agreeing between steps
 * (stop, or a rank that failed), checking that the ranks hold one model,
 * and the validation loss over the ranks. */
#include "train/train_dist.h"

#include <stdlib.h>
#include <string.h>

ae_status train_dist_init(train_dist *td, ae_model *m, const ae_train_options *opt,
                          const ae_train_state *st, ae_error *err)
{
    const ae_collective *c = opt->comm;
    *td = (train_dist){.comm = c};
    if (c->rank < 0 || c->rank >= c->size)
        return ae_fail(err, AE_ERR_USAGE, "rank %d of %d ranks", c->rank, c->size);
    if (opt->batch_size < c->size)
        return ae_fail(err, AE_ERR_USAGE,
                       "batch size %d over %d ranks: each rank needs at least one image of every "
                       "batch (give --batch %d or more, or fewer ranks)",
                       opt->batch_size, c->size, c->size);
    int share = ae_shard_count(opt->batch_size, 0, c->size);
    if (share > ae_model_max_batch(m))
        return ae_fail(err, AE_ERR_USAGE, "a rank's share of a batch of %d is %d images; the model "
                       "holds %d", opt->batch_size, share, ae_model_max_batch(m));
    td->counts = malloc((size_t)c->size * sizeof *td->counts);
    td->two = malloc((size_t)c->size * sizeof *td->two);
    td->flags = malloc(2 * (size_t)c->size * sizeof *td->flags);
    if (!td->counts || !td->two || !td->flags) {
        train_dist_free(td);
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for %d ranks", c->size);
    }
    for (int r = 0; r < c->size; r++)
        td->two[r] = 2;
    ae_status s = ae_dist_step_init(&td->step, m, c, opt->batch_size, err);
    if (s == AE_OK)
        s = train_dist_same_weights(td, m, st, "at the start", err);
    if (s != AE_OK)
        train_dist_free(td);
    return s;
}

void train_dist_free(train_dist *td)
{
    ae_dist_step_free(&td->step);
    free(td->counts);
    free(td->two);
    free(td->flags);
    td->counts = td->two = NULL;
    td->flags = NULL;
}

ae_status train_dist_agree(train_dist *td, int stop, ae_status mine, const ae_error *my_err,
                           int *any_stop, ae_error *err)
{
    const ae_collective *c = td->comm;
    double said[2] = {stop ? 1.0 : 0.0, (double)mine};
    ae_status s = c->allgather(c->ctx, said, td->flags, td->two, err);
    if (s != AE_OK)
        return s;
    *any_stop = 0;
    for (int r = 0; r < c->size; r++) {
        ae_status code = (ae_status)td->flags[2 * r + 1];
        if (code != AE_OK) {
            if (r == c->rank) {
                if (err && my_err && my_err != err)
                    *err = *my_err;
                return code;
            }
            return ae_fail(err, code, "rank %d of %d failed (its own message says why)", r, c->size);
        }
        *any_stop |= td->flags[2 * r] != 0;
    }
    return AE_OK;
}

/* A 64-bit digest of n floats' bits, folded into h. */
static uint64_t digest(uint64_t h, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, &v[i], sizeof w);
        h = (h ^ w) * 0x100000001b3ULL;
    }
    return h;
}

ae_status train_dist_same_weights(train_dist *td, ae_model *m, const ae_train_state *st,
                                  const char *when, ae_error *err)
{
    const ae_collective *c = td->comm;
    const size_t np = ae_model_num_params(m);
    uint64_t h = 0xcbf29ce484222325ULL;
    h = digest(h, ae_model_params(m), np);
    h = digest(h, ae_model_adam_m(m), np);
    h = digest(h, ae_model_adam_v(m), np);
    h = digest(h, ae_model_state(m), ae_model_num_state(m));
    const float pos[3] = {(float)ae_model_iterations(m), (float)st->epoch, (float)st->batch};
    h = digest(h, pos, 3);
    /* two halves of 32 bits: doubles hold them exactly */
    double mine[2] = {(double)(h >> 32), (double)(h & 0xffffffffu)};
    ae_status s = c->allgather(c->ctx, mine, td->flags, td->two, err);
    if (s != AE_OK)
        return s;
    for (int r = 1; r < c->size; r++)
        if (td->flags[2 * r] != td->flags[0] || td->flags[2 * r + 1] != td->flags[1])
            return ae_fail(err, AE_ERR_USAGE,
                           "rank %d holds other weights or another training position than rank 0 "
                           "%s: every rank must read the same model or checkpoint, data and "
                           "options (a shared file system; docs/SCALING.md)",
                           r, when);
    return AE_OK;
}

ae_status train_dist_mean_error(train_dist *td, ae_model *m, ae_loader *l, int batch_size,
                                double *mean, ae_error *err)
{
    const ae_collective *c = td->comm;
    const ae_config *cfg = ae_model_config(m);
    const size_t n = ae_loader_count(l), per_image = (size_t)cfg->height * cfg->width * cfg->channels;
    const int share = ae_shard_count(batch_size, c->rank, c->size);
    /* each rank's errors: its share of every global batch, in order */
    int *counts = calloc((size_t)c->size, sizeof *counts);
    size_t *at = calloc((size_t)c->size, sizeof *at);
    double *mine = malloc((n ? n : 1) * sizeof *mine), *all = malloc((n ? n : 1) * sizeof *all);
    float *errors = malloc((size_t)share * sizeof *errors);
    float *x = ae_alloc_floats((size_t)share * per_image);
    ae_status s = AE_OK, local = AE_OK;
    ae_error local_err = {0};
    if (!counts || !at || !mine || !all || !errors || !x)
        local = ae_fail(&local_err, AE_ERR_NOMEM, "out of memory to score %zu images", n);
    for (size_t b0 = 0; b0 < n; b0 += (size_t)batch_size) {
        int b = n - b0 < (size_t)batch_size ? (int)(n - b0) : batch_size;
        for (int r = 0; counts && r < c->size; r++)
            counts[r] += ae_shard_count(b, r, c->size);
    }
    if (local == AE_OK)
        local = ae_loader_start_shard(l, batch_size, 0, 0, c->rank, c->size, &local_err);
    size_t done = 0;
    ae_batch batch;
    while (local == AE_OK && (local = ae_loader_next(l, &batch, &local_err)) == AE_OK &&
           batch.count > 0) {
        ae_pixels_to_float(batch.pixels, (size_t)batch.count * per_image, x);
        if ((local = ae_model_score(m, x, batch.count, errors, NULL, &local_err)) != AE_OK)
            break;
        for (int i = 0; i < batch.count; i++)
            mine[done + (size_t)i] = errors[i];
        done += (size_t)batch.count;
    }
    if (local == AE_OK && done != (size_t)counts[c->rank])
        local = ae_fail(&local_err, AE_ERR_USAGE, "rank %d scored %zu validation images of %d",
                        c->rank, done, counts[c->rank]);
    int stop;
    s = train_dist_agree(td, 0, local, &local_err, &stop, err);
    if (s == AE_OK)
        s = c->allgather(c->ctx, mine, all, counts, err);
    if (s == AE_OK) {
        /* rank r's errors start after those of the ranks before it */
        for (int r = 1; r < c->size; r++)
            at[r] = at[r - 1] + (size_t)counts[r - 1];
        double sum = 0;
        for (size_t b0 = 0; b0 < n; b0 += (size_t)batch_size) {
            int b = n - b0 < (size_t)batch_size ? (int)(n - b0) : batch_size;
            for (int r = 0; r < c->size; r++)
                for (int k = 0; k < ae_shard_count(b, r, c->size); k++)
                    sum += all[at[r]++];
        }
        *mean = n ? sum / (double)n : 0.0;
    }
    free(counts);
    free(at);
    free(mine);
    free(all);
    free(errors);
    ae_free_floats(x);
    return s;
}
