/* Detectors: a score rule and what it learned from the training images, the
 * way scores are made from a model's outputs, and their place in the model
 * file. */
#include "aedet/score.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An image with no detail at all would divide by zero: the floor is about
 * a quarter of a grey level of mean gradient. */
#define DETAIL_FLOOR 1e-3

struct ae_detector {
    ae_score_rule rule;
    float *reference; /* num_ref x dim latents of training images */
    size_t num_ref;
    int dim;
    /* combined: mean and sd of relative, then of latent-knn, on held-out images */
    double calibration[4];
    int calibrated;
};

static const char *const kind_names[] = {"mse", "max", "topk", "ssim", "relative", "latent-knn", "combined"};
#define NUM_KINDS ((int)(sizeof kind_names / sizeof kind_names[0]))

void ae_score_rule_init(ae_score_rule *rule, ae_score_kind kind)
{
    rule->kind = kind;
    rule->sigma = 1.0;
    rule->top_percent = 1.0;
    rule->knn_percent = 5.0;
}

ae_status ae_score_rule_parse(const char *text, ae_score_rule *rule, ae_error *err)
{
    const char *colon = strchr(text, ':');
    size_t len = colon ? (size_t)(colon - text) : strlen(text);
    for (int k = 0; k < NUM_KINDS; k++) {
        if (strlen(kind_names[k]) != len || strncmp(text, kind_names[k], len))
            continue;
        ae_score_rule_init(rule, (ae_score_kind)k);
        if (k != AE_SCORE_TOPK && !colon)
            return AE_OK;
        char *end;
        double p = colon ? strtod(colon + 1, &end) : NAN;
        if (k == AE_SCORE_TOPK && colon && end != colon + 1 && !*end && p > 0 && p <= 100) {
            rule->top_percent = p;
            return AE_OK;
        }
        break;
    }
    return ae_fail(err, AE_ERR_USAGE,
                   "unknown score '%s': mse, max, topk:P (P percent of the pixels, 0 < P <= 100), ssim, "
                   "relative, latent-knn or combined",
                   text);
}

const char *ae_score_rule_name(const ae_score_rule *rule, char *buf, size_t size)
{
    if (rule->kind == AE_SCORE_TOPK)
        snprintf(buf, size, "topk:%g", rule->top_percent);
    else
        snprintf(buf, size, "%s", (int)rule->kind < NUM_KINDS ? kind_names[rule->kind] : "?");
    return buf;
}

int ae_score_rule_uses_latent(const ae_score_rule *rule)
{
    return rule->kind == AE_SCORE_LATENT_KNN || rule->kind == AE_SCORE_COMBINED;
}

int ae_score_rule_uses_recon(const ae_score_rule *rule)
{
    return rule->kind == AE_SCORE_MAX || rule->kind == AE_SCORE_TOPK || rule->kind == AE_SCORE_SSIM;
}

ae_status ae_detector_create(const ae_score_rule *rule, ae_detector **out, ae_error *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for a detector");
    (*out)->rule = *rule;
    return AE_OK;
}

void ae_detector_free(ae_detector *d)
{
    if (d) {
        free(d->reference);
        free(d);
    }
}

const ae_score_rule *ae_detector_rule(const ae_detector *d) { return &d->rule; }

void ae_detector_set_rule(ae_detector *d, const ae_score_rule *rule) { d->rule = *rule; }

int ae_detector_ready(const ae_detector *d)
{
    if (d->rule.kind == AE_SCORE_LATENT_KNN)
        return d->num_ref > 0;
    if (d->rule.kind == AE_SCORE_COMBINED)
        return d->num_ref > 0 && d->calibrated;
    return 1;
}

static int knn_k(const ae_detector *d)
{
    double k = round(d->rule.knn_percent / 100.0 * (double)d->num_ref);
    return k < 1 ? 1 : (int)k;
}

