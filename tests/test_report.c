/* The HTML report: the page's content on synthetic data, its bounds on large
 * sets (a 600-image report from the aedet tool stays under 2 MB), the plot
 * helpers, and (when Chromium is installed) the page as a browser renders it
 * at 1280 px: nothing overflows (tests/report_browser.html measures every
 * box), a screenshot, console errors and the visible numbers. */
#include "support.h"

#include "aedet/eval.h"
#include "aedet/image.h"
#include "aedet/report.h"
#include "eval/svg_plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const odd_name = "dir/a<b&c\"d'e>.png";
static const char *const odd_name_escaped = "dir/a&lt;b&amp;c&quot;d&#39;e&gt;.png";

static const char *name_of(const void *ctx, size_t i, char *buf, size_t size)
{
    (void)ctx;
    if (i == 0)
        return odd_name;
    snprintf(buf, size, "images/img_%04zu.png", i);
    return buf;
}

/* A fixture: two classes of scores, ten epochs of losses, two gallery images. */
typedef struct {
    float scores[220];
    int labels[220];
    double train[10], val[10];
    ae_threshold threshold;
    ae_metrics_summary metrics;
    uint8_t *png[6];
    size_t png_len[6];
    uint8_t mask[6 * 10];
    ae_report_image gallery[2];
    ae_report_kv config[3];
    ae_report report;
} fixture;

static void make_fixture(fixture *f)
{
    memset(f, 0, sizeof *f);
    ae_rng rng;
    ae_rng_seed(&rng, 5);
    for (size_t i = 0; i < 220; i++) {
        f->labels[i] = i < 20;
        double base = f->labels[i] ? 0.013 : 0.01;
        f->scores[i] = (float)(base + (f->labels[i] ? 0.008 : 0.003) * fabs(ae_rng_normal(&rng)));
    }
    f->scores[0] = 0.08f; /* the odd name is the most anomalous: first in the table */
    for (int e = 0; e < 10; e++) {
        f->train[e] = 0.05 / (1 + e);
        f->val[e] = 0.055 / (1 + 0.8 * e);
    }
    ae_error err = {0};
    assert_int_equal(ae_threshold_quantile(f->scores, 220, 0.95, "scored set", &f->threshold, &err), AE_OK);
    assert_int_equal(ae_metrics_summarize(f->scores, f->labels, 220, &f->threshold, &f->metrics, &err), AE_OK);

    /* 8x8 gray input, its "reconstruction", and the heat map of their error. */
    float x[64], recon[64], errors[64];
    uint8_t gray[2][64], heat[64 * 3];
    for (int p = 0; p < 64; p++) {
        x[p] = (float)p / 63.0f;
        recon[p] = p < 32 ? x[p] : 0.5f;
        gray[0][p] = (uint8_t)(x[p] * 255);
        gray[1][p] = (uint8_t)(recon[p] * 255);
    }
    ae_error_map(x, recon, 8, 8, 1, errors);
    ae_heatmap_rgb(errors, 64, 0.5, heat);
    for (int g = 0; g < 2; g++) {
        assert_int_equal(ae_png_encode(gray[0], 8, 8, 1, &f->png[3 * g], &f->png_len[3 * g], &err), AE_OK);
        assert_int_equal(ae_png_encode(gray[1], 8, 8, 1, &f->png[3 * g + 1], &f->png_len[3 * g + 1], &err), AE_OK);
        assert_int_equal(ae_png_encode(heat, 8, 8, 3, &f->png[3 * g + 2], &f->png_len[3 * g + 2], &err), AE_OK);
    }
    /* A 6 x 10 mask, marked in rows 1..3 and columns 2..5, for the first. */
    for (int p = 0; p < 60; p++)
        f->mask[p] = p / 10 >= 1 && p / 10 <= 3 && p % 10 >= 2 && p % 10 <= 5;
    f->gallery[0] = (ae_report_image){.name = odd_name, .label = "anomaly", .is_anomaly = 1,
                                      .score = f->scores[0], .input_png = f->png[0], .input_len = f->png_len[0],
                                      .recon_png = f->png[1], .recon_len = f->png_len[1],
                                      .heat_png = f->png[2], .heat_len = f->png_len[2], .aspect = 5.0 / 3,
                                      .mask = f->mask, .mask_height = 6, .mask_width = 10};
    f->gallery[1] = (ae_report_image){.name = "images/img_0100.png", .label = "normal", .is_anomaly = 0,
                                      .score = f->scores[100], .input_png = f->png[3], .input_len = f->png_len[3],
                                      .recon_png = f->png[4], .recon_len = f->png_len[4],
                                      .heat_png = f->png[5], .heat_len = f->png_len[5]};
    f->config[0] = (ae_report_kv){"model input", "28 x 28 x 1"};
    f->config[1] = (ae_report_kv){"filters", "16, 32, 64"};
    f->config[2] = (ae_report_kv){"training data", odd_name};
    f->report = (ae_report){
        .title = "Synthetic <test> report",
        .config = f->config, .num_config = 3,
        .train_losses = f->train, .num_train_losses = 10,
        .val_losses = f->val, .num_val_losses = 10,
        .scores = f->scores, .count = 220, .labels = f->labels, .metrics = &f->metrics,
        .anomalous = &f->gallery[0], .num_anomalous = 1,
        .typical = &f->gallery[1], .num_typical = 1, .typical_note = "around the median",
        .heat_max = 0.5, .item_name = name_of,
    };
}

static void free_fixture(fixture *f)
{
    for (int i = 0; i < 6; i++)
        free(f->png[i]);
}

/* A whole text file, NUL-terminated (stdio, not the library under test). */
static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    char *text = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (cap - *len < 65536) {
            cap = cap * 2 + 65536;
            text = realloc(text, cap + 1);
            assert_non_null(text);
        }
        size_t got = fread(text + *len, 1, cap - *len, f);
        *len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    text[*len] = '\0';
    return text;
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* The text content of the element with this id (no nested tags expected). */
static int element_text(const char *html, const char *id, char *out, size_t size)
{
    char key[64];
    snprintf(key, sizeof key, "id=\"%s\"", id);
    const char *p = strstr(html, key);
    if (!p || !(p = strchr(p, '>')))
        return 0;
    const char *end = strchr(++p, '<');
    if (!end || (size_t)(end - p) >= size)
        return 0;
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
    return 1;
}

/* The number after "key": in a JSON text (NaN when null or absent). */
static double json_number(const char *json, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(json, k);
    if (!p || !strncmp(p + strlen(k), "null", 4))
        return NAN;
    return strtod(p + strlen(k), NULL);
}

