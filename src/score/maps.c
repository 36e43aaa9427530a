/* Per-pixel maps of how badly an image was reconstructed, and the numbers a
 * score takes from them. Checked against scipy and numpy in
 * tests/test_score.c (fixtures from tools/score_reference.py). */
#include "aedet/score.h"
#include "score_internal.h"

#include <math.h>
#include <string.h>

void ae_squared_error_map(const float *x, const float *r, int h, int w, int c, float *map)
{
    size_t hw = (size_t)h * (size_t)w;
    if (c == 1) {
        for (size_t p = 0; p < hw; p++)
            map[p] = (x[p] - r[p]) * (x[p] - r[p]);
        return;
    }
    if (c == 3) { /* RGB written out, so the loop runs in vectors */
        for (size_t p = 0; p < hw; p++) {
            float d0 = x[3 * p] - r[3 * p], d1 = x[3 * p + 1] - r[3 * p + 1], d2 = x[3 * p + 2] - r[3 * p + 2];
            map[p] = (d0 * d0 + d1 * d1 + d2 * d2) / 3.0f;
        }
        return;
    }
    for (size_t p = 0; p < hw; p++) {
        float e = 0;
        for (int k = 0; k < c; k++) {
            float d = x[p * (size_t)c + (size_t)k] - r[p * (size_t)c + (size_t)k];
            e += d * d;
        }
        map[p] = e / (float)c;
    }
}

/* scipy's kernel: radius int(4 sigma + 0.5), weights exp(-x^2 / 2 sigma^2)
 * normalised to sum 1. Radii above this are not needed for sigma <= 8. */
#define MAX_RADIUS 32

static int gaussian_kernel(double sigma, float *weights)
{
    int radius = (int)(4.0 * sigma + 0.5);
    if (radius > MAX_RADIUS)
        radius = MAX_RADIUS;
    double sum = 0, v[2 * MAX_RADIUS + 1];
    for (int i = -radius; i <= radius; i++)
        sum += v[i + radius] = exp(-0.5 * (double)i * (double)i / (sigma * sigma));
    for (int i = 0; i <= 2 * radius; i++)
        weights[i] = (float)(v[i] / sum);
    return radius;
}

/* scipy's "reflect" boundary: the signal mirrored about its edges, period 2n. */
static int reflect(int i, int n)
{
    int period = 2 * n;
    i %= period;
    if (i < 0)
        i += period;
    return i < n ? i : period - 1 - i;
}

/* One row filtered by the kernel wt[0..2 radius], edges reflected (scipy's
 * "reflect"). Taps outermost, so the loop over pixels runs in vectors; the
 * edge pixels, whose taps reflect, one at a time. */
static void filter_row(const float *in, float *out, int w, const float *wt, int radius)
{
    int lo = radius < w ? radius : w, hi = w - radius > lo ? w - radius : lo;
    for (int x = lo; x < hi; x++)
        out[x] = 0;
    for (int t = -radius; t <= radius; t++) {
        float wv = wt[t + radius];
        for (int x = lo; x < hi; x++)
            out[x] += wv * in[x + t];
    }
    for (int x = 0; x < w; x++) {
        if (x == lo)
            x = hi;
        if (x >= w)
            break;
        float sum = 0;
        for (int t = -radius; t <= radius; t++)
            sum += wt[t + radius] * in[reflect(x + t, w)];
        out[x] = sum;
    }
}

/* map filtered in place by the same kernel along rows, then columns. */
static void separable_filter(float *map, int h, int w, const float *wt, int radius, float *scratch)
{
    for (int y = 0; y < h; y++)
        filter_row(map + (size_t)y * (size_t)w, scratch + (size_t)y * (size_t)w, w, wt, radius);
    for (int y = 0; y < h; y++) {
        float *out = map + (size_t)y * (size_t)w;
        memset(out, 0, (size_t)w * sizeof *out);
        for (int t = -radius; t <= radius; t++) {
            const float *in = scratch + (size_t)reflect(y + t, h) * (size_t)w;
            float wv = wt[t + radius];
            for (int x = 0; x < w; x++)
                out[x] += wv * in[x];
        }
    }
}

size_t ae_blur_scratch_floats(int h, int w) { return (size_t)h * (size_t)w; }

void ae_gaussian_blur(float *map, int h, int w, double sigma, float *scratch)
{
    if (!(sigma > 0))
        return;
    float wt[2 * MAX_RADIUS + 1];
    int radius = gaussian_kernel(sigma, wt);
    separable_filter(map, h, w, wt, radius, scratch);
}

