/* The HTML report: one self-contained page (inline CSS and SVG, PNG data
 * URIs, no script that runs), built in memory and written atomically. */
#include "aedet/report.h"
#include "aedet/file.h"
#include "eval/svg_plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const color_normal = "#2563eb", *const color_anomaly = "#dc2626",
                         *const color_val = "#ea580c", *const color_chance = "#9ca3af";

/* A Content-Security-Policy that forbids every fetch: the page cannot reach
 * the network even if a string slipped through, and the browser says so. */
static const char *const page_head =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
    "img-src data:; style-src 'unsafe-inline'\">\n";

static const char *const page_style =
    "<style>\n"
    ":root{--bg:#f4f5f7;--card:#fff;--ink:#111827;--muted:#6b7280;--line:#e5e7eb;"
    "--accent:#2563eb;--bad:#dc2626;--warn:#b45309}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.5 system-ui,-apple-system,"
    "'Segoe UI',Roboto,'Helvetica Neue',Arial,'Noto Sans',sans-serif}\n"
    "main{max-width:1120px;margin:0 auto;padding:28px 20px 48px}\n"
    /* Names come from users' files and may be long with no place to break:
     * they break anywhere rather than push their box wider than the page. */
    "main{overflow-wrap:break-word}\n"
    "header h1{font-size:26px;margin:0 0 4px;overflow-wrap:anywhere}header p{margin:0;color:var(--muted);"
    "overflow-wrap:anywhere}\n"
    "section.card{background:var(--card);border:1px solid var(--line);border-radius:12px;"
    "padding:20px 22px;margin-top:18px;box-shadow:0 1px 2px rgba(0,0,0,.04)}\n"
    "h2{font-size:17px;margin:0 0 12px}h3{font-size:15px;margin:18px 0 8px;color:#374151}\n"
    ".note{color:var(--muted);font-size:13px;margin:8px 0 0}\n"
    /* Grid items default to min-width:auto, so one long number would widen its
     * tile past the grid's column: min-width 0 and breaking anywhere keep
     * every tile inside its column at any width. */
    ".stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:12px;margin-top:18px}\n"
    ".stat{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:14px 16px;"
    "min-width:0;overflow-wrap:anywhere}\n"
    ".stat .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}\n"
    ".stat .v{font-size:22px;font-weight:600;font-variant-numeric:tabular-nums;line-height:1.3}\n"
    ".stat .s{color:var(--muted);font-size:12px}\n"
    ".grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:18px}\n"
    ".grid2>div{min-width:0}\n"

    /* Fixed layout: column widths come from the first row, never from a long
     * name, which wraps inside its column instead of squeezing the others. */
    "table{border-collapse:collapse;width:100%;table-layout:fixed;font-variant-numeric:tabular-nums}\n"
    "th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--line);vertical-align:top}\n"
    "th{font-size:12px;color:var(--muted);font-weight:600;text-transform:uppercase;letter-spacing:.03em}\n"
    "td{overflow-wrap:anywhere}td.n,th.n{text-align:right;overflow-wrap:normal;white-space:nowrap}\n"
    "table.kv td:first-child{color:var(--muted);width:34%}table.metrics td:first-child{width:auto}\n"
    "table.metrics td.n{width:120px}\n"
    "#flagged-table th:nth-child(1){width:70px}#flagged-table th:nth-child(3){width:26%}"
    "#flagged-table th:nth-child(4){width:120px}\n"
    "tbody tr:nth-child(even){background:#fafafa}\n"
    ".confusion{width:auto}.confusion td,.confusion th{text-align:center;min-width:110px}\n"
    ".warnings{background:#fffbeb;border-color:#fcd34d}.warnings li{color:var(--warn)}\n"
    "svg.plot{width:100%;height:auto;display:block;font-family:inherit}\n"
    "svg.plot .bg{fill:#fff}svg.plot text{font-size:12px;fill:#374151}\n"
    "svg.plot .title{font-size:14px;font-weight:600;fill:var(--ink)}\n"
    "svg.plot .axis-label{font-size:12.5px;fill:#111827}\n"
    "svg.plot .grid line{stroke:#eceef1;stroke-width:1}svg.plot .ticks line{stroke:#6b7280}\n"
    "svg.plot .frame{fill:none;stroke:#9ca3af}\n"
    "svg.plot .legend .box{fill:#fff;fill-opacity:.92;stroke:#d1d5db}\n"
    "svg.plot .threshold line{stroke:#111827;stroke-width:1.6;stroke-dasharray:5 3}\n"
    "svg.plot .threshold text{font-weight:600;fill:#111827;paint-order:stroke;stroke:#fff;"
    "stroke-width:4px;stroke-linejoin:round}\n"
    ".gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:14px}\n"
    "figure.sample{margin:0;border:1px solid var(--line);border-radius:10px;padding:10px;background:#fcfcfd;"
    "min-width:0}\n"
    ".triple{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:6px;align-items:end}\n"
    ".panel{font-size:11px;color:var(--muted);text-align:center;min-width:0}\n"
    /* Each panel at the image's aspect (--ar, set per figure; --fw narrows
     * tall ones), the outline of the mask stretched over it in the same box. */
    ".shot{position:relative;aspect-ratio:var(--ar,1);width:var(--fw,100%);margin:2px auto 0;"
    "background:#000;border-radius:4px;overflow:hidden}\n"
    ".shot img{position:absolute;left:0;top:0;width:100%;height:100%;image-rendering:pixelated;display:block}\n"
    ".shot svg{position:absolute;left:0;top:0;width:100%;height:100%;overflow:hidden}\n"
    "svg.mask use.halo{fill:none;stroke:#000;stroke-opacity:.55;stroke-width:3px}\n"
    "svg.mask use.edge{fill:none;stroke:#22d3ee;stroke-width:1.5px}\n"
    "figcaption{margin-top:8px;font-size:13px;overflow-wrap:anywhere}figcaption .path{font-weight:600}\n"
    ".badge{display:inline-block;border-radius:999px;padding:0 8px;font-size:11px;font-weight:600;"
    "margin-left:4px}\n"
    ".badge.flag{background:#fee2e2;color:#991b1b}.badge.ok{background:#e0f2fe;color:#075985}\n"
    ".badge.anomaly{background:#fde68a;color:#78350f}\n"
    ".colorbar{display:flex;flex-wrap:wrap;align-items:center;gap:8px;font-size:12px;color:var(--muted);"
    "margin:4px 0 12px}\n"
    ".swatch{display:inline-block;width:18px;height:0;border-top:2px solid #22d3ee;vertical-align:middle}\n"
    ".colorbar svg{width:220px;height:12px}\n"
    "footer{color:var(--muted);font-size:12px;margin-top:24px;text-align:center}\n"
    "</style>\n</head>\n";

