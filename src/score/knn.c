/* Mean distance to the k nearest reference latents: the latent-space half of
 * the `latent-knn` and `combined` scores. Latents are small (32 numbers), so
 * one matrix product per block of queries gives every squared distance. The
 * product is the project's own (ae_gemm), not BLAS, whose kernel and so its
 * sums depend on the CPU: the same scores on every machine. */
#include "aedet/score.h"
#include "nn/kernels/gemm.h"
#include "score_internal.h"

#include <math.h>
#include <stdlib.h>

/* Queries per block: the block's distances (QUERY_BLOCK x num_ref floats,
 * 32 MiB at the largest reference) stay bounded whatever n is. */
#define QUERY_BLOCK 1024

/* The mean of the square roots of the k smallest of d[0..n), selected
 * as the k largest of -d (d is overwritten). */
static float mean_of_smallest(float *d, size_t n, int k)
{
    for (size_t i = 0; i < n; i++)
        d[i] = d[i] > 0 ? -d[i] : 0; /* the expansion can dip below 0 */
    ae_select_largest(d, n, (size_t)k);
    double sum = 0;
    for (int j = 0; j < k; j++)
        sum += sqrt(-(double)d[j]);
    return (float)(sum / k);
}

ae_status ae_knn_mean_distance(const float *queries, size_t n, const float *ref, size_t num_ref,
                               int dim, int k, float *out, ae_error *err)
{
    if (k < 1 || (size_t)k > num_ref || dim < 1)
        return ae_fail(err, AE_ERR_USAGE, "k nearest neighbours: k = %d with %zu reference latents", k,
                       num_ref);
    size_t block = n < QUERY_BLOCK ? (n ? n : 1) : QUERY_BLOCK;
    float *dist = malloc(block * num_ref * sizeof *dist), *ref_norm = malloc(num_ref * sizeof *ref_norm);
    if (!dist || !ref_norm) {
        free(dist), free(ref_norm);
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for %zu x %zu distances", block, num_ref);
    }
    for (size_t j = 0; j < num_ref; j++) {
        float s = 0;
        for (int t = 0; t < dim; t++)
            s += ref[j * (size_t)dim + (size_t)t] * ref[j * (size_t)dim + (size_t)t];
        ref_norm[j] = s;
    }
    for (size_t q0 = 0; q0 < n; q0 += block) {
        size_t m = n - q0 < block ? n - q0 : block;
        const float *q = queries + q0 * (size_t)dim;
        /* dist = q ref^T, then -2 dist + |q|^2 + |r|^2 */
        ae_gemm(&(ae_gemm_job){.m = (int)m, .n = (int)num_ref, .k = dim, .a = q, .lda = dim, .b = ref,
                               .ldb = dim, .b_t = 1, .c = dist, .ldc = (int)num_ref});
        for (size_t i = 0; i < m; i++) {
            float qn = 0;
            for (int t = 0; t < dim; t++)
                qn += q[i * (size_t)dim + (size_t)t] * q[i * (size_t)dim + (size_t)t];
            float *row = dist + i * num_ref;
            for (size_t j = 0; j < num_ref; j++)
                row[j] = -2.0f * row[j] + (qn + ref_norm[j]);
            out[q0 + i] = mean_of_smallest(row, num_ref, k);
        }
    }
    free(dist), free(ref_norm);
    return AE_OK;
}
