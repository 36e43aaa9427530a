/* The aedet command's HTML report: picks the gallery, renders input,
 * reconstruction and error heat map with the model, gathers the
 * configuration from the model's metadata, and calls ae_report_write. */
#ifndef AEDET_CLI_REPORT_H
#define AEDET_CLI_REPORT_H

#include "aedet.h"

/* Most gallery images per set (most anomalous, normal-looking): the page
 * carries each as three PNGs. */
#define CLI_REPORT_MAX_GALLERY 64
/* The gallery's thumbnails are at most this many pixels on the long side. */
#define CLI_REPORT_THUMB 96

/* Writes the report of n scored images to path. items[i] is the dataset
 * index of scores[i]; labels is NULL or 0/1 per scored image; m summarizes
 * the same scores. The gallery holds the top_k most anomalous images and
 * top_k images around the median score (at most CLI_REPORT_MAX_GALLERY each;
 * the page keeps as many as its image budget holds), with the ground-truth
 * mask's outline where items have one. title may be NULL. Returns 0, or
 * the exit code after printing the error. */
int cli_write_report(const char *path, ae_model *model, const ae_meta *meta, const ae_dataset *ds,
                     const size_t *items, const float *scores, size_t n, const int *labels,
                     const ae_metrics_summary *m, int top_k, const char *title);

#endif
