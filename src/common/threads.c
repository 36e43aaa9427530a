#include "aedet/common.h"

#include <omp.h>

void ae_set_num_threads(int n)
{
    omp_set_num_threads(n > 0 ? n : omp_get_num_procs());
}

int ae_get_num_threads(void) { return omp_get_max_threads(); }
