/* Throughput of the model: training steps and scoring (ae_model_score) on
 * random images, for the tutorial's 256x256x3 and a 32x32x1 (Fashion-MNIST
 * sized) model, batch 32 by default.
 *
 *   bench_model [--threads N] [--seconds S] [--batch B] [--size HxWxC]... [--modes M]
 *
 * Each measurement runs one untimed warm-up step, then repeats until S seconds
 * have passed (at least 3 timed steps), and reports the median step, and the
 * fastest as images_per_s_best. Besides the human-readable table it
 * prints lines that bench/compare.sh reads, one number each:
 *   train 256x256x3 b32 images_per_s 12.3
 *   train 256x256x3 b32 gflop_per_s 45.6
 *   infer ...
 *   mem 256x256x3 b32 peak_rss_mb 789.0
 * peak_rss_mb is the process's peak so far (getrusage), so sizes run smallest
 * first; run one size per process for a clean figure. It also prints the
 * machine's float32 GEMM speed at the same thread count (a 2048^3 OpenBLAS
 * sgemm, in a child process) and each mode's GFLOP/s as a fraction of it:
 *   peak sgemm2048 t2 gflop_per_s 210.0
 *   train 256x256x3 b32 gemm_peak_fraction 0.45
 *   train 256x256x3 b32 gemm_peak_fraction_best 0.52
 * The sgemm figure is the best of a few calls, so the second line, the
 * fastest step against it, compares like with like: on a shared host whose
 * speed moves in phases, the median step mixes them and the best call
 * picks the fastest.
 * and the memory bandwidth the streaming passes are bound by, at the same
 * thread count (a sum over 512 MB, and stores over 512 MB, in the same child):
 *   peak stream t2 read_gb_per_s 24.0
 *   peak stream t2 write_gb_per_s 20.0
 * and, as comments, the mean time per step spent in each layer's forward
 * and backward. */
#include "aedet/nn.h"
#include "nn/model_hooks.h" /* the per-layer times */

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZES 8

typedef struct {
    int height, width, channels;
} image_size;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return (double)ru.ru_maxrss / 1024.0; /* Linux reports KiB */
}

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [--threads N] [--seconds S] [--batch B] [--size HxWxC]... [--gemm-peak 0|1]\n"
            "          [--bf16 0|1] [--modes train|infer|both]\n"
            "  defaults: all cores, 3 seconds per measurement, batch 32,\n"
            "  sizes 32x32x1 then 256x256x3, the sgemm peak measured first (1),\n"
            "  float32 (--bf16 1: ae_model_set_bf16, AMX or AVX512-BF16), training and scoring\n"
            "  (--modes: one of them alone, as for a profile)\n",
            prog);
    return 2;
}

typedef struct {
    const char *mode;
    double images_per_s, gflop_per_s;           /* the median step's */
    double images_per_s_best, gflop_per_s_best; /* the fastest step's */
    int steps; /* timed, plus the warm-up one */
} result;

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One training or scoring measurement; returns 0, or 1 after printing why.
 * The machine may be shared: the median step time resists other processes'
 * bursts better than the mean. */
