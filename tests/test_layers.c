/* Every layer kernel of src/nn against finite differences and naive loops.
 *
 * Gradient checks: with upstream gradient R (random), the scalar
 * L = sum(y * R) is computed in double from the float32 forward; each input,
 * weight and bias element is moved by +-h and (L+ - L-) / (actual step) is
 * compared with the analytic gradient from the backward.
 * Tolerance, |numeric - analytic| <= 1e-2 * max(|numeric|, |analytic|) + 2e-3:
 * float32 forwards carry ~1e-6 absolute noise per output on these tiny
 * shapes (a few dozen terms of size ~1), which over <= 200 outputs and a
 * step of 2h = 2e-2 gives well under 1e-3 of noise in the numeric slope (the
 * floor); the central difference's own error is O(h^2) ~ 1e-4 relative for
 * the smooth layers (zero for the linear ones), well inside 1e-2. A wrong
 * index or a missing term gives errors of order 1. */
#include "support.h"

#include "aedet/common.h"
#include "nn/layers.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STEP 1e-2
#define REL_TOL 1e-2
#define ABS_TOL 2e-3

static ae_rng rng;

static float *random_floats(size_t n, float lo, float hi)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = lo + (hi - lo) * (float)ae_rng_uniform(&rng);
    return v;
}

static float *zero_floats(size_t n)
{
    float *v = calloc(n ? n : 1, sizeof *v);
    assert_non_null(v);
    return v;
}

/* Scratch big enough for every shape in this file. */
static ae_scratch scratch;
static int setup_scratch(void **state)
{
    (void)state;
    ae_rng_seed(&rng, 1234);
    scratch.num_threads = omp_get_max_threads() > 2 ? omp_get_max_threads() : 2;
    scratch.pool = ae_pool_create(scratch.num_threads);
    assert_non_null(scratch.pool);
    scratch.col_floats = 4096;
    scratch.slot_floats = 4096;
    scratch.dslot_doubles = 64;
    scratch.col = calloc((size_t)scratch.num_threads, sizeof *scratch.col);
    for (int t = 0; t < scratch.num_threads; t++)
        scratch.col[t] = zero_floats(scratch.col_floats);
    scratch.slots = zero_floats(scratch.slot_floats * 4);
    scratch.dslots =
        calloc(scratch.dslot_doubles * (6 + 2 * (size_t)scratch.num_threads), sizeof(double));
    scratch.channel = zero_floats(128);
    return 0;
}
static int teardown_scratch(void **state)
{
    (void)state;
    for (int t = 0; t < scratch.num_threads; t++)
        free(scratch.col[t]);
    free(scratch.col);
    free(scratch.slots);
    free(scratch.dslots);
    ae_pool_free(scratch.pool);
    free(scratch.channel);
    return 0;
}

/* ---- The generic finite-difference check ---- */

typedef struct {
    int kind; /* which layer */
    float *x, *w, *b, *y;
    int n, in_c, out_c, in_dim, out_dim;
    ae_conv_geom g;
    size_t pixels;
    float slope;
    float *mm, *mv, *saved_mean, *saved_invstd; /* BN; slope is its LeakyReLU's (1: none) */
    float scale_shift[2 * 8];
} layer_case;

static ae_bn_params case_bn(layer_case *c)
{
    ae_bn_params bn = {c->w, c->b, c->mm, c->mv, c->saved_mean, c->saved_invstd,
                       c->scale_shift, c->scale_shift + 8, 0.99f, 1e-3f, c->slope};
    assert_true(c->out_c <= 8);
    return bn;
}

enum { CONV, DECONV, DENSE, BN, LEAKY, SIGMOID };

static void run_forward(layer_case *c)
{
    switch (c->kind) {
    case CONV:
        ae_conv2d_forward(c->y, c->x, NULL, c->w, c->b, c->n, &c->g, c->out_c, &scratch);
        break;
    case DECONV:
        ae_deconv2d_forward(c->y, c->x, NULL, c->w, c->b, c->n, &c->g, c->in_c, &scratch);
        break;
    case DENSE:
        ae_dense_forward(c->y, c->x, c->w, c->b, c->n, c->in_dim, c->out_dim, NULL);
        break;
    case BN: {
        ae_bn_params bn = case_bn(c);
        ae_batchnorm_forward_train(c->y, c->x, &bn, c->n, c->pixels, c->out_c, &scratch);
        break;
    }
    case LEAKY: ae_leaky_forward(c->y, c->x, (size_t)c->n * c->in_dim, c->slope); break;
    case SIGMOID: ae_sigmoid_forward(c->y, c->x, (size_t)c->n * c->in_dim); break;
    }
}

static double weighted_sum(const float *y, const float *r, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)y[i] * r[i];
    return s;
}

