/* MPI under the tool (make MPI=1): the library's collective (aedet/train.h)
 * on MPI_COMM_WORLD, and what `score` gathers. Only the main thread calls
 * MPI (MPI_THREAD_FUNNELED); an MPI error ends the job (MPI's default
 * handler), since the other ranks would wait for this one forever. */
#ifdef AEDET_MPI
#include "cli.h"
#include "dist.h"

#include <limits.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_PARTS = 64 };

/* AEDET_MPI_STATS=1: seconds inside each kind of call, printed by rank 0
 * at the end (docs/SCALING.md's measurements). */
enum { T_ALLREDUCE, T_ALLGATHER, T_BEGIN, T_TEST, T_WAIT, T_KINDS };
static const char *const kind_names[T_KINDS] = {"allreduce", "allgather", "iallreduce", "testall",
                                                "waitall"};

typedef struct {
    int rank, size;
    int *displs; /* size: where each rank's part of an allgather goes */
    MPI_Request parts[MAX_PARTS];
    int num_parts;
    int stats;
    double seconds[T_KINDS], bytes[T_KINDS];
    long calls[T_KINDS];
} mpi_world;

static mpi_world world;

static double tick(void) { return world.stats ? MPI_Wtime() : 0; }

static void tock(int kind, double start, double bytes)
{
    if (!world.stats)
        return;
    world.seconds[kind] += MPI_Wtime() - start;
    world.bytes[kind] += bytes;
    world.calls[kind]++;
}

int cli_mpi_launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

int cli_mpi_init(int *rank, int *size)
{
    int provided;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "aedet: MPI_Init_thread failed\n");
        return 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &world.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world.size);
    if (!(world.displs = calloc((size_t)world.size, sizeof *world.displs))) {
        fprintf(stderr, "aedet: out of memory for %d ranks\n", world.size);
        return 1;
    }
    *rank = world.rank;
    *size = world.size;
    const char *stats = getenv("AEDET_MPI_STATS");
    world.stats = stats && strcmp(stats, "0");
    return 0;
}

void cli_mpi_finalize(void)
{
    for (int k = 0; world.stats && world.rank == 0 && k < T_KINDS; k++)
        if (world.calls[k])
            fprintf(stderr, "mpi stats (rank 0): %-10s %6ld calls, %8.3f s, %8.3f ms a call, %.3g MB a call\n",
                    kind_names[k], world.calls[k], world.seconds[k],
                    1e3 * world.seconds[k] / (double)world.calls[k],
                    1e-6 * world.bytes[k] / (double)world.calls[k]);
    free(world.displs);
    world.displs = NULL;
    MPI_Finalize();
}

/* MPI counts are ints: a long buffer goes in pieces of at most 2^30. */
static int piece(size_t left) { return left > (1u << 30) ? 1 << 30 : (int)left; }

static ae_status allreduce(void *ctx, float *buf, size_t count, ae_error *err)
{
    (void)ctx, (void)err;
    double start = tick();
    for (size_t at = 0; at < count; at += (size_t)piece(count - at))
        MPI_Allreduce(MPI_IN_PLACE, buf + at, piece(count - at), MPI_FLOAT, MPI_SUM,
                      MPI_COMM_WORLD);
    tock(T_ALLREDUCE, start, 4.0 * (double)count);
    return AE_OK;
}

static ae_status allgather(void *ctx, const double *mine, double *all, const int *counts,
                           ae_error *err)
{
    mpi_world *w = ctx;
    long long at = 0;
    for (int r = 0; r < w->size; r++) {
        if (at > INT_MAX)
            return ae_fail(err, AE_ERR_NOMEM, "%lld values are too many for one MPI gather", at);
        w->displs[r] = (int)at;
        at += counts[r];
    }
    double start = tick();
    MPI_Allgatherv(mine, counts[w->rank], MPI_DOUBLE, all, counts, w->displs, MPI_DOUBLE,
                   MPI_COMM_WORLD);
    tock(T_ALLGATHER, start, 8.0 * (double)at);
    return AE_OK;
}

static ae_status allreduce_begin(void *ctx, float *buf, size_t count, ae_error *err)
{
    mpi_world *w = ctx;
    /* past the requests kept (never with aedet's models), or a part too
     * long for one request: summed now */
    if (w->num_parts == MAX_PARTS || count > (1u << 30))
        return allreduce(ctx, buf, count, err);
    double start = tick();
    MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                   &w->parts[w->num_parts++]);
    tock(T_BEGIN, start, 4.0 * (double)count);
    return AE_OK;
}

