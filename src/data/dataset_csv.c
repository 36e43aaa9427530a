/* The labels-CSV source: DeepWeeds' own `Filename,Label,Species` layout, or any
 * CSV with a path column and an integer label column. Paths are relative to
 * root (root defaults to the CSV's folder). A listed file that does not exist
 * stops the open (AE_BAD_STOP) or is kept for the loader to skip (AE_BAD_SKIP).
 * Labels are 0..65535; class names come from a "Species" column when there
 * is one (the first name seen for a label), else they are the numbers. */
#include "data/data_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { MAX_LABEL = 65535 };

static ae_status find_column(const ae_csv *csv, const char *file, const char *name, int *col,
                             ae_error *err)
{
    *col = ae_csv_column(csv, name);
    if (*col >= 0)
        return AE_OK;
    char have[512] = "";
    for (int c = 0; c < csv->num_columns; c++) {
        size_t used = strlen(have);
        if (used + 4 >= sizeof have)
            break;
        snprintf(have + used, sizeof have - used, "%s\"%s\"", c ? ", " : "", csv->header[c]);
    }
    return ae_fail(err, AE_ERR_DATA, "%s line 1: no column \"%s\" (the header has %s)", file,
                   name, have[0] ? have : "no columns");
}

static ae_status parse_label(const char *text, const char *file, size_t line, int *label,
                             ae_error *err)
{
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    while (end != p && isspace((unsigned char)*end))
        end++;
    if (end == p || *end != '\0' || errno == ERANGE)
        return ae_fail(err, AE_ERR_DATA, "%s line %zu: label \"%s\" is not an integer", file,
                       line, text);
    if (v < 0)
        return ae_fail(err, AE_ERR_DATA, "%s line %zu: label %ld is negative", file, line, v);
    if (v > MAX_LABEL)
        return ae_fail(err, AE_ERR_DATA, "%s line %zu: label %ld is larger than %d", file,
                       line, v, MAX_LABEL);
    *label = (int)v;
    return AE_OK;
}

/* path as is, or in double quotes with C escapes when it holds a control
 * character (a quoted CSV field can hold a newline), so a message stays one
 * line and shows what the file name really is. Truncated to fit buf. */
