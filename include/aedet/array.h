/* aedet: images in the caller's memory (a numpy array, frames from a
 * camera) instead of files.
 *
 * Pixels are uint8, height x width x channels per image (channels 1 or 3,
 * interleaved), images one after another: numpy's N x H x W x C in C order.
 * They go through the very steps an IDX file's records take (the same
 * resizing to the model, then pixels / 255), so an array and an IDX file
 * holding the same bytes get the same model and the same scores. */
#ifndef AEDET_ARRAY_H
#define AEDET_ARRAY_H

#include "aedet/common.h"
#include "aedet/data.h"
#include "aedet/fit.h"
#include "aedet/score.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A data set of n images (n >= 1), each item an index ("#0", "#1", ... as in
 * an IDX file). labels (may be NULL) gives each image's class, -1 for
 * unknown, else 0..65535. The pixels are copied: the caller may free them
 * when this returns. Free the data set with ae_dataset_free. */
AE_API ae_status ae_dataset_from_pixels(const uint8_t *pixels, size_t n, int height, int width, int channels,
                                        const int *labels, ae_dataset *out, ae_error *err);

/* ae_fit on every image of the array. */
AE_API ae_status ae_fit_pixels(const uint8_t *pixels, size_t n, int height, int width, int channels,
                               const ae_fit_options *o, ae_model **model, ae_meta **meta, ae_error *err);

/* Runs the model on n images of any size (each resized to the model's size
 * and channels as a loader does) in batches of the model's max_batch, and
 * writes, for every output that is not NULL: scores (n, by d's rule; NULL d:
 * the mean squared error), recon (n x H x W x C of the model, in [0, 1])
 * and latents (n x latent_dim). The numbers `aedet score`, `aedet
 * reconstruct` and `aedet encode` give for the same images. AE_ERR_USAGE
 * when d's rule is not ready (ae_detector_ready). */
AE_API ae_status ae_run_pixels(ae_model *m, const ae_detector *d, const uint8_t *pixels, size_t n, int height,
                               int width, int channels, float *scores, float *recon, float *latents,
                               ae_error *err);

/* The same for n images already at the model's size, as floats in [0, 1]
 * (n x H x W x C), used as they are; a NaN or infinite value is AE_ERR_DATA. */
AE_API ae_status ae_run_floats(ae_model *m, const ae_detector *d, const float *x, size_t n, float *scores,
                               float *recon, float *latents, ae_error *err);

#ifdef __cplusplus
}
#endif
#endif
