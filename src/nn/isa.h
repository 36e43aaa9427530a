/* Internal: which vector instructions the kernels use (chosen at run time). */
#ifndef AEDET_NN_ISA_H
#define AEDET_NN_ISA_H

enum { AE_ISA_PORTABLE = 0, AE_ISA_AVX2 = 1, AE_ISA_AVX512 = 2, AE_ISA_COUNT = 3 };

/* 1 when this CPU can run the kernels of isa. */
int ae_isa_supported(int isa);
/* The best supported, capped by the environment variable AEDET_ISA
 * (portable, avx2 or avx512) when it is set. */
int ae_isa_best(void);
const char *ae_isa_name(int isa);

#endif
