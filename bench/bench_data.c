/* Decoding throughput and peak memory of the batch loader, in memory and
 * streamed. Writes N 256x256 RGB JPEGs to a temporary folder (libjpeg
 * directly), then measures each mode in its own child process so that each
 * peak RSS is that mode's alone.
 *
 *   bench_data [N=300] [threads=0 (all cores)]
 *   bench_data --write DIR N     only write the N JPEGs into DIR (made if
 *                                missing) and keep them: bench/score_files.sh */
#include "aedet/data.h"

#include <errno.h>
#include <stdio.h> /* before jpeglib.h, which needs FILE */
#include <jpeglib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { SIDE = 256, BATCH = 32 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
}

/* A photo-like image: smooth gradients plus noise, so the JPEG is realistic. */
static int write_jpeg(const char *path, int seed)
{
    static uint8_t px[SIDE * SIDE * 3];
    ae_rng rng;
    ae_rng_seed(&rng, (uint64_t)seed);
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++)
            for (int c = 0; c < 3; c++) {
                int v = (x * (c + 1) + y * (3 - c) + seed * 17) / 3 % 256;
                v += (int)ae_rng_below(&rng, 32) - 16;
                px[(y * SIDE + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = SIDE;
    cinfo.image_height = SIDE;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 90, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = px + (size_t)cinfo.next_scanline * SIDE * 3;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    return fclose(f) == 0;
}

/* One mode, in the calling (child) process; returns the exit status. */
static int run_mode(const char *dir, int streaming, int threads)
{
    double rss0 = peak_rss_mib();
    ae_source src = {.kind = AE_SOURCE_FOLDER, .root = dir};
    ae_dataset ds;
    ae_error err;
    if (ae_dataset_open(&src, &ds, &err) != AE_OK) {
        fprintf(stderr, "bench_data: %s\n", err.message);
        return 1;
    }
    size_t *items = malloc(ds.count * sizeof *items);
    if (!items)
        return 1;
    for (size_t i = 0; i < ds.count; i++)
        items[i] = i;
    ae_loader_config cfg = {.height = SIDE, .width = SIDE, .channels = 3, .threads = threads,
                            .memory_budget = streaming ? 1 : 0};
    ae_loader *l;
    double t0 = now();
    if (ae_loader_create(&ds, items, ds.count, &cfg, &l, &err) != AE_OK) {
        fprintf(stderr, "bench_data: %s\n", err.message);
        return 1;
    }
    double t1 = now();
    size_t seen = 0;
    ae_batch b;
    if (ae_loader_start(l, BATCH, 1, 1, &err) != AE_OK)
        return 1;
    do {
        if (ae_loader_next(l, &b, &err) != AE_OK) {
            fprintf(stderr, "bench_data: %s\n", err.message);
            return 1;
        }
        seen += (size_t)b.count;
    } while (b.count > 0);
    double t2 = now();
    double n = (double)ds.count;
    if (streaming)
        printf("data: streamed  %zu images %dx%dx3: check pass %.0f images/s, epoch %.0f "
               "images/s (ring %.1f MiB), peak RSS %.1f MiB (%.1f before)\n",
               seen, SIDE, SIDE, n / (t1 - t0), n / (t2 - t1),
               (double)ae_loader_peak_bytes(l) / 1048576.0, peak_rss_mib(), rss0);
    else
        printf("data: in memory %zu images %dx%dx3: load %.0f images/s, epoch %.0f images/s "
               "(%.1f MiB of pixels), peak RSS %.1f MiB (%.1f before)\n",
               seen, SIDE, SIDE, n / (t1 - t0), n / (t2 - t1),
               (double)ae_loader_peak_bytes(l) / 1048576.0, peak_rss_mib(), rss0);
    ae_loader_free(l);
    free(items);
    ae_dataset_free(&ds);
    return seen == (size_t)n ? 0 : 1;
}

/* The N images into dir, named 00000.jpg ...; 0 on success. */
static int write_all(const char *dir, int n)
{
    char path[4096];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%05d.jpg", dir, i);
        if (!write_jpeg(path, i)) {
            perror(path);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--write") == 0) {
        if (atoi(argv[3]) <= 0 || (mkdir(argv[2], 0777) != 0 && errno != EEXIST)) {
            fprintf(stderr, "usage: bench_data --write DIR N (N > 0, DIR creatable)\n");
            return 2;
        }
        return write_all(argv[2], atoi(argv[3]));
    }
    int n = argc > 1 ? atoi(argv[1]) : 300;
    int threads = argc > 2 ? atoi(argv[2]) : 0;
    if (n <= 0) {
        fprintf(stderr, "usage: bench_data [N] [threads]\n");
        return 2;
    }
    char dir[] = "/tmp/aedet-bench-data-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    int status = write_all(dir, n);
    char path[sizeof dir + 32];
    for (int streaming = 0; streaming < 2 && !status; streaming++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            status = 1;
        } else if (pid == 0) {
            int rc = run_mode(dir, streaming, threads);
            fflush(stdout); /* _exit does not flush */
            _exit(rc);
        } else {
            int ws;
            if (waitpid(pid, &ws, 0) < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
                status = 1;
        }
    }
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%05d.jpg", dir, i);
        unlink(path);
    }
    rmdir(dir);
    return status;
}