/* A row of the grey image (the channels' mean), centred on 0.5: SSIM's
 * (co)variances do not change, and E[a^2] - E[a]^2 cancels less in float32.
 * One and three channels written out, so the loops run in vectors. */
static void grey_row(const float *px, int w, int c, float *out)
{
    if (c == 1)
        for (int i = 0; i < w; i++)
            out[i] = px[i] - 0.5f;
    else if (c == 3)
        for (int i = 0; i < w; i++)
            out[i] = (px[3 * i] + px[3 * i + 1] + px[3 * i + 2]) / 3.0f - 0.5f;
    else
        for (int i = 0; i < w; i++) {
            float sum = 0;
            for (int k = 0; k < c; k++)
                sum += px[(size_t)i * (size_t)c + (size_t)k];
            out[i] = sum / (float)c - 0.5f;
        }
}

/* sum[i] += enter[i] - leave[i] (leave may be NULL). */
static void add_row(float *sum, const float *enter, const float *leave, int w)
{
    if (leave)
        for (int i = 0; i < w; i++)
            sum[i] += enter[i] - leave[i];
    else
        for (int i = 0; i < w; i++)
            sum[i] += enter[i];
}

size_t ae_ssim_scratch_floats(int h, int w) { return 5 * ((size_t)h + 1) * (size_t)w; }

/* The five local moments SSIM needs (means of a, b, a^2, b^2, ab over a
 * window x window uniform window) without storing the moment images: each
 * row's moments are made and filtered along the row at once, then the
 * columns are summed row by row into the SSIM map. */
void ae_ssim_map(const float *x, const float *r, int h, int w, int c, int window, float *map, float *scratch)
{
    const float c1 = 0.01f * 0.01f, c2 = 0.03f * 0.03f;
    const float sample = (float)(window * window) / (float)(window * window - 1);
    const int radius = window / 2;
    float wt[2 * MAX_RADIUS + 1];
    for (int i = 0; i < window; i++)
        wt[i] = 1.0f / (float)window;
    size_t hw = (size_t)h * (size_t)w;
    float *rows = scratch + 5 * hw; /* 5 rows of w: one row's moments, later the column sums */
    for (int y = 0; y < h; y++) {
        const float *xr = x + (size_t)y * (size_t)w * (size_t)c, *rr = r + (size_t)y * (size_t)w * (size_t)c;
        float *m[5];
        for (int k = 0; k < 5; k++)
            m[k] = rows + (size_t)k * (size_t)w;
        grey_row(xr, w, c, m[0]);
        grey_row(rr, w, c, m[1]);
        for (int i = 0; i < w; i++)
            m[2][i] = m[0][i] * m[0][i], m[3][i] = m[1][i] * m[1][i], m[4][i] = m[0][i] * m[1][i];
        for (int k = 0; k < 5; k++)
            filter_row(m[k], scratch + (size_t)k * hw + (size_t)y * (size_t)w, w, wt, radius);
    }
    /* Down the columns, a running sum of each moment over the window's rows:
     * per step one row enters and one leaves, whatever the window. */
    const float norm = 1.0f / (float)window;
    memset(rows, 0, 5 * (size_t)w * sizeof *rows);
    for (int t = -radius; t <= radius; t++)
        for (int k = 0; k < 5; k++)
            add_row(rows + (size_t)k * (size_t)w, scratch + (size_t)k * hw + (size_t)reflect(t, h) * (size_t)w, NULL, w);
    for (int y = 0; y < h; y++) {
        for (int k = 0; y > 0 && k < 5; k++)
            add_row(rows + (size_t)k * (size_t)w, scratch + (size_t)k * hw + (size_t)reflect(y + radius, h) * (size_t)w,
                    scratch + (size_t)k * hw + (size_t)reflect(y - radius - 1, h) * (size_t)w, w);
        const float *sx = rows, *sr = sx + w, *sxx = sr + w, *srr = sxx + w, *sxr = srr + w;
        float *out = map + (size_t)y * (size_t)w;
        for (int i = 0; i < w; i++) {
            float mx = norm * sx[i], mr = norm * sr[i];
            float va = sample * (norm * sxx[i] - mx * mx), vb = sample * (norm * srr[i] - mr * mr);
            float cov = sample * (norm * sxr[i] - mx * mr);
            float ma = mx + 0.5f, mb = mr + 0.5f;
            out[i] = 1 - (2 * ma * mb + c1) * (2 * cov + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
        }
    }
}

/* The sum of |a[j] - b[j]|, j < n, in 8 independent lanes (vectors without
 * reassociating a float sum), added up in double. */
static double abs_diff_sum(const float *a, const float *b, size_t n)
{
    float lane[8] = {0};
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++)
            lane[l] += fabsf(a[j + (size_t)l] - b[j + (size_t)l]);
    double sum = 0;
    for (; j < n; j++)
        sum += fabsf(a[j] - b[j]);
    for (int l = 0; l < 8; l++)
        sum += lane[l];
    return sum;
}

