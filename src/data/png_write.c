/* PNG encoding into memory (libpng), and an atomic PNG file writer. */
#include "aedet/image.h"
#include "aedet/file.h"
#include "data/png_memory.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* All state lives here so that nothing is indeterminate after libpng's longjmp. */
typedef struct {
    jmp_buf jump;
    char message[256];
    png_structp png;
    png_infop info;
    uint8_t *buf;
    size_t len, cap;
    int out_of_memory;
} png_out;

static void encode_error(png_structp png, png_const_charp msg)
{
    png_out *o = png_get_error_ptr(png);
    snprintf(o->message, sizeof o->message, "%s", msg);
    longjmp(o->jump, 1);
}

static void encode_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void append(png_structp png, png_bytep data, size_t n)
{
    png_out *o = png_get_io_ptr(png);
    if (n > o->cap - o->len) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap - o->len < n) {
            if (cap > SIZE_MAX / 2) {
                o->out_of_memory = 1;
                png_error(png, "output too large");
            }
            cap *= 2;
        }
        uint8_t *grown = realloc(o->buf, cap);
        if (!grown) {
            o->out_of_memory = 1;
            png_error(png, "out of memory");
        }
        o->buf = grown;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, data, n);
    o->len += n;
}

static void flush_nothing(png_structp png)
{
    (void)png;
}

static int encode_run(png_out *o, const uint8_t *pixels, int height, int width, int channels)
{
    if (setjmp(o->jump))
        return -1;
    static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                 PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    png_set_write_fn(o->png, o, append, flush_nothing);
    png_set_IHDR(o->png, o->info, (png_uint_32)width, (png_uint_32)height, 8, types[channels],
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(o->png, o->info);
    size_t row = (size_t)width * (size_t)channels;
    for (int y = 0; y < height; y++)
        png_write_row(o->png, pixels + (size_t)y * row);
    png_write_end(o->png, NULL);
    return 0;
}

ae_status ae_png_encode(const uint8_t *pixels, int height, int width, int channels,
                        uint8_t **out, size_t *out_len, ae_error *err)
{
    *out = NULL;
    *out_len = 0;
    if (!pixels || height <= 0 || width <= 0 || channels < 1 || channels > 4 ||
        height > AE_IMAGE_MAX_SIDE || width > AE_IMAGE_MAX_SIDE)
        return ae_fail(err, AE_ERR_USAGE, "cannot write a PNG of %dx%dx%d (height x width x "
                       "channels; channels 1 to 4)", height, width, channels);
    png_out *o = calloc(1, sizeof *o);
    if (!o)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for the PNG encoder");
    o->png = png_create_write_struct_2(PNG_LIBPNG_VER_STRING, o, encode_error, encode_warning, &o->out_of_memory,
                                       ae_png_alloc, ae_png_release);
    o->info = o->png ? png_create_info_struct(o->png) : NULL;
    int r = o->info ? encode_run(o, pixels, height, width, channels) : -1;
    if (!o->info)
        o->out_of_memory = 1;
    png_destroy_write_struct(o->png ? &o->png : NULL, o->info ? &o->info : NULL);
    ae_status st = AE_OK;
    if (r == 0) {
        *out = o->buf;
        *out_len = o->len;
    } else {
        free(o->buf);
        st = o->out_of_memory ? ae_fail(err, AE_ERR_NOMEM, "encoding a PNG: out of memory")
                              : ae_fail(err, AE_ERR_USAGE, "encoding a PNG: %s", o->message);
    }
    free(o);
    return st;
}

ae_status ae_png_write(const char *path, const uint8_t *pixels, int height, int width,
                       int channels, ae_error *err)
{
    uint8_t *png;
    size_t len;
    ae_status st = ae_png_encode(pixels, height, width, channels, &png, &len, err);
    if (st != AE_OK) {
        ae_error_prefix(err, "%s", path);
        return st;
    }
    st = ae_write_file_atomic_many(path, png, len, err); /* reconstruct writes thousands */
    free(png);
    return st;
}
