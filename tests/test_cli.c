/* The aedet command end to end on small data it makes itself: every
 * subcommand, the error exits, resume after an interruption, and the demo. */
#include "support.h"

#include "aedet.h"
#include "nn/kernels/isa.h" /* ae_isa_supported, ae_isa_best */

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A path under the test folder that stays valid (test_path's slots rotate). */
#define TMP_PATH(var, name)                                                                        \
    char var[256];                                                                                 \
    snprintf(var, sizeof var, "%s/%s", test_tmpdir(), name)

#define NUM_NORMAL 40
#define NUM_ODD 4
#define SIDE 16




static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Smooth gradients are normal; salt-and-pepper noise is the odd one out. */
static void make_image(uint8_t *px, int k, int odd)
{
    ae_rng r;
    ae_rng_seed(&r, (uint64_t)k + (odd ? 1000u : 0u));
    double angle = 0.3 * k;
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) {
            double v = 0.5 + 0.4 * sin(angle + 0.3 * x + 0.2 * y);
            if (odd)
                v = (ae_rng_next(&r) & 1) ? 0.95 : 0.05;
            px[y * SIDE + x] = (uint8_t)(v * 255);
        }
}

static int setup_data(void **state)
{
    (void)state;
    char path[512];
    uint8_t px[SIDE * SIDE];
    mkdir(test_path("classes"), 0777);
    mkdir(test_path("classes/0_normal"), 0777);
    mkdir(test_path("classes/1_odd"), 0777);
    for (int k = 0; k < NUM_NORMAL + NUM_ODD; k++) {
        int odd = k >= NUM_NORMAL;
        make_image(px, k, odd);
        snprintf(path, sizeof path, "%s/classes/%s/img%02d.png", test_tmpdir(), odd ? "1_odd" : "0_normal", k);
        test_write_png(path, px, SIDE, SIDE, 0, 8);
    }
    return 0;
}

#define SMALL "--size 16 --filters 4,8 --latent 4 --batch 8 --threads 1"

static void test_help_and_usage_errors(void **state)
{
    (void)state;
    assert_int_equal(test_run("--help"), 0);
    test_expect_output("exit codes");
    assert_int_equal(test_run("train --help"), 0);
    test_expect_output("epochs [30]");
    test_expect_output("[0.001]");
    assert_int_equal(test_run("score --help"), 0);
    test_expect_output(">=");
    assert_int_equal(test_run("frobnicate"), 2);
    test_expect_output("unknown command");
    assert_int_equal(test_run("train %s --epoch 3 -o m", test_path("classes")), 2);
    test_expect_output("did you mean --epochs");
    assert_int_equal(test_run("train %s --epochs many -o m", test_path("classes")), 2);
    test_expect_output("--epochs wants a whole number");
    assert_int_equal(test_run("train %s", test_path("classes")), 2);
    test_expect_output("-o MODEL is required");
    assert_int_equal(test_run("train %s --size 15 -o %s", test_path("classes"), test_path("m")), 2);
    test_expect_output("divisible");
    assert_int_equal(test_run("score"), 2);
    assert_int_equal(test_run("train %s --checkpoint %s -o %s", test_path("classes"), test_path("m"), test_path("m")), 2);
    test_expect_output("--checkpoint must differ from -o");
    assert_int_equal(test_run("score m d --split half"), 2);
}

