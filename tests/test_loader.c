/* The batch loader: in memory and streamed give the same batches byte for
 * byte, partial last batches, bad-file policies, pixels to floats. */
#include "support.h"

#include "aedet/data.h"
#include "aedet/file.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { NUM_IMAGES = 23, SIDE = 8 };

/* A folder of NUM_IMAGES small PNGs (gray and RGB mixed) with distinct pixels. */
static const char *image_folder(void)
{
    static int made;
    const char *root = test_path("images");
    if (!made) {
        mkdir(root, 0755);
        uint8_t px[SIDE * SIDE * 3];
        for (int i = 0; i < NUM_IMAGES; i++) {
            for (int k = 0; k < (int)sizeof px; k++)
                px[k] = (uint8_t)(i * 11 + k * 7);
            char path[1024];
            snprintf(path, sizeof path, "%s/img%02d.png", root, i);
            test_write_png(path, px, SIDE, SIDE, i % 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                           8);
        }
        made = 1;
    }
    return root;
}

static void open_folder(const char *root, ae_dataset *ds)
{
    ae_source src = {.kind = AE_SOURCE_FOLDER, .root = root};
    ae_error err;
    if (ae_dataset_open(&src, ds, &err) != AE_OK)
        fail_msg("%s", err.message);
}

