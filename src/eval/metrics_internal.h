/* Internal to src/eval: the ranking metrics of one labelled set from a single
 * sort, for the summary (the public functions each sort on their own). */
#ifndef AEDET_EVAL_METRICS_INTERNAL_H
#define AEDET_EVAL_METRICS_INTERNAL_H

#include "aedet/eval.h"

typedef struct {
    double roc_auc, average_precision;
    double best_f1, best_f1_threshold;
} ae_ranking;

/* What ae_roc_auc, ae_average_precision and ae_best_f1_threshold give, from
 * one sort. AE_ERR_USAGE unless both classes are present. */
ae_status ae_ranking_metrics(const float *scores, const int *labels, size_t n,
                             ae_ranking *out, ae_error *err);

#endif