static void test_train_score_encode_reconstruct(void **state)
{
    (void)state;
    TMP_PATH(model, "model.aedet");
    assert_int_equal(test_run("train %s --layout classes --epochs 3 " SMALL " -o %s", test_path("classes"), model), 0);
    test_expect_output("epoch   3/3");
    test_expect_output("44 images"); /* the resolved configuration is printed... */
    assert_true(file_exists(model));
    assert_false(file_exists(test_path("model.aedet.ckpt"))); /* ...and the checkpoint is gone */

    assert_int_equal(test_run("info %s", model), 0);
    test_expect_output("input 16x16x1");
    test_expect_output("train.errors");

    /* Scores keyed by path, most anomalous first, flagged by >= threshold. */
    TMP_PATH(scores, "scores.csv");
    /* By default, the threshold training stored: no labels, no scored set needed. */
    assert_int_equal(test_run("score %s %s --layout classes --normal-class 0 --batch 8", model, test_path("classes")), 0);
    test_expect_output("quantile 0.99");
    test_expect_output("validation scores stored in the model (its threshold)");
    /* The tutorial's rule on request. */
    assert_int_equal(test_run("score %s %s --layout classes --normal-class 0 --batch 8 -o %s --metrics %s "
                         "--threshold-from scored",
                         model, test_path("classes"), scores, test_path("metrics.json")),
                     0);
    test_expect_output("quantile 0.95");
    test_expect_output("score >= threshold");
    test_expect_output("ROC AUC");
    assert_int_equal(count_lines(scores), NUM_NORMAL + NUM_ODD + 1);
    assert_true(file_exists(test_path("metrics.json")));
    FILE *f = fopen(scores, "r");
    char line[1024];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "rank,image,label,score,threshold,flagged,class\n");
    double prev = INFINITY;
    int flagged = 0, odd_in_top = 0;
    for (int r = 1; fgets(line, sizeof line, f); r++) {
        char image[512];
        int rank, label, flag;
        double score, threshold;
        assert_int_equal(sscanf(line, "%d,%511[^,],%d,%lf,%lf,%d", &rank, image, &label, &score, &threshold, &flag), 6);
        assert_int_equal(rank, r);
        assert_true(score <= prev);
        assert_int_equal(flag, score >= threshold);
        assert_non_null(strstr(image, "img"));
        prev = score;
        flagged += flag;
        odd_in_top += r <= NUM_ODD && label == 1;
    }
    fclose(f);
    /* 0.95 quantile of 44 values (linear): 2 or 3 above it. */
    assert_in_range(flagged, 2, 3);
    /* Noise cannot be reconstructed like gradients: the odd ones rank first. */
    assert_int_equal(odd_in_top, NUM_ODD);

    TMP_PATH(latents, "latents.csv");
    assert_int_equal(test_run("encode %s %s --batch 8 -o %s", model, test_path("classes"), latents), 0);
    assert_int_equal(count_lines(latents), NUM_NORMAL + NUM_ODD + 1);
    f = fopen(latents, "r");
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "image,label,score,z0,z1,z2,z3\n");
    fclose(f);

    /* The HTML report: `aedet report`, and --report on score. */
    TMP_PATH(report, "report.html");
    assert_int_equal(test_run("report %s %s --layout classes --normal-class 0 --batch 8 -o %s", model,
                         test_path("classes"), report), 0);
    uint8_t *html;
    size_t html_len;
    ae_error html_err;
    assert_int_equal(ae_read_file(report, &html, &html_len, &html_err), AE_OK);
    assert_true(html_len > 1000);
    assert_memory_equal(html, "<!DOCTYPE html>", 15);
    assert_non_null(strstr((const char *)html, "img43.png")); /* an odd one, in the gallery */
    free(html);
    assert_int_equal(test_run("report %s %s --batch 8", model, test_path("classes")), 2);
    test_expect_output("-o report.html is required");

    TMP_PATH(dir, "recon");
    assert_int_equal(test_run("reconstruct %s %s --batch 8 --error-map -o %s", model, test_path("classes"), dir), 0);
    char png[512];
    snprintf(png, sizeof png, "%s/00000_img00.png", dir);
    ae_image img;
    ae_error err;
    assert_int_equal(ae_image_load(png, &img, &err), AE_OK);
    assert_int_equal(img.height, 16);
    assert_int_equal(img.channels, 1);
    ae_image_free(&img);
    snprintf(png, sizeof png, "%s/00043_img43_error.png", dir);
    assert_true(file_exists(png));
    snprintf(png, sizeof png, "%s/index.csv", dir);
    assert_int_equal(count_lines(png), NUM_NORMAL + NUM_ODD + 1);
}

/* LESSONS 4: every path gives the same score for the same image, bit for bit
 * (all print %.9g of a float, which round-trips exactly). */
/* Reads column col (0-based) of every data row of a CSV as floats. */
static int read_column(const char *path, int col, float *out, int max)
{
    ae_csv csv;
    ae_error err;
    assert_int_equal(ae_csv_read(path, &csv, &err), AE_OK);
    int n = 0;
    for (size_t r = 0; r < csv.num_rows && n < max; r++)
        out[n++] = strtof(csv.rows[r][col], NULL);
    ae_csv_free(&csv);
    return n;
}

static int compare_floats(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The score rules end to end: the rule trained with is stored and used, the
 * others are chosen at scoring, each ranks the noise images as it should, and the
 * stored threshold is the rule's own (its 0.99 quantile of the validation
 * scores, the same value `--threshold-from validation --quantile 0.99`
 * computes). */
static void test_score_rules(void **state)
{
    (void)state;
    TMP_PATH(model, "combined.aedet");
    TMP_PATH(scores, "rule_scores.csv");
    assert_int_equal(test_run("train %s --layout classes --epochs 3 --score combined " SMALL " -o %s",
                         test_path("classes"), model), 0);
    assert_int_equal(test_run("info %s", model), 0);
    test_expect_output("score.rule");
    test_expect_output("score.reference");
    test_expect_output("threshold.value");
    const char *rules[] = {"", "mse", "max", "topk:5", "ssim", "relative", "latent-knn"};
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        char flag[64] = "";
        if (rules[i][0])
            snprintf(flag, sizeof flag, "--score %s --threshold-from scored", rules[i]);
        assert_int_equal(test_run("score %s %s --layout classes --normal-class 0 --batch 8 %s -o %s", model,
                             test_path("classes"), flag, scores), 0);
        test_expect_output(rules[i][0] ? rules[i] : "score combined");
        float col[64];
        assert_int_equal(read_column(scores, 2, col, 64), NUM_NORMAL + NUM_ODD);
        /* noise cannot be reconstructed like gradients, nor encoded like them */
        const char *auc_at = strstr(test_output(), "ROC AUC");
        double auc = 0;
        assert_non_null(auc_at);
        assert_int_equal(sscanf(auc_at, "ROC AUC %lf", &auc), 1);
        /* relative divides by the image's detail, and noise has the most:
         * it ranks noise last (docs/QUALITY.md says so), and drags the
         * combined rule (here, the default) down with it */
        int is_relative = !strcmp(rules[i], "relative"), is_combined = !rules[i][0];
        if (is_relative ? !(auc < 0.5) : !(auc >= (is_combined ? 0.6 : 0.9)))
            fail_msg("--score '%s': ROC AUC %.4f", rules[i], auc);
    }
    /* The stored threshold is the combined rule's. */
    assert_int_equal(test_run("score %s %s --layout classes --batch 8", model, test_path("classes")), 0);
    test_expect_output("(its threshold)");
    char stored[256];
    const char *at = strstr(test_output(), "= ");
    assert_non_null(at);
    snprintf(stored, sizeof stored, "%.20s", at);
    assert_int_equal(test_run("score %s %s --layout classes --batch 8 --threshold-from validation --quantile 0.99", model,
                         test_path("classes")), 0);
    test_expect_output(stored);
    /* The stored scores are the combined rule's: another rule cannot use them. */
    assert_int_equal(test_run("score %s %s --layout classes --score max --threshold-from model", model,
                         test_path("classes")), 2);
    test_expect_output("holds no threshold for the max score");
    assert_int_equal(test_run("score %s %s --layout classes --score median", model, test_path("classes")), 2);
    test_expect_output("unknown score 'median'");
    assert_int_equal(test_run("train %s --layout classes --score topk:0 -o %s", test_path("classes"), model), 2);
    test_expect_output("topk:P");
}

