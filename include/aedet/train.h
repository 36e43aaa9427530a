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
#include "aedet/score.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Augmentations for small sets (ae_train_options.augment), each drawn per
 * image from (seed, epoch, batch), so a resumed run sees the same ones. */
enum {
    AE_AUGMENT_FLIP = 1u << 0,       /* mirrored left to right, half of the time */
    AE_AUGMENT_SHIFT = 1u << 1,      /* moved up to 1/16 of the size each way, edges repeated */
    AE_AUGMENT_BRIGHTNESS = 1u << 2  /* scaled by a factor in [0.9, 1.1], clipped to [0, 1] */
};

/* Data-parallel training over several processes ("ranks"), each with its
 * own copy of the model, reading its own share of every batch. The library
 * never knows what carries the data between ranks: the caller fills this
 * (the aedet tool with MPI, src/cli/dist_mpi.c; the tests with threads).
 * Every rank makes the same calls, with the same sizes, in the same order;
 * each callback returns AE_OK, or fails with err set (the run then stops).
 *
 * A global batch of n images goes to the ranks in rank order: rank r gets
 * ae_shard_count(n, r, size) consecutive images of it (aedet/data.h). Each
 * training step then makes: one allreduce of 2 floats (whether any rank
 * was asked to stop, or failed to read its images), one allgather per
 * BatchNorm layer in the forward and one in the backward (each image's
 * per-channel sums, so that every rank sees the statistics of the whole
 * batch, summed in image order: the bits one process gets), one allgather
 * of the images' errors (the loss), and one allreduce of the gradient (its
 * floats summed in the order the carrier's algorithm takes: not the order
 * one process sums them in, see docs/SCALING.md). */
typedef struct ae_collective {
    int rank, size; /* this rank, 0..size-1, of size */
    void *ctx;      /* passed to every callback */
    /* Sums count floats over the ranks, in place. Every rank must get the
     * same bits, and the same on every run with this size. */
    ae_status (*allreduce)(void *ctx, float *buf, size_t count, ae_error *err);
    /* Concatenates counts[r] doubles from each rank r (its `mine`) into
     * `all`, in rank order, on every rank. */
    ae_status (*allgather)(void *ctx, const double *mine, double *all, const int *counts,
                           ae_error *err);
    /* Optional (NULL: the gradient is summed by one allreduce after the
     * backward): begins an allreduce of buf[0..count), a part of the
     * gradient the backward has finished, and returns while it runs; the
     * backward calls progress (may be NULL) between layers, and end once,
     * to wait for every sum begun. The parts are the same on every rank. */
    ae_status (*allreduce_begin)(void *ctx, float *buf, size_t count, ae_error *err);
    void (*progress)(void *ctx);
    ae_status (*allreduce_end)(void *ctx, ae_error *err);
    size_t part_floats; /* the parts' least size; 0: 1 Mi floats (4 MiB) */
} ae_collective;

typedef struct {
    int epochs;        /* 30 */
    int batch_size;    /* 32 */
    uint64_t seed;     /* shuffling; the weights are seeded by ae_model_init_weights */
    ae_adam_config adam;
    /* Early stopping: stop once this many epochs have passed without a lower
     * validation loss (0: never), and end with the best epoch's weights. */
    int patience;
    /* End with the weights of the epoch with the lowest validation loss,
     * even without early stopping (needs a validation set). */
    int keep_best;
    unsigned augment;  /* AE_AUGMENT_* flags; 0: none */
    /* Set (to non-zero) from a signal handler to stop after the current step. */
    volatile sig_atomic_t *stop;
    /* Called after every step and at the end of every epoch (may be NULL). */
    void (*on_step)(void *user, int epoch, size_t images_done, size_t images_total, float loss);
    void (*on_epoch)(void *user, int epoch, double train_loss, double val_loss, double seconds);
    /* Called at the end of every epoch so the caller can save a checkpoint. */
    ae_status (*on_checkpoint)(void *user, ae_error *err);
    void *user;
    /* Data-parallel training (NULL, or size 1: this process alone). Every
     * rank passes the same options, data and starting weights (checked);
     * batch_size is the global batch, at least comm->size; the model needs
     * room for ae_shard_count(batch_size, 0, size) images. Each rank reads
     * its share of every batch and of the validation set; the callbacks
     * above run on rank 0 alone (it writes the checkpoints), and the stop
     * flag of any rank stops every rank after the same step. The weights
     * stay the same on every rank, and within float rounding of one
     * process's at the same batch size (docs/SCALING.md). */
    const ae_collective *comm;
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
    /* With patience or keep_best: the epoch (1-based, 0: none yet) whose
     * validation loss is the lowest so far, and a copy of its parameters and
     * BatchNorm state (allocated by ae_train; a checkpoint carries them). */
    int best_epoch;
    float *best_params, *best_state;
    int stopped_early;     /* 1 when patience ended the run */
} ae_train_state;

