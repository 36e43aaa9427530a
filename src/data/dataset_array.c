/* A data set over pixels in memory: held as an IDX file's records are, so
 * the loader, the names ("#0", ...) and the results are those of an IDX
 * file with the same bytes. */
#include "aedet/array.h"
#include "data/data_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ae_status ae_dataset_from_pixels(const uint8_t *pixels, size_t n, int height, int width, int channels,
                                 const int *labels, ae_dataset *out, ae_error *err)
{
    *out = (ae_dataset){0};
    size_t bytes;
    if (!pixels || n < 1 || n > INT_MAX || height < 1 || width < 1 || (channels != 1 && channels != 3))
        return ae_fail(err, AE_ERR_USAGE, "images in memory: want at least one image of at least 1x1 "
                       "pixels with 1 or 3 channels (got %zu of %dx%dx%d)", n, height, width, channels);
    if (!ae_mul_size((size_t)height * (size_t)width, (size_t)channels, &bytes) || !ae_mul_size(bytes, n, &bytes))
        return ae_fail(err, AE_ERR_NOMEM, "%zu images of %dx%dx%d are too many bytes", n, height, width, channels);
    int max_label = -1;
    for (size_t i = 0; labels && i < n; i++) {
        if (labels[i] < -1 || labels[i] > 65535)
            return ae_fail(err, AE_ERR_USAGE, "image %zu: label %d is not -1 (unknown) or 0..65535", i, labels[i]);
        if (labels[i] > max_label)
            max_label = labels[i];
    }
    ae_idx *im = &out->idx_images;
    im->data = malloc(bytes);
    out->items = calloc(n, sizeof *out->items);
    char line[128];
    snprintf(line, sizeof line, "%zu images %dx%dx%d in memory, %s", n, height, width, channels,
             max_label >= 0 ? "labelled" : "unlabelled");
    out->description = strdup(line);
    if (!im->data || !out->items || !out->description) {
        ae_dataset_free(out);
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for %zu images of %dx%dx%d", n, height, width, channels);
    }
    memcpy(im->data, pixels, bytes);
    *im = (ae_idx){.ndim = 4, .dims = {(int)n, height, width, channels}, .count = n, .data = im->data};
    for (size_t i = 0; i < n; i++)
        out->items[i] = (ae_item){.path = NULL, .index = (int64_t)i, .label = labels ? labels[i] : -1};
    out->count = n;
    ae_status s = max_label >= 0 ? data_numeric_classes(out, max_label + 1, err) : AE_OK;
    if (s != AE_OK)
        ae_dataset_free(out);
    return s;
}
