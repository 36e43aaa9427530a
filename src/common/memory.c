/* Big float buffers on transparent huge pages: a 256x256 model streams
 * hundreds of MB per step through its activations and input batches, and with
 * 4 KiB pages every 4 KiB of that costs a TLB miss (docs/PERFORMANCE.md:
 * 6-10% of a training step). Where THP is "madvise" (Debian's default), only
 * memory that asks gets huge pages. */
#include "aedet/common.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { HUGE_PAGE = 1 << 21 };

float *ae_alloc_floats(size_t count)
{
    size_t bytes;
    if (!ae_mul_size(count ? count : 1, sizeof(float), &bytes))
        return NULL;
    if (bytes < HUGE_PAGE)
        return calloc(count ? count : 1, sizeof(float));
    void *p;
    if (posix_memalign(&p, HUGE_PAGE, bytes) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: without it, 4 KiB pages */
#endif
    memset(p, 0, bytes);
    return p;
}

void ae_free_floats(float *p) { free(p); }

static _Atomic size_t memory_limit; /* 0: half of physical memory */

void ae_set_memory_limit(size_t bytes) { memory_limit = bytes; }

size_t ae_get_memory_limit(void)
{
    if (memory_limit)
        return memory_limit;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    size_t total;
    if (pages <= 0 || page <= 0 || !ae_mul_size((size_t)pages, (size_t)page, &total))
        return SIZE_MAX / 2; /* unknown: no limit beyond ae_config_check's */
    return total / 2;
}
