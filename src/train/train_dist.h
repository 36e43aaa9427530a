/* Internal: the data-parallel side of ae_train (train_dist.c), with
 * opt->comm of more than one rank (aedet/train.h). */
#ifndef AEDET_TRAIN_DIST_H
#define AEDET_TRAIN_DIST_H

#include "aedet/train.h"
#include "nn/model.h"

typedef struct {
    const ae_collective *comm;
    ae_dist_step step;
    int *counts;      /* comm->size: each rank's images of the current batch */
    int *two;         /* comm->size entries of 2: agree()'s gather */
    double *flags;    /* 2 x comm->size: what each rank said in agree() */
} train_dist;

/* Checks that opt's batch can be spread over the ranks and that the model
 * has room for rank 0's share, makes the buffers, and checks that every
 * rank starts from the same weights and position. */
ae_status train_dist_init(train_dist *td, ae_model *m, const ae_train_options *opt,
                          const ae_train_state *st, ae_error *err);
void train_dist_free(train_dist *td);

/* Every rank says whether it was asked to stop and how its own work went
 * (mine, with my_err); returns the first failure by rank (a rank that did
 * not fail gets a message naming the one that did), else AE_OK with
 * *stop set when some rank was asked to stop. */
ae_status train_dist_agree(train_dist *td, int stop, ae_status mine, const ae_error *my_err,
                           int *any_stop, ae_error *err);

/* Whether every rank holds the same weights, Adam state and position
 * (`when` names the moment for the message). */
ae_status train_dist_same_weights(train_dist *td, ae_model *m, const ae_train_state *st,
                                  const char *when, ae_error *err);

/* ae_mean_error over the ranks: each scores its share of the loader's
 * global batches, and the errors are added in item order, as one process
 * adds them. */
ae_status train_dist_mean_error(train_dist *td, ae_model *m, ae_loader *l, int batch_size,
                                double *mean, ae_error *err);

#endif
