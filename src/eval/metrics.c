/* Ranking metrics (AUROC, average precision, curves), counts at a threshold,
 * the F1-best threshold and per-class AUROC. Definitions: docs/METRICS.md. */
#include "aedet/eval.h"
#include "eval/metrics_internal.h"
#include "eval/score_sort.h"

#include <math.h>
#include <stdlib.h>

/* Distinct scores from the highest down, with the counts flagged at each
 * (score >= threshold): what every curve and the F1 scan walk over. */
typedef struct {
    size_t groups;
    double *threshold;
    size_t *tps, *fps;
    size_t pos, neg;
} descending_counts;

static void counts_free(descending_counts *c)
{
    free(c->threshold);
    free(c->tps);
    free(c->fps);
}

static ae_status counts_build(const float *scores, const int *labels, size_t n,
                              descending_counts *c, ae_error *err)
{
    uint64_t *v;
    size_t pos;
    ae_status st = ae_sort_labeled(scores, labels, n, &v, &pos, err);
    if (st != AE_OK)
        return st;
    c->threshold = malloc(n * sizeof *c->threshold);
    c->tps = malloc(n * sizeof *c->tps);
    c->fps = malloc(n * sizeof *c->fps);
    if (!c->threshold || !c->tps || !c->fps) {
        counts_free(c);
        free(v);
        return ae_fail(err, AE_ERR_NOMEM, "curve of %zu scores: out of memory", n);
    }
    size_t g = 0, tp = 0, fp = 0;
    for (size_t i = n; i > 0;) {
        uint64_t key = v[i - 1] >> 1;
        for (; i > 0 && (v[i - 1] >> 1) == key; i--) {
            tp += (size_t)(v[i - 1] & 1);
            fp += (size_t)(1 - (v[i - 1] & 1));
        }
        c->threshold[g] = (double)ae_key_float((uint32_t)key);
        c->tps[g] = tp;
        c->fps[g] = fp;
        g++;
    }
    free(v);
    c->groups = g;
    c->pos = pos;
    c->neg = n - pos;
    return AE_OK;
}

static ae_status need_both_classes(size_t pos, size_t neg, const char *what, ae_error *err)
{
    if (pos == 0 || neg == 0)
        return ae_fail(err, AE_ERR_USAGE,
                       "%s is undefined: the labels hold %zu anomalies and %zu normals "
                       "(both classes are needed)",
                       what, pos, neg);
    return AE_OK;
}

/* Mann-Whitney U / (pos * neg): each anomaly counts the normals below it, ties
 * as 1/2. Walking down, the normals below group g are neg - fps[g]. Every term
 * is a multiple of 1/2, so the sum is exact (below 2^52). */
static double auc_of(const descending_counts *c)
{
    double u = 0;
    size_t prev_tp = 0, prev_fp = 0;
    for (size_t g = 0; g < c->groups; g++) {
        size_t p = c->tps[g] - prev_tp, q = c->fps[g] - prev_fp;
        u += (double)p * ((double)(c->neg - c->fps[g]) + 0.5 * (double)q);
        prev_tp = c->tps[g];
        prev_fp = c->fps[g];
    }
    return u / ((double)c->pos * (double)c->neg);
}

/* Sum over thresholds, from the highest, of (R(t) - R(previous t)) * P(t). */
static double ap_of(const descending_counts *c)
{
    double sum = 0, prev_recall = 0;
    for (size_t g = 0; g < c->groups; g++) {
        double recall = (double)c->tps[g] / (double)c->pos;
        double precision = (double)c->tps[g] / (double)(c->tps[g] + c->fps[g]);
        sum += (recall - prev_recall) * precision;
        prev_recall = recall;
    }
    return sum;
}

/* The best F1 over the thresholds; on equal F1 the higher threshold. */
static void best_f1_of(const descending_counts *c, double *threshold, double *f1)
{
    double best = -1, best_threshold = 0;
    for (size_t g = 0; g < c->groups; g++) {
        ae_confusion k = {c->tps[g], c->fps[g], c->neg - c->fps[g], c->pos - c->tps[g]};
        double f = ae_f1(&k);
        if (f > best) { /* strict: keeps the higher threshold */
            best = f;
            best_threshold = c->threshold[g];
        }
    }
    *threshold = best_threshold;
    *f1 = best;
}

static ae_status need_anomalies(size_t pos, size_t n, const char *what, ae_error *err)
{
    if (pos == 0)
        return ae_fail(err, AE_ERR_USAGE, "%s: no anomaly among the %zu labels", what, n);
    return AE_OK;
}

/* What a metric is defined for: both classes, or anomalies at least. */
typedef enum { NEED_BOTH_CLASSES, NEED_ANOMALIES } class_need;

/* counts_build, then the classes the metric `what` needs (its message as
 * need_both_classes or need_anomalies words it); the counts are freed on
 * failure, and are the caller's to free on success. */
