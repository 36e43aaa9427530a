/* Streamed batches: a pool of decoder threads fills a ring of batch buffers
 * ahead of the consumer, so ae_loader_next usually returns at once and the
 * pixels in memory never exceed ring x batch x H x W x C bytes.
 *
 * Work is handed out one image at a time, in epoch order: image k belongs to
 * batch k / batch_size, held by ring slot (batch % ring). An image is claimed
 * only when its batch is within `ring` batches of the oldest batch the consumer
 * still holds, so a slot is never refilled while its batch is in use. A batch
 * handed out stays valid until the next ae_loader_next / ae_loader_start.
 *
 * Every shared field is read and written under `mu`; pixels are written by one
 * worker outside the lock and read by the consumer only after it has seen,
 * under the lock, the slot's pending count reach zero.
 *
 * An unchecked loader's first epoch (loader.c) is also its check: a worker
 * notes why each bad image failed, and the consumer stops at the batch's
 * first bad image (AE_BAD_STOP) or takes the bad ones out of the batch
 * (AE_BAD_SKIP), in epoch order, so the outcome does not depend on timing. */
#include "data/loader_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *pixels;
    size_t *items;
    size_t batch;   /* the batch held; SIZE_MAX for none */
    int count;      /* images in it */
    int pending;    /* images still being decoded */
    ae_error error; /* the first decoding failure in it, if any */
    char **why;     /* unchecked: why[pos] for each bad image, else NULL */
    int nomem;      /* unchecked: a why could not be allocated */
} ring_slot;

struct loader_stream {
    pthread_mutex_t mu;
    pthread_cond_t work;  /* a worker may claim an image, or shut down */
    pthread_cond_t ready; /* a slot completed */
    pthread_cond_t idle;  /* nothing in flight */
    pthread_t *threads;
    int num_threads;
    ring_slot *slots;
    int ring;
    int slot_capacity;    /* images each slot's buffers hold */
    size_t batch_size;    /* of this epoch */
    size_t total;         /* images in this epoch; 0 when stopped */
    size_t next_image;    /* next image to claim */
    size_t released;      /* batches the consumer is done with */
    size_t consumer;      /* next batch to hand out */
    int outstanding;      /* a batch was handed out and is not released yet */
    int in_flight;
    int shutdown;
};

static int has_work(const loader_stream *st)
{
    return st->next_image < st->total &&
           st->next_image / st->batch_size < st->released + (size_t)st->ring;
}

static void clear_why(ring_slot *slot, int capacity)
{
    for (int i = 0; i < capacity; i++) {
        free(slot->why[i]);
        slot->why[i] = NULL;
    }
    slot->nomem = 0;
}

static void *worker(void *arg)
{
    ae_loader *l = arg;
    loader_stream *st = l->stream;
    ae_error e;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        while (!st->shutdown && !has_work(st))
            pthread_cond_wait(&st->work, &st->mu);
        if (st->shutdown)
            break;
        size_t k = st->next_image++, bs = st->batch_size;
        size_t b = k / bs, pos = k % bs;
        ring_slot *slot = &st->slots[b % (size_t)st->ring];
        if (pos == 0) { /* the first image of a batch claims the slot */
            size_t left = st->total - b * bs;
            clear_why(slot, st->slot_capacity); /* an abandoned epoch's */
            slot->batch = b;
            slot->count = (int)(left < bs ? left : bs);
            slot->pending = slot->count;
            ae_error_clear(&slot->error);
        }
        size_t item = l->items[l->order[k]];
        slot->items[pos] = item;
        uint8_t *dst = slot->pixels + pos * l->image_bytes;
        int unchecked = l->unchecked;
        st->in_flight++;
        pthread_mutex_unlock(&st->mu);

        ae_status s = loader_decode(l, item, dst, &e);
        /* Out of memory is the machine's fault, not the file's: never a bad file. */
        int bad = s != AE_OK && s != AE_ERR_NOMEM && unchecked;
        char *why = bad ? loader_bad_message(l, item, e.message) : NULL;

        pthread_mutex_lock(&st->mu);
        if (bad) {
            slot->why[pos] = why;
            slot->nomem |= !why;
        } else if (s != AE_OK && slot->error.code == AE_OK)
            slot->error = e;
        if (--slot->pending == 0)
            pthread_cond_broadcast(&st->ready);
        if (--st->in_flight == 0)
            pthread_cond_broadcast(&st->idle);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

static void free_slots(loader_stream *st)
{
    for (int i = 0; st->slots && i < st->ring; i++) {
        if (st->slots[i].why)
            clear_why(&st->slots[i], st->slot_capacity);
        free(st->slots[i].why);
        free(st->slots[i].pixels);
        free(st->slots[i].items);
    }
    free(st->slots);
    st->slots = NULL;
    st->slot_capacity = 0;
}

ae_status loader_stream_create(ae_loader *l, ae_error *err)
{
    loader_stream *st = calloc(1, sizeof *st);
    if (!st)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for the image stream");
    st->ring = l->ring_batches;
    st->threads = calloc((size_t)l->threads, sizeof *st->threads);
    if (!st->threads) {
        free(st);
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for %d decoder threads", l->threads);
    }
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->work, NULL);
    pthread_cond_init(&st->ready, NULL);
    pthread_cond_init(&st->idle, NULL);
    l->stream = st;
    for (int i = 0; i < l->threads; i++) {
        if (pthread_create(&st->threads[i], NULL, worker, l) != 0)
            return ae_fail(err, AE_ERR_NOMEM, "cannot start decoder thread %d of %d", i + 1,
                           l->threads);
        st->num_threads++;
    }
    return AE_OK;
}

