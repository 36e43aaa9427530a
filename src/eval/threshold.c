/* Threshold rules: quantile (numpy's linear), fixed value, mean + k*sd, F1-best.
 * Each result says what it was computed on and carries its warnings as flags. */
#include "aedet/eval.h"
#include "eval/score_sort.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const warning_texts[AE_NUM_WARNINGS] = {
    "the threshold was computed on fewer than 20 values",
    "the values the threshold was computed on are all equal",
    "every scored image is flagged",
    "no scored image is flagged",
    "the labels are all of one class: AUROC and average precision are undefined",
    "no labels: only counts are reported, no precision or recall",
};

const char *ae_warning_text(unsigned flag)
{
    for (int i = 0; i < AE_NUM_WARNINGS; i++)
        if (flag == 1u << i)
            return warning_texts[i];
    return NULL;
}

/* numpy's _lerp: from the nearer end, so that t = 1 gives b exactly. Unlike
 * numpy, t = 0 or a = b gives a even when a is infinite (numpy: NaN). */
static double lerp(double a, double b, double t)
{
    if (t == 0 || a == b)
        return a;
    double d = b - a;
    return t >= 0.5 ? b - d * (1 - t) : a + d * t;
}

static double quantile_sorted(const double *x, size_t n, double q)
{
    double h = (double)(n - 1) * q;
    if (h >= (double)(n - 1))
        return x[n - 1];
    double lo = floor(h);
    size_t i = (size_t)lo;
    return lerp(x[i], x[i + 1], h - lo);
}

ae_status ae_quantiles(const float *values, size_t n, const double *q, size_t num_q,
                       double *out, ae_error *err)
{
    for (size_t j = 0; j < num_q; j++)
        if (!(q[j] >= 0 && q[j] <= 1))
            return ae_fail(err, AE_ERR_USAGE, "quantile: q = %g is outside [0, 1]", q[j]);
    double *x;
    ae_status st = ae_sort_values(values, n, &x, err);
    if (st != AE_OK)
        return st;
    for (size_t j = 0; j < num_q; j++) {
        out[j] = quantile_sorted(x, n, q[j]);
        if (isnan(out[j])) {
            free(x);
            return ae_fail(err, AE_ERR_DATA,
                           "quantile %g of %zu values is undefined: it falls between an "
                           "infinite value and another",
                           q[j], n);
        }
    }
    free(x);
    return AE_OK;
}

ae_status ae_quantile(const float *values, size_t n, double q, double *out, ae_error *err)
{
    return ae_quantiles(values, n, &q, 1, out, err);
}

static void threshold_init(ae_threshold *t, ae_rule rule, const char *name, double param,
                           const char *source)
{
    t->rule = rule;
    t->name = name;
    t->param = param;
    t->value = NAN;
    t->num_values = 0;
    snprintf(t->source, sizeof t->source, "%s", source ? source : "unspecified");
    t->mean = t->sd = NAN;
    t->warnings = 0;
}

/* Mean, population sd (ddof 0, as np.std), count and warnings of the values. */
static void describe_values(ae_threshold *t, const float *values, size_t n)
{
    double lo, hi, mean, sq = 0;
    ae_value_range(values, n, &lo, &hi, &mean);
    for (size_t i = 0; i < n; i++) {
        double d = (double)values[i] - mean;
        sq += d * d;
    }
    t->mean = mean;
    t->sd = sqrt(sq / (double)n);
    t->num_values = n;
    if (n < AE_FEW_VALUES)
        t->warnings |= AE_WARN_FEW_VALUES;
    if (lo == hi)
        t->warnings |= AE_WARN_CONSTANT;
}

ae_status ae_threshold_quantile(const float *values, size_t n, double q, const char *source,
                                ae_threshold *out, ae_error *err)
{
    ae_threshold t;
    threshold_init(&t, AE_RULE_QUANTILE, "quantile", q, source);
    ae_status st = ae_quantile(values, n, q, &t.value, err);
    if (st != AE_OK)
        return st;
    describe_values(&t, values, n);
    *out = t;
    return AE_OK;
}

ae_status ae_threshold_fixed(double value, const char *source, ae_threshold *out, ae_error *err)
{
    if (isnan(value))
        return ae_fail(err, AE_ERR_USAGE, "fixed threshold: the value is NaN");
    threshold_init(out, AE_RULE_FIXED, "fixed", value, source);
    out->value = value;
    return AE_OK;
}

ae_status ae_threshold_mean_sd(const float *values, size_t n, double k, const char *source,
                               ae_threshold *out, ae_error *err)
{
    if (!isfinite(k))
        return ae_fail(err, AE_ERR_USAGE, "mean+k*sd threshold: k = %g is not finite", k);
    ae_status st = ae_check_scores(values, n, "mean+k*sd threshold", err);
    if (st != AE_OK)
        return st;
    ae_threshold t;
    threshold_init(&t, AE_RULE_MEAN_SD, "mean+k*sd", k, source);
    describe_values(&t, values, n);
    if (!isfinite(t.mean) || !isfinite(t.sd))
        return ae_fail(err, AE_ERR_DATA,
                       "mean+k*sd threshold: the %zu values have an infinite mean or sd", n);
    t.value = t.mean + k * t.sd;
    *out = t;
    return AE_OK;
}

ae_status ae_threshold_best_f1(const float *scores, const int *labels, size_t n,
                               const char *source, ae_threshold *out, ae_error *err)
{
    ae_threshold t;
    threshold_init(&t, AE_RULE_BEST_F1, "best-f1", 0, source);
    ae_status st = ae_best_f1_threshold(scores, labels, n, &t.value, NULL, err);
    if (st != AE_OK)
        return st;
    describe_values(&t, scores, n);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++)
        pos += (size_t)labels[i];
    if (pos == n)
        t.warnings |= AE_WARN_ONE_CLASS;
    *out = t;
    return AE_OK;
}
