/* Running the model: forward (whole, encoder or decoder), loss, backward, Adam,
 * the checked training step, and the one scoring path. Nothing here allocates. */
#include "nn/model.h"

#include <math.h>
#include <omp.h>
#include <string.h>

static float *layer_out(ae_model *m, int i) { return m->acts + m->plan.layers[i].act; }

/* Layers [from, to) on n images; layer from reads `in`, the others their predecessor. */
static void run_layers(ae_model *m, int from, int to, const float *in, int n, ae_mode mode)
{
    const ae_config *cfg = &m->cfg;
    for (int i = from; i < to; i++) {
        double start = omp_get_wtime();
        const ae_layer *l = &m->plan.layers[i];
        const float *x = i == from ? in : layer_out(m, i - 1);
        float *y = layer_out(m, i);
        const float *w = m->params + l->kernel, *b = m->params + l->bias;
        size_t count = (size_t)n * l->out_count;
        switch (l->kind) {
        case AE_LAYER_CONV:
            ae_conv2d_forward(y, x, w, b, n, &l->geom, l->out_c, &m->scratch);
            break;
        case AE_LAYER_DECONV:
            ae_deconv2d_forward(y, x, w, b, n, &l->geom, l->in_c, &m->scratch);
            break;
        case AE_LAYER_DENSE:
            ae_dense_forward(y, x, w, b, n, (int)l->in_count, (int)l->out_count);
            break;
        case AE_LAYER_LEAKY:
            ae_leaky_forward(y, x, count, cfg->leaky_slope);
            break;
        case AE_LAYER_SIGMOID:
            ae_sigmoid_forward(y, x, count);
            break;
        case AE_LAYER_BN: {
            size_t pixels = (size_t)l->out_h * l->out_w;
            float *mm = m->state + l->moving_mean, *mv = m->state + l->moving_var;
            if (mode == AE_MODE_TRAIN)
                ae_batchnorm_forward_train(y, x, w, b, mm, mv, m->saved + l->saved,
                                           m->saved + l->saved + l->out_c, n, pixels, l->out_c,
                                           cfg->bn_momentum, cfg->bn_epsilon, &m->scratch);
            else
                ae_batchnorm_forward_infer(y, x, w, b, mm, mv, n, pixels, l->out_c,
                                           cfg->bn_epsilon, &m->scratch);
            break;
        }
        }
        m->forward_s[i] += omp_get_wtime() - start;
    }
}

static ae_status check_batch(const ae_model *m, int n, const char *what, ae_error *err)
{
    if (n < 1 || n > m->max_batch)
        return ae_fail(err, AE_ERR_USAGE, "%s: %d images: must be 1..%d (the model's batch size)",
                       what, n, m->max_batch);
    return AE_OK;
}

ae_status ae_model_forward(ae_model *m, const float *x, int n, ae_mode mode, ae_error *err)
{
    ae_status st = check_batch(m, n, "forward", err);
    if (st == AE_OK)
        run_layers(m, 0, m->plan.num_layers, x, n, mode);
    return st;
}

float ae_model_loss(const ae_model *m, const float *x, int n, float *per_image)
{
    size_t d = m->plan.layers[m->plan.num_layers - 1].out_count;
    return (float)ae_mse_forward(ae_model_output(m), x, n, d, per_image);
}

void ae_model_backward(ae_model *m, const float *x, int n)
{
    const ae_plan *p = &m->plan;
    const ae_layer *last = &p->layers[p->num_layers - 1];
    float *dy = m->grad_a, *spare = m->grad_b;
    double start = omp_get_wtime();
    ae_mse_backward(dy, layer_out(m, p->num_layers - 1), x, n, last->out_count);
    for (int i = p->num_layers - 1; i >= 0; i--) {
        if (i < p->num_layers - 1)
            start = omp_get_wtime();
        const ae_layer *l = &p->layers[i];
        const float *in = i > 0 ? layer_out(m, i - 1) : x;
        const float *w = m->params + l->kernel;
        float *dw = m->grads + l->kernel, *db = m->grads + l->bias;
        float *dx = i > 0 ? spare : NULL; /* nothing needs the images' gradient */
        size_t count = (size_t)n * l->out_count;
        switch (l->kind) {
        case AE_LAYER_SIGMOID: /* element-wise layers run in place */
            ae_sigmoid_backward(dy, dy, layer_out(m, i), count);
            m->backward_s[i] += omp_get_wtime() - start;
            continue;
        case AE_LAYER_LEAKY:
            ae_leaky_backward(dy, dy, in, count, m->cfg.leaky_slope);
            m->backward_s[i] += omp_get_wtime() - start;
            continue;
        case AE_LAYER_BN:
            ae_batchnorm_backward(dy, dw, db, dy, in, w, m->saved + l->saved,
                                  m->saved + l->saved + l->out_c, n,
                                  (size_t)l->out_h * l->out_w, l->out_c, &m->scratch);
            m->backward_s[i] += omp_get_wtime() - start;
            continue;
        case AE_LAYER_CONV:
            ae_conv2d_backward(dx, dw, db, dy, in, w, n, &l->geom, l->out_c, &m->scratch);
            break;
        case AE_LAYER_DECONV:
            ae_deconv2d_backward(dx, dw, db, dy, in, w, n, &l->geom, l->in_c, &m->scratch);
            break;
        case AE_LAYER_DENSE:
            ae_dense_backward(dx, dw, db, dy, in, w, n, (int)l->in_count, (int)l->out_count);
            break;
        }
        m->backward_s[i] += omp_get_wtime() - start;
        spare = dy;
        dy = dx;
    }
}

