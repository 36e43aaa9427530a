/* Channel conversion and resizing to the model's input size.
 *
 * Exact definitions (tests compute them by hand):
 *  - RGB -> gray: Y = (299 R + 587 G + 114 B + 500) / 1000 in integers (ITU-R
 *    601 luma, rounded half up). Gray -> RGB copies Y into all three channels.
 *    Conversion happens first, on the 8-bit pixels; then the image is resized.
 *  - Resizing is separable: first along the width, then along the height, with
 *    a float intermediate and one final rounding, floor(v + 0.5) clamped to
 *    0..255. Each axis of source size s and target size d is done on its own:
 *      d == s: copy.
 *      d <  s: area averaging. Output i covers the source span
 *              [i s / d, (i + 1) s / d); each source pixel j (span [j, j + 1))
 *              weighs overlap / (s / d). E.g. 4 -> 2 averages pairs.
 *      d >  s: bilinear with pixel centres (as TensorFlow's resize with
 *              align_corners false, PIL and OpenCV): output i samples the source
 *              at x = (i + 0.5) s / d - 0.5, clamped to [0, s - 1], mixing
 *              pixels floor(x) and floor(x) + 1 by the fraction of x. E.g.
 *              2 -> 4 gives [a, 0.75 a + 0.25 b, 0.25 a + 0.75 b, b]. */
#include "aedet/image.h"

#include <stdlib.h>
#include <string.h>

/* One axis as a sparse matrix: output i = sum_k weight[i][k] * in[first[i] + k]. */
typedef struct {
    int taps; /* weights per output, padded with zeros */
    int *first;
    float *weight; /* d * taps */
} axis_map;

static void axis_free(axis_map *m)
{
    free(m->first);
    free(m->weight);
}

static int axis_build(axis_map *m, int s, int d)
{
    /* Shrinking touches at most ceil(s / d) + 1 source pixels per output. */
    m->taps = d == s ? 1 : d < s ? (s + d - 1) / d + 1 : 2;
    if (m->taps > s)
        m->taps = s;
    m->first = malloc(sizeof *m->first * (size_t)d);
    m->weight = calloc((size_t)d * (size_t)m->taps, sizeof *m->weight);
    if (!m->first || !m->weight)
        return -1;
    for (int i = 0; i < d; i++) {
        float *w = m->weight + (size_t)i * (size_t)m->taps;
        if (d == s) {
            m->first[i] = i;
            w[0] = 1.0f;
        } else if (d < s) {
            /* In units of 1/d: output i spans [i s, (i + 1) s), source j spans [j d, (j + 1) d). */
            int64_t lo = (int64_t)i * s, hi = lo + s;
            int j0 = (int)(lo / d), j1 = (int)((hi - 1) / d);
            m->first[i] = j0;
            for (int j = j0; j <= j1; j++) {
                int64_t a = (int64_t)j * d > lo ? (int64_t)j * d : lo;
                int64_t b = (int64_t)(j + 1) * d < hi ? (int64_t)(j + 1) * d : hi;
                w[j - j0] = (float)((double)(b - a) / (double)s);
            }
        } else {
            /* x = ((2 i + 1) s - d) / (2 d), exactly, as a fraction. */
            int64_t num = (int64_t)(2 * i + 1) * s - d, den = 2 * (int64_t)d;
            if (num < 0)
                num = 0;
            int j = (int)(num / den);
            double frac = (double)(num % den) / (double)den;
            if (j >= s - 1) {
                j = s - 1;
                frac = 0;
            }
            m->first[i] = j;
            w[0] = (float)(1.0 - frac);
            if (j + 1 < s)
                w[1] = (float)frac;
        }
    }
    /* Keep every tap inside the source: shift windows that would run past the end. */
    for (int i = 0; i < d; i++) {
        float *w = m->weight + (size_t)i * (size_t)m->taps;
        while (m->first[i] + m->taps > s) {
            /* The last tap must be a zero pad; move the window left by one. */
            for (int k = m->taps - 1; k > 0; k--)
                w[k] = w[k - 1];
            w[0] = 0.0f;
            m->first[i]--;
        }
    }
    return 0;
}

/* Rounds, clamps and stores n floats as bytes. */
static void store_bytes(const float *v, uint8_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = v[i] + 0.5f;
        dst[i] = x <= 0.0f ? 0 : x >= 255.0f ? 255 : (uint8_t)x;
    }
}

