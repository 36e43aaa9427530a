/* The whole model through the public API of aedet/nn.h: gradients, config
 * checks, determinism, NaN handling, the scoring path, encode/decode,
 * BatchNorm modes and a short training run. */
#include "support.h"

#include "aedet/nn.h"
#include "nn/model_hooks.h" /* forward, loss, backward, Adam step, layer outputs */
#include "nn/kernels/direct.h" /* ae_direct_set_band */
#include "nn/kernels/isa.h"    /* ae_isa_supported */
#include "nn/layers.h" /* ae_set_parallel_thresholds */

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* 8x8x2 images, filters (2, 3), latent 3: every layer kind, ~440 parameters. */
static void tiny_config(ae_config *cfg)
{
    ae_config_init(cfg, 8, 8, 2);
    cfg->num_filters = 2;
    cfg->filters[0] = 2;
    cfg->filters[1] = 3;
    cfg->latent_dim = 3;
}

static float *random_images(int n, size_t d, uint64_t seed)
{
    ae_rng rng;
    ae_rng_seed(&rng, seed);
    float *x = malloc((size_t)n * d * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < (size_t)n * d; i++)
        x[i] = (float)ae_rng_uniform(&rng);
    return x;
}

static ae_model *tiny_model(int max_batch, uint64_t seed)
{
    ae_config cfg;
    tiny_config(&cfg);
    ae_model *m = NULL;
    ae_error err;
    if (ae_model_create(&cfg, max_batch, &m, &err) != AE_OK)
        fail_msg("create: %s", err.message);
    ae_model_init_weights(m, seed);
    return m;
}

static const size_t image_floats = 8 * 8 * 2;

/* Signs of every LeakyReLU output (the same as its input's, slope > 0), so
 * that a finite difference straddling a kink can be recognised and skipped
 * (ggml's test-backend-ops does the same). Returns how many signs differ from
 * ref (NULL: just records into out). */
static size_t leaky_signs(ae_model *m, int n, unsigned char *out, const unsigned char *ref)
{
    size_t k = 0, flips = 0;
    for (int i = 0; i < ae_model_num_layers(m); i++) {
        const char *name = ae_model_layer_name(m, i);
        if (!strstr(name, ".leaky"))
            continue;
        size_t per_image;
        const float *y = ae_model_layer_output(m, i, &per_image);
        for (size_t j = 0; j < (size_t)n * per_image; j++, k++) {
            unsigned char sign = y[j] > 0;
            if (ref)
                flips += sign != ref[k];
            else
                out[k] = sign;
        }
    }
    return flips;
}

/* Whole-model central differences on the loss in training mode, h = 1e-3.
 * Tolerance |numeric - analytic| <= 1e-2 * max(|numeric|, |analytic|) + 1e-4:
 * the float32 forward's noise in the loss (~1e-8, a mean of 256 squared
 * errors) is ~1e-5 in the slope, and the O(h^2) curvature error of
 * BatchNorm/sigmoid ~1e-4 relative, both well inside; gradients are
 * ~1e-3..1e-1. Parameters whose +-h move flips any LeakyReLU input across
 * its kink are skipped (the slope there is one-sided); they must stay few. */