static ae_status counts_for(const float *scores, const int *labels, size_t n, class_need need,
                            const char *what, descending_counts *c, ae_error *err)
{
    ae_status st = counts_build(scores, labels, n, c, err);
    if (st != AE_OK)
        return st;
    st = need == NEED_BOTH_CLASSES ? need_both_classes(c->pos, c->neg, what, err)
                                   : need_anomalies(c->pos, n, what, err);
    if (st != AE_OK)
        counts_free(c);
    return st;
}

ae_status ae_roc_auc(const float *scores, const int *labels, size_t n, double *auc,
                     ae_error *err)
{
    descending_counts c;
    ae_status st = counts_for(scores, labels, n, NEED_BOTH_CLASSES, "ROC AUC", &c, err);
    if (st != AE_OK)
        return st;
    *auc = auc_of(&c);
    counts_free(&c);
    return AE_OK;
}

ae_status ae_average_precision(const float *scores, const int *labels, size_t n, double *ap,
                               ae_error *err)
{
    descending_counts c;
    ae_status st =
        counts_for(scores, labels, n, NEED_ANOMALIES, "average precision is undefined", &c, err);
    if (st != AE_OK)
        return st;
    *ap = ap_of(&c);
    counts_free(&c);
    return AE_OK;
}

ae_status ae_ranking_metrics(const float *scores, const int *labels, size_t n,
                             ae_ranking *out, ae_error *err)
{
    descending_counts c;
    ae_status st = counts_for(scores, labels, n, NEED_BOTH_CLASSES, "ranking metrics", &c, err);
    if (st != AE_OK)
        return st;
    out->roc_auc = auc_of(&c);
    out->average_precision = ap_of(&c);
    best_f1_of(&c, &out->best_f1_threshold, &out->best_f1);
    counts_free(&c);
    return AE_OK;
}

void ae_curve_free(ae_curve *curve)
{
    if (!curve)
        return;
    free(curve->threshold);
    free(curve->x);
    free(curve->y);
    curve->threshold = curve->x = curve->y = NULL;
    curve->count = 0;
}

static ae_status curve_alloc(ae_curve *out, size_t count, ae_error *err)
{
    out->count = count;
    out->threshold = malloc(count * sizeof *out->threshold);
    out->x = malloc(count * sizeof *out->x);
    out->y = malloc(count * sizeof *out->y);
    if (!out->threshold || !out->x || !out->y) {
        ae_curve_free(out);
        return ae_fail(err, AE_ERR_NOMEM, "curve of %zu points: out of memory", count);
    }
    return AE_OK;
}

/* counts_for, and a curve of a point per distinct score and one more; on
 * failure out is left empty (ae_curve_free is safe) and c freed. */
static ae_status curve_for(const float *scores, const int *labels, size_t n, class_need need,
                           const char *what, descending_counts *c, ae_curve *out, ae_error *err)
{
    memset(out, 0, sizeof *out);
    ae_status st = counts_for(scores, labels, n, need, what, c, err);
    if (st == AE_OK && (st = curve_alloc(out, c->groups + 1, err)) != AE_OK)
        counts_free(c);
    return st;
}

ae_status ae_roc_curve(const float *scores, const int *labels, size_t n, ae_curve *out,
                       ae_error *err)
{
    descending_counts c;
    ae_status st = curve_for(scores, labels, n, NEED_BOTH_CLASSES, "the ROC curve", &c, out, err);
    if (st != AE_OK)
        return st;
    out->threshold[0] = INFINITY;
    out->x[0] = out->y[0] = 0;
    for (size_t g = 0; g < c.groups; g++) {
        out->threshold[g + 1] = c.threshold[g];
        out->x[g + 1] = (double)c.fps[g] / (double)c.neg;
        out->y[g + 1] = (double)c.tps[g] / (double)c.pos;
    }
    counts_free(&c);
    return AE_OK;
}

ae_status ae_pr_curve(const float *scores, const int *labels, size_t n, ae_curve *out,
                      ae_error *err)
{
    descending_counts c;
    ae_status st = curve_for(scores, labels, n, NEED_ANOMALIES,
                             "the precision-recall curve is undefined", &c, out, err);
    if (st != AE_OK)
        return st;
    for (size_t j = 0; j < c.groups; j++) {
        size_t g = c.groups - 1 - j; /* increasing thresholds, as sklearn */
        out->threshold[j] = c.threshold[g];
        out->x[j] = (double)c.tps[g] / (double)c.pos;
        out->y[j] = (double)c.tps[g] / (double)(c.tps[g] + c.fps[g]);
    }
    out->threshold[c.groups] = INFINITY;
    out->x[c.groups] = 0;
    out->y[c.groups] = 1;
    counts_free(&c);
    return AE_OK;
}

