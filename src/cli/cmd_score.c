/* aedet score MODEL DATA: every image's reconstruction error, the threshold
 * rule and its value, the flagged images, and metrics when labels are known. */
#include "cli.h"
#include "dist.h"
#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void cli_score_defaults(cli_score_args *a)
{
    *a = (cli_score_args){0};
    cli_data_defaults(&a->data);
    a->quantile = NAN; /* 0.95 when the threshold comes from the scored set */
    a->threshold = NAN;
    a->sd_k = NAN;
    a->threshold_from = "auto";
    a->split = "all";
    a->pixel_maps = "model";
    a->top = 10;
    a->gallery = 8;
}

const char *cli_item_name(const ae_dataset *ds, size_t item, char *buf, size_t size)
{
    return ae_item_name(&ds->items[item], buf, size);
}



/* --json: one record per image, most anomalous first (as scores.csv), then
 * the summary with the metrics. */
static void print_json(const cli_score_args *a, const ae_metrics_summary *m, const ae_dataset *ds,
                       const size_t *items, const float *scores, const size_t *order, size_t n,
                       double seconds, const char *rule)
{
    char buf[64], cls[64];
    cli_json j;
    for (size_t r = 0; r < n; r++) {
        size_t i = order[r];
        const ae_item *it = &ds->items[items[i]];
        cli_json_begin(&j, "image");
        cli_json_int(&j, "rank", (long long)r + 1);
        cli_json_str(&j, "image", ae_item_name(it, buf, sizeof buf));
        cli_json_key(&j, "label");
        if (it->label >= 0)
            fprintf(j.f, "%d", it->label);
        else
            fputs("null", j.f);
        cli_json_str(&j, "class", it->label >= 0 ? ae_class_name(ds, it->label, cls, sizeof cls) : NULL);
        cli_json_num(&j, "score", scores[i], 9);
        cli_json_num(&j, "threshold", m->threshold.value, 9);
        cli_json_bool(&j, "flagged", scores[i] >= m->threshold.value);
        cli_json_end(&j);
    }
    cli_json_begin(&j, "metrics");
    cli_json_str(&j, "split", a->split);
    cli_json_int(&j, "images", (long long)n);
    cli_json_num(&j, "seconds", seconds, 6);
    cli_json_str(&j, "score_rule", rule);
    cli_json_metrics(&j, m);
    cli_json_end(&j);
}

static void print_summary(const cli_score_args *a, const ae_metrics_summary *m, const ae_dataset *ds,
                          const size_t *items, const float *scores, const size_t *order, size_t n)
{
    cli_print_metrics(m);
    FILE *o = stdout;
    size_t show = n < (size_t)a->top ? n : (size_t)a->top;
    if (show)
        fprintf(o, "most anomalous:\n");
    char buf[64];
    for (size_t r = 0; r < show; r++) {
        size_t i = order[r];
        const ae_item *it = &ds->items[items[i]];
        fprintf(o, "  %3zu  %.6f  %s  ", r + 1, scores[i], scores[i] >= m->threshold.value ? "FLAG" : "    ");
        cli_put_text(o, ae_item_name(it, buf, sizeof buf));
        if (it->label >= 0) {
            char num[16];
            const char *name = ae_class_name(ds, it->label, buf, sizeof buf);
            snprintf(num, sizeof num, "%d", it->label);
            fprintf(o, "  (label %d", it->label);
            if (strcmp(name, num)) {
                fputs(", ", o);
                cli_put_text(o, name);
            }
            fputs(")", o);
        }
        fprintf(o, "\n");
    }
}

/* A threshold that flags far more or far fewer images than the labels call
 * anomalies is worth a word: the 0.95 quantile of the scored set flags 5%
 * whatever the data holds. */
static void warn_flagged_share(const ae_metrics_summary *m)
{
    if (!m->has_labels || !m->count || cli_out.json)
        return;
    double flagged = (double)m->flagged / (double)m->count, labelled = (double)m->num_anomalies / (double)m->count;
    if (flagged > 2 * labelled + 0.01 || flagged < 0.5 * labelled - 0.01)
        fprintf(stderr, "aedet: warning: the threshold flags %.1f%% of the images, but the labels say %.1f%% are "
                        "anomalies (choose it with --threshold-from, --quantile or --threshold)\n",
                100 * flagged, 100 * labelled);
}