void ae_adam_config_init(ae_adam_config *cfg, float learning_rate, int decay_epochs)
{
    cfg->learning_rate = learning_rate;
    cfg->beta1 = 0.9f;
    cfg->beta2 = 0.999f;
    cfg->epsilon = 1e-7f;
    cfg->decay = decay_epochs > 0 ? learning_rate / (float)decay_epochs : 0.0f;
}

/* Keras' legacy time decay, with the iteration count before this step. */
static size_t adam(ae_model *m, const ae_adam_config *cfg, int commit)
{
    double lr_t = cfg->learning_rate / (1.0 + (double)cfg->decay * (double)m->iterations);
    return ae_adam_update(m->params, m->adam_m, m->adam_v, m->grads, m->plan.num_params, lr_t,
                          cfg->beta1, cfg->beta2, cfg->epsilon, (long long)m->iterations + 1,
                          commit);
}

void ae_model_adam_step(ae_model *m, const ae_adam_config *cfg)
{
    adam(m, cfg, 1);
    m->iterations++;
}

static size_t count_not_finite(const float *v, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += !((v[i] - v[i]) == 0.0f);
    return bad;
}

ae_status ae_model_train_step(ae_model *m, const ae_adam_config *cfg, const float *x, int n,
                              float *loss, ae_error *err)
{
    ae_status st = check_batch(m, n, "training step", err);
    if (st != AE_OK)
        return st;
    const long long step = (long long)m->iterations + 1;
    size_t state_bytes = m->plan.num_state * sizeof(float);
    /* The forward moves BatchNorm's statistics: keep them to undo a bad step. */
    memcpy(m->state_backup, m->state, state_bytes);
    run_layers(m, 0, m->plan.num_layers, x, n, AE_MODE_TRAIN);
    float value = ae_model_loss(m, x, n, NULL);
    if (loss)
        *loss = value;
    const char *bad = NULL;
    size_t count = 0;
    if (!isfinite(value)) {
        bad = "the loss";
    } else {
        ae_model_backward(m, x, n);
        if ((count = count_not_finite(m->grads, m->plan.num_params)) > 0)
            bad = "the gradients";
        else if ((count = adam(m, cfg, 0)) > 0)
            bad = "the updated weights";
    }
    if (bad) {
        memcpy(m->state, m->state_backup, state_bytes);
        if (count)
            return ae_fail(err, AE_ERR_NUMERIC,
                           "training step %lld: %s would hold %zu NaN or Inf values; weights "
                           "left as before the step (try a lower learning rate)",
                           step, bad, count);
        return ae_fail(err, AE_ERR_NUMERIC,
                       "training step %lld: the loss is %g; weights left as before the step "
                       "(check the input for NaN or Inf, or lower the learning rate)",
                       step, (double)value);
    }
    adam(m, cfg, 1);
    m->iterations++;
    return AE_OK;
}

ae_status ae_model_score(ae_model *m, const float *x, int n, float *errors, float *recon,
                         ae_error *err)
{
    ae_status st = ae_model_forward(m, x, n, AE_MODE_INFER, err);
    if (st != AE_OK)
        return st;
    ae_model_loss(m, x, n, errors);
    if (recon)
        memcpy(recon, ae_model_output(m),
               (size_t)n * m->plan.layers[m->plan.num_layers - 1].out_count * sizeof(float));
    return AE_OK;
}

ae_status ae_model_encode(ae_model *m, const float *x, int n, float *latent, ae_error *err)
{
    ae_status st = check_batch(m, n, "encode", err);
    if (st != AE_OK)
        return st;
    run_layers(m, 0, m->plan.first_decoder, x, n, AE_MODE_INFER);
    memcpy(latent, ae_model_latent(m), (size_t)n * (size_t)m->cfg.latent_dim * sizeof(float));
    return AE_OK;
}

ae_status ae_model_decode(ae_model *m, const float *latent, int n, float *out, ae_error *err)
{
    ae_status st = check_batch(m, n, "decode", err);
    if (st != AE_OK)
        return st;
    /* The latent goes where the encoder would have left it, so that the layer
     * outputs stay consistent for inspection. */
    float *z = layer_out(m, m->plan.first_decoder - 1);
    memmove(z, latent, (size_t)n * (size_t)m->cfg.latent_dim * sizeof(float));
    run_layers(m, m->plan.first_decoder, m->plan.num_layers, z, n, AE_MODE_INFER);
    memcpy(out, ae_model_output(m),
           (size_t)n * m->plan.layers[m->plan.num_layers - 1].out_count * sizeof(float));
    return AE_OK;
}
