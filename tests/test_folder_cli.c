/* The folder layout end to end (issue 20): a generated tree of normal tiles
 * with masks beside some of them, two defect folders and a mask folder;
 * train, score with per-class AUROC by name and the pixel AUROC, no mask
 * trained on, the warnings (training images scored, image+mask pairs in a
 * plain folder), class names for --normal-class, eval on MVTec-style CSVs,
 * and the errors. */
#include "support.h"

#include "aedet.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SIDE 16
#define NUM_GOOD 32
#define NUM_DEFECT 5
#define SMALL "--size 16 --filters 4,8 --latent 4 --batch 8 --threads 1 --epochs 3"

#define TMP_PATH(var, name)                                                                        \
    char var[512];                                                                                 \
    snprintf(var, sizeof var, "%s/%s", test_tmpdir(), name)

/* Smooth gradients are normal; a defect is a square of noise (scratch) or
 * of black (dent), which its mask marks. */
static void make_tile(uint8_t *px, uint8_t *mask, int k, int defect)
{
    ae_rng r;
    ae_rng_seed(&r, (uint64_t)k + 77);
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) {
            double v = 0.5 + 0.4 * sin(0.3 * k + 0.3 * x + 0.2 * y);
            int in = y >= 4 && y < 10 && x >= 5 && x < 11;
            if (defect == 1 && in)
                v = (ae_rng_next(&r) & 1) ? 0.95 : 0.05;
            if (defect == 2 && in)
                v = 0;
            px[y * SIDE + x] = (uint8_t)(v * 255);
            if (mask)
                mask[y * SIDE + x] = defect && in ? 255 : 0;
        }
}

static void put(const char *rel, const uint8_t *px, int side)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), rel);
    test_write_png(path, px, side, side, PNG_COLOR_TYPE_GRAY, 8);
}

