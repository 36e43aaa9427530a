/* Pixel-level AUROC over many error maps, exact, in bounded memory.
 *
 * A pixel's score key (32 bits, order-preserving) splits into a coarse bin (high
 * 16 bits) and a fine part (low 16 bits). One pass counts anomalous and normal
 * pixels per coarse bin: every pair of pixels in different bins is then
 * decided by the counts alone. Pairs inside one bin matter only in bins that
 * hold both kinds ("mixed"); those are resolved by later passes that gather
 * runs of mixed bins up to the sort budget and sort them, or, for a bin larger
 * than the budget alone, by a histogram of its fine parts (exact: the fine
 * part completes the key). Memory: four 65536-entry histograms (2 MiB) plus
 * 16 bytes per gathered pixel. */
#include "aedet/eval.h"
#include "eval/score_sort.h"

#include <math.h>
#include <stdlib.h>

enum { BINS = 1 << 16 };

typedef struct {
    const float *const *maps;
    const uint8_t *const *masks;
    const size_t *pixels;
    size_t num_images;
} pixel_set;

/* Pairs within the bins of one gathered run (keys sorted with label bit 0). */
static double within_bins_sorted(const uint64_t *v, size_t n)
{
    double u = 0;
    size_t neg_below = 0;
    uint64_t bin = UINT64_MAX;
    for (size_t i = 0; i < n;) {
        uint64_t key = v[i] >> 1;
        if ((key >> 16) != bin) {
            bin = key >> 16;
            neg_below = 0;
        }
        size_t p = 0, start = i;
        for (; i < n && (v[i] >> 1) == key; i++)
            p += (size_t)(v[i] & 1);
        size_t q = (i - start) - p;
        u += (double)p * ((double)neg_below + 0.5 * (double)q);
        neg_below += q;
    }
    return u;
}

/* Gathers the pixels of mixed bins in [lo, hi), sorts them, returns their U. */
static double resolve_run(const pixel_set *s, const uint64_t *pos, const uint64_t *neg,
                          uint32_t lo, uint32_t hi, uint64_t *buf, uint64_t *tmp)
{
    size_t m = 0;
    for (size_t im = 0; im < s->num_images; im++) {
        const float *map = s->maps[im];
        const uint8_t *mask = s->masks[im];
        for (size_t i = 0; i < s->pixels[im]; i++) {
            uint32_t key = ae_float_key(map[i]);
            uint32_t bin = key >> 16;
            if (bin >= lo && bin < hi && pos[bin] && neg[bin])
                buf[m++] = ((uint64_t)key << 1) | (mask[i] != 0);
        }
    }
    ae_radix_sort_u64(buf, tmp, m, 33);
    return within_bins_sorted(buf, m);
}

/* One bin too large to gather: a histogram of its low 16 bits is exact. */
static double resolve_bin(const pixel_set *s, uint32_t bin, uint64_t *fine_pos,
                          uint64_t *fine_neg)
{
    for (size_t f = 0; f < BINS; f++)
        fine_pos[f] = fine_neg[f] = 0;
    for (size_t im = 0; im < s->num_images; im++) {
        const float *map = s->maps[im];
        const uint8_t *mask = s->masks[im];
        for (size_t i = 0; i < s->pixels[im]; i++) {
            uint32_t key = ae_float_key(map[i]);
            if ((key >> 16) != bin)
                continue;
            if (mask[i])
                fine_pos[key & 0xffff]++;
            else
                fine_neg[key & 0xffff]++;
        }
    }
    double u = 0, neg_below = 0;
    for (size_t f = 0; f < BINS; f++) {
        u += (double)fine_pos[f] * (neg_below + 0.5 * (double)fine_neg[f]);
        neg_below += (double)fine_neg[f];
    }
    return u;
}

