/* The direct convolution kernels of direct.h, written once for any vector
 * width. Included by direct_avx512.c and direct_avx2.c, which define:
 *   VW (floats per vector), vec, vmask, TARGET (the function attribute),
 *   V_ZERO(), V_LOAD(p), V_LOADM(p, m), V_STORE(p, v), V_STOREM(p, m, v),
 *   V_SET1(x), V_FMA(a, b, c) (a b + c), V_ADD, V_SUB, V_MUL, V_DIV, V_MAX(a, b)
 *   (b when either is NaN), V_ROUND (to nearest), V_NEG_ABS (-|v|), V_SCALE2(v, n)
 *   (v 2^n), V_SELECT_POS(c, a, b) / V_SELECT_NONNEG (c > 0 / c >= 0 ? a : b),
 *   vecd (VW/2 doubles), VD_LOAD, VD_STORE, VD_ADD, VD_SUB, VD_MUL, VD_LO(v) /
 *   VD_HI(v) (a float vector's halves as doubles), vidx, VI_STEP(k) (lane i: i k),
 *   V_GATHERM(base, idx, m) (lane i: base[idx_i] where m is set, else 0), mask_first(n),
 *   optionally V_INTERLEAVE3(dst, a, b, c, init) (dst[3i + k] = plane_k[i] + init[k]
 *   for VW pixels, init may be NULL) and V_TRANSPOSE(dst, stride, regs)
 *   (dst[ch stride + p] = regs[p][ch], VW x VW; the vec array may be clobbered),
 *   FN(name) (the ISA-suffixed name), RMAX1/RMAX2 (pixels per block for one
 *   or two vectors of channels), CBMAX1/CBMAX2 (input channels per block of
 *   the weight gradient), optionally ONE_CHANNEL_R (pixels per block of
 *   few_channels; without it, 1- and 3-channel inputs go through the blocks).
 * The kernels are in pieces, included at the end in this order:
 *   direct_products.h      big_to_small, small_to_big, weight_grad (register blocks)
 *   direct_narrow.h        small_to_big_narrow (the output layer, along pixels)
 *   direct_passes.h        BatchNorm sums and gradient, input transform, planar
 *                          rows, bias gradient
 *   direct_dense.h         dense forward
 *   direct_sigmoid_loss.h  sigmoid, the loss's lanes
 *   direct_table.h         DIRECT_TABLE: the ae_direct_ops table of them */
#include "nn/kernels/direct.h"

#include <stdint.h>
#include <string.h>

#define ALWAYS_INLINE inline __attribute__((always_inline))
/* Unrolled before scalar replacement, so that gcc keeps acc[][] in registers
 * (clang: fully, whatever the count, as its own pragma says). */
#ifdef __clang__
#define AE_DIRECT_CLANG 1
#define UNROLL _Pragma("unroll")
#define UNROLL_ALL _Pragma("unroll")
#define UNROLL_2 _Pragma("unroll 2")
#else
#define AE_DIRECT_CLANG 0
#define UNROLL _Pragma("GCC unroll 16")
#define UNROLL_ALL _Pragma("GCC unroll 64")
#define UNROLL_2 _Pragma("GCC unroll 2")
#endif

/* v stays in a register: where a loaded vector feeds several FMAs, gcc may
 * fold the load into each of them instead, one load (often across two cache
 * lines) per FMA, and the block is bound by loads, not FMAs. */
#define V_IN_REGISTER(v) __asm__("" : "+v"(v))

#include "nn/kernels/direct_products.h"
#include "nn/kernels/direct_narrow.h"
#include "nn/kernels/direct_passes.h"
#include "nn/kernels/direct_dense.h"
#include "nn/kernels/direct_sigmoid_loss.h"
#include "nn/kernels/direct_table.h"
