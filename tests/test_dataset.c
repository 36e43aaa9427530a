/* Data set sources, include/exclude globs, the tutorial's recipe and the split. */
#include "support.h"

#include "aedet/data.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- small trees ---- */

/* A 4x4 image at root/rel, PNG or JPEG by the name; folders made as needed. */
static void put_image(const char *root, const char *rel, uint8_t shade)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    test_make_dirs(path);
    *slash = '/';
    uint8_t px[4 * 4 * 3];
    memset(px, shade, sizeof px);
    const char *dot = strrchr(rel, '.');
    if (dot && (dot[1] == 'p' || dot[1] == 'P'))
        test_write_png(path, px, 4, 4, PNG_COLOR_TYPE_RGB, 8);
    else
        test_write_jpeg(path, px, 4, 4, 3, 95);
}

static void put_text(const char *root, const char *rel, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    test_write_file(path, text, strlen(text));
}

static const char *rel_of(const ae_dataset *ds, size_t i, const char *root)
{
    const char *p = ds->items[i].path;
    size_t n = strlen(root);
    assert_non_null(p);
    assert_memory_equal(p, root, n);
    assert_int_equal(p[n], '/');
    return p + n + 1;
}

static void open_ok(const ae_source *src, ae_dataset *ds)
{
    ae_error err;
    ae_error_clear(&err);
    ae_status s = ae_dataset_open(src, ds, &err);
    if (s != AE_OK)
        fail_msg("open failed: %s", err.message);
}

static void expect_open_error(const ae_source *src, const char *fragment1, const char *fragment2)
{
    ae_dataset ds;
    ae_error err;
    ae_error_clear(&err);
    assert_int_not_equal(ae_dataset_open(src, &ds, &err), AE_OK);
    assert_int_equal(ds.count, 0);
    assert_null(ds.items);
    if (!strstr(err.message, fragment1) || (fragment2 && !strstr(err.message, fragment2)))
        fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", err.message, fragment1,
                 fragment2 ? fragment2 : "");
}

static const char *folder_tree(void)
{
    static int made;
    const char *root = test_path("folder");
    if (!made) {
        put_image(root, "a.png", 10);
        put_image(root, "b/C.JPG", 20);
        put_image(root, "b/d.jpeg", 30);
        put_image(root, "b/c/mask1.png", 40);
        put_image(root, "mask0.PNG", 50);
        put_image(root, ".hidden/x.png", 60);
        put_text(root, "b/notes.txt", "not an image");
        made = 1;
    }
    return root;
}

static void test_folder_lists_images_sorted(void **state)
{
    (void)state;
    char root[1024];
    snprintf(root, sizeof root, "%s", folder_tree());
    ae_source src = {.kind = AE_SOURCE_FOLDER, .root = root};
    ae_dataset ds;
    open_ok(&src, &ds);
    const char *want[] = {"a.png", "b/C.JPG", "b/c/mask1.png", "b/d.jpeg", "mask0.PNG"};
    assert_int_equal(ds.count, 5);
    for (size_t i = 0; i < ds.count; i++) {
        assert_string_equal(rel_of(&ds, i, root), want[i]);
        assert_int_equal(ds.items[i].label, -1);
        assert_int_equal(ds.items[i].index, (int64_t)i);
    }
    assert_int_equal(ds.num_classes, 0);
    assert_non_null(strstr(ds.description, "5 images"));
    char buf[32];
    assert_string_equal(ae_item_name(&ds.items[0], buf, sizeof buf), ds.items[0].path);

    /* AUTO on a folder without labels or train/good is a folder. */
    ae_dataset again;
    src.kind = AE_SOURCE_AUTO;
    open_ok(&src, &again);
    assert_int_equal(again.count, ds.count);
    for (size_t i = 0; i < ds.count; i++)
        assert_string_equal(again.items[i].path, ds.items[i].path);
    ae_image img;
    ae_error err;
    assert_int_equal(ae_dataset_load(&ds, 1, &img, &err), AE_OK);
    assert_int_equal(img.height, 4);
    assert_int_equal(img.channels, 3);
    ae_image_free(&img);
    ae_dataset_free(&again);
    ae_dataset_free(&ds);
}

static size_t open_count(const char *root, const char *const *inc, int ninc,
                         const char *const *exc, int nexc, ae_dataset *ds)
{
    ae_source src = {.kind = AE_SOURCE_FOLDER, .root = root, .include = inc,
                     .num_include = ninc, .exclude = exc, .num_exclude = nexc};
    open_ok(&src, ds);
    return ds->count;
}

