/* The direct convolution kernels (src/nn/kernels/direct*.c), on every vector ISA this
 * CPU supports, against the portable im2col + BLAS path (itself checked
 * against naive loops and finite differences in test_layers.c and against
 * PyTorch in test_torch_reference.c), through the layer functions the model
 * calls: Conv2D and Conv2DTranspose, forward and backward, with and without
 * the input transform (a BatchNorm and LeakyReLU applied as the input is read).
 *
 * Shapes: odd and even sizes, 1x1 images, batch 1, stride 1 and 2, and
 * channel counts on both sides of the vector widths (1, 3, 5, 8, 16, 17, 33,
 * 64), so that masked tails, single-pixel tails and two-vector groups all run.
 * Tolerance: max |fast - portable| <= 1e-5 x max |portable| (+1e-6): both sum
 * the same float32 products in different orders; with at most ~10^3 terms of
 * either sign the rounding differences stay near sqrt(terms) x 6e-8 relative
 * to the largest output (~2e-6), while a wrong index or a missing tap gives
 * errors of the size of the outputs themselves. */
#include "support.h"

#include "aedet/common.h"
#include "nn/kernels/direct.h"
#include "nn/kernels/isa.h"
#include "nn/layers.h"
#include "nn/pool.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ae_rng rng;

static float *random_floats(size_t n)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(2.0 * ae_rng_uniform(&rng) - 1.0);
    return v;
}

static float *filled_floats(size_t n, float value)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = value;
    return v;
}

/* Scratch for one layer shape on one ISA, as ae_model_create would size it
 * (with the room a convolution's backward takes for its output gradient). */
static void scratch_make(ae_scratch *s, int isa, int n, const ae_conv_geom *g, int small_c)
{
    memset(s, 0, sizeof *s);
    s->isa = isa;
    s->num_threads = omp_get_max_threads();
    size_t small_px = (size_t)g->small_h * g->small_w, kernel = 9 * (size_t)g->big_c * small_c;
    s->col_floats = small_px * 9 * g->big_c;
    s->pad_floats = ae_direct_padded_floats(g->big_h, g->big_w, g->big_c) +
                    ae_direct_padded_floats(g->small_h, g->small_w, small_c) +
                    (size_t)g->small_w * small_c + small_px * small_c;
    if (ae_deconv2d_head_floats(g, small_c) > s->pad_floats)
        s->pad_floats = ae_deconv2d_head_floats(g, small_c);
    s->wt_floats = kernel;
    s->slot_floats = kernel + (size_t)(g->big_c > small_c ? g->big_c : small_c);
    s->pool = ae_pool_create(s->num_threads);
    assert_non_null(s->pool);
    s->col = calloc((size_t)s->num_threads, sizeof *s->col);
    s->pad = calloc((size_t)s->num_threads, sizeof *s->pad);
    assert_non_null(s->col);
    assert_non_null(s->pad);
    for (int t = 0; t < s->num_threads; t++) {
        s->col[t] = filled_floats(s->col_floats, NAN);
        s->pad[t] = filled_floats(s->pad_floats, NAN); /* garbage: the kernels must not read it */
    }
    s->wt = filled_floats(s->wt_floats, NAN);
    s->slots = filled_floats(s->slot_floats * (size_t)n, NAN);
}

static void scratch_free(ae_scratch *s)
{
    for (int t = 0; t < s->num_threads; t++) {
        free(s->col[t]);
        free(s->pad[t]);
    }
    free(s->col), free(s->pad), free(s->wt), free(s->slots);
    ae_pool_free(s->pool);
}

/* max |got - want| <= tol x max |want| (+1e-6); returns that ratio. */
static double expect_within(const char *what, const char *isa, const float *got,
                            const float *want, size_t count, const char *shape, double tol)
{
    double worst = 0, scale = 0;
    for (size_t i = 0; i < count; i++)
        scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < count; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= worst)) /* NaN counts as the worst */
            worst = isnan(d) ? INFINITY : d;
    }
    if (!(worst <= tol * scale + 1e-6))
        fail_msg("%s on %s, shape %s: max error %.3g against max |value| %.3g", what, isa, shape,
                 worst, scale);
    return scale > 0 ? worst / scale : worst;
}

static void expect_close(const char *what, const char *isa, const float *got, const float *want,
                         size_t count, const char *shape)
{
    expect_within(what, isa, got, want, count, shape, 1e-5);
}

/* x rounded to the nearest bfloat16 (ties to even), as the AMX kernels round. */
static float bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

static void bf16_round_all(float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = bf16_round(v[i]);
}

typedef struct {
    int n, h, w, cin, cout, stride;
} shape;

/* The geometry of sh's Conv2D (h x w x cin to cout channels) or, with deconv,
 * of its Conv2DTranspose (h x w x cin to (h stride) x (w stride) x cout);
 * returns the small image's channels. */
static int shape_geom(const shape *sh, int deconv, ae_conv_geom *g)
{
    if (!deconv) {
        ae_conv_geom_init(g, sh->h, sh->w, sh->cin, sh->stride);
        return sh->cout;
    }
    ae_conv_geom_init(g, sh->h * sh->stride, sh->w * sh->stride, sh->cout, sh->stride);
    return sh->cin;
}

/* How check_shape_as compares: tol as expect_within's for the three products
 * (the forward, dx and dw; db always at 1e-5); round: x, w and dy rounded to
 * bfloat16 first; errors (may be NULL) gets the forward's, dx's and dw's
 * error ratios, conv then deconv. */
typedef struct {
    double tol;
    int round;
    double *errors;
} compare;

static void check_shape_as(int isa, const shape *sh, int with_tf, const compare *cmp);

/* Conv2D from h x w x cin to cout channels, and Conv2DTranspose from h x w x
 * cin to (h stride) x (w stride) x cout, on isa against the portable path. */
static void check_shape(int isa, const shape *sh, int with_tf)
{
    const compare exact = {1e-5, 0, NULL};
    check_shape_as(isa, sh, with_tf, &exact);
}

static void check_shape_as(int isa, const shape *sh, int with_tf, const compare *cmp)
{
    char name[64];
    snprintf(name, sizeof name, "n%d %dx%dx%d->%d s%d%s", sh->n, sh->h, sh->w, sh->cin, sh->cout,
             sh->stride, with_tf ? " tf" : "");
    float *scale = random_floats((size_t)sh->cin), *shift = random_floats((size_t)sh->cin);
    ae_input_xform tf = {scale, shift, 0.3f};
    const ae_input_xform *use = with_tf ? &tf : NULL;
    const char *isa_name = ae_isa_name(isa);
    for (int deconv = 0; deconv <= 1; deconv++) {
        ae_conv_geom g;
        const int small_c = shape_geom(sh, deconv, &g);
        size_t big = (size_t)sh->n * g.big_h * g.big_w * g.big_c;
        size_t small = (size_t)sh->n * g.small_h * g.small_w * small_c;
        size_t nx = deconv ? small : big, ny = deconv ? big : small;
        size_t nw = 9 * (size_t)g.big_c * small_c;
        float *x = random_floats(nx), *w = random_floats(nw), *b = random_floats((size_t)sh->cout);
        float *dy = random_floats(ny);
        if (cmp->round) {
            bf16_round_all(x, nx);
            bf16_round_all(w, nw);
            bf16_round_all(dy, ny);
        }
        float *y[2], *dx[2], *dw[2], *db[2];
        for (int path = 0; path < 2; path++) {
            ae_scratch s;
            scratch_make(&s, path ? isa : AE_ISA_PORTABLE, sh->n, &g, small_c);
            y[path] = filled_floats(ny, NAN);
            dx[path] = filled_floats(nx, NAN);
            dw[path] = filled_floats(nw, NAN);
            db[path] = filled_floats((size_t)sh->cout, NAN);
            if (!deconv) {
                ae_conv2d_forward(y[path], x, use, w, b, sh->n, &g, sh->cout, &s);
                ae_conv2d_backward(dx[path], dw[path], db[path], dy, x, use, w, sh->n, &g,
                                   sh->cout, &s);
            } else {
                ae_deconv2d_forward(y[path], x, use, w, b, sh->n, &g, sh->cin, &s);
                ae_deconv2d_backward(dx[path], dw[path], db[path], dy, x, use, w, sh->n, &g,
                                     sh->cin, &s);
            }
            scratch_free(&s);
        }
        const char *layer = deconv ? "deconv" : "conv";
        char what[32];
        snprintf(what, sizeof what, "%s forward", layer);
        double fwd = expect_within(what, isa_name, y[1], y[0], ny, name, cmp->tol);
        snprintf(what, sizeof what, "%s dx", layer);
        double back = expect_within(what, isa_name, dx[1], dx[0], nx, name, cmp->tol);
        snprintf(what, sizeof what, "%s dw", layer);
        double grad = expect_within(what, isa_name, dw[1], dw[0], nw, name, cmp->tol);
        if (cmp->errors) {
            cmp->errors[3 * deconv] = fwd;
            cmp->errors[3 * deconv + 1] = back;
            cmp->errors[3 * deconv + 2] = grad;
        }
        snprintf(what, sizeof what, "%s db", layer);
        expect_close(what, isa_name, db[1], db[0], (size_t)sh->cout, name);
        for (int path = 0; path < 2; path++)
            free(y[path]), free(dx[path]), free(dw[path]), free(db[path]);
        free(x), free(w), free(b), free(dy);
    }
    free(scale), free(shift);
}

