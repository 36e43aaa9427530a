/* Data-parallel training through the library's collective interface
 * (aedet/train.h), with ranks as threads of this process and a collective
 * made of barriers: the share rule, the sharded loader, training equal to
 * one process, ranks that get no image, the gradient summed in parts, a
 * stop on one rank, and ranks that disagree. The MPI carrier itself is
 * tested end to end by test_mpi.c. */
#include "support.h"

#include "aedet/data.h"
#include "aedet/train.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SIDE = 16, MAX_RANKS = 4 };

/* ---- a collective of threads ---- */

typedef struct {
    int size;
    pthread_barrier_t barrier;
    float *fbuf[MAX_RANKS];
    const double *dbuf[MAX_RANKS];
    float *sum;
    size_t sum_cap;
    int begins[MAX_RANKS], ends[MAX_RANKS]; /* allreduce_begin / _end calls */
} world;

typedef struct {
    world *w;
    int rank;
} member;

static ae_status fake_allreduce(void *ctx, float *buf, size_t count, ae_error *err)
{
    (void)err;
    member *me = ctx;
    world *w = me->w;
    w->fbuf[me->rank] = buf;
    pthread_barrier_wait(&w->barrier);
    if (me->rank == 0) {
        if (w->sum_cap < count) {
            free(w->sum);
            w->sum = malloc(count * sizeof *w->sum);
            w->sum_cap = count;
        }
        for (size_t i = 0; i < count; i++) { /* in rank order */
            float v = w->fbuf[0][i];
            for (int r = 1; r < w->size; r++)
                v += w->fbuf[r][i];
            w->sum[i] = v;
        }
    }
    pthread_barrier_wait(&w->barrier);
    memcpy(buf, w->sum, count * sizeof *buf);
    pthread_barrier_wait(&w->barrier);
    return AE_OK;
}

static ae_status fake_allgather(void *ctx, const double *mine, double *all, const int *counts,
                                ae_error *err)
{
    (void)err;
    member *me = ctx;
    world *w = me->w;
    w->dbuf[me->rank] = mine;
    pthread_barrier_wait(&w->barrier);
    size_t at = 0;
    for (int r = 0; r < w->size; r++) {
        memcpy(all + at, w->dbuf[r], (size_t)counts[r] * sizeof *all);
        at += (size_t)counts[r];
    }
    pthread_barrier_wait(&w->barrier);
    return AE_OK;
}

static ae_status fake_begin(void *ctx, float *buf, size_t count, ae_error *err)
{
    member *me = ctx;
    me->w->begins[me->rank]++;
    return fake_allreduce(ctx, buf, count, err);
}

static ae_status fake_end(void *ctx, ae_error *err)
{
    (void)err;
    member *me = ctx;
    me->w->ends[me->rank]++;
    return AE_OK;
}

/* ---- data ---- */

/* A folder of n gray PNGs of SIDE x SIDE: smooth blobs that move with i. */
static const char *image_folder(int n)
{
    static char made[64];
    char name[32];
    snprintf(name, sizeof name, "images%d", n);
    const char *root = test_path(name);
    if (!made[n]) {
        test_write_blob_pngs(root, n, SIDE);
        made[n] = 1;
    }
    return root;
}

typedef struct {
    ae_dataset ds;
    ae_loader *train, *val;
} data;

static void open_data(int n, size_t budget, data *d)
{
    ae_source src = {.kind = AE_SOURCE_FOLDER, .root = image_folder(n)};
    ae_error err;
    if (ae_dataset_open(&src, &d->ds, &err) != AE_OK)
        fail_msg("%s", err.message);
    size_t items[64];
    for (int i = 0; i < n; i++)
        items[i] = (size_t)i;
    int n_val = n / 5, n_train = n - n_val;
    ae_loader_config lc = {.height = SIDE, .width = SIDE, .channels = 1, .memory_budget = budget,
                           .threads = 2};
    if (ae_loader_create(&d->ds, items, (size_t)n_train, &lc, &d->train, &err) != AE_OK ||
        (n_val && ae_loader_create(&d->ds, items + n_train, (size_t)n_val, &lc, &d->val, &err) !=
                      AE_OK))
        fail_msg("%s", err.message);
}

static void close_data(data *d)
{
    ae_loader_free(d->train);
    ae_loader_free(d->val);
    ae_dataset_free(&d->ds);
}

