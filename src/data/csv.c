/* CSV as RFC 4180 describes it, read leniently where that is harmless:
 * fields separated by commas, records by LF, CRLF or a lone CR; a field that
 * starts with a double quote runs to the matching quote and may hold commas,
 * newlines and doubled quotes (""); a quote inside an unquoted field is kept
 * as it is. A UTF-8 byte-order mark at the start is skipped, empty lines are
 * skipped, and the last record may end without a newline. Text after a
 * closing quote, an unterminated quote and NUL bytes are errors with the line.
 *
 * Every field is copied (unescaped, NUL-terminated) into one block of text,
 * and every field pointer into one array, so a parse makes few allocations. */
#include "aedet/image.h"
#include "common/file_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t first; /* index of its first field */
    int columns;
    size_t line;
} record;

typedef struct {
    const char *name;
    const char *text;
    size_t len, pos, line;
    char *pool; /* unescaped fields, each NUL-terminated */
    size_t pool_used;
    size_t *fields; /* offsets into pool */
    size_t num_fields, cap_fields;
    record *records;
    size_t num_records, cap_records;
} parser;

static int grow(void **array, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need) {
        if (n > SIZE_MAX / 2 / elem)
            return -1;
        n *= 2;
    }
    void *p = realloc(*array, n * elem);
    if (!p)
        return -1;
    *array = p;
    *cap = n;
    return 0;
}

/* Consumes one line ending at p->pos (LF, CRLF or CR) and counts it. */
static void skip_newline(parser *p)
{
    if (p->text[p->pos] == '\r' && p->pos + 1 < p->len && p->text[p->pos + 1] == '\n')
        p->pos++;
    p->pos++;
    p->line++;
}

static int is_newline(char c)
{
    return c == '\n' || c == '\r';
}

/* Reads one field at p->pos into the pool; stops before its delimiter. */
static ae_status read_field(parser *p, ae_error *err)
{
    const char *t = p->text;
    char *out = p->pool + p->pool_used;
    size_t n = 0;
    if (p->pos < p->len && t[p->pos] == '"') {
        size_t open_line = p->line;
        p->pos++;
        for (;;) {
            if (p->pos >= p->len)
                return ae_fail(err, AE_ERR_DATA,
                               "%s: line %zu: quoted field is never closed (no matching \")",
                               p->name, open_line);
            char c = t[p->pos];
            if (c == '"') {
                if (p->pos + 1 < p->len && t[p->pos + 1] == '"') {
                    out[n++] = '"';
                    p->pos += 2;
                    continue;
                }
                p->pos++;
                break;
            }
            if (c == '\0')
                return ae_fail(err, AE_ERR_DATA, "%s: line %zu: NUL byte in a field", p->name,
                               p->line);
            /* Newlines inside quotes are kept as written, and counted. */
            if (c == '\n' || (c == '\r' && !(p->pos + 1 < p->len && t[p->pos + 1] == '\n')))
                p->line++;
            out[n++] = c;
            p->pos++;
        }
        if (p->pos < p->len && t[p->pos] != ',' && !is_newline(t[p->pos]))
            return ae_fail(err, AE_ERR_DATA,
                           "%s: line %zu: unexpected '%c' after a closing quote (a quote inside "
                           "a quoted field must be doubled)",
                           p->name, p->line, (unsigned char)t[p->pos] >= 32 ? t[p->pos] : '?');
    } else {
        while (p->pos < p->len && t[p->pos] != ',' && !is_newline(t[p->pos])) {
            if (t[p->pos] == '\0')
                return ae_fail(err, AE_ERR_DATA, "%s: line %zu: NUL byte in a field", p->name,
                               p->line);
            out[n++] = t[p->pos++];
        }
    }
    out[n] = '\0';
    if (grow((void **)&p->fields, &p->cap_fields, p->num_fields + 1, sizeof *p->fields) != 0)
        return ae_fail(err, AE_ERR_NOMEM, "%s: out of memory", p->name);
    p->fields[p->num_fields++] = p->pool_used;
    p->pool_used += n + 1;
    return AE_OK;
}

