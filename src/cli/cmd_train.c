/* aedet train DATA -o MODEL: fit the autoencoder, save it with everything
 * scoring needs later (config, preprocessing, the training errors). */
#include "cli.h"
#include "dist.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_sigint(int sig)
{
    (void)sig;
    stop_requested = 1;
}

void cli_train_defaults(cli_train_args *a)
{
    *a = (cli_train_args){0};
    cli_data_defaults(&a->data);
    a->latent = 32;
    a->slope = 0.3;
    a->learning_rate = 1e-3;
    a->decay = 1e-3 / 50; /* the tutorial's INIT_LR / EPOCHS with EPOCHS = 50 */
    a->val_fraction = 0.2;
    a->epochs = 30;
    a->seed = 0;
    a->score = "mse";
    a->sigma = NAN;
    a->threshold_quantile = 0.99;
}

typedef struct {
    const cli_train_args *args;
    ae_model *model;
    ae_meta *meta;
    ae_train_state *state;
    const char *checkpoint;
    double started;
    size_t epoch_images; /* trained so far in this epoch (for images/s) */
    long interrupt_after; /* AEDET_TEST_INTERRUPT_AFTER, 0 when unset */
} train_session;

static ae_status record_state(train_session *t, ae_error *err)
{
    ae_status s;
    ae_meta *m = t->meta;
    const ae_train_state *st = t->state;
    if ((s = ae_meta_set_int(m, AE_KEY_EPOCHS_DONE, st->epoch, err)) ||
        (s = ae_meta_set_int(m, AE_KEY_BATCH, st->batch, err)) ||
        (s = ae_meta_set_float(m, AE_KEY_LOSS_SUM, st->loss_sum, err)) ||
        (s = ae_meta_set_int(m, AE_KEY_LOSS_COUNT, (int64_t)st->loss_count, err)) ||
        (s = ae_meta_set_doubles(m, AE_KEY_TRAIN_LOSSES, st->train_loss, (size_t)st->num_history, err)) ||
        (s = ae_meta_set_doubles(m, AE_KEY_VAL_LOSSES, st->val_loss, (size_t)st->num_history, err)) ||
        (s = ae_meta_set_int(m, AE_KEY_BEST_EPOCH, st->best_epoch, err)))
        return s;
    /* A checkpoint carries the best epoch's weights so far, for --resume. */
    if (st->best_epoch && st->best_params &&
        ((s = ae_meta_set_floats(m, AE_KEY_BEST_PARAMS, st->best_params, ae_model_num_params(t->model), err)) ||
         (s = ae_meta_set_floats(m, AE_KEY_BEST_STATE, st->best_state, ae_model_num_state(t->model), err))))
        return s;
    return AE_OK;
}

static ae_status save_checkpoint(void *user, ae_error *err)
{
    train_session *t = user;
    ae_status s = record_state(t, err);
    if (s == AE_OK)
        s = ae_model_save(t->checkpoint, t->model, t->meta, 1, err);
    return s;
}

static void on_step(void *user, int epoch, size_t done, size_t total, float loss)
{
    train_session *t = user;
    (void)loss;
    char what[32];
    snprintf(what, sizeof what, "epoch %d/%d", epoch, t->args->epochs);
    cli_progress(what, done, total, t->started);
    t->epoch_images = done;
    /* For the tests: behave as if Ctrl-C came after this many steps. */
    if (t->interrupt_after > 0 && --t->interrupt_after == 0)
        stop_requested = 1;
}

static void on_epoch(void *user, int epoch, double train_loss, double val_loss, double seconds)
{
    train_session *t = user;
    cli_progress_end();
    double rate = (double)t->epoch_images / seconds;
    t->started = cli_now();
    if (cli_out.json) {
        printf("{\"event\":\"epoch\",\"epoch\":%d,\"epochs\":%d,\"loss\":%.9g,\"val_loss\":", epoch,
               t->args->epochs, train_loss);
        printf(isnan(val_loss) ? "null" : "%.9g", val_loss); /* no validation set: null */
        printf(",\"seconds\":%.3f,\"images_per_s\":%.1f}\n", seconds, rate);
    }
    else if (!cli_out.quiet)
        fprintf(stderr, "epoch %3d/%d  loss %.6f  val_loss %.6f  %.1fs  %.0f images/s\n", epoch,
                t->args->epochs, train_loss, val_loss, seconds, rate);
    fflush(stdout);
}

/* The model size when --size is not given: the median image size, scaled
 * down (keeping the aspect) so its long side is at most CLI_DEFAULT_LONG_SIDE,
 * then rounded to the nearest multiple of 2^levels (28x28 -> 32x32, 360x496
 * -> 96x128): bigger inputs cost time and memory as the square of the side,
 * and rarely score better (README, "Data layouts"). */
#define CLI_DEFAULT_LONG_SIDE 128