/* ---- one run ---- */

typedef struct {
    int ranks, batch, epochs, steps_before_stop, stop_rank, overlap, same_seed;
    unsigned augment;
    size_t budget; /* loader memory budget: 1 streams */
    int n_images;
} run_config;

typedef struct {
    const run_config *cfg;
    member me;
    ae_collective comm;
    ae_model *model;
    data d;
    ae_train_state st;
    ae_status status;
    ae_error err;
    float first_loss;
    int steps;
    volatile sig_atomic_t stop;
    int interrupted, stopped_epoch, stopped_batch;
} rank_run;

static void on_step(void *user, int epoch, size_t done, size_t total, float loss)
{
    (void)epoch, (void)done, (void)total;
    rank_run *r = user;
    if (r->steps++ == 0)
        r->first_loss = loss;
    if (r->cfg->stop_rank == 0 && r->steps == r->cfg->steps_before_stop)
        r->stop = 1;
}

static void make_model(const run_config *c, int rank, ae_model **m)
{
    ae_config mc;
    ae_config_init(&mc, SIDE, SIDE, 1);
    mc.num_filters = 2;
    mc.filters[0] = 4, mc.filters[1] = 8;
    mc.latent_dim = 6;
    ae_error err;
    int share = c->ranks > 1 ? ae_shard_count(c->batch, 0, c->ranks) : c->batch;
    if (ae_model_create(&mc, share, m, &err) != AE_OK)
        fail_msg("%s", err.message);
    ae_model_init_weights(*m, c->same_seed || rank == 0 ? 7 : 8);
}

static ae_status train_rank(rank_run *r)
{
    const run_config *c = r->cfg;
    ae_train_options opt = {.epochs = c->epochs, .batch_size = c->batch, .seed = 3,
                            .augment = c->augment, .on_step = on_step, .user = r,
                            .stop = &r->stop, .keep_best = 1};
    ae_adam_config_init(&opt.adam, 1e-3f, 0);
    opt.comm = c->ranks > 1 ? &r->comm : NULL;
    return ae_train(r->model, r->d.train, r->d.val, &opt, &r->st, &r->err);
}

static void *rank_main(void *arg)
{
    rank_run *r = arg;
    const run_config *c = r->cfg;
    ae_error err;
    make_model(c, r->me.rank, &r->model);
    open_data(c->n_images, c->budget, &r->d);
    if (ae_train_state_init(&r->st, c->epochs, &err) != AE_OK)
        return NULL;
    r->stop = c->steps_before_stop && c->stop_rank == r->me.rank && c->stop_rank != 0;
    r->status = train_rank(r);
    /* the stopped run goes on from where it stopped, as --resume does */
    if (r->status == AE_ERR_INTERRUPTED && c->steps_before_stop) {
        r->interrupted = 1;
        r->stopped_epoch = r->st.epoch;
        r->stopped_batch = r->st.batch;
        r->stop = 0;
        r->status = train_rank(r);
    }
    return NULL;
}

typedef struct {
    world w;
    rank_run runs[MAX_RANKS];
} job;

/* Runs cfg on cfg->ranks threads (one process when 1); keeps every rank's
 * model and state in j. */
static void run(const run_config *cfg, job *j)
{
    memset(j, 0, sizeof *j);
    j->w.size = cfg->ranks;
    pthread_barrier_init(&j->w.barrier, NULL, (unsigned)cfg->ranks);
    pthread_t th[MAX_RANKS];
    for (int r = 0; r < cfg->ranks; r++) {
        rank_run *rr = &j->runs[r];
        rr->cfg = cfg;
        rr->me = (member){&j->w, r};
        rr->comm = (ae_collective){.rank = r, .size = cfg->ranks, .ctx = &rr->me,
                                   .allreduce = fake_allreduce, .allgather = fake_allgather};
        if (cfg->overlap) {
            rr->comm.allreduce_begin = fake_begin;
            rr->comm.allreduce_end = fake_end;
            rr->comm.part_floats = 100;
        }
        pthread_create(&th[r], NULL, rank_main, rr);
    }
    for (int r = 0; r < cfg->ranks; r++)
        pthread_join(th[r], NULL);
    pthread_barrier_destroy(&j->w.barrier);
    free(j->w.sum);
}