/* Every visible metric agrees with the metrics JSON at the printed precision. */
static void check_visible_numbers(const char *html, const char *json)
{
    const struct {
        const char *id, *key;
        int decimals;
    } shown[] = {
        {"roc-auc", "roc_auc", 4},     {"average-precision", "average_precision", 4},
        {"precision", "precision", 4}, {"recall", "recall", 4},
        {"f1", "f1", 4},               {"best-f1", "best_f1", 4},
    };
    char text[64], want[64];
    for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++) {
        assert_true(element_text(html, shown[i].id, text, sizeof text));
        double v = json_number(json, shown[i].key);
        assert_false(isnan(v));
        snprintf(want, sizeof want, "%.*f", shown[i].decimals, v);
        if (strcmp(text, want))
            fail_msg("#%s shows '%s', the metrics JSON says %s", shown[i].id, text, want);
    }
    const struct {
        const char *id, *key;
    } counts[] = {{"count", "count"}, {"flagged", "flagged"}, {"tp", "tp"}, {"fp", "fp"},
                  {"tn", "tn"}, {"fn", "fn"}, {"anomalies-found", "anomalies_flagged"}};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        assert_true(element_text(html, counts[i].id, text, sizeof text));
        snprintf(want, sizeof want, "%.0f", json_number(json, counts[i].key));
        assert_string_equal(text, want);
    }
}

/* No reference leaves the page: every src/href is a data: URI or a fragment. */
static void check_self_contained(const char *html)
{
    assert_null(strstr(html, "http://"));
    assert_null(strstr(html, "https://"));
    assert_null(strstr(html, "<link"));
    assert_null(strstr(html, "<script src"));
    const char *attrs[] = {"src=\"", "href=\"", "url("};
    for (size_t a = 0; a < 3; a++)
        for (const char *p = strstr(html, attrs[a]); p; p = strstr(p + 1, attrs[a])) {
            const char *v = p + strlen(attrs[a]);
            if (strncmp(v, "data:", 5) && v[0] != '#')
                fail_msg("external reference: %.60s", p);
        }
}

static void test_report_page_content(void **state)
{
    (void)state;
    fixture f;
    make_fixture(&f);
    ae_error err = {0};
    const char *path = test_path("report.html");
    assert_int_equal(ae_report_write(path, &f.report, &err), AE_OK);
    size_t len;
    char *html = read_text(path, &len);
    assert_int_equal(strlen(html), len);
    assert_memory_equal(html, "<!DOCTYPE html>", 15);
    assert_non_null(strstr(html, "</html>\n"));
    check_self_contained(html);

    /* Strings escaped everywhere (table, gallery, configuration, title). */
    assert_null(strstr(html, odd_name));
    assert_true(count_of(html, odd_name_escaped) >= 3);
    assert_non_null(strstr(html, "<title>Synthetic &lt;test&gt; report</title>"));

    /* The embedded metrics are exactly ae_metrics_json's output. */
    char *json;
    size_t json_len;
    assert_int_equal(ae_metrics_json(&f.metrics, &json, &json_len, &err), AE_OK);
    const char *open = "<script type=\"application/json\" id=\"metrics\">";
    const char *start = strstr(html, open);
    assert_non_null(start);
    start += strlen(open);
    const char *end = strstr(start, "</script>");
    assert_non_null(end);
    assert_int_equal((size_t)(end - start), json_len);
    assert_memory_equal(start, json, json_len);

    /* Loss, histogram, ROC, PR, the colour bar, and the mask's outline over
     * the three panels of the first gallery image (drawn once, used thrice). */
    assert_int_equal(count_of(html, "<svg"), 8);
    assert_int_equal(count_of(html, "</svg>"), 8);
    assert_int_equal(count_of(html, "<svg class=\"mask\" viewBox=\"0 0 10 6\""), 3);
    assert_int_equal(count_of(html, "<use class=\"edge\" href=\"#gallery-anomalous-mask-0\"/>"), 3);
    /* Rows 1..3 x columns 2..5 marked: edges along rows 1 and 4, columns 2 and 6. */
    assert_non_null(strstr(html, "<path id=\"gallery-anomalous-mask-0\" vector-effect=\"non-scaling-stroke\" "
                                 "d=\"M2 1h4M2 4h4M2 1v3M6 1v3\"/>"));
    assert_non_null(strstr(html, "id=\"mask-legend\""));
    /* Panels at the given aspect, else the PNG's own (8 x 8). */
    assert_non_null(strstr(html, "data-aspect=\"1.66667\" style=\"--ar:1.66667;--fw:100%\""));
    assert_non_null(strstr(html, "data-aspect=\"1\" style=\"--ar:1;--fw:100%\""));
    assert_null(strstr(html, "gallery-left-out"));
    assert_null(strstr(html, "stat-pixel-roc-auc")); /* no pixel AUROC given */
    assert_non_null(strstr(html, "id=\"loss-plot\""));
    assert_non_null(strstr(html, "id=\"score-histogram\""));
    assert_non_null(strstr(html, "id=\"roc-plot\""));
    assert_non_null(strstr(html, "id=\"pr-plot\""));
    assert_non_null(strstr(html, "normal (n = 200)"));
    assert_non_null(strstr(html, "anomaly (n = 20)"));

    /* The threshold, its rule and its exact value. */
    char label[96], text[64];
    snprintf(label, sizeof label, "0.95 quantile = %.6g, &gt;= flagged", f.threshold.value);
    assert_non_null(strstr(html, label));
    snprintf(label, sizeof label, "data-value=\"%.17g\"", f.threshold.value);
    assert_non_null(strstr(html, label));
    assert_true(element_text(html, "threshold-value", text, sizeof text));
    snprintf(label, sizeof label, "%.4g", f.threshold.value);
    assert_string_equal(text, label);
    snprintf(label, sizeof label, "ROC (AUC = %.4f)", f.metrics.roc_auc);
    assert_non_null(strstr(html, label));
    snprintf(label, sizeof label, "PR (AP = %.4f)", f.metrics.average_precision);
    assert_non_null(strstr(html, label));
    check_visible_numbers(html, json);

    /* Gallery: three data-URI PNGs per image; the flagged table in score order. */
    assert_int_equal(count_of(html, "<figure class=\"sample\">"), 2);
    assert_int_equal(count_of(html, "src=\"data:image/png;base64,"), 6);
    char row[160];
    snprintf(row, sizeof row, "<td class=\"n\">1</td><td class=\"path\">%s</td>", odd_name_escaped);
    assert_non_null(strstr(html, row));
    assert_int_equal(count_of(html, "<tr><td class=\"n\">"), f.metrics.flagged);
    assert_null(strstr(html, "flagged-truncated"));
    free(json);
    free(html);
    free_fixture(&f);
}

/* The flagged table lists the flagged images from the highest score down,
 * equal scores in index order (ae_rank_by_score). */
static void test_report_flagged_rank_order(void **state)
{
    (void)state;
    enum { N = 40 };
    float scores[N];
    int labels[N];
    for (int i = 0; i < N; i++) {
        scores[i] = 0.25f * (float)((i * 7) % 4); /* 0, 0.25, 0.5, 0.75, many times each */
        labels[i] = i % 2;
    }
    ae_error err = {0};
    ae_threshold t;
    ae_metrics_summary m;
    assert_int_equal(ae_threshold_fixed(0.5, "test", &t, &err), AE_OK);
    assert_int_equal(ae_metrics_summarize(scores, labels, N, &t, &m, &err), AE_OK);
    assert_int_equal(m.flagged, N / 2);
    ae_report r = {.scores = scores, .count = N, .labels = labels, .metrics = &m};
    char *html;
    size_t len;
    assert_int_equal(ae_report_html(&r, &html, &len, &err), AE_OK);
    const char *p = strstr(html, "id=\"flagged-table\"");
    assert_non_null(p);
    size_t rows = 0;
    for (int level = 3; level >= 2; level--) /* expected: 0.75s by index, then 0.5s */
        for (int i = 0; i < N; i++) {
            if (scores[i] != 0.25f * (float)level)
                continue;
            p = strstr(p, "class=\"path\">#");
            assert_non_null(p);
            p += strlen("class=\"path\">#");
            size_t got = strtoul(p, NULL, 10);
            if (got != (size_t)i)
                fail_msg("flagged row %zu is #%zu, expected #%d", rows + 1, got, i);
            rows++;
        }
    assert_int_equal(rows, N / 2);
    assert_null(strstr(p, "class=\"path\">#"));
    free(html);
}

