/* The tutorial's unsupervised set and the train/validation split.
 *
 * The tutorial took the FIRST round(contamination * n) anomaly images; we take
 * a seeded random sample of that size (so the choice does not depend on file
 * order), one shuffle per anomaly class in the order the classes are given.
 * round() rounds half away from zero: round(0.01 * 1064) = 11. Results are in
 * dataset order; labels only choose items and are never returned. */
#include "aedet/data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int in_list(const int *v, int n, int x)
{
    for (int i = 0; i < n; i++)
        if (v[i] == x)
            return 1;
    return 0;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

static ae_status check_recipe(const ae_dataset *ds, const ae_recipe *r, ae_error *err)
{
    if (!(r->contamination >= 0.0 && r->contamination <= 1.0))
        return ae_fail(err, AE_ERR_USAGE, "contamination %g is outside [0, 1]", r->contamination);
    /* A class listed twice would be selected twice (and overrun the result). */
    for (int i = 1; i < r->num_normal; i++)
        if (in_list(r->normal, i, r->normal[i]))
            return ae_fail(err, AE_ERR_USAGE, "normal class %d is given twice", r->normal[i]);
    for (int i = 1; i < r->num_anomaly; i++)
        if (in_list(r->anomaly, i, r->anomaly[i]))
            return ae_fail(err, AE_ERR_USAGE, "anomaly class %d is given twice", r->anomaly[i]);
    for (int i = 0; i < r->num_anomaly; i++)
        if (in_list(r->normal, r->num_normal, r->anomaly[i]))
            return ae_fail(err, AE_ERR_USAGE, "class %d is both normal and anomalous",
                           r->anomaly[i]);
    for (int k = 0; k < r->num_normal + r->num_anomaly; k++) {
        int c = k < r->num_normal ? r->normal[k] : r->anomaly[k - r->num_normal];
        size_t n = 0;
        for (size_t i = 0; i < ds->count; i++)
            n += ds->items[i].label == c;
        if (n == 0)
            return ae_fail(err, AE_ERR_USAGE, "%s class %d has no items in the data set%s",
                           k < r->num_normal ? "normal" : "anomaly", c,
                           ds->num_classes ? "" : " (it has no labels)");
    }
    return AE_OK;
}

ae_status ae_recipe_select(const ae_dataset *ds, const ae_recipe *r, size_t **indices,
                           size_t *count, ae_error *err)
{
    *indices = NULL;
    *count = 0;
    int all = r->num_normal == 0 && r->num_anomaly == 0;
    ae_status s = all ? AE_OK : check_recipe(ds, r, err);
    if (s != AE_OK)
        return s;
    size_t *out = malloc((ds->count ? ds->count : 1) * sizeof *out);
    size_t *pool = malloc((ds->count ? ds->count : 1) * sizeof *pool);
    if (!out || !pool) {
        free(out);
        free(pool);
        return ae_fail(err, AE_ERR_NOMEM, "out of memory choosing from %zu items", ds->count);
    }
    size_t n = 0;
    /* n <= i < ds->count: at most one append per item. */
    for (size_t i = 0; i < ds->count; i++)
        if (all || in_list(r->normal, r->num_normal, ds->items[i].label))
            out[n++] = i;
    ae_rng rng;
    ae_rng_seed(&rng, r->seed);
    for (int a = 0; a < r->num_anomaly; a++) {
        size_t m = 0;
        for (size_t i = 0; i < ds->count; i++)
            if (ds->items[i].label == r->anomaly[a])
                pool[m++] = i;
        size_t take = (size_t)round(r->contamination * (double)m);
        if (take > m || take > ds->count - n) { /* cannot happen after check_recipe */
            free(out);
            free(pool);
            return ae_fail(err, AE_ERR_USAGE, "recipe: anomaly class %d selects more items "
                           "than the data set has", r->anomaly[a]);
        }
        ae_shuffle_sizes(&rng, pool, m);
        memcpy(out + n, pool, take * sizeof *out);
        n += take;
    }
    free(pool);
    qsort(out, n, sizeof *out, cmp_size);
    *indices = out;
    *count = n;
    return AE_OK;
}

ae_status ae_split(const size_t *indices, size_t n, double val_fraction, uint64_t seed,
                   size_t **train, size_t *num_train, size_t **val, size_t *num_val,
                   ae_error *err)
{
    *train = *val = NULL;
    *num_train = *num_val = 0;
    if (!(val_fraction >= 0.0 && val_fraction < 1.0))
        return ae_fail(err, AE_ERR_USAGE, "validation fraction %g is outside [0, 1)",
                       val_fraction);
    size_t nv = (size_t)round(val_fraction * (double)n);
    size_t *shuffled = malloc((n ? n : 1) * sizeof *shuffled);
    size_t *t = malloc((n - nv ? n - nv : 1) * sizeof *t);
    size_t *v = malloc((nv ? nv : 1) * sizeof *v);
    if (!shuffled || !t || !v) {
        free(shuffled);
        free(t);
        free(v);
        return ae_fail(err, AE_ERR_NOMEM, "out of memory splitting %zu items", n);
    }
    if (n)
        memcpy(shuffled, indices, n * sizeof *shuffled);
    ae_rng rng;
    ae_rng_seed(&rng, seed);
    ae_shuffle_sizes(&rng, shuffled, n);
    memcpy(v, shuffled, nv * sizeof *v);
    memcpy(t, shuffled + nv, (n - nv) * sizeof *t);
    free(shuffled);
    /* Each part in dataset order, so outputs list images in a stable order. */
    qsort(v, nv, sizeof *v, cmp_size);
    qsort(t, n - nv, sizeof *t, cmp_size);
    *train = t;
    *num_train = n - nv;
    *val = v;
    *num_val = nv;
    return AE_OK;
}
