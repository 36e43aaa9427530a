/* Dense. The forward computes every output as b[o] + x[0] w[0][o] + x[1]
 * w[1][o] + ... in that order, whatever the batch: a score must be the same
 * whether an image is scored alone or with 31 others (BLAS picks different
 * kernels, and so rounding, for different batch sizes). Blocks of images x
 * outputs are computed in registers (portable: ae_gemm, unfused; the direct
 * kernels' dense_forward: fused multiply-adds), over chunks of the inputs
 * small enough for a chunk of the weights to stay in cache for every image
 * block (one GEMV per image read the 8 MB enc.dense kernel of a 256x256
 * model 32 times a step); the image and output tails run the same
 * operations per value. Results depend on the kernels (ISA) in use, not on
 * the CPU. The backward is GEMMs over the batch in fixed chunks of the
 * weights' longer side (dx in one call when it is short), on the pool's
 * threads: ae_gemm (gemm.h), whose order of summation is fixed, so the
 * result depends neither on the thread count nor on the CPU, and is the
 * same on every ISA path.
 *
 *   x (n, in), w (in, out) as Keras stores it, b (out), y (n, out) = x @ w + b
 *   backward: dw = x^T @ dy, db = sum over images of dy, dx = dy @ w^T (overwritten) */
#include "nn/kernels/direct.h"
#include "nn/kernels/gemm.h"

#include <string.h>

enum { K_CHUNK = 1024 };

/* Outputs [o_begin, o_end) of every image, portable: b, then the products
 * added in input order, unfused; that is ae_gemm's sum from a C that holds
 * b (and it vectorizes for the CPU whatever -march says). */
static void dense_columns(float *y, const float *x, const float *w, const float *b, int n,
                          int in, int out, int o_begin, int o_end)
{
    for (int i = 0; i < n; i++)
        memcpy(y + (size_t)i * out + o_begin, b + o_begin,
               (size_t)(o_end - o_begin) * sizeof *y);
    ae_gemm(&(ae_gemm_job){.m = n, .n = o_end - o_begin, .k = in, .a = x, .lda = in,
                           .b = w + o_begin, .ldb = out, .c = y + o_begin, .ldc = out,
                           .accumulate = 1});
}

typedef struct {
    float *y;
    const float *x, *w, *b;
    int n, in, out, by_images;
    const ae_direct_ops *ops;
} dense_job;

/* Images [i0, i1), outputs [o0, o1) (o0 a multiple of 32, o1 out or one). */
static void dense_part(const dense_job *j, int i0, int i1, int o0, int o1)
{
    float *y = j->y + (size_t)i0 * j->out;
    const float *x = j->x + (size_t)i0 * j->in;
    if (j->ops)
        j->ops->dense_forward(y, x, j->w, j->b, i1 - i0, j->in, j->out, o0, o1);
    else
        dense_columns(y, x, j->w, j->b, i1 - i0, j->in, j->out, o0, o1);
}

/* Chunks of 8 images, or of 32 outputs: whole register blocks either way. */
enum { SPLIT_IMAGES = 8, SPLIT_OUTPUTS = 32 };

static void dense_chunk(void *arg, size_t begin, size_t end)
{
    const dense_job *j = arg;
    if (j->by_images) {
        const size_t i1 = end * SPLIT_IMAGES < (size_t)j->n ? end * SPLIT_IMAGES : (size_t)j->n;
        dense_part(j, (int)(begin * SPLIT_IMAGES), (int)i1, 0, j->out);
    } else {
        const size_t o1 = end * SPLIT_OUTPUTS < (size_t)j->out ? end * SPLIT_OUTPUTS
                                                               : (size_t)j->out;
        dense_part(j, 0, j->n, (int)(begin * SPLIT_OUTPUTS), (int)o1);
    }
}

void ae_dense_forward(float *y, const float *x, const float *w, const float *b, int n, int in,
                      int out, ae_scratch *s)
{
    /* Threads split the images (few outputs) or the outputs: each value is
     * computed the same way whoever computes it. Work in multiply-adds / 32
     * against the element-wise threshold (2M multiply-adds, as for a
     * convolution). */
    dense_job j = {y, x, w, b, n, in, out, out <= 2 * SPLIT_OUTPUTS,
                   s ? ae_direct_ops_for(s->isa) : NULL};
    if (!s) {
        dense_part(&j, 0, n, 0, out);
        return;
    }
    const size_t blocks = j.by_images ? ((size_t)n + SPLIT_IMAGES - 1) / SPLIT_IMAGES
                                      : ((size_t)out + SPLIT_OUTPUTS - 1) / SPLIT_OUTPUTS;
    /* Images in one part per thread: every part reads all the weights (8 MB
     * for enc.dense at 256x256), once whatever its number of images. */
    const int threads = ae_scratch_threads(s);
    const size_t chunk = j.by_images ? (blocks + (size_t)threads - 1) / (size_t)threads
                         : blocks >= 128 ? blocks / 64
                                         : 1;
    ae_parallel_chunks(s, blocks, chunk, (size_t)n * in * out / 32, dense_chunk, &j);
}

