/* Out of memory: each public entry point that allocates, run with its Nth
 * allocation failing for N = 1, 2, 3, ... until it succeeds. Every failure
 * must be AE_ERR_NOMEM, leave nothing allocated (LeakSanitizer checks after
 * each entry point), leave what it was given as it was (checked byte for
 * byte where the inputs are plain memory) and leave no half-filled result.
 *
 * The library's own calls to the malloc family go through the __wrap_
 * functions below: the Makefile links this program with ld's --wrap for
 * them (OOM_WRAP), which sends every such call in libaedet.a (and here) to
 * them. Allocations inside other libraries (libc's own, libjpeg, zlib,
 * libhdf5) are not counted and never fail; libpng's are, as libpng
 * allocates through the library's own functions (src/data/image_decode.c,
 * png_write.c). */
#include "support.h"

#include "aedet.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#if defined(__SANITIZE_ADDRESS__) /* gcc */
#define OOM_ASAN 1
#elif defined(__has_feature) /* clang */
#if __has_feature(address_sanitizer)
#define OOM_ASAN 1
#endif
#endif
#ifdef OOM_ASAN
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() __lsan_do_recoverable_leak_check()
#else
#define LEAK_CHECK() 0
#endif

void *__real_malloc(size_t size);
void *__real_calloc(size_t count, size_t size);
void *__real_realloc(void *p, size_t size);
int __real_posix_memalign(void **p, size_t alignment, size_t size);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);

/* Allocations counted since oom_arm, and the one that fails (0: none). */
static atomic_long seen, fail_at;

/* 1 when this allocation is the one to fail. */
static int failing(void)
{
    if (atomic_load(&fail_at) == 0)
        return 0;
    if (atomic_fetch_add(&seen, 1) + 1 != atomic_load(&fail_at))
        return 0;
    errno = ENOMEM;
    return 1;
}

void *__wrap_malloc(size_t size) { return failing() ? NULL : __real_malloc(size); }
void *__wrap_calloc(size_t count, size_t size)
{
    return failing() ? NULL : __real_calloc(count, size);
}
void *__wrap_realloc(void *p, size_t size) { return failing() ? NULL : __real_realloc(p, size); }
int __wrap_posix_memalign(void **p, size_t alignment, size_t size)
{
    return failing() ? ENOMEM : __real_posix_memalign(p, alignment, size);
}
char *__wrap_strdup(const char *s) { return failing() ? NULL : __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n) { return failing() ? NULL : __real_strndup(s, n); }

static void oom_arm(long n)
{
    atomic_store(&seen, 0);
    atomic_store(&fail_at, n);
}

/* Disarms; returns the allocations the call made. */
static long oom_disarm(void)
{
    atomic_store(&fail_at, 0);
    return atomic_load(&seen);
}

/* Called by an attempt once the entry point has returned: the checks that
 * follow allocate for themselves, neither counted nor failed. */
static void oom_pause(void)
{
    atomic_store(&fail_at, 0);
}

/* One call of an entry point: its status; on success it releases what the
 * call made (so that the leak check sees only what a failure left). */
typedef ae_status (*attempt_fn)(void *ctx, ae_error *err);

/* Runs fn with allocation 1, 2, ... failing until a run makes fewer
 * allocations than the one set to fail; returns the allocations of that
 * last run. A run whose failed allocation the call survives (a fallback)
 * may succeed; one that fails must say AE_ERR_NOMEM. The in_len bytes at
 * in (the entry point's inputs; NULL: none) must be as they were after
 * every run. */
static long each_allocation_fails_on(const char *what, attempt_fn fn, void *ctx, const void *in,
                                     size_t in_len)
{
    /* static: still reachable after a failed check jumps out of here, so
     * that the leak checks of the entry points after it stay quiet */
    static void *before;
    free(before);
    before = in ? malloc(in_len) : NULL;
    if (in) {
        assert_non_null(before);
        memcpy(before, in, in_len);
    }
    for (long n = 1;; n++) {
        ae_error err;
        ae_error_clear(&err);
        oom_arm(n);
        const ae_status st = fn(ctx, &err);
        const long made = oom_disarm();
        if (in && memcmp(before, in, in_len) != 0)
            fail_msg("%s: allocation %ld failing changed the inputs", what, n);
        if (made < n) {
            free(before);
            before = NULL;
            if (st != AE_OK)
                fail_msg("%s: %s with no allocation failing: %s", what, ae_status_name(st),
                         err.message);
            if (LEAK_CHECK())
                fail_msg("%s: leaks (above)", what);
            if (made)
                print_message("%s: %ld allocations, each failure AE_ERR_NOMEM\n", what, made);
            else
                print_message("%s: no allocation\n", what);
            return made;
        }
        if (st != AE_OK && st != AE_ERR_NOMEM)
            fail_msg("%s: allocation %ld failing gave %s: %s", what, n, ae_status_name(st),
                     err.message);
        if (st == AE_ERR_NOMEM && !err.message[0])
            fail_msg("%s: allocation %ld failing: AE_ERR_NOMEM without a message", what, n);
    }
}

static long each_allocation_fails(const char *what, attempt_fn fn, void *ctx)
{
    return each_allocation_fails_on(what, fn, ctx, NULL, 0);
}

/* A result (a struct the call fills) must be all zero after a failure:
 * never half filled, and safe to free. */
static void expect_no_result(ae_status st, const void *out, size_t size)
{
    const unsigned char *p = out;
    for (size_t i = 0; st != AE_OK && i < size; i++)
        if (p[i])
            fail_msg("a call that failed (%s) left a half-filled result", ae_status_name(st));
}

enum { BATCH = 3, PIXELS = 8 * 8, LATENT = 32 };

/* A model (the tutorial's, for 8x8 gray images) with its weights set, and
 * images for it. */
typedef struct {
    ae_config cfg;
    ae_model *model;
    ae_meta *meta;
    float x[BATCH * PIXELS];
    const char *path;
} fixture;

