/* Big float buffers on transparent huge pages: a 256x256 model streams
 * hundreds of MB per step through its activations and input batches, and with
 * 4 KiB pages every 4 KiB of that costs a TLB miss (docs/PERFORMANCE.md:
 * 6-10% of a training step). Where THP is "madvise" (Debian's default), only
 * memory that asks gets huge pages. */
#include "aedet/common.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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
