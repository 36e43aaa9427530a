/* aedet: anomaly scores beyond the mean squared error (docs/QUALITY.md).
 *
 * The tutorial scores an image by its mean squared reconstruction error. That
 * misses small defects (a crack moves the mean of a large image very little)
 * and images simpler than the normal ones (a model of sandals reconstructs
 * plain trousers well). The rules here look at the error where it is
 * concentrated, relative to the image's own detail, or in the encoder's
 * latent space:
 *
 *   mse         mean squared error over pixels and channels (the tutorial's)
 *   max         the largest value of the squared-error map after Gaussian
 *               smoothing (sigma pixels): one small defect is enough
 *   topk:P      the mean of the top P percent of the smoothed map
 *   ssim        the mean of 1 - SSIM over the grey image (Wang et al. 2004;
 *               Bergmann et al. 2018): structure, not brightness
 *   relative    mse divided by the image's detail (its mean absolute gradient):
 *               error per unit of what there was to reconstruct (after Serra
 *               et al. 2020, "Input complexity and out-of-distribution detection")
 *   latent-knn  the mean distance of the image's latent vector to its k nearest
 *               latents of the training images (k a share of them, 5% by
 *               default, so a cluster of anomalies smaller than that share
 *               cannot vouch for itself)
 *   combined    relative + latent-knn, each standardized by its mean and
 *               standard deviation on held-out normal images
 *
 * A detector is a rule plus what it learned from the training images (the
 * reference latents and the standardization); it is stored in the model file
 * so scoring later uses the same rule. Higher scores are more anomalous. */
#ifndef AEDET_SCORE_H
#define AEDET_SCORE_H

#include "aedet/common.h"
#include "aedet/model_file.h"
#include "aedet/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    AE_SCORE_MSE = 0,
    AE_SCORE_MAX,
    AE_SCORE_TOPK,
    AE_SCORE_SSIM,
    AE_SCORE_RELATIVE,
    AE_SCORE_LATENT_KNN,
    AE_SCORE_COMBINED
} ae_score_kind;

typedef struct {
    ae_score_kind kind;
    double sigma;        /* max, topk (and their pixel maps): smoothing in pixels of the
                            model's size [1] */
    double top_percent;  /* topk: share of the pixels averaged, in (0, 100] [1] */
    double knn_percent;  /* latent-knn, combined: k as a share of the reference, (0, 100] [5] */
} ae_score_rule;

/* The defaults above for kind. */
AE_API void ae_score_rule_init(ae_score_rule *rule, ae_score_kind kind);
/* "mse", "max", "topk:P", "ssim", "relative", "latent-knn", "combined";
 * AE_ERR_USAGE with the list of names otherwise. Sets the defaults first. */
AE_API ae_status ae_score_rule_parse(const char *text, ae_score_rule *rule, ae_error *err);
/* The name, e.g. "topk:1" (what ae_score_rule_parse reads back). */
AE_API const char *ae_score_rule_name(const ae_score_rule *rule, char *buf, size_t size);
/* 1 when the rule reads the latent space (it needs reference latents). */
AE_API int ae_score_rule_uses_latent(const ae_score_rule *rule);
/* 1 when the rule needs the reconstruction (anything but mse and latent-knn). */
AE_API int ae_score_rule_uses_recon(const ae_score_rule *rule);

/* ---- Per-pixel maps and their reductions (src/score/maps.c) ------------ */

/* map[p] = mean over channels of (x - r)^2, for h x w pixels of c channels (HWC). */
AE_API void ae_squared_error_map(const float *x, const float *r, int h, int w, int c, float *map);

/* Floats of scratch that ae_gaussian_blur and ae_ssim_map need for h x w. */
AE_API size_t ae_blur_scratch_floats(int h, int w);
AE_API size_t ae_ssim_scratch_floats(int h, int w);

/* In place, separable, as scipy.ndimage.gaussian_filter(map, sigma) with its
 * defaults: a kernel of radius round(4 sigma), boundary "reflect"
 * (d c b a | a b c d | d c b a). sigma <= 0 leaves map alone. */
AE_API void ae_gaussian_blur(float *map, int h, int w, double sigma, float *scratch);

/* map[p] = 1 - SSIM(x, r) at p over the grey images (the mean of the
 * channels, as Bergmann et al. score grey images): scikit-image's
 * structural_similarity defaults, a window x window uniform window (7),
 * sample (co)variances, C1 = 0.01^2, C2 = 0.03^2 for pixels in [0, 1];
 * windows reflected at the edges (scipy's uniform_filter). A uniform window
 * costs a fraction of a Gaussian one. */
#define AE_SSIM_WINDOW 7
AE_API void ae_ssim_map(const float *x, const float *r, int h, int w, int c, int window, float *map,
                 float *scratch);