double ae_image_detail(const float *x, int h, int w, int c)
{
    /* Every channel has as many neighbour pairs, so the mean over channels
     * of their means is the mean over all pairs: rows are contiguous. */
    size_t row = (size_t)w * (size_t)c;
    double across = 0, down = 0;
    for (int y = 0; y < h; y++) {
        const float *p = x + (size_t)y * row;
        across += abs_diff_sum(p + c, p, row - (size_t)c);
        if (y + 1 < h)
            down += abs_diff_sum(p + row, p, row);
    }
    double total = 0;
    if (w > 1)
        total += across / ((double)h * (double)(w - 1) * (double)c);
    if (h > 1)
        total += down / ((double)(h - 1) * (double)w * (double)c);
    return total;
}

/* Where output pixel i of n samples an input of size m: the two input
 * pixels and the weight of the second. */
static void bilinear_source(int i, int n, int m, int *a, int *b, float *t)
{
    double x = ((double)i + 0.5) * (double)m / (double)n - 0.5;
    if (x < 0)
        x = 0;
    int lo = (int)x;
    if (lo > m - 1)
        lo = m - 1;
    *a = lo;
    *b = lo + 1 < m ? lo + 1 : m - 1;
    *t = (float)(x - lo);
}

void ae_map_resize(const float *src, int h, int w, float *dst, int height, int width)
{
    for (int y = 0; y < height; y++) {
        int y0, y1;
        float ty;
        bilinear_source(y, height, h, &y0, &y1, &ty);
        const float *r0 = src + (size_t)y0 * (size_t)w, *r1 = src + (size_t)y1 * (size_t)w;
        for (int x = 0; x < width; x++) {
            int x0, x1;
            float tx;
            bilinear_source(x, width, w, &x0, &x1, &tx);
            float top = r0[x0] + tx * (r0[x1] - r0[x0]), bottom = r1[x0] + tx * (r1[x1] - r1[x0]);
            dst[(size_t)y * (size_t)width + (size_t)x] = top + ty * (bottom - top);
        }
    }
}

float ae_map_max(const float *map, size_t n)
{
    float m = -INFINITY;
    for (size_t i = 0; i < n; i++)
        m = map[i] > m ? map[i] : m;
    return m;
}

/* Selection with a three-way partition: afterwards v[0..k) hold the k
 * largest values (in any order). Median-of-three pivots keep it linear on
 * sorted maps, and runs of equal values (flat maps) end it at once. */
static void swap_floats(float *a, float *b)
{
    float t = *a;
    *a = *b, *b = t;
}

void ae_select_largest(float *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n; /* the k-th largest is in [lo, hi) */
    while (hi - lo > 1) {
        float a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi - 1];
        float pivot = a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
        /* [lo, gt) > pivot, [gt, i) == pivot, [lt, hi) < pivot */
        size_t gt = lo, i = lo, lt = hi;
        while (i < lt) {
            if (v[i] > pivot)
                swap_floats(&v[i++], &v[gt++]);
            else if (v[i] < pivot)
                swap_floats(&v[i], &v[--lt]);
            else
                i++;
        }
        if (k <= gt)
            hi = gt;
        else if (k <= lt)
            return;
        else
            lo = lt;
    }
}

/* Sift v[i] down a min-heap of n values. */
static void sift_down(float *heap, size_t n, size_t i)
{
    for (;;) {
        size_t m = i, l = 2 * i + 1, r = l + 1;
        if (l < n && heap[l] < heap[m])
            m = l;
        if (r < n && heap[r] < heap[m])
            m = r;
        if (m == i)
            return;
        swap_floats(&heap[i], &heap[m]);
        i = m;
    }
}

float ae_map_top_mean(float *map, size_t n, double percent)
{
    size_t k = (size_t)ceil(percent * (double)n / 100.0);
    k = k < 1 ? 1 : (k > n ? n : k);
    double sum = 0;
    if (k <= n / 16) {
        /* A few: a min-heap of the k largest in map[0..k); most values fail
         * the first comparison with its smallest. */
        for (size_t i = k / 2; i-- > 0;)
            sift_down(map, k, i);
        for (size_t i = k; i < n; i++)
            if (map[i] > map[0]) {
                map[0] = map[i];
                sift_down(map, k, 0);
            }
    } else
        ae_select_largest(map, n, k);
    for (size_t i = 0; i < k; i++)
        sum += map[i];
    return (float)(sum / (double)k);
}