ae_status ae_pixel_roc_auc(const float *const *maps, const uint8_t *const *masks,
                           const size_t *pixels, size_t num_images, size_t sort_budget,
                           ae_pixel_auc *out, ae_error *err)
{
    if (!maps || !masks || !pixels || num_images == 0)
        return ae_fail(err, AE_ERR_USAGE, "pixel AUROC: no error maps given");
    if (sort_budget == 0)
        sort_budget = AE_PIXEL_SORT_BUDGET;
    pixel_set s = {maps, masks, pixels, num_images};
    uint64_t *hist = calloc(4 * (size_t)BINS, sizeof *hist);
    if (!hist)
        return ae_fail(err, AE_ERR_NOMEM, "pixel AUROC: out of memory for histograms");
    uint64_t *pos = hist, *neg = hist + BINS, *fine_pos = hist + 2 * BINS,
             *fine_neg = hist + 3 * BINS;

    uint64_t num_pos = 0, num_neg = 0;
    for (size_t im = 0; im < num_images; im++) {
        if (pixels[im] > 0 && (!maps[im] || !masks[im])) {
            free(hist);
            return ae_fail(err, AE_ERR_USAGE, "pixel AUROC: image %zu has no map or mask", im);
        }
        const float *map = maps[im];
        const uint8_t *mask = masks[im];
        for (size_t i = 0; i < pixels[im]; i++) {
            if (isnan(map[i])) {
                free(hist);
                return ae_fail(err, AE_ERR_DATA, "pixel AUROC: image %zu, pixel %zu is NaN", im,
                               i);
            }
            uint32_t bin = ae_float_key(map[i]) >> 16;
            if (mask[i])
                pos[bin]++;
            else
                neg[bin]++;
        }
    }
    for (size_t b = 0; b < BINS; b++) {
        num_pos += pos[b];
        num_neg += neg[b];
    }
    if (num_pos == 0 || num_neg == 0) {
        free(hist);
        return ae_fail(err, AE_ERR_USAGE,
                       "pixel AUROC is undefined: the masks mark %llu anomalous and %llu normal "
                       "pixels (both are needed)",
                       (unsigned long long)num_pos, (unsigned long long)num_neg);
    }

    double u = 0, neg_below = 0;
    size_t mixed = 0;
    for (size_t b = 0; b < BINS; b++) {
        u += (double)pos[b] * neg_below; /* pairs with normals in lower bins */
        neg_below += (double)neg[b];
        if (pos[b] && neg[b])
            mixed += pos[b] + neg[b];
    }

    size_t cap = mixed < sort_budget ? mixed : sort_budget;
    uint64_t *buf = malloc((cap ? cap : 1) * sizeof *buf), *tmp = malloc((cap ? cap : 1) * sizeof *tmp);
    if (!buf || !tmp) {
        free(buf);
        free(tmp);
        free(hist);
        return ae_fail(err, AE_ERR_NOMEM, "pixel AUROC: out of memory sorting %zu pixels", cap);
    }
    int passes = 1;
    uint32_t run_lo = 0;
    size_t run_count = 0;
    for (uint32_t b = 0; b <= BINS; b++) {
        size_t c = b < BINS && pos[b] && neg[b] ? (size_t)(pos[b] + neg[b]) : 0;
        int end = b == BINS || c > sort_budget || run_count + c > sort_budget;
        if (end && run_count > 0) {
            u += resolve_run(&s, pos, neg, run_lo, b, buf, tmp);
            passes++;
            run_count = 0;
        }
        if (b == BINS)
            break;
        if (c > sort_budget) {
            u += resolve_bin(&s, b, fine_pos, fine_neg);
            passes++;
            run_lo = b + 1;
        } else if (c > 0) {
            if (run_count == 0)
                run_lo = b;
            run_count += c;
        }
    }
    free(buf);
    free(tmp);
    free(hist);
    out->auc = u / ((double)num_pos * (double)num_neg);
    out->num_pixels = num_pos + num_neg;
    out->num_anomalous = num_pos;
    out->passes = passes;
    return AE_OK;
}
