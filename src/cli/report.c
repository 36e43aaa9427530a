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
    double aspect;       /* the source image's width / height */
    uint8_t *mask;       /* thumb_h x thumb_w ground truth, or NULL */
} shot;

/* The gallery's thumbnails: the model's shape, shrunk to at most
 * CLI_REPORT_THUMB pixels on the long side (about what a panel shows at
 * 1280 px), which keeps a page of many images small. */
static void thumb_size(const ae_config *cfg, int *th, int *tw)
{
    int longest = cfg->height > cfg->width ? cfg->height : cfg->width;
    *th = cfg->height, *tw = cfg->width;
    if (longest > CLI_REPORT_THUMB) {
        *th = (int)((double)cfg->height * CLI_REPORT_THUMB / longest + 0.5);
        *tw = (int)((double)cfg->width * CLI_REPORT_THUMB / longest + 0.5);
        *th = *th < 1 ? 1 : *th;
        *tw = *tw < 1 ? 1 : *tw;
    }
}

/* pixels (h x w x c) as a PNG of th x tw (area averaging when smaller). */
static ae_status encode_thumb(uint8_t *pixels, int h, int w, int c, int th, int tw, uint8_t *scratch,
                              uint8_t **png, size_t *len, ae_error *err)
{
    if (th == h && tw == w)
        return ae_png_encode(pixels, h, w, c, png, len, err);
    ae_image src = {h, w, c, pixels};
    ae_status st = ae_image_prepare(&src, th, tw, c, scratch, err);
    return st == AE_OK ? ae_png_encode(scratch, th, tw, c, png, len, err) : st;
}

/* The item's ground-truth mask at the thumbnail's size, 1 where it is >= 128
 * after resizing (as the pixel AUROC reads it); NULL without a mask. */
static ae_status load_thumb_mask(const ae_item *item, int th, int tw, uint8_t **mask, ae_error *err)
{
    *mask = NULL;
    if (!item->mask_path)
        return AE_OK;
    ae_image img = {0};
    ae_status st = ae_image_load(item->mask_path, &img, err);
    uint8_t *m = st == AE_OK ? malloc((size_t)th * (size_t)tw) : NULL;
    if (st == AE_OK && !m)
        st = ae_fail(err, AE_ERR_NOMEM, "report: out of memory for a mask");
    if (st == AE_OK)
        st = ae_image_prepare(&img, th, tw, 1, m, err);
    ae_image_free(&img);
    if (st != AE_OK) {
        free(m);
        return st;
    }
    for (size_t p = 0; p < (size_t)th * (size_t)tw; p++)
        m[p] = m[p] >= 128;
    *mask = m;
    return AE_OK;
}

/* Loads one image at the model's size, runs it through the model, keeps the
 * input and reconstruction as PNG thumbnails and the per-pixel errors. */
static ae_status render_shot(ae_model *model, const ae_dataset *ds, size_t item, shot *s,
                             uint8_t *pixels, uint8_t *scratch, float *x, float *recon, ae_error *err)
{
    const ae_config *cfg = ae_model_config(model);
    int h = cfg->height, w = cfg->width, c = cfg->channels, th, tw;
    thumb_size(cfg, &th, &tw);
    size_t count = (size_t)h * (size_t)w * (size_t)c;
    ae_image img = {0};
    ae_status st = ae_dataset_load(ds, item, &img, err);
    if (st == AE_OK) {
        s->aspect = (double)img.width / (double)img.height;
        st = ae_image_prepare(&img, h, w, c, pixels, err);
    }
    ae_image_free(&img);
    if (st != AE_OK)
        return st;
    ae_pixels_to_float(pixels, count, x);
    float score;
    if ((st = ae_model_score(model, x, 1, &score, recon, err)) != AE_OK)
        return st;
    ae_error_map(x, recon, h, w, c, s->errors);
    if ((st = encode_thumb(pixels, h, w, c, th, tw, scratch, &s->input, &s->input_len, err)) != AE_OK)
        return st;
    for (size_t k = 0; k < count; k++) { /* [0, 1] floats back to bytes, rounded */
        float v = recon[k] * 255.0f + 0.5f;
        pixels[k] = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
    }
    if ((st = encode_thumb(pixels, h, w, c, th, tw, scratch, &s->recon, &s->recon_len, err)) != AE_OK)
        return st;
    return load_thumb_mask(&ds->items[item], th, tw, &s->mask, err);
}

