/* Images in memory (aedet/array.h) and ae_fit (aedet/fit.h), under the
 * sanitizers: a data set over pixels is the IDX data set of the same bytes,
 * ae_run_pixels / ae_run_floats give the loader's scores, and bad input is
 * refused with nothing left allocated. tests/python checks the same
 * against the tool, bit for bit. */
#include "aedet.h"
#include "support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { N = 37, SIDE = 8, PER = SIDE * SIDE };

static uint8_t pixels[N * PER];

static void make_pixels(void)
{
    ae_rng rng;
    ae_rng_seed(&rng, 3);
    for (int i = 0; i < N * PER; i++) /* a ramp with noise, every 8th image brighter */
        pixels[i] = (uint8_t)((i % SIDE) * 20 + (int)ae_rng_below(&rng, 50) + (i / PER % 8 == 0) * 60);
}

static void test_dataset_from_pixels(void **state)
{
    (void)state;
    make_pixels();
    int labels[N];
    for (int i = 0; i < N; i++)
        labels[i] = i % 3;
    labels[5] = -1; /* unknown */
    ae_dataset ds;
    ae_error err = {0};
    assert_int_equal(ae_dataset_from_pixels(pixels, N, SIDE, SIDE, 1, labels, &ds, &err), AE_OK);
    pixels[PER + 1] ^= 0xff; /* the data set holds a copy */
    assert_int_equal(ds.count, N);
    assert_int_equal(ds.num_classes, 3);
    assert_int_equal(ds.items[5].label, -1);
    char buf[32];
    assert_string_equal(ae_item_name(&ds.items[7], buf, sizeof buf), "#7");
    ae_image img;
    assert_int_equal(ae_dataset_load(&ds, 1, &img, &err), AE_OK);
    assert_int_equal(img.height * img.width * img.channels, PER);
    assert_int_equal(img.pixels[1], pixels[PER + 1] ^ 0xff);
    ae_image_free(&img);
    ae_dataset_free(&ds);
    pixels[PER + 1] ^= 0xff;

    labels[2] = 70000;
    assert_int_equal(ae_dataset_from_pixels(pixels, N, SIDE, SIDE, 1, labels, &ds, &err), AE_ERR_USAGE);
    assert_int_equal(ae_dataset_from_pixels(pixels, N, SIDE, SIDE, 2, NULL, &ds, &err), AE_ERR_USAGE);
    assert_int_equal(ae_dataset_from_pixels(pixels, 0, SIDE, SIDE, 1, NULL, &ds, &err), AE_ERR_USAGE);
    assert_null(ds.items);
}

/* The scores of every image through a loader, the tool's path. */
static void loader_scores(ae_model *m, const ae_detector *d, const ae_dataset *ds, float *scores)
{
    size_t items[N];
    for (size_t i = 0; i < N; i++)
        items[i] = i;
    const ae_config *c = ae_model_config(m);
    ae_loader_config lc = {.height = c->height, .width = c->width, .channels = c->channels};
    ae_loader *l;
    ae_error err = {0};
    assert_int_equal(ae_loader_create(ds, items, N, &lc, &l, &err), AE_OK);
    assert_int_equal(ae_score_loader_by(m, d, l, 5, scores, NULL, NULL, NULL, &err), AE_OK);
    ae_loader_free(l);
}