/* Without labels: one histogram, no curves, no precision; and a "</script>"
 * in a string cannot close the embedded JSON. */
static void test_report_without_labels(void **state)
{
    (void)state;
    fixture f;
    make_fixture(&f);
    ae_error err = {0};
    assert_int_equal(ae_threshold_mean_sd(f.scores, 220, 3, "x</script><b>y", &f.threshold, &err), AE_OK);
    assert_int_equal(ae_metrics_summarize(f.scores, NULL, 220, &f.threshold, &f.metrics, &err), AE_OK);
    f.report.labels = NULL;
    f.report.num_train_losses = f.report.num_val_losses = 0;
    f.report.num_anomalous = f.report.num_typical = 0;
    char *html;
    size_t len;
    assert_int_equal(ae_report_html(&f.report, &html, &len, &err), AE_OK);
    assert_int_equal(count_of(html, "<svg"), 1);
    assert_null(strstr(html, "id=\"roc-plot\""));
    assert_null(strstr(html, "id=\"precision\""));
    assert_non_null(strstr(html, "all images (n = 220)"));
    assert_non_null(strstr(html, "no loss history"));
    char label[96];
    snprintf(label, sizeof label, "mean + 3 sd = %.6g, &gt;= flagged", f.threshold.value);
    assert_non_null(strstr(html, label));
    assert_int_equal(count_of(html, "</script>"), 1);
    assert_non_null(strstr(html, "x\\u003c/script>\\u003cb>y"));
    assert_non_null(strstr(html, "x&lt;/script&gt;&lt;b&gt;y")); /* the visible rule text */
    assert_non_null(strstr(html, "id=\"warnings\""));            /* no labels is a warning */
    check_self_contained(html);
    free(html);
    free_fixture(&f);
}

/* Many scores: the table stops at AE_REPORT_MAX_ROWS with a note, and each
 * curve at AE_REPORT_MAX_CURVE_POINTS points; the histogram counts them all. */
static void test_report_stays_bounded(void **state)
{
    (void)state;
    enum { N = 6000 };
    float *scores = malloc(N * sizeof *scores);
    int *labels = malloc(N * sizeof *labels);
    assert_non_null(scores);
    assert_non_null(labels);
    for (size_t i = 0; i < N; i++) {
        labels[i] = i % 10 == 0;
        scores[i] = (float)i / N + (labels[i] ? 0.3f : 0.0f);
    }
    ae_error err = {0};
    ae_threshold t;
    ae_metrics_summary m;
    assert_int_equal(ae_threshold_quantile(scores, N, 0.5, "scored set", &t, &err), AE_OK);
    assert_int_equal(ae_metrics_summarize(scores, labels, N, &t, &m, &err), AE_OK);
    ae_report r = {.scores = scores, .count = N, .labels = labels, .metrics = &m};
    char *html;
    size_t len;
    assert_int_equal(ae_report_html(&r, &html, &len, &err), AE_OK);
    assert_int_equal(count_of(html, "<tr><td class=\"n\">"), AE_REPORT_MAX_ROWS);
    char note[96];
    snprintf(note, sizeof note, "Showing the first %d of %zu flagged", AE_REPORT_MAX_ROWS, m.flagged);
    assert_non_null(strstr(html, note));
    assert_non_null(strstr(html, "<title>aedet report</title>"));
    /* The longest polyline: the subsampled ROC or PR curve. */
    size_t most = 0;
    for (const char *p = strstr(html, "points=\""); p; p = strstr(p + 1, "points=\"")) {
        const char *e = strchr(p + 8, '"');
        size_t pts = 0;
        for (const char *q = p + 8; q < e; q++)
            pts += *q == ',';
        most = pts > most ? pts : most;
    }
    assert_int_equal(most, AE_REPORT_MAX_CURVE_POINTS);
    assert_non_null(strstr(html, "drawn through an even subsample"));
    free(html);
    free(scores);
    free(labels);
}

static void test_report_refuses_bad_input(void **state)
{
    (void)state;
    fixture f;
    make_fixture(&f);
    ae_error err = {0};
    char *html;
    size_t len;
    f.report.count = 0;
    assert_int_equal(ae_report_html(&f.report, &html, &len, &err), AE_ERR_USAGE);
    f.report.count = 100; /* the metrics describe 220 scores */
    assert_int_equal(ae_report_html(&f.report, &html, &len, &err), AE_ERR_USAGE);
    assert_non_null(strstr(err.message, "220"));
    f.report.count = 220;
    assert_int_equal(ae_report_write(test_path("no/such/folder/r.html"), &f.report, &err), AE_ERR_IO);
    assert_non_null(strstr(err.message, "report"));
    free_fixture(&f);
}

/* Per-class rows carry the class names when given (escaped; a missing name
 * falls back to the number), and a pixel AUROC makes a headline tile. */
static void test_report_class_names_and_pixel_auc(void **state)
{
    (void)state;
    fixture f;
    make_fixture(&f);
    f.metrics.num_class_auc = 2;
    f.metrics.class_auc[0] = (ae_class_auc){.class_id = 1, .count = 12, .auc = 0.75};
    f.metrics.class_auc[1] = (ae_class_auc){.class_id = 3, .count = 8, .auc = 0.5};
    f.metrics.pixel_auc = 0.87654;
    const char *names[4] = {"good", "crack<&>", "cut", NULL};
    f.report.class_names = names;
    f.report.num_class_names = 4;
    ae_error err = {0};
    char *html;
    size_t len;
    assert_int_equal(ae_report_html(&f.report, &html, &len, &err), AE_OK);
    assert_non_null(strstr(html, "ROC AUC, <span class=\"class-name\">crack&lt;&amp;&gt;</span> (class 1) vs "
                                 "normal (12 images)"));
    assert_non_null(strstr(html, "ROC AUC, class 3 vs normal (8 images)"));
    assert_non_null(strstr(html, "id=\"class-auc-1\" data-value=\"0.75\""));
    char text[64];
    assert_true(element_text(html, "stat-pixel-roc-auc", text, sizeof text));
    assert_string_equal(text, "0.8765");
    assert_true(element_text(html, "pixel-roc-auc", text, sizeof text));
    assert_string_equal(text, "0.8765");
    free(html);

    f.report.class_names = NULL; /* numbers only */
    assert_int_equal(ae_report_html(&f.report, &html, &len, &err), AE_OK);
    assert_non_null(strstr(html, "ROC AUC, class 1 vs normal (12 images)"));
    assert_null(strstr(html, "class-name"));
    free(html);
    free_fixture(&f);
}

