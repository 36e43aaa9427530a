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
void test_write_file(const char *path, const void *bytes, size_t len);
/* Where committed fixtures live (tests/fixtures, or $AEDET_FIXTURES). */
const char *test_fixture(const char *name);
/* Fashion-MNIST files from Debian's dataset-fashion-mnist. */
#define TEST_FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* max |a-b| / max(|b|, floor) over n values; for reports in failure messages. */
double test_max_rel_error(const float *a, const float *b, size_t n, double floor);

#endif
