/* The model file: metadata, the format layer (every truncation and every
 * flipped byte refused), and saving/loading models bit for bit, atomically. */
#include "support.h"

#include "aedet/file.h"
#include "aedet/model_file.h"
#include "aedet/nn.h"
#include "aedet/score.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <zlib.h>

/* ---- helpers ---- */

static void fix_crc(uint8_t *b, size_t len)
{
    uLong crc = crc32(crc32(0L, Z_NULL, 0), b, (uInt)(len - 4));
    for (int i = 0; i < 4; i++)
        b[len - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static size_t find_bytes(const uint8_t *b, size_t len, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(b + i, s, n) == 0)
            return i;
    fail_msg("'%s' not found in the file", s);
    return 0;
}

/* Parses an exact-size heap copy, so ASan sees any read past the end. */
static ae_status parse_copy(const uint8_t *b, size_t len, ae_error *err)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, b, len);
    ae_model_file *f = NULL;
    ae_error_clear(err);
    ae_status st = ae_model_file_parse(len ? copy : NULL, len, "t.aedet", &f, err);
    if (st == AE_OK)
        ae_model_file_free(f);
    else
        assert_int_equal(err->code, st);
    free(copy);
    return st;
}

static float ta[6] = {1.5f, -2.25f, 3e-8f, 0.0f, -0.0f, 1e30f};
static float tb[3] = {7.0f, 8.0f, 9.0f};
static float tc[2] = {0.5f, 0.25f};