static void fixture_make(fixture *f)
{
    ae_config_init(&f->cfg, 8, 8, 1);
    ae_error err;
    if (ae_model_create(&f->cfg, BATCH, &f->model, &err) != AE_OK)
        fail_msg("create: %s", err.message);
    ae_model_init_weights(f->model, 7);
    f->meta = ae_meta_new();
    assert_non_null(f->meta);
    assert_int_equal(ae_meta_set_str(f->meta, "note", "out of memory", &err), AE_OK);
    for (int i = 0; i < BATCH * PIXELS; i++)
        f->x[i] = (float)((i * 37) % 101) / 100.0f;
    f->path = test_path("oom.aedet");
}

static ae_status create(void *ctx, ae_error *err)
{
    const fixture *f = ctx;
    ae_model *m = NULL;
    ae_status st = ae_model_create(&f->cfg, BATCH, &m, err);
    if (st == AE_OK)
        ae_model_free(m);
    else if (m)
        fail_msg("create failed but returned a model");
    return st;
}

static ae_status save(void *ctx, ae_error *err)
{
    const fixture *f = ctx;
    remove(f->path);
    ae_status st = ae_model_save(f->path, f->model, f->meta, 1, err);
    struct stat sb;
    if (st != AE_OK && stat(f->path, &sb) == 0)
        fail_msg("a failed save left %s", f->path);
    return st;
}

static ae_status load(void *ctx, ae_error *err)
{
    const fixture *f = ctx;
    ae_model *m = NULL;
    ae_meta *meta = NULL;
    int has_optimizer = -1;
    ae_status st = ae_model_load(f->path, BATCH, &m, &meta, &has_optimizer, err);
    if (st == AE_OK) {
        assert_int_equal(has_optimizer, 1);
        assert_string_equal(ae_meta_get_str(meta, "note"), "out of memory");
        ae_model_free(m);
        ae_meta_free(meta);
    }
    return st;
}

static ae_status inspect(void *ctx, ae_error *err)
{
    const fixture *f = ctx;
    ae_model_summary summary;
    ae_meta *meta = NULL;
    ae_status st = ae_model_inspect(f->path, &summary, &meta, err);
    if (st == AE_OK)
        ae_meta_free(meta);
    return st;
}

static ae_status score(void *ctx, ae_error *err)
{
    fixture *f = ctx;
    float errors[BATCH], recon[BATCH * PIXELS], latent[BATCH * LATENT];
    ae_status st = ae_model_score(f->model, f->x, BATCH, errors, recon, err);
    if (st == AE_OK)
        st = ae_model_encode(f->model, f->x, BATCH, latent, err);
    if (st == AE_OK)
        st = ae_model_decode(f->model, latent, BATCH, recon, err);
    return st;
}

static ae_status train_step(void *ctx, ae_error *err)
{
    fixture *f = ctx;
    ae_adam_config adam;
    ae_adam_config_init(&adam, 1e-3f, 0);
    float loss;
    return ae_model_train_step(f->model, &adam, f->x, BATCH, &loss, err);
}

/* The file format alone: metadata made and copied, a tensor encoded into
 * bytes and parsed back. */
static ae_status format(void *ctx, ae_error *err)
{
    (void)ctx;
    static const float values[6] = {1, 2, 3, 4, 5, 6};
    ae_file_tensor t = {.name = "w", .kind = AE_KIND_PARAM, .ndim = 2, .shape = {2, 3}, .count = 6, .data = values};
    ae_meta *meta = ae_meta_new(), *copy = NULL;
    uint8_t *bytes = NULL;
    size_t len = 0;
    ae_model_file *f = NULL;
    ae_status st = meta ? AE_OK : ae_fail(err, AE_ERR_NOMEM, "out of memory for metadata");
    if (st == AE_OK)
        st = ae_meta_set_str(meta, "note", "a string", err);
    if (st == AE_OK)
        st = ae_meta_set_floats(meta, "values", values, 6, err);
    if (st == AE_OK)
        st = ae_meta_copy(meta, &copy, err);
    if (st == AE_OK)
        st = ae_model_file_encode(copy, &t, 1, &bytes, &len, err);
    if (st == AE_OK)
        st = ae_model_file_parse(bytes, len, "format", &f, err);
    oom_pause();
    if (st == AE_OK) {
        float back[6];
        ae_model_file_copy_tensor(f, ae_model_file_find(f, "w", AE_KIND_PARAM), back);
        assert_memory_equal(back, values, sizeof back);
    }
    ae_model_file_free(f);
    free(bytes);
    ae_meta_free(copy);
    ae_meta_free(meta);
    return st;
}

static void test_model_entry_points(void **state)
{
    (void)state;
    ae_set_num_threads(2); /* the pool's workers are made, and can fail */
    fixture f;
    fixture_make(&f);
    assert_true(each_allocation_fails("ae_meta_*, ae_model_file_encode, _parse", format, NULL) > 0);
    assert_true(each_allocation_fails("ae_model_create", create, &f) > 0);
    assert_true(each_allocation_fails("ae_model_save", save, &f) > 0);
    assert_true(each_allocation_fails("ae_model_load", load, &f) > 0);
    assert_true(each_allocation_fails("ae_model_inspect", inspect, &f) > 0);
    /* a step and a score allocate nothing: the buffers come with the model */
    assert_int_equal(each_allocation_fails("ae_model_score, _encode, _decode", score, &f), 0);
    assert_int_equal(each_allocation_fails("ae_model_train_step", train_step, &f), 0);
    ae_model_free(f.model);
    ae_meta_free(f.meta);
}

/* ae_dataset_open on a source, and with load every item loaded; freed on
 * success. */
typedef struct {
    ae_source src;
    int load;
} data_case;

static ae_status open_and_load(void *ctx, ae_error *err)
{
    const data_case *c = ctx;
    ae_dataset ds;
    ae_status st = ae_dataset_open(&c->src, &ds, err);
    if (st != AE_OK)
        return st;
    for (size_t i = 0; c->load && i < ds.count && st == AE_OK; i++) {
        ae_image img;
        st = ae_dataset_load(&ds, i, &img, err);
        if (st == AE_OK)
            ae_image_free(&img);
    }
    ae_dataset_free(&ds);
    return st;
}