static void test_model_gradient_matches_finite_differences(void **state)
{
    (void)state;
    const int n = 2;
    const float h = 1e-3f;
    ae_model *m = tiny_model(n, 11);
    float *x = random_images(n, image_floats, 5);
    ae_error err;
    assert_int_equal(ae_model_forward(m, x, n, AE_MODE_TRAIN, &err), AE_OK);
    unsigned char *signs = malloc(n * 4096);
    assert_non_null(signs);
    leaky_signs(m, n, signs, NULL);
    assert_int_equal(ae_model_backward(m, x, n, &err), AE_OK);
    size_t np = ae_model_num_params(m);
    float *params = ae_model_params(m);
    float *analytic = malloc(np * sizeof *analytic);
    assert_non_null(analytic);
    memcpy(analytic, ae_model_grads(m), np * sizeof *analytic);
    int failures = 0, nonzero = 0, skipped = 0;
    for (size_t j = 0; j < np; j++) {
        float saved = params[j];
        params[j] = saved + h;
        double up = params[j];
        ae_model_forward(m, x, n, AE_MODE_TRAIN, &err);
        float loss_up, loss_down;
        assert_int_equal(ae_model_loss(m, x, n, NULL, &loss_up, &err), AE_OK);
        double l_up = loss_up;
        size_t flips = leaky_signs(m, n, NULL, signs);
        params[j] = saved - h;
        double down = params[j];
        ae_model_forward(m, x, n, AE_MODE_TRAIN, &err);
        assert_int_equal(ae_model_loss(m, x, n, NULL, &loss_down, &err), AE_OK);
        double l_down = loss_down;
        flips += leaky_signs(m, n, NULL, signs);
        params[j] = saved;
        if (flips) {
            skipped++;
            continue;
        }
        double numeric = (l_up - l_down) / (up - down);
        double tol = 1e-2 * fmax(fabs(numeric), fabs(analytic[j])) + 1e-4;
        nonzero += fabs(analytic[j]) > 1e-3;
        if (!(fabs(numeric - analytic[j]) <= tol)) {
            print_message("param %zu: analytic %.6g numeric %.6g\n", j, (double)analytic[j],
                          numeric);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
    assert_true(skipped < (int)np / 10);
    assert_true(nonzero > (int)np / 4); /* the check is not vacuous */
    free(signs);
    free(analytic);
    free(x);
    ae_model_free(m);
}

static void expect_usage_error(const ae_config *cfg, int batch, const char *needle)
{
    ae_error err;
    ae_error_clear(&err);
    assert_int_equal(ae_config_check(cfg, batch, &err), AE_ERR_USAGE);
    if (!strstr(err.message, needle))
        fail_msg("message \"%s\" does not mention \"%s\"", err.message, needle);
    ae_model *m = (ae_model *)1;
    assert_int_equal(ae_model_create(cfg, batch, &m, &err), AE_ERR_USAGE);
    assert_null(m);
}

static void test_config_check_rejects_bad_configs(void **state)
{
    (void)state;
    ae_config cfg;
    ae_error err;
    ae_config_init(&cfg, 32, 32, 3);
    assert_int_equal(ae_config_check(&cfg, 32, &err), AE_OK);
    assert_int_equal(cfg.filters[2], 64);
    assert_int_equal(cfg.latent_dim, 32);

    ae_config bad = cfg;
    bad.height = 0;
    expect_usage_error(&bad, 32, "0x32");
    bad = cfg;
    bad.channels = 5;
    expect_usage_error(&bad, 32, "5 channels");
    bad = cfg;
    bad.num_filters = 0;
    expect_usage_error(&bad, 32, "0 convolution");
    bad.num_filters = AE_MAX_FILTERS + 1;
    expect_usage_error(&bad, 32, "9 convolution");
    bad = cfg;
    bad.filters[1] = -4;
    expect_usage_error(&bad, 32, "filters[1] = -4");
    bad = cfg;
    bad.latent_dim = 0;
    expect_usage_error(&bad, 32, "latent size 0");
    bad = cfg;
    bad.height = 36; /* 36 / 8 is not whole */
    expect_usage_error(&bad, 32, "36x32 is not divisible by 2^3 = 8");
    expect_usage_error(&cfg, 0, "batch size 0");
    bad = cfg;
    bad.bn_epsilon = 0;
    expect_usage_error(&bad, 32, "epsilon");
    bad = cfg;
    bad.height = bad.width = 4096;
    expect_usage_error(&bad, 64, "GiB");
    bad.height = bad.width = 65536; /* one image's layer over 2^31 values */
    expect_usage_error(&bad, 1, "GEMM");
}

static void test_flops_and_tensor_table(void **state)
{
    (void)state;
    /* 8x8x1, filters (2), latent 3, by hand in multiply-adds:
     * conv 4*4*9*1*2 = 288, dense 32*3 twice = 192, deconv 4*4*9*2*2 = 576,
     * output deconv 8*8*9*2*1 = 1152: 2208 MACs = 4416 FLOPs. */
    ae_config cfg;
    ae_config_init(&cfg, 8, 8, 1);
    cfg.num_filters = 1;
    cfg.filters[0] = 2;
    cfg.latent_dim = 3;
    assert_float_equal(ae_config_forward_flops(&cfg), 4416, 0);

    ae_model *m = tiny_model(2, 1);
    size_t params = 0, state_size = 0;
    for (int i = 0; i < ae_model_num_tensors(m); i++) {
        const ae_tensor_info *t = ae_model_tensor(m, i);
        size_t size = 1;
        for (int k = 0; k < t->ndim; k++)
            size *= (size_t)t->shape[k];
        assert_int_equal(size, t->size);
        /* Tensors tile their buffers in table order. */
        assert_int_equal(t->offset, t->is_state ? state_size : params);
        *(t->is_state ? &state_size : &params) += t->size;
        assert_int_equal(ae_model_find_tensor(m, t->name), i);
    }
    assert_int_equal(params, ae_model_num_params(m));
    assert_int_equal(state_size, ae_model_num_state(m));
    const ae_tensor_info *t = ae_model_tensor(m, ae_model_find_tensor(m, "enc1.conv.kernel"));
    assert_non_null(t);
    int expect_conv[4] = {3, 3, 2, 3}; /* (3, 3, in, out) */
    assert_memory_equal(t->shape, expect_conv, sizeof expect_conv);
    t = ae_model_tensor(m, ae_model_find_tensor(m, "dec1.deconv.kernel"));
    int expect_deconv[4] = {3, 3, 2, 3}; /* (3, 3, out, in): 3 -> 2 filters */
    assert_memory_equal(t->shape, expect_deconv, sizeof expect_deconv);
    t = ae_model_tensor(m, ae_model_find_tensor(m, "enc.dense.kernel"));
    assert_int_equal(t->shape[0], 2 * 2 * 3);
    assert_int_equal(t->shape[1], 3);
    t = ae_model_tensor(m, ae_model_find_tensor(m, "out.deconv.kernel"));
    int expect_out[4] = {3, 3, 2, 2};
    assert_memory_equal(t->shape, expect_out, sizeof expect_out);
    assert_true(ae_model_tensor(m, ae_model_find_tensor(m, "dec0.bn.moving_var"))->is_state);
    assert_int_equal(ae_model_find_tensor(m, "enc2.conv.kernel"), -1);

    static const char *names[] = {"enc0.conv", "enc0.leaky", "enc0.bn", "enc1.conv",
                                  "enc1.leaky", "enc1.bn", "enc.dense", "dec.dense",
                                  "dec0.deconv", "dec0.leaky", "dec0.bn", "dec1.deconv",
                                  "dec1.leaky", "dec1.bn", "out.deconv", "out.sigmoid"};
    assert_int_equal(ae_model_num_layers(m), 16);
    for (int i = 0; i < 16; i++)
        assert_string_equal(ae_model_layer_name(m, i), names[i]);
    size_t count;
    assert_non_null(ae_model_layer_output(m, 8, &count));
    assert_int_equal(count, 4 * 4 * 3);
    assert_true(ae_model_memory_bytes(m) > 4 * 4 * params);
    ae_model_free(m);
}

/* Glorot-uniform kernels within +-sqrt(6 / (fan_in + fan_out)), and Keras'
 * constants elsewhere. */
static void test_init_weights_follow_keras(void **state)
{
    (void)state;
    ae_model *m = tiny_model(1, 3);
    const float *p = ae_model_params(m), *st = ae_model_state(m);
    const ae_tensor_info *t = ae_model_tensor(m, ae_model_find_tensor(m, "enc1.conv.kernel"));
    double limit = sqrt(6.0 / (9 * 2 + 9 * 3)), max_abs = 0;
    for (size_t j = 0; j < t->size; j++)
        max_abs = fmax(max_abs, fabs(p[t->offset + j]));
    assert_true(max_abs <= limit && max_abs > 0.7 * limit);
    t = ae_model_tensor(m, ae_model_find_tensor(m, "dec.dense.kernel"));
    limit = sqrt(6.0 / (3 + 12));
    for (size_t j = 0; j < t->size; j++)
        assert_true(fabs(p[t->offset + j]) <= limit);
    assert_float_equal(p[ae_model_tensor(m, ae_model_find_tensor(m, "enc0.bn.gamma"))->offset], 1, 0);
    assert_float_equal(p[ae_model_tensor(m, ae_model_find_tensor(m, "enc0.conv.bias"))->offset], 0, 0);
    assert_float_equal(st[ae_model_tensor(m, ae_model_find_tensor(m, "dec1.bn.moving_var"))->offset], 1, 0);
    assert_float_equal(st[ae_model_tensor(m, ae_model_find_tensor(m, "dec1.bn.moving_mean"))->offset], 0, 0);
    ae_model_free(m);
}

/* Trains `steps` steps with `threads` threads; returns a copy of the weights. */
static float *train_copy(int threads, int steps, uint64_t seed)
{
    int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    ae_model *m = tiny_model(4, seed);
    float *x = random_images(4, image_floats, 99);
    ae_adam_config adam;
    ae_adam_config_init(&adam, 1e-2f, 50);
    ae_error err;
    for (int s = 0; s < steps; s++)
        if (ae_model_train_step(m, &adam, x, 4, NULL, &err) != AE_OK)
            fail_msg("%s", err.message);
    size_t np = ae_model_num_params(m), ns = ae_model_num_state(m);
    float *copy = malloc((np + ns) * sizeof *copy);
    assert_non_null(copy);
    memcpy(copy, ae_model_params(m), np * sizeof *copy);
    memcpy(copy + np, ae_model_state(m), ns * sizeof *copy);
    assert_int_equal(ae_model_iterations(m), steps);
    ae_model_free(m);
    free(x);
    omp_set_num_threads(saved);
    return copy;
}

static void test_same_seed_gives_identical_weights(void **state)
{
    (void)state;
    ae_model *probe = tiny_model(1, 0);
    size_t bytes = (ae_model_num_params(probe) + ae_model_num_state(probe)) * sizeof(float);
    ae_model_free(probe);
    float *a = train_copy(2, 3, 7), *b = train_copy(2, 3, 7), *c = train_copy(1, 3, 7);
    float *d = train_copy(2, 3, 8);
    assert_memory_equal(a, b, bytes);
    /* Per-image partial sums reduced in image order: thread count does not matter. */
    assert_memory_equal(a, c, bytes);
    assert_memory_not_equal(a, d, bytes);
    /* The tiny model runs every pass on one thread by default (its work is under
     * the thresholds); with the thresholds at zero every pass is parallel, and
     * the weights stay the same bits. */
    ae_set_parallel_thresholds(0, 0);
    float *e = train_copy(2, 3, 7), *f = train_copy(3, 3, 7);
    ae_set_parallel_thresholds(AE_PARALLEL_MACS, AE_PARALLEL_VALUES);
    assert_memory_equal(a, e, bytes);
    assert_memory_equal(a, f, bytes);
    free(a), free(b), free(c), free(d), free(e), free(f);
}

static void test_nan_input_fails_and_keeps_weights(void **state)
{
    (void)state;
    ae_model *m = tiny_model(2, 4);
    float *x = random_images(2, image_floats, 6);
    ae_adam_config adam;
    ae_adam_config_init(&adam, 1e-3f, 0);
    ae_error err;
    float loss;
    assert_int_equal(ae_model_train_step(m, &adam, x, 2, &loss, &err), AE_OK);
    size_t np = ae_model_num_params(m), ns = ae_model_num_state(m);
    float *before = malloc((2 * np + ns) * sizeof *before);
    assert_non_null(before);
    memcpy(before, ae_model_params(m), np * sizeof(float));
    memcpy(before + np, ae_model_adam_m(m), np * sizeof(float));
    memcpy(before + 2 * np, ae_model_state(m), ns * sizeof(float));
    x[17] = NAN;
    assert_int_equal(ae_model_train_step(m, &adam, x, 2, &loss, &err), AE_ERR_NUMERIC);
    assert_non_null(strstr(err.message, "training step 2"));
    assert_memory_equal(before, ae_model_params(m), np * sizeof(float));
    assert_memory_equal(before + np, ae_model_adam_m(m), np * sizeof(float));
    assert_memory_equal(before + 2 * np, ae_model_state(m), ns * sizeof(float));
    assert_int_equal(ae_model_iterations(m), 1);
    /* An update that would not be finite (here from a corrupted first moment)
     * is refused the same way. */
    x[17] = 0.5f;
    ae_model_adam_m(m)[5] = INFINITY;
    assert_int_equal(ae_model_train_step(m, &adam, x, 2, &loss, &err), AE_ERR_NUMERIC);
    assert_non_null(strstr(err.message, "updated weights"));
    assert_memory_equal(before, ae_model_params(m), np * sizeof(float));
    /* And a batch over the model's size is a usage error. */
    assert_int_equal(ae_model_train_step(m, &adam, x, 3, &loss, &err), AE_ERR_USAGE);
    free(before);
    free(x);
    ae_model_free(m);
}

static void test_score_encode_decode_agree(void **state)
{
    (void)state;
    const int n = 3;
    ae_model *m = tiny_model(n, 8);
    float *x = random_images(n, image_floats, 2);
    ae_adam_config adam;
    ae_adam_config_init(&adam, 1e-2f, 0);
    ae_error err;
    for (int s = 0; s < 3; s++) /* moving statistics away from 0 and 1 */
        assert_int_equal(ae_model_train_step(m, &adam, x, n, NULL, &err), AE_OK);

    float errors[3], per_image[3], latent[9];
    float *recon = malloc(n * image_floats * sizeof *recon);
    float *decoded = malloc(n * image_floats * sizeof *decoded);
    assert_non_null(recon);
    assert_non_null(decoded);
    assert_int_equal(ae_model_score(m, x, n, errors, recon, &err), AE_OK);
    assert_int_equal(ae_model_forward(m, x, n, AE_MODE_INFER, &err), AE_OK);
    float loss;
    assert_int_equal(ae_model_loss(m, x, n, per_image, &loss, &err), AE_OK);
    assert_memory_equal(errors, per_image, sizeof errors);
    assert_float_equal(loss, (per_image[0] + per_image[1] + per_image[2]) / 3, 1e-6);
    /* The model's loss (per-image sums on the pool) is the layer function's, to the bit. */
    float reference[3];
    double batch = ae_mse_forward(ae_model_output(m), x, n, image_floats, reference);
    assert_memory_equal(per_image, reference, sizeof reference);
    assert_true(loss == (float)batch);
    assert_memory_equal(recon, ae_model_output(m), n * image_floats * sizeof(float));
    /* The output layer under the sigmoid is not stored: looked at, it is
     * recomputed, and the sigmoid of it is the model's output. */
    const int out = ae_model_num_layers(m) - 2;
    size_t per_image_floats;
    const float *pre = ae_model_layer_output(m, out, &per_image_floats);
    assert_non_null(pre);
    assert_int_equal(per_image_floats, image_floats);
    for (size_t k = 0; k < n * image_floats; k++) {
        float e = expf(-fabsf(pre[k]));
        float want = pre[k] >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
        assert_float_equal(recon[k], want, 1e-6);
    }
    /* Scoring one image alone gives the same bits as inside a batch. */
    float alone;
    assert_int_equal(ae_model_score(m, x + image_floats, 1, &alone, NULL, &err), AE_OK);
    assert_memory_equal(&alone, &errors[1], sizeof alone);

    assert_int_equal(ae_model_encode(m, x, n, latent, &err), AE_OK);
    assert_int_equal(ae_model_decode(m, latent, n, decoded, &err), AE_OK);
    assert_memory_equal(decoded, recon, n * image_floats * sizeof(float));
    assert_memory_equal(latent, ae_model_latent(m), sizeof latent);
    assert_int_equal(ae_model_encode(m, x, 0, latent, &err), AE_ERR_USAGE);
    free(recon), free(decoded), free(x);
    ae_model_free(m);
}


/* The largest |a - b| over a parameter tensor, relative to b's largest |b|,
 * the worst over the model's tensors; a and b laid out as the parameters. */
static double worst_tensor_diff(const ae_model *m, const float *a, const float *b)
{
    double worst = 0;
    for (int t = 0; ae_model_tensor(m, t); t++) {
        const ae_tensor_info *ti = ae_model_tensor(m, t);
        if (ti->is_state)
            continue;
        double diff = 0, scale = 0;
        for (size_t i = ti->offset; i < ti->offset + ti->size; i++) {
            diff = fmax(diff, fabs((double)a[i] - (double)b[i]));
            scale = fmax(scale, fabs((double)b[i]));
        }
        worst = fmax(worst, scale > 0 ? diff / scale : diff);
    }
    return worst;
}

/* A training step runs the output layer, its sigmoid, the loss and their
 * backward as one pass (the training head) on the direct kernels, which
 * leaves its input gradient for the transposed convolution under it to make
 * and takes that BatchNorm's sums from sums of dy xhat. Against the steps
 * run apart (ae_model_forward, ae_model_loss, ae_model_backward,
 * ae_model_adam_step), over three steps, on every ISA the CPU has, for the
 * tiny model and the tutorial's at 64x64x3 (several bands): the first
 * step's loss, output and BatchNorm statistics are the same bits (the same
 * forward); each step's gradients are within 1e-5 of each tensor's largest
 * (the same sums, in another order), and the later steps' losses within
 * 1e-5 (not the weights: Adam's first steps move a weight by the learning
 * rate whatever the size of its gradient, and turn a gradient of the order
 * of the rounding into a whole step). The portable path, which has no head,
 * gives the same bits in all. */
static void test_train_step_matches_separate_steps(void **state)
{
    (void)state;
    static const char *isas[] = {"portable", "avx2", "avx512"};
    char *saved_isa = test_env_save("AEDET_ISA");
    for (int big = 0; big <= 1; big++)
        for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
            setenv("AEDET_ISA", isas[k], 1);
            const int n = 2;
            ae_config cfg;
            if (big)
                ae_config_init(&cfg, 64, 64, 3);
            else
                tiny_config(&cfg);
            const size_t d = (size_t)cfg.height * cfg.width * cfg.channels;
            ae_model *m[2];
            ae_error err;
            for (int j = 0; j < 2; j++) {
                if (ae_model_create(&cfg, n, &m[j], &err) != AE_OK)
                    fail_msg("create: %s", err.message);
                ae_model_init_weights(m[j], 11);
            }
            float *x = random_images(n, d, 12);
            ae_adam_config adam;
            ae_adam_config_init(&adam, 1e-2f, 0);
            const int exact = k == 0;
            for (int step = 0; step < 3; step++) {
                float loss[2];
                assert_int_equal(ae_model_train_step(m[0], &adam, x, n, &loss[0], &err), AE_OK);
                assert_int_equal(ae_model_forward(m[1], x, n, AE_MODE_TRAIN, &err), AE_OK);
                assert_int_equal(ae_model_loss(m[1], x, n, NULL, &loss[1], &err), AE_OK);
                assert_int_equal(ae_model_backward(m[1], x, n, &err), AE_OK);
                const double grads = worst_tensor_diff(m[0], ae_model_grads(m[0]),
                                                       ae_model_grads(m[1]));
                ae_model_adam_step(m[1], &adam);
                const size_t np = ae_model_num_params(m[0]);
                const int same_forward =
                    !memcmp(&loss[0], &loss[1], sizeof(float)) &&
                    !memcmp(ae_model_state(m[0]), ae_model_state(m[1]),
                            ae_model_num_state(m[0]) * sizeof(float)) &&
                    !memcmp(ae_model_output(m[0]), ae_model_output(m[1]), n * d * sizeof(float));
                const int same_rest =
                    !memcmp(ae_model_grads(m[0]), ae_model_grads(m[1]), np * sizeof(float)) &&
                    !memcmp(ae_model_params(m[0]), ae_model_params(m[1]), np * sizeof(float)) &&
                    !memcmp(ae_model_adam_m(m[0]), ae_model_adam_m(m[1]), np * sizeof(float)) &&
                    !memcmp(ae_model_adam_v(m[0]), ae_model_adam_v(m[1]), np * sizeof(float));
                if (((exact || step == 0) && !same_forward) || (exact && !same_rest) ||
                    !(grads <= 1e-5) || !(fabs(loss[0] - loss[1]) <= 1e-5 * loss[1]))
                    fail_msg("%s model, kernels %s, step %d: the training step differs from "
                             "its parts run apart (loss %.9g vs %.9g, gradients %.3g)",
                             big ? "64x64x3" : "tiny", ae_model_kernels(m[0]), step + 1,
                             (double)loss[0], (double)loss[1], grads);
            }
            free(x);
            ae_model_free(m[0]);
            ae_model_free(m[1]);
        }
    test_env_restore("AEDET_ISA", saved_isa);
}

/* Scoring runs the encoder's convolutions and the decoder's transposed
 * convolutions with the output layer depth-first, as two chains
 * (infer_chain.c) that store only their top layer's output: the scores, the
 * latent and the reconstruction are those of the forward pass and the loss
 * run apart, bit for bit, on every ISA the CPU has (the chains run on the
 * vector ones: every convolution but the top of each chain then takes no
 * time of its own), for bands of one row, of three and of the default size,
 * on the tiny model, an oblong one and the tutorial's at 64x64x3. */
static void test_score_chains_match_forward(void **state)
{
    (void)state;
    static const char *isas[] = {"portable", "avx2", "avx512", "amx-bf16"};
    static const int bands[] = {1, 3, 0};
    static const int sizes[][3] = {{0, 0, 0}, {24, 40, 1}, {64, 64, 3}};
    char *saved_isa = test_env_save("AEDET_ISA");
    for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++)
        for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
            setenv("AEDET_ISA", isas[k], 1);
            const int n = 3;
            ae_config cfg;
            if (sizes[z][0])
                ae_config_init(&cfg, sizes[z][0], sizes[z][1], sizes[z][2]);
            else
                tiny_config(&cfg);
            const size_t d = (size_t)cfg.height * cfg.width * cfg.channels;
            ae_model *m;
            ae_error err;
            if (ae_model_create(&cfg, n, &m, &err) != AE_OK)
                fail_msg("create: %s", err.message);
            ae_model_init_weights(m, 21);
            float *x = random_images(n, d, 22);
            ae_adam_config adam;
            ae_adam_config_init(&adam, 1e-2f, 0);
            for (int step = 0; step < 2; step++) /* moving statistics away from 0 and 1 */
                assert_int_equal(ae_model_train_step(m, &adam, x, n, NULL, &err), AE_OK);
            float *recon = malloc(n * d * sizeof *recon), errors[3], want[3];
            float *latent = malloc(n * (size_t)cfg.latent_dim * sizeof *latent);
            assert_non_null(recon);
            assert_non_null(latent);
            const int vector = strcmp(isas[k], "portable") != 0 &&
                               strcmp(ae_model_kernels(m), "portable") != 0;
            for (size_t b = 0; b < sizeof bands / sizeof *bands; b++) {
                ae_direct_set_band(bands[b]);
                ae_model_reset_layer_times(m);
                assert_int_equal(ae_model_score(m, x, n, errors, recon, &err), AE_OK);
                /* the convolutions under each chain's top: all but the last
                 * encoder convolution and the output layer */
                double below_s = 0, last_conv_s = 0;
                for (int l = 0; l < ae_model_num_layers(m); l++) {
                    const char *name = ae_model_layer_name(m, l);
                    double f, unused;
                    ae_model_layer_times(m, l, &f, &unused);
                    if (strstr(name, ".conv")) {
                        below_s += last_conv_s;
                        last_conv_s = f;
                    } else if (strstr(name, ".deconv") && strcmp(name, "out.deconv") != 0) {
                        below_s += f;
                    }
                }
                memcpy(latent, ae_model_latent(m), n * (size_t)cfg.latent_dim * sizeof *latent);
                assert_int_equal(ae_model_forward(m, x, n, AE_MODE_INFER, &err), AE_OK);
                ae_mse_forward(ae_model_output(m), x, n, d, want);
                if (memcmp(errors, want, sizeof errors) ||
                    memcmp(latent, ae_model_latent(m), n * (size_t)cfg.latent_dim * sizeof *latent) ||
                    memcmp(recon, ae_model_output(m), n * d * sizeof(float)))
                    fail_msg("%dx%dx%d, kernels %s, band %d: the score differs from the "
                             "forward's (%.9g vs %.9g)",
                             cfg.height, cfg.width, cfg.channels, ae_model_kernels(m), bands[b],
                             (double)errors[0], (double)want[0]);
                assert_int_equal(below_s == 0.0, vector);
            }
            ae_direct_set_band(0);
            free(latent);
            free(recon);
            free(x);
            ae_model_free(m);
        }
    test_env_restore("AEDET_ISA", saved_isa);
}

