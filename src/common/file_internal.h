/* Internal: a whole file read, then parsed from memory. The readers of every
 * format (CSV, IDX, images, model files) are a parser over bytes plus this. */
#ifndef AEDET_COMMON_FILE_INTERNAL_H
#define AEDET_COMMON_FILE_INTERNAL_H

#include "aedet/file.h"

/* Parses len bytes (with a NUL after them) into out; name is for messages. */
typedef ae_status (*ae_bytes_parser)(const uint8_t *bytes, size_t len, const char *name, void *out,
                                     ae_error *err);

/* Reads path (ae_read_file), calls parse with path as the name, frees the
 * bytes; the read's status, or else parse's. */
ae_status ae_parse_file(const char *path, ae_bytes_parser parse, void *out, ae_error *err);

#endif
