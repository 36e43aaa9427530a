/* Run-time choice of the convolution kernels, and the kernel transpose
 * small_to_big reads. */
#include "nn/kernels/direct.h"
#include "nn/kernels/isa.h"

#include <stdlib.h>
#include <string.h>

int ae_isa_supported(int isa)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    switch (isa) {
    case AE_ISA_PORTABLE:
        return 1;
    case AE_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case AE_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("fma");
    case AE_ISA_AMX_BF16:
        return ae_isa_supported(AE_ISA_AVX512) && ae_amx_usable();
    case AE_ISA_AVX512_BF16:
        return ae_isa_supported(AE_ISA_AVX512) && __builtin_cpu_supports("avx512bw") &&
               ae_avx512bf16_usable();
    }
    return 0;
#else
    return isa == AE_ISA_PORTABLE;
#endif
}

/* AEDET_ISA=portable|avx2|avx512 caps the choice (for comparisons and tests);
 * amx-bf16 and avx512-bf16 opt in to bfloat16. */
int ae_isa_best(void)
{
    int cap = AE_ISA_AVX512;
    const char *env = getenv("AEDET_ISA");
    if (env && strcmp(env, "portable") == 0)
        cap = AE_ISA_PORTABLE;
    else if (env && strcmp(env, "avx2") == 0)
        cap = AE_ISA_AVX2;
    else if (env && strcmp(env, "amx-bf16") == 0 && ae_isa_supported(AE_ISA_AMX_BF16))
        return AE_ISA_AMX_BF16;
    else if (env && strcmp(env, "avx512-bf16") == 0 && ae_isa_supported(AE_ISA_AVX512_BF16))
        return AE_ISA_AVX512_BF16;
    /* the float32 ones, best first: the bfloat16 ones are never a fallback */
    for (int isa = cap; isa > AE_ISA_PORTABLE; isa--)
        if (ae_isa_supported(isa))
            return isa;
    return AE_ISA_PORTABLE;
}

int ae_isa_bf16(void)
{
    if (ae_isa_supported(AE_ISA_AMX_BF16))
        return AE_ISA_AMX_BF16;
    if (ae_isa_supported(AE_ISA_AVX512_BF16))
        return AE_ISA_AVX512_BF16;
    return AE_ISA_PORTABLE;
}

int ae_isa_is_bf16(int isa) { return isa == AE_ISA_AMX_BF16 || isa == AE_ISA_AVX512_BF16; }

const char *ae_isa_name(int isa)
{
    switch (isa) {
    case AE_ISA_AVX2: return "avx2";
    case AE_ISA_AVX512: return "avx512";
    case AE_ISA_AMX_BF16: return "amx-bf16";
    case AE_ISA_AVX512_BF16: return "avx512-bf16";
    default: return "portable";
    }
}

const ae_direct_ops *ae_direct_ops_for(int isa)
{
    if (!ae_isa_supported(isa))
        return NULL;
#if defined(__x86_64__) || defined(__i386__)
    switch (isa) {
    case AE_ISA_AVX2: return &ae_direct_avx2;
    case AE_ISA_AVX512: return &ae_direct_avx512;
    case AE_ISA_AMX_BF16: return &ae_direct_amx;
    case AE_ISA_AVX512_BF16: return &ae_direct_avx512bf16;
    }
#endif
    return NULL;
}

size_t ae_direct_padded_floats(int h, int w, int c) { return (size_t)(h + 2) * (w + 2) * c; }

void ae_direct_transpose_kernel(float *wt, const float *w, int cb, int cs)
{
    for (int t = 0; t < 9; t++)
        for (int c = 0; c < cb; c++)
            for (int o = 0; o < cs; o++)
                wt[((size_t)t * cs + o) * cb + c] = w[((size_t)t * cb + c) * cs + o];
}
