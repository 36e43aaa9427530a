#include "support.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[PATH_MAX];

static void remove_tmpdir(void)
{
    char cmd[PATH_MAX + 16];
    if (tmpdir[0] && !getenv("AEDET_KEEP_TMP")) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
}

const char *test_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/aedet-test-XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            abort();
        }
        atexit(remove_tmpdir);
    }
    return tmpdir;
}

const char *test_path(const char *name)
{
    static char slots[8][PATH_MAX];
    static int next;
    char *p = slots[next++ % 8];
    snprintf(p, PATH_MAX, "%s/%s", test_tmpdir(), name);
    return p;
}

void test_write_file(const char *path, const void *bytes, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

const char *test_fixture(const char *name)
{
    static char slots[4][PATH_MAX];
    static int next;
    char *p = slots[next++ % 4];
    const char *dir = getenv("AEDET_FIXTURES");
    snprintf(p, PATH_MAX, "%s/%s", dir ? dir : "tests/fixtures", name);
    return p;
}

double test_max_rel_error(const float *a, const float *b, size_t n, double floor)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / fmax(fabs((double)b[i]), floor);
        if (!(d <= worst)) /* NaN counts as the worst */
            worst = isnan(d) ? INFINITY : d;
    }
    return worst;
}

char *test_env_save(const char *name)
{
    const char *v = getenv(name);
    char *copy = v ? strdup(v) : NULL;
    if (v && !copy)
        abort();
    return copy;
}

void test_env_restore(const char *name, char *saved)
{
    if (saved)
        setenv(name, saved, 1);
    else
        unsetenv(name);
    free(saved);
}

/* ---- Test images written directly with libpng / libjpeg ---- */
#include <png.h>
#include <jpeglib.h>

void test_png_palette_entry(int i, uint8_t rgb[3])
{
    rgb[0] = (uint8_t)i;
    rgb[1] = (uint8_t)(255 - i);
    rgb[2] = (uint8_t)((3 * i) & 255);
}

static void write_png_any(const char *path, const uint8_t *pixels, int height, int width,
                          int color_type, int bit_depth, const uint8_t *trans, int num_trans)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        abort();
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "test_write_png: libpng failed on %s\n", path);
        abort();
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, bit_depth, color_type,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    int samples = 1;
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY_ALPHA: samples = 2; break;
    case PNG_COLOR_TYPE_RGB: samples = 3; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: samples = 4; break;
    default: samples = 1;
    }
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_color palette[256];
        int n = 1 << bit_depth;
        for (int i = 0; i < n; i++) {
            uint8_t rgb[3];
            test_png_palette_entry(i, rgb);
            palette[i].red = rgb[0];
            palette[i].green = rgb[1];
            palette[i].blue = rgb[2];
        }
        png_set_PLTE(png, info, palette, n);
        if (trans && num_trans > 0)
            png_set_tRNS(png, info, trans, num_trans, NULL);
    }
    png_write_info(png, info);
    if (bit_depth < 8)
        png_set_packing(png);
    size_t row_bytes = (size_t)width * (size_t)samples * (bit_depth == 16 ? 2 : 1);
    for (int y = 0; y < height; y++)
        png_write_row(png, pixels + (size_t)y * row_bytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (fclose(f) != 0) {
        perror(path);
        abort();
    }
}

void test_write_png(const char *path, const uint8_t *pixels, int height, int width,
                    int png_color_type, int bit_depth)
{
    write_png_any(path, pixels, height, width, png_color_type, bit_depth, NULL, 0);
}

void test_write_png_trns(const char *path, const uint8_t *indices, int height, int width,
                         int bit_depth, const uint8_t *trans, int num_trans)
{
    write_png_any(path, indices, height, width, PNG_COLOR_TYPE_PALETTE, bit_depth, trans,
                  num_trans);
}