static const shape shapes[] = {
    {2, 8, 8, 3, 16, 2},   /* the tutorial's first layer, small */
    {1, 7, 5, 5, 17, 2},   /* odd sizes, batch 1, masked tail after a full vector */
    {3, 9, 11, 16, 33, 2}, /* two-vector group plus a 1-channel group */
    {1, 6, 20, 17, 8, 1},  /* stride 1, rows wider than one pixel block */
    {2, 5, 3, 33, 3, 1},   /* three output channels (the output layer) */
    {1, 1, 1, 4, 5, 2},    /* one pixel */
    {1, 4, 36, 64, 64, 2}, /* the widest layer's channels, rows of 2 blocks + tail */
    {2, 3, 7, 1, 1, 1},    /* one channel each side */
    {1, 3, 20, 16, 3, 1},  /* the output layer: a whole vector of pixels, then a tail */
    {1, 2, 40, 32, 3, 1},  /* the same from 32 channels: several transposes per pixel block */
    {1, 4, 36, 3, 16, 2},  /* the RGB first layer: a whole vector of pixels, then a tail */
    {1, 2, 70, 5, 3, 1},   /* rows of 4 and 2 vectors of pixels */
    {1, 2, 37, 4, 2, 1},   /* 2 output channels */
    {2, 5, 21, 32, 16, 2}, /* stride-2 transpose to one vector of channels: pairs of pixels */
    {1, 3, 9, 16, 8, 2},   /* the same from 16 and 64 channels (built-in pixel strides) */
    {1, 2, 10, 64, 16, 2},
    {1, 6, 10, 8, 5, 2},   /* the same for 5 and 8 channels, both layers */
    {10, 4, 4, 8, 16, 2},  /* small images sharing weight-gradient slots: 8, then 2 */
    {1, 4, 14, 24, 50, 2}, /* 4-vector blocks with a masked tail, rows of 6 + 4 + 1 pixels; taps in 2 calls */
    {1, 2, 64, 16, 64, 2}, /* 4-vector blocks along a row of 32: 6 6 6 6 4 4 */
    {1, 8, 8, 32, 16, 2},  /* rows of 4 pixels (AVX2: flat tiles of 6 across rows, 4) */
    {1, 10, 10, 16, 24, 2}, /* rows of 5 (flat tiles, then 1; and a one-vector group) */
    {1, 14, 56, 16, 16, 2}, /* rows of 28: 24 in row blocks, the 4 left of 3 rows in flat tiles */
};

static int isa_available(int isa)
{
    if (ae_isa_supported(isa) && ae_direct_ops_for(isa))
        return 1;
    print_message("skipped: this CPU has no %s\n", ae_isa_name(isa));
    return 0;
}

/* check_shape for each shape of the list, in bands of rows: the automatic
 * size (which covers these small images at once) and bands of 1, 2 and 3
 * rows, with and without the input transform in turn. */
static void check_shapes_in_bands(int isa, const shape *list, size_t n)
{
    for (int band = 0; band <= 3; band++) {
        ae_direct_set_band(band);
        for (size_t k = 0; k < n; k++)
            check_shape(isa, &list[k], (int)((k + (size_t)band) % 2));
    }
    ae_direct_set_band(0);
}

static void run_isa(int isa)
{
    ae_rng_seed(&rng, 42 + (uint64_t)isa);
    if (!isa_available(isa))
        return;
    check_shapes_in_bands(isa, shapes, sizeof shapes / sizeof *shapes);
    /* Random shapes on top of the chosen ones. */
    for (int k = 0; k < 12; k++) {
        shape sh;
        sh.n = 1 + (int)(ae_rng_uniform(&rng) * 3);
        sh.h = 1 + (int)(ae_rng_uniform(&rng) * 13);
        sh.w = 1 + (int)(ae_rng_uniform(&rng) * 21);
        sh.cin = 1 + (int)(ae_rng_uniform(&rng) * 40);
        sh.cout = 1 + (int)(ae_rng_uniform(&rng) * 40);
        sh.stride = 1 + (ae_rng_uniform(&rng) < 0.6);
        ae_direct_set_band(k % 4); /* 0: automatic */
        check_shape(isa, &sh, k % 3 == 0);
        ae_direct_set_band(0);
    }
}

static void test_avx2_matches_portable(void **state)
{
    (void)state;
    run_isa(AE_ISA_AVX2);
}

static void test_avx512_matches_portable(void **state)
{
    (void)state;
    run_isa(AE_ISA_AVX512);
}

/* Shapes the AMX tiles take (channel counts multiples of 16, rows of 16
 * pixels or more) for all six products: Conv2D's and Conv2DTranspose's
 * forward, dx and dw. */
static const shape amx_shapes[] = {
    {2, 6, 40, 16, 32, 2},   /* 16 channels summed (half-width tiles); 20-pixel rows: the last block overlaps */
    {1, 5, 34, 48, 64, 2},   /* 48 channels summed in 3 products of 16; 4 groups of outputs; 17-pixel rows */
    {2, 3, 33, 16, 48, 2},   /* three groups of outputs: a pair and one alone; odd width */
    {1, 4, 19, 32, 16, 1},   /* stride 1 */
    {1, 40, 128, 64, 16, 1}, /* input rows past the thread's buffer: a call's rows in two parts */
};

/* Shapes for the AVX512-BF16 products, which take any even channel count
 * and any row: rows under one block of pixels (R = 1 and 4 blocks), pairs
 * of channels that are not whole vectors, output channels past one group of
 * four vectors with a masked tail, odd widths (a zero pixel ends the weight
 * gradient's last pair), stride 1 and 2, and input rows past the thread's
 * buffer. Every product of these takes the dot products (deconv forward:
 * stride 2 or more than 4 output channels, so not the narrow kernel). */
static const shape avx512bf16_shapes[] = {
    {2, 6, 40, 16, 32, 2},
    {1, 5, 34, 48, 64, 2},
    {1, 3, 5, 2, 6, 2},     /* one pair of channels; rows of 3 and 2 pixels */
    {3, 7, 9, 10, 18, 2},   /* 5 pairs; 2 vectors of outputs, the second of 2 */
    {1, 2, 70, 8, 80, 1},   /* 5 vectors of outputs: a block of 4, then one */
    {1, 4, 14, 24, 50, 2},  /* 4 vectors with a masked tail; rows of 7 */
    {2, 4, 9, 6, 12, 1},    /* stride 1, odd width: 5 pixel pairs, the last with a zero */
    {1, 3, 18, 8, 16, 1},   /* rows of 18: one vector of outputs in blocks of 16 pixels */
    {2, 4, 10, 12, 16, 2},  /* transposed rows of 10 per phase: blocks of 8 */
    {1, 40, 128, 64, 16, 1}, /* input rows past the thread's buffer: a call's rows in two parts */
};

/* A bfloat16 ISA against the portable float32 path, twice: with the inputs,
 * kernels and gradients rounded to bfloat16 first, every product is exact
 * in float32 and only the order of the sums differs, so the float32
 * tolerance holds; with float32 values, the error is bfloat16's own (about
 * 2^-8 relative per product), under 1e-2 of the largest output and, so that
 * a silent fall-back to float32 cannot pass, over 1e-5. */
static void check_bf16_isa(int isa, const shape *list, size_t count)
{
    for (int band = 0; band <= 3; band++) {
        ae_direct_set_band(band);
        for (size_t k = 0; k < count; k++) {
            if (band > 0 && k == count - 1)
                continue; /* the large one in whole images only */
            const compare exact = {1e-5, 1, NULL};
            check_shape_as(isa, &list[k], 0, &exact);
            double errors[6];
            const compare rounded = {1e-2, 0, errors};
            check_shape_as(isa, &list[k], (int)((k + (size_t)band) % 2), &rounded);
            for (int e = 0; e < 6; e++)
                if (!(errors[e] > 1e-5))
                    fail_msg("%s, shape %zu, band %d, product %d: within %.3g of float32, so "
                             "bfloat16 did not run", ae_isa_name(isa), k, band, e, errors[e]);
        }
    }
    ae_direct_set_band(0);
}

static void test_amx_bf16_matches_portable(void **state)
{
    (void)state;
    ae_rng_seed(&rng, 1616);
    if (!isa_available(AE_ISA_AMX_BF16))
        return;
    check_bf16_isa(AE_ISA_AMX_BF16, amx_shapes, sizeof amx_shapes / sizeof *amx_shapes);
}

static void test_avx512bf16_matches_portable(void **state)
{
    (void)state;
    ae_rng_seed(&rng, 1617);
    if (!isa_available(AE_ISA_AVX512_BF16))
        return;
    check_bf16_isa(AE_ISA_AVX512_BF16, avx512bf16_shapes,
                   sizeof avx512bf16_shapes / sizeof *avx512bf16_shapes);
    /* the amx shapes too (all even), and odd channel counts, which take the
     * avx512 kernels (the rounded inputs keep them within the tolerance) */
    check_bf16_isa(AE_ISA_AVX512_BF16, amx_shapes, sizeof amx_shapes / sizeof *amx_shapes);
    static const shape odd[] = {{2, 8, 8, 3, 16, 2}, {1, 6, 20, 17, 8, 1}};
    const compare exact = {1e-5, 1, NULL};
    for (size_t k = 0; k < sizeof odd / sizeof *odd; k++)
        check_shape_as(AE_ISA_AVX512_BF16, &odd[k], 0, &exact);
}

