/* The element-wise passes of direct.h over (pixels, c) tensors: BatchNorm
 * statistics and gradient sums, the BatchNorm gradient, the input transform
 * x' = scale leaky(x) + shift, channel-planar rows, the bias gradient. Part
 * of direct_body.h (included once per ISA, with its macros). */

/* ---- Element-wise passes over (pixels, c) tensors, channels in vectors ----
 * The BatchNorm sums go as the portable loops do (batchnorm.c), so that their
 * bits are the same: runs of BN_RUN pixels summed in float in four chains
 * (pixel offset mod 4), added as (a0 + a1) + (a2 + a3), each run's sum added
 * to a double; no fused multiply-adds. */

enum { BN_RUN = 32 };

/* The passes below stream activations from memory (the transforms, the
 * BatchNorm gradient); by the hardware's prefetchers alone they read them at
 * 9-11 GB/s, against the 15-18 of a plain sum. Each pixel's line is asked
 * for 4 KB ahead, into L2 (locality 1: the passes alone ran 10-20% faster
 * than with lines asked into L1; a whole training step, the same). Past the
 * end of an array it is harmless: a prefetch never faults (and the address
 * is an integer, not a pointer out of bounds). */
enum { PREFETCH_BYTES = 4096 };

static inline void prefetch_ahead(const float *p)
{
    __builtin_prefetch((const void *)((uintptr_t)p + PREFETCH_BYTES), 0, 1);
}

static TARGET ALWAYS_INLINE vec FN(leaky)(vec v, vec slope)
{
    return V_SELECT_POS(v, v, V_MUL(v, slope));
}

/* One pixel's term of bn_sums: leaky(z) or, with squares, (leaky(z) - mu)^2. */
static TARGET ALWAYS_INLINE vec FN(bn_term)(const float *zp, vmask m, vec slope, int squares,
                                            vec mu)
{
    vec v = FN(leaky)(V_LOADM(zp, m), slope);
    if (squares) {
        v = V_SUB(v, mu);
        v = V_MUL(v, v);
    }
    return v;
}

/* A run's sum of a float vector term, four chains, as described above. */
#define BN_RUN_SUM(sum, p0, p1, term)                                                   \
    do {                                                                                \
        /* four named chains, not an array: an array indexed by the tail's        */   \
        /* counter would live on the stack, each add waiting on a store and a load */  \
        vec a0_ = V_ZERO(), a1_ = V_ZERO(), a2_ = V_ZERO(), a3_ = V_ZERO();             \
        size_t p = (p0);                                                                \
        for (; p + 4 <= (p1); p += 4) {                                                 \
            a0_ = V_ADD(a0_, term(p));                                                  \
            a1_ = V_ADD(a1_, term(p + 1));                                              \
            a2_ = V_ADD(a2_, term(p + 2));                                              \
            a3_ = V_ADD(a3_, term(p + 3));                                              \
        }                                                                               \
        if (p < (p1))                                                                   \
            a0_ = V_ADD(a0_, term(p));                                                  \
        if (p + 1 < (p1))                                                               \
            a1_ = V_ADD(a1_, term(p + 1));                                              \
        if (p + 2 < (p1))                                                               \
            a2_ = V_ADD(a2_, term(p + 2));                                              \
        (sum) = V_ADD(V_ADD(a0_, a1_), V_ADD(a2_, a3_));                                \
    } while (0)

/* The sums below take the channels in groups of up to SUM_GROUP vectors, and
 * each run of pixels for the whole group before the next run: a pass over the
 * pixels reads all of their lines (64 channels: 4 a pixel). One vector of
 * channels at a time, a pass reads every second or fourth line, and ran at
 * 7-8 GB/s from memory instead of 14. A channel's run sums and their order
 * are the same either way. */
enum { SUM_GROUP = 4 };