static int measure(ae_model *m, const float *x, int batch, int train, double seconds,
                   double flops_per_image, result *out)
{
    enum { MAX_STEPS = 100000, MIN_STEPS = 3 };
    ae_adam_config adam;
    ae_adam_config_init(&adam, 1e-3f, 50);
    float *errors = malloc((size_t)batch * sizeof(float));
    double *times = malloc(MAX_STEPS * sizeof(double));
    if (!errors || !times) {
        fprintf(stderr, "bench_model: out of memory\n");
        free(errors);
        free(times);
        return 1;
    }
    ae_error err;
    ae_error_clear(&err);
    int steps = -1; /* the first, warm-up step is not recorded */
    double start = now_seconds(), begin = start;
    while (steps < MIN_STEPS || (now_seconds() - begin < seconds && steps < MAX_STEPS)) {
        float loss;
        ae_status st = train ? ae_model_train_step(m, &adam, x, batch, &loss, &err)
                             : ae_model_score(m, x, batch, errors, NULL, &err);
        if (st != AE_OK) {
            fprintf(stderr, "bench_model: %s\n", err.message);
            free(errors);
            free(times);
            return 1;
        }
        double t = now_seconds();
        if (steps < 0)
            begin = t;
        else
            times[steps] = t - start;
        steps++;
        start = t;
    }
    qsort(times, (size_t)steps, sizeof *times, compare_doubles);
    double median = steps % 2 ? times[steps / 2] : 0.5 * (times[steps / 2 - 1] + times[steps / 2]);
    double fastest = times[0];
    free(errors);
    free(times);
    out->mode = train ? "train" : "infer";
    out->steps = steps + 1;
    out->images_per_s = batch / median;
    out->images_per_s_best = batch / fastest;
    /* A training step is a forward pass and a backward pass that costs about twice as much. */
    const double flops_per_step_image = flops_per_image * (train ? 3.0 : 1.0);
    out->gflop_per_s = out->images_per_s * flops_per_step_image * 1e-9;
    out->gflop_per_s_best = out->images_per_s_best * flops_per_step_image * 1e-9;
    return 0;
}

/* Mean milliseconds per step in each layer (all steps, warm-up included). */
static void print_layer_times(const ae_model *m, const char *mode, int steps)
{
    double total_f = 0, total_b = 0;
    printf("# %s: per-layer ms per step (forward, backward)\n", mode);
    for (int i = 0; i < ae_model_num_layers(m); i++) {
        double f, b;
        ae_model_layer_times(m, i, &f, &b);
        total_f += f;
        total_b += b;
        printf("#   %-12s %8.3f %8.3f\n", ae_model_layer_name(m, i), 1e3 * f / steps,
               1e3 * b / steps);
    }
    printf("#   %-12s %8.3f %8.3f\n", "all layers", 1e3 * total_f / steps, 1e3 * total_b / steps);
}

/* The machine's float32 GEMM speed at this thread count: the best of a few
 * 2048 x 2048 x 2048 OpenBLAS sgemm calls (the reference for the step's
 * GFLOP/s). BLAS goes back to one thread afterwards, as the library wants. */
static double sgemm_peak_here(int threads)
{
    enum { N = 2048 };
    float *a = malloc((size_t)N * N * sizeof *a), *b = malloc((size_t)N * N * sizeof *b),
          *c = malloc((size_t)N * N * sizeof *c);
    double best = 0;
    if (a && b && c) {
        for (size_t i = 0; i < (size_t)N * N; i++) {
            a[i] = (float)(i % 7) * 1e-3f;
            b[i] = (float)(i % 5) * 1e-3f;
        }
        openblas_set_num_threads(threads);
        for (int rep = 0; rep < 4; rep++) {
            double t = now_seconds();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, a, N, b, N,
                        0.0f, c, N);
            t = now_seconds() - t;
            double g = 2.0 * N * N * (double)N / t * 1e-9;
            best = g > best ? g : best;
        }
        openblas_set_num_threads(1);
    }
    free(a);
    free(b);
    free(c);
    return best;
}

/* Streaming bandwidth at this thread count, in GB/s: the best of a few
 * passes that read (a sum) or write (plain stores, as the layers make, not
 * the non-temporal ones of a large memset) 512 MB, far beyond the caches.
 * The passes are split over OpenMP threads; nothing else runs meanwhile. */