/* Compares analytic[j] with the slope of L along v[j], for every j. For
 * LeakyReLU, points within 2h of the kink are skipped (the slope is not defined
 * there and the central difference straddles it). */
static void check_slopes(const char *what, layer_case *c, float *v, size_t count,
                         const float *analytic, const float *r, size_t ny, int skip_kink)
{
    int checked = 0;
    for (size_t j = 0; j < count; j++) {
        if (skip_kink && fabsf(v[j]) < 2 * STEP)
            continue;
        float saved = v[j];
        v[j] = (float)(saved + STEP);
        double up = v[j];
        run_forward(c);
        double l_up = weighted_sum(c->y, r, ny);
        v[j] = (float)(saved - STEP);
        double down = v[j];
        run_forward(c);
        double l_down = weighted_sum(c->y, r, ny);
        v[j] = saved;
        double numeric = (l_up - l_down) / (up - down);
        double tol = REL_TOL * fmax(fabs(numeric), fabs(analytic[j])) + ABS_TOL;
        if (!(fabs(numeric - analytic[j]) <= tol))
            fail_msg("%s[%zu]: analytic %.6g, numeric %.6g", what, j, (double)analytic[j], numeric);
        checked++;
    }
    assert_true(checked > 0);
}

/* ---- Convolutions: naive references and gradient checks ---- */

/* TF "same" for a 3x3 window: the padding before, written out independently. */
static int same_pad_before(int big, int stride)
{
    int small = (big + stride - 1) / stride;
    int total = (small - 1) * stride + 3 - big;
    return total > 0 ? total / 2 : 0;
}

/* y[i,oy,ox,o] = b[o] + sum x[i, oy*s+kh-pt, ox*s+kw-pl, c] w[kh,kw,c,o] */
static void naive_conv(float *y, const float *x, const float *w, const float *b, int n, int h,
                       int wd, int cin, int cout, int s)
{
    int oh = (h + s - 1) / s, ow = (wd + s - 1) / s;
    int pt = same_pad_before(h, s), pl = same_pad_before(wd, s);
    for (int i = 0; i < n; i++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int o = 0; o < cout; o++) {
                    double acc = b[o];
                    for (int kh = 0; kh < 3; kh++)
                        for (int kw = 0; kw < 3; kw++) {
                            int iy = oy * s + kh - pt, ix = ox * s + kw - pl;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= wd)
                                continue;
                            for (int c = 0; c < cin; c++)
                                acc += (double)x[((i * h + iy) * wd + ix) * cin + c] *
                                       w[((kh * 3 + kw) * cin + c) * cout + o];
                        }
                    y[((i * oh + oy) * ow + ox) * cout + o] = (float)acc;
                }
}

/* Transposed: the full scatter Y[iy*s + kh] += x[iy] w[kh] over a
 * ((h-1)s+3)-sized canvas, then TF's crop to h*s, starting at
 * (canvas - h*s) / 2 (0 for stride 2: the last row/column goes; 1 for stride 1). */
static void naive_deconv(float *y, const float *x, const float *w, const float *b, int n, int h,
                         int wd, int cin, int cout, int s)
{
    int fh = (h - 1) * s + 3, fw = (wd - 1) * s + 3, oh = h * s, ow = wd * s;
    int crop_t = (fh - oh) / 2, crop_l = (fw - ow) / 2;
    double *full = calloc((size_t)fh * fw * cout, sizeof *full);
    assert_non_null(full);
    for (int i = 0; i < n; i++) {
        memset(full, 0, (size_t)fh * fw * cout * sizeof *full);
        for (int iy = 0; iy < h; iy++)
            for (int ix = 0; ix < wd; ix++)
                for (int kh = 0; kh < 3; kh++)
                    for (int kw = 0; kw < 3; kw++)
                        for (int o = 0; o < cout; o++)
                            for (int c = 0; c < cin; c++)
                                full[((iy * s + kh) * fw + ix * s + kw) * cout + o] +=
                                    (double)x[((i * h + iy) * wd + ix) * cin + c] *
                                    w[((kh * 3 + kw) * cout + o) * cin + c];
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int o = 0; o < cout; o++)
                    y[((i * oh + oy) * ow + ox) * cout + o] =
                        (float)(b[o] + full[((oy + crop_t) * fw + ox + crop_l) * cout + o]);
    }
    free(full);
}

typedef struct {
    int n, h, w, cin, cout, stride;
} conv_shape;

static const conv_shape conv_shapes[] = {
    {2, 4, 6, 2, 3, 2}, /* even sizes, stride 2: pad 0 before, 1 after */
    {1, 5, 3, 3, 2, 1}, /* odd sizes, stride 1 */
    {2, 5, 5, 1, 2, 2}, /* odd size, stride 2: pad 1 each side */
    {1, 1, 1, 2, 2, 2},
};

