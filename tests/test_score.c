/* The score rules (src/score): error maps, smoothing, SSIM, detail and the
 * reductions against scipy and numpy (tests/fixtures/score_reference.txt from
 * tools/score_reference.py), nearest-neighbour distances against numpy, and
 * the detector's rule names, scores and model-file round trip. */
#include "aedet.h"
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every number on a fixture line after its key, into a growing array. */
static size_t read_values(const char *line, double **v, size_t *cap)
{
    const char *p = line;
    while (*p && *p != ' ')
        p++;
    size_t n = 0;
    for (;;) {
        char *end;
        double d = strtod(p, &end);
        if (end == p)
            break;
        if (n == *cap) {
            *cap = *cap ? 2 * *cap : 1024;
            *v = realloc(*v, *cap * sizeof **v);
            assert_non_null(*v);
        }
        (*v)[n++] = d;
        p = end;
    }
    return n;
}

static void to_floats(const double *v, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (float)v[i];
}

/* |a - b| <= tol * max(|b|, floor), each value; names the first that is not. */
static void expect_close(const char *what, const char *name, const float *a, const double *b, size_t n,
                         double tol, double floor)
{
    for (size_t i = 0; i < n; i++) {
        double scale = fabs(b[i]) > floor ? fabs(b[i]) : floor;
        if (!(fabs(a[i] - b[i]) <= tol * scale))
            fail_msg("%s of %s: value %zu is %.9g, the reference %.9g", what, name, i, a[i], b[i]);
    }
}

typedef struct {
    char name[64];
    int h, w, c;
    double sigma, top;
    float *x, *r, *map, *scratch;
} image_case;

static void check_image_line(image_case *k, const char *key, const double *v, size_t n)
{
    size_t hw = (size_t)k->h * (size_t)k->w;
    if (!strcmp(key, "x") || !strcmp(key, "r")) {
        assert_int_equal(n, hw * (size_t)k->c);
        to_floats(v, n, key[0] == 'x' ? k->x : k->r);
        return;
    }
    if (!strcmp(key, "detail")) {
        double d = ae_image_detail(k->x, k->h, k->w, k->c);
        if (!(fabs(d - v[0]) <= 1e-9 * fabs(v[0])))
            fail_msg("detail of %s: %.12g, the reference %.12g", k->name, d, v[0]);
        return;
    }
    /* Each remaining line starts from the squared-error map. */
    ae_squared_error_map(k->x, k->r, k->h, k->w, k->c, k->map);
    if (!strcmp(key, "sqmap")) {
        assert_int_equal(n, hw);
        expect_close("squared-error map", k->name, k->map, v, n, 1e-6, 1e-9);
        return;
    }
    ae_gaussian_blur(k->map, k->h, k->w, k->sigma, k->scratch);
    if (!strcmp(key, "blur")) {
        assert_int_equal(n, hw);
        expect_close("smoothed map", k->name, k->map, v, n, 1e-5, 1e-6);
    } else if (!strcmp(key, "max")) {
        float m = ae_map_max(k->map, hw);
        expect_close("max", k->name, &m, v, 1, 1e-5, 1e-6);
    } else if (!strcmp(key, "top")) {
        float m = ae_map_top_mean(k->map, hw, k->top);
        expect_close("top mean", k->name, &m, v, 1, 1e-5, 1e-6);
    } else if (!strcmp(key, "resize")) {
        int rh = (int)v[0], rw = (int)v[1];
        assert_int_equal(n, 2 + (size_t)rh * (size_t)rw);
        float *out = malloc((size_t)rh * (size_t)rw * sizeof *out);
        assert_non_null(out);
        ae_map_resize(k->map, k->h, k->w, out, rh, rw);
        expect_close("resized map", k->name, out, v + 2, n - 2, 1e-5, 1e-6);
        free(out);
    } else if (!strcmp(key, "ssim")) {
        assert_int_equal(n, hw);
        ae_ssim_map(k->x, k->r, k->h, k->w, k->c, AE_SSIM_WINDOW, k->map, k->scratch);
        /* (co)variances as differences of float32 moments: 1e-3 relative,
         * and 1 - SSIM is near 0 where the images agree: an absolute floor */
        expect_close("1 - SSIM", k->name, k->map, v, n, 1e-3, 1e-2);
    } else
        fail_msg("%s: unknown fixture line '%s'", k->name, key);
}