/* Per-image work and fixed-order sums: the same bits for 1 and 2 threads. */
/* The backward passes of a Conv2D and a Conv2DTranspose between big images of
 * 12 x w x 16 and small ones of 6 x w/2 x 32, on 1 and 3 threads. */
static void check_thread_independence(int isa, int w_big)
{
    /* 19 small images: weight-gradient slots of 8, 8 and 3 images (ae_grad_group) */
    const int n = 19, saved = omp_get_max_threads();
    ae_set_parallel_thresholds(0, 0); /* a small layer, parallel all the same */
    ae_conv_geom g;
    ae_conv_geom_init(&g, 12, w_big, 16, 2);
    size_t small = (size_t)n * g.small_h * g.small_w * 32, big = (size_t)n * 12 * w_big * 16,
           nw = 9 * 16 * 32;
    assert_int_equal(ae_grad_group(2.0 * g.small_h * g.small_w * nw, nw), 8);
    ae_rng_seed(&rng, 5);
    float *smalls = random_floats(small), *w = random_floats(nw), *bigs = random_floats(big);
    for (int deconv = 0; deconv <= 1; deconv++) {
        const size_t nx = deconv ? small : big, nb = deconv ? 16 : 32;
        float *out[2][3];
        for (int run = 0; run < 2; run++) {
            omp_set_num_threads(run == 0 ? 1 : 3);
            ae_scratch s;
            scratch_make(&s, isa, n, &g, 32);
            out[run][0] = filled_floats(nx, NAN);
            out[run][1] = filled_floats(nw, NAN);
            out[run][2] = filled_floats(nb, NAN);
            if (deconv)
                ae_deconv2d_backward(out[run][0], out[run][1], out[run][2], bigs, smalls, NULL,
                                     w, n, &g, 32, &s);
            else
                ae_conv2d_backward(out[run][0], out[run][1], out[run][2], smalls, bigs, NULL, w,
                                   n, &g, 32, &s);
            scratch_free(&s);
        }
        assert_memory_equal(out[0][0], out[1][0], nx * sizeof(float));
        assert_memory_equal(out[0][1], out[1][1], nw * sizeof(float));
        assert_memory_equal(out[0][2], out[1][2], nb * sizeof(float));
        for (int run = 0; run < 2; run++)
            free(out[run][0]), free(out[run][1]), free(out[run][2]);
    }
    omp_set_num_threads(saved);
    ae_set_parallel_thresholds(AE_PARALLEL_MACS, AE_PARALLEL_VALUES);
    free(smalls), free(w), free(bigs);
}

static void test_direct_kernels_do_not_depend_on_threads(void **state)
{
    (void)state;
    int isa = ae_isa_best();
    if (isa == AE_ISA_PORTABLE) {
        print_message("skipped: no vector ISA\n");
        return;
    }
    check_thread_independence(isa, 10);
    /* rows of 20 small pixels: the bfloat16 tiles take every product */
    if (isa_available(AE_ISA_AMX_BF16))
        check_thread_independence(AE_ISA_AMX_BF16, 40);
    if (isa_available(AE_ISA_AVX512_BF16))
        check_thread_independence(AE_ISA_AVX512_BF16, 10);
}

/* The padded, transformed input copy (each path) and the kernel transpose, by hand. */
static void test_pad_and_transpose(void **state)
{
    (void)state;
    const float img[2 * 3 * 2] = {1, -2, 3, 4, -5, 6, 7, 8, 9, -10, 11, 12};
    const float scale[2] = {2, 3}, shift[2] = {1, -1};
    const ae_input_xform tf = {scale, shift, 0.5f};
    float pad[4 * 5 * 2 + 1], plain[2 * 3 * 2];
    for (int isa = 0; isa < AE_ISA_COUNT; isa++) {
        const ae_direct_ops *ops = ae_direct_ops_for(isa);
        if (isa != AE_ISA_PORTABLE && !ops)
            continue;
        for (int with_tf = 0; with_tf <= 1; with_tf++) {
            pad[4 * 5 * 2] = 77; /* must stay */
            for (int i = 0; i < 4 * 5 * 2; i++)
                pad[i] = NAN;
            ae_conv_input(ops, pad, img, with_tf ? &tf : NULL, 2, 3, 2, 1);
            ae_conv_input(ops, plain, img, with_tf ? &tf : NULL, 2, 3, 2, 0);
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 5; x++)
                    for (int c = 0; c < 2; c++) {
                        float want = 0.0f;
                        if (y >= 1 && y <= 2 && x >= 1 && x <= 3) {
                            want = img[((y - 1) * 3 + (x - 1)) * 2 + c];
                            if (with_tf)
                                want = (want > 0 ? want : 0.5f * want) * scale[c] + shift[c];
                            assert_true(plain[((y - 1) * 3 + (x - 1)) * 2 + c] == want);
                        }
                        assert_true(pad[(y * 5 + x) * 2 + c] == want);
                    }
            assert_true(pad[4 * 5 * 2] == 77);
        }
    }
    float w[9 * 2 * 3], wt[9 * 3 * 2];
    for (int i = 0; i < 9 * 2 * 3; i++)
        w[i] = (float)i;
    ae_direct_transpose_kernel(wt, w, 2, 3);
    for (int t = 0; t < 9; t++)
        for (int c = 0; c < 2; c++)
            for (int o = 0; o < 3; o++)
                assert_true(wt[(t * 3 + o) * 2 + c] == w[(t * 2 + c) * 3 + o]);
}

/* BatchNorm (with its LeakyReLU folded in) forward and backward on each ISA:
 * the same sums in the same order as the portable loops, so the same bits;
 * and the vectorized sigmoid within 4 ulp-ish (2e-7 relative) of expf's. */
static void test_elementwise_passes_match_portable(void **state)
{
    (void)state;
    const int cs[] = {1, 3, 16, 17, 40, 64, 100}; /* 100: two groups of sums (SUM_GROUP) */
    ae_rng_seed(&rng, 9);
    for (int isa = AE_ISA_AVX2; isa < AE_ISA_COUNT; isa++) {
        if (!isa_available(isa))
            continue;
        for (size_t k = 0; k < sizeof cs / sizeof *cs; k++) {
            const int c = cs[k], n = 3;
            const size_t pixels = 70 + k, count = (size_t)n * pixels * c;
            float *z = random_floats(count), *dy = random_floats(count);
            float *gamma = random_floats((size_t)c), *beta = random_floats((size_t)c);
            float *out[2][9];
            for (int path = 0; path < 2; path++) {
                ae_scratch s;
                memset(&s, 0, sizeof s);
                s.isa = path ? isa : AE_ISA_PORTABLE;
                s.num_threads = 1;
                s.dslot_doubles = 2 * (size_t)c;
                s.dslots = calloc(s.dslot_doubles * (n + 4), sizeof(double));
                s.channel = filled_floats(4 * (size_t)c, 0);
                assert_non_null(s.dslots);
                for (int j = 0; j < 9; j++)
                    out[path][j] = filled_floats(j < 2 ? count : (size_t)c, j == 2 ? 0.0f : 1.0f);
                ae_bn_params bn = {gamma, beta, out[path][2], out[path][3], out[path][4],
                                   out[path][5], out[path][6], out[path][7], 0.9f, 1e-3f, 0.3f};
                ae_batchnorm_forward_train(out[path][0], z, &bn, n, pixels, c, &s);
                memcpy(out[path][1], dy, count * sizeof *dy);
                ae_batchnorm_backward(out[path][1], out[path][8], out[path][2], out[path][1], z,
                                      &bn, n, pixels, c, &s);
                free(s.dslots), free(s.channel);
            }
            for (int j = 0; j < 9; j++)
                if (memcmp(out[0][j], out[1][j], (j < 2 ? count : (size_t)c) * sizeof(float)))
                    fail_msg("batchnorm output %d differs on %s, %d channels", j,
                             ae_isa_name(isa), c);
            for (int path = 0; path < 2; path++)
                for (int j = 0; j < 9; j++)
                    free(out[path][j]);
            free(z), free(dy), free(gamma), free(beta);
        }
        /* The sigmoid over the range that matters and past it; NaN stays NaN. */
        const size_t count = 4099;
        float *x = random_floats(count), *want = filled_floats(count, 0), *got = filled_floats(count, 0);
        for (size_t i = 0; i < count; i++)
            x[i] *= (i % 3 == 0) ? 100.0f : 12.0f;
        x[5] = NAN;
        x[6] = INFINITY;
        x[7] = -INFINITY;
        ae_sigmoid_forward(want, x, count);
        ae_sigmoid_forward_with(ae_direct_ops_for(isa), NULL, got, x, count);
        assert_true(isnan(got[5]));
        for (size_t i = 0; i < count; i++) {
            if (i == 5)
                continue;
            double err = fabs((double)got[i] - want[i]);
            if (!(err <= 2.5e-7 * fabs(want[i]) + 1e-37))
                fail_msg("sigmoid(%g) on %s: %.9g, expected %.9g", (double)x[i], ae_isa_name(isa),
                         (double)got[i], (double)want[i]);
        }
        free(x), free(want), free(got);
    }
}

