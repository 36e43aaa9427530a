/* Threshold rules and the metrics summary, shared by score, report, demo
 * and eval: one place decides the threshold and prints the result. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The stored scores are by the model's rule: another --score cannot use them. */
static int stored_scores_apply(const cli_score_args *a, const ae_meta *meta)
{
    if (!a->score)
        return 1;
    const char *stored = ae_meta_get_str(meta, AE_KEY_SCORE_RULE);
    ae_score_rule want, have;
    char w[32], h[32];
    return ae_score_rule_parse(a->score, &want, NULL) == AE_OK &&
           ae_score_rule_parse(stored ? stored : "mse", &have, NULL) == AE_OK &&
           !strcmp(ae_score_rule_name(&want, w, sizeof w), ae_score_rule_name(&have, h, sizeof h));
}

int cli_choose_threshold(const cli_command *cmd, const cli_score_args *a, const float *scores,
                         const int *labels, size_t n, const ae_meta *meta, ae_threshold *t)
{
    ae_error err = {0};
    ae_status s;
    const float *values = scores;
    size_t nv = n;
    char source[96];
    snprintf(source, sizeof source, "scored set");
    const char *from = a->threshold_from;
    int rule_given = !isnan(a->threshold) || !isnan(a->sd_k) || !isnan(a->quantile);
    double stored_q = NAN;
    const char *stored_set = meta ? ae_meta_get_str(meta, AE_KEY_THRESHOLD_SOURCE) : NULL;
    if (meta)
        ae_meta_get_float(meta, AE_KEY_THRESHOLD_QUANTILE, &stored_q);
    int has_stored = !isnan(stored_q) && stored_set && stored_scores_apply(a, meta);
    if (!strcmp(from, "auto"))
        from = !rule_given && has_stored ? "model" : "scored";
    else if (!strcmp(from, "model") && !has_stored)
        return cli_usage_error(cmd, "%s holds no threshold for the %s score (train with this version, and "
                                    "the same --score)", a->model_path ? a->model_path : "the model",
                               a->score ? a->score : "model's");
    int use_model = !strcmp(from, "model");
    if (use_model)
        from = stored_set;
    if (!strcmp(from, "train") || !strcmp(from, "validation")) {
        int train = !strcmp(from, "train");
        if (!meta)
            return cli_usage_error(cmd, "--threshold-from %s needs --model", from);
        if (!stored_scores_apply(a, meta))
            return cli_usage_error(cmd, "the scores stored in %s are by the model's own rule, not --score %s",
                                   a->model_path, a->score);
        values = ae_meta_get_floats(meta, train ? AE_KEY_TRAIN_ERRORS : AE_KEY_VAL_ERRORS, &nv);
        if (!values || nv == 0)
            return cli_usage_error(cmd, "%s holds no %s errors", a->model_path, train ? "training" : "validation");
        for (size_t i = 0; i < nv; i++)
            if (!isfinite(values[i])) {
                ae_fail(&err, AE_ERR_FORMAT, "%s: bad model file: %s score %zu is %g", a->model_path,
                        train ? "training" : "validation", i, (double)values[i]);
                return cli_report_error(&err);
            }
        snprintf(source, sizeof source, "%s scores stored in the model%s", train ? "training" : "validation",
                 use_model ? " (its threshold)" : "");
    } else if (strcmp(from, "scored"))
        return cli_usage_error(cmd, "--threshold-from wants model, scored, train or validation, not '%s'", from);
    double q = use_model ? stored_q : isnan(a->quantile) ? 0.95 : a->quantile;
    if (!isnan(a->threshold))
        s = ae_threshold_fixed(a->threshold, "--threshold", t, &err);
    else if (!isnan(a->sd_k))
        s = ae_threshold_mean_sd(values, nv, a->sd_k, source, t, &err);
    else if (q < 0) { /* --best-f1 */
        if (!labels)
            return cli_usage_error(cmd, "--best-f1 needs labels (--normal-class with labelled data)");
        s = ae_threshold_best_f1(scores, labels, n, "scored set (labels)", t, &err);
    } else {
        if (!(q >= 0 && q <= 1))
            return cli_usage_error(cmd, "--quantile wants a value in [0, 1], not %g", q);
        s = ae_threshold_quantile(values, nv, q, source, t, &err);
    }
    return s == AE_OK ? 0 : cli_report_error(&err);
}

