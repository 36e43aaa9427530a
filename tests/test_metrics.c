/* Evaluation metrics and threshold rules: hand-computed cases, the degenerate
 * cases users hit (all-normal labels first: LESSONS.md item 1), and every
 * case of the scikit-learn / numpy fixture (tools/sklearn_reference.py). */
#include "support.h"

#include "aedet/eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int close_rel(double a, double b, double rel)
{
    if (isinf(a) || isinf(b))
        return a == b;
    return fabs(a - b) <= rel * fmax(fabs(a), fabs(b)) + 1e-15;
}

#define assert_close(a, b)                                                                   \
    do {                                                                                     \
        double a_ = (a), b_ = (b);                                                           \
        if (!close_rel(a_, b_, 1e-9))                                                        \
            fail_msg("%s = %.17g, expected %.17g (line %d)", #a, a_, b_, __LINE__);          \
    } while (0)

/* ---- The all-normal case comes first (LESSONS.md item 1) --------------- */

static void test_all_normal_labels_auc_is_error_quantile_still_flags_five_percent(void **state)
{
    (void)state;
    enum { N = 200 };
    float scores[N];
    int labels[N];
    for (int i = 0; i < N; i++) {
        scores[i] = (float)((i * 37) % N + 1); /* 1..200, shuffled */
        labels[i] = 0;
    }
    ae_error err;
    double auc = -1, ap = -1, thr;
    ae_error_clear(&err);
    assert_int_equal(ae_roc_auc(scores, labels, N, &auc, &err), AE_ERR_USAGE);
    assert_non_null(strstr(err.message, "0 anomalies"));
    assert_true(auc == -1);
    assert_int_equal(ae_average_precision(scores, labels, N, &ap, &err), AE_ERR_USAGE);
    assert_int_equal(ae_best_f1_threshold(scores, labels, N, &thr, NULL, &err), AE_ERR_USAGE);
    ae_threshold t;
    assert_int_equal(ae_threshold_best_f1(scores, labels, N, "scored set", &t, &err),
                     AE_ERR_USAGE);

    /* The normal-data threshold works: h = 199 * 0.95 = 189.05 -> 190.05. */
    assert_int_equal(ae_threshold_quantile(scores, N, 0.95, "validation split", &t, &err), AE_OK);
    assert_close(t.value, 190.05);
    assert_int_equal(t.num_values, N);
    assert_string_equal(t.source, "validation split");
    assert_string_equal(t.name, "quantile");
    assert_int_equal(t.warnings, 0);

    ae_metrics_summary m;
    assert_int_equal(ae_metrics_summarize(scores, labels, N, &t, &m, &err), AE_OK);
    assert_int_equal(m.flagged, 10); /* 191..200: 5% */
    assert_int_equal(m.confusion.fp, 10);
    assert_int_equal(m.confusion.tp, 0);
    assert_int_equal(m.num_anomalies, 0);
    assert_true(isnan(m.roc_auc) && isnan(m.average_precision) && isnan(m.best_f1));
    assert_true(m.warnings & AE_WARN_ONE_CLASS);
    assert_false(m.warnings & (AE_WARN_ALL_FLAGGED | AE_WARN_NONE_FLAGGED));
    assert_close(m.precision, 0.0); /* 0 of 10 flagged are anomalies */
    assert_close(m.recall, 0.0);    /* 0/0 defined as 0 */
}

/* ---- Hand-computed values ---------------------------------------------- */

static void test_handmade_auc_ap_confusion_f1(void **state)
{
    (void)state;
    const float s[] = {0.1f, 0.4f, 0.35f, 0.8f};
    const int y[] = {0, 0, 1, 1};
    ae_error err;
    double auc, ap, thr, f1;
    assert_int_equal(ae_roc_auc(s, y, 4, &auc, &err), AE_OK);
    assert_close(auc, 0.75);
    assert_int_equal(ae_average_precision(s, y, 4, &ap, &err), AE_OK);
    assert_close(ap, 5.0 / 6.0);

    ae_confusion c;
    assert_int_equal(ae_confusion_at(s, y, 4, 0.35f, &c, &err), AE_OK); /* >=: 0.35 flagged */
    assert_int_equal(c.tp, 2);
    assert_int_equal(c.fp, 1);
    assert_int_equal(c.tn, 1);
    assert_int_equal(c.fn, 0);
    assert_close(ae_precision(&c), 2.0 / 3.0);
    assert_close(ae_recall(&c), 1.0);
    assert_close(ae_f1(&c), 0.8);
    assert_int_equal(ae_confusion_at(s, y, 4, nextafter((double)0.35f, 1), &c, &err), AE_OK);
    assert_int_equal(c.tp, 1); /* just above 0.35: it is no longer flagged */

    assert_int_equal(ae_best_f1_threshold(s, y, 4, &thr, &f1, &err), AE_OK);
    assert_true(thr == (double)0.35f);
    assert_close(f1, 0.8);
}

static void test_ties_count_half(void **state)
{
    (void)state;
    ae_error err;
    double auc, ap;
    const float flat[] = {1, 1, 1, 1};
    const int fy[] = {0, 1, 0, 1};
    assert_int_equal(ae_roc_auc(flat, fy, 4, &auc, &err), AE_OK);
    assert_close(auc, 0.5);
    assert_int_equal(ae_average_precision(flat, fy, 4, &ap, &err), AE_OK);
    assert_close(ap, 0.5);

    /* Anomalies 0.5 (tied with the normal: 1/2) and 0.9 (above: 1) -> 1.5 / 2. */
    const float s[] = {0.5f, 0.5f, 0.9f};
    const int y[] = {0, 1, 1};
    assert_int_equal(ae_roc_auc(s, y, 3, &auc, &err), AE_OK);
    assert_close(auc, 0.75);
    assert_int_equal(ae_average_precision(s, y, 3, &ap, &err), AE_OK);
    assert_close(ap, 0.5 * 1.0 + 0.5 * (2.0 / 3.0));

    /* -0 and +0 are equal scores, so they tie. */
    const float z[] = {-0.0f, 0.0f};
    const int zy[] = {1, 0};
    assert_int_equal(ae_roc_auc(z, zy, 2, &auc, &err), AE_OK);
    assert_close(auc, 0.5);
}

static void test_curves_of_handmade_case(void **state)
{
    (void)state;
    const float s[] = {0.1f, 0.4f, 0.35f, 0.8f};
    const int y[] = {0, 0, 1, 1};
    ae_error err;
    ae_curve roc, pr;
    assert_int_equal(ae_roc_curve(s, y, 4, &roc, &err), AE_OK);
    assert_int_equal(roc.count, 5);
    const double rt[] = {INFINITY, 0.8f, 0.4f, 0.35f, 0.1f}, fpr[] = {0, 0, 0.5, 0.5, 1},
                 tpr[] = {0, 0.5, 0.5, 1, 1};
    for (int i = 0; i < 5; i++) {
        assert_true(roc.threshold[i] == rt[i]);
        assert_close(roc.x[i], fpr[i]);
        assert_close(roc.y[i], tpr[i]);
    }
    assert_int_equal(ae_pr_curve(s, y, 4, &pr, &err), AE_OK);
    assert_int_equal(pr.count, 5);
    const double pt[] = {0.1f, 0.35f, 0.4f, 0.8f, INFINITY}, rec[] = {1, 1, 0.5, 0.5, 0},
                 prec[] = {0.5, 2.0 / 3.0, 0.5, 1, 1};
    for (int i = 0; i < 5; i++) {
        assert_true(pr.threshold[i] == pt[i]);
        assert_close(pr.x[i], rec[i]);
        assert_close(pr.y[i], prec[i]);
    }
    ae_curve_free(&roc);
    ae_curve_free(&pr);
    assert_null(roc.x);
}

static void test_bad_inputs_are_errors(void **state)
{
    (void)state;
    ae_error err;
    double v;
    const float s[] = {0.1f, NAN, 0.3f};
    const int y[] = {0, 1, 1}, bad[] = {0, 2, 1};
    const float ok[] = {0.1f, 0.2f, 0.3f};
    assert_int_equal(ae_roc_auc(s, y, 3, &v, &err), AE_ERR_DATA);
    assert_non_null(strstr(err.message, "value 1 of 3 is NaN"));
    assert_int_equal(ae_roc_auc(ok, bad, 3, &v, &err), AE_ERR_USAGE);
    assert_non_null(strstr(err.message, "label 1 is 2"));
    assert_int_equal(ae_roc_auc(ok, y, 0, &v, &err), AE_ERR_USAGE);
    assert_int_equal(ae_quantile(s, 3, 0.5, &v, &err), AE_ERR_DATA);
    assert_int_equal(ae_quantile(ok, 3, 1.5, &v, &err), AE_ERR_USAGE);
    assert_int_equal(ae_quantile(ok, 3, NAN, &v, &err), AE_ERR_USAGE);
    ae_threshold t;
    assert_int_equal(ae_threshold_fixed(NAN, "x", &t, &err), AE_ERR_USAGE);
    assert_int_equal(ae_threshold_mean_sd(ok, 3, INFINITY, "x", &t, &err), AE_ERR_USAGE);
    ae_confusion c;
    assert_int_equal(ae_confusion_at(ok, y, 3, NAN, &c, &err), AE_ERR_USAGE);
    const int all_anomalies[] = {1, 1, 1};
    assert_int_equal(ae_roc_auc(ok, all_anomalies, 3, &v, &err), AE_ERR_USAGE);
    assert_non_null(strstr(err.message, "0 normals"));
}

static void test_zero_over_zero_is_zero(void **state)
{
    (void)state;
    ae_confusion none = {0, 0, 5, 0}; /* nothing flagged, no anomalies */
    assert_true(ae_precision(&none) == 0.0);
    assert_true(ae_recall(&none) == 0.0);
    assert_true(ae_f1(&none) == 0.0);
    ae_confusion missed = {0, 0, 5, 3};
    assert_true(ae_precision(&missed) == 0.0);
    assert_true(ae_recall(&missed) == 0.0);
}

/* ---- Thresholds --------------------------------------------------------- */

static void test_quantile_interpolation(void **state)
{
    (void)state;
    const float x[] = {4, 1, 3, 2}; /* unsorted on purpose */
    const double q[] = {0, 0.5, 0.95, 1, 1.0 / 3.0, 0.1};
    double v[6];
    ae_error err;
    assert_int_equal(ae_quantiles(x, 4, q, 6, v, &err), AE_OK);
    assert_close(v[0], 1);
    assert_close(v[1], 2.5);  /* h = 1.5 */
    assert_close(v[2], 3.85); /* h = 2.85 */
    assert_close(v[3], 4);
    assert_close(v[4], 2);    /* h = 1 (exactly, up to rounding) */
    assert_close(v[5], 1.3);  /* h = 0.3 */
    const float one[] = {7.5f};
    assert_int_equal(ae_quantile(one, 1, 0.95, &v[0], &err), AE_OK);
    assert_true(v[0] == 7.5);
    const float inf[] = {INFINITY, -2, -INFINITY, 5, -0.0f};
    assert_int_equal(ae_quantile(inf, 5, 0, &v[0], &err), AE_OK);
    assert_true(v[0] == -INFINITY);
    assert_int_equal(ae_quantile(inf, 5, 0.5, &v[0], &err), AE_OK);
    assert_true(v[0] == 0);
    assert_int_equal(ae_quantile(inf, 5, 1, &v[0], &err), AE_OK);
    assert_true(v[0] == INFINITY);
    assert_int_equal(ae_quantile(inf, 5, 0.1, &v[0], &err), AE_ERR_DATA); /* numpy: NaN */
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void test_quantiles_match_a_sorted_reference(void **state)
{
    (void)state;
    enum { N = 3001 };
    float *x = malloc(N * sizeof *x);
    double *sorted = malloc(N * sizeof *sorted);
    assert_non_null(x);
    assert_non_null(sorted);
    ae_rng rng;
    ae_rng_seed(&rng, 5);
    for (int i = 0; i < N; i++) {
        x[i] = (float)(ae_rng_normal(&rng) * pow(10, (double)(i % 7) - 3));
        sorted[i] = x[i];
    }
    qsort(sorted, N, sizeof *sorted, cmp_double);
    ae_error err;
    for (int k = 0; k <= 20; k++) {
        double q = k / 20.0, v;
        assert_int_equal(ae_quantile(x, N, q, &v, &err), AE_OK);
        double h = (N - 1) * q, lo = floor(h);
        size_t i = (size_t)lo;
        double want = i + 1 < N ? sorted[i] + (h - lo) * (sorted[i + 1] - sorted[i]) : sorted[i];
        if (!close_rel(v, want, 1e-12))
            fail_msg("q %g: %.17g, expected %.17g", q, v, want);
    }
    free(x);
    free(sorted);
}

static void test_mean_sd_uses_population_sd(void **state)
{
    (void)state;
    const float x[] = {1, 2, 3, 4};
    ae_threshold t;
    ae_error err;
    assert_int_equal(ae_threshold_mean_sd(x, 4, 3, "training images", &t, &err), AE_OK);
    assert_close(t.mean, 2.5);
    assert_close(t.sd, sqrt(1.25)); /* ddof 0, as np.std */
    assert_close(t.value, 2.5 + 3 * sqrt(1.25));
    assert_true(t.warnings & AE_WARN_FEW_VALUES);
    assert_false(t.warnings & AE_WARN_CONSTANT);
    assert_string_equal(t.name, "mean+k*sd");
    assert_int_equal(t.num_values, 4);

    float flat[30];
    for (int i = 0; i < 30; i++)
        flat[i] = 0.25f;
    assert_int_equal(ae_threshold_mean_sd(flat, 30, 3, "validation split", &t, &err), AE_OK);
    assert_true(t.warnings & AE_WARN_CONSTANT);
    assert_false(t.warnings & AE_WARN_FEW_VALUES);
    assert_true(t.value == 0.25);
    /* Constant scores with a threshold equal to them: every image is flagged. */
    ae_metrics_summary m;
    assert_int_equal(ae_metrics_summarize(flat, NULL, 30, &t, &m, &err), AE_OK);
    assert_int_equal(m.flagged, 30);
    assert_true(m.warnings & AE_WARN_ALL_FLAGGED);
    assert_true(m.warnings & AE_WARN_CONSTANT);
    assert_true(m.warnings & AE_WARN_NO_LABELS);
    assert_false(m.has_labels);
    assert_true(isnan(m.precision));
}

static void test_fixed_and_best_f1_rules(void **state)
{
    (void)state;
    const float s[] = {0.1f, 0.4f, 0.35f, 0.8f};
    const int y[] = {0, 0, 1, 1};
    ae_threshold t;
    ae_error err;
    ae_metrics_summary m;
    assert_int_equal(ae_threshold_fixed(10, "--threshold", &t, &err), AE_OK);
    assert_true(t.value == 10 && t.num_values == 0 && t.rule == AE_RULE_FIXED);
    assert_int_equal(ae_metrics_summarize(s, y, 4, &t, &m, &err), AE_OK);
    assert_int_equal(m.flagged, 0);
    assert_true(m.warnings & AE_WARN_NONE_FLAGGED);
    assert_close(m.roc_auc, 0.75);
    assert_close(m.best_f1, 0.8);
    assert_true(m.best_f1_threshold == (double)0.35f);

    assert_int_equal(ae_threshold_best_f1(s, y, 4, "scored set", &t, &err), AE_OK);
    assert_true(t.value == (double)0.35f);
    assert_true(t.warnings & AE_WARN_FEW_VALUES);
    assert_int_equal(ae_metrics_summarize(s, y, 4, &t, &m, &err), AE_OK);
    assert_int_equal(m.flagged, 3);
    assert_int_equal(m.confusion.tp, 2);
    assert_close(m.f1, 0.8);

    const int all[] = {1, 1, 1, 1};
    assert_int_equal(ae_threshold_best_f1(s, all, 4, "scored set", &t, &err), AE_OK);
    assert_true(t.warnings & AE_WARN_ONE_CLASS);
    assert_true(t.value == (double)0.1f); /* flag everything: F1 1 */
}

/* ---- Per-class and pixel AUROC ------------------------------------------ */

static void test_per_class_auc(void **state)
{
    (void)state;
    /* Normal classes 0 and 3; class 1 sits above them, class 2 among them. */
    const float s[] = {0.1f, 0.2f, 0.3f, 0.9f, 0.8f, 0.15f, 0.3f, 0.25f};
    const int cls[] = {0, 0, 3, 1, 1, 2, 2, 0};
    const int normal[] = {0, 3}, eval[] = {1, 2, 7};
    ae_class_auc out[3];
    ae_error err;
    assert_int_equal(ae_per_class_auc(s, cls, 8, normal, 2, eval, 3, out, &err), AE_OK);
    assert_int_equal(out[0].class_id, 1);
    assert_int_equal(out[0].count, 2);
    assert_close(out[0].auc, 1.0);
    /* class 2: 0.15 beats 0.1 (1 of 4); 0.3 beats 0.1, 0.2, 0.25, ties 0.3 (3.5 of 4). */
    assert_int_equal(out[1].count, 2);
    assert_close(out[1].auc, 4.5 / 8.0);
    assert_int_equal(out[2].count, 0);
    assert_true(isnan(out[2].auc));

    /* Same as the binary AUROC of the subset. */
    const float sub[] = {0.1f, 0.2f, 0.3f, 0.15f, 0.3f, 0.25f};
    const int suby[] = {0, 0, 0, 1, 1, 0};
    double auc;
    assert_int_equal(ae_roc_auc(sub, suby, 6, &auc, &err), AE_OK);
    assert_close(out[1].auc, auc);

    const int wrong[] = {3};
    assert_int_equal(ae_per_class_auc(s, cls, 8, normal, 2, wrong, 1, out, &err), AE_ERR_USAGE);
    const int absent[] = {9};
    assert_int_equal(ae_per_class_auc(s, cls, 8, absent, 1, eval, 3, out, &err), AE_ERR_USAGE);
}

/* Maps with many exact ties (values on a coarse grid) and a spread part, so
 * that small budgets take every path: gathered runs and oversized bins. */
static void test_pixel_auc_matches_image_auc_for_every_budget(void **state)
{
    (void)state;
    enum { IMAGES = 5 };
    const size_t sizes[IMAGES] = {97, 256, 1, 400, 131};
    size_t total = 0;
    for (int i = 0; i < IMAGES; i++)
        total += sizes[i];
    float *all = malloc(total * sizeof *all);
    int *labels = malloc(total * sizeof *labels);
    uint8_t *masks = malloc(total);
    assert_non_null(all);
    assert_non_null(labels);
    assert_non_null(masks);
    const float *map_ptr[IMAGES];
    const uint8_t *mask_ptr[IMAGES];
    ae_rng rng;
    ae_rng_seed(&rng, 11);
    size_t at = 0;
    for (int im = 0; im < IMAGES; im++) {
        map_ptr[im] = all + at;
        mask_ptr[im] = masks + at;
        for (size_t i = 0; i < sizes[im]; i++, at++) {
            int anomalous = ae_rng_uniform(&rng) < 0.2;
            double v = ae_rng_uniform(&rng) + 0.3 * anomalous;
            if (i % 3 == 0)
                v = floor(v * 4) / 4; /* heavy ties */
            all[at] = (float)v;
            masks[at] = anomalous ? (uint8_t)(1 + (i % 200)) : 0; /* any nonzero */
            labels[at] = anomalous;
        }
    }
    double want;
    ae_error err;
    assert_int_equal(ae_roc_auc(all, labels, total, &want, &err), AE_OK);
    const size_t budgets[] = {0, 1, 7, 50, 300, total};
    for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
        ae_pixel_auc p;
        assert_int_equal(
            ae_pixel_roc_auc(map_ptr, mask_ptr, sizes, IMAGES, budgets[b], &p, &err), AE_OK);
        if (!close_rel(p.auc, want, 1e-12))
            fail_msg("budget %zu: %.17g, expected %.17g", budgets[b], p.auc, want);
        assert_int_equal(p.num_pixels, total);
        if (budgets[b] == 7)
            assert_true(p.passes > 3);
    }

    all[300] = NAN;
    ae_pixel_auc p;
    assert_int_equal(ae_pixel_roc_auc(map_ptr, mask_ptr, sizes, IMAGES, 0, &p, &err),
                     AE_ERR_DATA);
    all[300] = 0.5f;
    memset(masks, 0, total);
    assert_int_equal(ae_pixel_roc_auc(map_ptr, mask_ptr, sizes, IMAGES, 0, &p, &err),
                     AE_ERR_USAGE);
    free(all);
    free(labels);
    free(masks);
}

/* ---- metrics.json -------------------------------------------------------- */

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = 0;
    fclose(f);
    return buf;
}