/* The tutorial's model at 32x32x1: an image's score is the same, bit for bit,
 * alone or in a batch of 32 (BLAS picks other kernels for other batch sizes;
 * the stored training errors and later scores must still agree). */
static void test_scores_do_not_depend_on_the_batch(void **state)
{
    (void)state;
    const int n = 32;
    const size_t d = 32 * 32;
    ae_config cfg;
    ae_config_init(&cfg, 32, 32, 1);
    ae_model *m;
    ae_error err;
    assert_int_equal(ae_model_create(&cfg, n, &m, &err), AE_OK);
    ae_model_init_weights(m, 5);
    float *x = random_images(n, d, 9);
    ae_adam_config adam;
    ae_adam_config_init(&adam, 1e-3f, 0);
    assert_int_equal(ae_model_train_step(m, &adam, x, n, NULL, &err), AE_OK);
    float batch[32], alone, seven[7];
    assert_int_equal(ae_model_score(m, x, n, batch, NULL, &err), AE_OK);
    int dense = -1;
    for (int l = 0; l < ae_model_num_layers(m); l++)
        if (!strcmp(ae_model_layer_name(m, l), "enc.dense"))
            dense = l;
    size_t latent_count;
    float latent0[32];
    memcpy(latent0, ae_model_layer_output(m, dense, &latent_count), sizeof latent0);
    assert_int_equal(latent_count, 32);
    assert_int_equal(ae_model_score(m, x, 1, &alone, NULL, &err), AE_OK);
    assert_memory_equal(latent0, ae_model_layer_output(m, dense, &latent_count), sizeof latent0);
    for (int i = 0; i < n; i += 5) {
        assert_int_equal(ae_model_score(m, x + (size_t)i * d, 1, &alone, NULL, &err), AE_OK);
        assert_memory_equal(&alone, &batch[i], sizeof alone);
    }
    assert_int_equal(ae_model_score(m, x + 3 * d, 7, seven, NULL, &err), AE_OK);
    assert_memory_equal(seven, batch + 3, sizeof seven);
    free(x);
    ae_model_free(m);
}

