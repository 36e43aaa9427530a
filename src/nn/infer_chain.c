/* Inference chains: convolutions run depth-first, image by image.
 *
 * In inference a BatchNorm takes its moving statistics, so nothing needs the
 * whole batch between a convolution and the next one over its BatchNorm (and
 * LeakyReLU, which the next one's input transform applies). A chain of such
 * layers runs depth-first: the top layer makes its rows a band at a time;
 * each layer under it keeps a window of its output rows, from the first row
 * the layer above still reads to the last one made, and makes the rows the
 * layer above asks for when it asks (ensure_rows, recursive from the top
 * down). No output under the top goes to memory: at 256x256x3, batch 32,
 * the encoder's two lower outputs are 50 MB and the decoder's three 235 MB
 * that the layer-by-layer forward writes and reads back. Every row is made
 * by the kernels the layer-by-layer forward uses, row by row, so the bits are
 * the same.
 *
 * Two chains: the encoder's convolutions up to the one under the stored
 * BatchNorm that feeds the dense layer (ae_chain_forward: the top writes its
 * whole output), and scoring's tail, the decoder's transposed convolutions
 * up to the output layer with its sigmoid and the loss's sums
 * (ae_chain_score). */
#include "nn/kernels/direct.h"

#include <assert.h>
#include <string.h>

typedef struct {
    float *y;
    double *image_sums;
    const float *x, *target;
    const ae_chain_layer *layers;
    int count;
    ae_scratch *s;
    const ae_direct_ops *ops;
} chain_job;

/* One image's window of a layer's output rows and the padded input band its
 * kernel reads: rows [have_lo, have_hi) of the output are in win, and
 * pad_rows says which input rows pad holds. */
typedef struct {
    float *win, *pad;
    int have_lo, have_hi;
    ae_band_rows pad_rows;
} window;

/* A layer's input and output image: height and width (the channels are
 * in_c and out_c). */
static void input_shape(const ae_chain_layer *l, int *h, int *w)
{
    *h = l->conv ? l->g->big_h : l->g->small_h;
    *w = l->conv ? l->g->big_w : l->g->small_w;
}

static void output_shape(const ae_chain_layer *l, int *h, int *w)
{
    *h = l->conv ? l->g->small_h : l->g->big_h;
    *w = l->conv ? l->g->small_w : l->g->big_w;
}

static size_t input_padded_floats(const ae_chain_layer *l)
{
    int h, w;
    input_shape(l, &h, &w);
    return ae_direct_padded_floats(h, w, l->in_c);
}

static size_t output_floats(const ae_chain_layer *l)
{
    int h, w;
    output_shape(l, &h, &w);
    return (size_t)h * w * l->out_c;
}

/* The transposed kernels of the chain's transposed convolutions, one after
 * another in s->wt (scoring's top reads its kernel as stored: its place is
 * left unused). */
static float *transposed_kernel(const chain_job *j, int k)
{
    float *wt = j->s->wt;
    for (int i = 0; i < k; i++)
        if (!j->layers[i].conv)
            wt += 9 * (size_t)j->layers[i].in_c * j->layers[i].out_c;
    return wt;
}

/* Makes window k hold rows [need_lo, need_hi) of layer k's output (need_lo
 * never goes back: the layer above reads its rows in order). */