static int resolve_config(const cli_command *cmd, const cli_train_args *a, const ae_dataset *ds,
                          size_t first_item, const ae_size_stats *sizes, ae_config *cfg, int *orig_h,
                          int *orig_w)
{
    int filters[AE_MAX_FILTERS], nf = 0, rc;
    if (a->filters.count) {
        if ((rc = cli_list_ints(cmd, "filters", &a->filters, filters, AE_MAX_FILTERS, &nf)))
            return rc;
    } else {
        filters[0] = 16, filters[1] = 32, filters[2] = 64;
        nf = 3;
    }
    ae_image first = {0};
    ae_error err = {0};
    if (ae_dataset_load(ds, first_item, &first, &err) != AE_OK) {
        ae_error_prefix(&err, "reading the first image to size the model");
        return cli_report_error(&err);
    }
    *orig_h = sizes->count ? sizes->median_height : first.height;
    *orig_w = sizes->count ? sizes->median_width : first.width;
    int channels = a->channels ? a->channels : first.channels;
    ae_image_free(&first);
    int h = a->size.height, w = a->size.width;
    if (!h || !w)
        ae_default_input_size(*orig_h, *orig_w, nf, CLI_DEFAULT_LONG_SIDE, &h, &w);
    ae_config_init(cfg, h, w, channels);
    cfg->num_filters = nf;
    for (int i = 0; i < nf; i++)
        cfg->filters[i] = filters[i];
    cfg->latent_dim = a->latent;
    cfg->leaky_slope = (float)a->slope;
    if (ae_config_check(cfg, a->data.batch, &err) != AE_OK)
        return cli_report_error(&err);
    return 0;
}

/* The sizes of the images, before the model's size is chosen from them. */
static void print_sizes(const ae_size_stats *st)
{
    if (cli_out.json) {
        cli_json j;
        cli_json_begin(&j, "input_sizes");
        cli_json_int(&j, "images", (long long)st->count);
        cli_json_int(&j, "unreadable", (long long)st->unreadable);
        cli_json_int(&j, "distinct", (long long)st->distinct);
        cli_json_key(&j, "height");
        fprintf(j.f, "{\"min\":%d,\"median\":%d,\"max\":%d}", st->min_height, st->median_height, st->max_height);
        cli_json_key(&j, "width");
        fprintf(j.f, "{\"min\":%d,\"median\":%d,\"max\":%d}", st->min_width, st->median_width, st->max_width);
        cli_json_end(&j);
        return;
    }
    if (cli_out.quiet || (st->distinct <= 1 && !st->unreadable))
        return; /* one size: the "image size" line says it */
    fprintf(stderr, "  input sizes   %zu distinct among %zu images: height %d-%d (median %d), width %d-%d (median %d)",
            st->distinct, st->count, st->min_height, st->max_height, st->median_height, st->min_width,
            st->max_width, st->median_width);
    if (st->unreadable)
        fprintf(stderr, "; %zu without a readable header", st->unreadable);
    fputc('\n', stderr);
}

static void print_config(const cli_train_args *a, const ae_dataset *ds, const ae_config *cfg,
                         int orig_h, int orig_w, const ae_size_stats *sizes, size_t n_train, size_t n_val,
                         const ae_loader *train, const ae_loader *val, const ae_model *m)
{
    const char *size_note = sizes->distinct > 1 ? " median" : "";
    char filters[64] = "";
    for (int i = 0; i < cfg->num_filters; i++)
        snprintf(filters + strlen(filters), sizeof filters - strlen(filters), "%s%d", i ? "," : "",
                 cfg->filters[i]);
    /* the model, the loaders, and the float batches of the training loop and
     * of the validation scoring inside it */
    const size_t batch_bytes = (size_t)a->data.batch * (size_t)cfg->height * (size_t)cfg->width *
                               (size_t)cfg->channels * sizeof(float);
    size_t mem = ae_model_memory_bytes(m) + ae_loader_peak_bytes(train) +
                 (val ? ae_loader_peak_bytes(val) + batch_bytes : 0) + batch_bytes;
    if (cli_out.json) {
        print_sizes(sizes);
        printf("{\"event\":\"config\",\"data\":");
        cli_json_string(stdout, ds->description ? ds->description : a->data_path);
        printf(",\"images_train\":%zu,\"images_val\":%zu,"
               "\"size\":[%d,%d,%d],\"original_size\":[%d,%d],\"filters\":[%s],\"latent\":%d,"
               "\"epochs\":%d,\"batch\":%d,\"learning_rate\":%g,\"decay\":%g,\"seed\":%llu,"
               "\"threads\":%d,\"kernels\":\"%s\",\"streaming\":%s,\"expected_peak_bytes\":%zu}\n",
               n_train, n_val, cfg->height, cfg->width, cfg->channels, orig_h,
               orig_w, filters, cfg->latent_dim, a->epochs, a->data.batch, a->learning_rate, a->decay,
               (unsigned long long)a->seed, ae_get_num_threads(), ae_model_kernels(m),
               ae_loader_is_streaming(train) ? "true" : "false", mem);
        return;
    }
    if (cli_out.quiet)
        return;
    fprintf(stderr,
            "aedet train\n"
            "  data          %s\n"
            "  images        %zu train, %zu validation (%.0f%%, seed %llu)\n",
            ds->description ? ds->description : a->data_path, n_train, n_val, 100 * a->val_fraction,
            (unsigned long long)a->seed);
    print_sizes(sizes);
    fprintf(stderr,
            "  image size    %dx%d%s resized to %dx%dx%d (area when shrinking, bilinear when growing)\n"
            "  model         filters %s, latent %d, LeakyReLU %.2g, %zu parameters\n"
            "  training      %d epochs, batch %d, Adam lr %g, decay %g, seed %llu, %d threads, %s kernels\n"
            "  memory        %s, expected peak %.1f MiB\n",
            orig_h, orig_w, size_note, cfg->height, cfg->width, cfg->channels, filters,
            cfg->latent_dim, cfg->leaky_slope, ae_model_num_params(m), a->epochs, a->data.batch,
            a->learning_rate, a->decay, (unsigned long long)a->seed, ae_get_num_threads(),
            ae_model_kernels(m), ae_loader_is_streaming(train) || (val && ae_loader_is_streaming(val))
                ? "images streamed from disk (more than --memory-budget)"
                : "images decoded in memory",
            (double)mem / (1024.0 * 1024.0));
}