static void test_conv2d_matches_naive_loops(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof conv_shapes / sizeof *conv_shapes; k++) {
        const conv_shape *s = &conv_shapes[k];
        ae_conv_geom g;
        ae_conv_geom_init(&g, s->h, s->w, s->cin, s->stride);
        assert_int_equal(g.small_h, (s->h + s->stride - 1) / s->stride);
        size_t ny = (size_t)s->n * g.small_h * g.small_w * s->cout;
        float *x = random_floats((size_t)s->n * s->h * s->w * s->cin, -1, 1);
        float *w = random_floats(9 * (size_t)s->cin * s->cout, -1, 1);
        float *b = random_floats((size_t)s->cout, -1, 1);
        float *y = zero_floats(ny), *ref = zero_floats(ny);
        ae_conv2d_forward(y, x, NULL, w, b, s->n, &g, s->cout, &scratch);
        naive_conv(ref, x, w, b, s->n, s->h, s->w, s->cin, s->cout, s->stride);
        double e = test_max_rel_error(y, ref, ny, 1.0);
        if (e > 1e-5)
            fail_msg("conv shape %zu: max relative error %g", k, e);
        free(x), free(w), free(b), free(y), free(ref);
    }
}

static void test_deconv2d_matches_naive_loops(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof conv_shapes / sizeof *conv_shapes; k++) {
        const conv_shape *s = &conv_shapes[k];
        /* The transpose maps the small (h x w) image up to h*s x w*s. */
        ae_conv_geom g;
        ae_conv_geom_init(&g, s->h * s->stride, s->w * s->stride, s->cout, s->stride);
        assert_int_equal(g.small_h, s->h);
        assert_int_equal(g.small_w, s->w);
        size_t ny = (size_t)s->n * g.big_h * g.big_w * s->cout;
        float *x = random_floats((size_t)s->n * s->h * s->w * s->cin, -1, 1);
        float *w = random_floats(9 * (size_t)s->cin * s->cout, -1, 1);
        float *b = random_floats((size_t)s->cout, -1, 1);
        float *y = zero_floats(ny), *ref = zero_floats(ny);
        ae_deconv2d_forward(y, x, NULL, w, b, s->n, &g, s->cin, &scratch);
        naive_deconv(ref, x, w, b, s->n, s->h, s->w, s->cin, s->cout, s->stride);
        double e = test_max_rel_error(y, ref, ny, 1.0);
        if (e > 1e-5)
            fail_msg("deconv shape %zu: max relative error %g", k, e);
        free(x), free(w), free(b), free(y), free(ref);
    }
}

/* Hand-computed: 4x4 image 1..16, stride 2, a kernel of ones, no bias. TF pads
 * nothing before and one row/column after, so the windows are rows/columns
 * {0,1,2} and {2,3}. */
static void test_conv2d_tf_padding_by_hand(void **state)
{
    (void)state;
    float x[16], w[9], b[1] = {0}, y[4];
    for (int i = 0; i < 16; i++)
        x[i] = (float)(i + 1);
    for (int i = 0; i < 9; i++)
        w[i] = 1;
    ae_conv_geom g;
    ae_conv_geom_init(&g, 4, 4, 1, 2);
    assert_int_equal(g.pad_top, 0);
    assert_int_equal(g.pad_left, 0);
    ae_conv2d_forward(y, x, NULL, w, b, 1, &g, 1, &scratch);
    const float expect[4] = {1 + 2 + 3 + 5 + 6 + 7 + 9 + 10 + 11, 3 + 4 + 7 + 8 + 11 + 12,
                             9 + 10 + 11 + 13 + 14 + 15, 11 + 12 + 15 + 16};
    for (int i = 0; i < 4; i++)
        assert_float_equal(y[i], expect[i], 0);
}

/* Hand-computed: 2x2 image [[1,2],[3,4]] up to 4x4 with ones. Output row r
 * takes input rows i with 2i <= r <= 2i+2, and TF drops row 4 of the 5-row
 * scatter. (PyTorch's padding=1, output_padding=1 would give these shifted.) */
static void test_deconv2d_tf_crop_by_hand(void **state)
{
    (void)state;
    float x[4] = {1, 2, 3, 4}, w[9], b[1] = {0}, y[16];
    for (int i = 0; i < 9; i++)
        w[i] = 1;
    ae_conv_geom g;
    ae_conv_geom_init(&g, 4, 4, 1, 2);
    ae_deconv2d_forward(y, x, NULL, w, b, 1, &g, 1, &scratch);
    const float expect[16] = {1, 1, 3, 2, 1, 1, 3, 2, 4, 4, 10, 6, 3, 3, 7, 4};
    for (int i = 0; i < 16; i++)
        if (y[i] != expect[i])
            fail_msg("y[%d] = %g, expected %g", i, (double)y[i], (double)expect[i]);
}