/* Uses the model and outputs of test_train_score_encode_reconstruct. */
static void test_every_path_scores_alike(void **state)
{
    (void)state;
    TMP_PATH(model, "model.aedet");
    char line[1024], name[512], score_text[64];

    /* The errors stored in the model at training (batch 8) are the scores
     * `score --split train` gives at another batch size, bit for bit. */
    TMP_PATH(train_scores, "train_scores.csv");
    assert_int_equal(test_run("score %s %s --layout classes --split train --batch 3 -o %s", model, test_path("classes"),
                         train_scores), 0);
    float scored[64], stored_copy[64];
    int n = read_column(train_scores, 3, scored, 64);
    ae_model *m;
    ae_meta *meta;
    ae_error err;
    assert_int_equal(ae_model_load(model, 1, &m, &meta, NULL, &err), AE_OK);
    size_t num_stored;
    const float *stored = ae_meta_get_floats(meta, AE_KEY_TRAIN_ERRORS, &num_stored);
    assert_non_null(stored);
    assert_int_equal(n, (int)num_stored);
    assert_int_equal(n, 35); /* 44 - round(0.2 x 44) */
    memcpy(stored_copy, stored, num_stored * sizeof *stored);
    qsort(scored, (size_t)n, sizeof *scored, compare_floats);
    qsort(stored_copy, num_stored, sizeof *stored_copy, compare_floats);
    assert_memory_equal(scored, stored_copy, num_stored * sizeof *stored);
    ae_meta_free(meta);
    ae_model_free(m);

    FILE *f = fopen(test_path("latents.csv"), "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    int checked = 0;
    while (fgets(line, sizeof line, f)) {
        /* image,label,score,...: the label may be empty. */
        char *c1 = strchr(line, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL, *c3 = c2 ? strchr(c2 + 1, ',') : NULL;
        assert_non_null(c3);
        snprintf(name, sizeof name, "%.*s", (int)(c1 - line), line);
        snprintf(score_text, sizeof score_text, "%.*s", (int)(c3 - c2 - 1), c2 + 1);
        char needle[700];
        snprintf(needle, sizeof needle, "%s,%s,", name, score_text);
        /* reconstruct's index.csv: image,score,... */
        char idx[512];
        snprintf(idx, sizeof idx, "%s/index.csv", test_path("recon"));
        FILE *g = fopen(idx, "r");
        assert_non_null(g);
        char l2[1024];
        int found = 0;
        while (fgets(l2, sizeof l2, g))
            found |= strncmp(l2, needle, strlen(needle)) == 0;
        fclose(g);
        assert_true(found);
        /* score's CSV: rank,image,label,score,... */
        snprintf(needle, sizeof needle, ",%s,", score_text);
        g = fopen(test_path("scores.csv"), "r");
        assert_non_null(g);
        found = 0;
        while (fgets(l2, sizeof l2, g))
            found |= strstr(l2, name) && strstr(l2, needle);
        fclose(g);
        assert_true(found);
        checked++;
    }
    fclose(f);
    assert_int_equal(checked, NUM_NORMAL + NUM_ODD);
}

static void load_params(const char *path, float **params, size_t *n)
{
    ae_model *m;
    ae_error err;
    assert_int_equal(ae_model_load(path, 1, &m, NULL, NULL, &err), AE_OK);
    *n = ae_model_num_params(m) + ae_model_num_state(m);
    *params = malloc(*n * sizeof **params);
    memcpy(*params, ae_model_params(m), ae_model_num_params(m) * sizeof(float));
    memcpy(*params + ae_model_num_params(m), ae_model_state(m), ae_model_num_state(m) * sizeof(float));
    ae_model_free(m);
}

/* Two model files hold the same parameters, bit for bit. */
static void expect_same_params(const char *path_a, const char *path_b)
{
    float *a, *b;
    size_t na, nb;
    load_params(path_a, &a, &na);
    load_params(path_b, &b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    free(a);
    free(b);
}

static void test_resume_gives_the_same_weights(void **state)
{
    (void)state;
    TMP_PATH(straight, "straight.aedet");
    TMP_PATH(resumed, "resumed.aedet");
    TMP_PATH(ckpt, "resumed.aedet.ckpt");
    assert_int_equal(test_run("train %s --layout classes --epochs 3 " SMALL " -o %s", test_path("classes"), straight), 0);
    /* Stop as Ctrl-C would, after 7 steps (epoch 2 of 3, batch 2 of 5). */
    setenv("AEDET_TEST_INTERRUPT_AFTER", "7", 1);
    int rc = test_run("train %s --layout classes --epochs 3 " SMALL " -o %s", test_path("classes"), resumed);
    unsetenv("AEDET_TEST_INTERRUPT_AFTER");
    assert_int_equal(rc, 130);
    test_expect_output("checkpoint saved");
    assert_true(file_exists(ckpt));
    assert_false(file_exists(resumed));
    /* A resume on other images is refused... */
    assert_int_equal(test_run("train %s --layout classes --resume %s " SMALL " --exclude '*img00*' -o %s",
                         test_path("classes"), ckpt, resumed), 2);
    test_expect_output("trained on other images");
    /* A checkpoint whose running loss is not a number is a bad file, not a
     * run to continue. */
    TMP_PATH(crafted, "crafted.aedet.ckpt");
    ae_model *cm;
    ae_meta *cmeta;
    ae_error cerr;
    assert_int_equal(ae_model_load(ckpt, 8, &cm, &cmeta, NULL, &cerr), AE_OK);
    assert_int_equal(ae_meta_set_float(cmeta, AE_KEY_LOSS_SUM, NAN, &cerr), AE_OK);
    assert_int_equal(ae_model_save(crafted, cm, cmeta, 1, &cerr), AE_OK);
    ae_meta_free(cmeta);
    ae_model_free(cm);
    assert_int_equal(test_run("train %s --layout classes --resume %s " SMALL " -o %s", test_path("classes"), crafted,
                              resumed), 5);
    test_expect_output("inconsistent training position or history");
    /* ...and on the same ones it ends where the straight run ended, the
     * checkpoint's settings winning over conflicting flags, with a warning. */
    TMP_PATH(ckpt_copy, "resumed-copy.aedet.ckpt");
    uint8_t *ckpt_bytes;
    size_t ckpt_len;
    assert_int_equal(ae_read_file(ckpt, &ckpt_bytes, &ckpt_len, &cerr), AE_OK);
    test_write_file(ckpt_copy, ckpt_bytes, ckpt_len);
    free(ckpt_bytes);
    assert_int_equal(test_run("train %s --layout classes --resume %s " SMALL " --epochs 9 -o %s", test_path("classes"),
                              ckpt, resumed),
                     0);
    test_expect_output("resuming");
    test_expect_output("--epochs 9 ignored: the checkpoint's 3 is kept");
    expect_same_params(straight, resumed);
    /* --resume alone repeats the command the checkpoint stored. */
    assert_int_equal(unlink(resumed), 0);
    assert_int_equal(test_run("train --resume %s", ckpt_copy), 0);
    test_expect_output("as the checkpoint began");

    expect_same_params(straight, resumed);
}

/* Early stopping and keep-best: the model ends with the weights of the epoch
 * with the lowest validation loss (its stored validation errors average to
 * that epoch's loss), stops only after `patience` epochs without a better
 * one, and a run interrupted and resumed (augmentations included) ends with
 * the same weights as one never stopped. */
static void test_early_stopping_keep_best_and_augmentation(void **state)
{
    (void)state;
    TMP_PATH(straight, "best_straight.aedet");
    TMP_PATH(resumed, "best_resumed.aedet");
    TMP_PATH(ckpt, "best_resumed.aedet.ckpt");
    /* a large learning rate, so the validation loss goes up and down */
#define BEST_FLAGS "--layout classes --epochs 8 --lr 0.03 --early-stop 2 --augment flip,shift,brightness " SMALL
    int rc;
    rc = test_run("train %s " BEST_FLAGS " -o %s", test_path("classes"), straight);
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, test_output());
    test_expect_output("kept the weights of epoch");
    ae_model *m;
    ae_meta *meta;
    ae_error err;
    assert_int_equal(ae_model_load(straight, 1, &m, &meta, NULL, &err), AE_OK);
    int64_t done = 0, best = 0;
    size_t nv = 0, ne = 0;
    assert_true(ae_meta_get_int(meta, AE_KEY_EPOCHS_DONE, &done));
    assert_true(ae_meta_get_int(meta, AE_KEY_BEST_EPOCH, &best));
    const double *val = ae_meta_get_doubles(meta, AE_KEY_VAL_LOSSES, &nv);
    const float *errors = ae_meta_get_floats(meta, AE_KEY_VAL_ERRORS, &ne);
    assert_int_equal(nv, (size_t)done);
    assert_true(best >= 1 && best <= done);
    for (size_t i = 0; i < nv; i++)
        assert_true(val[i] >= val[best - 1]);
    if (done < 8) /* stopped early: exactly `patience` epochs after the best */
        assert_int_equal(done - best, 2);
    double mean = 0;
    for (size_t i = 0; i < ne; i++)
        mean += errors[i];
    mean /= (double)ne;
    assert_float_equal(mean, val[best - 1], 1e-6 * val[best - 1]);
    assert_null(ae_meta_get_floats(meta, AE_KEY_BEST_PARAMS, &ne)); /* only checkpoints carry a copy */
    ae_meta_free(meta);
    ae_model_free(m);

    setenv("AEDET_TEST_INTERRUPT_AFTER", "12", 1); /* epoch 3 of 8, batch 2 */
    rc = test_run("train %s " BEST_FLAGS " -o %s", test_path("classes"), resumed);
    unsetenv("AEDET_TEST_INTERRUPT_AFTER");
    assert_int_equal(rc, 130);
    /* the flags come from the checkpoint */
    assert_int_equal(test_run("train %s --layout classes --resume %s " SMALL " -o %s", test_path("classes"), ckpt,
                         resumed), 0);
    expect_same_params(straight, resumed);
    assert_int_equal(test_run("train %s --layout classes --augment flip,rotate -o %s", test_path("classes"), resumed), 2);
    test_expect_output("not 'rotate'");
#undef BEST_FLAGS
}

/* A real SIGINT (Ctrl-C), and a SIGTERM (a scheduler's stop): the run
 * finishes its step, saves a checkpoint, exits 130. */
static void test_ctrl_c_saves_a_checkpoint(void **state)
{
    (void)state;
    TMP_PATH(model, "sigint.aedet");
    char ckpt[600];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", model);
    const int signals[] = {SIGINT, SIGTERM};
    for (size_t k = 0; k < sizeof signals / sizeof signals[0]; k++) {
        unlink(ckpt);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            freopen("/dev/null", "w", stderr);
            execl(test_aedet(), "aedet", "train", test_path("classes"), "--layout", "classes", "--epochs", "100000",
                  "--size", "16", "--filters", "4,8", "--latent", "4", "--batch", "8", "--threads", "1", "-o", model,
                  (char *)NULL);
            _exit(127);
        }
        for (int i = 0; i < 600 && !file_exists(ckpt); i++) /* the first epoch's checkpoint */
            usleep(100000);
        assert_true(file_exists(ckpt));
        kill(pid, signals[k]);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 130);
        ae_model *m;
        ae_meta *meta;
        ae_error err;
        assert_int_equal(ae_model_load(ckpt, 1, &m, &meta, NULL, &err), AE_OK);
        int64_t epochs;
        assert_true(ae_meta_get_int(meta, AE_KEY_EPOCHS_DONE, &epochs));
        assert_true(epochs >= 1);
        ae_meta_free(meta);
        ae_model_free(m);
    }
}