void cli_print_metrics(const ae_metrics_summary *m)
{
    const ae_threshold *t = &m->threshold;
    FILE *o = stdout;
    if (cli_out.json) {
        cli_json j;
        cli_json_begin(&j, "metrics");
        cli_json_metrics(&j, m);
        cli_json_end(&j);
        return;
    }
    fprintf(o, "threshold     %s", t->name);
    if (t->rule == AE_RULE_QUANTILE)
        fprintf(o, " %g (numpy linear interpolation)", t->param);
    else if (t->rule == AE_RULE_MEAN_SD)
        fprintf(o, " mean + %g sd", t->param);
    fprintf(o, " = %.6g, computed on %zu values from the %s\n", t->value, t->num_values, t->source);
    fprintf(o, "flagged       %zu of %zu images (score >= threshold)\n", m->flagged, m->count);
    if (m->has_labels) {
        fprintf(o, "anomalies     %zu known, %zu found among the flagged\n", m->num_anomalies, m->confusion.tp);
        fprintf(o, "precision     %.4f   recall %.4f   F1 %.4f\n", m->precision, m->recall, m->f1);
        if (!isnan(m->roc_auc))
            fprintf(o, "ROC AUC       %.4f   average precision %.4f\n", m->roc_auc, m->average_precision);
        if (!isnan(m->best_f1))
            fprintf(o, "best F1       %.4f at threshold %.6g\n", m->best_f1, m->best_f1_threshold);
        if (!isnan(m->pixel_auc))
            fprintf(o, "pixel ROC AUC %.4f (every pixel's error against the ground-truth masks)\n", m->pixel_auc);
        size_t width = 5; /* names (a folder's) when the classes have them, aligned */
        char num[16];
        for (int i = 0; i < m->num_class_auc; i++) {
            size_t len = strlen(cli_class_label(m->class_auc[i].class_id, num, sizeof num));
            width = len > width && len <= 40 ? len : width;
        }
        for (int i = 0; i < m->num_class_auc; i++) {
            const char *name = cli_class_label(m->class_auc[i].class_id, num, sizeof num);
            fputs("  class ", o);
            cli_put_text(o, name);
            fprintf(o, "%*s AUROC vs normal %.4f (%zu images)\n",
                    strlen(name) < width ? (int)(width - strlen(name)) : 0, "", m->class_auc[i].auc,
                    m->class_auc[i].count);
        }
    }
    for (unsigned f = 1; f < (1u << AE_NUM_WARNINGS); f <<= 1)
        if (m->warnings & f)
            fprintf(stderr, "aedet: warning: %s\n", ae_warning_text(f));
}

int cli_per_class_auc(const float *scores, const int *classes, size_t n, const int *normal, int num_normal,
                      ae_metrics_summary *m)
{
    /* Only worth a table with two or more anomaly classes present. */
    int eval_classes[AE_MAX_CLASS_AUC], ne = 0, max_class = -1;
    for (size_t i = 0; i < n; i++)
        max_class = classes[i] > max_class ? classes[i] : max_class;
    for (int c = 0; c <= max_class && ne < AE_MAX_CLASS_AUC; c++) {
        int is_normal = 0, present = 0;
        for (int k = 0; k < num_normal; k++)
            is_normal |= c == normal[k];
        for (size_t i = 0; i < n && !present; i++)
            present = classes[i] == c;
        if (!is_normal && present)
            eval_classes[ne++] = c;
    }
    if (ne < 2 || m->num_normals == 0)
        return 0;
    ae_error err = {0};
    if (ae_per_class_auc(scores, classes, n, normal, num_normal, eval_classes, ne, m->class_auc, &err) != AE_OK)
        return cli_report_error(&err);
    m->num_class_auc = ne;
    for (int i = 0; i < ne; i++) { /* the names metrics.json and --json give */
        char num[16];
        const char *name = cli_class_label(m->class_auc[i].class_id, num, sizeof num);
        if (name != num && strlen(name) < sizeof m->class_auc[i].name) /* never cut mid-character */
            memcpy(m->class_auc[i].name, name, strlen(name) + 1);
    }
    return 0;
}
