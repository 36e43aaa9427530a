/* The same scores on every CPU for the same model and kernels (issue 22):
 * the float32 AVX-512 and AVX2 paths score a demo-like model within 1e-6
 * (relative) of the portable path, and the products that used to be BLAS
 * (whose kernel, and so order of summation, OpenBLAS picks per CPU) are the
 * project's own with the bits of the naive loops, which IEEE arithmetic
 * fixes whatever the CPU: ae_gemm (gemm.h), and through it the dense
 * layers' backward on every path. */
#include "support.h"

#include "aedet/nn.h"
#include "nn/kernels/gemm.h"
#include "nn/kernels/isa.h"
#include "nn/layers.h"
#include "nn/pool.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static ae_rng rng;

static float *random_floats(size_t n)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(2.0 * ae_rng_uniform(&rng) - 1.0);
    return v;
}

/* ---- the demo's data: Fashion-MNIST sandals with a few trousers ---- */

/* STEPS of training take the scores from about 0.2 (an untrained model's
 * 0.5 everywhere) to about 0.06, so that they measure a reconstruction. */
enum { NORMAL = 56, ODD = 8, IMAGES = NORMAL + ODD, SIDE = 32, STEPS = 24 };

static void read_exactly(gzFile f, void *dst, unsigned len, const char *what)
{
    if (gzread(f, dst, len) != (int)len)
        fail_msg("%s: short read", what);
}

/* The first NORMAL images of class 5 and ODD of class 1 of the training
 * set, in file order, each 28x28 centred in 32x32 (a border of zeros),
 * scaled to [0, 1]. */
static float *fashion_images(void)
{
    const char *labels_path = TEST_FASHION_DIR "/train-labels-idx1-ubyte.gz";
    const char *images_path = TEST_FASHION_DIR "/train-images-idx3-ubyte.gz";
    gzFile lf = gzopen(labels_path, "rb"), imf = gzopen(images_path, "rb");
    if (!lf || !imf)
        fail_msg("Fashion-MNIST is missing: apt-get install dataset-fashion-mnist");
    unsigned char header[16], label, pixels[28 * 28];
    read_exactly(lf, header, 8, labels_path);
    read_exactly(imf, header, 16, images_path);
    float *x = calloc((size_t)IMAGES * SIDE * SIDE, sizeof *x);
    assert_non_null(x);
    int normal = 0, odd = 0;
    while (normal < NORMAL || odd < ODD) {
        read_exactly(lf, &label, 1, labels_path);
        read_exactly(imf, pixels, sizeof pixels, images_path);
        int slot;
        if (label == 5 && normal < NORMAL)
            slot = normal++;
        else if (label == 1 && odd < ODD)
            slot = NORMAL + odd++;
        else
            continue;
        float *img = x + (size_t)slot * SIDE * SIDE;
        for (int r = 0; r < 28; r++)
            for (int c = 0; c < 28; c++)
                img[(r + 2) * SIDE + c + 2] = pixels[r * 28 + c] / 255.0f;
    }
    gzclose(lf);
    gzclose(imf);
    return x;
}

/* A model on the kernels AEDET_ISA=isa gives (NULL when the CPU lacks them). */
static ae_model *model_on(const char *isa, const ae_config *cfg)
{
    char *saved = test_env_save("AEDET_ISA");
    setenv("AEDET_ISA", isa, 1);
    ae_model *m;
    ae_error err;
    if (ae_model_create(cfg, IMAGES, &m, &err) != AE_OK)
        fail_msg("create on %s: %s", isa, err.message);
    test_env_restore("AEDET_ISA", saved);
    if (strcmp(ae_model_kernels(m), isa) != 0) {
        print_message("skipped %s: this CPU has no %s (the model runs %s)\n", isa, isa,
                      ae_model_kernels(m));
        ae_model_free(m);
        return NULL;
    }
    return m;
}

/* The tutorial's model at 32x32x1 (filters 16, 32, 64, latent 32) trained a
 * few steps on the kernels the run has (tests/run.sh's AEDET_ISA), then its
 * weights and BatchNorm statistics scored on each float32 path. */