/* The heat map of errors (h x w) on the page's scale vmax, as a PNG
 * thumbnail: the errors become 256 levels of the colour bar, the levels
 * are shrunk like the image, and the shrunk levels are coloured. */
static ae_status render_heat(const float *errors, const ae_config *cfg, double vmax, uint8_t *levels,
                             uint8_t *scratch, float *values, uint8_t *rgb, shot *s, ae_error *err)
{
    int h = cfg->height, w = cfg->width, th, tw;
    thumb_size(cfg, &th, &tw);
    size_t hw = (size_t)h * (size_t)w, thw = (size_t)th * (size_t)tw;
    double scale = vmax > 0 ? 255 / vmax : 0;
    for (size_t p = 0; p < hw; p++) {
        double level = errors[p] * scale + 0.5;
        levels[p] = level >= 255 ? 255 : level > 0 ? (uint8_t)level : 0;
    }
    const uint8_t *small = levels;
    if (th != h || tw != w) {
        ae_image src = {h, w, 1, levels};
        ae_status st = ae_image_prepare(&src, th, tw, 1, scratch, err);
        if (st != AE_OK)
            return st;
        small = scratch;
    }
    for (size_t p = 0; p < thw; p++)
        values[p] = (float)small[p] / 255.0f;
    ae_heatmap_rgb(values, thw, 1.0, rgb);
    return ae_png_encode(rgb, th, tw, 3, &s->heat, &s->heat_len, err);
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
    free(s->mask);
}

int cli_write_report(const char *path, ae_model *model, const ae_meta *meta, const ae_dataset *ds,
                     const size_t *items, const float *scores, size_t n, const int *labels,
                     const ae_metrics_summary *m, int top_k, const char *title)
{
    ae_error err = {0};
    ae_status st = AE_OK;
    const ae_config *cfg = ae_model_config(model);
    int th, tw;
    thumb_size(cfg, &th, &tw);
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
    uint8_t *pixels = malloc(count), *scratch = malloc(count), *heat_rgb = malloc(hw * 3);
    float *x = malloc(count * sizeof *x), *recon = malloc(count * sizeof *recon);
    float *errors = malloc(((k + typical) * hw + 1) * sizeof *errors);
    if (!order || !shots || !gallery || !pixels || !scratch || !heat_rgb || !x || !recon || !errors) {
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
        st = render_shot(model, ds, item, s, pixels, scratch, x, recon, &err);
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
        /* x and recon are free now: the levels and the values of the map */
        st = render_heat(s->errors, cfg, vmax, pixels, scratch, x, heat_rgb, s, &err);
        const ae_item *it = &ds->items[items[s->scored]];
        gallery[j] = (ae_report_image){
            .name = ae_item_name(it, s->name, sizeof s->name),
            .label = it->label >= 0 ? scored_label(&ctx, s->scored, s->label, sizeof s->label) : NULL,
            .is_anomaly = labels ? labels[s->scored] : -1,
            .score = scores[s->scored],
            .input_png = s->input, .input_len = s->input_len,
            .recon_png = s->recon, .recon_len = s->recon_len,
            .heat_png = s->heat, .heat_len = s->heat_len,
            .aspect = s->aspect,
            .mask = s->mask, .mask_height = th, .mask_width = tw,
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
    snprintf(note, sizeof note, "Images around the median score, from rank %zu of %zu (most anomalous "
             "first).", typical_start + 1, n);
    ae_report r = {
        .title = title,
        .config = table.kv, .num_config = table.count,
        .train_losses = train_losses, .num_train_losses = train_losses ? num_train : 0,
        .val_losses = val_losses, .num_val_losses = val_losses ? num_val : 0,
        .scores = scores, .count = n, .labels = labels, .metrics = m,
        .anomalous = gallery, .num_anomalous = k,
        .typical = gallery + k, .num_typical = typical, .typical_note = note,
        .heat_max = vmax,
        .class_names = (const char *const *)ds->class_names, .num_class_names = ds->num_classes,
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
    free(scratch);
    free(heat_rgb);
    free(x);
    free(recon);
    free(errors);
    return st == AE_OK ? 0 : cli_report_error(&err);
}