static void stream_peak_here(int threads, double *read_gbs, double *write_gbs)
{
    enum { FLOATS = 1 << 27, LANES = 16 };
    float *a = ae_alloc_floats(FLOATS); /* huge pages, as the model's buffers */
    *read_gbs = *write_gbs = 0;
    if (!a)
        return;
    const double gb = (double)FLOATS * sizeof *a * 1e-9;
    volatile float sink = 0;
    for (int rep = 0; rep < 4; rep++) {
        const float value = (float)rep;
        double t = now_seconds();
#pragma omp parallel for num_threads(threads) schedule(static)
        for (size_t i = 0; i < FLOATS; i++)
            a[i] = value;
        t = now_seconds() - t;
        *write_gbs = gb / t > *write_gbs ? gb / t : *write_gbs;
        float lanes[LANES] = {0}; /* one vector of sums: no reassociation needed */
        t = now_seconds();
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : lanes[:LANES])
        for (size_t i0 = 0; i0 < FLOATS; i0 += LANES)
            for (int k = 0; k < LANES; k++)
                lanes[k] += a[i0 + k];
        t = now_seconds() - t;
        *read_gbs = gb / t > *read_gbs ? gb / t : *read_gbs;
        float total = 0;
        for (int k = 0; k < LANES; k++)
            total += lanes[k];
        sink = total;
    }
    (void)sink;
    ae_free_floats(a);
}

/* The machine's peaks in a child process, so that the sgemm's 48 MB and the
 * stream's 512 MB stay out of peak_rss_mb. */
static void machine_peaks(int threads, double peaks[3])
{
    int fds[2];
    peaks[0] = peaks[1] = peaks[2] = 0;
    if (pipe(fds) != 0)
        return;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        double p[3];
        p[0] = sgemm_peak_here(threads);
        stream_peak_here(threads, &p[1], &p[2]);
        ssize_t w = write(fds[1], p, sizeof p);
        _exit(w == (ssize_t)sizeof p ? 0 : 1);
    }
    close(fds[1]);
    if (pid > 0) {
        double p[3];
        if (read(fds[0], p, sizeof p) == (ssize_t)sizeof p)
            memcpy(peaks, p, sizeof p);
        waitpid(pid, NULL, 0);
    }
    close(fds[0]);
}

static double gemm_peak = 0;
static int use_bf16 = 0;
/* Which measurements to run (--modes). */
enum { MODE_TRAIN = 1, MODE_INFER = 2 };
static int modes = MODE_TRAIN | MODE_INFER;

