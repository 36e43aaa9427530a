/* Radix sorts of score keys and the input checks shared by the metrics. */
#include "eval/score_sort.h"

#include "aedet/eval.h"

#include <math.h>
#include <stdlib.h>

enum { DIGIT_BITS = 11, DIGITS = 1 << DIGIT_BITS };

/* One LSD radix sort body for every element type. KEY(x) is the sort key of
 * element x; `keys` is only read by KEY of the indirect (ranking) sort. The
 * sort is stable, which ae_rank_by_score relies on for its tie order. */
#define DEFINE_RADIX_SORT(name, T, KEY)                                                     \
    static void name(T *v, T *tmp, size_t n, int bits, const uint32_t *keys)                \
    {                                                                                       \
        (void)keys;                                                                         \
        T *src = v, *dst = tmp;                                                             \
        for (int shift = 0; shift < bits; shift += DIGIT_BITS) {                            \
            size_t count[DIGITS] = {0};                                                     \
            for (size_t i = 0; i < n; i++)                                                  \
                count[(KEY(src[i]) >> shift) & (DIGITS - 1)]++;                             \
            /* every value has this digit: the pass would not move anything */             \
            if (n == 0 || count[(KEY(src[0]) >> shift) & (DIGITS - 1)] == n)                \
                continue;                                                                   \
            size_t sum = 0;                                                                 \
            for (int d = 0; d < DIGITS; d++) {                                              \
                size_t c = count[d];                                                        \
                count[d] = sum;                                                             \
                sum += c;                                                                   \
            }                                                                               \
            for (size_t i = 0; i < n; i++)                                                  \
                dst[count[(KEY(src[i]) >> shift) & (DIGITS - 1)]++] = src[i];               \
            T *t = src;                                                                     \
            src = dst;                                                                      \
            dst = t;                                                                        \
        }                                                                                   \
        if (src != v)                                                                       \
            memcpy(v, src, n * sizeof *v);                                                  \
    }

#define KEY_SELF(x) (x)
#define KEY_LOOKUP(i) (keys[i])

DEFINE_RADIX_SORT(radix_u64, uint64_t, KEY_SELF)
DEFINE_RADIX_SORT(radix_u32, uint32_t, KEY_SELF)
DEFINE_RADIX_SORT(radix_index_by_key, size_t, KEY_LOOKUP)

void ae_radix_sort_u64(uint64_t *v, uint64_t *tmp, size_t n, int bits)
{
    radix_u64(v, tmp, n, bits, NULL);
}

void ae_radix_sort_u32(uint32_t *v, uint32_t *tmp, size_t n)
{
    radix_u32(v, tmp, n, 32, NULL);
}

ae_status ae_rank_by_score(const float *scores, size_t n, size_t *order, ae_error *err)
{
    if (n == 0)
        return AE_OK;
    if (!order)
        return ae_fail(err, AE_ERR_USAGE, "ranking %zu scores: no order array given", n);
    ae_status st = ae_check_scores(scores, n, "ranking scores", err);
    if (st != AE_OK)
        return st;
    if (n > SIZE_MAX / sizeof(size_t))
        return ae_fail(err, AE_ERR_NOMEM, "ranking %zu scores: too many", n);
    uint32_t *keys = malloc(n * sizeof *keys);
    size_t *tmp = malloc(n * sizeof *tmp);
    if (!keys || !tmp) {
        free(keys);
        free(tmp);
        return ae_fail(err, AE_ERR_NOMEM, "ranking %zu scores: out of memory", n);
    }
    /* Complemented keys sort highest first; starting from index order, the
     * stable sort leaves equal scores in index order. */
    for (size_t i = 0; i < n; i++) {
        keys[i] = ~ae_float_key(scores[i]);
        order[i] = i;
    }
    radix_index_by_key(order, tmp, n, 32, keys);
    free(keys);
    free(tmp);
    return AE_OK;
}

ae_status ae_check_scores(const float *scores, size_t n, const char *what, ae_error *err)
{
    if (n == 0 || !scores)
        return ae_fail(err, AE_ERR_USAGE, "%s: no values given", what);
    for (size_t i = 0; i < n; i++)
        if (isnan(scores[i]))
            return ae_fail(err, AE_ERR_DATA, "%s: value %zu of %zu is NaN", what, i, n);
    return AE_OK;
}

void ae_value_range(const float *values, size_t n, double *min, double *max, double *mean)
{
    double sum = 0, lo = values[0], hi = values[0];
    for (size_t i = 0; i < n; i++) {
        double v = values[i];
        sum += v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    *min = lo;
    *max = hi;
    *mean = sum / (double)n;
}

ae_status ae_check_labels(const int *labels, size_t n, ae_error *err)
{
    if (!labels)
        return ae_fail(err, AE_ERR_USAGE, "labels: none given");
    for (size_t i = 0; i < n; i++)
        if (labels[i] != 0 && labels[i] != 1)
            return ae_fail(err, AE_ERR_USAGE,
                           "labels: label %zu is %d; binary labels are 0 (normal) or 1 (anomaly)",
                           i, labels[i]);
    return AE_OK;
}

ae_status ae_sort_labeled(const float *scores, const int *labels, size_t n, uint64_t **sorted,
                          size_t *num_pos, ae_error *err)
{
    ae_status st = ae_check_scores(scores, n, "scores", err);
    if (st == AE_OK)
        st = ae_check_labels(labels, n, err);
    if (st != AE_OK)
        return st;
    if (n > SIZE_MAX / sizeof(uint64_t))
        return ae_fail(err, AE_ERR_NOMEM, "sorting %zu scores: too many", n);
    uint64_t *v = malloc(n * sizeof *v), *tmp = malloc(n * sizeof *tmp);
    if (!v || !tmp) {
        free(v);
        free(tmp);
        return ae_fail(err, AE_ERR_NOMEM, "sorting %zu scores: out of memory", n);
    }
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        v[i] = ((uint64_t)ae_float_key(scores[i]) << 1) | (uint64_t)labels[i];
        pos += (size_t)labels[i];
    }
    ae_radix_sort_u64(v, tmp, n, 33);
    free(tmp);
    *sorted = v;
    *num_pos = pos;
    return AE_OK;
}

ae_status ae_sort_values(const float *values, size_t n, double **sorted, ae_error *err)
{
    ae_status st = ae_check_scores(values, n, "values", err);
    if (st != AE_OK)
        return st;
    if (n > SIZE_MAX / sizeof(double))
        return ae_fail(err, AE_ERR_NOMEM, "sorting %zu values: too many", n);
    uint32_t *k = malloc(n * sizeof *k), *tmp = malloc(n * sizeof *tmp);
    double *out = malloc(n * sizeof *out);
    if (!k || !tmp || !out) {
        free(k);
        free(tmp);
        free(out);
        return ae_fail(err, AE_ERR_NOMEM, "sorting %zu values: out of memory", n);
    }
    for (size_t i = 0; i < n; i++)
        k[i] = ae_float_key(values[i]);
    ae_radix_sort_u32(k, tmp, n);
    for (size_t i = 0; i < n; i++)
        out[i] = (double)ae_key_float(k[i]);
    free(k);
    free(tmp);
    *sorted = out;
    return AE_OK;
}
