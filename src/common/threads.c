#include "aedet/common.h"

#include <omp.h>

void ae_set_num_threads(int n)
{
    /* capped: libgomp aborts (or crashes) when it cannot create the threads */
    n = n > 0 ? n : omp_get_num_procs();
    omp_set_num_threads(n < AE_MAX_THREADS ? n : AE_MAX_THREADS);
}

int ae_get_num_threads(void) { return omp_get_max_threads(); }