static void test_metrics_json(void **state)
{
    (void)state;
    const float s[] = {0.1f, 0.4f, 0.35f, 0.8f};
    const int y[] = {0, 0, 0, 0};
    ae_threshold t;
    ae_error err;
    assert_int_equal(ae_threshold_quantile(s, 4, 0.95, "held-out \"normal\"\n\\split", &t, &err),
                     AE_OK);
    ae_metrics_summary m;
    assert_int_equal(ae_metrics_summarize(s, y, 4, &t, &m, &err), AE_OK);
    m.num_class_auc = 2;
    m.class_auc[0] = (ae_class_auc){4, 0, NAN, ""};
    m.class_auc[1] = (ae_class_auc){5, 2, 0.75, "scratch \"deep\""};
    char *json;
    size_t len;
    assert_int_equal(ae_metrics_json(&m, &json, &len, &err), AE_OK);
    assert_int_equal(strlen(json), len);
    assert_non_null(strstr(json, "\"source\": \"held-out \\\"normal\\\"\\n\\\\split\""));
    assert_non_null(strstr(json, "\"comparison\": \">=\""));
    assert_non_null(strstr(json, "\"rule\": \"quantile\""));
    assert_non_null(strstr(json, "\"roc_auc\": null"));
    assert_non_null(strstr(json, "\"count\": 4,"));
    assert_non_null(strstr(json, "\"confusion\": {\"tp\": 0, \"fp\": 1, \"tn\": 3, \"fn\": 0}"));
    assert_non_null(strstr(json, "{\"class\": 4, \"count\": 0, \"roc_auc\": null}"));
    assert_non_null(strstr(json, "{\"class\": 5, \"name\": \"scratch \\\"deep\\\"\", \"count\": 2, \"roc_auc\": 0.75}"));
    assert_non_null(strstr(json, ae_warning_text(AE_WARN_ONE_CLASS)));
    assert_non_null(strstr(json, ae_warning_text(AE_WARN_FEW_VALUES)));
    assert_null(strstr(json, "nan"));
    assert_null(strstr(json, "inf"));
    /* The value, read back, is the same double. */
    const char *v = strstr(json, "\"value\": ");
    assert_non_null(v);
    assert_true(strtod(v + 9, NULL) == t.value);

    const char *path = test_path("metrics.json");
    assert_int_equal(ae_metrics_write_json(path, &m, &err), AE_OK);
    size_t flen;
    char *file = read_all(path, &flen);
    assert_int_equal(flen, len);
    assert_memory_equal(file, json, len);
    free(file);

    FILE *f = fopen(test_path("stream.json"), "wb");
    assert_non_null(f);
    assert_int_equal(ae_metrics_write_json_stream(f, &m, &err), AE_OK);
    fclose(f);
    file = read_all(test_path("stream.json"), &flen);
    assert_int_equal(flen, len);
    assert_memory_equal(file, json, len);
    free(file);
    free(json);

    assert_int_equal(ae_metrics_write_json(test_path("no/such/dir/m.json"), &m, &err),
                     AE_ERR_IO);
}

