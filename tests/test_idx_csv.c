/* IDX (plain and gzip, the real Fashion-MNIST) and CSV parsing. */
#include "support.h"

#include "aedet/file.h"
#include "aedet/image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* Writes bytes as a fuzzing seed for fuzzer `which` when AEDET_FUZZ_CORPUS is set. */
static void maybe_seed(const char *which, const char *name, const void *bytes, size_t len)
{
    const char *dir = getenv("AEDET_FUZZ_CORPUS");
    if (!dir || !*dir)
        return;
    char folder[1024], path[1200];
    snprintf(folder, sizeof folder, "%s/%s", dir, which);
    mkdir(dir, 0755);
    mkdir(folder, 0755);
    snprintf(path, sizeof path, "%s/%s", folder, name);
    test_write_file(path, bytes, len);
}

/* An IDX file of unsigned bytes: header for dims, then data[0..data_len). */
static size_t make_idx(uint8_t *buf, const uint32_t *dims, int ndim, const uint8_t *data,
                       size_t data_len)
{
    buf[0] = buf[1] = 0;
    buf[2] = 0x08;
    buf[3] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++) {
        buf[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        buf[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        buf[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        buf[7 + 4 * i] = (uint8_t)dims[i];
    }
    size_t h = 4 + 4 * (size_t)ndim;
    if (data_len)
        memcpy(buf + h, data, data_len);
    return h + data_len;
}

/* Writes bytes gzip-compressed with zlib's own gz* functions. */
static void write_gzip(const char *path, const uint8_t *bytes, size_t len)
{
    gzFile f = gzopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(gzwrite(f, bytes, (unsigned)len), (int)len);
    assert_int_equal(gzclose(f), Z_OK);
}

static void expect_idx_error(const uint8_t *bytes, size_t len, const char *want)
{
    ae_idx idx;
    ae_error err;
    ae_error_clear(&err);
    assert_int_equal(ae_idx_parse(bytes, len, "bad.idx", &idx, &err), AE_ERR_DATA);
    assert_null(idx.data);
    if (!strstr(err.message, "bad.idx") || !strstr(err.message, want))
        fail_msg("expected '%s' in: %s", want, err.message);
}

static void test_idx_valid_plain_and_gzip(void **state)
{
    (void)state;
    uint8_t data[2 * 3 * 4], buf[64];
    for (int i = 0; i < 24; i++)
        data[i] = (uint8_t)(i * 11);
    const uint32_t dims3[3] = {2, 3, 4};
    size_t len = make_idx(buf, dims3, 3, data, sizeof data);
    maybe_seed("fuzz_idx", "images3.idx", buf, len);

    /* Plain, under a .gz name; gzip, under a plain name: the bytes decide. */
    const char *plain = test_path("images.gz"), *packed = test_path("images.idx");
    test_write_file(plain, buf, len);
    write_gzip(packed, buf, len);
    for (int k = 0; k < 2; k++) {
        ae_idx idx;
        ae_error err;
        const char *path = k ? packed : plain;
        if (ae_idx_read(path, &idx, &err) != AE_OK)
            fail_msg("%s", err.message);
        assert_int_equal(idx.ndim, 3);
        assert_int_equal(idx.dims[0], 2);
        assert_int_equal(idx.dims[1], 3);
        assert_int_equal(idx.dims[2], 4);
        assert_int_equal(idx.count, 2);
        assert_memory_equal(idx.data, data, sizeof data);
        ae_idx_free(&idx);
        assert_null(idx.data);
    }
    uint8_t *gz;
    size_t gz_len;
    ae_error err;
    assert_int_equal(ae_read_file(packed, &gz, &gz_len, &err), AE_OK);
    maybe_seed("fuzz_idx", "images3.idx.gz", gz, gz_len);
    free(gz);

    /* One dimension: labels. */
    const uint32_t dims1[1] = {5};
    const uint8_t labels[5] = {9, 0, 0, 3, 7};
    len = make_idx(buf, dims1, 1, labels, 5);
    maybe_seed("fuzz_idx", "labels1.idx", buf, len);
    ae_idx idx;
    assert_int_equal(ae_idx_parse(buf, len, "labels", &idx, &err), AE_OK);
    assert_int_equal(idx.ndim, 1);
    assert_int_equal(idx.count, 5);
    assert_memory_equal(idx.data, labels, 5);
    ae_idx_free(&idx);
}

static void test_idx_errors(void **state)
{
    (void)state;
    uint8_t data[24] = {0}, buf[128];
    const uint32_t dims[3] = {2, 3, 4};
    size_t len = make_idx(buf, dims, 3, data, sizeof data);

    uint8_t bad[128];
    memcpy(bad, buf, len);
    bad[0] = 1;
    expect_idx_error(bad, len, "magic");
    memcpy(bad, buf, len);
    bad[2] = 0x0d; /* float */
    expect_idx_error(bad, len, "0x0d");
    memcpy(bad, buf, len);
    bad[3] = 0;
    expect_idx_error(bad, len, "dimensions");
    expect_idx_error(buf, len - 1, "too short");
    expect_idx_error(buf, 10, "truncated");
    expect_idx_error(buf, 2, "only 2 bytes");
    expect_idx_error(buf, 0, "only 0 bytes");
    memset(buf + len, 0, 5);
    expect_idx_error(buf, len + 5, "too long");

    /* Dimensions whose product overflows 64 bits. */
    const uint32_t huge[4] = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
    len = make_idx(buf, huge, 4, NULL, 0);
    expect_idx_error(buf, len, "overflow");
    /* Huge but representable: too short, not a huge allocation. */
    len = make_idx(buf, huge, 2, data, 4);
    expect_idx_error(buf, len, "too short");

    /* gzip too long: more data than the header claims. */
    len = make_idx(buf, dims, 3, data, sizeof data);
    memset(buf + len, 7, 10);
    const char *path = test_path("long.idx.gz");
    write_gzip(path, buf, len + 10);
    ae_idx idx;
    ae_error err;
    assert_int_equal(ae_idx_read(path, &idx, &err), AE_ERR_DATA);
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, "too long"));

    /* gzip truncated in the middle of the stream. */
    write_gzip(path, buf, len);
    uint8_t *gz;
    size_t gz_len;
    assert_int_equal(ae_read_file(path, &gz, &gz_len, &err), AE_OK);
    assert_int_equal(ae_idx_parse(gz, gz_len / 2, "cut.gz", &idx, &err), AE_ERR_DATA);
    assert_non_null(strstr(err.message, "cut.gz"));
    free(gz);
}

