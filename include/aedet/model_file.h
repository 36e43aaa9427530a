/* aedet: the model file (docs/MODEL_FORMAT.md has the exact layout).
 *
 * A model file is self-describing: a preamble (magic, format version,
 * endianness marker, section lengths), typed key-value metadata (the model's
 * config, its preprocessing, how it was trained, the training errors), a
 * tensor directory, the tensors as little-endian float32, and a CRC-32 of
 * everything before it. It is built in memory and written atomically, and
 * every length is checked against the file's size when it is read.
 *
 * Two layers: ae_meta + ae_model_file_encode/parse know nothing of ae_model
 * (they are the format); ae_model_save/ae_model_load map a model onto it. */
#ifndef AEDET_MODEL_FILE_H
#define AEDET_MODEL_FILE_H

#include "aedet/common.h"
#include "aedet/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AE_MODEL_FORMAT_VERSION 1

/* ---- Metadata: an ordered list of typed key-value entries ---- */

typedef enum {
    AE_META_INT = 1,     /* int64 */
    AE_META_FLOAT = 2,   /* float64 */
    AE_META_STRING = 3,  /* UTF-8, no NUL inside */
    AE_META_FLOATS = 4,  /* array of float32 */
    AE_META_INTS = 5,    /* array of int64 */
    AE_META_DOUBLES = 6  /* array of float64 */
} ae_meta_type;

typedef struct ae_meta ae_meta;

AE_API ae_meta *ae_meta_new(void); /* NULL when out of memory */
AE_API void ae_meta_free(ae_meta *m);
AE_API ae_status ae_meta_copy(const ae_meta *src, ae_meta **out, ae_error *err);

/* Setting a key that exists replaces its value (and type), keeping its place.
 * Keys are 1 to AE_META_MAX_KEY bytes with no NUL; AE_ERR_USAGE otherwise. */
#define AE_META_MAX_KEY 255
#define AE_META_MAX_ENTRIES 4096 /* a file may hold no more; setters refuse more */
AE_API ae_status ae_meta_set_int(ae_meta *m, const char *key, int64_t value, ae_error *err);
AE_API ae_status ae_meta_set_float(ae_meta *m, const char *key, double value, ae_error *err);
AE_API ae_status ae_meta_set_str(ae_meta *m, const char *key, const char *value, ae_error *err);
AE_API ae_status ae_meta_set_floats(ae_meta *m, const char *key, const float *v, size_t n,
                             ae_error *err);
AE_API ae_status ae_meta_set_ints(ae_meta *m, const char *key, const int64_t *v, size_t n,
                           ae_error *err);
AE_API ae_status ae_meta_set_doubles(ae_meta *m, const char *key, const double *v, size_t n,
                              ae_error *err);
/* key = the current time as ISO 8601 UTC, "2024-05-01T12:34:56Z". */
AE_API ae_status ae_meta_set_now(ae_meta *m, const char *key, ae_error *err);
AE_API int ae_meta_remove(ae_meta *m, const char *key); /* 1 if it was there */
AE_API int ae_meta_has(const ae_meta *m, const char *key);

/* Getters return 1 and fill *value when key exists with that type, else 0
 * (ae_meta_get_float also reads an AE_META_INT). Array getters return NULL
 * when absent; the pointers stay valid until the entry is changed. */
AE_API int ae_meta_get_int(const ae_meta *m, const char *key, int64_t *value);
AE_API int ae_meta_get_float(const ae_meta *m, const char *key, double *value);
AE_API const char *ae_meta_get_str(const ae_meta *m, const char *key);
AE_API const float *ae_meta_get_floats(const ae_meta *m, const char *key, size_t *n);
AE_API const int64_t *ae_meta_get_ints(const ae_meta *m, const char *key, size_t *n);
AE_API const double *ae_meta_get_doubles(const ae_meta *m, const char *key, size_t *n);

/* Walking every entry, in order (for `aedet info`). */
AE_API size_t ae_meta_count(const ae_meta *m);
AE_API const char *ae_meta_key(const ae_meta *m, size_t i);
AE_API ae_meta_type ae_meta_entry_type(const ae_meta *m, size_t i);
AE_API size_t ae_meta_entry_length(const ae_meta *m, size_t i); /* array elements; 1 otherwise */
AE_API const char *ae_meta_type_name(ae_meta_type t);