static void test_bad_input_exits(void **state)
{
    (void)state;
    TMP_PATH(model, "model.aedet");
    /* A missing folder. */
    assert_int_not_equal(test_run("score %s %s/nowhere", model, test_tmpdir()), 0);
    test_expect_output("nowhere");
    /* A model file that is not one, and a truncated one: exit 5. */
    TMP_PATH(junk, "junk.aedet");
    test_write_file(junk, "hello", 5);
    assert_int_equal(test_run("info %s", junk), 5);
    test_expect_output("junk.aedet");
    uint8_t *bytes;
    size_t len;
    ae_error err;
    assert_int_equal(ae_read_file(model, &bytes, &len, &err), AE_OK);
    TMP_PATH(cut, "cut.aedet");
    test_write_file(cut, bytes, len / 2);
    free(bytes);
    assert_int_equal(test_run("score %s %s", cut, test_path("classes")), 5);
    /* A failed score leaves an existing output file untouched. */
    TMP_PATH(keep, "keep.csv");
    test_write_file(keep, "precious\n", 9);
    assert_int_equal(test_run("score %s %s -o %s", cut, test_path("classes"), keep), 5);
    assert_int_equal(ae_read_file(keep, &bytes, &len, &err), AE_OK);
    assert_int_equal(len, 9);
    assert_memory_equal(bytes, "precious\n", 9);
    free(bytes);
    /* Output into a folder that does not exist: I/O error, exit 4. */
    assert_int_equal(test_run("score %s %s --batch 8 -o %s/no/such/dir/s.csv", model, test_path("classes"), test_tmpdir()), 4);

    /* A corrupt image: stop (exit 3, named) or skip (exit 0, listed). */
    mkdir(test_path("withbad"), 0777);
    uint8_t px[SIDE * SIDE];
    char path[512];
    for (int k = 0; k < 10; k++) {
        make_image(px, k, 0);
        snprintf(path, sizeof path, "%s/withbad/ok%d.png", test_tmpdir(), k);
        test_write_png(path, px, SIDE, SIDE, 0, 8);
    }
    test_write_file(test_path("withbad/broken.png"), "\x89PNG\r\n\x1a\nnot really", 19);
    assert_int_equal(test_run("score %s %s --batch 8", model, test_path("withbad")), 3);
    test_expect_output("broken.png");
    assert_int_equal(test_run("score %s %s --batch 8 --bad-files skip", model, test_path("withbad")), 0);
    test_expect_output("skipped 1 bad file");
    test_expect_output("broken.png");
    /* Streamed, where each file is decoded once and checked then: the same. */
    assert_int_equal(test_run("score %s %s --batch 8 --memory-budget 1", model, test_path("withbad")), 3);
    test_expect_output("broken.png");
    TMP_PATH(in_memory, "withbad-memory.csv");
    TMP_PATH(streamed, "withbad-streamed.csv");
    assert_int_equal(test_run("score %s %s --batch 4 --bad-files skip -o %s", model, test_path("withbad"), in_memory), 0);
    assert_int_equal(test_run("score %s %s --batch 4 --bad-files skip --memory-budget 1 -o %s", model,
                              test_path("withbad"), streamed), 0);
    test_expect_output("scored 10 images");
    test_expect_output("skipped 1 bad file");
    test_expect_output("broken.png");
    uint8_t *a, *b;
    size_t a_len, b_len;
    assert_int_equal(ae_read_file(in_memory, &a, &a_len, &err), AE_OK);
    assert_int_equal(ae_read_file(streamed, &b, &b_len, &err), AE_OK);
    assert_int_equal(a_len, b_len);
    assert_memory_equal(a, b, a_len);
    free(a);
    free(b);
    TMP_PATH(latents, "withbad-latents.csv");
    assert_int_equal(test_run("encode %s %s --bad-files skip --memory-budget 1 -o %s", model, test_path("withbad"),
                              latents), 0);
    test_expect_output("skipped 1 bad file");
    test_expect_output("wrote 10 images'");
}


