/* Internal: direct 3x3 convolution kernels (no im2col), vectorized for
 * AVX-512 and AVX2 and chosen at run time; the im2col + BLAS path of
 * conv2d.c / conv2d_transpose.c is the portable path and the reference the
 * tests hold these kernels to.
 *
 * A convolution and its transpose share three products between a "big" image
 * (big_h x big_w x cb) and a "small" one (small_h x small_w x cs), with the
 * kernel w as Keras stores both layers' kernels: (3, 3, cb, cs).
 *   big_to_small: small[p][o] = init[o] + sum_{tap,c} big[pos(p,tap)][c] w[tap][c][o]
 *                 (Conv2D forward, Conv2DTranspose input gradient)
 *   small_to_big: big[q][c] = init[c] + sum_{(p,tap) -> q} sum_o small[p][o] w[tap][c][o]
 *                 (Conv2DTranspose forward, Conv2D input gradient); it reads the
 *                 kernel transposed, wt[tap][o][c] (ae_direct_transpose_kernel)
 *   weight_grad:  dw[tap][c][o] = sum_p big[pos(p,tap)][c] small[p][o] (overwritten)
 * init may be NULL (zero). The image a product reads through pos() comes
 * zero-padded by one pixel on every side (ae_direct_pad), which removes every
 * bounds test from the inner loops. Each call handles ONE image: callers
 * parallelize over images, so results do not depend on the thread count. */
#ifndef AEDET_NN_DIRECT_H
#define AEDET_NN_DIRECT_H

#include "nn/layers.h"

typedef struct {
    const char *name;
    void (*big_to_small)(const float *big_padded, const ae_conv_geom *g, int cs, const float *w,
                         const float *init, float *small);
    void (*small_to_big)(const float *small_padded, const ae_conv_geom *g, int cs,
                         const float *wt, const float *init, float *big);
    void (*weight_grad)(const float *big_padded, const float *small, const ae_conv_geom *g,
                        int cs, float *dw);
} ae_direct_ops;

/* NULL for AE_ISA_PORTABLE (use im2col + BLAS) or an ISA this CPU lacks. */
const ae_direct_ops *ae_direct_ops_for(int isa);
extern const ae_direct_ops ae_direct_avx512;
extern const ae_direct_ops ae_direct_avx2;

/* Copies an h x w x c image into (h+2) x (w+2) x c with a zero border. */
void ae_direct_pad(float *dst, const float *src, int h, int w, int c);
/* wt[tap][o][c] = w[tap][c][o] for a (3, 3, cb, cs) kernel. */
void ae_direct_transpose_kernel(float *wt, const float *w, int cb, int cs);
/* Floats of one padded h x w x c image. */
size_t ae_direct_padded_floats(int h, int w, int c);

#endif
