/* libFuzzer: parse any bytes (plain or gzip) as an IDX file. */
#include "aedet/image.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ae_idx idx;
    ae_error err;
    if (ae_idx_parse(data, size, "fuzz.idx", &idx, &err) != AE_OK) {
        if (idx.data || !strstr(err.message, "fuzz.idx"))
            abort();
        return 0;
    }
    if (idx.ndim < 1 || idx.ndim > 4 || idx.count != (size_t)idx.dims[0])
        abort();
    size_t n = 1;
    for (int i = 0; i < idx.ndim; i++)
        n *= (size_t)idx.dims[i];
    volatile uint8_t sum = 0;
    for (size_t i = 0; i < n; i++) /* every byte the dimensions promise is there */
        sum = (uint8_t)(sum + idx.data[i]);
    ae_idx_free(&idx);
    return 0;
}