/* ---- Small pieces ------------------------------------------------------------- */

static void put_base64(ae_text *t, const uint8_t *b, size_t n)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char chunk[4096];
    size_t used = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)b[i + 1] << 8;
        if (i + 2 < n)
            v |= b[i + 2];
        chunk[used++] = digits[(v >> 18) & 63];
        chunk[used++] = digits[(v >> 12) & 63];
        chunk[used++] = i + 1 < n ? digits[(v >> 6) & 63] : '=';
        chunk[used++] = i + 2 < n ? digits[v & 63] : '=';
        if (used + 4 > sizeof chunk) {
            ae_text_put(t, chunk, used);
            used = 0;
        }
    }
    ae_text_put(t, chunk, used);
}

/* A number shown with `decimals` digits and kept exactly in data-value; NaN
 * (undefined) shows "n/a" with an empty data-value. */
static void put_metric(ae_text *t, const char *id, double v, int decimals)
{
    ae_text_printf(t, "<span class=\"num\" id=\"%s\" data-value=\"", id);
    if (isfinite(v))
        ae_text_printf(t, "%.17g\">%.*f</span>", v, decimals, v);
    else
        ae_text_printf(t, "\">n/a</span>");
}

static void put_count(ae_text *t, const char *id, size_t v)
{
    ae_text_printf(t, "<span class=\"num\" id=\"%s\" data-value=\"%zu\">%zu</span>", id, v, v);
}

/* "0.95 quantile = 0.0123, >= flagged": the rule as the histogram labels it. */
static void rule_label(const ae_threshold *th, char *buf, size_t size)
{
    char rule[64];
    switch (th->rule) {
    case AE_RULE_QUANTILE: snprintf(rule, sizeof rule, "%g quantile", th->param); break;
    case AE_RULE_MEAN_SD: snprintf(rule, sizeof rule, "mean + %g sd", th->param); break;
    case AE_RULE_BEST_F1: snprintf(rule, sizeof rule, "best F1"); break;
    default: snprintf(rule, sizeof rule, "fixed"); break;
    }
    snprintf(buf, size, "%s = %.6g, >= flagged", rule, th->value);
}

static void put_stat(ae_text *t, const char *key, const char *id, double v, int decimals,
                     const char *sub)
{
    ae_text_printf(t, "<div class=\"stat\"><div class=\"k\">%s</div><div class=\"v\">", key);
    put_metric(t, id, v, decimals);
    ae_text_printf(t, "</div><div class=\"s\">");
    ae_text_escaped(t, sub);
    ae_text_printf(t, "</div></div>\n");
}

/* ---- Sections ----------------------------------------------------------------- */

static void put_summary(ae_text *t, const ae_report *r)
{
    const ae_metrics_summary *m = r->metrics;
    char sub[96];
    ae_text_printf(t, "<div class=\"stats\">\n<div class=\"stat\"><div class=\"k\">images scored</div>"
                      "<div class=\"v\">");
    put_count(t, "count", m->count);
    ae_text_printf(t, "</div><div class=\"s\">score range %.4g to %.4g</div></div>\n", m->score_min,
                   m->score_max);
    ae_text_printf(t, "<div class=\"stat\"><div class=\"k\">flagged</div><div class=\"v\">");
    put_count(t, "flagged", m->flagged);
    ae_text_printf(t, "</div><div class=\"s\">%.1f%% of the scored images</div></div>\n",
                   m->count ? 100.0 * (double)m->flagged / (double)m->count : 0.0);
    /* Four digits fit the tile (smaller with an exponent); the header and
     * the histogram give six. */
    char shown[32];
    snprintf(shown, sizeof shown, "%.4g", m->threshold.value);
    ae_text_printf(t, "<div class=\"stat\"><div class=\"k\">threshold</div><div class=\"v\"%s>"
                      "<span class=\"num\" id=\"threshold-value\" data-value=\"%.17g\">%s</span>"
                      "</div><div class=\"s\">", strlen(shown) > 7 ? " style=\"font-size:18px\"" : "",
                   m->threshold.value, shown);
    ae_text_escaped(t, m->threshold.name);
    ae_text_printf(t, ", score &gt;= threshold</div></div>\n");
    if (m->has_labels) {
        ae_text_printf(t, "<div class=\"stat\"><div class=\"k\">anomalies found</div><div class=\"v\">");
        put_count(t, "anomalies-found", m->confusion.tp);
        ae_text_printf(t, "<span style=\"font-size:15px;color:var(--muted)\"> / %zu</span></div>"
                          "<div class=\"s\">known anomalies flagged</div></div>\n", m->num_anomalies);
        snprintf(sub, sizeof sub, "%zu anomalies vs %zu normal", m->num_anomalies, m->num_normals);
        put_stat(t, "ROC AUC", "stat-roc-auc", m->roc_auc, 4, sub);
    }
    if (isfinite(m->pixel_auc))
        put_stat(t, "pixel ROC AUC", "stat-pixel-roc-auc", m->pixel_auc, 4,
                 "every pixel's error against the masks");
    if (m->has_labels)
        put_stat(t, "F1", "stat-f1", m->f1, 4, "at the threshold");
    ae_text_printf(t, "</div>\n");
}

