/* Out of memory: each public entry point that allocates, run with its Nth
 * allocation failing for N = 1, 2, 3, ... until it succeeds. Every failure
 * must be AE_ERR_NOMEM, leave nothing allocated (LeakSanitizer checks after
 * each entry point) and leave what it was given as it was.
 *
 * The library's own calls to the malloc family go through the __wrap_
 * functions below: the Makefile links this program with ld's --wrap for
 * them (OOM_WRAP), which sends every such call in libaedet.a (and here) to
 * them. Allocations inside other libraries (libc's own, libpng, libjpeg)
 * are not counted and never fail. */
#include "support.h"

#include "aedet/data.h"
#include "aedet/model_file.h"
#include "aedet/nn.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* One call of an entry point: its status; on success it releases what the
 * call made (so that the leak check sees only what a failure left). */
typedef ae_status (*attempt_fn)(void *ctx, ae_error *err);

/* Runs fn with allocation 1, 2, ... failing until a run makes fewer
 * allocations than the one set to fail; returns the allocations of that
 * last run. A run whose failed allocation the call survives (a fallback)
 * may succeed; one that fails must say AE_ERR_NOMEM. */
static long each_allocation_fails(const char *what, attempt_fn fn, void *ctx)
{
    for (long n = 1;; n++) {
        ae_error err;
        ae_error_clear(&err);
        oom_arm(n);
        const ae_status st = fn(ctx, &err);
        const long made = oom_disarm();
        if (made < n) {
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

static void test_model_entry_points(void **state)
{
    (void)state;
    ae_set_num_threads(2); /* the pool's workers are made, and can fail */
    fixture f;
    fixture_make(&f);
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
    /* Not decoding them yet: a PNG or JPEG decoder that cannot allocate its
     * pixels says AE_ERR_DATA ("bad PNG: out of memory for 5x4 pixels",
     * src/data/image_decode.c), not AE_ERR_NOMEM. */
    data_case folder = {{.kind = AE_SOURCE_FOLDER, .root = dir}, 0};
    data_case classes = {{.kind = AE_SOURCE_CLASS_FOLDERS, .root = dir}, 0};
    data_case labels = {{.kind = AE_SOURCE_CSV, .root = dir, .labels = csv}, 0};
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
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_entry_points),
        cmocka_unit_test(test_dataset_entry_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
