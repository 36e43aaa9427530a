/* Data sets: choosing the source, the folder, class-folder and IDX sources, and
 * the item list every source fills. CSV and MVTec live in their own files. */
#include "data/data_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ae_status data_add_item(ae_dataset *ds, size_t *cap, char *path, int64_t index, int label,
                        char *mask, ae_error *err)
{
    if (ds->count == *cap) {
        size_t n = *cap ? 2 * *cap : 256;
        ae_item *items = realloc(ds->items, n * sizeof *items);
        if (!items) {
            free(path);
            free(mask);
            return ae_fail(err, AE_ERR_NOMEM, "out of memory listing %zu items", ds->count);
        }
        ds->items = items;
        *cap = n;
    }
    ds->items[ds->count++] = (ae_item){.path = path, .index = index, .label = label,
                                       .mask_path = mask};
    return AE_OK;
}

void data_set_classes(ae_dataset *ds, data_strlist *names)
{
    ds->class_names = names->v;
    ds->num_classes = (int)names->n;
    *names = (data_strlist){0};
}

ae_status data_numeric_classes(ae_dataset *ds, int num_classes, ae_error *err)
{
    data_strlist names = {0};
    for (int c = 0; c < num_classes; c++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", c);
        if (!data_strlist_push(&names, strdup(buf))) {
            data_strlist_free(&names);
            return ae_fail(err, AE_ERR_NOMEM, "out of memory naming %d classes", num_classes);
        }
    }
    data_set_classes(ds, &names);
    return AE_OK;
}

ae_status data_note(ae_dataset *ds, ae_error *err, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    char **grown = realloc(ds->notes, (ds->num_notes + 1) * sizeof *grown);
    if (!grown || !(grown[ds->num_notes] = strdup(line))) {
        if (grown)
            ds->notes = grown;
        return ae_fail(err, AE_ERR_NOMEM, "out of memory");
    }
    ds->notes = grown;
    ds->num_notes++;
    return AE_OK;
}

