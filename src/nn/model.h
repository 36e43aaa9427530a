/* Internal: the model's layer list, tensor table and buffers (see docs/DESIGN.md). */
#ifndef AEDET_NN_MODEL_H
#define AEDET_NN_MODEL_H

#include "aedet/nn.h"
#include "nn/model_hooks.h" /* defined in model.c and model_run.c */
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

struct ae_collective;

/* One data-parallel training step (model_dist.c; src/train/train.c fills
 * it): this rank's n images are part of a batch of n_total spread over
 * comm's ranks in rank order, counts[r] on rank r. */
typedef struct {
    const struct ae_collective *comm;
    int n_total;
    const int *counts;   /* comm->size entries */
    int *gather_counts;  /* comm->size entries, scratch */
    double *mine, *all;  /* per-image sums: this rank's images', the batch's */
    size_t mine_doubles, all_doubles;
    int overlap;         /* the gradient is summed in parts while the backward runs */
    size_t ready, begun; /* the gradient from `ready` on is final; from `begun` on, summing */
    int parts;           /* allreduce_begin calls this step */
    ae_status status;    /* the first failure of a collective, sticky for the step */
    ae_error error;
} ae_dist_step;

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
    ae_mode last_mode; /* and its mode */
    ae_scratch scratch;
    int64_t iterations;
    ae_dist_step *dist; /* during a data-parallel step, else NULL */
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

/* model_run.c: BatchNorm layer i's parameters and saved statistics. */
ae_bn_params ae_model_bn_params(ae_model *m, int i);

/* model_dist.c: a data-parallel step's buffers, for batches of up to
 * max_total images (ae_dist_step_free frees them). */
ae_status ae_dist_step_init(ae_dist_step *d, const ae_model *m, const struct ae_collective *comm,
                            int max_total, ae_error *err);
void ae_dist_step_free(ae_dist_step *d);
/* forward (train), loss, backward and Adam over the whole batch: this
 * rank's n images (0..max_batch: 0 takes part in the collectives alone),
 * the statistics and loss of all (*loss: the batch's), the gradient summed
 * over the ranks; otherwise as ae_model_train_step. */
ae_status ae_model_train_step_dist(ae_model *m, const ae_adam_config *cfg, const float *x, int n,
                                   ae_dist_step *d, float *loss, ae_error *err);
/* The hooks model_run.c calls while m->dist is set: BatchNorm layer i's
 * statistics (forward) and gradient sums (backward) over the whole batch
 * (local: this rank's per-image sums are in the scratch's slots already);
 * the batch's loss from each image's sum in m->image_sums; and, after the
 * backward of layer i, the gradient parts that are final. */
void ae_dist_bn_forward(ae_model *m, const ae_bn_params *bn, float *y, const float *z, int n,
                        size_t pixels, int c, int local);
void ae_dist_bn_backward(ae_model *m, float *dgamma, float *dbeta, const ae_bn_params *bn,
                         const float *dy, const float *z, int n, size_t pixels, int c, int local,
                         ae_grad_xform *gxform);
float ae_dist_loss(ae_model *m, int n, size_t d);
void ae_dist_grads_ready(ae_model *m, int i);
/* The step's start (no gradient final yet), and its end: the parts of the
 * gradient not summed yet summed, and every sum begun waited for. */
void ae_dist_step_begin(ae_model *m);
ae_status ae_dist_grads_finish(ae_model *m, ae_error *err);
/* A rank with no images in the batch: its forward (the BatchNorms'
 * statistics, the batch's loss, returned) and its backward (a zero
 * gradient; the BatchNorms' sums) make the collectives the others make. */
float ae_dist_idle_forward(ae_model *m);
void ae_dist_idle_backward(ae_model *m);

ae_status ae_plan_make(ae_plan *plan, const ae_config *cfg, int max_batch, int threads,
                       ae_error *err);

#endif
