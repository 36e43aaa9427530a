/* aedet: the training loop and the one scoring path, over a model and loaders.
 *
 * Data flows one way: loader -> model -> scores. Training is resumable at any
 * step: the position (epoch, batch) and the running loss live in ae_train_state,
 * and the epoch order depends only on (seed, epoch), so a run stopped and
 * resumed ends with the same weights as one never stopped. */
#ifndef AEDET_TRAIN_H
#define AEDET_TRAIN_H

#include <signal.h>

#include "aedet/common.h"
#include "aedet/data.h"
#include "aedet/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int epochs;        /* 30 */
    int batch_size;    /* 32 */
    uint64_t seed;     /* shuffling; the weights are seeded by ae_model_init_weights */
    ae_adam_config adam;
    /* Set (to non-zero) from a signal handler to stop after the current step. */
    volatile sig_atomic_t *stop;
    /* Called after every step and at the end of every epoch (may be NULL). */
    void (*on_step)(void *user, int epoch, size_t images_done, size_t images_total, float loss);
    void (*on_epoch)(void *user, int epoch, double train_loss, double val_loss, double seconds);
    /* Called at the end of every epoch so the caller can save a checkpoint. */
    ae_status (*on_checkpoint)(void *user, ae_error *err);
    void *user;
} ae_train_options;

/* Where training stands; saved in checkpoints. */
typedef struct {
    int epoch;             /* epochs completed */
    int batch;             /* batches completed in the current epoch */
    double loss_sum;       /* sum of per-image errors so far in the current epoch */
    size_t loss_count;
    int num_history;       /* epochs recorded */
    double *train_loss;    /* per epoch, capacity epochs */
    double *val_loss;      /* per epoch; NaN when there is no validation set */
} ae_train_state;

ae_status ae_train_state_init(ae_train_state *st, int epochs, ae_error *err);
void ae_train_state_free(ae_train_state *st);

/* The shuffle seed of an epoch: a pure function of (seed, epoch). */
uint64_t ae_epoch_seed(uint64_t seed, int epoch);

/* Trains from st's position to opt->epochs. val may be NULL. Returns
 * AE_ERR_INTERRUPTED (st tells where) when *opt->stop was set, AE_ERR_NUMERIC
 * when the loss or weights stop being finite. */
ae_status ae_train(ae_model *m, ae_loader *train, ae_loader *val, const ae_train_options *opt,
                   ae_train_state *st, ae_error *err);

/* Scores every item of a loader in its item order, in inference mode, batch by
 * batch: errors[i] and items[i] (dataset index) for i < ae_loader_count(l).
 * on_batch (may be NULL) sees each batch's input and reconstruction as floats,
 * for writing images or latents. The one scoring path of aedet. */
typedef ae_status (*ae_batch_visitor)(void *user, const ae_batch *batch, const float *input,
                                      const float *recon, const float *errors, ae_error *err);
ae_status ae_score_loader(ae_model *m, ae_loader *l, int batch_size, float *errors,
                          size_t *items, ae_batch_visitor on_batch, void *user, ae_error *err);

/* Mean per-image error over a loader (validation loss). */
ae_status ae_mean_error(ae_model *m, ae_loader *l, int batch_size, double *mean, ae_error *err);

#ifdef __cplusplus
}
#endif
#endif
