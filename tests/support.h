/* Helpers shared by the tests: a fresh temporary folder per test program and
 * small file utilities. Tests use cmocka for their assertions. */
#ifndef AEDET_TEST_SUPPORT_H
#define AEDET_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* A folder under $TMPDIR (or /tmp) made once per process, removed at exit. */
const char *test_tmpdir(void);
/* test_tmpdir()/name in a static rotating buffer (8 slots). */
const char *test_path(const char *name);
/* mkdir -p */
void test_make_dirs(const char *path);
/* path in single quotes for the shell (names may hold commas, quotes,
 * newlines and escapes); 8 rotating slots. */
const char *test_quote(const char *path);
void test_write_file(const char *path, const void *bytes, size_t len);
/* Where committed fixtures live (tests/fixtures, or $AEDET_FIXTURES). */
const char *test_fixture(const char *name);
/* Fashion-MNIST files from Debian's dataset-fashion-mnist. */
#define TEST_FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* max |a-b| / max(|b|, floor) over n values; for reports in failure messages. */
double test_max_rel_error(const float *a, const float *b, size_t n, double floor);

/* A copy of the environment variable name (NULL when unset), and putting it
 * back (unset for NULL) and freeing the copy: a test that sets AEDET_ISA
 * itself restores the one tests/run.sh forced for the whole program. */
char *test_env_save(const char *name);
void test_env_restore(const char *name, char *saved);


/* The aedet tool under test: $AEDET (default build/asan/aedet), as an
 * absolute path, so a test may change folders. */
const char *test_aedet(void);
/* Runs `aedet ARGS` through the shell with no standard input; returns its
 * exit status (128 + the signal when killed) and keeps the first 64 KiB of
 * its stdout and stderr for test_output(). */
int test_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *test_output(void);
/* The end-to-end tests' labelled folder and model, made once as a group
 * setup: data = test_tmpdir()/data (made) with count images, imgKK.png by
 * write_image(path, k), labels = data/labels.csv (Filename,Label; label
 * k % 2), and model = test_tmpdir()/m.aedet, trained on them by
 * `aedet train DATA --epochs 1 TRAIN_OPTIONS -o MODEL`. The three paths go
 * into buffers of size bytes. Returns 0, or -1 (the tool's output printed)
 * when training fails. */
int test_labelled_model(char *data, char *labels, char *model, size_t size, int count,
                        void (*write_image)(const char *path, int k), const char *train_options);
/* Puts text in test_output()'s place (for a test's own ways of running it). */
void test_set_output(const char *text);
/* Fails the test, showing the output, unless needle is in it (is not in it). */
void test_expect_output(const char *needle);
void test_expect_no_output(const char *needle);

/* Test images written directly with libpng / libjpeg (not with the library,
 * so the readers are not checked against themselves). Both abort() on error.
 *
 * test_write_png: pixels in the PNG's own sample layout, rows top to bottom:
 * png_color_type is PNG_COLOR_TYPE_GRAY (0), RGB (2), PALETTE (3),
 * GRAY_ALPHA (4) or RGBA (6); 16-bit samples are two bytes, big-endian;
 * bit depths below 8 take ONE byte per pixel (libpng packs them). Palette
 * images use 1 << bit_depth entries of test_png_palette_entry(). */
void test_write_png(const char *path, const uint8_t *pixels, int height, int width,
                    int png_color_type, int bit_depth);
/* Like test_write_png for palette images, with a tRNS chunk giving alpha
 * values for the first num_trans palette entries. */
void test_write_png_trns(const char *path, const uint8_t *indices, int height, int width,
                         int bit_depth, const uint8_t *trans, int num_trans);
/* The palette test_write_png uses: entry i is (i, 255 - i, (3 * i) & 255). */
void test_png_palette_entry(int i, uint8_t rgb[3]);
/* count gray PNGs of side x side, root/img000.png on, into the folder root
 * (made if missing): smooth blobs that move from image to image, for the
 * training tests that compare runs. */
void test_write_blob_pngs(const char *root, int count, int side);
/* channels 1 (gray), 3 (RGB) or 4 (Adobe CMYK, to test its handling). */
void test_write_jpeg(const char *path, const uint8_t *pixels, int height, int width,
                     int channels, int quality);

#endif