AE_API ae_status ae_train_state_init(ae_train_state *st, int epochs, ae_error *err);
AE_API void ae_train_state_free(ae_train_state *st);

/* The shuffle seed of an epoch: a pure function of (seed, epoch). */
AE_API uint64_t ae_epoch_seed(uint64_t seed, int epoch);

/* The buffers for the best epoch's weights, sized for m (ae_train makes
 * them when needed; a resumed run makes them first to fill them). */
AE_API ae_status ae_train_state_keep_best(ae_train_state *st, const ae_model *m, ae_error *err);

/* Trains from st's position to opt->epochs (or until patience stops it:
 * st->stopped_early; with patience or keep_best the model then holds the
 * best epoch's weights). val may be NULL. Returns
 * AE_ERR_INTERRUPTED (st tells where) when *opt->stop was set, AE_ERR_NUMERIC
 * when the loss or weights stop being finite. */
AE_API ae_status ae_train(ae_model *m, ae_loader *train, ae_loader *val, const ae_train_options *opt,
                   ae_train_state *st, ae_error *err);

/* Scores every item of a loader in its item order, in inference mode, batch by
 * batch: errors[i] and items[i] (dataset index) for i < ae_loader_count(l).
 * on_batch (may be NULL) sees each batch's input and reconstruction as floats,
 * for writing images or latents. The one scoring path of aedet. */
typedef ae_status (*ae_batch_visitor)(void *user, const ae_batch *batch, const float *input,
                                      const float *recon, const float *errors, ae_error *err);
AE_API ae_status ae_score_loader(ae_model *m, ae_loader *l, int batch_size, float *errors,
                          size_t *items, ae_batch_visitor on_batch, void *user, ae_error *err);

/* Scores n images of x (n x H x W x C floats, 1 <= n <= the model's
 * max_batch) by d's rule (NULL: the mean squared error, ae_model_score's),
 * writing scores[0..n) and, when recon is not NULL, the reconstructions
 * (required by the rules that read them: ae_score_rule_uses_recon). */
AE_API ae_status ae_score_batch(ae_model *m, const ae_detector *d, const float *x, int n, float *scores, float *recon,
                         ae_error *err);

/* ae_score_loader by a detector's rule (aedet/score.h): scores[i] for each
 * item, and on_batch sees those scores. NULL detector: the mean squared
 * error, exactly ae_score_loader. */
AE_API ae_status ae_score_loader_by(ae_model *m, const ae_detector *d, ae_loader *l, int batch_size,
                             float *scores, size_t *items, ae_batch_visitor on_batch, void *user,
                             ae_error *err);

/* Teaches a detector what the latent rules need after training, whatever its
 * own rule (so that any rule can score with the model later): the latents of
 * the train loader's images as the reference (a sample drawn with seed
 * beyond AE_DETECTOR_MAX_REFERENCE), and the standardization of `combined`
 * from held_out's images (NULL or empty: from the training images). */
AE_API ae_status ae_detector_fit(ae_detector *d, ae_model *m, ae_loader *train, ae_loader *held_out,
                          int batch_size, uint64_t seed, ae_error *err);

/* Mean per-image error over a loader (validation loss). */
AE_API ae_status ae_mean_error(ae_model *m, ae_loader *l, int batch_size, double *mean, ae_error *err);

#ifdef __cplusplus
}
#endif
#endif
