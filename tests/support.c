#include "support.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
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
