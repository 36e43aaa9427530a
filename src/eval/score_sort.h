/* Internal to src/eval: scores as order-preserving integer keys, radix sorted
 * (linear time, no comparator calls), and the input checks every metric shares. */
#ifndef AEDET_EVAL_SCORE_SORT_H
#define AEDET_EVAL_SCORE_SORT_H

#include "aedet/common.h"

#include <stdint.h>
#include <string.h>

/* Unsigned key with key(a) < key(b) iff a < b for non-NaN floats; -0 and +0
 * get the same key because they compare equal. */
static inline uint32_t ae_float_key(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if (u == 0x80000000u)
        u = 0;
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static inline float ae_key_float(uint32_t k)
{
    uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Sorts v ascending by its low `bits` bits (higher bits must be zero), using
 * tmp (n values) as scratch. The result is in v. */
void ae_radix_sort_u64(uint64_t *v, uint64_t *tmp, size_t n, int bits);
void ae_radix_sort_u32(uint32_t *v, uint32_t *tmp, size_t n);

/* AE_ERR_DATA naming the first NaN; AE_ERR_USAGE for n == 0 or NULL. */
ae_status ae_check_scores(const float *scores, size_t n, const char *what, ae_error *err);
/* AE_ERR_USAGE naming the first label that is not 0 or 1. */
ae_status ae_check_labels(const int *labels, size_t n, ae_error *err);

/* Smallest, largest and mean of n >= 1 checked values, in double. */
void ae_value_range(const float *values, size_t n, double *min, double *max, double *mean);

/* (key << 1) | label for every score, sorted ascending (so by score, then
 * normals before anomalies); counts the anomalies. Checks its inputs. */
ae_status ae_sort_labeled(const float *scores, const int *labels, size_t n, uint64_t **sorted,
                          size_t *num_pos, ae_error *err);

/* The values sorted ascending, as doubles (malloc'd). Checks its inputs. */
ae_status ae_sort_values(const float *values, size_t n, double **sorted, ae_error *err);

#endif
