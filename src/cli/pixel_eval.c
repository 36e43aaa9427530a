/* Pixel-level ROC AUC for data sets with ground-truth masks (MVTec AD): every
 * pixel's anomaly map value (the score rule's: the squared error, smoothed
 * for the rules that smooth it, or 1 - SSIM), against the mask resized to the
 * model's size. The maps are gathered during the one scoring pass. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* Above this many pixels the maps would take gigabytes: skip with a note. */
#define MAX_PIXEL_EVAL ((size_t)1 << 28)

struct cli_pixel_maps {
    const ae_config *cfg;
    const ae_detector *detector;
    size_t count;  /* images the maps have room for */
    float *maps;   /* count x H x W: the detector's per-pixel map */
    float *scratch;
    size_t done;   /* maps made: count, or fewer when bad files were skipped */
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
    if (!ae_mul_size(hw, n, &total) || total > MAX_PIXEL_EVAL || !p || !(p->maps = malloc(total * sizeof(float))) ||
        !(p->scratch = malloc(ae_ssim_scratch_floats(cfg->height, cfg->width) * sizeof(float)))) {
        if (p)
            free(p->maps);
        fprintf(stderr, "aedet: note: no pixel-level AUROC: %zu maps of %dx%d pixels do not fit in memory\n", n,
                cfg->height, cfg->width);
        free(p);
        return NULL;
    }
    p->cfg = cfg;
    p->detector = s->detector;
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
    for (int i = 0; i < b->count; i++, c->done++)
        ae_detector_pixel_map(c->detector, c->cfg, input + (size_t)i * hw * ch, recon + (size_t)i * hw * ch,
                              c->maps + c->done * hw, c->scratch);
    return AE_OK;
}

/* The mask of item i, at the model's size: 1 where the mask is >= 128 after
 * resizing; all 0 when the item has no mask (a good image). A mask of
 * another size than its image is bad data. */
static ae_status load_mask(const ae_dataset *ds, size_t i, const ae_config *cfg, uint8_t *mask, ae_error *err)
{
    const ae_item *item = &ds->items[i];
    size_t hw = (size_t)cfg->height * (size_t)cfg->width;
    memset(mask, 0, hw);
    if (!item->mask_path)
        return AE_OK;
    ae_image img = {0}, image = {0};
    ae_status s = ae_image_load(item->mask_path, &img, err);
    if (s == AE_OK && (s = ae_dataset_load(ds, i, &image, err)) == AE_OK &&
        (image.height != img.height || image.width != img.width))
        s = ae_fail(err, AE_ERR_DATA, "%s is %dx%d, but its image %dx%d (%s): a mask has its image's size",
                    item->mask_path, img.height, img.width, image.height, image.width, item->path ? item->path : "");
    ae_image_free(&image);
    if (s == AE_OK)
        s = ae_image_prepare(&img, cfg->height, cfg->width, 1, mask, err);
    ae_image_free(&img);
    for (size_t p = 0; s == AE_OK && p < hw; p++)
        mask[p] = mask[p] >= 128;
    return s;
}

/* The mask of item at its own size (all 0 at the input's size for a good
 * image) and the model's map resized to it: *mask and *map are malloc'd. */
static ae_status native_pair(const ae_dataset *ds, size_t item, const float *model_map, const ae_config *cfg,
                             uint8_t **mask, float **map, size_t *pixels, ae_error *err)
{
    const ae_item *it = &ds->items[item];
    ae_image img = {0}, mask_img = {0};
    ae_status s = ae_dataset_load(ds, item, &img, err);
    int h = img.height, w = img.width;
    ae_image_free(&img);
    if (s == AE_OK && it->mask_path && (s = ae_image_load(it->mask_path, &mask_img, err)) == AE_OK &&
        (mask_img.height != h || mask_img.width != w))
        s = ae_fail(err, AE_ERR_DATA, "%s is %dx%d, but its image %dx%d", it->mask_path, mask_img.height,
                    mask_img.width, h, w);
    *pixels = (size_t)h * (size_t)w;
    if (s == AE_OK && (!(*mask = calloc(*pixels, 1)) || !(*map = malloc(*pixels * sizeof **map))))
        s = ae_fail(err, AE_ERR_NOMEM, "out of memory for a %dx%d map", h, w);
    if (s == AE_OK) {
        ae_map_resize(model_map, cfg->height, cfg->width, *map, h, w);
        for (size_t p = 0; it->mask_path && p < *pixels; p++)
            (*mask)[p] = mask_img.pixels[p * (size_t)mask_img.channels] >= 128;
    }
    ae_image_free(&mask_img);
    return s;
}

int cli_pixel_maps_finish(cli_pixel_maps *c, const cli_session *s, const size_t *scored, int at_input,
                          double *auc)
{
    if (!c)
        return 0;
    size_t n = c->done, hw = (size_t)c->cfg->height * (size_t)c->cfg->width, total = 0;
    ae_error err = {0};
    uint8_t *masks = at_input ? NULL : malloc(n * hw);
    const float **map_ptr = calloc(n, sizeof *map_ptr);
    const uint8_t **mask_ptr = calloc(n, sizeof *mask_ptr);
    size_t *pixels = malloc(n * sizeof *pixels);
    ae_status st = (masks || at_input) && map_ptr && mask_ptr && pixels
                       ? AE_OK
                       : ae_fail(&err, AE_ERR_NOMEM, "out of memory for %zu masks", n);
    for (size_t i = 0; st == AE_OK && i < n; i++) {
        if (at_input) {
            uint8_t *mask = NULL;
            float *map = NULL;
            st = native_pair(&s->ds, scored[i], c->maps + i * hw, c->cfg, &mask, &map, &pixels[i], &err);
            map_ptr[i] = map, mask_ptr[i] = mask;
            total += pixels[i];
            if (st == AE_OK && total > MAX_PIXEL_EVAL)
                st = ae_fail(&err, AE_ERR_NOMEM, "pixel AUROC at the inputs' sizes: over %zu pixels; "
                                                 "use --pixel-maps model", (size_t)MAX_PIXEL_EVAL);
            continue;
        }
        map_ptr[i] = c->maps + i * hw;
        mask_ptr[i] = masks + i * hw;
        pixels[i] = hw;
        st = load_mask(&s->ds, scored[i], c->cfg, masks + i * hw, &err);
    }
    ae_pixel_auc result;
    if (st == AE_OK && (st = ae_pixel_roc_auc(map_ptr, mask_ptr, pixels, n, 0, &result, &err)) == AE_OK)
        *auc = result.auc;
    for (size_t i = 0; at_input && map_ptr && mask_ptr && i < n; i++) {
        free((void *)map_ptr[i]);
        free((void *)mask_ptr[i]);
    }
    free(masks);
    free(map_ptr);
    free(mask_ptr);
    free(pixels);
    cli_pixel_maps_free(c);
    return st == AE_OK ? 0 : cli_report_error(&err);
}

void cli_pixel_maps_free(cli_pixel_maps *maps)
{
    if (maps) {
        free(maps->maps);
        free(maps->scratch);
    }
    free(maps);
}