typedef struct {
    char name[64];
    size_t n, m;
    int d, k;
    float *q, *ref;
} knn_case;

static void check_knn_line(knn_case *k, const char *key, const double *v, size_t n)
{
    if (!strcmp(key, "q")) {
        assert_int_equal(n, k->n * (size_t)k->d);
        to_floats(v, n, k->q);
    } else if (!strcmp(key, "ref")) {
        assert_int_equal(n, k->m * (size_t)k->d);
        to_floats(v, n, k->ref);
    } else if (!strcmp(key, "out")) {
        assert_int_equal(n, k->n);
        float *out = malloc(k->n * sizeof *out);
        assert_non_null(out);
        ae_error err;
        assert_int_equal(ae_knn_mean_distance(k->q, k->n, k->ref, k->m, k->d, k->k, out, &err), AE_OK);
        /* distances from the |q|^2 - 2qr + |r|^2 expansion: float32 cancellation */
        expect_close("k-NN mean distance", k->name, out, v, n, 1e-4, 1e-2);
        free(out);
    } else
        fail_msg("%s: unknown fixture line '%s'", k->name, key);
}

static void test_maps_and_knn_match_scipy_and_numpy(void **state)
{
    (void)state;
    const char *path = test_fixture("score_reference.txt");
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s", path);
    char *line = NULL;
    size_t cap = 0, vcap = 0;
    double *v = NULL;
    image_case img = {0};
    knn_case kc = {0};
    int in_image = 0, in_knn = 0, images = 0, knns = 0, checks = 0;
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = 0;
        if (line[0] == '#' || !line[0])
            continue;
        char key[32] = "";
        sscanf(line, "%31s", key);
        if (!strcmp(key, "image")) {
            assert_int_equal(sscanf(line, "image %63s %d %d %d %lf %lf", img.name, &img.h, &img.w, &img.c,
                                    &img.sigma, &img.top), 6);
            size_t hw = (size_t)img.h * (size_t)img.w;
            img.x = malloc(hw * (size_t)img.c * sizeof(float));
            img.r = malloc(hw * (size_t)img.c * sizeof(float));
            img.map = malloc(hw * sizeof(float));
            img.scratch = malloc(ae_ssim_scratch_floats(img.h, img.w) * sizeof(float));
            assert_true(img.x && img.r && img.map && img.scratch);
            assert_true(ae_ssim_scratch_floats(img.h, img.w) >= ae_blur_scratch_floats(img.h, img.w));
            in_image = 1;
        } else if (!strcmp(key, "knn")) {
            assert_int_equal(sscanf(line, "knn %63s %zu %zu %d %d", kc.name, &kc.n, &kc.m, &kc.d, &kc.k), 5);
            kc.q = malloc(kc.n * (size_t)kc.d * sizeof(float));
            kc.ref = malloc(kc.m * (size_t)kc.d * sizeof(float));
            assert_true(kc.q && kc.ref);
            in_knn = 1;
        } else if (!strcmp(key, "end")) {
            if (in_image) {
                free(img.x), free(img.r), free(img.map), free(img.scratch);
                images++;
            } else {
                free(kc.q), free(kc.ref);
                knns++;
            }
            in_image = in_knn = 0;
        } else {
            size_t n = read_values(line, &v, &vcap);
            assert_true(in_image || in_knn);
            if (in_image)
                check_image_line(&img, key, v, n);
            else
                check_knn_line(&kc, key, v, n);
            checks++;
        }
    }
    free(line);
    free(v);
    fclose(f);
    assert_int_equal(images, 6);
    assert_int_equal(knns, 3);
    assert_int_equal(checks, 6 * 10 + 3 * 3);
}

