/* libFuzzer: parse any bytes as CSV and check the result's invariants. */
#include "aedet/image.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ae_csv csv;
    ae_error err;
    if (ae_csv_parse((const char *)data, size, "fuzz.csv", &csv, &err) != AE_OK) {
        if (csv.rows || csv.header || !strstr(err.message, "fuzz.csv"))
            abort();
        return 0;
    }
    if (csv.num_columns < 1 || !csv.header)
        abort();
    size_t total = strlen(csv.header[csv.num_columns - 1]);
    for (size_t r = 0; r < csv.num_rows; r++) {
        if (csv.row_columns[r] < 1 || csv.row_line[r] < 2 ||
            (r > 0 && csv.row_line[r] <= csv.row_line[r - 1]))
            abort();
        for (int c = 0; c < csv.row_columns[r]; c++)
            total += strlen(csv.rows[r][c]); /* every field is a readable string */
    }
    if (total > size)
        abort();
    (void)ae_csv_column(&csv, "Label");
    ae_csv_free(&csv);
    return 0;
}