static void check_conv_gradients(int kind, const conv_shape *s)
{
    layer_case c = {0};
    c.kind = kind;
    c.n = s->n;
    c.in_c = s->cin;
    c.out_c = s->cout;
    size_t nx, ny, nw = 9 * (size_t)s->cin * s->cout;
    if (kind == CONV) {
        ae_conv_geom_init(&c.g, s->h, s->w, s->cin, s->stride);
        nx = (size_t)s->n * s->h * s->w * s->cin;
        ny = (size_t)s->n * c.g.small_h * c.g.small_w * s->cout;
    } else {
        ae_conv_geom_init(&c.g, s->h * s->stride, s->w * s->stride, s->cout, s->stride);
        nx = (size_t)s->n * s->h * s->w * s->cin;
        ny = (size_t)s->n * c.g.big_h * c.g.big_w * s->cout;
    }
    c.x = random_floats(nx, -1, 1);
    c.w = random_floats(nw, -1, 1);
    c.b = random_floats((size_t)s->cout, -1, 1);
    c.y = zero_floats(ny);
    float *r = random_floats(ny, -1, 1);
    float *dx = zero_floats(nx), *dw = zero_floats(nw), *db = zero_floats((size_t)s->cout);
    /* Garbage in the outputs: the backward must overwrite, not accumulate. */
    for (size_t i = 0; i < nw; i++)
        dw[i] = 1e3f;
    if (kind == CONV)
        ae_conv2d_backward(dx, dw, db, r, c.x, NULL, c.w, c.n, &c.g, c.out_c, &scratch);
    else
        ae_deconv2d_backward(dx, dw, db, r, c.x, NULL, c.w, c.n, &c.g, c.in_c, &scratch);
    const char *name = kind == CONV ? "conv" : "deconv";
    char what[32];
    snprintf(what, sizeof what, "%s dx", name);
    check_slopes(what, &c, c.x, nx, dx, r, ny, 0);
    snprintf(what, sizeof what, "%s dw", name);
    check_slopes(what, &c, c.w, nw, dw, r, ny, 0);
    snprintf(what, sizeof what, "%s db", name);
    check_slopes(what, &c, c.b, (size_t)s->cout, db, r, ny, 0);
    free(c.x), free(c.w), free(c.b), free(c.y), free(r), free(dx), free(dw), free(db);
}

static void test_conv2d_gradients(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof conv_shapes / sizeof *conv_shapes; k++)
        check_conv_gradients(CONV, &conv_shapes[k]);
}

static void test_deconv2d_gradients(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof conv_shapes / sizeof *conv_shapes; k++)
        check_conv_gradients(DECONV, &conv_shapes[k]);
}

/* ---- Dense ---- */

/* The blocked forward (8 images x 16 outputs, chunks of 1024 inputs, tails
 * one value at a time) against double-precision sums, and each image's
 * result bit for bit the same when it is computed alone, and on the pool
 * with every pass parallel: shapes with image and output tails, more than
 * one input chunk, and more output blocks than threads. */
static void test_dense_forward_blocks_do_not_change_an_image(void **state)
{
    (void)state;
    const int shapes[][3] = {{19, 1100, 37}, {8, 2049, 16}, {9, 33, 2100}, {3, 7, 5}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        const int n = shapes[k][0], in = shapes[k][1], out = shapes[k][2];
        float *x = random_floats((size_t)n * in, -1, 1);
        float *w = random_floats((size_t)in * out, -1, 1);
        float *b = random_floats((size_t)out, -1, 1), *y = zero_floats((size_t)n * out);
        float *alone = zero_floats((size_t)out), *pooled = zero_floats((size_t)n * out);
        ae_dense_forward(y, x, w, b, n, in, out, NULL);
        ae_set_parallel_thresholds(0, 0);
        ae_dense_forward(pooled, x, w, b, n, in, out, &scratch);
        ae_set_parallel_thresholds(AE_PARALLEL_MACS, AE_PARALLEL_VALUES);
        assert_memory_equal(pooled, y, (size_t)n * out * sizeof *y);
        for (int i = 0; i < n; i++) {
            for (int o = 0; o < out; o++) {
                double acc = b[o], mag = fabs(b[o]);
                for (int j = 0; j < in; j++) {
                    acc += (double)x[(size_t)i * in + j] * w[(size_t)j * out + o];
                    mag += fabs((double)x[(size_t)i * in + j] * w[(size_t)j * out + o]);
                }
                assert_float_equal(y[(size_t)i * out + o], acc, 1e-6 * mag + 1e-6);
            }
            ae_dense_forward(alone, x + (size_t)i * in, w, b, 1, in, out, NULL);
            assert_memory_equal(alone, y + (size_t)i * out, (size_t)out * sizeof *alone);
        }
        free(x), free(w), free(b), free(y), free(alone), free(pooled);
    }
}

