/* Batches of uint8 pixels at the model's size: planning, bad files, and the
 * in-memory mode. The streamed mode is in loader_stream.c.
 *
 * Both modes start with one parallel pass that decodes every item: in memory
 * it fills the image buffer; when streaming it only checks each file (into a
 * scratch buffer), so that bad files stop the run at once (AE_BAD_STOP) or are
 * left out of every epoch alike (AE_BAD_SKIP). Batches then depend only on
 * the usable items, the batch size and the seed: the same in both modes.
 *
 * A one-pass reader (scoring) may stream without that pass, which decodes
 * every file twice: the first epoch then checks each file as it decodes it
 * (loader_stream.c), and its end drops the bad items (loader_finish_check).
 * Any other epoch start before that end runs the check pass after all. */
#include "data/loader_internal.h"

#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DEFAULT_RING = 4, PEAK_BATCH_HINT = 32 };
#define DEFAULT_BUDGET ((size_t)1 << 30)

ae_status loader_decode(const ae_loader *l, size_t item, uint8_t *dst, ae_error *err)
{
    const ae_dataset *ds = l->ds;
    const ae_item *it = &ds->items[item];
    if (!it->path) {
        /* An IDX record: prepared straight from the file's pixels, no copy. */
        const ae_idx *im = &ds->idx_images;
        ae_image view = {.height = im->dims[1], .width = im->dims[2],
                         .channels = im->ndim == 4 ? im->dims[3] : 1};
        size_t bytes = (size_t)view.height * (size_t)view.width * (size_t)view.channels;
        if (it->index < 0 || (size_t)it->index >= im->count)
            return ae_fail(err, AE_ERR_USAGE, "IDX record #%lld of %zu",
                           (long long)it->index, im->count);
        view.pixels = im->data + (size_t)it->index * bytes;
        ae_status s = ae_image_prepare(&view, l->height, l->width, l->channels, dst, err);
        if (s != AE_OK)
            ae_error_prefix(err, "#%lld", (long long)it->index);
        return s;
    }
    ae_image img;
    ae_status s = ae_image_load(it->path, &img, err);
    if (s != AE_OK)
        return s;
    s = ae_image_prepare(&img, l->height, l->width, l->channels, dst, err);
    if (s != AE_OK)
        ae_error_prefix(err, "%s", it->path);
    ae_image_free(&img);
    return s;
}

/* "path: reason", without repeating the path when the reason starts with it. */
char *loader_bad_message(const ae_loader *l, size_t item, const char *reason)
{
    char buf[32];
    const char *name = ae_item_name(&l->ds->items[item], buf, sizeof buf);
    size_t n = strlen(name);
    if (!strncmp(reason, name, n) && reason[n] == ':')
        return strdup(reason);
    size_t len = n + strlen(reason) + 3;
    char *m = malloc(len);
    if (m)
        snprintf(m, len, "%s: %s", name, reason);
    return m;
}

/* Decodes every item, into l->images when dst_all, else into scratch. Leaves
 * a message in why[i] for each bad item. When stop_early, items after the
 * first bad one are not decoded; those before it all are, so the first bad
 * item (in items order) is found whatever the thread timing. */
static ae_status decode_all(ae_loader *l, uint8_t *dst_all, int stop_early, char **why,
                            ae_error *err)
{
    _Atomic size_t first_bad = SIZE_MAX;
    atomic_int nomem = 0;
    ae_error nomem_err; /* the first decode that ran out of memory */
    ae_error_clear(&nomem_err);
    long long n = (long long)l->count;
#pragma omp parallel num_threads(l->threads)
    {
        uint8_t *scratch = dst_all ? NULL : malloc(l->image_bytes);
        ae_error e;
        ae_error_clear(&e);
        if (!dst_all && !scratch)
            atomic_store(&nomem, 1);
#pragma omp for schedule(dynamic, 1)
        for (long long i = 0; i < n; i++) {
            size_t k = (size_t)i;
            if (atomic_load(&nomem) || (stop_early && k > atomic_load(&first_bad)))
                continue;
            uint8_t *dst = dst_all ? dst_all + k * l->image_bytes : scratch;
            ae_status s = loader_decode(l, l->items[k], dst, &e);
            if (s == AE_OK)
                continue;
            if (s == AE_ERR_NOMEM) { /* the machine's fault, not the file's: no bad image */
                if (!atomic_exchange(&nomem, 1))
                    nomem_err = e; /* the first one's; read after the region's barrier */
                continue;
            }
            if (!(why[k] = loader_bad_message(l, l->items[k], e.message)))
                atomic_store(&nomem, 1);
            size_t seen = atomic_load(&first_bad);
            while (k < seen && !atomic_compare_exchange_weak(&first_bad, &seen, k))
                ;
        }
        free(scratch);
    }
    if (nomem_err.code == AE_ERR_NOMEM) /* its message, when the decoder gave one */
        return ae_fail(err, AE_ERR_NOMEM, "%s", nomem_err.message);
    if (nomem)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory decoding %zu images", l->count);
    return AE_OK;
}

