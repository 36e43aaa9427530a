/* The folder layout (ae_folder_layout): normal, abnormal and mask folders,
 * the held-out test split, masks that never become images, the folders'
 * errors; and the warning for a plain folder of images beside their masks. */
#include "support.h"

#include "aedet/data.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A 4x4 gray PNG at root/rel; folders made as needed. */
static void put_png(const char *root, const char *rel, uint8_t shade)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    test_make_dirs(path);
    *slash = '/';
    uint8_t px[16];
    memset(px, shade, sizeof px);
    test_write_png(path, px, 4, 4, PNG_COLOR_TYPE_GRAY, 8);
}

static char *join(const char *a, const char *b)
{
    static char bufs[8][4096];
    static int slot;
    char *p = bufs[slot++ % 8];
    snprintf(p, 4096, "%s/%s", a, b);
    return p;
}

/* tree/good: 10 images and 003_mask.png beside 003.png; tree/scratch: 4
 * images, their masks in tree/masks/scratch/ under the same names;
 * tree/dent: 3 images, masks tree/masks/dent/NNN_mask.png. */
static const char *tree(void)
{
    static char root[4096];
    if (!root[0]) {
        snprintf(root, sizeof root, "%s/tree", test_tmpdir());
        char rel[64];
        for (int k = 0; k < 10; k++) {
            snprintf(rel, sizeof rel, "good/%03d.png", k);
            put_png(root, rel, (uint8_t)(10 + k));
        }
        put_png(root, "good/003_mask.png", 255);
        for (int k = 0; k < 4; k++) {
            snprintf(rel, sizeof rel, "scratch/%03d.png", k);
            put_png(root, rel, 200);
            snprintf(rel, sizeof rel, "masks/scratch/%03d.png", k);
            put_png(root, rel, 255);
        }
        for (int k = 0; k < 3; k++) {
            snprintf(rel, sizeof rel, "dent/%03d.png", k);
            put_png(root, rel, 100);
            snprintf(rel, sizeof rel, "masks/dent/%03d_mask.png", k);
            put_png(root, rel, 255);
        }
    }
    return root;
}

static int has_path(const ae_dataset *ds, const char *path)
{
    for (size_t i = 0; i < ds->count; i++)
        if (ds->items[i].path && !strcmp(ds->items[i].path, path))
            return 1;
    return 0;
}

static ae_status open_layout(const ae_folder_layout *fl, ae_dataset *ds, ae_error *err)
{
    ae_source src = {.folders = fl};
    return ae_dataset_open(&src, ds, err);
}

static void test_training_split_is_the_normal_folder_without_masks(void **state)
{
    (void)state;
    const char *root = tree();
    const char *abnormal[] = {join(root, "scratch"), join(root, "dent")};
    ae_folder_layout fl = {.normal_dir = join(root, "good"), .abnormal_dirs = abnormal, .num_abnormal = 2,
                           .mask_dir = join(root, "masks")};
    ae_dataset ds;
    ae_error err = {0};
    assert_int_equal(open_layout(&fl, &ds, &err), AE_OK);
    assert_int_equal(ds.count, 10); /* not 003_mask.png */
    for (size_t i = 0; i < ds.count; i++) {
        assert_int_equal(ds.items[i].label, 0);
        assert_null(ds.items[i].mask_path);
        assert_null(strstr(ds.items[i].path, "mask"));
    }
    assert_int_equal(ds.num_classes, 3);
    assert_string_equal(ds.class_names[0], "good");
    assert_string_equal(ds.class_names[1], "scratch");
    assert_string_equal(ds.class_names[2], "dent"); /* in the order given */
    assert_int_equal(ds.num_notes, 1);
    assert_non_null(strstr(ds.notes[0], "left out 1 file named like the mask"));
    assert_non_null(strstr(ds.description, "training split"));
    ae_dataset_free(&ds);
}

