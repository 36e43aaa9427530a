/* The one scoring path: every caller (validation loss, `score`, `encode`'s
 * companion errors, the errors stored in a model, the demo) goes through
 * ae_score_loader_by, so the same image always gets the same score. */
#include "aedet/train.h"

#include <stdlib.h>
#include <string.h>

ae_status ae_score_batch(ae_model *m, const ae_detector *d, const float *x, int n, float *scores, float *recon,
                         ae_error *err)
{
    const ae_score_rule *rule = d ? ae_detector_rule(d) : NULL;
    if (!rule || rule->kind == AE_SCORE_MSE)
        return ae_model_score(m, x, n, scores, recon, err);
    if (ae_score_rule_uses_recon(rule) && !recon)
        return ae_fail(err, AE_ERR_USAGE, "the score rule reads the reconstruction: pass a buffer for it");
    if (n < 1 || n > ae_model_max_batch(m))
        return ae_fail(err, AE_ERR_USAGE, "%d images to score, the model takes 1 to %d", n, ae_model_max_batch(m));
    /* The whole batch at once: the model scores a few images at a time far
     * slower (measured: 1.7x the time at 4 images a call), more than the
     * rule gains from finding them in cache. */
    float *mse = malloc((size_t)n * sizeof *mse);
    if (!mse)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for %d errors", n);
    ae_status s = ae_model_score(m, x, n, mse, recon, err);
    if (s == AE_OK) /* the latents of this score stay in the model until the next */
        s = ae_detector_score(d, ae_model_config(m), x, recon, ae_model_latent(m), mse, n, scores, err);
    free(mse);
    return s;
}

ae_status ae_score_loader_by(ae_model *m, const ae_detector *d, ae_loader *l, int batch_size,
                             float *scores, size_t *items, ae_batch_visitor on_batch, void *user,
                             ae_error *err)
{
    const ae_config *c = ae_model_config(m);
    if (batch_size < 1 || batch_size > ae_model_max_batch(m))
        batch_size = ae_model_max_batch(m);
    const ae_score_rule *rule = d ? ae_detector_rule(d) : NULL;
    int need_recon = on_batch || (rule && ae_score_rule_uses_recon(rule));
    size_t per_image = (size_t)c->height * (size_t)c->width * (size_t)c->channels;
    float *x = ae_alloc_floats((size_t)batch_size * per_image);
    float *recon = need_recon ? ae_alloc_floats((size_t)batch_size * per_image) : NULL;
    if (!x || (need_recon && !recon)) {
        ae_free_floats(x);
        ae_free_floats(recon);
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for a batch");
    }
    ae_status s = ae_loader_start(l, batch_size, 0, 0, err);
    size_t done = 0;
    ae_batch b;
    while (s == AE_OK && (s = ae_loader_next(l, &b, err)) == AE_OK && b.count > 0) {
        ae_pixels_to_float(b.pixels, (size_t)b.count * per_image, x);
        s = ae_score_batch(m, d, x, b.count, scores + done, recon, err);
        if (s == AE_OK && on_batch)
            s = on_batch(user, &b, x, recon, scores + done, err);
        if (items)
            for (int i = 0; i < b.count; i++)
                items[done + (size_t)i] = b.items[i];
        done += (size_t)b.count;
    }
    ae_free_floats(x);
    ae_free_floats(recon);
    return s;
}

ae_status ae_score_loader(ae_model *m, ae_loader *l, int batch_size, float *errors, size_t *items,
                          ae_batch_visitor on_batch, void *user, ae_error *err)
{
    return ae_score_loader_by(m, NULL, l, batch_size, errors, items, on_batch, user, err);
}

/* What ae_detector_fit gathers from one pass over a loader. */
typedef struct {
    ae_model *model;
    size_t done, per_image;
    int dim;
    float *latents, *inputs, *mse; /* inputs and mse only for calibration */
} fit_pass;

