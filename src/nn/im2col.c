/* The geometry of TensorFlow's "same" 3x3 convolution and the im2col / col2im
 * pair that turns it (and its transpose) into one GEMM per image. */
#include "nn/layers.h"


void ae_conv_geom_init(ae_conv_geom *g, int big_h, int big_w, int big_c, int stride)
{
    g->big_h = big_h;
    g->big_w = big_w;
    g->big_c = big_c;
    g->stride = stride;
    g->small_h = (big_h + stride - 1) / stride;
    g->small_w = (big_w + stride - 1) / stride;
    int total_h = (g->small_h - 1) * stride + 3 - big_h;
    int total_w = (g->small_w - 1) * stride + 3 - big_w;
    /* TF: the odd extra padding goes after (bottom/right). */
    g->pad_top = total_h > 0 ? total_h / 2 : 0;
    g->pad_left = total_w > 0 ? total_w / 2 : 0;
}

/* col[(oy*small_w + ox)][(kh*3 + kw)*c + ch] = img[oy*s + kh - pad_top][ox*s + kw - pad_left][ch],
 * zero outside the image. */
void ae_im2col(const float *img, const ae_conv_geom *g, float *col)
{
    const int c = g->big_c, row_len = 9 * c;
    for (int oy = 0; oy < g->small_h; oy++) {
        for (int ox = 0; ox < g->small_w; ox++) {
            float *row = col + ((size_t)oy * g->small_w + ox) * row_len;
            for (int kh = 0; kh < 3; kh++) {
                int iy = oy * g->stride + kh - g->pad_top;
                for (int kw = 0; kw < 3; kw++) {
                    int ix = ox * g->stride + kw - g->pad_left;
                    float *dst = row + (kh * 3 + kw) * c;
                    if (iy < 0 || iy >= g->big_h || ix < 0 || ix >= g->big_w) {
                        for (int ch = 0; ch < c; ch++)
                            dst[ch] = 0.0f;
                    } else {
                        const float *src = img + ((size_t)iy * g->big_w + ix) * c;
                        for (int ch = 0; ch < c; ch++)
                            dst[ch] = src[ch];
                    }
                }
            }
        }
    }
}

/* The adjoint of ae_im2col: every column entry is added to the pixel it came
 * from; entries that fell in the padding are dropped (for the stride-2
 * transpose this is TF's crop of the last row and column). */
void ae_col2im_add(const float *col, const ae_conv_geom *g, float *img)
{
    const int c = g->big_c, row_len = 9 * c;
    for (int oy = 0; oy < g->small_h; oy++) {
        for (int ox = 0; ox < g->small_w; ox++) {
            const float *row = col + ((size_t)oy * g->small_w + ox) * row_len;
            for (int kh = 0; kh < 3; kh++) {
                int iy = oy * g->stride + kh - g->pad_top;
                if (iy < 0 || iy >= g->big_h)
                    continue;
                for (int kw = 0; kw < 3; kw++) {
                    int ix = ox * g->stride + kw - g->pad_left;
                    if (ix < 0 || ix >= g->big_w)
                        continue;
                    const float *src = row + (kh * 3 + kw) * c;
                    float *dst = img + ((size_t)iy * g->big_w + ix) * c;
                    for (int ch = 0; ch < c; ch++)
                        dst[ch] += src[ch];
                }
            }
        }
    }
}
