/* The direct convolution kernels (direct_body.h) for AVX2 + FMA: 8 floats a
 * vector, maskload/maskstore for partial channel groups. Compiled for this
 * target whatever -march says; only called when the CPU has it (isa.c). */
#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma")))
#define VW 8
typedef __m256 vec;
typedef __m256i vmask;
#define V_ZERO() _mm256_setzero_ps()
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_LOADM(p, m) _mm256_maskload_ps((p), (m))
#define V_STORE(p, v) _mm256_storeu_ps((p), (v))
#define V_STOREM(p, m, v) _mm256_maskstore_ps((p), (m), (v))
#define V_SET1(x) _mm256_set1_ps(x)
#define V_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define V_ADD(a, b) _mm256_add_ps((a), (b))
#define RMAX1 12
#define RMAX2 6
#define CBMAX1 4
#define CBMAX2 2
#define FN(name) name##_avx2
#define FN_NAME "avx2"

static TARGET inline vmask mask_first(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#include "nn/direct_body.h"
