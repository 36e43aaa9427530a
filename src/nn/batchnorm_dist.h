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
/* ae_batchnorm_finish_train from n_part images' slots in part (stride
 * doubles apart): the statistics of those, applied to this rank's n images
 * (y may be NULL; n may be 0). */
void ae_batchnorm_finish_train_from(float *y, const float *z, const ae_bn_params *bn, int n,
                                    const double *part, int n_part, size_t stride, size_t pixels,
                                    int c, ae_scratch *s);
/* Slot i of each of the n images: the sum of dy (c), then of dy xhat (c). */
void ae_batchnorm_backward_sums_only(const float *dy, const float *z, const ae_bn_params *bn, int n,
                                     size_t pixels, int c, ae_scratch *s);
/* ae_batchnorm_backward_finish from n_part images' slots in part; n is
 * this rank's images (the scratch slot after them is free). */
void ae_batchnorm_backward_finish_from(float *dgamma, float *dbeta, const ae_bn_params *bn,
                                       const float *z, const double *part, int n_part,
                                       size_t stride, int n, size_t pixels, int c, ae_scratch *s,
                                       ae_grad_xform *gxform);

#endif