typedef struct {
    char text[3 * 4400];
    size_t len;
} list_case;

static ae_status open_list(void *ctx, ae_error *err)
{
    const list_case *c = ctx;
    ae_dataset ds;
    ae_status st = ae_dataset_open_list(NULL, c->text, c->len, "list.txt", &ds, err);
    oom_pause();
    expect_no_result(st, &ds, sizeof ds);
    if (st == AE_OK)
        assert_int_equal(ds.count, 3);
    ae_dataset_free(&ds);
    return st;
}

/* An open data set, and what the loaders and the choosers are given. */
typedef struct {
    ae_dataset ds;
    size_t items[3];
    ae_loader_config cfg;
} loader_case;

static ae_status load_batches(void *ctx, ae_error *err)
{
    const loader_case *c = ctx;
    ae_loader *l = NULL;
    ae_status st = ae_loader_create(&c->ds, c->items, 3, &c->cfg, &l, err);
    size_t images = 0;
    if (st == AE_OK)
        st = ae_loader_start(l, 2, 1, 7, err);
    for (ae_batch b = {.count = 1}; st == AE_OK && b.count > 0; images += (size_t)b.count)
        st = ae_loader_next(l, &b, err);
    oom_pause();
    if (st == AE_OK) {
        assert_int_equal(images, 3);
        assert_int_equal(ae_loader_num_bad(l), 0); /* out of memory is no bad image */
    }
    ae_loader_free(l);
    return st;
}

/* A whole training run on 3 images: the split, both loaders, the model,
 * ae_train (with the best epoch kept), the threshold and the metadata. */
typedef struct {
    const ae_dataset *ds;
    const size_t *items;
    ae_fit_options options;
} fit_case;

static ae_status fit(void *ctx, ae_error *err)
{
    const fit_case *c = ctx;
    ae_model *m = NULL;
    ae_meta *meta = NULL;
    ae_status st = ae_fit(c->ds, c->items, 3, &c->options, &m, &meta, err);
    oom_pause();
    if (st != AE_OK) {
        assert_null(m);
        assert_null(meta);
    }
    ae_model_free(m);
    ae_meta_free(meta);
    return st;
}

/* Three 4x5 RGB images and their labels from memory (the Python package's way in). */
static ae_status from_pixels(void *ctx, ae_error *err)
{
    (void)ctx;
    static uint8_t pixels[3 * 4 * 5 * 3];
    static const int labels[3] = {0, 1, 0};
    ae_dataset ds;
    ae_status st = ae_dataset_from_pixels(pixels, 3, 4, 5, 3, labels, &ds, err);
    oom_pause();
    if (st == AE_OK) {
        assert_int_equal(ds.count, 3);
        ae_dataset_free(&ds);
    }
    return st;
}

static ae_status size_stats(void *ctx, ae_error *err)
{
    const loader_case *c = ctx;
    ae_size_stats stats;
    ae_status st = ae_dataset_size_stats(&c->ds, c->items, 3, &stats, err);
    oom_pause();
    if (st == AE_OK)
        assert_int_equal(stats.median_width, 5);
    return st;
}

static ae_status select_and_split(void *ctx, ae_error *err)
{
    const loader_case *c = ctx;
    static const int normal[] = {0}, anomaly[] = {1};
    ae_recipe recipe = {.normal = normal, .num_normal = 1, .anomaly = anomaly, .num_anomaly = 1,
                        .contamination = 1, .seed = 3};
    size_t *chosen = NULL, *train = NULL, *val = NULL, count = 0, num_train = 0, num_val = 0;
    ae_status st = ae_recipe_select(&c->ds, &recipe, &chosen, &count, err);
    if (st == AE_OK)
        st = ae_split(chosen, count, 0.5, 9, &train, &num_train, &val, &num_val, err);
    oom_pause();
    if (st == AE_OK)
        assert_int_equal(num_train + num_val, 3);
    else if (train || val)
        fail_msg("a failed split returned parts");
    free(chosen);
    free(train);
    free(val);
    return st;
}

