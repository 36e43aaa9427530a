/* Internal: direct 3x3 convolution kernels (no im2col), vectorized for
 * AVX-512 and AVX2 and chosen at run time; the im2col + GEMM path of
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
 * zero-padded by one pixel on every side (ae_conv_input), which removes every
 * bounds test from the inner loops. Each call handles ONE image: callers
 * parallelize over images, so results do not depend on the thread count. */
#ifndef AEDET_NN_KERNELS_DIRECT_H
#define AEDET_NN_KERNELS_DIRECT_H

#include "nn/layers.h"

/* Row bands: each product computes output rows [first, end) and reads its
 * padded input from a buffer that holds padded rows row0, row0 + 1, ... only
 * (ae_direct_rows_needed says which), so that a band of the input, made just
 * before, is still in cache. weight_grad ADDS its band's sums to dw and reads
 * small rows from `small`, whose first row is srow0. */
typedef struct ae_direct_ops_s {
    const char *name;
    /* small (big) holds image rows from small_row0 (big_row0) on; 0: the whole image */
    void (*big_to_small)(const float *big_padded, int row0, const ae_conv_geom *g, int cs,
                         const float *w, const float *init, float *small, int small_row0,
                         int first, int end);
    void (*small_to_big)(const float *small_padded, int row0, const ae_conv_geom *g, int cs,
                         const float *wt, const float *init, float *big, int big_row0,
                         int first, int end);
    void (*weight_grad)(const float *big_padded, int row0, const float *small, int srow0,
                        const ae_conv_geom *g, int cs, float *dw, int first, int end);
    /* small_to_big for stride 1 and cb <= 4, vectorized along pixels: it reads
     * the small image padded and channel-planar (ae_conv_input_planar) and
     * the kernel as Keras stores it (not transposed). */
    void (*small_to_big_narrow)(const float *small_planar, int row0, const ae_conv_geom *g,
                                int cs, const float *w, const float *init, float *big,
                                int first, int end);
    /* The element-wise passes of batchnorm.c, im2col.c (ae_conv_input),
     * scratch.c (ae_bias_grad) and activation.c, vectorized over channels;
     * the sums match the portable loops bit for bit, the sigmoid within a
     * few ulp (its own exp). Arguments as in those files' portable loops;
     * bn_grad_sums ADDS to acc. */
    void (*bn_sums)(double *acc, const float *z, size_t pixels, int c, float slope,
                    const double *mean);
    void (*bn_grad_sums)(double *acc, const float *dy, const float *z, size_t pixels, int c,
                         float slope, const float *mean, const float *invstd);
    void (*bn_grad_apply)(float *dz, const float *dy, const float *z, size_t pixels, int c,
                          float slope, const float *mean, const float *invstd, const float *k_dy,
                          const float *k_mean, const float *k_xhat);
    void (*apply_xform)(float *dst, const float *x, size_t pixels, int c, const float *scale,
                     const float *shift, float slope);
    void (*bias_grad)(float *db, const float *dy, size_t pixels, int c);
    /* bias_grad, the sum added to db[o] (callers that go row by row do so
     * in every path they compare bit for bit). */
    void (*bias_grad_add)(float *db, const float *dy, size_t pixels, int c);
    /* Dense forward, outputs [o_begin, o_end) (o_begin a multiple of 2 VW
     * floats, o_end = out or one): fused multiply-adds in input order, an
     * image's bits independent of the batch (dense.c). */
    void (*dense_forward)(float *y, const float *x, const float *w, const float *b, int n,
                          int in, int out, int o_begin, int o_end);
    void (*planar_row)(float *rows, const float *src, int w, int c, size_t pw);
    /* planar_row of xform(src) for the first pixels of the row it can do in one
     * read of src (keep, if not NULL, gets keep_xform(src) or xform(src) there,
     * pixel-major); returns how many (maybe 0). */
    int (*planar_xform_row)(float *rows, float *keep, const float *src, int w, int c, size_t pw,
                         const ae_input_xform *xform, const ae_input_xform *keep_xform);
    void (*sigmoid)(float *y, const float *x, size_t count);
    /* ae_loss_lanes_add (layers.h), the same bits */
    void (*loss_lanes_add)(double *lane, size_t at, const float *y, const float *x, size_t d,
                           float *dy, float scale);
} ae_direct_ops;