/* PNG bytes of noise (they do not compress): about the size of a photo's. */
static void noise_png(ae_rng *rng, int h, int w, uint8_t **png, size_t *len)
{
    uint8_t *px = malloc((size_t)h * (size_t)w * 3);
    assert_non_null(px);
    for (size_t p = 0; p < (size_t)h * (size_t)w * 3; p++)
        px[p] = (uint8_t)ae_rng_below(rng, 256);
    ae_error err = {0};
    assert_int_equal(ae_png_encode(px, h, w, 3, png, len, &err), AE_OK);
    free(px);
}

/* The gallery stops at the image budget: the page grows by at most the
 * budget, each set keeps its first images, and a note counts the rest. */
static void test_report_gallery_budget(void **state)
{
    (void)state;
    enum { PER_SET = 40 };
    fixture f;
    make_fixture(&f);
    ae_rng rng;
    ae_rng_seed(&rng, 3);
    static ae_report_image entries[2 * PER_SET];
    static char names[2 * PER_SET][32];
    uint8_t *pngs[2 * PER_SET];
    size_t lens[2 * PER_SET];
    for (int i = 0; i < 2 * PER_SET; i++) {
        noise_png(&rng, 48, 80, &pngs[i], &lens[i]);
        snprintf(names[i], sizeof names[i], "%s_%02d.png", i < PER_SET ? "odd" : "typical", i % PER_SET);
        entries[i] = (ae_report_image){.name = names[i], .score = 0.5f, .input_png = pngs[i], .input_len = lens[i],
                                       .recon_png = pngs[i], .recon_len = lens[i], .heat_png = pngs[i],
                                       .heat_len = lens[i], .mask = f.mask, .mask_height = 6, .mask_width = 10};
    }
    f.report.anomalous = entries;
    f.report.num_anomalous = PER_SET;
    f.report.typical = entries + PER_SET;
    f.report.num_typical = PER_SET;
    ae_error err = {0};
    char *html, *bare;
    size_t len, bare_len;
    ae_report none = f.report;
    none.num_anomalous = none.num_typical = 0;
    assert_int_equal(ae_report_html(&none, &bare, &bare_len, &err), AE_OK);

    const size_t budgets[2] = {0, 300000};
    for (int b = 0; b < 2; b++) {
        f.report.image_budget = budgets[b];
        size_t budget = budgets[b] ? budgets[b] : AE_REPORT_IMAGE_BUDGET;
        assert_int_equal(ae_report_html(&f.report, &html, &len, &err), AE_OK);
        size_t shown = count_of(html, "<figure class=\"sample\">");
        print_message("budget %zu: %zu of %d gallery images, page %zu bytes (%zu without a gallery)\n", budget,
                      shown, 2 * PER_SET, len, bare_len);
        assert_true(shown > 0 && shown < 2 * PER_SET);
        assert_true(len - bare_len <= budget);
        const char *note = strstr(html, "id=\"gallery-left-out\" data-value=\"");
        assert_non_null(note);
        assert_int_equal(strtoul(note + strlen("id=\"gallery-left-out\" data-value=\""), NULL, 10),
                         2 * PER_SET - shown);
        /* In turns: the sets differ by at most one, and each is a prefix. */
        size_t odd = count_of(html, "<div class=\"path\">odd_"), typ = count_of(html, "<div class=\"path\">typical_");
        assert_int_equal(odd + typ, shown);
        assert_true(odd == typ || odd == typ + 1);
        char last[64];
        snprintf(last, sizeof last, "<div class=\"path\">odd_%02zu.png", odd - 1);
        assert_non_null(strstr(html, last));
        free(html);
    }
    f.report.image_budget = (size_t)1 << 40; /* room for all: no note */
    assert_int_equal(ae_report_html(&f.report, &html, &len, &err), AE_OK);
    assert_int_equal(count_of(html, "<figure class=\"sample\">"), 2 * PER_SET);
    assert_null(strstr(html, "gallery-left-out"));
    free(html);
    free(bare);
    for (int i = 0; i < 2 * PER_SET; i++)
        free(pngs[i]);
    free_fixture(&f);
}

typedef struct {
    double x, y, w, h;
} rect;

/* The next <rect ...> at or after p with numeric x, y, width, height. */
static const char *next_rect(const char *p, const char *end, rect *r)
{
    for (p = strstr(p, "<rect "); p && p < end; p = strstr(p + 1, "<rect ")) {
        const char *x = strstr(p, " x=\""), *y = strstr(p, " y=\""), *w = strstr(p, " width=\""),
                   *h = strstr(p, " height=\""), *close = strchr(p, '>');
        if (!x || !y || !w || !h || x > close || y > close || w > close || h > close)
            continue;
        r->x = strtod(x + 4, NULL), r->y = strtod(y + 4, NULL);
        r->w = strtod(w + 8, NULL), r->h = strtod(h + 9, NULL);
        return close;
    }
    return NULL;
}

static int rects_overlap(rect a, rect b)
{
    return fmin(a.x + a.w, b.x + b.w) - fmax(a.x, b.x) > 0.01 && fmin(a.y + a.h, b.y + b.h) - fmax(a.y, b.y) > 0.01;
}

/* Whatever the bars' shape and wherever the threshold, the histogram's
 * legend sits inside the plot on no bar (the y axis grows to make room). */
static void test_histogram_legend_clear_of_bars(void **state)
{
    (void)state;
    enum { BINS = 40 };
    ae_rng rng;
    ae_rng_seed(&rng, 11);
    double counts[2][BINS];
    size_t raised = 0;
    for (int trial = 0; trial < 400; trial++) {
        int shape = trial % 5, nh = 1 + trial % 2;
        for (int k = 0; k < nh; k++)
            for (int i = 0; i < BINS; i++) {
                double v = 100 * ae_rng_uniform(&rng);
                if (shape == 1) /* everything in the first bin */
                    v = i == 0 ? 100 : 0;
                else if (shape == 2) /* in the last */
                    v = i == BINS - 1 ? 100 : 0;
                else if (shape == 3) /* both ends tall */
                    v = i < 3 || i >= BINS - 3 ? 100 : v * 0.1;
                else if (shape == 4) /* flat: every bin at the top */
                    v = 50;
                counts[k][i] = v;
            }
        ae_plot_hist h[2] = {{counts[0], "normal (n = 1000)", "#2563eb"}, {counts[1], "anomaly (n = 10)", "#dc2626"}};
        double vline = trial % 7 == 0 ? NAN : ae_rng_uniform(&rng) * 4;
        ae_plot_axes a = {"h", "t", "x", "y", 1040, 380, NAN, NAN, NAN, NAN, 0, AE_LEGEND_TOP_RIGHT};
        ae_text t = {0};
        ae_svg_histogram(&t, &a, 0, 0.1, BINS, h, nh, vline, "0.95 quantile = 1.23457, >= flagged");
        assert_false(t.failed);
        const char *end = t.s + t.len;
        rect frame, legend, bar;
        const char *p = strstr(t.s, "<rect class=\"frame\"");
        assert_non_null(p);
        assert_non_null(next_rect(p, end, &frame));
        p = strstr(t.s, "<g class=\"legend\">");
        assert_non_null(p);
        assert_non_null(next_rect(p, end, &legend));
        assert_true(legend.x >= frame.x && legend.x + legend.w <= frame.x + frame.w);
        assert_true(legend.y >= frame.y && legend.y + legend.h <= frame.y + frame.h);
        size_t bars = 0;
        double highest = INFINITY;
        for (const char *g = strstr(t.s, "<g class=\"bars\""); g; g = strstr(g + 1, "<g class=\"bars\"")) {
            const char *g_end = strstr(g, "</g>");
            for (const char *q = next_rect(g, g_end, &bar); q; q = next_rect(q, g_end, &bar)) {
                bars++;
                highest = fmin(highest, bar.y);
                if (rects_overlap(bar, legend))
                    fail_msg("trial %d (shape %d): the legend (%.1f, %.1f, %.1f x %.1f) covers a bar (%.1f, %.1f, "
                             "%.1f x %.1f)", trial, shape, legend.x, legend.y, legend.w, legend.h, bar.x, bar.y,
                             bar.w, bar.h);
            }
        }
        assert_true(bars > 0);
        raised += highest > legend.y + legend.h; /* the tallest bar under the legend */
        free(t.s);
    }
    /* Flat histograms leave no free corner: the axis grew above every bar. */
    assert_true(raised >= 80);
}

