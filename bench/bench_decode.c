/* Decode + prepare throughput: writes N 256x256 RGB JPEGs (quality 90) into a
 * temporary folder with libjpeg, then times ae_image_load + ae_image_prepare
 * to 256x256x3 (a copy) and to 128x128x3 (area shrink), single-threaded.
 * Usage: bench_decode [N]   (default 200) */
#include "aedet/image.h"

#include <stdio.h> /* before jpeglib.h */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jpeglib.h>

enum { SIDE = 256 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int write_jpeg(const char *path, const uint8_t *rgb)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr); /* a bench may exit on a libjpeg error */
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = SIDE;
    c.image_height = SIDE;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)c.next_scanline * SIDE * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return fclose(f);
}

static int run(char **paths, int n, int out_side, uint8_t *dst, double *seconds)
{
    double t0 = now();
    for (int i = 0; i < n; i++) {
        ae_image img;
        ae_error err;
        if (ae_image_load(paths[i], &img, &err) != AE_OK ||
            ae_image_prepare(&img, out_side, out_side, 3, dst, &err) != AE_OK) {
            fprintf(stderr, "bench_decode: %s\n", err.message);
            return -1;
        }
        ae_image_free(&img);
    }
    *seconds = now() - t0;
    return 0;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200;
    if (n <= 0)
        n = 200;
    const char *base = getenv("TMPDIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/aedet-bench-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    uint8_t *rgb = malloc(SIDE * SIDE * 3), *dst = malloc(SIDE * SIDE * 3);
    char **paths = calloc((size_t)n, sizeof *paths);
    int status = 1;
    if (!rgb || !dst || !paths)
        goto done;
    /* Smooth gradients plus a little texture, different per image. */
    for (int i = 0; i < n; i++) {
        for (int y = 0; y < SIDE; y++)
            for (int x = 0; x < SIDE; x++) {
                uint8_t *p = rgb + 3 * (y * SIDE + x);
                p[0] = (uint8_t)(x + i);
                p[1] = (uint8_t)(y + 3 * i);
                p[2] = (uint8_t)(((x * y) >> 6) + ((x ^ y) & 15));
            }
        paths[i] = malloc(strlen(dir) + 32);
        if (!paths[i])
            goto done;
        sprintf(paths[i], "%s/img%05d.jpg", dir, i);
        if (write_jpeg(paths[i], rgb) != 0) {
            perror(paths[i]);
            goto done;
        }
    }
    double s256, s128, warm;
    if (run(paths, n < 10 ? n : 10, SIDE, dst, &warm) != 0 || run(paths, n, SIDE, dst, &s256) ||
        run(paths, n, 128, dst, &s128))
        goto done;
    printf("decode+prepare %dx%d RGB JPEG -> %dx%dx3: %d images, %.1f images/s, %.3f ms/image\n",
           SIDE, SIDE, SIDE, SIDE, n, n / s256, 1e3 * s256 / n);
    printf("decode+prepare %dx%d RGB JPEG -> 128x128x3: %d images, %.1f images/s, %.3f ms/image\n",
           SIDE, SIDE, n, n / s128, 1e3 * s128 / n);
    status = 0;
done:
    for (int i = 0; paths && i < n; i++) {
        if (paths[i])
            unlink(paths[i]);
        free(paths[i]);
    }
    rmdir(dir);
    free(paths);
    free(rgb);
    free(dst);
    return status;
}
