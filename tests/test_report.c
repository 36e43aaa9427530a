/* The HTML report: the page's content on synthetic data, its bounds on large
 * sets, the plot helpers, and (when Chromium is installed) the page as a
 * browser renders it: a screenshot, console errors and the visible numbers. */
#include "support.h"

#include "aedet/eval.h"
#include "aedet/image.h"
#include "aedet/report.h"
#include "eval/svg_plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    f->gallery[0] = (ae_report_image){odd_name, "anomaly", 1, f->scores[0], f->png[0], f->png_len[0],
                                      f->png[1], f->png_len[1], f->png[2], f->png_len[2]};
    f->gallery[1] = (ae_report_image){"images/img_0100.png", "normal", 0, f->scores[100], f->png[3],
                                      f->png_len[3], f->png[4], f->png_len[4], f->png[5], f->png_len[5]};
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

    /* Loss, histogram, ROC, PR and the colour bar. */
    assert_int_equal(count_of(html, "<svg"), 5);
    assert_int_equal(count_of(html, "</svg>"), 5);
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
    assert_true(fabs(strtod(text, NULL) - f.threshold.value) <= 1e-5 * f.threshold.value);
    snprintf(label, sizeof label, "ROC (AUC = %.4f)", f.metrics.roc_auc);
    assert_non_null(strstr(html, label));
    snprintf(label, sizeof label, "PR (AP = %.4f)", f.metrics.average_precision);
    assert_non_null(strstr(html, label));
    check_visible_numbers(html, json);

    /* Gallery: three data-URI PNGs per image; the flagged table in score order. */
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

/* ---- In a browser ---------------------------------------------------------------- */

#define CHROMIUM "/usr/bin/chromium"

/* Runs headless Chromium on page with extra flags; a fresh profile each time. */
static int run_chromium(const char *page, const char *extra, const char *redirect)
{
    static int runs;
    char profile[64], cmd[2048];
    snprintf(profile, sizeof profile, "profile%d", runs++);
    snprintf(cmd, sizeof cmd,
             "timeout 60 " CHROMIUM " --headless --no-sandbox --disable-gpu --disable-quic "
             "--no-first-run --disable-background-networking --disable-component-update "
             "--disable-sync --hide-scrollbars --user-data-dir='%s' --window-size=1280,2000 %s "
             "'file://%s' %s",
             test_path(profile), extra, page, redirect);
    return system(cmd);
}

static void test_report_in_browser(void **state)
{
    (void)state;
    if (access(CHROMIUM, X_OK) != 0) {
        print_message("chromium is not installed (" CHROMIUM "): browser test skipped\n");
        skip();
    }
    fixture f;
    make_fixture(&f);
    ae_error err = {0};
    char page[512], shot[512], dom[512], log[512], flags[600], redirect[1100];
    snprintf(page, sizeof page, "%s", test_path("browser.html"));
    snprintf(shot, sizeof shot, "%s", test_path("report.png"));
    snprintf(dom, sizeof dom, "%s", test_path("dom.html"));
    snprintf(log, sizeof log, "%s", test_path("chromium.log"));
    assert_int_equal(ae_report_write(page, &f.report, &err), AE_OK);

    /* A screenshot of the window's size that is not one flat colour. */
    snprintf(flags, sizeof flags, "--screenshot='%s'", shot);
    assert_int_equal(run_chromium(page, flags, "> /dev/null 2>&1"), 0);
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
    snprintf(redirect, sizeof redirect, "> '%s' 2> '%s'", dom, log);
    assert_int_equal(run_chromium(page, "--dump-dom --enable-logging=stderr --v=0", redirect), 0);
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
    const char *footer = strstr(page_html, "<footer>");
    assert_non_null(footer);
    const char *bad_img = "<img src=\"http://192.0.2.1/x.png\">";
    size_t head = (size_t)(footer - page_html);
    char *bad = malloc(len + strlen(bad_img) + 1);
    assert_non_null(bad);
    memcpy(bad, page_html, head);
    strcpy(bad + head, bad_img);
    strcat(bad, footer);
    snprintf(page, sizeof page, "%s", test_path("external.html"));
    test_write_file(page, bad, strlen(bad));
    assert_int_equal(run_chromium(page, "--dump-dom --enable-logging=stderr --v=0", redirect), 0);
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
        cmocka_unit_test(test_report_in_browser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
