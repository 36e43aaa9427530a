/* aedet: data sets as users keep them, the tutorial's recipe, and batches.
 *
 * A data set is a list of items (an image file, or a record of an IDX file),
 * each with its identity (path or index) and its label when known. A loader
 * turns a chosen subset of items into batches of uint8 pixels at the model's
 * size, from memory when they fit the budget, else streamed from disk by a
 * thread pool that prefetches the next batches. */
#ifndef AEDET_DATA_H
#define AEDET_DATA_H

#include "aedet/common.h"
#include "aedet/image.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where the images come from. Every source lists files in a deterministic
 * order (paths sorted by strcmp), so item numbers are the same on every run.
 * Image files are the ones named .jpg, .jpeg or .png (any case); hidden
 * entries (names starting with '.') are skipped and folders reached through a
 * symbolic link are not entered (nor taken as class or defect folders); links
 * to files are kept. */
typedef enum {
    AE_SOURCE_AUTO = 0,      /* root is a regular file: IDX; root/train/good exists:
                                MVTEC; labels given: CSV; else FOLDER */
    AE_SOURCE_FOLDER,        /* every image below root, recursively; labels -1 */
    AE_SOURCE_CSV,           /* a labels CSV (DeepWeeds: Filename,Label,Species) with paths
                                relative to root (default: the CSV's folder). Labels are
                                integers 0..65535; num_classes is the largest + 1.
                                Class names from a "Species" column (the first one
                                for each label), else "0", "1", ...; NULL for a label
                                no row has. A row whose file is missing is bad input
                                under bad_policy (below). */
    AE_SOURCE_CLASS_FOLDERS, /* root/<class>/...: label = class index, classes sorted by
                                name; files directly in root are ignored */
    AE_SOURCE_MVTEC,         /* root/train/good (label 0) or root/test/<class> (good = 0,
                                then the defect folders sorted), masks from
                                root/ground_truth/<defect>/<name>_mask.png */
    AE_SOURCE_IDX,           /* images IDX file (+ labels IDX file); class names "0".. */
    AE_SOURCE_FOLDERS        /* the folder layout: ae_source.folders (below); root unused */
} ae_source_kind;

/* The folder layout (as anomalib's Folder datamodule): normal images in one
 * folder, each kind of defect in a folder of its own, masks in another.
 * Classes: the normal folder's name = 0, then the abnormal folders' names in
 * the order given (names must differ). Every folder is searched recursively
 * with the globs of the source; a folder nested inside another is left out of
 * the outer one, so masks, held-out normals or defects never count twice.
 *
 * test 0, the training split: the normal images, less the test_split share
 * held out for scoring (a seeded sample). test 1, the scoring split: the
 * held-out normal images (or those of normal_test_dir, or with neither every
 * normal image) and every abnormal image, each with its mask when mask_dir
 * holds one: mask_dir/<class>/<sub>/<stem><suffix>.<ext> or
 * mask_dir/<sub>/<stem><suffix>.<ext> for the image <folder>/<sub>/<stem>.<x>,
 * ext the image's own or png, suffix mask_suffix (NULL: "" then "_mask").
 * A file of mask_dir that is no image's mask is bad data (AE_ERR_DATA,
 * named), unless the globs leave it out or it lies in a folder of mask_dir
 * named after none of the classes or the images' subfolders (the masks of a
 * class not asked for).
 *
 * Masks are never images: files below mask_dir, files whose stem ends in an
 * explicit mask_suffix, and by default a file "x_mask.png" beside an image
 * "x.png" (left out with a note). */
typedef struct {
    const char *normal_dir;             /* required */
    const char *const *abnormal_dirs;   /* may be NULL */
    int num_abnormal;
    const char *normal_test_dir;        /* normal images for scoring, or NULL */
    const char *mask_dir;               /* or NULL */
    const char *mask_suffix;            /* NULL: "" then "_mask" */
    double test_split;                  /* [0, 1): normal images held out (0 with normal_test_dir) */
    uint64_t seed;                      /* of the held-out sample */
    int test;                           /* 0: the training split, 1: the scoring split */
} ae_folder_layout;

