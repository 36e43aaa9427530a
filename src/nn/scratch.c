/* Per-thread scratch and the fixed-order reduction of per-image partials that
 * makes gradients independent of the thread count. */
#include "nn/layers.h"
#include "nn/pool.h"

#include <assert.h>
#include <omp.h>
#include <stddef.h>

int ae_scratch_threads(const ae_scratch *s)
{
    int t = omp_get_max_threads();
    return t < s->num_threads ? t : s->num_threads;
}

static double parallel_macs = AE_PARALLEL_MACS;
static size_t parallel_values = AE_PARALLEL_VALUES;

void ae_set_parallel_thresholds(double macs, size_t values)
{
    parallel_macs = macs;
    parallel_values = values;
}

size_t ae_parallel_values(void) { return parallel_values; }

int ae_threads_for(const ae_scratch *s, double macs)
{
    return macs >= parallel_macs ? ae_scratch_threads(s) : 1;
}

typedef struct {
    ae_chunk_fn fn;
    void *ctx;
    size_t count, chunk;
} chunk_job;

static void run_chunk(void *arg, int item, int thread)
{
    (void)thread;
    const chunk_job *j = arg;
    size_t begin = (size_t)item * j->chunk;
    j->fn(j->ctx, begin, j->count - begin < j->chunk ? j->count : begin + j->chunk);
}

void ae_parallel_chunks(ae_scratch *s, size_t count, size_t chunk, size_t work, ae_chunk_fn fn,
                        void *ctx)
{
    chunk_job j = {fn, ctx, count, chunk};
    const size_t items = (count + chunk - 1) / chunk;
    const int threads = s && work >= parallel_values ? ae_scratch_threads(s) : 1;
    ae_pool_run(s ? s->pool : NULL, threads, (int)items, run_chunk, &j);
}

typedef struct {
    float *dst;
    const float *slots;
    size_t stride;
    int n;
} reduce_job;

/* Elements [j0, j1): each element's sum runs over the images in order, whoever
 * computes it; a block at a time, so that every image's slot is read
 * contiguously. */
static void reduce_block(void *arg, size_t j0, size_t j1)
{
    enum { BLOCK = 512 };
    const reduce_job *r = arg;
    for (size_t b0 = j0; b0 < j1; b0 += BLOCK) {
        double sum[BLOCK];
        const size_t len = j1 - b0 < BLOCK ? j1 - b0 : BLOCK;
        for (size_t j = 0; j < len; j++)
            sum[j] = 0;
        for (int i = 0; i < r->n; i++) {
            const float *row = r->slots + (size_t)i * r->stride + b0;
            for (size_t j = 0; j < len; j++)
                sum[j] += row[j];
        }
        for (size_t j = 0; j < len; j++)
            r->dst[b0 + j] = (float)sum[j];
    }
}

void ae_reduce_slots(float *dst, const float *slots, size_t stride, int n, size_t count,
                     ae_scratch *s)
{
    reduce_job r = {dst, slots, stride, n};
    ae_parallel_chunks(s, count, 4096, count * (size_t)n / 4, reduce_block, &r);
}

int ae_grad_group(double macs_per_image, size_t kernel_floats)
{
    /* Zeroing a slot and adding it into the total costs about 4 kernel_floats
     * multiply-adds' time: worth sharing below 1/64 of the image's work. */
    return macs_per_image < 256.0 * (double)kernel_floats ? AE_GRAD_GROUP_MAX : 1;
}

typedef struct {
    ae_image_grad_fn image;
    const void *ctx;
    const ae_scratch *s;
    int n, group;
} slots_job;

/* The images of slot `item`, in index order, the first overwriting it. */
static void slot_images(void *arg, int item, int t)
{
    const slots_job *j = arg;
    float *slot = j->s->slots + (size_t)item * j->s->slot_floats;
    const int begin = item * j->group, end = begin + j->group < j->n ? begin + j->group : j->n;
    for (int i = begin; i < end; i++)
        j->image(j->ctx, i, t, slot, i == begin);
}

void ae_grad_slots_run(ae_scratch *s, int n, double macs, size_t kernel, size_t bias,
                       ae_image_grad_fn image, const void *ctx, float *dw, float *db)
{
    assert(n > 0 && kernel + bias <= s->slot_floats); /* a slot holds an image's dw and db */
    const int group = ae_grad_group(macs / n, kernel), slots = (n + group - 1) / group;
    slots_job j = {image, ctx, s, n, group};
    ae_pool_run(s->pool, ae_threads_for(s, macs), slots, slot_images, &j);
    ae_reduce_slots(dw, s->slots, s->slot_floats, slots, kernel, s);
    ae_reduce_slots(db, s->slots + kernel, s->slot_floats, slots, bias, s);
}

/* Four chains by pixel offset mod 4, (a0 + a1) + (a2 + a3): independent
 * adds (one chain waited on the latency of each), the vector kernels' order. */
static void bias_sum(float *db, const float *dy, size_t pixels, int c, int add)
{
    for (int o = 0; o < c; o++) {
        float a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (size_t p = 0; p < pixels; p++)
            a[p % 4] += dy[p * c + o];
        const float sum = (a[0] + a[1]) + (a[2] + a[3]);
        db[o] = add ? db[o] + sum : sum;
    }
}

void ae_bias_grad(float *db, const float *dy, size_t pixels, int c)
{
    bias_sum(db, dy, pixels, c, 0);
}

void ae_bias_grad_add(float *db, const float *dy, size_t pixels, int c)
{
    bias_sum(db, dy, pixels, c, 1);
}
