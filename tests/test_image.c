/* Image decoding (PNG of every colour type and depth, JPEG), errors on bad
 * files, channel conversion and resizing against hand-computed values, and
 * PNG writing. Test images are written with libpng/libjpeg directly. */
#include "support.h"

#include "aedet/file.h"
#include "aedet/image.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* Writes a copy of a test file as a fuzzing seed when AEDET_FUZZ_CORPUS is set. */
static void maybe_seed(const char *path, const char *seed_name)
{
    const char *dir = getenv("AEDET_FUZZ_CORPUS");
    if (!dir || !*dir)
        return;
    char folder[1024], dst[1200];
    snprintf(folder, sizeof folder, "%s/fuzz_image", dir);
    mkdir(dir, 0755);
    mkdir(folder, 0755);
    uint8_t *bytes;
    size_t len;
    ae_error err;
    if (ae_read_file(path, &bytes, &len, &err) != AE_OK)
        fail_msg("%s", err.message);
    snprintf(dst, sizeof dst, "%s/%s", folder, seed_name);
    test_write_file(dst, bytes, len);
    free(bytes);
}

static ae_image load_ok(const char *path)
{
    ae_image img;
    ae_error err;
    ae_error_clear(&err);
    ae_status st = ae_image_load(path, &img, &err);
    if (st != AE_OK)
        fail_msg("loading %s: %s", path, err.message);
    return img;
}

static void expect_data_error(const char *path, const char *why)
{
    ae_image img;
    ae_error err;
    ae_error_clear(&err);
    ae_status st = ae_image_load(path, &img, &err);
    if (st != AE_ERR_DATA)
        fail_msg("%s (%s): expected a data error, got %s (%s)", path, why, ae_status_name(st),
                 err.message);
    assert_null(img.pixels);
    if (!strstr(err.message, path))
        fail_msg("%s: message does not name the file: %s", why, err.message);
}

static uint8_t rounded16(unsigned v)
{
    return (uint8_t)((v * 255u + 32767u) / 65535u);
}

/* ------------------------------------------------------------------ PNG */

static void test_png_gray_8_and_16(void **state)
{
    (void)state;
    enum { H = 3, W = 5 };
    uint8_t g8[H * W];
    for (int i = 0; i < H * W; i++)
        g8[i] = (uint8_t)(i * 17);
    const char *p8 = test_path("gray8.png");
    test_write_png(p8, g8, H, W, PNG_COLOR_TYPE_GRAY, 8);
    ae_image img = load_ok(p8);
    assert_int_equal(img.height, H);
    assert_int_equal(img.width, W);
    assert_int_equal(img.channels, 1);
    assert_memory_equal(img.pixels, g8, sizeof g8);
    ae_image_free(&img);
    maybe_seed(p8, "gray8.png");

    /* 16 bit: values chosen around the rounding boundaries of v / 257. */
    static const unsigned v16[H * W] = {0, 1, 128, 129, 256, 257, 385, 386, 32767, 32768,
                                        65278, 65407, 65408, 65534, 65535};
    uint8_t raw[H * W * 2];
    for (int i = 0; i < H * W; i++) {
        raw[2 * i] = (uint8_t)(v16[i] >> 8);
        raw[2 * i + 1] = (uint8_t)v16[i];
    }
    const char *p16 = test_path("gray16.png");
    test_write_png(p16, raw, H, W, PNG_COLOR_TYPE_GRAY, 16);
    img = load_ok(p16);
    assert_int_equal(img.channels, 1);
    for (int i = 0; i < H * W; i++)
        if (img.pixels[i] != rounded16(v16[i]))
            fail_msg("16-bit %u became %u, expected %u", v16[i], img.pixels[i],
                     rounded16(v16[i]));
    ae_image_free(&img);
    maybe_seed(p16, "gray16.png");
}