static void test_globs_include_exclude(void **state)
{
    (void)state;
    char root[1024];
    snprintf(root, sizeof root, "%s", folder_tree());
    ae_dataset ds;

    const char *png[] = {"*.png"}; /* '*' crosses '/'; case-sensitive */
    assert_int_equal(open_count(root, png, 1, NULL, 0, &ds), 2);
    assert_string_equal(rel_of(&ds, 0, root), "a.png");
    assert_string_equal(rel_of(&ds, 1, root), "b/c/mask1.png");
    ae_dataset_free(&ds);

    const char *mask[] = {"mask*"}; /* no '/': also tried on the file name */
    assert_int_equal(open_count(root, NULL, 0, mask, 1, &ds), 3);
    for (size_t i = 0; i < ds.count; i++)
        assert_null(strstr(ds.items[i].path, "mask"));
    ae_dataset_free(&ds);

    const char *deep_mask[] = {"**/mask*"}; /* also matches at the top */
    assert_int_equal(open_count(root, NULL, 0, deep_mask, 1, &ds), 3);
    ae_dataset_free(&ds);

    const char *in_b[] = {"b/*"}, *jpeg[] = {"*.jpeg", "*.JPG"};
    assert_int_equal(open_count(root, in_b, 1, jpeg, 2, &ds), 1);
    assert_string_equal(rel_of(&ds, 0, root), "b/c/mask1.png");
    ae_dataset_free(&ds);

    const char *nothing[] = {"*.gif"};
    ae_source src = {.kind = AE_SOURCE_FOLDER, .root = root, .include = nothing,
                     .num_include = 1};
    expect_open_error(&src, "no images", "include/exclude");
}

static void test_class_folders(void **state)
{
    (void)state;
    const char *r = test_path("classes");
    char root[1024];
    snprintf(root, sizeof root, "%s", r);
    put_image(root, "dog/x/3.png", 1);
    put_image(root, "cat/2.png", 2);
    put_image(root, "cat/1.png", 3);
    put_image(root, "stray.png", 4);
    ae_source src = {.kind = AE_SOURCE_CLASS_FOLDERS, .root = root};
    ae_dataset ds;
    open_ok(&src, &ds);
    assert_int_equal(ds.num_classes, 2);
    assert_string_equal(ds.class_names[0], "cat");
    assert_string_equal(ds.class_names[1], "dog");
    assert_int_equal(ds.count, 3);
    assert_string_equal(rel_of(&ds, 0, root), "cat/1.png");
    assert_string_equal(rel_of(&ds, 1, root), "cat/2.png");
    assert_string_equal(rel_of(&ds, 2, root), "dog/x/3.png");
    assert_int_equal(ds.items[0].label, 0);
    assert_int_equal(ds.items[1].label, 0);
    assert_int_equal(ds.items[2].label, 1);
    ae_dataset_free(&ds);
}

/* A link to a folder is not entered by the walk, so it is not a class folder
 * either (it used to become a class with no images); a link back up the tree
 * is not a cycle; a link to an image file is an image. */
static void test_linked_folders_are_neither_walked_nor_classes(void **state)
{
    (void)state;
    char root[1024], outside[1024], link[2048], target[2048];
    snprintf(root, sizeof root, "%s", test_path("linked-classes"));
    snprintf(outside, sizeof outside, "%s", test_path("outside-classes"));
    put_image(root, "cat/1.png", 1);
    put_image(outside, "bird/9.png", 2);
    snprintf(target, sizeof target, "%s/bird", outside);
    snprintf(link, sizeof link, "%s/bird", root);
    assert_int_equal(symlink(target, link), 0);
    snprintf(link, sizeof link, "%s/cat/loop", root);
    assert_int_equal(symlink(root, link), 0);
    snprintf(target, sizeof target, "%s/cat/1.png", root);
    snprintf(link, sizeof link, "%s/cat/same.png", root);
    assert_int_equal(symlink(target, link), 0);

    ae_source src = {.kind = AE_SOURCE_CLASS_FOLDERS, .root = root};
    ae_dataset ds;
    open_ok(&src, &ds);
    assert_int_equal(ds.num_classes, 1);
    assert_string_equal(ds.class_names[0], "cat");
    assert_int_equal(ds.count, 2);
    assert_string_equal(rel_of(&ds, 0, root), "cat/1.png");
    assert_string_equal(rel_of(&ds, 1, root), "cat/same.png");
    ae_dataset_free(&ds);

    src.kind = AE_SOURCE_FOLDER;
    open_ok(&src, &ds);
    assert_int_equal(ds.count, 2);
    ae_dataset_free(&ds);
}

