/* `aedet train` and `aedet score` under `mpirun --oversubscribe -np N`, with
 * the MPI build of the tool ($AEDET_MPI, made by `make test` when Open MPI
 * is installed): training equal to one process at the same batch, the
 * same bits run after run, scores gathered into the CSV one process
 * writes, a stop and --resume across ranks, and the refusals (a build
 * without MPI under mpirun, a command that does not spread). The
 * collective itself is tested in-process by test_dist.c. */
#include "support.h"

#include "aedet/model_file.h"
#include "aedet/nn.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { SIDE = 16, IMAGES = 44 };

/* mpirun as root needs both; harmless otherwise. --oversubscribe: more
 * ranks than this machine's cores. */
#define MPI_ENV "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
#define MPIRUN MPI_ENV " mpirun --oversubscribe"
/* A small model and few steps: 35 training images in batches of 10, 10,
 * 10 and 5 (on 3 ranks: 4, 3 and 3 images, then 2, 2 and 1). */
#define TRAIN_FLAGS "--size 16 --filters 4,8 --latent 6 --batch 10 --seed 5"

static const char *mpi_tool(void)
{
    const char *t = getenv("AEDET_MPI");
    return t && *t ? t : NULL;
}

/* Skips the test (cmocka says so) without the MPI build or mpirun. */
static void require_mpi(void)
{
    if (mpi_tool() && system("command -v mpirun >/dev/null 2>&1") == 0)
        return;
    printf("no MPI build of aedet ($AEDET_MPI) or no mpirun: install libopenmpi-dev "
           "openmpi-bin and run `make test`\n");
    skip();
}

/* Runs a shell command, keeping its output for test_output(); its exit
 * status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[8192], full[9000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    const char *log = test_path("mpi.log");
    snprintf(full, sizeof full, "(%s) > '%s' 2>&1 < /dev/null", cmd, log);
    int status = system(full);
    static char out[1 << 16];
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
    test_set_output(out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void expect_exit(int got, int want)
{
    if (got != want)
        fail_msg("exit %d, expected %d:\n%s", got, want, test_output());
}

/* IMAGES gray PNGs with smooth blobs that move from image to image. */
static const char *data_folder(void)
{
    static int made;
    const char *root = test_path("data");
    if (!made) {
        test_write_blob_pngs(root, IMAGES, SIDE);
        made = 1;
    }
    return root;
}

static ae_model *load(const char *path)
{
    ae_model *m;
    ae_meta *meta;
    ae_error err;
    if (ae_model_load(path, 8, &m, &meta, NULL, &err) != AE_OK)
        fail_msg("%s", err.message);
    ae_meta_free(meta);
    return m;
}

/* max |a - b| / max |b| over the parameters and BatchNorm statistics (see
 * test_dist.c for why not per weight). */
static double rel_diff(ae_model *a, ae_model *b)
{
    const float *pa = ae_model_params(a), *pb = ae_model_params(b);
    const float *sa = ae_model_state(a), *sb = ae_model_state(b);
    double diff = 0, scale = 0;
    for (size_t i = 0; i < ae_model_num_params(b); i++) {
        diff = fmax(diff, fabs((double)pa[i] - pb[i]));
        scale = fmax(scale, fabs(pb[i]));
    }
    for (size_t i = 0; i < ae_model_num_state(b); i++) {
        diff = fmax(diff, fabs((double)sa[i] - sb[i]));
        scale = fmax(scale, fabs(sb[i]));
    }
    return isnan(diff) ? INFINITY : diff / scale;
}

static int same_weights(ae_model *a, ae_model *b)
{
    return !memcmp(ae_model_params(a), ae_model_params(b), ae_model_num_params(a) * sizeof(float)) &&
           !memcmp(ae_model_state(a), ae_model_state(b), ae_model_num_state(a) * sizeof(float));
}

static void train(int ranks, const char *out, const char *extra)
{
    expect_exit(sh(MPIRUN " -np %d %s train %s -o %s " TRAIN_FLAGS " %s", ranks, mpi_tool(),
                   data_folder(), out, extra),
                0);
}

/* One epoch (4 steps) on 1, 2 and 3 ranks: within 1e-5 of one process's
 * weights; 2 ranks twice: the same bits. */
static void test_train_equals_one_process(void **state)
{
    (void)state;
    require_mpi();
    train(1, test_path("np1.aedet"), "--epochs 1");
    train(2, test_path("np2.aedet"), "--epochs 1");
    test_expect_output("saved");
    train(2, test_path("np2b.aedet"), "--epochs 1");
    train(3, test_path("np3.aedet"), "--epochs 1");
    ae_model *one = load(test_path("np1.aedet")), *two = load(test_path("np2.aedet"));
    ae_model *again = load(test_path("np2b.aedet")), *three = load(test_path("np3.aedet"));
    double d2 = rel_diff(two, one), d3 = rel_diff(three, one);
    printf("after 4 steps: -np 2 within %.3g, -np 3 within %.3g of -np 1\n", d2, d3);
    assert_true(d2 <= 1e-5);
    assert_true(d3 <= 1e-5);
    assert_true(same_weights(two, again));
    ae_model_free(one);
    ae_model_free(two);
    ae_model_free(again);
    ae_model_free(three);
}