static void test_dataset_entry_points(void **state)
{
    (void)state;
    /* a folder of three PNGs in two subfolders, and a CSV naming them */
    char dir[4096], csv[4096];
    snprintf(dir, sizeof dir, "%s", test_path("oom-images"));
    mkdir(dir, 0777);
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/a", dir);
    mkdir(sub, 0777);
    snprintf(sub, sizeof sub, "%s/b", dir);
    mkdir(sub, 0777);
    const char *names[3] = {"a/one.png", "a/two.png", "b/three.png"};
    uint8_t px[4 * 5 * 3];
    for (int k = 0; k < 3; k++) {
        for (size_t j = 0; j < sizeof px; j++)
            px[j] = (uint8_t)(j * (k + 3));
        char path[4300];
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        test_write_png(path, px, 4, 5, 2, 8);
    }
    snprintf(csv, sizeof csv, "%s", test_path("oom-labels.csv"));
    const char rows[] = "Filename,Label\na/one.png,0\na/two.png,1\nb/three.png,0\n";
    test_write_file(csv, rows, strlen(rows));
    data_case folder = {{.kind = AE_SOURCE_FOLDER, .root = dir}, 1};
    data_case classes = {{.kind = AE_SOURCE_CLASS_FOLDERS, .root = dir}, 1};
    data_case labels = {{.kind = AE_SOURCE_CSV, .root = dir, .labels = csv}, 1};
    assert_true(each_allocation_fails("ae_dataset_open (folder)", open_and_load, &folder) > 0);
    assert_true(each_allocation_fails("ae_dataset_open (class folders)", open_and_load,
                                      &classes) > 0);
    assert_true(each_allocation_fails("ae_dataset_open (CSV)", open_and_load, &labels) > 0);

    /* three 2x2 images and their labels as IDX files */
    static const uint8_t images[] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2,
                                     1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    static const uint8_t classes_idx[] = {0, 0, 8, 1, 0, 0, 0, 3, 0, 1, 0};
    char images_path[4096], labels_path[4096];
    snprintf(images_path, sizeof images_path, "%s", test_path("oom-images.idx"));
    snprintf(labels_path, sizeof labels_path, "%s", test_path("oom-labels.idx"));
    test_write_file(images_path, images, sizeof images);
    test_write_file(labels_path, classes_idx, sizeof classes_idx);
    data_case idx = {{.kind = AE_SOURCE_IDX, .root = images_path, .labels = labels_path}, 1};
    assert_true(each_allocation_fails("ae_dataset_open (IDX), _load", open_and_load, &idx) > 0);

    /* the same PNGs as a list of paths */
    list_case list = {.len = 0};
    for (int k = 0; k < 3; k++)
        list.len += (size_t)snprintf(list.text + list.len, sizeof list.text - list.len, "%s/%s\n", dir,
                                     names[k]);
    assert_true(each_allocation_fails_on("ae_dataset_open_list", open_list, &list, &list, sizeof list) > 0);

    /* the class folders' data set, its loaders and what is chosen from it */
    loader_case lc = {.cfg = {.height = 3, .width = 7, .channels = 1, .threads = 1}};
    ae_error err;
    assert_int_equal(ae_dataset_open(&classes.src, &lc.ds, &err), AE_OK);
    for (size_t i = 0; i < 3; i++)
        lc.items[i] = i;
    assert_true(each_allocation_fails_on("ae_loader_create, _start, _next (in memory)", load_batches, &lc,
                                         lc.items, sizeof lc.items) > 0);
    lc.cfg.memory_budget = 1; /* streamed by a decoding thread */
    assert_true(each_allocation_fails_on("ae_loader_create, _start, _next (streamed)", load_batches, &lc,
                                         lc.items, sizeof lc.items) > 0);
    lc.cfg.one_pass = 1; /* checked while streaming */
    assert_true(each_allocation_fails_on("ae_loader_create, _start, _next (one pass)", load_batches, &lc,
                                         lc.items, sizeof lc.items) > 0);
    lc.cfg.one_pass = 0;
    assert_true(each_allocation_fails_on("ae_dataset_size_stats", size_stats, &lc, lc.items,
                                         sizeof lc.items) > 0);
    assert_true(each_allocation_fails_on("ae_recipe_select, ae_split", select_and_split, &lc, lc.items,
                                         sizeof lc.items) > 0);
    assert_true(each_allocation_fails("ae_dataset_from_pixels", from_pixels, NULL) > 0);
    fit_case fc = {.ds = &lc.ds, .items = lc.items};
    ae_fit_options_init(&fc.options);
    fc.options.epochs = 2;
    fc.options.batch_size = 2;
    fc.options.height = fc.options.width = 4;
    fc.options.channels = 1;
    fc.options.num_filters = 1;
    fc.options.filters[0] = 4;
    fc.options.latent_dim = 2;
    fc.options.val_fraction = 0.34; /* one image held out */
    fc.options.keep_best = 1;
    fc.options.threads = 1;
    assert_true(each_allocation_fails_on("ae_fit (ae_train, loaders, model)", fit, &fc, lc.items,
                                         sizeof lc.items) > 0);
    ae_dataset_free(&lc.ds);
}

/* ---- whole files, and the readers and writers of aedet/image.h ---- */

/* A file's path, for the entry points that read it, and its bytes, for
 * those that parse them. */
typedef struct {
    char path[4096];
    uint8_t *bytes;
    size_t len;
} input_file;

static void input_file_make(input_file *f, const char *name)
{
    snprintf(f->path, sizeof f->path, "%s", test_path(name));
    ae_error err;
    if (ae_read_file(f->path, &f->bytes, &f->len, &err) != AE_OK)
        fail_msg("%s", err.message);
}

static ae_status read_whole(void *ctx, ae_error *err)
{
    const input_file *f = ctx;
    uint8_t *bytes = (uint8_t *)f;
    size_t len = 1;
    ae_status st = ae_read_file(f->path, &bytes, &len, err);
    oom_pause();
    if (st == AE_OK) {
        assert_true(len == f->len && !memcmp(bytes, f->bytes, len));
        free(bytes);
    } else if (bytes || len) {
        fail_msg("a failed read returned bytes");
    }
    return st;
}

/* Each reader from the file's bytes (from_file 0) or from its path (1). */
static ae_status check_csv(const input_file *f, int from_file, ae_error *err)
{
    ae_csv csv;
    memset(&csv, 0xa5, sizeof csv);
    ae_status st = from_file ? ae_csv_read(f->path, &csv, err)
                             : ae_csv_parse((const char *)f->bytes, f->len, f->path, &csv, err);
    oom_pause();
    expect_no_result(st, &csv, sizeof csv);
    if (st == AE_OK)
        assert_int_equal(csv.num_rows, 3);
    ae_csv_free(&csv);
    return st;
}

static ae_status check_idx(const input_file *f, int from_file, ae_error *err)
{
    ae_idx idx;
    memset(&idx, 0xa5, sizeof idx);
    ae_status st = from_file ? ae_idx_read(f->path, &idx, err) : ae_idx_parse(f->bytes, f->len, f->path, &idx, err);
    oom_pause();
    expect_no_result(st, &idx, sizeof idx);
    if (st == AE_OK)
        assert_int_equal(idx.count, 3);
    ae_idx_free(&idx);
    return st;
}

static ae_status check_image(const input_file *f, int from_file, ae_error *err)
{
    ae_image img;
    memset(&img, 0xa5, sizeof img);
    ae_status st = from_file ? ae_image_load(f->path, &img, err) : ae_image_decode(f->bytes, f->len, f->path, &img, err);
    oom_pause();
    expect_no_result(st, &img, sizeof img);
    if (st == AE_OK)
        assert_true(img.height == 4 && img.width == 5);
    else if (!strstr(err->message, f->path))
        fail_msg("the message does not name the file: %s", err->message);
    ae_image_free(&img);
    return st;
}

