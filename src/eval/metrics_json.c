/* The metrics summary of one scored set, and metrics.json. */
#include "aedet/eval.h"
#include "common/text.h"
#include "aedet/file.h"
#include "eval/metrics_internal.h"
#include "eval/score_sort.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>

ae_status ae_metrics_summarize(const float *scores, const int *labels, size_t n,
                               const ae_threshold *threshold, ae_metrics_summary *out,
                               ae_error *err)
{
    if (!threshold || isnan(threshold->value))
        return ae_fail(err, AE_ERR_USAGE, "metrics: no threshold value");
    ae_status st = ae_check_scores(scores, n, "metrics: scores", err);
    if (st == AE_OK && labels)
        st = ae_check_labels(labels, n, err);
    if (st != AE_OK)
        return st;

    ae_metrics_summary s;
    memset(&s, 0, sizeof s);
    s.threshold = *threshold;
    s.count = n;
    s.precision = s.recall = s.f1 = NAN;
    s.roc_auc = s.average_precision = s.best_f1 = s.best_f1_threshold = s.pixel_auc = NAN;
    ae_value_range(scores, n, &s.score_min, &s.score_max, &s.score_mean);
    for (size_t i = 0; i < n; i++)
        s.flagged += (size_t)((double)scores[i] >= threshold->value);
    s.warnings = threshold->warnings;
    if (s.flagged == n)
        s.warnings |= AE_WARN_ALL_FLAGGED;
    if (s.flagged == 0)
        s.warnings |= AE_WARN_NONE_FLAGGED;

    if (!labels) {
        s.warnings |= AE_WARN_NO_LABELS;
        *out = s;
        return AE_OK;
    }
    s.has_labels = 1;
    st = ae_confusion_at(scores, labels, n, threshold->value, &s.confusion, err);
    if (st != AE_OK)
        return st;
    s.num_anomalies = s.confusion.tp + s.confusion.fn;
    s.num_normals = s.confusion.fp + s.confusion.tn;
    s.precision = ae_precision(&s.confusion);
    s.recall = ae_recall(&s.confusion);
    s.f1 = ae_f1(&s.confusion);
    if (s.num_anomalies == 0 || s.num_normals == 0) {
        s.warnings |= AE_WARN_ONE_CLASS;
    } else {
        ae_ranking r;
        st = ae_ranking_metrics(scores, labels, n, &r, err);
        if (st != AE_OK)
            return st;
        s.roc_auc = r.roc_auc;
        s.average_precision = r.average_precision;
        s.best_f1 = r.best_f1;
        s.best_f1_threshold = r.best_f1_threshold;
    }
    *out = s;
    return AE_OK;
}

/* ---- JSON ---------------------------------------------------------------- */

/* NaN and infinities are not JSON numbers: null. */
static void put_number(ae_text *b, const char *key, double v, const char *fmt)
{
    ae_text_printf(b, "\"%s\": ", key);
    if (isfinite(v))
        ae_text_printf(b, fmt, v);
    else
        ae_text_printf(b, "null");
}

/* A JSON string: quotes, backslashes and control characters escaped; other
 * bytes (UTF-8) as they are. */
static void put_escaped(ae_text *b, const char *v)
{
    ae_text_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            ae_text_printf(b, "\\%c", *p);
        else if (*p == '\n')
            ae_text_printf(b, "\\n");
        else if (*p == '\t')
            ae_text_printf(b, "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            ae_text_printf(b, "\\u%04x", *p);
        else
            ae_text_printf(b, "%c", *p);
    }
    ae_text_printf(b, "\"");
}

static void put_string(ae_text *b, const char *key, const char *v)
{
    ae_text_printf(b, "\"%s\": ", key);
    put_escaped(b, v);
}

static const char *quantile_definition =
    "numpy linear: sorted x, h = (n-1)q, x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h])";

static void put_threshold(ae_text *b, const ae_threshold *t)
{
    ae_text_printf(b, "  \"threshold\": {");
    put_string(b, "rule", t->name ? t->name : "unknown");
    ae_text_printf(b, ", ");
    put_number(b, "param", t->param, "%.17g");
    ae_text_printf(b, ", ");
    put_number(b, "value", t->value, "%.17g");
    ae_text_printf(b, ", \"comparison\": \">=\", \"num_values\": %zu, ", t->num_values);
    put_string(b, "source", t->source);
    ae_text_printf(b, ", ");
    put_number(b, "mean", t->mean, "%.9g");
    ae_text_printf(b, ", ");
    put_number(b, "sd", t->sd, "%.9g");
    if (t->rule == AE_RULE_QUANTILE) {
        ae_text_printf(b, ", ");
        put_string(b, "quantile_definition", quantile_definition);
    }
    if (t->rule == AE_RULE_MEAN_SD)
        ae_text_printf(b, ", \"sd_definition\": \"population (ddof 0, as numpy.std)\"");
    ae_text_printf(b, "},\n");
}