typedef enum { AE_BAD_STOP = 0, AE_BAD_SKIP = 1 } ae_bad_policy;

typedef struct {
    ae_source_kind kind;
    const char *root;        /* folder, or the images IDX file */
    const char *labels;      /* labels CSV, or labels IDX file; may be NULL */
    const char *path_column; /* CSV: default "Filename" */
    const char *label_column;/* CSV: default "Label" */
    /* Glob patterns (fnmatch without FNM_PATHNAME, so '*' crosses '/') on the
     * path relative to root, e.g. "train/good/x.png". An item is kept when it
     * matches some include (or there are none) and no exclude. A pattern with
     * no '/' is also tried on the file name alone ("mask*"), and a leading
     * "**" + "/" may also match nothing (as in .gitignore). Not for IDX. */
    const char *const *include; int num_include;
    const char *const *exclude; int num_exclude;
    const char *mvtec_split; /* "train" or "test" (default "train") */
    /* CSV: a row naming a missing file. AE_BAD_STOP (default) fails the open
     * with AE_ERR_DATA naming the CSV file and line; AE_BAD_SKIP keeps the
     * item, so the loader's bad-file policy lists and skips it. Folders: a
     * subfolder that cannot be opened fails the open, or under AE_BAD_SKIP
     * is left out with a note (ae_dataset.notes). Pass the same policy as
     * the loader's. */
    ae_bad_policy bad_policy;
    /* CSV: rows may name files outside root (an absolute path, or one whose
     * ".." climbs above root). Off by default: a labels file from elsewhere
     * must not make the tool read, say, ../../etc/passwd. */
    int allow_outside;
    /* AE_SOURCE_FOLDERS: the folders (AE_SOURCE_AUTO picks it when set). */
    const ae_folder_layout *folders;
} ae_source;

typedef struct {
    char *path;      /* image file; NULL for an IDX record */
    int64_t index;   /* IDX record number, or order of discovery */
    int label;       /* -1 unknown; class index otherwise */
    char *mask_path; /* MVTec ground-truth mask, or NULL */
} ae_item;

typedef struct {
    ae_item *items;
    size_t count;
    char **class_names; /* num_classes names ("good", "crack", ...), or NULL; an entry
                           is NULL for a CSV label no row has (see ae_class_name) */
    int num_classes;
    char *description;  /* one line, for the resolved configuration */
    /* IDX data sets keep their (small, uint8) pixels here. */
    ae_idx idx_images;
    /* What the listing left out or found odd, one line each, for the caller
     * to show: folders skipped under AE_BAD_SKIP, CSV rows naming one file
     * with different labels. */
    char **notes;
    size_t num_notes;
} ae_dataset;

AE_API ae_status ae_dataset_open(const ae_source *src, ae_dataset *out, ae_error *err);
AE_API void ae_dataset_free(ae_dataset *ds);
/* One item decoded at its own size (channels as stored: 1 or 3). */
AE_API ae_status ae_dataset_load(const ae_dataset *ds, size_t i, ae_image *out, ae_error *err);
/* "path" or "#index", for messages and output files. */
AE_API const char *ae_item_name(const ae_item *item, char *buf, size_t bufsize);
/* The name of class `label`: class_names[label] when there is one, else the
 * number (or "unlabeled" for -1) written to buf. Never NULL. */
AE_API const char *ae_class_name(const ae_dataset *ds, int label, char *buf, size_t bufsize);
/* Whether the file names in rel (paths, any order) look like images with
 * their masks beside them: some "x_mask.png" (or "x-mask", "x_mask.jpg") next
 * to an "x.png", or a quarter or more of the names ending in "mask". Fills
 * *pairs with the number of such pairs and *masky with the names ending in
 * mask. For a warning: a plain folder trains on every file. */
AE_API int ae_names_look_like_masks(const char *const *rel, size_t n, size_t *pairs, size_t *masky);

