/* Keras weights: the tutorial's weights file (written by h5py the way Keras
 * 2.x writes it, tools/keras_reference.py) imported and run against a numpy
 * forward pass of Keras' semantics; export in Keras' exact layout; round
 * trips bit for bit; the other layouts Keras writes; damaged and mismatched
 * files refused with the file and dataset named; the two subcommands. */
#include "support.h"

#include "aedet.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define WEIGHTS "keras_tutorial.weights.h5"
#define EXPECTED "keras_tutorial_expected.h5"
#define TOLERANCE 1e-5
#define N 2 /* images in the expected file */

/* A path under the test folder that stays valid (test_path's slots rotate). */
#define TMP_PATH(var, name)                                                                        \
    char var[512];                                                                                 \
    snprintf(var, sizeof var, "%s/%s", test_tmpdir(), name)

/* ---- the expected file: config, input and numpy's outputs ---- */

typedef struct {
    int height, width, channels, num_filters, filters[8], latent;
    double slope, epsilon;
    float *input, *latent_values, *output, *mse;
} expected;

static long long attr_int(hid_t f, const char *name)
{
    long long v = 0;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Aread(a, H5T_NATIVE_LLONG, &v) >= 0);
    H5Aclose(a);
    return v;
}

static double attr_double(hid_t f, const char *name)
{
    double v = 0;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0);
    H5Aclose(a);
    return v;
}

static float *read_dataset(hid_t f, const char *name, size_t count)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t s = H5Dget_space(d);
    assert_int_equal((size_t)H5Sget_simple_extent_npoints(s), count);
    float *v = malloc(count * sizeof *v);
    assert_non_null(v);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Sclose(s);
    H5Dclose(d);
    return v;
}

static void load_expected(expected *e)
{
    hid_t f = H5Fopen(test_fixture(EXPECTED), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        fail_msg("cannot open %s (run from the repo root, or set AEDET_FIXTURES)", test_fixture(EXPECTED));
    e->height = (int)attr_int(f, "height");
    e->width = (int)attr_int(f, "width");
    e->channels = (int)attr_int(f, "channels");
    e->latent = (int)attr_int(f, "latent");
    e->slope = attr_double(f, "slope");
    e->epsilon = attr_double(f, "bn_epsilon");
    hid_t a = H5Aopen(f, "filters", H5P_DEFAULT);
    hid_t s = H5Aget_space(a);
    e->num_filters = (int)H5Sget_simple_extent_npoints(s);
    assert_in_range(e->num_filters, 1, 8);
    long long fl[8];
    assert_true(H5Aread(a, H5T_NATIVE_LLONG, fl) >= 0);
    for (int i = 0; i < e->num_filters; i++)
        e->filters[i] = (int)fl[i];
    H5Sclose(s);
    H5Aclose(a);
    size_t px = (size_t)N * (size_t)(e->height * e->width * e->channels);
    e->input = read_dataset(f, "input", px);
    e->output = read_dataset(f, "output", px);
    e->latent_values = read_dataset(f, "latent", (size_t)N * (size_t)e->latent);
    e->mse = read_dataset(f, "mse", N);
    H5Fclose(f);
}

static void free_expected(expected *e)
{
    free(e->input);
    free(e->output);
    free(e->latent_values);
    free(e->mse);
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst))
            worst = d;
    }
    return worst;
}

static ae_model *import_ok(const char *path, int height, int width, ae_keras_summary *sum)
{
    ae_keras_options o;
    ae_keras_options_init(&o);
    o.height = height;
    o.width = width;
    ae_error err = {0};
    ae_model *m = NULL;
    ae_status st = ae_keras_import(path, &o, N, &m, sum, &err);
    if (st != AE_OK)
        fail_msg("importing %s: %s", path, err.message);
    return m;
}

/* The reconstruction of the expected input (N images). */
static float *reconstruct(ae_model *m, const expected *e, float *errors)
{
    size_t px = (size_t)N * (size_t)(e->height * e->width * e->channels);
    float *recon = malloc(px * sizeof *recon);
    assert_non_null(recon);
    ae_error err = {0};
    if (ae_model_score(m, e->input, N, errors, recon, &err) != AE_OK)
        fail_msg("%s", err.message);
    return recon;
}

/* ---- HDF5 surgery on copies of the fixture ---- */

static void copy_fixture(const char *dst)
{
    uint8_t *b;
    size_t len;
    ae_error err = {0};
    if (ae_read_file(test_fixture(WEIGHTS), &b, &len, &err) != AE_OK)
        fail_msg("%s", err.message);
    test_write_file(dst, b, len);
    free(b);
}

