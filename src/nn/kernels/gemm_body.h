/* ae_gemm's loops (gemm.c), written once for any vector width. gemm.c
 * includes this once per instruction set, defining GEMM_W (floats per
 * vector), GEMM_TARGET (a function attribute, or nothing) and GEMM_FN(name)
 * (the name with the set's suffix). Every variant makes the naive loop's
 * bits: a lane multiplies, rounds, adds and rounds as the scalar code does
 * (no fused multiply-add: -ffp-contract=off, and the pragma in gemm.c).
 *
 * Blocks of MB rows x 2 vectors of columns of C in registers, over chunks
 * of k small enough that the chunk's columns of B stay in L1 for every
 * block of rows; a chunk adds its products to what C holds, so the order of
 * the sums is p = 0, 1, ... across chunks too. One vector of columns where
 * two would be too many; the last columns (fewer than a vector) and rows
 * (fewer than a block) run in a tile whose extra lanes are zeros. A
 * transposed B is copied, a chunk of columns at a time, into a panel that
 * reads like an untransposed one (as are the last columns, zero-padded). */

typedef float GEMM_FN(vec) __attribute__((vector_size(GEMM_W * sizeof(float))));

/* Through a local and memcpy: unaligned moves, and no vector passed by value
 * between functions (whose ABI -Wpsabi warns about under other targets). */
static GEMM_TARGET inline __attribute__((always_inline)) void GEMM_FN(load)(GEMM_FN(vec) *v,
                                                                          const float *p)
{
    GEMM_FN(vec) t;
    memcpy(&t, p, sizeof t);
    *v = t;
}

/* Rows [i0, i0 + R) x V vectors of columns over the chunk; B's rows of the
 * chunk at bp + (p - k0) ldb. */
static GEMM_TARGET inline __attribute__((always_inline)) void
GEMM_FN(block)(const int R, const int V, const gemm_chunk *q, int i0, const float *bp,
               size_t ldb, float *c, size_t ldc)
{
    GEMM_FN(vec) acc[MB][2], bv[2];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) {
            if (q->first)
                acc[r][v] = (GEMM_FN(vec)){0};
            else
                GEMM_FN(load)(&acc[r][v], c + (size_t)(i0 + r) * ldc + v * GEMM_W);
        }
    const float *a = q->a + (size_t)i0 * q->a_row;
    for (int p = q->k0; p < q->k1; p++, bp += ldb) {
        for (int v = 0; v < V; v++)
            GEMM_FN(load)(&bv[v], bp + v * GEMM_W);
        const float *ap = a + (size_t)p * q->a_col;
        for (int r = 0; r < R; r++) {
            const float av = ap[(size_t)r * q->a_row];
            for (int v = 0; v < V; v++)
                acc[r][v] = acc[r][v] + av * bv[v];
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++)
            memcpy(c + (size_t)(i0 + r) * ldc + v * GEMM_W, &acc[r][v], sizeof acc[r][v]);
}

typedef void (*GEMM_FN(block_fn))(const gemm_chunk *, int, const float *, size_t, float *,
                                   size_t);
#define GEMM_BLOCK(R, V)                                                                        \
    static GEMM_TARGET void GEMM_FN(block_##R##_##V)(const gemm_chunk *q, int i0,              \
                                                     const float *bp, size_t ldb, float *c,    \
                                                     size_t ldc)                               \
    {                                                                                           \
        GEMM_FN(block)(R, V, q, i0, bp, ldb, c, ldc);                                           \
    }
GEMM_BLOCK(8, 2)
GEMM_BLOCK(8, 1)
GEMM_BLOCK(1, 2)
GEMM_BLOCK(1, 1)
#undef GEMM_BLOCK