/* Ticks at 1-2-5 steps that cover the range, labelled without float noise. */
static void test_nice_ticks(void **state)
{
    (void)state;
    double ticks[64], step;
    double lo = 0.0013, hi = 0.0171;
    int n = ae_nice_ticks(&lo, &hi, 5, 0, ticks, 64, &step);
    assert_int_equal(n, 5);
    assert_true(fabs(step - 0.005) < 1e-15);
    assert_true(lo == 0 && fabs(hi - 0.02) < 1e-15);
    ae_rng rng;
    ae_rng_seed(&rng, 9);
    for (int trial = 0; trial < 500; trial++) {
        double a = (ae_rng_uniform(&rng) - 0.5) * pow(10, (double)ae_rng_below(&rng, 12) - 6);
        double b = a + ae_rng_uniform(&rng) * pow(10, (double)ae_rng_below(&rng, 12) - 6);
        lo = a, hi = b;
        n = ae_nice_ticks(&lo, &hi, 6, 0, ticks, 64, &step);
        assert_true(n >= 3 && n <= 14);
        assert_true(lo <= a + step * 1e-6 && hi >= b - step * 1e-6);
        double mant = step / pow(10, floor(log10(step) + 1e-9));
        assert_true(fabs(mant - 1) < 1e-9 || fabs(mant - 2) < 1e-9 || fabs(mant - 5) < 1e-9);
        for (int i = 1; i < n; i++)
            assert_true(fabs(ticks[i] - ticks[i - 1] - step) <= step * 1e-6 + fabs(ticks[i]) * 1e-12);
    }
    lo = hi = 3; /* one value: a range around it */
    n = ae_nice_ticks(&lo, &hi, 5, 0, ticks, 64, &step);
    assert_true(lo < 3 && hi > 3 && n >= 3);
    lo = 1, hi = 3; /* epochs: whole numbers only */
    ae_nice_ticks(&lo, &hi, 8, 1, ticks, 64, &step);
    assert_true(step == 1);
    char buf[32];
    ae_tick_label(0.1 + 0.2, 0.1, buf, sizeof buf);
    assert_string_equal(buf, "0.3");
    ae_tick_label(0.0015, 0.0005, buf, sizeof buf);
    assert_string_equal(buf, "0.0015");
    ae_tick_label(40, 20, buf, sizeof buf);
    assert_string_equal(buf, "40");
    ae_tick_label(3e-8, 1e-8, buf, sizeof buf);
    assert_string_equal(buf, "3e-08");
}

static void test_text_escaping(void **state)
{
    (void)state;
    ae_text t = {0};
    ae_text_escaped(&t, "a<b>&\"'z");
    ae_text_printf(&t, "|%d|", 42);
    ae_text_escaped(&t, "");
    assert_false(t.failed);
    assert_string_equal(t.s, "a&lt;b&gt;&amp;&quot;&#39;z|42|");
    free(t.s);
}

/* The ramp runs dark to bright, monotonically in luma; the error map is the
 * channel mean of |x - recon|. */
static void test_colormap_and_error_map(void **state)
{
    (void)state;
    uint8_t c[3];
    ae_colormap_inferno(0, c);
    assert_true(c[0] < 10 && c[1] < 10 && c[2] < 10);
    ae_colormap_inferno(1, c);
    assert_true(c[0] > 240 && c[1] > 240 && c[2] > 150);
    ae_colormap_inferno(NAN, c);
    assert_true(c[0] < 10);
    double prev = -1;
    for (int i = 0; i <= 100; i++) {
        ae_colormap_inferno(i / 100.0, c);
        double luma = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
        assert_true(luma > prev);
        prev = luma;
    }
    float x[6] = {0, 0, 0, 1, 1, 1}, recon[6] = {0.3f, 0, 0, 1, 0.4f, 0.1f}, e[2];
    ae_error_map(x, recon, 1, 2, 3, e);
    assert_float_equal(e[0], 0.1f, 1e-6);
    assert_float_equal(e[1], 0.5f, 1e-6);
    uint8_t rgb[6], lo[3], hi[3];
    ae_heatmap_rgb(e, 2, 0.5, rgb);
    ae_colormap_inferno(0.2, lo);
    ae_colormap_inferno(1, hi);
    assert_memory_equal(rgb + 3, hi, 3);
    for (int k = 0; k < 3; k++)
        assert_true(abs(rgb[k] - lo[k]) <= 2);
}

/* ---- The tool's report of 600 images ------------------------------------------- */

/* Where test_report_600_images leaves its page for the layout test. */
static char cli_report[512];

enum { E2E_H = 72, E2E_W = 120, E2E_TRAIN = 40, E2E_TEST = 600 };

/* A smooth gradient with a little noise (so the PNGs do not shrink to
 * nothing, as photos do not); defect 1 adds a disc (stain), 2 a bar
 * (scratch) of saturated noise, marked in mask. */
static void e2e_image(ae_rng *rng, uint8_t *rgb, uint8_t *mask, int defect)
{
    int cy = 16 + (int)ae_rng_below(rng, E2E_H - 32), cx = 20 + (int)ae_rng_below(rng, E2E_W - 40);
    double phase = ae_rng_uniform(rng) * 6.28;
    for (int y = 0; y < E2E_H; y++)
        for (int x = 0; x < E2E_W; x++) {
            double v = 0.5 + 0.15 * sin(phase + 0.05 * x + 0.03 * y) + 0.07 * (ae_rng_uniform(rng) - 0.5);
            int in = defect == 1 ? (y - cy) * (y - cy) + (x - cx) * (x - cx) < 14 * 14
                   : defect == 2 ? abs(y - cy) < 4 && abs(x - cx) < 30 : 0;
            if (mask)
                mask[y * E2E_W + x] = in ? 255 : 0;
            for (int c = 0; c < 3; c++) {
                double u = in ? (double)ae_rng_below(rng, 2) : v * (1 - 0.1 * c);
                rgb[(y * E2E_W + x) * 3 + c] = (uint8_t)(fmin(fmax(u, 0), 1) * 255);
            }
        }
}