static void test_inference_uses_moving_statistics(void **state)
{
    (void)state;
    const int n = 2;
    ae_model *m = tiny_model(n, 9);
    float *x = random_images(n, image_floats, 3);
    ae_error err;
    size_t d = image_floats * n;
    float *train_out = malloc(d * sizeof *train_out), *infer_out = malloc(d * sizeof *infer_out);
    assert_non_null(train_out);
    assert_non_null(infer_out);
    assert_int_equal(ae_model_forward(m, x, n, AE_MODE_TRAIN, &err), AE_OK);
    memcpy(train_out, ae_model_output(m), d * sizeof(float));

    /* Keras' update of enc0.bn from the batch it saw (its input is enc0.leaky):
     * moving_mean = 0.01 mean, moving_var = 0.99 + 0.01 unbiased variance. */
    size_t per_image;
    const float *leaky = ae_model_layer_output(m, 1, &per_image);
    const float *st = ae_model_state(m);
    size_t mm = ae_model_tensor(m, ae_model_find_tensor(m, "enc0.bn.moving_mean"))->offset;
    size_t mv = ae_model_tensor(m, ae_model_find_tensor(m, "enc0.bn.moving_var"))->offset;
    for (int ch = 0; ch < 2; ch++) {
        double sum = 0, sq = 0;
        size_t count = n * per_image / 2;
        for (size_t j = ch; j < n * per_image; j += 2)
            sum += leaky[j];
        double mean = sum / count;
        for (size_t j = ch; j < n * per_image; j += 2)
            sq += (leaky[j] - mean) * (leaky[j] - mean);
        assert_float_equal(st[mm + ch], 0.01 * mean, 1e-6);
        assert_float_equal(st[mv + ch], 0.99 + 0.01 * sq / (count - 1), 1e-6);
    }

    float *state_before = malloc(ae_model_num_state(m) * sizeof(float));
    assert_non_null(state_before);
    memcpy(state_before, st, ae_model_num_state(m) * sizeof(float));
    assert_int_equal(ae_model_forward(m, x, n, AE_MODE_INFER, &err), AE_OK);
    memcpy(infer_out, ae_model_output(m), d * sizeof(float));
    assert_memory_not_equal(train_out, infer_out, d * sizeof(float));
    /* Inference leaves the statistics alone and repeats exactly. */
    assert_memory_equal(state_before, st, ae_model_num_state(m) * sizeof(float));
    assert_int_equal(ae_model_forward(m, x, n, AE_MODE_INFER, &err), AE_OK);
    assert_memory_equal(infer_out, ae_model_output(m), d * sizeof(float));
    free(train_out), free(infer_out), free(state_before), free(x);
    ae_model_free(m);
}