/* ---- The scikit-learn / numpy fixture ------------------------------------ */

typedef struct {
    char name[64];
    size_t n;
    float *scores;
    int *labels;
} fixture_case;

/* Parses the numbers after the first word of line; returns how many. */
static size_t parse_numbers(const char *line, double *out, size_t max)
{
    const char *p = strchr(line, ' ');
    size_t k = 0;
    while (p && k < max) {
        char *end;
        double v = strtod(p, &end);
        if (end == p)
            break;
        out[k++] = v;
        p = end;
    }
    return k;
}

/* The summary (one sort for all ranking metrics) of a fixture case. */
static ae_metrics_summary summary_of(const fixture_case *c)
{
    ae_error err;
    ae_threshold t;
    ae_metrics_summary m;
    assert_int_equal(ae_threshold_fixed(0.5, "fixture", &t, &err), AE_OK);
    assert_int_equal(ae_metrics_summarize(c->scores, c->labels, c->n, &t, &m, &err), AE_OK);
    return m;
}

static void check_case_line(const fixture_case *c, const char *key, const double *v, size_t k)
{
    ae_error err;
    double got;
    if (!strcmp(key, "roc_auc")) {
        assert_int_equal(ae_roc_auc(c->scores, c->labels, c->n, &got, &err), k ? AE_OK : AE_ERR_USAGE);
        ae_metrics_summary m = summary_of(c);
        if (k) {
            assert_close(got, v[0]);
            assert_close(m.roc_auc, v[0]);
        } else {
            assert_true(isnan(m.roc_auc));
        }
    } else if (!strcmp(key, "average_precision")) {
        assert_int_equal(ae_average_precision(c->scores, c->labels, c->n, &got, &err),
                         k ? AE_OK : AE_ERR_USAGE);
        ae_metrics_summary m = summary_of(c);
        if (k)
            assert_close(got, v[0]);
        if (m.num_normals && m.num_anomalies)
            assert_close(m.average_precision, v[0]);
    } else if (!strcmp(key, "quantiles")) {
        assert_true(k == 1 + 2 * (size_t)v[0]);
        for (size_t j = 0; j < (size_t)v[0]; j++) {
            assert_int_equal(ae_quantile(c->scores, c->n, v[1 + 2 * j], &got, &err), AE_OK);
            if (got != v[2 + 2 * j]) /* bit for bit: same arithmetic as numpy */
                fail_msg("%s: quantile %g = %.17g, numpy %.17g", c->name, v[1 + 2 * j], got,
                         v[2 + 2 * j]);
        }
    } else if (!strcmp(key, "at")) {
        assert_int_equal(k, 8);
        ae_confusion cm;
        assert_int_equal(ae_confusion_at(c->scores, c->labels, c->n, v[0], &cm, &err), AE_OK);
        assert_int_equal(cm.tp, (size_t)v[1]);
        assert_int_equal(cm.fp, (size_t)v[2]);
        assert_int_equal(cm.tn, (size_t)v[3]);
        assert_int_equal(cm.fn, (size_t)v[4]);
        assert_close(ae_precision(&cm), v[5]);
        assert_close(ae_recall(&cm), v[6]);
        assert_close(ae_f1(&cm), v[7]);
    } else if (!strcmp(key, "best_f1")) {
        double f1;
        assert_int_equal(ae_best_f1_threshold(c->scores, c->labels, c->n, &got, &f1, &err), AE_OK);
        if (got != v[0])
            fail_msg("%s: best-F1 threshold %.17g, sklearn curve %.17g", c->name, got, v[0]);
        assert_close(f1, v[1]);
        ae_metrics_summary m = summary_of(c);
        if (m.num_normals && m.num_anomalies) {
            assert_true(m.best_f1_threshold == v[0]);
            assert_close(m.best_f1, v[1]);
        }
    } else if (!strcmp(key, "roc") || !strcmp(key, "pr")) {
        ae_curve curve;
        int roc = !strcmp(key, "roc");
        assert_int_equal(roc ? ae_roc_curve(c->scores, c->labels, c->n, &curve, &err)
                             : ae_pr_curve(c->scores, c->labels, c->n, &curve, &err),
                         AE_OK);
        assert_int_equal(curve.count, (size_t)v[0]);
        assert_true(k == 1 + 3 * curve.count);
        for (size_t j = 0; j < curve.count; j++) {
            if (curve.threshold[j] != v[1 + 3 * j])
                fail_msg("%s %s point %zu: threshold %.17g, sklearn %.17g", c->name, key, j,
                         curve.threshold[j], v[1 + 3 * j]);
            assert_close(curve.x[j], v[2 + 3 * j]);
            assert_close(curve.y[j], v[3 + 3 * j]);
        }
        ae_curve_free(&curve);
    } else {
        fail_msg("%s: unknown fixture line '%s'", c->name, key);
    }
}