/* The vectors of channels in the group from channel g0 on (the last may be partial). */
static inline int sum_group_vectors(int c, int g0)
{
    const int left = (c - g0 + VW - 1) / VW;
    return left < SUM_GROUP ? left : SUM_GROUP;
}

/* acc[ch] = sum over pixels of leaky(z) or, with mean, of (leaky(z) - (float)mean)^2. */
static TARGET void FN(bn_sums)(double *acc, const float *z, size_t pixels, int c, float slope,
                               const double *mean)
{
    const vec vslope = V_SET1(slope);
    for (int g0 = 0; g0 < c; g0 += SUM_GROUP * VW) {
        const int nv = sum_group_vectors(c, g0);
        vmask m[SUM_GROUP];
        vec vmu[SUM_GROUP];
        vecd t[SUM_GROUP][2];
        for (int v = 0; v < nv; v++) {
            const int c0 = g0 + v * VW, width = c - c0 < VW ? c - c0 : VW;
            float mu[VW];
            for (int j = 0; j < VW; j++)
                mu[j] = mean && j < width ? (float)mean[c0 + j] : 0.0f;
            m[v] = mask_first(width);
            vmu[v] = V_LOADM(mu, m[v]);
            t[v][0] = t[v][1] = VD_LO(V_ZERO());
        }
        for (size_t p0 = 0; p0 < pixels; p0 += BN_RUN) {
            const size_t p1 = pixels - p0 < BN_RUN ? pixels : p0 + BN_RUN;
            for (int v = 0; v < nv; v++) {
                const float *zc = z + g0 + v * VW;
                vec sum;
#define TERM(q) FN(bn_term)(zc + (q) * c, m[v], vslope, mean != NULL, vmu[v])
                BN_RUN_SUM(sum, p0, p1, TERM);
#undef TERM
                t[v][0] = VD_ADD(t[v][0], VD_LO(sum));
                t[v][1] = VD_ADD(t[v][1], VD_HI(sum));
            }
        }
        for (int v = 0; v < nv; v++) {
            const int c0 = g0 + v * VW, width = c - c0 < VW ? c - c0 : VW;
            double a[VW];
            VD_STORE(a, t[v][0]);
            VD_STORE(a + VW / 2, t[v][1]);
            for (int j = 0; j < width; j++)
                acc[c0 + j] = a[j];
        }
    }
}

/* xhat = (leaky(z) - mean) invstd for one pixel. */
static TARGET ALWAYS_INLINE vec FN(bn_xhat)(const float *zp, vmask m, vec slope, vec mu, vec is)
{
    return V_MUL(V_SUB(FN(leaky)(V_LOADM(zp, m), slope), mu), is);
}