/* A small file: a few keys of every type and three tensors. */
static void small_file(uint8_t **bytes, size_t *len)
{
    ae_error err;
    ae_meta *m = ae_meta_new();
    assert_non_null(m);
    float errors[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    int64_t ints[2] = {-5, 1LL << 40};
    double losses[2] = {0.125, 1.0 / 3.0};
    assert_int_equal(ae_meta_set_int(m, "k1", 42, &err), AE_OK);
    assert_int_equal(ae_meta_set_float(m, "k2", 0.1, &err), AE_OK);
    assert_int_equal(ae_meta_set_str(m, "k3", "hello", &err), AE_OK);
    assert_int_equal(ae_meta_set_floats(m, "k4", errors, 4, &err), AE_OK);
    assert_int_equal(ae_meta_set_ints(m, "k5", ints, 2, &err), AE_OK);
    assert_int_equal(ae_meta_set_doubles(m, "k6", losses, 2, &err), AE_OK);
    ae_file_tensor t[3] = {
        {.name = "ta", .kind = AE_KIND_PARAM, .ndim = 2, .shape = {2, 3}, .count = 6, .data = ta},
        {.name = "tb", .kind = AE_KIND_STATE, .ndim = 1, .shape = {3}, .count = 3, .data = tb},
        {.name = "ta", .kind = AE_KIND_ADAM_M, .ndim = 2, .shape = {1, 2}, .count = 2, .data = tc},
    };
    assert_int_equal(ae_model_file_encode(m, t, 3, bytes, len, &err), AE_OK);
    ae_meta_free(m);
}

/* ---- metadata ---- */

static void test_meta_set_get_replace_remove(void **state)
{
    (void)state;
    ae_error err;
    ae_meta *m = ae_meta_new();
    assert_non_null(m);
    int64_t i;
    double d;
    size_t n;
    assert_int_equal(ae_meta_set_int(m, "a", 1, &err), AE_OK);
    assert_int_equal(ae_meta_set_str(m, "b", "x", &err), AE_OK);
    assert_true(ae_meta_get_int(m, "a", &i) && i == 1);
    assert_true(ae_meta_get_float(m, "a", &d) && d == 1.0); /* ints read as floats */
    assert_null(ae_meta_get_str(m, "a"));
    assert_false(ae_meta_get_int(m, "b", &i));
    assert_false(ae_meta_get_int(m, "missing", &i));

    /* Replacing keeps the place and changes the type. */
    assert_int_equal(ae_meta_set_str(m, "a", "now a string", &err), AE_OK);
    assert_int_equal(ae_meta_count(m), 2);
    assert_string_equal(ae_meta_key(m, 0), "a");
    assert_int_equal(ae_meta_entry_type(m, 0), AE_META_STRING);
    assert_string_equal(ae_meta_get_str(m, "a"), "now a string");
    assert_false(ae_meta_get_int(m, "a", &i));

    float f[3] = {1, 2, 3};
    assert_int_equal(ae_meta_set_floats(m, "f", f, 3, &err), AE_OK);
    assert_int_equal(ae_meta_entry_length(m, 2), 3);
    const float *got = ae_meta_get_floats(m, "f", &n);
    assert_true(got && n == 3 && got[2] == 3.0f);
    assert_int_equal(ae_meta_set_floats(m, "empty", NULL, 0, &err), AE_OK);
    assert_non_null(ae_meta_get_floats(m, "empty", &n));
    assert_int_equal(n, 0);

    assert_true(ae_meta_remove(m, "a"));
    assert_false(ae_meta_remove(m, "a"));
    assert_string_equal(ae_meta_key(m, 0), "b");

    assert_int_equal(ae_meta_set_int(m, "", 1, &err), AE_ERR_USAGE);
    char long_key[AE_META_MAX_KEY + 2];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    assert_int_equal(ae_meta_set_int(m, long_key, 1, &err), AE_ERR_USAGE);

    assert_int_equal(ae_meta_set_now(m, AE_KEY_CREATED, &err), AE_OK);
    const char *now = ae_meta_get_str(m, AE_KEY_CREATED);
    assert_non_null(now);
    assert_int_equal(strlen(now), 20); /* 2024-05-01T12:34:56Z */
    assert_true(now[4] == '-' && now[10] == 'T' && now[19] == 'Z');

    ae_meta *copy = NULL;
    assert_int_equal(ae_meta_copy(m, &copy, &err), AE_OK);
    assert_int_equal(ae_meta_count(copy), ae_meta_count(m));
    assert_string_equal(ae_meta_get_str(copy, "b"), "x");
    ae_meta_free(copy);
    ae_meta_free(m);
}

/* ---- the format layer ---- */

static void test_format_round_trip(void **state)
{
    (void)state;
    uint8_t *b;
    size_t len;
    small_file(&b, &len);
    assert_memory_equal(b, "AEDETMDL", 8);
    assert_int_equal(b[8], 1);                       /* version 1, little-endian */
    assert_memory_equal(b + 12, "\x04\x03\x02\x01", 4); /* the byte-order marker */

    ae_error err;
    ae_model_file *f = NULL;
    assert_int_equal(ae_model_file_parse(b, len, "t.aedet", &f, &err), AE_OK);
    const ae_meta *m = ae_model_file_meta(f);
    int64_t i;
    double d;
    size_t n;
    assert_true(ae_meta_get_int(m, "k1", &i) && i == 42);
    assert_true(ae_meta_get_float(m, "k2", &d) && d == 0.1);
    assert_string_equal(ae_meta_get_str(m, "k3"), "hello");
    const float *fl = ae_meta_get_floats(m, "k4", &n);
    assert_true(fl && n == 4 && fl[3] == 0.4f);
    const int64_t *in = ae_meta_get_ints(m, "k5", &n);
    assert_true(in && n == 2 && in[0] == -5 && in[1] == (1LL << 40));
    const double *db = ae_meta_get_doubles(m, "k6", &n);
    assert_true(db && n == 2 && db[1] == 1.0 / 3.0);
    assert_string_equal(ae_meta_key(m, 0), "k1"); /* order kept */

    assert_int_equal(ae_model_file_num_tensors(f), 3);
    int a = ae_model_file_find(f, "ta", AE_KIND_PARAM), am = ae_model_file_find(f, "ta", AE_KIND_ADAM_M);
    assert_int_equal(a, 0);
    assert_int_equal(am, 2);
    assert_int_equal(ae_model_file_find(f, "tb", AE_KIND_PARAM), -1);
    const ae_file_tensor *t = ae_model_file_tensor(f, a);
    assert_true(t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->count == 6);
    float got[6];
    ae_model_file_copy_tensor(f, a, got);
    assert_memory_equal(got, ta, sizeof ta); /* bit for bit, -0.0 included */
    ae_model_file_copy_tensor(f, am, got);
    assert_memory_equal(got, tc, sizeof tc);

    ae_meta *taken = ae_model_file_take_meta(f);
    assert_int_equal(ae_meta_count(taken), 6);
    assert_int_equal(ae_meta_count(ae_model_file_meta(f)), 0);
    ae_meta_free(taken);
    ae_model_file_free(f);

    /* Tensor data starts 32-byte aligned. */
    size_t meta_len = get_u64(b + 16), dir_len = get_u64(b + 24);
    size_t data_at = (40 + meta_len + dir_len + 31) / 32 * 32;
    float first;
    memcpy(&first, b + data_at, 4);
    assert_true(first == ta[0]);
    free(b);
}

static void test_encode_refuses_bad_tensors(void **state)
{
    (void)state;
    ae_error err;
    uint8_t *b = NULL;
    size_t len;
    ae_file_tensor t[2] = {
        {.name = "x", .kind = AE_KIND_PARAM, .ndim = 1, .shape = {3}, .count = 3, .data = tb},
        {.name = "x", .kind = AE_KIND_PARAM, .ndim = 1, .shape = {3}, .count = 3, .data = tb},
    };
    assert_int_equal(ae_model_file_encode(NULL, t, 2, &b, &len, &err), AE_ERR_USAGE);
    assert_non_null(strstr(err.message, "twice"));
    t[1].kind = AE_KIND_STATE; /* same name, other kind: fine */
    assert_int_equal(ae_model_file_encode(NULL, t, 2, &b, &len, &err), AE_OK);
    free(b);
    t[1].count = 4; /* disagrees with the shape */
    assert_int_equal(ae_model_file_encode(NULL, t, 2, &b, &len, &err), AE_ERR_USAGE);
}

static void test_truncation_at_every_offset(void **state)
{
    (void)state;
    uint8_t *b;
    size_t len;
    small_file(&b, &len);
    size_t meta_end = 40 + get_u64(b + 16), dir_end = meta_end + get_u64(b + 24);
    ae_error err;
    for (size_t cut = 0; cut < len; cut++) {
        ae_status st = parse_copy(b, cut, &err);
        if (st != AE_ERR_FORMAT)
            fail_msg("cut at %zu of %zu: status %d (%s)", cut, len, st, err.message);
        /* The message names the file and the section where the bytes stop. */
        assert_non_null(strstr(err.message, "t.aedet"));
        const char *want = cut < 40 ? "preamble"
                           : cut < meta_end ? "metadata"
                           : cut < dir_end ? "tensor directory"
                           : cut < len - 4 ? "tensor data"
                                           : "checksum";
        if (cut == 0)
            want = "empty";
        if (!strstr(err.message, want))
            fail_msg("cut at %zu: '%s' does not mention '%s'", cut, err.message, want);
    }
    assert_int_equal(parse_copy(b, len, &err), AE_OK);
    free(b);
}

static void test_every_flipped_byte_is_refused(void **state)
{
    (void)state;
    uint8_t *b;
    size_t len;
    small_file(&b, &len);
    ae_error err;
    static const uint8_t flips[] = {0x01, 0x80, 0xff};
    for (size_t at = 0; at < len; at++) {
        for (size_t k = 0; k < sizeof flips; k++) {
            b[at] ^= flips[k];
            ae_status st = parse_copy(b, len, &err);
            b[at] ^= flips[k];
            if (st != AE_ERR_FORMAT)
                fail_msg("flipping byte %zu with %02x: status %d", at, flips[k], st);
        }
    }
    /* In the tensor data only the checksum can tell. */
    b[len - 8] ^= 1;
    assert_int_equal(parse_copy(b, len, &err), AE_ERR_FORMAT);
    assert_non_null(strstr(err.message, "checksum mismatch: the file is corrupt"));
    /* Trailing bytes are refused too. */
    uint8_t *longer = calloc(len + 1, 1);
    assert_non_null(longer);
    memcpy(longer, b, len);
    assert_int_equal(parse_copy(longer, len + 1, &err), AE_ERR_FORMAT);
    free(longer);
    free(b);
}

static void test_magic_version_endianness(void **state)
{
    (void)state;
    uint8_t *b;
    size_t len;
    small_file(&b, &len);
    ae_error err;

    b[0] = 'X';
    fix_crc(b, len);
    assert_int_equal(parse_copy(b, len, &err), AE_ERR_FORMAT);
    assert_non_null(strstr(err.message, "t.aedet: not an aedet model file"));
    b[0] = 'A';

    put_u32(b + 8, 2);
    fix_crc(b, len);
    assert_int_equal(parse_copy(b, len, &err), AE_ERR_FORMAT);
    assert_non_null(strstr(err.message, "made by a newer aedet (format 2, this one reads up to 1)"));
    put_u32(b + 8, 0);
    fix_crc(b, len);
    assert_int_equal(parse_copy(b, len, &err), AE_ERR_FORMAT);
    put_u32(b + 8, 1);

    /* What a big-endian writer's marker looks like. */
    memcpy(b + 12, "\x01\x02\x03\x04", 4);
    fix_crc(b, len);
    assert_int_equal(parse_copy(b, len, &err), AE_ERR_FORMAT);
    assert_non_null(strstr(err.message, "big-endian"));
    memcpy(b + 12, "\x04\x03\x02\x01", 4);
    fix_crc(b, len);
    assert_int_equal(parse_copy(b, len, &err), AE_OK);
    free(b);
}

/* Files with a valid checksum whose insides are wrong: the structure checks,
 * not the checksum, must catch them. */
static void test_bad_insides_with_valid_checksum(void **state)
{
    (void)state;
    uint8_t *b, *c;
    size_t len;
    small_file(&b, &len);
    c = malloc(len);
    assert_non_null(c);
    ae_error err;
#define RESET() memcpy(c, b, len)

    RESET(); /* a section length past the end, and absurd ones */
    put_u64(c + 16, UINT64_MAX);
    fix_crc(c, len);
    assert_int_equal(parse_copy(c, len, &err), AE_ERR_FORMAT);
    assert_non_null(strstr(err.message, "metadata section"));
    RESET();
    put_u64(c + 32, (uint64_t)1 << 62);
    fix_crc(c, len);
    assert_int_equal(parse_copy(c, len, &err), AE_ERR_FORMAT);
    assert_non_null(strstr(err.message, "tensor data section"));

    RESET(); /* a duplicate key */
    c[find_bytes(c, len, "k2")] = 'k';
    c[find_bytes(c, len, "k2") + 1] = '1';
    fix_crc(c, len);
    assert_int_equal(parse_copy(c, len, &err), AE_ERR_FORMAT);
    assert_non_null(strstr(err.message, "'k1' appears twice"));

    RESET(); /* a duplicate tensor (same name, same kind) */
    c[find_bytes(c, len, "tb") + 1] = 'a';
    size_t kind_at = find_bytes(c, len, "ta") + 2; /* second "ta" is the state one now */
    kind_at = find_bytes(c + kind_at, len - kind_at, "ta") + kind_at + 2;
    put_u32(c + kind_at, AE_KIND_PARAM);
    fix_crc(c, len);
    assert_int_equal(parse_copy(c, len, &err), AE_ERR_FORMAT);

    RESET(); /* a huge key length, entry count, value length, dimension, offset */
    size_t k1 = find_bytes(c, len, "k1");
    put_u32(c + k1 - 4, 0xffffffffu);
    fix_crc(c, len);
    assert_int_equal(parse_copy(c, len, &err), AE_ERR_FORMAT);
    RESET();
    put_u32(c + 40, 0xffffffffu);
    fix_crc(c, len);
    assert_int_equal(parse_copy(c, len, &err), AE_ERR_FORMAT);
    RESET();
    put_u64(c + k1 + 2 + 4, UINT64_MAX - 3);
    fix_crc(c, len);
    assert_int_equal(parse_copy(c, len, &err), AE_ERR_FORMAT);
    RESET(); /* a string running past its section, and past the file */
    size_t k3 = find_bytes(c, len, "k3");
    put_u64(c + k3 + 2 + 4, get_u64(c + 16)); /* within the file */
    fix_crc(c, len);
    assert_int_equal(parse_copy(c, len, &err), AE_ERR_FORMAT);
    assert_non_null(strstr(err.message, "runs past the end of the metadata section"));
    put_u64(c + k3 + 2 + 4, len);
    fix_crc(c, len);
    assert_int_equal(parse_copy(c, len, &err), AE_ERR_FORMAT);
    assert_non_null(strstr(err.message, "runs past the end of the metadata section"));
    size_t tb_at = find_bytes(b, len, "tb") + 2; /* kind, ndim, dim, offset, length */
    RESET();
    put_u64(c + tb_at + 8, (uint64_t)1 << 61);
    fix_crc(c, len);
    assert_int_equal(parse_copy(c, len, &err), AE_ERR_FORMAT);
    RESET();
    put_u64(c + tb_at + 16, (uint64_t)1 << 40);
    fix_crc(c, len);
    assert_int_equal(parse_copy(c, len, &err), AE_ERR_FORMAT);
    assert_non_null(strstr(err.message, "past the end of the data section"));
    RESET();
    put_u64(c + tb_at + 16, 0); /* overlaps the first tensor */
    fix_crc(c, len);
    assert_int_equal(parse_copy(c, len, &err), AE_ERR_FORMAT);
    RESET();
    put_u64(c + tb_at + 16, 8); /* misaligned */
    fix_crc(c, len);
    assert_int_equal(parse_copy(c, len, &err), AE_ERR_FORMAT);

    RESET(); /* an unknown value type (from a later format) is skipped */
    put_u32(c + k1 + 2, 99);
    fix_crc(c, len);
    ae_model_file *f = NULL;
    assert_int_equal(ae_model_file_parse(c, len, "t.aedet", &f, &err), AE_OK);
    assert_false(ae_meta_has(ae_model_file_meta(f), "k1"));
    assert_string_equal(ae_meta_get_str(ae_model_file_meta(f), "k3"), "hello");
    ae_model_file_free(f);
#undef RESET
    free(c);
    free(b);
}

/* ---- models ---- */

static void small_config(ae_config *cfg, int first_filters)
{
    ae_config_init(cfg, 8, 8, 1);
    cfg->num_filters = 2;
    cfg->filters[0] = first_filters;
    cfg->filters[1] = 8;
    cfg->latent_dim = 3;
}

/* A model whose every buffer holds distinct values, so nothing can pass by
 * accident. */
static ae_model *filled_model(int first_filters, uint64_t seed)
{
    ae_config cfg;
    small_config(&cfg, first_filters);
    ae_model *m = NULL;
    ae_error err;
    assert_int_equal(ae_model_create(&cfg, 2, &m, &err), AE_OK);
    ae_model_init_weights(m, seed);
    ae_rng rng;
    ae_rng_seed(&rng, seed);
    for (size_t i = 0; i < ae_model_num_params(m); i++) {
        ae_model_params(m)[i] += (float)ae_rng_normal(&rng) * 1e-3f;
        ae_model_adam_m(m)[i] = (float)ae_rng_normal(&rng);
        ae_model_adam_v(m)[i] = (float)ae_rng_uniform(&rng);
    }
    for (size_t i = 0; i < ae_model_num_state(m); i++)
        ae_model_state(m)[i] = (float)ae_rng_uniform(&rng) + 0.5f;
    ae_model_set_iterations(m, 1234);
    return m;
}

static void assert_same_floats(const float *a, const float *b, size_t n)
{
    assert_memory_equal(a, b, n * sizeof(float));
}

static void test_model_round_trip(void **state)
{
    (void)state;
    ae_error err;
    ae_model *m = filled_model(4, 7);
    ae_meta *meta = ae_meta_new();
    float errors[5] = {0.01f, 0.02f, 0.5f, 0.03f, 0.04f};
    double losses[2] = {0.07, 0.05};
    assert_int_equal(ae_meta_set_int(meta, AE_KEY_SEED, 42, &err), AE_OK);
    assert_int_equal(ae_meta_set_str(meta, AE_KEY_DATA, "fashion-mnist train, class 0", &err), AE_OK);
    assert_int_equal(ae_meta_set_floats(meta, AE_KEY_TRAIN_ERRORS, errors, 5, &err), AE_OK);
    assert_int_equal(ae_meta_set_doubles(meta, AE_KEY_TRAIN_LOSSES, losses, 2, &err), AE_OK);
    assert_int_equal(ae_meta_set_int(meta, AE_KEY_HEIGHT, 999, &err), AE_OK); /* the library's key */
    const char *path = test_path("ckpt.aedet");
    assert_int_equal(ae_model_save(path, m, meta, 1, &err), AE_OK);

    ae_model *back = NULL;
    ae_meta *got = NULL;
    int has_opt = -1;
    assert_int_equal(ae_model_load(path, 3, &back, &got, &has_opt, &err), AE_OK);
    assert_int_equal(has_opt, 1);
    assert_int_equal(ae_model_max_batch(back), 3);
    const ae_config *c1 = ae_model_config(m), *c2 = ae_model_config(back);
    assert_true(c2->height == c1->height && c2->width == c1->width &&
                c2->channels == c1->channels && c2->latent_dim == c1->latent_dim);
    assert_int_equal(c2->num_filters, c1->num_filters);
    assert_memory_equal(c2->filters, c1->filters, (size_t)c1->num_filters * sizeof(int));
    assert_true(c2->leaky_slope == c1->leaky_slope && c2->bn_momentum == c1->bn_momentum &&
                c2->bn_epsilon == c1->bn_epsilon);
    size_t np = ae_model_num_params(m);
    assert_int_equal(ae_model_num_params(back), np);
    assert_same_floats(ae_model_params(back), ae_model_params(m), np);
    assert_same_floats(ae_model_adam_m(back), ae_model_adam_m(m), np);
    assert_same_floats(ae_model_adam_v(back), ae_model_adam_v(m), np);
    assert_same_floats(ae_model_state(back), ae_model_state(m), ae_model_num_state(m));
    assert_int_equal(ae_model_iterations(back), 1234);

    int64_t i;
    size_t n;
    assert_true(ae_meta_get_int(got, AE_KEY_SEED, &i) && i == 42);
    assert_string_equal(ae_meta_get_str(got, AE_KEY_DATA), "fashion-mnist train, class 0");
    const float *e = ae_meta_get_floats(got, AE_KEY_TRAIN_ERRORS, &n);
    assert_true(e && n == 5);
    assert_same_floats(e, errors, 5);
    const double *l = ae_meta_get_doubles(got, AE_KEY_TRAIN_LOSSES, &n);
    assert_true(l && n == 2 && l[0] == 0.07 && l[1] == 0.05);
    assert_true(ae_meta_get_int(got, AE_KEY_HEIGHT, &i) && i == 8);
    assert_true(ae_meta_get_int(got, AE_KEY_ITERATIONS, &i) && i == 1234);
    assert_string_equal(ae_meta_get_str(got, AE_KEY_PRE_RESIZE), "area/bilinear");
    assert_string_equal(ae_meta_get_str(got, AE_KEY_VERSION), AE_VERSION_STRING);

    /* Both models compute the same thing. */
    float x[2 * 64], s1[2], s2[2];
    for (int k = 0; k < 2 * 64; k++)
        x[k] = (float)((k * 37) % 101) / 100.0f;
    assert_int_equal(ae_model_score(m, x, 2, s1, NULL, &err), AE_OK);
    assert_int_equal(ae_model_score(back, x, 2, s2, NULL, &err), AE_OK);
    assert_same_floats(s1, s2, 2);

    /* Without the optimizer: same weights, Adam reset. */
    ae_model_free(back);
    ae_meta_free(got);
    const char *plain = test_path("plain.aedet");
    assert_int_equal(ae_model_save(plain, m, meta, 0, &err), AE_OK);
    assert_int_equal(ae_model_load(plain, 1, &back, NULL, &has_opt, &err), AE_OK);
    assert_int_equal(has_opt, 0);
    assert_same_floats(ae_model_params(back), ae_model_params(m), np);
    assert_same_floats(ae_model_state(back), ae_model_state(m), ae_model_num_state(m));
    assert_int_equal(ae_model_iterations(back), 0);
    for (size_t k = 0; k < np; k++)
        assert_true(ae_model_adam_m(back)[k] == 0.0f && ae_model_adam_v(back)[k] == 0.0f);
    ae_model_free(back);

    ae_meta_free(meta);
    ae_model_free(m);
}

/* The tensors of model m, as the format layer sees them. */
static int model_tensors(ae_model *m, ae_file_tensor *t)
{
    int n = ae_model_num_tensors(m);
    for (int i = 0; i < n; i++) {
        const ae_tensor_info *info = ae_model_tensor(m, i);
        memset(&t[i], 0, sizeof t[i]);
        strcpy(t[i].name, info->name);
        t[i].kind = info->is_state ? AE_KIND_STATE : AE_KIND_PARAM;
        t[i].ndim = info->ndim;
        for (int d = 0; d < info->ndim; d++)
            t[i].shape[d] = info->shape[d];
        t[i].count = info->size;
        t[i].data = (info->is_state ? ae_model_state(m) : ae_model_params(m)) + info->offset;
    }
    return n;
}

/* Encodes (meta of a saved file) + tensors and loads the result. */
static ae_status load_crafted(const ae_meta *meta, const ae_file_tensor *t, int n, ae_error *err)
{
    uint8_t *b = NULL;
    size_t len;
    assert_int_equal(ae_model_file_encode(meta, t, n, &b, &len, err), AE_OK);
    ae_model *m = NULL;
    ae_error_clear(err);
    ae_status st = ae_model_load_bytes(b, len, "crafted.aedet", 1, &m, NULL, NULL, err);
    ae_model_free(m);
    free(b);
    return st;
}

static void test_model_tensors_must_match_the_config(void **state)
{
    (void)state;
    ae_error err;
    ae_model *a = filled_model(4, 1), *b = filled_model(6, 2);
    const char *path = test_path("b.aedet");
    assert_int_equal(ae_model_save(path, b, NULL, 0, &err), AE_OK);
    uint8_t *bytes;
    size_t len;
    assert_int_equal(ae_read_file(path, &bytes, &len, &err), AE_OK);
    ae_model_file *fb = NULL;
    assert_int_equal(ae_model_file_parse(bytes, len, path, &fb, &err), AE_OK);
    const ae_meta *meta_b = ae_model_file_meta(fb);

    ae_file_tensor t[64];
    int na = model_tensors(a, t);
    assert_true(na < 60);
    /* b's config with a's tensors: enc0.conv.kernel is 3x3x1x4, b needs 3x3x1x6. */
    assert_int_equal(load_crafted(meta_b, t, na, &err), AE_ERR_FORMAT);
    assert_non_null(strstr(err.message, "crafted.aedet"));
    assert_non_null(strstr(err.message, "has shape 3x3x1x4 but the config needs 3x3x1x6"));

    int nb = model_tensors(b, t);
    assert_int_equal(load_crafted(meta_b, t, nb, &err), AE_OK);
    /* a tensor missing */
    assert_int_equal(load_crafted(meta_b, t, nb - 1, &err), AE_ERR_FORMAT);
    assert_non_null(strstr(err.message, "is missing"));
    /* an extra tensor */
    t[nb] = t[0];
    strcpy(t[nb].name, "extra.kernel");
    assert_int_equal(load_crafted(meta_b, t, nb + 1, &err), AE_ERR_FORMAT);
    assert_non_null(strstr(err.message, "'extra.kernel' is not part of this model"));
    /* Adam moments without the iteration count */
    t[nb] = t[0];
    t[nb].kind = AE_KIND_ADAM_M;
    assert_int_equal(load_crafted(meta_b, t, nb + 1, &err), AE_ERR_FORMAT);

    /* a config key missing, or preprocessing this aedet does not do */
    ae_meta *edited = NULL;
    assert_int_equal(ae_meta_copy(meta_b, &edited, &err), AE_OK);
    ae_meta_remove(edited, AE_KEY_LATENT);
    assert_int_equal(load_crafted(edited, t, nb, &err), AE_ERR_FORMAT);
    assert_non_null(strstr(err.message, AE_KEY_LATENT));
    ae_meta_free(edited);
    assert_int_equal(ae_meta_copy(meta_b, &edited, &err), AE_OK);
    assert_int_equal(ae_meta_set_str(edited, AE_KEY_PRE_RESIZE, "lanczos", &err), AE_OK);
    assert_int_equal(load_crafted(edited, t, nb, &err), AE_ERR_FORMAT);
    assert_non_null(strstr(err.message, "lanczos"));
    ae_meta_free(edited);

    ae_model_file_free(fb);
    free(bytes);
    ae_model_free(a);
    ae_model_free(b);
}

/* fuzz/fuzz_model's seeds, when AEDET_FUZZ_CORPUS is set: model files with
 * and without Adam moments and a detector, each behind the fuzzer's first
 * byte (1: as it is; 0: checksum rewritten). */
static void write_model_seeds(ae_model *m)
{
    const char *dir = getenv("AEDET_FUZZ_CORPUS");
    if (!dir || !*dir)
        return;
    ae_error err;
    ae_meta *meta = ae_meta_new();
    ae_score_rule rule;
    ae_detector *d;
    float latents[4 * 3] = {0.1f, 0.2f, 0.3f, 1, 2, 3, -1, 0, 1, 0.5f, 0.5f, 0.5f};
    float x[64] = {0}, mse[1] = {0.01f};
    ae_score_rule_parse("combined", &rule, NULL);
    assert_int_equal(ae_detector_create(&rule, &d, &err), AE_OK);
    assert_int_equal(ae_detector_set_reference(d, latents, 4, 3, 0, &err), AE_OK);
    assert_int_equal(ae_detector_calibrate(d, ae_model_config(m), x, mse, NULL, latents, 1, &err), AE_OK);
    assert_int_equal(ae_detector_to_meta(d, meta, &err), AE_OK);
    char folder[1024], path[1200];
    snprintf(folder, sizeof folder, "%s/fuzz_model", dir);
    mkdir(dir, 0755);
    mkdir(folder, 0755);
    for (int variant = 0; variant < 4; variant++) {
        const char *tmp = test_path("seed.aedet");
        assert_int_equal(ae_model_save(tmp, m, variant & 2 ? meta : NULL, variant & 1, &err), AE_OK);
        uint8_t *bytes;
        size_t len;
        assert_int_equal(ae_read_file(tmp, &bytes, &len, &err), AE_OK);
        uint8_t *seed = malloc(len + 1);
        assert_non_null(seed);
        seed[0] = (uint8_t)(variant & 1);
        memcpy(seed + 1, bytes, len);
        snprintf(path, sizeof path, "%s/model%d.aedet", folder, variant);
        test_write_file(path, seed, len + 1);
        free(seed);
        free(bytes);
    }
    ae_detector_free(d);
    ae_meta_free(meta);
}

/* Values no training makes, in a file with a valid checksum: a bad model
 * file (AE_ERR_FORMAT naming the tensor), never a model that scores NaN. */
static void test_nonfinite_weights_and_negative_variance_are_refused(void **state)
{
    (void)state;
    ae_error err;
    ae_model *m = filled_model(4, 3);
    write_model_seeds(m);
    ae_file_tensor t[64];
    int n = model_tensors(m, t);
    assert_int_equal(ae_model_save(test_path("nan.aedet"), m, NULL, 0, &err), AE_OK);
    ae_model *loaded;
    ae_meta *saved_meta;
    assert_int_equal(ae_model_load(test_path("nan.aedet"), 1, &loaded, &saved_meta, NULL, &err), AE_OK);
    ae_model_free(loaded);
    assert_int_equal(load_crafted(saved_meta, t, n, &err), AE_OK);

    const float bad[] = {NAN, INFINITY, -INFINITY};
    int kernel = ae_model_find_tensor(m, "enc.dense.kernel"), var = ae_model_find_tensor(m, "enc0.bn.moving_var");
    assert_true(kernel >= 0 && var >= 0);
    float *w = ae_model_params(m) + ae_model_tensor(m, kernel)->offset;
    float *v = ae_model_state(m) + ae_model_tensor(m, var)->offset;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        float keep = w[5];
        w[5] = bad[i];
        assert_int_equal(load_crafted(saved_meta, t, n, &err), AE_ERR_FORMAT);
        assert_non_null(strstr(err.message, "bad model file: enc.dense.kernel[5]"));
        w[5] = keep;
    }
    v[1] = -0.5f;
    assert_int_equal(load_crafted(saved_meta, t, n, &err), AE_ERR_FORMAT);
    assert_non_null(strstr(err.message, "enc0.bn.moving_var[1] is -0.5"));
    v[1] = 0.0f; /* a zero variance is legal: epsilon keeps it finite */
    assert_int_equal(load_crafted(saved_meta, t, n, &err), AE_OK);
    ae_meta_free(saved_meta);
    ae_model_free(m);
}