/* The selection behind topk on the cases a quickselect gets wrong: all
 * equal, sorted either way, one outlier, k = 1 and k = n. */
static void test_top_mean_on_hard_orders(void **state)
{
    (void)state;
    enum { N = 101 };
    float v[N];
    for (int pass = 0; pass < 4; pass++) {
        for (int i = 0; i < N; i++)
            v[i] = pass == 0 ? 0.5f : pass == 1 ? (float)i : pass == 2 ? (float)(N - i) : (i == 37 ? 9.0f : 1.0f);
        float expect_top1 = pass == 0 ? 0.5f : pass == 3 ? 9.0f : (float)(pass == 1 ? N - 1 : N);
        float copy[N];
        memcpy(copy, v, sizeof v);
        assert_float_equal(ae_map_top_mean(copy, N, 0.5), expect_top1, 0);
        memcpy(copy, v, sizeof v);
        double sum = 0;
        for (int i = 0; i < N; i++)
            sum += v[i];
        assert_float_equal(ae_map_top_mean(copy, N, 100), (float)(sum / N), 1e-4);
        /* 10% of 101 is 11 values: for 0..100, 90..100 */
        memcpy(copy, v, sizeof v);
        if (pass == 1)
            assert_float_equal(ae_map_top_mean(copy, N, 10), 95.0f, 1e-5);
    }
}

static void test_rule_names_parse_and_print_back(void **state)
{
    (void)state;
    const char *names[] = {"mse", "max", "topk:1", "topk:0.5", "ssim", "relative", "latent-knn", "combined"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        ae_score_rule r;
        char buf[32];
        assert_int_equal(ae_score_rule_parse(names[i], &r, NULL), AE_OK);
        assert_string_equal(ae_score_rule_name(&r, buf, sizeof buf), names[i]);
    }
    const char *bad[] = {"", "MSE", "topk", "topk:", "topk:0", "topk:101", "topk:1x", "max:2", "ssim2", "mse:"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ae_score_rule r;
        ae_error err;
        assert_int_equal(ae_score_rule_parse(bad[i], &r, &err), AE_ERR_USAGE);
        assert_non_null(strstr(err.message, "latent-knn"));
    }
}

/* Two images (a flat one and one with a defect), scored by a detector that
 * holds a reference: each rule gives what its definition says, computed
 * here from the pieces, and survives a trip through model metadata. */