static void test_loss_goes_down_with_adam(void **state)
{
    (void)state;
    const int n = 4;
    ae_model *m = tiny_model(n, 12);
    float *x = random_images(n, image_floats, 13);
    ae_adam_config adam;
    ae_adam_config_init(&adam, 1e-2f, 0);
    ae_error err;
    float first = 0, loss = 0;
    for (int s = 0; s < 20; s++) {
        assert_int_equal(ae_model_train_step(m, &adam, x, n, &loss, &err), AE_OK);
        if (s == 0)
            first = loss;
    }
    assert_true(loss < 0.8f * first);
    free(x);
    ae_model_free(m);
}

/* The opt-in bfloat16 mode. Where the CPU has neither AMX tiles nor
 * AVX512-BF16 (as the library detects them), or the model runs the portable
 * or avx2 kernels (AEDET_ISA), it is refused with a usage error that says
 * which, and the model keeps its kernels. Where it has them, the tutorial's
 * model at 64x64x3 (whose middle layers take the tiles or the bfloat16 dot
 * products; amx-bf16 where both are) trains along float32's path from the
 * same weights: every step's loss within 1% of float32's, yet not the same
 * bits (the tiles ran), and the scores after training within 1%. */
static void test_bf16_tracks_float32(void **state)
{
    (void)state;
    enum { N = 4, STEPS = 6 };
    ae_config cfg;
    ae_config_init(&cfg, 64, 64, 3);
    const size_t d = 64 * 64 * 3;
    ae_model *f, *b;
    ae_error err;
    assert_int_equal(ae_model_create(&cfg, N, &f, &err), AE_OK);
    assert_int_equal(ae_model_create(&cfg, N, &b, &err), AE_OK);
    ae_model_init_weights(f, 31);
    ae_model_init_weights(b, 31);
    ae_status st = ae_model_set_bf16(b, 1, &err);
    const char *refusal = ae_isa_bf16() == AE_ISA_PORTABLE ? "neither AVX512-BF16"
                          : strcmp(ae_model_kernels(f), "portable") == 0
                              ? "the model runs the portable kernels"
                          : strcmp(ae_model_kernels(f), "avx2") == 0
                              ? "the model runs the avx2 kernels"
                              : NULL;
    if (refusal) {
        assert_int_equal(st, AE_ERR_USAGE);
        if (!strstr(err.message, refusal))
            fail_msg("expected \"%s\" in the refusal: %s", refusal, err.message);
        assert_string_equal(ae_model_kernels(b), ae_model_kernels(f));
        print_message("skipped after the refusal (%s)\n", err.message);
    } else {
        assert_int_equal(st, AE_OK);
        assert_string_equal(ae_model_kernels(b), ae_isa_name(ae_isa_bf16()));
        float *x = random_images(N, d, 32);
        ae_adam_config adam;
        ae_adam_config_init(&adam, 1e-3f, 0);
        for (int step = 0; step < STEPS; step++) {
            float lf, lb;
            assert_int_equal(ae_model_train_step(f, &adam, x, N, &lf, &err), AE_OK);
            assert_int_equal(ae_model_train_step(b, &adam, x, N, &lb, &err), AE_OK);
            if (!(fabsf(lb - lf) <= 0.01f * lf) || (step == 0 && lb == lf))
                fail_msg("step %d: loss %.7g in bfloat16, %.7g in float32", step, (double)lb,
                         (double)lf);
        }
        float sf[N], sb[N];
        assert_int_equal(ae_model_score(f, x, N, sf, NULL, &err), AE_OK);
        assert_int_equal(ae_model_score(b, x, N, sb, NULL, &err), AE_OK);
        for (int i = 0; i < N; i++)
            if (!(fabsf(sb[i] - sf[i]) <= 0.01f * sf[i]))
                fail_msg("image %d: score %.7g in bfloat16, %.7g in float32", i, (double)sb[i],
                         (double)sf[i]);
        /* back to float32 on the avx512 kernels (src/nn/model.c), which both
         * bfloat16 modes build on */
        assert_int_equal(ae_model_set_bf16(b, 0, &err), AE_OK);
        assert_string_equal(ae_model_kernels(b), "avx512");
        free(x);
    }
    ae_model_free(f);
    ae_model_free(b);
}