static int compare_sizes(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

ae_status ae_detector_set_reference(ae_detector *d, const float *latents, size_t n, int dim,
                                    uint64_t seed, ae_error *err)
{
    if (n == 0 || dim < 1)
        return ae_fail(err, AE_ERR_USAGE, "no training latents for the detector's reference");
    size_t keep = n < AE_DETECTOR_MAX_REFERENCE ? n : AE_DETECTOR_MAX_REFERENCE;
    size_t *order = malloc(n * sizeof *order);
    float *ref = malloc(keep * (size_t)dim * sizeof *ref);
    if (!order || !ref) {
        free(order), free(ref);
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for %zu reference latents", keep);
    }
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    if (keep < n) { /* a seeded sample, kept in data order */
        ae_rng rng;
        ae_rng_seed(&rng, seed);
        ae_shuffle_sizes(&rng, order, n);
        qsort(order, keep, sizeof *order, compare_sizes);
    }
    for (size_t i = 0; i < keep; i++)
        memcpy(ref + i * (size_t)dim, latents + order[i] * (size_t)dim, (size_t)dim * sizeof *ref);
    free(order);
    free(d->reference);
    d->reference = ref, d->num_ref = keep, d->dim = dim, d->calibrated = 0;
    return AE_OK;
}

static float relative_error(const ae_config *cfg, const float *x, float mse)
{
    return (float)(mse / (ae_image_detail(x, cfg->height, cfg->width, cfg->channels) + DETAIL_FLOOR));
}

static void mean_sd(const float *v, size_t n, double *mean, double *sd)
{
    double s = 0, ss = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    *mean = s / (double)n;
    for (size_t i = 0; i < n; i++)
        ss += (v[i] - *mean) * (v[i] - *mean);
    *sd = sqrt(ss / (double)n);
    if (!(*sd > 0)) /* every value equal: standardize by 1 rather than by 0 */
        *sd = 1;
}

ae_status ae_detector_calibrate(ae_detector *d, const ae_config *cfg, const float *inputs,
                                const float *mse, const float *recon, const float *latents,
                                size_t n, ae_error *err)
{
    (void)recon;
    if (d->rule.kind != AE_SCORE_COMBINED)
        return AE_OK;
    if (n == 0 || d->num_ref == 0)
        return ae_fail(err, AE_ERR_USAGE, "calibrating the combined score needs images and a reference");
    size_t per_image = (size_t)cfg->height * (size_t)cfg->width * (size_t)cfg->channels;
    float *v = malloc(2 * n * sizeof *v);
    if (!v)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for %zu calibration scores", n);
    for (size_t i = 0; i < n; i++)
        v[i] = relative_error(cfg, inputs + i * per_image, mse[i]);
    ae_status s = ae_knn_mean_distance(latents, n, d->reference, d->num_ref, d->dim, knn_k(d), v + n, err);
    if (s == AE_OK) {
        mean_sd(v, n, &d->calibration[0], &d->calibration[1]);
        mean_sd(v + n, n, &d->calibration[2], &d->calibration[3]);
        d->calibrated = 1;
    }
    free(v);
    return s;
}

/* The rules that read the reconstruction (max, topk, ssim), one image at a
 * time; map and scratch hold one image's map and what making it needs. */
static float map_score(const ae_detector *d, const ae_config *cfg, const float *x, const float *r, float *map,
                       float *scratch)
{
    int h = cfg->height, w = cfg->width, c = cfg->channels;
    size_t hw = (size_t)h * (size_t)w;
    if (d->rule.kind == AE_SCORE_SSIM) {
        ae_ssim_map(x, r, h, w, c, AE_SSIM_WINDOW, map, scratch);
        double s = 0;
        for (size_t p = 0; p < hw; p++)
            s += map[p];
        return (float)(s / (double)hw);
    }
    ae_squared_error_map(x, r, h, w, c, map);
    ae_gaussian_blur(map, h, w, d->rule.sigma, scratch);
    return d->rule.kind == AE_SCORE_MAX ? ae_map_max(map, hw) : ae_map_top_mean(map, hw, d->rule.top_percent);
}

/* Each image on its own, on the library's threads: the map rules, each
 * thread with its map and scratch, or relative (and combined's half of it). */
static ae_status per_image_scores(const ae_detector *d, const ae_config *cfg, const float *inputs,
                                  const float *recon, const float *mse, int n, float *scores, ae_error *err)
{
    size_t hw = (size_t)cfg->height * (size_t)cfg->width, per_image = hw * (size_t)cfg->channels;
    int maps = ae_score_rule_uses_recon(&d->rule), failed = 0;
#pragma omp parallel num_threads(ae_get_num_threads())
    {
        float *map = maps ? malloc((hw + ae_ssim_scratch_floats(cfg->height, cfg->width)) * sizeof *map) : NULL;
        if (maps && !map) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int i = 0; i < n; i++) {
            const float *x = inputs + (size_t)i * per_image;
            if (!maps)
                scores[i] = relative_error(cfg, x, mse[i]);
            else if (map)
                scores[i] = map_score(d, cfg, x, recon + (size_t)i * per_image, map, map + hw);
        }
        free(map);
    }
    return failed ? ae_fail(err, AE_ERR_NOMEM, "out of memory for error maps") : AE_OK;
}

ae_status ae_detector_score(const ae_detector *d, const ae_config *cfg, const float *inputs,
                            const float *recon, const float *latents, const float *mse, int n,
                            float *scores, ae_error *err)
{
    char name[32];
    if (!ae_detector_ready(d))
        return ae_fail(err, AE_ERR_USAGE, "the %s score needs reference latents from training: train with "
                                          "--score %s, or choose another --score",
                       ae_score_rule_name(&d->rule, name, sizeof name), name);
    if ((ae_score_rule_uses_recon(&d->rule) && !recon) || (ae_score_rule_uses_latent(&d->rule) && !latents))
        return ae_fail(err, AE_ERR_USAGE, "the detector needs the reconstruction and the latents");
    if (d->rule.kind == AE_SCORE_MSE) {
        memcpy(scores, mse, (size_t)n * sizeof *scores);
        return AE_OK;
    }
    float *knn = NULL;
    if (ae_score_rule_uses_latent(&d->rule)) {
        if (!(knn = malloc((size_t)(n ? n : 1) * sizeof *knn)))
            return ae_fail(err, AE_ERR_NOMEM, "out of memory for %d scores", n);
        ae_status s = ae_knn_mean_distance(latents, (size_t)n, d->reference, d->num_ref, d->dim, knn_k(d), knn, err);
        if (s != AE_OK) {
            free(knn);
            return s;
        }
    }
    ae_status s = AE_OK;
    if (d->rule.kind == AE_SCORE_LATENT_KNN)
        memcpy(scores, knn, (size_t)n * sizeof *scores);
    else
        s = per_image_scores(d, cfg, inputs, recon, mse, n, scores, err);
    if (s == AE_OK && d->rule.kind == AE_SCORE_COMBINED) {
        const double *c = d->calibration;
        for (int i = 0; i < n; i++)
            scores[i] = (float)((scores[i] - c[0]) / c[1] + (knn[i] - c[2]) / c[3]);
    }
    free(knn);
    return s;
}