static void test_dense_forward_and_gradients(void **state)
{
    (void)state;
    const int shapes[][3] = {{2, 5, 3}, {1, 4, 1}};
    for (int k = 0; k < 2; k++) {
        layer_case c = {0};
        c.kind = DENSE;
        c.n = shapes[k][0];
        c.in_dim = shapes[k][1];
        c.out_dim = shapes[k][2];
        size_t nx = (size_t)c.n * c.in_dim, ny = (size_t)c.n * c.out_dim,
               nw = (size_t)c.in_dim * c.out_dim;
        c.x = random_floats(nx, -1, 1);
        c.w = random_floats(nw, -1, 1);
        c.b = random_floats((size_t)c.out_dim, -1, 1);
        c.y = zero_floats(ny);
        run_forward(&c);
        for (int i = 0; i < c.n; i++)
            for (int o = 0; o < c.out_dim; o++) {
                double acc = c.b[o];
                for (int j = 0; j < c.in_dim; j++)
                    acc += (double)c.x[i * c.in_dim + j] * c.w[j * c.out_dim + o];
                assert_float_equal(c.y[i * c.out_dim + o], acc, 1e-5);
            }
        float *r = random_floats(ny, -1, 1);
        float *dx = zero_floats(nx), *dw = zero_floats(nw), *db = zero_floats((size_t)c.out_dim);
        ae_dense_backward(dx, dw, db, r, c.x, c.w, c.n, c.in_dim, c.out_dim, NULL);
        check_slopes("dense dx", &c, c.x, nx, dx, r, ny, 0);
        check_slopes("dense dw", &c, c.w, nw, dw, r, ny, 0);
        check_slopes("dense db", &c, c.b, (size_t)c.out_dim, db, r, ny, 0);
        free(c.x), free(c.w), free(c.b), free(c.y), free(r), free(dx), free(dw), free(db);
    }
}

/* ---- BatchNorm ---- */

static void test_batchnorm_statistics(void **state)
{
    (void)state;
    /* Channel 0 of a 2-image, 2-pixel batch: 1, 2, 3, 6 -> mean 3, biased var
     * 3.5, unbiased 14/3. Channel 1 is constant 5: var 0. */
    float x[8] = {1, 5, 2, 5, 3, 5, 6, 5}, y[8];
    float gamma[2] = {2, 1}, beta[2] = {1, 0}, mm[2] = {0, 0}, mv[2] = {1, 1}, sm[2], si[2];
    float scale[2], shift[2];
    ae_bn_params bn = {gamma, beta, mm, mv, sm, si, scale, shift, 0.99f, 1e-3f, 1.0f};
    ae_batchnorm_forward_train(y, x, &bn, 2, 2, 2, &scratch);
    assert_float_equal(sm[0], 3.0, 1e-6);
    assert_float_equal(si[0], 1 / sqrt(3.5 + 1e-3), 1e-6);
    assert_float_equal(y[0], 2 * (1 - 3) / sqrt(3.5 + 1e-3) + 1, 1e-5);
    assert_float_equal(y[1], 0, 1e-6);
    assert_float_equal(mm[0], 0.01 * 3, 1e-6);
    assert_float_equal(mm[1], 0.01 * 5, 1e-6);
    assert_float_equal(mv[0], 0.99 + 0.01 * 14.0 / 3.0, 1e-6);
    assert_float_equal(mv[1], 0.99, 1e-6);
    /* Inference uses the moving statistics. */
    ae_batchnorm_forward_infer(y, x, &bn, 2, 2, 2, &scratch);
    assert_float_equal(y[0], 2 * (1 - mm[0]) / sqrt(mv[0] + 1e-3) + 1, 1e-5);
    assert_float_equal(y[3], (5 - mm[1]) / sqrt(mv[1] + 1e-3), 1e-5);
    /* scale and shift describe the same y (the next convolution applies them). */
    for (int i = 0; i < 8; i++)
        assert_float_equal(y[i], x[i] * scale[i % 2] + shift[i % 2], 1e-5);
    /* With the LeakyReLU folded in, the statistics are those of leaky(x). */
    float xl[8] = {-1, 5, 2, 5, 3, 5, -6, 5}, al[8];
    bn.slope = 0.5f;
    mm[0] = 0, mv[0] = 1;
    ae_batchnorm_forward_train(y, xl, &bn, 2, 2, 2, &scratch);
    for (int i = 0; i < 8; i++)
        al[i] = xl[i] > 0 ? xl[i] : 0.5f * xl[i];
    double mean = (al[0] + al[2] + al[4] + al[6]) / 4, var = 0;
    for (int i = 0; i < 8; i += 2)
        var += (al[i] - mean) * (al[i] - mean) / 4;
    assert_float_equal(sm[0], mean, 1e-6);
    assert_float_equal(si[0], 1 / sqrt(var + 1e-3), 1e-6);
    assert_float_equal(y[6], 2 * (al[6] - mean) / sqrt(var + 1e-3) + 1, 1e-5);
}