static size_t *all_items(size_t n)
{
    size_t *v = malloc(n * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = i;
    return v;
}

static ae_loader *create_ok(const ae_dataset *ds, const size_t *items, size_t n,
                            const ae_loader_config *cfg)
{
    ae_loader *l;
    ae_error err;
    if (ae_loader_create(ds, items, n, cfg, &l, &err) != AE_OK)
        fail_msg("loader: %s", err.message);
    return l;
}

/* One epoch of both loaders, compared batch by batch; returns the batches. */
static int compare_epoch(ae_loader *a, ae_loader *b, int batch_size, int shuffle, uint64_t seed,
                         size_t image_bytes, size_t *order_out)
{
    ae_error err;
    assert_int_equal(ae_loader_start(a, batch_size, shuffle, seed, &err), AE_OK);
    assert_int_equal(ae_loader_start(b, batch_size, shuffle, seed, &err), AE_OK);
    int batches = 0;
    size_t seen = 0;
    for (;;) {
        ae_batch x, y;
        assert_int_equal(ae_loader_next(a, &x, &err), AE_OK);
        if (ae_loader_next(b, &y, &err) != AE_OK)
            fail_msg("streamed: %s", err.message);
        assert_int_equal(x.count, y.count);
        if (x.count == 0)
            break;
        assert_memory_equal(x.items, y.items, (size_t)x.count * sizeof *x.items);
        assert_memory_equal(x.pixels, y.pixels, (size_t)x.count * image_bytes);
        if (order_out)
            memcpy(order_out + seen, x.items, (size_t)x.count * sizeof *x.items);
        seen += (size_t)x.count;
        batches++;
    }
    assert_int_equal(seen, ae_loader_count(a));
    return batches;
}

static void test_memory_and_streamed_batches_are_identical(void **state)
{
    (void)state;
    ae_dataset ds;
    open_folder(image_folder(), &ds);
    assert_int_equal(ds.count, NUM_IMAGES);
    size_t *items = all_items(ds.count);
    ae_loader_config mem_cfg = {.height = 5, .width = 6, .channels = 3, .threads = 2};
    ae_loader_config str_cfg = mem_cfg;
    str_cfg.memory_budget = 1; /* forces streaming */
    str_cfg.threads = 3;
    str_cfg.ring_batches = 2;
    ae_loader *mem = create_ok(&ds, items, ds.count, &mem_cfg);
    ae_loader *str = create_ok(&ds, items, ds.count, &str_cfg);
    assert_false(ae_loader_is_streaming(mem));
    assert_true(ae_loader_is_streaming(str));
    size_t image_bytes = 5 * 6 * 3;

    /* In item order first, then shuffled epochs: same seed, same batches. */
    size_t order[NUM_IMAGES], order2[NUM_IMAGES];
    assert_int_equal(compare_epoch(mem, str, 5, 0, 0, image_bytes, order), 5);
    for (size_t i = 0; i < NUM_IMAGES; i++)
        assert_int_equal(order[i], i);
    assert_int_equal(compare_epoch(mem, str, 5, 1, 100, image_bytes, order), 5);
    assert_int_equal(compare_epoch(mem, str, 5, 1, 101, image_bytes, order2), 5);
    assert_true(memcmp(order, order2, sizeof order) != 0); /* a new order each epoch */
    size_t seen[NUM_IMAGES] = {0};
    for (size_t i = 0; i < NUM_IMAGES; i++)
        seen[order2[i]]++;
    for (size_t i = 0; i < NUM_IMAGES; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(compare_epoch(mem, str, 5, 1, 100, image_bytes, order2), 5);
    assert_memory_equal(order, order2, sizeof order);
    /* Another batch size, larger than the ring, and one larger than the set. */
    assert_int_equal(compare_epoch(mem, str, 2, 1, 7, image_bytes, NULL), 12);
    assert_int_equal(compare_epoch(mem, str, 64, 1, 7, image_bytes, NULL), 1);

    assert_int_equal(ae_loader_peak_bytes(str), 2 * NUM_IMAGES * image_bytes);
    assert_int_equal(ae_loader_peak_bytes(mem), 2 * NUM_IMAGES * image_bytes);
    ae_loader_free(mem);
    ae_loader_free(str);
    free(items);
    ae_dataset_free(&ds);
}

static void test_batches_hold_prepared_pixels(void **state)
{
    (void)state;
    ae_dataset ds;
    open_folder(image_folder(), &ds);
    size_t items[3] = {4, 0, 9}; /* a subset, out of order */
    ae_loader_config cfg = {.height = 4, .width = 4, .channels = 1};
    ae_loader *l = create_ok(&ds, items, 3, &cfg);
    ae_error err;
    assert_int_equal(ae_loader_start(l, 2, 0, 0, &err), AE_OK);
    ae_batch b;
    assert_int_equal(ae_loader_next(l, &b, &err), AE_OK);
    assert_int_equal(b.count, 2);
    assert_int_equal(b.items[0], 4);
    assert_int_equal(b.items[1], 0);
    for (int j = 0; j < 2; j++) {
        ae_image img;
        uint8_t want[16];
        assert_int_equal(ae_dataset_load(&ds, b.items[j], &img, &err), AE_OK);
        assert_int_equal(ae_image_prepare(&img, 4, 4, 1, want, &err), AE_OK);
        assert_memory_equal(b.pixels + 16 * j, want, 16);
        ae_image_free(&img);
    }
    assert_int_equal(ae_loader_next(l, &b, &err), AE_OK);
    assert_int_equal(b.count, 1); /* the partial last batch */
    assert_int_equal(b.items[0], 9);
    assert_int_equal(ae_loader_next(l, &b, &err), AE_OK);
    assert_int_equal(b.count, 0);
    assert_null(b.pixels);
    assert_int_equal(ae_loader_next(l, &b, &err), AE_OK); /* stays at the end */
    assert_int_equal(b.count, 0);
    ae_loader_free(l);

    /* next before start, and a bad batch size, are usage errors. */
    l = create_ok(&ds, items, 3, &cfg);
    assert_int_equal(ae_loader_next(l, &b, &err), AE_ERR_USAGE);
    assert_int_equal(ae_loader_start(l, 0, 0, 0, &err), AE_ERR_USAGE);
    ae_loader_free(l);
    ae_dataset_free(&ds);
}

static void test_streamed_epoch_can_be_abandoned(void **state)
{
    (void)state;
    ae_dataset ds;
    open_folder(image_folder(), &ds);
    size_t *items = all_items(ds.count);
    ae_loader_config cfg = {.height = 8, .width = 8, .channels = 3, .memory_budget = 1,
                            .threads = 2, .ring_batches = 3};
    ae_loader *str = create_ok(&ds, items, ds.count, &cfg);
    cfg.memory_budget = 0;
    ae_loader *mem = create_ok(&ds, items, ds.count, &cfg);
    ae_error err;
    ae_batch b;
    /* Stop mid-epoch, start again: the new epoch is whole and right. */
    assert_int_equal(ae_loader_start(str, 3, 1, 5, &err), AE_OK);
    assert_int_equal(ae_loader_next(str, &b, &err), AE_OK);
    assert_int_equal(b.count, 3);
    assert_int_equal(compare_epoch(mem, str, 4, 1, 6, 8 * 8 * 3, NULL), 6);
    /* Freed mid-epoch, with decodes in flight: threads are joined, nothing leaks. */
    assert_int_equal(ae_loader_start(str, 4, 1, 9, &err), AE_OK);
    assert_int_equal(ae_loader_next(str, &b, &err), AE_OK);
    ae_loader_free(str);
    ae_loader_free(mem);
    free(items);
    ae_dataset_free(&ds);
}

/* Ten good 8x8 PNGs of grey 77, bad1.png (not an image, first in order) and
 * good5b.png (a truncated PNG, eighth): root is test_path("with-bad"). */
static void bad_folder(char *root, size_t size)
{
    char path[2048];
    snprintf(root, size, "%s", test_path("with-bad"));
    mkdir(root, 0755);
    uint8_t px[SIDE * SIDE * 3];
    memset(px, 77, sizeof px);
    for (int i = 0; i < 10; i++) {
        snprintf(path, sizeof path, "%s/good%d.png", root, i);
        test_write_png(path, px, SIDE, SIDE, PNG_COLOR_TYPE_RGB, 8);
    }
    snprintf(path, sizeof path, "%s/bad1.png", root); /* sorts before the good ones */
    test_write_file(path, "not an image at all", 19);
    snprintf(path, sizeof path, "%s/good5.png", root); /* and a truncated PNG */
    uint8_t *bytes;
    size_t len;
    ae_error err;
    assert_int_equal(ae_read_file(path, &bytes, &len, &err), AE_OK);
    snprintf(path, sizeof path, "%s/good5b.png", root);
    test_write_file(path, bytes, len / 2);
    free(bytes);
}

static void test_bad_files_stop_or_skip(void **state)
{
    (void)state;
    char root[1024];
    ae_error err;
    bad_folder(root, sizeof root);
    ae_dataset ds;
    open_folder(root, &ds);
    assert_int_equal(ds.count, 12);
    size_t *items = all_items(ds.count);
    char bad1[2048], bad2[2048];
    snprintf(bad1, sizeof bad1, "%s/bad1.png", root);
    snprintf(bad2, sizeof bad2, "%s/good5b.png", root);

    for (int streaming = 0; streaming < 2; streaming++) {
        ae_loader_config cfg = {.height = 4, .width = 4, .channels = 3, .threads = 2,
                                .memory_budget = streaming ? 1 : 0};
        ae_loader *l;
        assert_int_equal(ae_loader_create(&ds, items, ds.count, &cfg, &l, &err), AE_ERR_DATA);
        assert_null(l);
        if (!strstr(err.message, bad1))
            fail_msg("the first bad file is not named: %s", err.message);

        cfg.bad_policy = AE_BAD_SKIP;
        l = create_ok(&ds, items, ds.count, &cfg);
        assert_int_equal(ae_loader_is_streaming(l), streaming);
        assert_int_equal(ae_loader_count(l), 10);
        assert_int_equal(ae_loader_num_bad(l), 2);
        assert_memory_equal(ae_loader_bad(l, 0), bad1, strlen(bad1));
        assert_memory_equal(ae_loader_bad(l, 1), bad2, strlen(bad2));
        assert_non_null(strstr(ae_loader_bad(l, 1), ": "));
        assert_null(ae_loader_bad(l, 2));
        /* Every epoch yields the 10 good ones, each once. */
        for (uint64_t epoch = 0; epoch < 2; epoch++) {
            assert_int_equal(ae_loader_start(l, 3, 1, epoch, &err), AE_OK);
            size_t total = 0;
            ae_batch b;
            do {
                assert_int_equal(ae_loader_next(l, &b, &err), AE_OK);
                for (int j = 0; j < b.count; j++) {
                    assert_null(strstr(ds.items[b.items[j]].path, "bad1"));
                    assert_null(strstr(ds.items[b.items[j]].path, "good5b"));
                    assert_int_equal(b.pixels[48 * j], 77);
                }
                total += (size_t)b.count;
            } while (b.count > 0);
            assert_int_equal(total, 10);
        }
        ae_loader_free(l);
    }
    free(items);
    ae_dataset_free(&ds);
}

/* An epoch's batches, checked: every image good (grey 77) and none of them
 * twice; returns the images, and the first batch's in *first. */
static size_t good_epoch(ae_loader *l, const ae_dataset *ds, int batch_size, int shuffle, int *first)
{
    ae_error err;
    assert_int_equal(ae_loader_start(l, batch_size, shuffle, 3, &err), AE_OK);
    size_t total = 0, seen[16] = {0};
    ae_batch b;
    do {
        if (ae_loader_next(l, &b, &err) != AE_OK)
            fail_msg("%s", err.message);
        assert_true(b.count <= batch_size);
        for (int j = 0; j < b.count; j++) {
            assert_null(strstr(ds->items[b.items[j]].path, "bad1"));
            assert_null(strstr(ds->items[b.items[j]].path, "good5b"));
            assert_int_equal(b.pixels[48 * j], 77);
            assert_int_equal(seen[b.items[j]]++, 0);
        }
        if (total == 0)
            *first = b.count;
        total += (size_t)b.count;
    } while (b.count > 0);
    return total;
}

/* One pass: no check pass at ae_loader_create; the first epoch finds the
 * bad files as it decodes them, with the same outcome as the check pass. */
static void test_one_pass_checks_while_streaming(void **state)
{
    (void)state;
    char root[1024], bad1[2048], bad2[2048];
    bad_folder(root, sizeof root);
    snprintf(bad1, sizeof bad1, "%s/bad1.png", root);
    snprintf(bad2, sizeof bad2, "%s/good5b.png", root);
    ae_dataset ds;
    open_folder(root, &ds);
    size_t *items = all_items(ds.count);
    ae_loader_config cfg = {.height = 4, .width = 4, .channels = 3, .threads = 2, .memory_budget = 1,
                            .ring_batches = 2, .one_pass = 1};
    ae_error err;
    ae_batch b;
    int first;

    /* Stop: created, then the first batch (which holds bad1) fails, naming it. */
    ae_loader *l = create_ok(&ds, items, ds.count, &cfg);
    assert_int_equal(ae_loader_count(l), 12);
    assert_int_equal(ae_loader_start(l, 3, 0, 0, &err), AE_OK);
    assert_int_equal(ae_loader_next(l, &b, &err), AE_ERR_DATA);
    assert_non_null(strstr(err.message, bad1));
    assert_non_null(strstr(err.message, "stopped at the first bad image"));
    ae_loader_free(l);

    /* Skip: the bad ones leave their batches; the epoch's end drops them. */
    cfg.bad_policy = AE_BAD_SKIP;
    l = create_ok(&ds, items, ds.count, &cfg);
    assert_int_equal(ae_loader_num_bad(l), 0);
    assert_int_equal(good_epoch(l, &ds, 3, 0, &first), 10);
    assert_int_equal(first, 2); /* bad1, good0, good1 */
    assert_int_equal(ae_loader_count(l), 10);
    assert_int_equal(ae_loader_num_bad(l), 2);
    assert_memory_equal(ae_loader_bad(l, 0), bad1, strlen(bad1));
    assert_memory_equal(ae_loader_bad(l, 1), bad2, strlen(bad2));
    assert_int_equal(good_epoch(l, &ds, 4, 1, &first), 10); /* later epochs: checked, shuffled */
    assert_int_equal(first, 4);
    assert_int_equal(ae_loader_num_bad(l), 2);
    ae_loader_free(l);

    /* A first epoch cut short: the next start checks every file, once. */
    l = create_ok(&ds, items, ds.count, &cfg);
    assert_int_equal(ae_loader_start(l, 3, 0, 0, &err), AE_OK);
    assert_int_equal(ae_loader_next(l, &b, &err), AE_OK);
    assert_int_equal(b.count, 2);
    assert_int_equal(good_epoch(l, &ds, 5, 1, &first), 10);
    assert_int_equal(ae_loader_count(l), 10);
    assert_int_equal(ae_loader_num_bad(l), 2);
    ae_loader_free(l);

    /* Every file bad: the end of the pass says so. */
    size_t two_bad[2] = {0, 7};
    assert_non_null(strstr(ds.items[7].path, "good5b"));
    l = create_ok(&ds, two_bad, 2, &cfg);
    assert_int_equal(ae_loader_start(l, 3, 0, 0, &err), AE_OK);
    assert_int_equal(ae_loader_next(l, &b, &err), AE_ERR_DATA);
    assert_non_null(strstr(err.message, "all 2 images are bad"));
    ae_loader_free(l);
    free(items);
    ae_dataset_free(&ds);
}

/* One pass over good files gives the batches of the other modes. */
static void test_one_pass_batches_are_identical(void **state)
{
    (void)state;
    ae_dataset ds;
    open_folder(image_folder(), &ds);
    size_t *items = all_items(ds.count);
    ae_loader_config mem_cfg = {.height = 5, .width = 6, .channels = 3, .threads = 2};
    ae_loader_config one_cfg = mem_cfg;
    one_cfg.memory_budget = 1;
    one_cfg.one_pass = 1;
    ae_loader *mem = create_ok(&ds, items, ds.count, &mem_cfg);
    ae_loader *one = create_ok(&ds, items, ds.count, &one_cfg);
    assert_int_equal(compare_epoch(mem, one, 5, 0, 0, 5 * 6 * 3, NULL), 5);
    assert_int_equal(compare_epoch(mem, one, 4, 1, 9, 5 * 6 * 3, NULL), 6);
    ae_loader_free(mem);
    ae_loader_free(one);
    free(items);
    ae_dataset_free(&ds);
}

/* A CSV row naming a missing file, opened with AE_BAD_SKIP, is kept as an item;
 * the loader then treats it like any bad file: listed (by its path) and left
 * out under AE_BAD_SKIP, or named as the reason to stop under AE_BAD_STOP. */
static void test_csv_missing_file_is_a_bad_file(void **state)
{
    (void)state;
    const char *root = image_folder();
    char labels[2048], missing[2048];
    snprintf(labels, sizeof labels, "%s/labels.csv", test_tmpdir());
    snprintf(missing, sizeof missing, "%s/not-there.png", root);
    const char *text = "Filename,Label\nimg00.png,0\nnot-there.png,1\nimg01.png,0\n";
    test_write_file(labels, text, strlen(text));
    ae_source src = {.kind = AE_SOURCE_CSV, .root = root, .labels = labels,
                     .bad_policy = AE_BAD_SKIP};
    ae_dataset ds;
    ae_error err;
    if (ae_dataset_open(&src, &ds, &err) != AE_OK)
        fail_msg("open: %s", err.message);
    assert_int_equal(ds.count, 3);
    size_t *items = all_items(ds.count);
    for (int streaming = 0; streaming < 2; streaming++) {
        ae_loader_config cfg = {.height = 4, .width = 4, .channels = 1, .threads = 2,
                                .memory_budget = streaming ? 1 : 0};
        ae_loader *l;
        assert_int_not_equal(ae_loader_create(&ds, items, ds.count, &cfg, &l, &err), AE_OK);
        assert_null(l);
        if (!strstr(err.message, missing))
            fail_msg("the missing file is not named: %s", err.message);

        cfg.bad_policy = AE_BAD_SKIP;
        l = create_ok(&ds, items, ds.count, &cfg);
        assert_int_equal(ae_loader_count(l), 2);
        assert_int_equal(ae_loader_num_bad(l), 1);
        assert_memory_equal(ae_loader_bad(l, 0), missing, strlen(missing));
        assert_int_equal(ae_loader_bad(l, 0)[strlen(missing)], ':');
        ae_batch b;
        assert_int_equal(ae_loader_start(l, 4, 0, 0, &err), AE_OK);
        assert_int_equal(ae_loader_next(l, &b, &err), AE_OK);
        assert_int_equal(b.count, 2);
        assert_int_equal(b.items[0], 0);
        assert_int_equal(b.items[1], 2);
        ae_loader_free(l);
    }
    free(items);
    ae_dataset_free(&ds);
}

static void test_file_gone_after_check_fails_its_batch(void **state)
{
    (void)state;
    char root[1024], gone[2048];
    snprintf(root, sizeof root, "%s", test_path("vanishing"));
    mkdir(root, 0755);
    uint8_t px[SIDE * SIDE];
    memset(px, 9, sizeof px);
    for (int i = 0; i < 6; i++) {
        snprintf(gone, sizeof gone, "%s/v%d.png", root, i);
        test_write_png(gone, px, SIDE, SIDE, PNG_COLOR_TYPE_GRAY, 8);
    }
    ae_dataset ds;
    open_folder(root, &ds);
    size_t *items = all_items(ds.count);
    ae_loader_config cfg = {.height = 4, .width = 4, .channels = 1, .memory_budget = 1,
                            .threads = 2, .ring_batches = 2};
    ae_loader *l = create_ok(&ds, items, ds.count, &cfg);
    assert_int_equal(unlink(gone), 0); /* v5.png, checked at create, now gone */
    ae_error err;
    assert_int_equal(ae_loader_start(l, 2, 0, 0, &err), AE_OK);
    ae_batch b;
    assert_int_equal(ae_loader_next(l, &b, &err), AE_OK);
    assert_int_equal(ae_loader_next(l, &b, &err), AE_OK);
    assert_int_not_equal(ae_loader_next(l, &b, &err), AE_OK);
    if (!strstr(err.message, gone) || !strstr(err.message, "batch 3"))
        fail_msg("unexpected message: %s", err.message);
    ae_loader_free(l);
    free(items);
    ae_dataset_free(&ds);
}

static void test_idx_items_load_and_resize(void **state)
{
    (void)state;
    /* Three 2x2 gray records, grown to 4x4 RGB: a flat record stays flat. */
    uint8_t file[4 + 12 + 12] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2};
    for (int i = 0; i < 12; i++)
        file[16 + i] = (uint8_t)(50 * (i / 4) + 10);
    char path[1024];
    snprintf(path, sizeof path, "%s", test_path("three.idx"));
    test_write_file(path, file, sizeof file);
    ae_source src = {.kind = AE_SOURCE_IDX, .root = path};
    ae_dataset ds;
    ae_error err;
    assert_int_equal(ae_dataset_open(&src, &ds, &err), AE_OK);
    size_t items[3] = {2, 1, 0};
    ae_loader_config cfg = {.height = 4, .width = 4, .channels = 3, .memory_budget = 1};
    ae_loader *l = create_ok(&ds, items, 3, &cfg);
    assert_int_equal(ae_loader_start(l, 8, 0, 0, &err), AE_OK);
    ae_batch b;
    assert_int_equal(ae_loader_next(l, &b, &err), AE_OK);
    assert_int_equal(b.count, 3);
    for (int j = 0; j < 3; j++)
        for (int k = 0; k < 48; k++)
            assert_int_equal(b.pixels[48 * j + k], 50 * (2 - j) + 10);
    ae_loader_free(l);
    ae_dataset_free(&ds);
}

static void test_pixels_to_float(void **state)
{
    (void)state;
    uint8_t px[256];
    float out[256];
    for (int i = 0; i < 256; i++)
        px[i] = (uint8_t)(255 - i);
    ae_pixels_to_float(px, 256, out);
    for (int i = 0; i < 256; i++) {
        volatile float want = (float)px[i] / 255.0f;
        assert_true(out[i] == want);
    }
    assert_true(out[0] == 1.0f);
    assert_true(out[255] == 0.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_and_streamed_batches_are_identical),
        cmocka_unit_test(test_batches_hold_prepared_pixels),
        cmocka_unit_test(test_streamed_epoch_can_be_abandoned),
        cmocka_unit_test(test_bad_files_stop_or_skip),
        cmocka_unit_test(test_one_pass_checks_while_streaming),
        cmocka_unit_test(test_one_pass_batches_are_identical),
        cmocka_unit_test(test_csv_missing_file_is_a_bad_file),
        cmocka_unit_test(test_file_gone_after_check_fails_its_batch),
        cmocka_unit_test(test_idx_items_load_and_resize),
        cmocka_unit_test(test_pixels_to_float),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