static ae_status csv_parse(void *ctx, ae_error *err) { return check_csv(ctx, 0, err); }
static ae_status csv_read(void *ctx, ae_error *err) { return check_csv(ctx, 1, err); }
static ae_status idx_parse(void *ctx, ae_error *err) { return check_idx(ctx, 0, err); }
static ae_status idx_read(void *ctx, ae_error *err) { return check_idx(ctx, 1, err); }
static ae_status image_decode(void *ctx, ae_error *err) { return check_image(ctx, 0, err); }
static ae_status image_load(void *ctx, ae_error *err) { return check_image(ctx, 1, err); }

static ae_status image_prepare(void *ctx, ae_error *err)
{
    const ae_image *img = ctx;
    uint8_t out[3 * 7];
    return ae_image_prepare(img, 3, 7, 1, out, err); /* resized and made gray */
}

/* The writers: each writes over a file that says "old", alone in a folder
 * of its own, so a failure must leave it saying so, and no temp file. */
typedef struct {
    char dir[4096], path[4200];
    uint8_t pixels[4 * 5 * 3];
} output_file;

static void expect_old_file_only(const output_file *o)
{
    uint8_t *bytes;
    size_t len;
    ae_error err;
    assert_int_equal(ae_read_file(o->path, &bytes, &len, &err), AE_OK);
    if (len != 3 || memcmp(bytes, "old", 3))
        fail_msg("a failed write changed %s", o->path);
    free(bytes);
    DIR *d = opendir(o->dir);
    assert_non_null(d);
    int files = 0;
    for (struct dirent *e; (e = readdir(d));)
        files += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    if (files != 1)
        fail_msg("a failed write left a temp file in %s", o->dir);
}

/* After a write that returned st: a failure must have left the old file as
 * it was; either way the old file is put back for the next run. */
static ae_status written(const output_file *o, ae_status st)
{
    oom_pause();
    if (st != AE_OK)
        expect_old_file_only(o);
    test_write_file(o->path, "old", 3);
    return st;
}

static ae_status write_atomic(void *ctx, ae_error *err)
{
    const output_file *o = ctx;
    return written(o, ae_write_file_atomic(o->path, "new", 3, err));
}

static ae_status write_stream(void *ctx, ae_error *err)
{
    const output_file *o = ctx;
    ae_atomic_file af;
    ae_status st = ae_atomic_open(o->path, &af, err);
    if (st == AE_OK) {
        fputs("new", af.f);
        st = ae_atomic_commit(&af, 1, err);
    }
    return written(o, st);
}

static ae_status png_write(void *ctx, ae_error *err)
{
    const output_file *o = ctx;
    return written(o, ae_png_write(o->path, o->pixels, 4, 5, 3, err));
}

static ae_status png_encode(void *ctx, ae_error *err)
{
    const output_file *o = ctx;
    uint8_t *png = (uint8_t *)ctx;
    size_t len = 1;
    ae_status st = ae_png_encode(o->pixels, 4, 5, 3, &png, &len, err);
    oom_pause();
    if (st == AE_OK)
        free(png);
    else if (png)
        fail_msg("a failed encoding returned bytes");
    return st;
}

/* Writes bytes gzip-compressed (zlib's allocations are its own: never failed). */
static void write_gzip(const char *path, const uint8_t *bytes, size_t len)
{
    gzFile gz = gzopen(path, "wb");
    assert_non_null(gz);
    assert_int_equal(gzwrite(gz, bytes, (unsigned)len), (int)len);
    assert_int_equal(gzclose(gz), Z_OK);
}

static void test_file_entry_points(void **state)
{
    (void)state;
    static const uint8_t idx_bytes[] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2,
                                        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const char rows[] = "Filename,Label\r\n\"a,b.png\",0\nb.png,1\n\"c\"\"d.png\",0\n";
    output_file o;
    for (size_t j = 0; j < sizeof o.pixels; j++)
        o.pixels[j] = (uint8_t)(j * 7);
    uint8_t gray[4 * 5], palette[4 * 5], cmyk[4 * 5 * 4];
    for (size_t j = 0; j < sizeof gray; j++)
        gray[j] = (uint8_t)(j * 13), palette[j] = (uint8_t)(j % 4);
    for (size_t j = 0; j < sizeof cmyk; j++)
        cmyk[j] = (uint8_t)(j * 5);
    test_write_file(test_path("oom.csv"), rows, strlen(rows));
    test_write_file(test_path("oom.idx"), idx_bytes, sizeof idx_bytes);
    write_gzip(test_path("oom.idx.gz"), idx_bytes, sizeof idx_bytes);
    test_write_png(test_path("oom-rgb.png"), o.pixels, 4, 5, 2, 8);
    test_write_png(test_path("oom-gray.png"), gray, 4, 5, 0, 8);
    test_write_png(test_path("oom-palette.png"), palette, 4, 5, 3, 2);
    test_write_jpeg(test_path("oom-rgb.jpg"), o.pixels, 4, 5, 3, 90);
    test_write_jpeg(test_path("oom-gray.jpg"), gray, 4, 5, 1, 90);
    test_write_jpeg(test_path("oom-cmyk.jpg"), cmyk, 4, 5, 4, 90);
    input_file csv, idx, gz, png[3], jpeg[3];
    input_file_make(&csv, "oom.csv");
    input_file_make(&idx, "oom.idx");
    input_file_make(&gz, "oom.idx.gz");
    input_file_make(&png[0], "oom-rgb.png");
    input_file_make(&png[1], "oom-gray.png");
    input_file_make(&png[2], "oom-palette.png");
    input_file_make(&jpeg[0], "oom-rgb.jpg");
    input_file_make(&jpeg[1], "oom-gray.jpg");
    input_file_make(&jpeg[2], "oom-cmyk.jpg");
    const struct {
        const char *what;
        attempt_fn fn;
        input_file *f;
    } readers[] = {
        {"ae_read_file", read_whole, &csv},
        {"ae_csv_parse", csv_parse, &csv},
        {"ae_csv_read", csv_read, &csv},
        {"ae_idx_parse", idx_parse, &idx},
        {"ae_idx_read", idx_read, &idx},
        {"ae_idx_parse (gzip)", idx_parse, &gz},
        {"ae_idx_read (gzip)", idx_read, &gz},
        {"ae_image_decode (RGB PNG)", image_decode, &png[0]},
        {"ae_image_decode (gray PNG)", image_decode, &png[1]},
        {"ae_image_decode (palette PNG)", image_decode, &png[2]},
        {"ae_image_decode (RGB JPEG)", image_decode, &jpeg[0]},
        {"ae_image_decode (gray JPEG)", image_decode, &jpeg[1]},
        {"ae_image_decode (CMYK JPEG)", image_decode, &jpeg[2]},
        {"ae_image_load (PNG)", image_load, &png[0]},
        {"ae_image_load (JPEG)", image_load, &jpeg[2]},
    };
    for (size_t i = 0; i < sizeof readers / sizeof *readers; i++)
        assert_true(each_allocation_fails_on(readers[i].what, readers[i].fn, readers[i].f, readers[i].f->bytes,
                                             readers[i].f->len) > 0);

    ae_image img;
    ae_error err;
    assert_int_equal(ae_image_decode(png[0].bytes, png[0].len, NULL, &img, &err), AE_OK);
    assert_true(each_allocation_fails_on("ae_image_prepare", image_prepare, &img, img.pixels,
                                         (size_t)4 * 5 * 3) > 0);
    ae_image_free(&img);

    snprintf(o.dir, sizeof o.dir, "%s", test_path("oom-out"));
    mkdir(o.dir, 0777);
    snprintf(o.path, sizeof o.path, "%s/out.bin", o.dir);
    test_write_file(o.path, "old", 3);
    assert_true(each_allocation_fails_on("ae_png_encode", png_encode, &o, &o, sizeof o) > 0);
    assert_true(each_allocation_fails_on("ae_png_write", png_write, &o, &o, sizeof o) > 0);
    assert_true(each_allocation_fails_on("ae_write_file_atomic", write_atomic, &o, &o, sizeof o) > 0);
    assert_true(each_allocation_fails_on("ae_atomic_open, _commit", write_stream, &o, &o, sizeof o) > 0);
    input_file *all[] = {&csv, &idx, &gz, &png[0], &png[1], &png[2], &jpeg[0], &jpeg[1], &jpeg[2]};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]->bytes);
}