static void free_job(job *j)
{
    for (int r = 0; r < j->w.size; r++) {
        ae_model_free(j->runs[r].model);
        ae_train_state_free(&j->runs[r].st);
        close_data(&j->runs[r].d);
    }
}

static void expect_ok(const job *j)
{
    for (int r = 0; r < j->w.size; r++)
        if (j->runs[r].status != AE_OK)
            fail_msg("rank %d: %s", r, j->runs[r].err.message);
}

/* The normwise relative difference of a's weights (parameters and
 * BatchNorm statistics) from b's: max |a - b| / max |b|. Not per weight:
 * Adam steps each weight by about the learning rate whatever its
 * gradient's size, so a weight the loss hardly depends on (the first
 * convolution's biases, nearly cancelled by the BatchNorm after it) moves
 * by a rounding difference turned into a step (docs/SCALING.md). */
static double weights_rel_diff(const ae_model *a, const ae_model *b)
{
    double diff = 0, scale = 0;
    for (int t = 0; t < ae_model_num_tensors(b); t++) {
        const ae_tensor_info *ti = ae_model_tensor(b, t);
        const float *va = (ti->is_state ? ae_model_state((ae_model *)a) : ae_model_params((ae_model *)a)) +
                          ti->offset;
        const float *vb = (ti->is_state ? ae_model_state((ae_model *)b) : ae_model_params((ae_model *)b)) +
                          ti->offset;
        double d = 0, s = 0;
        for (size_t i = 0; i < ti->size; i++) {
            double e = fabs((double)va[i] - vb[i]);
            if (!(e <= d)) /* NaN counts as the worst */
                d = isnan(e) ? INFINITY : e;
            s = fmax(s, fabs(vb[i]));
        }
        if (getenv("DIST_DEBUG"))
            printf("  %-22s max |diff| %.3g, max |w| %.3g\n", ti->name, d, s);
        diff = fmax(diff, d);
        scale = fmax(scale, s);
    }
    return diff / scale;
}

static int same_bits(const ae_model *a, const ae_model *b)
{
    size_t np = ae_model_num_params(a), ns = ae_model_num_state(a);
    return !memcmp(ae_model_params((ae_model *)a), ae_model_params((ae_model *)b), np * sizeof(float)) &&
           !memcmp(ae_model_adam_m((ae_model *)a), ae_model_adam_m((ae_model *)b), np * sizeof(float)) &&
           !memcmp(ae_model_adam_v((ae_model *)a), ae_model_adam_v((ae_model *)b), np * sizeof(float)) &&
           !memcmp(ae_model_state((ae_model *)a), ae_model_state((ae_model *)b), ns * sizeof(float));
}

/* ---- tests ---- */

static void test_share_rule(void **state)
{
    (void)state;
    for (int ranks = 1; ranks <= 9; ranks++)
        for (int n = 0; n <= 70; n++) {
            int at = 0;
            for (int r = 0; r < ranks; r++) {
                assert_int_equal(ae_shard_first(n, r, ranks), at);
                at += ae_shard_count(n, r, ranks);
                /* a share never grows when the batch shrinks */
                if (n > 0)
                    assert_true(ae_shard_count(n - 1, r, ranks) <= ae_shard_count(n, r, ranks));
            }
            assert_int_equal(at, n);
            assert_true(ae_shard_count(n, 0, ranks) - ae_shard_count(n, ranks - 1, ranks) <= 1);
        }
}

/* Each rank's batches, put side by side, are the whole epoch's, in memory
 * and streamed; the last global batch's share may be empty. */
