/* Scoring's tail: the decoder's last transposed convolutions, each under the
 * BatchNorm (and LeakyReLU) that the next one's input transform applies, up
 * to the output layer with its sigmoid and the loss's sums, in one pass per
 * image.
 *
 * In inference a BatchNorm takes its moving statistics, so nothing needs the
 * whole batch between these layers: they run depth-first. The output layer
 * makes its rows a band at a time; each layer below keeps a window of its
 * output rows, from the first row the layer above still reads to the last
 * one made, and makes the rows the layer above asks for when it asks for
 * them (ensure_rows, from the top down). None of these outputs goes to
 * memory: at 256x256x3 that is about 235 MB written and read back per batch
 * of 32 that the layer-by-layer forward moves. Every row is made by the
 * kernels the layer-by-layer forward uses, row by row, so the bits are the
 * same. */
#include "nn/direct.h"

#include <string.h>

typedef struct {
    float *y;
    double *image_sums;
    const float *x, *target;
    const ae_deconv_args *layers;
    int count;
    ae_scratch *s;
    const ae_direct_ops *ops;
} tail_job;

/* One image's window of a layer's output rows and the padded input band its
 * kernel reads: rows [have_lo, have_hi) of the output are in win. */
typedef struct {
    float *win, *pad;
    int have_lo, have_hi;
} window;

/* The transposed kernels of the layers under the output layer, one after another in s->wt. */
static float *transposed_kernel(const tail_job *j, int k)
{
    float *wt = j->s->wt;
    for (int i = 0; i < k; i++)
        wt += 9 * (size_t)j->layers[i].g->big_c * j->layers[i].in_c;
    return wt;
}

/* Makes window k hold rows [need_lo, need_hi) of layer k's output (need_lo
 * never goes back: the layer above reads its rows in order). */
static void ensure_rows(const tail_job *j, window *wins, int k, const float *xi, int need_lo,
                        int need_hi)
{
    const ae_deconv_args *a = &j->layers[k];
    const ae_conv_geom *g = a->g;
    window *v = &wins[k];
    const size_t row = (size_t)g->big_w * g->big_c;
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
    ae_direct_rows_needed(g, 0, v->have_hi, need_hi, &lo, &hi);
    const float *in = xi;
    int in_row0 = 0;
    if (k > 0) {
        ensure_rows(j, wins, k - 1, xi, lo > 0 ? lo - 1 : 0,
                    hi - 1 < g->small_h ? hi - 1 : g->small_h);
        in = wins[k - 1].win;
        in_row0 = wins[k - 1].have_lo;
    }
    ae_conv_input_rows(j->ops, v->pad, in, in_row0, a->tf, g->small_h, g->small_w, a->in_c, lo,
                       hi);
    j->ops->small_to_big(v->pad, lo, g, a->in_c, transposed_kernel(j, k), a->b, v->win,
                         v->have_lo, v->have_hi, need_hi);
    v->have_hi = need_hi;
}

static void tail_image(void *arg, int i, int t)
{
    const tail_job *j = arg;
    const int top = j->count - 1;
    const ae_deconv_args *o = &j->layers[top], *bottom = &j->layers[0];
    const ae_conv_geom *g = o->g;
    const int h = g->big_h, w = g->big_w, c = o->in_c;
    const size_t y_row = (size_t)w * g->big_c;
    const float *xi =
        j->x + (size_t)i * bottom->g->small_h * bottom->g->small_w * bottom->in_c;
    const float *target = j->target + (size_t)i * h * y_row;
    float *yi = j->y + (size_t)i * h * y_row;
    /* ae_deconv2d_score_tail_floats: each lower layer's padded input band
     * and window, then the output layer's planar band and one row of x' */
    window wins[AE_TAIL_MAX];
    float *at = j->s->pad[t];
    for (int k = 0; k < top; k++) {
        const ae_conv_geom *gk = j->layers[k].g;
        wins[k] = (window){.pad = at, .win = at + ae_direct_padded_floats(
                                                       gk->small_h, gk->small_w, j->layers[k].in_c)};
        at = wins[k].win + (size_t)gk->big_h * gk->big_w * gk->big_c;
    }
    float *planar = at, *row = planar + ae_direct_padded_floats(h, w, c);
    double lanes[AE_LOSS_LANES] = {0};
    const int band = ae_direct_band(g, 0, c);
    for (int first = 0; first < h; first += band) {
        const int end = first + band < h ? first + band : h;
        int lo, hi;
        ae_direct_rows_needed(g, 0, first, end, &lo, &hi);
        ensure_rows(j, wins, top - 1, xi, lo > 0 ? lo - 1 : 0, hi - 1 < h ? hi - 1 : h);
        ae_conv_input_planar_rows(j->ops, planar, wins[top - 1].win, wins[top - 1].have_lo, o->tf,
                                  h, w, c, lo, hi, row, 1);
        j->ops->small_to_big_narrow(planar, lo, g, c, o->w, o->b, yi, first, end);
        const size_t from = (size_t)first * y_row, count = (size_t)(end - first) * y_row;
        j->ops->sigmoid(yi + from, yi + from, count);
        ae_loss_lanes_sum(lanes, from, yi + from, target + from, count);
    }
    j->image_sums[i] = ae_loss_lanes_total(lanes);
}

int ae_deconv2d_has_score_tail(const ae_deconv_args *layers, int count, int isa)
{
    if (count < 2 || count > AE_TAIL_MAX || !AE_NARROW(layers[count - 1].g) ||
        !ae_direct_ops_for(isa))
        return 0;
    for (int k = 0; k + 1 < count; k++) {
        const ae_conv_geom *g = layers[k].g, *up = layers[k + 1].g;
        if (AE_NARROW(g) || g->big_c != layers[k + 1].in_c || g->big_h != up->small_h ||
            g->big_w != up->small_w)
            return 0;
    }
    return 1;
}

size_t ae_deconv2d_score_tail_floats(const ae_deconv_args *layers, int count)
{
    size_t floats = 0;
    for (int k = 0; k + 1 < count; k++) {
        const ae_conv_geom *g = layers[k].g;
        floats += ae_direct_padded_floats(g->small_h, g->small_w, layers[k].in_c) +
                  (size_t)g->big_h * g->big_w * g->big_c;
    }
    const ae_conv_geom *g = layers[count - 1].g;
    return floats + ae_direct_padded_floats(g->small_h, g->small_w, layers[count - 1].in_c) +
           (size_t)g->small_w * layers[count - 1].in_c;
}

size_t ae_deconv2d_score_tail_wt_floats(const ae_deconv_args *layers, int count)
{
    size_t floats = 0;
    for (int k = 0; k + 1 < count; k++)
        floats += 9 * (size_t)layers[k].g->big_c * layers[k].in_c;
    return floats;
}

void ae_deconv2d_score_tail(float *y, double *image_sums, const float *target, const float *x,
                            const ae_deconv_args *layers, int count, int n, ae_scratch *s)
{
    double macs = 0;
    for (int k = 0; k < count; k++) {
        const ae_conv_geom *g = layers[k].g;
        macs += (double)n * 9 * g->small_h * g->small_w * g->big_c * layers[k].in_c;
    }
    tail_job j = {y, image_sums, x, target, layers, count, s, ae_direct_ops_for(s->isa)};
    for (int k = 0; k + 1 < count; k++)
        ae_direct_transpose_kernel(transposed_kernel(&j, k), layers[k].w,
                                   layers[k].g->big_c, layers[k].in_c);
    ae_pool_run(s->pool, ae_threads_for(s, macs), n, tail_image, &j);
}