static ae_status describe(ae_dataset *ds, ae_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static ae_status describe(ae_dataset *ds, ae_error *err, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ds->description = strdup(buf);
    return ds->description ? AE_OK : ae_fail(err, AE_ERR_NOMEM, "out of memory");
}

/* Items for rel paths below root, labelled by class_of(rel) (or -1). */
static ae_status add_paths(ae_dataset *ds, const char *root, data_strlist *rel,
                           const data_strlist *classes, ae_error *err)
{
    size_t cap = ds->count;
    for (size_t i = 0; i < rel->n; i++) {
        int label = -1;
        if (classes) {
            const char *slash = strchr(rel->v[i], '/');
            if (!slash)
                continue; /* a file beside the class folders has no class */
            char name[1024];
            size_t len = (size_t)(slash - rel->v[i]);
            if (len >= sizeof name)
                continue;
            memcpy(name, rel->v[i], len);
            name[len] = '\0';
            label = data_strlist_find(classes, name);
            if (label < 0)
                continue;
        }
        ae_status s = data_add_item(ds, &cap, data_path_join(root, rel->v[i]),
                                    (int64_t)ds->count, label, NULL, err);
        if (s == AE_OK && !ds->items[ds->count - 1].path)
            s = ae_fail(err, AE_ERR_NOMEM, "out of memory listing %s", root);
        if (s != AE_OK)
            return s;
    }
    return AE_OK;
}

static ae_status open_folder(const ae_source *src, ae_dataset *ds, ae_error *err)
{
    data_strlist rel = {0};
    ae_status s = data_walk_images(src->root, NULL, src, &rel, ds, err);
    /* x.png beside x_mask.png: the masks would be trained on as images. */
    size_t pairs = 0, masky = 0;
    if (s == AE_OK && ae_names_look_like_masks((const char *const *)rel.v, rel.n, &pairs, &masky))
        s = data_note(ds, err, "%s looks like images with their masks (%zu of %zu files named like masks%s), and "
                      "every file is taken as an image: leave the masks out with --exclude '*_mask*', or use the "
                      "folder layout (--normal-dir, --mask-dir)", src->root, masky > pairs ? masky : pairs, rel.n,
                      pairs ? ", beside their images" : "");
    if (s == AE_OK)
        s = add_paths(ds, src->root, &rel, NULL, err);
    data_strlist_free(&rel);
    if (s == AE_OK)
        s = describe(ds, err, "folder %s: %zu images, unlabelled", src->root, ds->count);
    return s;
}

static ae_status open_class_folders(const ae_source *src, ae_dataset *ds, ae_error *err)
{
    data_strlist classes = {0}, rel = {0};
    ae_status s = data_list_subdirs(src->root, &classes, err);
    if (s == AE_OK && classes.n == 0)
        s = ae_fail(err, AE_ERR_DATA, "%s: no class folders inside", src->root);
    if (s == AE_OK)
        s = data_walk_images(src->root, NULL, src, &rel, ds, err);
    if (s == AE_OK)
        s = add_paths(ds, src->root, &rel, &classes, err);
    data_strlist_free(&rel);
    if (s == AE_OK) {
        data_set_classes(ds, &classes);
        s = describe(ds, err, "class folders %s: %zu images in %d classes", src->root,
                     ds->count, ds->num_classes);
    }
    data_strlist_free(&classes);
    return s;
}

static ae_status open_idx(const ae_source *src, ae_dataset *ds, ae_error *err)
{
    if (src->num_include > 0 || src->num_exclude > 0)
        return ae_fail(err, AE_ERR_USAGE, "%s: include/exclude patterns apply to image files, "
                       "not to the records of an IDX file", src->root);
    ae_status s = ae_idx_read(src->root, &ds->idx_images, err);
    if (s != AE_OK)
        return s;
    const ae_idx *im = &ds->idx_images;
    if (!(im->ndim == 3 || (im->ndim == 4 && (im->dims[3] == 1 || im->dims[3] == 3))) ||
        im->dims[1] <= 0 || im->dims[2] <= 0)
        return ae_fail(err, AE_ERR_DATA, "%s: IDX images must be N x H x W or N x H x W x C "
                       "with C 1 or 3 (this one has %d dimensions)", src->root, im->ndim);
    ae_idx labels = {0};
    if (src->labels) {
        if ((s = ae_idx_read(src->labels, &labels, err)) != AE_OK)
            return s;
        if (labels.ndim != 1 || labels.count != im->count) {
            s = ae_fail(err, AE_ERR_DATA, "%s: %zu labels in %d dimension(s) for %zu images "
                        "in %s", src->labels, labels.count, labels.ndim, im->count, src->root);
            ae_idx_free(&labels);
            return s;
        }
    }
    ds->items = calloc(im->count ? im->count : 1, sizeof *ds->items);
    if (!ds->items) {
        ae_idx_free(&labels);
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for %zu IDX records", im->count);
    }
    int max_label = -1;
    for (size_t i = 0; i < im->count; i++) {
        int label = src->labels ? labels.data[i] : -1;
        ds->items[i] = (ae_item){.path = NULL, .index = (int64_t)i, .label = label};
        if (label > max_label)
            max_label = label;
    }
    ds->count = im->count;
    ae_idx_free(&labels);
    if (max_label >= 0 && (s = data_numeric_classes(ds, max_label + 1, err)) != AE_OK)
        return s;
    return describe(ds, err, "IDX %s%s%s: %zu images %dx%dx%d, %s", src->root,
                    src->labels ? " + " : "", src->labels ? src->labels : "", ds->count,
                    im->dims[1], im->dims[2], im->ndim == 4 ? im->dims[3] : 1,
                    src->labels ? "labelled" : "unlabelled");
}

static ae_source_kind resolve_auto(const ae_source *src)
{
    if (src->folders)
        return AE_SOURCE_FOLDERS;
    if (data_is_file(src->root))
        return AE_SOURCE_IDX;
    char *good = data_path_join(src->root, "train/good");
    int mvtec = good && data_is_dir(good);
    free(good);
    if (mvtec)
        return AE_SOURCE_MVTEC;
    return src->labels ? AE_SOURCE_CSV : AE_SOURCE_FOLDER;
}

ae_status ae_dataset_open(const ae_source *src, ae_dataset *out, ae_error *err)
{
    *out = (ae_dataset){0};
    int folders = src && src->folders && (src->kind == AE_SOURCE_AUTO || src->kind == AE_SOURCE_FOLDERS);
    if (!src || (!src->root && !(src->kind == AE_SOURCE_CSV && src->labels) && !folders))
        return ae_fail(err, AE_ERR_USAGE, "no data set given");
    /* One image file as DATA (a file, but not an IDX one): that image alone. */
    if (src->kind == AE_SOURCE_AUTO && src->root && data_is_file(src->root) && data_looks_like_image(src->root)) {
        ae_status single = data_open_single(src, out, err);
        if (single != AE_OK)
            ae_dataset_free(out);
        return single;
    }
    ae_source_kind kind = src->kind == AE_SOURCE_AUTO ? resolve_auto(src) : src->kind;
    if (src->root && kind != AE_SOURCE_IDX && kind != AE_SOURCE_FOLDERS && !data_is_dir(src->root))
        return ae_fail(err, AE_ERR_IO, "%s: not a folder (or not readable)", src->root);
    ae_status s;
    switch (kind) {
    case AE_SOURCE_FOLDER: s = open_folder(src, out, err); break;
    case AE_SOURCE_CSV: s = data_open_csv(src, out, err); break;
    case AE_SOURCE_CLASS_FOLDERS: s = open_class_folders(src, out, err); break;
    case AE_SOURCE_MVTEC: s = data_open_mvtec(src, out, err); break;
    case AE_SOURCE_IDX: s = open_idx(src, out, err); break;
    case AE_SOURCE_FOLDERS: s = data_open_folders(src, out, err); break;
    default: s = ae_fail(err, AE_ERR_USAGE, "unknown data source kind %d", (int)kind);
    }
    if (s == AE_OK && out->count == 0)
        s = ae_fail(err, AE_ERR_DATA, "%s: no images found%s",
                    kind == AE_SOURCE_FOLDERS ? src->folders->normal_dir : src->root ? src->root : src->labels,
                    src->num_include || src->num_exclude ? " (after include/exclude patterns)"
                                                         : "");
    if (s != AE_OK)
        ae_dataset_free(out);
    return s;
}

void ae_dataset_free(ae_dataset *ds)
{
    if (!ds)
        return;
    for (size_t i = 0; i < ds->count; i++) {
        free(ds->items[i].path);
        free(ds->items[i].mask_path);
    }
    free(ds->items);
    for (int c = 0; c < ds->num_classes; c++)
        free(ds->class_names[c]);
    free(ds->class_names);
    free(ds->description);
    for (size_t i = 0; i < ds->num_notes; i++)
        free(ds->notes[i]);
    free(ds->notes);
    ae_idx_free(&ds->idx_images);
    *ds = (ae_dataset){0};
}

ae_status ae_dataset_load(const ae_dataset *ds, size_t i, ae_image *out, ae_error *err)
{
    *out = (ae_image){0};
    if (i >= ds->count)
        return ae_fail(err, AE_ERR_USAGE, "item %zu of a data set of %zu", i, ds->count);
    const ae_item *item = &ds->items[i];
    if (item->path)
        return ae_image_load(item->path, out, err);
    const ae_idx *im = &ds->idx_images;
    int h = im->dims[1], w = im->dims[2], c = im->ndim == 4 ? im->dims[3] : 1;
    size_t bytes = (size_t)h * (size_t)w * (size_t)c;
    if (item->index < 0 || (size_t)item->index >= im->count)
        return ae_fail(err, AE_ERR_USAGE, "IDX record #%" PRId64 " of %zu", item->index,
                       im->count);
    out->pixels = malloc(bytes);
    if (!out->pixels)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for record #%" PRId64, item->index);
    memcpy(out->pixels, im->data + (size_t)item->index * bytes, bytes);
    out->height = h;
    out->width = w;
    out->channels = c;
    return AE_OK;
}

const char *ae_item_name(const ae_item *item, char *buf, size_t bufsize)
{
    if (item->path)
        return item->path;
    snprintf(buf, bufsize, "#%" PRId64, item->index);
    return buf;
}

const char *ae_class_name(const ae_dataset *ds, int label, char *buf, size_t bufsize)
{
    if (ds->class_names && label >= 0 && label < ds->num_classes && ds->class_names[label])
        return ds->class_names[label];
    if (label < 0)
        snprintf(buf, bufsize, "unlabeled");
    else
        snprintf(buf, bufsize, "%d", label);
    return buf;
}
