/* The loader's state, shared by loader.c (planning, memory mode) and
 * loader_stream.c (the prefetching thread pool); not public. */
#ifndef AEDET_LOADER_INTERNAL_H
#define AEDET_LOADER_INTERNAL_H

#include "aedet/data.h"

typedef struct loader_stream loader_stream;

struct ae_loader {
    const ae_dataset *ds;
    int height, width, channels, threads, ring_batches;
    size_t image_bytes;
    size_t *items; /* usable dataset indices, in the order given (bad ones removed) */
    size_t count;
    char **bad;    /* "path: reason" for each skipped file */
    size_t num_bad;
    int streaming;
    ae_bad_policy bad_policy;
    /* One pass (ae_loader_config.one_pass): no check pass; the first epoch
     * checks each file as it decodes it. Until that epoch ends, count holds
     * every item and bad_at marks the positions in items found bad. */
    int unchecked;
    uint8_t *bad_at;
    int epochs_started;

    uint8_t *images; /* memory mode: count x image_bytes, in items order */

    /* The current epoch. */
    int started, batch_size;
    size_t *order;       /* a permutation of 0..count-1 (positions in items) */
    size_t epoch_count;  /* positions of order in this epoch: count, or a rank's share */
    size_t next_pos;     /* memory mode: next position in order */
    uint8_t *batch_pixels; /* memory mode: the batch handed out */
    size_t *batch_items;
    loader_stream *stream;
};

/* Decodes dataset item `item` into dst at the loader's size. */
ae_status loader_decode(const ae_loader *l, size_t item, uint8_t *dst, ae_error *err);

/* "path: reason" for a bad item, in malloc'd memory (NULL: out of memory). */
char *loader_bad_message(const ae_loader *l, size_t item, const char *reason);
/* Adds a bad item's message to the list the loader reports (takes it). */
ae_status loader_add_bad(ae_loader *l, char *message, ae_error *err);
/* The end of an unchecked first epoch: drops the items found bad. */
ae_status loader_finish_check(ae_loader *l, ae_error *err);

ae_status loader_stream_create(ae_loader *l, ae_error *err);
/* Stops handing out work and waits for the decodes in flight: after it, the
 * workers touch neither l->order nor the ring until loader_stream_start. */
void loader_stream_stop(ae_loader *l);
/* Starts an epoch over l->order with l->batch_size (after loader_stream_stop). */
ae_status loader_stream_start(ae_loader *l, ae_error *err);
ae_status loader_stream_next(ae_loader *l, ae_batch *batch, ae_error *err);
void loader_stream_free(ae_loader *l);

#endif
