/* The model file format (docs/MODEL_FORMAT.md): metadata and named float32
 * tensors to bytes and back. Knows nothing of ae_model.
 *
 * The reader trusts nothing: every length is checked against the bytes that
 * are really there before it is used, so a corrupt length can neither read
 * out of bounds nor make us allocate more than the file's own size. */
#include "aedet/model_file.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MAGIC "AEDETMDL"
#define MAGIC_LEN 8
#define ENDIAN_MARKER 0x01020304u
#define PREAMBLE_LEN 40
#define ALIGN 32
#define MAX_TENSORS 4096

/* ---- Little-endian encoding, whatever the host ---- */

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int host_is_little_endian(void)
{
    const uint32_t one = 1;
    uint8_t first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* n float32 values <-> little-endian bytes: one memcpy on little-endian hosts. */
static void floats_to_le(uint8_t *dst, const float *src, size_t n)
{
    if (host_is_little_endian()) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &src[i], 4);
        put_le(dst + 4 * i, bits, 4);
    }
}

static void floats_from_le(float *dst, const uint8_t *src, size_t n)
{
    if (host_is_little_endian()) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)get_le(src + 4 * i, 4);
        memcpy(&dst[i], &bits, 4);
    }
}

static uint32_t crc32_of(const uint8_t *p, size_t len)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    while (len > 0) { /* zlib takes 32-bit lengths */
        uInt chunk = len > (1u << 30) ? (1u << 30) : (uInt)len;
        crc = crc32(crc, p, chunk);
        p += chunk;
        len -= chunk;
    }
    return (uint32_t)crc;
}

static size_t align_up(size_t v)
{
    return (v + (ALIGN - 1)) & ~(size_t)(ALIGN - 1);
}

/* ---- Writing: the same code sizes the file (buf NULL) and fills it ---- */

typedef struct {
    uint8_t *buf;
    size_t pos;
} writer;

static void w_bytes(writer *w, const void *p, size_t n)
{
    if (w->buf && n)
        memcpy(w->buf + w->pos, p, n);
    w->pos += n;
}

static void w_int(writer *w, uint64_t v, int bytes)
{
    if (w->buf)
        put_le(w->buf + w->pos, v, bytes);
    w->pos += (size_t)bytes;
}

static void w_f64(writer *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    w_int(w, bits, 8);
}

static void w_pad(writer *w, size_t to)
{
    if (w->buf)
        memset(w->buf + w->pos, 0, to - w->pos);
    w->pos = to;
}

static void write_meta(writer *w, const ae_meta *meta)
{
    size_t count = ae_meta_count(meta);
    w_int(w, count, 4);
    for (size_t i = 0; i < count; i++) {
        const char *key = ae_meta_key(meta, i);
        ae_meta_type type = ae_meta_entry_type(meta, i);
        size_t n = 0;
        w_int(w, strlen(key), 4);
        w_bytes(w, key, strlen(key));
        w_int(w, (uint64_t)type, 4);
        switch (type) {
        case AE_META_INT: {
            int64_t v = 0;
            ae_meta_get_int(meta, key, &v);
            w_int(w, 8, 8);
            w_int(w, (uint64_t)v, 8);
            break;
        }
        case AE_META_FLOAT: {
            double v = 0;
            ae_meta_get_float(meta, key, &v);
            w_int(w, 8, 8);
            w_f64(w, v);
            break;
        }
        case AE_META_STRING: {
            const char *s = ae_meta_get_str(meta, key);
            w_int(w, strlen(s), 8);
            w_bytes(w, s, strlen(s));
            break;
        }
        case AE_META_FLOATS: {
            const float *v = ae_meta_get_floats(meta, key, &n);
            w_int(w, 4 * (uint64_t)n, 8);
            if (w->buf)
                floats_to_le(w->buf + w->pos, v, n);
            w->pos += 4 * n;
            break;
        }
        case AE_META_INTS: {
            const int64_t *v = ae_meta_get_ints(meta, key, &n);
            w_int(w, 8 * (uint64_t)n, 8);
            for (size_t j = 0; j < n; j++)
                w_int(w, (uint64_t)v[j], 8);
            break;
        }
        case AE_META_DOUBLES: {
            const double *v = ae_meta_get_doubles(meta, key, &n);
            w_int(w, 8 * (uint64_t)n, 8);
            for (size_t j = 0; j < n; j++)
                w_f64(w, v[j]);
            break;
        }
        }
    }
}

