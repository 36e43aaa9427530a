/* ae_fit: `aedet train`'s run as one library call (src/cli/cmd_train.c
 * does the same steps around its printing, checkpoints and --resume), so
 * that programs and the Python package train models the tool would. */
#include "aedet/array.h"
#include "aedet/eval.h"
#include "aedet/fit.h"
#include "aedet/train.h"

#include <math.h>
#include <stdlib.h>

void ae_fit_options_init(ae_fit_options *o)
{
    *o = (ae_fit_options){0};
    o->epochs = 30;
    o->batch_size = 32;
    o->val_fraction = 0.2;
    o->num_filters = 3;
    o->filters[0] = 16, o->filters[1] = 32, o->filters[2] = 64;
    o->latent_dim = 32;
    o->leaky_slope = 0.3;
    o->learning_rate = 1e-3;
    o->decay = 1e-3 / 50; /* the tutorial's INIT_LR / EPOCHS with EPOCHS = 50 */
    o->score = "mse";
    o->sigma = NAN;
    o->threshold_quantile = 0.99;
}

size_t ae_fit_options_size(void) { return sizeof(ae_fit_options); }

static ae_status check_options(const ae_fit_options *o, ae_error *err)
{
    ae_score_rule rule;
    if (o->epochs < 1 || o->batch_size < 1 || !(o->val_fraction >= 0 && o->val_fraction < 1) ||
        !(o->learning_rate > 0) || !(o->decay >= 0) || o->latent_dim < 1 || o->patience < 0)
        return ae_fail(err, AE_ERR_USAGE, "epochs, batch size and latent size must be at least 1, the learning "
                       "rate positive, the decay and patience not negative, the validation fraction in [0, 1)");
    if (o->height < 0 || o->width < 0 || (o->channels != 0 && o->channels != 1 && o->channels != 3))
        return ae_fail(err, AE_ERR_USAGE, "the model's size wants positive sides (0: the images') and 1 or 3 "
                       "channels (0: the images')");
    if (ae_score_rule_parse(o->score ? o->score : "mse", &rule, err) != AE_OK)
        return AE_ERR_USAGE;
    if (!(isnan(o->sigma) || (o->sigma >= 0 && o->sigma <= 8)) ||
        !(o->threshold_quantile >= 0 && o->threshold_quantile <= 1))
        return ae_fail(err, AE_ERR_USAGE, "sigma wants a value in [0, 8] (or NaN), the threshold quantile one "
                       "in [0, 1]");
    return AE_OK;
}

/* The side of the model when none is given: the image's, rounded to the
 * nearest multiple of 2^num_filters, as `aedet train` sizes it. */
static int default_side(int v, int num_filters)
{
    int step = 1 << num_filters;
    int r = (v + step / 2) / step * step;
    return r < step ? step : r;
}

static ae_status make_config(const ae_dataset *ds, size_t first, const ae_fit_options *o, ae_config *cfg,
                             ae_error *err)
{
    if (o->num_filters < 1 || o->num_filters > AE_MAX_FILTERS)
        return ae_fail(err, AE_ERR_USAGE, "1 to %d filter sizes, not %d", AE_MAX_FILTERS, o->num_filters);
    ae_image img = {0};
    ae_status s = ae_dataset_load(ds, first, &img, err);
    if (s != AE_OK) {
        ae_error_prefix(err, "reading the first image to size the model");
        return s;
    }
    int h = o->height ? o->height : default_side(img.height, o->num_filters);
    int w = o->width ? o->width : default_side(img.width, o->num_filters);
    ae_config_init(cfg, h, w, o->channels ? o->channels : img.channels);
    ae_image_free(&img);
    cfg->num_filters = o->num_filters;
    for (int i = 0; i < o->num_filters; i++)
        cfg->filters[i] = o->filters[i];
    cfg->latent_dim = o->latent_dim;
    cfg->leaky_slope = (float)o->leaky_slope;
    return ae_config_check(cfg, o->batch_size, err);
}

/* The loaders share one memory budget in proportion to their sizes, so
 * that a validation set that fits alone cannot push the run past it. */
