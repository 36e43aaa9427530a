/* How a batch is spread over the ranks of a data-parallel run: in rank
 * order, the remainder going one image each to the first ranks, so that a
 * rank's share never grows when the batch shrinks (the last batch of an
 * epoch fits the buffers made for a full one). */
#include "aedet/data.h"

int ae_shard_count(int n, int rank, int ranks)
{
    return n / ranks + (rank < n % ranks);
}

int ae_shard_first(int n, int rank, int ranks)
{
    return rank * (n / ranks) + (rank < n % ranks ? rank : n % ranks);
}
