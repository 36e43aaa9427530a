/* The three convolution products (direct.h) alone, one image, on each vector
 * kernel table this CPU has (avx2, avx512, amx-bf16, avx512-bf16): the best of 20 passes
 * over the image in bands of output rows, as the layers call them.
 *   build/release/bench/bench_kernels BIG_H BIG_W BIG_C SMALL_C STRIDE BAND
 * e.g. dec2 of the tutorial's model at 256x256x3: 256 256 16 32 2 4. The
 * input comes from memory, not from a band just made as in a training step,
 * so the conversions of the bf16 kernels cost more here than there. */
#include "nn/kernels/direct.h"
#include "nn/kernels/isa.h"

#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    int a[6];
    for (int i = 0; i < 6 && i + 1 < argc; i++)
        a[i] = atoi(argv[i + 1]);
    if (argc != 7 || a[0] < 1 || a[1] < 1 || a[2] < 1 || a[3] < 1 || (a[4] != 1 && a[4] != 2) ||
        a[5] < 1) {
        fprintf(stderr, "usage: %s BIG_H BIG_W BIG_C SMALL_C STRIDE BAND\n", argv[0]);
        return 2;
    }
    const int cs = a[3], stride = a[4], band = a[5];
    ae_conv_geom g;
    ae_conv_geom_init(&g, a[0], a[1], a[2], stride);
    float *big_padded = bench_random_floats(ae_direct_padded_floats(g.big_h, g.big_w, g.big_c));
    float *small_padded = bench_random_floats(ae_direct_padded_floats(g.small_h, g.small_w, cs));
    float *small = bench_random_floats((size_t)g.small_h * g.small_w * cs);
    float *big = bench_random_floats((size_t)g.big_h * g.big_w * g.big_c);
    float *w = bench_random_floats(9 * (size_t)g.big_c * cs), *dw = bench_random_floats(9 * (size_t)g.big_c * cs);
    const double flops = 2.0 * g.small_h * g.small_w * 9 * g.big_c * cs;
    printf("# %dx%dx%d <-> %dx%dx%d, stride %d, bands of %d output rows: ms per image (GFLOP/s)\n",
           g.big_h, g.big_w, g.big_c, g.small_h, g.small_w, cs, stride, band);
    for (int isa = AE_ISA_AVX2; isa < AE_ISA_COUNT; isa++) {
        const ae_direct_ops *ops = ae_direct_ops_for(isa);
        if (!ops)
            continue;
        double best[3] = {1e9, 1e9, 1e9};
        for (int rep = 0; rep < 20; rep++) {
            double t0 = bench_now();
            for (int f = 0; f < g.small_h; f += band)
                ops->big_to_small(big_padded, 0, &g, cs, w, NULL, small, 0, f,
                                  f + band < g.small_h ? f + band : g.small_h);
            double t1 = bench_now();
            for (int f = 0; f < g.big_h; f += band * stride)
                ops->small_to_big(small_padded, 0, &g, cs, w, NULL, big, 0, f,
                                  f + band * stride < g.big_h ? f + band * stride : g.big_h);
            double t2 = bench_now();
            for (int f = 0; f < g.small_h; f += band)
                ops->weight_grad(big_padded, 0, small, 0, &g, cs, dw, f,
                                 f + band < g.small_h ? f + band : g.small_h);
            double t3 = bench_now(), t[3] = {t1 - t0, t2 - t1, t3 - t2};
            for (int k = 0; k < 3; k++)
                best[k] = t[k] < best[k] ? t[k] : best[k];
        }
        printf("%-9s big_to_small %.3f (%.0f)  small_to_big %.3f (%.0f)  weight_grad %.3f (%.0f)\n",
               ops->name, 1e3 * best[0], flops / best[0] * 1e-9, 1e3 * best[1],
               flops / best[1] * 1e-9, 1e3 * best[2], flops / best[2] * 1e-9);
    }
    free(big_padded), free(small_padded), free(small), free(big), free(w), free(dw);
    return 0;
}