static void put_warnings(ae_text *t, const ae_metrics_summary *m)
{
    if (!m->warnings)
        return;
    ae_text_printf(t, "<section class=\"card warnings\" id=\"warnings\"><h2>Warnings</h2><ul>\n");
    for (int i = 0; i < 32; i++) {
        const char *w = (m->warnings & (1u << i)) ? ae_warning_text(1u << i) : NULL;
        if (!w)
            continue;
        ae_text_printf(t, "<li>");
        ae_text_escaped(t, w);
        ae_text_printf(t, "</li>\n");
    }
    ae_text_printf(t, "</ul></section>\n");
}

static void put_config(ae_text *t, const ae_report *r)
{
    ae_text_printf(t, "<section class=\"card\" id=\"config\"><h2>Configuration and data</h2>\n"
                      "<table class=\"kv\"><tbody>\n");
    for (size_t i = 0; i < r->num_config; i++) {
        ae_text_printf(t, "<tr><td>");
        ae_text_escaped(t, r->config[i].key);
        ae_text_printf(t, "</td><td class=\"path\">");
        ae_text_escaped(t, r->config[i].value);
        ae_text_printf(t, "</td></tr>\n");
    }
    ae_text_printf(t, "</tbody></table></section>\n");
}

static ae_status put_losses(ae_text *t, const ae_report *r, ae_error *err)
{
    ae_text_printf(t, "<section class=\"card\" id=\"training\"><h2>Training</h2>\n");
    size_t n = r->num_train_losses > r->num_val_losses ? r->num_train_losses : r->num_val_losses;
    if (n == 0) {
        ae_text_printf(t, "<p class=\"note\">The model holds no loss history.</p></section>\n");
        return AE_OK;
    }
    double *epochs = malloc(n * sizeof *epochs);
    if (!epochs)
        return ae_fail(err, AE_ERR_NOMEM, "report: out of memory for %zu epochs", n);
    for (size_t i = 0; i < n; i++)
        epochs[i] = (double)(i + 1);
    ae_plot_line lines[2];
    int nl = 0;
    int markers = n <= 60;
    if (r->num_train_losses)
        lines[nl++] = (ae_plot_line){epochs, r->train_losses, r->num_train_losses, "training loss",
                                     color_normal, 0, markers};
    if (r->num_val_losses)
        lines[nl++] = (ae_plot_line){epochs, r->val_losses, r->num_val_losses, "validation loss",
                                     color_val, 0, markers};
    ae_plot_axes a = {"loss-plot", "Loss per epoch (mean squared error)", "epoch", "loss",
                      1040, 340, 1, NAN, NAN, NAN, 1, AE_LEGEND_TOP_RIGHT};
    if (n == 1)
        a.xmin = 0, a.xmax = 2;
    ae_svg_line_plot(t, &a, lines, nl);
    free(epochs);
    ae_text_printf(t, "<p class=\"note\">Final training loss ");
    put_metric(t, "final-train-loss", r->num_train_losses ? r->train_losses[r->num_train_losses - 1] : NAN, 6);
    ae_text_printf(t, ", final validation loss ");
    put_metric(t, "final-val-loss", r->num_val_losses ? r->val_losses[r->num_val_losses - 1] : NAN, 6);
    ae_text_printf(t, " after %zu epochs.</p></section>\n", n);
    return AE_OK;
}