/* Keras' legacy decay: lr_t = lr / (1 + decay * iterations before the step). */
static void test_adam_step_uses_time_decay(void **state)
{
    (void)state;
    ae_model *m = tiny_model(1, 2);
    size_t np = ae_model_num_params(m);
    float *w0 = malloc(np * sizeof *w0);
    assert_non_null(w0);
    memcpy(w0, ae_model_params(m), np * sizeof *w0);
    float *g = ae_model_grads(m);
    for (size_t j = 0; j < np; j++)
        g[j] = 0.5f;
    ae_adam_config adam;
    ae_adam_config_init(&adam, 1e-3f, 50);
    assert_float_equal(adam.decay, 1e-3f / 50, 1e-12);
    assert_float_equal(adam.epsilon, 1e-7f, 0);
    ae_model_set_iterations(m, 10);
    ae_model_adam_step(m, &adam);
    assert_int_equal(ae_model_iterations(m), 11);
    double lr_t = 1e-3 / (1 + 1e-3 / 50 * 10), mi = 0.1 * 0.5, vi = 0.001 * 0.25;
    double step = lr_t * sqrt(1 - pow(0.999, 11)) / (1 - pow(0.9, 11)) * mi / (sqrt(vi) + 1e-7);
    for (size_t j = 0; j < np; j++)
        assert_float_equal(ae_model_params(m)[j], w0[j] - step, 1e-6);
    free(w0);
    ae_model_free(m);
}