/* acc[ch] += sum of dy, acc[c + ch] += sum of dy * xhat, xhat = (leaky(z) - mean) invstd. */
static TARGET void FN(bn_grad_sums)(double *acc, const float *dy, const float *z, size_t pixels,
                                    int c, float slope, const float *mean, const float *invstd)
{
    const vec vslope = V_SET1(slope);
    for (int g0 = 0; g0 < c; g0 += SUM_GROUP * VW) { /* as bn_sums */
        const int nv = sum_group_vectors(c, g0);
        vmask m[SUM_GROUP];
        vec mu[SUM_GROUP], is[SUM_GROUP];
        vecd t[SUM_GROUP][4];
        for (int v = 0; v < nv; v++) {
            const int c0 = g0 + v * VW;
            m[v] = mask_first(c - c0 < VW ? c - c0 : VW);
            mu[v] = V_LOADM(mean + c0, m[v]);
            is[v] = V_LOADM(invstd + c0, m[v]);
            t[v][0] = t[v][1] = t[v][2] = t[v][3] = VD_LO(V_ZERO());
        }
        for (size_t p0 = 0; p0 < pixels; p0 += BN_RUN) {
            const size_t p1 = pixels - p0 < BN_RUN ? pixels : p0 + BN_RUN;
            for (int v = 0; v < nv; v++) {
                const float *zc = z + g0 + v * VW, *dyc = dy + g0 + v * VW;
                for (size_t p = p0; p < p1; p++) {
                    prefetch_ahead(zc + p * c);
                    prefetch_ahead(dyc + p * c);
                }
                vec sum_dy, sum_dy_xhat;
#define DY(q) V_LOADM(dyc + (q) * c, m[v])
#define DY_XHAT(q) V_MUL(DY(q), FN(bn_xhat)(zc + (q) * c, m[v], vslope, mu[v], is[v]))
                BN_RUN_SUM(sum_dy, p0, p1, DY);
                BN_RUN_SUM(sum_dy_xhat, p0, p1, DY_XHAT);
#undef DY
#undef DY_XHAT
                t[v][0] = VD_ADD(t[v][0], VD_LO(sum_dy));
                t[v][1] = VD_ADD(t[v][1], VD_HI(sum_dy));
                t[v][2] = VD_ADD(t[v][2], VD_LO(sum_dy_xhat));
                t[v][3] = VD_ADD(t[v][3], VD_HI(sum_dy_xhat));
            }
        }
        for (int v = 0; v < nv; v++) {
            const int c0 = g0 + v * VW, width = c - c0 < VW ? c - c0 : VW;
            double a[2 * VW];
            for (int k = 0; k < 4; k++)
                VD_STORE(a + k * (VW / 2), t[v][k]);
            for (int j = 0; j < width; j++) {
                acc[c0 + j] += a[j];
                acc[c + c0 + j] += a[VW + j];
            }
        }
    }
}

/* dz = leaky'(z) k_dy (dy - k_mean - xhat k_xhat) for one vector of channels
 * [c0, c0 + VW) (m: those there are); dz may alias dy. */
static TARGET ALWAYS_INLINE void FN(bn_grad_one)(float *dz, const float *dy, const float *z,
                                                vmask m, vec slope, vec mu, vec is, vec kd,
                                                vec km, vec kx)
{
    prefetch_ahead(z);
    prefetch_ahead(dy);
    const vec zv = V_LOADM(z, m);
    const vec xhat = V_MUL(V_SUB(FN(leaky)(zv, slope), mu), is);
    const vec da = V_MUL(kd, V_SUB(V_SUB(V_LOADM(dy, m), km), V_MUL(xhat, kx)));
    V_STOREM(dz, m, V_SELECT_POS(zv, da, V_MUL(slope, da)));
}

/* dz = leaky'(z) k_dy (dy - k_mean - xhat k_xhat); dz may alias dy. Pixel
 * after pixel, all of a pixel's channels at once: by vectors of channels in
 * turn, each pass over the pixels reads every other line of z and dy (32
 * channels), and the pass ran at 9-10 GB/s instead of 14. */
static TARGET void FN(bn_grad_apply)(float *dz, const float *dy, const float *z, size_t pixels,
                                     int c, float slope, const float *mean, const float *invstd,
                                     const float *k_dy, const float *k_mean, const float *k_xhat)
{
    const vec vslope = V_SET1(slope);
    if (c <= VW) { /* the channels' constants stay in registers */
        const vmask m = mask_first(c);
        const vec mu = V_LOADM(mean, m), is = V_LOADM(invstd, m), kd = V_LOADM(k_dy, m);
        const vec km = V_LOADM(k_mean, m), kx = V_LOADM(k_xhat, m);
        for (size_t p = 0; p < pixels; p++)
            FN(bn_grad_one)(dz + p * c, dy + p * c, z + p * c, m, vslope, mu, is, kd, km, kx);
        return;
    }
    for (size_t p = 0; p < pixels; p++)
        for (int c0 = 0; c0 < c; c0 += VW) {
            const vmask m = mask_first(c - c0 < VW ? c - c0 : VW);
            const size_t at = p * c + c0;
            FN(bn_grad_one)(dz + at, dy + at, z + at, m, vslope, V_LOADM(mean + c0, m),
                            V_LOADM(invstd + c0, m), V_LOADM(k_dy + c0, m),
                            V_LOADM(k_mean + c0, m), V_LOADM(k_xhat + c0, m));
        }
}