static void test_batchnorm_gradients(void **state)
{
    (void)state;
    /* n, pixels, channels; the last one with a LeakyReLU (slope 0.3) folded in */
    const int shapes[][3] = {{2, 6, 3}, {1, 5, 2}, {2, 7, 3}};
    for (int k = 0; k < 3; k++) {
        layer_case c = {0};
        c.kind = BN;
        c.slope = k == 2 ? 0.3f : 1.0f;
        c.n = shapes[k][0];
        c.pixels = (size_t)shapes[k][1];
        c.out_c = shapes[k][2];
        size_t nx = (size_t)c.n * c.pixels * c.out_c;
        c.x = random_floats(nx, -2, 2);
        c.w = random_floats((size_t)c.out_c, 0.5f, 1.5f);
        c.b = random_floats((size_t)c.out_c, -1, 1);
        c.y = zero_floats(nx);
        c.mm = zero_floats((size_t)c.out_c);
        c.mv = zero_floats((size_t)c.out_c);
        c.saved_mean = zero_floats((size_t)c.out_c);
        c.saved_invstd = zero_floats((size_t)c.out_c);
        run_forward(&c);
        float *r = random_floats(nx, -1, 1);
        float *dx = zero_floats(nx), *dg = zero_floats((size_t)c.out_c),
              *dbeta = zero_floats((size_t)c.out_c);
        ae_bn_params bn = case_bn(&c);
        ae_batchnorm_backward(dx, dg, dbeta, r, c.x, &bn, c.n, c.pixels, c.out_c, &scratch);
        check_slopes("bn dx", &c, c.x, nx, dx, r, nx, k == 2);
        check_slopes("bn dgamma", &c, c.w, (size_t)c.out_c, dg, r, nx, 0);
        check_slopes("bn dbeta", &c, c.b, (size_t)c.out_c, dbeta, r, nx, 0);
        /* In place (dx == dy), as the model runs it. */
        float *inplace = malloc(nx * sizeof *inplace);
        assert_non_null(inplace);
        memcpy(inplace, r, nx * sizeof *r);
        ae_batchnorm_backward(inplace, dg, dbeta, inplace, c.x, &bn, c.n, c.pixels, c.out_c,
                              &scratch);
        assert_memory_equal(inplace, dx, nx * sizeof *dx);
        free(inplace);
        free(c.x), free(c.w), free(c.b), free(c.y), free(c.mm), free(c.mv);
        free(c.saved_mean), free(c.saved_invstd), free(r), free(dx), free(dg), free(dbeta);
    }
}

/* ---- Activations and loss ---- */

static void test_activation_gradients(void **state)
{
    (void)state;
    for (int kind = LEAKY; kind <= SIGMOID; kind++) {
        layer_case c = {0};
        c.kind = kind;
        c.n = 2;
        c.in_dim = 40;
        c.slope = 0.3f;
        size_t nx = 80;
        c.x = random_floats(nx, -4, 4);
        c.y = zero_floats(nx);
        run_forward(&c);
        for (size_t i = 0; i < nx; i++) {
            double ref = kind == LEAKY ? (c.x[i] > 0 ? c.x[i] : 0.3 * c.x[i])
                                       : 1 / (1 + exp(-(double)c.x[i]));
            assert_float_equal(c.y[i], ref, 1e-6);
        }
        float *r = random_floats(nx, -1, 1), *dx = zero_floats(nx);
        if (kind == LEAKY)
            ae_leaky_backward(dx, r, c.x, nx, c.slope);
        else
            ae_sigmoid_backward(dx, r, c.y, nx);
        check_slopes(kind == LEAKY ? "leaky dx" : "sigmoid dx", &c, c.x, nx, dx, r, nx,
                     kind == LEAKY);
        free(c.x), free(c.y), free(r), free(dx);
    }
    /* Extreme inputs saturate without NaN. */
    float big[4] = {-1e4f, 1e4f, -100, 100}, out[4];
    ae_sigmoid_forward(out, big, 4);
    assert_float_equal(out[0], 0, 0);
    assert_float_equal(out[1], 1, 0);
    assert_true(out[2] >= 0 && out[3] <= 1);
}