/* Data offsets (relative to the data section) of each tensor, 32-aligned. */
static void write_directory(writer *w, const ae_file_tensor *t, int n, const size_t *offsets)
{
    w_int(w, (uint64_t)n, 4);
    for (int i = 0; i < n; i++) {
        size_t name_len = strlen(t[i].name);
        w_int(w, name_len, 4);
        w_bytes(w, t[i].name, name_len);
        w_int(w, (uint64_t)t[i].kind, 4);
        w_int(w, (uint64_t)t[i].ndim, 4);
        for (int d = 0; d < t[i].ndim; d++)
            w_int(w, (uint64_t)t[i].shape[d], 8);
        w_int(w, offsets[i], 8);
        w_int(w, 4 * (uint64_t)t[i].count, 8);
    }
}

static ae_status check_tensors(const ae_file_tensor *t, int n, ae_error *err)
{
    if (n < 0 || n > MAX_TENSORS)
        return ae_fail(err, AE_ERR_USAGE, "model file: %d tensors (at most %d)", n, MAX_TENSORS);
    for (int i = 0; i < n; i++) {
        size_t name_len = strnlen(t[i].name, sizeof t[i].name);
        if (name_len == 0 || name_len > AE_FILE_MAX_NAME)
            return ae_fail(err, AE_ERR_USAGE, "model file: tensor %d has no name or one too long", i);
        if (t[i].kind < AE_KIND_PARAM || t[i].kind > AE_KIND_ADAM_V)
            return ae_fail(err, AE_ERR_USAGE, "model file: tensor '%s' has bad kind %d", t[i].name,
                           (int)t[i].kind);
        if (t[i].ndim < 1 || t[i].ndim > AE_FILE_MAX_DIMS)
            return ae_fail(err, AE_ERR_USAGE, "model file: tensor '%s' has %d dimensions",
                           t[i].name, t[i].ndim);
        size_t count = 1;
        for (int d = 0; d < t[i].ndim; d++)
            if (t[i].shape[d] < 1 || (uint64_t)t[i].shape[d] > SIZE_MAX ||
                !ae_mul_size(count, (size_t)t[i].shape[d], &count))
                return ae_fail(err, AE_ERR_USAGE, "model file: tensor '%s' has a bad shape",
                               t[i].name);
        if (count != t[i].count || !t[i].data)
            return ae_fail(err, AE_ERR_USAGE,
                           "model file: tensor '%s': count %zu does not match its shape (%zu) "
                           "or no data",
                           t[i].name, t[i].count, count);
        for (int j = 0; j < i; j++)
            if (t[j].kind == t[i].kind && strcmp(t[j].name, t[i].name) == 0)
                return ae_fail(err, AE_ERR_USAGE, "model file: tensor '%s' appears twice",
                               t[i].name);
    }
    return AE_OK;
}

ae_status ae_model_file_encode(const ae_meta *meta, const ae_file_tensor *tensors, int num_tensors,
                               uint8_t **out, size_t *out_len, ae_error *err)
{
    ae_status st = check_tensors(tensors, num_tensors, err);
    if (st != AE_OK)
        return st;
    size_t *offsets = malloc((size_t)(num_tensors > 0 ? num_tensors : 1) * sizeof *offsets);
    if (!offsets)
        return ae_fail(err, AE_ERR_NOMEM, "model file: out of memory");
    size_t data_len = 0;
    for (int i = 0; i < num_tensors; i++) {
        data_len = align_up(data_len);
        offsets[i] = data_len;
        data_len += 4 * tensors[i].count; /* counts are bounded by memory the model holds */
    }

    writer sizing = {NULL, 0};
    write_meta(&sizing, meta);
    size_t meta_len = sizing.pos;
    sizing.pos = 0;
    write_directory(&sizing, tensors, num_tensors, offsets);
    size_t dir_len = sizing.pos;
    size_t data_offset = align_up(PREAMBLE_LEN + meta_len + dir_len);
    size_t total = data_offset + data_len + 4;

    uint8_t *buf = malloc(total);
    if (!buf) {
        free(offsets);
        return ae_fail(err, AE_ERR_NOMEM, "model file: out of memory for %zu bytes", total);
    }
    writer w = {buf, 0};
    w_bytes(&w, MAGIC, MAGIC_LEN);
    w_int(&w, AE_MODEL_FORMAT_VERSION, 4);
    w_int(&w, ENDIAN_MARKER, 4);
    w_int(&w, meta_len, 8);
    w_int(&w, dir_len, 8);
    w_int(&w, data_len, 8);
    write_meta(&w, meta);
    write_directory(&w, tensors, num_tensors, offsets);
    for (int i = 0; i < num_tensors; i++) {
        w_pad(&w, data_offset + offsets[i]);
        floats_to_le(buf + w.pos, tensors[i].data, tensors[i].count);
        w.pos += 4 * tensors[i].count;
    }
    w_pad(&w, data_offset + data_len);
    w_int(&w, crc32_of(buf, w.pos), 4);
    free(offsets);
    *out = buf;
    *out_len = total;
    return AE_OK;
}

