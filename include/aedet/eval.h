/* aedet: honest evaluation metrics and threshold rules (docs/METRICS.md).
 *
 * Scores are floats, higher = more anomalous; NaN scores are refused. Binary
 * labels are ints, 0 = normal, 1 = anomaly. An image is FLAGGED when
 * score >= threshold (compared in double). Ranking metrics count ties as 1/2
 * and match scikit-learn; quantiles match numpy's default (linear). Nothing
 * here prints: warnings are flags in the results, with texts from
 * ae_warning_text(). */
#ifndef AEDET_EVAL_H
#define AEDET_EVAL_H

#include "aedet/common.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Ranking metrics (src/eval/metrics.c) ------------------------------ */

/* Area under the ROC curve = Mann-Whitney U / (positives * negatives), ties
 * counted 1/2; O(n log n). AE_ERR_USAGE when either class is empty. */
AE_API ae_status ae_roc_auc(const float *scores, const int *labels, size_t n, double *auc,
                     ae_error *err);

/* scikit-learn's average_precision_score: sum over distinct thresholds t, from
 * the highest, of (R(t) - R(previous t)) * P(t). AE_ERR_USAGE without anomalies. */
AE_API ae_status ae_average_precision(const float *scores, const int *labels, size_t n, double *ap,
                               ae_error *err);

/* A curve as point arrays, one point per distinct threshold plus the point at
 * threshold +INFINITY (nothing flagged). Point i flags score >= threshold[i].
 *   ROC: like sklearn's roc_curve(drop_intermediate=False): thresholds
 *        decreasing, x = false positive rate, y = true positive rate, starting
 *        at (0, 0) with threshold +inf (sklearn 1.2 writes max + 1 there).
 *   PR:  like sklearn's precision_recall_curve: thresholds increasing,
 *        x = recall, y = precision, ending at (recall 0, precision 1) with
 *        threshold +inf. */
typedef struct {
    size_t count;
    double *threshold;
    double *x;
    double *y;
} ae_curve;

/* On failure out is left empty (all zero). */
AE_API ae_status ae_roc_curve(const float *scores, const int *labels, size_t n, ae_curve *out,
                       ae_error *err);
AE_API ae_status ae_pr_curve(const float *scores, const int *labels, size_t n, ae_curve *out,
                      ae_error *err);
AE_API void ae_curve_free(ae_curve *curve);

/* The indices 0..n-1 ordered by score, highest first: order[0] is the most
 * anomalous. Equal scores keep index order (lower index first), so the order
 * is total and deterministic. O(n) radix sort, no global state; order holds n
 * entries. n == 0 is fine (nothing written); AE_ERR_DATA for a NaN score. */
AE_API ae_status ae_rank_by_score(const float *scores, size_t n, size_t *order, ae_error *err);

/* ---- Counts at a threshold --------------------------------------------- */

typedef struct {
    size_t tp; /* anomalies flagged: the known anomalies among the flagged */
    size_t fp; /* normals flagged */
    size_t tn; /* normals not flagged */
    size_t fn; /* anomalies not flagged */
} ae_confusion;

AE_API ae_status ae_confusion_at(const float *scores, const int *labels, size_t n, double threshold,
                          ae_confusion *out, ae_error *err);
/* 0/0 is defined as 0 for all three (nothing flagged: precision 0). */
AE_API double ae_precision(const ae_confusion *c);
AE_API double ae_recall(const ae_confusion *c);
AE_API double ae_f1(const ae_confusion *c);

/* The threshold, among the distinct score values, whose `>=` gives the best F1;
 * on equal F1 the highest such threshold (fewest flagged). AE_ERR_USAGE when
 * there is no anomaly label. f1 may be NULL. */
AE_API ae_status ae_best_f1_threshold(const float *scores, const int *labels, size_t n,
                               double *threshold, double *f1, ae_error *err);

/* ---- Per-class and pixel-level AUROC ----------------------------------- */

typedef struct {
    int class_id;
    size_t count; /* images of this class */
    double auc;   /* normal classes vs this class; NaN when count is 0 */
    char name[64]; /* the class's name when the caller knows it (a folder's), else "" */
} ae_class_auc;

/* For each of classes[0..num_classes), the AUROC of the images whose class is
 * in normal_classes (negatives) against the images of that class (positives).
 * out holds num_classes entries (their names ""). AE_ERR_USAGE when no
 * image is normal. */
AE_API ae_status ae_per_class_auc(const float *scores, const int *classes, size_t n,
                           const int *normal_classes, int num_normal, const int *eval_classes,
                           int num_classes, ae_class_auc *out, ae_error *err);

typedef struct {
    double auc;
    uint64_t num_pixels;
    uint64_t num_anomalous; /* mask != 0 */
    int passes;             /* passes over the maps it took (1 + refinements) */
} ae_pixel_auc;

/* Default sort budget of ae_pixel_roc_auc, in pixels (16 bytes each). */
#define AE_PIXEL_SORT_BUDGET ((size_t)1 << 22)

/* Exact AUROC over every pixel of num_images error maps (maps[i] and masks[i]
 * hold pixels[i] values; mask nonzero = anomalous pixel). Memory is bounded:
 * 2 MiB of histograms plus 16 bytes x at most sort_budget pixels (0 = the
 * default, 64 MiB); more pixels only cost more passes over the maps. */