static void test_png_gray_low_depths(void **state)
{
    (void)state;
    for (int depth = 1; depth <= 4; depth *= 2) {
        enum { H = 2, W = 9 };
        int levels = 1 << depth;
        uint8_t v[H * W];
        for (int i = 0; i < H * W; i++)
            v[i] = (uint8_t)(i % levels);
        char name[32];
        snprintf(name, sizeof name, "gray%d.png", depth);
        const char *path = test_path(name);
        test_write_png(path, v, H, W, PNG_COLOR_TYPE_GRAY, depth);
        ae_image img = load_ok(path);
        assert_int_equal(img.channels, 1);
        for (int i = 0; i < H * W; i++)
            assert_int_equal(img.pixels[i], v[i] * 255 / (levels - 1));
        ae_image_free(&img);
    }
}

static void test_png_gray_alpha_drops_alpha(void **state)
{
    (void)state;
    enum { H = 2, W = 3 };
    uint8_t ga[H * W * 2], ga16[H * W * 4];
    for (int i = 0; i < H * W; i++) {
        ga[2 * i] = (uint8_t)(40 * i + 3);
        ga[2 * i + 1] = (uint8_t)(i * 50); /* alpha, even 0, must not change gray */
        unsigned g = 10000u * (unsigned)i + 77u;
        ga16[4 * i] = (uint8_t)(g >> 8);
        ga16[4 * i + 1] = (uint8_t)g;
        ga16[4 * i + 2] = 0;
        ga16[4 * i + 3] = (uint8_t)i;
    }
    const char *path = test_path("ga8.png");
    test_write_png(path, ga, H, W, PNG_COLOR_TYPE_GRAY_ALPHA, 8);
    ae_image img = load_ok(path);
    assert_int_equal(img.channels, 1);
    for (int i = 0; i < H * W; i++)
        assert_int_equal(img.pixels[i], ga[2 * i]);
    ae_image_free(&img);
    maybe_seed(path, "ga8.png");

    path = test_path("ga16.png");
    test_write_png(path, ga16, H, W, PNG_COLOR_TYPE_GRAY_ALPHA, 16);
    img = load_ok(path);
    assert_int_equal(img.channels, 1);
    for (int i = 0; i < H * W; i++)
        assert_int_equal(img.pixels[i], rounded16(10000u * (unsigned)i + 77u));
    ae_image_free(&img);
}

static void test_png_rgb_and_rgba(void **state)
{
    (void)state;
    enum { H = 4, W = 3, N = H * W };
    uint8_t rgb[N * 3], rgba[N * 4], rgb16[N * 6], rgba16[N * 8];
    for (int i = 0; i < N; i++) {
        for (int c = 0; c < 3; c++) {
            uint8_t v = (uint8_t)(i * 20 + c * 70 + 1);
            unsigned w = (unsigned)(i * 5000 + c * 1111 + 129);
            rgb[3 * i + c] = v;
            rgba[4 * i + c] = v;
            rgb16[6 * i + 2 * c] = (uint8_t)(w >> 8);
            rgb16[6 * i + 2 * c + 1] = (uint8_t)w;
            rgba16[8 * i + 2 * c] = (uint8_t)(w >> 8);
            rgba16[8 * i + 2 * c + 1] = (uint8_t)w;
        }
        rgba[4 * i + 3] = (uint8_t)(i * 21);
        rgba16[8 * i + 6] = (uint8_t)i;
        rgba16[8 * i + 7] = 0;
    }
    const char *path = test_path("rgb8.png");
    test_write_png(path, rgb, H, W, PNG_COLOR_TYPE_RGB, 8);
    ae_image img = load_ok(path);
    assert_int_equal(img.channels, 3);
    assert_int_equal(img.height, H);
    assert_int_equal(img.width, W);
    assert_memory_equal(img.pixels, rgb, sizeof rgb);
    ae_image_free(&img);
    maybe_seed(path, "rgb8.png");

    path = test_path("rgba8.png");
    test_write_png(path, rgba, H, W, PNG_COLOR_TYPE_RGB_ALPHA, 8);
    img = load_ok(path);
    assert_int_equal(img.channels, 3);
    assert_memory_equal(img.pixels, rgb, sizeof rgb);
    ae_image_free(&img);
    maybe_seed(path, "rgba8.png");

    for (int alpha = 0; alpha < 2; alpha++) {
        path = test_path(alpha ? "rgba16.png" : "rgb16.png");
        test_write_png(path, alpha ? rgba16 : rgb16, H, W,
                       alpha ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB, 16);
        img = load_ok(path);
        assert_int_equal(img.channels, 3);
        for (int i = 0; i < N; i++)
            for (int c = 0; c < 3; c++)
                assert_int_equal(img.pixels[3 * i + c],
                                 rounded16((unsigned)(i * 5000 + c * 1111 + 129)));
        ae_image_free(&img);
    }
}

