/* Input-side limits (issue 19): bounded --threads, bounded memory for a model
 * that declares huge images, non-regular files, decompression bombs, every
 * numeric option checked, models the tool cannot run refused at load, and a
 * data fingerprint that does not depend on how DATA is spelled. */
#include "support.h"

#include "aedet.h"
#include "nn/model.h" /* ae_plan_make: a crafted file's tensors without building the model */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#define SIDE 16
#define NUM_IMAGES 12
#define SMALL "--size 16 --filters 4,8 --latent 4 --batch 8 --threads 1"



/* A folder of small gradients and a model trained on it (tmp/data, tmp/m.aedet). */
static int setup(void **state)
{
    (void)state;
    mkdir(test_path("data"), 0777);
    uint8_t px[SIDE * SIDE];
    char path[PATH_MAX];
    for (int k = 0; k < NUM_IMAGES; k++) {
        for (int i = 0; i < SIDE * SIDE; i++)
            px[i] = (uint8_t)(k * 9 + i % SIDE * 5 + i / SIDE * 3);
        snprintf(path, sizeof path, "%s/data/img%02d.png", test_tmpdir(), k);
        test_write_png(path, px, SIDE, SIDE, 0, 8);
    }
    if (test_run("train %s --epochs 1 " SMALL " -o %s", test_path("data"), test_path("m.aedet")) != 0) {
        fprintf(stderr, "training the test model failed:\n%s", test_output());
        return -1;
    }
    return 0;
}

/* ---- 1: --threads ---- */

static void test_threads_are_bounded(void **state)
{
    (void)state;
    assert_int_equal(test_run("train %s --epochs 1 --size 16 --filters 4,8 --latent 4 --batch 8 --threads 100000 -o %s",
                         test_path("data"), test_path("t.aedet")),
                     2);
    test_expect_output("--threads");
    test_expect_output("1024");
    assert_int_equal(test_run("score %s %s --threads -3", test_path("m.aedet"), test_path("data")), 2);
    test_expect_output("--threads");
    /* the most allowed runs (decoding threads are capped by the images) */
    assert_int_equal(test_run("score %s %s --threads 1024 --batch 8", test_path("m.aedet"), test_path("data")), 0);
}

/* ---- 2 and 6: crafted model files ---- */

/* A model file for cfg with every tensor zero, built from the plan alone (no
 * activations), with or without aedet.version. */
