/* JPEG (libjpeg) and PNG (libpng) decoding from memory into 8-bit gray or RGB.
 *
 * Both libraries report errors by longjmp. Each decoder keeps all of its state
 * in a struct owned by the caller and calls setjmp in a small function whose
 * locals never change afterwards, so nothing is indeterminate after the jump.
 * Neither library is allowed to print: messages are formatted into the struct. */
#include "aedet/image.h"
#include "common/file_internal.h"
#include "data/png_memory.h"

#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which needs FILE */
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

void ae_image_free(ae_image *img)
{
    if (img) {
        free(img->pixels);
        memset(img, 0, sizeof *img);
    }
}

static _Atomic size_t max_pixels; /* 0: AE_IMAGE_DEFAULT_PIXELS */

void ae_image_set_max_pixels(size_t pixels)
{
    max_pixels = pixels < AE_IMAGE_MAX_PIXELS ? pixels : AE_IMAGE_MAX_PIXELS;
}

size_t ae_image_max_pixels(void) { return max_pixels ? max_pixels : AE_IMAGE_DEFAULT_PIXELS; }

static ae_status check_size(size_t width, size_t height, const char *name, ae_error *err)
{
    if (width == 0 || height == 0)
        return ae_fail(err, AE_ERR_DATA, "%s: image has no pixels (%zux%zu)", name, width, height);
    size_t limit = ae_image_max_pixels();
    if (width > (size_t)AE_IMAGE_MAX_SIDE || height > (size_t)AE_IMAGE_MAX_SIDE || width * height > limit)
        return ae_fail(err, AE_ERR_DATA,
                       "%s: image is %zux%zu (width x height), over the limit of %zu pixels; "
                       "refusing to decode it (possible decompression bomb; --max-pixels raises it)",
                       name, width, height, limit);
    return AE_OK;
}

/* A decoder's result: its image into *out when it ran to the end (r == 0),
 * else freed and the failure reported as the decoder's name (format) says:
 * r > 0 was refused by check_size, which filled err already; r < 0 failed
 * with message, out of memory (nomem) rather than on the file's bytes. */
static ae_status finish_decode(int r, ae_image *img, int nomem, const char *message,
                               const char *format, const char *name, ae_image *out, ae_error *err)
{
    if (r == 0) {
        *out = *img;
        return AE_OK;
    }
    free(img->pixels);
    if (r > 0)
        return AE_ERR_DATA;
    if (nomem)
        return ae_fail(err, AE_ERR_NOMEM, "%s: out of memory decoding the %s: %s", name, format, message);
    return ae_fail(err, AE_ERR_DATA, "%s: bad %s: %s", name, format, message);
}

/* ------------------------------------------------------------------ JPEG */

#define JPEG_MAX_SCANS 1000 /* progressive files with endless scans burn CPU for nothing */

typedef struct {
    struct jpeg_error_mgr mgr; /* first, so libjpeg's pointer is ours */
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    struct jpeg_decompress_struct cinfo;
    struct jpeg_progress_mgr progress;
    const uint8_t *bytes;
    size_t len;
    ae_image img;
    uint8_t *cmyk_row;
    int cmyk_inverted; /* Adobe CMYK: 0 means full ink */
    int nomem;         /* the failure was running out of memory, not the file */
} jpeg_job;

static void jpeg_error_jump(j_common_ptr cinfo)
{
    jpeg_job *job = (jpeg_job *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, job->message);
    job->nomem = cinfo->err->msg_code == JERR_OUT_OF_MEMORY;
    longjmp(job->jump, 1);
}

/* Warnings (level -1) about corrupt or missing data are errors here: a
 * truncated file must be rejected, not silently padded with gray. Warnings
 * about metadata that does not change the pixels are ignored. Trace messages
 * (level >= 0) are never printed. */
static void jpeg_message(j_common_ptr cinfo, int level)
{
    if (level != -1)
        return;
    switch (cinfo->err->msg_code) {
    case JWRN_ADOBE_XFORM:
    case JWRN_JFIF_MAJOR:
    case JWRN_BOGUS_ICC:
    case JWRN_EXTRANEOUS_DATA: /* stray bytes between markers; the entropy data is intact */
        return;
    default:
        jpeg_error_jump(cinfo);
    }
}

static void jpeg_output_nothing(j_common_ptr cinfo)
{
    (void)cinfo;
}

static void jpeg_limit_scans(j_common_ptr cinfo)
{
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (cinfo->is_decompressor && d->input_scan_number > JPEG_MAX_SCANS) {
        jpeg_job *job = (jpeg_job *)cinfo->err;
        snprintf(job->message, sizeof job->message, "more than %d scans", JPEG_MAX_SCANS);
        longjmp(job->jump, 1);
    }
}

/* Runs libjpeg; returns 0, or -1 after a longjmp with job->message set, or 1
 * for a size refused by check (message already in err). */