/* Images spread over 2 and 3 ranks, scores gathered on rank 0: the CSV
 * of one process, byte for byte. */
static void test_score_equals_one_process(void **state)
{
    (void)state;
    require_mpi();
    char model[1024]; /* test_path's buffers are reused */
    snprintf(model, sizeof model, "%s", test_path("score.aedet"));
    train(2, model, "--epochs 1");
    const char *release = getenv("AEDET_RELEASE");
    expect_exit(sh("%s score %s %s -o %s --batch 5", release ? release : test_aedet(), model,
                   data_folder(), test_path("one.csv")),
                0);
    for (int ranks = 2; ranks <= 3; ranks++) {
        expect_exit(sh(MPIRUN " -np %d %s score %s %s -o %s --batch 5", ranks, mpi_tool(), model,
                       data_folder(), test_path("many.csv")),
                    0);
        test_expect_output("scored 44 images");
        expect_exit(sh("cmp %s %s", test_path("one.csv"), test_path("many.csv")), 0);
    }
}

/* Stopped after 3 steps (rank 0's stop, agreed by both): exit 130 and a
 * checkpoint; --resume on 2 ranks ends with the bits of a run never
 * stopped. */
static void test_resume_across_ranks(void **state)
{
    (void)state;
    require_mpi();
    train(2, test_path("whole.aedet"), "--epochs 2");
    char ckpt[1024];
    snprintf(ckpt, sizeof ckpt, "%s", test_path("part.aedet.ckpt"));
    expect_exit(sh("AEDET_TEST_INTERRUPT_AFTER=3 " MPIRUN " -np 2 %s train %s -o %s " TRAIN_FLAGS
                   " --epochs 2",
                   mpi_tool(), data_folder(), test_path("part.aedet")),
                130);
    test_expect_output("interrupted at epoch 1, batch 3");
    assert_int_equal(access(ckpt, R_OK), 0);
    expect_exit(sh(MPIRUN " -np 2 %s train --resume %s", mpi_tool(), ckpt), 0);
    ae_model *whole = load(test_path("whole.aedet")), *part = load(test_path("part.aedet"));
    assert_true(same_weights(whole, part));
    ae_model_free(whole);
    ae_model_free(part);
    assert_int_not_equal(access(ckpt, F_OK), 0); /* the finished model supersedes it */
}

/* SIGUSR1 to mpirun (which passes it on to every rank) stops every rank
 * with a checkpoint, as Ctrl-C does one process. */
static void test_sigusr1_stops_all_ranks(void **state)
{
    (void)state;
    require_mpi();
    char ckpt[1024], log[1024];
    snprintf(ckpt, sizeof ckpt, "%s", test_path("sig.aedet.ckpt"));
    snprintf(log, sizeof log, "%s", test_path("sig.log"));
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             MPI_ENV " exec mpirun --oversubscribe -np 2 %s train %s -o %s " TRAIN_FLAGS
                     " --epochs 1000 > %s 2>&1 < /dev/null",
             mpi_tool(), data_folder(), test_path("sig.aedet"), log);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    /* the first checkpoint: training is under way on both ranks */
    for (int i = 0; i < 600 && access(ckpt, R_OK) != 0; i++)
        usleep(50000);
    assert_int_equal(access(ckpt, R_OK), 0);
    /* the shell became mpirun (exec) */
    kill(pid, SIGUSR1);
    int status;
    waitpid(pid, &status, 0);
    FILE *f = fopen(log, "r");
    static char out[1 << 16];
    size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
    test_set_output(out);
    assert_true(WIFEXITED(status));
    expect_exit(WEXITSTATUS(status), 130);
    test_expect_output("checkpoint saved to");
    test_expect_no_output("saved " /* no finished model */ "/");
    expect_exit(sh("%s info %s", mpi_tool(), ckpt), 0);
}

/* A build without MPI refuses to be one of several processes, and writes
 * nothing; a command that does not spread is refused under mpirun. */
static void test_refusals(void **state)
{
    (void)state;
    require_mpi();
    const char *release = getenv("AEDET_RELEASE");
    char out[1024];
    snprintf(out, sizeof out, "%s", test_path("refused.aedet"));
    expect_exit(sh(MPIRUN " -np 2 %s train %s -o %s " TRAIN_FLAGS " --epochs 1",
                   release ? release : test_aedet(), data_folder(), out),
                2);
    test_expect_output("built without MPI");
    assert_int_not_equal(access(out, F_OK), 0);
    expect_exit(sh(MPIRUN " -np 2 %s info %s", mpi_tool(), test_path("np1.aedet")), 2);
    test_expect_output("runs as one process");
    expect_exit(sh(MPIRUN " -np 3 %s train %s -o %s " TRAIN_FLAGS " --epochs 1 --batch 2",
                   mpi_tool(), data_folder(), out),
                2);
    test_expect_output("batch size 2 over 3 ranks");
    assert_int_not_equal(access(out, F_OK), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_equals_one_process),
        cmocka_unit_test(test_score_equals_one_process),
        cmocka_unit_test(test_resume_across_ranks),
        cmocka_unit_test(test_sigusr1_stops_all_ranks),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