static void test_scoring_split_has_classes_and_masks(void **state)
{
    (void)state;
    const char *root = tree();
    const char *abnormal[] = {join(root, "scratch"), join(root, "dent")};
    ae_folder_layout fl = {.normal_dir = join(root, "good"), .abnormal_dirs = abnormal, .num_abnormal = 2,
                           .mask_dir = join(root, "masks"), .test = 1};
    ae_dataset ds;
    ae_error err = {0};
    assert_int_equal(open_layout(&fl, &ds, &err), AE_OK);
    assert_int_equal(ds.count, 10 + 4 + 3); /* every normal image (no split), every abnormal one */
    int per_class[3] = {0};
    for (size_t i = 0; i < ds.count; i++) {
        const ae_item *it = &ds.items[i];
        per_class[it->label]++;
        if (it->label == 0) {
            assert_null(it->mask_path);
            continue;
        }
        assert_non_null(it->mask_path);
        const char *name = strrchr(it->path, '/') + 1;
        char want[4096];
        if (it->label == 1)
            snprintf(want, sizeof want, "%s/masks/scratch/%s", root, name);
        else
            snprintf(want, sizeof want, "%s/masks/dent/%.3s_mask.png", root, name);
        assert_string_equal(it->mask_path, want);
    }
    assert_int_equal(per_class[0], 10);
    assert_int_equal(per_class[1], 4);
    assert_int_equal(per_class[2], 3);
    ae_dataset_free(&ds);

    /* Masks of a class not asked for (masks/dent/) are no one's, and no error. */
    fl.num_abnormal = 1;
    assert_int_equal(open_layout(&fl, &ds, &err), AE_OK);
    assert_int_equal(ds.count, 14);
    ae_dataset_free(&ds);
    fl.num_abnormal = 2;
    /* An explicit suffix: the scratch masks (no suffix) are no one's now. */
    fl.mask_suffix = "_mask";
    assert_int_equal(open_layout(&fl, &ds, &err), AE_ERR_DATA);
    assert_non_null(strstr(err.message, "masks/scratch/000.png has no image"));
    /* A stray mask is bad data, named. */
    fl.mask_suffix = NULL;
    put_png(root, "masks/scratch/099.png", 255);
    assert_int_equal(open_layout(&fl, &ds, &err), AE_ERR_DATA);
    assert_non_null(strstr(err.message, "masks/scratch/099.png has no image"));
    /* ...unless the globs leave it out */
    const char *exclude[] = {"099*"};
    ae_source src = {.folders = &fl, .exclude = exclude, .num_exclude = 1};
    assert_int_equal(ae_dataset_open(&src, &ds, &err), AE_OK);
    assert_int_equal(ds.count, 17);
    ae_dataset_free(&ds);
    char stray[4096];
    snprintf(stray, sizeof stray, "%s/masks/scratch/099.png", root);
    assert_int_equal(remove(stray), 0);
}

static void test_test_split_holds_out_seeded_normals(void **state)
{
    (void)state;
    const char *root = tree();
    const char *abnormal[] = {join(root, "scratch")};
    ae_folder_layout fl = {.normal_dir = join(root, "good"), .abnormal_dirs = abnormal, .num_abnormal = 1,
                           .test_split = 0.3, .seed = 7};
    ae_dataset train, test, again;
    ae_error err = {0};
    assert_int_equal(open_layout(&fl, &train, &err), AE_OK);
    fl.test = 1;
    assert_int_equal(open_layout(&fl, &test, &err), AE_OK);
    assert_int_equal(open_layout(&fl, &again, &err), AE_OK);
    assert_int_equal(train.count, 7);
    assert_int_equal(test.count, 3 + 4);
    size_t normals = 0;
    for (size_t i = 0; i < test.count; i++) {
        assert_string_equal(test.items[i].path, again.items[i].path); /* seeded: the same every time */
        if (test.items[i].label == 0) {
            normals++;
            assert_false(has_path(&train, test.items[i].path)); /* held out: never trained on */
        }
    }
    assert_int_equal(normals, 3);
    ae_dataset_free(&again);
    fl.seed = 8; /* another seed, another sample (of 120 possible) */
    assert_int_equal(open_layout(&fl, &again, &err), AE_OK);
    int same = 1;
    for (size_t i = 0; i < 3; i++)
        same &= !strcmp(test.items[i].path, again.items[i].path);
    assert_false(same);
    ae_dataset_free(&again);
    ae_dataset_free(&train);
    ae_dataset_free(&test);

    /* A normal test folder instead of a split. */
    fl = (ae_folder_layout){.normal_dir = join(root, "good"), .normal_test_dir = join(root, "dent"), .test = 1};
    assert_int_equal(open_layout(&fl, &test, &err), AE_OK);
    assert_int_equal(test.count, 3);
    assert_int_equal(test.items[0].label, 0);
    ae_dataset_free(&test);
    fl.test_split = 0.5;
    assert_int_equal(open_layout(&fl, &test, &err), AE_ERR_USAGE);
    assert_non_null(strstr(err.message, "not both"));
}

/* Folders inside the normal one (defects, masks) are left out of it. */
static void test_nested_folders_are_left_out(void **state)
{
    (void)state;
    char root[4096];
    snprintf(root, sizeof root, "%s/nested", test_tmpdir());
    put_png(root, "all/a.png", 1);
    put_png(root, "all/b.png", 2);
    put_png(root, "all/sub/c.png", 3);
    put_png(root, "all/defects/d.png", 4);
    put_png(root, "all/gt/defects/d.png", 5);
    put_png(root, "all/heldout/e.png", 6);
    const char *abnormal[] = {join(root, "all/defects")};
    ae_folder_layout fl = {.normal_dir = join(root, "all"), .abnormal_dirs = abnormal, .num_abnormal = 1,
                           .mask_dir = join(root, "all/gt"), .normal_test_dir = join(root, "all/heldout")};
    ae_dataset ds;
    ae_error err = {0};
    assert_int_equal(open_layout(&fl, &ds, &err), AE_OK);
    assert_int_equal(ds.count, 3); /* a, b, sub/c */
    assert_true(has_path(&ds, join(root, "all/sub/c.png")));
    ae_dataset_free(&ds);
    fl.test = 1;
    assert_int_equal(open_layout(&fl, &ds, &err), AE_OK);
    assert_int_equal(ds.count, 2); /* heldout/e and defects/d with its mask */
    assert_true(has_path(&ds, join(root, "all/heldout/e.png")));
    for (size_t i = 0; i < ds.count; i++)
        if (ds.items[i].label == 1)
            assert_string_equal(ds.items[i].mask_path, join(root, "all/gt/defects/d.png"));
    ae_dataset_free(&ds);
    /* --exclude applies in every folder */
    const char *exclude[] = {"sub/*"};
    ae_source src = {.folders = &fl, .exclude = exclude, .num_exclude = 1};
    fl.test = 0;
    assert_int_equal(ae_dataset_open(&src, &ds, &err), AE_OK);
    assert_int_equal(ds.count, 2);
    assert_false(has_path(&ds, join(root, "all/sub/c.png")));
    ae_dataset_free(&ds);
}

