/* Finding image files below a folder: recursive, filtered by extension and by
 * the user's globs, sorted so the order never depends on the file system.
 *
 * Globs use fnmatch(3) WITHOUT FNM_PATHNAME, so '*' also crosses '/': "*.png"
 * matches "a/b/c.png". A pattern with no '/' is also tried on the file name
 * alone ("mask*" drops "x/mask1.png"), and a leading "**" followed by '/' also
 * matches at the top ("**" "/mask*" drops "mask1.png"), as in .gitignore.
 * Hidden entries (a name starting with '.') are skipped, and folders reached
 * through a symbolic link are neither entered nor listed as class folders (no
 * cycles; the walk and data_list_subdirs agree); linked files are kept. */
#include "data/data_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

enum { MAX_DEPTH = 64 };

int data_strlist_push(data_strlist *l, char *s)
{
    if (!s)
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            free(s);
            return 0;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void data_strlist_sort(data_strlist *l)
{
    if (l->n > 1)
        qsort(l->v, l->n, sizeof *l->v, cmp_str);
}

int data_strlist_find(const data_strlist *l, const char *name)
{
    if (!l->n)
        return -1;
    char *const *hit = bsearch(&name, l->v, l->n, sizeof *l->v, cmp_str);
    return hit ? (int)(hit - l->v) : -1;
}

void data_strlist_free(data_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

char *data_path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/')
        la--;
    char *p = malloc(la + lb + 2);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

int data_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int data_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int data_has_image_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") ||
                   !strcasecmp(dot, ".png"));
}

static int glob_match(const char *pattern, const char *rel)
{
    if (fnmatch(pattern, rel, 0) == 0)
        return 1;
    if (!strchr(pattern, '/')) {
        const char *base = strrchr(rel, '/');
        if (base && fnmatch(pattern, base + 1, 0) == 0)
            return 1;
    }
    if (!strncmp(pattern, "**/", 3))
        return glob_match(pattern + 3, rel);
    return 0;
}

int data_glob_keep(const ae_source *src, const char *rel)
{
    if (src->num_include > 0) {
        int any = 0;
        for (int i = 0; i < src->num_include && !any; i++)
            any = glob_match(src->include[i], rel);
        if (!any)
            return 0;
    }
    for (int i = 0; i < src->num_exclude; i++)
        if (glob_match(src->exclude[i], rel))
            return 0;
    return 1;
}

enum entry_kind { ENTRY_OTHER, ENTRY_DIR, ENTRY_FILE };

/* What the entry e of a folder is (full: its path). A folder only when it is
 * one itself: a link to a folder is neither entered by the walk nor listed as
 * a class folder (no cycles, and the two always agree). A link to a file
 * counts as the file. d_type saves a stat call where the file system has it. */
static enum entry_kind entry_kind(const struct dirent *e, const char *full)
{
    if (e->d_type == DT_DIR)
        return ENTRY_DIR;
    if (e->d_type == DT_REG)
        return ENTRY_FILE;
    if (e->d_type != DT_UNKNOWN && e->d_type != DT_LNK)
        return ENTRY_OTHER;
    struct stat st;
    if (lstat(full, &st) != 0)
        return ENTRY_OTHER;
    if (S_ISDIR(st.st_mode))
        return ENTRY_DIR;
    if (S_ISLNK(st.st_mode) && stat(full, &st) != 0)
        return ENTRY_OTHER;
    return S_ISREG(st.st_mode) ? ENTRY_FILE : ENTRY_OTHER;
}

/* Walks root/rel (rel "" for root itself), appending kept image paths. */
static ae_status walk(const char *root, const char *rel, int depth, const ae_source *src,
                      data_strlist *out, ae_dataset *notes, ae_error *err)
{
    if (depth > MAX_DEPTH)
        return ae_fail(err, AE_ERR_DATA, "%s/%s: folders nested deeper than %d", root, rel,
                       MAX_DEPTH);
    char *dir_path = rel[0] ? data_path_join(root, rel) : strdup(root);
    if (!dir_path)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory listing %s", root);
    DIR *dir = opendir(dir_path);
    if (!dir) {
        /* A subfolder the user cannot read is one more bad input to skip;
         * the folder asked for is not. */
        ae_status s = depth > 0 && src->bad_policy == AE_BAD_SKIP
                          ? data_note(notes, err, "skipped folder %s: cannot open it: %s", dir_path, strerror(errno))
                          : ae_fail(err, AE_ERR_IO, "cannot open folder %s: %s", dir_path, strerror(errno));
        free(dir_path);
        return s;
    }
    ae_status status = AE_OK;
    struct dirent *e;
    while (status == AE_OK && (e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *child = rel[0] ? data_path_join(rel, e->d_name) : strdup(e->d_name);
        char *full = child ? data_path_join(dir_path, e->d_name) : NULL;
        if (!full) {
            free(child);
            status = ae_fail(err, AE_ERR_NOMEM, "out of memory listing %s", dir_path);
            break;
        }
        enum entry_kind kind = entry_kind(e, full);
        int is_file = kind == ENTRY_FILE;
        if (kind == ENTRY_DIR) {
            status = walk(root, child, depth + 1, src, out, notes, err);
            free(child);
        } else if (is_file && data_has_image_ext(e->d_name) && data_glob_keep(src, child)) {
            if (!data_strlist_push(out, child))
                status = ae_fail(err, AE_ERR_NOMEM, "out of memory listing %s", dir_path);
        } else {
            free(child);
        }
        free(full);
    }
    closedir(dir);
    free(dir_path);
    return status;
}

ae_status data_walk_images(const char *root, const char *sub, const ae_source *src,
                           data_strlist *out, ae_dataset *notes, ae_error *err)
{
    ae_status s = walk(root, sub ? sub : "", 0, src, out, notes, err);
    if (s != AE_OK) {
        data_strlist_free(out);
        return s;
    }
    data_strlist_sort(out);
    return AE_OK;
}

ae_status data_list_subdirs(const char *dir_path, data_strlist *out, ae_error *err)
{
    DIR *dir = opendir(dir_path);
    if (!dir)
        return ae_fail(err, AE_ERR_IO, "cannot open folder %s: %s", dir_path, strerror(errno));
    struct dirent *e;
    ae_status status = AE_OK;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *full = data_path_join(dir_path, e->d_name);
        if (!full) {
            status = ae_fail(err, AE_ERR_NOMEM, "out of memory listing %s", dir_path);
            break;
        }
        int is_dir = entry_kind(e, full) == ENTRY_DIR;
        free(full);
        if (is_dir && !data_strlist_push(out, strdup(e->d_name))) {
            status = ae_fail(err, AE_ERR_NOMEM, "out of memory listing %s", dir_path);
            break;
        }
    }
    closedir(dir);
    if (status != AE_OK) {
        data_strlist_free(out);
        return status;
    }
    data_strlist_sort(out);
    return AE_OK;
}