static void test_mvtec_layout(void **state)
{
    (void)state;
    char root[1024];
    snprintf(root, sizeof root, "%s", test_path("mvtec"));
    put_image(root, "train/good/001.png", 1);
    put_image(root, "train/good/000.png", 2);
    put_image(root, "test/good/000.png", 3);
    put_image(root, "test/scratch/001.png", 4);
    put_image(root, "test/scratch/000.png", 5);
    put_image(root, "test/crack/000.png", 6);
    put_image(root, "ground_truth/crack/000_mask.png", 255);
    put_image(root, "ground_truth/scratch/000_mask.png", 255);

    ae_source src = {.kind = AE_SOURCE_AUTO, .root = root}; /* train/good: MVTec */
    ae_dataset ds;
    open_ok(&src, &ds);
    assert_int_equal(ds.count, 2);
    assert_string_equal(rel_of(&ds, 0, root), "train/good/000.png");
    assert_int_equal(ds.items[0].label, 0);
    assert_int_equal(ds.items[1].label, 0);
    assert_null(ds.items[0].mask_path);
    assert_int_equal(ds.num_classes, 3);
    assert_string_equal(ds.class_names[0], "good");
    assert_string_equal(ds.class_names[1], "crack");
    assert_string_equal(ds.class_names[2], "scratch");
    ae_dataset_free(&ds);

    src.mvtec_split = "test";
    open_ok(&src, &ds);
    assert_int_equal(ds.count, 4);
    const char *want[] = {"test/crack/000.png", "test/good/000.png", "test/scratch/000.png",
                          "test/scratch/001.png"};
    const int labels[] = {1, 0, 2, 2};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(rel_of(&ds, i, root), want[i]);
        assert_int_equal(ds.items[i].label, labels[i]);
    }
    char mask[4096];
    snprintf(mask, sizeof mask, "%s/ground_truth/crack/000_mask.png", root);
    assert_string_equal(ds.items[0].mask_path, mask);
    assert_null(ds.items[1].mask_path);
    assert_non_null(ds.items[2].mask_path);
    assert_null(ds.items[3].mask_path); /* no mask file for it */
    ae_dataset_free(&ds);

    src.mvtec_split = "val";
    expect_open_error(&src, "val", "train or test");
}

static const char *csv_root(void)
{
    static int made;
    const char *root = test_path("weeds");
    if (!made) {
        put_image(root, "a.jpg", 1);
        put_image(root, "b.jpg", 2);
        put_image(root, "c.jpg", 3);
        made = 1;
    }
    return root;
}

static void test_csv_deepweeds_and_generic(void **state)
{
    (void)state;
    char root[1024];
    snprintf(root, sizeof root, "%s", csv_root());
    put_text(root, "labels.csv",
             "Filename,Label,Species\r\nb.jpg,3,Lantana\r\na.jpg,0,Chinee apple\r\n"
             "c.jpg,3,Lantana\r\n");
    char labels[4096];
    snprintf(labels, sizeof labels, "%s/labels.csv", root);
    ae_source src = {.kind = AE_SOURCE_AUTO, .root = root, .labels = labels};
    ae_dataset ds;
    open_ok(&src, &ds);
    assert_int_equal(ds.count, 3);
    assert_string_equal(rel_of(&ds, 0, root), "b.jpg"); /* the CSV's order */
    assert_int_equal(ds.items[0].label, 3);
    assert_int_equal(ds.items[1].label, 0);
    assert_int_equal(ds.num_classes, 4);
    assert_string_equal(ds.class_names[0], "Chinee apple");
    assert_null(ds.class_names[1]); /* no row has label 1 */
    char num[16];
    assert_string_equal(ae_class_name(&ds, 1, num, sizeof num), "1");
    assert_string_equal(ds.class_names[3], "Lantana");
    ae_dataset_free(&ds);

    /* Globs apply to the CSV's paths too. */
    const char *exc[] = {"b*"};
    src.exclude = exc;
    src.num_exclude = 1;
    open_ok(&src, &ds);
    assert_int_equal(ds.count, 2);
    assert_string_equal(rel_of(&ds, 0, root), "a.jpg");
    ae_dataset_free(&ds);

    /* A generic CSV with its own column names; root defaults to the CSV's folder. */
    put_text(root, "generic.csv", "id,file,class\n1,c.jpg,1\n2,a.jpg,0\n");
    snprintf(labels, sizeof labels, "%s/generic.csv", root);
    ae_source gen = {.kind = AE_SOURCE_CSV, .labels = labels, .path_column = "file",
                     .label_column = "class"};
    open_ok(&gen, &ds);
    assert_int_equal(ds.count, 2);
    assert_string_equal(rel_of(&ds, 0, root), "c.jpg");
    assert_int_equal(ds.items[0].label, 1);
    assert_string_equal(ds.class_names[1], "1");
    ae_dataset_free(&ds);
}