/* scratch_make with room for a BatchNorm's sums over c channels, and that
 * BatchNorm (gamma, beta; its statistics in stats, the moving ones fresh)
 * after its training forward over z (n images of pixels x c). */
static ae_bn_params bn_scratch_make(ae_scratch *s, int isa, int n, const ae_conv_geom *g,
                                    int small_c, int c, const float *gamma, const float *beta,
                                    float stats[6][64], const float *z, size_t pixels)
{
    assert_true(c <= 64);
    scratch_make(s, isa, n, g, small_c);
    s->dslot_doubles = 2 * (size_t)c;
    s->dslots = calloc(s->dslot_doubles * (size_t)(n + 4 + 2 * s->num_threads), sizeof(double));
    s->channel = filled_floats(4 * (size_t)c, NAN);
    assert_non_null(s->dslots);
    for (int k = 0; k < c; k++)
        stats[0][k] = 0.0f, stats[1][k] = 1.0f;
    ae_bn_params bn = {gamma,    beta,     stats[0], stats[1], stats[2], stats[3],
                       stats[4], stats[5], 0.9f,     1e-3f,    0.2f};
    ae_batchnorm_forward_train(NULL, z, &bn, n, pixels, c, s);
    return bn;
}

static void bn_scratch_free(ae_scratch *s)
{
    free(s->dslots), free(s->channel);
    scratch_free(s);
}

/* One side of a comparison around a BatchNorm over z (c channels): its
 * scratch (bn_scratch_make), the BatchNorm as the input transform of the
 * layer above it, the slots of its gradient sums, and `count` outputs of
 * sizes[j] floats, NaN until written. Freed with bn_scratch_free(&k->s). */
typedef struct {
    ae_scratch s;
    float stats[6][64];
    ae_bn_params bn;
    ae_input_xform tf;
    ae_bn_grad_sums sums;
} bn_case;

static void bn_case_make(bn_case *k, int isa, int n, const ae_conv_geom *g, int small_c, int c,
                         const float *gamma, const float *beta, const float *z, size_t pixels,
                         float **out, const size_t *sizes, int count)
{
    k->bn = bn_scratch_make(&k->s, isa, n, g, small_c, c, gamma, beta, k->stats, z, pixels);
    k->tf = (ae_input_xform){k->bn.scale, k->bn.shift, k->bn.slope};
    ae_bn_grad_sums_init(&k->sums, &k->s, &k->bn, z, pixels, c);
    for (int j = 0; j < count; j++)
        out[j] = filled_floats(sizes[j], NAN);
}

/* check(isa, shape, variant) on every path (portable included), bands of 1-3
 * rows and automatic, every pass parallel: the chosen shapes (variant 0 and
 * 1 in turn) and `more` (both variants each). */
typedef void (*shape_check)(int isa, const shape *sh, int variant);

static void on_every_path_and_band(uint64_t seed, shape_check check, const shape *more,
                                   size_t n_more)
{
    ae_rng_seed(&rng, seed);
    ae_set_parallel_thresholds(0, 0);
    for (int isa = AE_ISA_PORTABLE; isa < AE_ISA_COUNT; isa++) {
        /* avx512-bf16 runs any even channel count in bfloat16, past these
         * float32 tolerances (test_avx512bf16_matches_portable) */
        if (isa == AE_ISA_AVX512_BF16 || (isa != AE_ISA_PORTABLE && !isa_available(isa)))
            continue;
        for (int band = 0; band <= 3; band++) {
            ae_direct_set_band(band);
            for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++)
                check(isa, &shapes[k], (int)((k + (size_t)band) % 2));
            for (size_t k = 0; k < n_more; k++)
                for (int variant = 0; variant <= 1; variant++)
                    check(isa, &more[k], variant);
        }
        ae_direct_set_band(0);
    }
    ae_set_parallel_thresholds(AE_PARALLEL_MACS, AE_PARALLEL_VALUES);
}

/* A BatchNorm's backward left to the convolution under it (ae_batchnorm_backward_sums,
 * then ae_conv2d_backward_through / ae_deconv2d_backward_through with dz made
 * from dy as the layer reads it) gives the bits of the two passes run apart
 * (ae_batchnorm_backward, then the plain backward on the stored dz): dx, dw,
 * db, dgamma and dbeta, for the convolution on every path and the transposed
 * one on the direct kernels, bands of 1-3 rows and automatic, every pass
 * parallel. */
static void check_fused_bn_backward(int isa, const shape *sh, int with_tf)
{
    for (int deconv = 0; deconv <= 1; deconv++) {
        if (deconv && isa == AE_ISA_PORTABLE)
            continue; /* the transposed convolution's fold needs the direct kernels */
        ae_conv_geom g;
        const int small_c = shape_geom(sh, deconv, &g), n = sh->n;
        const int c = deconv ? g.big_c : small_c, in_c = deconv ? small_c : g.big_c;
        const size_t big = (size_t)g.big_h * g.big_w, small = (size_t)g.small_h * g.small_w;
        const size_t pixels = deconv ? big : small, ny = (size_t)n * pixels * c;
        const size_t nx = (size_t)n * (deconv ? small : big) * in_c;
        const size_t nw = 9 * (size_t)g.big_c * small_c;
        float *x = random_floats(nx), *w = random_floats(nw), *z = random_floats(ny);
        float *dy = random_floats(ny), *gamma = random_floats((size_t)c);
        float *beta = random_floats((size_t)c), *scale = random_floats((size_t)in_c);
        float *shift = random_floats((size_t)in_c);
        ae_input_xform tf = {scale, shift, 0.3f};
        const ae_input_xform *use = with_tf ? &tf : NULL;
        float *out[2][5]; /* dx, dw, db, dgamma, dbeta */
        const size_t sizes[5] = {nx, nw, (size_t)c, (size_t)c, (size_t)c};
        for (int fused = 0; fused < 2; fused++) {
            ae_scratch s;
            float stats[6][64];
            ae_bn_params bn =
                bn_scratch_make(&s, isa, n, &g, small_c, c, gamma, beta, stats, z, pixels);
            for (int j = 0; j < 5; j++)
                out[fused][j] = filled_floats(sizes[j], NAN);
            ae_grad_xform gtf;
            const ae_grad_xform *through = NULL;
            const float *grad = dy;
            float *dz = NULL;
            if (fused) {
                ae_batchnorm_backward_sums(out[1][3], out[1][4], dy, z, &bn, n, pixels, c, &s,
                                           &gtf);
                through = &gtf;
            } else {
                dz = filled_floats(ny, NAN);
                ae_batchnorm_backward(dz, out[0][3], out[0][4], dy, z, &bn, n, pixels, c, &s);
                grad = dz;
            }
            const ae_conv_io io = {.x = x, .xform = use, .w = w, .dy = grad, .gxform = through,
                                   .dx = out[fused][0], .dw = out[fused][1],
                                   .db = out[fused][2]};
            if (deconv)
                ae_deconv2d_backward_through(&io, &(ae_conv_shape){&g, in_c, n}, &s);
            else
                ae_conv2d_backward_through(&io, &(ae_conv_shape){&g, c, n}, &s);
            free(dz);
            bn_scratch_free(&s);
        }
        static const char *names[5] = {"dx", "dw", "db", "dgamma", "dbeta"};
        for (int j = 0; j < 5; j++)
            if (memcmp(out[0][j], out[1][j], sizes[j] * sizeof(float)))
                fail_msg("fused BatchNorm + %s backward: %s differs on %s, n%d %dx%dx%d->%d s%d",
                         deconv ? "deconv" : "conv", names[j], ae_isa_name(isa), n, sh->h,
                         sh->w, sh->cin, sh->cout, sh->stride);
        for (int fused = 0; fused < 2; fused++)
            for (int j = 0; j < 5; j++)
                free(out[fused][j]);
        free(x), free(w), free(z), free(dy), free(gamma), free(beta), free(scale), free(shift);
    }
}

static void test_fused_batchnorm_backward_matches_two_passes(void **state)
{
    (void)state;
    on_every_path_and_band(77, check_fused_bn_backward, NULL, 0);
}

/* The output layer with its sigmoid applied band by band
 * (ae_deconv2d_forward_sigmoid) gives the bits of the two layers run apart
 * (ae_deconv2d_forward, then ae_sigmoid_forward_with on the same ISA). */