void loader_stream_stop(ae_loader *l)
{
    loader_stream *st = l->stream;
    pthread_mutex_lock(&st->mu);
    st->total = 0; /* nothing more to claim */
    while (st->in_flight > 0)
        pthread_cond_wait(&st->idle, &st->mu);
    pthread_mutex_unlock(&st->mu);
}

ae_status loader_stream_start(ae_loader *l, ae_error *err)
{
    loader_stream *st = l->stream;
    /* Stopped: the workers wait, so the ring may be rebuilt without the lock. */
    size_t capacity = (size_t)l->batch_size < l->count ? (size_t)l->batch_size : l->count;
    if ((size_t)st->slot_capacity != capacity) {
        free_slots(st);
        st->slots = calloc((size_t)st->ring, sizeof *st->slots);
        if (!st->slots)
            return ae_fail(err, AE_ERR_NOMEM, "out of memory for the batch ring");
        for (int i = 0; i < st->ring; i++) {
            st->slots[i].pixels = malloc(capacity * l->image_bytes);
            st->slots[i].items = malloc(capacity * sizeof(size_t));
            st->slots[i].why = calloc(capacity, sizeof(char *));
            if (!st->slots[i].pixels || !st->slots[i].items || !st->slots[i].why) {
                free_slots(st);
                return ae_fail(err, AE_ERR_NOMEM, "out of memory for %d batches of %zu images",
                               st->ring, capacity);
            }
        }
        st->slot_capacity = (int)capacity;
    }
    pthread_mutex_lock(&st->mu);
    st->batch_size = (size_t)l->batch_size;
    for (int i = 0; i < st->ring; i++)
        st->slots[i].batch = SIZE_MAX;
    st->next_image = st->released = st->consumer = 0;
    st->outstanding = 0;
    st->total = l->epoch_count;
    pthread_cond_broadcast(&st->work);
    pthread_mutex_unlock(&st->mu);
    return AE_OK;
}

/* An unchecked epoch's batch b, held by the consumer: the policy applied to
 * its bad images. Those skipped leave the batch (and, when the epoch ends,
 * the loader's items); their messages join the loader's list. */
static ae_status apply_policy_to(ae_loader *l, ring_slot *slot, size_t b, ae_error *err)
{
    if (slot->nomem)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory listing bad images");
    int kept = 0;
    ae_status s = AE_OK;
    for (int pos = 0; pos < slot->count; pos++) {
        char *why = slot->why[pos];
        if (!why) {
            if (kept != pos) {
                memcpy(slot->pixels + (size_t)kept * l->image_bytes,
                       slot->pixels + (size_t)pos * l->image_bytes, l->image_bytes);
                slot->items[kept] = slot->items[pos];
            }
            kept++;
            continue;
        }
        slot->why[pos] = NULL;
        if (s != AE_OK) {
            free(why);
        } else if (l->bad_policy == AE_BAD_STOP) {
            s = ae_fail(err, AE_ERR_DATA, "%s (stopped at the first bad image; the skip policy "
                        "leaves bad images out)", why);
            free(why);
        } else {
            l->bad_at[l->order[b * (size_t)l->batch_size + (size_t)pos]] = 1;
            s = loader_add_bad(l, why, err);
        }
    }
    slot->count = kept;
    return s;
}

ae_status loader_stream_next(ae_loader *l, ae_batch *batch, ae_error *err)
{
    loader_stream *st = l->stream;
    pthread_mutex_lock(&st->mu);
    ring_slot *slot;
    size_t b;
    do {
        if (st->outstanding) { /* the caller is done with the previous batch */
            st->released++;
            st->outstanding = 0;
            pthread_cond_broadcast(&st->work);
        }
        b = st->consumer;
        if (b * st->batch_size >= st->total) {
            pthread_mutex_unlock(&st->mu);
            /* the end of the epoch: count 0 */
            return l->unchecked && st->total ? loader_finish_check(l, err) : AE_OK;
        }
        slot = &st->slots[b % (size_t)st->ring];
        while (!(slot->batch == b && slot->pending == 0))
            pthread_cond_wait(&st->ready, &st->mu);
        st->consumer++;
        st->outstanding = 1;
        if (l->unchecked) {
            ae_status s = apply_policy_to(l, slot, b, err);
            if (s != AE_OK) {
                pthread_mutex_unlock(&st->mu);
                return s;
            }
        }
    } while (slot->count == 0); /* every image of it was bad and skipped */
    ae_error failure = slot->error;
    pthread_mutex_unlock(&st->mu);
    if (failure.code != AE_OK) {
        if (err)
            *err = failure;
        if (failure.code != AE_ERR_NOMEM)
            ae_error_prefix(err, "streaming batch %zu (the file changed since it was checked?)", b + 1);
        return failure.code;
    }
    batch->count = slot->count;
    batch->pixels = slot->pixels;
    batch->items = slot->items;
    return AE_OK;
}

void loader_stream_free(ae_loader *l)
{
    loader_stream *st = l->stream;
    if (!st)
        return;
    pthread_mutex_lock(&st->mu);
    st->shutdown = 1;
    pthread_cond_broadcast(&st->work);
    pthread_mutex_unlock(&st->mu);
    for (int i = 0; i < st->num_threads; i++)
        pthread_join(st->threads[i], NULL);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->work);
    pthread_cond_destroy(&st->ready);
    pthread_cond_destroy(&st->idle);
    free_slots(st);
    free(st->threads);
    free(st);
    l->stream = NULL;
}