/* Keys the library writes (it replaces any the caller set). */
#define AE_KEY_VERSION "aedet.version"
#define AE_KEY_HEIGHT "model.height"
#define AE_KEY_WIDTH "model.width"
#define AE_KEY_CHANNELS "model.channels"
#define AE_KEY_FILTERS "model.filters" /* int64 array */
#define AE_KEY_LATENT "model.latent_dim"
#define AE_KEY_SLOPE "model.leaky_slope"
#define AE_KEY_MOMENTUM "model.bn_momentum"
#define AE_KEY_EPSILON "model.bn_epsilon"
#define AE_KEY_PRE_HEIGHT "preprocess.height"
#define AE_KEY_PRE_WIDTH "preprocess.width"
#define AE_KEY_PRE_CHANNELS "preprocess.channels"
#define AE_KEY_PRE_RESIZE "preprocess.resize"
#define AE_KEY_PRE_SCALE "preprocess.scale"
#define AE_KEY_ITERATIONS "optimizer.iterations" /* only with the optimizer */
/* What ae_image_prepare does and how pixels become floats: a loader refuses
 * files that ask for anything else. */
#define AE_PREPROCESS_RESIZE "area/bilinear"
#define AE_PREPROCESS_SCALE (1.0 / 255.0)

/* Keys for the tool to set (conventions, documented; the library does not
 * require them). */
#define AE_KEY_SEED "train.seed"                 /* int */
#define AE_KEY_DATA "train.data"                 /* string: where the images came from */
#define AE_KEY_COMMAND "train.command"           /* string: train's arguments, 0x1f between them */
#define AE_KEY_CWD "train.cwd"                   /* string: the folder train ran in */
#define AE_KEY_CONFIG "train.config"             /* string: every option's value, "key = value" lines (--config) */
#define AE_KEY_CREATED "train.created"           /* string: ISO 8601 UTC */
#define AE_KEY_EPOCHS "train.epochs"             /* int: epochs asked for */
#define AE_KEY_EPOCHS_DONE "train.epochs_done"   /* int */
#define AE_KEY_BATCH "train.batch"               /* int: batches done in the current epoch */
#define AE_KEY_BATCH_SIZE "train.batch_size"     /* int */
#define AE_KEY_LEARNING_RATE "train.learning_rate" /* float */
#define AE_KEY_DECAY "train.decay"               /* float */
#define AE_KEY_THREADS "train.threads"           /* int */
#define AE_KEY_KERNELS "train.kernels"           /* string: ae_model_kernels of the (last) run */
#define AE_KEY_VAL_FRACTION "train.val_fraction" /* float: validation share of the split */
#define AE_KEY_DATA_FINGERPRINT "train.data_fingerprint" /* int: hash of the chosen images */
#define AE_KEY_TRAIN_IDS "train.image_ids"       /* int64 array: hashes of the training images' real paths, sorted */
#define AE_KEY_TEST_SPLIT "train.test_split"     /* float: the folder layout's held-out normal share */
#define AE_KEY_LOSS_SUM "train.loss_sum"         /* float: running sum in the current epoch */
#define AE_KEY_LOSS_COUNT "train.loss_count"     /* int */
#define AE_KEY_PATIENCE "train.early_stop"       /* int: patience in epochs, 0 off */
#define AE_KEY_KEEP_BEST "train.keep_best"       /* int: 0 or 1 */
#define AE_KEY_AUGMENT "train.augment"           /* int: AE_AUGMENT_* flags */
#define AE_KEY_BEST_EPOCH "train.best_epoch"     /* int: 1-based; 0 none */
#define AE_KEY_BEST_PARAMS "train.best_params"   /* float32 array (checkpoints): the best epoch's */
#define AE_KEY_BEST_STATE "train.best_state"     /* float32 array (checkpoints): its BatchNorm state */
#define AE_KEY_TRAIN_LOSSES "train.losses"       /* float64 array, per epoch */
#define AE_KEY_VAL_LOSSES "train.val_losses"     /* float64 array, per epoch */
#define AE_KEY_TRAIN_ERRORS "train.errors"       /* float32 array, per training image */
#define AE_KEY_VAL_ERRORS "val.errors"           /* float32 array, per validation image */
/* train.errors and val.errors are scores by the model's rule (score.rule in
 * aedet/score.h; mse when absent). The deployable threshold: the quantile
 * q of the stored validation scores (of the training scores without a
 * validation split), and its value. */
#define AE_KEY_THRESHOLD_QUANTILE "threshold.quantile" /* float */
#define AE_KEY_THRESHOLD_VALUE "threshold.value"       /* float */
#define AE_KEY_THRESHOLD_SOURCE "threshold.source"     /* string: "validation" or "train" */

/* ---- The format layer: metadata + named float32 tensors <-> bytes ---- */