/* The loss and the backward refuse, writing nothing, what they cannot use:
 * no images, a count that is not the last forward's, and (the backward) a
 * forward that was not in training mode. */
static void test_loss_and_backward_check_their_arguments(void **state)
{
    (void)state;
    const int n = 2;
    ae_model *m = tiny_model(n, 8);
    float *x = random_images(n, image_floats, 5);
    ae_error err;
    float loss = -1, per_image[2] = {-1, -1};
    assert_int_equal(ae_model_loss(m, x, n, per_image, &loss, &err), AE_ERR_USAGE); /* no forward */
    assert_int_equal(ae_model_forward(m, x, n, AE_MODE_INFER, &err), AE_OK);
    assert_int_equal(ae_model_loss(m, NULL, n, per_image, &loss, &err), AE_ERR_USAGE);
    assert_int_equal(ae_model_loss(NULL, x, n, per_image, &loss, &err), AE_ERR_USAGE);
    assert_int_equal(ae_model_loss(m, x, 1, per_image, &loss, &err), AE_ERR_USAGE);
    assert_int_equal(ae_model_loss(m, x, 3, per_image, &loss, &err), AE_ERR_USAGE);
    assert_true(loss == -1 && per_image[0] == -1 && per_image[1] == -1);
    assert_int_equal(ae_model_backward(m, x, n, &err), AE_ERR_USAGE);
    assert_non_null(strstr(err.message, "training mode"));
    assert_int_equal(ae_model_loss(m, x, n, per_image, &loss, &err), AE_OK);
    assert_true(loss >= 0 && per_image[0] >= 0 && per_image[1] >= 0);
    assert_int_equal(ae_model_forward(m, x, n, AE_MODE_TRAIN, &err), AE_OK);
    assert_int_equal(ae_model_backward(m, x, 1, &err), AE_ERR_USAGE);
    assert_int_equal(ae_model_backward(m, NULL, n, &err), AE_ERR_USAGE);
    assert_int_equal(ae_model_backward(m, x, n, &err), AE_OK);
    free(x);
    ae_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_gradient_matches_finite_differences),
        cmocka_unit_test(test_config_check_rejects_bad_configs),
        cmocka_unit_test(test_flops_and_tensor_table),
        cmocka_unit_test(test_init_weights_follow_keras),
        cmocka_unit_test(test_same_seed_gives_identical_weights),
        cmocka_unit_test(test_nan_input_fails_and_keeps_weights),
        cmocka_unit_test(test_score_encode_decode_agree),
        cmocka_unit_test(test_train_step_matches_separate_steps),
        cmocka_unit_test(test_score_chains_match_forward),
        cmocka_unit_test(test_scores_do_not_depend_on_the_batch),
        cmocka_unit_test(test_inference_uses_moving_statistics),
        cmocka_unit_test(test_loss_goes_down_with_adam),
        cmocka_unit_test(test_adam_step_uses_time_decay),
        cmocka_unit_test(test_loss_and_backward_check_their_arguments),
        cmocka_unit_test(test_bf16_tracks_float32),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
