/* The folder layout (anomalib's Folder datamodule): a folder of normal
 * images, one folder per kind of defect, and masks named like their images.
 * See ae_folder_layout in aedet/data.h for the rules; in short:
 *  - classes are the folders' names: the normal folder 0, the abnormal ones
 *    after it in the order given;
 *  - a folder nested inside another one is left out of the outer one;
 *  - masks never become images: files below mask_dir, files whose stem ends
 *    in an explicit mask suffix, and (by default) "x_mask.png" beside "x.png";
 *  - the training split is the normal images less a seeded held-out share,
 *    the scoring split the held-out (or normal_test_dir's) normal images and
 *    every abnormal image with its mask;
 *  - a file of mask_dir that is no image's mask is bad data. */
#include "data/data_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Length of rel without its extension (the last '.' after the last '/'). */
static size_t stem_len(const char *rel)
{
    const char *slash = strrchr(rel, '/');
    const char *dot = strrchr(slash ? slash + 1 : rel, '.');
    return dot ? (size_t)(dot - rel) : strlen(rel);
}

static int ends_with_n(const char *s, size_t len, const char *suffix, int nocase)
{
    size_t ls = strlen(suffix);
    if (ls > len)
        return 0;
    return nocase ? !strncasecmp(s + len - ls, suffix, ls) : !strncmp(s + len - ls, suffix, ls);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Marks (is_mask[i] = 1) the names whose stem ends in suffix and, when
 * require_partner, whose stem without it is the stem of another name of the
 * list ("a/x_mask.png" beside "a/x.jpg"). Returns how many it marked, or
 * (size_t)-1 when out of memory. */
static size_t mark_masks(const char *const *rel, size_t n, const char *suffix, int require_partner,
                         unsigned char *is_mask)
{
    char **stems = NULL;
    size_t marked = 0, ls = strlen(suffix);
    if (require_partner) {
        if (!(stems = calloc(n ? n : 1, sizeof *stems)))
            return (size_t)-1;
        for (size_t i = 0; i < n; i++)
            if (!(stems[i] = strndup(rel[i], stem_len(rel[i])))) {
                for (size_t j = 0; j < i; j++)
                    free(stems[j]);
                free(stems);
                return (size_t)-1;
            }
        qsort(stems, n, sizeof *stems, cmp_str);
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = stem_len(rel[i]);
        if (!ls || !ends_with_n(rel[i], len, suffix, 0) || len == ls || rel[i][len - ls - 1] == '/')
            continue;
        if (require_partner) {
            char partner[PATH_MAX];
            if (len - ls >= sizeof partner)
                continue;
            memcpy(partner, rel[i], len - ls);
            partner[len - ls] = '\0';
            const char *key = partner;
            if (!bsearch(&key, stems, n, sizeof *stems, cmp_str))
                continue;
        }
        if (!is_mask[i])
            marked++;
        is_mask[i] = 1;
    }
    for (size_t i = 0; stems && i < n; i++)
        free(stems[i]);
    free(stems);
    return marked;
}

int ae_names_look_like_masks(const char *const *rel, size_t n, size_t *pairs, size_t *masky)
{
    *pairs = *masky = 0;
    unsigned char *flags = calloc(n ? n : 1, 1);
    if (!flags)
        return 0;
    size_t a = mark_masks(rel, n, "_mask", 1, flags), b = mark_masks(rel, n, "-mask", 1, flags);
    free(flags);
    if (a != (size_t)-1 && b != (size_t)-1)
        *pairs = a + b;
    for (size_t i = 0; i < n; i++)
        *masky += ends_with_n(rel[i], stem_len(rel[i]), "mask", 1);
    return *pairs > 0 || (*masky > 0 && 4 * *masky >= n);
}

/* One folder of the layout. */
typedef struct {
    const char *dir;  /* as given */
    char *real;       /* realpath */
    char *name;       /* class name: the last part of real */
    data_strlist rel; /* its images, relative to dir, sorted */
} folder;

static ae_status resolve(const char *dir, folder *f, ae_error *err)
{
    f->dir = dir;
    if (!data_is_dir(dir))
        return ae_fail(err, AE_ERR_IO, "%s: not a folder (or not readable)", dir);
    if (!(f->real = realpath(dir, NULL)))
        return ae_fail(err, AE_ERR_IO, "%s: %s", dir, strerror(errno));
    const char *slash = strrchr(f->real, '/');
    f->name = strdup(slash && slash[1] ? slash + 1 : f->real);
    return f->name ? AE_OK : ae_fail(err, AE_ERR_NOMEM, "out of memory");
}

/* inner below outer: its path relative to outer ("" when the same), else NULL. */
static const char *nested_in(const char *outer, const char *inner)
{
    size_t lo = strlen(outer);
    if (!strcmp(outer, inner))
        return "";
    if (lo == 1 && outer[0] == '/')
        return inner + 1;
    return !strncmp(outer, inner, lo) && inner[lo] == '/' ? inner + lo + 1 : NULL;
}

/* Lists f's images: the source's globs, less the folders nested in it
 * (others[0..n_others)), less masks (explicit suffix, or the default pairs,
 * counted into *pairs). */
static ae_status list_folder(const ae_source *src, folder *f, char *const *others, int n_others,
                             const char *suffix, size_t *pairs, ae_dataset *ds, ae_error *err)
{
    data_strlist all = {0};
    ae_status s = data_walk_images(f->dir, NULL, src, &all, ds, err);
    if (s != AE_OK)
        return s;
    unsigned char *drop = calloc(all.n ? all.n : 1, 1);
    if (!drop) {
        data_strlist_free(&all);
        return ae_fail(err, AE_ERR_NOMEM, "out of memory listing %s", f->dir);
    }
    for (int k = 0; k < n_others; k++) {
        const char *prefix = others[k] ? nested_in(f->real, others[k]) : NULL;
        size_t lp = prefix ? strlen(prefix) : 0;
        for (size_t i = 0; lp && i < all.n; i++)
            drop[i] |= !strncmp(all.v[i], prefix, lp) && all.v[i][lp] == '/';
    }
    size_t marked = suffix ? mark_masks((const char *const *)all.v, all.n, suffix, 0, drop)
                           : mark_masks((const char *const *)all.v, all.n, "_mask", 1, drop);
    if (marked == (size_t)-1)
        s = ae_fail(err, AE_ERR_NOMEM, "out of memory listing %s", f->dir);
    else if (!suffix)
        *pairs += marked;
    for (size_t i = 0; i < all.n; i++) {
        if (s == AE_OK && !drop[i]) {
            if (!data_strlist_push(&f->rel, all.v[i]))
                s = ae_fail(err, AE_ERR_NOMEM, "out of memory listing %s", f->dir);
        } else {
            free(all.v[i]);
        }
        all.v[i] = NULL;
    }
    free(all.v);
    free(drop);
    return s;
}

static int file_exists_as(const char *path, const char *not_this)
{
    return strcmp(path, not_this) != 0 && data_is_file(path);
}

/* The mask of the image f->dir/rel of class cls, or NULL (in *mask). */
static ae_status find_mask(const ae_folder_layout *fl, const folder *f, const char *rel, const char *image,
                           char **mask, ae_error *err)
{
    *mask = NULL;
    size_t stem = stem_len(rel);
    const char *ext = rel + stem; /* ".png", or "" */
    const char *suffixes[2] = {fl->mask_suffix ? fl->mask_suffix : "", "_mask"};
    int num_suffixes = fl->mask_suffix ? 1 : 2;
    const char *exts[2] = {ext, ".png"};
    for (int where = 0; where < 2; where++)
        for (int si = 0; si < num_suffixes; si++)
            for (int ei = 0; ei < 2; ei++) {
                if (ei == 1 && !strcasecmp(ext, ".png"))
                    continue;
                char tail[PATH_MAX];
                int len = snprintf(tail, sizeof tail, "%s%s%.*s%s%s", where == 0 ? f->name : "",
                                   where == 0 ? "/" : "", (int)stem, rel, suffixes[si], exts[ei]);
                if (len < 0 || (size_t)len >= sizeof tail)
                    continue;
                char *p = data_path_join(fl->mask_dir, tail);
                if (!p)
                    return ae_fail(err, AE_ERR_NOMEM, "out of memory");
                if (file_exists_as(p, image)) {
                    *mask = p;
                    return AE_OK;
                }
                free(p);
            }
    return AE_OK;
}

/* Appends the images rel[idx[0..n)] of folder f with label, and their masks
 * (test split); each image and mask path also goes into known. */
static ae_status add_folder_items(const ae_folder_layout *fl, const folder *f, const size_t *idx, size_t n,
                                  int label, ae_dataset *ds, size_t *cap, data_strlist *known,
                                  size_t *unmasked, ae_error *err)
{
    for (size_t k = 0; k < n; k++) {
        const char *rel = f->rel.v[idx ? idx[k] : k];
        char *path = data_path_join(f->dir, rel), *mask = NULL;
        if (!path)
            return ae_fail(err, AE_ERR_NOMEM, "out of memory");
        ae_status s = fl->test && fl->mask_dir ? find_mask(fl, f, rel, path, &mask, err) : AE_OK;
        if (s == AE_OK && mask && !data_strlist_push(known, strdup(mask)))
            s = ae_fail(err, AE_ERR_NOMEM, "out of memory");
        if (s != AE_OK) {
            free(path);
            free(mask);
            return s;
        }
        if (fl->test && fl->mask_dir && !mask && label > 0)
            (*unmasked)++;
        if ((s = data_add_item(ds, cap, path, (int64_t)ds->count, label, mask, err)) != AE_OK)
            return s;
    }
    return AE_OK;
}

/* Whether a mask at rel below mask_dir lies where the layout's masks go:
 * directly in it, in a folder named after a class, or in a folder named like
 * a subfolder of the image folders. */
static int mask_folder_is_ours(const char *rel, const folder *folders, int nf)
{
    const char *slash = strchr(rel, '/');
    if (!slash)
        return 1;
    size_t len = (size_t)(slash - rel);
    for (int k = 0; k < nf; k++) {
        if (folders[k].name && strlen(folders[k].name) == len && !strncmp(folders[k].name, rel, len))
            return 1;
        for (size_t i = 0; i < folders[k].rel.n; i++)
            if (!strncmp(folders[k].rel.v[i], rel, len + 1))
                return 1;
    }
    return 0;
}

/* Every image file below mask_dir must be some image's mask (or an image of
 * the layout itself, when masks lie beside their images), unless the globs
 * leave it out. */
static ae_status check_masks(const ae_source *src, const ae_folder_layout *fl, folder *folders, int nf,
                             data_strlist *known, ae_dataset *ds, ae_error *err)
{
    for (int k = 0; k < nf; k++)
        for (size_t i = 0; i < folders[k].rel.n; i++)
            if (!data_strlist_push(known, data_path_join(folders[k].dir, folders[k].rel.v[i])))
                return ae_fail(err, AE_ERR_NOMEM, "out of memory");
    data_strlist_sort(known);
    ae_source plain = {.kind = AE_SOURCE_FOLDER, .root = fl->mask_dir, .bad_policy = src->bad_policy};
    data_strlist masks = {0};
    ae_status s = data_walk_images(fl->mask_dir, NULL, &plain, &masks, ds, err);
    for (size_t i = 0; s == AE_OK && i < masks.n; i++) {
        char *p = data_path_join(fl->mask_dir, masks.v[i]);
        if (!p) {
            s = ae_fail(err, AE_ERR_NOMEM, "out of memory");
            break;
        }
        /* Left out by the globs (its image may be), a file of the layout's
         * own, or in a folder of a class not asked for (masks/hole/...). */
        if (data_strlist_find(known, p) < 0 && data_glob_keep(src, masks.v[i]) &&
            mask_folder_is_ours(masks.v[i], folders, nf))
            s = ae_fail(err, AE_ERR_DATA,
                        "mask %s has no image: a mask is named like its image, as %s/<class>/<name> or "
                        "%s/<name> (<name> the image's path below its folder, with %s before the "
                        "extension), for an image of the normal or abnormal folders",
                        p, fl->mask_dir, fl->mask_dir,
                        fl->mask_suffix ? (fl->mask_suffix[0] ? fl->mask_suffix : "nothing")
                                        : "nothing or _mask");
        free(p);
    }
    data_strlist_free(&masks);
    return s;
}

ae_status data_open_folders(const ae_source *src, ae_dataset *ds, ae_error *err)
{
    const ae_folder_layout *fl = src->folders;
    if (!fl || !fl->normal_dir)
        return ae_fail(err, AE_ERR_USAGE, "the folder layout needs a normal folder");
    if (!(fl->test_split >= 0 && fl->test_split < 1))
        return ae_fail(err, AE_ERR_USAGE, "test split %g is outside [0, 1)", fl->test_split);
    if (fl->normal_test_dir && fl->test_split > 0)
        return ae_fail(err, AE_ERR_USAGE, "give a normal test folder or a test split, not both");
    if (fl->num_abnormal < 0 || (fl->num_abnormal > 0 && !fl->abnormal_dirs))
        return ae_fail(err, AE_ERR_USAGE, "bad list of abnormal folders");
    /* folders: normal, the abnormal ones, then the normal test folder */
    int nf = 1 + fl->num_abnormal + (fl->normal_test_dir != NULL);
    folder *folders = calloc((size_t)nf, sizeof *folders);
    char **others = calloc((size_t)nf + 1, sizeof *others);
    char *mask_real = NULL;
    data_strlist names = {0}, known = {0};
    size_t pairs = 0, unmasked = 0, cap = 0, *keep = NULL, *held = NULL, n_keep = 0, n_held = 0;
    ae_status s = folders && others ? AE_OK : ae_fail(err, AE_ERR_NOMEM, "out of memory");
    for (int k = 0; s == AE_OK && k < nf; k++)
        s = resolve(k == 0 ? fl->normal_dir : k <= fl->num_abnormal ? fl->abnormal_dirs[k - 1] : fl->normal_test_dir,
                    &folders[k], err);
    if (s == AE_OK && fl->mask_dir) {
        if (!data_is_dir(fl->mask_dir))
            s = ae_fail(err, AE_ERR_IO, "%s: not a folder (or not readable)", fl->mask_dir);
        else if (!(mask_real = realpath(fl->mask_dir, NULL)))
            s = ae_fail(err, AE_ERR_IO, "%s: %s", fl->mask_dir, strerror(errno));
    }
    for (int a = 0; s == AE_OK && a < nf; a++) {
        for (int b = a + 1; s == AE_OK && b < nf; b++)
            if (!strcmp(folders[a].real, folders[b].real))
                s = ae_fail(err, AE_ERR_USAGE, "%s and %s are the same folder", folders[a].dir, folders[b].dir);
            else if (b <= fl->num_abnormal && !strcmp(folders[a].name, folders[b].name))
                s = ae_fail(err, AE_ERR_USAGE, "%s and %s are both named \"%s\": classes are named after their "
                            "folders, so the names must differ", folders[a].dir, folders[b].dir, folders[a].name);
        if (s == AE_OK && mask_real && !strcmp(mask_real, folders[a].real) && fl->mask_suffix && !fl->mask_suffix[0])
            s = ae_fail(err, AE_ERR_USAGE, "%s holds both images and masks: masks beside their images need a "
                        "suffix (such as _mask)", fl->mask_dir);
    }
    /* Each folder leaves out the others nested in it. */
    for (int k = 0; s == AE_OK && k < nf; k++) {
        if (k > 0 && !fl->test && k <= fl->num_abnormal)
            continue; /* training lists the normal folder only */
        if (k == nf - 1 && fl->normal_test_dir && !fl->test)
            continue;
        int no = 0;
        for (int j = 0; j < nf; j++)
            if (j != k)
                others[no++] = folders[j].real;
        if (mask_real && strcmp(mask_real, folders[k].real))
            others[no++] = mask_real;
        s = list_folder(src, &folders[k], others, no, fl->mask_suffix && fl->mask_suffix[0] ? fl->mask_suffix : NULL,
                        &pairs, ds, err);
    }
    /* The normal images: a seeded share held out for scoring. */
    size_t n_normal = folders ? folders[0].rel.n : 0;
    if (s == AE_OK) {
        size_t *all = malloc((n_normal ? n_normal : 1) * sizeof *all);
        if (!all)
            s = ae_fail(err, AE_ERR_NOMEM, "out of memory");
        for (size_t i = 0; all && i < n_normal; i++)
            all[i] = i;
        if (s == AE_OK)
            s = ae_split(all, n_normal, fl->test_split, fl->seed ^ 0x74657374u /* "test" */, &keep, &n_keep, &held,
                         &n_held, err);
        free(all);
    }
    if (s == AE_OK && !fl->test) {
        s = add_folder_items(fl, &folders[0], keep, n_keep, 0, ds, &cap, &known, &unmasked, err);
    } else if (s == AE_OK) {
        if (fl->normal_test_dir)
            s = add_folder_items(fl, &folders[nf - 1], NULL, folders[nf - 1].rel.n, 0, ds, &cap, &known, &unmasked, err);
        else if (fl->test_split > 0)
            s = add_folder_items(fl, &folders[0], held, n_held, 0, ds, &cap, &known, &unmasked, err);
        else
            s = add_folder_items(fl, &folders[0], NULL, n_normal, 0, ds, &cap, &known, &unmasked, err);
        for (int a = 1; s == AE_OK && a <= fl->num_abnormal; a++)
            s = add_folder_items(fl, &folders[a], NULL, folders[a].rel.n, a, ds, &cap, &known, &unmasked, err);
        if (s == AE_OK && fl->mask_dir)
            s = check_masks(src, fl, folders, nf, &known, ds, err);
    }
    for (int k = 0; s == AE_OK && k <= fl->num_abnormal; k++) {
        if (!data_strlist_push(&names, folders[k].name))
            s = ae_fail(err, AE_ERR_NOMEM, "out of memory");
        folders[k].name = NULL;
    }
    if (s == AE_OK && pairs)
        s = data_note(ds, err, "left out %zu file%s named like the mask of an image beside %s (x_mask.png for "
                      "x.png): masks are never images", pairs, pairs == 1 ? "" : "s", pairs == 1 ? "it" : "them");
    if (s == AE_OK && unmasked)
        s = data_note(ds, err, "%zu abnormal image%s no mask in %s: %s pixels count as normal in the pixel "
                      "AUROC", unmasked, unmasked == 1 ? " has" : "s have", fl->mask_dir,
                      unmasked == 1 ? "its" : "their");
    if (s == AE_OK) {
        data_set_classes(ds, &names);
        char desc[1024];
        int used = snprintf(desc, sizeof desc, "folders: normal %s (%s split: %zu of %zu normal images", fl->normal_dir,
                            fl->test ? "scoring" : "training",
                            !fl->test ? n_keep : fl->normal_test_dir ? folders[nf - 1].rel.n
                                               : fl->test_split > 0 ? n_held : n_normal, n_normal);
        if (fl->normal_test_dir && used > 0 && (size_t)used < sizeof desc)
            used += snprintf(desc + used, sizeof desc - (size_t)used, " of %s", fl->normal_test_dir);
        if (used > 0 && (size_t)used < sizeof desc)
            used += snprintf(desc + used, sizeof desc - (size_t)used, ")");
        for (int a = 1; fl->test && a <= fl->num_abnormal && used > 0 && (size_t)used < sizeof desc; a++)
            used += snprintf(desc + used, sizeof desc - (size_t)used, "%s%s %zu", a == 1 ? ", abnormal " : ", ",
                             ds->class_names[a], folders[a].rel.n);
        if (fl->test && fl->mask_dir && used > 0 && (size_t)used < sizeof desc)
            snprintf(desc + used, sizeof desc - (size_t)used, ", masks in %s", fl->mask_dir);
        if (!(ds->description = strdup(desc)))
            s = ae_fail(err, AE_ERR_NOMEM, "out of memory");
    }
    data_strlist_free(&names);
    data_strlist_free(&known);
    for (int k = 0; folders && k < nf; k++) {
        free(folders[k].real);
        free(folders[k].name);
        data_strlist_free(&folders[k].rel);
    }
    free(folders);
    free(others);
    free(mask_real);
    free(keep);
    free(held);
    return s;
}