static void test_mse_loss_and_gradient(void **state)
{
    (void)state;
    const int n = 3;
    const size_t d = 37; /* two blocks of the 16 partial sums and a tail */
    float *y = random_floats(n * d, 0, 1), *x = random_floats(n * d, 0, 1);
    float per_image[3], dy[3 * 37];
    double loss = ae_mse_forward(y, x, n, d, per_image);
    double total = 0;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (size_t j = 0; j < d; j++)
            s += ((double)y[i * d + j] - x[i * d + j]) * ((double)y[i * d + j] - x[i * d + j]);
        assert_float_equal(per_image[i], s / d, 1e-7);
        total += s;
    }
    assert_float_equal(loss, total / (n * d), 1e-9);
    ae_mse_backward(dy, y, x, n, d);
    for (size_t j = 0; j < n * d; j++) {
        float saved = y[j];
        y[j] = saved + 1e-2f;
        double up = y[j], l_up = ae_mse_forward(y, x, n, d, NULL);
        y[j] = saved - 1e-2f;
        double down = y[j], l_down = ae_mse_forward(y, x, n, d, NULL);
        y[j] = saved;
        assert_float_equal(dy[j], (l_up - l_down) / (up - down), 1e-5);
    }
    /* The sum and the gradient in one pass (the model's training step): the
     * same bits as ae_sum_squared_diff, ae_mse_backward and, through a
     * sigmoid, ae_sigmoid_backward after it. */
    float fused[3 * 37], through[3 * 37];
    const float scale = (float)(2.0 / (double)(n * d));
    for (int sigmoid = 0; sigmoid <= 1; sigmoid++)
        for (int i = 0; i < n; i++) {
            const size_t at = (size_t)i * d;
            double sum = ae_sum_squared_diff_grad(y + at, x + at, d, fused + at, scale, sigmoid);
            double alone = ae_sum_squared_diff(y + at, x + at, d);
            assert_memory_equal(&sum, &alone, sizeof sum);
            if (sigmoid)
                ae_sigmoid_backward(through + at, dy + at, y + at, d);
            assert_memory_equal(fused + at, (sigmoid ? through : dy) + at, d * sizeof(float));
        }
    free(y), free(x);
}

/* ---- Adam ---- */

static void test_adam_matches_keras_formula(void **state)
{
    (void)state;
    float w[3] = {1, -2, 0.5f}, m[3] = {0.1f, 0, -0.2f}, v[3] = {0.01f, 0, 0.04f};
    const float g[3] = {0.5f, -1, 0};
    float w0[3], m0[3], v0[3];
    memcpy(w0, w, sizeof w), memcpy(m0, m, sizeof m), memcpy(v0, v, sizeof v);
    const ae_adam_step t4 = {1e-3, 0.9, 0.999, 1e-7, 4}, t5 = {1e-3, 0.9, 0.999, 1e-7, 5};
    /* commit 0 only looks. */
    size_t bad_grads = 0;
    assert_int_equal(ae_adam_update(w, m, v, g, 3, &t4, 0, &bad_grads), 0);
    assert_int_equal(bad_grads, 0);
    assert_memory_equal(w, w0, sizeof w);
    assert_int_equal(ae_adam_update(w, m, v, g, 3, &t4, 1, NULL), 0);
    for (int i = 0; i < 3; i++) {
        double mi = 0.9 * m0[i] + 0.1 * g[i], vi = 0.999 * v0[i] + 0.001 * g[i] * g[i];
        double step = 1e-3 * sqrt(1 - pow(0.999, 4)) / (1 - pow(0.9, 4)) * mi / (sqrt(vi) + 1e-7);
        assert_float_equal(m[i], mi, 1e-7);
        assert_float_equal(v[i], vi, 1e-8);
        assert_float_equal(w[i], w0[i] - step, 1e-6);
    }
    /* A gradient of Inf or NaN is counted, as a gradient and as an update,
     * and, with commit 0, changes nothing. */
    const float bad[3] = {INFINITY, 0, NAN};
    memcpy(w0, w, sizeof w);
    assert_int_equal(ae_adam_update(w, m, v, bad, 3, &t5, 0, &bad_grads), 2);
    assert_int_equal(bad_grads, 2);
    assert_memory_equal(w, w0, sizeof w);
}

/* The check (commit 0) counts the updates that would not be finite exactly
 * as the commit finds them, whether its quick bound decides or it computes
 * the update: in whole chunks of 16 and in the tail. With lr 1e38 and t = 1
 * the step is lr sign(g) (m' = 0.1 g, v' = 0.001 g^2). */