/* ---- Reading ---- */

struct ae_model_file {
    const uint8_t *bytes;
    ae_meta *meta;
    int num_tensors;
    ae_file_tensor *tensors;
    size_t *data_at; /* absolute offset of each tensor's bytes */
};

/* A cursor over one section; the first failure is recorded and sticks. */
typedef struct {
    const uint8_t *bytes;
    size_t pos, end;
    const char *name, *section;
    ae_error *err;
    int failed;
} reader;

static int need(reader *r, uint64_t n, const char *what)
{
    if (r->failed)
        return 0;
    if (n > r->end - r->pos) {
        ae_fail(r->err, AE_ERR_FORMAT,
                "%s: %s (%llu bytes at offset %zu) runs past the end of the %s section "
                "(offset %zu): the file is corrupt",
                r->name, what, (unsigned long long)n, r->pos, r->section, r->end);
        r->failed = 1;
        return 0;
    }
    return 1;
}

static uint64_t r_int(reader *r, int bytes, const char *what)
{
    if (!need(r, (uint64_t)bytes, what))
        return 0;
    uint64_t v = get_le(r->bytes + r->pos, bytes);
    r->pos += (size_t)bytes;
    return v;
}

static void r_fail(reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void r_fail(reader *r, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (!r->failed)
        ae_fail(r->err, AE_ERR_FORMAT, "%s: %s section: %s", r->name, r->section, what);
    r->failed = 1;
}

/* Reads one value of a known type into meta; unknown types were skipped. */
static void read_meta_value(reader *r, ae_meta *meta, const char *key, uint32_t type,
                            uint64_t len)
{
    const uint8_t *p = r->bytes + r->pos;
    ae_status st = AE_OK;
    size_t elem = type == AE_META_FLOATS ? 4 : type == AE_META_STRING ? 1 : 8;
    if ((type == AE_META_INT || type == AE_META_FLOAT) && len != 8) {
        r_fail(r, "entry '%s': a number of %llu bytes (8 expected)", key, (unsigned long long)len);
        return;
    }
    if (len % elem != 0) {
        r_fail(r, "entry '%s': an array of %llu bytes is not whole elements", key,
               (unsigned long long)len);
        return;
    }
    size_t n = (size_t)(len / elem); /* len fits: need() bounded it by the file's size */
    switch ((ae_meta_type)type) {
    case AE_META_INT: st = ae_meta_set_int(meta, key, (int64_t)get_le(p, 8), r->err); break;
    case AE_META_FLOAT: {
        uint64_t bits = get_le(p, 8);
        double v;
        memcpy(&v, &bits, 8);
        st = ae_meta_set_float(meta, key, v, r->err);
        break;
    }
    case AE_META_STRING: {
        if (memchr(p, 0, n)) {
            r_fail(r, "entry '%s': a string with a NUL byte", key);
            return;
        }
        char *s = malloc(n + 1);
        if (!s) {
            st = ae_fail(r->err, AE_ERR_NOMEM, "%s: out of memory reading '%s'", r->name, key);
            break;
        }
        memcpy(s, p, n);
        s[n] = '\0';
        st = ae_meta_set_str(meta, key, s, r->err);
        free(s);
        break;
    }
    case AE_META_FLOATS:
    case AE_META_INTS:
    case AE_META_DOUBLES: {
        void *v = malloc(n ? n * elem : 1);
        if (!v) {
            st = ae_fail(r->err, AE_ERR_NOMEM, "%s: out of memory reading '%s'", r->name, key);
            break;
        }
        if (type == AE_META_FLOATS) {
            floats_from_le(v, p, n);
            st = ae_meta_set_floats(meta, key, v, n, r->err);
        } else {
            uint64_t *bits = v;
            for (size_t j = 0; j < n; j++)
                bits[j] = get_le(p + 8 * j, 8);
            st = type == AE_META_INTS ? ae_meta_set_ints(meta, key, v, n, r->err)
                                      : ae_meta_set_doubles(meta, key, v, n, r->err);
        }
        free(v);
        break;
    }
    }
    if (st != AE_OK)
        r->failed = 1;
}

static void read_meta(reader *r, ae_meta *meta)
{
    uint32_t count = (uint32_t)r_int(r, 4, "the entry count");
    if (!r->failed && count > AE_META_MAX_ENTRIES)
        r_fail(r, "%u entries (at most %d)", (unsigned)count, AE_META_MAX_ENTRIES);
    for (uint32_t i = 0; i < count && !r->failed; i++) {
        char key[AE_META_MAX_KEY + 1];
        uint32_t key_len = (uint32_t)r_int(r, 4, "a key length");
        if (!r->failed && (key_len == 0 || key_len > AE_META_MAX_KEY))
            r_fail(r, "entry %u: a key of %u bytes", (unsigned)i, (unsigned)key_len);
        if (!need(r, key_len, "a key"))
            break;
        memcpy(key, r->bytes + r->pos, key_len);
        key[key_len] = '\0';
        r->pos += key_len;
        if (strlen(key) != key_len)
            r_fail(r, "entry %u: a key with a NUL byte ('%s')", (unsigned)i, key);
        uint32_t type = (uint32_t)r_int(r, 4, "a type tag");
        uint64_t len = r_int(r, 8, "a value length");
        if (!need(r, len, "a value") || r->failed)
            break;
        if (ae_meta_has(meta, key)) {
            r_fail(r, "the key '%s' appears twice", key);
            break;
        }
        if (type >= AE_META_INT && type <= AE_META_DOUBLES)
            read_meta_value(r, meta, key, type, len);
        /* else: a type from a later format; ignored, as documented */
        r->pos += (size_t)len;
    }
    if (!r->failed && r->pos != r->end)
        r_fail(r, "%zu bytes left over after the last entry", r->end - r->pos);
}

static void read_directory(reader *r, ae_model_file *f, size_t data_offset, size_t data_len)
{
    uint32_t count = (uint32_t)r_int(r, 4, "the tensor count");
    if (!r->failed && count > MAX_TENSORS)
        r_fail(r, "%u tensors (at most %d)", (unsigned)count, MAX_TENSORS);
    if (r->failed)
        return;
    f->tensors = calloc(count ? count : 1, sizeof *f->tensors);
    f->data_at = calloc(count ? count : 1, sizeof *f->data_at);
    if (!f->tensors || !f->data_at) {
        ae_fail(r->err, AE_ERR_NOMEM, "%s: out of memory for %u tensors", r->name, count);
        r->failed = 1;
        return;
    }
    uint64_t data_end = 0; /* tensors are stored in directory order, apart */
    for (uint32_t i = 0; i < count && !r->failed; i++) {
        ae_file_tensor *t = &f->tensors[i];
        uint32_t name_len = (uint32_t)r_int(r, 4, "a tensor name length");
        if (!r->failed && (name_len == 0 || name_len > AE_FILE_MAX_NAME))
            r_fail(r, "tensor %u: a name of %u bytes", (unsigned)i, (unsigned)name_len);
        if (!need(r, name_len, "a tensor name"))
            break;
        memcpy(t->name, r->bytes + r->pos, name_len);
        t->name[name_len] = '\0';
        r->pos += name_len;
        if (strlen(t->name) != name_len)
            r_fail(r, "tensor %u: a name with a NUL byte ('%s')", (unsigned)i, t->name);
        uint32_t kind = (uint32_t)r_int(r, 4, "a tensor kind");
        uint32_t ndim = (uint32_t)r_int(r, 4, "a tensor's dimension count");
        if (!r->failed && kind > AE_KIND_ADAM_V)
            r_fail(r, "tensor '%s' has unknown kind %u", t->name, (unsigned)kind);
        if (!r->failed && (ndim < 1 || ndim > AE_FILE_MAX_DIMS))
            r_fail(r, "tensor '%s' has %u dimensions", t->name, (unsigned)ndim);
        if (r->failed)
            break;
        t->kind = (ae_tensor_kind)kind;
        t->ndim = (int)ndim;
        /* The product is bounded by the data section, itself bounded by the file. */
        uint64_t count_limit = data_len / 4, elems = 1;
        for (uint32_t d = 0; d < ndim; d++) {
            uint64_t dim = r_int(r, 8, "a tensor dimension");
            if (!r->failed && (dim < 1 || dim > count_limit || elems > count_limit / dim))
                r_fail(r, "tensor '%s': dimension %u (%llu) is 0 or past the data section",
                       t->name, (unsigned)d, (unsigned long long)dim);
            elems *= dim;
            t->shape[d] = (int64_t)dim;
        }
        uint64_t offset = r_int(r, 8, "a tensor offset");
        uint64_t bytes = r_int(r, 8, "a tensor length");
        if (r->failed)
            break;
        if (bytes != 4 * elems)
            r_fail(r, "tensor '%s': %llu bytes do not match its shape", t->name,
                   (unsigned long long)bytes);
        else if (offset % ALIGN != 0)
            r_fail(r, "tensor '%s': offset %llu is not 32-byte aligned", t->name,
                   (unsigned long long)offset);
        else if (offset > data_len || bytes > data_len - offset)
            r_fail(r, "tensor '%s': offset %llu points past the end of the data section",
                   t->name, (unsigned long long)offset);
        else if (offset < data_end)
            r_fail(r, "tensor '%s' overlaps the one before it", t->name);
        data_end = offset + bytes;
        t->count = (size_t)elems;
        f->data_at[i] = data_offset + (size_t)offset;
        for (uint32_t j = 0; j < i && !r->failed; j++)
            if (f->tensors[j].kind == t->kind && strcmp(f->tensors[j].name, t->name) == 0)
                r_fail(r, "tensor '%s' appears twice", t->name);
        f->num_tensors = (int)i + 1;
    }
    if (!r->failed && r->pos != r->end)
        r_fail(r, "%zu bytes left over after the last tensor", r->end - r->pos);
}

/* Magic, endianness, version and section lengths against the real size. */
static ae_status check_frame(const uint8_t *b, size_t len, const char *name, size_t lens[3],
                             ae_error *err)
{
    if (len == 0)
        return ae_fail(err, AE_ERR_FORMAT, "%s: an empty file, not an aedet model file", name);
    size_t magic_have = len < MAGIC_LEN ? len : MAGIC_LEN;
    if (memcmp(b, MAGIC, magic_have) != 0)
        return ae_fail(err, AE_ERR_FORMAT, "%s: not an aedet model file (no %s magic)", name,
                       MAGIC);
    if (len < 16)
        return ae_fail(err, AE_ERR_FORMAT,
                       "%s: truncated in the preamble (%zu bytes; the preamble has %d)", name,
                       len, PREAMBLE_LEN);
    uint32_t marker = (uint32_t)get_le(b + 12, 4);
    if (marker != ENDIAN_MARKER) {
        if (marker == 0x04030201u)
            return ae_fail(err, AE_ERR_FORMAT,
                           "%s: written with big-endian byte order; this aedet reads "
                           "little-endian model files only",
                           name);
        return ae_fail(err, AE_ERR_FORMAT,
                       "%s: bad byte-order marker 0x%08x: the file is corrupt", name,
                       (unsigned)marker);
    }
    uint32_t version = (uint32_t)get_le(b + 8, 4);
    if (version > AE_MODEL_FORMAT_VERSION)
        return ae_fail(err, AE_ERR_FORMAT,
                       "%s: made by a newer aedet (format %u, this one reads up to %d)", name,
                       (unsigned)version, AE_MODEL_FORMAT_VERSION);
    if (version == 0)
        return ae_fail(err, AE_ERR_FORMAT, "%s: format version 0: the file is corrupt", name);
    if (len < PREAMBLE_LEN)
        return ae_fail(err, AE_ERR_FORMAT,
                       "%s: truncated in the preamble (%zu bytes; the preamble has %d)", name,
                       len, PREAMBLE_LEN);

    static const char *const section[3] = {"metadata", "tensor directory", "tensor data"};
    size_t at = PREAMBLE_LEN;
    for (int s = 0; s < 3; s++) {
        uint64_t n = get_le(b + 16 + 8 * s, 8);
        if (s == 2)
            at = align_up(at); /* at <= len here, so no overflow */
        if (at > len || n > len - at)
            return ae_fail(err, AE_ERR_FORMAT,
                           "%s: the %s section (%llu bytes at offset %zu) runs past the end of "
                           "the file (%zu bytes): the file is truncated or corrupt",
                           name, section[s], (unsigned long long)n, at, len);
        lens[s] = (size_t)n;
        at += (size_t)n;
    }
    if (len - at < 4)
        return ae_fail(err, AE_ERR_FORMAT,
                       "%s: truncated: the checksum at offset %zu is missing (the file has %zu "
                       "bytes)",
                       name, at, len);
    if (len - at > 4)
        return ae_fail(err, AE_ERR_FORMAT,
                       "%s: %zu unexpected bytes after the checksum: the file is corrupt", name,
                       len - at - 4);
    uint32_t stored = (uint32_t)get_le(b + at, 4), computed = crc32_of(b, at);
    if (stored != computed)
        return ae_fail(err, AE_ERR_FORMAT,
                       "%s: checksum mismatch: the file is corrupt (stored %08x, computed %08x)",
                       name, (unsigned)stored, (unsigned)computed);
    return AE_OK;
}

ae_status ae_model_file_parse(const uint8_t *bytes, size_t len, const char *name,
                              ae_model_file **out, ae_error *err)
{
    size_t lens[3];
    if (!name)
        name = "model";
    if (!bytes && len > 0)
        return ae_fail(err, AE_ERR_USAGE, "%s: no bytes", name);
    ae_status st = check_frame(bytes, len, name, lens, err);
    if (st != AE_OK)
        return st;

    ae_model_file *f = calloc(1, sizeof *f);
    if (!f || !(f->meta = ae_meta_new())) {
        free(f);
        return ae_fail(err, AE_ERR_NOMEM, "%s: out of memory", name);
    }
    f->bytes = bytes;
    reader r = {bytes, PREAMBLE_LEN, PREAMBLE_LEN + lens[0], name, "metadata", err, 0};
    read_meta(&r, f->meta);
    if (!r.failed) {
        size_t data_offset = align_up(r.end + lens[1]);
        reader d = {bytes, r.end, r.end + lens[1], name, "tensor directory", err, 0};
        read_directory(&d, f, data_offset, lens[2]);
        r.failed = d.failed;
    }
    if (r.failed) {
        st = err ? err->code : AE_ERR_FORMAT;
        ae_model_file_free(f);
        return st;
    }
    *out = f;
    return AE_OK;
}

void ae_model_file_free(ae_model_file *f)
{
    if (!f)
        return;
    ae_meta_free(f->meta);
    free(f->tensors);
    free(f->data_at);
    free(f);
}

const ae_meta *ae_model_file_meta(const ae_model_file *f)
{
    return f->meta;
}

ae_meta *ae_model_file_take_meta(ae_model_file *f)
{
    ae_meta *fresh = ae_meta_new();
    if (!fresh)
        return NULL;
    ae_meta *taken = f->meta;
    f->meta = fresh;
    return taken;
}

int ae_model_file_num_tensors(const ae_model_file *f)
{
    return f->num_tensors;
}

const ae_file_tensor *ae_model_file_tensor(const ae_model_file *f, int i)
{
    return i >= 0 && i < f->num_tensors ? &f->tensors[i] : NULL;
}

int ae_model_file_find(const ae_model_file *f, const char *name, ae_tensor_kind kind)
{
    for (int i = 0; i < f->num_tensors; i++)
        if (f->tensors[i].kind == kind && strcmp(f->tensors[i].name, name) == 0)
            return i;
    return -1;
}

void ae_model_file_copy_tensor(const ae_model_file *f, int i, float *dst)
{
    floats_from_le(dst, f->bytes + f->data_at[i], f->tensors[i].count);
}
