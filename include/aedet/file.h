/* aedet: whole files read into memory and written atomically (a temp file
 * beside the target, fsync, rename), and the temp files a killed run left
 * behind. Every function names the path in its error messages. */
#ifndef AEDET_FILE_H
#define AEDET_FILE_H

#include <stdio.h>

#include "aedet/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads a whole file into memory (gzip is NOT undone here). The buffer holds
 * one extra NUL byte after the len bytes; free it with free(). Only regular
 * files of at most AE_MAX_FILE_BYTES are read: a device, FIFO or socket is
 * AE_ERR_IO at once (a FIFO is opened without waiting for a writer). */
#define AE_MAX_FILE_BYTES (4ULL << 30)
AE_API ae_status ae_read_file(const char *path, uint8_t **bytes, size_t *len, ae_error *err);

/* A file of unknown size written atomically: ae_atomic_open gives a stream on
 * a temp file beside path (same folder, so rename is atomic); write to af.f;
 * ae_atomic_commit with ok != 0 checks that every write succeeded, fsyncs,
 * renames over path and fsyncs the folder; with ok == 0 (or on any failure)
 * it removes the temp file and path is untouched. A failed write is reported
 * with its errno ("No space left on device") and path.
 *
 * A path that is a device or FIFO (a terminal, a pipe, /dev/null), or an
 * open descriptor (/dev/fd/N), is opened and written directly: there is nothing to rename
 * over, and a failed write may leave part of the output there. A symbolic
 * link is kept: the file it points to is the one replaced.
 *
 * Temp files are named ".NAME.tmp-XXXXXX", or ".aedet-<hash of NAME>.tmp-XXXXXX"
 * when NAME is too long for that (names stay within NAME_MAX). A successful
 * commit also removes the temp files of the same target that a killed run
 * left behind: those not modified for 10 minutes. */
typedef struct {
    FILE *f;
    char *path, *tmp, *dir;
    void *sink_; /* internal: the descriptor and the first write error */
} ae_atomic_file;

AE_API ae_status ae_atomic_open(const char *path, ae_atomic_file *af, ae_error *err);
/* Whether path names an open descriptor (/dev/fd/N, /proc/self/fd/N,
 * /dev/stdout, /dev/stderr), which is written directly. */
AE_API int ae_names_descriptor(const char *path);
AE_API ae_status ae_atomic_commit(ae_atomic_file *af, int ok, ae_error *err);

/* Writes a whole file atomically: temp file beside it (mkstemp), fsync,
 * rename over path, fsync the folder. On failure the temp file is removed
 * and an existing file at path is left untouched. An existing file's mode is
 * kept; a new file gets 0644. */
AE_API ae_status ae_write_file_atomic(const char *path, const void *bytes, size_t len, ae_error *err);
/* Removes from dir the temp files of targets named *suffix (".png") that a
 * killed run left behind, as a commit does for its own target: for a folder
 * of many files written by ae_write_file_atomic_many. */
AE_API void ae_remove_stale_temps_in(const char *dir, const char *suffix);
/* Removes path (a file whose job is done, such as a finished run's
 * checkpoint) and, like a commit, the stale temp files of writes to it that
 * a killed run left behind. Best effort: nothing to report if it is gone. */
AE_API void ae_remove_file(const char *path);
/* The same without looking for stale temp files: for many files written into
 * one folder (ae_png_write), where a scan per file would cost files^2. */
AE_API ae_status ae_write_file_atomic_many(const char *path, const void *bytes, size_t len, ae_error *err);

#ifdef __cplusplus
}
#endif
#endif