static ae_status put_histogram(ae_text *t, const ae_report *r, ae_error *err)
{
    const ae_metrics_summary *m = r->metrics;
    double thr = m->threshold.value;
    double lo = m->score_min, hi = m->score_max;
    if (isfinite(thr)) {
        lo = thr < lo ? thr : lo;
        hi = thr > hi ? thr : hi;
    }
    enum { BINS = AE_REPORT_HIST_BINS };
    double step = (hi - lo) / BINS;
    if (!(step > 0)) { /* every score equal: a narrow range around it */
        step = (lo != 0 ? fabs(lo) : 1) * 0.01;
        lo -= step * BINS / 2;
    }
    double *counts = calloc(2 * BINS, sizeof *counts);
    if (!counts)
        return ae_fail(err, AE_ERR_NOMEM, "report: out of memory for the histogram");
    size_t class_n[2] = {0, 0};
    for (size_t i = 0; i < r->count; i++) {
        double b = floor((r->scores[i] - lo) / step);
        int bin = b < 0 ? 0 : b >= BINS ? BINS - 1 : (int)b;
        int cls = r->labels ? r->labels[i] != 0 : 0;
        counts[cls * BINS + bin]++;
        class_n[cls]++;
    }
    char normal_label[64], anomaly_label[64], vlabel[128];
    ae_plot_hist h[2];
    int nh = 0;
    const char *ylabel = "images";
    if (r->labels) { /* shares, so a rare class stays visible next to a big one */
        for (int c = 0; c < 2; c++)
            for (int b = 0; b < BINS && class_n[c]; b++)
                counts[c * BINS + b] *= 100.0 / (double)class_n[c];
        snprintf(normal_label, sizeof normal_label, "normal (n = %zu)", class_n[0]);
        snprintf(anomaly_label, sizeof anomaly_label, "anomaly (n = %zu)", class_n[1]);
        if (class_n[0])
            h[nh++] = (ae_plot_hist){counts, normal_label, color_normal};
        if (class_n[1])
            h[nh++] = (ae_plot_hist){counts + BINS, anomaly_label, color_anomaly};
        ylabel = "% of the class";
    } else {
        snprintf(normal_label, sizeof normal_label, "all images (n = %zu)", class_n[0]);
        h[nh++] = (ae_plot_hist){counts, normal_label, color_normal};
    }
    rule_label(&m->threshold, vlabel, sizeof vlabel);
    ae_plot_axes a = {"score-histogram", "Reconstruction error per image",
                      "reconstruction error (mean squared error)", ylabel, 1040, 380,
                      NAN, NAN, NAN, NAN, 0, AE_LEGEND_TOP_RIGHT};
    ae_text_printf(t, "<section class=\"card\" id=\"scores\"><h2>Scores and threshold</h2>\n");
    ae_svg_histogram(t, &a, lo, step, BINS, h, nh, thr, vlabel);
    free(counts);
    const ae_threshold *th = &m->threshold;
    ae_text_printf(t, "<p class=\"note\" id=\"threshold-rule\">Threshold: ");
    ae_text_escaped(t, vlabel);
    if (th->rule == AE_RULE_QUANTILE)
        ae_text_printf(t, " (numpy's linear interpolation)");
    if (th->num_values)
        ae_text_printf(t, ", computed on %zu values", th->num_values);
    if (th->source[0]) {
        ae_text_printf(t, " from the ");
        ae_text_escaped(t, th->source);
    }
    ae_text_printf(t, ". An image is flagged when its error is &gt;= the threshold. %d bins of %.4g; "
                      "every scored image is counted.</p></section>\n", BINS, step);
    return AE_OK;
}

/* Evenly spaced points of a long curve, first and last kept. */
static size_t subsample(const ae_curve *c, double *x, double *y)
{
    size_t n = c->count, keep = n > AE_REPORT_MAX_CURVE_POINTS ? AE_REPORT_MAX_CURVE_POINTS : n;
    for (size_t k = 0; k < keep; k++) {
        size_t i = keep > 1 ? (size_t)((double)k * (double)(n - 1) / (double)(keep - 1) + 0.5) : 0;
        x[k] = c->x[i];
        y[k] = c->y[i];
    }
    return keep;
}

static ae_status put_curves(ae_text *t, const ae_report *r, ae_error *err)
{
    const ae_metrics_summary *m = r->metrics;
    if (!r->labels || !isfinite(m->roc_auc))
        return AE_OK;
    ae_curve roc = {0}, pr = {0};
    ae_status st = ae_roc_curve(r->scores, r->labels, r->count, &roc, err);
    if (st == AE_OK)
        st = ae_pr_curve(r->scores, r->labels, r->count, &pr, err);
    double *buf = st == AE_OK ? malloc(4 * AE_REPORT_MAX_CURVE_POINTS * sizeof *buf) : NULL;
    if (st == AE_OK && !buf)
        st = ae_fail(err, AE_ERR_NOMEM, "report: out of memory for the curves");
    if (st != AE_OK) {
        ae_curve_free(&roc);
        ae_curve_free(&pr);
        return st;
    }
    double *rx = buf, *ry = buf + AE_REPORT_MAX_CURVE_POINTS;
    double *px = buf + 2 * AE_REPORT_MAX_CURVE_POINTS, *py = buf + 3 * AE_REPORT_MAX_CURVE_POINTS;
    size_t nr = subsample(&roc, rx, ry), np = subsample(&pr, px, py);
    char roc_label[64], pr_label[64], chance_label[64];
    snprintf(roc_label, sizeof roc_label, "ROC (AUC = %.4f)", m->roc_auc);
    snprintf(pr_label, sizeof pr_label, "PR (AP = %.4f)", m->average_precision);
    double prevalence = (double)m->num_anomalies / (double)m->count;
    snprintf(chance_label, sizeof chance_label, "chance (prevalence %.3g)", prevalence);
    static const double diag[2] = {0, 1};
    double flat[2] = {prevalence, prevalence};
    double op_fpr = m->num_normals ? (double)m->confusion.fp / (double)m->num_normals : NAN;
    double op_recall = m->recall, op_precision = m->flagged ? m->precision : NAN;

    ae_text_printf(t, "<section class=\"card\" id=\"curves\"><h2>How well the errors rank the anomalies</h2>\n"
                      "<div class=\"grid2\">\n<div id=\"roc\">\n");
    ae_plot_line roc_lines[3] = {
        {diag, diag, 2, "chance", color_chance, 1, 0},
        {rx, ry, nr, roc_label, color_normal, 0, 0},
        {&op_fpr, &m->recall, 1, "threshold", "#111827", 0, 1},
    };
    ae_plot_axes ra = {"roc-plot", "ROC curve", "false positive rate", "true positive rate (recall)",
                       520, 440, 0, 1, 0, 1, 0, AE_LEGEND_BOTTOM_RIGHT};
    ae_svg_line_plot(t, &ra, roc_lines, 3);
    ae_text_printf(t, "<p class=\"note\">%zu points%s. ROC AUC ", roc.count,
                   roc.count > nr ? ", drawn through an even subsample" : "");
    put_metric(t, "roc-auc", m->roc_auc, 4);
    ae_text_printf(t, ".</p></div>\n<div id=\"pr\">\n");
    ae_plot_line pr_lines[3] = {
        {diag, flat, 2, chance_label, color_chance, 1, 0},
        {px, py, np, pr_label, color_anomaly, 0, 0},
        {&op_recall, &op_precision, 1, "threshold", "#111827", 0, 1},
    };
    ae_plot_axes pa = {"pr-plot", "Precision-recall curve", "recall", "precision", 520, 440, 0, 1,
                       0, 1, 0, AE_LEGEND_BOTTOM_LEFT};
    ae_svg_line_plot(t, &pa, pr_lines, 3);
    ae_text_printf(t, "<p class=\"note\">%zu points%s. Average precision ", pr.count,
                   pr.count > np ? ", drawn through an even subsample" : "");
    put_metric(t, "average-precision", m->average_precision, 4);
    ae_text_printf(t, ".</p></div>\n</div></section>\n");
    free(buf);
    ae_curve_free(&roc);
    ae_curve_free(&pr);
    return AE_OK;
}