/* The metadata of a checkpoint, without building its model. */
static ae_status read_checkpoint_meta(const char *path, ae_meta **meta, ae_error *err)
{
    uint8_t *bytes;
    size_t len;
    ae_model_file *f = NULL;
    ae_status s = ae_read_file(path, &bytes, &len, err);
    if (s != AE_OK)
        return s;
    if ((s = ae_model_file_parse(bytes, len, path, &f, err)) == AE_OK) {
        *meta = ae_model_file_take_meta(f);
        ae_model_file_free(f);
    }
    free(bytes);
    return s;
}

/* A flag the command line set to something else than the checkpoint holds
 * is overridden, and the user is told: a resumed run must be the run it
 * continues. Values equal to the defaults are taken as not given. */
static void warn_overridden(const char *flag, double given, double fallback, double kept)
{
    if (given != fallback && given != kept && !cli_out.quiet)
        fprintf(stderr, "aedet: warning: --%s %g ignored: the checkpoint's %g is kept\n", flag, given, kept);
}

static int resume_settings(const cli_command *cmd, cli_train_args *a, const ae_meta *meta)
{
    cli_train_args d;
    cli_train_defaults(&d);
    int64_t v;
    double f;
    if (!ae_meta_get_int(meta, AE_KEY_EPOCHS, &v) || v < 1 || v > INT32_MAX)
        return cli_usage_error(cmd, "%s is not a training checkpoint", a->resume);
    warn_overridden("epochs", a->epochs, d.epochs, (double)v);
    a->epochs = (int)v;
    if (ae_meta_get_int(meta, AE_KEY_BATCH_SIZE, &v) && v >= 1 && v <= INT32_MAX) {
        warn_overridden("batch", a->data.batch, d.data.batch, (double)v);
        a->data.batch = (int)v;
    }
    if (ae_meta_get_int(meta, AE_KEY_SEED, &v)) {
        warn_overridden("seed", (double)a->seed, (double)d.seed, (double)(uint64_t)v);
        a->seed = (uint64_t)v;
    }
    if (ae_meta_get_float(meta, AE_KEY_LEARNING_RATE, &f)) {
        warn_overridden("lr", a->learning_rate, d.learning_rate, f);
        a->learning_rate = f;
    }
    if (ae_meta_get_float(meta, AE_KEY_DECAY, &f)) {
        warn_overridden("decay", a->decay, d.decay, f);
        a->decay = f;
    }
    if (ae_meta_get_float(meta, AE_KEY_VAL_FRACTION, &f)) {
        warn_overridden("val-fraction", a->val_fraction, d.val_fraction, f);
        a->val_fraction = f;
    }
    if (ae_meta_get_int(meta, AE_KEY_PATIENCE, &v) && v >= 0 && v <= INT32_MAX) {
        warn_overridden("early-stop", a->early_stop, d.early_stop, (double)v);
        a->early_stop = (int)v;
    }
    if (ae_meta_get_int(meta, AE_KEY_KEEP_BEST, &v))
        a->keep_best = v != 0;
    return 0;
}

/* Where the checkpoint stopped; every value is checked against the run's
 * size, since a file with a valid checksum can still hold nonsense. */
static ae_status restore_state(const ae_meta *meta, int epochs, const ae_model *m, ae_train_state *st,
                               ae_error *err)
{
    int64_t epoch = 0, batch = 0, count = 0;
    double sum = 0;
    size_t n1 = 0, n2 = 0;
    ae_meta_get_int(meta, AE_KEY_EPOCHS_DONE, &epoch);
    ae_meta_get_int(meta, AE_KEY_BATCH, &batch);
    ae_meta_get_float(meta, AE_KEY_LOSS_SUM, &sum);
    ae_meta_get_int(meta, AE_KEY_LOSS_COUNT, &count);
    const double *tl = ae_meta_get_doubles(meta, AE_KEY_TRAIN_LOSSES, &n1);
    const double *vl = ae_meta_get_doubles(meta, AE_KEY_VAL_LOSSES, &n2);
    int finite = isfinite(sum) && sum >= 0;
    for (size_t i = 0; finite && i < n1; i++) /* a validation loss is NaN without a validation set */
        finite = isfinite(tl[i]) && tl[i] >= 0 && !(vl[i] < 0) && !isinf(vl[i]);
    if (epoch < 0 || epoch > epochs || batch < 0 || batch > INT32_MAX || count < 0 ||
        n1 != (size_t)epoch || n2 != n1 || !finite)
        return ae_fail(err, AE_ERR_FORMAT, "checkpoint: inconsistent training position or history");
    st->epoch = (int)epoch;
    st->batch = (int)batch;
    st->loss_sum = sum;
    st->loss_count = (size_t)count;
    for (size_t i = 0; i < n1; i++) {
        st->train_loss[i] = tl[i];
        st->val_loss[i] = vl[i];
    }
    st->num_history = (int)n1;
    int64_t best = 0;
    size_t np = 0, ns = 0;
    ae_meta_get_int(meta, AE_KEY_BEST_EPOCH, &best);
    const float *bp = ae_meta_get_floats(meta, AE_KEY_BEST_PARAMS, &np);
    const float *bs = ae_meta_get_floats(meta, AE_KEY_BEST_STATE, &ns);
    if (best < 0 || best > epoch || (best && (!bp || !bs || np != ae_model_num_params(m) ||
                                              ns != ae_model_num_state(m))))
        return ae_fail(err, AE_ERR_FORMAT, "checkpoint: inconsistent best epoch or its weights");
    if (best) {
        ae_status s = ae_train_state_keep_best(st, m, err);
        if (s != AE_OK)
            return s;
        memcpy(st->best_params, bp, np * sizeof *bp);
        memcpy(st->best_state, bs, ns * sizeof *bs);
        st->best_epoch = (int)best;
    }
    return AE_OK;
}