/* ---- metrics, thresholds, metrics.json and the report (aedet/eval.h, report.h) ---- */

enum { NE = 40 };

/* Every input of the metrics, checked unchanged after each run. */
typedef struct {
    float scores[NE];
    int labels[NE], classes[NE];
    float maps[2][NE];
    uint8_t masks[2][NE];
    const float *map_ptrs[2];
    const uint8_t *mask_ptrs[2];
    size_t pixels[2];
    ae_threshold threshold;
    ae_metrics_summary summary;
    uint8_t *png;
    size_t png_len;
    ae_report_image gallery;
    ae_report_kv config;
    ae_report report;
    output_file out; /* metrics.json and the report, written over "old" */
} eval_inputs;

/* What the entry points write: not inputs. */
static struct {
    double value, quantiles[3];
    size_t order[NE];
    ae_confusion confusion;
    ae_class_auc class_auc[2];
    ae_pixel_auc pixel_auc;
    ae_threshold threshold;
    ae_metrics_summary summary;
} got;
static const int normal_class[] = {0}, eval_classes[] = {1, 2};
static const double qs[] = {0.1, 0.5, 0.99};

/* An attempt that is one call of an entry point over in. */
#define ATTEMPT(name, call)                             \
    static ae_status name(void *ctx, ae_error *err)     \
    {                                                   \
        const eval_inputs *in = ctx;                    \
        return call;                                    \
    }

ATTEMPT(roc_auc, ae_roc_auc(in->scores, in->labels, NE, &got.value, err))
ATTEMPT(average_precision, ae_average_precision(in->scores, in->labels, NE, &got.value, err))
ATTEMPT(rank_by_score, ae_rank_by_score(in->scores, NE, got.order, err))
ATTEMPT(confusion_at, ae_confusion_at(in->scores, in->labels, NE, 0.5, &got.confusion, err))
ATTEMPT(best_f1, ae_best_f1_threshold(in->scores, in->labels, NE, &got.value, NULL, err))
ATTEMPT(per_class_auc,
        ae_per_class_auc(in->scores, in->classes, NE, normal_class, 1, eval_classes, 2, got.class_auc, err))
/* a sort budget of 16 pixels: several passes over the maps */
ATTEMPT(pixel_roc_auc, ae_pixel_roc_auc(in->map_ptrs, in->mask_ptrs, in->pixels, 2, 16, &got.pixel_auc, err))
ATTEMPT(quantile, ae_quantile(in->scores, NE, 0.9, &got.value, err))
ATTEMPT(quantiles, ae_quantiles(in->scores, NE, qs, 3, got.quantiles, err))
ATTEMPT(threshold_quantile, ae_threshold_quantile(in->scores, NE, 0.9, "scored set", &got.threshold, err))
ATTEMPT(threshold_mean_sd, ae_threshold_mean_sd(in->scores, NE, 3, "scored set", &got.threshold, err))
ATTEMPT(threshold_best_f1, ae_threshold_best_f1(in->scores, in->labels, NE, "scored set", &got.threshold, err))
ATTEMPT(summarize, ae_metrics_summarize(in->scores, in->labels, NE, &in->threshold, &got.summary, err))
ATTEMPT(write_json, written(&in->out, ae_metrics_write_json(in->out.path, &in->summary, err)))
ATTEMPT(write_report, written(&in->out, ae_report_write(in->out.path, &in->report, err)))

static ae_status curve(const eval_inputs *in, int roc, ae_error *err)
{
    ae_curve c;
    memset(&c, 0xa5, sizeof c);
    ae_status st = roc ? ae_roc_curve(in->scores, in->labels, NE, &c, err)
                       : ae_pr_curve(in->scores, in->labels, NE, &c, err);
    oom_pause();
    expect_no_result(st, &c, sizeof c);
    if (st == AE_OK)
        ae_curve_free(&c);
    return st;
}