/* Open MPI moves a nonblocking collective on only inside MPI calls. */
static void progress(void *ctx)
{
    mpi_world *w = ctx;
    int done;
    double start = tick();
    MPI_Testall(w->num_parts, w->parts, &done, MPI_STATUSES_IGNORE);
    tock(T_TEST, start, 0);
}

static ae_status allreduce_end(void *ctx, ae_error *err)
{
    (void)err;
    mpi_world *w = ctx;
    double start = tick();
    MPI_Waitall(w->num_parts, w->parts, MPI_STATUSES_IGNORE);
    tock(T_WAIT, start, 0);
    w->num_parts = 0;
    return AE_OK;
}

void cli_mpi_collective(ae_collective *c)
{
    *c = (ae_collective){.rank = world.rank, .size = world.size, .ctx = &world,
                         .allreduce = allreduce, .allgather = allgather};
    /* Summing the gradient in parts while the backward runs: measured on
     * one 2-core machine (docs/SCALING.md) it did not pay, so it is asked
     * for, not the default. */
    const char *overlap = getenv("AEDET_MPI_OVERLAP");
    if (overlap && strcmp(overlap, "0")) {
        c->allreduce_begin = allreduce_begin;
        c->progress = progress;
        c->allreduce_end = allreduce_end;
    }
}

unsigned long long cli_mpi_sum(unsigned long long v)
{
    MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    return v;
}

int cli_mpi_bcast_int(int v)
{
    MPI_Bcast(&v, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return v;
}

int cli_mpi_gather_scores(float *scores, size_t *items, size_t n_local)
{
    int n = (int)n_local, *counts = NULL, *displs = NULL;
    if (n_local > INT_MAX) {
        fprintf(stderr, "aedet: %zu images on one rank are too many for one MPI gather\n", n_local);
        MPI_Abort(MPI_COMM_WORLD, EXIT_INTERNAL);
    }
    if (world.rank == 0) {
        counts = malloc((size_t)world.size * sizeof *counts);
        displs = malloc((size_t)world.size * sizeof *displs);
        if (!counts || !displs) {
            fprintf(stderr, "aedet: out of memory for %d ranks\n", world.size);
            MPI_Abort(MPI_COMM_WORLD, EXIT_INTERNAL);
        }
    }
    MPI_Gather(&n, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (world.rank == 0) {
        long long at = 0;
        for (int r = 0; r < world.size; r++) {
            displs[r] = (int)at;
            at += counts[r];
        }
    }
    /* rank 0's own are in place already */
    uint64_t *ids = malloc((n_local ? n_local : 1) * sizeof *ids);
    if (!ids) {
        fprintf(stderr, "aedet: out of memory for %zu items\n", n_local);
        MPI_Abort(MPI_COMM_WORLD, EXIT_INTERNAL);
    }
    for (size_t i = 0; i < n_local; i++)
        ids[i] = items[i];
    MPI_Gatherv(world.rank == 0 ? MPI_IN_PLACE : scores, n, MPI_FLOAT, scores, counts, displs,
                MPI_FLOAT, 0, MPI_COMM_WORLD);
    if (world.rank == 0) { /* items are size_t: gathered as 64 bits, then put back */
        size_t total = (size_t)displs[world.size - 1] + (size_t)counts[world.size - 1];
        uint64_t *all = malloc((total ? total : 1) * sizeof *all);
        if (!all) {
            fprintf(stderr, "aedet: out of memory for %zu items\n", total);
            MPI_Abort(MPI_COMM_WORLD, EXIT_INTERNAL);
        }
        MPI_Gatherv(ids, n, MPI_UINT64_T, all, counts, displs, MPI_UINT64_T, 0, MPI_COMM_WORLD);
        for (size_t i = 0; i < total; i++)
            items[i] = (size_t)all[i];
        free(all);
    } else {
        MPI_Gatherv(ids, n, MPI_UINT64_T, NULL, NULL, NULL, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    }
    free(ids);
    free(counts);
    free(displs);
    return 0;
}

#else
/* Built without MPI: dist.c never calls these. */
typedef int cli_dist_mpi_unused;
#endif