static GEMM_TARGET void GEMM_FN(gemm)(const ae_gemm_job *job)
{
    /* the job in locals: the loops below as they were with arguments */
    const int a_t = job->a_t, b_t = job->b_t, m = job->m, n = job->n, k = job->k;
    const int lda = job->lda, ldb = job->ldb, ldc = job->ldc, accumulate = job->accumulate;
    const float *const a = job->a, *const b = job->b;
    float *const c = job->c;
    enum { NB = 2 * GEMM_W };
    if (k == 0 && !accumulate)
        for (int i = 0; i < m; i++)
            memset(c + (size_t)i * ldc, 0, (size_t)n * sizeof *c);
    /* a transposed B, or the last columns (fewer than a vector) zero-padded */
    float panel[KC * NB] __attribute__((aligned(64)));
    float tile[MB * NB] __attribute__((aligned(64))); /* C's rows where a block is partial */
    for (int k0 = 0; k0 < k; k0 += KC) {
        gemm_chunk q = {a, a_t ? 1 : (size_t)lda, a_t ? (size_t)lda : 1, k0,
                        k - k0 < KC ? k : k0 + KC, k0 == 0 && !accumulate};
        const int kc = q.k1 - k0;
        for (int j0 = 0; j0 < n; j0 += NB) {
            const int width = n - j0 < NB ? n - j0 : NB, V = width > GEMM_W ? 2 : 1;
            const int whole = width == V * GEMM_W;
            const float *bp; /* B(k0, j0); rows ldb_p apart, columns 1 */
            size_t ldb_p;
            if (b_t) {
                /* column by column, each a run of one of B's rows, read in
                 * order: row by row, the kc lines of the columns (ldb floats
                 * apart, 256 KB for the decoder dense layer's dx) shared
                 * cache sets and evicted each other; dx took 6.3 ms of a
                 * 256x256x3 training step, now 3.9 (Zen 4) */
                for (int j = 0; j < V * GEMM_W; j++) {
                    const float *col = b + (size_t)(j0 + j) * ldb + k0;
                    for (int p = 0; p < kc; p++)
                        panel[p * NB + j] = j < width ? col[p] : 0.0f;
                }
                bp = panel, ldb_p = NB;
            } else if (!whole) {
                for (int p = 0; p < kc; p++)
                    for (int j = 0; j < V * GEMM_W; j++)
                        panel[p * NB + j] = j < width ? b[(size_t)(k0 + p) * ldb + j0 + j] : 0.0f;
                bp = panel, ldb_p = NB;
            } else {
                bp = b + (size_t)k0 * ldb + j0, ldb_p = (size_t)ldb;
            }
            const GEMM_FN(block_fn) rows8 = V == 2 ? GEMM_FN(block_8_2) : GEMM_FN(block_8_1);
            const GEMM_FN(block_fn) row1 = V == 2 ? GEMM_FN(block_1_2) : GEMM_FN(block_1_1);
            for (int i0 = 0; i0 < m; i0 += MB) {
                const int rows = m - i0 < MB ? m - i0 : MB;
                if (whole && rows == MB) {
                    rows8(&q, i0, bp, ldb_p, c + j0, (size_t)ldc);
                    continue;
                }
                /* through the tile: its padding lanes compute zeros, dropped */
                for (int r = 0; r < rows; r++) {
                    memset(tile + r * NB, 0, sizeof(float) * NB);
                    if (!q.first)
                        memcpy(tile + r * NB, c + (size_t)(i0 + r) * ldc + j0,
                               sizeof(float) * (size_t)width);
                }
                gemm_chunk qi = q;
                qi.a = q.a + (size_t)i0 * q.a_row;
                if (rows == MB)
                    rows8(&qi, 0, bp, ldb_p, tile, NB);
                else
                    for (int r = 0; r < rows; r++)
                        row1(&qi, r, bp, ldb_p, tile, NB);
                for (int r = 0; r < rows; r++)
                    memcpy(c + (size_t)(i0 + r) * ldc + j0, tile + r * NB,
                           sizeof(float) * (size_t)width);
            }
        }
    }
}
