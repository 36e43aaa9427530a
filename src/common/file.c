/* Whole-file reads, and atomic whole-file writes (temp file, fsync, rename). */
#include "aedet/file.h"
#include "common/file_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

ae_status ae_read_file(const char *path, uint8_t **bytes, size_t *len, ae_error *err)
{
    *bytes = NULL;
    *len = 0;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused
     * below like every other file that is not a regular one (/dev/zero never
     * ends). Reads from a regular file ignore the flag. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
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
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ae_fail(err, AE_ERR_IO, "%s: not a regular file (a device, FIFO or socket)", path);
    }
    if ((uintmax_t)st.st_size > AE_MAX_FILE_BYTES) {
        close(fd);
        return ae_fail(err, AE_ERR_IO, "%s: %jd bytes, over the limit of %llu bytes for one file", path,
                       (intmax_t)st.st_size, (unsigned long long)AE_MAX_FILE_BYTES);
    }
    /* The size is a hint only (files may grow while read): read to EOF, up to the limit. */
    size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 65536;
    size_t used = 0;
    uint8_t *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return ae_fail(err, AE_ERR_NOMEM, "%s: cannot allocate %zu bytes to read it", path, cap);
    }
    for (;;) {
        if (used == cap) {
            if (used > AE_MAX_FILE_BYTES) {
                free(buf);
                close(fd);
                return ae_fail(err, AE_ERR_IO, "%s: grew over the limit of %llu bytes for one file", path,
                               (unsigned long long)AE_MAX_FILE_BYTES);
            }
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

ae_status ae_parse_file(const char *path, ae_bytes_parser parse, void *out, ae_error *err)
{
    uint8_t *bytes;
    size_t len;
    ae_status st = ae_read_file(path, &bytes, &len, err);
    if (st != AE_OK)
        return st;
    st = parse(bytes, len, path, out, err);
    free(bytes);
    return st;
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

/* The temporary file's name beside the target: ".NAME.tmp-" + 6 random
 * characters, or ".aedet-HASH.tmp-..." when that would pass NAME_MAX (a legal
 * 250-byte name has no room for the suffix). Either way the prefix is the
 * same for every write of one target, so stale ones can be found. */
static void temp_prefix(const char *base, char *out, size_t size)
{
    size_t n = strlen(base);
    if (n + 12 <= NAME_MAX && n + 7 <= size) {
        out[0] = '.';
        memcpy(out + 1, base, n);
        memcpy(out + 1 + n, ".tmp-", 6); /* with its terminator */
        return;
    }
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = base; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    snprintf(out, size, ".aedet-%016llx.tmp-", (unsigned long long)h);
}

/* The stream writes through this, so a failed write keeps its errno (stdio
 * only keeps a flag: a full disk would read as "Input/output error"). */
typedef struct {
    int fd;
    int error; /* the first write's errno, 0 if none */
} atomic_sink;

static ssize_t sink_write(void *cookie, const char *buf, size_t len)
{
    atomic_sink *s = cookie;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(s->fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (!s->error)
                s->error = n < 0 ? errno : EIO;
            break; /* short: stdio sets the stream's error flag */
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static int sink_close(void *cookie)
{
    atomic_sink *s = cookie;
    int rc = close(s->fd);
    free(s);
    return rc;
}

/* The stream over fd that reports write errors with their errno; tmp NULL
 * marks a direct write (no temp file, no rename). Closes fd on failure. */
static ae_status open_stream(ae_atomic_file *af, int fd, const char *path, const char *tmp, const char *dir,
                             ae_error *err)
{
    int e = 0;
    atomic_sink *sink = malloc(sizeof *sink);
    if (sink) {
        *sink = (atomic_sink){fd, 0};
        if (!(af->f = fopencookie(sink, "wb", (cookie_io_functions_t){.write = sink_write, .close = sink_close})))
            e = errno;
    }
    af->sink_ = sink;
    af->path = strdup(path);
    af->tmp = tmp ? strdup(tmp) : NULL;
    af->dir = strdup(dir);
    if (e || !sink || !af->path || (tmp && !af->tmp) || !af->dir) {
        if (af->f)
            fclose(af->f); /* closes fd, frees sink */
        else {
            close(fd);
            free(sink);
        }
        if (tmp)
            unlink(tmp);
        free(af->path);
        free(af->tmp);
        free(af->dir);
        memset(af, 0, sizeof *af);
        return e ? ae_fail(err, AE_ERR_IO, "%s: cannot open a stream: %s", path, strerror(e))
                 : ae_fail(err, AE_ERR_NOMEM, "%s: out of memory", path);
    }
    return AE_OK;
}

int ae_names_descriptor(const char *path)
{
    return !strncmp(path, "/dev/fd/", 8) || !strncmp(path, "/proc/self/fd/", 14) || !strcmp(path, "/dev/stdout") ||
           !strcmp(path, "/dev/stderr");
}

ae_status ae_atomic_open(const char *path, ae_atomic_file *af, ae_error *err)
{
    memset(af, 0, sizeof *af);
    char dir[PATH_MAX], tmp[PATH_MAX], prefix[NAME_MAX + 1], real[PATH_MAX];
    struct stat st, lst;
    int exists = stat(path, &st) == 0;
    /* A device or FIFO (a terminal, a pipe, /dev/null) is written as it
     * is: renaming a file over it would replace it, not write to it. So is
     * an open descriptor (/dev/fd/N, standard output), even on a regular
     * file: its reader holds that file, not whatever takes its name. */
    if (exists && ((!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) || ae_names_descriptor(path))) {
        int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
            return ae_fail(err, AE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return open_stream(af, fd, path, NULL, ".", err);
    }
    /* A symbolic link stays one: the file it points to is replaced. */
    if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
        if (!exists || !realpath(path, real))
            return ae_fail(err, AE_ERR_IO, "%s: a symbolic link to a file that does not exist", path);
        path = real;
    }
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base)
        return ae_fail(err, AE_ERR_USAGE, "%s: not a file name", path);
    temp_prefix(base, prefix, sizeof prefix);
    if (folder_of(path, dir, sizeof dir) != 0 ||
        snprintf(tmp, sizeof tmp, "%s/%sXXXXXX", dir, prefix) >= (int)sizeof tmp)
        return ae_fail(err, AE_ERR_USAGE, "%s: path too long", path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return ae_fail(err, AE_ERR_IO, "%s: cannot create a temporary file in %s: %s", path, dir,
                       strerror(errno));
    /* mkstemp makes 0600; keep an existing file's mode, else the usual 0644. */
    if (fchmod(fd, exists ? (st.st_mode & 07777) : 0644) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return ae_fail(err, AE_ERR_IO, "%s: cannot open a temporary file: %s", path, strerror(e));
    }
    return open_stream(af, fd, path, tmp, dir, err);
}

/* Temporary files of this same target left by a killed run (kill -9): the
 * names of tmp's prefix + 6 characters that nothing has modified for 10
 * minutes (a live writer keeps writing, and a fresh one may be another run's). */
#define AE_STALE_SECONDS 600

static void remove_stale_temps(const char *dir, const char *tmp)
{
    const char *name = strrchr(tmp, '/') + 1;
    size_t len = strlen(name), prefix = len - 6; /* without mkstemp's XXXXXX */
    DIR *d = opendir(dir);
    if (!d)
        return;
    time_t now = time(NULL);
    struct dirent *e;
    struct stat st;
    while ((e = readdir(d)))
        if (e->d_name[0] == '.' && strlen(e->d_name) == len && !strncmp(e->d_name, name, prefix) &&
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
            st.st_mtime < now - AE_STALE_SECONDS)
            unlinkat(dirfd(d), e->d_name, 0); /* best effort: another run may remove it first */
    closedir(d);
}

void ae_remove_stale_temps_in(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    size_t tail = strlen(".tmp-XXXXXX"), slen = strlen(suffix);
    time_t now = time(NULL);
    struct dirent *e;
    struct stat st;
    while ((e = readdir(d))) {
        const char *name = e->d_name;
        size_t len = strlen(name);
        if (name[0] != '.' || len < 1 + tail || strncmp(name + len - tail, ".tmp-", 5) != 0)
            continue;
        size_t stem = len - tail; /* ".NAME" or ".aedet-HASH" */
        int ours = (stem > slen + 1 && !strncmp(name + stem - slen, suffix, slen)) ||
                   (stem == 7 + 16 && !strncmp(name, ".aedet-", 7));
        if (ours && fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
            st.st_mtime < now - AE_STALE_SECONDS)
            unlinkat(dirfd(d), name, 0);
    }
    closedir(d);
}

void ae_remove_file(const char *path)
{
    char dir[PATH_MAX], tmp[PATH_MAX], prefix[NAME_MAX + 1];
    unlink(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base)
        return;
    temp_prefix(base, prefix, sizeof prefix);
    if (folder_of(path, dir, sizeof dir) == 0 &&
        snprintf(tmp, sizeof tmp, "%s/%sXXXXXX", dir, prefix) < (int)sizeof tmp)
        remove_stale_temps(dir, tmp);
}

static ae_status atomic_commit(ae_atomic_file *af, int ok, int sweep, ae_error *err)
{
    if (!af->f)
        return AE_OK;
    /* Any write that failed earlier (a full disk) left the stream's error
     * flag, and the sink its errno. */
    atomic_sink *sink = af->sink_;
    const char *step = NULL;
    int e = 0;
    if (ferror(af->f) || fflush(af->f) != 0)
        step = "write", e = sink->error ? sink->error : EIO;
    else if (af->tmp && fsync(sink->fd) != 0) /* a pipe or terminal has nothing to sync */
        step = "fsync", e = errno;
    if (fclose(af->f) != 0 && !step)
        step = "close", e = errno;
    af->f = NULL;
    if (ok && !step && af->tmp && rename(af->tmp, af->path) != 0)
        step = "rename", e = errno;
    ae_status s = AE_OK;
    if (!ok || step) {
        if (af->tmp)
            unlink(af->tmp);
        if (ok)
            s = ae_fail(err, AE_ERR_IO, "%s: %s failed: %s", af->path, step, strerror(e));
    } else if (af->tmp) {
        /* Make the rename itself durable. Some file systems refuse fsync on a
         * folder (EINVAL); the data is already safe there, so that is no error. */
        int dfd = open(af->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            if (fsync(dfd) != 0 && errno != EINVAL && errno != EROFS)
                s = ae_fail(err, AE_ERR_IO, "%s: fsync of folder %s failed: %s", af->path, af->dir,
                            strerror(errno));
            close(dfd);
        }
        if (sweep)
            remove_stale_temps(af->dir, af->tmp);
    }
    free(af->path);
    free(af->tmp);
    free(af->dir);
    memset(af, 0, sizeof *af);
    return s;
}

ae_status ae_atomic_commit(ae_atomic_file *af, int ok, ae_error *err)
{
    return atomic_commit(af, ok, 1, err);
}

static ae_status write_atomic(const char *path, const void *bytes, size_t len, int sweep, ae_error *err)
{
    ae_atomic_file af;
    ae_status s = ae_atomic_open(path, &af, err);
    if (s != AE_OK)
        return s;
    int ok = len == 0 || fwrite(bytes, 1, len, af.f) == len;
    s = atomic_commit(&af, 1, sweep, err);
    if (s == AE_OK && !ok) /* fwrite's failure also sets ferror: commit already failed */
        s = ae_fail(err, AE_ERR_IO, "%s: write failed", path);
    return s;
}

ae_status ae_write_file_atomic(const char *path, const void *bytes, size_t len, ae_error *err)
{
    return write_atomic(path, bytes, len, 1, err);
}

ae_status ae_write_file_atomic_many(const char *path, const void *bytes, size_t len, ae_error *err)
{
    return write_atomic(path, bytes, len, 0, err);
}
