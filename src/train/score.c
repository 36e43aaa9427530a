/* The one scoring path: every caller (validation loss, `score`, `encode`'s
 * companion errors, the errors stored in a model, the demo) goes through
 * ae_score_loader, so the same image always gets the same score. */
#include "aedet/train.h"

#include <stdlib.h>

ae_status ae_score_loader(ae_model *m, ae_loader *l, int batch_size, float *errors,
                          size_t *items, ae_batch_visitor on_batch, void *user, ae_error *err)
{
    const ae_config *c = ae_model_config(m);
    if (batch_size < 1 || batch_size > ae_model_max_batch(m))
        batch_size = ae_model_max_batch(m);
    size_t per_image = (size_t)c->height * (size_t)c->width * (size_t)c->channels;
    float *x = ae_alloc_floats((size_t)batch_size * per_image);
    float *recon = on_batch ? ae_alloc_floats((size_t)batch_size * per_image) : NULL;
    if (!x || (on_batch && !recon)) {
        ae_free_floats(x);
        ae_free_floats(recon);
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for a batch");
    }
    ae_status s = ae_loader_start(l, batch_size, 0, 0, err);
    size_t done = 0;
    ae_batch b;
    while (s == AE_OK && (s = ae_loader_next(l, &b, err)) == AE_OK && b.count > 0) {
        ae_pixels_to_float(b.pixels, (size_t)b.count * per_image, x);
        s = ae_model_score(m, x, b.count, errors + done, recon, err);
        if (s == AE_OK && on_batch)
            s = on_batch(user, &b, x, recon, errors + done, err);
        if (items)
            for (int i = 0; i < b.count; i++)
                items[done + (size_t)i] = b.items[i];
        done += (size_t)b.count;
    }
    ae_free_floats(x);
    ae_free_floats(recon);
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