static void test_detector_rules_and_meta_round_trip(void **state)
{
    (void)state;
    enum { H = 8, W = 8, D = 2, R = 40 };
    ae_config cfg;
    ae_config_init(&cfg, H, W, 1);
    cfg.latent_dim = D;
    float x[2 * H * W], r[2 * H * W], lat[2 * D] = {0.1f, 0.2f, 3.0f, -1.0f}, ref[R * D], mse[2];
    for (int i = 0; i < H * W; i++) {
        x[i] = 0.5f, r[i] = 0.5f + (i == 9 ? 0.4f : 0.0f);
        x[H * W + i] = (float)(i % W) / W, r[H * W + i] = x[H * W + i] + 0.05f;
    }
    for (int i = 0; i < R * D; i++)
        ref[i] = (float)((i * 7) % 11) / 11.0f;
    for (int k = 0; k < 2; k++) {
        double s = 0;
        for (int i = 0; i < H * W; i++)
            s += (double)(x[k * H * W + i] - r[k * H * W + i]) * (x[k * H * W + i] - r[k * H * W + i]);
        mse[k] = (float)(s / (H * W));
    }
    ae_error err;
    ae_score_rule rule;
    ae_detector *d;
    float scores[2], expect[2], knn[2];
    assert_int_equal(ae_knn_mean_distance(lat, 2, ref, R, D, 2 /* 5% of 40 */, knn, &err), AE_OK);

    ae_score_rule_parse("latent-knn", &rule, NULL);
    assert_int_equal(ae_detector_create(&rule, &d, &err), AE_OK);
    assert_false(ae_detector_ready(d));
    assert_int_equal(ae_detector_score(d, &cfg, x, r, lat, mse, 2, scores, &err), AE_ERR_USAGE);
    assert_int_equal(ae_detector_set_reference(d, ref, R, D, 0, &err), AE_OK);
    assert_true(ae_detector_ready(d));
    assert_int_equal(ae_detector_score(d, &cfg, x, r, lat, mse, 2, scores, &err), AE_OK);
    assert_memory_equal(scores, knn, sizeof knn);

    /* relative: mse over the detail (0 for the flat image: the floor) */
    ae_score_rule_parse("relative", &rule, NULL);
    ae_detector_set_rule(d, &rule);
    assert_int_equal(ae_detector_score(d, &cfg, x, r, lat, mse, 2, scores, &err), AE_OK);
    for (int k = 0; k < 2; k++)
        expect[k] = (float)(mse[k] / (ae_image_detail(x + k * H * W, H, W, 1) + 1e-3));
    assert_memory_equal(scores, expect, sizeof expect);
    assert_float_equal(expect[0], mse[0] / 1e-3, 1e-3 * mse[0] / 1e-3);

    /* combined: standardized on "held-out" images, here the same two */
    ae_score_rule_parse("combined", &rule, NULL);
    ae_detector_set_rule(d, &rule);
    assert_false(ae_detector_ready(d));
    assert_int_equal(ae_detector_calibrate(d, &cfg, x, mse, r, lat, 2, &err), AE_OK);
    assert_int_equal(ae_detector_score(d, &cfg, x, r, lat, mse, 2, scores, &err), AE_OK);
    /* two values standardized with ddof 0 are -1 and +1 */
    float s0 = expect[0] > expect[1] ? 1.0f : -1.0f, s1 = knn[0] > knn[1] ? 1.0f : -1.0f;
    assert_float_equal(scores[0], s0 + s1, 1e-5);
    assert_float_equal(scores[1], -s0 - s1, 1e-5);

    /* max: the smoothed map's largest value, at the defect */
    ae_score_rule_parse("max", &rule, NULL);
    rule.sigma = 1.0;
    ae_detector_set_rule(d, &rule);
    assert_int_equal(ae_detector_score(d, &cfg, x, r, lat, mse, 2, scores, &err), AE_OK);
    float map[H * W], scratch[6 * H * W];
    ae_squared_error_map(x, r, H, W, 1, map);
    ae_gaussian_blur(map, H, W, 1.0, scratch);
    assert_float_equal(scores[0], ae_map_max(map, H * W), 0);
    assert_true(scores[0] > mse[0] * 2);

    /* the metadata keeps the rule, the reference and the standardization */
    ae_meta *meta = ae_meta_new();
    assert_non_null(meta);
    assert_int_equal(ae_detector_to_meta(d, meta, &err), AE_OK);
    ae_detector *back;
    assert_int_equal(ae_detector_from_meta(meta, D, "m", &back, &err), AE_OK);
    float again[2];
    assert_int_equal(ae_detector_score(back, &cfg, x, r, lat, mse, 2, again, &err), AE_OK);
    assert_memory_equal(again, scores, sizeof again);
    ae_score_rule_parse("combined", &rule, NULL);
    ae_detector_set_rule(d, &rule);
    ae_detector_set_rule(back, &rule);
    assert_int_equal(ae_detector_score(d, &cfg, x, r, lat, mse, 2, scores, &err), AE_OK);
    assert_int_equal(ae_detector_score(back, &cfg, x, r, lat, mse, 2, again, &err), AE_OK);
    assert_memory_equal(again, scores, sizeof again);
    ae_detector_free(back);

    /* damaged entries are bad model files, not crashes */
    const double bad_cal[4] = {0, 0, 0, 1};
    assert_int_equal(ae_meta_set_doubles(meta, AE_KEY_SCORE_CALIBRATION, bad_cal, 4, &err), AE_OK);
    assert_int_equal(ae_detector_from_meta(meta, D, "m", &back, &err), AE_ERR_FORMAT);
    assert_non_null(strstr(err.message, AE_KEY_SCORE_CALIBRATION));
    assert_int_equal(ae_meta_set_floats(meta, AE_KEY_SCORE_REFERENCE, ref, 3, &err), AE_OK);
    assert_int_equal(ae_detector_from_meta(meta, D, "m", &back, &err), AE_ERR_FORMAT);
    assert_int_equal(ae_meta_set_str(meta, AE_KEY_SCORE_RULE, "bogus", &err), AE_OK);
    assert_int_equal(ae_detector_from_meta(meta, D, "m", &back, &err), AE_ERR_FORMAT);
    ae_meta_free(meta);

    /* a model file without score.rule is an mse model */
    meta = ae_meta_new();
    assert_int_equal(ae_detector_from_meta(meta, D, "m", &back, &err), AE_OK);
    assert_int_equal(ae_detector_rule(back)->kind, AE_SCORE_MSE);
    assert_int_equal(ae_detector_score(back, &cfg, x, r, lat, mse, 2, scores, &err), AE_OK);
    assert_memory_equal(scores, mse, sizeof mse);
    ae_detector_free(back);
    ae_meta_free(meta);
    ae_detector_free(d);
}