static ae_status base_meta(const cli_train_args *a, const ae_dataset *ds, int64_t fingerprint,
                           const char *kernels, unsigned augment, ae_meta *m, ae_error *err)
{
    ae_status s;
    if ((s = ae_meta_set_int(m, AE_KEY_SEED, (int64_t)a->seed, err)) ||
        (s = ae_meta_set_str(m, AE_KEY_DATA, ds->description ? ds->description : a->data_path, err)) ||
        (s = ae_meta_set_now(m, AE_KEY_CREATED, err)) ||
        (s = ae_meta_set_int(m, AE_KEY_EPOCHS, a->epochs, err)) ||
        (s = ae_meta_set_int(m, AE_KEY_BATCH_SIZE, a->data.batch, err)) ||
        (s = ae_meta_set_float(m, AE_KEY_LEARNING_RATE, a->learning_rate, err)) ||
        (s = ae_meta_set_float(m, AE_KEY_DECAY, a->decay, err)) ||
        (s = ae_meta_set_float(m, AE_KEY_VAL_FRACTION, a->val_fraction, err)) ||
        (s = ae_meta_set_int(m, AE_KEY_THREADS, ae_get_num_threads(), err)) ||
        (s = ae_meta_set_str(m, AE_KEY_KERNELS, kernels, err)) ||
        (s = ae_meta_set_int(m, AE_KEY_DATA_FINGERPRINT, fingerprint, err)) ||
        (s = ae_meta_set_int(m, AE_KEY_PATIENCE, a->early_stop, err)) ||
        (s = ae_meta_set_int(m, AE_KEY_KEEP_BEST, a->keep_best, err)) ||
        (s = ae_meta_set_int(m, AE_KEY_AUGMENT, (int64_t)augment, err)))
        return s;
    /* A resumed run keeps the command line that began it. */
    if (a->command && !a->resume &&
        ((s = ae_meta_set_str(m, AE_KEY_COMMAND, a->command, err)) ||
         (s = ae_meta_set_str(m, AE_KEY_CWD, a->cwd, err))))
        return s;
    return AE_OK;
}

/* After training: the scores of the training and validation images by the
 * model's rule, by the one scoring path, so a threshold can be chosen later
 * without labels; *values (may be NULL) keeps them. */
static ae_status store_errors(ae_model *m, const ae_detector *d, ae_loader *l, int batch, const char *key,
                              ae_meta *meta, float **values, ae_error *err)
{
    size_t n = ae_loader_count(l);
    if (n == 0)
        return AE_OK;
    float *errors = malloc(n * sizeof *errors);
    if (!errors)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for %zu errors", n);
    ae_status s = ae_score_loader_by(m, d, l, batch, errors, NULL, NULL, NULL, err);
    if (s == AE_OK)
        s = ae_meta_set_floats(meta, key, errors, n, err);
    if (s == AE_OK && values)
        *values = errors;
    else
        free(errors);
    return s;
}

/* What scoring needs later: the rule and what it learned, the training and
 * validation scores, and the deployable threshold (a quantile of the
 * held-out scores: no labels needed). */
static ae_status store_detector(const cli_train_args *a, ae_model *m, ae_loader *train, ae_loader *val,
                                ae_meta *meta, ae_error *err)
{
    ae_score_rule rule;
    ae_detector *d = NULL;
    float *held_out = NULL;
    ae_status s = ae_score_rule_parse(a->score, &rule, err);
    if (s == AE_OK && !isnan(a->sigma))
        rule.sigma = a->sigma;
    if (s == AE_OK)
        s = ae_detector_create(&rule, &d, err);
    if (s == AE_OK)
        s = ae_detector_fit(d, m, train, val, a->data.batch, a->seed, err);
    if (s == AE_OK)
        s = ae_detector_to_meta(d, meta, err);
    int from_val = val && ae_loader_count(val) > 0;
    if (s == AE_OK)
        s = store_errors(m, d, train, a->data.batch, AE_KEY_TRAIN_ERRORS, meta, from_val ? NULL : &held_out, err);
    if (s == AE_OK && from_val)
        s = store_errors(m, d, val, a->data.batch, AE_KEY_VAL_ERRORS, meta, &held_out, err);
    double value;
    size_t n = from_val ? ae_loader_count(val) : ae_loader_count(train);
    if (s == AE_OK && held_out && (s = ae_quantile(held_out, n, a->threshold_quantile, &value, err)) == AE_OK &&
        !(s = ae_meta_set_float(meta, AE_KEY_THRESHOLD_QUANTILE, a->threshold_quantile, err)) &&
        !(s = ae_meta_set_float(meta, AE_KEY_THRESHOLD_VALUE, value, err)))
        s = ae_meta_set_str(meta, AE_KEY_THRESHOLD_SOURCE, from_val ? "validation" : "train", err);
    free(held_out);
    ae_detector_free(d);
    return s;
}

/* Every training and data option's value for this run, as a --config file
 * (stored in the model: `aedet info --show-config`), with the size, channels
 * and filters resolved, so the file repeats the run even if a default changes. */