static ae_status make_loaders(const ae_dataset *ds, const size_t *train, size_t n_train, const size_t *val,
                              size_t n_val, const ae_config *cfg, const ae_fit_options *o, ae_loader **lt,
                              ae_loader **lv, ae_error *err)
{
    size_t budget = o->memory_budget ? o->memory_budget : (size_t)1 << 30;
    size_t train_budget = (size_t)((double)budget * (double)n_train / (double)(n_train + n_val));
    ae_loader_config lc = {.height = cfg->height, .width = cfg->width, .channels = cfg->channels,
                           .memory_budget = train_budget ? train_budget : 1, .threads = o->threads,
                           .bad_policy = o->bad_policy};
    ae_status s = ae_loader_create(ds, train, n_train, &lc, lt, err);
    lc.memory_budget = budget - train_budget ? budget - train_budget : 1;
    if (s == AE_OK && n_val)
        s = ae_loader_create(ds, val, n_val, &lc, lv, err);
    return s;
}

/* How the model was trained, under the keys `aedet train` uses. */
static ae_status training_meta(const ae_fit_options *o, const ae_dataset *ds, const ae_model *m,
                               const ae_train_state *st, ae_meta *meta, ae_error *err)
{
    ae_status s;
    if ((s = ae_meta_set_int(meta, AE_KEY_SEED, (int64_t)o->seed, err)) ||
        (s = ae_meta_set_str(meta, AE_KEY_DATA, ds->description ? ds->description : "images", err)) ||
        (s = ae_meta_set_now(meta, AE_KEY_CREATED, err)) ||
        (s = ae_meta_set_int(meta, AE_KEY_EPOCHS, o->epochs, err)) ||
        (s = ae_meta_set_int(meta, AE_KEY_BATCH_SIZE, o->batch_size, err)) ||
        (s = ae_meta_set_float(meta, AE_KEY_LEARNING_RATE, o->learning_rate, err)) ||
        (s = ae_meta_set_float(meta, AE_KEY_DECAY, o->decay, err)) ||
        (s = ae_meta_set_float(meta, AE_KEY_VAL_FRACTION, o->val_fraction, err)) ||
        (s = ae_meta_set_int(meta, AE_KEY_THREADS, ae_get_num_threads(), err)) ||
        (s = ae_meta_set_str(meta, AE_KEY_KERNELS, ae_model_kernels(m), err)) ||
        (s = ae_meta_set_int(meta, AE_KEY_PATIENCE, o->patience, err)) ||
        (s = ae_meta_set_int(meta, AE_KEY_KEEP_BEST, o->keep_best, err)) ||
        (s = ae_meta_set_int(meta, AE_KEY_AUGMENT, (int64_t)o->augment, err)) ||
        (s = ae_meta_set_int(meta, AE_KEY_EPOCHS_DONE, st->epoch, err)) ||
        (s = ae_meta_set_doubles(meta, AE_KEY_TRAIN_LOSSES, st->train_loss, (size_t)st->num_history, err)) ||
        (s = ae_meta_set_doubles(meta, AE_KEY_VAL_LOSSES, st->val_loss, (size_t)st->num_history, err)) ||
        (s = ae_meta_set_int(meta, AE_KEY_BEST_EPOCH, st->best_epoch, err)))
        return s;
    return AE_OK;
}

/* A loader's scores by d's rule, stored under key; *kept (may be NULL)
 * keeps them for the threshold. */
static ae_status store_scores(ae_model *m, const ae_detector *d, ae_loader *l, int batch, const char *key,
                              ae_meta *meta, float **kept, ae_error *err)
{
    size_t n = ae_loader_count(l);
    float *scores = malloc((n ? n : 1) * sizeof *scores);
    if (!scores)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for %zu scores", n);
    ae_status s = ae_score_loader_by(m, d, l, batch, scores, NULL, NULL, NULL, err);
    if (s == AE_OK && n)
        s = ae_meta_set_floats(meta, key, scores, n, err);
    if (s == AE_OK && kept)
        *kept = scores;
    else
        free(scores);
    return s;
}

/* What scoring needs later without labels: the rule and what it learned,
 * the training and validation scores, and the threshold (a quantile of
 * the held-out scores, or of the training ones without a split). */