typedef struct {
    float *dx, *dw, *db;
    const float *dy, *x, *w;
    int n, in, out;
    size_t dx_items; /* the first items: dx's (0 without dx); then dw's chunks */
} dense_grad_job;

/* dw's rows [k0, k1) (inputs), each value from one GEMM over the batch. */
static void dw_rows(const dense_grad_job *j, size_t k0, size_t k1)
{
    ae_gemm(&(ae_gemm_job){.m = (int)(k1 - k0), .n = j->out, .k = j->n, .a = j->x + k0,
                           .lda = j->in, .a_t = 1, .b = j->dy, .ldb = j->out,
                           .c = j->dw + k0 * j->out, .ldc = j->out});
}

/* db's values [o0, o1): each the sum over images in image order. */
static void db_range(const dense_grad_job *j, size_t o0, size_t o1)
{
    for (size_t o = o0; o < o1; o++)
        j->db[o] = 0.0f;
    for (int i = 0; i < j->n; i++) {
        const float *row = j->dy + (size_t)i * j->out;
        for (size_t o = o0; o < o1; o++)
            j->db[o] += row[o];
    }
}

/* dw's columns [o0, o1) (outputs), and db's: the same columns of dy, while
 * they are in cache (with many outputs, dy is as large as dw). */
static void dw_columns(const dense_grad_job *j, size_t o0, size_t o1)
{
    ae_gemm(&(ae_gemm_job){.m = j->in, .n = (int)(o1 - o0), .k = j->n, .a = j->x, .lda = j->in,
                           .a_t = 1, .b = j->dy + o0, .ldb = j->out, .c = j->dw + o0,
                           .ldc = j->out});
    db_range(j, o0, o1);
}

/* dx's columns [k0, k1) (inputs), each value a sum over all outputs. */
static void dx_columns(const dense_grad_job *j, size_t k0, size_t k1)
{
    ae_gemm(&(ae_gemm_job){.m = j->n, .n = (int)(k1 - k0), .k = j->out, .a = j->dy,
                           .lda = j->out, .b = j->w + k0 * j->out, .ldb = j->out, .b_t = 1,
                           .c = j->dx + k0, .ldc = j->in});
}

/* All of dx in one call: the weights (in x out, out large) are read once for
 * all images. */
static void dx_whole(const dense_grad_job *j)
{
    ae_gemm(&(ae_gemm_job){.m = j->n, .n = j->in, .k = j->out, .a = j->dy, .lda = j->out,
                           .b = j->w, .ldb = j->out, .b_t = 1, .c = j->dx, .ldc = j->in});
}

static size_t chunk_end(size_t item, size_t count)
{
    return count - item * K_CHUNK < K_CHUNK ? count : (item + 1) * K_CHUNK;
}

/* Items [i0, i1): dx's first, so that a dx made in one call starts while
 * other threads take dw's chunks. */
static void grad_items(void *arg, size_t i0, size_t i1)
{
    const dense_grad_job *j = arg;
    for (size_t i = i0; i < i1; i++) {
        if (i < j->dx_items) {
            if (j->in >= K_CHUNK)
                dx_columns(j, i * K_CHUNK, chunk_end(i, (size_t)j->in));
            else
                dx_whole(j);
            continue;
        }
        const size_t k = i - j->dx_items;
        if (j->in >= j->out)
            dw_rows(j, k * K_CHUNK, chunk_end(k, (size_t)j->in));
        else
            dw_columns(j, k * K_CHUNK, chunk_end(k, (size_t)j->out));
    }
}

static size_t chunks(int count) { return ((size_t)count + K_CHUNK - 1) / K_CHUNK; }

void ae_dense_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                       const float *w, int n, int in, int out, ae_scratch *s)
{
    /* The GEMMs in fixed chunks of the longer side (dx in one call when it
     * has fewer than K_CHUNK columns): every value comes from one call over
     * the same sum, whoever runs it. dx and dw in one pass over the pool. */
    const size_t dx_items = !dx ? 0 : in >= K_CHUNK ? chunks(in) : 1;
    const size_t dw_items = chunks(in >= out ? in : out);
    dense_grad_job j = {dx, dw, db, dy, x, w, n, in, out, dx_items};
    if (in >= out) /* few outputs: db is small; otherwise dw_columns makes it */
        db_range(&j, 0, (size_t)out);
    const size_t work = (size_t)n * in * out / 16; /* in values, as element-wise passes */
    ae_parallel_chunks(s, dx_items + dw_items, 1, work, grad_items, &j);
}