static char *resolved_config(const cli_train_args *a, const ae_config *cfg)
{
    cli_train_args r = *a;
    char filters[160] = "";
    r.size.height = cfg->height;
    r.size.width = cfg->width;
    r.channels = cfg->channels;
    for (int i = 0; i < cfg->num_filters; i++)
        snprintf(filters + strlen(filters), sizeof filters - strlen(filters), "%s%d", i ? "," : "", cfg->filters[i]);
    r.filters.items[0] = filters;
    r.filters.count = 1;
    const cli_option opts[] = {CLI_TRAINING_OPTIONS(r), CLI_DATA_OPTIONS(r.data), {0}};
    char *body = cli_options_config(opts, NULL);
    const char *data = a->data_path ? a->data_path : "";
    size_t len = body ? strlen(body) + strlen(data) + 256 : 0;
    char *text = body ? malloc(len) : NULL;
    if (text)
        snprintf(text, len, "# aedet %s train: the options of a run on DATA %s\n%s", AE_VERSION_STRING,
                 strchr(data, '\n') ? "(a name with a line break)" : data, body);
    free(body);
    return text;
}

int cli_train_run(const cli_command *cmd, cli_train_args *a)
{
    int rc = 0;
    char *config_text = NULL;
    ae_error err = {0};
    ae_meta *resume_meta = NULL;
    ae_model *model = NULL;
    if (a->resume) {
        if (read_checkpoint_meta(a->resume, &resume_meta, &err) != AE_OK)
            return cli_report_error(&err);
        if ((rc = resume_settings(cmd, a, resume_meta))) {
            ae_meta_free(resume_meta);
            return rc;
        }
    }
    if (a->checkpoint && !strcmp(a->checkpoint, a->output)) {
        ae_meta_free(resume_meta);
        return cli_usage_error(cmd, "--checkpoint must differ from -o (the checkpoint is removed at the end)");
    }
    if (a->epochs < 1 || a->data.batch < 1 || !(a->val_fraction >= 0 && a->val_fraction < 1) ||
        !(a->learning_rate > 0) || !(a->decay >= 0) || a->latent < 1) {
        ae_meta_free(resume_meta);
        return cli_usage_error(cmd, "--epochs, --batch and --latent must be at least 1, --lr positive, "
                                    "--decay non-negative, --val-fraction in [0, 1)");
    }
    ae_score_rule rule;
    ae_error rule_err;
    if (ae_score_rule_parse(a->score, &rule, &rule_err) != AE_OK) {
        ae_meta_free(resume_meta);
        return cli_usage_error(cmd, "--score: %s", rule_err.message);
    }
    if (!(isnan(a->sigma) || (a->sigma >= 0 && a->sigma <= 8)) ||
        !(a->threshold_quantile >= 0 && a->threshold_quantile <= 1)) {
        ae_meta_free(resume_meta);
        return cli_usage_error(cmd, "--sigma wants a value in [0, 8], --threshold-quantile one in [0, 1]");
    }
    unsigned augment = 0;
    for (int i = 0; i < a->augment.count; i++)
        for (const char *name = a->augment.items[i]; *name;) {
            size_t len = strcspn(name, ",");
            unsigned flag = !strncmp(name, "flip", len) && len == 4    ? AE_AUGMENT_FLIP
                            : !strncmp(name, "shift", len) && len == 5 ? AE_AUGMENT_SHIFT
                            : !strncmp(name, "brightness", len) && len == 10 ? AE_AUGMENT_BRIGHTNESS
                                                                            : 0;
            if (!flag) {
                ae_meta_free(resume_meta);
                return cli_usage_error(cmd, "--augment wants flip, shift or brightness, not '%.*s'", (int)len, name);
            }
            augment |= flag;
            name += len + (name[len] == ',');
        }
    int64_t resumed_augment;
    if (resume_meta && ae_meta_get_int(resume_meta, AE_KEY_AUGMENT, &resumed_augment))
        augment = (unsigned)resumed_augment & (AE_AUGMENT_FLIP | AE_AUGMENT_SHIFT | AE_AUGMENT_BRIGHTNESS);
    if (a->early_stop < 0) {
        ae_meta_free(resume_meta);
        return cli_usage_error(cmd, "--early-stop wants a number of epochs (0: off)");
    }
    cli_apply_data_limits(&a->data);

    ae_dataset ds = {0};
    size_t *items = NULL, n_items = 0, *train_items = NULL, *val_items = NULL, n_train = 0, n_val = 0;
    ae_loader *train = NULL, *val = NULL;
    ae_meta *meta = NULL;
    ae_train_state st = {0};
    char checkpoint[4096];
    snprintf(checkpoint, sizeof checkpoint, "%s", a->checkpoint ? a->checkpoint : "");
    struct stat out_st;
    if (!a->checkpoint && ((stat(a->output, &out_st) == 0 && !S_ISREG(out_st.st_mode)) ||
                           ae_names_descriptor(a->output))) {
        rc = cli_usage_error(cmd, "-o %s is not a regular file (standard output, a pipe or a device): "
                                  "give --checkpoint FILE for the checkpoints", a->output);
        goto done;
    }
    if (!a->checkpoint)
        snprintf(checkpoint, sizeof checkpoint, "%s.ckpt", a->output);

    if ((rc = cli_open_data(cmd, &a->data, a->data_path, a->seed, 1, &ds, &items, &n_items)))
        goto done;
    /* Before any image is decoded. --resume is no input here: it is read
     * whole now, and is usually the checkpoint itself. */
    const cli_path inputs[] = {{"DATA", cli_data_input(a->data_path), 0}, {"the labels", a->data.labels, 0}};
    const cli_path outputs[] = {{"-o", a->output, 0},
                                {a->checkpoint ? "--checkpoint" : "the checkpoint", checkpoint, 0}};
    if ((rc = cli_check_outputs(cmd, inputs, 2, &ds, outputs, 2)))
        goto done;
    int64_t fingerprint = cli_data_fingerprint(&ds, cli_data_root(&a->data, a->data_path), items, n_items);
    if (resume_meta) {
        int64_t old = 0;
        ae_meta_get_int(resume_meta, AE_KEY_DATA_FINGERPRINT, &old);
        if (!cli_same_data(&ds, cli_data_root(&a->data, a->data_path), items, n_items, old)) {
            rc = cli_usage_error(cmd, "%s was trained on other images: give the same DATA and data "
                                      "flags to --resume", a->resume);
            goto done;
        }
    }
    if (ae_split(items, n_items, a->val_fraction, a->seed, &train_items, &n_train, &val_items, &n_val,
                 &err) != AE_OK) {
        rc = cli_report_error(&err);
        goto done;
    }
    if (n_train == 0) {
        rc = cli_usage_error(cmd, "no training images left after the validation split");
        goto done;
    }
    ae_config cfg;
    int orig_h = 0, orig_w = 0;
    ae_size_stats sizes; /* of every chosen image, from its header */
    if (ae_dataset_size_stats(&ds, items, n_items, &sizes, &err) != AE_OK) {
        rc = cli_report_error(&err);
        goto done;
    }
    if (resume_meta) {
        if (ae_model_config_from_meta(resume_meta, a->resume, &cfg, &err) != AE_OK) {
            rc = cli_report_error(&err);
            goto done;
        }
        orig_h = cfg.height, orig_w = cfg.width;
    } else if ((rc = resolve_config(cmd, a, &ds, train_items[0], &sizes, &cfg, &orig_h, &orig_w)))
        goto done;
    if (!resume_meta && !(config_text = resolved_config(a, &cfg))) {
        rc = EXIT_INTERNAL;
        goto done;
    }
    /* One budget for both sets, shared in proportion to their sizes: a
     * validation set that fits alone must not push the run past it. */
    size_t budget = a->data.memory_budget ? a->data.memory_budget : 1; /* 0 keeps nothing in memory */
    size_t train_budget = (size_t)((double)budget * (double)n_train / (double)(n_train + n_val));
    size_t val_budget = budget - train_budget;
    if ((rc = cli_make_loader(&a->data, &ds, train_items, n_train, train_budget ? train_budget : 1, &cfg, 0, &train)) ||
        (n_val && (rc = cli_make_loader(&a->data, &ds, val_items, n_val, val_budget ? val_budget : 1, &cfg, 0, &val))))
        goto done;

    if (a->resume) {
        if (ae_model_load(a->resume, cli_dist_local_batch(a->data.batch), &model, &meta, NULL, &err) != AE_OK) {
            rc = cli_report_error(&err);
            goto done;
        }
    } else {
        if (ae_model_create(&cfg, cli_dist_local_batch(a->data.batch), &model, &err) != AE_OK || !(meta = ae_meta_new())) {
            rc = err.code ? cli_report_error(&err) : EXIT_INTERNAL;
            goto done;
        }
        ae_model_init_weights(model, a->seed);
    }
    if (a->data.bf16 && ae_model_set_bf16(model, 1, &err) != AE_OK) {
        rc = cli_report_error(&err);
        goto done;
    }
    if (ae_train_state_init(&st, a->epochs, &err) != AE_OK ||
        (a->resume && restore_state(meta, a->epochs, model, &st, &err) != AE_OK) ||
        base_meta(a, &ds, fingerprint, ae_model_kernels(model), augment, meta, &err) != AE_OK ||
        (config_text && ae_meta_set_str(meta, AE_KEY_CONFIG, config_text, &err) != AE_OK) ||
        cli_store_training_ids(&ds, train_items, n_train, meta, &err) != AE_OK ||
        (a->data.normal_dir && ae_meta_set_float(meta, AE_KEY_TEST_SPLIT,
                                                 isnan(a->data.test_split) ? 0 : a->data.test_split, &err) != AE_OK)) {
        rc = cli_report_error(&err);
        goto done;
    }
    print_config(a, &ds, &cfg, orig_h, orig_w, &sizes, n_train, n_val, train, val, model);
    int capped = !a->size.height && !resume_meta &&
                 (orig_h > CLI_DEFAULT_LONG_SIDE || orig_w > CLI_DEFAULT_LONG_SIDE);
    if (capped && !cli_out.quiet && !cli_out.json)
        fprintf(stderr, "  default size  the long side at most %d, the aspect kept (--size HxW for another)\n",
                CLI_DEFAULT_LONG_SIDE);
    if (a->resume && !cli_out.quiet && !cli_out.json)
        fprintf(stderr, "  resuming      from %s at epoch %d, batch %d\n", a->resume, st.epoch + 1, st.batch);

    const char *interrupt = getenv("AEDET_TEST_INTERRUPT_AFTER");
    train_session t = {a, model, meta, &st, checkpoint, cli_now(), 0, interrupt ? atol(interrupt) : 0};
    ae_train_options opt = {.epochs = a->epochs, .batch_size = a->data.batch, .seed = a->seed,
                            .stop = &stop_requested, .on_step = on_step, .on_epoch = on_epoch,
                            .on_checkpoint = save_checkpoint, .user = &t};
    opt.patience = a->early_stop;
    opt.keep_best = a->keep_best;
    opt.augment = augment;
    opt.comm = cli_dist_comm(); /* under mpirun: every batch spread over the ranks */
    ae_adam_config_init(&opt.adam, (float)a->learning_rate, 0);
    opt.adam.decay = (float)a->decay;

    /* Ctrl-C, and SIGTERM (a scheduler's or `kill`'s stop), checkpoint alike;
     * so does SIGUSR1, which mpirun passes on to every rank (docs/SCALING.md). */
    struct sigaction sa = {0}, old_sa, old_term, old_usr1;
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &old_sa);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGUSR1, &sa, &old_usr1);
    ae_status s = ae_train(model, train, val, &opt, &st, &err);
    sigaction(SIGINT, &old_sa, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGUSR1, &old_usr1, NULL);
    cli_progress_end();
    if (s == AE_ERR_INTERRUPTED) {
        ae_error save_err = {0};
        if (cli_dist_on_root(save_checkpoint, &t, &save_err) != AE_OK) /* rank 0 writes */
            rc = cli_report_error(&save_err);
        else {
            if (cli_dist_rank() == 0)
                fprintf(stderr, "aedet: interrupted at epoch %d, batch %d; checkpoint saved to %s\n"
                                "       continue with: aedet train --resume %s\n",
                        st.epoch + 1, st.batch, checkpoint, checkpoint);
            rc = EXIT_INTERRUPTED;
        }
        goto done;
    }
    if (s != AE_OK) {
        rc = cli_report_error(&err);
        goto done;
    }
    if (cli_dist_rank() != 0) /* rank 0 alone writes the model */
        goto done;
    if (st.best_epoch && (a->early_stop || a->keep_best) && !cli_out.quiet && !cli_out.json) {
        if (st.stopped_early)
            fprintf(stderr, "stopped early after epoch %d: no lower validation loss in %d epochs\n", st.epoch,
                    a->early_stop);
        fprintf(stderr, "kept the weights of epoch %d (validation loss %.6f)\n", st.best_epoch,
                st.val_loss[st.best_epoch - 1]);
    }
    if (record_state(&t, &err) != AE_OK) {
        rc = cli_report_error(&err);
        goto done;
    }
    /* The finished model keeps the history, not the mid-epoch position. */
    ae_meta_remove(meta, AE_KEY_BATCH);
    ae_meta_remove(meta, AE_KEY_LOSS_SUM);
    ae_meta_remove(meta, AE_KEY_LOSS_COUNT);
    ae_meta_remove(meta, AE_KEY_BEST_PARAMS); /* the model holds the best weights themselves */
    ae_meta_remove(meta, AE_KEY_BEST_STATE);
    if (store_detector(a, model, train, val, meta, &err) != AE_OK ||
        ae_model_save(a->output, model, meta, 0, &err) != AE_OK) {
        rc = cli_report_error(&err);
        goto done;
    }
    ae_remove_file(checkpoint); /* the finished model supersedes it */
    if (cli_out.json) {
        printf("{\"event\":\"saved\",\"model\":");
        cli_json_string(stdout, a->output);
        printf("}\n");
    }
    else if (!cli_out.quiet)
        fprintf(stderr, "saved %s\n", a->output);