/* MVTec AD layout: train on train/good, score test/ with the masks. The odd
 * images have a noisy square; their masks mark it. */
static void test_mvtec_layout_with_pixel_auc(void **state)
{
    (void)state;
    const char *dirs[] = {"mvtec", "mvtec/train", "mvtec/train/good", "mvtec/test", "mvtec/test/good",
                          "mvtec/test/noise", "mvtec/ground_truth", "mvtec/ground_truth/noise"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        mkdir(test_path(dirs[i]), 0777);
    uint8_t px[SIDE * SIDE], mask[SIDE * SIDE];
    char path[512];
    for (int k = 0; k < 24; k++) {
        make_image(px, k, 0);
        snprintf(path, sizeof path, "%s/mvtec/train/good/%03d.png", test_tmpdir(), k);
        test_write_png(path, px, SIDE, SIDE, 0, 8);
    }
    for (int k = 0; k < 6; k++) {
        make_image(px, 100 + k, 0);
        snprintf(path, sizeof path, "%s/mvtec/test/good/%03d.png", test_tmpdir(), k);
        test_write_png(path, px, SIDE, SIDE, 0, 8);
        uint8_t noise[SIDE * SIDE];
        make_image(noise, k, 1);
        for (int p = 0; p < SIDE * SIDE; p++) {
            int in_square = p / SIDE >= 4 && p / SIDE < 10 && p % SIDE >= 5 && p % SIDE < 11;
            mask[p] = in_square ? 255 : 0;
            if (in_square)
                px[p] = noise[p];
        }
        snprintf(path, sizeof path, "%s/mvtec/test/noise/%03d.png", test_tmpdir(), k);
        test_write_png(path, px, SIDE, SIDE, 0, 8);
        snprintf(path, sizeof path, "%s/mvtec/ground_truth/noise/%03d_mask.png", test_tmpdir(), k);
        test_write_png(path, mask, SIDE, SIDE, 0, 8);
    }
    TMP_PATH(model, "mvtec.aedet");
    assert_int_equal(test_run("train %s --epochs 3 " SMALL " -o %s", test_path("mvtec"), model), 0);
    test_expect_output("24 images"); /* auto-detected as MVTec: train/good only */
    TMP_PATH(metrics, "mvtec.json");
    assert_int_equal(test_run("score %s %s --mvtec-split test --batch 8 --metrics %s", model, test_path("mvtec"), metrics), 0);
    test_expect_output("anomalies     6 known");
    test_expect_output("pixel ROC AUC");
    const char *line = strstr(test_output(), "pixel ROC AUC");
    double auc = 0;
    assert_int_equal(sscanf(line, "pixel ROC AUC %lf", &auc), 1);
    assert_true(auc > 0.8); /* noise is far harder to reconstruct than gradients */
    uint8_t *json;
    size_t len;
    ae_error err;
    assert_int_equal(ae_read_file(metrics, &json, &len, &err), AE_OK);
    assert_non_null(strstr((const char *)json, "\"pixel_roc_auc\""));
    free(json);

    /* At the images' own size: the same maps and masks when the model has
     * that size, so the same AUROC to the last digit... */
    char same[64];
    snprintf(same, sizeof same, "%.20s", line);
    assert_int_equal(test_run("score %s %s --mvtec-split test --batch 8 --pixel-maps input", model, test_path("mvtec")), 0);
    test_expect_output(same);
    /* ...and other pixels when it has not: 64 a map at the model's size, 256
     * at the images'. */
    TMP_PATH(small, "mvtec8.aedet");
    assert_int_equal(test_run("train %s --epochs 3 " SMALL " --size 8 -o %s", test_path("mvtec"), small), 0);
    double at[2];
    const char *sizes[] = {"model", "input"};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(test_run("score %s %s --mvtec-split test --batch 8 --pixel-maps %s", small, test_path("mvtec"),
                             sizes[i]), 0);
        line = strstr(test_output(), "pixel ROC AUC");
        assert_non_null(line);
        assert_int_equal(sscanf(line, "pixel ROC AUC %lf", &at[i]), 1);
        assert_true(at[i] >= 0 && at[i] <= 1);
    }
    assert_true(at[0] != at[1]);
    assert_int_equal(test_run("score %s %s --mvtec-split test --pixel-maps native", small, test_path("mvtec")), 2);
    test_expect_output("--pixel-maps wants model or input");
    /* at the input's size a mask must be the image's size */
    uint8_t tiny[4 * 4] = {0};
    snprintf(path, sizeof path, "%s/mvtec/ground_truth/noise/000_mask.png", test_tmpdir());
    test_write_png(path, tiny, 4, 4, 0, 8);
    assert_int_equal(test_run("score %s %s --mvtec-split test --pixel-maps input", small, test_path("mvtec")), 3);
    test_expect_output("000_mask.png is 4x4, but its image 16x16");
}