static void ensure_rows(const chain_job *j, window *wins, int k, const float *xi, int need_lo,
                        int need_hi)
{
    const ae_chain_layer *l = &j->layers[k];
    window *v = &wins[k];
    int out_h, out_w, in_h, in_w;
    output_shape(l, &out_h, &out_w);
    input_shape(l, &in_h, &in_w);
    const size_t row = (size_t)out_w * l->out_c;
    if (need_lo > v->have_lo) { /* the rows still read move to the top */
        const int keep = v->have_hi > need_lo ? v->have_hi - need_lo : 0;
        memmove(v->win, v->win + (size_t)(v->have_hi - keep - v->have_lo) * row,
                (size_t)keep * row * sizeof *v->win);
        v->have_lo = need_lo;
        v->have_hi = need_lo + keep;
    }
    if (need_hi <= v->have_hi)
        return;
    int lo, hi; /* padded input rows: image row r is padded row r + 1 */
    ae_direct_rows_needed(l->g, l->conv, v->have_hi, need_hi, &lo, &hi);
    const float *in = xi;
    int in_row0 = 0;
    if (k > 0) {
        ensure_rows(j, wins, k - 1, xi, lo > 0 ? lo - 1 : 0, hi - 1 < in_h ? hi - 1 : in_h);
        in = wins[k - 1].win;
        in_row0 = wins[k - 1].have_lo;
    }
    const ae_band_buf pad = {.ops = j->ops, .dst = v->pad, .h = in_h, .w = in_w, .c = l->in_c,
                             .held = &v->pad_rows};
    ae_conv_input_rows(&pad, in, in_row0, l->xform, lo, hi);
    if (l->conv)
        j->ops->big_to_small(v->pad, lo, l->g, l->out_c, l->w, l->b, v->win, v->have_lo,
                             v->have_hi, need_hi);
    else
        j->ops->small_to_big(v->pad, lo, l->g, l->in_c, transposed_kernel(j, k), l->b, v->win,
                             v->have_lo, v->have_hi, need_hi);
    v->have_hi = need_hi;
}

/* The windows of layers [0, count) in s->pad[t], as ae_chain_floats counts
 * them (the top's output excepted when it goes straight to memory); returns
 * the floats after them. */
static float *place_windows(const chain_job *j, window *wins, int count, int t)
{
    float *at = j->s->pad[t];
    for (int k = 0; k < count; k++) {
        wins[k] = (window){.pad = at, .win = at + input_padded_floats(&j->layers[k])};
        at = wins[k].win + output_floats(&j->layers[k]);
    }
    return at;
}

static const float *image_input(const chain_job *j, int i)
{
    int h, w;
    input_shape(&j->layers[0], &h, &w);
    return j->x + (size_t)i * h * w * j->layers[0].in_c;
}

static void forward_image(void *arg, int i, int t)
{
    const chain_job *j = arg;
    const int top = j->count - 1;
    const ae_chain_layer *l = &j->layers[top];
    window wins[AE_CHAIN_MAX];
    float *top_pad = place_windows(j, wins, top, t);
    wins[top] = (window){.pad = top_pad, .win = j->y + (size_t)i * output_floats(l)};
    int h, w;
    output_shape(l, &h, &w);
    const int band = ae_direct_band(l->g, l->conv, l->in_c);
    for (int first = 0; first < h; first += band) /* the top keeps every row: need_lo 0 */
        ensure_rows(j, wins, top, image_input(j, i), 0, first + band < h ? first + band : h);
}

static void score_image(void *arg, int i, int t)
{
    const chain_job *j = arg;
    const int top = j->count - 1;
    const ae_chain_layer *o = &j->layers[top];
    const ae_conv_geom *g = o->g;
    const int h = g->big_h, w = g->big_w, c = o->in_c;
    const size_t y_row = (size_t)w * g->big_c;
    const float *target = j->target + (size_t)i * h * y_row;
    float *yi = j->y + (size_t)i * h * y_row;
    window wins[AE_CHAIN_MAX];
    float *planar = place_windows(j, wins, top, t);
    float *row = planar + ae_direct_padded_floats(h, w, c);
    double lanes[AE_LOSS_LANES] = {0};
    const int band = ae_direct_band(g, 0, c);
    ae_band_rows planar_rows = {0, 0};
    const ae_band_buf planar_buf = {.ops = j->ops, .dst = planar, .h = h, .w = w, .c = c,
                                    .held = &planar_rows};
    const ae_kept_rows kept = {.rows = row, .count = 1};
    for (int first = 0; first < h; first += band) {
        const int end = first + band < h ? first + band : h;
        int lo, hi;
        ae_direct_rows_needed(g, 0, first, end, &lo, &hi);
        ensure_rows(j, wins, top - 1, image_input(j, i), lo > 0 ? lo - 1 : 0,
                    hi - 1 < h ? hi - 1 : h);
        ae_conv_input_planar_rows(&planar_buf, wins[top - 1].win, wins[top - 1].have_lo, o->xform,
                                  lo, hi, &kept);
        j->ops->small_to_big_narrow(planar, lo, g, c, o->w, o->b, yi, first, end);
        const size_t from = (size_t)first * y_row, count = (size_t)(end - first) * y_row;
        j->ops->sigmoid(yi + from, yi + from, count);
        j->ops->loss_lanes_add(lanes, from, yi + from, target + from, count, NULL, 0.0f);
    }
    j->image_sums[i] = ae_loss_lanes_total(lanes);
}