static void test_loader_shards(void **state)
{
    (void)state;
    for (int streamed = 0; streamed < 2; streamed++) {
        data d = {0};
        open_data(25, streamed ? 1 : 0, &d); /* 20 training images */
        ae_loader *l = d.train;
        ae_error err;
        ae_batch b;
        size_t whole[32], n_whole = 0;
        assert_int_equal(ae_loader_start(l, 7, 1, 99, &err), AE_OK);
        while (ae_loader_next(l, &b, &err) == AE_OK && b.count > 0)
            for (int i = 0; i < b.count; i++)
                whole[n_whole++] = b.items[i];
        assert_int_equal(n_whole, 20);
        enum { RANKS = 3 };
        size_t got[RANKS][32];
        int n_got[RANKS] = {0};
        for (int r = 0; r < RANKS; r++) {
            assert_int_equal(ae_loader_start_shard(l, 7, 1, 99, r, RANKS, &err), AE_OK);
            while (ae_loader_next(l, &b, &err) == AE_OK && b.count > 0) {
                assert_true(b.count <= ae_shard_count(7, r, RANKS));
                for (int i = 0; i < b.count; i++)
                    got[r][n_got[r]++] = b.items[i];
            }
        }
        /* batches of 7, 7, 7 and the last of 6: shares 3,2,2 then 2,2,2 */
        size_t at[RANKS] = {0}, k = 0;
        for (int b0 = 0; b0 < 20; b0 += 7) {
            int n = 20 - b0 < 7 ? 20 - b0 : 7;
            for (int r = 0; r < RANKS; r++)
                for (int i = 0; i < ae_shard_count(n, r, RANKS); i++)
                    assert_int_equal(got[r][at[r]++], whole[k++]);
        }
        assert_int_equal(k, 20);
        for (int r = 0; r < RANKS; r++)
            assert_int_equal(at[r], (size_t)n_got[r]);
        assert_int_equal(ae_loader_start_shard(l, 2, 1, 99, 0, RANKS, &err), AE_ERR_USAGE);
        close_data(&d);
    }
}

/* Two ranks train as one process does at the same global batch: the first
 * step's loss to the bit (the BatchNorm statistics and the loss are
 * gathered and added in image order), the weights after 3 epochs within
 * 1e-5 of each tensor's scale (the gradient is summed in another order),
 * the ranks' weights the same bits, and the same again on a second run. */
static void test_two_ranks_equal_one(void **state)
{
    (void)state;
    run_config one = {.ranks = 1, .batch = 8, .epochs = 3, .n_images = 30, .same_seed = 1,
                      .augment = AE_AUGMENT_FLIP | AE_AUGMENT_SHIFT | AE_AUGMENT_BRIGHTNESS};
    run_config two = one;
    two.ranks = 2;
    job a, b, c;
    run(&one, &a);
    run(&two, &b);
    run(&two, &c);
    expect_ok(&a);
    expect_ok(&b);
    expect_ok(&c);
    /* 24 training images in batches of 8: 3 steps an epoch */
    assert_int_equal(b.runs[0].steps, 9);
    assert_int_equal(b.runs[1].steps, 0); /* the callbacks run on rank 0 alone */
    assert_true(a.runs[0].first_loss == b.runs[0].first_loss);
    assert_true(same_bits(b.runs[0].model, b.runs[1].model));
    assert_true(same_bits(b.runs[0].model, c.runs[0].model));
    double d = weights_rel_diff(b.runs[0].model, a.runs[0].model);
    printf("2 ranks vs 1 process after 9 steps: max relative difference %.3g\n", d);
    assert_true(d <= 1e-5);
    for (int e = 0; e < 3; e++) {
        assert_true(fabs(b.runs[0].st.train_loss[e] - a.runs[0].st.train_loss[e]) <=
                    1e-5 * a.runs[0].st.train_loss[e]);
        assert_true(fabs(b.runs[0].st.val_loss[e] - a.runs[0].st.val_loss[e]) <=
                    1e-5 * a.runs[0].st.val_loss[e]);
    }
    assert_int_equal(b.runs[0].st.best_epoch, a.runs[0].st.best_epoch);
    free_job(&a);
    free_job(&b);
    free_job(&c);
}

/* Three ranks over a batch of 8 (3, 3 and 2 images), with a last batch of
 * one image (ranks 1 and 2 then have none and take part alone), streamed:
 * one epoch, since the first convolution's biases drift apart a little
 * more each step (about 4e-6 of the largest weight a step here, and
 * the moving mean of the BatchNorm after them; every other weight within
 * 6e-8: see weights_rel_diff and docs/SCALING.md). */