static void test_fit_and_run_agree_with_the_loader(void **state)
{
    (void)state;
    make_pixels();
    ae_fit_options o;
    ae_fit_options_init(&o);
    o.epochs = 2;
    o.batch_size = 5; /* 37 images: partial batches everywhere */
    o.score = "ssim"; /* a rule that reads the reconstruction */
    ae_model *m;
    ae_meta *meta;
    ae_detector *d;
    ae_error err = {0};
    assert_int_equal(ae_fit_pixels(pixels, N, SIDE, SIDE, 1, &o, &m, &meta, &err), AE_OK);
    double threshold = 0;
    int64_t epochs = 0;
    assert_true(ae_meta_get_float(meta, AE_KEY_THRESHOLD_VALUE, &threshold) && threshold > 0);
    assert_true(ae_meta_get_int(meta, AE_KEY_EPOCHS_DONE, &epochs) && epochs == 2);
    assert_int_equal(ae_detector_from_meta(meta, ae_model_config(m)->latent_dim, "fit", &d, &err), AE_OK);

    static float scores[N], again[N], from_floats[N], reference[N], recon[N * PER], latents[N * 32], x[N * PER];
    assert_int_equal(ae_run_pixels(m, d, pixels, N, SIDE, SIDE, 1, scores, recon, latents, &err), AE_OK);
    assert_int_equal(ae_run_pixels(m, d, pixels, N, SIDE, SIDE, 1, again, NULL, NULL, &err), AE_OK);
    ae_pixels_to_float(pixels, N * PER, x);
    assert_int_equal(ae_run_floats(m, d, x, N, from_floats, NULL, NULL, &err), AE_OK);
    ae_dataset ds;
    assert_int_equal(ae_dataset_from_pixels(pixels, N, SIDE, SIDE, 1, NULL, &ds, &err), AE_OK);
    loader_scores(m, d, &ds, reference);
    assert_memory_equal(scores, reference, sizeof scores);
    assert_memory_equal(again, reference, sizeof again);
    assert_memory_equal(from_floats, reference, sizeof from_floats);

    /* recon and latents are the model's for these images: encode and
     * decode them again */
    static float z[N * 32], mse[N];
    assert_int_equal(ae_run_pixels(m, NULL, pixels, N, SIDE, SIDE, 1, mse, NULL, NULL, &err), AE_OK);
    for (int i = 0; i < N; i += 4) {
        double sum = 0;
        for (int k = 0; k < PER; k++)
            sum += ((double)x[i * PER + k] - recon[i * PER + k]) * ((double)x[i * PER + k] - recon[i * PER + k]);
        assert_true(fabs(sum / PER - mse[i]) <= 1e-5 * mse[i]);
    }
    assert_int_equal(ae_model_encode(m, x, 5, z, &err), AE_OK);
    assert_true(test_max_rel_error(z, latents, 5 * 32, 1e-3) < 1e-4);

    /* ae_fit on the data set of the same pixels: the same weights */
    ae_model *m2;
    ae_meta *meta2;
    assert_int_equal(ae_fit(&ds, NULL, 0, &o, &m2, &meta2, &err), AE_OK);
    assert_int_equal(ae_model_num_params(m2), ae_model_num_params(m));
    assert_memory_equal(ae_model_params(m2), ae_model_params(m), ae_model_num_params(m) * sizeof(float));
    ae_model_free(m2);
    ae_meta_free(meta2);

    /* images of another size and RGB are prepared as a loader prepares them */
    static uint8_t big[3 * 20 * 12 * 3];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    assert_int_equal(ae_run_pixels(m, NULL, big, 3, 20, 12, 3, scores, NULL, latents, &err), AE_OK);
    assert_true(isfinite(scores[0]) && isfinite(latents[3 * 32 - 1]));

    ae_dataset_free(&ds);
    ae_detector_free(d);
    ae_meta_free(meta);
    ae_model_free(m);
}

static void test_bad_input_is_refused(void **state)
{
    (void)state;
    make_pixels();
    ae_fit_options o;
    ae_fit_options_init(&o);
    o.epochs = 1;
    ae_model *m = (ae_model *)&o, *m2;
    ae_meta *meta = (ae_meta *)&o, *meta2;
    ae_error err = {0};
    o.val_fraction = 1;
    assert_int_equal(ae_fit_pixels(pixels, N, SIDE, SIDE, 1, &o, &m, &meta, &err), AE_ERR_USAGE);
    assert_null(m);
    assert_null(meta);
    o.val_fraction = 0.2;
    o.score = "nonsense";
    assert_int_equal(ae_fit_pixels(pixels, N, SIDE, SIDE, 1, &o, &m, &meta, &err), AE_ERR_USAGE);
    o.score = "mse";
    o.height = 12; /* not a multiple of 2^3 */
    assert_int_equal(ae_fit_pixels(pixels, N, SIDE, SIDE, 1, &o, &m, &meta, &err), AE_ERR_USAGE);
    o.height = 0;
    o.batch_size = 8;
    assert_int_equal(ae_fit_pixels(pixels, N, SIDE, SIDE, 1, &o, &m2, &meta2, &err), AE_OK);
    static float x[N * PER], scores[N];
    ae_pixels_to_float(pixels, N * PER, x);
    x[PER + 5] = NAN;
    assert_int_equal(ae_run_floats(m2, NULL, x, N, scores, NULL, NULL, &err), AE_ERR_DATA);
    assert_non_null(strstr(err.message, "image 1 "));
    assert_int_equal(ae_run_pixels(m2, NULL, pixels, N, SIDE, SIDE, 4, scores, NULL, NULL, &err), AE_ERR_USAGE);
    ae_model_free(m2);
    ae_meta_free(meta2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dataset_from_pixels),
        cmocka_unit_test(test_fit_and_run_agree_with_the_loader),
        cmocka_unit_test(test_bad_input_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
