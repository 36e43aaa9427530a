/* Pixel-level ROC AUC for data sets with ground-truth masks (MVTec AD): every
 * pixel's error, against the mask resized to the model's size. The maps are
 * gathered during the one scoring pass. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* Above this many pixels the maps would take gigabytes: skip with a note. */
#define MAX_PIXEL_EVAL ((size_t)1 << 28)

struct cli_pixel_maps {
    const ae_config *cfg;
    size_t count;  /* images */
    float *maps;   /* count x H x W: per-pixel squared error, mean over channels */
    size_t done;
};

cli_pixel_maps *cli_pixel_maps_begin(const cli_session *s)
{
    int has_masks = 0;
    for (size_t i = 0; i < s->n_items; i++)
        has_masks |= s->ds.items[s->items[i]].mask_path != NULL;
    if (!has_masks)
        return NULL;
    const ae_config *cfg = ae_model_config(s->model);
    size_t n = ae_loader_count(s->loader), hw = (size_t)cfg->height * (size_t)cfg->width, total;
    cli_pixel_maps *p = calloc(1, sizeof *p);
    if (!ae_mul_size(hw, n, &total) || total > MAX_PIXEL_EVAL || !p || !(p->maps = malloc(total * sizeof(float)))) {
        fprintf(stderr, "aedet: note: no pixel-level AUROC: %zu maps of %dx%d pixels do not fit in memory\n", n,
                cfg->height, cfg->width);
        free(p);
        return NULL;
    }
    p->cfg = cfg;
    p->count = n;
    return p;
}

ae_status cli_pixel_maps_visit(void *maps, const ae_batch *b, const float *input, const float *recon,
                               const float *errors, ae_error *err)
{
    (void)errors;
    (void)err;
    cli_pixel_maps *c = maps;
    size_t hw = (size_t)c->cfg->height * (size_t)c->cfg->width, ch = (size_t)c->cfg->channels;
    for (int i = 0; i < b->count; i++, c->done++) {
        const float *x = input + (size_t)i * hw * ch, *r = recon + (size_t)i * hw * ch;
        float *m = c->maps + c->done * hw;
        for (size_t p = 0; p < hw; p++) {
            float e = 0;
            for (size_t k = 0; k < ch; k++) {
                float d = r[p * ch + k] - x[p * ch + k];
                e += d * d;
            }
            m[p] = e / (float)ch;
        }
    }
    return AE_OK;
}

/* The mask of item, at the model's size: 1 where the mask is >= 128 after
 * resizing; all 0 when the item has no mask (a good image). */
static ae_status load_mask(const ae_item *item, const ae_config *cfg, uint8_t *mask, ae_error *err)
{
    size_t hw = (size_t)cfg->height * (size_t)cfg->width;
    memset(mask, 0, hw);
    if (!item->mask_path)
        return AE_OK;
    ae_image img;
    ae_status s = ae_image_load(item->mask_path, &img, err);
    if (s == AE_OK)
        s = ae_image_prepare(&img, cfg->height, cfg->width, 1, mask, err);
    ae_image_free(&img);
    for (size_t p = 0; s == AE_OK && p < hw; p++)
        mask[p] = mask[p] >= 128;
    return s;
}

int cli_pixel_maps_finish(cli_pixel_maps *c, const cli_session *s, const size_t *scored, double *auc)
{
    if (!c)
        return 0;
    size_t n = c->count, hw = (size_t)c->cfg->height * (size_t)c->cfg->width;
    ae_error err = {0};
    uint8_t *masks = malloc(n * hw);
    const float **map_ptr = malloc(n * sizeof *map_ptr);
    const uint8_t **mask_ptr = malloc(n * sizeof *mask_ptr);
    size_t *pixels = malloc(n * sizeof *pixels);
    ae_status st = masks && map_ptr && mask_ptr && pixels
                       ? AE_OK
                       : ae_fail(&err, AE_ERR_NOMEM, "out of memory for %zu masks", n);
    for (size_t i = 0; st == AE_OK && i < n; i++) {
        map_ptr[i] = c->maps + i * hw;
        mask_ptr[i] = masks + i * hw;
        pixels[i] = hw;
        st = load_mask(&s->ds.items[scored[i]], c->cfg, masks + i * hw, &err);
    }
    ae_pixel_auc result;
    if (st == AE_OK && (st = ae_pixel_roc_auc(map_ptr, mask_ptr, pixels, n, 0, &result, &err)) == AE_OK)
        *auc = result.auc;
    free(masks);
    free(map_ptr);
    free(mask_ptr);
    free(pixels);
    cli_pixel_maps_free(c);
    return st == AE_OK ? 0 : cli_report_error(&err);
}

void cli_pixel_maps_free(cli_pixel_maps *maps)
{
    if (maps)
        free(maps->maps);
    free(maps);
}