static void put_metrics(ae_text *t, const ae_report *r)
{
    const ae_metrics_summary *m = r->metrics;
    ae_text_printf(t, "<section class=\"card\" id=\"metrics-table\"><h2>Metrics</h2>\n");
    if (!m->has_labels) {
        ae_text_printf(t, "<p>No labels: ");
        put_count(t, "flagged-count", m->flagged);
        ae_text_printf(t, " of %zu images flagged. Precision, recall and the curves need labels.</p>"
                          "</section>\n", m->count);
        return;
    }
    const struct {
        const char *name, *id;
        double v;
    } rows[] = {
        {"precision (flagged that are anomalies)", "precision", m->precision},
        {"recall (anomalies that are flagged)", "recall", m->recall},
        {"F1", "f1", m->f1},
        {"best F1 over all thresholds", "best-f1", m->best_f1},
    };
    ae_text_printf(t, "<div class=\"grid2\"><div><table class=\"kv metrics\"><tbody>\n");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        ae_text_printf(t, "<tr><td>%s</td><td class=\"n\">", rows[i].name);
        put_metric(t, rows[i].id, rows[i].v, 4);
        ae_text_printf(t, "</td></tr>\n");
    }
    ae_text_printf(t, "<tr><td>ROC AUC</td><td class=\"n\">");
    put_metric(t, "metric-roc-auc", m->roc_auc, 4);
    ae_text_printf(t, "</td></tr>\n<tr><td>average precision</td><td class=\"n\">");
    put_metric(t, "metric-average-precision", m->average_precision, 4);
    ae_text_printf(t, "</td></tr>\n<tr><td>best-F1 threshold</td><td class=\"n\">");
    put_metric(t, "best-f1-threshold", m->best_f1_threshold, 6);
    ae_text_printf(t, "</td></tr>\n<tr><td>anomalies found</td><td class=\"n\">");
    put_count(t, "tp-found", m->confusion.tp);
    ae_text_printf(t, " of %zu</td></tr>\n", m->num_anomalies);
    if (isfinite(m->pixel_auc)) {
        ae_text_printf(t, "<tr><td>pixel ROC AUC</td><td class=\"n\">");
        put_metric(t, "pixel-roc-auc", m->pixel_auc, 4);
        ae_text_printf(t, "</td></tr>\n");
    }
    for (int i = 0; i < m->num_class_auc && i < AE_MAX_CLASS_AUC; i++) {
        int c = m->class_auc[i].class_id;
        const char *name = c >= 0 && c < r->num_class_names && r->class_names ? r->class_names[c] : NULL;
        ae_text_printf(t, "<tr class=\"class-auc\"><td>ROC AUC, ");
        if (name) {
            ae_text_printf(t, "<span class=\"class-name\">");
            ae_text_escaped(t, name);
            ae_text_printf(t, "</span> (class %d)", c);
        } else
            ae_text_printf(t, "class %d", c);
        ae_text_printf(t, " vs normal (%zu images)</td><td class=\"n\">", m->class_auc[i].count);
        char id[32];
        snprintf(id, sizeof id, "class-auc-%d", m->class_auc[i].class_id);
        put_metric(t, id, m->class_auc[i].auc, 4);
        ae_text_printf(t, "</td></tr>\n");
    }
    ae_text_printf(t, "</tbody></table></div>\n<div><h3 style=\"margin-top:0\">Confusion matrix</h3>"
                      "<table class=\"confusion\"><thead><tr><th></th><th>flagged</th><th>not flagged</th>"
                      "</tr></thead><tbody>\n<tr><th>anomaly</th><td>");
    put_count(t, "tp", m->confusion.tp);
    ae_text_printf(t, "</td><td>");
    put_count(t, "fn", m->confusion.fn);
    ae_text_printf(t, "</td></tr>\n<tr><th>normal</th><td>");
    put_count(t, "fp", m->confusion.fp);
    ae_text_printf(t, "</td><td>");
    put_count(t, "tn", m->confusion.tn);
    ae_text_printf(t, "</td></tr>\n</tbody></table></div></div></section>\n");
}

