/* Plots as inline SVG, and the text buffer the report is built in. */
#include "eval/svg_plot.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ae_text_escaped(ae_text *t, const char *s)
{
    if (!s)
        return;
    const char *run = s;
    for (const char *p = s;; p++) {
        const char *entity = NULL;
        switch (*p) {
        case '&': entity = "&amp;"; break;
        case '<': entity = "&lt;"; break;
        case '>': entity = "&gt;"; break;
        case '"': entity = "&quot;"; break;
        case '\'': entity = "&#39;"; break;
        case '\0': break;
        default: continue;
        }
        ae_text_put(t, run, (size_t)(p - run));
        if (!entity)
            return;
        ae_text_put(t, entity, strlen(entity));
        run = p + 1;
    }
}

/* ---- Ticks ------------------------------------------------------------------ */

int ae_nice_ticks(double *lo, double *hi, int target, int integer, double *ticks, int max,
                  double *step_out)
{
    double a = *lo, b = *hi;
    if (!isfinite(a) || !isfinite(b)) {
        a = 0;
        b = 1;
    }
    if (b < a) {
        double s = a;
        a = b;
        b = s;
    }
    if (b - a <= fabs(b) * 1e-12) { /* one value: a range around it */
        double pad = a != 0 ? fabs(a) * 0.5 : 1;
        a -= pad;
        b += pad;
    }
    double raw = (b - a) / (target > 1 ? target : 1);
    double mag = pow(10, floor(log10(raw)));
    double r = raw / mag;
    double step = (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
    if (integer && step < 1)
        step = 1;
    double first = floor(a / step + 1e-9), last = ceil(b / step - 1e-9);
    int n = 0;
    for (double k = first; k <= last && n < max; k++) {
        double v = k * step;
        ticks[n++] = fabs(v) < step * 1e-9 ? 0 : v;
    }
    *lo = first * step;
    *hi = last * step;
    *step_out = step;
    return n;
}

void ae_tick_label(double v, double step, char *buf, size_t size)
{
    if (v == 0) {
        snprintf(buf, size, "0");
        return;
    }
    int decimals = (int)ceil(-log10(step) - 1e-9);
    if (decimals < 0)
        decimals = 0;
    if (decimals > 6 || fabs(v) >= 1e6)
        snprintf(buf, size, "%.3g", v);
    else
        snprintf(buf, size, "%.*f", decimals, v);
}

/* ---- Frame: title, grid, ticks, axis labels ---------------------------------- */

enum { MARGIN_LEFT = 66, MARGIN_RIGHT = 26, MARGIN_TOP = 40, MARGIN_BOTTOM = 50, MAX_TICKS = 64 };

/* Text widths are estimated, as no fonts are measured here: these are the
 * widest averages of the fonts system-ui resolves to (DejaVu Sans on Debian)
 * at 12px, so boxes sized with them hold the text in those fonts and in the
 * narrower ones (Segoe UI, Roboto, Helvetica) alike. */
#define CHAR_WIDTH 7.2
#define BOLD_CHAR_WIDTH 7.8

typedef struct {
    double x0, x1, y0, y1;     /* plot area in px (y0 top) */
    double xmin, xmax, ymin, ymax;
    double xt[MAX_TICKS], yt[MAX_TICKS], xstep, ystep;
    int nx, ny;
} frame;

static double px_x(const frame *f, double x)
{
    return f->x0 + (x - f->xmin) / (f->xmax - f->xmin) * (f->x1 - f->x0);
}

static double px_y(const frame *f, double y)
{
    return f->y1 - (y - f->ymin) / (f->ymax - f->ymin) * (f->y1 - f->y0);
}

static void data_range(const double *v, size_t n, double *lo, double *hi)
{
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            continue;
        *lo = isnan(*lo) || v[i] < *lo ? v[i] : *lo;
        *hi = isnan(*hi) || v[i] > *hi ? v[i] : *hi;
    }
}

/* The mapping from data to px, with the ranges widened to whole ticks. */
static void make_frame(const ae_plot_axes *a, double xlo, double xhi, double ylo, double yhi, frame *f)
{
    f->nx = ae_nice_ticks(&xlo, &xhi, a->width >= 500 ? 8 : 6, a->integer_x, f->xt, MAX_TICKS, &f->xstep);
    f->ny = ae_nice_ticks(&ylo, &yhi, 5, 0, f->yt, MAX_TICKS, &f->ystep);
    f->x0 = MARGIN_LEFT;
    f->x1 = a->width - MARGIN_RIGHT;
    f->y0 = MARGIN_TOP;
    f->y1 = a->height - MARGIN_BOTTOM;
    f->xmin = xlo, f->xmax = xhi, f->ymin = ylo, f->ymax = yhi;
}