static const char *quote_for_message(const char *path, char *buf, size_t size)
{
    const unsigned char *p = (const unsigned char *)path;
    int plain = 1;
    for (size_t i = 0; p[i] && plain; i++)
        plain = p[i] >= 0x20 && p[i] != 0x7f;
    if (plain)
        return path;
    size_t used = 0;
    buf[used++] = '"';
    for (size_t i = 0; p[i] && used + 6 < size; i++) {
        unsigned char c = p[i];
        const char *esc = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t"
                        : c == '"' ? "\\\"" : c == '\\' ? "\\\\" : NULL;
        if (esc)
            used += (size_t)snprintf(buf + used, size - used, "%s", esc);
        else if (c < 0x20 || c == 0x7f)
            used += (size_t)snprintf(buf + used, size - used, "\\x%02x", c);
        else
            buf[used++] = (char)c;
    }
    buf[used++] = '"';
    buf[used] = '\0';
    return buf;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* Class names in one pass over the rows: the first non-empty species of each
 * label, else its number. Labels no row has stay NULL, so a lone label 65535
 * costs one array of pointers, not 65,536 strings (ae_class_name prints the
 * number for those). */
static ae_status name_classes(ae_dataset *ds, const ae_csv *csv, int species_col, int num,
                              const int *row_label, ae_error *err)
{
    char **names = calloc((size_t)num, sizeof *names);
    const char **species = calloc((size_t)num, sizeof *species);
    unsigned char *seen = calloc((size_t)num, 1);
    ae_status s = AE_OK;
    if (!names || !species || !seen)
        s = ae_fail(err, AE_ERR_NOMEM, "out of memory naming %d classes", num);
    for (size_t r = 0; s == AE_OK && r < csv->num_rows; r++) {
        int c = row_label[r];
        seen[c] = 1;
        if (!species[c] && species_col >= 0 && species_col < csv->row_columns[r] &&
            csv->rows[r][species_col][0])
            species[c] = csv->rows[r][species_col];
    }
    for (int c = 0; s == AE_OK && c < num; c++) {
        if (!seen[c])
            continue;
        char buf[16];
        snprintf(buf, sizeof buf, "%d", c);
        if (!(names[c] = strdup(species[c] ? species[c] : buf)))
            s = ae_fail(err, AE_ERR_NOMEM, "out of memory naming %d classes", num);
    }
    if (s == AE_OK) {
        ds->class_names = names;
        ds->num_classes = num;
    } else if (names) {
        for (int c = 0; c < num; c++)
            free(names[c]);
        free(names);
    }
    free(species);
    free(seen);
    return s;
}

/* Whether rel stays below the folder it is relative to: not absolute, and
 * no ".." climbing above where it started ("a/../b" stays, "../b" does not). */
static int stays_inside(const char *rel)
{
    if (rel[0] == '/')
        return 0;
    int depth = 0;
    for (const char *p = rel; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            depth--;
        else if (n && !(n == 1 && p[0] == '.'))
            depth++;
        if (depth < 0)
            return 0;
        p += n + (p[n] == '/');
    }
    return 1;
}

/* Rows naming one file twice with different labels: the labels file
 * contradicts itself, which the user should hear about (both rows stay). */
typedef struct {
    const char *rel;
    size_t line;
    int label;
} csv_row_ref;

static int by_rel(const void *a, const void *b)
{
    const csv_row_ref *x = a, *y = b;
    int c = strcmp(x->rel, y->rel);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

static ae_status note_conflicts(ae_dataset *ds, const char *file, csv_row_ref *rows, size_t n, ae_error *err)
{
    qsort(rows, n, sizeof *rows, by_rel);
    ae_status s = AE_OK;
    for (size_t i = 1; s == AE_OK && i < n; i++)
        if (!strcmp(rows[i].rel, rows[i - 1].rel) && rows[i].label != rows[i - 1].label)
            s = data_note(ds, err, "%s lines %zu and %zu name %s with different labels (%d, %d)", file,
                          rows[i - 1].line, rows[i].line, rows[i].rel, rows[i - 1].label, rows[i].label);
    return s;
}

static ae_status read_rows(const ae_source *src, const char *root, const ae_csv *csv,
                           ae_dataset *ds, ae_error *err)
{
    const char *file = src->labels;
    int pc, lc, sc = ae_csv_column(csv, "Species");
    ae_status s = find_column(csv, file, src->path_column ? src->path_column : "Filename", &pc,
                              err);
    if (s == AE_OK)
        s = find_column(csv, file, src->label_column ? src->label_column : "Label", &lc, err);
    if (s != AE_OK)
        return s;
    int need = (pc > lc ? pc : lc) + 1;
    int *row_label = malloc((csv->num_rows ? csv->num_rows : 1) * sizeof *row_label);
    csv_row_ref *refs = malloc((csv->num_rows ? csv->num_rows : 1) * sizeof *refs);
    size_t num_refs = 0;
    if (!row_label || !refs) {
        free(row_label);
        free(refs);
        return ae_fail(err, AE_ERR_NOMEM, "out of memory reading %s", file);
    }
    size_t cap = 0;
    int max_label = -1;
    for (size_t r = 0; r < csv->num_rows && s == AE_OK; r++) {
        size_t line = csv->row_line[r];
        row_label[r] = -1;
        if (csv->row_columns[r] < need) {
            s = ae_fail(err, AE_ERR_DATA, "%s line %zu: %d column(s), expected at least %d",
                        file, line, csv->row_columns[r], need);
            break;
        }
        const char *rel = csv->rows[r][pc];
        if (!rel[0]) {
            s = ae_fail(err, AE_ERR_DATA, "%s line %zu: empty file name", file, line);
            break;
        }
        if ((s = parse_label(csv->rows[r][lc], file, line, &row_label[r], err)) != AE_OK)
            break;
        if (row_label[r] > max_label)
            max_label = row_label[r];
        if (!data_glob_keep(src, rel))
            continue;
        if (!src->allow_outside && !stays_inside(rel)) {
            char shown[512];
            s = ae_fail(err, AE_ERR_DATA, "%s line %zu: %s is outside the data folder %s (allow such rows "
                        "with --allow-outside)", file, line, quote_for_message(rel, shown, sizeof shown), root);
            break;
        }
        refs[num_refs++] = (csv_row_ref){rel, line, row_label[r]};
        char *path = rel[0] == '/' ? strdup(rel) : data_path_join(root, rel);
        if (!path) {
            s = ae_fail(err, AE_ERR_NOMEM, "out of memory reading %s", file);
            break;
        }
        /* A missing file is bad input like a corrupt one: with AE_BAD_SKIP the
         * item stays, its decode fails in the loader, which lists and skips it. */
        if (src->bad_policy == AE_BAD_STOP && !data_is_file(path)) {
            char shown[512];
            s = ae_fail(err, AE_ERR_DATA, "%s line %zu: image %s %s", file, line,
                        quote_for_message(path, shown, sizeof shown),
                        access(path, F_OK) == 0 ? "is not a regular file" : "not found");
            free(path);
            break;
        }
        s = data_add_item(ds, &cap, path, (int64_t)ds->count, row_label[r], NULL, err);
    }
    if (s == AE_OK && max_label >= 0)
        s = name_classes(ds, csv, sc, max_label + 1, row_label, err);
    if (s == AE_OK)
        s = note_conflicts(ds, file, refs, num_refs, err);
    free(row_label);
    free(refs);
    return s;
}

ae_status data_open_csv(const ae_source *src, ae_dataset *ds, ae_error *err)
{
    if (!src->labels)
        return ae_fail(err, AE_ERR_USAGE, "a CSV data set needs a labels file");
    char *root = src->root ? strdup(src->root) : dir_of(src->labels);
    if (!root)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory");
    ae_csv csv;
    ae_status s = ae_csv_read(src->labels, &csv, err);
    if (s == AE_OK) {
        s = read_rows(src, root, &csv, ds, err);
        ae_csv_free(&csv);
    }
    if (s == AE_OK) {
        char desc[1024];
        snprintf(desc, sizeof desc, "CSV %s (images in %s): %zu images in %d classes",
                 src->labels, root, ds->count, ds->num_classes);
        if (!(ds->description = strdup(desc)))
            s = ae_fail(err, AE_ERR_NOMEM, "out of memory");
    }
    free(root);
    return s;
}