AE_API ae_status ae_pixel_roc_auc(const float *const *maps, const uint8_t *const *masks,
                           const size_t *pixels, size_t num_images, size_t sort_budget,
                           ae_pixel_auc *out, ae_error *err);

/* ---- Thresholds (src/eval/threshold.c) --------------------------------- */

/* numpy.quantile(values, q) with its default method "linear": sorted x,
 * h = (n - 1) q, x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h]),
 * in double. ae_quantiles sorts once for num_q values of q. */
AE_API ae_status ae_quantile(const float *values, size_t n, double q, double *out, ae_error *err);
AE_API ae_status ae_quantiles(const float *values, size_t n, const double *q, size_t num_q,
                       double *out, ae_error *err);

typedef enum {
    AE_RULE_QUANTILE = 0, /* param = q */
    AE_RULE_FIXED,        /* param = the value */
    AE_RULE_MEAN_SD,      /* param = k: mean + k * sd, sd with ddof 0 (numpy's np.std) */
    AE_RULE_BEST_F1       /* param unused (0); needs labels */
} ae_rule;

/* Warning flags: kept as data, never printed by the library. */
enum {
    AE_WARN_FEW_VALUES = 1u << 0,   /* rule computed on fewer than AE_FEW_VALUES values */
    AE_WARN_CONSTANT = 1u << 1,     /* the values it was computed on are all equal */
    AE_WARN_ALL_FLAGGED = 1u << 2,  /* every scored image is flagged */
    AE_WARN_NONE_FLAGGED = 1u << 3, /* no scored image is flagged */
    AE_WARN_ONE_CLASS = 1u << 4,    /* labels given but all of one class: no AUROC/AP */
    AE_WARN_NO_LABELS = 1u << 5     /* no labels: only counts, no precision/recall */
};
#define AE_NUM_WARNINGS 6
#define AE_FEW_VALUES 20

/* One line of text for one flag (e.g. AE_WARN_CONSTANT); NULL for others. */
AE_API const char *ae_warning_text(unsigned flag);

typedef struct {
    ae_rule rule;
    const char *name;  /* "quantile", "fixed", "mean+k*sd", "best-f1" (static) */
    double param;      /* q, the fixed value, or k */
    double value;      /* the threshold: flagged when score >= value */
    size_t num_values; /* how many values it was computed on (0 for fixed) */
    char source[96];   /* where the values came from, set by the caller */
    double mean, sd;   /* of those values (NaN for fixed) */
    unsigned warnings; /* AE_WARN_FEW_VALUES, AE_WARN_CONSTANT, AE_WARN_ONE_CLASS */
} ae_threshold;

/* source: e.g. "validation split" or "scored set"; copied (truncated to fit). */
AE_API ae_status ae_threshold_quantile(const float *values, size_t n, double q, const char *source,
                                ae_threshold *out, ae_error *err);
AE_API ae_status ae_threshold_fixed(double value, const char *source, ae_threshold *out,
                             ae_error *err);
AE_API ae_status ae_threshold_mean_sd(const float *values, size_t n, double k, const char *source,
                               ae_threshold *out, ae_error *err);
AE_API ae_status ae_threshold_best_f1(const float *scores, const int *labels, size_t n,
                               const char *source, ae_threshold *out, ae_error *err);

/* ---- Summary and metrics.json (src/eval/metrics_json.c) ---------------- */

#define AE_MAX_CLASS_AUC 64

typedef struct {
    ae_threshold threshold;  /* the rule used (a copy) */
    size_t count;            /* images scored */
    size_t flagged;          /* score >= threshold.value */
    double score_min, score_max, score_mean;
    int has_labels;
    size_t num_anomalies, num_normals;
    ae_confusion confusion;  /* zero without labels */
    double precision, recall, f1;    /* NaN without labels */
    double roc_auc, average_precision; /* NaN when undefined (one class, no labels) */
    double best_f1, best_f1_threshold; /* NaN when undefined */
    double pixel_auc;        /* NaN unless the caller sets it */
    int num_class_auc;       /* per-class AUROC, filled by the caller (optional) */
    ae_class_auc class_auc[AE_MAX_CLASS_AUC];
    unsigned warnings;       /* the rule's warnings and the scored set's */
} ae_metrics_summary;

/* Fills out from the scores, labels (NULL when unknown) and the rule. */
AE_API ae_status ae_metrics_summarize(const float *scores, const int *labels, size_t n,
                               const ae_threshold *threshold, ae_metrics_summary *out,
                               ae_error *err);

/* The summary as a JSON object (malloc'd, NUL-terminated; *len excludes NUL).
 * Numbers use %.9g (integers exactly); NaN and infinities are written null. */
AE_API ae_status ae_metrics_json(const ae_metrics_summary *s, char **json, size_t *len, ae_error *err);
/* Writes metrics.json atomically (ae_write_file_atomic). */
AE_API ae_status ae_metrics_write_json(const char *path, const ae_metrics_summary *s, ae_error *err);
AE_API ae_status ae_metrics_write_json_stream(FILE *f, const ae_metrics_summary *s, ae_error *err);

#ifdef __cplusplus
}
#endif
#endif