/* An MVTec AD tree: train/good, then test/{good,stain,scratch} with masks. */
static void write_e2e_tree(const char *root)
{
    const char *dirs[] = {"", "/train", "/train/good", "/test", "/test/good", "/test/stain", "/test/scratch",
                          "/ground_truth", "/ground_truth/stain", "/ground_truth/scratch"};
    char path[600];
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s%s", root, dirs[i]);
        assert_int_equal(mkdir(path, 0777), 0);
    }
    static uint8_t rgb[E2E_H * E2E_W * 3], mask[E2E_H * E2E_W];
    ae_rng rng;
    ae_rng_seed(&rng, 20);
    for (int k = 0; k < E2E_TRAIN; k++) {
        e2e_image(&rng, rgb, NULL, 0);
        snprintf(path, sizeof path, "%s/train/good/%03d.png", root, k);
        test_write_png(path, rgb, E2E_H, E2E_W, 2, 8);
    }
    for (int k = 0; k < E2E_TEST; k++) {
        int defect = k < E2E_TEST * 8 / 10 ? 0 : 1 + k % 2;
        const char *cls = defect == 0 ? "good" : defect == 1 ? "stain" : "scratch";
        e2e_image(&rng, rgb, mask, defect);
        snprintf(path, sizeof path, "%s/test/%s/%03d.png", root, cls, k);
        test_write_png(path, rgb, E2E_H, E2E_W, 2, 8);
        if (defect) {
            snprintf(path, sizeof path, "%s/ground_truth/%s/%03d_mask.png", root, cls, k);
            test_write_png(path, mask, E2E_H, E2E_W, 0, 8);
        }
    }
}

/* Width and height of the first gallery PNG, from its IHDR in base64. */
static void first_thumb_size(const char *html, int *w, int *h)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = strstr(html, "src=\"data:image/png;base64,");
    assert_non_null(p);
    p += strlen("src=\"data:image/png;base64,");
    uint8_t bytes[24];
    for (int i = 0; i < 8; i++) { /* 32 characters: 24 bytes */
        uint32_t v = 0;
        for (int k = 0; k < 4; k++) {
            const char *d = strchr(digits, p[4 * i + k]);
            assert_true(d && *d);
            v = v << 6 | (uint32_t)(d - digits);
        }
        bytes[3 * i] = (uint8_t)(v >> 16), bytes[3 * i + 1] = (uint8_t)(v >> 8), bytes[3 * i + 2] = (uint8_t)v;
    }
    assert_memory_equal(bytes + 12, "IHDR", 4);
    *w = bytes[16] << 24 | bytes[17] << 16 | bytes[18] << 8 | bytes[19];
    *h = bytes[20] << 24 | bytes[21] << 16 | bytes[22] << 8 | bytes[23];
}

/* The checks that hold for the tool's page of the e2e tree: class names in
 * the per-class rows, the pixel AUROC in the headline, mask outlines, and
 * thumbnails of at most 96 px shown at the images' aspect. */
static void check_tool_page(const char *html, size_t per_class)
{
    char row[160];
    /* MVTec classes: good = 0, then the defect folders sorted. */
    snprintf(row, sizeof row, "<span class=\"class-name\">scratch</span> (class 1) vs normal (%zu images)", per_class);
    assert_non_null(strstr(html, row));
    snprintf(row, sizeof row, "<span class=\"class-name\">stain</span> (class 2) vs normal (%zu images)", per_class);
    assert_non_null(strstr(html, row));
    char text[64];
    assert_true(element_text(html, "stat-pixel-roc-auc", text, sizeof text));
    double pixel_auc = strtod(text, NULL);
    assert_true(pixel_auc > 0 && pixel_auc <= 1);
    /* The noisy defects score highest even after one epoch: outlined. */
    assert_true(count_of(html, "<svg class=\"mask\"") >= 3);
    assert_non_null(strstr(html, "data-aspect=\"1.66667\""));
    int w, h;
    first_thumb_size(html, &w, &h);
    assert_int_equal(w, 96);
    assert_int_equal(h, 55); /* 64 x 96 / 112, rounded */
}

/* `aedet report` on 600 images with masks and the largest gallery asked for
 * (64 + 64) stays under 2 MB, with a note of what was left out. The 600 run
 * with the release build when there is one (the sanitized one takes ten
 * times as long); the sanitized tool makes the page of a fifth of them. */
static void test_report_600_images(void **state)
{
    (void)state;
    char root[512], model[512], small[512];
    snprintf(root, sizeof root, "%s", test_path("cli600"));
    snprintf(model, sizeof model, "%s", test_path("cli600.aedet"));
    snprintf(small, sizeof small, "%s", test_path("cli120.html"));
    snprintf(cli_report, sizeof cli_report, "%s", test_path("cli600/report.html"));
    write_e2e_tree(root);
    /* 64 x 112: larger than a thumbnail, so the gallery shrinks it. */
    assert_int_equal(test_run("train %s --size 64x112 --filters 4,8 --latent 4 --epochs 1 --batch 8 --threads 1 "
                              "--quiet -o %s", root, model), 0);
    assert_int_equal(test_run("report %s %s --mvtec-split test --include '*[05].png' --gallery 8 --batch 32 --quiet "
                              "-o %s", model, root, small), 0);
    size_t len;
    char *html = read_text(small, &len);
    check_tool_page(html, 12);
    free(html);

    const char *release = getenv("AEDET_RELEASE");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s report %s %s --mvtec-split test --gallery 64 --batch 32 --quiet -o %s > %s 2>&1",
             release ? release : test_aedet(), model, root, cli_report, test_path("cli600.log"));
    int status = system(cmd);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char *log = read_text(test_path("cli600.log"), &len);
        fail_msg("%s\nexited %d:\n%s", cmd, status, log);
    }
    html = read_text(cli_report, &len);
    size_t shown = count_of(html, "<figure class=\"sample\">");
    print_message("600 images, gallery 64 + 64 asked: %zu bytes, %zu gallery images shown\n", len, shown);
    assert_true(len < 2000000);
    const char *note = strstr(html, "id=\"gallery-left-out\" data-value=\"");
    assert_non_null(note);
    assert_true(shown >= 8);
    assert_int_equal(strtoul(note + strlen("id=\"gallery-left-out\" data-value=\""), NULL, 10), 128 - shown);
    check_tool_page(html, 60);
    free(html);
}

/* ---- In a browser ---------------------------------------------------------------- */

#define CHROMIUM "/usr/bin/chromium"

static void skip_without_chromium(void)
{
    if (access(CHROMIUM, X_OK) != 0) {
        print_message("SKIPPED: chromium is not installed (" CHROMIUM "; Debian package chromium, in the "
                      "Makefile's DEB_TEST): the report is not checked in a browser\n");
        skip();
    }
}

/* Runs headless Chromium on url with extra flags; a fresh profile each time. */
static int run_chromium(const char *url, const char *extra, const char *redirect)
{
    static int runs;
    char profile[64], cmd[4096];
    snprintf(profile, sizeof profile, "profile%d", runs++);
    snprintf(cmd, sizeof cmd,
             "timeout 60 " CHROMIUM " --headless --no-sandbox --disable-gpu --disable-quic "
             "--no-first-run --disable-background-networking --disable-component-update "
             "--disable-sync --hide-scrollbars --user-data-dir='%s' %s '%s' %s",
             test_path(profile), extra, url, redirect);
    return system(cmd);
}

