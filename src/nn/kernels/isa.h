/* Internal: which vector instructions the kernels use (chosen at run time). */
#ifndef AEDET_NN_KERNELS_ISA_H
#define AEDET_NN_KERNELS_ISA_H

/* AE_ISA_AMX_BF16: the avx512 kernels with the convolutions' products in
 * bfloat16 on AMX tiles (direct.h); AE_ISA_AVX512_BF16: the same products in
 * bfloat16 by AVX512-BF16 dot products (vdpbf16ps), for CPUs without the
 * tiles. Both opt-in, as they change the numbers. */
enum {
    AE_ISA_PORTABLE = 0,
    AE_ISA_AVX2 = 1,
    AE_ISA_AVX512 = 2,
    AE_ISA_AMX_BF16 = 3,
    AE_ISA_AVX512_BF16 = 4,
    AE_ISA_COUNT = 5
};

/* 1 when this CPU can run the kernels of isa. */
int ae_isa_supported(int isa);
/* The best supported float32 kernels, capped by the environment variable
 * AEDET_ISA (portable, avx2 or avx512) when it is set; AEDET_ISA=amx-bf16 or
 * avx512-bf16 asks for those bfloat16 kernels (the best float32 ones where
 * the CPU lacks them). */
int ae_isa_best(void);
/* The bfloat16 kernels ae_model_set_bf16 switches to: AMX tiles where the
 * CPU and OS have them, else AVX512-BF16; AE_ISA_PORTABLE where neither. */
int ae_isa_bf16(void);
/* 1 for AE_ISA_AMX_BF16 and AE_ISA_AVX512_BF16. */
int ae_isa_is_bf16(int isa);
const char *ae_isa_name(int isa);

#endif
