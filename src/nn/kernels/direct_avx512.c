/* The direct convolution kernels (direct_body.h) for AVX-512F: 16 floats a
 * vector, masked loads and stores for channel counts that are not multiples
 * of 16. Compiled for this target whatever -march says; only called when the
 * CPU has it (isa.c). */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <stdint.h>

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
#define V_SUB(a, b) _mm512_sub_ps((a), (b))
#define V_MUL(a, b) _mm512_mul_ps((a), (b))
#define V_DIV(a, b) _mm512_div_ps((a), (b))
#define V_MAX(a, b) _mm512_max_ps((a), (b))
#define V_ROUND(v) _mm512_roundscale_ps((v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define V_NEG_ABS(v)                                                                            \
    _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN)))
#define V_SCALE2(v, n) _mm512_scalef_ps((v), (n))
#define V_SELECT_POS(c, a, b)                                                                   \
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask((c), _mm512_setzero_ps(), _CMP_GT_OQ), (b), (a))
#define V_SELECT_NONNEG(c, a, b)                                                                \
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask((c), _mm512_setzero_ps(), _CMP_GE_OQ), (b), (a))
typedef __m512i vidx;
#define VI_STEP(k)                                                                              \
    _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),  \
                       _mm512_set1_epi32(k))
#define V_GATHERM(base, idx, m) _mm512_mask_i32gather_ps(_mm512_setzero_ps(), (m), (idx), (base), 4)
typedef __m512d vecd;
#define VD_LOAD(p) _mm512_loadu_pd(p)
#define VD_STORE(p, v) _mm512_storeu_pd((p), (v))
#define VD_ADD(a, b) _mm512_add_pd((a), (b))
#define VD_SUB(a, b) _mm512_sub_pd((a), (b))
#define VD_MUL(a, b) _mm512_mul_pd((a), (b))
#define VD_LO(v) _mm512_cvtps_pd(_mm512_castps512_ps256(v))
#define VD_HI(v)                                                                                \
    _mm512_cvtps_pd(_mm256_castsi256_ps(_mm512_extracti64x4_epi64(_mm512_castps_si512(v), 1)))
#define RMAX1 16
#define RMAX2 8
/* Pixels per block of four vectors of output channels (64 channels: 24 accumulators). */
#define RMAX4 6
#define CBMAX1 8
#define CBMAX2 4
/* Pixels per block of big_to_small from one channel (nine tap vectors held). */
#define ONE_CHANNEL_R 16
/* Output rows per block of the narrow transpose to one channel. */
#define NARROW_ROWS 8
/* Multi-row tiles for short rows (direct_body.h): rows x pixels per row. */
#define TILE_ROWS_1_4 4
#define TILE_PX_1_4 16
#define TILE_ROWS_1_2 8
#define TILE_PX_1_2 16
#define TILE_ROWS_2_4 2
#define TILE_PX_2_4 8
#define TILE_ROWS_2_2 4
#define TILE_PX_2_2 8
#define FN(name) name##_avx512
#define FN_NAME "avx512"

/* Three planes of 16 pixels (one channel each) into 48 interleaved floats:
 * output float g = 16 k + j of vector k is plane g % 3, pixel g / 3. */
static TARGET inline void interleave3(float *dst, const float *a, const float *b, const float *c,
                                      const float *init)
{
    const __m512 pa = _mm512_loadu_ps(a), pb = _mm512_loadu_ps(b), pc = _mm512_loadu_ps(c);
    for (int k = 0; k < 3; k++) {
        int ia[16], ic[16], bias_lane[16];
        __mmask16 from_c = 0;
        for (int j = 0; j < 16; j++) {
            int g = 16 * k + j, plane = g % 3, pixel = g / 3;
            ia[j] = plane == 0 ? pixel : plane == 1 ? 16 + pixel : 0; /* a, then b */
            ic[j] = pixel;
            bias_lane[j] = plane;
            if (plane == 2)
                from_c |= (__mmask16)(1u << j);
        }
        __m512 v = _mm512_permutex2var_ps(pa, _mm512_loadu_si512(ia), pb);
        v = _mm512_mask_permutexvar_ps(v, from_c, _mm512_loadu_si512(ic), pc);
        if (init)
            v = _mm512_add_ps(v, _mm512_permutexvar_ps(_mm512_loadu_si512(bias_lane),
                                                       _mm512_maskz_loadu_ps(0x7, init)));
        _mm512_storeu_ps(dst + 16 * k, v);
    }
}
#define V_INTERLEAVE3(dst, a, b, c, init) interleave3((dst), (a), (b), (c), (init))

/* 16 pixels x 16 channels (t[p], one vector a pixel) into 16 channel rows of
 * 16 pixels: dst[ch * stride + p] = t[p][ch]. Four rounds of shuffles. */
static TARGET inline void transpose16(float *dst, size_t stride, __m512 t[16])
{
    __m512 a[16];
    for (int k = 0; k < 8; k++) {
        a[2 * k] = _mm512_unpacklo_ps(t[2 * k], t[2 * k + 1]);
        a[2 * k + 1] = _mm512_unpackhi_ps(t[2 * k], t[2 * k + 1]);
    }
    for (int k = 0; k < 4; k++)
        for (int h = 0; h < 2; h++) {
            __m512d lo = _mm512_castps_pd(a[4 * k + h]), hi = _mm512_castps_pd(a[4 * k + h + 2]);
            t[4 * k + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo, hi));
            t[4 * k + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo, hi));
        }
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 4; j++) {
            a[8 * k + j] = _mm512_shuffle_f32x4(t[8 * k + j], t[8 * k + 4 + j], 0x88);
            a[8 * k + 4 + j] = _mm512_shuffle_f32x4(t[8 * k + j], t[8 * k + 4 + j], 0xdd);
        }
    for (int j = 0; j < 8; j++) {
        _mm512_storeu_ps(dst + (size_t)j * stride, _mm512_shuffle_f32x4(a[j], a[8 + j], 0x88));
        _mm512_storeu_ps(dst + (size_t)(8 + j) * stride,
                         _mm512_shuffle_f32x4(a[j], a[8 + j], 0xdd));
    }
}
#define V_TRANSPOSE(dst, stride, regs) transpose16((dst), (stride), (regs))

static inline vmask mask_first(int n) { return (vmask)(n >= 16 ? 0xFFFFu : (1u << n) - 1u); }

#include "nn/kernels/direct_body.h"

/* The opt-in bfloat16 mode: the same kernels, with the three products of
 * Conv2D and Conv2DTranspose (forward, input gradient, weight gradient) on
 * AMX tiles. */
DIRECT_TABLE(ae_direct_amx, "amx-bf16", ae_amx_big_to_small, ae_amx_small_to_big,
             ae_amx_weight_grad)
/* The same on AVX512-BF16 dot products, for CPUs without the tiles. */
DIRECT_TABLE(ae_direct_avx512bf16, "avx512-bf16", ae_bf16_big_to_small, ae_bf16_small_to_big,
             ae_bf16_weight_grad)
#else
typedef int ae_no_avx512; /* not an x86 target: isa.c never asks for these */
#endif
