/* The C model against PyTorch: tests/fixtures/torch_ref.bin, written by
 * tools/torch_reference.py (its header documents the format and the arrays),
 * holds a 16x16x3 model with filters (4, 8) and latent 5, its weights, a batch
 * of 3 images, and float64 results: every layer's output, the loss, every
 * gradient, the BatchNorm moving statistics, the weights after 3 Adam steps,
 * a 20-step loss trajectory and the inference output after it.
 *
 * The measure, for each array: max |c - ref| / max(|ref|, FLOOR * rms(ref)),
 * at most TOLERANCE. The reference is float64; we compute in float32, whose
 * unit roundoff is 6e-8. Sums of up to ~150 products, BatchNorm's division by
 * a batch standard deviation and the mean over the batch leave absolute
 * errors near 1e-6 x the array's scale (measured: PyTorch itself in float32
 * lands within 1.3e-5 of the reference under this measure, see the script's
 * output). Elements far below the array's scale carry that same absolute
 * error, so they are compared against a floor of 0.1 x rms instead of their
 * own tiny magnitude, which would measure only cancellation noise. */
#include "support.h"

#include "aedet/nn.h"
#include "nn/model_hooks.h" /* forward, loss, backward, Adam step, layer outputs */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLOOR 0.1
#define TOLERANCE 1e-4
#define DELTA_TOLERANCE 1e-3
#define MAX_CHANNELS 256

/* ------------------------------------------------------------ fixture reader */

typedef struct {
    char name[64];
    int ndim;
    uint32_t dims[4];
    size_t count;
    float *data;
} fx_array;

typedef struct {
    fx_array *arrays;
    int count;
} fixture;