static void expect_csv_error(const char *name, const char *text, const char *frag1,
                             const char *frag2)
{
    char root[1024], labels[4096];
    snprintf(root, sizeof root, "%s", csv_root());
    put_text(root, name, text);
    snprintf(labels, sizeof labels, "%s/%s", root, name);
    ae_source src = {.kind = AE_SOURCE_CSV, .root = root, .labels = labels};
    expect_open_error(&src, frag1, frag2);
}

static void test_csv_errors_name_file_and_line(void **state)
{
    (void)state;
    expect_csv_error("missing.csv", "Filename,Label\na.jpg,0\nnope.jpg,1\n",
                     "missing.csv line 3", "nope.jpg not found");
    expect_csv_error("badlabel.csv", "Filename,Label\na.jpg,x1\n", "badlabel.csv line 2",
                     "\"x1\" is not an integer");
    expect_csv_error("negative.csv", "Filename,Label\na.jpg,0\nb.jpg,0\nc.jpg,-2\n",
                     "negative.csv line 4", "negative");
    expect_csv_error("short.csv", "Filename,Species,Label\na.jpg,x,0\nb.jpg,y\n",
                     "short.csv line 3", "2 column(s), expected at least 3");
    expect_csv_error("nocol.csv", "File,Label\na.jpg,0\n", "nocol.csv line 1",
                     "no column \"Filename\"");
}

/* A row naming a missing file is bad data (not an I/O failure) under
 * AE_BAD_STOP, with the CSV's name and line; a name holding a newline is shown
 * quoted and escaped, on one line. Under AE_BAD_SKIP the item is kept for the
 * loader to skip (tests/test_loader.c). */
static void test_csv_missing_file_follows_bad_policy(void **state)
{
    (void)state;
    char root[1024], labels[4096];
    snprintf(root, sizeof root, "%s", csv_root());
    put_text(root, "gone.csv", "Filename,Label\na.jpg,0\r\n\"new\nline\t.jpg\",1\nnope.jpg,1\n");
    snprintf(labels, sizeof labels, "%s/gone.csv", root);
    ae_source src = {.kind = AE_SOURCE_CSV, .root = root, .labels = labels};
    ae_dataset ds;
    ae_error err;
    ae_error_clear(&err);
    assert_int_equal(ae_dataset_open(&src, &ds, &err), AE_ERR_DATA);
    assert_non_null(strstr(err.message, "gone.csv line 3"));
    assert_non_null(strstr(err.message, "/new\\nline\\t.jpg\" not found"));
    assert_null(strchr(err.message, '\n'));
    assert_null(strchr(err.message, '\t'));

    src.bad_policy = AE_BAD_SKIP;
    open_ok(&src, &ds);
    assert_int_equal(ds.count, 3);
    assert_string_equal(rel_of(&ds, 1, root), "new\nline\t.jpg");
    assert_string_equal(rel_of(&ds, 2, root), "nope.jpg");
    assert_int_equal(ds.items[2].label, 1);
    ae_dataset_free(&ds);
}

/* Rows naming files outside the data folder are refused unless allowed;
 * rows naming one file with two labels are kept and noted. */
static void test_csv_outside_rows_and_conflicting_labels(void **state)
{
    (void)state;
    char root[1024], labels[4096];
    snprintf(root, sizeof root, "%s", csv_root());
    expect_csv_error("climb.csv", "Filename,Label\na.jpg,0\nsub/../../weeds/b.jpg,1\n", "climb.csv line 3",
                     "outside the data folder");
    expect_csv_error("absolute.csv", "Filename,Label\n/etc/passwd,0\n", "absolute.csv line 2", "--allow-outside");

    put_text(root, "inside.csv", "Filename,Label\n./a.jpg,0\n.//b.jpg,1\n");
    snprintf(labels, sizeof labels, "%s/inside.csv", root);
    ae_source src = {.kind = AE_SOURCE_CSV, .root = root, .labels = labels};
    ae_dataset ds;
    open_ok(&src, &ds); /* "." is no climb */
    assert_int_equal(ds.count, 2);
    assert_int_equal(ds.num_notes, 0);
    ae_dataset_free(&ds);

    char outside[4096];
    snprintf(outside, sizeof outside, "Filename,Label\n../weeds/c.jpg,2\n%s/a.jpg,0\n", root);
    put_text(root, "outside.csv", outside);
    snprintf(labels, sizeof labels, "%s/outside.csv", root);
    src.allow_outside = 1;
    open_ok(&src, &ds);
    assert_int_equal(ds.count, 2);
    ae_dataset_free(&ds);

    put_text(root, "twice.csv", "Filename,Label\nb.jpg,1\na.jpg,0\nb.jpg,2\na.jpg,0\n");
    snprintf(labels, sizeof labels, "%s/twice.csv", root);
    src.allow_outside = 0;
    open_ok(&src, &ds);
    assert_int_equal(ds.count, 4);
    assert_int_equal(ds.num_notes, 1); /* a.jpg twice with the same label is no conflict */
    assert_non_null(strstr(ds.notes[0], "twice.csv lines 2 and 4 name b.jpg with different labels (1, 2)"));
    ae_dataset_free(&ds);
}

