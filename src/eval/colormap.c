/* The heat map colour ramp and the per-pixel error map of one image. */
#include "aedet/report.h"

#include <math.h>

/* matplotlib's "inferno" sampled at 0, 0.1, ..., 1; linear in between is
 * close to the full table and keeps its even lightness steps. */
static const uint8_t inferno_stops[11][3] = {
    {0, 0, 4},      {22, 11, 57},  {66, 10, 104},  {106, 23, 110}, {147, 38, 103}, {188, 55, 84},
    {221, 81, 58},  {243, 120, 25}, {252, 165, 10}, {246, 215, 70}, {252, 255, 164},
};

void ae_colormap_inferno(double t, uint8_t rgb[3])
{
    if (!(t > 0))
        t = 0;
    if (t > 1)
        t = 1;
    double pos = t * 10;
    int i = (int)pos;
    if (i > 9)
        i = 9;
    double f = pos - i;
    for (int c = 0; c < 3; c++)
        rgb[c] = (uint8_t)lround(inferno_stops[i][c] + f * (inferno_stops[i + 1][c] - inferno_stops[i][c]));
}

void ae_error_map(const float *x, const float *recon, int h, int w, int c, float *errors)
{
    size_t pixels = (size_t)h * (size_t)w;
    for (size_t p = 0; p < pixels; p++) {
        const float *a = x + p * (size_t)c, *b = recon + p * (size_t)c;
        float sum = 0;
        for (int k = 0; k < c; k++)
            sum += fabsf(a[k] - b[k]);
        errors[p] = sum / (float)c;
    }
}

void ae_heatmap_rgb(const float *values, size_t count, double vmax, uint8_t *rgb)
{
    uint8_t lut[256][3]; /* the ramp once, then a table look-up per pixel */
    for (int i = 0; i < 256; i++)
        ae_colormap_inferno(i / 255.0, lut[i]);
    double scale = vmax > 0 ? 255 / vmax : 0;
    for (size_t p = 0; p < count; p++) {
        double level = values[p] * scale + 0.5;
        int idx = level >= 255 ? 255 : level > 0 ? (int)level : 0;
        rgb[3 * p] = lut[idx][0];
        rgb[3 * p + 1] = lut[idx][1];
        rgb[3 * p + 2] = lut[idx][2];
    }
}
