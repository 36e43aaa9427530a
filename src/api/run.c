/* Scores, reconstructions and latents of images in memory, batch by batch
 * through ae_score_batch: the one scoring path that `aedet score`,
 * `encode` and `reconstruct` take, so the numbers are theirs. */
#include "aedet/array.h"
#include "aedet/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    ae_model *model;
    const ae_detector *detector;
    size_t per_image;  /* floats of one image at the model's size */
    int latent_dim;
    float *scores, *recon, *latents; /* the caller's, each may be NULL */
    float *own_scores, *own_recon;   /* one batch's, when the caller's is NULL */
} run_ctx;

static ae_status run_init(run_ctx *r, ae_model *m, const ae_detector *d, float *scores, float *recon,
                          float *latents, ae_error *err)
{
    const ae_config *c = ae_model_config(m);
    size_t batch = (size_t)ae_model_max_batch(m);
    const ae_score_rule *rule = d ? ae_detector_rule(d) : NULL;
    *r = (run_ctx){m, d, (size_t)c->height * (size_t)c->width * (size_t)c->channels, c->latent_dim,
                   scores, recon, latents, NULL, NULL};
    if (!scores && !(r->own_scores = malloc(batch * sizeof(float))))
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for a batch of scores");
    if (!recon && rule && ae_score_rule_uses_recon(rule) && !(r->own_recon = ae_alloc_floats(batch * r->per_image)))
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for a batch of reconstructions");
    return AE_OK;
}

static void run_free(run_ctx *r)
{
    free(r->own_scores);
    ae_free_floats(r->own_recon);
}

/* Images [done, done + n) of the run, x holding them at the model's size. */
static ae_status run_batch(run_ctx *r, const float *x, size_t done, int n, ae_error *err)
{
    float *scores = r->scores ? r->scores + done : r->own_scores;
    float *recon = r->recon ? r->recon + done * r->per_image : r->own_recon;
    ae_status s = ae_score_batch(r->model, r->detector, x, n, scores, recon, err);
    if (s == AE_OK && r->latents) /* the score ran the encoder: its latent is still in the model */
        memcpy(r->latents + done * (size_t)r->latent_dim, ae_model_latent(r->model),
               (size_t)n * (size_t)r->latent_dim * sizeof(float));
    return s;
}

ae_status ae_run_pixels(ae_model *m, const ae_detector *d, const uint8_t *pixels, size_t n, int height,
                        int width, int channels, float *scores, float *recon, float *latents, ae_error *err)
{
    if (!pixels || height < 1 || width < 1 || (channels != 1 && channels != 3))
        return ae_fail(err, AE_ERR_USAGE, "images in memory: want images of at least 1x1 pixels with 1 or 3 "
                       "channels (got %dx%dx%d)", height, width, channels);
    const ae_config *c = ae_model_config(m);
    size_t in_bytes = (size_t)height * (size_t)width * (size_t)channels, batch = (size_t)ae_model_max_batch(m);
    run_ctx r;
    ae_status s = run_init(&r, m, d, scores, recon, latents, err);
    uint8_t *prepared = malloc(batch * r.per_image);
    float *x = ae_alloc_floats(batch * r.per_image);
    if (s == AE_OK && (!prepared || !x))
        s = ae_fail(err, AE_ERR_NOMEM, "out of memory for a batch of %zu images", batch);
    for (size_t done = 0; s == AE_OK && done < n; done += batch) {
        int count = (int)(n - done < batch ? n - done : batch);
        for (int i = 0; s == AE_OK && i < count; i++) {
            ae_image view = {height, width, channels, (uint8_t *)(pixels + (done + (size_t)i) * in_bytes)};
            s = ae_image_prepare(&view, c->height, c->width, c->channels, prepared + (size_t)i * r.per_image, err);
            if (s != AE_OK)
                ae_error_prefix(err, "image %zu", done + (size_t)i);
        }
        if (s == AE_OK) {
            ae_pixels_to_float(prepared, (size_t)count * r.per_image, x);
            s = run_batch(&r, x, done, count, err);
        }
    }
    free(prepared);
    ae_free_floats(x);
    run_free(&r);
    return s;
}

ae_status ae_run_floats(ae_model *m, const ae_detector *d, const float *x, size_t n, float *scores, float *recon,
                        float *latents, ae_error *err)
{
    if (!x && n)
        return ae_fail(err, AE_ERR_USAGE, "no images given");
    size_t batch = (size_t)ae_model_max_batch(m);
    run_ctx r;
    ae_status s = run_init(&r, m, d, scores, recon, latents, err);
    for (size_t i = 0; s == AE_OK && i < n * r.per_image; i++)
        if (!isfinite(x[i]))
            s = ae_fail(err, AE_ERR_DATA, "image %zu holds a NaN or infinite value", i / r.per_image);
    for (size_t done = 0; s == AE_OK && done < n; done += batch) {
        int count = (int)(n - done < batch ? n - done : batch);
        s = run_batch(&r, x + done * r.per_image, done, count, err);
    }
    run_free(&r);
    return s;
}