static void test_folder_errors(void **state)
{
    (void)state;
    const char *root = tree();
    ae_dataset ds;
    ae_error err = {0};
    const char *same[] = {join(root, "good")};
    ae_folder_layout fl = {.normal_dir = join(root, "good"), .abnormal_dirs = same, .num_abnormal = 1};
    assert_int_equal(open_layout(&fl, &ds, &err), AE_ERR_USAGE);
    assert_non_null(strstr(err.message, "the same folder"));
    /* two classes of one name */
    put_png(root, "other/scratch/x.png", 9);
    const char *twins[] = {join(root, "scratch"), join(root, "other/scratch")};
    fl = (ae_folder_layout){.normal_dir = join(root, "good"), .abnormal_dirs = twins, .num_abnormal = 2};
    assert_int_equal(open_layout(&fl, &ds, &err), AE_ERR_USAGE);
    assert_non_null(strstr(err.message, "both named \"scratch\""));
    const char *missing[] = {join(root, "no-such-folder")};
    fl = (ae_folder_layout){.normal_dir = join(root, "good"), .abnormal_dirs = missing, .num_abnormal = 1};
    assert_int_equal(open_layout(&fl, &ds, &err), AE_ERR_IO);
    assert_non_null(strstr(err.message, "no-such-folder: not a folder"));
    fl = (ae_folder_layout){.normal_dir = join(root, "good"), .test_split = 1};
    assert_int_equal(open_layout(&fl, &ds, &err), AE_ERR_USAGE);
    fl = (ae_folder_layout){.normal_dir = join(root, "masks/dent"), .mask_suffix = "_mask"};
    assert_int_equal(open_layout(&fl, &ds, &err), AE_ERR_DATA); /* every file is a mask */
    assert_non_null(strstr(err.message, "no images found"));
}

/* A plain folder of images beside their masks trains on both: a note. */
static void test_plain_folder_of_image_mask_pairs_is_noted(void **state)
{
    (void)state;
    char root[4096];
    snprintf(root, sizeof root, "%s/pairs", test_tmpdir());
    put_png(root, "x.png", 1);
    put_png(root, "x_mask.png", 255);
    put_png(root, "y.png", 2);
    ae_source src = {.kind = AE_SOURCE_FOLDER, .root = root};
    ae_dataset ds;
    ae_error err = {0};
    assert_int_equal(ae_dataset_open(&src, &ds, &err), AE_OK);
    assert_int_equal(ds.count, 3); /* still every file: a plain folder is what it is */
    assert_int_equal(ds.num_notes, 1);
    assert_non_null(strstr(ds.notes[0], "looks like images with their masks"));
    assert_non_null(strstr(ds.notes[0], "--exclude"));
    ae_dataset_free(&ds);

    size_t pairs, masky;
    const char *plain[] = {"a.png", "b.png", "mask1.png", "masks.png"};
    assert_false(ae_names_look_like_masks(plain, 4, &pairs, &masky));
    assert_int_equal(pairs, 0);
    const char *paired[] = {"d/a.jpg", "d/a_mask.png", "d/b.png", "e/b-mask.png", "c.png", "f.png", "g.png"};
    assert_true(ae_names_look_like_masks(paired, 7, &pairs, &masky));
    assert_int_equal(pairs, 1); /* e/b-mask has no e/b */
    assert_int_equal(masky, 2);
    const char *half[] = {"a.png", "q_mask.png", "b.png", "r_mask.png"};
    assert_true(ae_names_look_like_masks(half, 4, &pairs, &masky));
    assert_int_equal(pairs, 0);
    assert_int_equal(masky, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_training_split_is_the_normal_folder_without_masks),
        cmocka_unit_test(test_scoring_split_has_classes_and_masks),
        cmocka_unit_test(test_test_split_holds_out_seeded_normals),
        cmocka_unit_test(test_nested_folders_are_left_out),
        cmocka_unit_test(test_folder_errors),
        cmocka_unit_test(test_plain_folder_of_image_mask_pairs_is_noted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
