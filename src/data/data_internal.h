/* Helpers shared by the data set sources (dataset*.c, walk.c); not public. */
#ifndef AEDET_DATA_INTERNAL_H
#define AEDET_DATA_INTERNAL_H

#include "aedet/data.h"

/* A growable list of owned strings. */
typedef struct {
    char **v;
    size_t n, cap;
} data_strlist;

/* Appends s and takes ownership of it; frees s and returns 0 when out of memory. */
int data_strlist_push(data_strlist *l, char *s);
void data_strlist_sort(data_strlist *l); /* strcmp order: the same on every machine */
void data_strlist_free(data_strlist *l);
/* Index of name in a sorted list, or -1. */
int data_strlist_find(const data_strlist *l, const char *name);

/* "a/b" without doubling a trailing slash of a; NULL when out of memory. */
char *data_path_join(const char *a, const char *b);
int data_is_dir(const char *path);
int data_is_file(const char *path);
/* .jpg .jpeg .png, any case. */
int data_has_image_ext(const char *name);
/* Whether the include/exclude globs of src keep rel (a path relative to root). */
int data_glob_keep(const ae_source *src, const char *rel);

/* Every image file below root/sub (sub may be NULL), as paths relative to root
 * ("sub/x/y.png"), filtered by the globs of src and sorted. */
ae_status data_walk_images(const char *root, const char *sub, const ae_source *src,
                           data_strlist *out, ae_dataset *notes, ae_error *err);
/* Names of the folders directly in dir, sorted; hidden ones and links to
 * folders are skipped, as data_walk_images does not enter them. */
ae_status data_list_subdirs(const char *dir, data_strlist *out, ae_error *err);

/* Appends an item; takes ownership of path and mask (freed on failure). */
ae_status data_add_item(ae_dataset *ds, size_t *cap, char *path, int64_t index, int label,
                        char *mask, ae_error *err);
/* Appends a line to ds->notes. */
ae_status data_note(ae_dataset *ds, ae_error *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Moves names into ds->class_names. */
void data_set_classes(ae_dataset *ds, data_strlist *names);
/* class_names "0", "1", ..., num_classes - 1. */
ae_status data_numeric_classes(ae_dataset *ds, int num_classes, ae_error *err);

ae_status data_open_csv(const ae_source *src, ae_dataset *ds, ae_error *err);
ae_status data_open_mvtec(const ae_source *src, ae_dataset *ds, ae_error *err);
ae_status data_open_folders(const ae_source *src, ae_dataset *ds, ae_error *err);

/* dataset_files.c: whether path is a regular file starting like a JPEG or
 * PNG; a data set of that one image (ae_dataset_open, AE_SOURCE_AUTO). */
int data_looks_like_image(const char *path);
ae_status data_open_single(const ae_source *src, ae_dataset *ds, ae_error *err);

#endif