/* scores.csv, most anomalous first, streamed to a temp file renamed into place. */
static int write_scores_csv(const char *path, const ae_dataset *ds, const size_t *items, const float *scores,
                            const size_t *order, size_t n, double threshold)
{
    char buf[64];
    ae_atomic_file af;
    ae_error err;
    if (ae_atomic_open(path, &af, &err) != AE_OK)
        return cli_report_error(&err);
    FILE *f = af.f;
    fprintf(f, "rank,image,label,score,threshold,flagged,class\n");
    for (size_t r = 0; r < n; r++) {
        size_t i = order[r];
        const ae_item *it = &ds->items[items[i]];
        fprintf(f, "%zu,", r + 1);
        cli_csv_field(f, ae_item_name(it, buf, sizeof buf));
        if (it->label >= 0)
            fprintf(f, ",%d", it->label);
        else
            fputc(',', f);
        fprintf(f, ",%.9g,%.9g,%d,", scores[i], threshold, scores[i] >= threshold);
        if (it->label >= 0 && ds->num_classes > 0) /* the class's name: a folder's, MVTec's, a CSV's Species */
            cli_csv_field(f, ae_class_name(ds, it->label, buf, sizeof buf));
        fputc('\n', f);
    }
    return ae_atomic_commit(&af, 1, &err) == AE_OK ? 0 : cli_report_error(&err);
}