/* x' (one image of h x w x c, through xform when not NULL) into dst, zero-padded
 * by one pixel when pad is set (the direct kernels' input), as is otherwise
 * (im2col's); ops (may be NULL) vectorizes the transform. In im2col.c. */
void ae_conv_input(const ae_direct_ops *ops, float *dst, const float *x,
                   const ae_input_xform *xform, int h, int w, int c, int pad);
/* The padded rows a band buffer holds, [lo, hi) (none while equal). The
 * bands of a layer's pass overlap by a row or two (a 3x3 window reaches past
 * its band); with one of these, a band that starts inside the rows its
 * buffer holds moves them to its front instead of making them again: the
 * same values (a row's transform does not depend on its band), without
 * reading its input from memory a second time. */
typedef struct {
    int lo, hi;
} ae_band_rows;

/* A band buffer and the image whose padded rows it takes (the three calls
 * below): h rows of w pixels of c channels. */
typedef struct {
    const ae_direct_ops *ops; /* vectorizes the rows' transforms; NULL: the portable loops */
    float *dst;
    int h, w, c;
    ae_band_rows *held; /* which rows dst holds, updated; may be NULL */
} ae_band_buf;

/* Padded rows [lo, hi) of x' (row 0 and row h + 1 are the zero border) into
 * buf->dst, row lo first, x holding image rows from x_row0 on (0: the whole
 * image). */
void ae_conv_input_rows(const ae_band_buf *buf, const float *x, int x_row0,
                        const ae_input_xform *xform, int lo, int hi);
/* Where ae_conv_input_planar_rows leaves x''s rows: image row y at row
 * y % count of count rows of w x c floats; with xform (may be NULL),
 * xform(x)'s rows instead, made once x' is planar. */
typedef struct {
    float *rows;
    int count;
    const ae_input_xform *xform;
} ae_kept_rows;
/* ae_conv_input_rows in the planar layout (below). With xform, each image
 * row of x' is made in keep's rows first and stays there (or keep->xform's
 * row does): a caller can read the rows back (the training head's backward
 * does). Rows taken from held were made by an earlier call, their kept
 * rows with them. */
void ae_conv_input_planar_rows(const ae_band_buf *buf, const float *x, int x_row0,
                               const ae_input_xform *xform, int lo, int hi,
                               const ae_kept_rows *keep);
/* ae_conv_input_rows for an output gradient (buf->ops not NULL): padded rows
 * [lo, hi) of dy or, under a BatchNorm, of dz = gxform(dy) (one image; z
 * its part of gxform->z; gxform and z NULL: dy as is; with gxform->above_w,
 * dy is the image's padded gradient of the layer above, and each row of the
 * layer's own dy is made from it first). Each image row not yet added (rows
 * *summed, *summed + 1, ... in order) is added to db by ops->bias_grad_add,
 * and *summed moves past it. */
void ae_conv_grad_rows(const ae_band_buf *buf, const float *dy, const float *z,
                       const ae_grad_xform *gxform, int lo, int hi, float *db, int *summed);
/* The padded input rows [*lo, *hi) that output rows [first, end) read:
 * big_to_small and weight_grad (output = small rows) when to_small is set,
 * small_to_big (output = big rows) otherwise. */
void ae_direct_rows_needed(const ae_conv_geom *g, int to_small, int first, int end, int *lo,
                           int *hi);
/* Output rows per band: about 64K floats of input. */
int ae_direct_band(const ae_conv_geom *g, int to_small, int in_c);
/* band, or fewer rows when a row of output brings floats_per_row more floats
 * of other arrays (the output, the inputs of an epilogue) into cache. */
int ae_direct_band_fit(int band, size_t floats_per_row);
/* For tests: bands of `rows` output rows (0: the size above). */
void ae_direct_set_band(int rows);
/* For tests: with `on`, the register blocks of big_to_small and small_to_big
 * hold at most two vectors of output channels, one row's pixels, and take
 * all their taps in one call (no 4-vector blocks, no flat tiles, no tap
 * chunks), which must give the same bits. */