static uint32_t read_u32(FILE *f, const char *what)
{
    unsigned char b[4];
    if (fread(b, 1, 4, f) != 4)
        fail_msg("torch_ref.bin: truncated reading %s", what);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void fixture_load(fixture *fx, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (run from the repo root, or set AEDET_FIXTURES)", path);
    char magic[4];
    assert_int_equal(fread(magic, 1, 4, f), 4);
    assert_memory_equal(magic, "AEFX", 4);
    assert_int_equal(read_u32(f, "version"), 1);
    uint32_t count = read_u32(f, "count");
    assert_true(count > 0 && count < 10000);
    fx->arrays = calloc(count, sizeof *fx->arrays);
    assert_non_null(fx->arrays);
    fx->count = (int)count;
    for (uint32_t i = 0; i < count; i++) {
        fx_array *a = &fx->arrays[i];
        uint32_t len = read_u32(f, "a name length");
        assert_true(len > 0 && len < sizeof a->name);
        assert_int_equal(fread(a->name, 1, len, f), len);
        a->ndim = (int)read_u32(f, a->name);
        assert_true(a->ndim >= 1 && a->ndim <= 4);
        a->count = 1;
        for (int d = 0; d < a->ndim; d++) {
            a->dims[d] = read_u32(f, a->name);
            assert_true(a->dims[d] > 0 && a->dims[d] < (1u << 20));
            a->count *= a->dims[d];
        }
        assert_true(a->count < (1u << 22));
        a->data = malloc(a->count * sizeof(float));
        assert_non_null(a->data);
        unsigned char *bytes = (unsigned char *)a->data;
        if (fread(bytes, sizeof(float), a->count, f) != a->count)
            fail_msg("torch_ref.bin: truncated in %s", a->name);
        for (size_t k = 0; k < a->count; k++) { /* little endian on disk */
            unsigned char *p = bytes + 4 * k;
            uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                         (uint32_t)p[3] << 24;
            memcpy(p, &u, 4);
        }
    }
    assert_int_equal(fgetc(f), EOF);
    fclose(f);
}

static void fixture_free(fixture *fx)
{
    for (int i = 0; i < fx->count; i++)
        free(fx->arrays[i].data);
    free(fx->arrays);
}

static const fx_array *fixture_find(const fixture *fx, const char *name)
{
    for (int i = 0; i < fx->count; i++)
        if (strcmp(fx->arrays[i].name, name) == 0)
            return &fx->arrays[i];
    return NULL;
}

static const fx_array *fixture_get(const fixture *fx, const char *name)
{
    const fx_array *a = fixture_find(fx, name);
    if (!a)
        fail_msg("torch_ref.bin has no array named %s", name);
    return a;
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ------------------------------------------------------------ comparison */

typedef struct {
    int compared, failed;
    double worst;
    char worst_name[64];
} tally;

static double error_vs_reference(const float *got, const float *want, size_t n)
{
    double sq = 0;
    for (size_t i = 0; i < n; i++)
        sq += (double)want[i] * want[i];
    double floor = FLOOR * sqrt(sq / (double)n);
    return test_max_rel_error(got, want, n, floor > 1e-30 ? floor : 1e-30);
}

static void compare_within(tally *t, const char *name, const float *got, const float *want,
                           size_t n, double tolerance)
{
    double e = error_vs_reference(got, want, n);
    t->compared++;
    if (!(e <= tolerance)) {
        print_message("MISMATCH %-28s worst relative error %.3g (tolerance %g)\n", name, e,
                      tolerance);
        t->failed++;
    }
    if (!(e <= t->worst)) {
        t->worst = e;
        snprintf(t->worst_name, sizeof t->worst_name, "%s", name);
    }
}

static void compare(tally *t, const char *name, const float *got, const fx_array *want, size_t n)
{
    if (n != want->count) {
        print_message("%s: %zu values, the reference has %zu\n", name, n, want->count);
        t->failed++;
        return;
    }
    compare_within(t, name, got, want->data, n, TOLERANCE);
}

static void finish(const tally *t, const char *what)
{
    print_message("%s: %d arrays within %g, worst %.3g (%s)\n", what, t->compared, TOLERANCE,
                  t->worst, t->worst_name);
    assert_true(t->compared > 0);
    assert_int_equal(t->failed, 0);
}

/* ------------------------------------------------------------ model setup */

typedef struct {
    fixture fx;
    ae_model *model;
    ae_adam_config adam;
    const float *x;
    int n;
} setup;

static void setup_model(setup *s)
{
    memset(s, 0, sizeof *s);
    fixture_load(&s->fx, test_fixture("torch_ref.bin"));

    const fx_array *c = fixture_get(&s->fx, "config/model");
    ae_config cfg;
    ae_config_init(&cfg, (int)c->data[0], (int)c->data[1], (int)c->data[2]);
    cfg.num_filters = (int)c->data[3];
    assert_true(cfg.num_filters > 0 && (size_t)cfg.num_filters + 8 == c->count);
    for (int i = 0; i < cfg.num_filters; i++)
        cfg.filters[i] = (int)c->data[4 + i];
    cfg.latent_dim = (int)c->data[4 + cfg.num_filters];
    cfg.leaky_slope = c->data[5 + cfg.num_filters];
    cfg.bn_momentum = c->data[6 + cfg.num_filters];
    cfg.bn_epsilon = c->data[7 + cfg.num_filters];

    const fx_array *a = fixture_get(&s->fx, "config/adam");
    assert_int_equal(a->count, 5);
    s->adam = (ae_adam_config){.learning_rate = a->data[0],
                               .beta1 = a->data[1],
                               .beta2 = a->data[2],
                               .epsilon = a->data[3],
                               .decay = a->data[4]};

    const fx_array *x = fixture_get(&s->fx, "input");
    s->x = x->data;
    s->n = (int)x->dims[0];

    ae_error err;
    ae_error_clear(&err);
    if (ae_model_create(&cfg, s->n, &s->model, &err) != AE_OK)
        fail_msg("ae_model_create: %s", err.message);
    assert_int_equal(x->count, (size_t)s->n * cfg.height * cfg.width * cfg.channels);

    /* Every tensor of the model gets its reference value, shape checked, and the
     * fixture holds no parameter that the model lacks. */
    int loaded = 0;
    for (int i = 0; i < ae_model_num_tensors(s->model); i++) {
        const ae_tensor_info *info = ae_model_tensor(s->model, i);
        char key[80];
        snprintf(key, sizeof key, "param/%s", info->name);
        const fx_array *p = fixture_get(&s->fx, key);
        assert_int_equal(p->ndim, info->ndim);
        for (int d = 0; d < info->ndim; d++)
            assert_int_equal(p->dims[d], info->shape[d]);
        assert_int_equal(p->count, info->size);
        assert_int_equal(ae_model_find_tensor(s->model, info->name), i);
        float *base = info->is_state ? ae_model_state(s->model) : ae_model_params(s->model);
        memcpy(base + info->offset, p->data, info->size * sizeof(float));
        loaded++;
    }
    int in_fixture = 0;
    for (int i = 0; i < s->fx.count; i++)
        in_fixture += starts_with(s->fx.arrays[i].name, "param/");
    assert_int_equal(loaded, in_fixture);
}

static void teardown_model(setup *s)
{
    ae_model_free(s->model);
    fixture_free(&s->fx);
}

static void forward_train(setup *s)
{
    ae_error err;
    ae_error_clear(&err);
    if (ae_model_forward(s->model, s->x, s->n, AE_MODE_TRAIN, &err) != AE_OK)
        fail_msg("ae_model_forward: %s", err.message);
}

/* Compares the tensors of the model whose fixture name is prefix + tensor name,
 * trainable ones (from the parameters) or moving statistics (from the state). */
static void compare_tensors(tally *t, setup *s, const char *prefix, int want_state)
{
    for (int i = 0; i < ae_model_num_tensors(s->model); i++) {
        const ae_tensor_info *info = ae_model_tensor(s->model, i);
        if (info->is_state != want_state)
            continue;
        char key[80];
        snprintf(key, sizeof key, "%s%s", prefix, info->name);
        const float *base = want_state ? ae_model_state(s->model) : ae_model_params(s->model);
        compare(t, key, base + info->offset, fixture_get(&s->fx, key), info->size);
    }
}

/* The change of each moving statistic in one step is (1 - momentum) = 1/100
 * of its size, so comparing the new values alone barely sees a wrong update
 * (the biased variance instead of the unbiased one moves the new value by
 * 5e-5). The changes themselves are compared here; they inherit the float32
 * rounding of values 100x larger, hence the 10x looser DELTA_TOLERANCE. */
static void compare_moving_stat_changes(tally *t, setup *s)
{
    for (int i = 0; i < ae_model_num_tensors(s->model); i++) {
        const ae_tensor_info *info = ae_model_tensor(s->model, i);
        if (!info->is_state)
            continue;
        char key[80];
        snprintf(key, sizeof key, "param/%s", info->name);
        const fx_array *before = fixture_get(&s->fx, key);
        snprintf(key, sizeof key, "state1/%s", info->name);
        const fx_array *after = fixture_get(&s->fx, key);
        assert_int_equal(before->count, info->size);
        assert_int_equal(after->count, info->size);
        float got[MAX_CHANNELS], want[MAX_CHANNELS];
        assert_true(info->size <= MAX_CHANNELS);
        const float *now = ae_model_state(s->model) + info->offset;
        for (size_t k = 0; k < info->size; k++) {
            got[k] = now[k] - before->data[k];
            want[k] = after->data[k] - before->data[k];
        }
        snprintf(key, sizeof key, "change of %s", info->name);
        compare_within(t, key, got, want, info->size, DELTA_TOLERANCE);
    }
}

/* ------------------------------------------------------------ tests */

static void test_forward_matches_layer_by_layer(void **state)
{
    (void)state;
    setup s;
    setup_model(&s);
    forward_train(&s);

    tally t = {0};
    int layers_in_fixture = 0;
    for (int i = 0; i < s.fx.count; i++)
        layers_in_fixture += starts_with(s.fx.arrays[i].name, "layer/");
    int matched = 0;
    for (int i = 0; i < ae_model_num_layers(s.model); i++) {
        char key[80];
        snprintf(key, sizeof key, "layer/%s", ae_model_layer_name(s.model, i));
        const fx_array *want = fixture_find(&s.fx, key);
        if (!want) {
            print_message("the C model's layer %s is not in the reference\n", key);
            t.failed++;
            continue;
        }
        size_t per_image = 0;
        const float *got = ae_model_layer_output(s.model, i, &per_image);
        assert_non_null(got);
        compare(&t, key, got, want, per_image * (size_t)s.n);
        matched++;
    }
    /* Every reference layer exists in the C model, so none goes unchecked. */
    assert_int_equal(matched, layers_in_fixture);

    const fx_array *out = fixture_get(&s.fx, "layer/out.sigmoid");
    compare(&t, "output", ae_model_output(s.model), out, out->count);
    const fx_array *lat = fixture_get(&s.fx, "layer/enc.dense");
    compare(&t, "latent", ae_model_latent(s.model), lat, lat->count);

    float per_image[16];
    assert_true(s.n <= 16);
    float loss;
    assert_int_equal(ae_model_loss(s.model, s.x, s.n, per_image, &loss, NULL), AE_OK);
    compare(&t, "loss", &loss, fixture_get(&s.fx, "loss"), 1);
    compare(&t, "per_image", per_image, fixture_get(&s.fx, "per_image"), (size_t)s.n);

    /* One training forward moved the moving statistics Keras' way. */
    compare_tensors(&t, &s, "state1/", 1);
    compare_moving_stat_changes(&t, &s);
    finish(&t, "training forward");
    teardown_model(&s);
}

static void test_gradients_match(void **state)
{
    (void)state;
    setup s;
    setup_model(&s);
    forward_train(&s);
    assert_int_equal(ae_model_backward(s.model, s.x, s.n, NULL), AE_OK);

    tally t = {0};
    for (int i = 0; i < ae_model_num_tensors(s.model); i++) {
        const ae_tensor_info *info = ae_model_tensor(s.model, i);
        if (info->is_state)
            continue;
        char key[80];
        snprintf(key, sizeof key, "grad/%s", info->name);
        compare(&t, key, ae_model_grads(s.model) + info->offset, fixture_get(&s.fx, key),
                info->size);
    }
    finish(&t, "gradients");
    teardown_model(&s);
}

static void test_three_adam_steps_match(void **state)
{
    (void)state;
    setup s;
    setup_model(&s);
    for (int step = 0; step < 3; step++) {
        forward_train(&s);
        assert_int_equal(ae_model_backward(s.model, s.x, s.n, NULL), AE_OK);
        ae_model_adam_step(s.model, &s.adam);
    }
    assert_int_equal(ae_model_iterations(s.model), 3);
    tally t = {0};
    compare_tensors(&t, &s, "adam3/", 0);
    finish(&t, "parameters after 3 Adam steps");
    teardown_model(&s);
}

static void test_training_trajectory_and_inference_match(void **state)
{
    (void)state;
    setup s;
    setup_model(&s);
    const fx_array *want = fixture_get(&s.fx, "traj/loss");
    float losses[64];
    assert_true(want->count <= 64);
    ae_error err;
    ae_error_clear(&err);
    for (size_t step = 0; step < want->count; step++)
        if (ae_model_train_step(s.model, &s.adam, s.x, s.n, &losses[step], &err) != AE_OK)
            fail_msg("ae_model_train_step %zu: %s", step, err.message);
    assert_int_equal(ae_model_iterations(s.model), (int64_t)want->count);

    tally t = {0};
    compare(&t, "traj/loss", losses, want, want->count);
    /* Training must have moved the loss, or the trajectory proves little. */
    assert_true(want->data[want->count - 1] < 0.9f * want->data[0]);
    compare_tensors(&t, &s, "traj/", 0);
    compare_tensors(&t, &s, "traj/", 1);

    /* Inference after training uses the moving statistics. */
    const fx_array *recon_want = fixture_get(&s.fx, "infer/out.sigmoid");
    float *recon = malloc(recon_want->count * sizeof(float));
    assert_non_null(recon);
    float errors[16];
    assert_true(s.n <= 16);
    if (ae_model_score(s.model, s.x, s.n, errors, recon, &err) != AE_OK)
        fail_msg("ae_model_score: %s", err.message);
    compare(&t, "infer/out.sigmoid", recon, recon_want, recon_want->count);
    compare(&t, "infer/per_image", errors, fixture_get(&s.fx, "infer/per_image"), (size_t)s.n);
    free(recon);
    finish(&t, "20 training steps, then inference");
    teardown_model(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_matches_layer_by_layer),
        cmocka_unit_test(test_gradients_match),
        cmocka_unit_test(test_three_adam_steps_match),
        cmocka_unit_test(test_training_trajectory_and_inference_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
