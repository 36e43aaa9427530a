/* Helpers of the kernel benchmarks (bench_kernels.c, bench_passes.c). */
#ifndef AEDET_BENCH_UTIL_H
#define AEDET_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* n floats uniform in [-0.5, 0.5]; exits on a failed allocation (a benchmark). */
static inline float *bench_random_floats(size_t n)
{
    float *v = malloc(n * sizeof *v);
    if (!v) {
        fprintf(stderr, "out of memory for %zu floats\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        v[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return v;
}

#endif