int cli_score_run(const cli_command *cmd, cli_score_args *a)
{
    cli_session se;
    /* report's -o is a->report and its --csv a->output (run_score) */
    int as_report = !strcmp(cmd->name, "report");
    const cli_path outputs[] = {{as_report ? "--csv" : "-o", a->output, 0}, {"--metrics", a->metrics, 0},
                                {as_report ? "-o" : "--report", a->report, 0}};
    int rc = cli_session_open(cmd, &a->data, a->model_path, a->data_path, a->split, outputs, 3, &se);
    if (rc)
        return rc;
    if (strcmp(a->pixel_maps, "model") && strcmp(a->pixel_maps, "input")) {
        cli_session_close(&se);
        return cli_usage_error(cmd, "--pixel-maps wants model or input, not '%s'", a->pixel_maps);
    }
    if (a->data.normal_dir && !cli_out.quiet && !cli_out.json) /* which images the folder layout took */
        fprintf(stderr, "data          %s\n", se.ds.description);
    if ((rc = cli_session_detector(cmd, &se, a->model_path, a->score))) {
        cli_session_close(&se);
        return rc;
    }
    ae_error err = {0};
    /* under mpirun, every rank's images (dist.h) */
    size_t n = cli_dist_total(ae_loader_count(se.loader)), *scored = NULL, *order = NULL;
    float *scores = NULL;
    int *labels = NULL, *classes = NULL;
    cli_pixel_maps *maps = NULL;
    scores = malloc((n ? n : 1) * sizeof *scores);
    scored = malloc((n ? n : 1) * sizeof *scored);
    order = malloc((n ? n : 1) * sizeof *order);
    labels = malloc((n ? n : 1) * sizeof *labels);
    classes = malloc((n ? n : 1) * sizeof *classes);
    if (!scores || !scored || !order || !labels || !classes) {
        ae_fail(&err, AE_ERR_NOMEM, "out of memory for %zu scores", n);
        rc = cli_report_error(&err);
        goto done;
    }
    maps = cli_pixel_maps_begin(&se);
    double started = cli_now();
    if (ae_score_loader_by(se.model, se.detector, se.loader, a->data.batch, scores, scored,
                           maps ? cli_pixel_maps_visit : NULL, maps, &err) != AE_OK) {
        rc = cli_report_error(&err);
        goto done;
    }
    cli_session_passed(&se, &n);
    /* rank 0 goes on with every rank's scores, in the input order */
    if ((rc = cli_dist_gather_scores(scores, scored, ae_loader_count(se.loader))) || cli_dist_rank() != 0)
        goto done;
    double seconds = cli_now() - started;
    char rule[32];
    ae_score_rule_name(ae_detector_rule(se.detector), rule, sizeof rule);
    if (!cli_out.quiet && !cli_out.json)
        fprintf(stderr, "scored %zu images in %.2fs (%.0f images/s, %.3f ms/image), score %s\n", n, seconds,
                (double)n / seconds, 1000 * seconds / (double)(n ? n : 1), rule);

    /* Labels for evaluation: anomaly = any class outside --normal-class
     * (MVTec: outside "good"). They never influence the scores. */
    int normal[32], nn = 0;
    if ((rc = cli_list_classes(cmd, "normal-class", &a->data.normal, (const char *const *)se.ds.class_names,
                               se.ds.num_classes, normal, 32, &nn)))
        goto done;
    char first_class[32];
    /* MVTec's good, and the folder layout's normal folder, are class 0. */
    int have_labels = se.ds.num_classes > 0 &&
                      (nn > 0 || a->data.normal_dir ||
                       !strcmp(ae_class_name(&se.ds, 0, first_class, sizeof first_class), "good"));
    cli_set_class_names((const char *const *)se.ds.class_names, se.ds.num_classes);
    if (!strcmp(a->split, "all"))
        cli_warn_trained_overlap(se.meta, &se.ds, scored, n);
    if (have_labels && nn == 0)
        normal[nn++] = 0;
    for (size_t i = 0; i < n && have_labels; i++) {
        classes[i] = se.ds.items[scored[i]].label;
        labels[i] = 1;
        for (int k = 0; k < nn; k++)
            if (classes[i] == normal[k])
                labels[i] = 0;
    }
    ae_threshold t;
    if ((rc = cli_choose_threshold(cmd, a, scores, have_labels ? labels : NULL, n, se.meta, &t)))
        goto done;
    ae_metrics_summary m;
    if (ae_metrics_summarize(scores, have_labels ? labels : NULL, n, &t, &m, &err) != AE_OK) {
        rc = cli_report_error(&err);
        goto done;
    }
    if (have_labels && (rc = cli_per_class_auc(scores, classes, n, normal, nn, &m)))
        goto done;
    rc = cli_pixel_maps_finish(maps, &se, scored, !strcmp(a->pixel_maps, "input"), &m.pixel_auc);
    maps = NULL;
    if (rc)
        goto done;
    /* Most anomalous first; ties in data order, the same as the report's. */
    if (ae_rank_by_score(scores, n, order, &err) != AE_OK) {
        rc = cli_report_error(&err);
        goto done;
    }
    if (cli_out.json)
        print_json(a, &m, &se.ds, scored, scores, order, n, seconds, rule);
    else
        print_summary(a, &m, &se.ds, scored, scores, order, n);
    warn_flagged_share(&m);
    fflush(stdout);
    if (a->output && (rc = write_scores_csv(a->output, &se.ds, scored, scores, order, n, t.value)))
        goto done;
    if (a->metrics && ae_metrics_write_json(a->metrics, &m, &err) != AE_OK) {
        rc = cli_report_error(&err);
        goto done;
    }
    if (a->report) {
        if ((rc = cli_write_report(a->report, se.model, se.meta, &se.ds, scored, scores, n,
                                   have_labels ? labels : NULL, &m, a->gallery, NULL)))
            goto done;
        if (!cli_out.quiet && !cli_out.json)
            fprintf(stderr, "wrote the report to %s\n", a->report);
    }

done:
    cli_set_class_names(NULL, 0);
    cli_pixel_maps_free(maps);
    free(scores);
    free(scored);
    free(order);
    free(labels);
    free(classes);
    cli_session_close(&se);
    return rc;
}

