/* `--report FILE`: the HTML report of a scored set (docs/REPORT.md). The
 * library writes the page from plain data; this file gathers that data:
 * the configuration from the model's metadata, the gallery images rendered
 * through the one scoring path (ae_model_score), and the names and labels. */
#include "cli.h"
#include "report.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const ae_dataset *ds;
    const size_t *items;
    const int *labels;
} item_ctx;

static const char *scored_name(const void *ctx, size_t i, char *buf, size_t size)
{
    const item_ctx *c = ctx;
    return ae_item_name(&c->ds->items[c->items[i]], buf, size);
}

/* Class name when known, with what it counts as: "Sandal (anomaly)". */
static const char *scored_label(const void *ctx, size_t i, char *buf, size_t size)
{
    const item_ctx *c = ctx;
    int label = c->ds->items[c->items[i]].label;
    const char *role = c->labels ? (c->labels[i] ? " (anomaly)" : " (normal)") : "";
    if (label < 0) {
        snprintf(buf, size, "%s", c->labels ? role + 1 : "");
        return buf;
    }
    char name[128];
    snprintf(buf, size, "%s%s", ae_class_name(c->ds, label, name, sizeof name), role);
    return buf;
}

/* One gallery image while it is being made. */
typedef struct {
    size_t scored;       /* index into scores */
    char name[48], label[160];
    uint8_t *input, *recon; /* PNG bytes */
    size_t input_len, recon_len;
    uint8_t *heat;
    size_t heat_len;
    float *errors;       /* h x w mean absolute errors (in one block for every shot) */
} shot;

/* Loads one image at the model's size, runs it through the model, keeps the
 * input and reconstruction as PNG and the per-pixel errors. */
static ae_status render_shot(ae_model *model, const ae_dataset *ds, size_t item, shot *s,
                             uint8_t *pixels, float *x, float *recon, ae_error *err)
{
    const ae_config *cfg = ae_model_config(model);
    int h = cfg->height, w = cfg->width, c = cfg->channels;
    size_t count = (size_t)h * (size_t)w * (size_t)c;
    ae_image img = {0};
    ae_status st = ae_dataset_load(ds, item, &img, err);
    if (st == AE_OK)
        st = ae_image_prepare(&img, h, w, c, pixels, err);
    ae_image_free(&img);
    if (st != AE_OK)
        return st;
    ae_pixels_to_float(pixels, count, x);
    float score;
    if ((st = ae_model_score(model, x, 1, &score, recon, err)) != AE_OK)
        return st;
    ae_error_map(x, recon, h, w, c, s->errors);
    if ((st = ae_png_encode(pixels, h, w, c, &s->input, &s->input_len, err)) != AE_OK)
        return st;
    for (size_t k = 0; k < count; k++) { /* [0, 1] floats back to bytes, rounded */
        float v = recon[k] * 255.0f + 0.5f;
        pixels[k] = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
    }
    return ae_png_encode(pixels, h, w, c, &s->recon, &s->recon_len, err);
}

/* The configuration table: the model's metadata and what was scored. */
typedef struct {
    ae_report_kv kv[24];
    char values[24][192];
    size_t count;
} config_table;

