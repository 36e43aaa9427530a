/* What the tool writes (issue 19): no output may replace an input or another
 * output; outputs are checked before any work; CSV fields are quoted alike;
 * long names and stale temporary files; control characters on terminals;
 * the real errno of a failed write. */
#include "support.h"

#include "aedet.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pty.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Paths here are built from the test folder's (short) path into PATH_MAX
 * buffers; gcc cannot know that and warns of truncation on every one. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define SIDE 16
#define NUM_IMAGES 12
#define SMALL "--size 16 --filters 4,8 --latent 4 --batch 8 --threads 1"





/* The same on a pseudo-terminal (stdout and stderr both), as a user sees it. */
static int run_on_terminal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_on_terminal(const char *fmt, ...)
{
    char args[8192], cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "exec %s %s < /dev/null", test_aedet(), args);
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    static char seen[1 << 16];
    size_t used = 0;
    for (;;) {
        ssize_t got = read(master, seen + used, sizeof seen - 1 - used);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) /* EIO once the child has closed the terminal */
            break;
        used += (size_t)got;
        if (used == sizeof seen - 1)
            break;
    }
    seen[used] = '\0';
    test_set_output(seen);
    close(master);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The whole file, to compare before and after; free it. */
static uint8_t *slurp(const char *path, size_t *len)
{
    uint8_t *bytes = NULL;
    ae_error err;
    assert_int_equal(ae_read_file(path, &bytes, len, &err), AE_OK);
    return bytes;
}

static void expect_unchanged(const char *path, const uint8_t *before, size_t len)
{
    size_t now_len;
    uint8_t *now = slurp(path, &now_len);
    assert_int_equal(now_len, len);
    assert_memory_equal(now, before, len);
    free(now);
}

static void write_image(const char *path, int k)
{
    uint8_t px[SIDE * SIDE];
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++)
            px[y * SIDE + x] = (uint8_t)(127.5 + 100 * sin(0.3 * k + 0.3 * x + 0.2 * y));
    test_write_png(path, px, SIDE, SIDE, 0, 8);
}

static char model[PATH_MAX], data[PATH_MAX], labels[PATH_MAX], image0[PATH_MAX];

/* A folder of images with a labels CSV, and a small model trained on it. */
static int setup(void **state)
{
    (void)state;
    int rc = test_labelled_model(data, labels, model, sizeof data, NUM_IMAGES, write_image, SMALL);
    snprintf(image0, sizeof image0, "%s/img00.png", data);
    return rc;
}

/* Defect 1: an output that is the model, a data file, the labels or another
 * output is refused (exit 2) before anything is written, naming both. */