static void test_float32_paths_score_alike(void **state)
{
    (void)state;
    float *x = fashion_images();
    ae_config cfg;
    ae_config_init(&cfg, SIDE, SIDE, 1);
    ae_model *trained;
    ae_error err;
    if (ae_model_create(&cfg, IMAGES, &trained, &err) != AE_OK)
        fail_msg("create: %s", err.message);
    ae_model_init_weights(trained, 3);
    ae_adam_config adam;
    ae_adam_config_init(&adam, 3e-3f, 0);
    for (int step = 0; step < STEPS; step++) {
        const float *batch = x + (size_t)(step % 2) * 32 * SIDE * SIDE;
        assert_int_equal(ae_model_train_step(trained, &adam, batch, 32, NULL, &err), AE_OK);
    }
    static const char *paths[] = {"portable", "avx2", "avx512"};
    float scores[3][IMAGES];
    int have[3] = {0};
    for (int k = 0; k < 3; k++) {
        ae_model *m = model_on(paths[k], &cfg);
        if (!m) {
            assert_true(k > 0); /* every CPU runs the portable loops */
            continue;
        }
        memcpy(ae_model_params(m), ae_model_params(trained),
               ae_model_num_params(m) * sizeof(float));
        memcpy(ae_model_state(m), ae_model_state(trained), ae_model_num_state(m) * sizeof(float));
        if (ae_model_score(m, x, IMAGES, scores[k], NULL, &err) != AE_OK)
            fail_msg("score on %s: %s", paths[k], err.message);
        have[k] = 1;
        ae_model_free(m);
    }
    for (int k = 1; k < 3; k++) {
        if (!have[k])
            continue;
        double worst = 0;
        for (int i = 0; i < IMAGES; i++) {
            if (!(scores[0][i] > 0))
                fail_msg("image %d: portable score %g", i, (double)scores[0][i]);
            worst = fmax(worst, fabs((double)scores[k][i] - scores[0][i]) / scores[0][i]);
            if (!(worst <= 1e-6))
                fail_msg("image %d: %s scores %.9g, portable %.9g (relative %.3g)", i, paths[k],
                         (double)scores[k][i], (double)scores[0][i], worst);
        }
        print_message("%s: scores within %.2g of portable's (relative; image 0: %.9g)\n",
                      paths[k], worst, (double)scores[0][0]);
    }
    ae_model_free(trained);
    free(x);
}

/* ---- ae_gemm: the naive loop's bits ---- */

static float at(const float *m, int t, int ld, int r, int c)
{
    return t ? m[(size_t)c * ld + r] : m[(size_t)r * ld + c];
}

static void test_gemm_is_the_naive_loop(void **state)
{
    (void)state;
    /* blocks of 8 rows x 8, 16 or 32 columns and their tails, chunks of k
     * (256) and their tails */
    static const int dims[][3] = {{1, 1, 1}, {9, 17, 3}, {8, 16, 300}, {13, 35, 600},
                                  {16, 32, 256}, {3, 5, 0}, {24, 7, 40}, {17, 70, 33}};
    ae_rng_seed(&rng, 12);
    for (size_t d = 0; d < sizeof dims / sizeof *dims; d++)
        for (int form = 0; form < 8; form++) {
            const int m = dims[d][0], n = dims[d][1], k = dims[d][2];
            const int a_t = form & 1, b_t = form >> 1 & 1, accumulate = form >> 2;
            /* leading dimensions past the matrices' own */
            const int lda = (a_t ? m : k) + 3, ldb = (b_t ? k : n) + 2, ldc = n + 5;
            float *a = random_floats((size_t)(a_t ? k : m) * lda + 1);
            float *b = random_floats((size_t)(b_t ? n : k) * ldb + 1);
            float *c = random_floats((size_t)m * ldc);
            float *want = malloc((size_t)m * ldc * sizeof *want);
            assert_non_null(want);
            memcpy(want, c, (size_t)m * ldc * sizeof *c);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    float acc = accumulate ? want[(size_t)i * ldc + j] : 0.0f;
                    for (int p = 0; p < k; p++)
                        acc = acc + at(a, a_t, lda, i, p) * at(b, b_t, ldb, p, j);
                    want[(size_t)i * ldc + j] = acc;
                }
            float *got = malloc((size_t)m * ldc * sizeof *got);
            assert_non_null(got);
            for (int v = 0; v < 3; v++) { /* each variant the CPU has */
                const int variant = v == 0 ? AE_ISA_PORTABLE : v == 1 ? AE_ISA_AVX2 : AE_ISA_AVX512;
                memcpy(got, c, (size_t)m * ldc * sizeof *c);
                ae_gemm_as(variant, &(ae_gemm_job){.m = m, .n = n, .k = k, .a = a, .lda = lda,
                                                   .a_t = a_t, .b = b, .ldb = ldb, .b_t = b_t,
                                                   .c = got, .ldc = ldc,
                                                   .accumulate = accumulate});
                if (memcmp(got, want, (size_t)m * ldc * sizeof *got) != 0)
                    fail_msg("%s, %dx%dx%d, a_t %d, b_t %d, accumulate %d: not the naive loop's "
                             "bits (max relative error %.3g)",
                             ae_isa_name(variant), m, n, k, a_t, b_t, accumulate,
                             test_max_rel_error(got, want, (size_t)m * ldc, 1e-30));
            }
            free(a), free(b), free(c), free(want), free(got);
        }
}

