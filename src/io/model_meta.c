/* The model file's metadata: an ordered list of typed key-value entries.
 * Files hold at most AE_META_MAX_ENTRIES entries, so a linear search is fine. */
#include "aedet/model_file.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char *key;
    ae_meta_type type;
    int64_t i;
    double f;
    char *s;
    void *array; /* float, int64_t or double elements */
    size_t n;
} meta_entry;

struct ae_meta {
    meta_entry *entries;
    size_t count, capacity;
};

ae_meta *ae_meta_new(void)
{
    return calloc(1, sizeof(ae_meta));
}

static void entry_clear_value(meta_entry *e)
{
    free(e->s);
    free(e->array);
    e->s = NULL;
    e->array = NULL;
    e->n = 0;
}

void ae_meta_free(ae_meta *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->count; i++) {
        entry_clear_value(&m->entries[i]);
        free(m->entries[i].key);
    }
    free(m->entries);
    free(m);
}

static long find(const ae_meta *m, const char *key)
{
    if (!m || !key)
        return -1;
    for (size_t i = 0; i < m->count; i++)
        if (strcmp(m->entries[i].key, key) == 0)
            return (long)i;
    return -1;
}

int ae_meta_has(const ae_meta *m, const char *key)
{
    return find(m, key) >= 0;
}

/* The entry for key, emptied and ready for a new value: the existing one, or
 * a new one at the end. NULL with err filled on a bad key or no memory. */
static meta_entry *slot(ae_meta *m, const char *key, ae_error *err)
{
    if (!m || !key)
        return ae_fail(err, AE_ERR_USAGE, "metadata: no list or no key"), NULL;
    size_t len = strlen(key);
    if (len == 0 || len > AE_META_MAX_KEY)
        return ae_fail(err, AE_ERR_USAGE, "metadata key '%.40s' must be 1 to %d bytes", key,
                       AE_META_MAX_KEY),
               NULL;
    long at = find(m, key);
    if (at >= 0) {
        entry_clear_value(&m->entries[at]);
        return &m->entries[at];
    }
    if (m->count >= AE_META_MAX_ENTRIES)
        return ae_fail(err, AE_ERR_USAGE, "metadata: more than %d entries (adding '%s')",
                       AE_META_MAX_ENTRIES, key),
               NULL;
    if (m->count == m->capacity) {
        size_t cap = m->capacity ? 2 * m->capacity : 16;
        meta_entry *grown = realloc(m->entries, cap * sizeof *grown);
        if (!grown)
            return ae_fail(err, AE_ERR_NOMEM, "metadata: out of memory adding '%s'", key), NULL;
        m->entries = grown;
        m->capacity = cap;
    }
    meta_entry *e = &m->entries[m->count];
    memset(e, 0, sizeof *e);
    e->key = malloc(len + 1);
    if (!e->key)
        return ae_fail(err, AE_ERR_NOMEM, "metadata: out of memory adding '%s'", key), NULL;
    memcpy(e->key, key, len + 1);
    m->count++;
    return e;
}

ae_status ae_meta_set_int(ae_meta *m, const char *key, int64_t value, ae_error *err)
{
    meta_entry *e = slot(m, key, err);
    if (!e)
        return err ? err->code : AE_ERR_USAGE;
    e->type = AE_META_INT;
    e->i = value;
    return AE_OK;
}

ae_status ae_meta_set_float(ae_meta *m, const char *key, double value, ae_error *err)
{
    meta_entry *e = slot(m, key, err);
    if (!e)
        return err ? err->code : AE_ERR_USAGE;
    e->type = AE_META_FLOAT;
    e->f = value;
    return AE_OK;
}

ae_status ae_meta_set_str(ae_meta *m, const char *key, const char *value, ae_error *err)
{
    if (!value)
        return ae_fail(err, AE_ERR_USAGE, "metadata '%s': no string", key ? key : "?");
    size_t len = strlen(value);
    char *copy = malloc(len + 1);
    if (!copy)
        return ae_fail(err, AE_ERR_NOMEM, "metadata '%s': out of memory", key ? key : "?");
    memcpy(copy, value, len + 1);
    meta_entry *e = slot(m, key, err);
    if (!e) {
        free(copy);
        return err ? err->code : AE_ERR_USAGE;
    }
    e->type = AE_META_STRING;
    e->s = copy;
    e->n = 1;
    return AE_OK;
}

static ae_status set_array(ae_meta *m, const char *key, ae_meta_type type, const void *v,
                           size_t n, size_t elem, ae_error *err)
{
    size_t bytes;
    if (n > 0 && !v)
        return ae_fail(err, AE_ERR_USAGE, "metadata '%s': no values", key ? key : "?");
    if (!ae_mul_size(n, elem, &bytes))
        return ae_fail(err, AE_ERR_NOMEM, "metadata '%s': %zu values overflow", key ? key : "?",
                       n);
    void *copy = malloc(bytes ? bytes : 1);
    if (!copy)
        return ae_fail(err, AE_ERR_NOMEM, "metadata '%s': out of memory for %zu values",
                       key ? key : "?", n);
    if (bytes)
        memcpy(copy, v, bytes);
    meta_entry *e = slot(m, key, err);
    if (!e) {
        free(copy);
        return err ? err->code : AE_ERR_USAGE;
    }
    e->type = type;
    e->array = copy;
    e->n = n;
    return AE_OK;
}