static void test_png_palette_with_and_without_trns(void **state)
{
    (void)state;
    enum { H = 3, W = 4, N = H * W };
    uint8_t idx[N];
    for (int i = 0; i < N; i++)
        idx[i] = (uint8_t)(i * 23);
    const uint8_t trans[3] = {0, 128, 255};
    for (int with_trns = 0; with_trns < 2; with_trns++) {
        const char *path = test_path(with_trns ? "pal_trns.png" : "pal.png");
        if (with_trns)
            test_write_png_trns(path, idx, H, W, 8, trans, 3);
        else
            test_write_png(path, idx, H, W, PNG_COLOR_TYPE_PALETTE, 8);
        ae_image img = load_ok(path);
        assert_int_equal(img.channels, 3);
        for (int i = 0; i < N; i++) {
            uint8_t rgb[3];
            test_png_palette_entry(idx[i], rgb);
            assert_memory_equal(img.pixels + 3 * i, rgb, 3);
        }
        ae_image_free(&img);
        maybe_seed(path, with_trns ? "pal_trns.png" : "pal.png");
    }
    /* A 2-bit palette image (4 entries). */
    uint8_t small[N];
    for (int i = 0; i < N; i++)
        small[i] = (uint8_t)(i % 4);
    const char *path = test_path("pal2.png");
    test_write_png(path, small, H, W, PNG_COLOR_TYPE_PALETTE, 2);
    ae_image img = load_ok(path);
    for (int i = 0; i < N; i++) {
        uint8_t rgb[3];
        test_png_palette_entry(small[i], rgb);
        assert_memory_equal(img.pixels + 3 * i, rgb, 3);
    }
    ae_image_free(&img);
}

/* ----------------------------------------------------------------- JPEG */

static int max_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    int worst = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > worst)
            worst = d;
    }
    return worst;
}

static void test_jpeg_gray_and_rgb_quality_100(void **state)
{
    (void)state;
    enum { H = 24, W = 32 };
    uint8_t gray[H * W], rgb[H * W * 3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            gray[y * W + x] = (uint8_t)(x * 6 + y * 2);
            rgb[3 * (y * W + x)] = (uint8_t)(x * 7);
            rgb[3 * (y * W + x) + 1] = (uint8_t)(y * 9);
            rgb[3 * (y * W + x) + 2] = (uint8_t)(200 - x * 3 - y);
        }
    const char *path = test_path("gray.jpg");
    test_write_jpeg(path, gray, H, W, 1, 100);
    ae_image img = load_ok(path);
    assert_int_equal(img.channels, 1);
    assert_int_equal(img.height, H);
    assert_int_equal(img.width, W);
    int d = max_diff(img.pixels, gray, sizeof gray);
    if (d > 2)
        fail_msg("gray JPEG at quality 100 differs by %d", d);
    ae_image_free(&img);
    maybe_seed(path, "gray.jpg");

    path = test_path("rgb.jpg");
    test_write_jpeg(path, rgb, H, W, 3, 100);
    img = load_ok(path);
    assert_int_equal(img.channels, 3);
    d = max_diff(img.pixels, rgb, sizeof rgb);
    if (d > 4)
        fail_msg("RGB JPEG at quality 100 differs by %d", d);
    ae_image_free(&img);
    maybe_seed(path, "rgb.jpg");

    /* The name does not matter, the bytes do: a JPEG called .png still loads. */
    uint8_t *bytes;
    size_t len;
    ae_error err;
    assert_int_equal(ae_read_file(path, &bytes, &len, &err), AE_OK);
    const char *renamed = test_path("really_a_jpeg.png");
    test_write_file(renamed, bytes, len);
    free(bytes);
    img = load_ok(renamed);
    assert_int_equal(img.channels, 3);
    ae_image_free(&img);
}

