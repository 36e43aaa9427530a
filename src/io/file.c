/* Whole-file reads, and atomic whole-file writes (temp file, fsync, rename). */
#include "aedet/image.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

ae_status ae_read_file(const char *path, uint8_t **bytes, size_t *len, ae_error *err)
{
    *bytes = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ae_fail(err, AE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ae_fail(err, AE_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return ae_fail(err, AE_ERR_IO, "%s: is a folder, not a file", path);
    }
    /* The size is a hint only (pipes report 0, files may grow): read to EOF. */
    size_t cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 65536;
    size_t used = 0;
    uint8_t *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return ae_fail(err, AE_ERR_NOMEM, "%s: cannot allocate %zu bytes to read it", path, cap);
    }
    for (;;) {
        if (used == cap) {
            size_t bigger = cap * 2;
            uint8_t *grown = bigger > cap ? realloc(buf, bigger + 1) : NULL;
            if (!grown) {
                free(buf);
                close(fd);
                return ae_fail(err, AE_ERR_NOMEM, "%s: cannot allocate %zu bytes to read it",
                               path, bigger);
            }
            buf = grown;
            cap = bigger;
        }
        ssize_t got = read(fd, buf + used, cap - used);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            free(buf);
            close(fd);
            return ae_fail(err, AE_ERR_IO, "%s: read failed: %s", path, strerror(e));
        }
        if (got == 0)
            break;
        used += (size_t)got;
    }
    close(fd);
    buf[used] = 0; /* text readers may rely on a terminator past the end */
    *bytes = buf;
    *len = used;
    return AE_OK;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t put = write(fd, p, len);
        if (put < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += put;
        len -= (size_t)put;
    }
    return 0;
}

/* The folder part of path ("." when there is none), in buf. */
static int folder_of(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return snprintf(buf, size, ".") < (int)size ? 0 : -1;
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= size)
        return -1;
    memcpy(buf, path, n);
    buf[n] = 0;
    return 0;
}

ae_status ae_write_file_atomic(const char *path, const void *bytes, size_t len, ae_error *err)
{
    char dir[PATH_MAX], tmp[PATH_MAX];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base)
        return ae_fail(err, AE_ERR_USAGE, "%s: not a file name", path);
    if (folder_of(path, dir, sizeof dir) != 0 ||
        snprintf(tmp, sizeof tmp, "%s/.%s.tmp-XXXXXX", dir, base) >= (int)sizeof tmp)
        return ae_fail(err, AE_ERR_USAGE, "%s: path too long", path);

    int fd = mkstemp(tmp);
    if (fd < 0)
        return ae_fail(err, AE_ERR_IO, "%s: cannot create a temporary file in %s: %s", path, dir,
                       strerror(errno));
    /* mkstemp makes 0600; keep an existing file's mode, else the usual 0644. */
    struct stat old;
    mode_t mode = stat(path, &old) == 0 ? (old.st_mode & 07777) : 0644;
    const char *step = "write";
    if (fchmod(fd, mode) != 0)
        step = "chmod";
    else if (write_all(fd, bytes, len) != 0)
        step = "write";
    else if (fsync(fd) != 0)
        step = "fsync";
    else
        step = NULL;
    int e = errno;
    if (close(fd) != 0 && !step) {
        step = "close";
        e = errno;
    }
    if (!step && rename(tmp, path) != 0) {
        step = "rename";
        e = errno;
    }
    if (step) {
        unlink(tmp);
        return ae_fail(err, AE_ERR_IO, "%s: %s failed: %s", path, step, strerror(e));
    }
    /* Make the rename itself durable. Some file systems refuse fsync on a
     * folder (EINVAL); the data is already safe there, so that is not an error. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) != 0 && errno != EINVAL && errno != EROFS) {
            e = errno;
            close(dfd);
            return ae_fail(err, AE_ERR_IO, "%s: fsync of folder %s failed: %s", path, dir,
                           strerror(e));
        }
        close(dfd);
    }
    return AE_OK;
}