static int jpeg_run(jpeg_job *job, const char *name, ae_error *err)
{
    struct jpeg_decompress_struct *c = &job->cinfo;
    if (setjmp(job->jump))
        return -1;
    jpeg_create_decompress(c);
    c->progress = &job->progress;
    jpeg_mem_src(c, job->bytes, (unsigned long)job->len);
    jpeg_read_header(c, TRUE);
    if (check_size(c->image_width, c->image_height, name, err) != AE_OK)
        return 1;
    switch (c->jpeg_color_space) {
    case JCS_GRAYSCALE:
        c->out_color_space = JCS_GRAYSCALE;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        c->out_color_space = JCS_CMYK;
        job->cmyk_inverted = c->saw_Adobe_marker;
        break;
    default:
        c->out_color_space = JCS_RGB;
    }
    jpeg_start_decompress(c);
    int out_channels = c->out_color_space == JCS_GRAYSCALE ? 1 : 3;
    int in_channels = c->output_components;
    if ((out_channels == 1 && in_channels != 1) || (out_channels == 3 && in_channels != 3 &&
                                                   in_channels != 4)) {
        snprintf(job->message, sizeof job->message, "unexpected %d colour components",
                 in_channels);
        return -1;
    }
    size_t w = c->output_width, h = c->output_height;
    job->img.height = (int)h;
    job->img.width = (int)w;
    job->img.channels = out_channels;
    job->img.pixels = malloc(w * h * (size_t)out_channels);
    uint8_t *cmyk_row = job->cmyk_row = in_channels == 4 ? malloc(w * 4) : NULL;
    if (!job->img.pixels || (in_channels == 4 && !cmyk_row)) {
        snprintf(job->message, sizeof job->message, "cannot allocate %zux%zu pixels", w, h);
        job->nomem = 1;
        return -1;
    }
    while (c->output_scanline < c->output_height) {
        uint8_t *dst = job->img.pixels + (size_t)c->output_scanline * w * (size_t)out_channels;
        JSAMPROW row = in_channels == 4 ? cmyk_row : dst;
        if (jpeg_read_scanlines(c, &row, 1) != 1) {
            snprintf(job->message, sizeof job->message, "no more scanlines");
            return -1;
        }
        if (in_channels == 4) {
            /* Naive CMYK -> RGB (no colour management): R = (1 - C)(1 - K).
             * Adobe files store inverted values, so there R = C K / 255. */
            for (size_t x = 0; x < w; x++) {
                unsigned k = cmyk_row[4 * x + 3];
                if (!job->cmyk_inverted)
                    k = 255 - k;
                for (int ch = 0; ch < 3; ch++) {
                    unsigned v = cmyk_row[4 * x + (size_t)ch];
                    if (!job->cmyk_inverted)
                        v = 255 - v;
                    dst[3 * x + (size_t)ch] = (uint8_t)((v * k + 127) / 255);
                }
            }
        }
    }
    jpeg_finish_decompress(c);
    return 0;
}

static ae_status decode_jpeg(const uint8_t *bytes, size_t len, const char *name, ae_image *out,
                             ae_error *err)
{
    jpeg_job *job = calloc(1, sizeof *job);
    if (!job)
        return ae_fail(err, AE_ERR_NOMEM, "%s: out of memory for the JPEG decoder", name);
    job->bytes = bytes;
    job->len = len;
    job->cinfo.err = jpeg_std_error(&job->mgr);
    job->mgr.error_exit = jpeg_error_jump;
    job->mgr.emit_message = jpeg_message;
    job->mgr.output_message = jpeg_output_nothing;
    job->progress.progress_monitor = jpeg_limit_scans;
    int r = jpeg_run(job, name, err);
    jpeg_destroy_decompress(&job->cinfo);
    free(job->cmyk_row);
    ae_status st = finish_decode(r, &job->img, job->nomem, job->message, "JPEG", name, out, err);
    free(job);
    return st;
}

/* ------------------------------------------------------------------- PNG */

typedef struct {
    jmp_buf jump;
    char message[256];
    png_structp png;
    png_infop info;
    const uint8_t *bytes;
    size_t len, pos;
    ae_image img;
    png_bytep *rows;
    int nomem; /* an allocation failed: the failure is not the file's */
} png_job;

static void png_error_jump(png_structp png, png_const_charp msg)
{
    png_job *job = png_get_error_ptr(png);
    snprintf(job->message, sizeof job->message, "%s", msg);
    longjmp(job->jump, 1);
}

png_voidp ae_png_alloc(png_structp png, png_alloc_size_t size)
{
    void *p = malloc(size);
    if (!p)
        *(int *)png_get_mem_ptr(png) = 1;
    return p;
}

void ae_png_release(png_structp png, png_voidp p)
{
    (void)png;
    free(p);
}

