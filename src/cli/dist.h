/* The tool under mpirun (docs/SCALING.md): `train` spreads every batch over
 * the ranks (the library's ae_collective, carried by MPI in dist_mpi.c),
 * `score` and `report` spread the images and gather the scores on rank 0;
 * rank 0 alone prints and writes files. Built without MPI (the default),
 * the tool refuses to run as one of several processes, which would each
 * write the same files. */
#ifndef AEDET_CLI_DIST_H
#define AEDET_CLI_DIST_H

/* (after cli.h) */

/* Before the command runs: joins the MPI job when launched by mpirun (an
 * MPI build), refuses a command that does not spread over ranks, or a
 * non-MPI build launched as several processes; quiets ranks other than 0.
 * Returns 0, or the exit code to end with. */
int cli_dist_start(int argc, char **argv);
/* After it: leaves the MPI job; returns the exit code. */
int cli_dist_finish(int rc);

int cli_dist_rank(void);
int cli_dist_size(void);
/* The library's collective over the ranks; NULL for one process. */
const ae_collective *cli_dist_comm(void);
/* Images of a batch of `batch` a model on this rank must hold. */
int cli_dist_local_batch(int batch);

/* score: keeps this rank's consecutive block of the items (the images a
 * session scores); refuses data with masks (the pixel-level AUROC needs
 * every image's map in one process). */
int cli_dist_shard_items(const cli_command *cmd, const ae_dataset *ds, size_t **items, size_t *n);
/* n_local summed over the ranks. */
size_t cli_dist_total(size_t n_local);
/* Rank 0 gets every rank's n_local scores and items after its own, in rank
 * order (the input order); scores and items hold room for all. Returns 0
 * or an exit code. */
int cli_dist_gather_scores(float *scores, size_t *items, size_t n_local);

/* fn(user, err) on rank 0, its outcome told to every rank (others get a
 * message that names rank 0). */
ae_status cli_dist_on_root(ae_status (*fn)(void *, ae_error *), void *user, ae_error *err);

/* dist_mpi.c, in an MPI build: the same on MPI. */
int cli_mpi_launched(void);
int cli_mpi_init(int *rank, int *size);
void cli_mpi_finalize(void);
void cli_mpi_collective(ae_collective *c);
unsigned long long cli_mpi_sum(unsigned long long v);
int cli_mpi_bcast_int(int v);
int cli_mpi_gather_scores(float *scores, size_t *items, size_t n_local);

#endif
