/* Pixel-level ROC AUC for data sets with ground-truth masks (MVTec AD): every
 * pixel's error, against the mask resized to the model's size. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* Above this many pixels the maps would take gigabytes: skip with a note. */
#define MAX_PIXEL_EVAL ((size_t)1 << 28)

typedef struct {
    const ae_config *cfg;
    float *maps;     /* n x H x W: per-pixel squared error, mean over channels */
    size_t done;
} map_ctx;

static ae_status collect_maps(void *user, const ae_batch *b, const float *input, const float *recon,
                              const float *errors, ae_error *err)
{
    (void)errors;
    (void)err;
    map_ctx *c = user;
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

/* The mask of item, at the model's size: nonzero where the mask is >= 128
 * after resizing; all zero when the item has no mask (a good image). */
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

int cli_pixel_auc(ae_model *model, ae_loader *loader, int batch, const ae_dataset *ds, const size_t *items,
                  size_t n, double *auc)
{
    int has_masks = 0;
    for (size_t i = 0; i < n; i++)
        has_masks |= ds->items[items[i]].mask_path != NULL;
    if (!has_masks)
        return 0;
    const ae_config *cfg = ae_model_config(model);
    size_t hw = (size_t)cfg->height * (size_t)cfg->width, total;
    if (!ae_mul_size(hw, n, &total) || total > MAX_PIXEL_EVAL) {
        fprintf(stderr, "aedet: note: %zu images of %zux%d pixels are too many for the pixel-level AUROC\n", n,
                (size_t)cfg->height, cfg->width);
        return 0;
    }
    ae_error err = {0};
    map_ctx c = {cfg, malloc(total * sizeof(float)), 0};
    uint8_t *masks = malloc(total);
    const float **map_ptr = malloc(n * sizeof *map_ptr);
    const uint8_t **mask_ptr = malloc(n * sizeof *mask_ptr);
    size_t *pixels = malloc(n * sizeof *pixels);
    float *scores = malloc(n * sizeof *scores);
    ae_status s = AE_ERR_NOMEM;
    if (c.maps && masks && map_ptr && mask_ptr && pixels && scores) {
        /* The same scoring path, looking at each batch's reconstruction. */
        s = ae_score_loader(model, loader, batch, scores, NULL, collect_maps, &c, &err);
        for (size_t i = 0; s == AE_OK && i < n; i++) {
            map_ptr[i] = c.maps + i * hw;
            mask_ptr[i] = masks + i * hw;
            pixels[i] = hw;
            s = load_mask(&ds->items[items[i]], cfg, masks + i * hw, &err);
        }
        ae_pixel_auc result;
        if (s == AE_OK && (s = ae_pixel_roc_auc(map_ptr, mask_ptr, pixels, n, 0, &result, &err)) == AE_OK)
            *auc = result.auc;
    } else
        ae_fail(&err, AE_ERR_NOMEM, "out of memory for %zu error maps", n);
    free(c.maps);
    free(masks);
    free(map_ptr);
    free(mask_ptr);
    free(pixels);
    free(scores);
    return s == AE_OK ? 0 : cli_report_error(&err);
}