ae_status ae_metrics_json(const ae_metrics_summary *s, char **json, size_t *len, ae_error *err)
{
    ae_text b = {NULL, 0, 0, 0};
    ae_text_printf(&b, "{\n");
    put_threshold(&b, &s->threshold);
    ae_text_printf(&b, "  \"count\": %zu,\n  \"flagged\": %zu,\n", s->count, s->flagged);
    ae_text_printf(&b, "  ");
    put_number(&b, "score_min", s->score_min, "%.9g");
    ae_text_printf(&b, ",\n  ");
    put_number(&b, "score_max", s->score_max, "%.9g");
    ae_text_printf(&b, ",\n  ");
    put_number(&b, "score_mean", s->score_mean, "%.9g");
    ae_text_printf(&b, ",\n  \"has_labels\": %s,\n", s->has_labels ? "true" : "false");
    if (s->has_labels) {
        ae_text_printf(&b, "  \"num_anomalies\": %zu,\n  \"num_normals\": %zu,\n", s->num_anomalies,
            s->num_normals);
        ae_text_printf(&b, "  \"confusion\": {\"tp\": %zu, \"fp\": %zu, \"tn\": %zu, \"fn\": %zu},\n",
            s->confusion.tp, s->confusion.fp, s->confusion.tn, s->confusion.fn);
        ae_text_printf(&b, "  \"anomalies_flagged\": %zu,\n", s->confusion.tp);
    }
    /* Thresholds with 17 digits (read back, they flag the same images). */
    const struct {
        const char *key;
        double v;
        const char *fmt;
    } metrics[] = {
        {"precision", s->precision, "%.9g"},
        {"recall", s->recall, "%.9g"},
        {"f1", s->f1, "%.9g"},
        {"roc_auc", s->roc_auc, "%.9g"},
        {"average_precision", s->average_precision, "%.9g"},
        {"best_f1", s->best_f1, "%.9g"},
        {"best_f1_threshold", s->best_f1_threshold, "%.17g"},
        {"pixel_roc_auc", s->pixel_auc, "%.9g"},
    };
    for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++) {
        ae_text_printf(&b, "  ");
        put_number(&b, metrics[i].key, metrics[i].v, metrics[i].fmt);
        ae_text_printf(&b, ",\n");
    }
    ae_text_printf(&b, "  \"per_class_roc_auc\": [");
    int classes = s->num_class_auc < AE_MAX_CLASS_AUC ? s->num_class_auc : AE_MAX_CLASS_AUC;
    for (int i = 0; i < classes; i++) {
        ae_text_printf(&b, "%s{\"class\": %d, ", i ? ", " : "", s->class_auc[i].class_id);
        if (s->class_auc[i].name[0]) {
            put_string(&b, "name", s->class_auc[i].name);
            ae_text_printf(&b, ", ");
        }
        ae_text_printf(&b, "\"count\": %zu, ", s->class_auc[i].count);
        put_number(&b, "roc_auc", s->class_auc[i].auc, "%.9g");
        ae_text_printf(&b, "}");
    }
    ae_text_printf(&b, "],\n  \"warnings\": [");
    int first = 1;
    for (int i = 0; i < AE_NUM_WARNINGS; i++) {
        if (!(s->warnings & (1u << i)))
            continue;
        ae_text_printf(&b, "%s", first ? "" : ", ");
        put_escaped(&b, ae_warning_text(1u << i));
        first = 0;
    }
    ae_text_printf(&b, "]\n}\n");
    if (b.failed) {
        free(b.s);
        return ae_fail(err, AE_ERR_NOMEM, "metrics.json: out of memory");
    }
    *json = b.s;
    *len = b.len;
    return AE_OK;
}

ae_status ae_metrics_write_json(const char *path, const ae_metrics_summary *s, ae_error *err)
{
    char *json;
    size_t len;
    ae_status st = ae_metrics_json(s, &json, &len, err);
    if (st != AE_OK)
        return st;
    st = ae_write_file_atomic(path, json, len, err);
    free(json);
    return st;
}

ae_status ae_metrics_write_json_stream(FILE *f, const ae_metrics_summary *s, ae_error *err)
{
    char *json;
    size_t len;
    ae_status st = ae_metrics_json(s, &json, &len, err);
    if (st != AE_OK)
        return st;
    if (fwrite(json, 1, len, f) != len || fflush(f) != 0)
        st = ae_fail(err, AE_ERR_IO, "writing metrics JSON: the stream failed");
    free(json);
    return st;
}