static const cli_command score_cmd = {
    "score", "MODEL DATA|--normal-dir DIR [options] [-o scores.csv]",
    "Scores every image in DATA by the model's score rule (by default its reconstruction\n"
    "error: mean squared error over all pixels and channels) and flags those with score >=\n"
    "the threshold.",
    "The threshold is the one stored in MODEL by training (the 0.99 quantile of the held-out\n"
    "validation scores), so new images can be scored one at a time. --threshold-from scored\n"
    "(or --quantile Q) takes the 0.95 (Q) quantile of the scored set's scores instead, as in\n"
    "the tutorial; --threshold-from train|validation a quantile of the scores stored in\n"
    "MODEL; --threshold X fixes it, --mean-sd K uses mean + K standard deviations, --best-f1\n"
    "the F1-best one (labels). --score picks another rule (docs/QUALITY.md): max or topk:P\n"
    "for small defects, relative or combined for images simpler than the normal ones.\n"
    "Images are compared with >=: an image whose error equals the threshold is flagged.\n"
    "DATA's images are all scored, unless --anomaly-class asks for the tutorial's recipe;\n"
    "--split validation scores only the images the model held out (same data flags as train).\n"
    "With labels (--normal-class N or NAME, an MVTec test split, or the folder layout) it\n"
    "prints precision, recall, F1, ROC AUC, average precision, how many known anomalies were\n"
    "flagged, and the AUROC of each class by name; with masks, the pixel ROC AUC.\n"
    "The folder layout replaces DATA: --normal-dir good/ --abnormal-dir crack/ [--abnormal-dir\n"
    "dent/ ...] [--mask-dir masks/] scores the normal images training held out (its\n"
    "--test-split, stored in MODEL, or --normal-test-dir DIR) and every abnormal image.\n"
    "A warning says when scored images are images the model trained on.\n"
    "DATA may be one image file, '-' (image paths on standard input, one a line) or @LIST\n"
    "(the paths in the file LIST). --json prints one line per image, most anomalous first\n"
    "({\"event\":\"image\",\"rank\",\"image\",\"label\",\"class\",\"score\",\"threshold\",\"flagged\"}),\n"
    "then one summary line ({\"event\":\"metrics\",...,\"metrics\":{as --metrics writes}}).\n"
    "scores.csv: rank,image,label,score,threshold,flagged,class, most anomalous first.",
    1, 2};

static const cli_command report_cmd = {
    "report", "MODEL DATA|--normal-dir DIR -o report.html [options]",
    "Scores DATA like 'aedet score' and writes one self-contained HTML report: configuration,\n"
    "loss per epoch, error histogram with the threshold, ROC and precision-recall curves (with\n"
    "labels), a gallery of input, reconstruction and error map, and the flagged images.",
    "Takes every option of 'aedet score'; -o names the HTML file (--csv FILE keeps the scores).",
    1, 2};

static int run_score(const cli_command *cmd, int argc, char **argv, int as_report)
{
    cli_score_args a;
    cli_score_defaults(&a);
    int best_f1 = 0;
    const cli_option opts[] = {
        {"output", OPT_OUTPUT, &a.output, "FILE", as_report ? "HTML report to write (also -o)" : "scores CSV to write (also -o)"},
        {"csv", OPT_OUTPUT, &a.csv, "FILE", "also write the scores CSV (report)"},
        CLI_THRESHOLD_OPTIONS(a, best_f1),
        {"split", OPT_STRING, &a.split, "SET", "score all of DATA, or the model's train or validation split [all]"},
        {"score", OPT_STRING, &a.score, "RULE", "mse, max, topk:P, ssim, relative, latent-knn, combined [the model's]"},
        {"pixel-maps", OPT_STRING, &a.pixel_maps, "SIZE", "pixel AUROC at the model's size or each input's: model, input [model]"},
        {"top", OPT_INT, &a.top, "N", "most anomalous images to print [10]"},
        {"report", OPT_OUTPUT, &a.report, "FILE", "write a self-contained HTML report"},
        {"gallery", OPT_INT, &a.gallery, "K", "report: most anomalous and typical images shown [8]"},
        CLI_DATA_OPTIONS(a.data),
        {0},
    };
    const char *pos[2];
    int npos, rc = cli_parse(cmd, opts, argc, argv, pos, &npos);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (best_f1)
        a.quantile = -1;
    if (as_report) {
        if (!a.output)
            return cli_usage_error(cmd, "-o report.html is required");
        a.report = a.output;
        a.output = a.csv;
    }
    a.model_path = pos[0];
    a.data_path = npos > 1 ? pos[1] : NULL;
    if ((rc = cli_folder_flags_alone(cmd, &a.data)))
        return rc;
    if (!a.data_path && !a.data.normal_dir)
        return cli_usage_error(cmd, "DATA (or --normal-dir DIR) is required");
    return cli_score_run(cmd, &a);
}

int cmd_score(int argc, char **argv) { return run_score(&score_cmd, argc, argv, 0); }
int cmd_report(int argc, char **argv) { return run_score(&report_cmd, argc, argv, 1); }