/* Opens the svg and draws everything of frame f but the data. */
static void begin_plot(ae_text *t, const ae_plot_axes *a, const frame *f)
{
    ae_text_printf(t, "<svg class=\"plot\" id=\"");
    ae_text_escaped(t, a->id);
    ae_text_printf(t, "\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"", a->width, a->height);
    ae_text_escaped(t, a->title);
    ae_text_printf(t, "\">\n<rect class=\"bg\" x=\"0\" y=\"0\" width=\"%d\" height=\"%d\"/>\n",
                   a->width, a->height);
    ae_text_printf(t, "<text class=\"title\" x=\"%.1f\" y=\"22\">", f->x0);
    ae_text_escaped(t, a->title);
    ae_text_printf(t, "</text>\n<g class=\"grid\">");
    for (int i = 0; i < f->nx; i++)
        ae_text_printf(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", px_x(f, f->xt[i]),
                       f->y0, px_x(f, f->xt[i]), f->y1);
    for (int i = 0; i < f->ny; i++)
        ae_text_printf(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", f->x0,
                       px_y(f, f->yt[i]), f->x1, px_y(f, f->yt[i]));
    ae_text_printf(t, "</g>\n<g class=\"ticks\">");
    char label[48];
    for (int i = 0; i < f->nx; i++) {
        double x = px_x(f, f->xt[i]);
        ae_tick_label(f->xt[i], f->xstep, label, sizeof label);
        ae_text_printf(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x, f->y1, x, f->y1 + 5);
        /* A label centred on the last tick may not fit the margin: it then
         * ends at the edge instead of being cut off. */
        double half = CHAR_WIDTH / 2 * (double)strlen(label);
        if (x + half > a->width - 2)
            ae_text_printf(t, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>", a->width - 2,
                           f->y1 + 18, label);
        else
            ae_text_printf(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>", x, f->y1 + 18,
                           label);
    }
    for (int i = 0; i < f->ny; i++) {
        double y = px_y(f, f->yt[i]);
        ae_tick_label(f->yt[i], f->ystep, label, sizeof label);
        ae_text_printf(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", f->x0 - 5, y, f->x0, y);
        ae_text_printf(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>", f->x0 - 8, y + 4, label);
    }
    ae_text_printf(t, "</g>\n<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>\n",
                   f->x0, f->y0, f->x1 - f->x0, f->y1 - f->y0);
    ae_text_printf(t, "<text class=\"axis-label\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">",
                   (f->x0 + f->x1) / 2, a->height - 12);
    ae_text_escaped(t, a->xlabel);
    ae_text_printf(t, "</text>\n<text class=\"axis-label\" transform=\"translate(16 %.1f) rotate(-90)\" "
                      "text-anchor=\"middle\">", (f->y0 + f->y1) / 2);
    ae_text_escaped(t, a->ylabel);
    ae_text_printf(t, "</text>\n");
}

/* One legend row's swatch: a line (style "line"/"dash") or a filled box. */
typedef struct {
    const char *label, *color;
    int kind; /* 0 line, 1 dashed line, 2 box, 3 dot */
} legend_row;

typedef struct {
    double x, y, w, h;
} box;

static int overlaps(box a, box b)
{
    return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/* The legend's size; 0 x 0 when no row has a label. */
static box legend_size(const legend_row *rows, int n)
{
    int shown = 0;
    size_t longest = 0;
    for (int i = 0; i < n; i++)
        if (rows[i].label) {
            shown++;
            longest = strlen(rows[i].label) > longest ? strlen(rows[i].label) : longest;
        }
    if (!shown)
        return (box){0, 0, 0, 0};
    return (box){0, 0, 42 + CHAR_WIDTH * (double)longest, 10 + 18.0 * shown};
}

/* The legend's box in a corner of the plot area, 10 px in. */
static box legend_at(const frame *f, ae_legend_pos pos, box size)
{
    int right = pos == AE_LEGEND_TOP_RIGHT || pos == AE_LEGEND_BOTTOM_RIGHT;
    int top = pos == AE_LEGEND_TOP_RIGHT || pos == AE_LEGEND_TOP_LEFT;
    size.x = right ? f->x1 - size.w - 10 : f->x0 + 10;
    size.y = top ? f->y0 + 10 : f->y1 - size.h - 10;
    return size;
}

static void legend(ae_text *t, box b, const legend_row *rows, int n)
{
    if (b.w <= 0)
        return;
    double x = b.x;
    ae_text_printf(t, "<g class=\"legend\"><rect class=\"box\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" rx=\"4\"/>",
                   b.x, b.y, b.w, b.h);
    double row_y = b.y + 5 + 9;
    for (int i = 0; i < n; i++) {
        if (!rows[i].label)
            continue;
        if (rows[i].kind == 3)
            ae_text_printf(t, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>", x + 17, row_y,
                           rows[i].color);
        else if (rows[i].kind == 2)
            ae_text_printf(t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"18\" height=\"10\" fill=\"%s\" "
                              "fill-opacity=\"0.55\" stroke=\"%s\"/>", x + 8, row_y - 5, rows[i].color,
                           rows[i].color);
        else
            ae_text_printf(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                              "stroke-width=\"2\"%s/>", x + 8, row_y, x + 26, row_y, rows[i].color,
                           rows[i].kind == 1 ? " stroke-dasharray=\"5 3\"" : "");
        ae_text_printf(t, "<text x=\"%.1f\" y=\"%.1f\">", x + 32, row_y + 4);
        ae_text_escaped(t, rows[i].label);
        ae_text_printf(t, "</text>");
        row_y += 18;
    }
    ae_text_printf(t, "</g>\n");
}

/* ---- Line plots ------------------------------------------------------------- */

void ae_svg_line_plot(ae_text *t, const ae_plot_axes *a, const ae_plot_line *lines, int num_lines)
{
    double xlo = a->xmin, xhi = a->xmax, ylo = a->ymin, yhi = a->ymax;
    for (int i = 0; i < num_lines; i++) {
        double dx0 = NAN, dx1 = NAN, dy0 = NAN, dy1 = NAN;
        data_range(lines[i].x, lines[i].n, &dx0, &dx1);
        data_range(lines[i].y, lines[i].n, &dy0, &dy1);
        if (isnan(a->xmin) && !isnan(dx0))
            xlo = isnan(xlo) || dx0 < xlo ? dx0 : xlo;
        if (isnan(a->xmax) && !isnan(dx1))
            xhi = isnan(xhi) || dx1 > xhi ? dx1 : xhi;
        if (isnan(a->ymin) && !isnan(dy0))
            ylo = isnan(ylo) || dy0 < ylo ? dy0 : ylo;
        if (isnan(a->ymax) && !isnan(dy1))
            yhi = isnan(yhi) || dy1 > yhi ? dy1 : yhi;
    }
    frame f;
    make_frame(a, xlo, xhi, ylo, yhi, &f);
    begin_plot(t, a, &f);
    legend_row rows[8];
    int nrows = 0;
    for (int i = 0; i < num_lines; i++) {
        const ae_plot_line *l = &lines[i];
        ae_text_printf(t, "<polyline class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
                          "stroke-linejoin=\"round\"%s points=\"", l->color,
                       l->dashed ? " stroke-dasharray=\"5 3\"" : "");
        for (size_t k = 0; k < l->n; k++)
            if (isfinite(l->x[k]) && isfinite(l->y[k]))
                ae_text_printf(t, "%s%.1f,%.1f", k ? " " : "", px_x(&f, l->x[k]), px_y(&f, l->y[k]));
        ae_text_printf(t, "\"/>\n");
        if (l->markers) {
            ae_text_printf(t, "<g fill=\"%s\">", l->color);
            for (size_t k = 0; k < l->n; k++)
                if (isfinite(l->x[k]) && isfinite(l->y[k]))
                    ae_text_printf(t, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\"/>", px_x(&f, l->x[k]),
                                   px_y(&f, l->y[k]));
            ae_text_printf(t, "</g>\n");
        }
        if (nrows < 8)
            rows[nrows++] = (legend_row){l->label, l->color, l->markers && l->n == 1 ? 3 : l->dashed};
    }
    legend(t, legend_at(&f, a->legend, legend_size(rows, nrows)), rows, nrows);
    ae_text_printf(t, "</svg>\n");
}

/* ---- Histograms ------------------------------------------------------------- */

/* The tallest bar of any series among the bins under the columns x..x+w. */
static double tallest_under(const frame *f, double lo, double step, int bins, const ae_plot_hist *h,
                            int num_hist, double x, double w)
{
    double tallest = 0;
    for (int i = 0; i < bins; i++) {
        double b0 = px_x(f, lo + step * i), b1 = px_x(f, lo + step * (i + 1));
        if (b1 < x - 2 || b0 > x + w + 2)
            continue;
        for (int k = 0; k < num_hist; k++)
            tallest = h[k].counts[i] > tallest ? h[k].counts[i] : tallest;
    }
    return tallest;
}

/* The top of the y axis that keeps bars of height `tallest` a few px below
 * px row `bottom` (at least `top`). */
static double headroom(const frame *f, double tallest, double bottom, double top)
{
    double free_share = 1 - (bottom + 6 - f->y0) / (f->y1 - f->y0);
    double need = free_share > 0.2 ? tallest / free_share : tallest * 5;
    return need > top ? need : top;
}

void ae_svg_histogram(ae_text *t, const ae_plot_axes *a, double lo, double step, int bins,
                      const ae_plot_hist *h, int num_hist, double vline, const char *vline_label)
{
    double top = 0;
    for (int k = 0; k < num_hist; k++)
        for (int i = 0; i < bins; i++)
            top = h[k].counts[i] > top ? h[k].counts[i] : top;
    double ymax = top > 0 ? top * 1.15 : 1;
    frame f; /* x is fixed now; the y range grows below to make room */
    make_frame(a, lo, lo + step * bins, 0, ymax, &f);

    legend_row rows[8];
    int nrows = 0;
    for (int k = 0; k < num_hist && nrows < 7; k++)
        rows[nrows++] = (legend_row){h[k].label, h[k].color, 2};
    int has_line = isfinite(vline);
    if (has_line)
        rows[nrows++] = (legend_row){"threshold", "#111827", 1};

    /* The marker's label sits at the top, on the side of the line with room. */
    double line_x = has_line ? px_x(&f, vline) : 0;
    int flip = line_x > (f.x0 + f.x1) / 2;
    double label_w = BOLD_CHAR_WIDTH * (double)(vline_label ? strlen(vline_label) : 0);
    box label = {flip ? line_x - 6 - label_w : line_x + 6, f.y0 + 4, label_w, 16};
    if (has_line)
        ymax = headroom(&f, tallest_under(&f, lo, step, bins, h, num_hist, label.x, label.w),
                        label.y + label.h, ymax);

    /* The legend goes to the top corner whose bars need the least headroom
     * below it, never across the marker or its label; the y axis then grows
     * until no bar reaches into it. */
    box size = legend_size(rows, nrows), best = {0, 0, 0, 0};
    double best_top = INFINITY;
    const ae_legend_pos corners[2] = {a->legend == AE_LEGEND_TOP_LEFT ? AE_LEGEND_TOP_LEFT : AE_LEGEND_TOP_RIGHT,
                                      a->legend == AE_LEGEND_TOP_LEFT ? AE_LEGEND_TOP_RIGHT : AE_LEGEND_TOP_LEFT};
    for (int c = 0; c < 2 && size.w > 0; c++) {
        box b = legend_at(&f, corners[c], size);
        if (has_line && line_x >= b.x - 4 && line_x <= b.x + b.w + 4)
            continue;
        if (has_line && overlaps(b, label))
            b.y = label.y + label.h + 6;
        double need = headroom(&f, tallest_under(&f, lo, step, bins, h, num_hist, b.x, b.w), b.y + b.h, ymax);
        if (need < best_top)
            best_top = need, best = b;
    }
    if (size.w > 0 && isinf(best_top)) { /* the marker crosses both corners: below its label */
        best = legend_at(&f, flip ? AE_LEGEND_TOP_LEFT : AE_LEGEND_TOP_RIGHT, size);
        best.y = label.y + label.h + 6;
        best_top = headroom(&f, tallest_under(&f, lo, step, bins, h, num_hist, best.x, best.w), best.y + best.h, ymax);
    }
    if (size.w > 0)
        ymax = best_top;
    make_frame(a, lo, lo + step * bins, 0, ymax, &f);
    begin_plot(t, a, &f);

    for (int k = 0; k < num_hist; k++) {
        ae_text_printf(t, "<g class=\"bars\" fill=\"%s\" fill-opacity=\"0.55\" stroke=\"%s\" "
                          "stroke-width=\"0.8\">", h[k].color, h[k].color);
        for (int i = 0; i < bins; i++) {
            if (!(h[k].counts[i] > 0))
                continue;
            double x0 = px_x(&f, lo + step * i), x1 = px_x(&f, lo + step * (i + 1));
            double y = px_y(&f, h[k].counts[i]);
            ae_text_printf(t, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/>", x0, y,
                           x1 - x0, f.y1 - y);
        }
        ae_text_printf(t, "</g>\n");
    }
    if (has_line) {
        ae_text_printf(t, "<g class=\"threshold\"><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">", line_x, f.y0, line_x, f.y1,
                       flip ? line_x - 6 : line_x + 6, label.y + 12, flip ? "end" : "start");
        ae_text_escaped(t, vline_label);
        ae_text_printf(t, "</text></g>\n");
    }
    legend(t, best, rows, nrows);
    ae_text_printf(t, "</svg>\n");
}