/* Applies the bad-file policy to why[]: fails on the first, or removes them. */
static ae_status apply_policy(ae_loader *l, ae_bad_policy policy, char **why, ae_error *err)
{
    size_t first = SIZE_MAX, nbad = 0;
    for (size_t i = 0; i < l->count; i++)
        if (why[i]) {
            nbad++;
            if (first == SIZE_MAX)
                first = i;
        }
    if (nbad == 0)
        return AE_OK;
    if (policy == AE_BAD_STOP)
        return ae_fail(err, AE_ERR_DATA, "%s (stopped at the first bad image; the skip policy "
                       "leaves bad images out)", why[first]);
    l->bad = malloc(nbad * sizeof *l->bad);
    if (!l->bad)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory listing %zu bad images", nbad);
    size_t kept = 0;
    for (size_t i = 0; i < l->count; i++) {
        if (why[i]) {
            l->bad[l->num_bad++] = why[i];
            why[i] = NULL;
            continue;
        }
        if (l->images && kept != i)
            memmove(l->images + kept * l->image_bytes, l->images + i * l->image_bytes,
                    l->image_bytes);
        l->items[kept++] = l->items[i];
    }
    l->count = kept;
    if (kept == 0)
        return ae_fail(err, AE_ERR_DATA, "all %zu images are bad; the first: %s", nbad, l->bad[0]);
    return AE_OK;
}

/* The check pass: decodes every item (into l->images in memory mode) and
 * applies the bad-file policy. */
static ae_status check_all(ae_loader *l, ae_error *err)
{
    char **why = calloc(l->count, sizeof *why);
    if (!why)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory planning %zu images", l->count);
    ae_status s = decode_all(l, l->images, l->bad_policy == AE_BAD_STOP, why, err);
    if (s == AE_OK)
        s = apply_policy(l, l->bad_policy, why, err);
    for (size_t i = 0; i < l->count; i++)
        free(why[i]);
    free(why);
    return s;
}

ae_status loader_add_bad(ae_loader *l, char *message, ae_error *err)
{
    char **bad = realloc(l->bad, (l->num_bad + 1) * sizeof *bad);
    if (!bad) {
        free(message);
        return ae_fail(err, AE_ERR_NOMEM, "out of memory listing bad images");
    }
    l->bad = bad;
    l->bad[l->num_bad++] = message;
    return AE_OK;
}

ae_status loader_finish_check(ae_loader *l, ae_error *err)
{
    size_t kept = 0;
    for (size_t i = 0; i < l->count; i++)
        if (!l->bad_at[i])
            l->items[kept++] = l->items[i];
    l->count = kept;
    l->unchecked = 0;
    free(l->bad_at);
    l->bad_at = NULL;
    if (kept == 0)
        return ae_fail(err, AE_ERR_DATA, "all %zu images are bad; the first: %s", l->num_bad, l->bad[0]);
    return AE_OK;
}

/* An epoch other than an unchecked loader's first whole one: the findings
 * of a first epoch cut short are dropped, and every file is checked now. */
static ae_status check_now(ae_loader *l, ae_error *err)
{
    for (size_t i = 0; i < l->num_bad; i++)
        free(l->bad[i]);
    free(l->bad);
    l->bad = NULL;
    l->num_bad = 0;
    free(l->bad_at);
    l->bad_at = NULL;
    l->unchecked = 0;
    return check_all(l, err);
}