static int read_names(hid_t obj, const char *attr, char names[][128], int max)
{
    hid_t a = H5Aopen(obj, attr, H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t s = H5Aget_space(a), t = H5Aget_type(a);
    int n = (int)H5Sget_simple_extent_npoints(s);
    assert_true(n <= max);
    if (n > 0) {
        assert_int_equal(H5Tget_class(t), H5T_STRING);
        assert_true(H5Tis_variable_str(t) > 0);
        char *v[256];
        hid_t mem = H5Tcopy(H5T_C_S1);
        H5Tset_size(mem, H5T_VARIABLE);
        assert_true(H5Aread(a, mem, v) >= 0);
        for (int i = 0; i < n; i++)
            snprintf(names[i], 128, "%s", v[i]);
        H5Dvlen_reclaim(mem, s, H5P_DEFAULT, v);
        H5Tclose(mem);
    }
    H5Tclose(t);
    H5Sclose(s);
    H5Aclose(a);
    return n;
}

/* Replaces the attribute; fixed: as h5py 2 stored lists of bytes (numpy 'S' arrays). */
static void write_names(hid_t obj, const char *attr, char names[][128], int n, int fixed)
{
    if (H5Aexists(obj, attr) > 0)
        assert_true(H5Adelete(obj, attr) >= 0);
    hsize_t dims[1] = {(hsize_t)n};
    hid_t s = H5Screate_simple(1, dims, NULL), t = H5Tcopy(H5T_C_S1);
    hid_t a;
    if (fixed) {
        size_t longest = 1;
        for (int i = 0; i < n; i++)
            longest = strlen(names[i]) > longest ? strlen(names[i]) : longest;
        char *buf = calloc((size_t)n, longest);
        for (int i = 0; i < n; i++)
            memcpy(buf + (size_t)i * longest, names[i], strlen(names[i]));
        H5Tset_size(t, longest);
        H5Tset_strpad(t, H5T_STR_NULLPAD);
        a = H5Acreate2(obj, attr, t, s, H5P_DEFAULT, H5P_DEFAULT);
        assert_true(a >= 0 && H5Awrite(a, t, buf) >= 0);
        free(buf);
    } else {
        const char *v[256];
        for (int i = 0; i < n; i++)
            v[i] = names[i];
        H5Tset_size(t, H5T_VARIABLE);
        a = H5Acreate2(obj, attr, t, s, H5P_DEFAULT, H5P_DEFAULT);
        assert_true(a >= 0 && H5Awrite(a, t, v) >= 0);
    }
    H5Aclose(a);
    H5Tclose(t);
    H5Sclose(s);
}

static void write_text(hid_t obj, const char *attr, const char *text)
{
    if (H5Aexists(obj, attr) > 0)
        assert_true(H5Adelete(obj, attr) >= 0);
    hid_t s = H5Screate(H5S_SCALAR), t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    hid_t a = H5Acreate2(obj, attr, t, s, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0 && H5Awrite(a, t, &text) >= 0);
    H5Aclose(a);
    H5Tclose(t);
    H5Sclose(s);
}

static void replace_dataset(hid_t f, const char *path, int ndim, const hsize_t *dims, hid_t type,
                            const void *values)
{
    assert_true(H5Ldelete(f, path, H5P_DEFAULT) >= 0);
    hid_t s = H5Screate_simple(ndim, dims, NULL);
    hid_t d = H5Dcreate2(f, path, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0);
    H5Dclose(d);
    H5Sclose(s);
}

/* Changes value i of a float dataset in place. */
static void poke(hid_t f, const char *path, size_t i, float value)
{
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t s = H5Dget_space(d);
    size_t n = (size_t)H5Sget_simple_extent_npoints(s);
    float *v = malloc(n * sizeof *v);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    v[i] = value;
    assert_true(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    free(v);
    H5Sclose(s);
    H5Dclose(d);
}

/* Removes the names that contain needle from a weight_names list. */
static void drop_names(hid_t f, const char *group, const char *needle)
{
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    char names[256][128], kept[256][128];
    int n = read_names(g, "weight_names", names, 256), k = 0;
    for (int i = 0; i < n; i++)
        if (!strstr(names[i], needle))
            memcpy(kept[k++], names[i], 128);
    assert_true(k < n);
    write_names(g, "weight_names", kept, k, 0);
    H5Gclose(g);
}

/* ---- importing computes what Keras computes ---- */

static void test_import_matches_numpy_forward(void **state)
{
    (void)state;
    expected e;
    load_expected(&e);
    ae_keras_summary s;
    ae_model *m = import_ok(test_fixture(WEIGHTS), e.height, e.width, &s);
    assert_int_equal(s.channels, e.channels);
    assert_int_equal(s.num_filters, e.num_filters);
    for (int i = 0; i < e.num_filters; i++)
        assert_int_equal(s.filters[i], e.filters[i]);
    assert_int_equal(s.latent_dim, e.latent);
    assert_int_equal(s.num_weights, 12 * e.num_filters + 6);
    assert_int_equal(s.nested, 1);
    assert_int_equal(s.full_model, 0);
    assert_string_equal(s.keras_version, "2.11.0");
    assert_string_equal(s.backend, "tensorflow");
    const ae_config *c = ae_model_config(m);
    assert_true(fabs(c->leaky_slope - e.slope) < 1e-7 && fabs(c->bn_epsilon - e.epsilon) < 1e-10);

    ae_error err = {0};
    float latent[N * 64], errors[N];
    assert_true(e.latent <= 64);
    if (ae_model_encode(m, e.input, N, latent, &err) != AE_OK)
        fail_msg("%s", err.message);
    double dl = max_abs_diff(latent, e.latent_values, (size_t)N * (size_t)e.latent);
    float *recon = reconstruct(m, &e, errors);
    size_t px = (size_t)N * (size_t)(e.height * e.width * e.channels);
    double dr = max_abs_diff(recon, e.output, px), de = max_abs_diff(errors, e.mse, N);
    print_message("max |aedet - numpy|: latent %.3g, reconstruction %.3g, per-image MSE %.3g (%s kernels)\n", dl,
                  dr, de, ae_model_kernels(m));
    assert_true(dl <= TOLERANCE);
    assert_true(dr <= TOLERANCE);
    assert_true(de <= TOLERANCE);
    free(recon);
    ae_model_free(m);
    free_expected(&e);
}

/* The comparison above can tell a wrong layout: the same weights read as
 * 24x16 images (the grid has the same number of cells, so every shape fits)
 * compute something else. */
static void test_height_and_width_are_not_interchangeable(void **state)
{
    (void)state;
    expected e;
    load_expected(&e);
    ae_model *m = import_ok(test_fixture(WEIGHTS), e.width, e.height, NULL);
    float errors[N];
    float *recon = reconstruct(m, &e, errors);
    double d = max_abs_diff(recon, e.output, (size_t)N * (size_t)(e.height * e.width * e.channels));
    assert_true(d > 1e-3);
    free(recon);
    ae_model_free(m);
    free_expected(&e);
}

/* ---- export: Keras' layout, and round trips ---- */

static void compare_dataset(hid_t a, hid_t b, const char *path)
{
    hid_t da = H5Dopen2(a, path, H5P_DEFAULT), db = H5Dopen2(b, path, H5P_DEFAULT);
    if (da < 0 || db < 0)
        fail_msg("dataset %s: in the fixture %d, in the export %d", path, da >= 0, db >= 0);
    hid_t sa = H5Dget_space(da), sb = H5Dget_space(db), tb = H5Dget_type(db);
    hsize_t dima[4], dimb[4];
    int ra = H5Sget_simple_extent_dims(sa, dima, NULL), rb = H5Sget_simple_extent_dims(sb, dimb, NULL);
    assert_int_equal(ra, rb);
    assert_memory_equal(dima, dimb, (size_t)ra * sizeof *dima);
    assert_true(H5Tequal(tb, H5T_IEEE_F32LE) > 0);
    size_t n = (size_t)H5Sget_simple_extent_npoints(sa);
    float *va = malloc(n * sizeof *va), *vb = malloc(n * sizeof *vb);
    assert_true(H5Dread(da, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, va) >= 0);
    assert_true(H5Dread(db, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, vb) >= 0);
    if (memcmp(va, vb, n * sizeof *va))
        fail_msg("dataset %s differs", path);
    free(va);
    free(vb);
    H5Tclose(tb);
    H5Sclose(sa);
    H5Sclose(sb);
    H5Dclose(da);
    H5Dclose(db);
}

/* Exporting an imported tutorial file gives back the file's layer names,
 * weight names (in order) and every dataset, bit for bit. */
static void test_export_is_keras_layout(void **state)
{
    (void)state;
    expected e;
    load_expected(&e);
    ae_model *m = import_ok(test_fixture(WEIGHTS), e.height, e.width, NULL);
    TMP_PATH(out, "exported.weights.h5");
    ae_error err = {0};
    if (ae_keras_export(out, m, &err) != AE_OK)
        fail_msg("%s", err.message);
    hid_t a = H5Fopen(test_fixture(WEIGHTS), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t b = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(a >= 0 && b >= 0);
    char na[256][128], nb[256][128];
    int n = read_names(a, "layer_names", na, 256);
    assert_int_equal(read_names(b, "layer_names", nb, 256), n);
    for (int i = 0; i < n; i++) {
        assert_string_equal(na[i], nb[i]);
        hid_t ga = H5Gopen2(a, na[i], H5P_DEFAULT), gb = H5Gopen2(b, nb[i], H5P_DEFAULT);
        assert_true(ga >= 0 && gb >= 0);
        char wa[256][128], wb[256][128];
        int nw = read_names(ga, "weight_names", wa, 256);
        assert_int_equal(read_names(gb, "weight_names", wb, 256), nw);
        for (int j = 0; j < nw; j++) {
            assert_string_equal(wa[j], wb[j]);
            compare_dataset(ga, gb, wa[j]);
        }
        H5Gclose(ga);
        H5Gclose(gb);
    }
    hid_t top = H5Gopen2(b, "top_level_model_weights", H5P_DEFAULT);
    assert_true(top >= 0);
    assert_int_equal(read_names(top, "weight_names", nb, 256), 0);
    H5Gclose(top);
    const char *texts[][2] = {{"keras_version", "2.11.0"}, {"backend", "tensorflow"}};
    for (int i = 0; i < 2; i++) {
        hid_t at = H5Aopen(b, texts[i][0], H5P_DEFAULT), t = H5Aget_type(at);
        char *v = NULL;
        assert_true(at >= 0 && H5Aread(at, t, &v) >= 0);
        assert_string_equal(v, texts[i][1]);
        H5free_memory(v);
        H5Tclose(t);
        H5Aclose(at);
    }
    H5Fclose(a);
    H5Fclose(b);
    ae_model_free(m);
    free_expected(&e);
}

static void assert_same_model(ae_model *a, ae_model *b)
{
    assert_int_equal(ae_model_num_params(a), ae_model_num_params(b));
    assert_int_equal(ae_model_num_state(a), ae_model_num_state(b));
    assert_memory_equal(ae_model_params(a), ae_model_params(b), ae_model_num_params(a) * sizeof(float));
    assert_memory_equal(ae_model_state(a), ae_model_state(b), ae_model_num_state(a) * sizeof(float));
}

/* Another shape of model (gray, three levels, non-square), trained a few
 * steps so that no BatchNorm statistic is at its initial value: out to Keras
 * and back, every parameter and statistic bit for bit. */
static void test_round_trip_is_bit_identical(void **state)
{
    (void)state;
    ae_config cfg;
    ae_config_init(&cfg, 32, 16, 1);
    cfg.num_filters = 3;
    cfg.filters[0] = 4;
    cfg.filters[1] = 8;
    cfg.filters[2] = 12;
    cfg.latent_dim = 6;
    ae_error err = {0};
    ae_model *m = NULL;
    assert_int_equal(ae_model_create(&cfg, 4, &m, &err), AE_OK);
    ae_model_init_weights(m, 7);
    float x[4 * 32 * 16];
    ae_rng r;
    ae_rng_seed(&r, 3);
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        x[i] = (float)ae_rng_uniform(&r);
    ae_adam_config adam;
    ae_adam_config_init(&adam, 1e-2f, 0);
    for (int step = 0; step < 3; step++) {
        float loss;
        if (ae_model_train_step(m, &adam, x, 4, &loss, &err) != AE_OK)
            fail_msg("%s", err.message);
    }
    TMP_PATH(out, "gray.weights.h5");
    if (ae_keras_export(out, m, &err) != AE_OK)
        fail_msg("%s", err.message);
    ae_keras_summary s;
    ae_model *back = import_ok(out, 32, 16, &s);
    assert_int_equal(s.channels, 1);
    assert_int_equal(s.num_filters, 3);
    assert_int_equal(s.filters[2], 12);
    assert_int_equal(s.latent_dim, 6);
    assert_int_equal(s.nested, 1);
    assert_same_model(m, back);
    ae_model_free(back);
    ae_model_free(m);
}

/* ---- the other layouts Keras writes ---- */

static void expect_same_output(const char *path, const expected *e, const float *want)
{
    ae_keras_summary s;
    ae_model *m = import_ok(path, e->height, e->width, &s);
    float errors[N];
    float *recon = reconstruct(m, e, errors);
    assert_memory_equal(recon, want, (size_t)N * (size_t)(e->height * e->width * e->channels) * sizeof *recon);
    free(recon);
    ae_model_free(m);
}

/* h5py 2 stored the name lists as fixed-length strings; Keras splits long ones. */
static void test_fixed_length_names(void **state)
{
    (void)state;
    expected e;
    load_expected(&e);
    ae_model *m = import_ok(test_fixture(WEIGHTS), e.height, e.width, NULL);
    float errors[N];
    float *want = reconstruct(m, &e, errors);
    ae_model_free(m);

    TMP_PATH(path, "fixed.h5");
    copy_fixture(path);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    char names[256][128];
    int n = read_names(f, "layer_names", names, 256);
    write_names(f, "layer_names", names, n, 1);
    hid_t enc = H5Gopen2(f, "encoder", H5P_DEFAULT);
    int ne = read_names(enc, "weight_names", names, 256);
    write_names(enc, "weight_names", names, ne, 1);
    H5Gclose(enc);
    /* and in pieces, as Keras splits an attribute over 64 KB: weight_names0, 1, 2 */
    hid_t g = H5Gopen2(f, "decoder", H5P_DEFAULT);
    int nw = read_names(g, "weight_names", names, 256);
    assert_true(H5Adelete(g, "weight_names") >= 0);
    write_names(g, "weight_names0", names, 5, 0);
    write_names(g, "weight_names1", names + 5, 5, 1);
    write_names(g, "weight_names2", names + 10, nw - 10, 0);
    H5Gclose(g);
    H5Fclose(f);
    expect_same_output(path, &e, want);
    free(want);
    free_expected(&e);
}

static void copy_attr_names(hid_t from, hid_t to, const char *attr)
{
    char names[256][128];
    int n = read_names(from, attr, names, 256);
    write_names(to, attr, names, n, 0);
}

/* model.save('x.h5'): the same weights under model_weights/, the
 * optimizer's state beside them (ignored). */
static void test_whole_model_file(void **state)
{
    (void)state;
    expected e;
    load_expected(&e);
    ae_model *m = import_ok(test_fixture(WEIGHTS), e.height, e.width, NULL);
    float errors[N];
    float *want = reconstruct(m, &e, errors);
    ae_model_free(m);

    TMP_PATH(path, "whole.h5");
    hid_t src = H5Fopen(test_fixture(WEIGHTS), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t mw = H5Gcreate2(f, "model_weights", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    copy_attr_names(src, mw, "layer_names");
    const char *groups[] = {"input_1", "encoder", "decoder", "top_level_model_weights"};
    for (int i = 0; i < 4; i++)
        assert_true(H5Ocopy(src, groups[i], mw, groups[i], H5P_DEFAULT, H5P_DEFAULT) >= 0);
    write_text(mw, "keras_version", "2.11.0");
    write_text(mw, "backend", "tensorflow");
    write_text(f, "model_config", "{\"class_name\": \"Functional\"}");
    hid_t ow = H5Gcreate2(f, "optimizer_weights", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    float it = 42;
    hsize_t one[1] = {1};
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t s = H5Screate_simple(1, one, NULL);
    hid_t d = H5Dcreate2(ow, "Adam/iter:0", H5T_IEEE_F32LE, s, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, &it);
    H5Dclose(d);
    H5Sclose(s);
    H5Pclose(lcpl);
    H5Gclose(ow);
    H5Gclose(mw);
    H5Fclose(f);
    H5Fclose(src);

    ae_keras_summary sum;
    ae_error err = {0};
    assert_int_equal(ae_keras_inspect(path, &sum, &err), AE_OK);
    assert_int_equal(sum.full_model, 1);
    expect_same_output(path, &e, want);
    free(want);
    free_expected(&e);
}

/* A flat model (every layer at the top, LeakyReLU and Flatten groups
 * without weights among them, each layer's own weights in its group). */
static void test_flat_model_file(void **state)
{
    (void)state;
    expected e;
    load_expected(&e);
    ae_model *m = import_ok(test_fixture(WEIGHTS), e.height, e.width, NULL);
    float errors[N];
    float *want = reconstruct(m, &e, errors);
    ae_model_free(m);

    TMP_PATH(path, "flat.h5");
    hid_t src = H5Fopen(test_fixture(WEIGHTS), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    char top[64][128];
    int ntop = 0;
    snprintf(top[ntop++], 128, "input_1");
    const char *groups[] = {"encoder", "decoder"};
    for (int gi = 0; gi < 2; gi++) {
        hid_t g = H5Gopen2(src, groups[gi], H5P_DEFAULT);
        char names[256][128];
        int n = read_names(g, "weight_names", names, 256);
        /* layers in order of their first weight, as _legacy_weights lists them */
        for (int i = 0; i < n; i++) {
            char layer[128];
            snprintf(layer, sizeof layer, "%s", names[i]);
            *strchr(layer, '/') = '\0';
            int seen = 0;
            for (int j = 0; j < ntop; j++)
                seen |= !strcmp(top[j], layer);
            if (seen)
                continue;
            snprintf(top[ntop++], 128, "%s", layer);
            char own[4][128];
            int nown = 0;
            for (int j = 0; j < n; j++)
                if (!strncmp(names[j], layer, strlen(layer)) && names[j][strlen(layer)] == '/')
                    memcpy(own[nown++], names[j], 128);
            hid_t lg = H5Gcreate2(f, layer, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            write_names(lg, "weight_names", own, nown, 0);
            char from[256];
            snprintf(from, sizeof from, "%s/%s", groups[gi], layer);
            assert_true(H5Ocopy(src, from, lg, layer, H5P_DEFAULT, H5P_DEFAULT) >= 0);
            H5Gclose(lg);
            if (strstr(layer, "conv2d")) { /* a LeakyReLU after each convolution: no weights */
                snprintf(top[ntop], 128, "leaky_re_lu_%.60s", layer);
                hid_t lr = H5Gcreate2(f, top[ntop++], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
                write_names(lr, "weight_names", own, 0, 0);
                H5Gclose(lr);
            }
        }
        H5Gclose(g);
    }
    hid_t in = H5Gcreate2(f, "input_1", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(in);
    write_names(f, "layer_names", top, ntop, 0);
    write_text(f, "keras_version", "2.11.0");
    H5Fclose(f);
    H5Fclose(src);

    ae_keras_summary sum;
    ae_error err = {0};
    if (ae_keras_inspect(path, &sum, &err) != AE_OK)
        fail_msg("%s", err.message);
    assert_int_equal(sum.nested, 0);
    expect_same_output(path, &e, want);
    free(want);
    free_expected(&e);
}

/* ---- damaged and mismatched files ---- */

static void expect_refused(const char *path, int height, int width, ae_status code, const char *needle,
                           const char *needle2)
{
    ae_keras_options o;
    ae_keras_options_init(&o);
    o.height = height;
    o.width = width;
    ae_error err = {0};
    ae_model *m = (ae_model *)&err; /* must come back NULL */
    ae_status st = ae_keras_import(path, &o, 1, &m, NULL, &err);
    if (st != code || m != NULL)
        fail_msg("%s: status %d (want %d): %s", path, st, code, err.message);
    if (!strstr(err.message, path))
        fail_msg("the message does not name the file: %s", err.message);
    if (needle && !strstr(err.message, needle))
        fail_msg("the message does not say '%s': %s", needle, err.message);
    if (needle2 && !strstr(err.message, needle2))
        fail_msg("the message does not say '%s': %s", needle2, err.message);
}

typedef void (*damage_fn)(hid_t f);

static void damaged(const char *name, damage_fn fn, const char *needle, const char *needle2)
{
    TMP_PATH(path, name);
    copy_fixture(path);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    fn(f);
    H5Fclose(f);
    expect_refused(path, 16, 24, AE_ERR_FORMAT, needle, needle2);
}

static void no_bias(hid_t f) { assert_true(H5Ldelete(f, "encoder/conv2d_1/bias:0", H5P_DEFAULT) >= 0); }
static void wrong_shape(hid_t f)
{
    static float v[3 * 3 * 8 * 16];
    hsize_t dims[4] = {3, 3, 8, 16};
    replace_dataset(f, "decoder/conv2d_transpose/kernel:0", 4, dims, H5T_NATIVE_FLOAT, v);
}
static void int_bias(hid_t f)
{
    static int v[8];
    hsize_t dims[1] = {8};
    replace_dataset(f, "encoder/conv2d/bias:0", 1, dims, H5T_NATIVE_INT, v);
}
static void unlisted_variance(hid_t f) { drop_names(f, "decoder", "batch_normalization_3/moving_variance"); }
static void no_batchnorm(hid_t f) { drop_names(f, "encoder", "batch_normalization_1/"); }
static void negative_variance(hid_t f) { poke(f, "encoder/batch_normalization/moving_variance:0", 2, -0.5f); }
static void nan_kernel(hid_t f) { poke(f, "decoder/dense_1/kernel:0", 17, NAN); }
static void keras_one(hid_t f) { write_text(f, "keras_version", "1.2.2"); }
static void unknown_weight(hid_t f)
{
    hid_t g = H5Gopen2(f, "encoder", H5P_DEFAULT);
    char names[256][128];
    int n = read_names(g, "weight_names", names, 256);
    snprintf(names[n++], 128, "conv2d/kernel_constraint:0");
    write_names(g, "weight_names", names, n, 0);
    assert_true(H5Ocopy(g, "conv2d/kernel:0", g, "conv2d/kernel_constraint:0", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    H5Gclose(g);
}

static void test_damaged_files_are_refused(void **state)
{
    (void)state;
    damaged("no_bias.h5", no_bias, "encoder/conv2d_1/bias:0", "no dataset");
    damaged("wrong_shape.h5", wrong_shape, "decoder/conv2d_transpose/kernel:0", "has shape 3x3x8x16");
    damaged("int_bias.h5", int_bias, "encoder/conv2d/bias:0", "not floating point");
    damaged("unlisted.h5", unlisted_variance, "batch_normalization_3", "no 'moving_variance'");
    damaged("no_bn.h5", no_batchnorm, "layers with weights", "Conv2DTranspose");
    damaged("negative.h5", negative_variance, "encoder/batch_normalization/moving_variance:0[2]", "negative");
    damaged("nan.h5", nan_kernel, "decoder/dense_1/kernel:0[17]", "nan");
    damaged("keras1.h5", keras_one, "Keras 1.2.2", NULL);
    damaged("unknown.h5", unknown_weight, "kernel_constraint", "not the tutorial's model");

    TMP_PATH(missing, "no-such-file.h5");
    expect_refused(missing, 16, 24, AE_ERR_IO, NULL, NULL);
    TMP_PATH(text, "notes.h5");
    test_write_file(text, "layer_names = conv2d\n", 21);
    expect_refused(text, 16, 24, AE_ERR_FORMAT, "not an HDF5 file", NULL);
    /* HDF5, but not weights: the expected-values file */
    expect_refused(test_fixture(EXPECTED), 16, 24, AE_ERR_FORMAT, "no layer_names", NULL);
    /* an aedet model file given by mistake */
    ae_config cfg;
    ae_config_init(&cfg, 16, 16, 1);
    ae_error err = {0};
    ae_model *m = NULL;
    assert_int_equal(ae_model_create(&cfg, 1, &m, &err), AE_OK);
    TMP_PATH(model, "model.aedet");
    assert_int_equal(ae_model_save(model, m, NULL, 0, &err), AE_OK);
    ae_model_free(m);
    expect_refused(model, 16, 16, AE_ERR_FORMAT, "an aedet model file", NULL);
    /* Nothing is printed, even with libhdf5's printing of errors on (its default). */
    TMP_PATH(log, "stderr.txt");
    fflush(stderr);
    int saved = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(saved >= 0 && fd >= 0 && dup2(fd, 2) == 2);
    H5E_auto2_t func;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &func, &data);
    H5Eset_auto2(H5E_DEFAULT, (H5E_auto2_t)H5Eprint2, stderr);
    damaged("quiet.h5", no_bias, "no dataset", NULL);
    expect_refused(test_fixture(EXPECTED), 16, 24, AE_ERR_FORMAT, "no layer_names", NULL);
    uint8_t *half;
    size_t half_len;
    assert_int_equal(ae_read_file(test_fixture(WEIGHTS), &half, &half_len, &err), AE_OK);
    TMP_PATH(half_path, "half.h5");
    test_write_file(half_path, half, half_len / 2);
    free(half);
    expect_refused(half_path, 16, 24, AE_ERR_FORMAT, "truncated or corrupt", "libhdf5: ");
    H5Eset_auto2(H5E_DEFAULT, func, data);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    struct stat st;
    assert_int_equal(stat(log, &st), 0);
    assert_int_equal(st.st_size, 0);
    /* truncated anywhere past the signature: libhdf5 finds the end missing */
    uint8_t *b;
    size_t len;
    assert_int_equal(ae_read_file(test_fixture(WEIGHTS), &b, &len, &err), AE_OK);
    TMP_PATH(cut, "cut.h5");
    for (size_t at = 8; at < len; at += len / 23) {
        test_write_file(cut, b, at);
        expect_refused(cut, 16, 24, AE_ERR_FORMAT, NULL, NULL);
    }
    free(b);
}

static void test_sizes_and_options_that_do_not_fit(void **state)
{
    (void)state;
    const char *w = test_fixture(WEIGHTS);
    expect_refused(w, 0, 0, AE_ERR_USAGE, "do not say the image size", "= 24");
    expect_refused(w, 32, 32, AE_ERR_USAGE, "another image size", "64 cells");
    expect_refused(w, 18, 24, AE_ERR_USAGE, NULL, NULL); /* not a multiple of 4 */
    ae_keras_options o;
    ae_keras_options_init(&o);
    o.height = 16;
    o.width = 24;
    o.num_filters = 2;
    o.filters[0] = 8;
    o.filters[1] = 32;
    ae_error err = {0};
    ae_model *m = NULL;
    assert_int_equal(ae_keras_import(w, &o, 1, &m, NULL, &err), AE_ERR_USAGE);
    assert_non_null(strstr(err.message, "filters 8,16, not 8,32"));
    o.num_filters = 0;
    o.latent_dim = 5;
    assert_int_equal(ae_keras_import(w, &o, 1, &m, NULL, &err), AE_ERR_USAGE);
    assert_non_null(strstr(err.message, "latent of 4, not 5"));
    o.latent_dim = 0;
    o.channels = 1;
    assert_int_equal(ae_keras_import(w, &o, 1, &m, NULL, &err), AE_ERR_USAGE);
    assert_non_null(strstr(err.message, "3 channels, not 1"));
    assert_null(m);
}

/* ---- the subcommands ---- */

static void test_cli_import_score_export(void **state)
{
    (void)state;
    const char *w = test_fixture(WEIGHTS);
    TMP_PATH(model, "cli.aedet");
    TMP_PATH(back, "cli.weights.h5");
    TMP_PATH(images, "images");
    mkdir(images, 0777);
    uint8_t px[16 * 24 * 3];
    for (int k = 0; k < 4; k++) {
        for (size_t i = 0; i < sizeof px; i++)
            px[i] = (uint8_t)((i * 7 + (size_t)k * 31) & 255);
        char p[600];
        snprintf(p, sizeof p, "%s/img%d.png", images, k);
        test_write_png(p, px, 16, 24, 2, 8);
    }

    assert_int_equal(test_run("import-keras '%s' -o '%s'", w, model), 2);
    test_expect_output("--size is required");
    test_expect_output("= 24 (3 channels)");
    assert_int_equal(test_run("import-keras '%s' -o '%s' --size 32x32", w, model), 2);
    test_expect_output("another image size");
    assert_int_equal(test_run("import-keras '%s' -o '%s' --size 16x24x1", w, model), 2);
    test_expect_output("takes 3 channels, not 1");
    assert_int_equal(test_run("import-keras '%s' -o '%s' --size 16x24x3", test_fixture(EXPECTED), model), 5);
    test_expect_output("no layer_names");

    assert_int_equal(test_run("import-keras '%s' -o '%s' --size 16x24x3 --filters 8,16 --latent 4", w, model), 0);
    test_expect_output("filters 8,16, latent 4");
    test_expect_output("nested encoder and decoder");
    assert_int_equal(test_run("info '%s'", model), 0);
    test_expect_output("keras.source");
    assert_int_equal(test_run("score '%s' '%s' --threads 1", model, images), 0);
    test_expect_output("scored 4 images");

    assert_int_equal(test_run("export-keras '%s' -o '%s'", model, back), 0);
    test_expect_output("Convolution_Autoencoder.build(24, 16, 3, filters=(8, 16), latentDim=4)");
    assert_int_equal(test_run("export-keras '%s' -o '%s'", w, back), 5); /* Keras weights are not a model */
    expected e;
    load_expected(&e);
    ae_model *m = import_ok(back, e.height, e.width, NULL);
    float errors[N];
    float *recon = reconstruct(m, &e, errors);
    assert_true(max_abs_diff(recon, e.output, (size_t)N * (size_t)(e.height * e.width * e.channels)) <= TOLERANCE);
    free(recon);
    ae_model_free(m);
    free_expected(&e);
}

int main(void)
{
    /* libhdf5 prints its error stack for the test's own HDF5 calls too. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_matches_numpy_forward),
        cmocka_unit_test(test_height_and_width_are_not_interchangeable),
        cmocka_unit_test(test_export_is_keras_layout),
        cmocka_unit_test(test_round_trip_is_bit_identical),
        cmocka_unit_test(test_fixed_length_names),
        cmocka_unit_test(test_whole_model_file),
        cmocka_unit_test(test_flat_model_file),
        cmocka_unit_test(test_damaged_files_are_refused),
        cmocka_unit_test(test_sizes_and_options_that_do_not_fit),
        cmocka_unit_test(test_cli_import_score_export),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