/* The tutorial's recipe: every item of the normal classes plus
 * round(contamination * count) items of each anomaly class (rounded half away
 * from zero: 0.01 * 1064 -> 11). The tutorial took the first ones; we take a
 * seeded random sample. No classes means every item. Returns item indices in
 * dataset order (labels choose items, and are never passed on to training).
 * A class with no items, or in both lists, is an error. */
typedef struct {
    const int *normal; int num_normal;
    const int *anomaly; int num_anomaly;
    double contamination; /* 0.01 */
    uint64_t seed;
} ae_recipe;

AE_API ae_status ae_recipe_select(const ae_dataset *ds, const ae_recipe *r, size_t **indices,
                           size_t *count, ae_error *err);

/* Seeded shuffled split: the first round(val_fraction * n) of a shuffled copy
 * go to validation, the rest to training; each part is returned sorted (in
 * dataset order). val_fraction in [0, 1). */
AE_API ae_status ae_split(const size_t *indices, size_t n, double val_fraction, uint64_t seed,
                   size_t **train, size_t *num_train, size_t **val, size_t *num_val,
                   ae_error *err);

typedef struct {
    int height, width, channels; /* the model's size */
    size_t memory_budget;        /* bytes for decoded images; 0: default (1 GiB) */
    int threads;                 /* decoding threads; 0: all cores */
    ae_bad_policy bad_policy;
    int ring_batches;            /* streaming: batches decoded ahead; 0: 4 */
    /* Streaming for one pass (scoring): no check pass up front; the first
     * epoch checks each file as it decodes it (see ae_loader_create). */
    int one_pass;
} ae_loader_config;

/* Valid until the next ae_loader_next, ae_loader_start or ae_loader_free. */
typedef struct {
    int count;              /* images in this batch; 0 at the end of the epoch */
    const uint8_t *pixels;  /* count x H x W x C */
    const size_t *items;    /* count dataset item indices */
} ae_batch;

typedef struct ae_loader ae_loader;

/* Prepares items (dataset indices) for batches: decodes them all into memory
 * (in parallel) if count x H x W x C fits the budget, else streams them: a
 * pool of `threads` decoders fills a ring of ring_batches batch buffers ahead
 * of ae_loader_next. Either way every item is decoded once here, so a bad file
 * fails now (AE_BAD_STOP: the first bad one in item order, with its name and
 * the decoder's reason) or is left out of every epoch alike (AE_BAD_SKIP, see
 * ae_loader_bad); a streamed epoch therefore costs one extra decoding pass up
 * front. A file that turns bad later fails the batch that holds it. The
 * dataset must outlive the loader.
 *
 * With one_pass, a streamed loader skips that pass: its first epoch decodes
 * each file once and checks it then. Under AE_BAD_STOP, ae_loader_next fails
 * at the batch of the first bad file (in epoch order); under AE_BAD_SKIP the
 * bad files leave their batches (which come out shorter) and join
 * ae_loader_bad. Until that epoch has ended (ae_loader_next gave count 0),
 * ae_loader_count counts the bad files too; after it, as above. Starting any
 * other epoch first (or a sharded one) runs the check pass then. */
AE_API ae_status ae_loader_create(const ae_dataset *ds, const size_t *items, size_t count,
                           const ae_loader_config *cfg, ae_loader **out, ae_error *err);
AE_API void ae_loader_free(ae_loader *l);
AE_API int ae_loader_is_streaming(const ae_loader *l);
AE_API size_t ae_loader_count(const ae_loader *l);      /* usable items (bad ones skipped) */
AE_API size_t ae_loader_num_bad(const ae_loader *l);
AE_API const char *ae_loader_bad(const ae_loader *l, size_t i); /* "path: reason" */
/* Expected peak bytes of pixels: all images plus one batch in memory, or
 * ring_batches batches when streaming; for the batch size of the latest
 * ae_loader_start (32 before the first). */
AE_API size_t ae_loader_peak_bytes(const ae_loader *l);

