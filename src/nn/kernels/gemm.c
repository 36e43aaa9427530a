/* ae_gemm (gemm.h): the loops of gemm_body.h for AVX-512, AVX2 and the
 * compiler's baseline (-march), chosen by what the CPU has and AEDET_ISA
 * allows. Every variant makes the naive loop's bits. */
#include "nn/kernels/gemm.h"
#include "nn/kernels/isa.h"

#include <stddef.h>
#include <string.h>

/* The vector extension fuses nothing by itself, but clang would contract
 * a + b * c under its default; the Makefile's -ffp-contract=off says the
 * same for every file. */
#ifdef __clang__
#pragma clang fp contract(off)
#endif

enum { MB = 8, KC = 256 };

typedef struct {
    const float *a;
    size_t a_row, a_col; /* A(i, p) = a[i a_row + p a_col] */
    int k0, k1, first;   /* the chunk of k; first: C starts from zero */
} gemm_chunk;

#define GEMM_W 4
#define GEMM_TARGET
#define GEMM_FN(name) name##_base
#include "nn/kernels/gemm_body.h"
#undef GEMM_W
#undef GEMM_TARGET
#undef GEMM_FN

#if defined(__x86_64__) || defined(__i386__)
#define GEMM_W 8
#define GEMM_TARGET __attribute__((target("avx2")))
#define GEMM_FN(name) name##_avx2
#include "nn/kernels/gemm_body.h"
#undef GEMM_W
#undef GEMM_TARGET
#undef GEMM_FN

#define GEMM_W 16
#define GEMM_TARGET __attribute__((target("avx512f")))
#define GEMM_FN(name) name##_avx512
#include "nn/kernels/gemm_body.h"
#undef GEMM_W
#undef GEMM_TARGET
#undef GEMM_FN
#endif

void ae_gemm_as(int variant, const ae_gemm_job *job)
{
#if defined(__x86_64__) || defined(__i386__)
    if (variant >= AE_ISA_AVX512 && ae_isa_supported(AE_ISA_AVX512)) {
        gemm_avx512(job);
        return;
    }
    if (variant >= AE_ISA_AVX2 && ae_isa_supported(AE_ISA_AVX2)) {
        gemm_avx2(job);
        return;
    }
#endif
    (void)variant;
    gemm_base(job);
}

/* The bfloat16 choices run their dense layers in float32: on AVX-512. */
void ae_gemm(const ae_gemm_job *job)
{
    const int isa = ae_isa_best();
    ae_gemm_as(ae_isa_is_bf16(isa) ? AE_ISA_AVX512 : isa, job);
}
