/* The dense layer's forward (dense_forward of direct.h). Part of
 * direct_body.h (included once per ISA, with its macros). */

/* ---- Dense forward (dense.c) ----
 * R images x two vectors of outputs in registers, over inputs [k0, k1):
 * acc = (k0 == 0 ? b : y), then acc = x[i][k] w[k][o] + acc (one FMA) for k
 * in order. Any R and masked output tails do the same per-lane FMAs, so an
 * image gets the same bits in any block. DENSE_ROWS: 8, or what the ISA
 * sets (with 16 registers, 8 images' 16 accumulators, 2 weight vectors and
 * a broadcast spilled to the stack). */
#ifndef DENSE_ROWS
#define DENSE_ROWS 8
#endif
_Static_assert(DENSE_ROWS == 6 || DENSE_ROWS == 8, "dense_forward's rest blocks: 1 to 7 images");
static TARGET ALWAYS_INLINE void FN(dense_block)(const int R, float *y, const float *x,
                                                 const float *w, const float *b, int i0, int o0,
                                                 int k0, int k1, int in, int out)
{
    const int left = out - o0;
    const vmask m0 = mask_first(left < VW ? left : VW);
    const vmask m1 = mask_first(left - VW < VW ? (left - VW > 0 ? left - VW : 0) : VW);
    vec acc[DENSE_ROWS][2];
    UNROLL
    for (int r = 0; r < R; r++) {
        const float *from = k0 == 0 ? b + o0 : y + (size_t)(i0 + r) * out + o0;
        acc[r][0] = V_LOADM(from, m0);
        acc[r][1] = V_LOADM(from + VW, m1);
    }
    for (int k = k0; k < k1; k++) {
        const float *wk = w + (size_t)k * out + o0;
        const vec w0 = V_LOADM(wk, m0), w1 = V_LOADM(wk + VW, m1);
        UNROLL
        for (int r = 0; r < R; r++) {
            const vec xv = V_SET1(x[(size_t)(i0 + r) * in + k]);
            acc[r][0] = V_FMA(xv, w0, acc[r][0]);
            acc[r][1] = V_FMA(xv, w1, acc[r][1]);
        }
    }
    UNROLL
    for (int r = 0; r < R; r++) {
        float *to = y + (size_t)(i0 + r) * out + o0;
        V_STOREM(to, m0, acc[r][0]);
        V_STOREM(to + VW, m1, acc[r][1]);
    }
}

/* Outputs [o_begin, o_end) of n images (o_begin a multiple of 2 VW, o_end
 * out or one), in chunks of 1024 inputs so that a chunk of the weights stays
 * in cache for every block of images. */
static TARGET void FN(dense_forward)(float *y, const float *x, const float *w, const float *b,
                                     int n, int in, int out, int o_begin, int o_end)
{
    enum { K_CHUNK = 1024 };
    const int full_i = n - n % DENSE_ROWS;
    for (int k0 = 0; k0 < in; k0 += K_CHUNK) {
        const int k1 = in - k0 < K_CHUNK ? in : k0 + K_CHUNK;
        for (int o0 = o_begin; o0 < o_end; o0 += 2 * VW) {
            for (int i0 = 0; i0 < full_i; i0 += DENSE_ROWS)
                FN(dense_block)(DENSE_ROWS, y, x, w, b, i0, o0, k0, k1, in, out);
            /* the rest in one block: image by image, each would have one
             * accumulator chain per vector, bound by the FMA latency */
            switch (n - full_i) {
#define DENSE_REST(R)                                                                           \
    case R:                                                                                     \
        FN(dense_block)(R, y, x, w, b, full_i, o0, k0, k1, in, out);                            \
        break;
                DENSE_REST(1)
                DENSE_REST(2)
                DENSE_REST(3)
                DENSE_REST(4)
                DENSE_REST(5)
#if DENSE_ROWS > 6
                DENSE_REST(6)
                DENSE_REST(7)
#endif
#undef DENSE_REST
            default:
                break;
            }
        }
    }
}
