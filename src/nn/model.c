/* The model object: creation from a plan (every buffer allocated once), the
 * tensor table, Keras' initial values and the accessors. */
#include "nn/kernels/direct.h" /* ae_amx_thread_bytes, ae_avx512bf16_thread_bytes */
#include "nn/kernels/isa.h"
#include "nn/model.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int alloc_floats(float **p, size_t count)
{
    *p = ae_alloc_floats(count);
    return *p != NULL;
}

ae_status ae_model_create(const ae_config *cfg, int max_batch, ae_model **out, ae_error *err)
{
    *out = NULL;
    ae_model *m = calloc(1, sizeof *m);
    if (!m)
        return ae_fail(err, AE_ERR_NOMEM, "model: out of memory for the model object");
    ae_status st = ae_plan_make(&m->plan, cfg, max_batch, ae_get_num_threads(), err);
    if (st != AE_OK) {
        free(m);
        return st;
    }
    m->cfg = *cfg;
    m->max_batch = max_batch;
    const ae_plan *p = &m->plan;
    ae_scratch *s = &m->scratch;
    s->num_threads = p->threads;
    s->isa = p->isa;
    s->col_floats = p->col_floats;
    s->pad_floats = p->pad_floats;
    s->wt_floats = p->wt_floats;
    s->slot_floats = p->slot_floats;
    s->dslot_doubles = p->dslot_doubles;
    s->col = calloc((size_t)p->threads, sizeof *s->col);
    s->pad = calloc((size_t)p->threads, sizeof *s->pad);
    s->dslots = calloc((p->dslot_doubles ? p->dslot_doubles : 1) *
                           ((size_t)max_batch + 2 + 2 * (size_t)p->threads),
                       sizeof(double));
    m->image_sums = calloc((size_t)max_batch, sizeof *m->image_sums);
    int ok = s->col && s->pad && s->dslots && m->image_sums && alloc_floats(&s->wt, p->wt_floats) && alloc_floats(&m->params, p->num_params) &&
             alloc_floats(&m->grads, p->num_params) && alloc_floats(&m->adam_m, p->num_params) &&
             alloc_floats(&m->adam_v, p->num_params) && alloc_floats(&m->state, p->num_state) &&
             alloc_floats(&m->state_backup, p->num_state) &&
             alloc_floats(&m->saved, p->num_saved) && alloc_floats(&m->acts, p->act_floats) &&
             alloc_floats(&m->grad_a, p->grad_floats) &&
             alloc_floats(&m->grad_b, p->grad_floats) &&
             alloc_floats(&s->slots, p->slot_floats * (size_t)max_batch) &&
             alloc_floats(&s->channel, p->channel_floats);
    for (int t = 0; ok && t < p->threads; t++)
        ok = alloc_floats(&s->col[t], p->col_floats) && alloc_floats(&s->pad[t], p->pad_floats);
    /* the message first: m (and p in it) goes with ae_model_free */
    if (ok && p->threads > 1 && !(s->pool = ae_pool_create(p->threads))) {
        st = ae_fail(err, AE_ERR_NOMEM, "model: could not start %d threads", p->threads);
        ae_model_free(m);
        return st;
    }
    if (!ok) {
        st = ae_fail(err, AE_ERR_NOMEM, "model: out of memory allocating %.1f MiB",
                     (double)p->memory_bytes / (1 << 20));
        ae_model_free(m);
        return st;
    }
    ae_model_init_weights(m, 0);
    *out = m;
    return AE_OK;
}