/* The outline of a mask as one SVG path in mask pixels: every edge between
 * a marked pixel and an unmarked one or the border, runs merged. */
static void put_mask_path(ae_text *t, const uint8_t *mask, int h, int w)
{
    for (int y = 0; y <= h; y++) /* the edges along row boundary y */
        for (int x = 0; x < w;) {
            int above = y > 0 && mask[(size_t)(y - 1) * w + x], below = y < h && mask[(size_t)y * w + x];
            if (!above == !below) {
                x++;
                continue;
            }
            int start = x;
            while (x < w && !(y > 0 && mask[(size_t)(y - 1) * w + x]) != !(y < h && mask[(size_t)y * w + x]))
                x++;
            ae_text_printf(t, "M%d %dh%d", start, y, x - start);
        }
    for (int x = 0; x <= w; x++) /* and along column boundary x */
        for (int y = 0; y < h;) {
            int left = x > 0 && mask[(size_t)y * w + x - 1], right = x < w && mask[(size_t)y * w + x];
            if (!left == !right) {
                y++;
                continue;
            }
            int start = y;
            while (y < h && !(x > 0 && mask[(size_t)y * w + x - 1]) != !(x < w && mask[(size_t)y * w + x]))
                y++;
            ae_text_printf(t, "M%d %dv%d", x, start, y - start);
        }
}

static int has_outline(const ae_report_image *im)
{
    if (!im->mask || im->mask_height <= 0 || im->mask_width <= 0)
        return 0;
    for (size_t p = 0, n = (size_t)im->mask_height * (size_t)im->mask_width; p < n; p++)
        if (im->mask[p])
            return 1;
    return 0;
}

/* Bytes one gallery entry adds to the page at most: its images in base64,
 * the outline and the markup around them. */
static size_t gallery_cost(const ae_report_image *im)
{
    /* markup, and the name and label escaped at worst ('"' is 6 bytes) */
    size_t bytes = 1200 + 6 * (strlen(im->name ? im->name : "") + strlen(im->label ? im->label : ""));
    const size_t lens[3] = {im->input_len, im->recon_len, im->heat_len};
    for (int k = 0; k < 3; k++)
        bytes += (lens[k] + 2) / 3 * 4;
    if (has_outline(im)) {
        ae_text path = {0};
        put_mask_path(&path, im->mask, im->mask_height, im->mask_width);
        bytes += path.failed ? SIZE_MAX / 4 : path.len;
        free(path.s);
    }
    return bytes;
}

/* width / height to show an entry at: its own, else its PNG's (IHDR). */
static double entry_aspect(const ae_report_image *im)
{
    if (im->aspect > 0 && isfinite(im->aspect))
        return im->aspect;
    const uint8_t *p = im->input_png;
    if (p && im->input_len >= 24 && !memcmp(p + 12, "IHDR", 4)) {
        uint32_t w = (uint32_t)p[16] << 24 | (uint32_t)p[17] << 16 | (uint32_t)p[18] << 8 | p[19];
        uint32_t h = (uint32_t)p[20] << 24 | (uint32_t)p[21] << 16 | (uint32_t)p[22] << 8 | p[23];
        if (w && h)
            return (double)w / (double)h;
    }
    return 1;
}

static void put_panel(ae_text *t, const char *what, const uint8_t *png, size_t len,
                      const ae_report_image *im, const char *mask_id, int first)
{
    ae_text_printf(t, "<div class=\"panel\">%s<div class=\"shot\">", what);
    if (png && len) {
        ae_text_printf(t, "<img alt=\"%s\" src=\"data:image/png;base64,", what);
        put_base64(t, png, len);
        ae_text_printf(t, "\">");
    }
    if (mask_id) { /* the path once per entry, drawn by reference in each panel */
        ae_text_printf(t, "<svg class=\"mask\" viewBox=\"0 0 %d %d\" preserveAspectRatio=\"none\" "
                          "aria-hidden=\"true\">", im->mask_width, im->mask_height);
        if (first) {
            ae_text_printf(t, "<defs><path id=\"%s\" vector-effect=\"non-scaling-stroke\" d=\"", mask_id);
            put_mask_path(t, im->mask, im->mask_height, im->mask_width);
            ae_text_printf(t, "\"/></defs>");
        }
        ae_text_printf(t, "<use class=\"halo\" href=\"#%s\"/><use class=\"edge\" href=\"#%s\"/></svg>",
                       mask_id, mask_id);
    }
    ae_text_printf(t, "</div></div>");
}

static void put_gallery_set(ae_text *t, const char *id, const ae_report_image *im, size_t n,
                            double threshold)
{
    ae_text_printf(t, "<div class=\"gallery\" id=\"%s\">\n", id);
    for (size_t i = 0; i < n; i++) {
        double aspect = entry_aspect(&im[i]);
        /* Tall images at most 1/0.6 of the panel's width high. */
        double fw = aspect < 0.6 ? 100 * aspect / 0.6 : 100;
        ae_text_printf(t, "<figure class=\"sample\"><div class=\"triple\" data-aspect=\"%.6g\" "
                          "style=\"--ar:%.6g;--fw:%.4g%%\">", aspect, aspect, fw);
        char mask_id[64];
        snprintf(mask_id, sizeof mask_id, "%s-mask-%zu", id, i);
        const char *mid = has_outline(&im[i]) ? mask_id : NULL;
        put_panel(t, "input", im[i].input_png, im[i].input_len, &im[i], mid, 1);
        put_panel(t, "reconstruction", im[i].recon_png, im[i].recon_len, &im[i], mid, 0);
        put_panel(t, "error", im[i].heat_png, im[i].heat_len, &im[i], mid, 0);
        ae_text_printf(t, "</div><figcaption><div class=\"path\">");
        ae_text_escaped(t, im[i].name);
        ae_text_printf(t, "</div><div>score <b class=\"num\" data-value=\"%.9g\">%.6f</b>", im[i].score,
                       im[i].score);
        if (im[i].label) {
            ae_text_printf(t, " &middot; label ");
            ae_text_escaped(t, im[i].label);
        }
        if (im[i].is_anomaly == 1)
            ae_text_printf(t, "<span class=\"badge anomaly\">known anomaly</span>");
        ae_text_printf(t, (double)im[i].score >= threshold ? "<span class=\"badge flag\">flagged</span>"
                                                            : "<span class=\"badge ok\">not flagged</span>");
        ae_text_printf(t, "</div></figcaption></figure>\n");
    }
    ae_text_printf(t, "</div>\n");
}