ae_status ae_meta_set_floats(ae_meta *m, const char *key, const float *v, size_t n, ae_error *err)
{
    return set_array(m, key, AE_META_FLOATS, v, n, sizeof(float), err);
}

ae_status ae_meta_set_ints(ae_meta *m, const char *key, const int64_t *v, size_t n, ae_error *err)
{
    return set_array(m, key, AE_META_INTS, v, n, sizeof(int64_t), err);
}

ae_status ae_meta_set_doubles(ae_meta *m, const char *key, const double *v, size_t n,
                              ae_error *err)
{
    return set_array(m, key, AE_META_DOUBLES, v, n, sizeof(double), err);
}

ae_status ae_meta_set_now(ae_meta *m, const char *key, ae_error *err)
{
    time_t now = time(NULL);
    struct tm utc;
    char text[32];
    if (now == (time_t)-1 || !gmtime_r(&now, &utc) ||
        strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc) == 0)
        return ae_fail(err, AE_ERR_IO, "metadata '%s': cannot read the clock", key ? key : "?");
    return ae_meta_set_str(m, key, text, err);
}

int ae_meta_remove(ae_meta *m, const char *key)
{
    long at = find(m, key);
    if (at < 0)
        return 0;
    entry_clear_value(&m->entries[at]);
    free(m->entries[at].key);
    memmove(&m->entries[at], &m->entries[at + 1],
            (m->count - (size_t)at - 1) * sizeof *m->entries);
    m->count--;
    return 1;
}

static const meta_entry *typed(const ae_meta *m, const char *key, ae_meta_type type)
{
    long at = find(m, key);
    return at >= 0 && m->entries[at].type == type ? &m->entries[at] : NULL;
}

int ae_meta_get_int(const ae_meta *m, const char *key, int64_t *value)
{
    const meta_entry *e = typed(m, key, AE_META_INT);
    if (e && value)
        *value = e->i;
    return e != NULL;
}

int ae_meta_get_float(const ae_meta *m, const char *key, double *value)
{
    const meta_entry *e = typed(m, key, AE_META_FLOAT);
    if (e) {
        if (value)
            *value = e->f;
        return 1;
    }
    e = typed(m, key, AE_META_INT);
    if (e && value)
        *value = (double)e->i;
    return e != NULL;
}

const char *ae_meta_get_str(const ae_meta *m, const char *key)
{
    const meta_entry *e = typed(m, key, AE_META_STRING);
    return e ? e->s : NULL;
}

static const void *get_array(const ae_meta *m, const char *key, ae_meta_type type, size_t *n)
{
    const meta_entry *e = typed(m, key, type);
    if (n)
        *n = e ? e->n : 0;
    return e ? e->array : NULL;
}

const float *ae_meta_get_floats(const ae_meta *m, const char *key, size_t *n)
{
    return get_array(m, key, AE_META_FLOATS, n);
}

const int64_t *ae_meta_get_ints(const ae_meta *m, const char *key, size_t *n)
{
    return get_array(m, key, AE_META_INTS, n);
}

const double *ae_meta_get_doubles(const ae_meta *m, const char *key, size_t *n)
{
    return get_array(m, key, AE_META_DOUBLES, n);
}

size_t ae_meta_count(const ae_meta *m)
{
    return m ? m->count : 0;
}

const char *ae_meta_key(const ae_meta *m, size_t i)
{
    return m && i < m->count ? m->entries[i].key : NULL;
}

ae_meta_type ae_meta_entry_type(const ae_meta *m, size_t i)
{
    return m && i < m->count ? m->entries[i].type : (ae_meta_type)0;
}

size_t ae_meta_entry_length(const ae_meta *m, size_t i)
{
    if (!m || i >= m->count)
        return 0;
    const meta_entry *e = &m->entries[i];
    return e->type == AE_META_FLOATS || e->type == AE_META_INTS || e->type == AE_META_DOUBLES
               ? e->n
               : 1;
}

const char *ae_meta_type_name(ae_meta_type t)
{
    switch (t) {
    case AE_META_INT: return "int64";
    case AE_META_FLOAT: return "float64";
    case AE_META_STRING: return "string";
    case AE_META_FLOATS: return "float32[]";
    case AE_META_INTS: return "int64[]";
    case AE_META_DOUBLES: return "float64[]";
    }
    return "unknown";
}

ae_status ae_meta_copy(const ae_meta *src, ae_meta **out, ae_error *err)
{
    ae_meta *m = ae_meta_new();
    if (!m)
        return ae_fail(err, AE_ERR_NOMEM, "metadata: out of memory copying");
    ae_status st = AE_OK;
    for (size_t i = 0; src && i < src->count && st == AE_OK; i++) {
        const meta_entry *e = &src->entries[i];
        switch (e->type) {
        case AE_META_INT: st = ae_meta_set_int(m, e->key, e->i, err); break;
        case AE_META_FLOAT: st = ae_meta_set_float(m, e->key, e->f, err); break;
        case AE_META_STRING: st = ae_meta_set_str(m, e->key, e->s, err); break;
        case AE_META_FLOATS: st = ae_meta_set_floats(m, e->key, e->array, e->n, err); break;
        case AE_META_INTS: st = ae_meta_set_ints(m, e->key, e->array, e->n, err); break;
        case AE_META_DOUBLES: st = ae_meta_set_doubles(m, e->key, e->array, e->n, err); break;
        }
    }
    if (st != AE_OK) {
        ae_meta_free(m);
        return st;
    }
    *out = m;
    return AE_OK;
}
