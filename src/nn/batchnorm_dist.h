/* Internal: BatchNorm over a batch spread over the ranks of a data-parallel
 * step (model_dist.c). Each rank takes its images' per-image sums into the
 * scratch's slots (the first halves of ae_batchnorm_forward_train and
 * ae_batchnorm_backward_sums), the sums of every image of the batch are
 * gathered in image order (2c doubles an image), and each rank finishes
 * from all of them: the same arithmetic, in the same order, as one process
 * with the whole batch, so the same bits. */
#ifndef AEDET_NN_BATCHNORM_DIST_H
#define AEDET_NN_BATCHNORM_DIST_H

#include "nn/layers.h"

/* Slot i (s->dslots, stride s->dslot_doubles) of each of the n images:
 * the sum of leaky(z) (c), then its sum of squared deviations (c). */
void ae_batchnorm_stats_only(const float *z, const ae_bn_params *bn, int n, size_t pixels, int c,
                             ae_scratch *s);
/* The per-image slots a BatchNorm finishes from: count images' sums,
 * stride doubles apart (this process's in s->dslots, or every rank's,
 * gathered). */
typedef struct {
    const double *part;
    int count;
    size_t stride;
} ae_bn_slots;
/* ae_batchnorm_finish_train from the slots of slots->count images: the
 * statistics of those, applied to this rank's n images (y may be NULL; n
 * may be 0). */
void ae_batchnorm_finish_train_from(float *y, const float *z, const ae_bn_params *bn, int n,
                                    const ae_bn_slots *slots, size_t pixels, int c,
                                    ae_scratch *s);
/* Slot i of each of the n images: the sum of dy (c), then of dy xhat (c). */
void ae_batchnorm_backward_sums_only(const float *dy, const float *z, const ae_bn_params *bn, int n,
                                     size_t pixels, int c, ae_scratch *s);
/* ae_batchnorm_backward_finish from the slots of slots->count images; n
 * is this rank's images (the scratch slot after them is free). */
void ae_batchnorm_backward_finish_from(float *dgamma, float *dbeta, const ae_bn_params *bn,
                                       const float *z, const ae_bn_slots *slots, int n,
                                       size_t pixels, int c, ae_scratch *s,
                                       ae_grad_xform *gxform);

#endif