static ae_status resize(const uint8_t *src, int sh, int sw, int c, uint8_t *dst, int dh, int dw,
                        ae_error *err)
{
    if (sh == dh && sw == dw) {
        memcpy(dst, src, (size_t)sh * (size_t)sw * (size_t)c);
        return AE_OK;
    }
    axis_map mx = {0}, my = {0};
    size_t row_in = (size_t)sw * (size_t)c, row_out = (size_t)dw * (size_t)c;
    float *tmp = malloc(sizeof *tmp * (size_t)sh * row_out);
    float *line = malloc(sizeof *line * row_out);
    if (!tmp || !line || axis_build(&mx, sw, dw) != 0 || axis_build(&my, sh, dh) != 0) {
        free(tmp);
        free(line);
        axis_free(&mx);
        axis_free(&my);
        return ae_fail(err, AE_ERR_NOMEM, "resizing %dx%d to %dx%d: out of memory", sw, sh, dw,
                       dh);
    }
    /* Along the width: tmp[y][x][ch]. */
    for (int y = 0; y < sh; y++) {
        const uint8_t *in = src + (size_t)y * row_in;
        float *out = tmp + (size_t)y * row_out;
        for (int x = 0; x < dw; x++) {
            const float *w = mx.weight + (size_t)x * (size_t)mx.taps;
            const uint8_t *p = in + (size_t)mx.first[x] * (size_t)c;
            for (int ch = 0; ch < c; ch++) {
                float acc = 0.0f;
                for (int k = 0; k < mx.taps; k++)
                    acc += w[k] * (float)p[(size_t)k * (size_t)c + (size_t)ch];
                out[(size_t)x * (size_t)c + (size_t)ch] = acc;
            }
        }
    }
    /* Along the height, a whole row at a time. */
    for (int y = 0; y < dh; y++) {
        const float *w = my.weight + (size_t)y * (size_t)my.taps;
        const float *in = tmp + (size_t)my.first[y] * row_out;
        for (size_t i = 0; i < row_out; i++)
            line[i] = w[0] * in[i];
        for (int k = 1; k < my.taps; k++) {
            const float *r = in + (size_t)k * row_out;
            for (size_t i = 0; i < row_out; i++)
                line[i] += w[k] * r[i];
        }
        store_bytes(line, dst + (size_t)y * row_out, row_out);
    }
    free(tmp);
    free(line);
    axis_free(&mx);
    axis_free(&my);
    return AE_OK;
}

ae_status ae_image_prepare(const ae_image *src, int height, int width, int channels,
                           uint8_t *dst, ae_error *err)
{
    if (!src || !src->pixels || src->height <= 0 || src->width <= 0 ||
        (src->channels != 1 && src->channels != 3))
        return ae_fail(err, AE_ERR_USAGE, "image to prepare is empty or has %d channels",
                       src ? src->channels : 0);
    if (height <= 0 || width <= 0 || (channels != 1 && channels != 3) ||
        height > AE_IMAGE_MAX_SIDE || width > AE_IMAGE_MAX_SIDE)
        return ae_fail(err, AE_ERR_USAGE, "cannot prepare an image of %dx%dx%d (height x width x "
                       "channels; channels must be 1 or 3)", height, width, channels);
    size_t n = (size_t)src->height * (size_t)src->width;
    if (src->channels == channels || channels == 3) {
        /* Gray -> RGB: resize the one channel, then copy it into three. */
        ae_status st = resize(src->pixels, src->height, src->width, src->channels, dst, height,
                              width, err);
        if (st != AE_OK || src->channels == channels)
            return st;
        for (size_t i = (size_t)height * (size_t)width; i-- > 0;) {
            uint8_t g = dst[i];
            dst[3 * i] = dst[3 * i + 1] = dst[3 * i + 2] = g;
        }
        return AE_OK;
    }
    /* RGB -> gray first (fewer pixels to resize afterwards). */
    uint8_t *gray = malloc(n);
    if (!gray)
        return ae_fail(err, AE_ERR_NOMEM, "converting %dx%d to gray: out of memory",
                       src->width, src->height);
    const uint8_t *p = src->pixels;
    for (size_t i = 0; i < n; i++, p += 3)
        gray[i] = (uint8_t)((299u * p[0] + 587u * p[1] + 114u * p[2] + 500u) / 1000u);
    ae_status st = resize(gray, src->height, src->width, 1, dst, height, width, err);
    free(gray);
    return st;
}
