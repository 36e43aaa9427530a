/* Internal: a growing text buffer. Output is appended; any failure (out of
 * memory) sets failed and makes every later call a no-op, so callers check
 * once at the end. Free s when done. */
#ifndef AEDET_COMMON_TEXT_H
#define AEDET_COMMON_TEXT_H

#include <stddef.h>

typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} ae_text;

void ae_text_printf(ae_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ae_text_put(ae_text *t, const char *s, size_t n);

#endif
