/* aedet demo: the tutorial's experiment, done honestly, on data every Debian
 * machine can have: Fashion-MNIST, normal class 5 (sandals) with 1% of class 1
 * (trousers) mixed in, 80/20 split, 32x32, the tutorial's model and optimizer,
 * then the 0.95-quantile threshold over the whole contaminated set. */
#include "cli.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

static const cli_command demo_cmd = {
    "demo", "[options]",
    "Runs the tutorial's experiment end to end on Fashion-MNIST (Debian's dataset-fashion-mnist):\n"
    "trains on class 5 with round(1% x 6000) = 60 images of class 1 mixed in, scores every\n"
    "image of that set, flags the errors >= the 0.95 quantile, and says how many of the\n"
    "mixed-in anomalies were found.",
    "Writes DIR/model.aedet, DIR/scores.csv, DIR/metrics.json, DIR/report.html and\n"
    "DIR/metrics_validation.json (the held-out split alone). Every training and data\n"
    "flag of 'aedet train' can be changed here too; the same run on DeepWeeds is\n"
    "  aedet train deepweeds/ --labels labels.csv --normal-class 5 --anomaly-class 1 -o m.aedet\n"
    "  aedet score m.aedet deepweeds/ --labels labels.csv --normal-class 5 --anomaly-class 1",
    0, 0};

int cmd_demo(int argc, char **argv)
{
    cli_train_args t;
    cli_train_defaults(&t);
    const char *dir = "aedet-demo", *data_dir = FASHION_DIR, *report = NULL;
    int top = 10;
    const cli_option opts[] = {
        {"output", OPT_STRING, &dir, "DIR", "folder for the model, scores and metrics [aedet-demo]"},
        {"data-dir", OPT_STRING, &data_dir, "DIR", "Fashion-MNIST IDX files [" FASHION_DIR "]"},
        {"report", OPT_OUTPUT, &report, "FILE", "the HTML report [DIR/report.html]"},
        CLI_TRAINING_OPTIONS(t),
        {"top", OPT_INT, &top, "N", "most anomalous images to print [10]"},
        CLI_DATA_OPTIONS(t.data),
        {0},
    };
    const char *pos[1];
    int npos, rc = cli_parse(&demo_cmd, opts, argc, argv, pos, &npos);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (!t.data.normal.count) {
        t.data.normal.items[t.data.normal.count++] = "5";
        if (!t.data.anomaly.count)
            t.data.anomaly.items[t.data.anomaly.count++] = "1";
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "aedet demo: cannot make %s: %s\n", dir, strerror(errno));
        return EXIT_IO;
    }
    static char images[4096], labels[4096], model[4096], scores[4096], metrics[4096], report_path[4096];
    snprintf(images, sizeof images, "%s/train-images-idx3-ubyte.gz", data_dir);
    snprintf(labels, sizeof labels, "%s/train-labels-idx1-ubyte.gz", data_dir);
    snprintf(model, sizeof model, "%s/model.aedet", dir);
    snprintf(scores, sizeof scores, "%s/scores.csv", dir);
    snprintf(metrics, sizeof metrics, "%s/metrics.json", dir);
    snprintf(report_path, sizeof report_path, "%s/report.html", dir);
    if (!report)
        report = report_path;
    if (!t.data.labels)
        t.data.labels = labels;
    if (!t.size.height)
        t.size.height = t.size.width = 32;
    t.data_path = images;
    t.output = model;
    static char held_out[4096];
    snprintf(held_out, sizeof held_out, "%s/metrics_validation.json", dir);
    /* Every output, before training (scoring checks its own again later). */
    const cli_path inputs[] = {{"the images", images, 0}, {"the labels", t.data.labels, 0}};
    const cli_path outputs[] = {{"the model", model, 0}, {"the scores", scores, 0}, {"the metrics", metrics, 0},
                                {"the validation metrics", held_out, 0}, {"--report", report, 0}};
    if ((rc = cli_check_outputs(&demo_cmd, inputs, 2, NULL, outputs, 5)))
        return rc;
    if ((rc = cli_train_run(&demo_cmd, &t)))
        return rc;

    cli_score_args s;
    cli_score_defaults(&s);
    s.data = t.data;
    s.model_path = model;
    s.data_path = images;
    s.output = scores;
    s.metrics = metrics;
    s.report = report;
    s.top = top;
    s.threshold_from = "scored"; /* the tutorial's rule: the 0.95 quantile of the contaminated set */
    if (!cli_out.quiet && !cli_out.json)
        printf("\nscoring every image of the contaminated set (%s, classes %s + %s)\n", images,
               t.data.normal.items[0], t.data.anomaly.count ? t.data.anomaly.items[0] : "none");
    fflush(stdout);
    if ((rc = cli_score_run(&demo_cmd, &s)))
        return rc;

    /* The tutorial scored only its test split: the same figures on the images
     * the model never trained on, with a threshold of their own. */
    s.split = "validation";
    s.output = s.report = NULL;
    s.metrics = held_out;
    s.top = 0;
    if (!cli_out.quiet && !cli_out.json)
        printf("\nthe held-out validation split only (the images the model never trained on)\n");
    fflush(stdout);
    if ((rc = cli_score_run(&demo_cmd, &s)))
        return rc;
    if (!cli_out.json)
        printf("\nwrote %s, %s, %s, %s and %s\n", model, scores, metrics, held_out, report);
    return 0;
}