static void check_fashion(const char *images, const char *labels, int n)
{
    char ipath[512], lpath[512];
    snprintf(ipath, sizeof ipath, "%s/%s", TEST_FASHION_DIR, images);
    snprintf(lpath, sizeof lpath, "%s/%s", TEST_FASHION_DIR, labels);
    ae_idx img, lab;
    ae_error err;
    if (ae_idx_read(ipath, &img, &err) != AE_OK)
        fail_msg("%s", err.message);
    assert_int_equal(img.ndim, 3);
    assert_int_equal(img.dims[0], n);
    assert_int_equal(img.dims[1], 28);
    assert_int_equal(img.dims[2], 28);
    assert_int_equal(img.count, (size_t)n);
    if (ae_idx_read(lpath, &lab, &err) != AE_OK)
        fail_msg("%s", err.message);
    assert_int_equal(lab.ndim, 1);
    assert_int_equal(lab.count, (size_t)n);
    int per_class[10] = {0};
    for (int i = 0; i < n; i++) {
        assert_in_range(lab.data[i], 0, 9);
        per_class[lab.data[i]]++;
    }
    for (int c = 0; c < 10; c++)
        assert_int_equal(per_class[c], n / 10);
    /* Images are not blank: some pixels are dark, some bright. */
    size_t bright = 0;
    for (size_t i = 0; i < (size_t)n * 784; i++)
        bright += img.data[i] > 128;
    assert_true(bright > (size_t)n * 50 && bright < (size_t)n * 700);
    ae_idx_free(&img);
    ae_idx_free(&lab);
}