/* `aedet eval` on score's CSV gives score's numbers. */
static void test_eval_agrees_with_score(void **state)
{
    (void)state;
    TMP_PATH(scores, "scores.csv");
    TMP_PATH(model, "model.aedet");
    assert_int_equal(test_run("score %s %s --layout classes --normal-class 0 --batch 8", model, test_path("classes")), 0);
    const char *auc_line = strstr(test_output(), "ROC AUC");
    assert_non_null(auc_line);
    char expected[128];
    snprintf(expected, sizeof expected, "%.*s", (int)strcspn(auc_line, "\n"), auc_line);
    assert_int_equal(test_run("eval %s", scores), 0); /* labels 0/1: 1 is the anomaly */
    test_expect_output(expected);
    test_expect_output("flagged       3 of 44");
    assert_int_equal(test_run("eval %s --threshold 0 --quiet", scores), 0);
    test_expect_output("flagged       44 of 44");
    assert_int_equal(test_run("eval %s --threshold-from validation", scores), 2);
    test_expect_output("needs --model");
    assert_int_equal(test_run("eval %s --threshold-from validation --model %s", scores, model), 0);
    test_expect_output("validation scores stored in the model");
    test_write_file(test_path("bad.csv"), "score,label\n0.5,0\nfoo,1\n", 24);
    assert_int_equal(test_run("eval %s", test_path("bad.csv")), 3);
    test_expect_output("bad.csv line 3: the score is not a number");
    test_write_file(test_path("bad.csv"), "score,label\n0.5,0\n0.7,\n", 22);
    assert_int_equal(test_run("eval %s", test_path("bad.csv")), 3);
    test_expect_output("bad.csv line 3: the label is not a class number");
    test_write_file(test_path("bad.csv"), "score,label\n0.5,0\n0.7,1e30\n", 26);
    assert_int_equal(test_run("eval %s", test_path("bad.csv")), 3);
    test_expect_output("line 3: the label is not a class number");

    /* --split validation: only the images the model held out (round(0.2 x 44) = 9). */
    assert_int_equal(test_run("score %s %s --layout classes --split validation --batch 8", model, test_path("classes")), 0);
    test_expect_output("of 9 images");
    assert_int_equal(test_run("score %s %s --layout classes --split validation --exclude '*img01*'", model,
                         test_path("classes")), 2);
    test_expect_output("--split needs the data");
}