static void write_model(const char *path, const ae_config *cfg, int with_version)
{
    ae_plan plan;
    ae_error err = {0};
    if (ae_plan_make(&plan, cfg, 1, 1, &err) != AE_OK)
        fail_msg("plan: %s", err.message);
    ae_meta *m = ae_meta_new();
    int64_t filters[AE_MAX_FILTERS];
    for (int i = 0; i < cfg->num_filters; i++)
        filters[i] = cfg->filters[i];
    assert_non_null(m);
    if (with_version)
        assert_int_equal(ae_meta_set_str(m, AE_KEY_VERSION, AE_VERSION_STRING, &err), AE_OK);
    assert_int_equal(ae_meta_set_int(m, AE_KEY_HEIGHT, cfg->height, &err) | ae_meta_set_int(m, AE_KEY_WIDTH, cfg->width, &err) |
                         ae_meta_set_int(m, AE_KEY_CHANNELS, cfg->channels, &err) |
                         ae_meta_set_ints(m, AE_KEY_FILTERS, filters, (size_t)cfg->num_filters, &err) |
                         ae_meta_set_int(m, AE_KEY_LATENT, cfg->latent_dim, &err) |
                         ae_meta_set_float(m, AE_KEY_SLOPE, cfg->leaky_slope, &err) |
                         ae_meta_set_float(m, AE_KEY_MOMENTUM, cfg->bn_momentum, &err) |
                         ae_meta_set_float(m, AE_KEY_EPSILON, cfg->bn_epsilon, &err) |
                         ae_meta_set_int(m, AE_KEY_PRE_HEIGHT, cfg->height, &err) |
                         ae_meta_set_int(m, AE_KEY_PRE_WIDTH, cfg->width, &err) |
                         ae_meta_set_int(m, AE_KEY_PRE_CHANNELS, cfg->channels, &err) |
                         ae_meta_set_str(m, AE_KEY_PRE_RESIZE, AE_PREPROCESS_RESIZE, &err) |
                         ae_meta_set_float(m, AE_KEY_PRE_SCALE, AE_PREPROCESS_SCALE, &err),
                     AE_OK);
    size_t largest = 1;
    for (int i = 0; i < plan.num_tensors; i++)
        largest = plan.tensors[i].size > largest ? plan.tensors[i].size : largest;
    float *zeros = calloc(largest, sizeof *zeros);
    ae_file_tensor t[AE_MAX_TENSORS];
    assert_non_null(zeros);
    for (int i = 0; i < plan.num_tensors; i++) {
        const ae_tensor_info *info = &plan.tensors[i];
        memset(&t[i], 0, sizeof t[i]);
        snprintf(t[i].name, sizeof t[i].name, "%s", info->name);
        t[i].kind = info->is_state ? AE_KIND_STATE : AE_KIND_PARAM;
        t[i].ndim = info->ndim;
        for (int d = 0; d < info->ndim; d++)
            t[i].shape[d] = info->shape[d];
        t[i].count = info->size;
        t[i].data = zeros;
    }
    uint8_t *bytes;
    size_t len;
    assert_int_equal(ae_model_file_encode(m, t, plan.num_tensors, &bytes, &len, &err), AE_OK);
    test_write_file(path, bytes, len);
    free(bytes);
    free(zeros);
    ae_meta_free(m);
}

/* 8192x8192 images through eight one-filter levels: a file of a few KB whose
 * activations take gigabytes for a batch. */
static void test_huge_model_is_refused_before_allocating(void **state)
{
    (void)state;
    ae_config cfg;
    ae_config_init(&cfg, 8192, 8192, 1);
    cfg.num_filters = 8;
    for (int i = 0; i < 8; i++)
        cfg.filters[i] = 1;
    cfg.latent_dim = 2;
    const char *model = test_path("huge.aedet");
    write_model(model, &cfg, 1);
    struct stat st;
    assert_int_equal(stat(model, &st), 0);
    assert_true(st.st_size < 100000);
    /* info reads the metadata only (under ASan a multi-GB allocation would fail) */
    assert_int_equal(test_run("info %s", model), 0);
    test_expect_output("input 8192x8192x1");
    assert_int_equal(test_run("score %s %s --batch 32 --memory-limit 256M", model, test_path("data")), 5);
    test_expect_output("--memory-limit");
    test_expect_output("268435456");
    assert_int_equal(test_run("encode %s %s --batch 32 --memory-limit 256M -o %s", model, test_path("data"),
                         test_path("lat.csv")),
                     5);
    test_expect_output("bytes");
    /* the library's default limit is half of physical memory */
    ae_set_memory_limit(4096);
    ae_model *m = NULL;
    ae_error err = {0};
    assert_int_equal(ae_model_load(test_path("m.aedet"), 8, &m, NULL, NULL, &err), AE_ERR_FORMAT);
    assert_non_null(strstr(err.message, "4096"));
    ae_set_memory_limit(0);
    assert_int_equal(ae_model_load(test_path("m.aedet"), 8, &m, NULL, NULL, &err), AE_OK);
    ae_model_free(m);
}