static void test_sklearn_fixture(void **state)
{
    (void)state;
    const char *path = test_fixture("sklearn_metrics.txt");
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s", path);
    char *line = NULL;
    size_t cap = 0;
    double *v = NULL;
    size_t vcap = 0;
    fixture_case c = {"", 0, NULL, NULL};
    int cases = 0, checks = 0;
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = 0;
        if (line[0] == '#' || !line[0])
            continue;
        char key[32] = "";
        sscanf(line, "%31s", key);
        if (!strcmp(key, "case")) {
            assert_int_equal(sscanf(line, "case %63s %zu", c.name, &c.n), 2);
            c.scores = malloc(c.n * sizeof *c.scores);
            c.labels = malloc(c.n * sizeof *c.labels);
            if (vcap < 3 * c.n + 64) {
                vcap = 3 * c.n + 64;
                v = realloc(v, vcap * sizeof *v);
            }
            assert_non_null(c.scores);
            assert_non_null(c.labels);
            assert_non_null(v);
            continue;
        }
        assert_non_null(c.scores);
        size_t k = parse_numbers(line, v, vcap);
        if (!strcmp(key, "scores") || !strcmp(key, "labels")) {
            assert_int_equal(k, c.n);
            for (size_t i = 0; i < c.n; i++) {
                if (key[0] == 's')
                    c.scores[i] = (float)v[i]; /* exact: written from float32 */
                else
                    c.labels[i] = (int)v[i];
            }
        } else if (!strcmp(key, "end")) {
            free(c.scores);
            free(c.labels);
            c.scores = NULL;
            c.labels = NULL;
            cases++;
        } else {
            check_case_line(&c, key, v, k);
            checks++;
        }
    }
    free(line);
    free(v);
    fclose(f);
    assert_true(cases >= 10);
    assert_true(checks >= 60);
}

