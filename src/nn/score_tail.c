/* Scoring's tail: the last transposed convolution under a BatchNorm (z =
 * deconv(x)), and the output layer over it with its sigmoid and the loss's
 * sums, y = sigmoid(deconv(BN(leaky(z)))), in one pass per image.
 *
 * In inference the BatchNorm takes its moving statistics, so nothing needs
 * the whole batch between the two layers: z is made a band of rows at a
 * time into a window that holds the rows the output layer's next band reads
 * (its band and one row on either side), and never goes to memory. At
 * 256x256x3 that is 134 MB written and read back per batch of 32 that the
 * layer-by-layer forward moves. Every row is made by the kernels the
 * layer-by-layer forward uses, row by row, so the bits are the same. */
#include "nn/direct.h"

#include <string.h>

typedef struct {
    float *y;
    double *image_sums;
    const float *x, *target;
    const ae_deconv_args *below, *out;
    ae_scratch *s;
    const ae_direct_ops *ops;
} tail_job;

/* Rows [have_hi, need_hi) of z into the window, which holds rows from have_lo. */
static void make_rows(const tail_job *j, const float *xi, float *pad, float *win, int have_lo,
                      int have_hi, int need_hi)
{
    const ae_deconv_args *b = j->below;
    const ae_conv_geom *g = b->g;
    int lo, hi;
    ae_direct_rows_needed(g, 0, have_hi, need_hi, &lo, &hi);
    ae_conv_input_rows(j->ops, pad, xi, b->tf, g->small_h, g->small_w, b->in_c, lo, hi);
    j->ops->small_to_big(pad, lo, g, b->in_c, j->s->wt, b->b, win, have_lo, have_hi, need_hi);
}

static void tail_image(void *arg, int i, int t)
{
    const tail_job *j = arg;
    const ae_deconv_args *o = j->out;
    const ae_conv_geom *g = o->g, *gb = j->below->g;
    const int h = g->big_h, w = g->big_w, c = o->in_c;
    const size_t z_row = (size_t)w * c, y_row = (size_t)w * g->big_c;
    const float *xi = j->x + (size_t)i * gb->small_h * gb->small_w * j->below->in_c;
    const float *target = j->target + (size_t)i * h * y_row;
    float *yi = j->y + (size_t)i * h * y_row;
    /* ae_deconv2d_score_tail_floats: the layer below's padded input, the
     * window of z rows, the output layer's planar band, one row of x' */
    float *pad = j->s->pad[t];
    float *win = pad + ae_direct_padded_floats(gb->small_h, gb->small_w, j->below->in_c);
    float *planar = win + (size_t)h * z_row;
    float *row = planar + ae_direct_padded_floats(h, w, c);
    double lanes[AE_LOSS_LANES] = {0};
    int have_lo = 0, have_hi = 0; /* the window: rows [have_lo, have_hi) of z */
    const int band = ae_direct_band(g, 0, c);
    for (int first = 0; first < h; first += band) {
        const int end = first + band < h ? first + band : h;
        int lo, hi; /* padded rows: image row r is padded row r + 1 */
        ae_direct_rows_needed(g, 0, first, end, &lo, &hi);
        const int need_lo = lo > 0 ? lo - 1 : 0, need_hi = hi - 1 < h ? hi - 1 : h;
        if (need_lo > have_lo) { /* rows the bands above still read move to the top */
            const int keep = have_hi > need_lo ? have_hi - need_lo : 0;
            memmove(win, win + (size_t)(have_hi - keep - have_lo) * z_row,
                    (size_t)keep * z_row * sizeof *win);
            have_lo = need_lo;
            have_hi = have_lo + keep;
        }
        if (need_hi > have_hi) {
            make_rows(j, xi, pad, win, have_lo, have_hi, need_hi);
            have_hi = need_hi;
        }
        ae_conv_input_planar_rows(j->ops, planar, win, have_lo, o->tf, h, w, c, lo, hi, row, 1);
        j->ops->small_to_big_narrow(planar, lo, g, c, o->w, o->b, yi, first, end);
        const size_t at = (size_t)first * y_row, count = (size_t)(end - first) * y_row;
        j->ops->sigmoid(yi + at, yi + at, count);
        ae_loss_lanes_sum(lanes, at, yi + at, target + at, count);
    }
    j->image_sums[i] = ae_loss_lanes_total(lanes);
}

int ae_deconv2d_has_score_tail(const ae_deconv_args *below, const ae_deconv_args *out, int isa)
{
    const ae_conv_geom *gb = below->g, *g = out->g;
    return AE_NARROW(g) && !AE_NARROW(gb) && ae_direct_ops_for(isa) != NULL &&
           gb->big_c == out->in_c && gb->big_h == g->small_h && gb->big_w == g->small_w;
}

size_t ae_deconv2d_score_tail_floats(const ae_deconv_args *below, const ae_deconv_args *out)
{
    const ae_conv_geom *gb = below->g, *g = out->g;
    return ae_direct_padded_floats(gb->small_h, gb->small_w, below->in_c) +
           (size_t)g->small_h * g->small_w * out->in_c +
           ae_direct_padded_floats(g->small_h, g->small_w, out->in_c) +
           (size_t)g->small_w * out->in_c;
}

void ae_deconv2d_score_tail(float *y, double *image_sums, const float *target, const float *x,
                            const ae_deconv_args *below, const ae_deconv_args *out, int n,
                            ae_scratch *s)
{
    const ae_conv_geom *gb = below->g, *g = out->g;
    const double macs = (double)n * 9 *
                        ((double)gb->small_h * gb->small_w * gb->big_c * below->in_c +
                         (double)g->small_h * g->small_w * g->big_c * out->in_c);
    tail_job j = {y, image_sums, x, target, below, out, s, ae_direct_ops_for(s->isa)};
    ae_direct_transpose_kernel(s->wt, below->w, gb->big_c, below->in_c);
    ae_pool_run(s->pool, ae_threads_for(s, macs), n, tail_image, &j);
}