/* What --bf16 must say, for the AEDET_ISA the tool will see, as
 * ae_model_set_bf16 decides (src/nn/model.c): first neither AVX512-BF16 nor
 * AMX tiles (detected as the library does), then kernels capped below
 * AVX-512; NULL where it runs. */
static const char *bf16_refusal(void)
{
    if (ae_isa_bf16() == AE_ISA_PORTABLE)
        return "bf16: this CPU or OS has neither AVX512-BF16";
    if (ae_isa_best() == AE_ISA_PORTABLE)
        return "bf16: the model runs the portable kernels";
    if (ae_isa_best() == AE_ISA_AVX2)
        return "bf16: the model runs the avx2 kernels";
    return NULL;
}

/* The kernels --bf16 runs where it is not refused: those AEDET_ISA forced
 * (amx-bf16, avx512-bf16), else the tiles where the CPU has them, else
 * AVX512-BF16. */
static const char *bf16_kernels(void)
{
    return ae_isa_name(ae_isa_is_bf16(ae_isa_best()) ? ae_isa_best() : ae_isa_bf16());
}

/* --bf16: refused with a usage error that writes nothing on the portable and
 * avx2 kernels and on a CPU with neither AMX tiles nor AVX512-BF16 (the
 * message says which); elsewhere training (32x32 images, filters 16 and 32:
 * the last transposed convolution's products take the tiles; every layer
 * but the first and the output takes the dot products) and scoring run in
 * bfloat16, and the model file records the kernels. Under the AEDET_ISA
 * tests/run.sh set, then forced to avx2 and to avx512-bf16 (the dot
 * products even where the CPU has tiles; refused where it has neither). */
