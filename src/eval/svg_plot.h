/* Internal to src/eval: HTML escaping for ae_text, and plots
 * drawn as inline SVG (axes, 1-2-5 ticks, grid, labels, legend, title), the
 * way a plotting library would draw them, deterministic and without
 * JavaScript. Used by the HTML report. */
#ifndef AEDET_EVAL_SVG_PLOT_H
#define AEDET_EVAL_SVG_PLOT_H

#include <stddef.h>

#include "common/text.h"

/* s with & < > " ' as entities (safe in text and in quoted attributes). */
void ae_text_escaped(ae_text *t, const char *s);

/* Tick positions at a 1-2-5 step (times a power of ten) covering [lo, hi]
 * with about `target` ticks; *lo and *hi are widened to whole steps, and an
 * empty range is widened around its value. Returns the count (at most max). */
int ae_nice_ticks(double *lo, double *hi, int target, int integer, double *ticks, int max,
                  double *step);
/* A tick label with as many decimals as the step needs ("0.25", "1e-05"). */
void ae_tick_label(double v, double step, char *buf, size_t size);

typedef enum {
    AE_LEGEND_TOP_RIGHT = 0,
    AE_LEGEND_TOP_LEFT,
    AE_LEGEND_BOTTOM_RIGHT,
    AE_LEGEND_BOTTOM_LEFT
} ae_legend_pos;

typedef struct {
    const char *id;     /* the svg element's id */
    const char *title, *xlabel, *ylabel;
    int width, height;  /* in px (the svg scales to its container) */
    double xmin, xmax, ymin, ymax; /* NaN: from the data, widened to nice ticks */
    int integer_x;      /* x ticks on whole numbers (epochs) */
    ae_legend_pos legend;
} ae_plot_axes;

typedef struct {
    const double *x, *y;
    size_t n;
    const char *label;  /* legend text, NULL: not in the legend */
    const char *color;  /* CSS colour */
    int dashed;
    int markers;        /* a dot at every point */
} ae_plot_line;

/* Line plot of num_lines series. */
void ae_svg_line_plot(ae_text *t, const ae_plot_axes *a, const ae_plot_line *lines, int num_lines);

typedef struct {
    const double *counts; /* bins values */
    const char *label;
    const char *color;
} ae_plot_hist;

/* Overlaid histograms on shared bins [lo + i step, lo + (i + 1) step), and a
 * vertical marker at vline (skipped when NaN) labelled vline_label at the
 * top. The legend takes a top corner (a->legend's first), never across the
 * marker or its label, and the y axis reaches high enough that no bar runs
 * into the legend or the label. */
void ae_svg_histogram(ae_text *t, const ae_plot_axes *a, double lo, double step, int bins,
                      const ae_plot_hist *h, int num_hist, double vline, const char *vline_label);

#endif