void ae_detector_pixel_map(const ae_detector *d, const ae_config *cfg, const float *input,
                           const float *recon, float *map, float *scratch)
{
    int h = cfg->height, w = cfg->width, c = cfg->channels;
    if (d->rule.kind == AE_SCORE_SSIM)
        ae_ssim_map(input, recon, h, w, c, AE_SSIM_WINDOW, map, scratch);
    else {
        ae_squared_error_map(input, recon, h, w, c, map);
        ae_gaussian_blur(map, h, w, d->rule.kind == AE_SCORE_MSE ? 0 : d->rule.sigma, scratch);
    }
}

ae_status ae_detector_to_meta(const ae_detector *d, ae_meta *meta, ae_error *err)
{
    char name[32];
    ae_status s;
    if ((s = ae_meta_set_str(meta, AE_KEY_SCORE_RULE, ae_score_rule_name(&d->rule, name, sizeof name), err)) ||
        (s = ae_meta_set_float(meta, AE_KEY_SCORE_SIGMA, d->rule.sigma, err)))
        return s;
    if (d->num_ref &&
        (s = ae_meta_set_floats(meta, AE_KEY_SCORE_REFERENCE, d->reference, d->num_ref * (size_t)d->dim, err)))
        return s;
    if (d->calibrated && (s = ae_meta_set_doubles(meta, AE_KEY_SCORE_CALIBRATION, d->calibration, 4, err)))
        return s;
    return AE_OK;
}

ae_status ae_detector_from_meta(const ae_meta *meta, int latent_dim, const char *name,
                                ae_detector **out, ae_error *err)
{
    *out = NULL;
    ae_score_rule rule;
    const char *text = ae_meta_get_str(meta, AE_KEY_SCORE_RULE);
    if (ae_score_rule_parse(text ? text : "mse", &rule, err) != AE_OK)
        return ae_fail(err, AE_ERR_FORMAT, "%s: bad %s '%s'", name, AE_KEY_SCORE_RULE, text);
    double sigma;
    if (ae_meta_get_float(meta, AE_KEY_SCORE_SIGMA, &sigma)) {
        if (!(sigma >= 0 && sigma <= 8))
            return ae_fail(err, AE_ERR_FORMAT, "%s: %s = %g is outside [0, 8]", name, AE_KEY_SCORE_SIGMA, sigma);
        rule.sigma = sigma;
    }
    ae_detector *d;
    ae_status s = ae_detector_create(&rule, &d, err);
    if (s != AE_OK)
        return s;
    size_t n = 0, nc = 0;
    const float *ref = ae_meta_get_floats(meta, AE_KEY_SCORE_REFERENCE, &n);
    const double *cal = ae_meta_get_doubles(meta, AE_KEY_SCORE_CALIBRATION, &nc);
    if (ref) {
        size_t count = latent_dim > 0 ? n / (size_t)latent_dim : 0;
        int finite = 1;
        for (size_t i = 0; i < n; i++)
            finite &= isfinite(ref[i]);
        if (count == 0 || n % (size_t)latent_dim || count > AE_DETECTOR_MAX_REFERENCE || !finite) {
            ae_detector_free(d);
            return ae_fail(err, AE_ERR_FORMAT, "%s: %s holds %zu values, not up to %d finite latents of %d",
                           name, AE_KEY_SCORE_REFERENCE, n, AE_DETECTOR_MAX_REFERENCE, latent_dim);
        }
        if ((s = ae_detector_set_reference(d, ref, count, latent_dim, 0, err)) != AE_OK) {
            ae_detector_free(d);
            return s;
        }
    }
    if (cal) {
        if (nc != 4 || !isfinite(cal[0]) || !isfinite(cal[2]) || !(cal[1] > 0) || !(cal[3] > 0) ||
            !isfinite(cal[1]) || !isfinite(cal[3])) {
            ae_detector_free(d);
            return ae_fail(err, AE_ERR_FORMAT, "%s: %s must be 4 finite numbers with positive spreads", name,
                           AE_KEY_SCORE_CALIBRATION);
        }
        memcpy(d->calibration, cal, sizeof d->calibration);
        d->calibrated = 1;
    }
    *out = d;
    return AE_OK;
}
