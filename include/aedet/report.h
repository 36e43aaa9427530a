/* aedet: a self-contained HTML report of one scored set (docs/REPORT.md).
 *
 * One file that opens in any browser with no network and no JavaScript: the
 * configuration, the loss per epoch, the error histogram with the threshold,
 * ROC and precision-recall curves (with labels), a gallery of input,
 * reconstruction and error heat map (with the ground-truth mask's outline
 * when there is one), the flagged images and the metrics. Plots are inline
 * SVG drawn here; images are PNG data URIs given by the caller, and the
 * gallery stops at a byte budget, so the page stays small. The metrics JSON (ae_metrics_json) is embedded as
 * <script type="application/json" id="metrics"> and every number shown has a
 * data-value attribute, so a program can check the page. Every string is
 * HTML-escaped. The writer takes plain data and knows nothing of models. */
#ifndef AEDET_REPORT_H
#define AEDET_REPORT_H

#include "aedet/common.h"
#include "aedet/eval.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One line of the configuration table. */
typedef struct {
    const char *key;
    const char *value;
} ae_report_kv;

/* One gallery entry: three PNG files (bytes, not paths) of one size and a
 * caption. The three are shown at `aspect` (width / height: the image's own
 * when the PNGs are it resized to the model's shape; 0 = the PNGs' shape).
 * mask, when given, is a mask_height x mask_width ground truth (nonzero =
 * anomalous) covering the same area; its outline is drawn over all three. */
typedef struct {
    const char *name;    /* path or "#index" */
    const char *label;   /* class name, or NULL when unknown */
    int is_anomaly;      /* 1 known anomaly, 0 known normal, -1 unknown */
    float score;
    const uint8_t *input_png; size_t input_len;
    const uint8_t *recon_png; size_t recon_len;
    const uint8_t *heat_png;  size_t heat_len;
    double aspect;
    const uint8_t *mask; int mask_height, mask_width;
} ae_report_image;

/* Names of scored images for the flagged table: writes into buf (size bytes)
 * or returns a string of its own; i indexes scores. */
typedef const char *(*ae_report_text_fn)(const void *ctx, size_t i, char *buf, size_t size);

/* Tables and curves stay bounded on large sets; the histogram bins everything. */
#define AE_REPORT_MAX_ROWS 1000          /* rows of the flagged table */
#define AE_REPORT_MAX_CURVE_POINTS 2000  /* points per curve (even subsample) */
#define AE_REPORT_HIST_BINS 40
/* Default for ae_report.image_budget: what the gallery's images (base64 PNG
 * and mask outlines) may add to the page, so that with the bounded tables
 * and curves a report stays under 2 MB however many images were asked for. */
#define AE_REPORT_IMAGE_BUDGET ((size_t)1 << 20)

typedef struct {
    const char *title;                 /* NULL: "aedet report" */
    const ae_report_kv *config; size_t num_config;
    const double *train_losses; size_t num_train_losses; /* per epoch, may be 0 */
    const double *val_losses; size_t num_val_losses;
    const float *scores; size_t count; /* every scored image */
    const int *labels;                 /* NULL or 0/1 per score (ROC and PR need them) */
    const ae_metrics_summary *metrics; /* from ae_metrics_summarize on the same scores */
    const ae_report_image *anomalous; size_t num_anomalous; /* most anomalous first */
    const ae_report_image *typical; size_t num_typical;     /* normal-looking sample */
    const char *typical_note;          /* how the sample was chosen, may be NULL */
    size_t image_budget;               /* bytes for the gallery; 0: AE_REPORT_IMAGE_BUDGET.
                                          Images past it are left out, most anomalous
                                          and typical in turn, and a note says how many */
    double heat_max;                   /* error at the top of the heat maps' colour bar */
    const char *const *class_names;    /* names of the class ids of metrics->class_auc
                                          (entries may be NULL), or NULL: numbers */
    int num_class_names;
    ae_report_text_fn item_name;       /* NULL: "#i" */
    ae_report_text_fn item_label;      /* NULL: the 0/1 label, or nothing */
    const void *item_ctx;
} ae_report;

/* The page as one malloc'd, NUL-terminated string (*len excludes the NUL). */
AE_API ae_status ae_report_html(const ae_report *r, char **html, size_t *len, ae_error *err);
/* The page written atomically to path (ae_write_file_atomic). */
AE_API ae_status ae_report_write(const char *path, const ae_report *r, ae_error *err);

/* The heat map's colour ramp (perceptually uniform, dark to bright, like
 * matplotlib's "inferno"): t in [0, 1] (clamped; NaN is 0) to RGB. */
AE_API void ae_colormap_inferno(double t, uint8_t rgb[3]);

/* Per pixel the mean absolute error over the channels between x and recon
 * (h x w x c floats): errors receives h x w values. */
AE_API void ae_error_map(const float *x, const float *recon, int h, int w, int c, float *errors);
/* values / vmax coloured with ae_colormap_inferno (one scale for every image
 * of a report, so colours compare): rgb receives count x 3 bytes. */
AE_API void ae_heatmap_rgb(const float *values, size_t count, double vmax, uint8_t *rgb);

#ifdef __cplusplus
}
#endif
#endif