static ae_status score_meta(const ae_fit_options *o, ae_model *m, ae_loader *train, ae_loader *val,
                            ae_meta *meta, ae_error *err)
{
    ae_score_rule rule;
    ae_detector *d = NULL;
    float *held_out = NULL;
    int from_val = val && ae_loader_count(val) > 0;
    size_t n = from_val ? ae_loader_count(val) : ae_loader_count(train);
    double value;
    ae_status s = ae_score_rule_parse(o->score ? o->score : "mse", &rule, err);
    if (s == AE_OK && !isnan(o->sigma))
        rule.sigma = o->sigma;
    if (s == AE_OK)
        s = ae_detector_create(&rule, &d, err);
    if (s == AE_OK)
        s = ae_detector_fit(d, m, train, val, o->batch_size, o->seed, err);
    if (s == AE_OK)
        s = ae_detector_to_meta(d, meta, err);
    if (s == AE_OK)
        s = store_scores(m, d, train, o->batch_size, AE_KEY_TRAIN_ERRORS, meta, from_val ? NULL : &held_out, err);
    if (s == AE_OK && from_val)
        s = store_scores(m, d, val, o->batch_size, AE_KEY_VAL_ERRORS, meta, &held_out, err);
    if (s == AE_OK && n && (s = ae_quantile(held_out, n, o->threshold_quantile, &value, err)) == AE_OK &&
        (s = ae_meta_set_float(meta, AE_KEY_THRESHOLD_QUANTILE, o->threshold_quantile, err)) == AE_OK &&
        (s = ae_meta_set_float(meta, AE_KEY_THRESHOLD_VALUE, value, err)) == AE_OK)
        s = ae_meta_set_str(meta, AE_KEY_THRESHOLD_SOURCE, from_val ? "validation" : "train", err);
    free(held_out);
    ae_detector_free(d);
    return s;
}

ae_status ae_fit(const ae_dataset *ds, const size_t *items, size_t count, const ae_fit_options *o,
                 ae_model **model, ae_meta **meta, ae_error *err)
{
    *model = NULL;
    *meta = NULL;
    ae_status s = check_options(o, err);
    if (s != AE_OK)
        return s;
    size_t *all = NULL, *train_items = NULL, *val_items = NULL, n_train = 0, n_val = 0;
    if (!items) {
        count = ds->count;
        if (!(all = malloc((count ? count : 1) * sizeof *all)))
            return ae_fail(err, AE_ERR_NOMEM, "out of memory for %zu items", count);
        for (size_t i = 0; i < count; i++)
            all[i] = i;
        items = all;
    }
    ae_loader *train = NULL, *val = NULL;
    ae_train_state st = {0};
    ae_config cfg;
    s = ae_split(items, count, o->val_fraction, o->seed, &train_items, &n_train, &val_items, &n_val, err);
    if (s == AE_OK && n_train == 0)
        s = ae_fail(err, AE_ERR_USAGE, "no training images left after the validation split");
    if (s == AE_OK)
        s = make_config(ds, train_items[0], o, &cfg, err);
    if (s == AE_OK)
        s = make_loaders(ds, train_items, n_train, val_items, n_val, &cfg, o, &train, &val, err);
    if (s == AE_OK && (s = ae_model_create(&cfg, o->batch_size, model, err)) == AE_OK)
        ae_model_init_weights(*model, o->seed);
    if (s == AE_OK && o->bf16)
        s = ae_model_set_bf16(*model, 1, err);
    if (s == AE_OK)
        s = ae_train_state_init(&st, o->epochs, err);
    if (s == AE_OK) {
        ae_train_options opt = {.epochs = o->epochs, .batch_size = o->batch_size, .seed = o->seed,
                                .patience = o->patience, .keep_best = o->keep_best, .augment = o->augment,
                                .stop = o->stop, .on_epoch = o->on_epoch, .user = o->user};
        ae_adam_config_init(&opt.adam, (float)o->learning_rate, 0);
        opt.adam.decay = (float)o->decay;
        s = ae_train(*model, train, val, &opt, &st, err);
    }
    if (s == AE_OK && !(*meta = ae_meta_new()))
        s = ae_fail(err, AE_ERR_NOMEM, "out of memory for the model's metadata");
    if (s == AE_OK)
        s = training_meta(o, ds, *model, &st, *meta, err);
    if (s == AE_OK)
        s = score_meta(o, *model, train, val, *meta, err);
    if (s != AE_OK) {
        ae_model_free(*model);
        ae_meta_free(*meta);
        *model = NULL;
        *meta = NULL;
    }
    ae_train_state_free(&st);
    ae_loader_free(train);
    ae_loader_free(val);
    free(all);
    free(train_items);
    free(val_items);
    return s;
}

ae_status ae_fit_pixels(const uint8_t *pixels, size_t n, int height, int width, int channels,
                        const ae_fit_options *o, ae_model **model, ae_meta **meta, ae_error *err)
{
    ae_dataset ds;
    *model = NULL;
    *meta = NULL;
    ae_status s = ae_dataset_from_pixels(pixels, n, height, width, channels, NULL, &ds, err);
    if (s != AE_OK)
        return s;
    s = ae_fit(&ds, NULL, 0, o, model, meta, err);
    ae_dataset_free(&ds);
    return s;
}
