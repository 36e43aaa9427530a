/* Internal: a thread pool whose idle workers sleep (pool.c). */
#ifndef AEDET_NN_POOL_H
#define AEDET_NN_POOL_H

typedef struct ae_pool ae_pool;
/* One item: item in [0, items), thread in [0, threads) the runner's index
 * (for per-thread scratch). */
typedef void (*ae_pool_fn)(void *ctx, int item, int thread);

/* threads - 1 workers (the caller is the last one); NULL if they cannot start. */
ae_pool *ae_pool_create(int threads);
void ae_pool_free(ae_pool *p);
/* Threads a job can use: workers + 1 (1 for NULL). */
int ae_pool_threads(const ae_pool *p);
/* fn for every item on up to `threads` threads (the caller included), then
 * returns. A NULL pool, or threads 1, runs the items in order on the caller.
 * One job at a time per pool. */
void ae_pool_run(ae_pool *p, int threads, int items, ae_pool_fn fn, void *ctx);

#endif
