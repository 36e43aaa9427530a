/* The tool's side of data-parallel runs, the same in every build: which
 * commands spread over ranks, who prints, how the images of `score` are
 * shared out. What crosses between ranks goes through dist_mpi.c, which
 * exists only in an MPI build (make MPI=1). */
#include "cli.h"
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int world_rank, world_size = 1, joined;
static ae_collective world_comm;

int cli_dist_rank(void) { return world_rank; }
int cli_dist_size(void) { return world_size; }
const ae_collective *cli_dist_comm(void) { return world_size > 1 ? &world_comm : NULL; }

int cli_dist_local_batch(int batch)
{
    int share = world_size > 1 ? ae_shard_count(batch, 0, world_size) : batch;
    return share > 0 ? share : 1; /* ae_train says why a batch is too small */
}

#ifndef AEDET_MPI
/* The number of processes a launcher started this one among, from its
 * environment (Open MPI's mpirun, or a PMI launcher: MPICH, Slurm); 1 when
 * none did. */
static long launched_size(void)
{
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atol(v) > 1)
            return atol(v);
    }
    return 1;
}
#endif

static int spreads(const char *command)
{
    return command && (!strcmp(command, "train") || !strcmp(command, "score") ||
                       !strcmp(command, "report"));
}

int cli_dist_start(int argc, char **argv)
{
    const char *command = argc > 1 ? argv[1] : NULL;
#ifdef AEDET_MPI
    if (cli_mpi_launched()) {
        joined = 1;
        if (cli_mpi_init(&world_rank, &world_size))
            return EXIT_INTERNAL;
        cli_mpi_collective(&world_comm);
    }
#else
    long n = launched_size();
    if (n > 1) {
        fprintf(stderr, "aedet: this aedet was built without MPI, but was started as one of %ld "
                        "processes (mpirun -np %ld?): each would run alone and write the same "
                        "files. Build it with `make MPI=1` (Open MPI: apt-get install "
                        "libopenmpi-dev openmpi-bin), or run one process.\n",
                n, n);
        return EXIT_USAGE;
    }
#endif
    if (world_size > 1 && !spreads(command)) {
        if (world_rank == 0)
            fprintf(stderr, "aedet: `aedet %s` runs as one process; under mpirun only train, "
                            "score and report spread over the ranks (run it without mpirun, or "
                            "with -np 1)\n",
                    command ? command : "");
        return EXIT_USAGE;
    }
    if (world_rank != 0) { /* rank 0 speaks for all; the others only report errors */
        cli_out.quiet = 1;
        if (!freopen("/dev/null", "w", stdout))
            return EXIT_INTERNAL;
    }
    return 0;
}

int cli_dist_finish(int rc)
{
#ifdef AEDET_MPI
    /* A rank that fails alone may leave the others waiting in a collective:
     * it exits without leaving the job, and mpirun ends the others. */
    if (joined && (rc == 0 || rc == EXIT_INTERRUPTED || world_size == 1))
        cli_mpi_finalize();
#endif
    (void)joined;
    return rc;
}

int cli_dist_shard_items(const cli_command *cmd, const ae_dataset *ds, size_t **items, size_t *n)
{
    if (world_size == 1)
        return 0;
    for (size_t i = 0; i < *n; i++)
        if (ds->items[(*items)[i]].mask_path)
            return cli_usage_error(cmd, "the data has ground-truth masks, and the pixel-level "
                                        "AUROC needs every image's error map in one process: "
                                        "score it without mpirun");
    if (*n < (size_t)world_size)
        return cli_usage_error(cmd, "%zu images over %d ranks: each rank needs one; use fewer ranks",
                               *n, world_size);
    /* rank r's block: n / size items, one more for the first n % size ranks */
    size_t q = *n / (size_t)world_size, rem = *n % (size_t)world_size, r = (size_t)world_rank;
    size_t first = r * q + (r < rem ? r : rem), count = q + (r < rem);
    memmove(*items, *items + first, count * sizeof **items);
    *n = count;
    return 0;
}

size_t cli_dist_total(size_t n_local)
{
#ifdef AEDET_MPI
    if (world_size > 1)
        return (size_t)cli_mpi_sum(n_local);
#endif
    return n_local;
}

int cli_dist_gather_scores(float *scores, size_t *items, size_t n_local)
{
#ifdef AEDET_MPI
    if (world_size > 1)
        return cli_mpi_gather_scores(scores, items, n_local);
#endif
    (void)scores, (void)items, (void)n_local;
    return 0;
}

ae_status cli_dist_on_root(ae_status (*fn)(void *, ae_error *), void *user, ae_error *err)
{
    if (world_size == 1)
        return fn(user, err);
    ae_status s = world_rank == 0 ? fn(user, err) : AE_OK;
#ifdef AEDET_MPI
    s = (ae_status)cli_mpi_bcast_int((int)s);
#endif
    if (s != AE_OK && world_rank != 0)
        return ae_fail(err, s, "rank 0 failed (its message says why)");
    return s;
}
