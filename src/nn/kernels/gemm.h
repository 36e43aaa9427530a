/* Internal: the project's own matrix product, for the GEMMs BLAS used to do
 * (the dense layers' backward on every path; the portable path's
 * convolutions). BLAS picks its kernel, and so its order of summation, by
 * CPU (and version), which made a model's numbers depend on the machine;
 * this product's do not. */
#ifndef AEDET_NN_KERNELS_GEMM_H
#define AEDET_NN_KERNELS_GEMM_H

/* One product, C (m x n, rows ldc floats apart) = (accumulate ? C : 0) + A B,
 * with A(i, p) = a[i lda + p] (a_t: a[p lda + i]) for an m x k A and
 * B(p, j) = b[p ldb + j] (b_t: b[j ldb + p]) for a k x n B. Callers name
 * the fields, ae_gemm(&(ae_gemm_job){.m = ..., .a = ...}); those left out
 * are 0: no transposes, C overwritten. */
typedef struct {
    int m, n, k;
    const float *a;
    int lda, a_t;
    const float *b;
    int ldb, b_t;
    float *c;
    int ldc, accumulate;
} ae_gemm_job;

/* Each C[i][j] starts from its first value and adds its k products in the
 * order p = 0, 1, ..., k - 1, each product rounded to float32 and each sum
 * too (no fused multiply-add; -ffp-contract=off): the bits of the naive
 * triple loop, whatever the CPU, the compiler's vector width, the blocking
 * or the caller's threads. Single-threaded: callers split the work.
 * Vectorized for the best instruction set the CPU has, whatever -march says,
 * capped as the convolutions are by AEDET_ISA (the bits are the same either
 * way; the cap keeps `AEDET_ISA=avx2` timings those of a CPU without
 * AVX-512, and `portable` those of one without AVX2). */
void ae_gemm(const ae_gemm_job *job);
/* ae_gemm on the loops of one instruction set, AE_ISA_AVX512, AE_ISA_AVX2
 * or AE_ISA_PORTABLE (the compiler's baseline), or the best below it that
 * the CPU has (ae_gemm takes the best): for tests, which hold each to the
 * same bits. */
void ae_gemm_as(int variant, const ae_gemm_job *job);

#endif