/* The gallery's own markup (headings, colour bar, notes) at most. */
#define GALLERY_MARKUP 4096

/* How many of each set fit the image budget, taken in turns (the most
 * anomalous, a typical one, the next most anomalous, ...): each set keeps a
 * prefix, so what is shown is still "the first K". */
static void fit_budget(const ae_report *r, size_t *na, size_t *nt)
{
    size_t budget = r->image_budget ? r->image_budget : AE_REPORT_IMAGE_BUDGET;
    size_t used = GALLERY_MARKUP + (r->typical_note ? 6 * strlen(r->typical_note) : 0);
    int full_a = used > budget, full_t = used > budget;
    *na = *nt = 0;
    size_t n = r->num_anomalous > r->num_typical ? r->num_anomalous : r->num_typical;
    for (size_t i = 0; i < n; i++) {
        if (!full_a && i < r->num_anomalous) {
            size_t c = gallery_cost(&r->anomalous[i]);
            if (c <= budget - used)
                used += c, ++*na;
            else
                full_a = 1;
        }
        if (!full_t && i < r->num_typical) {
            size_t c = gallery_cost(&r->typical[i]);
            if (c <= budget - used)
                used += c, ++*nt;
            else
                full_t = 1;
        }
    }
}

static void put_gallery(ae_text *t, const ae_report *r)
{
    if (!r->num_anomalous && !r->num_typical)
        return;
    size_t na, nt;
    fit_budget(r, &na, &nt);
    int outlines = 0;
    for (size_t i = 0; i < na; i++)
        outlines |= has_outline(&r->anomalous[i]);
    for (size_t i = 0; i < nt; i++)
        outlines |= has_outline(&r->typical[i]);
    ae_text_printf(t, "<section class=\"card\" id=\"gallery\"><h2>Gallery</h2>\n<div class=\"colorbar\">"
                      "<span>error heat map: mean |input &minus; reconstruction| per pixel, 0</span>"
                      "<svg viewBox=\"0 0 220 12\" preserveAspectRatio=\"none\"><defs>"
                      "<linearGradient id=\"inferno\">");
    for (int i = 0; i <= 10; i++) {
        uint8_t c[3];
        ae_colormap_inferno(i / 10.0, c);
        ae_text_printf(t, "<stop offset=\"%d%%\" stop-color=\"#%02x%02x%02x\"/>", i * 10, c[0], c[1], c[2]);
    }
    ae_text_printf(t, "</linearGradient></defs><rect width=\"220\" height=\"12\" fill=\"url(#inferno)\"/>"
                      "</svg><span>%.3g and above (one scale for every image)</span>", r->heat_max);
    if (outlines)
        ae_text_printf(t, "<span id=\"mask-legend\"><span class=\"swatch\"></span> outline of the "
                          "ground-truth mask</span>");
    ae_text_printf(t, "</div>\n");
    size_t left_out = r->num_anomalous - na + r->num_typical - nt;
    if (left_out)
        ae_text_printf(t, "<p class=\"note\" id=\"gallery-left-out\" data-value=\"%zu\">%zu of the %zu "
                          "gallery images were left out to keep the page small (its images may take %zu KiB); "
                          "the scores CSV lists every image.</p>\n", left_out, left_out,
                       r->num_anomalous + r->num_typical,
                       (r->image_budget ? r->image_budget : AE_REPORT_IMAGE_BUDGET) / 1024);
    if (na) {
        ae_text_printf(t, "<h3>The %zu most anomalous images</h3>\n", na);
        put_gallery_set(t, "gallery-anomalous", r->anomalous, na, r->metrics->threshold.value);
    }
    if (nt) {
        ae_text_printf(t, "<h3>Normal-looking images</h3>\n");
        if (r->typical_note) {
            ae_text_printf(t, "<p class=\"note\" style=\"margin:-4px 0 10px\">");
            ae_text_escaped(t, r->typical_note);
            ae_text_printf(t, "</p>\n");
        }
        put_gallery_set(t, "gallery-typical", r->typical, nt, r->metrics->threshold.value);
    }
    ae_text_printf(t, "</section>\n");
}