static void test_adam_check_counts_what_commit_finds(void **state)
{
    (void)state;
    enum { N = 37 };
    float w[N], m[N], v[N], g[N];
    for (int i = 0; i < N; i++)
        w[i] = 1e30f * (float)(i % 5 - 2), m[i] = 0, v[i] = 0, g[i] = (float)(i % 3) - 1.5f;
    w[3] = 3e38f, g[3] = -1;  /* 3e38 + 1e38: overflows */
    w[20] = 3e38f, g[20] = 1; /* 3e38 - 1e38: past the bound, finite */
    w[36] = -3e38f, g[36] = 1; /* the tail: overflows */
    const ae_adam_step huge = {1e38, 0.9, 0.999, 1e-7, 1}, no_eps = {1e-3, 0.9, 0.999, 0, 1};
    size_t bad_grads = 0;
    assert_int_equal(ae_adam_update(w, m, v, g, N, &huge, 0, &bad_grads), 2);
    assert_int_equal(bad_grads, 0);
    assert_int_equal(ae_adam_update(w, m, v, g, N, &huge, 1, NULL), 2);
    assert_true(isinf(w[3]) && isinf(w[36]));
    assert_float_equal(w[20], 2e38f, 2e33f); /* 1e-5 of it */
    /* An epsilon of 0 leaves no bound: every update is computed. */
    float w0[2] = {1, 2}, m0[2] = {0, 0}, v0[2] = {0, 0}, g0[2] = {0, 1};
    assert_int_equal(ae_adam_update(w0, m0, v0, g0, 2, &no_eps, 0, NULL), 1);
    assert_int_equal(ae_adam_update(w0, m0, v0, g0, 2, &no_eps, 1, NULL), 1);
    assert_true(isnan(w0[0]) && w0[1] < 2);
}

/* The fixed-order reduction gives the same bits for any thread count. */
static void test_gradients_do_not_depend_on_threads(void **state)
{
    (void)state;
    const conv_shape s = {4, 6, 6, 3, 4, 2};
    ae_conv_geom g;
    ae_conv_geom_init(&g, s.h, s.w, s.cin, 2);
    size_t nx = (size_t)s.n * s.h * s.w * s.cin, ny = (size_t)s.n * 9 * s.cout,
           nw = 9 * (size_t)s.cin * s.cout;
    float *x = random_floats(nx, -1, 1), *w = random_floats(nw, -1, 1),
          *dy = random_floats(ny, -1, 1);
    float *dx1 = zero_floats(nx), *dw1 = zero_floats(nw), *db1 = zero_floats(4);
    float *dx2 = zero_floats(nx), *dw2 = zero_floats(nw), *db2 = zero_floats(4);
    int saved = omp_get_max_threads();
    ae_set_parallel_thresholds(0, 0); /* a small layer, parallel all the same */
    omp_set_num_threads(1);
    ae_conv2d_backward(dx1, dw1, db1, dy, x, NULL, w, s.n, &g, s.cout, &scratch);
    omp_set_num_threads(saved > 1 ? saved : 2);
    ae_conv2d_backward(dx2, dw2, db2, dy, x, NULL, w, s.n, &g, s.cout, &scratch);
    omp_set_num_threads(saved);
    ae_set_parallel_thresholds(AE_PARALLEL_MACS, AE_PARALLEL_VALUES);
    assert_memory_equal(dw1, dw2, nw * sizeof *dw1);
    assert_memory_equal(db1, db2, 4 * sizeof *db1);
    assert_memory_equal(dx1, dx2, nx * sizeof *dx1);
    free(x), free(w), free(dy), free(dx1), free(dw1), free(db1), free(dx2), free(dw2), free(db2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d_matches_naive_loops),
        cmocka_unit_test(test_deconv2d_matches_naive_loops),
        cmocka_unit_test(test_conv2d_tf_padding_by_hand),
        cmocka_unit_test(test_deconv2d_tf_crop_by_hand),
        cmocka_unit_test(test_conv2d_gradients),
        cmocka_unit_test(test_deconv2d_gradients),
        cmocka_unit_test(test_dense_forward_and_gradients),
        cmocka_unit_test(test_dense_forward_blocks_do_not_change_an_image),
        cmocka_unit_test(test_batchnorm_statistics),
        cmocka_unit_test(test_batchnorm_gradients),
        cmocka_unit_test(test_activation_gradients),
        cmocka_unit_test(test_mse_loss_and_gradient),
        cmocka_unit_test(test_adam_matches_keras_formula),
        cmocka_unit_test(test_adam_check_counts_what_commit_finds),
        cmocka_unit_test(test_gradients_do_not_depend_on_threads),
    };
    return cmocka_run_group_tests(tests, setup_scratch, teardown_scratch);
}