done:
    free(config_text);
    ae_train_state_free(&st);
    ae_meta_free(meta);
    ae_meta_free(resume_meta);
    ae_model_free(model);
    ae_loader_free(train);
    ae_loader_free(val);
    free(items);
    free(train_items);
    free(val_items);
    ae_dataset_free(&ds);
    return rc;
}

static const cli_command train_cmd = {
    "train", "DATA|--normal-dir DIR -o MODEL [options]",
    "Trains the convolutional autoencoder on the images in DATA (unsupervised: labels, when\n"
    "given, only choose which images take part) and saves MODEL.",
    "DATA is a folder of images (searched recursively), a folder with --labels CSV, a\n"
    "class-per-folder tree (--layout classes), an MVTec AD category (train/good), or an IDX\n"
    "file (Fashion-MNIST) with --labels for its IDX labels; also one image file, '-' (image\n"
    "paths on standard input, one a line) or @LIST (the paths in the file LIST). Without\n"
    "--size the model takes the median image size, scaled so its long side is at most 128\n"
    "(aspect kept), sides rounded to a multiple of 2^levels (28x28 -> 32x32, 360x496 -> 96x128);\n"
    "the images' sizes are summarized first. --config FILE takes the options from a file\n"
    "('key = value' lines; 'aedet info MODEL --show-config' writes one that repeats a run).\n"
    "Training on normal images only\n"
    "is the common case; --normal-class/--anomaly-class/--contamination reproduce the\n"
    "tutorial's recipe. The folder layout replaces DATA: --normal-dir good/ trains on its\n"
    "images (masks and --exclude matches never), less the --test-split share held out for\n"
    "scoring; 'aedet score MODEL --normal-dir good/ --abnormal-dir crack/ --mask-dir masks/'\n"
    "then scores the held-out normals and each defect folder. A checkpoint (MODEL.ckpt) is saved after every epoch and on Ctrl-C;\n"
    "--resume MODEL.ckpt continues from it with the same result as an uninterrupted run\n"
    "(alone, it repeats the command that began the run; with DATA, the data flags must match).\n"
    "Exit codes: 0 ok, 2 usage, 3 bad data, 4 I/O, 5 bad model file, 6 diverged (NaN),\n"
    "130 interrupted (checkpoint saved).",
    0, 1};