static int count_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void test_save_is_atomic(void **state)
{
    (void)state;
    ae_error err;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", test_path("atomic"));
    assert_int_equal(mkdir(dir, 0755), 0);
    char path[1100];
    snprintf(path, sizeof path, "%s/model.aedet", dir);

    ae_model *a = filled_model(4, 11), *b = filled_model(4, 12);
    assert_int_equal(ae_model_save(path, a, NULL, 0, &err), AE_OK);
    uint8_t *old, *now;
    size_t old_len, now_len;
    assert_int_equal(ae_read_file(path, &old, &old_len, &err), AE_OK);

    /* Replacing works and leaves only the file. */
    assert_int_equal(ae_model_save(path, b, NULL, 0, &err), AE_OK);
    assert_int_equal(ae_read_file(path, &now, &now_len, &err), AE_OK);
    assert_true(now_len == old_len && memcmp(now, old, old_len) != 0);
    free(now);
    assert_int_equal(count_dir_entries(dir), 1);
    assert_int_equal(ae_model_save(path, a, NULL, 0, &err), AE_OK);

    /* A write that fails half-way (the file size limit, like a full disk)
     * leaves the old file byte-identical and no temporary file behind. */
    struct rlimit saved, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    small = saved;
    small.rlim_cur = 100;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    ae_status st = ae_model_save(path, b, NULL, 0, &err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(st, AE_ERR_IO);
    assert_non_null(strstr(err.message, path));
    assert_int_equal(ae_read_file(path, &now, &now_len, &err), AE_OK);
    assert_true(now_len == old_len && memcmp(now, old, old_len) == 0);
    free(now);
    assert_int_equal(count_dir_entries(dir), 1);

    /* A folder that does not exist: an I/O error naming the path. */
    char missing[1200];
    snprintf(missing, sizeof missing, "%s/no/such/folder/m.aedet", dir);
    assert_int_equal(ae_model_save(missing, a, NULL, 0, &err), AE_ERR_IO);
    assert_non_null(strstr(err.message, "no/such/folder"));
    assert_int_equal(count_dir_entries(dir), 1);

    /* Loading what is not a model file. */
    ae_model *m = NULL;
    test_write_file(path, "hello, world, not a model", 25);
    assert_int_equal(ae_model_load(path, 1, &m, NULL, NULL, &err), AE_ERR_FORMAT);
    assert_non_null(strstr(err.message, "not an aedet model file"));
    assert_null(m);

    free(old);
    ae_model_free(a);
    ae_model_free(b);
}

/* A real model file cut anywhere (a sweep of offsets) never loads. */
static void test_model_file_truncated_anywhere(void **state)
{
    (void)state;
    ae_error err;
    ae_model *a = filled_model(4, 5);
    const char *path = test_path("t.aedet");
    assert_int_equal(ae_model_save(path, a, NULL, 1, &err), AE_OK);
    uint8_t *b;
    size_t len;
    assert_int_equal(ae_read_file(path, &b, &len, &err), AE_OK);
    for (size_t cut = 0; cut < len; cut += cut < 2048 ? 1 : 97) {
        uint8_t *copy = malloc(cut ? cut : 1);
        assert_non_null(copy);
        memcpy(copy, b, cut);
        ae_model *m = NULL;
        ae_status st = ae_model_load_bytes(copy, cut, "t.aedet", 1, &m, NULL, NULL, &err);
        free(copy);
        if (st != AE_ERR_FORMAT)
            fail_msg("cut at %zu of %zu: status %d", cut, len, st);
        assert_null(m);
    }
    free(b);
    ae_model_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meta_set_get_replace_remove),
        cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_encode_refuses_bad_tensors),
        cmocka_unit_test(test_truncation_at_every_offset),
        cmocka_unit_test(test_every_flipped_byte_is_refused),
        cmocka_unit_test(test_magic_version_endianness),
        cmocka_unit_test(test_bad_insides_with_valid_checksum),
        cmocka_unit_test(test_model_round_trip),
        cmocka_unit_test(test_model_tensors_must_match_the_config),
        cmocka_unit_test(test_nonfinite_weights_and_negative_variance_are_refused),
        cmocka_unit_test(test_save_is_atomic),
        cmocka_unit_test(test_model_file_truncated_anywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