static ae_status check_config(const ae_dataset *ds, const size_t *items, size_t count,
                              const ae_loader_config *cfg, ae_error *err)
{
    if (count == 0)
        return ae_fail(err, AE_ERR_USAGE, "no images to load");
    if (cfg->height <= 0 || cfg->width <= 0 || !(cfg->channels == 1 || cfg->channels == 3))
        return ae_fail(err, AE_ERR_USAGE, "model size %dx%dx%d: need positive sizes and 1 or 3 "
                       "channels", cfg->height, cfg->width, cfg->channels);
    for (size_t i = 0; i < count; i++)
        if (items[i] >= ds->count)
            return ae_fail(err, AE_ERR_USAGE, "item %zu of a data set of %zu", items[i],
                           ds->count);
    return AE_OK;
}

ae_status ae_loader_create(const ae_dataset *ds, const size_t *items, size_t count,
                           const ae_loader_config *cfg, ae_loader **out, ae_error *err)
{
    *out = NULL;
    ae_status s = check_config(ds, items, count, cfg, err);
    if (s != AE_OK)
        return s;
    size_t image_bytes, all_bytes;
    if (!ae_mul_size((size_t)cfg->height * (size_t)cfg->width, (size_t)cfg->channels,
                     &image_bytes) || !ae_mul_size(image_bytes, count, &all_bytes))
        return ae_fail(err, AE_ERR_NOMEM, "%zu images of %dx%dx%d overflow", count,
                       cfg->height, cfg->width, cfg->channels);
    ae_loader *l = calloc(1, sizeof *l);
    if (!l || !(l->items = malloc(count * sizeof *l->items))) {
        free(l);
        return ae_fail(err, AE_ERR_NOMEM, "out of memory planning %zu images", count);
    }
    memcpy(l->items, items, count * sizeof *items);
    l->ds = ds;
    l->count = count;
    l->height = cfg->height;
    l->width = cfg->width;
    l->channels = cfg->channels;
    l->image_bytes = image_bytes;
    l->threads = cfg->threads > 0 ? cfg->threads : omp_get_num_procs();
    /* More decoders than images do nothing, and every thread costs a stack:
     * libgomp aborts, and pthread_create fails, past what the system allows. */
    if ((size_t)l->threads > count)
        l->threads = (int)count;
    if (l->threads > AE_MAX_THREADS)
        l->threads = AE_MAX_THREADS;
    l->ring_batches = cfg->ring_batches > 0 ? cfg->ring_batches : DEFAULT_RING;
    l->streaming = all_bytes > (cfg->memory_budget ? cfg->memory_budget : DEFAULT_BUDGET);
    l->bad_policy = cfg->bad_policy;
    l->unchecked = l->streaming && cfg->one_pass;
    if (!l->streaming && !(l->images = malloc(all_bytes)))
        s = ae_fail(err, AE_ERR_NOMEM, "out of memory for %zu images (%zu bytes); a smaller "
                    "memory budget streams them from disk", count, all_bytes);
    if (s == AE_OK && l->unchecked && !(l->bad_at = calloc(count, 1)))
        s = ae_fail(err, AE_ERR_NOMEM, "out of memory planning %zu images", count);
    if (s == AE_OK && !l->unchecked)
        s = check_all(l, err);
    if (s == AE_OK && l->streaming)
        s = loader_stream_create(l, err);
    if (s != AE_OK) {
        ae_loader_free(l);
        return s;
    }
    *out = l;
    return AE_OK;
}

void ae_loader_free(ae_loader *l)
{
    if (!l)
        return;
    loader_stream_free(l);
    for (size_t i = 0; i < l->num_bad; i++)
        free(l->bad[i]);
    free(l->bad);
    free(l->bad_at);
    free(l->items);
    free(l->images);
    free(l->order);
    free(l->batch_pixels);
    free(l->batch_items);
    free(l);
}

int ae_loader_is_streaming(const ae_loader *l) { return l->streaming; }
size_t ae_loader_count(const ae_loader *l) { return l->count; }
size_t ae_loader_num_bad(const ae_loader *l) { return l->num_bad; }

const char *ae_loader_bad(const ae_loader *l, size_t i)
{
    return i < l->num_bad ? l->bad[i] : NULL;
}

size_t ae_loader_peak_bytes(const ae_loader *l)
{
    size_t batch = (size_t)(l->started ? l->batch_size : PEAK_BATCH_HINT);
    if (batch > l->count)
        batch = l->count;
    size_t batch_bytes = batch * l->image_bytes;
    if (l->streaming)
        return (size_t)l->ring_batches * batch_bytes;
    return l->count * l->image_bytes + batch_bytes;
}

/* Keeps rank's share of each global batch of order[0..count), in place
 * (a share never lies before where it moves to); returns its length. */
