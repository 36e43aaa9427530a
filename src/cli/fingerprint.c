/* The data fingerprint of a selection, independent of how DATA is spelled. */
#include "cli.h"

#include <string.h>

int64_t cli_data_fingerprint(const ae_dataset *ds, const char *root, const size_t *items, size_t n)
{
    /* FNV-1a over the names relative to root: items are root + "/" + their
     * path below it (trailing slashes of root dropped), so "data", "./data",
     * "data/" and /abs/data hash alike. IDX records hash as "#index". */
    size_t root_len = root ? strlen(root) : 0;
    while (root_len > 1 && root[root_len - 1] == '/')
        root_len--;
    uint64_t h = 1469598103934665603ULL;
    char buf[64];
    for (size_t i = 0; i < n; i++) {
        const char *name = ae_item_name(&ds->items[items[i]], buf, sizeof buf);
        if (root_len && !strncmp(name, root, root_len) && name[root_len] == '/')
            name += root_len + 1;
        for (const char *p = name; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    return (int64_t)(h >> 1);
}

int cli_same_data(const ae_dataset *ds, const char *root, const size_t *items, size_t n, int64_t stored)
{
    return stored == cli_data_fingerprint(ds, root, items, n) ||
           stored == cli_selection_fingerprint(ds, items, n); /* models made before the relative form */
}