static int setup_tree(void **state)
{
    (void)state;
    const char *dirs[] = {"tiles", "tiles/good", "tiles/scratch", "tiles/dent", "tiles/masks",
                          "tiles/masks/scratch", "tiles/masks/dent"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        mkdir(test_path(dirs[i]), 0777);
    uint8_t px[SIDE * SIDE], mask[SIDE * SIDE];
    char rel[256];
    for (int k = 0; k < NUM_GOOD; k++) {
        make_tile(px, mask, k, 0);
        snprintf(rel, sizeof rel, "tiles/good/%03d.png", k);
        put(rel, px, SIDE);
        if (k % 4 == 0) { /* an all-black mask beside the image, as some data sets keep them */
            snprintf(rel, sizeof rel, "tiles/good/%03d_mask.png", k);
            put(rel, mask, SIDE);
        }
    }
    for (int d = 1; d <= 2; d++)
        for (int k = 0; k < NUM_DEFECT; k++) {
            make_tile(px, mask, 100 + k, d);
            snprintf(rel, sizeof rel, "tiles/%s/%03d.png", d == 1 ? "scratch" : "dent", k);
            put(rel, px, SIDE);
            snprintf(rel, sizeof rel, "tiles/masks/%s/%03d.png", d == 1 ? "scratch" : "dent", k);
            put(rel, mask, SIDE);
        }
    return 0;
}

static double number_after(const char *needle)
{
    const char *p = strstr(test_output(), needle);
    assert_non_null(p);
    return atof(p + strlen(needle));
}

#define TREE(sub) test_path("tiles/" sub)

static void test_train_and_score_the_folder_layout(void **state)
{
    (void)state;
    TMP_PATH(model, "tiles.aedet");
    TMP_PATH(scores, "tiles.csv");
    /* 32 normal tiles, 8 masks beside them: 8 held out (0.25), 24 left,
     * round(0.2 x 24) = 5 of them for validation. */
    assert_int_equal(test_run("train --normal-dir %s --test-split 0.25 --seed 3 " SMALL " -o %s", TREE("good"), model), 0);
    test_expect_output("left out 8 files named like the mask");
    test_expect_output("19 train, 5 validation");
    test_expect_output("training split: 24 of 32 normal images");

    assert_int_equal(test_run("score %s --normal-dir %s --abnormal-dir %s --abnormal-dir %s --mask-dir %s "
                              "--batch 8 -o %s",
                              model, TREE("good"), TREE("scratch"), TREE("dent"), TREE("masks"), scores), 0);
    test_expect_output("scoring split: 8 of 32 normal images"); /* the model's test split, seed 3 */
    test_expect_output("abnormal scratch 5, dent 5");
    test_expect_output("flagged");
    test_expect_output("anomalies     10 known");
    test_expect_output("class scratch AUROC vs normal");
    test_expect_output("class dent    AUROC vs normal");
    test_expect_output("(label 1, scratch)");
    test_expect_no_output("trained on"); /* held out: no overlap */
    double auc = number_after("ROC AUC"), pixel = number_after("pixel ROC AUC");
    assert_true(auc > 0.8);
    assert_true(pixel > 0.7);
    assert_true(number_after("class scratch AUROC vs normal") > 0.8);
    /* metrics.json names the classes too */
    TMP_PATH(metrics, "folder-metrics.json");
    assert_int_equal(test_run("score %s --normal-dir %s --abnormal-dir %s --abnormal-dir %s --batch 8 --metrics %s",
                              model, TREE("good"), TREE("scratch"), TREE("dent"), metrics), 0);
    uint8_t *json;
    size_t json_len;
    ae_error read_err;
    assert_int_equal(ae_read_file(metrics, &json, &json_len, &read_err), AE_OK);
    assert_non_null(strstr((const char *)json, "\"name\": \"scratch\", \"count\": 5"));
    assert_non_null(strstr((const char *)json, "\"name\": \"dent\", \"count\": 5"));
    free(json);

    /* The CSV names each image's class; 18 rows. */
    FILE *f = fopen(scores, "r");
    assert_non_null(f);
    char line[1024];
    int rows = 0, named[3] = {0};
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "rank,image,label,score,threshold,flagged,class\n");
    while (fgets(line, sizeof line, f)) {
        rows++;
        assert_null(strstr(line, "_mask")); /* no mask is ever an image */
        named[0] += strstr(line, ",good\n") != NULL && strstr(line, "/good/") != NULL;
        named[1] += strstr(line, ",scratch\n") != NULL && strstr(line, "/scratch/") != NULL;
        named[2] += strstr(line, ",dent\n") != NULL && strstr(line, "/dent/") != NULL;
    }
    fclose(f);
    assert_int_equal(rows, 8 + 2 * NUM_DEFECT);
    assert_int_equal(named[0], 8);
    assert_int_equal(named[1], NUM_DEFECT);
    assert_int_equal(named[2], NUM_DEFECT);

    /* eval on that CSV: good is normal without being told, names work. */
    assert_int_equal(test_run("eval %s", scores), 0);
    test_expect_output("class scratch AUROC");
    char auc_line[64];
    snprintf(auc_line, sizeof auc_line, "ROC AUC       %.4f", auc);
    test_expect_output(auc_line);
    assert_int_equal(test_run("eval %s --normal-class good", scores), 0);
    test_expect_output(auc_line);
    assert_int_equal(test_run("eval %s --normal-class sratch", scores), 2);
    test_expect_output("no class 'sratch' (the classes are good, scratch, dent)");

    /* --normal-class by folder name on score; a wrong name lists the classes. */
    assert_int_equal(test_run("score %s --normal-dir %s --abnormal-dir %s --normal-class good --batch 8", model,
                              TREE("good"), TREE("scratch")), 0);
    test_expect_output("anomalies     5 known");
    assert_int_equal(test_run("score %s --normal-dir %s --abnormal-dir %s --normal-class gut", model, TREE("good"),
                              TREE("scratch")), 2);
    test_expect_output("the classes are good, scratch");

    /* The report names the classes too. */
    TMP_PATH(report, "tiles.html");
    assert_int_equal(test_run("report %s --normal-dir %s --abnormal-dir %s --abnormal-dir %s --mask-dir %s --batch 8 "
                              "-o %s", model, TREE("good"), TREE("scratch"), TREE("dent"), TREE("masks"), report), 0);
    uint8_t *html;
    size_t len;
    ae_error err;
    assert_int_equal(ae_read_file(report, &html, &len, &err), AE_OK);
    assert_non_null(strstr((const char *)html, "dent"));
    assert_non_null(strstr((const char *)html, "scratch"));
    free(html);

    /* encode takes the layout too: one latent row per image scored above. */
    TMP_PATH(latents, "tiles_latents.csv");
    assert_int_equal(test_run("encode %s --normal-dir %s --abnormal-dir %s --abnormal-dir %s --batch 8 -o %s", model,
                              TREE("good"), TREE("scratch"), TREE("dent"), latents), 0);
    uint8_t *a, *b;
    size_t alen, blen, arows = 0, brows = 0;
    assert_int_equal(ae_read_file(latents, &a, &alen, &err), AE_OK);
    assert_int_equal(ae_read_file(scores, &b, &blen, &err), AE_OK);
    for (size_t i = 0; i < alen; i++)
        arows += a[i] == '\n';
    for (size_t i = 0; i < blen; i++)
        brows += b[i] == '\n';
    assert_true(arows > 4);
    assert_int_equal(arows, brows);
    free(a);
    free(b);
    assert_int_equal(test_run("encode %s --abnormal-dir %s -o %s", model, TREE("dent"), latents), 2);
}

