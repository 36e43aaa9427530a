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

ae_status ae_atomic_open(const char *path, ae_atomic_file *af, ae_error *err)
{
    memset(af, 0, sizeof *af);
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
    int e = 0;
    if (fchmod(fd, mode) != 0 || !(af->f = fdopen(fd, "wb")))
        e = errno;
    af->path = strdup(path);
    af->tmp = strdup(tmp);
    af->dir = strdup(dir);
    if (e || !af->path || !af->tmp || !af->dir) {
        if (af->f)
            fclose(af->f);
        else
            close(fd);
        unlink(tmp);
        free(af->path);
        free(af->tmp);
        free(af->dir);
        memset(af, 0, sizeof *af);
        return e ? ae_fail(err, AE_ERR_IO, "%s: cannot open a temporary file: %s", path, strerror(e))
                 : ae_fail(err, AE_ERR_NOMEM, "%s: out of memory", path);
    }
    return AE_OK;
}

ae_status ae_atomic_commit(ae_atomic_file *af, int ok, ae_error *err)
{
    if (!af->f)
        return AE_OK;
    /* Any write that failed earlier (a full disk) left the stream's error flag. */
    const char *step = NULL;
    int e = 0;
    if (ferror(af->f))
        step = "write", e = EIO;
    else if (fflush(af->f) != 0)
        step = "write", e = errno;
    else if (fsync(fileno(af->f)) != 0)
        step = "fsync", e = errno;
    if (fclose(af->f) != 0 && !step)
        step = "close", e = errno;
    af->f = NULL;
    if (ok && !step && rename(af->tmp, af->path) != 0)
        step = "rename", e = errno;
    ae_status s = AE_OK;
    if (!ok || step) {
        unlink(af->tmp);
        if (ok)
            s = ae_fail(err, AE_ERR_IO, "%s: %s failed: %s", af->path, step, strerror(e));
    } else {
        /* Make the rename itself durable. Some file systems refuse fsync on a
         * folder (EINVAL); the data is already safe there, so that is no error. */
        int dfd = open(af->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            if (fsync(dfd) != 0 && errno != EINVAL && errno != EROFS)
                s = ae_fail(err, AE_ERR_IO, "%s: fsync of folder %s failed: %s", af->path, af->dir,
                            strerror(errno));
            close(dfd);
        }
    }
    free(af->path);
    free(af->tmp);
    free(af->dir);
    memset(af, 0, sizeof *af);
    return s;
}

ae_status ae_write_file_atomic(const char *path, const void *bytes, size_t len, ae_error *err)
{
    ae_atomic_file af;
    ae_status s = ae_atomic_open(path, &af, err);
    if (s != AE_OK)
        return s;
    int ok = len == 0 || fwrite(bytes, 1, len, af.f) == len;
    s = ae_atomic_commit(&af, 1, err);
    if (s == AE_OK && !ok) /* fwrite's failure also sets ferror: commit already failed */
        s = ae_fail(err, AE_ERR_IO, "%s: write failed", path);
    return s;
}