int ae_chain_fits(const ae_chain_layer *layers, int count, int score, int isa)
{
    if (count < 2 || count > AE_CHAIN_MAX || !ae_direct_ops_for(isa))
        return 0;
    for (int k = 0; k < count; k++) {
        const ae_chain_layer *l = &layers[k];
        /* the geometry's big image has the channels its side of the layer has */
        if ((l->conv ? l->in_c : l->out_c) != l->g->big_c)
            return 0;
        /* scoring's chain: transposed convolutions, the narrow kernel at the top only */
        if (score && (l->conv || AE_NARROW(l->g) != (k == count - 1)))
            return 0;
        if (k + 1 < count) {
            int h, w, up_h, up_w;
            output_shape(l, &h, &w);
            input_shape(&layers[k + 1], &up_h, &up_w);
            if (h != up_h || w != up_w || l->out_c != layers[k + 1].in_c)
                return 0;
        }
    }
    return 1;
}

size_t ae_chain_floats(const ae_chain_layer *layers, int count, int score)
{
    size_t floats = 0;
    for (int k = 0; k + 1 < count; k++)
        floats += input_padded_floats(&layers[k]) + output_floats(&layers[k]);
    const ae_chain_layer *top = &layers[count - 1];
    floats += input_padded_floats(top); /* the top's padded input or planar band */
    if (score)
        floats += (size_t)top->g->small_w * top->in_c; /* one row of x' */
    return floats;
}

size_t ae_chain_wt_floats(const ae_chain_layer *layers, int count)
{
    size_t floats = 0;
    for (int k = 0; k < count; k++)
        if (!layers[k].conv)
            floats += 9 * (size_t)layers[k].in_c * layers[k].out_c;
    return floats;
}

static void run(float *y, double *image_sums, const float *target, const float *x,
                const ae_chain_layer *layers, int count, int n, ae_scratch *s, ae_pool_fn fn)
{
    assert(ae_chain_fits(layers, count, image_sums != NULL, s->isa));
    double macs = 0;
    for (int k = 0; k < count; k++)
        macs += (double)n * 9 * layers[k].g->small_h * layers[k].g->small_w * layers[k].in_c *
                layers[k].out_c;
    chain_job j = {y, image_sums, x, target, layers, count, s, ae_direct_ops_for(s->isa)};
    for (int k = 0; k < count; k++)
        if (!layers[k].conv && !(image_sums && k == count - 1))
            ae_direct_transpose_kernel(transposed_kernel(&j, k), layers[k].w, layers[k].out_c,
                                       layers[k].in_c);
    ae_pool_run(s->pool, ae_threads_for(s, macs), n, fn, &j);
}

void ae_chain_forward(float *y, const float *x, const ae_chain_layer *layers, int count, int n,
                      ae_scratch *s)
{
    run(y, NULL, NULL, x, layers, count, n, s, forward_image);
}

void ae_chain_score(float *y, double *image_sums, const float *target, const float *x,
                    const ae_chain_layer *layers, int count, int n, ae_scratch *s)
{
    run(y, image_sums, target, x, layers, count, n, s, score_image);
}