/* A subfolder that cannot be opened stops the listing, or under AE_BAD_SKIP
 * is left out with a note; the folder asked for itself always stops it.
 * Root reads every folder, so the check runs in a child that drops to
 * nobody when the tests run as root (as in CI). */
static int open_listing(const char *root, ae_bad_policy policy, size_t *count, size_t *notes, ae_error *err)
{
    ae_source src = {.kind = AE_SOURCE_FOLDER, .root = root, .bad_policy = policy};
    ae_dataset ds;
    ae_status s = ae_dataset_open(&src, &ds, err);
    if (s == AE_OK) {
        *count = ds.count;
        *notes = ds.num_notes;
        if (ds.num_notes && !strstr(ds.notes[0], "locked: cannot open it"))
            s = AE_ERR_DATA;
        ae_dataset_free(&ds);
    }
    return s;
}

static void test_unreadable_subfolder_follows_bad_policy(void **state)
{
    (void)state;
    const char *root = test_path("unreadable");
    put_image(root, "a/x.png", 1);
    put_image(root, "locked/y.png", 2);
    char locked[4096];
    snprintf(locked, sizeof locked, "%s/locked", root);
    assert_int_equal(chmod(locked, 0), 0);
    assert_int_equal(chmod(test_tmpdir(), 0755), 0); /* nobody must reach root */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(10);
        ae_error err;
        size_t count = 0, notes = 0;
        if (open_listing(root, AE_BAD_STOP, &count, &notes, &err) != AE_ERR_IO || !strstr(err.message, "locked"))
            _exit(11);
        if (open_listing(root, AE_BAD_SKIP, &count, &notes, &err) != AE_OK || count != 1 || notes != 1)
            _exit(12);
        if (open_listing(locked, AE_BAD_SKIP, &count, &notes, &err) != AE_ERR_IO)
            _exit(13);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(chmod(locked, 0755), 0);
    assert_int_equal(chmod(test_tmpdir(), 0700), 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Labels no row has get no name (one pass over the rows, no string per unused
 * label); ae_class_name prints their number. */
static void test_csv_sparse_labels_are_named_lazily(void **state)
{
    (void)state;
    char root[1024], labels[4096], buf[32];
    snprintf(root, sizeof root, "%s", csv_root());
    put_text(root, "sparse.csv",
             "Filename,Label,Species\na.jpg,65535,\nb.jpg,7,Parkinsonia\nc.jpg,65535,Snake weed\n"
             "a.jpg,7,Other name\n");
    snprintf(labels, sizeof labels, "%s/sparse.csv", root);
    ae_source src = {.kind = AE_SOURCE_CSV, .root = root, .labels = labels};
    ae_dataset ds;
    open_ok(&src, &ds);
    assert_int_equal(ds.num_classes, 65536);
    assert_string_equal(ds.class_names[65535], "Snake weed"); /* first non-empty species */
    assert_string_equal(ds.class_names[7], "Parkinsonia");     /* first one wins */
    size_t named = 0;
    for (int c = 0; c < ds.num_classes; c++)
        named += ds.class_names[c] != NULL;
    assert_int_equal(named, 2);
    assert_string_equal(ae_class_name(&ds, 0, buf, sizeof buf), "0");
    assert_string_equal(ae_class_name(&ds, 7, buf, sizeof buf), "Parkinsonia");
    assert_string_equal(ae_class_name(&ds, 70000, buf, sizeof buf), "70000");
    assert_string_equal(ae_class_name(&ds, -1, buf, sizeof buf), "unlabeled");
    ae_dataset_free(&ds);
}

/* ---- IDX ---- */

static void write_idx(const char *path, int ndim, const int *dims, const uint8_t *data)
{
    size_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= (size_t)dims[d];
    uint8_t *buf = malloc(4 + 4 * (size_t)ndim + n);
    assert_non_null(buf);
    buf[0] = buf[1] = 0;
    buf[2] = 0x08;
    buf[3] = (uint8_t)ndim;
    for (int d = 0; d < ndim; d++) {
        uint32_t v = (uint32_t)dims[d];
        uint8_t *p = buf + 4 + 4 * d;
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
    }
    memcpy(buf + 4 + 4 * ndim, data, n);
    test_write_file(path, buf, 4 + 4 * (size_t)ndim + n);
    free(buf);
}

/* n tiny 2x2 images (pixel = record number mod 256) with the given labels. */
static void write_idx_set(const char *images, const char *labels, const uint8_t *label_values,
                          int n)
{
    uint8_t *px = malloc((size_t)n * 4);
    assert_non_null(px);
    for (int i = 0; i < n; i++)
        memset(px + 4 * i, i & 255, 4);
    int dims[3] = {n, 2, 2};
    write_idx(images, 3, dims, px);
    if (labels)
        write_idx(labels, 1, &n, label_values);
    free(px);
}

static void test_idx_source(void **state)
{
    (void)state;
    const uint8_t lab[5] = {2, 0, 2, 1, 2};
    char images[4096], labels[4096];
    snprintf(images, sizeof images, "%s", test_path("tiny-images.idx"));
    snprintf(labels, sizeof labels, "%s", test_path("tiny-labels.idx"));
    write_idx_set(images, labels, lab, 5);
    ae_source src = {.kind = AE_SOURCE_AUTO, .root = images, .labels = labels};
    ae_dataset ds;
    open_ok(&src, &ds);
    assert_int_equal(ds.count, 5);
    assert_int_equal(ds.num_classes, 3);
    for (size_t i = 0; i < 5; i++) {
        assert_null(ds.items[i].path);
        assert_int_equal(ds.items[i].index, (int64_t)i);
        assert_int_equal(ds.items[i].label, lab[i]);
    }
    char buf[32];
    assert_string_equal(ae_item_name(&ds.items[3], buf, sizeof buf), "#3");
    ae_image img;
    ae_error err;
    assert_int_equal(ae_dataset_load(&ds, 3, &img, &err), AE_OK);
    assert_int_equal(img.height, 2);
    assert_int_equal(img.width, 2);
    assert_int_equal(img.channels, 1);
    for (int i = 0; i < 4; i++)
        assert_int_equal(img.pixels[i], 3);
    ae_image_free(&img);
    ae_dataset_free(&ds);

    /* Labels that do not match the images in count. */
    char short_labels[4096];
    snprintf(short_labels, sizeof short_labels, "%s", test_path("short-labels.idx"));
    int four = 4;
    write_idx(short_labels, 1, &four, lab);
    src.labels = short_labels;
    expect_open_error(&src, "short-labels.idx", "4 labels");
}

/* ---- recipe and split ---- */

/* 1064 of class 1, 1009 of class 5 and 300 of class 0, interleaved. */
static void open_recipe_set(ae_dataset *ds)
{
    enum { N = 1064 + 1009 + 300 };
    static uint8_t lab[N];
    int c1 = 0, c5 = 0, c0 = 0;
    for (int i = 0; i < N; i++) {
        if (c1 < 1064 && i % 2 == 0)
            lab[i] = 1, c1++;
        else if (c5 < 1009 && i % 7 != 3)
            lab[i] = 5, c5++;
        else if (c0 < 300)
            lab[i] = 0, c0++;
        else
            lab[i] = 1, c1++;
    }
    assert_int_equal(c1, 1064);
    assert_int_equal(c5, 1009);
    char images[4096], labels[4096];
    snprintf(images, sizeof images, "%s", test_path("recipe-images.idx"));
    snprintf(labels, sizeof labels, "%s", test_path("recipe-labels.idx"));
    write_idx_set(images, labels, lab, N);
    ae_source src = {.kind = AE_SOURCE_IDX, .root = images, .labels = labels};
    open_ok(&src, ds);
}

static void select_ok(const ae_dataset *ds, const ae_recipe *r, size_t **idx, size_t *n)
{
    ae_error err;
    if (ae_recipe_select(ds, r, idx, n, &err) != AE_OK)
        fail_msg("recipe failed: %s", err.message);
}

static void test_recipe_contamination(void **state)
{
    (void)state;
    ae_dataset ds;
    open_recipe_set(&ds);
    int normal = 5, anomaly = 1;
    ae_recipe r = {.normal = &normal, .num_normal = 1, .anomaly = &anomaly, .num_anomaly = 1,
                   .contamination = 0.01, .seed = 42};
    size_t *a, na, *b, nb, *c, nc;
    select_ok(&ds, &r, &a, &na);
    assert_int_equal(na, 1009 + 11); /* round(0.01 * 1064) = round(10.64) = 11 */
    size_t per[6] = {0};
    for (size_t i = 0; i < na; i++) {
        assert_true(ds.items[a[i]].label == 5 || ds.items[a[i]].label == 1);
        per[ds.items[a[i]].label]++;
        if (i)
            assert_true(a[i - 1] < a[i]); /* dataset order, no repeats */
    }
    assert_int_equal(per[5], 1009);
    assert_int_equal(per[1], 11);

    select_ok(&ds, &r, &b, &nb); /* same seed, same choice */
    assert_int_equal(nb, na);
    assert_memory_equal(a, b, na * sizeof *a);
    r.seed = 43;
    select_ok(&ds, &r, &c, &nc);
    assert_int_equal(nc, na);
    assert_true(memcmp(a, c, na * sizeof *a) != 0); /* another seed, other anomalies */
    free(a);
    free(b);
    free(c);

    /* No contamination: the normal class alone. */
    r.contamination = 0.0;
    select_ok(&ds, &r, &a, &na);
    assert_int_equal(na, 1009);
    free(a);

    /* No classes: everything. */
    ae_recipe all = {.contamination = 0.01};
    select_ok(&ds, &all, &a, &na);
    assert_int_equal(na, ds.count);
    for (size_t i = 0; i < na; i++)
        assert_int_equal(a[i], i);
    free(a);

    ae_error err;
    int missing = 7;
    r.anomaly = &missing;
    assert_int_equal(ae_recipe_select(&ds, &r, &a, &na, &err), AE_ERR_USAGE);
    assert_non_null(strstr(err.message, "class 7"));
    r.anomaly = &normal;
    assert_int_equal(ae_recipe_select(&ds, &r, &a, &na, &err), AE_ERR_USAGE);
    r.anomaly = &anomaly;
    r.contamination = 1.5;
    assert_int_equal(ae_recipe_select(&ds, &r, &a, &na, &err), AE_ERR_USAGE);
    ae_dataset_free(&ds);
}

/* A class listed twice would be chosen twice: at contamination 1 that used to
 * write 1009 + 2 x 1064 indices into room for 2373 (a heap overflow). */
static void test_recipe_refuses_a_class_given_twice(void **state)
{
    (void)state;
    ae_dataset ds;
    open_recipe_set(&ds);
    ae_error err;
    size_t *idx = NULL, n = 0;
    int normal = 5, twice[2] = {1, 1};
    ae_recipe r = {.normal = &normal, .num_normal = 1, .anomaly = twice, .num_anomaly = 2,
                   .contamination = 1.0, .seed = 1};
    ae_error_clear(&err);
    assert_int_equal(ae_recipe_select(&ds, &r, &idx, &n, &err), AE_ERR_USAGE);
    assert_non_null(strstr(err.message, "class 1 is given twice"));
    assert_null(idx);
    assert_int_equal(n, 0);

    int normals[3] = {5, 0, 5}, anomaly = 1;
    r = (ae_recipe){.normal = normals, .num_normal = 3, .anomaly = &anomaly, .num_anomaly = 1,
                    .contamination = 1.0, .seed = 1};
    assert_int_equal(ae_recipe_select(&ds, &r, &idx, &n, &err), AE_ERR_USAGE);
    assert_non_null(strstr(err.message, "class 5 is given twice"));

    int both[2] = {0, 1};
    r = (ae_recipe){.normal = &normal, .num_normal = 1, .anomaly = both, .num_anomaly = 2,
                    .contamination = 0.5, .seed = 1};
    int normal_again[2] = {5, 1};
    r.normal = normal_again;
    r.num_normal = 2;
    assert_int_equal(ae_recipe_select(&ds, &r, &idx, &n, &err), AE_ERR_USAGE);
    assert_non_null(strstr(err.message, "class 1 is both normal and anomalous"));

    /* Distinct classes at contamination 1 fill the set exactly. */
    r.normal = &normal;
    r.num_normal = 1;
    r.contamination = 1.0;
    select_ok(&ds, &r, &idx, &n);
    assert_int_equal(n, ds.count);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(idx[i], i);
    free(idx);
    ae_dataset_free(&ds);
}

static void test_recipe_rounds_half_away_from_zero(void **state)
{
    (void)state;
    /* 2 of class 0 and 50 of class 1: round(0.01 * 50) = round(0.5) = 1. */
    uint8_t lab[52];
    memset(lab, 1, sizeof lab);
    lab[10] = lab[20] = 0;
    char images[4096], labels[4096];
    snprintf(images, sizeof images, "%s", test_path("half-images.idx"));
    snprintf(labels, sizeof labels, "%s", test_path("half-labels.idx"));
    write_idx_set(images, labels, lab, 52);
    ae_source src = {.kind = AE_SOURCE_IDX, .root = images, .labels = labels};
    ae_dataset ds;
    open_ok(&src, &ds);
    int normal = 0, anomaly = 1;
    ae_recipe r = {.normal = &normal, .num_normal = 1, .anomaly = &anomaly, .num_anomaly = 1,
                   .contamination = 0.01, .seed = 1};
    size_t *idx, n;
    select_ok(&ds, &r, &idx, &n);
    assert_int_equal(n, 3);
    free(idx);
    ae_dataset_free(&ds);
}

static void test_split_is_seeded(void **state)
{
    (void)state;
    enum { N = 1020 };
    size_t in[N];
    for (size_t i = 0; i < N; i++)
        in[i] = 3 * i + 1;
    size_t *t1, nt1, *v1, nv1, *t2, nt2, *v2, nv2, *t3, nt3, *v3, nv3;
    ae_error err;
    assert_int_equal(ae_split(in, N, 0.2, 0, &t1, &nt1, &v1, &nv1, &err), AE_OK);
    assert_int_equal(nv1, 204); /* round(0.2 * 1020) */
    assert_int_equal(nt1, N - 204);
    assert_int_equal(ae_split(in, N, 0.2, 0, &t2, &nt2, &v2, &nv2, &err), AE_OK);
    assert_memory_equal(v1, v2, nv1 * sizeof *v1);
    assert_memory_equal(t1, t2, nt1 * sizeof *t1);
    assert_int_equal(ae_split(in, N, 0.2, 1, &t3, &nt3, &v3, &nv3, &err), AE_OK);
    assert_int_equal(nv3, 204);
    assert_true(memcmp(v1, v3, nv1 * sizeof *v1) != 0);

    /* A partition of the input: every value once, in one part only. */
    static unsigned char seen[3 * N + 1];
    memset(seen, 0, sizeof seen);
    for (size_t i = 0; i < nt1; i++)
        seen[t1[i]]++;
    for (size_t i = 0; i < nv1; i++)
        seen[v1[i]]++;
    for (size_t i = 0; i < N; i++)
        assert_int_equal(seen[in[i]], 1);
    free(t1), free(v1), free(t2), free(v2), free(t3), free(v3);

    assert_int_equal(ae_split(in, N, 1.0, 0, &t1, &nt1, &v1, &nv1, &err), AE_ERR_USAGE);
    assert_int_equal(ae_split(in, 5, 0.0, 0, &t1, &nt1, &v1, &nv1, &err), AE_OK);
    assert_int_equal(nv1, 0);
    assert_int_equal(nt1, 5);
    free(t1), free(v1);
}

static void test_fashion_mnist_demo_recipe(void **state)
{
    (void)state;
    ae_source src = {.kind = AE_SOURCE_AUTO,
                     .root = TEST_FASHION_DIR "/train-images-idx3-ubyte.gz",
                     .labels = TEST_FASHION_DIR "/train-labels-idx1-ubyte.gz"};
    ae_dataset ds;
    open_ok(&src, &ds);
    assert_int_equal(ds.count, 60000);
    assert_int_equal(ds.num_classes, 10);
    assert_int_equal(ds.idx_images.dims[1], 28);
    size_t per[10] = {0};
    for (size_t i = 0; i < ds.count; i++) {
        assert_in_range(ds.items[i].label, 0, 9);
        per[ds.items[i].label]++;
    }
    for (int c = 0; c < 10; c++)
        assert_int_equal(per[c], 6000);
    int normal = 5, anomaly = 1;
    ae_recipe r = {.normal = &normal, .num_normal = 1, .anomaly = &anomaly, .num_anomaly = 1,
                   .contamination = 0.01, .seed = 0};
    size_t *idx, n;
    select_ok(&ds, &r, &idx, &n);
    assert_int_equal(n, 6000 + 60);
    free(idx);
    ae_dataset_free(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_folder_lists_images_sorted),
        cmocka_unit_test(test_globs_include_exclude),
        cmocka_unit_test(test_class_folders),
        cmocka_unit_test(test_linked_folders_are_neither_walked_nor_classes),
        cmocka_unit_test(test_mvtec_layout),
        cmocka_unit_test(test_csv_deepweeds_and_generic),
        cmocka_unit_test(test_csv_errors_name_file_and_line),
        cmocka_unit_test(test_csv_missing_file_follows_bad_policy),
        cmocka_unit_test(test_csv_sparse_labels_are_named_lazily),
        cmocka_unit_test(test_csv_outside_rows_and_conflicting_labels),
        cmocka_unit_test(test_unreadable_subfolder_follows_bad_policy),
        cmocka_unit_test(test_idx_source),
        cmocka_unit_test(test_recipe_contamination),
        cmocka_unit_test(test_recipe_rounds_half_away_from_zero),
        cmocka_unit_test(test_recipe_refuses_a_class_given_twice),
        cmocka_unit_test(test_split_is_seeded),
        cmocka_unit_test(test_fashion_mnist_demo_recipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