/* ---- Ranking ------------------------------------------------------------ */

static void test_rank_by_score_descending_ties_by_index(void **state)
{
    (void)state;
    ae_error err;
    ae_error_clear(&err);
    /* Ties (2.5 three times, -0 and +0), negatives, infinities. */
    const float s[] = {2.5f, -1.0f, 7.0f, 2.5f, 0.0f, -0.0f, INFINITY, 2.5f, -INFINITY, 7.0f};
    const size_t want[] = {6, 2, 9, 0, 3, 7, 4, 5, 1, 8};
    size_t order[10];
    assert_int_equal(ae_rank_by_score(s, 10, order, &err), AE_OK);
    for (size_t i = 0; i < 10; i++)
        if (order[i] != want[i])
            fail_msg("order[%zu] = %zu, expected %zu", i, order[i], want[i]);

    /* n = 0 writes nothing and needs no arrays; n = 1 is index 0. */
    size_t one = 99;
    assert_int_equal(ae_rank_by_score(NULL, 0, NULL, &err), AE_OK);
    assert_int_equal(ae_rank_by_score(s, 0, &one, &err), AE_OK);
    assert_int_equal(one, 99);
    assert_int_equal(ae_rank_by_score(s + 4, 1, &one, &err), AE_OK);
    assert_int_equal(one, 0);

    /* NaN is refused, naming it. */
    const float bad[] = {1.0f, NAN, 2.0f};
    assert_int_equal(ae_rank_by_score(bad, 3, order, &err), AE_ERR_DATA);
    assert_non_null(strstr(err.message, "NaN"));
}