static ae_status read_record(parser *p, ae_error *err)
{
    if (grow((void **)&p->records, &p->cap_records, p->num_records + 1, sizeof *p->records) != 0)
        return ae_fail(err, AE_ERR_NOMEM, "%s: out of memory", p->name);
    record *r = &p->records[p->num_records];
    r->first = p->num_fields;
    r->line = p->line;
    r->columns = 0;
    for (;;) {
        if (r->columns == INT_MAX)
            return ae_fail(err, AE_ERR_DATA, "%s: line %zu: too many fields", p->name, r->line);
        ae_status st = read_field(p, err);
        if (st != AE_OK)
            return st;
        r = &p->records[p->num_records];
        r->columns++;
        if (p->pos < p->len && p->text[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len)
            skip_newline(p);
        break;
    }
    p->num_records++;
    return AE_OK;
}

static void parser_free(parser *p)
{
    free(p->pool);
    free(p->fields);
    free(p->records);
}

ae_status ae_csv_parse(const char *text, size_t len, const char *name, ae_csv *out, ae_error *err)
{
    memset(out, 0, sizeof *out);
    parser p = {.name = name ? name : "CSV", .text = text, .len = len, .line = 1};
    /* Each field takes at most its own bytes plus a NUL, and there are at most len + 1 fields. */
    if (len > SIZE_MAX / 2 - 2)
        return ae_fail(err, AE_ERR_NOMEM, "%s: too large", p.name);
    p.pool = malloc(2 * len + 2);
    if (!p.pool)
        return ae_fail(err, AE_ERR_NOMEM, "%s: out of memory for %zu bytes of CSV", p.name, len);
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        p.pos = 3;
    ae_status st = AE_OK;
    while (st == AE_OK && p.pos < len) {
        if (is_newline(text[p.pos]))
            skip_newline(&p); /* an empty line: no record */
        else
            st = read_record(&p, err);
    }
    if (st == AE_OK && p.num_records == 0)
        st = ae_fail(err, AE_ERR_DATA, "%s: empty CSV: no header row", p.name);
    if (st != AE_OK) {
        parser_free(&p);
        return st;
    }

    size_t rows = p.num_records - 1, keep = rows ? rows : 1;
    out->fields_ = malloc(sizeof *out->fields_ * p.num_fields);
    out->rows = malloc(sizeof *out->rows * keep);
    out->row_columns = malloc(sizeof *out->row_columns * keep);
    out->row_line = malloc(sizeof *out->row_line * keep);
    if (!out->fields_ || !out->rows || !out->row_columns || !out->row_line) {
        parser_free(&p);
        ae_csv_free(out);
        return ae_fail(err, AE_ERR_NOMEM, "%s: out of memory", p.name);
    }
    for (size_t i = 0; i < p.num_fields; i++)
        out->fields_[i] = p.pool + p.fields[i];
    out->text_ = p.pool;
    out->header = out->fields_;
    out->num_columns = p.records[0].columns;
    out->num_rows = rows;
    for (size_t r = 0; r < rows; r++) {
        const record *rec = &p.records[r + 1];
        out->rows[r] = out->fields_ + rec->first;
        out->row_columns[r] = rec->columns;
        out->row_line[r] = rec->line;
    }
    free(p.fields);
    free(p.records);
    return AE_OK;
}

static ae_status parse_bytes(const uint8_t *bytes, size_t len, const char *name, void *out, ae_error *err)
{
    return ae_csv_parse((const char *)bytes, len, name, out, err);
}

ae_status ae_csv_read(const char *path, ae_csv *out, ae_error *err)
{
    memset(out, 0, sizeof *out);
    return ae_parse_file(path, parse_bytes, out, err);
}

int ae_csv_column(const ae_csv *csv, const char *header_name)
{
    for (int c = 0; c < csv->num_columns; c++)
        if (strcmp(csv->header[c], header_name) == 0)
            return c;
    return -1;
}

void ae_csv_free(ae_csv *csv)
{
    if (!csv)
        return;
    free(csv->text_);
    free(csv->fields_);
    free(csv->rows);
    free(csv->row_columns);
    free(csv->row_line);
    memset(csv, 0, sizeof *csv);
}