/* argv[1..] joined by 0x1f (a byte no flag or path here holds; NULL when
 * one does, and the checkpoint then needs DATA given again). */
static char *join_command(int argc, char **argv)
{
    size_t len = 1;
    for (int i = 1; i < argc; i++) {
        if (strchr(argv[i], '\x1f'))
            return NULL;
        len += strlen(argv[i]) + 1;
    }
    char *line = calloc(len, 1);
    for (int i = 1; line && i < argc; i++) {
        if (i > 1)
            strcat(line, "\x1f");
        strcat(line, argv[i]);
    }
    return line;
}

/* A relative path of the stored command, made relative to where it ran. */
static const char *stored_path(const char *path, const char *cwd, char *buf, size_t size)
{
    if (!path || path[0] == '/' || !cwd)
        return path;
    snprintf(buf, size, "%s/%s", cwd, path);
    return buf;
}

static int parse_train(int argc, char **argv, cli_train_args *a, int *num_positional);

/* `train --resume CKPT` with no DATA: the run is rebuilt from the command
 * line the checkpoint stored; -o and --checkpoint given now win. */
static int resume_alone(const cli_train_args *given)
{
    ae_meta *meta = NULL;
    ae_error err = {0};
    if (read_checkpoint_meta(given->resume, &meta, &err) != AE_OK)
        return cli_report_error(&err);
    const char *line = ae_meta_get_str(meta, AE_KEY_COMMAND), *cwd = ae_meta_get_str(meta, AE_KEY_CWD);
    if (!line || !cwd) {
        ae_meta_free(meta);
        return cli_usage_error(&train_cmd, "%s does not hold the command that began it: give DATA and "
                                           "the data flags with --resume", given->resume);
    }
    char *copy = strdup(line), *args[256] = {"train"};
    int argc = 1;
    char *p = copy;
    for (; p && argc < 256; argc++) {
        args[argc] = p;
        if ((p = strchr(p, '\x1f')))
            *p++ = '\0';
    }
    if (p) { /* more arguments than any real command line */
        free(copy);
        ae_meta_free(meta);
        return cli_usage_error(&train_cmd, "%s: the stored command is too long", given->resume);
    }
    cli_train_args a;
    cli_config_base = cwd; /* a --config FILE of the stored command: from where it ran */
    int npos = 0, rc = copy ? parse_train(argc, args, &a, &npos) : EXIT_INTERNAL;
    cli_config_base = NULL;
    char data[4096], output[4096], labels[4096], ckpt[4096];
    char normal_dir[4096], normal_test[4096], mask_dir[4096], (*abnormal)[4096] = calloc(32, sizeof *abnormal);
    if (!rc && (npos == 1 || a.data.normal_dir)) {
        a.data_path = stored_path(a.data_path, cwd, data, sizeof data);
        a.data.normal_dir = stored_path(a.data.normal_dir, cwd, normal_dir, sizeof normal_dir);
        a.data.normal_test_dir = stored_path(a.data.normal_test_dir, cwd, normal_test, sizeof normal_test);
        a.data.mask_dir = stored_path(a.data.mask_dir, cwd, mask_dir, sizeof mask_dir);
        for (int i = 0; abnormal && i < a.data.abnormal.count; i++)
            a.data.abnormal.items[i] = stored_path(a.data.abnormal.items[i], cwd, abnormal[i], sizeof abnormal[i]);
        a.data.labels = stored_path(a.data.labels, cwd, labels, sizeof labels);
        a.output = given->output ? given->output : stored_path(a.output, cwd, output, sizeof output);
        a.checkpoint = given->checkpoint ? given->checkpoint : stored_path(a.checkpoint, cwd, ckpt, sizeof ckpt);
        a.resume = given->resume;
        cli_train_args d;
        cli_train_defaults(&d);
        warn_overridden("epochs", given->epochs, d.epochs, a.epochs);
        warn_overridden("batch", given->data.batch, d.data.batch, a.data.batch);
        warn_overridden("lr", given->learning_rate, d.learning_rate, a.learning_rate);
        warn_overridden("seed", (double)given->seed, (double)d.seed, (double)a.seed);
        if (!cli_out.quiet && !cli_out.json)
            fprintf(stderr, "  resuming      %s -o %s, as the checkpoint began\n", cli_data_root(&a.data, a.data_path),
                    a.output);
        rc = cli_train_run(&train_cmd, &a);
    } else if (!rc)
        rc = cli_usage_error(&train_cmd, "%s: the stored command has no DATA", given->resume);
    free(abnormal);
    free(copy);
    ae_meta_free(meta);
    return rc;
}

