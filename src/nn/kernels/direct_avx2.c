/* The direct convolution kernels (direct_body.h) for AVX2 + FMA: 8 floats a
 * vector, maskload/maskstore for partial channel groups. Compiled for this
 * target whatever -march says; only called when the CPU has it (isa.c). */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma")))
#define VW 8
typedef __m256 vec;
typedef __m256i vmask;
#define V_ZERO() _mm256_setzero_ps()
#define V_LOAD(p) _mm256_loadu_ps(p)
/* A masked store (vmaskmovps) takes about 12 cycles on AMD Zen 4 against 1-2
 * for a plain one, and a masked load 1.5 times a plain one: a full mask
 * (every vector but a row's or a group's last) takes the plain instruction,
 * which reads or writes the same 8 floats. */
#define V_LOADM(p, m) (mask_full(m) ? _mm256_loadu_ps(p) : _mm256_maskload_ps((p), (m)))
#define V_STORE(p, v) _mm256_storeu_ps((p), (v))
#define V_STOREM(p, m, v)                                                                       \
    (mask_full(m) ? _mm256_storeu_ps((p), (v)) : _mm256_maskstore_ps((p), (m), (v)))
#define V_SET1(x) _mm256_set1_ps(x)
#define V_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define V_ADD(a, b) _mm256_add_ps((a), (b))
#define V_SUB(a, b) _mm256_sub_ps((a), (b))
#define V_MUL(a, b) _mm256_mul_ps((a), (b))
#define V_DIV(a, b) _mm256_div_ps((a), (b))
#define V_MAX(a, b) _mm256_max_ps((a), (b))
#define V_ROUND(v) _mm256_round_ps((v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define V_NEG_ABS(v) _mm256_or_ps((v), _mm256_set1_ps(-0.0f))
/* 2^n built in the exponent field; n >= -126 here (the argument is >= -88). */
#define V_SCALE2(v, n)                                                                          \
    _mm256_mul_ps((v), _mm256_castsi256_ps(_mm256_slli_epi32(                                  \
                           _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23)))
#define V_SELECT_POS(c, a, b)                                                                   \
    _mm256_blendv_ps((b), (a), _mm256_cmp_ps((c), _mm256_setzero_ps(), _CMP_GT_OQ))
#define V_SELECT_NONNEG(c, a, b)                                                                \
    _mm256_blendv_ps((b), (a), _mm256_cmp_ps((c), _mm256_setzero_ps(), _CMP_GE_OQ))
typedef __m256i vidx;
#define VI_STEP(k)                                                                              \
    _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(k))
#define V_GATHERM(base, idx, m)                                                                 \
    _mm256_mask_i32gather_ps(_mm256_setzero_ps(), (base), (idx), _mm256_castsi256_ps(m), 4)
typedef __m256d vecd;
#define VD_LOAD(p) _mm256_loadu_pd(p)
#define VD_STORE(p, v) _mm256_storeu_pd((p), (v))
#define VD_ADD(a, b) _mm256_add_pd((a), (b))
#define VD_SUB(a, b) _mm256_sub_pd((a), (b))
#define VD_MUL(a, b) _mm256_mul_pd((a), (b))
#define VD_LO(v) _mm256_cvtps_pd(_mm256_castps256_ps128(v))
#define VD_HI(v) _mm256_cvtps_pd(_mm256_extractf128_ps((v), 1))
#define RMAX1 12
#define RMAX2 6
#define CBMAX1 4
#define CBMAX2 2
/* No ONE_CHANNEL_R: with 16 registers, few_channels' nine tap vectors leave
 * room for 4 accumulator chains, too few to hide the FMA latency; blocks
 * of 2 vectors x 6 pixels run the 3-channel products 1.5x faster (Zen 4). */
/* Output rows per block of the narrow transpose to one channel. */
#define NARROW_ROWS 4
/* Blocks take two channels per loop iteration: on Zen 3 the one-channel loop
 * (8 loads, 12 FMAs) stayed short of the FMA peak; unrolled, 256x256x3
 * training ran about 4% faster (12 alternated runs, 2026-12-07). */
#define BLOCK_UNROLL_CHANNELS 1
/* Multi-row tiles for short rows (direct_body.h): rows x pixels per row. */
#define TILE_ROWS_1_4 3
#define TILE_PX_1_4 12
#define TILE_ROWS_1_2 6
#define TILE_PX_1_2 12
/* Pixels per flat tile of two vectors (direct_products.h): 12 accumulators */
#define FLAT_2 6
/* Images per block of the dense forward: 12 accumulators */
#define DENSE_ROWS 6
/* Vectors of pixels in the widest block of the narrow transposed convolution
 * to 3 or 4 channels */
#define NARROW_WIDE 3
#define FN(name) name##_avx2
#define FN_NAME "avx2"

/* 8 pixels x 8 channels (t[p], one vector a pixel) into 8 channel rows of 8
 * pixels: dst[ch * stride + p] = t[p][ch]. Three rounds of shuffles. */
static TARGET inline void transpose8(float *dst, size_t stride, __m256 t[8])
{
    __m256 a[8], b[8];
    for (int k = 0; k < 4; k++) { /* a[2k], a[2k + 1]: pixels 2k and 2k + 1 interleaved */
        a[2 * k] = _mm256_unpacklo_ps(t[2 * k], t[2 * k + 1]);
        a[2 * k + 1] = _mm256_unpackhi_ps(t[2 * k], t[2 * k + 1]);
    }
    for (int k = 0; k < 2; k++) /* b: four pixels' channel j and j + 4 in each half */
        for (int j = 0; j < 2; j++) {
            b[4 * k + 2 * j] = _mm256_shuffle_ps(a[4 * k + j], a[4 * k + 2 + j], 0x44);
            b[4 * k + 2 * j + 1] = _mm256_shuffle_ps(a[4 * k + j], a[4 * k + 2 + j], 0xee);
        }
    for (int j = 0; j < 4; j++) {
        _mm256_storeu_ps(dst + (size_t)j * stride, _mm256_permute2f128_ps(b[j], b[4 + j], 0x20));
        _mm256_storeu_ps(dst + (size_t)(4 + j) * stride,
                         _mm256_permute2f128_ps(b[j], b[4 + j], 0x31));
    }
}
#define V_TRANSPOSE(dst, stride, regs) transpose8((dst), (stride), (regs))

static TARGET inline int mask_full(vmask m)
{
    return _mm256_movemask_ps(_mm256_castsi256_ps(m)) == 0xFF;
}

static TARGET inline vmask mask_first(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#include "nn/kernels/direct_body.h"
#else
typedef int ae_no_avx2; /* not an x86 target: isa.c never asks for these */
#endif