static ae_status gather(void *user, const ae_batch *b, const float *input, const float *recon,
                        const float *errors, ae_error *err)
{
    (void)recon;
    (void)err;
    fit_pass *p = user;
    size_t n = (size_t)b->count;
    memcpy(p->latents + p->done * (size_t)p->dim, ae_model_latent(p->model), n * (size_t)p->dim * sizeof(float));
    if (p->inputs) {
        memcpy(p->inputs + p->done * p->per_image, input, n * p->per_image * sizeof(float));
        memcpy(p->mse + p->done, errors, n * sizeof(float));
    }
    p->done += n;
    return AE_OK;
}

/* One pass over l keeping every latent (and, with keep_inputs, the inputs
 * and errors: held-out sets are small next to a training set). */
static ae_status gather_pass(ae_model *m, ae_loader *l, int batch_size, int keep_inputs, fit_pass *p,
                             ae_error *err)
{
    const ae_config *c = ae_model_config(m);
    size_t n = ae_loader_count(l);
    *p = (fit_pass){m, 0, (size_t)c->height * (size_t)c->width * (size_t)c->channels, c->latent_dim, NULL, NULL, NULL};
    size_t latent_floats, input_floats = 0;
    if (!ae_mul_size(n, (size_t)c->latent_dim, &latent_floats) ||
        (keep_inputs && !ae_mul_size(n, p->per_image, &input_floats)))
        return ae_fail(err, AE_ERR_NOMEM, "%zu images are too many to calibrate on", n);
    p->latents = malloc((latent_floats ? latent_floats : 1) * sizeof(float));
    if (keep_inputs) {
        p->inputs = malloc((input_floats ? input_floats : 1) * sizeof(float));
        p->mse = malloc((n ? n : 1) * sizeof(float));
    }
    if (!p->latents || (keep_inputs && (!p->inputs || !p->mse)))
        return ae_fail(err, AE_ERR_NOMEM, "out of memory to calibrate the detector on %zu images", n);
    float *scores = malloc((n ? n : 1) * sizeof *scores);
    if (!scores)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for %zu scores", n);
    ae_status s = ae_score_loader_by(m, NULL, l, batch_size, scores, NULL, gather, p, err);
    free(scores);
    return s;
}

static void fit_pass_free(fit_pass *p)
{
    free(p->latents);
    free(p->inputs);
    free(p->mse);
}

ae_status ae_detector_fit(ae_detector *d, ae_model *m, ae_loader *train, ae_loader *held_out,
                          int batch_size, uint64_t seed, ae_error *err)
{
    ae_score_rule rule = *ae_detector_rule(d), combined;
    ae_score_rule_init(&combined, AE_SCORE_COMBINED);
    combined.knn_percent = rule.knn_percent;
    ae_detector_set_rule(d, &combined); /* calibrates only a combined rule */
    fit_pass tp, hp = {0};
    ae_status s = gather_pass(m, train, batch_size, 0, &tp, err);
    if (s == AE_OK)
        s = ae_detector_set_reference(d, tp.latents, tp.done, tp.dim, seed, err);
    if (s == AE_OK) {
        ae_loader *cal = held_out && ae_loader_count(held_out) ? held_out : train;
        s = gather_pass(m, cal, batch_size, 1, &hp, err);
        if (s == AE_OK)
            s = ae_detector_calibrate(d, ae_model_config(m), hp.inputs, hp.mse, NULL, hp.latents, hp.done, err);
    }
    ae_detector_set_rule(d, &rule);
    fit_pass_free(&tp);
    fit_pass_free(&hp);
    return s;
}

ae_status ae_mean_error(ae_model *m, ae_loader *l, int batch_size, double *mean, ae_error *err)
{
    size_t n = ae_loader_count(l);
    float *errors = malloc((n ? n : 1) * sizeof *errors);
    if (!errors)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for %zu errors", n);
    ae_status s = ae_score_loader(m, l, batch_size, errors, NULL, NULL, NULL, err);
    if (s == AE_OK) {
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += errors[i];
        *mean = n ? sum / (double)n : 0.0;
    }
    free(errors);
    return s;
}