/* Starts an epoch of batches of batch_size (the last one may be partial), in a
 * seeded shuffled order when shuffle, else in item order; abandons any epoch
 * under way. The caller derives seed from its base seed and the epoch number.
 * The same items, batch size and seed give the same batches, byte for byte,
 * in memory or streamed. */
AE_API ae_status ae_loader_start(ae_loader *l, int batch_size, int shuffle, uint64_t seed, ae_error *err);
AE_API ae_status ae_loader_next(ae_loader *l, ae_batch *batch, ae_error *err);

/* Data-parallel runs (aedet/train.h): a batch of n images spread over
 * `ranks` ranks in rank order. Rank r holds ae_shard_count(n, r, ranks) =
 * n / ranks images, one more for the first n % ranks ranks, from image
 * ae_shard_first(n, r, ranks) of the batch on. */
AE_API int ae_shard_count(int n, int rank, int ranks);
AE_API int ae_shard_first(int n, int rank, int ranks);
/* ae_loader_start's epoch cut into the same global batches of batch_size,
 * of which this loader hands out only rank's share, in order: batches of
 * ae_shard_count(batch_size, rank, ranks), then the last global batch's
 * share (which may be empty: the epoch then ends a batch early). Only
 * those images are decoded when streaming. batch_size >= ranks. */
AE_API ae_status ae_loader_start_shard(ae_loader *l, int batch_size, int shuffle, uint64_t seed,
                                       int rank, int ranks, ae_error *err);

/* Pixels / 255 into floats (exactly x / 255.0f). */
AE_API void ae_pixels_to_float(const uint8_t *pixels, size_t count, float *out);

/* ---- single images, lists of files, and image sizes (src/data/dataset_files.c) ---- */

/* A data set of the image files named one per line in text (a list file's
 * contents, or standard input's), in the list's order; name ("list.txt",
 * "standard input") is used in messages with the line number. Empty lines
 * and lines starting with '#' are skipped, a trailing '\r' is dropped, and
 * paths are taken as written (relative ones from the working folder). Of src
 * (may be NULL) only the globs (on the path as written) and bad_policy are
 * used: under AE_BAD_STOP a line naming a missing file, one that is not a
 * regular file or not a JPEG/PNG is AE_ERR_DATA "name line N: path: why";
 * under AE_BAD_SKIP it is kept, and the loader lists it. Unlabelled. A
 * single image file as DATA is opened by ae_dataset_open (AE_SOURCE_AUTO). */
AE_API ae_status ae_dataset_open_list(const ae_source *src, const char *text, size_t len, const char *name,
                                      ae_dataset *out, ae_error *err);
/* Item i's size and channels from its file's header alone (ae_image_probe),
 * or the IDX file's dimensions. */
AE_API ae_status ae_dataset_item_info(const ae_dataset *ds, size_t i, ae_image_info *info, ae_error *err);

/* The sizes of the chosen items, from their headers: heights and widths
 * each sorted on their own (median: the lower middle value), and how many
 * distinct HxW sizes. Items whose header cannot be read are counted in
 * unreadable and left out (the loader reports them under its policy). */
typedef struct {
    size_t count, unreadable, distinct;
    int min_height, median_height, max_height;
    int min_width, median_width, max_width;
    int first_height, first_width; /* the first readable item's */
} ae_size_stats;

AE_API ae_status ae_dataset_size_stats(const ae_dataset *ds, const size_t *items, size_t n, ae_size_stats *out,
                                       ae_error *err);

/* The default model input size for images of height x width (train uses the
 * median ones): scaled down, keeping the aspect, so the longer side is at
 * most long_side (<= 0: no cap), then each side rounded to the nearest
 * multiple of 2^num_filters (at least one). 28x28 -> 32x32, 360x496 ->
 * 96x128 with long_side 128 and 3 levels. */
AE_API void ae_default_input_size(int height, int width, int num_filters, int long_side, int *out_h, int *out_w);

#ifdef __cplusplus
}
#endif
#endif