/* More reference latents than a model keeps: a seeded sample of them, in
 * their order, the same for the same seed. */
static void test_reference_is_a_seeded_sample(void **state)
{
    (void)state;
    size_t n = AE_DETECTOR_MAX_REFERENCE + 500;
    float *lat = malloc(n * sizeof *lat);
    assert_non_null(lat);
    for (size_t i = 0; i < n; i++)
        lat[i] = (float)i;
    ae_score_rule rule;
    ae_score_rule_init(&rule, AE_SCORE_LATENT_KNN);
    ae_detector *a, *b;
    ae_error err;
    assert_int_equal(ae_detector_create(&rule, &a, &err), AE_OK);
    assert_int_equal(ae_detector_create(&rule, &b, &err), AE_OK);
    assert_int_equal(ae_detector_set_reference(a, lat, n, 1, 7, &err), AE_OK);
    assert_int_equal(ae_detector_set_reference(b, lat, n, 1, 7, &err), AE_OK);
    ae_meta *ma = ae_meta_new(), *mb = ae_meta_new();
    assert_int_equal(ae_detector_to_meta(a, ma, &err), AE_OK);
    assert_int_equal(ae_detector_to_meta(b, mb, &err), AE_OK);
    size_t ka, kb;
    const float *ra = ae_meta_get_floats(ma, AE_KEY_SCORE_REFERENCE, &ka);
    const float *rb = ae_meta_get_floats(mb, AE_KEY_SCORE_REFERENCE, &kb);
    assert_int_equal(ka, AE_DETECTOR_MAX_REFERENCE);
    assert_int_equal(kb, ka);
    assert_memory_equal(ra, rb, ka * sizeof *ra);
    for (size_t i = 1; i < ka; i++)
        assert_true(ra[i] > ra[i - 1]);
    assert_true(ra[ka - 1] > (float)AE_DETECTOR_MAX_REFERENCE); /* not just the first ones */
    ae_meta_free(ma), ae_meta_free(mb);
    ae_detector_free(a), ae_detector_free(b);
    free(lat);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maps_and_knn_match_scipy_and_numpy),
        cmocka_unit_test(test_top_mean_on_hard_orders),
        cmocka_unit_test(test_rule_names_parse_and_print_back),
        cmocka_unit_test(test_detector_rules_and_meta_round_trip),
        cmocka_unit_test(test_reference_is_a_seeded_sample),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