static void test_jpeg_cmyk_is_converted(void **state)
{
    (void)state;
    /* Adobe CMYK files store inverted values: R = C K / 255 of the stored ones. */
    enum { H = 16, W = 16 };
    static const uint8_t blocks[4][4] = {
        {255, 255, 255, 255}, {255, 0, 0, 255}, {128, 255, 64, 200}, {10, 20, 30, 0}};
    uint8_t cmyk[H * W * 4];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            memcpy(cmyk + 4 * (y * W + x), blocks[(y / 8) * 2 + x / 8], 4);
    const char *path = test_path("cmyk.jpg");
    test_write_jpeg(path, cmyk, H, W, 4, 100);
    ae_image img = load_ok(path);
    assert_int_equal(img.channels, 3);
    for (int b = 0; b < 4; b++) {
        int y = (b / 2) * 8 + 4, x = (b % 2) * 8 + 4;
        for (int c = 0; c < 3; c++) {
            int want = (blocks[b][c] * blocks[b][3] + 127) / 255;
            int got = img.pixels[3 * (y * W + x) + c];
            if (abs(got - want) > 3)
                fail_msg("CMYK block %d channel %d: got %d, expected %d", b, c, got, want);
        }
    }
    ae_image_free(&img);
    maybe_seed(path, "cmyk.jpg");
}

/* --------------------------------------------------------------- errors */

static uint8_t *read_all(const char *path, size_t *len)
{
    uint8_t *bytes;
    ae_error err;
    if (ae_read_file(path, &bytes, len, &err) != AE_OK)
        fail_msg("%s", err.message);
    return bytes;
}

