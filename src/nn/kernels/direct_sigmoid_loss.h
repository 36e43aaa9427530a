/* The sigmoid (its own exp) and the loss's lanes (ae_loss_lanes_add) of
 * direct.h. Part of direct_body.h (included once per ISA, with its macros). */

/* y = 1 / (1 + exp(-x)) with exp of -|x| only (no overflow): exp(r) for
 * r = -|x| = n ln2 + f, |f| <= ln2 / 2, by Cephes' expf polynomial (about
 * 2 ulp), scaled by 2^n. */
static TARGET void FN(sigmoid)(float *y, const float *x, size_t count)
{
    const vec one = V_SET1(1.0f), log2e = V_SET1(1.44269504088896341f);
    const vec c1 = V_SET1(0.693359375f), c2 = V_SET1(-2.12194440e-4f), lo = V_SET1(-88.0f);
    const vec p0 = V_SET1(1.9875691500e-4f), p1 = V_SET1(1.3981999507e-3f),
              p2 = V_SET1(8.3334519073e-3f), p3 = V_SET1(4.1665795894e-2f),
              p4 = V_SET1(1.6666665459e-1f), p5 = V_SET1(5.0000001201e-1f);
    for (size_t i = 0; i < count; i += VW) {
        vmask m = mask_first(count - i < VW ? (int)(count - i) : VW);
        vec v = V_LOADM(x + i, m);
        vec r = V_MAX(lo, V_NEG_ABS(v)); /* NaN stays NaN */
        vec n = V_ROUND(V_MUL(r, log2e));
        vec f = V_SUB(V_SUB(r, V_MUL(n, c1)), V_MUL(n, c2));
        vec p = V_FMA(V_FMA(V_FMA(V_FMA(V_FMA(p0, f, p1), f, p2), f, p3), f, p4), f, p5);
        vec e = V_SCALE2(V_ADD(V_FMA(V_MUL(p, f), f, f), one), n);
        /* x >= 0: 1 / (1 + e); x < 0: e / (1 + e) (one division: they are slow) */
        V_STOREM(y + i, m, V_DIV(V_SELECT_NONNEG(v, one, e), V_ADD(one, e)));
    }
}

/* ae_loss_lanes_add (loss.c) with its whole runs of AE_LOSS_LANES elements in
 * vectors: each lane takes the same operations in the same order, so the
 * same bits; the pieces before and after go to loss.c's loop. */
static TARGET void FN(loss_lanes_add)(double *lane, size_t at, const float *y, const float *x,
                                      size_t d, float *dy, float scale)
{
    enum { LANES = AE_LOSS_LANES, ACC = 2 * AE_LOSS_LANES / VW }; /* VW / 2 lanes a vecd */
    size_t j = (LANES - at % LANES) % LANES; /* up to the next lane 0 */
    j = j < d ? j : d;
    ae_loss_lanes_add(lane, at, y, x, j, dy, scale);
    vecd acc[ACC];
    for (int k = 0; k < ACC; k++)
        acc[k] = VD_LOAD(lane + k * (VW / 2));
    const vec vscale = V_SET1(scale), one = V_SET1(1.0f);
    for (; j + LANES <= d; j += LANES)
        UNROLL
        for (int k = 0; k < LANES; k += VW) {
            const vec yv = V_LOAD(y + j + k), xv = V_LOAD(x + j + k);
            const vecd lo = VD_SUB(VD_LO(yv), VD_LO(xv)), hi = VD_SUB(VD_HI(yv), VD_HI(xv));
            acc[2 * k / VW] = VD_ADD(acc[2 * k / VW], VD_MUL(lo, lo));
            acc[2 * k / VW + 1] = VD_ADD(acc[2 * k / VW + 1], VD_MUL(hi, hi));
            if (dy) /* scale (y - x) y (1 - y): a sigmoid's backward */
                V_STORE(dy + j + k,
                        V_MUL(V_MUL(V_MUL(vscale, V_SUB(yv, xv)), yv), V_SUB(one, yv)));
        }
    for (int k = 0; k < ACC; k++)
        VD_STORE(lane + k * (VW / 2), acc[k]);
    ae_loss_lanes_add(lane, at + j, y + j, x + j, d - j, dy ? dy + j : NULL, scale);
}