static void test_rank_by_score_is_a_total_order_on_many_ties(void **state)
{
    (void)state;
    enum { N = 5000 };
    float *s = malloc(N * sizeof *s);
    size_t *order = malloc(N * sizeof *order);
    unsigned char *seen = calloc(N, 1);
    assert_non_null(s);
    assert_non_null(order);
    assert_non_null(seen);
    uint32_t x = 12345;
    for (size_t i = 0; i < N; i++) {
        x = x * 1664525u + 1013904223u;
        s[i] = (float)((int)(x >> 24) % 97 - 48) * 0.25f; /* 97 distinct values, many ties */
    }
    ae_error err;
    ae_error_clear(&err);
    assert_int_equal(ae_rank_by_score(s, N, order, &err), AE_OK);
    for (size_t i = 0; i < N; i++) {
        assert_true(order[i] < N);
        assert_false(seen[order[i]]);
        seen[order[i]] = 1;
        if (i == 0)
            continue;
        size_t a = order[i - 1], b = order[i];
        if (!(s[a] > s[b] || (s[a] == s[b] && a < b)))
            fail_msg("rank %zu: index %zu (%g) before index %zu (%g)", i, a, (double)s[a], b,
                     (double)s[b]);
    }
    free(s);
    free(order);
    free(seen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_normal_labels_auc_is_error_quantile_still_flags_five_percent),
        cmocka_unit_test(test_handmade_auc_ap_confusion_f1),
        cmocka_unit_test(test_ties_count_half),
        cmocka_unit_test(test_curves_of_handmade_case),
        cmocka_unit_test(test_bad_inputs_are_errors),
        cmocka_unit_test(test_zero_over_zero_is_zero),
        cmocka_unit_test(test_quantile_interpolation),
        cmocka_unit_test(test_quantiles_match_a_sorted_reference),
        cmocka_unit_test(test_mean_sd_uses_population_sd),
        cmocka_unit_test(test_fixed_and_best_f1_rules),
        cmocka_unit_test(test_per_class_auc),
        cmocka_unit_test(test_pixel_auc_matches_image_auc_for_every_budget),
        cmocka_unit_test(test_metrics_json),
        cmocka_unit_test(test_sklearn_fixture),
        cmocka_unit_test(test_rank_by_score_descending_ties_by_index),
        cmocka_unit_test(test_rank_by_score_is_a_total_order_on_many_ties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