/* The dense backward on each path, on the pool, is the naive loops' bits:
 * dw[k][o] = sum over images i in order of x[i][k] dy[i][o], dx[i][k] =
 * sum over outputs o in order of dy[i][o] w[k][o], db likewise. */
static void test_dense_backward_is_the_naive_loop(void **state)
{
    (void)state;
    static const int dims[][3] = {{5, 1100, 37}, {3, 33, 2100}, {4, 7, 5}, {32, 2048, 32}};
    ae_rng_seed(&rng, 13);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    ae_set_parallel_thresholds(0, 0);
    for (size_t d = 0; d < sizeof dims / sizeof *dims; d++) {
        const int n = dims[d][0], in = dims[d][1], out = dims[d][2];
        float *x = random_floats((size_t)n * in), *w = random_floats((size_t)in * out);
        float *dy = random_floats((size_t)n * out);
        float *dx = malloc((size_t)n * in * sizeof *dx);
        float *dw = malloc((size_t)in * out * sizeof *dw);
        float *db = malloc((size_t)out * sizeof *db);
        assert_non_null(dx), assert_non_null(dw), assert_non_null(db);
        for (int isa = AE_ISA_PORTABLE; isa < AE_ISA_COUNT; isa++) {
            if (!ae_isa_supported(isa))
                continue;
            ae_scratch s;
            memset(&s, 0, sizeof s);
            s.isa = isa;
            s.num_threads = 2;
            s.pool = ae_pool_create(2);
            assert_non_null(s.pool);
            ae_dense_backward(dx, dw, db, dy, x, w, n, in, out, &s);
            ae_pool_free(s.pool);
            for (int k = 0; k < in; k++)
                for (int o = 0; o < out; o++) {
                    float acc = 0.0f;
                    for (int i = 0; i < n; i++)
                        acc = acc + x[(size_t)i * in + k] * dy[(size_t)i * out + o];
                    if (memcmp(&acc, &dw[(size_t)k * out + o], sizeof acc) != 0)
                        fail_msg("%s, %d x %d -> %d: dw[%d][%d] %.9g, the naive loop %.9g",
                                 ae_isa_name(isa), n, in, out, k, o,
                                 (double)dw[(size_t)k * out + o], (double)acc);
                }
            for (int i = 0; i < n; i++)
                for (int k = 0; k < in; k++) {
                    float acc = 0.0f;
                    for (int o = 0; o < out; o++)
                        acc = acc + dy[(size_t)i * out + o] * w[(size_t)k * out + o];
                    if (memcmp(&acc, &dx[(size_t)i * in + k], sizeof acc) != 0)
                        fail_msg("%s, %d x %d -> %d: dx[%d][%d] %.9g, the naive loop %.9g",
                                 ae_isa_name(isa), n, in, out, i, k,
                                 (double)dx[(size_t)i * in + k], (double)acc);
                }
            for (int o = 0; o < out; o++) {
                float acc = 0.0f;
                for (int i = 0; i < n; i++)
                    acc = acc + dy[(size_t)i * out + o];
                if (memcmp(&acc, &db[o], sizeof acc) != 0)
                    fail_msg("%s: db[%d] %.9g, the naive loop %.9g", ae_isa_name(isa), o,
                             (double)db[o], (double)acc);
            }
        }
        free(x), free(w), free(dy), free(dx), free(dw), free(db);
    }
    ae_set_parallel_thresholds(AE_PARALLEL_MACS, AE_PARALLEL_VALUES);
    omp_set_num_threads(saved);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_is_the_naive_loop),
        cmocka_unit_test(test_dense_backward_is_the_naive_loop),
        cmocka_unit_test(test_float32_paths_score_alike),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
