/* Internal: which vector instructions the kernels use (chosen at run time). */
#ifndef AEDET_NN_ISA_H
#define AEDET_NN_ISA_H

/* AE_ISA_AMX_BF16: the avx512 kernels with the convolutions' products in
 * bfloat16 on AMX tiles (direct.h); opt-in, as it changes the numbers. */
enum {
    AE_ISA_PORTABLE = 0,
    AE_ISA_AVX2 = 1,
    AE_ISA_AVX512 = 2,
    AE_ISA_AMX_BF16 = 3,
    AE_ISA_COUNT = 4
};

/* 1 when this CPU can run the kernels of isa. */
int ae_isa_supported(int isa);
/* The best supported float32 kernels, capped by the environment variable
 * AEDET_ISA (portable, avx2 or avx512) when it is set; AEDET_ISA=amx-bf16
 * asks for the bfloat16 ones (avx512 where the CPU has no AMX). */
int ae_isa_best(void);
const char *ae_isa_name(int isa);

#endif