ae_status ae_confusion_at(const float *scores, const int *labels, size_t n, double threshold,
                          ae_confusion *out, ae_error *err)
{
    if (isnan(threshold))
        return ae_fail(err, AE_ERR_USAGE, "confusion matrix: the threshold is NaN");
    ae_status st = ae_check_scores(scores, n, "scores", err);
    if (st == AE_OK)
        st = ae_check_labels(labels, n, err);
    if (st != AE_OK)
        return st;
    ae_confusion c = {0, 0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        int flagged = (double)scores[i] >= threshold, anomaly = labels[i];
        c.tp += (size_t)(flagged && anomaly);
        c.fp += (size_t)(flagged && !anomaly);
        c.fn += (size_t)(!flagged && anomaly);
        c.tn += (size_t)(!flagged && !anomaly);
    }
    *out = c;
    return AE_OK;
}

double ae_precision(const ae_confusion *c)
{
    size_t flagged = c->tp + c->fp;
    return flagged ? (double)c->tp / (double)flagged : 0.0;
}

double ae_recall(const ae_confusion *c)
{
    size_t anomalies = c->tp + c->fn;
    return anomalies ? (double)c->tp / (double)anomalies : 0.0;
}

double ae_f1(const ae_confusion *c)
{
    /* 2PR/(P+R) = 2tp / (2tp + fp + fn), without dividing twice. */
    size_t denom = 2 * c->tp + c->fp + c->fn;
    return denom ? 2.0 * (double)c->tp / (double)denom : 0.0;
}

ae_status ae_best_f1_threshold(const float *scores, const int *labels, size_t n,
                               double *threshold, double *f1, ae_error *err)
{
    descending_counts c;
    ae_status st = counts_build(scores, labels, n, &c, err);
    if (st != AE_OK)
        return st;
    if (c.pos == 0)
        st = ae_fail(err, AE_ERR_USAGE,
                     "the F1-best threshold needs anomaly labels: all %zu labels are normal "
                     "(use a quantile or mean+k*sd threshold on normal images)",
                     n);
    if (st == AE_OK) {
        double best;
        best_f1_of(&c, threshold, &best);
        if (f1)
            *f1 = best;
    }
    counts_free(&c);
    return st;
}

static int in_set(int v, const int *set, int count)
{
    for (int i = 0; i < count; i++)
        if (set[i] == v)
            return 1;
    return 0;
}

ae_status ae_per_class_auc(const float *scores, const int *classes, size_t n,
                           const int *normal_classes, int num_normal, const int *eval_classes,
                           int num_classes, ae_class_auc *out, ae_error *err)
{
    ae_status st = ae_check_scores(scores, n, "scores", err);
    if (st != AE_OK)
        return st;
    if (!classes || !normal_classes || num_normal <= 0 || num_classes < 0 ||
        (num_classes > 0 && (!eval_classes || !out)))
        return ae_fail(err, AE_ERR_USAGE, "per-class AUROC: missing classes or normal set");
    for (int k = 0; k < num_classes; k++)
        if (in_set(eval_classes[k], normal_classes, num_normal))
            return ae_fail(err, AE_ERR_USAGE,
                           "per-class AUROC: class %d is both normal and evaluated",
                           eval_classes[k]);
    size_t num_neg = 0;
    for (size_t i = 0; i < n; i++)
        num_neg += (size_t)in_set(classes[i], normal_classes, num_normal);
    if (num_neg == 0)
        return ae_fail(err, AE_ERR_USAGE,
                       "per-class AUROC: none of the %zu images is of a normal class", n);
    /* The normals' keys and the sort's scratch, each sized once. */
    uint32_t *neg = malloc(num_neg * sizeof *neg), *tmp = malloc(num_neg * sizeof *tmp);
    if (!neg || !tmp) {
        free(neg);
        free(tmp);
        return ae_fail(err, AE_ERR_NOMEM, "per-class AUROC of %zu scores: out of memory", n);
    }
    num_neg = 0;
    for (size_t i = 0; i < n; i++)
        if (in_set(classes[i], normal_classes, num_normal))
            neg[num_neg++] = ae_float_key(scores[i]);
    ae_radix_sort_u32(neg, tmp, num_neg);
    free(tmp);
    for (int k = 0; k < num_classes; k++) {
        /* Each image of the class counts the normals below it (binary search), ties 1/2. */
        double u = 0;
        size_t count = 0;
        for (size_t i = 0; i < n; i++) {
            if (classes[i] != eval_classes[k])
                continue;
            uint32_t key = ae_float_key(scores[i]);
            size_t lo = 0, hi = num_neg;
            while (lo < hi) { /* first normal >= key */
                size_t mid = lo + (hi - lo) / 2;
                if (neg[mid] < key)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            size_t below = lo;
            hi = num_neg;
            while (lo < hi) { /* first normal > key */
                size_t mid = lo + (hi - lo) / 2;
                if (neg[mid] <= key)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            u += (double)below + 0.5 * (double)(lo - below);
            count++;
        }
        out[k].class_id = eval_classes[k];
        out[k].name[0] = '\0';
        out[k].count = count;
        out[k].auc = count ? u / ((double)count * (double)num_neg) : NAN;
    }
    free(neg);
    return AE_OK;
}