ATTEMPT(roc_curve, curve(in, 1, err))
ATTEMPT(pr_curve, curve(in, 0, err))

/* ae_metrics_json or ae_report_html: a string, or NULL after a failure. */
static ae_status text(const eval_inputs *in, int report, ae_error *err)
{
    char *s = NULL; /* left as it is on failure */
    size_t len = 0;
    ae_status st = report ? ae_report_html(&in->report, &s, &len, err) : ae_metrics_json(&in->summary, &s, &len, err);
    oom_pause();
    if (st == AE_OK)
        assert_int_equal(strlen(s), len);
    else if (s)
        fail_msg("a failed call returned text");
    free(s);
    return st;
}

ATTEMPT(metrics_json, text(in, 0, err))
ATTEMPT(report_html, text(in, 1, err))

static ae_status json_stream(void *ctx, ae_error *err)
{
    const eval_inputs *in = ctx;
    FILE *f = fopen("/dev/null", "w");
    assert_non_null(f);
    ae_status st = ae_metrics_write_json_stream(f, &in->summary, err);
    fclose(f);
    return st;
}

static void eval_inputs_make(eval_inputs *in)
{
    memset(in, 0, sizeof *in);
    for (int i = 0; i < NE; i++) {
        in->labels[i] = i % 4 == 0;
        in->classes[i] = in->labels[i] ? 1 + i % 8 / 4 : 0;
        in->scores[i] = (float)((i * 17) % 23) / 23.0f + (float)in->labels[i] * 0.3f;
        for (int m = 0; m < 2; m++) {
            in->maps[m][i] = (float)((i * (m + 5)) % 11);
            in->masks[m][i] = (uint8_t)(i % (3 + m) == 0);
        }
    }
    in->scores[3] = in->scores[5]; /* ties */
    for (int m = 0; m < 2; m++) {
        in->map_ptrs[m] = in->maps[m];
        in->mask_ptrs[m] = in->masks[m];
        in->pixels[m] = NE;
    }
    ae_error err;
    assert_int_equal(ae_threshold_quantile(in->scores, NE, 0.9, "scored set", &in->threshold, &err), AE_OK);
    assert_int_equal(ae_metrics_summarize(in->scores, in->labels, NE, &in->threshold, &in->summary, &err), AE_OK);
    uint8_t gray[8 * 8];
    for (int p = 0; p < 64; p++)
        gray[p] = (uint8_t)(p * 4);
    assert_int_equal(ae_png_encode(gray, 8, 8, 1, &in->png, &in->png_len, &err), AE_OK);
    in->masks[0][0] = 1;
    in->gallery = (ae_report_image){.name = "a <b>.png", .label = "anomaly", .is_anomaly = 1, .score = 0.9f,
                                    .input_png = in->png, .input_len = in->png_len, .recon_png = in->png,
                                    .recon_len = in->png_len, .heat_png = in->png, .heat_len = in->png_len,
                                    .mask = in->masks[0], .mask_height = 5, .mask_width = 8};
    in->config = (ae_report_kv){"model input", "8 x 8 x 1"};
    static const double losses[3] = {0.3, 0.2, 0.1};
    in->report = (ae_report){.config = &in->config, .num_config = 1, .train_losses = losses,
                             .num_train_losses = 3, .val_losses = losses, .num_val_losses = 3,
                             .scores = in->scores, .count = NE, .labels = in->labels,
                             .metrics = &in->summary, .anomalous = &in->gallery, .num_anomalous = 1,
                             .typical = &in->gallery, .num_typical = 1, .heat_max = 0.5};
    snprintf(in->out.dir, sizeof in->out.dir, "%s", test_path("oom-eval"));
    mkdir(in->out.dir, 0777);
    snprintf(in->out.path, sizeof in->out.path, "%s/out.bin", in->out.dir);
    test_write_file(in->out.path, "old", 3);
}

static void test_eval_entry_points(void **state)
{
    (void)state;
    static eval_inputs inputs; /* static: reachable after a failed check */
    eval_inputs *in = &inputs;
    eval_inputs_make(in);
    const struct {
        const char *what;
        attempt_fn fn;
    } calls[] = {
        {"ae_roc_auc", roc_auc},
        {"ae_average_precision", average_precision},
        {"ae_roc_curve", roc_curve},
        {"ae_pr_curve", pr_curve},
        {"ae_rank_by_score", rank_by_score},
        {"ae_confusion_at", confusion_at},
        {"ae_best_f1_threshold", best_f1},
        {"ae_per_class_auc", per_class_auc},
        {"ae_pixel_roc_auc", pixel_roc_auc},
        {"ae_quantile", quantile},
        {"ae_quantiles", quantiles},
        {"ae_threshold_quantile", threshold_quantile},
        {"ae_threshold_mean_sd", threshold_mean_sd},
        {"ae_threshold_best_f1", threshold_best_f1},
        {"ae_metrics_summarize", summarize},
        {"ae_metrics_json", metrics_json},
        {"ae_metrics_write_json", write_json},
        {"ae_metrics_write_json_stream", json_stream},
        {"ae_report_html", report_html},
        {"ae_report_write", write_report},
    };
    for (size_t i = 0; i < sizeof calls / sizeof *calls; i++)
        each_allocation_fails_on(calls[i].what, calls[i].fn, in, in, sizeof *in);
    free(in->png);
}

/* ---- detectors, nearest latents, keras files, arrays (aedet/score.h, keras.h, array.h) ---- */

enum { NS = 4, REF = 6 };

/* Model outputs of NS images and REF reference latents, for the detectors;
 * checked unchanged after each run. */
typedef struct {
    ae_config cfg;
    ae_score_kind kind;
    float inputs[NS * PIXELS], recon[NS * PIXELS], latents[NS * LATENT], mse[NS], ref[REF * LATENT];
    uint8_t pixels[NS * 5 * 6 * 3]; /* NS 5x6 RGB images, for ae_run_pixels */
} score_inputs;

/* A detector of in->kind made, taught, scored with, saved into metadata and
 * read back from it. */