static void test_output_onto_an_input_is_refused(void **state)
{
    (void)state;
    /* A copy: on a tool with the defect, the model would be lost for the
     * other tests. */
    char victim[PATH_MAX];
    snprintf(victim, sizeof victim, "%s/victim.aedet", test_tmpdir());
    size_t len;
    uint8_t *bytes = slurp(model, &len);
    test_write_file(victim, bytes, len);
    free(bytes);
    size_t model_len, image_len, labels_len;
    uint8_t *model_bytes = slurp(victim, &model_len), *image_bytes = slurp(image0, &image_len),
            *labels_bytes = slurp(labels, &labels_len);
    char dotted[PATH_MAX], other[PATH_MAX];
    /* The same file by another spelling: compared by device and inode. */
    snprintf(dotted, sizeof dotted, "%s/./data/../victim.aedet", test_tmpdir());

    assert_int_equal(test_run("score %s %s --batch 8 -o %s", test_quote(victim), test_quote(data), test_quote(victim)), 2);
    test_expect_output("-o ");
    test_expect_output("would overwrite the model");
    test_expect_output(victim);
    assert_int_equal(test_run("score %s %s --batch 8 --metrics %s", test_quote(victim), test_quote(data), test_quote(dotted)), 2);
    test_expect_output(dotted);
    test_expect_output(victim);
    assert_int_equal(test_run("score %s %s --batch 8 --report %s", test_quote(victim), test_quote(data), test_quote(image0)), 2);
    test_expect_output("would overwrite an image of the data set");
    test_expect_output(image0);
    assert_int_equal(test_run("score %s %s --batch 8 --labels %s -o %s", test_quote(victim), test_quote(data), test_quote(labels), test_quote(labels)), 2);
    test_expect_output("would overwrite the labels");
    assert_int_equal(test_run("report %s %s --batch 8 -o %s", test_quote(victim), test_quote(data), test_quote(victim)), 2);
    assert_int_equal(test_run("report %s %s --batch 8 -o %s/r.html --csv %s", test_quote(victim), test_quote(data), test_tmpdir(), test_quote(image0)), 2);
    assert_int_equal(test_run("encode %s %s --batch 8 -o %s", test_quote(victim), test_quote(data), test_quote(victim)), 2);
    assert_int_equal(test_run("eval %s --metrics %s", test_quote(labels), test_quote(labels)), 2);

    /* Two outputs that do not exist yet, spelled differently: the same file
     * by their folder's real path. */
    snprintf(other, sizeof other, "%s/data/../x.csv", test_tmpdir());
    assert_int_equal(test_run("score %s %s --batch 8 -o %s/x.csv --metrics %s", test_quote(victim), test_quote(data), test_tmpdir(), test_quote(other)), 2);
    test_expect_output("would overwrite -o");
    assert_false(file_exists(test_path("x.csv")));

    /* reconstruct into the data folder: its PNGs would replace the images (and
     * be read as data next time). */
    assert_int_equal(test_run("reconstruct %s %s --batch 8 -o %s", test_quote(victim), test_quote(data), test_quote(data)), 2);
    test_expect_output(data);

    /* train: refused before the first epoch. */
    assert_int_equal(test_run("train %s --epochs 1 " SMALL " -o %s", test_quote(data), test_quote(image0)), 2);
    test_expect_output("would overwrite an image of the data set");
    test_expect_no_output("epoch");
    assert_int_equal(test_run("train %s --labels %s --epochs 1 " SMALL " -o %s/m2.aedet --checkpoint %s", test_quote(data),
                         test_quote(labels), test_tmpdir(), test_quote(labels)),
                     2);
    test_expect_output("--checkpoint");
    test_expect_output("would overwrite the labels");
    test_expect_no_output("epoch");
    assert_false(file_exists(test_path("m2.aedet")));

    expect_unchanged(victim, model_bytes, model_len);
    expect_unchanged(image0, image_bytes, image_len);
    expect_unchanged(labels, labels_bytes, labels_len);
    free(model_bytes);
    free(image_bytes);
    free(labels_bytes);

    /* Still fine: outputs beside the inputs. */
    assert_int_equal(test_run("score %s %s --batch 8 -o %s/s.csv --metrics %s/s.json", test_quote(victim), test_quote(data), test_tmpdir(),
                         test_tmpdir()),
                     0);
}

/* Defect 2: where outputs cannot go is found before training, and outputs
 * that are not regular files (devices, FIFOs, links) are refused. */
static void test_outputs_checked_before_work(void **state)
{
    (void)state;
    assert_int_equal(test_run("train %s --epochs 1 " SMALL " -o %s/no/such/dir/m.aedet", test_quote(data), test_tmpdir()), 4);
    test_expect_output("no/such/dir");
    test_expect_no_output("epoch");
    assert_int_equal(test_run("train %s --epochs 1 " SMALL " -o %s/m3.aedet --checkpoint %s/nodir/c", test_quote(data),
                         test_tmpdir(), test_tmpdir()),
                     4);
    test_expect_no_output("epoch");
    assert_int_equal(test_run("train %s --epochs 1 " SMALL " -o /dev/stdout", test_quote(data)), 2);
    test_expect_output("not a regular file");
    test_expect_output("give --checkpoint FILE");
    test_expect_no_output("epoch");
    /* a device is written as it is, and its errors told */
    assert_int_equal(test_run("score %s %s --batch 8 -o /dev/full", test_quote(model), test_quote(data)), 4);
    test_expect_output("/dev/full");
    test_expect_output(strerror(ENOSPC));
    assert_int_equal(test_run("score %s %s --batch 8 --metrics %s", test_quote(model), test_quote(data), test_tmpdir()), 2);
    test_expect_output("is a folder");
    assert_int_equal(test_run("encode %s %s --batch 8 -o %s/nodir/z.csv", test_quote(model), test_quote(data), test_tmpdir()), 4);
    /* A link is written through: it stays a link, its file is replaced;
     * one to nowhere is refused. */
    char target[PATH_MAX], link[PATH_MAX], dangling[PATH_MAX];
    snprintf(target, sizeof target, "%s/target.csv", test_tmpdir());
    snprintf(link, sizeof link, "%s/link.csv", test_tmpdir());
    snprintf(dangling, sizeof dangling, "%s/dangling.csv", test_tmpdir());
    test_write_file(target, "keep\n", 5);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(test_run("score %s %s --batch 8 -o %s", test_quote(model), test_quote(data), test_quote(link)), 0);
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    size_t target_len;
    uint8_t *written = slurp(target, &target_len);
    assert_true(target_len > 5 && !memcmp(written, "rank,image,", 11));
    free(written);
    assert_int_equal(symlink("no-such-file.csv", dangling), 0);
    assert_int_equal(test_run("score %s %s --batch 8 -o %s", test_quote(model), test_quote(data), test_quote(dangling)), 2);
    test_expect_output("symbolic link to a file that does not exist");

    /* A bare name is a file in the current folder (the README's
     * `-o model.aedet`), not a folder named "". */
    char bin[PATH_MAX], cwd[PATH_MAX], bare[PATH_MAX + 16];
    assert_non_null(realpath(test_aedet(), bin));
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(test_tmpdir()), 0);
    char cmd[4 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "%s score %s %s --batch 8 -o bare.csv > /dev/null 2>&1 < /dev/null", bin, test_quote(model),
             test_quote(data));
    int rc = system(cmd);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, 0);
    snprintf(bare, sizeof bare, "%s/bare.csv", test_tmpdir());
    assert_int_equal(stat(bare, &st), 0);
}