static void check_deconv_sigmoid(int isa, const shape *sh, int with_tf)
{
    ae_conv_geom g;
    const int in_c = shape_geom(sh, 1, &g), n = sh->n;
    const size_t nx = (size_t)n * g.small_h * g.small_w * in_c;
    const size_t ny = (size_t)n * g.big_h * g.big_w * g.big_c, nw = 9 * (size_t)g.big_c * in_c;
    float *x = random_floats(nx), *w = random_floats(nw), *b = random_floats((size_t)g.big_c);
    float *scale = random_floats((size_t)in_c), *shift = random_floats((size_t)in_c);
    ae_input_xform tf = {scale, shift, 0.3f};
    float *y[2] = {filled_floats(ny, NAN), filled_floats(ny, NAN)};
    ae_scratch s;
    scratch_make(&s, isa, n, &g, in_c);
    ae_deconv2d_forward(y[0], x, with_tf ? &tf : NULL, w, b, n, &g, in_c, &s);
    ae_sigmoid_forward_with(ae_direct_ops_for(isa), &s, y[0], y[0], ny);
    ae_deconv2d_forward_sigmoid(y[1], x, with_tf ? &tf : NULL, w, b, n, &g, in_c, &s);
    scratch_free(&s);
    if (memcmp(y[0], y[1], ny * sizeof(float)))
        fail_msg("deconv with its sigmoid differs on %s, n%d %dx%dx%d->%d s%d", ae_isa_name(isa),
                 n, sh->h, sh->w, sh->cin, sh->cout, sh->stride);
    free(y[0]), free(y[1]), free(x), free(w), free(b), free(scale), free(shift);
}

static void test_deconv_with_sigmoid_matches_two_layers(void **state)
{
    (void)state;
    on_every_path_and_band(80, check_deconv_sigmoid, NULL, 0);
}