/* dst = xform(x) over pixels x c (one image row or more): leaky, then scale and shift. */
static TARGET void FN(apply_xform)(float *dst, const float *x, size_t pixels, int c,
                                const float *scale, const float *shift, float slope)
{
    const vec vslope = V_SET1(slope);
    if (c <= VW) {
        vmask m = mask_first(c);
        vec sc = V_LOADM(scale, m), sh = V_LOADM(shift, m);
        for (size_t p = 0; p < pixels; p++) {
            prefetch_ahead(x + p * c);
            V_STOREM(dst + p * c, m,
                     V_ADD(V_MUL(FN(leaky)(V_LOADM(x + p * c, m), vslope), sc), sh));
        }
        return;
    }
    for (size_t p = 0; p < pixels; p++)
        for (int c0 = 0; c0 < c; c0 += VW) {
            vmask m = mask_first(c - c0 < VW ? c - c0 : VW);
            prefetch_ahead(x + p * c + c0);
            vec v = FN(leaky)(V_LOADM(x + p * c + c0, m), vslope);
            V_STOREM(dst + p * c + c0, m,
                     V_ADD(V_MUL(v, V_LOADM(scale + c0, m)), V_LOADM(shift + c0, m)));
        }
}

/* Channel-planar copy of one row: rows[ch pw + 1 + x] = src[x c + ch]. */
static TARGET void FN(planar_row)(float *rows, const float *src, int w, int c, size_t pw)
{
    const vidx step = VI_STEP(c);
    int first = 0; /* pixels before `first` are done */
#ifdef V_TRANSPOSE
    if (c % VW == 0) /* whole blocks of VW pixels by in-register transposes */
        for (; first + VW <= w; first += VW)
            for (int c0 = 0; c0 < c; c0 += VW) {
                vec t[VW];
                for (int p = 0; p < VW; p++)
                    t[p] = V_LOAD(src + (size_t)(first + p) * c + c0);
                V_TRANSPOSE(rows + (size_t)c0 * pw + 1 + first, pw, t);
            }
#endif
    for (int ch = 0; ch < c; ch++)
        for (int x0 = first; x0 < w; x0 += VW) {
            vmask m = mask_first(w - x0 < VW ? w - x0 : VW);
            V_STOREM(rows + (size_t)ch * pw + 1 + x0, m,
                     V_GATHERM(src + (size_t)x0 * c + ch, step, m));
        }
}

/* planar_row of x' = xform(src) for the first pixels of a row whose channels
 * are whole vectors, in one read of src: whole blocks of VW pixels, through
 * in-register transposes; keep gets the same pixels of keep_xform(src) (of x'
 * when keep_xform is NULL), pixel-major. The values are apply_xform's.
 * Returns the pixels done (0 where there is no in-register transpose); the
 * caller does the rest. */
