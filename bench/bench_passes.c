/* The element-wise passes of a training step (direct.h) alone, on each
 * vector kernel table this CPU has: GB/s of what each pass reads, from
 * arrays of 64 MB (in memory, as in a step at 256x256x3) for C channels, the
 * best of 5 passes.
 *   build/release/bench/bench_passes [C ...]      (default: 16 32 64)
 * bn_grad_apply: z and dy in, dz out to a cache-resident band (the
 * decoder's backward); bn_grad_sums: z from memory, dy from cache (a
 * convolution's backward under a BatchNorm); bn_sums: the statistics' two
 * passes, over chunks of 32 K values, from memory; apply_xform: the input
 * transform x' of a convolution. */
#include "nn/kernels/direct.h"
#include "nn/kernels/isa.h"

#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>

enum { ARRAY_BYTES = 64 << 20, ROW_PIXELS = 128, BAND_ROWS = 16, SUM_CHUNK = 1 << 15 };

/* The four passes over z (and dy) once; times[k] gets each pass's seconds. */
static void passes(const ae_direct_ops *ops, int c, const float *z, const float *dy, float *band,
                   const float *k[5], double *acc, double times[4])
{
    const size_t values = ARRAY_BYTES / sizeof(float), row = (size_t)ROW_PIXELS * c;
    const size_t rows = values / row, chunk_pixels = SUM_CHUNK / (size_t)c;
    double mean[256] = {0};
    double t0 = bench_now();
    for (size_t r = 0; r < rows; r++)
        ops->bn_grad_apply(band + (r % BAND_ROWS) * row, dy + r * row, z + r * row, ROW_PIXELS, c,
                           0.2f, k[0], k[1], k[2], k[3], k[4]);
    double t1 = bench_now();
    for (size_t p = 0; p + chunk_pixels * c <= values; p += chunk_pixels * c)
        ops->bn_grad_sums(acc, dy + p % (BAND_ROWS * row), z + p, chunk_pixels, c, 0.2f, k[0],
                          k[1]);
    double t2 = bench_now();
    for (size_t p = 0; p + chunk_pixels * c <= values; p += chunk_pixels * c) {
        ops->bn_sums(acc, z + p, chunk_pixels, c, 0.2f, NULL);
        ops->bn_sums(acc + c, z + p, chunk_pixels, c, 0.2f, mean);
    }
    double t3 = bench_now();
    for (size_t r = 0; r < rows; r++)
        ops->apply_xform(band + (r % BAND_ROWS) * row, z + r * row, ROW_PIXELS, c, k[0], k[1],
                         0.2f);
    double t4 = bench_now();
    times[0] = t1 - t0, times[1] = t2 - t1, times[2] = t3 - t2, times[3] = t4 - t3;
}

int main(int argc, char **argv)
{
    int cs[16] = {16, 32, 64}, n = 3;
    if (argc > 1) {
        n = 0;
        for (int i = 1; i < argc && n < 16; i++) {
            cs[n] = atoi(argv[i]);
            if (cs[n] < 1 || cs[n] > 256) {
                fprintf(stderr, "usage: %s [C ...] (1 <= C <= 256)\n", argv[0]);
                return 2;
            }
            n++;
        }
    }
    const size_t values = ARRAY_BYTES / sizeof(float);
    float *z = bench_random_floats(values), *dy = bench_random_floats(values);
    float *band = bench_random_floats((size_t)BAND_ROWS * ROW_PIXELS * 256);
    float *constants = bench_random_floats(5 * 256);
    const float *k[5];
    for (int i = 0; i < 5; i++)
        k[i] = constants + i * 256;
    double *acc = calloc(512, sizeof *acc);
    printf("# GB/s of what each pass reads from memory (%d MB arrays), best of 5\n",
           ARRAY_BYTES >> 20);
    for (int isa = AE_ISA_AVX2; isa < AE_ISA_COUNT; isa++) {
        const ae_direct_ops *ops = ae_direct_ops_for(isa);
        if (!ops || ae_isa_is_bf16(isa)) /* the same passes as avx512 */
            continue;
        for (int i = 0; i < n; i++) {
            double best[4] = {1e9, 1e9, 1e9, 1e9}, t[4];
            for (int rep = 0; rep < 5; rep++) {
                passes(ops, cs[i], z, dy, band, k, acc, t);
                for (int j = 0; j < 4; j++)
                    best[j] = t[j] < best[j] ? t[j] : best[j];
            }
            const double gb = ARRAY_BYTES * 1e-9;
            printf("%-7s c %3d  bn_grad_apply %5.1f  bn_grad_sums %5.1f  bn_sums %5.1f  "
                   "apply_xform %5.1f\n",
                   ops->name, cs[i], 2 * gb / best[0], gb / best[1], 2 * gb / best[2],
                   gb / best[3]);
        }
    }
    free(z), free(dy), free(band), free(constants), free(acc);
    return 0;
}