/* The largest |a - b| over count values, relative to b's largest |b|. */
static double max_rel_diff(const float *a, const float *b, size_t count)
{
    double diff = 0, scale = 0;
    for (size_t i = 0; i < count; i++) {
        diff = fmax(diff, fabs((double)a[i] - (double)b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return scale > 0 ? diff / scale : diff;
}

/* A BatchNorm's gradient sums over n images of z (pixels x c), from its dy
 * in double: sum dy (dbeta) at [0, c), sum dy xhat (dgamma) at [c, 2c), and
 * in mag the sums of the terms' magnitudes. */
static void bn_grad_sums_reference(const float *dy, const float *z, const ae_bn_params *bn,
                                   size_t values, int c, double *sum, double *mag)
{
    for (int ch = 0; ch < 2 * c; ch++)
        sum[ch] = mag[ch] = 0;
    for (size_t v = 0; v < values; v++) {
        const int ch = (int)(v % (size_t)c);
        const double a = z[v] > 0 ? z[v] : (double)bn->slope * z[v];
        const double xhat = (a - bn->mean[ch]) * bn->invstd[ch];
        sum[ch] += dy[v], mag[ch] += fabs(dy[v]);
        sum[c + ch] += dy[v] * xhat, mag[c + ch] += fabs(dy[v] * xhat);
    }
}

/* The output layer's training head (ae_deconv2d_train_head) gives the bits
 * of the steps run apart: ae_deconv2d_forward_sigmoid, each image's
 * ae_sum_squared_diff_grad through the sigmoid, and
 * ae_deconv2d_backward_through with the sums of the BatchNorm under it (y,
 * the images' sums, dx, dw, db, that BatchNorm's dgamma and dbeta); on the
 * direct paths, with and without the BatchNorm (its transform and sums),
 * bands of 1-3 rows and automatic, every pass parallel. With the BatchNorm
 * the head defers dx: dx made from the padded gradient it leaves has the
 * same bits; dw, which it takes from sums of dy xhat (another order of the
 * same sums), is within 1e-5 of the largest; dgamma and dbeta, both ways,
 * within 1e-5 of the sums of their terms' magnitudes from the sums in double. */
static void check_head(int isa, const shape *sh, int with_bn)
{
    ae_conv_geom g;
    const int in_c = shape_geom(sh, 1, &g), n = sh->n, c = g.big_c;
    if (!ae_deconv2d_has_head(&g, isa))
        return; /* the portable path, a stride-2 or a wide layer */
    const size_t pixels = (size_t)g.big_h * g.big_w, d = pixels * c;
    const size_t nx = (size_t)n * pixels * in_c, nw = 9 * (size_t)c * in_c;
    const size_t padded_dy = ae_direct_padded_floats(g.big_h, g.big_w, c);
    float *x = random_floats(nx), *w = random_floats(nw), *b = random_floats((size_t)c);
    float *target = random_floats((size_t)n * d), *gamma = random_floats((size_t)in_c);
    float *beta = random_floats((size_t)in_c);
    const float scale = 2.0f / (float)((size_t)n * d);
    float *out[2][7]; /* y, dx, dw, db, dgamma, dbeta, the images' sums (as doubles) */
    const size_t sizes[7] = {(size_t)n * d, nx, nw, (size_t)c, (size_t)in_c, (size_t)in_c,
                             2 * (size_t)n};
    const ae_conv_shape batch = {&g, in_c, n};
    for (int head = 0; head < 2; head++) {
        bn_case k;
        bn_case_make(&k, isa, n, &g, in_c, in_c, gamma, beta, x, pixels, out[head], sizes, 7);
        const ae_input_xform *use = with_bn ? &k.tf : NULL;
        const ae_bn_grad_sums *sums = with_bn ? &k.sums : NULL;
        double *image_sums = (double *)out[head][6];
        const ae_head_loss loss = {target, scale, image_sums};
        ae_conv_io io = {.x = x, .xform = use, .w = w, .b = b, .y = out[1][0], .dx = out[1][1],
                         .dw = out[1][2], .db = out[1][3], .sums = sums};
        if (head && with_bn) { /* deferred: dx from the padded dy, as the layer under makes it */
            float *dy = filled_floats((size_t)n * padded_dy, NAN);
            io.dx = dy;
            ae_deconv2d_train_head(&io, &loss, &batch, &k.s);
            for (int i = 0; i < n; i++)
                ae_direct_ops_for(isa)->big_to_small(dy + i * padded_dy, 0, &g, in_c, w, NULL,
                                                     out[1][1] + i * pixels * in_c, 0, 0,
                                                     g.small_h);
            free(dy);
        } else if (head) {
            ae_deconv2d_train_head(&io, &loss, &batch, &k.s);
        } else {
            float *dy = filled_floats((size_t)n * d, NAN);
            ae_deconv2d_forward_sigmoid(out[0][0], x, use, w, b, n, &g, in_c, &k.s);
            for (int i = 0; i < n; i++)
                image_sums[i] = ae_sum_squared_diff_grad(out[0][0] + i * d, target + i * d, d,
                                                         dy + i * d, scale, 1);
            io = (ae_conv_io){.x = x, .xform = use, .w = w, .dy = dy, .dx = out[0][1],
                              .dw = out[0][2], .db = out[0][3], .sums = sums};
            ae_deconv2d_backward_through(&io, &batch, &k.s);
            free(dy);
        }
        if (with_bn) {
            ae_grad_xform gtf;
            ae_batchnorm_backward_finish(out[head][4], out[head][5], &k.bn, x, n, pixels, in_c,
                                         &k.s, &gtf);
        }
        if (with_bn && head) { /* dgamma and dbeta against sums in double, both ways */
            double sum[2 * 64], mag[2 * 64];
            bn_grad_sums_reference(out[0][1], x, &k.bn, nx, in_c, sum, mag);
            for (int way = 0; way < 2; way++)
                for (int ch = 0; ch < 2 * in_c; ch++) {
                    const float got = ch < in_c ? out[way][5][ch] : out[way][4][ch - in_c];
                    if (!(fabs(got - sum[ch]) <= 1e-5 * mag[ch]))
                        fail_msg("training head%s: %s[%d] %.9g, in double %.9g (terms %.3g), "
                                 "on %s, n%d %dx%dx%d->%d", way ? "" : " apart",
                                 ch < in_c ? "dbeta" : "dgamma", ch % in_c, (double)got,
                                 sum[ch], mag[ch], ae_isa_name(isa), n, sh->h, sh->w, sh->cin,
                                 sh->cout);
                }
        }
        bn_scratch_free(&k.s);
    }
    static const char *names[7] = {"y", "dx", "dw", "db", "dgamma", "dbeta", "image sums"};
    for (int j = 0; j < 7; j++) {
        if (with_bn && (j == 4 || j == 5))
            continue; /* above */
        if (with_bn && j == 2 ? !(max_rel_diff(out[1][j], out[0][j], sizes[j]) <= 1e-5)
                              : memcmp(out[0][j], out[1][j], sizes[j] * sizeof(float)) != 0)
            fail_msg("training head: %s differs on %s, n%d %dx%dx%d->%d%s (%.3g)", names[j],
                     ae_isa_name(isa), n, sh->h, sh->w, sh->cin, sh->cout,
                     with_bn ? " with BatchNorm" : "",
                     max_rel_diff(out[1][j], out[0][j], sizes[j]));
    }
    for (int head = 0; head < 2; head++)
        for (int j = 0; j < 7; j++)
            free(out[head][j]);
    free(x), free(w), free(b), free(target), free(gamma), free(beta);
}

static void test_training_head_matches_separate_steps(void **state)
{
    (void)state;
    /* Several forward bands of automatic size, BatchNorm sums of 4 chunks. */
    static const shape big[] = {{1, 130, 64, 16, 3, 1}};
    on_every_path_and_band(81, check_head, big, sizeof big / sizeof *big);
}

/* A BatchNorm's statistics added by the convolution under it, band by band
 * (ae_conv2d_forward_stats / ae_deconv2d_forward_stats, then
 * ae_batchnorm_finish_train), give the bits of the BatchNorm's own pass over
 * the stored output (ae_batchnorm_forward_train): mean, invstd, scale,
 * shift and the moving statistics, and the same output; on every path
 * (portable included), bands of 1-3 rows and automatic, every pass parallel,
 * with images of several statistics chunks whose ends fall inside bands. */
static void check_fused_bn_stats(int isa, const shape *sh, int deconv)
{
    ae_conv_geom g;
    const int small_c = shape_geom(sh, deconv, &g);
    const int n = sh->n, c = sh->cout;
    const size_t pixels = deconv ? (size_t)g.big_h * g.big_w : (size_t)g.small_h * g.small_w;
    const size_t ny = (size_t)n * pixels * c;
    const size_t nx = deconv ? (size_t)n * g.small_h * g.small_w * sh->cin
                             : (size_t)n * g.big_h * g.big_w * sh->cin;
    float *x = random_floats(nx), *w = random_floats(9 * (size_t)sh->cin * sh->cout);
    float *b = random_floats((size_t)c), *gamma = random_floats((size_t)c);
    float *beta = random_floats((size_t)c), *scale = random_floats((size_t)sh->cin);
    float *shift = random_floats((size_t)sh->cin);
    ae_input_xform tf = {scale, shift, 0.3f};
    float *y[2], *stats[2][6];
    for (int fused = 0; fused < 2; fused++) {
        ae_scratch s;
        scratch_make(&s, isa, n, &g, small_c);
        s.dslot_doubles = 2 * (size_t)c;
        s.dslots = calloc(s.dslot_doubles * (size_t)(n + 2 + 2 * s.num_threads), sizeof(double));
        assert_non_null(s.dslots);
        y[fused] = filled_floats(ny, NAN);
        for (int k = 0; k < 6; k++)
            stats[fused][k] = filled_floats((size_t)c, k == 1 ? 1.0f : 0.0f);
        ae_bn_params bn = {gamma, beta, stats[fused][0], stats[fused][1], stats[fused][2],
                           stats[fused][3], stats[fused][4], stats[fused][5], 0.9f, 1e-3f, 0.2f};
        ae_bn_stats st;
        ae_bn_stats_init(&st, &s, n, pixels, c, bn.slope);
        const ae_bn_stats *add = fused ? &st : NULL;
        if (deconv)
            ae_deconv2d_forward_stats(y[fused], x, &tf, w, b, n, &g, sh->cin, &s, add);
        else
            ae_conv2d_forward_stats(y[fused], x, &tf, w, b, n, &g, c, &s, add);
        if (fused)
            ae_batchnorm_finish_train(NULL, y[fused], &bn, n, pixels, c, &s);
        else
            ae_batchnorm_forward_train(NULL, y[fused], &bn, n, pixels, c, &s);
        free(s.dslots);
        scratch_free(&s);
    }
    if (memcmp(y[0], y[1], ny * sizeof(float)))
        fail_msg("%s forward with statistics: the output differs on %s",
                 deconv ? "deconv" : "conv", ae_isa_name(isa));
    static const char *names[6] = {"moving mean", "moving var", "mean", "invstd", "scale",
                                   "shift"};
    for (int k = 0; k < 6; k++)
        if (memcmp(stats[0][k], stats[1][k], (size_t)c * sizeof(float)))
            fail_msg("%s forward with statistics: %s differs on %s, n%d %dx%dx%d->%d s%d",
                     deconv ? "deconv" : "conv", names[k], ae_isa_name(isa), n, sh->h, sh->w,
                     sh->cin, sh->cout, sh->stride);
    for (int fused = 0; fused < 2; fused++) {
        free(y[fused]);
        for (int k = 0; k < 6; k++)
            free(stats[fused][k]);
    }
    free(x), free(w), free(b), free(gamma), free(beta), free(scale), free(shift);
}

static void test_fused_batchnorm_statistics_match_own_pass(void **state)
{
    (void)state;
    /* Statistics chunks are 2^15 values: 512 pixels of 64 channels, 819 of 40. */
    static const shape big[] = {
        {2, 40, 60, 3, 64, 2}, /* conv: 600 pixels of 64, 2 chunks; deconv: 9600, 19 */
        {1, 23, 37, 5, 40, 1}, /* 851 pixels of 40: 2 chunks, the last of 32 pixels */
    };
    on_every_path_and_band(78, check_fused_bn_stats, big, sizeof big / sizeof *big);
}

/* A BatchNorm's gradient sums added by the convolution above it, band by
 * band as it computes its input gradient (ae_conv2d_backward_through /
 * ae_deconv2d_backward_through with sums, then ae_batchnorm_backward_finish),
 * give the bits of the BatchNorm's own pass over the stored gradient
 * (ae_batchnorm_backward_sums): dgamma, dbeta and the coefficients of dz; and
 * the convolution's dx and db are those of its plain backward (dw within
 * rounding: the sums may shrink its bands, and it adds band by band). On every
 * path (portable included), bands of 1-3 rows and automatic, every pass
 * parallel. The convolution reads the BatchNorm's input z through the
 * BatchNorm's transform, as in the model. */
static void check_fused_bn_grad_sums(int isa, const shape *sh, int deconv)
{
    ae_conv_geom g;
    const int small_c = shape_geom(sh, deconv, &g);
    const int n = sh->n, c = sh->cin; /* the BatchNorm is on the layer's input */
    const size_t big = (size_t)g.big_h * g.big_w, small = (size_t)g.small_h * g.small_w;
    const size_t pixels = deconv ? small : big, nz = (size_t)n * pixels * c;
    const size_t ny = (size_t)n * (deconv ? big : small) * sh->cout;
    const size_t nw = 9 * (size_t)g.big_c * small_c;
    float *z = random_floats(nz), *w = random_floats(nw), *dy = random_floats(ny);
    float *gamma = random_floats((size_t)c), *beta = random_floats((size_t)c);
    float *out[2][7]; /* dx, dw, db, dgamma, dbeta, k_mean, k_xhat */
    const size_t sizes[7] = {nz, nw, (size_t)sh->cout, (size_t)c, (size_t)c, (size_t)c,
                             (size_t)c};
    for (int fused = 0; fused < 2; fused++) {
        bn_case k;
        bn_case_make(&k, isa, n, &g, small_c, c, gamma, beta, z, pixels, out[fused], sizes, 7);
        const ae_bn_grad_sums *add = fused ? &k.sums : NULL;
        const ae_conv_io io = {.x = z, .xform = &k.tf, .w = w, .dy = dy, .dx = out[fused][0],
                               .dw = out[fused][1], .db = out[fused][2], .sums = add};
        if (deconv)
            ae_deconv2d_backward_through(&io, &(ae_conv_shape){&g, sh->cin, n}, &k.s);
        else
            ae_conv2d_backward_through(&io, &(ae_conv_shape){&g, sh->cout, n}, &k.s);
        ae_grad_xform gtf;
        if (fused)
            ae_batchnorm_backward_finish(out[1][3], out[1][4], &k.bn, z, n, pixels, c, &k.s,
                                         &gtf);
        else
            ae_batchnorm_backward_sums(out[0][3], out[0][4], out[0][0], z, &k.bn, n, pixels, c,
                                       &k.s, &gtf);
        memcpy(out[fused][5], gtf.k_mean, (size_t)c * sizeof(float));
        memcpy(out[fused][6], gtf.k_xhat, (size_t)c * sizeof(float));
        bn_scratch_free(&k.s);
    }
    static const char *names[7] = {"dx", "dw", "db", "dgamma", "dbeta", "k_mean", "k_xhat"};
    char name[64];
    snprintf(name, sizeof name, "n%d %dx%dx%d->%d s%d", n, sh->h, sh->w, sh->cin, sh->cout,
             sh->stride);
    for (int j = 0; j < 7; j++) {
        if (j == 1) { /* dw adds per band: its bands may be smaller with the sums */
            expect_close(deconv ? "deconv dw with sums" : "conv dw with sums", ae_isa_name(isa),
                         out[1][1], out[0][1], sizes[1], name);
            continue;
        }
        if (memcmp(out[0][j], out[1][j], sizes[j] * sizeof(float)))
            fail_msg("BatchNorm sums in the %s backward: %s differs on %s, %s",
                     deconv ? "deconv" : "conv", names[j], ae_isa_name(isa), name);
    }
    for (int fused = 0; fused < 2; fused++)
        for (int j = 0; j < 7; j++)
            free(out[fused][j]);
    free(z), free(w), free(dy), free(gamma), free(beta);
}

static void test_fused_batchnorm_grad_sums_match_own_pass(void **state)
{
    (void)state;
    /* Gradient-sum chunks are 2^15 values too: 600 pixels of 64 channels, two. */
    static const shape big[] = {{2, 40, 60, 64, 5, 2}};
    on_every_path_and_band(79, check_fused_bn_grad_sums, big, sizeof big / sizeof *big);
}

/* The vectorized dense forward (ops->dense_forward through ae_dense_forward)
 * on every ISA: within rounding of double-precision sums, each image's bits
 * the same alone as in the batch, and the same on the pool (every pass
 * parallel, split by images or by outputs) as on the caller. Shapes with
 * image tails, masked output tails, several input chunks, and both splits. */
static void test_dense_forward_on_each_isa(void **state)
{
    (void)state;
    const int dims[][3] = {{19, 1100, 37}, {8, 2049, 16}, {9, 33, 2100}, {3, 7, 5},
                           {1, 1, 1}, {32, 64, 65}};
    ae_rng_seed(&rng, 5);
    for (int isa = AE_ISA_AVX2; isa < AE_ISA_COUNT; isa++) {
        if (!isa_available(isa))
            continue;
        ae_scratch s;
        memset(&s, 0, sizeof s);
        s.isa = isa;
        s.num_threads = omp_get_max_threads() > 2 ? omp_get_max_threads() : 2;
        s.pool = ae_pool_create(s.num_threads);
        assert_non_null(s.pool);
        for (size_t k = 0; k < sizeof dims / sizeof *dims; k++) {
            const int n = dims[k][0], in = dims[k][1], out = dims[k][2];
            const size_t ny = (size_t)n * out;
            float *x = random_floats((size_t)n * in), *w = random_floats((size_t)in * out);
            float *b = random_floats((size_t)out), *y = filled_floats(ny, NAN);
            float *pooled = filled_floats(ny, NAN), *alone = filled_floats((size_t)out, NAN);
            ae_set_parallel_thresholds(AE_PARALLEL_MACS, (size_t)1 << 40); /* on the caller */
            ae_dense_forward(y, x, w, b, n, in, out, &s);
            ae_set_parallel_thresholds(0, 0);
            ae_dense_forward(pooled, x, w, b, n, in, out, &s);
            ae_set_parallel_thresholds(AE_PARALLEL_MACS, AE_PARALLEL_VALUES);
            if (memcmp(pooled, y, ny * sizeof *y))
                fail_msg("dense on %s, %dx%d->%d: the pool changes the result", ae_isa_name(isa),
                         n, in, out);
            for (int i = 0; i < n; i++) {
                for (int o = 0; o < out; o++) {
                    double acc = b[o], mag = fabs(b[o]);
                    for (int j = 0; j < in; j++) {
                        double t = (double)x[(size_t)i * in + j] * w[(size_t)j * out + o];
                        acc += t;
                        mag += fabs(t);
                    }
                    if (!(fabs(y[(size_t)i * out + o] - acc) <= 1e-6 * mag + 1e-6))
                        fail_msg("dense on %s, %dx%d->%d: y[%d][%d] = %.9g, expected %.9g",
                                 ae_isa_name(isa), n, in, out, i, o,
                                 (double)y[(size_t)i * out + o], acc);
                }
                ae_dense_forward(alone, x + (size_t)i * in, w, b, 1, in, out, &s);
                if (memcmp(alone, y + (size_t)i * out, (size_t)out * sizeof *alone))
                    fail_msg("dense on %s, %dx%d->%d: image %d alone differs", ae_isa_name(isa),
                             n, in, out, i);
            }
            free(x), free(w), free(b), free(y), free(pooled), free(alone);
        }
        ae_pool_free(s.pool);
    }
}

/* The dense backward on the pool (every pass parallel, fixed chunks of the
 * weights' longer side) gives the caller's bits, and the GEMMs' values within
 * rounding of double-precision sums. */
static void check_dense_backward_pool(int n, int in, int out)
{
    ae_rng_seed(&rng, 6);
    float *x = random_floats((size_t)n * in), *w = random_floats((size_t)in * out);
    float *dy = random_floats((size_t)n * out);
    float *got[2][3];
    ae_scratch s;
    memset(&s, 0, sizeof s);
    s.num_threads = 3;
    s.pool = ae_pool_create(s.num_threads);
    assert_non_null(s.pool);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(3);
    ae_set_parallel_thresholds(0, 0);
    for (int pooled = 0; pooled < 2; pooled++) {
        got[pooled][0] = filled_floats((size_t)n * in, NAN);
        got[pooled][1] = filled_floats((size_t)in * out, NAN);
        got[pooled][2] = filled_floats((size_t)out, NAN);
        ae_dense_backward(got[pooled][0], got[pooled][1], got[pooled][2], dy, x, w, n, in, out,
                          pooled ? &s : NULL);
    }
    ae_set_parallel_thresholds(AE_PARALLEL_MACS, AE_PARALLEL_VALUES);
    omp_set_num_threads(saved);
    assert_memory_equal(got[0][0], got[1][0], (size_t)n * in * sizeof(float));
    assert_memory_equal(got[0][1], got[1][1], (size_t)in * out * sizeof(float));
    assert_memory_equal(got[0][2], got[1][2], (size_t)out * sizeof(float));
    for (int k = 0; k < in; k += in > 100 ? 499 : 7) /* across the chunks */
        for (int o = 0; o < out; o += out > 100 ? 499 : 1) {
            double dw = 0, dx = 0;
            for (int i = 0; i < n; i++)
                dw += (double)x[(size_t)i * in + k] * dy[(size_t)i * out + o];
            for (int q = 0; q < out; q++)
                dx += (double)dy[(size_t)(o % n) * out + q] * w[(size_t)k * out + q];
            assert_float_equal(got[1][1][(size_t)k * out + o], dw, 1e-5);
            assert_float_equal(got[1][0][(size_t)(o % n) * in + k], dx, 1e-4);
        }
    for (int pooled = 0; pooled < 2; pooled++)
        free(got[pooled][0]), free(got[pooled][1]), free(got[pooled][2]);
    ae_pool_free(s.pool);
    free(x), free(w), free(dy);
}

static void test_dense_backward_on_the_pool(void **state)
{
    (void)state;
    /* many inputs (the encoder's dense), then many outputs (the decoder's) */
    check_dense_backward_pool(19, 2500, 33);
    check_dense_backward_pool(19, 33, 2500);
}

/* The pool runs every item exactly once, on threads within range, job after
 * job; with one thread or no pool, in order on the caller. */
typedef struct {
    int *hits, *order, threads;
    int calls;
} pool_probe;

static void probe_item(void *arg, int item, int thread)
{
    pool_probe *p = arg;
    __atomic_fetch_add(&p->hits[item], 1, __ATOMIC_RELAXED);
    if (thread < 0 || thread >= p->threads)
        __atomic_fetch_add(&p->hits[item], 1000, __ATOMIC_RELAXED);
    if (p->order)
        p->order[p->calls++] = item;
}

static void test_pool_runs_every_item_once(void **state)
{
    (void)state;
    enum { ITEMS = 257 };
    int hits[ITEMS], order[ITEMS];
    ae_pool *pool = ae_pool_create(3);
    assert_non_null(pool);
    assert_int_equal(ae_pool_threads(pool), 3);
    for (int job = 0; job < 200; job++) {
        int items = 1 + job % ITEMS, threads = 1 + job % 4; /* 4 > the pool: capped */
        pool_probe p = {hits, NULL, 3, 0};
        memset(hits, 0, sizeof hits);
        ae_pool_run(pool, threads, items, probe_item, &p);
        for (int i = 0; i < ITEMS; i++)
            if (hits[i] != (i < items))
                fail_msg("job %d: item %d ran %d times (of %d items)", job, i, hits[i], items);
    }
    ae_pool_free(pool);
    for (int with_pool = 0; with_pool <= 1; with_pool++) {
        pool_probe p = {hits, order, 1, 0};
        pool = with_pool ? ae_pool_create(2) : NULL;
        memset(hits, 0, sizeof hits);
        ae_pool_run(pool, with_pool ? 1 : 4, ITEMS, probe_item, &p);
        assert_int_equal(p.calls, ITEMS);
        for (int i = 0; i < ITEMS; i++)
            assert_int_equal(order[i], i);
        ae_pool_free(pool);
    }
}

/* Small images (the 32x32 model's 2x2 to 8x8 layers) and one-channel sides:
 * the multi-row tiles, the one-channel kernels (gray input, gray output
 * layer) and their remainders, on every ISA against the portable path. */
static const shape small_shapes[] = {
    {1, 4, 4, 64, 64, 2},  /* 4x4 -> 2x2 conv; 4x4 -> 8x8 deconv (the decoder's first) */
    {2, 8, 8, 32, 64, 2},  /* 8x8 -> 4x4 conv (the encoder's last): tiles of 2 rows of 4 */
    {1, 8, 8, 16, 16, 2},  /* 4x4 rows with one vector of channels */
    {3, 4, 4, 8, 8, 2},    /* 2x2 outputs, one vector */
    {1, 4, 4, 8, 5, 1},    /* stride 1 on 4x4: input gradient in tiles of rows of 4 */
    {2, 2, 2, 20, 24, 1},  /* 2x2, two-vector groups */
    {1, 5, 5, 8, 8, 2},    /* odd size: padding on top, phases of 3 and 2 pixels */
    {1, 2, 2, 64, 64, 2},  /* 2x2 -> 4x4 deconv with 64 channels */
    {2, 8, 8, 1, 16, 2},   /* one input channel, stride 2 (the first layer) */
    {1, 16, 16, 1, 16, 2}, /* the same, rows of a whole pixel block */
    {1, 6, 11, 3, 16, 2},  /* three input channels */
    {1, 32, 32, 16, 1, 1}, /* the gray output layer */
    {1, 13, 37, 5, 1, 1},  /* the same, row and column remainders */
    {2, 3, 9, 20, 1, 1},   /* one output channel from two vectors of channels */
    {1, 8, 8, 16, 3, 1},   /* the RGB output layer */
};

static void test_small_images_match_portable(void **state)
{
    (void)state;
    for (int isa = AE_ISA_AVX2; isa < AE_ISA_COUNT; isa++) {
        ae_rng_seed(&rng, 77 + (uint64_t)isa);
        if (isa == AE_ISA_AVX512_BF16 || !isa_available(isa)) /* as on_every_path_and_band */
            continue;
        check_shapes_in_bands(isa, small_shapes, sizeof small_shapes / sizeof *small_shapes);
    }
}

/* A forward product and an input gradient sum each output in one order
 * whatever tile (rows of a band, remainder, single pixels) it lands in: the
 * bits must not change with the band size, nor with the image's place in
 * the batch. */
static void test_tiles_do_not_change_bits(void **state)
{
    (void)state;
    for (int isa = AE_ISA_AVX2; isa < AE_ISA_COUNT; isa++) {
        if (!isa_available(isa))
            continue;
        ae_rng_seed(&rng, 91);
        for (size_t k = 0; k < sizeof small_shapes / sizeof *small_shapes; k++) {
            const shape *sh = &small_shapes[k];
            const int n = 3;
            for (int deconv = 0; deconv <= 1; deconv++) {
                ae_conv_geom g;
                const int small_c = shape_geom(sh, deconv, &g);
                size_t big = (size_t)g.big_h * g.big_w * g.big_c;
                size_t small = (size_t)g.small_h * g.small_w * small_c;
                size_t nx = deconv ? small : big, ny = deconv ? big : small;
                size_t nw = 9 * (size_t)g.big_c * small_c;
                float *x = random_floats(n * nx), *w = random_floats(nw);
                float *b = random_floats((size_t)sh->cout), *dy = random_floats(n * ny);
                float *y[5], *dx[5], *dw = filled_floats(nw, NAN), *db = filled_floats(nw, NAN);
                /* runs 0-3: the batch with bands 0 (automatic), 1, 2, 3; run 4: image 1 alone */
                for (int run = 0; run < 5; run++) {
                    const int m = run < 4 ? n : 1;
                    const float *xr = run < 4 ? x : x + nx, *dyr = run < 4 ? dy : dy + ny;
                    ae_scratch s;
                    ae_direct_set_band(run < 4 ? run : 0);
                    scratch_make(&s, isa, m, &g, small_c);
                    y[run] = filled_floats(m * ny, NAN);
                    dx[run] = filled_floats(m * nx, NAN);
                    if (!deconv) {
                        ae_conv2d_forward(y[run], xr, NULL, w, b, m, &g, sh->cout, &s);
                        ae_conv2d_backward(dx[run], dw, db, dyr, xr, NULL, w, m, &g, sh->cout,
                                           &s);
                    } else {
                        ae_deconv2d_forward(y[run], xr, NULL, w, b, m, &g, sh->cin, &s);
                        ae_deconv2d_backward(dx[run], dw, db, dyr, xr, NULL, w, m, &g, sh->cin,
                                             &s);
                    }
                    scratch_free(&s);
                }
                ae_direct_set_band(0);
                for (int run = 1; run < 5; run++) {
                    const size_t off_y = run < 4 ? 0 : ny, off_x = run < 4 ? 0 : nx;
                    const size_t len_y = run < 4 ? n * ny : ny, len_x = run < 4 ? n * nx : nx;
                    if (memcmp(y[run], y[0] + off_y, len_y * sizeof(float)) ||
                        memcmp(dx[run], dx[0] + off_x, len_x * sizeof(float)))
                        fail_msg("%s %s on %s, n%d %dx%dx%d->%d s%d: run %d changes the bits",
                                 deconv ? "deconv" : "conv", "forward/dx", ae_isa_name(isa), n,
                                 sh->h, sh->w, sh->cin, sh->cout, sh->stride, run);
                }
                for (int run = 0; run < 5; run++)
                    free(y[run]), free(dx[run]);
                free(x), free(w), free(b), free(dy), free(dw), free(db);
            }
        }
    }
}

/* 4-vector blocks and taps split over calls (ae_direct_set_plain_blocks)
 * add each output's terms in the same order as plain 2-vector blocks: the
 * layers' outputs and input gradients keep their bits. */
static void test_wide_blocks_do_not_change_bits(void **state)
{
    (void)state;
    static const shape wide[] = {
        {1, 4, 36, 64, 64, 2}, /* 64 channels both sides: taps in pairs */
        {1, 4, 14, 24, 50, 2}, /* a masked fourth vector; rows of 7: 4 + 1 + 1 + 1 pixels */
        {1, 2, 64, 16, 64, 2}, /* rows of 32: 6 6 6 6 4 4 */
        {2, 6, 24, 32, 64, 2}, /* 32 -> 64 channels, taps in fours */
        {1, 14, 56, 16, 16, 2}, /* rows of 28: AVX2's flat tails, by 3 rows and 1 */
    };
    for (int isa = AE_ISA_AVX2; isa < AE_ISA_COUNT; isa++) {
        if (!isa_available(isa) || ae_isa_is_bf16(isa)) /* plain blocks are float32's */
            continue;
        ae_rng_seed(&rng, 17);
        for (size_t k = 0; k < sizeof wide / sizeof *wide; k++) {
            const shape *sh = &wide[k];
            for (int deconv = 0; deconv <= 1; deconv++) {
                ae_conv_geom g;
                const int small_c = shape_geom(sh, deconv, &g);
                size_t big = (size_t)g.big_h * g.big_w * g.big_c;
                size_t small = (size_t)g.small_h * g.small_w * small_c;
                size_t nx = sh->n * (deconv ? small : big), ny = sh->n * (deconv ? big : small);
                size_t nw = 9 * (size_t)g.big_c * small_c;
                float *x = random_floats(nx), *w = random_floats(nw);
                float *b = random_floats((size_t)sh->cout), *dy = random_floats(ny);
                float *y[2], *dx[2], *dw = filled_floats(nw, NAN), *db = filled_floats(nw, NAN);
                for (int plain = 0; plain <= 1; plain++) {
                    ae_scratch s;
                    ae_direct_set_plain_blocks(plain);
                    scratch_make(&s, isa, sh->n, &g, small_c);
                    y[plain] = filled_floats(ny, NAN);
                    dx[plain] = filled_floats(nx, NAN);
                    if (!deconv) {
                        ae_conv2d_forward(y[plain], x, NULL, w, b, sh->n, &g, sh->cout, &s);
                        ae_conv2d_backward(dx[plain], dw, db, dy, x, NULL, w, sh->n, &g,
                                           sh->cout, &s);
                    } else {
                        ae_deconv2d_forward(y[plain], x, NULL, w, b, sh->n, &g, sh->cin, &s);
                        ae_deconv2d_backward(dx[plain], dw, db, dy, x, NULL, w, sh->n, &g,
                                             sh->cin, &s);
                    }
                    scratch_free(&s);
                }
                ae_direct_set_plain_blocks(0);
                if (memcmp(y[0], y[1], ny * sizeof(float)) ||
                    memcmp(dx[0], dx[1], nx * sizeof(float)))
                    fail_msg("%s on %s, %dx%dx%d->%d: wide blocks change the bits",
                             deconv ? "deconv" : "conv", ae_isa_name(isa), sh->h, sh->w, sh->cin,
                             sh->cout);
                for (int plain = 0; plain <= 1; plain++)
                    free(y[plain]), free(dx[plain]);
                free(x), free(w), free(b), free(dy), free(dw), free(db);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pad_and_transpose),
        cmocka_unit_test(test_pool_runs_every_item_once),
        cmocka_unit_test(test_avx2_matches_portable),
        cmocka_unit_test(test_avx512_matches_portable),
        cmocka_unit_test(test_amx_bf16_matches_portable),
        cmocka_unit_test(test_avx512bf16_matches_portable),
        cmocka_unit_test(test_direct_kernels_do_not_depend_on_threads),
        cmocka_unit_test(test_elementwise_passes_match_portable),
        cmocka_unit_test(test_fused_batchnorm_backward_matches_two_passes),
        cmocka_unit_test(test_deconv_with_sigmoid_matches_two_layers),
        cmocka_unit_test(test_training_head_matches_separate_steps),
        cmocka_unit_test(test_fused_batchnorm_statistics_match_own_pass),
        cmocka_unit_test(test_fused_batchnorm_grad_sums_match_own_pass),
        cmocka_unit_test(test_dense_forward_on_each_isa),
        cmocka_unit_test(test_dense_backward_on_the_pool),
        cmocka_unit_test(test_small_images_match_portable),
        cmocka_unit_test(test_tiles_do_not_change_bits),
        cmocka_unit_test(test_wide_blocks_do_not_change_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