/* Scoring the images a model trained on says so: no test split, and the
 * class-folder layout over the same tree (the case). */
static void test_scoring_training_images_warns(void **state)
{
    (void)state;
    TMP_PATH(model, "all.aedet");
    assert_int_equal(test_run("train --normal-dir %s " SMALL " -o %s", TREE("good"), model), 0);
    assert_int_equal(test_run("score %s --normal-dir %s --abnormal-dir %s --batch 8", model, TREE("good"),
                              TREE("scratch")), 0);
    test_expect_output("warning: 26 of the 37 scored images are images the model trained on");
    /* 26: 32 less the 6 of validation. As classes: good, masks (no images of
     * its own), scratch, dent, and --normal-class by name. */
    int rc = test_run("score %s %s --layout classes --normal-class good --exclude '*_mask*' --batch 8", model,
                      test_path("tiles"));
    if (rc)
        printf("%s\n", test_output());
    assert_int_equal(rc, 0);
    test_expect_output("warning: 26 of the");
    test_expect_output("class scratch");
    /* --split validation scores held-out images: no warning */
    assert_int_equal(test_run("score %s --normal-dir %s --split validation --batch 8", model, TREE("good")), 0);
    test_expect_output("of 6 images");
    test_expect_no_output("trained on");
}

/* A plain folder of images with their masks beside them: trained on as it
 * is, with a warning. */
static void test_plain_folder_with_masks_warns(void **state)
{
    (void)state;
    TMP_PATH(model, "plain.aedet");
    assert_int_equal(test_run("train %s " SMALL " -o %s", TREE("good"), model), 0);
    test_expect_output("looks like images with their masks (8 of 40 files");
    test_expect_output("--exclude '*_mask*'");
    assert_int_equal(test_run("train %s --exclude '*_mask*' " SMALL " -o %s", TREE("good"), model), 0);
    test_expect_no_output("looks like images");
}

