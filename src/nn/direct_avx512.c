/* The direct convolution kernels (direct_body.h) for AVX-512F: 16 floats a
 * vector, masked loads and stores for channel counts that are not multiples
 * of 16. Compiled for this target whatever -march says; only called when the
 * CPU has it (isa.c). */
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,avx512vl,fma,avx2")))
#define VW 16
typedef __m512 vec;
typedef __mmask16 vmask;
#define V_ZERO() _mm512_setzero_ps()
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_LOADM(p, m) _mm512_maskz_loadu_ps((m), (p))
#define V_STORE(p, v) _mm512_storeu_ps((p), (v))
#define V_STOREM(p, m, v) _mm512_mask_storeu_ps((p), (m), (v))
#define V_SET1(x) _mm512_set1_ps(x)
#define V_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define V_ADD(a, b) _mm512_add_ps((a), (b))
#define RMAX1 16
#define RMAX2 8
#define CBMAX1 8
#define CBMAX2 4
#define FN(name) name##_avx512
#define FN_NAME "avx512"

static inline vmask mask_first(int n) { return (vmask)(n >= 16 ? 0xFFFFu : (1u << n) - 1u); }

#include "nn/direct_body.h"