static void add_kv(config_table *t, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add_kv(config_table *t, const char *key, const char *fmt, ...)
{
    if (t->count >= sizeof t->kv / sizeof t->kv[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->values[t->count], sizeof t->values[0], fmt, ap);
    va_end(ap);
    t->kv[t->count] = (ae_report_kv){key, t->values[t->count]};
    t->count++;
}

static void build_config(config_table *t, const ae_model *model, const ae_meta *meta,
                         const ae_dataset *ds, const ae_metrics_summary *m)
{
    const ae_config *cfg = ae_model_config(model);
    add_kv(t, "model input", "%d x %d x %d (height x width x channels)", cfg->height, cfg->width,
           cfg->channels);
    char filters[96] = "";
    for (int i = 0, used = 0; i < cfg->num_filters && used < (int)sizeof filters; i++)
        used += snprintf(filters + used, sizeof filters - (size_t)used, "%s%d", i ? ", " : "", cfg->filters[i]);
    add_kv(t, "filters", "%s", filters);
    add_kv(t, "latent dimension", "%d", cfg->latent_dim);
    add_kv(t, "parameters", "%zu", ae_model_num_params(model));
    int64_t v, done;
    double d;
    const char *s;
    if (ae_meta_get_int(meta, AE_KEY_EPOCHS_DONE, &done)) {
        if (ae_meta_get_int(meta, AE_KEY_EPOCHS, &v))
            add_kv(t, "epochs", "%lld of %lld", (long long)done, (long long)v);
        else
            add_kv(t, "epochs", "%lld", (long long)done);
    } else if (ae_meta_get_int(meta, AE_KEY_EPOCHS, &v))
        add_kv(t, "epochs", "%lld", (long long)v);
    if (ae_meta_get_int(meta, AE_KEY_BATCH_SIZE, &v))
        add_kv(t, "batch size", "%lld", (long long)v);
    if (ae_meta_get_float(meta, AE_KEY_LEARNING_RATE, &d))
        add_kv(t, "learning rate", "%g", d);
    if (ae_meta_get_float(meta, AE_KEY_DECAY, &d))
        add_kv(t, "learning rate decay", "%g", d);
    if (ae_meta_get_int(meta, AE_KEY_SEED, &v))
        add_kv(t, "seed", "%lld", (long long)v);
    if ((s = ae_meta_get_str(meta, AE_KEY_DATA)))
        add_kv(t, "training data", "%s", s);
    if ((s = ae_meta_get_str(meta, AE_KEY_CREATED)))
        add_kv(t, "trained", "%s", s);
    if ((s = ae_meta_get_str(meta, AE_KEY_VERSION)))
        add_kv(t, "trained with aedet", "%s", s);
    if (ds->description)
        add_kv(t, "scored data", "%s", ds->description);
    add_kv(t, "images scored", "%zu", m->count);
    if (m->has_labels)
        add_kv(t, "labels", "%zu normal, %zu anomalies", m->num_normals, m->num_anomalies);
    else
        add_kv(t, "labels", "none");
    const ae_threshold *th = &m->threshold;
    char rule[64];
    if (th->rule == AE_RULE_QUANTILE)
        snprintf(rule, sizeof rule, "%g quantile", th->param);
    else if (th->rule == AE_RULE_MEAN_SD)
        snprintf(rule, sizeof rule, "mean + %g sd", th->param);
    else
        snprintf(rule, sizeof rule, "%s", th->name ? th->name : "?");
    add_kv(t, "threshold", "%s = %.6g, from %zu values of the %s (score >= threshold is flagged)", rule,
           th->value, th->num_values, th->source[0] ? th->source : "caller");
}

static void shot_free(shot *s)
{
    free(s->input);
    free(s->recon);
    free(s->heat);
}

int cli_write_report(const char *path, ae_model *model, const ae_meta *meta, const ae_dataset *ds,
                     const size_t *items, const float *scores, size_t n, const int *labels,
                     const ae_metrics_summary *m, int top_k, const char *title)
{
    ae_error err = {0};
    ae_status st = AE_OK;
    const ae_config *cfg = ae_model_config(model);
    size_t hw = (size_t)cfg->height * (size_t)cfg->width, count = hw * (size_t)cfg->channels;
    size_t k = top_k > 0 ? (size_t)top_k : 0;
    k = k > CLI_REPORT_MAX_GALLERY ? CLI_REPORT_MAX_GALLERY : k;
    k = k > n ? n : k;
    size_t typical = n - k < k ? n - k : k;
    /* Normal-looking: the images around the median score, not the lowest
     * (often blank, and no picture of what the model calls normal). */
    size_t typical_start = n / 2 > typical / 2 ? n / 2 - typical / 2 : 0;
    if (typical_start < k)
        typical_start = k;
    if (typical_start + typical > n)
        typical_start = n - typical;

    size_t *order = malloc((n ? n : 1) * sizeof *order);
    shot *shots = calloc(k + typical + 1, sizeof *shots);
    ae_report_image *gallery = calloc(k + typical + 1, sizeof *gallery);
    uint8_t *pixels = malloc(count), *heat_rgb = malloc(hw * 3);
    float *x = malloc(count * sizeof *x), *recon = malloc(count * sizeof *recon);
    float *errors = malloc(((k + typical) * hw + 1) * sizeof *errors);
    if (!order || !shots || !gallery || !pixels || !heat_rgb || !x || !recon || !errors) {
        st = ae_fail(&err, AE_ERR_NOMEM, "report: out of memory for %zu scores", n);
        goto done;
    }
    if ((st = ae_rank_by_score(scores, n, order, &err)) != AE_OK)
        goto done;

    size_t num_shots = k + typical;
    for (size_t j = 0; j < num_shots && st == AE_OK; j++) {
        shot *s = &shots[j];
        s->scored = order[j < k ? j : typical_start + (j - k)];
        s->errors = errors + j * hw;
        size_t item = items[s->scored];
        st = render_shot(model, ds, item, s, pixels, x, recon, &err);
        if (st != AE_OK) {
            char buf[48];
            ae_error_prefix(&err, "report: gallery image %s", ae_item_name(&ds->items[item], buf, sizeof buf));
            break;
        }
    }
    /* One colour scale for the page, up to the 99.5th percentile of the
     * gallery's pixel errors: a few extreme pixels must not darken the rest. */
    double vmax = 0;
    if (st == AE_OK && num_shots)
        st = ae_quantile(errors, num_shots * hw, 0.995, &vmax, &err);
    item_ctx ctx = {ds, items, labels};
    for (size_t j = 0; j < num_shots && st == AE_OK; j++) {
        shot *s = &shots[j];
        ae_heatmap_rgb(s->errors, hw, vmax, heat_rgb);
        st = ae_png_encode(heat_rgb, cfg->height, cfg->width, 3, &s->heat, &s->heat_len, &err);
        const ae_item *it = &ds->items[items[s->scored]];
        gallery[j] = (ae_report_image){
            .name = ae_item_name(it, s->name, sizeof s->name),
            .label = it->label >= 0 ? scored_label(&ctx, s->scored, s->label, sizeof s->label) : NULL,
            .is_anomaly = labels ? labels[s->scored] : -1,
            .score = scores[s->scored],
            .input_png = s->input, .input_len = s->input_len,
            .recon_png = s->recon, .recon_len = s->recon_len,
            .heat_png = s->heat, .heat_len = s->heat_len,
        };
    }
    if (st != AE_OK)
        goto done;

    config_table table = {0};
    build_config(&table, model, meta, ds, m);
    size_t num_train = 0, num_val = 0;
    const double *train_losses = ae_meta_get_doubles(meta, AE_KEY_TRAIN_LOSSES, &num_train);
    const double *val_losses = ae_meta_get_doubles(meta, AE_KEY_VAL_LOSSES, &num_val);
    char note[160];
    snprintf(note, sizeof note, "The %zu images around the median score (ranks %zu to %zu of %zu, most "
             "anomalous first).", typical, typical_start + 1, typical_start + typical, n);
    ae_report r = {
        .title = title,
        .config = table.kv, .num_config = table.count,
        .train_losses = train_losses, .num_train_losses = train_losses ? num_train : 0,
        .val_losses = val_losses, .num_val_losses = val_losses ? num_val : 0,
        .scores = scores, .count = n, .labels = labels, .metrics = m,
        .anomalous = gallery, .num_anomalous = k,
        .typical = gallery + k, .num_typical = typical, .typical_note = note,
        .heat_max = vmax,
        .item_name = scored_name, .item_label = scored_label, .item_ctx = &ctx,
    };
    st = ae_report_write(path, &r, &err);

done:
    for (size_t j = 0; shots && j < k + typical; j++)
        shot_free(&shots[j]);
    free(shots);
    free(gallery);
    free(order);
    free(pixels);
    free(heat_rgb);
    free(x);
    free(recon);
    free(errors);
    return st == AE_OK ? 0 : cli_report_error(&err);
}
