/* Whole-file reads and atomic writes. */
#include "support.h"

#include "aedet/file.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* Number of entries in a folder whose names contain part (0 if none). */
static int count_entries(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strstr(e->d_name, part))
            n++;
    closedir(d);
    return n;
}

static void test_read_file_whole_and_terminated(void **state)
{
    (void)state;
    const char *path = test_path("read.bin");
    uint8_t data[70000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + i / 300);
    test_write_file(path, data, sizeof data);
    uint8_t *bytes;
    size_t len;
    ae_error err;
    assert_int_equal(ae_read_file(path, &bytes, &len, &err), AE_OK);
    assert_int_equal(len, sizeof data);
    assert_memory_equal(bytes, data, sizeof data);
    assert_int_equal(bytes[len], 0);
    free(bytes);

    path = test_path("empty.bin");
    test_write_file(path, "", 0);
    assert_int_equal(ae_read_file(path, &bytes, &len, &err), AE_OK);
    assert_int_equal(len, 0);
    assert_non_null(bytes);
    free(bytes);

    path = test_path("missing.bin");
    assert_int_equal(ae_read_file(path, &bytes, &len, &err), AE_ERR_IO);
    assert_null(bytes);
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, "No such file"));

    assert_int_equal(ae_read_file(test_tmpdir(), &bytes, &len, &err), AE_ERR_IO);
    assert_non_null(strstr(err.message, test_tmpdir()));
}

static void test_atomic_write_creates_and_replaces(void **state)
{
    (void)state;
    mkdir(test_path("atomic"), 0755);
    const char *path = test_path("atomic/out.txt");
    ae_error err;
    assert_int_equal(ae_write_file_atomic(path, "first version\n", 14, &err), AE_OK);
    uint8_t *bytes;
    size_t len;
    assert_int_equal(ae_read_file(path, &bytes, &len, &err), AE_OK);
    assert_int_equal(len, 14);
    assert_memory_equal(bytes, "first version\n", 14);
    free(bytes);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);

    /* Replacing keeps the old file's mode and leaves no temporary files. */
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(ae_write_file_atomic(path, "v2", 2, &err), AE_OK);
    assert_int_equal(ae_read_file(path, &bytes, &len, &err), AE_OK);
    assert_int_equal(len, 2);
    assert_memory_equal(bytes, "v2", 2);
    free(bytes);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(count_entries(test_path("atomic"), ""), 1);

    /* An empty file is a valid thing to write. */
    assert_int_equal(ae_write_file_atomic(path, "", 0, &err), AE_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);
}

static void test_atomic_write_failures_leave_nothing_behind(void **state)
{
    (void)state;
    ae_error err;
    /* Missing folder. */
    const char *path = test_path("no_such_folder/x.bin");
    assert_int_equal(ae_write_file_atomic(path, "abc", 3, &err), AE_ERR_IO);
    assert_non_null(strstr(err.message, path));
    struct stat st;
    assert_int_not_equal(stat(test_path("no_such_folder"), &st), 0);

    /* The parent is a regular file: fails cleanly (as root too). */
    const char *plain = test_path("plain_file");
    test_write_file(plain, "keep me", 7);
    path = test_path("plain_file/child.bin");
    assert_int_equal(ae_write_file_atomic(path, "abc", 3, &err), AE_ERR_IO);
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, "Not a directory"));
    uint8_t *bytes;
    size_t len;
    assert_int_equal(ae_read_file(plain, &bytes, &len, &err), AE_OK);
    assert_int_equal(len, 7);
    assert_memory_equal(bytes, "keep me", 7);
    free(bytes);

    /* The target is a folder: the rename fails, the folder and its content
     * stay, and the temporary file is removed. */
    mkdir(test_path("target_dir"), 0755);
    test_write_file(test_path("target_dir/inside"), "old", 3);
    path = test_path("target_dir");
    assert_int_equal(ae_write_file_atomic(path, "new data", 8, &err), AE_ERR_IO);
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, "rename"));
    assert_int_equal(ae_read_file(test_path("target_dir/inside"), &bytes, &len, &err), AE_OK);
    assert_memory_equal(bytes, "old", 3);
    free(bytes);
    assert_int_equal(count_entries(test_tmpdir(), ".tmp-"), 0);

    /* A path that names a folder (ends in '/') is refused before anything is made. */
    assert_int_equal(ae_write_file_atomic(test_path(""), "x", 1, &err), AE_ERR_USAGE);
}


/* The stream form: nothing appears until commit; a cancelled or failed
 * stream leaves the old file as it was. A full disk is imitated with a file
 * size limit (SIGXFSZ ignored, so the write fails with EFBIG). */
static void test_atomic_stream_commit_cancel_and_full_disk(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/stream.csv", test_tmpdir());
    ae_atomic_file af;
    ae_error err;
    assert_int_equal(ae_atomic_open(path, &af, &err), AE_OK);
    fprintf(af.f, "a,b\n1,2\n");
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0); /* not there before commit */
    assert_int_equal(ae_atomic_commit(&af, 1, &err), AE_OK);
    uint8_t *bytes;
    size_t len;
    assert_int_equal(ae_read_file(path, &bytes, &len, &err), AE_OK);
    assert_int_equal(len, 8);
    assert_memory_equal(bytes, "a,b\n1,2\n", 8);
    free(bytes);

    assert_int_equal(ae_atomic_open(path, &af, &err), AE_OK);
    fprintf(af.f, "something else");
    assert_int_equal(ae_atomic_commit(&af, 0, &err), AE_OK); /* cancelled */

    struct rlimit saved, small = {4096, 4096};
    getrlimit(RLIMIT_FSIZE, &saved);
    small.rlim_max = saved.rlim_max;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    assert_int_equal(ae_atomic_open(path, &af, &err), AE_OK);
    for (int i = 0; i < 2000; i++)
        fprintf(af.f, "row %d of a file that will not fit\n", i);
    ae_status s = ae_atomic_commit(&af, 1, &err);
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(s, AE_ERR_IO);
    assert_non_null(strstr(err.message, "stream.csv"));

    assert_int_equal(ae_read_file(path, &bytes, &len, &err), AE_OK);
    assert_int_equal(len, 8); /* the committed version, untouched */
    assert_memory_equal(bytes, "a,b\n1,2\n", 8);
    free(bytes);
    assert_int_equal(count_entries(test_tmpdir(), "stream.csv.tmp"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_file_whole_and_terminated),
        cmocka_unit_test(test_atomic_write_creates_and_replaces),
        cmocka_unit_test(test_atomic_write_failures_leave_nothing_behind),
        cmocka_unit_test(test_atomic_stream_commit_cancel_and_full_disk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