static void test_real_fashion_mnist(void **state)
{
    (void)state;
    check_fashion("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000);
    check_fashion("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000);
}

/* ------------------------------------------------------------------ CSV */

static ae_csv parse_ok(const char *text)
{
    ae_csv csv;
    ae_error err;
    if (ae_csv_parse(text, strlen(text), "t.csv", &csv, &err) != AE_OK)
        fail_msg("%s", err.message);
    return csv;
}

static void test_csv_basic_and_quotes(void **state)
{
    (void)state;
    const char *text = "Filename,Label,Species\n"
                       "a.jpg,0,Chinee apple\n"
                       "\"b,c.jpg\",1,\"say \"\"hi\"\"\"\n"
                       "d.jpg,,\n";
    maybe_seed("fuzz_csv", "basic.csv", text, strlen(text));
    ae_csv csv = parse_ok(text);
    assert_int_equal(csv.num_columns, 3);
    assert_int_equal(csv.num_rows, 3);
    assert_string_equal(csv.header[2], "Species");
    assert_int_equal(ae_csv_column(&csv, "Label"), 1);
    assert_int_equal(ae_csv_column(&csv, "label"), -1);
    assert_string_equal(csv.rows[0][2], "Chinee apple");
    assert_string_equal(csv.rows[1][0], "b,c.jpg");
    assert_string_equal(csv.rows[1][2], "say \"hi\"");
    assert_int_equal(csv.row_columns[2], 3);
    assert_string_equal(csv.rows[2][1], "");
    assert_string_equal(csv.rows[2][2], "");
    for (size_t r = 0; r < 3; r++)
        assert_int_equal(csv.row_line[r], r + 2);
    ae_csv_free(&csv);
    assert_null(csv.rows);
}

static void test_csv_crlf_bom_embedded_newlines_and_lines(void **state)
{
    (void)state;
    const char *text = "\xef\xbb\xbfh1,h2\r\n"     /* line 1 */
                       "a,\"multi\r\nline\"\r\n"   /* lines 2-3 */
                       "b,c\n"                     /* line 4 */
                       "\r\n"                      /* line 5: empty, skipped */
                       "\"x\ny\nz\",w\r\n"         /* lines 6-8 */
                       "last,row";                 /* line 9, no newline */
    maybe_seed("fuzz_csv", "crlf.csv", text, strlen(text));
    ae_csv csv = parse_ok(text);
    assert_string_equal(csv.header[0], "h1");
    assert_int_equal(csv.num_rows, 4);
    assert_string_equal(csv.rows[0][1], "multi\r\nline");
    assert_string_equal(csv.rows[2][0], "x\ny\nz");
    assert_string_equal(csv.rows[3][1], "row");
    const size_t lines[4] = {2, 4, 6, 9};
    for (int r = 0; r < 4; r++) {
        assert_int_equal(csv.row_columns[r], 2);
        assert_int_equal(csv.row_line[r], lines[r]);
    }
    ae_csv_free(&csv);

    /* Header only, with a trailing newline: no rows. */
    csv = parse_ok("a,b\n");
    assert_int_equal(csv.num_rows, 0);
    assert_int_equal(csv.num_columns, 2);
    ae_csv_free(&csv);
}

static void test_csv_ragged_rows_are_recorded(void **state)
{
    (void)state;
    const char *text = "a,b,c\n1,2,3\n4\n5,6,7,8\n9,10,\n";
    maybe_seed("fuzz_csv", "ragged.csv", text, strlen(text));
    ae_csv csv = parse_ok(text);
    assert_int_equal(csv.num_rows, 4);
    const int cols[4] = {3, 1, 4, 3};
    for (int r = 0; r < 4; r++)
        assert_int_equal(csv.row_columns[r], cols[r]);
    assert_string_equal(csv.rows[2][3], "8");
    assert_int_equal(csv.row_line[2], 4);
    ae_csv_free(&csv);
}

static void expect_csv_error(const char *text, const char *want)
{
    ae_csv csv;
    ae_error err;
    ae_error_clear(&err);
    assert_int_equal(ae_csv_parse(text, strlen(text), "labels.csv", &csv, &err), AE_ERR_DATA);
    assert_null(csv.rows);
    if (!strstr(err.message, "labels.csv") || !strstr(err.message, want))
        fail_msg("expected '%s' in: %s", want, err.message);
}

static void test_csv_errors_name_the_line(void **state)
{
    (void)state;
    expect_csv_error("h\nok\n\"abc\ndef\n", "line 3: quoted field is never closed");
    expect_csv_error("h,i\r\n1,2\r\n3,\"x\"y\r\n", "line 3: unexpected 'y'");
    expect_csv_error("", "no header");
    expect_csv_error("\n\r\n", "no header");
    const char nul[] = "h\na\0b\n";
    ae_csv csv;
    ae_error err;
    assert_int_equal(ae_csv_parse(nul, sizeof nul - 1, "labels.csv", &csv, &err), AE_ERR_DATA);
    assert_non_null(strstr(err.message, "line 2"));

    /* From a file: the message names it. */
    const char *path = test_path("broken.csv");
    test_write_file(path, "a\n\"open", 7);
    assert_int_equal(ae_csv_read(path, &csv, &err), AE_ERR_DATA);
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, "line 2"));
    path = test_path("fine.csv");
    test_write_file(path, "a\n1\n", 4);
    assert_int_equal(ae_csv_read(path, &csv, &err), AE_OK);
    assert_string_equal(csv.rows[0][0], "1");
    ae_csv_free(&csv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_valid_plain_and_gzip),
        cmocka_unit_test(test_idx_errors),
        cmocka_unit_test(test_real_fashion_mnist),
        cmocka_unit_test(test_csv_basic_and_quotes),
        cmocka_unit_test(test_csv_crlf_bom_embedded_newlines_and_lines),
        cmocka_unit_test(test_csv_ragged_rows_are_recorded),
        cmocka_unit_test(test_csv_errors_name_the_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