static void test_folder_layout_errors(void **state)
{
    (void)state;
    TMP_PATH(model, "tiles.aedet");
    assert_int_equal(test_run("train --abnormal-dir %s -o %s", TREE("scratch"), model), 2);
    test_expect_output("--abnormal-dir belongs to the folder layout: give --normal-dir DIR too");
    assert_int_equal(test_run("train %s --normal-dir %s -o %s", TREE("good"), TREE("good"), model), 2);
    test_expect_output("give DATA or --normal-dir, not both");
    assert_int_equal(test_run("train --normal-dir %s --layout classes -o %s", TREE("good"), model), 2);
    assert_int_equal(test_run("train --normal-dir %s --test-split 0.2 --normal-test-dir %s -o %s", TREE("good"),
                              TREE("dent"), model), 2);
    test_expect_output("not both");
    assert_int_equal(test_run("train --normal-dir %s --test-split 1 -o %s", TREE("good"), model), 2);
    assert_int_equal(test_run("score %s", model), 2);
    test_expect_output("DATA (or --normal-dir DIR) is required");
    assert_int_equal(test_run("score %s --normal-dir %s --abnormal-dir %s", model, TREE("good"), TREE("nothere")), 4);
    test_expect_output("nothere: not a folder");

    /* a mask without its image: bad data, named */
    uint8_t px[SIDE * SIDE] = {0};
    put("tiles/masks/dent/099.png", px, SIDE);
    assert_int_equal(test_run("score %s --normal-dir %s --abnormal-dir %s --abnormal-dir %s --mask-dir %s", model,
                              TREE("good"), TREE("scratch"), TREE("dent"), TREE("masks")), 3);
    test_expect_output("masks/dent/099.png has no image");
    remove(test_path("tiles/masks/dent/099.png"));
    /* a mask of another size than its image */
    put("tiles/masks/dent/002.png", px, 8);
    assert_int_equal(test_run("score %s --normal-dir %s --abnormal-dir %s --mask-dir %s --batch 8", model,
                              TREE("good"), TREE("dent"), TREE("masks")), 3);
    test_expect_output("masks/dent/002.png is 8x8, but its image 16x16");
    uint8_t mask[SIDE * SIDE];
    make_tile(px, mask, 102, 2);
    put("tiles/masks/dent/002.png", mask, SIDE);
}

/* eval knows MVTec's good is normal: by a class column, or (an older CSV)
 * by the test/good/ folder of its images. */
static void test_eval_knows_mvtec_good(void **state)
{
    (void)state;
    TMP_PATH(old, "mvtec_old.csv");
    const char *old_csv = "rank,image,label,score\n"
                          "1,bottle/test/crack/000.png,1,0.9\n"
                          "2,bottle/test/hole/000.png,2,0.8\n"
                          "3,bottle/test/good/000.png,0,0.2\n"
                          "4,bottle/test/hole/001.png,2,0.15\n"
                          "5,bottle/test/good/001.png,0,0.1\n";
    test_write_file(old, old_csv, strlen(old_csv));
    assert_int_equal(test_run("eval %s", old), 0);
    test_expect_output("anomalies     3 known");
    test_expect_output("class 1     AUROC vs normal 1.0000 (1 images)");
    TMP_PATH(named, "mvtec_new.csv");
    const char *new_csv = "rank,image,label,score,threshold,flagged,class\n"
                          "1,a.png,1,0.9,0.5,1,crack\n"
                          "2,b.png,2,0.8,0.5,1,hole\n"
                          "3,c.png,0,0.2,0.5,0,good\n"
                          "4,d.png,2,0.15,0.5,0,hole\n"
                          "5,e.png,0,0.1,0.5,0,good\n";
    test_write_file(named, new_csv, strlen(new_csv));
    assert_int_equal(test_run("eval %s", named), 0);
    test_expect_output("class crack AUROC vs normal 1.0000 (1 images)");
    test_expect_output("class hole  AUROC vs normal 0.7500 (2 images)");
    assert_int_equal(test_run("eval %s --normal-class good,hole", named), 0);
    test_expect_output("anomalies     1 known");
    /* no good class anywhere: still asks */
    const char *plain = "score,label\n0.9,1\n0.8,2\n0.1,0\n";
    TMP_PATH(numbers, "numbers.csv");
    test_write_file(numbers, plain, strlen(plain));
    assert_int_equal(test_run("eval %s", numbers), 2);
    test_expect_output("--normal-class");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_and_score_the_folder_layout),
        cmocka_unit_test(test_scoring_training_images_warns),
        cmocka_unit_test(test_plain_folder_with_masks_warns),
        cmocka_unit_test(test_folder_layout_errors),
        cmocka_unit_test(test_eval_knows_mvtec_good),
    };
    return cmocka_run_group_tests(tests, setup_tree, NULL);
}
