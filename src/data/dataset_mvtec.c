/* The MVTec AD layout: root/train/good (normal images), root/test/<defect>
 * (test/good is normal too), root/ground_truth/<defect>/<name>_mask.png.
 * Classes: "good" = 0, then the defect folders of root/test in sorted order,
 * for both splits, so labels mean the same in train and test. Other folders
 * in root/train are ignored (MVTec has none). */
#include "data/data_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Class names: "good" then the sorted defect folders of root/test, if any. */
static ae_status mvtec_classes(const char *root, data_strlist *defects, ae_error *err)
{
    char *test = data_path_join(root, "test");
    if (!test)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory");
    ae_status s = AE_OK;
    if (data_is_dir(test))
        s = data_list_subdirs(test, defects, err);
    free(test);
    if (s != AE_OK)
        return s;
    int good = data_strlist_find(defects, "good");
    if (good >= 0) {
        free(defects->v[good]);
        memmove(defects->v + good, defects->v + good + 1,
                (defects->n - (size_t)good - 1) * sizeof *defects->v);
        defects->n--;
    }
    return AE_OK;
}

/* root/ground_truth/<cls>/<stem>_mask.png when it exists, else NULL (in *mask). */
static ae_status find_mask(const char *root, const char *cls, const char *file, char **mask,
                           ae_error *err)
{
    *mask = NULL;
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    const char *dot = strrchr(base, '.');
    int stem = dot ? (int)(dot - base) : (int)strlen(base);
    size_t len = strlen(root) + strlen(cls) + (size_t)stem + 32;
    char *p = malloc(len);
    if (!p)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory");
    snprintf(p, len, "%s/ground_truth/%s/%.*s_mask.png", root, cls, stem, base);
    if (data_is_file(p))
        *mask = p;
    else
        free(p);
    return AE_OK;
}

static ae_status add_test_item(const char *root, const data_strlist *defects, const char *rel,
                               ae_dataset *ds, size_t *cap, ae_error *err)
{
    /* rel is "test/<cls>/<file>"; a file directly in test/ has no class. */
    const char *cls_start = rel + strlen("test/");
    const char *slash = strchr(cls_start, '/');
    if (!slash)
        return AE_OK;
    char cls[1024];
    size_t len = (size_t)(slash - cls_start);
    if (len >= sizeof cls)
        return AE_OK;
    memcpy(cls, cls_start, len);
    cls[len] = '\0';
    int label = 0;
    char *mask = NULL;
    if (strcmp(cls, "good") != 0) {
        int d = data_strlist_find(defects, cls);
        if (d < 0)
            return AE_OK;
        label = d + 1;
        ae_status s = find_mask(root, cls, slash + 1, &mask, err);
        if (s != AE_OK)
            return s;
    }
    char *path = data_path_join(root, rel);
    if (!path) {
        free(mask);
        return ae_fail(err, AE_ERR_NOMEM, "out of memory");
    }
    return data_add_item(ds, cap, path, (int64_t)ds->count, label, mask, err);
}

ae_status data_open_mvtec(const ae_source *src, ae_dataset *ds, ae_error *err)
{
    const char *split = src->mvtec_split ? src->mvtec_split : "train";
    int train = strcmp(split, "train") == 0;
    if (!train && strcmp(split, "test") != 0)
        return ae_fail(err, AE_ERR_USAGE, "MVTec split \"%s\": choose train or test", split);
    data_strlist defects = {0}, rel = {0};
    ae_status s = mvtec_classes(src->root, &defects, err);
    if (s == AE_OK)
        s = data_walk_images(src->root, train ? "train/good" : "test", src, &rel, ds, err);
    size_t cap = 0;
    for (size_t i = 0; s == AE_OK && i < rel.n; i++) {
        if (train) {
            char *path = data_path_join(src->root, rel.v[i]);
            s = path ? data_add_item(ds, &cap, path, (int64_t)ds->count, 0, NULL, err)
                     : ae_fail(err, AE_ERR_NOMEM, "out of memory");
        } else {
            s = add_test_item(src->root, &defects, rel.v[i], ds, &cap, err);
        }
    }
    data_strlist_free(&rel);
    /* "good" goes in front of the sorted defects. */
    data_strlist names = {0};
    if (s == AE_OK && !data_strlist_push(&names, strdup("good")))
        s = ae_fail(err, AE_ERR_NOMEM, "out of memory");
    for (size_t i = 0; s == AE_OK && i < defects.n; i++) {
        if (!data_strlist_push(&names, defects.v[i]))
            s = ae_fail(err, AE_ERR_NOMEM, "out of memory");
        defects.v[i] = NULL;
    }
    data_strlist_free(&defects);
    if (s != AE_OK) {
        data_strlist_free(&names);
        return s;
    }
    data_set_classes(ds, &names);
    char desc[1024];
    snprintf(desc, sizeof desc, "MVTec %s (%s split): %zu images, classes good + %d defect(s)",
             src->root, split, ds->count, ds->num_classes - 1);
    if (!(ds->description = strdup(desc)))
        return ae_fail(err, AE_ERR_NOMEM, "out of memory");
    return AE_OK;
}