static int parse_train(int argc, char **argv, cli_train_args *a, int *num_positional)
{
    cli_train_defaults(a);
    const cli_option opts[] = {
        {"output", OPT_OUTPUT, &a->output, "MODEL", "model file to write (required; also -o)"},
        CLI_TRAINING_OPTIONS(*a),
        {"resume", OPT_STRING, &a->resume, "CKPT", "continue from a checkpoint (alone: as it began)"},
        {"checkpoint", OPT_STRING, &a->checkpoint, "FILE", "checkpoint file [MODEL.ckpt]"},
        CLI_DATA_OPTIONS(a->data),
        {0},
    };
    const char *pos[1];
    int rc = cli_parse(&train_cmd, opts, argc, argv, pos, num_positional);
    a->data_path = *num_positional ? pos[0] : NULL;
    return rc;
}

int cmd_train(int argc, char **argv)
{
    cli_train_args a;
    int npos, rc = parse_train(argc, argv, &a, &npos);
    if (rc)
        return rc < 0 ? 0 : rc;
    if ((rc = cli_folder_flags_alone(&train_cmd, &a.data)))
        return rc;
    if (!a.data_path && !a.data.normal_dir && a.resume)
        return resume_alone(&a);
    if (!a.data_path && !a.data.normal_dir)
        return cli_usage_error(&train_cmd, "DATA (or --normal-dir DIR) is required (or --resume CKPT alone)");
    if (!a.output)
        return cli_usage_error(&train_cmd, "-o MODEL is required");
    char cwd[4096];
    a.cwd = getcwd(cwd, sizeof cwd);
    char *command = a.cwd ? join_command(argc, argv) : NULL;
    a.command = command;
    rc = cli_train_run(&train_cmd, &a);
    free(command);
    return rc;
}