static size_t keep_shard(size_t *order, size_t count, int batch_size, int rank, int ranks)
{
    size_t kept = 0;
    for (size_t at = 0; at < count; at += (size_t)batch_size) {
        int n = count - at < (size_t)batch_size ? (int)(count - at) : batch_size;
        size_t first = at + (size_t)ae_shard_first(n, rank, ranks);
        for (int k = 0; k < ae_shard_count(n, rank, ranks); k++)
            order[kept++] = order[first + (size_t)k];
    }
    return kept;
}

ae_status ae_loader_start(ae_loader *l, int batch_size, int shuffle, uint64_t seed, ae_error *err)
{
    return ae_loader_start_shard(l, batch_size, shuffle, seed, 0, 1, err);
}

ae_status ae_loader_start_shard(ae_loader *l, int batch_size, int shuffle, uint64_t seed, int rank,
                                int ranks, ae_error *err)
{
    if (batch_size <= 0)
        return ae_fail(err, AE_ERR_USAGE, "batch size %d: must be positive", batch_size);
    if (ranks < 1 || rank < 0 || rank >= ranks || batch_size < ranks)
        return ae_fail(err, AE_ERR_USAGE, "batch size %d over %d ranks (rank %d): each needs an image",
                       batch_size, ranks, rank);
    if (!l->order && !(l->order = malloc(l->count * sizeof *l->order)))
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for the epoch order");
    if (l->streaming) /* the workers must be idle before order changes */
        loader_stream_stop(l);
    l->started = 0;
    if (l->unchecked && (l->epochs_started > 0 || ranks > 1)) {
        ae_status s = check_now(l, err);
        if (s != AE_OK)
            return s;
    }
    l->epochs_started++;
    for (size_t i = 0; i < l->count; i++)
        l->order[i] = i;
    if (shuffle) {
        ae_rng rng;
        ae_rng_seed(&rng, seed);
        ae_shuffle_sizes(&rng, l->order, l->count);
    }
    l->epoch_count = l->count;
    if (ranks > 1) {
        l->epoch_count = keep_shard(l->order, l->count, batch_size, rank, ranks);
        batch_size = ae_shard_count(batch_size, rank, ranks);
    }
    if (l->streaming) {
        l->batch_size = batch_size;
        ae_status s = loader_stream_start(l, err);
        if (s != AE_OK)
            return s;
    } else if (batch_size != l->batch_size || !l->batch_pixels) {
        size_t capacity = (size_t)batch_size < l->count ? (size_t)batch_size : l->count;
        free(l->batch_pixels);
        free(l->batch_items);
        l->batch_size = 0;
        l->batch_pixels = malloc(capacity * l->image_bytes);
        l->batch_items = malloc(capacity * sizeof *l->batch_items);
        if (!l->batch_pixels || !l->batch_items)
            return ae_fail(err, AE_ERR_NOMEM, "out of memory for a batch of %d", batch_size);
    }
    l->batch_size = batch_size;
    l->next_pos = 0;
    l->started = 1;
    return AE_OK;
}

ae_status ae_loader_next(ae_loader *l, ae_batch *batch, ae_error *err)
{
    *batch = (ae_batch){0};
    if (!l->started)
        return ae_fail(err, AE_ERR_USAGE, "ae_loader_next before ae_loader_start");
    if (l->streaming)
        return loader_stream_next(l, batch, err);
    size_t n = l->epoch_count - l->next_pos;
    if (n > (size_t)l->batch_size)
        n = (size_t)l->batch_size;
    for (size_t j = 0; j < n; j++) {
        size_t pos = l->order[l->next_pos + j];
        memcpy(l->batch_pixels + j * l->image_bytes, l->images + pos * l->image_bytes,
               l->image_bytes);
        l->batch_items[j] = l->items[pos];
    }
    l->next_pos += n;
    batch->count = (int)n;
    batch->pixels = n ? l->batch_pixels : NULL;
    batch->items = n ? l->batch_items : NULL;
    return AE_OK;
}

void ae_pixels_to_float(const uint8_t *pixels, size_t count, float *out)
{
    /* A table of the exact quotients: x / 255.0f, as Keras computes it, at the
     * speed of a lookup. */
    float table[256];
    for (int v = 0; v < 256; v++)
        table[v] = (float)v / 255.0f;
    for (size_t i = 0; i < count; i++)
        out[i] = table[pixels[i]];
}