static ae_status detector_round_trip(void *ctx, ae_error *err)
{
    const score_inputs *in = ctx;
    ae_score_rule rule;
    ae_score_rule_init(&rule, in->kind);
    ae_detector *d = NULL, *back = NULL;
    ae_meta *meta = ae_meta_new();
    float scores[NS], again[NS];
    ae_status st = meta ? ae_detector_create(&rule, &d, err) : ae_fail(err, AE_ERR_NOMEM, "no metadata");
    if (st == AE_OK)
        st = ae_detector_set_reference(d, in->ref, REF, LATENT, 5, err);
    if (st == AE_OK)
        st = ae_detector_calibrate(d, &in->cfg, in->inputs, in->mse, in->recon, in->latents, NS, err);
    if (st == AE_OK)
        st = ae_detector_score(d, &in->cfg, in->inputs, in->recon, in->latents, in->mse, NS, scores, err);
    if (st == AE_OK)
        st = ae_detector_to_meta(d, meta, err);
    if (st == AE_OK)
        st = ae_detector_from_meta(meta, LATENT, "oom.aedet", &back, err);
    if (st == AE_OK)
        st = ae_detector_score(back, &in->cfg, in->inputs, in->recon, in->latents, in->mse, NS, again, err);
    oom_pause();
    if (st == AE_OK)
        assert_memory_equal(scores, again, sizeof scores);
    ae_detector_free(d);
    ae_detector_free(back);
    ae_meta_free(meta);
    return st;
}

static ae_status knn(void *ctx, ae_error *err)
{
    const score_inputs *in = ctx;
    float out[NS];
    return ae_knn_mean_distance(in->latents, NS, in->ref, REF, LATENT, 2, out, err);
}

/* ae_run_pixels with a model and no detector (the mean squared error). */
typedef struct {
    ae_model *model;
    const score_inputs *in;
} run_case;

static ae_status run_pixels(void *ctx, ae_error *err)
{
    const run_case *c = ctx;
    float scores[NS], recon[NS * PIXELS], latents[NS * LATENT];
    return ae_run_pixels(c->model, NULL, c->in->pixels, NS, 5, 6, 3, scores, recon, latents, err);
}

static ae_status keras_inspect(void *ctx, ae_error *err)
{
    ae_keras_summary summary;
    return ae_keras_inspect(ctx, &summary, err);
}

/* The tutorial's Keras weights imported, exported back in memory and to a file. */
typedef struct {
    const char *weights;
    output_file out;
} keras_case;

static ae_status keras_round_trip(void *ctx, ae_error *err)
{
    const keras_case *c = ctx;
    ae_keras_options opt;
    ae_keras_options_init(&opt);
    opt.height = 16; /* the weights' size (keras_tutorial_expected.h5 says so) */
    opt.width = 24;
    ae_model *m = NULL;
    uint8_t *bytes = NULL;
    size_t len = 0;
    ae_status st = ae_keras_import(c->weights, &opt, 2, &m, NULL, err);
    if (st != AE_OK && m)
        fail_msg("a failed import returned a model");
    if (st == AE_OK)
        st = ae_keras_export_bytes(m, &bytes, &len, err);
    if (st == AE_OK)
        st = ae_keras_export(c->out.path, m, err);
    st = written(&c->out, st);
    ae_model_free(m);
    free(bytes);
    return st;
}

static void test_score_entry_points(void **state)
{
    (void)state;
    static score_inputs inputs; /* static: reachable after a failed check */
    score_inputs *in = &inputs;
    ae_config_init(&in->cfg, 8, 8, 1);
    assert_int_equal(in->cfg.latent_dim, LATENT);
    for (int i = 0; i < NS * PIXELS; i++) {
        in->inputs[i] = (float)((i * 37) % 101) / 100.0f;
        in->recon[i] = (float)((i * 11) % 97) / 96.0f;
    }
    for (int i = 0; i < NS * LATENT; i++)
        in->latents[i] = (float)((i * 7) % 13) - 6.0f;
    for (int i = 0; i < REF * LATENT; i++)
        in->ref[i] = (float)((i * 5) % 17) - 8.0f;
    for (int i = 0; i < NS; i++)
        in->mse[i] = 0.01f * (float)(i + 1);
    for (size_t i = 0; i < sizeof in->pixels; i++)
        in->pixels[i] = (uint8_t)(i * 29);
    for (int k = AE_SCORE_MSE; k <= AE_SCORE_COMBINED; k++) {
        ae_score_rule rule;
        ae_score_rule_init(&rule, (ae_score_kind)k);
        char name[32], what[96];
        snprintf(what, sizeof what, "ae_detector_* (%s)", ae_score_rule_name(&rule, name, sizeof name));
        in->kind = (ae_score_kind)k;
        assert_true(each_allocation_fails_on(what, detector_round_trip, in, in, sizeof *in) > 0);
    }
    assert_true(each_allocation_fails_on("ae_knn_mean_distance", knn, in, in, sizeof *in) > 0);

    ae_error err;
    run_case run = {.in = in};
    assert_int_equal(ae_model_create(&in->cfg, BATCH, &run.model, &err), AE_OK);
    ae_model_init_weights(run.model, 3);
    each_allocation_fails_on("ae_run_pixels", run_pixels, &run, in, sizeof *in);
    ae_model_free(run.model);

    keras_case k = {.weights = test_fixture("keras_tutorial.weights.h5")};
    snprintf(k.out.dir, sizeof k.out.dir, "%s", test_path("oom-keras"));
    mkdir(k.out.dir, 0777);
    snprintf(k.out.path, sizeof k.out.path, "%s/out.h5", k.out.dir);
    test_write_file(k.out.path, "old", 3);
    assert_true(each_allocation_fails("ae_keras_inspect", keras_inspect, (void *)k.weights) > 0);
    assert_true(each_allocation_fails("ae_keras_import, _export_bytes, _export", keras_round_trip, &k) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_entry_points),
        cmocka_unit_test(test_dataset_entry_points),
        cmocka_unit_test(test_file_entry_points),
        cmocka_unit_test(test_eval_entry_points),
        cmocka_unit_test(test_score_entry_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