static void test_bad_files_are_data_errors_naming_the_file(void **state)
{
    (void)state;
    enum { H = 16, W = 16 };
    uint8_t rgb[H * W * 3];
    for (int i = 0; i < H * W * 3; i++)
        rgb[i] = (uint8_t)(i * 31);
    const char *png = test_path("good.png"), *jpg = test_path("good.jpg");
    test_write_png(png, rgb, H, W, PNG_COLOR_TYPE_RGB, 8);
    test_write_jpeg(jpg, rgb, H, W, 3, 90);
    size_t png_len, jpg_len;
    uint8_t *png_bytes = read_all(png, &png_len), *jpg_bytes = read_all(jpg, &jpg_len);

    const char *path = test_path("empty.png");
    test_write_file(path, "", 0);
    expect_data_error(path, "empty file");

    path = test_path("text.jpg");
    test_write_file(path, "hello, world\n", 13);
    expect_data_error(path, "text file");

    path = test_path("trunc.png");
    test_write_file(path, png_bytes, png_len / 2);
    expect_data_error(path, "truncated PNG");
    path = test_path("header_only.png");
    test_write_file(path, png_bytes, 8);
    expect_data_error(path, "PNG signature only");

    /* Truncated JPEG: must be refused, never gray-filled. */
    path = test_path("trunc.jpg");
    test_write_file(path, jpg_bytes, jpg_len / 2);
    expect_data_error(path, "truncated JPEG");
    path = test_path("no_eoi.jpg");
    test_write_file(path, jpg_bytes, jpg_len - 2);
    expect_data_error(path, "JPEG without its end marker");
    path = test_path("jpeg_magic_only.jpg");
    test_write_file(path, jpg_bytes, 3);
    expect_data_error(path, "JPEG magic only");

    /* A flipped byte near the end of the PNG (its image data or checksums). */
    uint8_t *bad = malloc(png_len);
    assert_non_null(bad);
    memcpy(bad, png_bytes, png_len);
    bad[png_len - 20] ^= 0x55;
    path = test_path("crc.png");
    test_write_file(path, bad, png_len);
    expect_data_error(path, "PNG with a bad CRC");
    free(bad);

    /* A missing file is an I/O error, also naming the file. */
    ae_image img;
    ae_error err;
    path = test_path("missing.png");
    assert_int_equal(ae_image_load(path, &img, &err), AE_ERR_IO);
    assert_non_null(strstr(err.message, path));
    free(png_bytes);
    free(jpg_bytes);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void test_decompression_bombs_are_refused(void **state)
{
    (void)state;
    /* A PNG header claiming 20000 x 20000 pixels (4e8, over the 2^28 limit). */
    uint8_t png[8 + 25] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    put_be32(png + 8, 13);
    memcpy(png + 12, "IHDR", 4);
    put_be32(png + 16, 20000);
    put_be32(png + 20, 20000);
    png[24] = 8; /* depth */
    png[25] = 0; /* gray */
    put_be32(png + 29, (uint32_t)crc32(0, png + 12, 17));
    const char *path = test_path("bomb.png");
    test_write_file(path, png, sizeof png);
    expect_data_error(path, "PNG bomb");
    ae_image img;
    ae_error err;
    assert_int_equal(ae_image_load(path, &img, &err), AE_ERR_DATA);
    if (!strstr(err.message, "limit"))
        fail_msg("%s", err.message);

    /* A JPEG whose frame header says 65000 x 65000. */
    uint8_t small[8 * 8] = {0};
    const char *jpg = test_path("small.jpg");
    test_write_jpeg(jpg, small, 8, 8, 1, 90);
    size_t len;
    uint8_t *bytes = read_all(jpg, &len);
    size_t sof = 0;
    for (size_t i = 2; i + 9 < len; i++)
        if (bytes[i] == 0xff && bytes[i + 1] == 0xc0) {
            sof = i;
            break;
        }
    assert_true(sof > 0);
    bytes[sof + 5] = bytes[sof + 7] = 0xfd; /* height and width: 0xfde8 = 65000 */
    bytes[sof + 6] = bytes[sof + 8] = 0xe8;
    path = test_path("bomb.jpg");
    test_write_file(path, bytes, len);
    free(bytes);
    assert_int_equal(ae_image_load(path, &img, &err), AE_ERR_DATA);
    assert_non_null(strstr(err.message, path));
    if (!strstr(err.message, "limit"))
        fail_msg("%s", err.message);
}

/* -------------------------------------------------------------- prepare */

static void test_prepare_area_average_when_shrinking(void **state)
{
    (void)state;
    /* 4x4 -> 2x2: each output is the mean of a 2x2 block, rounded half up. */
    uint8_t px[16] = {10, 20, 30, 40,
                      50, 60, 70, 80,
                      0, 1, 255, 255,
                      2, 2, 254, 255};
    ae_image src = {4, 4, 1, px};
    uint8_t out[4];
    ae_error err;
    assert_int_equal(ae_image_prepare(&src, 2, 2, 1, out, &err), AE_OK);
    /* (10+20+50+60)/4 = 35; (30+40+70+80)/4 = 55; (0+1+2+2)/4 = 1.25 -> 1;
     * (255+255+254+255)/4 = 254.75 -> 255. */
    const uint8_t want[4] = {35, 55, 1, 255};
    assert_memory_equal(out, want, 4);

    /* 3 -> 2 along the width: output 0 covers [0, 1.5): 2/3 of p0 + 1/3 of p1;
     * output 1 covers [1.5, 3): 1/3 of p1 + 2/3 of p2. Height 1 -> 1. */
    uint8_t row[3] = {0, 30, 90};
    ae_image r = {1, 3, 1, row};
    uint8_t o2[2];
    assert_int_equal(ae_image_prepare(&r, 1, 2, 1, o2, &err), AE_OK);
    assert_int_equal(o2[0], 10); /* 0 * 2/3 + 30 / 3 */
    assert_int_equal(o2[1], 70); /* 30 / 3 + 90 * 2/3 */
}

static void test_prepare_bilinear_when_growing(void **state)
{
    (void)state;
    /* 2x2 -> 4x4 with pixel centres: along each axis the outputs sample the
     * source at -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1), i.e.
     * [a, 0.75a + 0.25b, 0.25a + 0.75b, b]. With a=0, b=80 along x (top row)
     * and 160, 240 on the bottom row: */
    uint8_t px[4] = {0, 80, 160, 240};
    ae_image src = {2, 2, 1, px};
    uint8_t out[16];
    ae_error err;
    assert_int_equal(ae_image_prepare(&src, 4, 4, 1, out, &err), AE_OK);
    /* Rows after the x pass: top [0, 20, 60, 80], bottom [160, 180, 220, 240].
     * Then y: row 1 = 0.75 top + 0.25 bottom, row 2 = 0.25 top + 0.75 bottom. */
    const uint8_t want[16] = {0, 20, 60, 80,
                              40, 60, 100, 120,
                              120, 140, 180, 200,
                              160, 180, 220, 240};
    assert_memory_equal(out, want, 16);

    /* One pixel grows to a constant image; 1 -> 3 per axis. */
    uint8_t one[3] = {7, 8, 9};
    ae_image o = {1, 1, 3, one};
    uint8_t big[3 * 3 * 3];
    assert_int_equal(ae_image_prepare(&o, 3, 3, 3, big, &err), AE_OK);
    for (int i = 0; i < 9; i++)
        assert_memory_equal(big + 3 * i, one, 3);

    /* Mixed: width grows 2 -> 4 (bilinear), height shrinks 2 -> 1 (average). */
    uint8_t m[4] = {0, 100, 40, 200};
    ae_image mixed = {2, 2, 1, m};
    uint8_t mo[4];
    assert_int_equal(ae_image_prepare(&mixed, 1, 4, 1, mo, &err), AE_OK);
    /* x: top [0, 25, 75, 100], bottom [40, 80, 160, 200]; y: mean of the two. */
    const uint8_t mwant[4] = {20, 53, 118, 150}; /* 52.5 -> 53, 117.5 -> 118 */
    assert_memory_equal(mo, mwant, 4);
}

static void test_prepare_channel_conversion(void **state)
{
    (void)state;
    /* RGB -> gray: (299 R + 587 G + 114 B + 500) / 1000. */
    uint8_t rgb[3 * 3] = {10, 200, 30, 255, 255, 255, 255, 0, 0};
    ae_image src = {1, 3, 3, rgb};
    uint8_t gray[3];
    ae_error err;
    assert_int_equal(ae_image_prepare(&src, 1, 3, 1, gray, &err), AE_OK);
    assert_int_equal(gray[0], 124); /* (2990 + 117400 + 3420 + 500) / 1000 = 124.31 */
    assert_int_equal(gray[1], 255);
    assert_int_equal(gray[2], 76); /* (76245 + 500) / 1000 = 76.745 */

    /* Gray -> RGB copies, also after resizing: 1x2 -> 1x1 averages to 15. */
    uint8_t g[2] = {10, 20};
    ae_image gs = {1, 2, 1, g};
    uint8_t out[3];
    assert_int_equal(ae_image_prepare(&gs, 1, 1, 3, out, &err), AE_OK);
    const uint8_t want[3] = {15, 15, 15};
    assert_memory_equal(out, want, 3);

    /* Same size and channels is a copy. */
    uint8_t copy[9];
    assert_int_equal(ae_image_prepare(&src, 1, 3, 3, copy, &err), AE_OK);
    assert_memory_equal(copy, rgb, 9);

    assert_int_equal(ae_image_prepare(&src, 1, 3, 2, copy, &err), AE_ERR_USAGE);
    assert_int_equal(ae_image_prepare(&src, 0, 3, 3, copy, &err), AE_ERR_USAGE);
}

static void test_prepare_large_shrink_keeps_the_mean(void **state)
{
    (void)state;
    /* A 97x61 RGB image shrunk to 10x7 by area: each output lies within the
     * range of its source span, and the overall mean is kept to within 1. */
    enum { SH = 61, SW = 97, DH = 7, DW = 10 };
    static uint8_t px[SH * SW * 3];
    double sum = 0;
    for (int i = 0; i < SH * SW * 3; i++) {
        px[i] = (uint8_t)((i * 37 + i / 7) & 255);
        sum += px[i];
    }
    ae_image src = {SH, SW, 3, px};
    uint8_t out[DH * DW * 3];
    ae_error err;
    assert_int_equal(ae_image_prepare(&src, DH, DW, 3, out, &err), AE_OK);
    double osum = 0;
    for (int i = 0; i < DH * DW * 3; i++)
        osum += out[i];
    double m_in = sum / (SH * SW * 3), m_out = osum / (DH * DW * 3);
    if (m_out < m_in - 1 || m_out > m_in + 1)
        fail_msg("mean %g became %g", m_in, m_out);
}

/* ---------------------------------------------------------- PNG writing */

static void test_png_write_round_trip(void **state)
{
    (void)state;
    enum { H = 5, W = 7 };
    uint8_t rgb[H * W * 3], gray[H * W];
    for (int i = 0; i < H * W * 3; i++)
        rgb[i] = (uint8_t)(i * 13 + 5);
    for (int i = 0; i < H * W; i++)
        gray[i] = (uint8_t)(255 - i * 7);
    ae_error err;
    uint8_t *png;
    size_t len;
    assert_int_equal(ae_png_encode(rgb, H, W, 3, &png, &len, &err), AE_OK);
    /* Read back with libpng's own simplified API, not with our decoder. */
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_memory(&pi, png, len));
    assert_int_equal(pi.width, W);
    assert_int_equal(pi.height, H);
    pi.format = PNG_FORMAT_RGB;
    uint8_t back[H * W * 3];
    assert_true(png_image_finish_read(&pi, NULL, back, 0, NULL));
    assert_memory_equal(back, rgb, sizeof rgb);
    free(png);

    const char *path = test_path("written_gray.png");
    assert_int_equal(ae_png_write(path, gray, H, W, 1, &err), AE_OK);
    ae_image img = load_ok(path);
    assert_int_equal(img.channels, 1);
    assert_memory_equal(img.pixels, gray, sizeof gray);
    ae_image_free(&img);

    assert_int_equal(ae_png_encode(rgb, 0, W, 3, &png, &len, &err), AE_ERR_USAGE);
    assert_null(png);
    path = test_path("no_such_folder/x.png");
    assert_int_equal(ae_png_write(path, gray, H, W, 1, &err), AE_ERR_IO);
    assert_non_null(strstr(err.message, path));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_gray_8_and_16),
        cmocka_unit_test(test_png_gray_low_depths),
        cmocka_unit_test(test_png_gray_alpha_drops_alpha),
        cmocka_unit_test(test_png_rgb_and_rgba),
        cmocka_unit_test(test_png_palette_with_and_without_trns),
        cmocka_unit_test(test_jpeg_gray_and_rgb_quality_100),
        cmocka_unit_test(test_jpeg_cmyk_is_converted),
        cmocka_unit_test(test_bad_files_are_data_errors_naming_the_file),
        cmocka_unit_test(test_decompression_bombs_are_refused),
        cmocka_unit_test(test_prepare_area_average_when_shrinking),
        cmocka_unit_test(test_prepare_bilinear_when_growing),
        cmocka_unit_test(test_prepare_channel_conversion),
        cmocka_unit_test(test_prepare_large_shrink_keeps_the_mean),
        cmocka_unit_test(test_png_write_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