static void test_models_the_tool_cannot_run_are_refused(void **state)
{
    (void)state;
    ae_config cfg;
    for (int ch = 2; ch <= 4; ch += 2) {
        ae_config_init(&cfg, 16, 16, ch);
        write_model(test_path("ch.aedet"), &cfg, 1);
        assert_int_equal(test_run("info %s", test_path("ch.aedet")), 5);
        test_expect_output("channels");
        assert_int_equal(test_run("score %s %s --batch 8", test_path("ch.aedet"), test_path("data")), 5);
    }
    ae_config_init(&cfg, 16, 16, 1);
    write_model(test_path("nover.aedet"), &cfg, 0);
    assert_int_equal(test_run("info %s", test_path("nover.aedet")), 5);
    test_expect_output("aedet.version");
    write_model(test_path("ver.aedet"), &cfg, 1);
    assert_int_equal(test_run("info %s", test_path("ver.aedet")), 0);
}

/* ---- 3: non-regular files ---- */

static void test_non_regular_files_fail_at_once(void **state)
{
    (void)state;
    alarm(120); /* a FIFO that blocks would hang the test: fail it instead */
    const char *fifo = test_path("fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(test_run("info /dev/zero"), 4);
    test_expect_output("not a regular file");
    assert_int_equal(test_run("info %s", fifo), 4);
    test_expect_output("not a regular file");
    uint8_t *bytes = NULL;
    size_t len;
    ae_error err = {0};
    assert_int_equal(ae_read_file("/dev/zero", &bytes, &len, &err), AE_ERR_IO);
    assert_null(bytes);

    /* a labels CSV naming /dev/zero (through a link) and a FIFO */
    mkdir(test_path("csvdata"), 0777);
    char path[PATH_MAX];
    uint8_t px[SIDE * SIDE] = {0};
    snprintf(path, sizeof path, "%s/csvdata/a.png", test_tmpdir());
    test_write_png(path, px, SIDE, SIDE, 0, 8);
    snprintf(path, sizeof path, "%s/csvdata/zero.png", test_tmpdir());
    assert_int_equal(symlink("/dev/zero", path), 0);
    snprintf(path, sizeof path, "%s/csvdata/fifo.png", test_tmpdir());
    assert_int_equal(mkfifo(path, 0600), 0);
    const char *csv = "Filename,Label\na.png,0\nzero.png,0\nfifo.png,0\n";
    test_write_file(test_path("csvdata/labels.csv"), csv, strlen(csv));
    assert_int_equal(test_run("score %s %s --labels %s --batch 8", test_path("m.aedet"), test_path("csvdata"),
                         test_path("csvdata/labels.csv")),
                     3);
    test_expect_output("zero.png");
    test_expect_output("not a regular file");
    assert_int_equal(test_run("score %s %s --labels %s --batch 8 --bad-files skip", test_path("m.aedet"),
                         test_path("csvdata"), test_path("csvdata/labels.csv")),
                     0);
    test_expect_output("skipped 2 bad files");
    test_expect_output("fifo.png");
    alarm(0);
}

/* ---- 4: decompression bombs ---- */

/* Rewrites a PNG's IHDR size (and its CRC). */
static void patch_png_size(const char *path, uint32_t width, uint32_t height)
{
    FILE *f = fopen(path, "r+b");
    uint8_t ihdr[17]; /* "IHDR" + 13 bytes of data */
    assert_non_null(f);
    assert_int_equal(fseek(f, 12, SEEK_SET), 0);
    assert_int_equal(fread(ihdr, 1, sizeof ihdr, f), sizeof ihdr);
    for (int i = 0; i < 4; i++) {
        ihdr[4 + i] = (uint8_t)(width >> (24 - 8 * i));
        ihdr[8 + i] = (uint8_t)(height >> (24 - 8 * i));
    }
    uint32_t crc = (uint32_t)crc32(0, ihdr, sizeof ihdr);
    uint8_t be[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc};
    assert_int_equal(fseek(f, 12, SEEK_SET), 0);
    assert_int_equal(fwrite(ihdr, 1, sizeof ihdr, f), sizeof ihdr);
    assert_int_equal(fwrite(be, 1, 4, f), 4);
    assert_int_equal(fclose(f), 0);
}

/* Rewrites a baseline JPEG's SOF0 size. */
static void patch_jpeg_size(const char *path, unsigned width, unsigned height)
{
    uint8_t *b = NULL;
    size_t len;
    ae_error err;
    assert_int_equal(ae_read_file(path, &b, &len, &err), AE_OK);
    size_t i = 2;
    while (i + 9 < len && !(b[i] == 0xFF && b[i + 1] == 0xC0))
        i += 2 + ((size_t)b[i + 2] << 8 | b[i + 3]);
    assert_true(i + 9 < len);
    b[i + 5] = (uint8_t)(height >> 8), b[i + 6] = (uint8_t)height;
    b[i + 7] = (uint8_t)(width >> 8), b[i + 8] = (uint8_t)width;
    test_write_file(path, b, len);
    free(b);
}

static void test_decompression_bombs_are_refused_from_the_header(void **state)
{
    (void)state;
    uint8_t px[SIDE * SIDE * 3] = {0};
    ae_image img;
    ae_error err = {0};
    const char *png = test_path("bomb.png");
    test_write_png(png, px, SIDE, SIDE, 0, 8);
    patch_png_size(png, 9000, 9000); /* 81 Mpx: over the default 64 Mpx */
    assert_int_equal(ae_image_load(png, &img, &err), AE_ERR_DATA);
    assert_non_null(strstr(err.message, png));
    assert_non_null(strstr(err.message, "9000x9000"));
    const char *jpg = test_path("bomb.jpg");
    test_write_jpeg(jpg, px, SIDE, SIDE, 3, 90);
    patch_jpeg_size(jpg, 64512, 2296);
    assert_int_equal(ae_image_load(jpg, &img, &err), AE_ERR_DATA);
    assert_non_null(strstr(err.message, "64512x2296"));
    assert_non_null(strstr(err.message, "limit"));

    /* --max-pixels: an ordinary image over a lower limit is a bad file */
    mkdir(test_path("big"), 0777);
    uint8_t big[64 * 64] = {0};
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/big/x.png", test_tmpdir());
    test_write_png(path, big, 64, 64, 0, 8);
    assert_int_equal(test_run("score %s %s --batch 8 --max-pixels 1000", test_path("m.aedet"), test_path("big")), 3);
    test_expect_output("x.png");
    test_expect_output("64x64");
    assert_int_equal(test_run("score %s %s --batch 8 --max-pixels 4096", test_path("m.aedet"), test_path("big")), 0);
    assert_int_equal(test_run("score %s %s --max-pixels 0", test_path("m.aedet"), test_path("big")), 2);
    test_expect_output("--max-pixels");
}

/* ---- 5: numeric options ---- */

static void test_every_numeric_option_is_checked(void **state)
{
    (void)state;
    static const struct {
        const char *args, *flag;
    } bad[] = {
        {"score m d --threshold nan", "--threshold"},
        {"score m d --mean-sd nan", "--mean-sd"},
        {"score m d --memory-budget nan", "--memory-budget"},
        {"score m d --memory-budget -1", "--memory-budget"},
        {"score m d --memory-budget 1e30", "--memory-budget"},
        {"train d -o m --decay inf", "--decay"},
        {"train d -o m --slope 1e30", "--slope"},
        {"train d -o m --filters 1,", "--filters"},
        {"train d -o m --filters ,4", "--filters"},
        {"train d -o m --augment flip,,shift", "--augment"},
        {"score m d --top -1", "--top"},
        {"score m d --quantile -1", "--quantile"},
        {"score m d --quantile 1.5", "--quantile"},
        {"train d -o m --lr nan", "--lr"},
        {"score m d --batch 0", "--batch"},
        {"score m d --contamination 2", "--contamination"},
        {"score m d --memory-limit nan", "--memory-limit"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = test_run("%s", bad[i].args);
        if (rc != 2 || !strstr(test_output(), bad[i].flag))
            fail_msg("aedet %s: exit %d (want 2 naming %s):\n%s", bad[i].args, rc, bad[i].flag, test_output());
    }
}

/* ---- 7: the data fingerprint ---- */

static void test_fingerprint_ignores_how_data_is_spelled(void **state)
{
    (void)state;
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(test_tmpdir()), 0);
    static const char *spellings[] = {"data", "./data", "data/", NULL};
    for (int i = 0; spellings[i]; i++) {
        assert_int_equal(test_run("score m.aedet %s --split validation --batch 8", spellings[i]), 0);
    }
    assert_int_equal(test_run("score m.aedet %s --split validation --batch 8", test_path("data")), 0);
    /* a run stopped as by Ctrl-C resumes on another spelling of its data */
    setenv("AEDET_TEST_INTERRUPT_AFTER", "1", 1);
    int rc = test_run("train ./data/ --epochs 2 " SMALL " -o ./r.aedet");
    unsetenv("AEDET_TEST_INTERRUPT_AFTER");
    assert_int_equal(rc, 130);
    assert_int_equal(test_run("train %s --resume r.aedet.ckpt " SMALL " -o ./r.aedet", test_path("data")), 0);
    test_expect_output("resuming");
    /* --resume alone, from another folder: the checkpoint's own command,
     * its relative paths taken from the folder it ran in */
    setenv("AEDET_TEST_INTERRUPT_AFTER", "1", 1);
    rc = test_run("train data --epochs 2 " SMALL " -o r2.aedet");
    unsetenv("AEDET_TEST_INTERRUPT_AFTER");
    assert_int_equal(rc, 130);
    test_expect_output("continue with: aedet train --resume r2.aedet.ckpt");
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(test_run("train --resume %s --epochs 7", test_path("r2.aedet.ckpt")), 0);
    test_expect_output("as the checkpoint began");
    test_expect_output("--epochs 7 ignored: the checkpoint's 2 is kept");
    assert_true(access(test_path("r2.aedet"), F_OK) == 0);
    assert_false(access(test_path("r2.aedet.ckpt"), F_OK) == 0);
    /* without DATA and without a checkpoint there is nothing to run */
    assert_int_equal(test_run("train -o %s", test_path("r3.aedet")), 2);
    test_expect_output("is required (or --resume CKPT alone)");
}

/* ---- 16: what a labels CSV may name, and how it may contradict itself ---- */

static void test_csv_rows_outside_data_and_conflicts(void **state)
{
    (void)state;
    mkdir(test_path("elsewhere"), 0777);
    const char *csv = "Filename,Label\n../data/img00.png,0\n../data/img01.png,1\n../data/img01.png,0\n";
    test_write_file(test_path("elsewhere/labels.csv"), csv, strlen(csv));
    assert_int_equal(test_run("score %s %s --labels %s --batch 8 -o %s", test_path("m.aedet"), test_path("elsewhere"),
                              test_path("elsewhere/labels.csv"), test_path("outside.csv")),
                     3);
    test_expect_output("labels.csv line 2");
    test_expect_output("--allow-outside");
    assert_int_equal(test_run("score %s %s --labels %s --allow-outside --batch 8 -o %s", test_path("m.aedet"),
                              test_path("elsewhere"), test_path("elsewhere/labels.csv"), test_path("outside.csv")),
                     0);
    test_expect_output("warning: ");
    test_expect_output("lines 3 and 4 name ../data/img01.png with different labels (1, 0)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_are_bounded),
        cmocka_unit_test(test_csv_rows_outside_data_and_conflicts),
        cmocka_unit_test(test_huge_model_is_refused_before_allocating),
        cmocka_unit_test(test_models_the_tool_cannot_run_are_refused),
        cmocka_unit_test(test_non_regular_files_fail_at_once),
        cmocka_unit_test(test_decompression_bombs_are_refused_from_the_header),
        cmocka_unit_test(test_every_numeric_option_is_checked),
        cmocka_unit_test(test_fingerprint_ignores_how_data_is_spelled),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
