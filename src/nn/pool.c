/* A small thread pool for the per-image loops. Between jobs a worker polls
 * for the next one for a short while (~0.1 ms: the layers of a step come
 * back to back, and waking a sleeping thread takes tens of microseconds),
 * then sleeps on a condition variable. libgomp's workers spin for far longer
 * at every barrier, which on a machine whose cores are shared lets a
 * preempted thread hold up its spinning partner for a whole time slice at
 * each of a step's barriers. Items are claimed in order from one atomic
 * counter, so a worker that is behind simply takes fewer; what an item
 * computes does not depend on who runs it. */
#include "nn/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef struct {
    ae_pool *pool;
    int index; /* 1..workers; the caller is 0 */
    pthread_t thread;
} worker;

struct ae_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    int workers, started;
    worker *w;
    /* the current job: written under lock before generation moves on */
    atomic_ulong generation;
    atomic_int stop, finished;
    int helpers, sleepers;
    ae_pool_fn fn;
    void *ctx;
    int items;
    atomic_int next;
};

enum { SPINS = 2000 }; /* polls before sleeping: ~0.1 ms */

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void run_items(ae_pool *p, int index)
{
    for (;;) {
        int i = atomic_fetch_add(&p->next, 1);
        if (i >= p->items)
            return;
        p->fn(p->ctx, i, index);
    }
}

static void *worker_main(void *arg)
{
    worker *me = arg;
    ae_pool *p = me->pool;
    unsigned long seen = 0;
    for (;;) {
        for (int k = 0; k < SPINS && atomic_load(&p->generation) == seen && !atomic_load(&p->stop);
             k++)
            relax();
        pthread_mutex_lock(&p->lock);
        p->sleepers++;
        while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
            pthread_cond_wait(&p->wake, &p->lock);
        p->sleepers--;
        int helpers = p->helpers;
        seen = atomic_load(&p->generation);
        pthread_mutex_unlock(&p->lock);
        if (atomic_load(&p->stop))
            return NULL;
        if (me->index > helpers)
            continue; /* this job uses fewer threads */
        run_items(p, me->index);
        if (atomic_fetch_add(&p->finished, 1) + 1 == helpers) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->lock);
        }
    }
}

ae_pool *ae_pool_create(int threads)
{
    ae_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->workers = threads > 1 ? threads - 1 : 0;
    p->w = calloc((size_t)(p->workers ? p->workers : 1), sizeof *p->w);
    if (!p->w || pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p->w);
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->wake, NULL) != 0 || pthread_cond_init(&p->done, NULL) != 0) {
        pthread_mutex_destroy(&p->lock);
        free(p->w);
        free(p);
        return NULL;
    }
    atomic_init(&p->next, 0);
    atomic_init(&p->generation, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->finished, 0);
    for (int i = 0; i < p->workers; i++) {
        p->w[i].pool = p;
        p->w[i].index = i + 1;
        if (pthread_create(&p->w[i].thread, NULL, worker_main, &p->w[i]) != 0) {
            ae_pool_free(p);
            return NULL;
        }
        p->started++;
    }
    return p;
}

void ae_pool_free(ae_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->w[i].thread, NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->lock);
    free(p->w);
    free(p);
}

int ae_pool_threads(const ae_pool *p) { return p ? p->workers + 1 : 1; }

void ae_pool_run(ae_pool *p, int threads, int items, ae_pool_fn fn, void *ctx)
{
    int helpers = threads - 1;
    if (!p || helpers > p->workers)
        helpers = p ? p->workers : 0;
    if (helpers > items - 1)
        helpers = items - 1;
    if (helpers <= 0) {
        for (int i = 0; i < items; i++)
            fn(ctx, i, 0);
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->ctx = ctx;
    p->items = items;
    atomic_store(&p->next, 0);
    p->helpers = helpers;
    atomic_store(&p->finished, 0);
    atomic_fetch_add(&p->generation, 1); /* publishes the fields above */
    if (p->sleepers)
        pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    run_items(p, 0);
    for (int k = 0; k < SPINS && atomic_load(&p->finished) < helpers; k++)
        relax();
    if (atomic_load(&p->finished) < helpers) {
        pthread_mutex_lock(&p->lock);
        while (atomic_load(&p->finished) < helpers)
            pthread_cond_wait(&p->done, &p->lock);
        pthread_mutex_unlock(&p->lock);
    }
}