static void png_warning_ignore(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_read_memory(png_structp png, png_bytep data, size_t n)
{
    png_job *job = png_get_io_ptr(png);
    if (n > job->len - job->pos)
        png_error(png, "file is truncated");
    memcpy(data, job->bytes + job->pos, n);
    job->pos += n;
}

static int png_run(png_job *job, const char *name, ae_error *err)
{
    if (setjmp(job->jump))
        return -1;
    png_structp png = job->png;
    png_infop info = job->info;
    png_set_read_fn(png, job, png_read_memory);
    png_set_user_limits(png, AE_IMAGE_MAX_SIDE, AE_IMAGE_MAX_SIDE);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (check_size(w, h, name, err) != AE_OK)
        return 1;
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16)
        png_set_scale_16(png); /* rounds: v * 255 / 65535 to nearest */
    png_set_strip_alpha(png);  /* alpha and tRNS are dropped, not composited */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info);
    if (png_get_bit_depth(png, info) != 8 || (channels != 1 && channels != 3)) {
        snprintf(job->message, sizeof job->message, "unsupported layout after conversion "
                 "(%d channels of %d bits)", channels, png_get_bit_depth(png, info));
        return -1;
    }
    size_t row_bytes = (size_t)w * (size_t)channels;
    if (png_get_rowbytes(png, info) != row_bytes) {
        snprintf(job->message, sizeof job->message, "unexpected row size");
        return -1;
    }
    job->img.height = (int)h;
    job->img.width = (int)w;
    job->img.channels = channels;
    job->img.pixels = malloc(row_bytes * h);
    job->rows = malloc(sizeof *job->rows * h);
    if (!job->img.pixels || !job->rows) {
        snprintf(job->message, sizeof job->message, "cannot allocate %ux%u pixels", (unsigned)w,
                 (unsigned)h);
        job->nomem = 1;
        return -1;
    }
    for (size_t y = 0; y < h; y++)
        job->rows[y] = job->img.pixels + y * row_bytes;
    png_read_image(png, job->rows);
    png_read_end(png, NULL);
    return 0;
}

static ae_status decode_png(const uint8_t *bytes, size_t len, const char *name, ae_image *out,
                            ae_error *err)
{
    png_job *job = calloc(1, sizeof *job);
    if (!job)
        return ae_fail(err, AE_ERR_NOMEM, "%s: out of memory for the PNG decoder", name);
    /* IHDR must come first: refuse huge sizes before libpng reads any further. */
    if (len >= 24 && memcmp(bytes + 12, "IHDR", 4) == 0) {
        size_t w = (size_t)bytes[16] << 24 | (size_t)bytes[17] << 16 | (size_t)bytes[18] << 8 |
                   bytes[19];
        size_t h = (size_t)bytes[20] << 24 | (size_t)bytes[21] << 16 | (size_t)bytes[22] << 8 |
                   bytes[23];
        if (check_size(w, h, name, err) != AE_OK) {
            free(job);
            return AE_ERR_DATA;
        }
    }
    job->bytes = bytes;
    job->len = len;
    job->png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, job, png_error_jump, png_warning_ignore,
                                        &job->nomem, ae_png_alloc, ae_png_release);
    job->info = job->png ? png_create_info_struct(job->png) : NULL;
    int r = -1;
    if (job->info)
        r = png_run(job, name, err);
    else { /* creating them only allocates: nothing else can fail */
        snprintf(job->message, sizeof job->message, "cannot create the decoder");
        job->nomem = 1;
    }
    png_destroy_read_struct(job->png ? &job->png : NULL, job->info ? &job->info : NULL, NULL);
    free(job->rows);
    ae_status st = finish_decode(r, &job->img, job->nomem, job->message, "PNG", name, out, err);
    free(job);
    return st;
}

/* ---------------------------------------------------------------- public */

ae_status ae_image_decode(const uint8_t *bytes, size_t len, const char *name, ae_image *out,
                          ae_error *err)
{
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memset(out, 0, sizeof *out);
    if (!name)
        name = "image";
    if (len == 0)
        return ae_fail(err, AE_ERR_DATA, "%s: empty file, not an image", name);
    if (len >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff)
        return decode_jpeg(bytes, len, name, out, err);
    if (len >= 8 && memcmp(bytes, png_magic, 8) == 0)
        return decode_png(bytes, len, name, out, err);
    return ae_fail(err, AE_ERR_DATA, "%s: not a JPEG or PNG image (unknown first bytes)", name);
}

static ae_status decode_bytes(const uint8_t *bytes, size_t len, const char *name, void *out, ae_error *err)
{
    return ae_image_decode(bytes, len, name, out, err);
}

ae_status ae_image_load(const char *path, ae_image *out, ae_error *err)
{
    memset(out, 0, sizeof *out);
    return ae_parse_file(path, decode_bytes, out, err);
}