void test_write_blob_pngs(const char *root, int count, int side)
{
    mkdir(root, 0755);
    uint8_t *px = malloc((size_t)side * (size_t)side);
    if (!px)
        abort();
    for (int i = 0; i < count; i++) {
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++) {
                double dx = x - (3 + i % 9), dy = y - (4 + (i * 5) % 8);
                px[y * side + x] = (uint8_t)(40 + 200 * exp(-(dx * dx + dy * dy) / 12.0) +
                                             (x * 3 + y + i) % 7);
            }
        char path[1024];
        snprintf(path, sizeof path, "%s/img%03d.png", root, i);
        test_write_png(path, px, side, side, PNG_COLOR_TYPE_GRAY, 8);
    }
    free(px);
}

static void jpeg_abort_on_error(j_common_ptr cinfo)
{
    (*cinfo->err->output_message)(cinfo);
    abort();
}

void test_write_jpeg(const char *path, const uint8_t *pixels, int height, int width,
                     int channels, int quality)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        abort();
    }
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jerr.error_exit = jpeg_abort_on_error;
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)width;
    c.image_height = (JDIMENSION)height;
    c.input_components = channels;
    c.in_color_space = channels == 1 ? JCS_GRAYSCALE : channels == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    if (quality >= 90) { /* no chroma subsampling, so near-exact colours are checkable */
        for (int i = 0; i < c.num_components; i++)
            c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    }
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)c.next_scanline * (size_t)width * (size_t)channels);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    if (fclose(f) != 0) {
        perror(path);
        abort();
    }
}

static char run_output[1 << 16];

const char *test_aedet(void)
{
    static char path[PATH_MAX];
    if (!path[0]) {
        const char *bin = getenv("AEDET");
        if (!realpath(bin ? bin : "build/asan/aedet", path))
            fail_msg("the aedet tool under test (%s) is missing", bin ? bin : "build/asan/aedet");
    }
    return path;
}

int test_run(const char *fmt, ...)
{
    char args[8192], cmd[16384], log[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(log, sizeof log, "%s/last.log", test_tmpdir());
    snprintf(cmd, sizeof cmd, "%s %s > '%s' 2>&1 < /dev/null", test_aedet(), args, log);
    int status = system(cmd);
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(run_output, 1, sizeof run_output - 1, f) : 0;
    run_output[n] = '\0';
    if (f)
        fclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

const char *test_output(void) { return run_output; }

int test_labelled_model(char *data, char *labels, char *model, size_t size, int count,
                        void (*write_image)(const char *path, int k), const char *train_options)
{
    snprintf(data, size, "%s/data", test_tmpdir());
    snprintf(labels, size, "%s/labels.csv", data);
    snprintf(model, size, "%s/m.aedet", test_tmpdir());
    mkdir(data, 0777);
    FILE *f = fopen(labels, "w");
    fprintf(f, "Filename,Label\n");
    for (int k = 0; k < count; k++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/img%02d.png", data, k);
        write_image(path, k);
        fprintf(f, "img%02d.png,%d\n", k, k % 2);
    }
    fclose(f);
    if (test_run("train %s --epochs 1 %s -o %s", test_quote(data), train_options,
                 test_quote(model)) != 0) {
        fprintf(stderr, "training the test model failed:\n%s\n", test_output());
        return -1;
    }
    return 0;
}

void test_set_output(const char *text) { snprintf(run_output, sizeof run_output, "%s", text); }

void test_expect_output(const char *needle)
{
    if (!strstr(run_output, needle))
        fail_msg("expected \"%s\" in the output:\n%s", needle, run_output);
}

void test_expect_no_output(const char *needle)
{
    if (strstr(run_output, needle))
        fail_msg("did not expect \"%s\" in the output:\n%s", needle, run_output);
}

void test_make_dirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
}

const char *test_quote(const char *path)
{
    static char slots[8][2 * PATH_MAX];
    static int next;
    char *out = slots[next++ % 8], *o = out;
    *o++ = '\'';
    for (const char *p = path; *p; p++) {
        if (*p == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else
            *o++ = *p;
    }
    *o++ = '\'';
    *o = '\0';
    return out;
}