static int bench_size(image_size s, int batch, double seconds)
{
    ae_config cfg;
    ae_config_init(&cfg, s.height, s.width, s.channels);
    ae_model *m = NULL;
    ae_error err;
    ae_error_clear(&err);
    if (ae_model_create(&cfg, batch, &m, &err) != AE_OK) {
        fprintf(stderr, "bench_model: %dx%dx%d: %s\n", s.height, s.width, s.channels,
                err.message);
        return 1;
    }
    ae_model_init_weights(m, 1);
    if (use_bf16 && ae_model_set_bf16(m, 1, &err) != AE_OK) {
        fprintf(stderr, "bench_model: %s\n", err.message);
        ae_model_free(m);
        return 1;
    }
    size_t n = (size_t)batch * s.height * s.width * s.channels;
    float *x = ae_alloc_floats(n); /* as the library's training and scoring loops */
    if (!x) {
        fprintf(stderr, "bench_model: out of memory for %zu input values\n", n);
        ae_model_free(m);
        return 1;
    }
    ae_rng rng;
    ae_rng_seed(&rng, 7);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)ae_rng_uniform(&rng);

    char name[64];
    snprintf(name, sizeof name, "%dx%dx%d b%d", s.height, s.width, s.channels, batch);
    double flops = ae_config_forward_flops(&cfg);
    printf("# %s: %zu parameters, %.1f MFLOP per image forward, model memory %.1f MB\n", name,
           ae_model_num_params(m), flops * 1e-6, (double)ae_model_memory_bytes(m) / 1048576.0);
    printf("# kernels: %s\n", ae_model_kernels(m));
    int rc = 0;
    for (int train = 1; train >= 0 && rc == 0; train--) {
        if (!(modes & (train ? MODE_TRAIN : MODE_INFER)))
            continue;
        result r;
        ae_model_reset_layer_times(m);
        rc = measure(m, x, batch, train, seconds, flops, &r);
        if (rc == 0) {
            printf("%s %s images_per_s %.2f\n", r.mode, name, r.images_per_s);
            printf("%s %s ms_per_image %.3f\n", r.mode, name, 1e3 / r.images_per_s);
            printf("%s %s gflop_per_s %.2f\n", r.mode, name, r.gflop_per_s);
            printf("%s %s images_per_s_best %.2f\n", r.mode, name, r.images_per_s_best);
            if (gemm_peak > 0) {
                printf("%s %s gemm_peak_fraction %.3f\n", r.mode, name,
                       r.gflop_per_s / gemm_peak);
                printf("%s %s gemm_peak_fraction_best %.3f\n", r.mode, name,
                       r.gflop_per_s_best / gemm_peak);
            }
            print_layer_times(m, r.mode, r.steps);
        }
    }
    if (rc == 0)
        printf("mem %s peak_rss_mb %.1f\n", name, peak_rss_mb());
    fflush(stdout);
    ae_free_floats(x);
    ae_model_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    int threads = 0, batch = 32, num_sizes = 0, gemm = 1;
    double seconds = 3.0;
    image_size sizes[MAX_SIZES];
    for (int i = 1; i < argc; i += 2) { /* every option takes one value */
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage(argv[0]);
        char *end = NULL;
        if (strcmp(a, "--threads") == 0) {
            threads = (int)strtol(v, &end, 10);
        } else if (strcmp(a, "--seconds") == 0) {
            seconds = strtod(v, &end);
            if (!(seconds > 0 && seconds < 3600))
                return usage(argv[0]);
        } else if (strcmp(a, "--gemm-peak") == 0) {
            gemm = (int)strtol(v, &end, 10);
        } else if (strcmp(a, "--bf16") == 0) {
            use_bf16 = (int)strtol(v, &end, 10);
        } else if (strcmp(a, "--modes") == 0) {
            modes = strcmp(v, "train") == 0   ? MODE_TRAIN
                    : strcmp(v, "infer") == 0 ? MODE_INFER
                    : strcmp(v, "both") == 0  ? MODE_TRAIN | MODE_INFER
                                              : 0;
            if (!modes)
                return usage(argv[0]);
            end = (char *)v + strlen(v);
        } else if (strcmp(a, "--batch") == 0) {
            batch = (int)strtol(v, &end, 10);
            if (batch < 1 || batch > 4096)
                return usage(argv[0]);
        } else if (strcmp(a, "--size") == 0) {
            image_size s;
            int used = 0;
            if (num_sizes == MAX_SIZES ||
                sscanf(v, "%dx%dx%d%n", &s.height, &s.width, &s.channels, &used) != 3 ||
                v[used] != '\0' || s.height < 1 || s.width < 1 || s.channels < 1)
                return usage(argv[0]);
            sizes[num_sizes++] = s;
            end = (char *)v + used;
        } else {
            return usage(argv[0]);
        }
        if (!end || *end != '\0')
            return usage(argv[0]);
    }
    if (num_sizes == 0) {
        sizes[num_sizes++] = (image_size){32, 32, 1};
        sizes[num_sizes++] = (image_size){256, 256, 3};
    }
    ae_set_num_threads(threads);
    printf("# aedet %s, %d threads, %.1f s per measurement\n", AE_VERSION_STRING,
           ae_get_num_threads(), seconds);
    if (gemm) {
        const int t = ae_get_num_threads();
        double peaks[3];
        machine_peaks(t, peaks);
        gemm_peak = peaks[0];
        printf("peak sgemm2048 t%d gflop_per_s %.1f\n", t, gemm_peak);
        printf("peak stream t%d read_gb_per_s %.1f\n", t, peaks[1]);
        printf("peak stream t%d write_gb_per_s %.1f\n", t, peaks[2]);
    }
    for (int i = 0; i < num_sizes; i++)
        if (bench_size(sizes[i], batch, seconds) != 0)
            return 1;
    return 0;
}
