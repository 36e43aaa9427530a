/* aedet eval SCORES.csv: the metrics of scores already computed (by `aedet
 * score`, or by any tool that writes a score and a label column), under any
 * threshold rule, without running a model again. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const cli_command eval_cmd = {
    "eval", "SCORES.csv [options]",
    "Evaluates scores against labels: ROC AUC, average precision, precision, recall, F1 and\n"
    "the confusion matrix at the threshold, the F1-best threshold, per-class AUROC.",
    "SCORES.csv needs a score column and a label column (as 'aedet score -o' writes them).\n"
    "Labels that are all 0 or 1 are read as normal (0) / anomaly (1); with other class\n"
    "numbers the class named good (a class column, as score writes it; or the images of a\n"
    "folder named good) is normal, else --normal-class N or NAME says which are. The\n"
    "threshold flags are those of 'aedet score'; --threshold-from train|validation needs\n"
    "--model. Images are flagged when score >= threshold.",
    1, 1};

static int parse_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return end != s && *end == '\0' && !errno;
}

int cmd_eval(int argc, char **argv)
{
    cli_score_args a;
    cli_score_defaults(&a);
    const char *score_column = "score", *label_column = "label", *class_column = "class";
    const char **names = NULL; /* class names from class_column */
    int num_names = 0;
    int best_f1 = 0;
    const cli_option opts[] = {
        {"normal-class", OPT_LIST, &a.data.normal, "N", "labels or class names of normal images (repeatable) [good; 0 when labels are 0/1]"},
        {"score-column", OPT_STRING, &score_column, "NAME", "column with the scores [score]"},
        {"label-column", OPT_STRING, &label_column, "NAME", "column with the labels [label]"},
        {"class-column", OPT_STRING, &class_column, "NAME", "column with the class names, for --normal-class NAME [class]"},
        CLI_THRESHOLD_OPTIONS(a, best_f1),
        {"model", OPT_STRING, &a.model_path, "MODEL", "model whose stored errors --threshold-from uses"},
        {0},
    };
    const char *pos[1];
    int npos, rc = cli_parse(&eval_cmd, opts, argc, argv, pos, &npos);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (best_f1)
        a.quantile = -1;

    const cli_path inputs[] = {{"the scores", pos[0], 0}, {"the model", a.model_path, 0}};
    const cli_path output = {"--metrics", a.metrics, 0};
    if ((rc = cli_check_outputs(&eval_cmd, inputs, 2, NULL, &output, 1)))
        return rc;
    ae_error err = {0};
    ae_csv csv;
    if (ae_csv_read(pos[0], &csv, &err) != AE_OK)
        return cli_report_error(&err);
    ae_meta *meta = NULL;
    float *scores = malloc((csv.num_rows ? csv.num_rows : 1) * sizeof *scores);
    int *classes = malloc((csv.num_rows ? csv.num_rows : 1) * sizeof *classes);
    int *labels = malloc((csv.num_rows ? csv.num_rows : 1) * sizeof *labels);
    int sc = ae_csv_column(&csv, score_column), lc = ae_csv_column(&csv, label_column);
    int normal[32], nn = 0, have_labels = 0, binary = 1;
    if (!scores || !classes || !labels) {
        ae_fail(&err, AE_ERR_NOMEM, "out of memory for %zu scores", csv.num_rows);
        rc = cli_report_error(&err);
        goto done;
    }
    if (sc < 0) {
        rc = cli_usage_error(&eval_cmd, "%s has no column \"%s\" (see --score-column)", pos[0], score_column);
        goto done;
    }
    if (csv.num_rows == 0) {
        ae_fail(&err, AE_ERR_DATA, "%s: no rows", pos[0]);
        rc = cli_report_error(&err);
        goto done;
    }
    /* Labels are all present (whole numbers) or all empty; anything else is
     * an error on its line, not a quiet switch to "no labels". */
    have_labels = lc >= 0 && csv.row_columns[0] > lc && csv.rows[0][lc][0] != '\0';
    for (size_t r = 0; r < csv.num_rows; r++) {
        double v, label = -1;
        int need = (sc > lc ? sc : lc) + 1;
        const char *problem = NULL;
        if (csv.row_columns[r] < need)
            problem = "too few columns";
        else if (!parse_number(csv.rows[r][sc], &v) || isnan(v))
            problem = "the score is not a number";
        else if (have_labels && (!parse_number(csv.rows[r][lc], &label) || !(label >= 0 && label <= 1e6) ||
                                 label != floor(label)))
            problem = "the label is not a class number";
        else if (!have_labels && lc >= 0 && csv.rows[r][lc][0] != '\0')
            problem = "a label where the first row has none";
        if (problem) {
            ae_fail(&err, AE_ERR_DATA, "%s line %zu: %s", pos[0], csv.row_line[r], problem);
            rc = cli_report_error(&err);
            goto done;
        }
        scores[r] = (float)v;
        classes[r] = (int)label;
        binary &= classes[r] == 0 || classes[r] == 1;
    }
    if (have_labels)
        names = cli_csv_class_names(&csv, class_column, classes, &num_names);
    if ((rc = cli_list_classes(&eval_cmd, "normal-class", &a.data.normal, names, num_names, normal, 32, &nn)))
        goto done;
    /* MVTec's good (and the folder layout's normal class, when named good) is normal. */
    int good = have_labels && nn == 0 && !binary ? cli_csv_good_class(&csv, classes, names, num_names) : -1;
    if (good >= 0)
        normal[nn++] = good;
    cli_set_class_names(names, num_names);
    if (have_labels && nn == 0) {
        if (!binary) {
            rc = cli_usage_error(&eval_cmd, "the labels are class numbers: say which are normal with --normal-class");
            goto done;
        }
        normal[nn++] = 0;
    }
    for (size_t r = 0; r < csv.num_rows && have_labels; r++) {
        labels[r] = 1;
        for (int k = 0; k < nn; k++)
            labels[r] &= classes[r] != normal[k];
    }
    if (a.model_path) {
        ae_model *m = NULL;
        if (ae_model_load(a.model_path, 1, &m, &meta, NULL, &err) != AE_OK) {
            rc = cli_report_error(&err);
            goto done;
        }
        ae_model_free(m);
    }
    ae_threshold t;
    ae_metrics_summary sum;
    if ((rc = cli_choose_threshold(&eval_cmd, &a, scores, have_labels ? labels : NULL, csv.num_rows, meta, &t)))
        goto done;
    if (ae_metrics_summarize(scores, have_labels ? labels : NULL, csv.num_rows, &t, &sum, &err) != AE_OK ||
        (a.metrics && ae_metrics_write_json(a.metrics, &sum, &err) != AE_OK)) {
        rc = cli_report_error(&err);
        goto done;
    }
    if (have_labels && (rc = cli_per_class_auc(scores, classes, csv.num_rows, normal, nn, &sum)))
        goto done;
    cli_print_metrics(&sum);
done:
    cli_set_class_names(NULL, 0);
    free(names);
    ae_meta_free(meta);
    free(scores);
    free(classes);
    free(labels);
    ae_csv_free(&csv);
    return rc;
}
