/* aedet: a whole training run in one call, as `aedet train` does it.
 *
 * ae_fit takes a data set (a folder, an IDX file, or images in memory:
 * aedet/array.h) and gives a trained model and the metadata that
 * ae_model_save writes beside it: the seeded train/validation split, the
 * model sized from the first image, ae_train, then the score rule fitted,
 * the training and validation scores, and the deployable threshold. The
 * same options, seed and images give the same weights, scores and threshold
 * as `aedet train` (on the same kernels); it prints nothing and saves no
 * checkpoints. */
#ifndef AEDET_FIT_H
#define AEDET_FIT_H

#include <signal.h>

#include "aedet/common.h"
#include "aedet/data.h"
#include "aedet/model_file.h"
#include "aedet/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int epochs;                 /* 30 */
    int batch_size;             /* 32 */
    uint64_t seed;              /* 0: the split, the initial weights, the batches' order */
    double val_fraction;        /* 0.2, in [0, 1): held out for the validation loss and threshold */
    /* The model's size; 0 takes the first training image's, each side
     * rounded to the nearest multiple of 2^num_filters (28 -> 32). */
    int height, width, channels;
    int num_filters;            /* 3 */
    int filters[AE_MAX_FILTERS];/* 16, 32, 64 */
    int latent_dim;             /* 32 */
    double leaky_slope;         /* 0.3 */
    double learning_rate;       /* 1e-3 */
    double decay;               /* 2e-5: Keras' time decay, the tutorial's 1e-3 / 50 epochs */
    int patience;               /* 0: no early stopping (ae_train_options) */
    int keep_best;              /* 0 */
    unsigned augment;           /* AE_AUGMENT_* flags (aedet/train.h); 0 */
    const char *score;          /* "mse": the score rule stored in the model (aedet/score.h) */
    double sigma;               /* the rule's smoothing; NaN: its default */
    double threshold_quantile;  /* 0.99 of the validation scores (the training ones without) */
    int bf16;                   /* 0; 1: ae_model_set_bf16 */
    size_t memory_budget;       /* 0: 1 GiB of decoded images, then they are streamed */
    int threads;                /* decoding threads; 0: all cores (the model's: ae_set_num_threads) */
    ae_bad_policy bad_policy;   /* AE_BAD_STOP */
    /* Called after every epoch (may be NULL); val_loss is NaN without a
     * validation split. */
    void (*on_epoch)(void *user, int epoch, double train_loss, double val_loss, double seconds);
    void *user;
    /* Set (to non-zero) to stop after the current step: AE_ERR_INTERRUPTED. */
    volatile sig_atomic_t *stop;
} ae_fit_options;

/* `aedet train`'s defaults, above. */
AE_API void ae_fit_options_init(ae_fit_options *o);
/* sizeof(ae_fit_options), for bindings that mirror the struct (the Python
 * package checks its copy against it). */
AE_API size_t ae_fit_options_size(void);

/* Trains on items[0..count) of ds (items NULL: every item) and returns the
 * model (created for batches of o->batch_size) and its metadata, both the
 * caller's to free (ae_model_free, ae_meta_free); ae_model_save(path,
 * *model, *meta, 0, err) writes what `aedet train -o path` writes. On
 * failure *model and *meta are NULL. AE_ERR_USAGE for bad options (with
 * which one), or ae_train's errors. */
AE_API ae_status ae_fit(const ae_dataset *ds, const size_t *items, size_t count, const ae_fit_options *o,
                        ae_model **model, ae_meta **meta, ae_error *err);

#ifdef __cplusplus
}
#endif
#endif
