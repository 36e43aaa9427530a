/* Internal: the model's layer list, tensor table and buffers (see docs/DESIGN.md). */
#ifndef AEDET_NN_MODEL_H
#define AEDET_NN_MODEL_H

#include "aedet/nn.h"
#include "nn/layers.h"

#define AE_MAX_LAYERS (6 * AE_MAX_FILTERS + 4)
#define AE_MAX_TENSORS (12 * AE_MAX_FILTERS + 6)

typedef enum {
    AE_LAYER_CONV,
    AE_LAYER_DECONV,
    AE_LAYER_DENSE,
    AE_LAYER_LEAKY,
    AE_LAYER_BN,
    AE_LAYER_SIGMOID
} ae_layer_kind;

typedef struct {
    ae_layer_kind kind;
    char name[48];
    int in_h, in_w, in_c;       /* one image's input (Flatten/Reshape are views) */
    int out_h, out_w, out_c;    /* one image's output */
    size_t in_count, out_count; /* floats per image */
    ae_conv_geom geom;          /* CONV / DECONV */
    size_t kernel, bias;        /* parameter offsets: kernel and bias, or BN gamma and beta */
    size_t moving_mean, moving_var; /* state offsets (BN) */
    size_t saved;               /* BN: offset of the batch mean, then invstd (c each) */
    size_t act;                 /* offset of the output in the activation buffer */
    int stored;                 /* 0: LEAKY and most BN, recomputed from the conv's z */
} ae_layer;

/* Everything a config implies, computed with overflow checks before anything
 * is allocated: used by ae_config_check and ae_model_create alike. */
typedef struct {
    int image_h, image_w, image_c;
    int num_layers, num_tensors;
    int first_decoder; /* index of dec.dense; the encoder is layers [0, first_decoder) */
    ae_layer layers[AE_MAX_LAYERS];
    ae_tensor_info tensors[AE_MAX_TENSORS];
    size_t num_params, num_state, num_saved;
    size_t act_floats;  /* the stored layer outputs for max_batch images */
    size_t view_floats; /* the largest recomputed output (ae_model_layer_output) */
    size_t grad_floats; /* one activation-gradient buffer for max_batch images */
    size_t col_floats, slot_floats, dslot_doubles, channel_floats;
    size_t pad_floats, wt_floats; /* direct kernels (isa != portable) */
    /* The inference chains (infer_chain.c), layer indexes bottom up: the
     * encoder's convolutions from layer 0 up, each over the BatchNorm of the
     * one before, and scoring's, the decoder's up to the output layer
     * (count 0: the chain does not apply, under two layers or portable). */
    int encoder_chain[AE_CHAIN_MAX], encoder_chain_count;
    int score_chain[AE_CHAIN_MAX], score_chain_count;
    int threads, isa;
    size_t memory_bytes;
} ae_plan;

struct ae_model {
    ae_config cfg;
    int max_batch;
    ae_plan plan;
    float *params, *grads, *adam_m, *adam_v;
    float *state, *state_backup, *saved;
    float *acts, *grad_a, *grad_b;
    float *view;      /* made on demand for ae_model_layer_output of a recomputed layer */
    double *image_sums; /* max_batch: the loss's per-image sums */
    int last_n;       /* images in the last forward */
    ae_scratch scratch;
    int64_t iterations;
    double forward_s[AE_MAX_LAYERS], backward_s[AE_MAX_LAYERS]; /* per-layer time */
};

/* model_run.c: layer i's output when it is recomputed rather than stored
 * (into m->view, made on first use; NULL if that allocation fails). */
const float *ae_model_view(ae_model *m, int i);

/* model_plan.c: whether layer i is a transposed convolution that applies
 * the sigmoid after it (ae_deconv2d_forward_sigmoid, into the sigmoid's
 * output); its own output is then recomputed only to be looked at. */
int ae_plan_applies_sigmoid(const ae_plan *p, int i);
/* Layer i (a convolution) as a chain layer, without its weights or input
 * transform. */
ae_chain_layer ae_plan_chain_layer(const ae_plan *p, int i);

ae_status ae_plan_make(ae_plan *plan, const ae_config *cfg, int max_batch, int threads,
                       ae_error *err);

#endif