static void test_uneven_and_idle_ranks(void **state)
{
    (void)state;
    run_config one = {.ranks = 1, .batch = 8, .epochs = 1, .n_images = 21, .same_seed = 1,
                      .budget = 1};
    run_config three = one;
    three.ranks = 3;
    job a, b;
    run(&one, &a);
    run(&three, &b);
    expect_ok(&a);
    expect_ok(&b);
    /* 17 training images: batches of 8, 8, 1 */
    assert_int_equal(b.runs[0].steps, 3);
    assert_true(a.runs[0].first_loss == b.runs[0].first_loss);
    assert_true(same_bits(b.runs[0].model, b.runs[1].model));
    assert_true(same_bits(b.runs[0].model, b.runs[2].model));
    double d = weights_rel_diff(b.runs[0].model, a.runs[0].model);
    printf("3 ranks vs 1 process after 3 steps: max relative difference %.3g\n", d);
    assert_true(d <= 1e-5);
    free_job(&a);
    free_job(&b);
}

/* The gradient summed in parts as the backward finishes them (small parts,
 * so that this small model has several) gives the bits of one sum at the
 * end: two ranks add each float in one order either way. */
static void test_parts_equal_one_sum(void **state)
{
    (void)state;
    run_config plain = {.ranks = 2, .batch = 6, .epochs = 1, .n_images = 25, .same_seed = 1};
    run_config parts = plain;
    parts.overlap = 1;
    job a, b;
    run(&plain, &a);
    run(&parts, &b);
    expect_ok(&a);
    expect_ok(&b);
    for (int r = 0; r < 2; r++) {
        assert_true(b.w.begins[r] >= 4 * b.runs[0].steps); /* several parts a step */
        assert_int_equal(b.w.ends[r], b.runs[0].steps);
        assert_int_equal(a.w.begins[r], 0);
    }
    assert_int_equal(b.w.begins[0], b.w.begins[1]);
    assert_true(same_bits(a.runs[0].model, b.runs[0].model));
    assert_true(same_bits(b.runs[0].model, b.runs[1].model));
    free_job(&a);
    free_job(&b);
}

/* Ctrl-C on one rank (rank 0 after 4 steps, mid-epoch; rank 1 before the
 * first): every rank stops after the same step, and going on from there
 * ends with the bits of a run never stopped. */
static void test_stop_on_one_rank(void **state)
{
    (void)state;
    run_config whole = {.ranks = 2, .batch = 8, .epochs = 2, .n_images = 30, .same_seed = 1};
    job a;
    run(&whole, &a);
    expect_ok(&a);
    for (int stop_rank = 0; stop_rank < 2; stop_rank++) {
        run_config stopped = whole;
        stopped.steps_before_stop = 4;
        stopped.stop_rank = stop_rank;
        job b;
        run(&stopped, &b);
        expect_ok(&b);
        for (int r = 0; r < 2; r++) {
            assert_true(b.runs[r].interrupted);
            assert_int_equal(b.runs[r].stopped_epoch, stop_rank ? 0 : 1);
            assert_int_equal(b.runs[r].stopped_batch, stop_rank ? 0 : 1);
            assert_true(same_bits(a.runs[r].model, b.runs[r].model));
        }
        assert_int_equal(b.runs[0].st.epoch, 2);
        free_job(&b);
    }
    free_job(&a);
}

/* Ranks that start from other weights are told so before any step. */
static void test_ranks_that_differ(void **state)
{
    (void)state;
    run_config differ = {.ranks = 2, .batch = 8, .epochs = 1, .n_images = 30, .same_seed = 0};
    job a;
    run(&differ, &a);
    for (int r = 0; r < 2; r++) {
        assert_int_equal(a.runs[r].status, AE_ERR_USAGE);
        assert_non_null(strstr(a.runs[r].err.message, "rank 1 holds other weights"));
        assert_int_equal(a.runs[r].steps, 0);
    }
    free_job(&a);

    run_config tiny = {.ranks = 3, .batch = 2, .epochs = 1, .n_images = 30, .same_seed = 1};
    job b;
    run(&tiny, &b);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(b.runs[r].status, AE_ERR_USAGE);
        assert_non_null(strstr(b.runs[r].err.message, "batch size 2 over 3 ranks"));
    }
    free_job(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_share_rule),
        cmocka_unit_test(test_loader_shards),
        cmocka_unit_test(test_two_ranks_equal_one),
        cmocka_unit_test(test_uneven_and_idle_ranks),
        cmocka_unit_test(test_parts_equal_one_sum),
        cmocka_unit_test(test_stop_on_one_rank),
        cmocka_unit_test(test_ranks_that_differ),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