static ae_status put_flagged(ae_text *t, const ae_report *r, ae_error *err)
{
    double thr = r->metrics->threshold.value;
    size_t nf = 0;
    for (size_t i = 0; i < r->count; i++)
        nf += (double)r->scores[i] >= thr;
    ae_text_printf(t, "<section class=\"card\" id=\"flagged\"><h2>Flagged images (%zu)</h2>\n", nf);
    if (nf == 0) {
        ae_text_printf(t, "<p>No image has an error &gt;= the threshold.</p></section>\n");
        return AE_OK;
    }
    /* Every flagged score ranks above every unflagged one, so the flagged rows
     * are the first nf of the full ranking. */
    size_t *order = r->count <= SIZE_MAX / sizeof *order ? malloc(r->count * sizeof *order) : NULL;
    if (!order)
        return ae_fail(err, AE_ERR_NOMEM, "report: out of memory ranking %zu flagged images", nf);
    ae_status st = ae_rank_by_score(r->scores, r->count, order, err);
    if (st != AE_OK) {
        free(order);
        return st;
    }
    size_t shown = nf < AE_REPORT_MAX_ROWS ? nf : AE_REPORT_MAX_ROWS;
    ae_text_printf(t, "<table id=\"flagged-table\"><thead><tr><th class=\"n\">rank</th><th>image</th>"
                      "<th>label</th><th class=\"n\">score</th></tr></thead><tbody>\n");
    char buf[512];
    for (size_t j = 0; j < shown; j++) {
        size_t i = order[j];
        ae_text_printf(t, "<tr><td class=\"n\">%zu</td><td class=\"path\">", j + 1);
        if (r->item_name)
            ae_text_escaped(t, r->item_name(r->item_ctx, i, buf, sizeof buf));
        else
            ae_text_printf(t, "#%zu", i);
        ae_text_printf(t, "</td><td>");
        if (r->item_label)
            ae_text_escaped(t, r->item_label(r->item_ctx, i, buf, sizeof buf));
        else if (r->labels)
            ae_text_printf(t, "%s", r->labels[i] ? "anomaly" : "normal");
        ae_text_printf(t, "</td><td class=\"n\" data-value=\"%.9g\">%.6f</td></tr>\n", r->scores[i],
                       r->scores[i]);
    }
    ae_text_printf(t, "</tbody></table>\n");
    if (shown < nf)
        ae_text_printf(t, "<p class=\"note\" id=\"flagged-truncated\">Showing the first %zu of %zu flagged "
                          "images; the scores CSV lists them all.</p>\n", shown, nf);
    ae_text_printf(t, "</section>\n");
    free(order);
    return AE_OK;
}

/* The metrics JSON as data. '<' only occurs inside JSON strings, where
 * \u003c means the same, so "</script>" in a name cannot end the element. */
static ae_status put_metrics_json(ae_text *t, const ae_metrics_summary *m, ae_error *err)
{
    char *json;
    size_t len;
    ae_status st = ae_metrics_json(m, &json, &len, err);
    if (st != AE_OK)
        return st;
    ae_text_printf(t, "<script type=\"application/json\" id=\"metrics\">");
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (json[i] != '<')
            continue;
        ae_text_put(t, json + run, i - run);
        ae_text_printf(t, "\\u003c");
        run = i + 1;
    }
    ae_text_put(t, json + run, len - run);
    ae_text_printf(t, "</script>\n");
    free(json);
    return AE_OK;
}

/* ---- The page ------------------------------------------------------------------ */

ae_status ae_report_html(const ae_report *r, char **html, size_t *len, ae_error *err)
{
    if (!r || !r->metrics || !r->scores || r->count == 0 || !html || !len)
        return ae_fail(err, AE_ERR_USAGE, "report: no scores or no metrics to report");
    if (r->metrics->count != r->count)
        return ae_fail(err, AE_ERR_USAGE, "report: %zu scores but the metrics count %zu", r->count,
                       r->metrics->count);
    const char *title = r->title ? r->title : "aedet report";
    const ae_metrics_summary *m = r->metrics;
    ae_text t = {0};
    ae_text_printf(&t, "%s<title>", page_head);
    ae_text_escaped(&t, title);
    ae_text_printf(&t, "</title>\n%s<body>\n<main>\n<header><h1>", page_style);
    ae_text_escaped(&t, title);
    char rule[128];
    rule_label(&m->threshold, rule, sizeof rule);
    ae_text_printf(&t, "</h1><p>Anomaly detection by reconstruction error &middot; %zu images &middot; ",
                   m->count);
    ae_text_escaped(&t, rule);
    ae_text_printf(&t, "</p></header>\n");
    put_summary(&t, r);
    put_warnings(&t, m);
    put_config(&t, r);
    ae_status st = put_losses(&t, r, err);
    if (st == AE_OK)
        st = put_histogram(&t, r, err);
    if (st == AE_OK)
        st = put_curves(&t, r, err);
    if (st == AE_OK) {
        put_metrics(&t, r);
        put_gallery(&t, r);
        st = put_flagged(&t, r, err);
    }
    if (st == AE_OK)
        st = put_metrics_json(&t, m, err);
    if (st != AE_OK) {
        free(t.s);
        return st;
    }
    ae_text_printf(&t, "<footer>Made by aedet %s. This page is self-contained: no network, no scripts."
                       "</footer>\n</main>\n</body>\n</html>\n", AE_VERSION_STRING);
    if (t.failed) {
        free(t.s);
        return ae_fail(err, AE_ERR_NOMEM, "report: out of memory building the page");
    }
    *html = t.s;
    *len = t.len;
    return AE_OK;
}

ae_status ae_report_write(const char *path, const ae_report *r, ae_error *err)
{
    char *html;
    size_t len;
    ae_status st = ae_report_html(r, &html, &len, err);
    if (st != AE_OK)
        return st;
    st = ae_write_file_atomic(path, html, len, err);
    free(html);
    if (st != AE_OK)
        ae_error_prefix(err, "writing the report");
    return st;
}