/* A copy of html with insert put right after the first occurrence of after. */
static char *insert_after(const char *html, const char *after, const char *insert)
{
    const char *at = strstr(html, after);
    assert_non_null(at);
    at += strlen(after);
    size_t head = (size_t)(at - html);
    char *out = malloc(strlen(html) + strlen(insert) + 1);
    assert_non_null(out);
    memcpy(out, html, head);
    strcpy(out + head, insert);
    strcat(out, at);
    return out;
}

/* A report with what overflowed before: a long threshold, seven headline
 * tiles, long unbreakable names, tall bars in both top corners, and gallery
 * images wide, tall and square, with masks. */
typedef struct {
    fixture base;
    float scores[300];
    int labels[300];
    ae_report_image gallery[3];
    uint8_t mask[20 * 8];
} stress_fixture;

static const char *long_name_of(const void *ctx, size_t i, char *buf, size_t size)
{
    (void)ctx;
    snprintf(buf, size, "images/%s_%04zu.png",
             i % 7 ? "short" : "a_file_name_far_longer_than_the_image_column_of_the_flagged_table_and_unbroken", i);
    return buf;
}

static void make_stress(stress_fixture *s)
{
    make_fixture(&s->base);
    for (int i = 0; i < 300; i++) {
        /* 85% of the normal scores in the first bin, 85% of the anomalies in
         * the last: tall bars in both top corners (85% x 1.15 is just under
         * a round 100, so the axis alone leaves no room above them). */
        s->labels[i] = i >= 200;
        int k = s->labels[i] ? i - 200 : i, n = s->labels[i] ? 100 : 200;
        if (k < n * 85 / 100)
            s->scores[i] = s->labels[i] ? 9.87654e-5f : 1.23456e-6f;
        else
            s->scores[i] = s->labels[i] ? 6e-5f + 1.5e-6f * (float)(k % 15) : 1e-5f + 1e-6f * (float)(k % 30);
    }
    ae_error err = {0};
    ae_threshold t;
    assert_int_equal(ae_threshold_fixed(4.56789012e-5, "fixed for the test", &t, &err), AE_OK);
    ae_metrics_summary *m = &s->base.metrics;
    assert_int_equal(ae_metrics_summarize(s->scores, s->labels, 300, &t, m, &err), AE_OK);
    m->pixel_auc = 0.91234;
    m->num_class_auc = 2;
    m->class_auc[0] = (ae_class_auc){.class_id = 1, .count = 25, .auc = 0.99};
    m->class_auc[1] = (ae_class_auc){.class_id = 2, .count = 25, .auc = 0.98};
    static const char *const names[3] = {
        "good", "scratch_on_the_outer_surface_of_the_part_near_the_rim_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "stain"};
    for (int p = 0; p < 20 * 8; p++)
        s->mask[p] = (p / 8 - 10) * (p / 8 - 10) + (p % 8 - 4) * (p % 8 - 4) < 9;
    static const char *long_name =
        "images/an_unbreakable_file_name_that_is_much_longer_than_any_panel_or_table_column_could_hold_"
        "0123456789012345678901234567890123456789.png";
    fixture *f = &s->base;
    for (int g = 0; g < 3; g++)
        s->gallery[g] = (ae_report_image){.name = g ? f->gallery[1].name : long_name, .label = names[1],
                                          .is_anomaly = 1, .score = 9.87654e-5f, .input_png = f->png[0],
                                          .input_len = f->png_len[0], .recon_png = f->png[1],
                                          .recon_len = f->png_len[1], .heat_png = f->png[2],
                                          .heat_len = f->png_len[2], .aspect = g == 0 ? 3.2 : g == 1 ? 0.4 : 0,
                                          .mask = g == 2 ? NULL : s->mask, .mask_height = 20, .mask_width = 8};
    f->report.scores = s->scores;
    f->report.labels = s->labels;
    f->report.count = 300;
    f->report.anomalous = s->gallery;
    f->report.num_anomalous = 3;
    f->report.class_names = names;
    f->report.num_class_names = 3;
    f->report.item_name = long_name_of;
    f->report.title = "A_title_without_spaces_that_is_far_too_long_to_fit_on_one_line_of_a_1280_px_window_"
                      "0123456789012345678901234567890123456789";
}

typedef struct {
    int ok;
    long elements, texts, bars, panels, masks;
    char fails[4096];
} page_result;

/* Lays every page out at 1280 px in one Chromium run through
 * tests/report_browser.html, and reads back what it measured. */
static void check_layout(const char *const *pages, int n, page_result *out)
{
    size_t len;
    char *wrapper = read_text("tests/report_browser.html", &len); /* tests run from the repository root */
    char wrapper_path[512], url[2048], dom[512], redirect[1100];
    snprintf(wrapper_path, sizeof wrapper_path, "%s", test_path("report_browser.html"));
    test_write_file(wrapper_path, wrapper, len);
    free(wrapper);
    int used = snprintf(url, sizeof url, "file://%s", wrapper_path);
    for (int i = 0; i < n; i++)
        used += snprintf(url + used, sizeof url - (size_t)used, "%cpage=%s", i ? '&' : '?', pages[i]);
    snprintf(dom, sizeof dom, "%s", test_path("layout.html"));
    snprintf(redirect, sizeof redirect, "> '%s' 2> /dev/null", dom);
    assert_int_equal(run_chromium(url, "--allow-file-access-from-files --window-size=1280,900 --dump-dom",
                                  redirect), 0);
    char *html = read_text(dom, &len);
    const char *result = strstr(html, "<pre id=\"result\">");
    assert_non_null(result);
    for (int i = 0; i < n; i++) {
        page_result *r = &out[i];
        memset(r, 0, sizeof *r);
        char key[32];
        snprintf(key, sizeof key, "PAGE %d ok=", i);
        const char *p = strstr(result, key);
        if (!p)
            fail_msg("no result for page %d (%s):\n%.2000s", i, pages[i], result);
        assert_int_equal(sscanf(p + strlen(key), "%d elements=%ld texts=%ld bars=%ld panels=%ld masks=%ld", &r->ok,
                                &r->elements, &r->texts, &r->bars, &r->panels, &r->masks), 6);
        snprintf(key, sizeof key, "FAIL %d: ", i);
        size_t used_fails = 0;
        for (const char *q = strstr(result, key); q && used_fails + 2 < sizeof r->fails; q = strstr(q + 1, key)) {
            const char *eol = strpbrk(q, "\n<");
            size_t l = eol ? (size_t)(eol - q) : strlen(q);
            l = l < sizeof r->fails - used_fails - 2 ? l : sizeof r->fails - used_fails - 2;
            memcpy(r->fails + used_fails, q, l);
            used_fails += l;
            r->fails[used_fails++] = '\n';
        }
        r->fails[used_fails] = '\0';
    }
    free(html);
}

/* At 1280 px nothing reaches past the window or out of its tile, card,
 * figure or plot, the histogram's legend and threshold label cover no bar,
 * and the gallery's panels are at their images' aspect with the masks'
 * outlines over them: on the fixture, on a page built to overflow, and on
 * the tool's 600-image page. Two spoiled copies show the check can fail. */
static void test_report_layout_at_1280(void **state)
{
    (void)state;
    skip_without_chromium();
    if (!cli_report[0] || access(cli_report, R_OK) != 0)
        fail_msg("the 600-image report of test_report_600_images is missing (%s)", cli_report);
    fixture f;
    make_fixture(&f);
    static stress_fixture s;
    make_stress(&s);
    ae_error err = {0};
    assert_int_equal(ae_report_write(test_path("layout_fixture.html"), &f.report, &err), AE_OK);
    assert_int_equal(ae_report_write(test_path("layout_stress.html"), &s.base.report, &err), AE_OK);

    /* Spoiled: a word too long for its tile, and a bar under the legend. */
    size_t len;
    char *page = read_text(test_path("layout_fixture.html"), &len);
    char *wide = insert_after(page, "<div class=\"stat\">",
                              "<div style=\"white-space:nowrap\">WWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWW</div>");
    test_write_file(test_path("layout_wide.html"), wide, strlen(wide));
    const char *hist = strstr(page, "id=\"score-histogram\"");
    assert_non_null(hist);
    rect legend;
    assert_non_null(next_rect(strstr(hist, "<g class=\"legend\">"), page + len, &legend));
    char bar[160];
    snprintf(bar, sizeof bar, "<rect x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"%.1f\"/>", legend.x + 10,
             legend.y + 10, legend.h);
    char *covered = insert_after(hist, "stroke-width=\"0.8\">", bar); /* into the first bars group */
    char *spoiled = malloc(len + strlen(bar) + 1);
    assert_non_null(spoiled);
    memcpy(spoiled, page, (size_t)(hist - page));
    strcpy(spoiled + (hist - page), covered);
    test_write_file(test_path("layout_covered.html"), spoiled, strlen(spoiled));

    const char *pages[5] = {"layout_fixture.html", "layout_stress.html", "cli600/report.html", "layout_wide.html",
                            "layout_covered.html"};
    page_result r[5];
    check_layout(pages, 5, r);
    for (int i = 0; i < 5; i++)
        print_message("%s: %s, %ld elements, %ld runs of text, %ld bars, %ld panels, %ld mask outlines\n",
                      pages[i], r[i].ok ? "fits" : "does not fit", r[i].elements, r[i].texts, r[i].bars,
                      r[i].panels, r[i].masks);
    for (int i = 0; i < 3; i++) {
        if (!r[i].ok)
            fail_msg("%s at 1280 px:\n%s", pages[i], r[i].fails);
        assert_true(r[i].elements > 100 && r[i].texts > 50 && r[i].bars > 0 && r[i].panels > 0);
    }
    assert_int_equal(r[0].panels, 6);
    assert_int_equal(r[0].masks, 3);
    assert_int_equal(r[1].panels, 12);
    assert_int_equal(r[1].masks, 6);
    assert_true(r[2].masks >= 3);
    if (r[3].ok || !strstr(r[3].fails, "sticks out of div.stat"))
        fail_msg("the spoiled tile was not caught:\n%s", r[3].fails);
    if (r[4].ok || !strstr(r[4].fails, "the histogram legend"))
        fail_msg("the bar under the legend was not caught:\n%s", r[4].fails);
    free(spoiled);
    free(covered);
    free(wide);
    free(page);
    free_fixture(&s.base);
    free_fixture(&f);
}

static void test_report_in_browser(void **state)
{
    (void)state;
    skip_without_chromium();
    fixture f;
    make_fixture(&f);
    ae_error err = {0};
    char page[512], url[600], shot[512], dom[512], log[512], flags[700], redirect[1100];
    snprintf(page, sizeof page, "%s", test_path("browser.html"));
    snprintf(url, sizeof url, "file://%s", page);
    snprintf(shot, sizeof shot, "%s", test_path("report.png"));
    snprintf(dom, sizeof dom, "%s", test_path("dom.html"));
    snprintf(log, sizeof log, "%s", test_path("chromium.log"));
    assert_int_equal(ae_report_write(page, &f.report, &err), AE_OK);

    /* A screenshot of the window's size that is not one flat colour. */
    snprintf(flags, sizeof flags, "--window-size=1280,2000 --screenshot='%s'", shot);
    assert_int_equal(run_chromium(url, flags, "> /dev/null 2>&1"), 0);
    ae_image img = {0};
    assert_int_equal(ae_image_load(shot, &img, &err), AE_OK);
    assert_int_equal(img.width, 1280);
    assert_int_equal(img.height, 2000);
    size_t differ = 0, pixels = (size_t)img.width * (size_t)img.height;
    for (size_t p = 1; p < pixels; p++)
        differ += memcmp(img.pixels + p * (size_t)img.channels, img.pixels, (size_t)img.channels) != 0;
    assert_true(differ > pixels / 10);
    ae_image_free(&img);

    /* The DOM after loading, and the console: no errors, no blocked fetches. */
    const char *dump = "--window-size=1280,2000 --dump-dom --enable-logging=stderr --v=0";
    snprintf(redirect, sizeof redirect, "> '%s' 2> '%s'", dom, log);
    assert_int_equal(run_chromium(url, dump, redirect), 0);
    size_t len;
    char *console = read_text(log, &len);
    if (strstr(console, "Uncaught") || strstr(console, "ERROR:CONSOLE") ||
        strstr(console, "Content Security Policy"))
        fail_msg("console errors:\n%s", console);
    char *html = read_text(dom, &len);
    assert_non_null(strstr(html, "id=\"score-histogram\""));
    char *json;
    size_t json_len;
    assert_int_equal(ae_metrics_json(&f.metrics, &json, &json_len, &err), AE_OK);
    check_visible_numbers(html, json);
    free(json);
    free(html);
    free(console);

    /* The console check can fail: an external image in the page is blocked
     * by its Content-Security-Policy, and the browser says so. */
    char *page_html = read_text(page, &len);
    char *bad = insert_after(page_html, "<main>", "<img src=\"http://192.0.2.1/x.png\">");
    snprintf(page, sizeof page, "%s", test_path("external.html"));
    snprintf(url, sizeof url, "file://%s", page);
    test_write_file(page, bad, strlen(bad));
    assert_int_equal(run_chromium(url, dump, redirect), 0);
    console = read_text(log, &len);
    assert_non_null(strstr(console, "Content Security Policy"));
    free(console);
    free(bad);
    free(page_html);
    free_fixture(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_escaping),
        cmocka_unit_test(test_nice_ticks),
        cmocka_unit_test(test_colormap_and_error_map),
        cmocka_unit_test(test_report_page_content),
        cmocka_unit_test(test_report_without_labels),
        cmocka_unit_test(test_report_flagged_rank_order),
        cmocka_unit_test(test_report_stays_bounded),
        cmocka_unit_test(test_report_refuses_bad_input),
        cmocka_unit_test(test_report_class_names_and_pixel_auc),
        cmocka_unit_test(test_report_gallery_budget),
        cmocka_unit_test(test_histogram_legend_clear_of_bars),
        cmocka_unit_test(test_report_600_images),
        cmocka_unit_test(test_report_layout_at_1280),
        cmocka_unit_test(test_report_in_browser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
