/* Pieces the score module shares between its files. */
#ifndef AEDET_SCORE_INTERNAL_H
#define AEDET_SCORE_INTERNAL_H

#include <stddef.h>

/* Reorders v so that v[0..k) hold its k largest values (in any order);
 * 1 <= k <= n. Linear time on average. */
void ae_select_largest(float *v, size_t n, size_t k);

#endif