static TARGET int FN(planar_xform_row)(float *rows, float *keep, const float *src, int w, int c,
                                       size_t pw, const ae_input_xform *xform,
                                       const ae_input_xform *keep_xform)
{
    int first = 0;
#ifdef V_TRANSPOSE
    if (c % VW != 0)
        return 0;
    const vec slope = V_SET1(xform->slope);
    const vec kslope = V_SET1(keep_xform ? keep_xform->slope : 0.0f);
    for (; first + VW <= w; first += VW)
        for (int c0 = 0; c0 < c; c0 += VW) {
            const vec sc = V_LOAD(xform->scale + c0), sh = V_LOAD(xform->shift + c0);
            const vec ksc = keep_xform ? V_LOAD(keep_xform->scale + c0) : sc;
            const vec ksh = keep_xform ? V_LOAD(keep_xform->shift + c0) : sh;
            vec t[VW];
            for (int p = 0; p < VW; p++) {
                const size_t at = (size_t)(first + p) * c + c0;
                prefetch_ahead(src + at);
                const vec v = V_LOAD(src + at);
                t[p] = V_ADD(V_MUL(FN(leaky)(v, slope), sc), sh);
                if (keep)
                    V_STORE(keep + at,
                            keep_xform ? V_ADD(V_MUL(FN(leaky)(v, kslope), ksc), ksh) : t[p]);
            }
            V_TRANSPOSE(rows + (size_t)c0 * pw + 1 + first, pw, t);
        }
#else
    (void)rows, (void)keep, (void)src, (void)w, (void)c, (void)pw, (void)xform, (void)keep_xform;
#endif
    return first;
}

/* db[ch] = (or +=, with add) the sum over pixels of dy, as the portable loop
 * takes it (scratch.c): four chains by pixel offset mod 4, (a0 + a1) +
 * (a2 + a3), in float. */
static TARGET ALWAYS_INLINE void FN(bias_sum)(float *db, const float *dy, size_t pixels, int c,
                                              const int add)
{
    if (4 * c <= VW) {
        /* Few channels (the output layer's): the four chains side by side in
         * one vector, lane j c + ch chain j's channel ch, so four pixels are
         * one load (four masked loads of c lanes were slower than the adds).
         * The masked tail adds +0.0 to the chains it does not reach, which
         * leaves them as they are (a chain that starts at +0.0 is never -0.0). */
        vec acc = V_ZERO();
        const vmask four = mask_first(4 * c);
        size_t p = 0;
        for (; p + 4 <= pixels; p += 4)
            acc = V_ADD(acc, V_LOADM(dy + p * c, four));
        acc = V_ADD(acc, V_LOADM(dy + p * c, mask_first((int)(pixels - p) * c)));
        float a[VW];
        V_STORE(a, acc);
        for (int ch = 0; ch < c; ch++) {
            const float sum = (a[ch] + a[c + ch]) + (a[2 * c + ch] + a[3 * c + ch]);
            db[ch] = add ? db[ch] + sum : sum;
        }
        return;
    }
    for (int c0 = 0; c0 < c; c0 += VW) {
        vmask m = mask_first(c - c0 < VW ? c - c0 : VW);
        vec a0 = V_ZERO(), a1 = V_ZERO(), a2 = V_ZERO(), a3 = V_ZERO();
        const float *d = dy + c0;
        size_t p = 0;
        for (; p + 4 <= pixels; p += 4) {
            a0 = V_ADD(a0, V_LOADM(d + p * c, m));
            a1 = V_ADD(a1, V_LOADM(d + (p + 1) * c, m));
            a2 = V_ADD(a2, V_LOADM(d + (p + 2) * c, m));
            a3 = V_ADD(a3, V_LOADM(d + (p + 3) * c, m));
        }
        if (p < pixels)
            a0 = V_ADD(a0, V_LOADM(d + p * c, m));
        if (p + 1 < pixels)
            a1 = V_ADD(a1, V_LOADM(d + (p + 1) * c, m));
        if (p + 2 < pixels)
            a2 = V_ADD(a2, V_LOADM(d + (p + 2) * c, m));
        vec sum = V_ADD(V_ADD(a0, a1), V_ADD(a2, a3));
        V_STOREM(db + c0, m, add ? V_ADD(V_LOADM(db + c0, m), sum) : sum);
    }
}

static TARGET void FN(bias_grad)(float *db, const float *dy, size_t pixels, int c)
{
    FN(bias_sum)(db, dy, pixels, c, 0);
}

static TARGET void FN(bias_grad_add)(float *db, const float *dy, size_t pixels, int c)
{
    FN(bias_sum)(db, dy, pixels, c, 1);
}