void ae_direct_set_plain_blocks(int on);
int ae_direct_plain_blocks(void);

/* Planar layout (ae_conv_input_planar_rows): padded row r, channel ch at
 * dst[(r c + ch) (w + 2) + col]. */
/* Whether deconv forward uses small_to_big_narrow for this layer. */
#define AE_NARROW(g) ((g)->stride == 1 && (g)->big_c <= 4)

/* ae_sigmoid_forward through ops->sigmoid (ops NULL: the portable loop), on
 * the scratch's pool (s NULL: on the caller). */
void ae_sigmoid_forward_with(const ae_direct_ops *ops, ae_scratch *s, float *y, const float *x,
                             size_t count);

/* NULL for AE_ISA_PORTABLE (use im2col + ae_gemm) or an ISA this CPU lacks. */
const ae_direct_ops *ae_direct_ops_for(int isa);
extern const ae_direct_ops ae_direct_avx512;
extern const ae_direct_ops ae_direct_avx2;
/* ae_direct_avx512 with the three products in bfloat16 on AMX tiles
 * (direct_amx.c): their operands rounded to bfloat16, the sums in float32.
 * Shapes the tiles or the thread's buffers do not fit (a channel count not a
 * multiple of 16, rows under 16 pixels, more than 128 output channels, a
 * kernel or rows too large for the buffers) go to the avx512 kernels. Opt-in: ae_isa_best never
 * picks it unless AEDET_ISA=amx-bf16. */
extern const ae_direct_ops ae_direct_amx;
void ae_amx_big_to_small(const float *big_padded, int row0, const ae_conv_geom *g, int cs,
                         const float *w, const float *init, float *small, int small_row0,
                         int first, int end);
void ae_amx_small_to_big(const float *small_padded, int row0, const ae_conv_geom *g, int cs,
                         const float *wt, const float *init, float *big, int big_row0,
                         int first, int end);
void ae_amx_weight_grad(const float *big_padded, int row0, const float *small, int srow0,
                        const ae_conv_geom *g, int cs, float *dw, int first, int end);
/* 1 when this CPU has AMX-BF16 and AVX512-BF16 and the OS lets this process
 * use the tiles (asked once, on Linux). */
int ae_amx_usable(void);
/* Bytes of the thread-local buffers each thread that runs them holds. */
size_t ae_amx_thread_bytes(void);
/* ae_direct_avx512 with the three products in bfloat16 by AVX512-BF16 dot
 * products (direct_bf16.c), for CPUs without AMX: operands rounded to
 * bfloat16, sums in float32. Odd channel counts summed (the RGB or grayscale
 * input, the output layer) and shapes too large for the thread's buffers go
 * to the avx512 kernels. Opt-in, as amx-bf16 (AEDET_ISA=avx512-bf16 or
 * ae_model_set_bf16). */
extern const ae_direct_ops ae_direct_avx512bf16;
void ae_bf16_big_to_small(const float *big_padded, int row0, const ae_conv_geom *g, int cs,
                          const float *w, const float *init, float *small, int small_row0,
                          int first, int end);
void ae_bf16_small_to_big(const float *small_padded, int row0, const ae_conv_geom *g, int cs,
                          const float *wt, const float *init, float *big, int big_row0,
                          int first, int end);
void ae_bf16_weight_grad(const float *big_padded, int row0, const float *small, int srow0,
                         const ae_conv_geom *g, int cs, float *dw, int first, int end);
/* 1 when this CPU has AVX512-BF16 (the OS side is AVX-512's, isa.c). */
int ae_avx512bf16_usable(void);
/* Bytes of the thread-local buffers each thread that runs them holds. */
size_t ae_avx512bf16_thread_bytes(void);

/* wt[tap][o][c] = w[tap][c][o] for a (3, 3, cb, cs) kernel. */
void ae_direct_transpose_kernel(float *wt, const float *w, int cb, int cs);
/* Floats of one padded h x w x c image. */
size_t ae_direct_padded_floats(int h, int w, int c);

#endif