void ae_model_free(ae_model *m)
{
    if (!m)
        return;
    for (int t = 0; t < m->scratch.num_threads; t++) {
        if (m->scratch.col)
            ae_free_floats(m->scratch.col[t]);
        if (m->scratch.pad)
            ae_free_floats(m->scratch.pad[t]);
    }
    ae_pool_free(m->scratch.pool);
    free(m->scratch.col);
    free(m->scratch.pad);
    ae_free_floats(m->scratch.wt);
    ae_free_floats(m->scratch.slots);
    free(m->scratch.dslots);
    free(m->image_sums);
    ae_free_floats(m->scratch.channel);
    ae_free_floats(m->params);
    ae_free_floats(m->grads);
    ae_free_floats(m->adam_m);
    ae_free_floats(m->adam_v);
    ae_free_floats(m->state);
    ae_free_floats(m->state_backup);
    ae_free_floats(m->saved);
    ae_free_floats(m->acts);
    ae_free_floats(m->grad_a);
    ae_free_floats(m->grad_b);
    free(m->view);
    free(m);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

void ae_model_init_weights(ae_model *m, uint64_t seed)
{
    ae_rng rng;
    ae_rng_seed(&rng, seed);
    for (int i = 0; i < m->plan.num_tensors; i++) {
        const ae_tensor_info *t = &m->plan.tensors[i];
        float *v = (t->is_state ? m->state : m->params) + t->offset;
        if (ends_with(t->name, ".kernel")) {
            /* Keras' fans: the receptive field times the last two dimensions. */
            double fan_in, fan_out;
            if (t->ndim == 2) {
                fan_in = t->shape[0];
                fan_out = t->shape[1];
            } else {
                double rf = (double)t->shape[0] * t->shape[1];
                fan_in = rf * t->shape[2];
                fan_out = rf * t->shape[3];
            }
            double limit = sqrt(6.0 / (fan_in + fan_out));
            for (size_t j = 0; j < t->size; j++)
                v[j] = (float)((2.0 * ae_rng_uniform(&rng) - 1.0) * limit);
        } else {
            float value = ends_with(t->name, ".gamma") || ends_with(t->name, ".moving_var");
            for (size_t j = 0; j < t->size; j++)
                v[j] = value;
        }
    }
    size_t n = m->plan.num_params;
    memset(m->grads, 0, n * sizeof(float));
    memset(m->adam_m, 0, n * sizeof(float));
    memset(m->adam_v, 0, n * sizeof(float));
    m->iterations = 0;
}

const ae_config *ae_model_config(const ae_model *m) { return &m->cfg; }
int ae_model_max_batch(const ae_model *m) { return m->max_batch; }
size_t ae_model_num_params(const ae_model *m) { return m->plan.num_params; }
float *ae_model_params(ae_model *m) { return m->params; }
float *ae_model_grads(ae_model *m) { return m->grads; }
float *ae_model_adam_m(ae_model *m) { return m->adam_m; }
float *ae_model_adam_v(ae_model *m) { return m->adam_v; }
size_t ae_model_num_state(const ae_model *m) { return m->plan.num_state; }
float *ae_model_state(ae_model *m) { return m->state; }
int64_t ae_model_iterations(const ae_model *m) { return m->iterations; }
void ae_model_set_iterations(ae_model *m, int64_t iterations) { m->iterations = iterations; }
int ae_model_num_tensors(const ae_model *m) { return m->plan.num_tensors; }
size_t ae_model_memory_bytes(const ae_model *m)
{
    /* the bf16 kernels' thread-local buffers (direct_amx.c, direct_bf16.c) */
    const int isa = m->scratch.isa;
    size_t bf16 = isa == AE_ISA_AMX_BF16      ? ae_amx_thread_bytes()
                  : isa == AE_ISA_AVX512_BF16 ? ae_avx512bf16_thread_bytes()
                                              : 0;
    return m->plan.memory_bytes + bf16 * m->plan.threads;
}
int ae_model_num_layers(const ae_model *m) { return m->plan.num_layers; }

const ae_tensor_info *ae_model_tensor(const ae_model *m, int i)
{
    return i >= 0 && i < m->plan.num_tensors ? &m->plan.tensors[i] : NULL;
}

int ae_model_find_tensor(const ae_model *m, const char *name)
{
    for (int i = 0; i < m->plan.num_tensors; i++)
        if (strcmp(m->plan.tensors[i].name, name) == 0)
            return i;
    return -1;
}

const char *ae_model_layer_name(const ae_model *m, int i)
{
    return i >= 0 && i < m->plan.num_layers ? m->plan.layers[i].name : NULL;
}

/* Layer i's output where the model stores it. */
static const float *stored_output(const ae_model *m, int i)
{
    assert(m->plan.layers[i].stored);
    return m->acts + m->plan.layers[i].act;
}

const float *ae_model_layer_output(ae_model *m, int i, size_t *count_per_image)
{
    if (i < 0 || i >= m->plan.num_layers)
        return NULL;
    if (count_per_image)
        *count_per_image = m->plan.layers[i].out_count;
    if (!m->plan.layers[i].stored) /* recomputed into the view buffer */
        return ae_model_view(m, i);
    return stored_output(m, i);
}

/* The model's output and the latent are always stored (model_plan.c). */
const float *ae_model_output(const ae_model *m)
{
    return stored_output(m, m->plan.num_layers - 1);
}

const float *ae_model_latent(const ae_model *m)
{
    return stored_output(m, m->plan.first_decoder - 1);
}

int ae_model_layer_times(const ae_model *m, int i, double *forward_s, double *backward_s)
{
    if (i < 0 || i >= m->plan.num_layers)
        return -1;
    if (forward_s)
        *forward_s = m->forward_s[i];
    if (backward_s)
        *backward_s = m->backward_s[i];
    return 0;
}

void ae_model_reset_layer_times(ae_model *m)
{
    memset(m->forward_s, 0, sizeof m->forward_s);
    memset(m->backward_s, 0, sizeof m->backward_s);
}

const char *ae_model_kernels(const ae_model *m) { return ae_isa_name(m->scratch.isa); }

ae_status ae_model_set_bf16(ae_model *m, int on, ae_error *err)
{
    /* Every vector ISA sizes its scratch alike, so the model can switch. */
    if (!on) {
        if (ae_isa_is_bf16(m->scratch.isa)) /* both bfloat16 kernels need AVX-512 */
            m->plan.isa = m->scratch.isa = AE_ISA_AVX512;
        return AE_OK;
    }
    if (ae_isa_is_bf16(m->plan.isa)) /* already (AEDET_ISA=amx-bf16 or avx512-bf16) */
        return AE_OK;
    const int bf16 = ae_isa_bf16();
    if (bf16 == AE_ISA_PORTABLE)
        return ae_fail(err, AE_ERR_USAGE,
                       "bf16: this CPU or OS has neither AVX512-BF16 (AMD Zen 4 or later, Intel "
                       "Cooper Lake) nor AMX-BF16 tiles (Intel Xeon Sapphire Rapids or later, "
                       "Linux 5.16 or later); float32 runs everywhere");
    /* AEDET_ISA capped the kernels below AVX-512, which both modes build on */
    if (m->plan.isa != AE_ISA_AVX512)
        return ae_fail(err, AE_ERR_USAGE, "bf16: the model runs the %s kernels (AEDET_ISA=%s?)",
                       ae_isa_name(m->plan.isa), ae_isa_name(m->plan.isa));
    m->plan.isa = m->scratch.isa = bf16;
    return AE_OK;
}