/* Defect 15 / issue 20: "-" is standard output (messages then go to
 * standard error), through a pipe as into a file; one output per run. */
static int shell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int shell(const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_standard_output(void **state)
{
    (void)state;
    char file[PATH_MAX], out[PATH_MAX], piped[PATH_MAX], errs[PATH_MAX], ckpt[PATH_MAX], got_model[PATH_MAX];
    snprintf(file, sizeof file, "%s/as-file.csv", test_tmpdir());
    snprintf(out, sizeof out, "%s/stdout.csv", test_tmpdir());
    snprintf(piped, sizeof piped, "%s/piped.csv", test_tmpdir());
    snprintf(errs, sizeof errs, "%s/stderr.txt", test_tmpdir());
    assert_int_equal(test_run("score %s %s --batch 8 -o %s", test_quote(model), test_quote(data), test_quote(file)), 0);
    assert_int_equal(shell("%s score %s %s --batch 8 -o - > %s 2> %s < /dev/null", test_aedet(), test_quote(model), test_quote(data),
                           test_quote(out), test_quote(errs)),
                     0);
    assert_int_equal(shell("%s score %s %s --batch 8 -o - 2> /dev/null < /dev/null | cat > %s", test_aedet(),
                           test_quote(model), test_quote(data), test_quote(piped)),
                     0);
    size_t n_file, n_out, n_piped, n_errs;
    uint8_t *want = slurp(file, &n_file), *got = slurp(out, &n_out), *through = slurp(piped, &n_piped);
    uint8_t *messages = slurp(errs, &n_errs);
    assert_int_equal(n_out, n_file);
    assert_memory_equal(got, want, n_file);
    assert_int_equal(n_piped, n_file);
    assert_memory_equal(through, want, n_file);
    assert_non_null(strstr((char *)messages, "flagged")); /* the summary went to standard error */
    free(want);
    free(got);
    free(through);
    free(messages);
    assert_int_equal(test_run("score %s %s --batch 8 -o - --metrics -", test_quote(model), test_quote(data)), 2);
    test_expect_output("only one output can be standard output");
    /* a model to standard output needs a file for its checkpoints */
    snprintf(ckpt, sizeof ckpt, "%s/stdout.ckpt", test_tmpdir());
    snprintf(got_model, sizeof got_model, "%s/from-stdout.aedet", test_tmpdir());
    assert_int_equal(test_run("train %s --epochs 1 " SMALL " -o -", test_quote(data)), 2);
    test_expect_output("give --checkpoint FILE");
    assert_int_equal(shell("%s train %s --epochs 1 " SMALL " -o - --checkpoint %s > %s 2> /dev/null < /dev/null",
                           test_aedet(), test_quote(data), test_quote(ckpt), test_quote(got_model)),
                     0);
    ae_model *m;
    ae_meta *meta;
    ae_error err;
    assert_int_equal(ae_model_load(got_model, 8, &m, &meta, NULL, &err), AE_OK);
    ae_meta_free(meta);
    ae_model_free(m);
    assert_false(file_exists(ckpt));
    assert_int_equal(test_run("score %s %s --batch 8 -o /dev/null", test_quote(model), test_quote(data)), 0);
}

/* Defect 3: every CSV field the tool writes is quoted when it must be, the
 * reconstruction names of index.csv too; names are kept exactly (a leading
 * = or - included: README, "Output files"). */
static void test_csv_fields_quoted(void **state)
{
    (void)state;
    static const char *names[] = {"a,b.png", "q\"uote.png", "=SUM(1).png", "new\nline.png", "-x.png"};
    const int n = (int)(sizeof names / sizeof names[0]);
    char dir[PATH_MAX], path[PATH_MAX], out[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/csvdata", test_tmpdir());
    mkdir(dir, 0777);
    for (int k = 0; k < n; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        write_image(path, k);
    }
    snprintf(out, sizeof out, "%s/csvout", test_tmpdir());
    assert_int_equal(test_run("reconstruct %s %s --batch 8 --error-map -o %s", test_quote(model), test_quote(dir), test_quote(out)), 0);
    snprintf(path, sizeof path, "%s/index.csv", out);
    ae_csv csv;
    ae_error err;
    assert_int_equal(ae_csv_read(path, &csv, &err), AE_OK);
    assert_int_equal(csv.num_rows, n);
    assert_int_equal(csv.num_columns, 4);
    for (size_t r = 0; r < csv.num_rows; r++) {
        assert_int_equal(csv.row_columns[r], 4);
        for (int c = 2; c < 4; c++) { /* reconstruction, error_map: files in out */
            snprintf(path, sizeof path, "%s/%s", out, csv.rows[r][c]);
            if (!file_exists(path))
                fail_msg("index.csv row %zu names %s, which is not there", r, csv.rows[r][c]);
        }
    }
    ae_csv_free(&csv);

    char scores[PATH_MAX], latents[PATH_MAX];
    snprintf(scores, sizeof scores, "%s/quoted_scores.csv", test_tmpdir());
    snprintf(latents, sizeof latents, "%s/quoted_latents.csv", test_tmpdir());
    assert_int_equal(test_run("score %s %s --batch 8 -o %s", test_quote(model), test_quote(dir), test_quote(scores)), 0);
    assert_int_equal(test_run("encode %s %s --batch 8 -o %s", test_quote(model), test_quote(dir), test_quote(latents)), 0);
    const char *files[] = {scores, latents};
    for (int fi = 0; fi < 2; fi++) {
        assert_int_equal(ae_csv_read(files[fi], &csv, &err), AE_OK);
        assert_int_equal(csv.num_rows, n);
        int col = ae_csv_column(&csv, "image");
        assert_true(col >= 0);
        for (int k = 0; k < n; k++) {
            snprintf(path, sizeof path, "%s/%s", dir, names[k]);
            int found = 0;
            for (size_t r = 0; r < csv.num_rows; r++)
                found += csv.row_columns[r] == csv.num_columns && !strcmp(csv.rows[r][col], path);
            if (found != 1)
                fail_msg("%s: the image %s appears %d times", files[fi], names[k], found);
        }
        ae_csv_free(&csv);
    }
}

/* Defect 4: a legal 250-byte file name: its reconstruction name is shortened
 * to fit, and temporary names stay short. */
static void test_long_file_names(void **state)
{
    (void)state;
    char dir[PATH_MAX], name[256], path[PATH_MAX], out[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/longdata", test_tmpdir());
    mkdir(dir, 0777);
    memset(name, 'n', 246);
    memcpy(name + 246, ".png", 5); /* 250 bytes */
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_image(path, 1);
    snprintf(path, sizeof path, "%s/short.png", dir);
    write_image(path, 2);
    snprintf(out, sizeof out, "%s/longout", test_tmpdir());
    assert_int_equal(test_run("reconstruct %s %s --batch 8 --error-map -o %s", test_quote(model), test_quote(dir), test_quote(out)), 0);
    snprintf(path, sizeof path, "%s/index.csv", out);
    ae_csv csv;
    ae_error err;
    assert_int_equal(ae_csv_read(path, &csv, &err), AE_OK);
    assert_int_equal(csv.num_rows, 2);
    for (size_t r = 0; r < 2; r++)
        for (int c = 2; c < 4; c++) {
            assert_true(strlen(csv.rows[r][c]) <= NAME_MAX);
            snprintf(path, sizeof path, "%s/%s", out, csv.rows[r][c]);
            assert_true(file_exists(path));
        }
    ae_csv_free(&csv);
    /* An output whose own name is 250 bytes: its temporary name must fit too. */
    memcpy(name + 246, ".csv", 5);
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    assert_int_equal(test_run("score %s %s --batch 8 -o %s", test_quote(model), test_quote(dir), test_quote(path)), 0);
    assert_true(file_exists(path));
}

static void touch_old(const char *path, time_t age)
{
    test_write_file(path, "stale", 5);
    struct timespec times[2];
    clock_gettime(CLOCK_REALTIME, &times[0]);
    times[0].tv_sec -= age;
    times[1] = times[0];
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
}

/* Defect 5: a temporary file left by a killed run (kill -9) is removed by the
 * next successful write of the same target once it has not been modified for
 * 10 minutes; fresh ones (a run writing now) and other targets' stay. */
static void test_stale_temps_removed(void **state)
{
    (void)state;
    char dir[PATH_MAX], path[PATH_MAX], p[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/stale", test_tmpdir());
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/out.csv", dir);
    const char *old_same = ".out.csv.tmp-AbC123", *fresh_same = ".out.csv.tmp-XyZ789",
               *old_other = ".other.csv.tmp-AbC123", *old_longer = ".out.csv.tmp-AbC123x";
    snprintf(p, sizeof p, "%s/%s", dir, old_same);
    touch_old(p, 3600);
    snprintf(p, sizeof p, "%s/%s", dir, fresh_same);
    touch_old(p, 60);
    snprintf(p, sizeof p, "%s/%s", dir, old_other);
    touch_old(p, 3600);
    snprintf(p, sizeof p, "%s/%s", dir, old_longer);
    touch_old(p, 3600);
    ae_error err;
    assert_int_equal(ae_write_file_atomic(path, "x", 1, &err), AE_OK);
    snprintf(p, sizeof p, "%s/%s", dir, old_same);
    assert_false(file_exists(p));
    snprintf(p, sizeof p, "%s/%s", dir, fresh_same);
    assert_true(file_exists(p));
    snprintf(p, sizeof p, "%s/%s", dir, old_other);
    assert_true(file_exists(p));
    snprintf(p, sizeof p, "%s/%s", dir, old_longer);
    assert_true(file_exists(p));

    /* A failed or cancelled write removes nothing. */
    snprintf(p, sizeof p, "%s/.cancel.csv.tmp-AbC123", dir);
    touch_old(p, 3600);
    snprintf(path, sizeof path, "%s/cancel.csv", dir);
    ae_atomic_file af;
    assert_int_equal(ae_atomic_open(path, &af, &err), AE_OK);
    assert_int_equal(ae_atomic_commit(&af, 0, &err), AE_OK);
    assert_true(file_exists(p));

    /* reconstruct's PNGs are written without a sweep each; the run sweeps
     * its folder once at the end: old PNG temps go, a fresh one and other
     * kinds of file stay. */
    char out[PATH_MAX];
    snprintf(out, sizeof out, "%s/stale_pngs", test_tmpdir());
    mkdir(out, 0777);
    const char *gone[] = {".img00.png.tmp-AbC123", ".aedet-0123456789abcdef.tmp-AbC123"};
    const char *kept[] = {".img01.png.tmp-XyZ789", ".notes.txt.tmp-AbC123", ".img02.png.tmp-short"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", out, gone[i]);
        touch_old(p, 3600);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", out, kept[i]);
        touch_old(p, i == 0 ? 60 : 3600);
    }
    assert_int_equal(test_run("reconstruct %s %s --batch 8 -o %s", test_quote(model), test_quote(data), test_quote(out)), 0);
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", out, gone[i]);
        assert_false(file_exists(p));
    }
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", out, kept[i]);
        assert_true(file_exists(p));
    }

    /* A finished training removes its checkpoint, and with it the old temp
     * files of the checkpoint's writes (kill -9 during one); a fresh one may
     * be another run's and stays. */
    char ckpt[PATH_MAX], trained[PATH_MAX], old_ckpt[PATH_MAX], fresh_ckpt[PATH_MAX];
    snprintf(trained, sizeof trained, "%s/done.aedet", dir);
    snprintf(ckpt, sizeof ckpt, "%s/done.ckpt", dir);
    snprintf(old_ckpt, sizeof old_ckpt, "%s/.done.ckpt.tmp-AbC123", dir);
    snprintf(fresh_ckpt, sizeof fresh_ckpt, "%s/.done.ckpt.tmp-XyZ789", dir);
    touch_old(old_ckpt, 3600);
    touch_old(fresh_ckpt, 60);
    assert_int_equal(test_run("train %s --epochs 1 " SMALL " --checkpoint %s -o %s --quiet",
                              test_quote(data), test_quote(ckpt), test_quote(trained)),
                     0);
    assert_true(file_exists(trained));
    assert_false(file_exists(ckpt));
    assert_false(file_exists(old_ckpt));
    assert_true(file_exists(fresh_ckpt));
}

/* A model whose metadata holds an escape sequence, and an image named with one. */
static void make_escape_inputs(char *model_path, char *dir)
{
    sprintf(model_path, "%s/esc.aedet", test_tmpdir());
    ae_model *m = NULL;
    ae_meta *meta = NULL;
    ae_error err;
    assert_int_equal(ae_model_load(model, 8, &m, &meta, NULL, &err), AE_OK);
    assert_int_equal(ae_meta_set_str(meta, "note", "\x1b[31mred\x07", &err), AE_OK);
    assert_int_equal(ae_model_save(model_path, m, meta, 0, &err), AE_OK);
    ae_meta_free(meta);
    ae_model_free(m);
    sprintf(dir, "%s/escdata", test_tmpdir());
    mkdir(dir, 0777);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/bad\x1b[31mname.png", dir);
    write_image(path, 3);
}

/* Defect 6: on a terminal, control characters in names and metadata are
 * shown escaped (\x1b); elsewhere the bytes are kept. */
static void test_terminal_escapes(void **state)
{
    (void)state;
    char esc_model[PATH_MAX], dir[PATH_MAX];
    make_escape_inputs(esc_model, dir);
    assert_int_equal(run_on_terminal("info %s", test_quote(esc_model)), 0);
    test_expect_output("\\x1b[31mred\\x07");
    test_expect_no_output("\x1b[31m");
    assert_int_equal(run_on_terminal("score %s %s --batch 8", test_quote(esc_model), test_quote(dir)), 0);
    test_expect_output("bad\\x1b[31mname.png");
    test_expect_no_output("\x1b[31m");
    /* A missing file named with an escape: the error message is escaped too. */
    assert_int_equal(run_on_terminal("info %s/gone\x1b[31m.aedet", test_tmpdir()), 4);
    test_expect_output("gone\\x1b[31m");
    test_expect_no_output("\x1b[31m");

    /* Not a terminal: programs get the bytes as they are. */
    assert_int_equal(test_run("info %s", test_quote(esc_model)), 0);
    test_expect_output("\x1b[31mred\x07");
    assert_int_equal(test_run("score %s %s --batch 8", test_quote(esc_model), test_quote(dir)), 0);
    test_expect_output("bad\x1b[31mname.png");
}

/* The descriptor of an open file, by its path (through /proc). */
static int fd_of(const char *path)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int found = -1;
    struct dirent *e;
    while ((e = readdir(d)) && found < 0) {
        char link[64], target[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n > 0) {
            target[n] = '\0';
            if (!strcmp(target, path))
                found = atoi(e->d_name);
        }
    }
    closedir(d);
    return found;
}

/* Defect 7: a full disk says so (ENOSPC, with the path), not "Input/output
 * error": the temporary file's descriptor is pointed at /dev/full. */
static void test_write_error_says_why(void **state)
{
    (void)state;
    char dir[PATH_MAX], path[PATH_MAX], real[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/full", test_tmpdir());
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    ae_atomic_file af;
    ae_error err;
    assert_int_equal(ae_atomic_open(path, &af, &err), AE_OK);
    assert_non_null(realpath(af.tmp, real));
    int fd = fd_of(real);
    assert_true(fd >= 0);
    int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
    assert_true(full >= 0);
    assert_true(dup2(full, fd) == fd);
    close(full);
    for (int i = 0; i < 20000; i++)
        fprintf(af.f, "row %d, more than a stdio buffer\n", i);
    assert_int_equal(ae_atomic_commit(&af, 1, &err), AE_ERR_IO);
    assert_non_null(strstr(err.message, path));
    if (!strstr(err.message, strerror(ENOSPC)))
        fail_msg("expected \"%s\" in: %s", strerror(ENOSPC), err.message);
    assert_false(file_exists(path));
    assert_false(file_exists(real)); /* the temporary file is gone too */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_onto_an_input_is_refused),
        cmocka_unit_test(test_outputs_checked_before_work),
        cmocka_unit_test(test_standard_output),
        cmocka_unit_test(test_csv_fields_quoted),
        cmocka_unit_test(test_long_file_names),
        cmocka_unit_test(test_stale_temps_removed),
        cmocka_unit_test(test_terminal_escapes),
        cmocka_unit_test(test_write_error_says_why),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
