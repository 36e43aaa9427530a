/* aedet: reading the files users keep (JPEG, PNG, IDX, CSV) and writing PNG.
 * Every reader takes a name (the file's path) used in error messages, checks
 * every length, and never returns a half-filled result on failure. */
#ifndef AEDET_IMAGE_H
#define AEDET_IMAGE_H

#include "aedet/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An 8-bit image, rows top to bottom, channels interleaved (HWC). */
typedef struct {
    int height, width, channels; /* channels: 1 gray, 3 RGB (alpha is dropped on load) */
    uint8_t *pixels;
} ae_image;

AE_API void ae_image_free(ae_image *img);

/* Decoders refuse images over these sizes before allocating anything, with a
 * message naming the file (a small file can claim a huge image). */
#define AE_IMAGE_MAX_PIXELS (1UL << 28) /* width * height */
#define AE_IMAGE_MAX_SIDE (1L << 20)    /* width or height */

/* A lower pixel limit, checked from the header like the above (Pillow's
 * MAX_IMAGE_PIXELS): a 1 KB file can declare a 64512x2296 image that decodes
 * to 0.9 GB. Default AE_IMAGE_DEFAULT_PIXELS (2^26 = 64 Mi pixels, 8192x8192);
 * 0 restores it; capped at AE_IMAGE_MAX_PIXELS. Process-wide (read by every
 * decoder thread): set it before decoding. */
#define AE_IMAGE_DEFAULT_PIXELS (1UL << 26)
AE_API void ae_image_set_max_pixels(size_t pixels);
AE_API size_t ae_image_max_pixels(void);

/* Decodes JPEG or PNG (detected from the bytes, not the name): 8 or 16 bit
 * (16 is rounded to 8: v * 255 / 65535 to nearest), 1/2/4-bit gray (scaled
 * to 0..255), gray, gray+alpha, RGB, RGBA, palette (with or without tRNS).
 * Alpha is dropped, not composited; gray stays 1 channel, the rest become 3.
 * CMYK/YCCK JPEGs are converted naively (R = (1 - C)(1 - K), Adobe-inverted
 * files accordingly). No gamma or ICC colour management is applied. A
 * truncated or corrupt file (libjpeg's corrupt-data warnings included) is
 * AE_ERR_DATA with name in the message; nothing is ever printed. */
AE_API ae_status ae_image_decode(const uint8_t *bytes, size_t len, const char *name, ae_image *out,
                          ae_error *err);
AE_API ae_status ae_image_load(const char *path, ae_image *out, ae_error *err);
/* An image file's size and channels (as ae_image_load would give them) from
 * its header alone: a PNG's IHDR, a JPEG's frame header (markers before it
 * are skipped by their lengths). Only regular files are opened. AE_ERR_IO
 * when the file cannot be opened, AE_ERR_DATA when no such header is found;
 * a header found says nothing of the rest of the file. */
typedef struct {
    int height, width, channels;
} ae_image_info;
AE_API ae_status ae_image_probe(const char *path, ae_image_info *info, ae_error *err);

/* Converts src to channels (gray <-> RGB; gray is ITU-R 601 luma, rounded) and
 * resizes it to height x width: area averaging when shrinking, bilinear when
 * growing (per axis). dst holds height*width*channels bytes. */
AE_API ae_status ae_image_prepare(const ae_image *src, int height, int width, int channels,
                           uint8_t *dst, ae_error *err);

/* PNG writing, 8 bits, channels 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA).
 * ae_png_encode returns a malloc'ed buffer. ae_png_write is atomic (see
 * ae_write_file_atomic_many in aedet/file.h: it does not look for stale temp
 * files). */
AE_API ae_status ae_png_encode(const uint8_t *pixels, int height, int width, int channels,
                        uint8_t **out, size_t *out_len, ae_error *err);
AE_API ae_status ae_png_write(const char *path, const uint8_t *pixels, int height, int width,
                       int channels, ae_error *err);

/* IDX files (MNIST, Fashion-MNIST), plain or gzip (found by its magic bytes,
 * not the name). Only unsigned-byte data (type 0x08), 1 to 4 dimensions, and
 * the data must be exactly as long as the dimensions say. */
typedef struct {
    int ndim;
    int dims[4];
    size_t count; /* dims[0] */
    uint8_t *data;
} ae_idx;

AE_API ae_status ae_idx_parse(const uint8_t *bytes, size_t len, const char *name, ae_idx *out,
                       ae_error *err);
AE_API ae_status ae_idx_read(const char *path, ae_idx *out, ae_error *err);
AE_API void ae_idx_free(ae_idx *idx);

/* CSV (RFC 4180: quotes, doubled quotes, newlines inside quotes, CRLF; a
 * UTF-8 BOM and empty lines are skipped). The first row is the header. Rows
 * may have more or fewer fields than the header (row_columns says how many):
 * the caller decides whether that is an error, and row_line says where. */
typedef struct {
    size_t num_rows; /* data rows, header excluded */
    int num_columns; /* of the header */
    char **header;
    char ***rows;    /* rows[r][c] for c < row_columns[r] */
    int *row_columns;
    size_t *row_line; /* 1-based line in the file where row r starts */
    char *text_;      /* internal: one block holding every field's text */
    char **fields_;   /* internal: every field pointer; header and rows point into it */
} ae_csv;

AE_API ae_status ae_csv_parse(const char *text, size_t len, const char *name, ae_csv *out, ae_error *err);
AE_API ae_status ae_csv_read(const char *path, ae_csv *out, ae_error *err);
AE_API int ae_csv_column(const ae_csv *csv, const char *header_name); /* index, or -1 */
AE_API void ae_csv_free(ae_csv *csv);

#ifdef __cplusplus
}
#endif
#endif