/* The mean over channels of the mean absolute difference between
 * horizontal neighbours plus that between vertical neighbours; 0 for a flat
 * image (callers add a floor). */
AE_API double ae_image_detail(const float *x, int h, int w, int c);

/* src (h x w) resized to dst (height x width), bilinear with pixel centres
 * at half-integers and edges repeated (OpenCV's INTER_LINEAR, PIL's
 * BILINEAR when growing): anomaly maps at an input's own resolution. */
AE_API void ae_map_resize(const float *src, int h, int w, float *dst, int height, int width);

AE_API float ae_map_max(const float *map, size_t n);
/* The mean of the ceil(percent / 100 * n) largest values (at least one);
 * reorders map. */
AE_API float ae_map_top_mean(float *map, size_t n, double percent);

/* ---- Nearest neighbours in the latent space (src/score/knn.c) ---------- */

/* For each of n queries (n x dim), the mean Euclidean distance to its k
 * nearest of the num_ref reference vectors (num_ref x dim), k in
 * 1..num_ref. Distances come from |q|^2 - 2 q.r + |r|^2 (one matrix product),
 * clamped at 0. AE_ERR_NOMEM, or AE_ERR_USAGE for a bad k. */
AE_API ae_status ae_knn_mean_distance(const float *queries, size_t n, const float *ref, size_t num_ref,
                               int dim, int k, float *out, ae_error *err);

/* ---- Detectors (src/score/detector.c) ---------------------------------- */

typedef struct ae_detector ae_detector;

/* Most reference latents a detector keeps (a seeded sample beyond that):
 * 8192 x 32 floats is 1 MiB of model file. */
#define AE_DETECTOR_MAX_REFERENCE 8192

AE_API ae_status ae_detector_create(const ae_score_rule *rule, ae_detector **out, ae_error *err);
AE_API void ae_detector_free(ae_detector *d);
AE_API const ae_score_rule *ae_detector_rule(const ae_detector *d);
/* Another rule over what the detector learned (the reference and the
 * standardization serve every rule). */
AE_API void ae_detector_set_rule(ae_detector *d, const ae_score_rule *rule);
/* 1 once the detector has what its rule needs (reference latents and
 * standardization); rules that need nothing are always ready. */
AE_API int ae_detector_ready(const ae_detector *d);

/* What the latent rules learn, from the model's latents of the training
 * images (at most AE_DETECTOR_MAX_REFERENCE, a sample drawn with seed) and
 * the standardization of `combined` from the held-out images' components.
 * Called by the training code (ae_detector_fit, src/train/score.c). */
AE_API ae_status ae_detector_set_reference(ae_detector *d, const float *latents, size_t n, int dim,
                                    uint64_t seed, ae_error *err);
/* Needs the reference first. Per held-out image: its mse, its latent. */
AE_API ae_status ae_detector_calibrate(ae_detector *d, const ae_config *cfg, const float *inputs,
                                const float *mse, const float *recon, const float *latents,
                                size_t n, ae_error *err);

/* Scores n images from the model's outputs: inputs and recon (n x H x W x C,
 * recon may be NULL when the rule does not use it), latents (n x latent_dim,
 * may be NULL likewise) and mse (the model's per-image errors). AE_ERR_USAGE
 * when the detector is not ready. */
AE_API ae_status ae_detector_score(const ae_detector *d, const ae_config *cfg, const float *inputs,
                            const float *recon, const float *latents, const float *mse, int n,
                            float *scores, ae_error *err);

/* Per-pixel anomaly map of one image for localisation (h x w of the
 * model): the smoothed squared error for mse, max, topk, relative and the
 * latent rules (which have no map of their own), 1 - SSIM for ssim. scratch
 * holds ae_ssim_scratch_floats(h, w). */
AE_API void ae_detector_pixel_map(const ae_detector *d, const ae_config *cfg, const float *input,
                           const float *recon, float *map, float *scratch);

/* Keys in the model file (docs/MODEL_FORMAT.md). */
#define AE_KEY_SCORE_RULE "score.rule"             /* string: ae_score_rule_name */
#define AE_KEY_SCORE_SIGMA "score.sigma"           /* float */
#define AE_KEY_SCORE_REFERENCE "score.reference"   /* float32 array: n x latent_dim */
#define AE_KEY_SCORE_CALIBRATION "score.calibration" /* float64 array: mean, sd of relative; of knn */

/* Writes the rule and what it learned into meta; reads them back (a file
 * without score.rule is an mse model, as every model before them). */
AE_API ae_status ae_detector_to_meta(const ae_detector *d, ae_meta *meta, ae_error *err);
AE_API ae_status ae_detector_from_meta(const ae_meta *meta, int latent_dim, const char *name,
                                ae_detector **out, ae_error *err);

#ifdef __cplusplus
}
#endif
#endif