typedef enum {
    AE_KIND_PARAM = 0,
    AE_KIND_STATE = 1,  /* BatchNorm moving statistics */
    AE_KIND_ADAM_M = 2,
    AE_KIND_ADAM_V = 3
} ae_tensor_kind;

#define AE_FILE_MAX_DIMS 4
#define AE_FILE_MAX_NAME 47 /* bytes, as in ae_tensor_info.name */

typedef struct {
    char name[AE_FILE_MAX_NAME + 1];
    ae_tensor_kind kind;
    int ndim;                       /* 1 to AE_FILE_MAX_DIMS */
    int64_t shape[AE_FILE_MAX_DIMS];
    size_t count;                   /* product of shape (filled by parse) */
    const float *data;              /* encode: the values; parse: NULL (see copy) */
} ae_file_tensor;

/* Builds a whole file image in memory (*out from malloc). Names must be
 * unique per kind; AE_ERR_USAGE otherwise. */
AE_API ae_status ae_model_file_encode(const ae_meta *meta, const ae_file_tensor *tensors, int num_tensors,
                               uint8_t **out, size_t *out_len, ae_error *err);

/* A parsed file. It points into the bytes given to parse, which must outlive it. */
typedef struct ae_model_file ae_model_file;

/* Checks everything (magic, endianness, version, every length against len,
 * CRC, duplicates) before returning; AE_ERR_FORMAT with a message that starts
 * with name otherwise. */
AE_API ae_status ae_model_file_parse(const uint8_t *bytes, size_t len, const char *name,
                              ae_model_file **out, ae_error *err);
AE_API void ae_model_file_free(ae_model_file *f);
AE_API const ae_meta *ae_model_file_meta(const ae_model_file *f);
AE_API ae_meta *ae_model_file_take_meta(ae_model_file *f); /* caller frees; the file keeps an empty one */
AE_API int ae_model_file_num_tensors(const ae_model_file *f);
AE_API const ae_file_tensor *ae_model_file_tensor(const ae_model_file *f, int i);
AE_API int ae_model_file_find(const ae_model_file *f, const char *name, ae_tensor_kind kind); /* or -1 */
/* Copies tensor i's count values into dst (converting from little-endian). */
AE_API void ae_model_file_copy_tensor(const ae_model_file *f, int i, float *dst);

/* ---- Models ---- */

/* Saves m atomically to path: its config and preprocessing, meta (may be
 * NULL), parameters and BatchNorm state, and with_optimizer != 0 the Adam
 * moments and iteration count too (a checkpoint that --resume continues
 * bit-exactly). An existing file is replaced only when the new one is
 * completely written. */
AE_API ae_status ae_model_save(const char *path, const ae_model *m, const ae_meta *meta,
                        int with_optimizer, ae_error *err);

/* Loads a model saved by ae_model_save, created for batches of up to
 * max_batch images. A file without aedet.version, for other than 1 or 3
 * channels, or whose model would need more than ae_get_memory_limit() bytes
 * for max_batch is AE_ERR_FORMAT, refused before anything is allocated. meta (may be NULL) receives every metadata entry;
 * has_optimizer (may be NULL) says whether the Adam state was loaded (else
 * it is reset). The file must hold exactly the model's tensors with the
 * model's shapes. */
AE_API ae_status ae_model_load(const char *path, int max_batch, ae_model **model, ae_meta **meta,
                        int *has_optimizer, ae_error *err);

/* What a file holds, checked as ae_model_load checks it (keys, every
 * tensor's shape, finite values) but without building the model: nothing is
 * allocated for activations, so a small file that declares huge images costs
 * only its own size (`aedet info`). meta (may be NULL) receives the metadata. */
typedef struct {
    ae_config config;
    size_t num_params;
    int num_tensors;   /* the model's (parameters and state) */
    int has_optimizer; /* the file holds Adam's moments (a checkpoint) */
} ae_model_summary;
AE_API ae_status ae_model_inspect(const char *path, ae_model_summary *out, ae_meta **meta, ae_error *err);

/* The same from bytes in memory; name is used in messages. */
AE_API ae_status ae_model_load_bytes(const uint8_t *bytes, size_t len, const char *name, int max_batch,
                              ae_model **model, ae_meta **meta, int *has_optimizer,
                              ae_error *err);

/* Reads the config that a file's metadata describes (not yet checked with
 * ae_config_check); AE_ERR_FORMAT naming the missing or bad key otherwise. */
AE_API ae_status ae_model_config_from_meta(const ae_meta *meta, const char *name, ae_config *cfg,
                                    ae_error *err);

#ifdef __cplusplus
}
#endif
#endif