static void test_bf16_flag(void **state)
{
    (void)state;
    TMP_PATH(model, "bf16.aedet");
    const char *classes = test_path("classes");
    char *saved_isa = test_env_save("AEDET_ISA");
    setenv("AEDET_ISA", "portable", 1);
    const char *refusal = bf16_refusal();
    int rc = test_run("train %s --layout classes --epochs 1 --bf16 " SMALL " -o %s", classes, model);
    test_env_restore("AEDET_ISA", saved_isa);
    assert_non_null(refusal);
    assert_int_equal(rc, 2);
    test_expect_output(refusal);
    assert_false(file_exists(model));
#define BF16_MODEL "--size 32 --filters 16,32 --latent 4 --batch 8 --threads 1"
    static const char *forced[] = {NULL, "avx2", "avx512-bf16"};
    char ran[32] = ""; /* the kernels a run before took: not again */
    for (size_t k = 0; k < sizeof forced / sizeof *forced; k++) {
        saved_isa = test_env_save("AEDET_ISA");
        if (forced[k])
            setenv("AEDET_ISA", forced[k], 1);
        refusal = bf16_refusal();
        const char *kernels = bf16_kernels();
        if (!refusal && strcmp(kernels, ran) == 0) {
            test_env_restore("AEDET_ISA", saved_isa);
            continue;
        }
        remove(model);
        rc = test_run("train %s --layout classes --epochs 2 --bf16 " BF16_MODEL " -o %s", classes,
                      model);
        if (refusal) {
            test_env_restore("AEDET_ISA", saved_isa);
            assert_int_equal(rc, 2);
            test_expect_output(refusal);
            assert_false(file_exists(model));
            continue;
        }
        assert_int_equal(rc, 0);
        char line[64];
        snprintf(line, sizeof line, "%s kernels", kernels);
        test_expect_output(line);
        assert_int_equal(test_run("info %s", model), 0);
        test_expect_output("train.kernels");
        test_expect_output(kernels);
        TMP_PATH(scores, "bf16.csv");
        remove(scores);
        rc = test_run("score %s %s --layout classes --normal-class 0 --batch 8 --bf16 -o %s", model,
                      classes, scores);
        test_env_restore("AEDET_ISA", saved_isa);
        assert_int_equal(rc, 0);
        assert_int_equal(count_lines(scores), NUM_NORMAL + NUM_ODD + 1);
        snprintf(ran, sizeof ran, "%s", kernels);
    }
#undef BF16_MODEL
}

/* The tutorial's experiment on the real Fashion-MNIST, one epoch, with the
 * release build (the sanitized one is ~10x slower). */
static void test_demo_runs_end_to_end(void **state)
{
    (void)state;
    if (access(TEST_FASHION_DIR "/train-images-idx3-ubyte.gz", R_OK) != 0) {
        fail_msg("Fashion-MNIST is missing: apt-get install dataset-fashion-mnist");
    }
    const char *release = getenv("AEDET_RELEASE");
    char cmd[2048];
    TMP_PATH(dir, "demo");
    snprintf(cmd, sizeof cmd, "%s demo --epochs 1 --output %s > %s 2>&1", release ? release : test_aedet(), dir,
             test_path("demo.log"));
    int status = system(cmd);
    static char log[1 << 16];
    FILE *f = fopen(test_path("demo.log"), "r");
    assert_non_null(f);
    log[fread(log, 1, sizeof log - 1, f)] = '\0';
    fclose(f);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    const char *expected[] = {"6060", /* 6000 of class 5 + round(0.01 x 6000) of class 1 */
                              "anomalies     60 known", "ROC AUC"};
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        if (!strstr(log, expected[i]))
            fail_msg("expected \"%s\" in the demo's output:\n%s", expected[i], log);
    char path[512];
    snprintf(path, sizeof path, "%s/scores.csv", dir);
    assert_int_equal(count_lines(path), 6061);
    snprintf(path, sizeof path, "%s/metrics.json", dir);
    assert_true(file_exists(path));
    snprintf(path, sizeof path, "%s/report.html", dir);
    assert_true(file_exists(path));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_usage_errors),
        cmocka_unit_test(test_train_score_encode_reconstruct),
        cmocka_unit_test(test_every_path_scores_alike),
        cmocka_unit_test(test_score_rules),
        cmocka_unit_test(test_resume_gives_the_same_weights),
        cmocka_unit_test(test_early_stopping_keep_best_and_augmentation),
        cmocka_unit_test(test_ctrl_c_saves_a_checkpoint),
        cmocka_unit_test(test_bad_input_exits),
        cmocka_unit_test(test_mvtec_layout_with_pixel_auc),
        cmocka_unit_test(test_eval_agrees_with_score),
        cmocka_unit_test(test_bf16_flag),
        cmocka_unit_test(test_demo_runs_end_to_end),
    };
    return cmocka_run_group_tests(tests, setup_data, NULL);
}
