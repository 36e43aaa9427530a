/* aedet: errors, random numbers and threads shared by every module.
 *
 * Library functions never print and never exit: they return an ae_status and,
 * when the caller passes an ae_error, a message that says what and where
 * (file name, line, step). The command-line tool prints it. */
#ifndef AEDET_COMMON_H
#define AEDET_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AE_VERSION_STRING "0.1.0"

/* The public API: libaedet.so is built with -fvisibility=hidden, and only
 * what the installed headers declare with AE_API is exported from it. */
#if defined(__GNUC__)
#define AE_API __attribute__((visibility("default")))
#else
#define AE_API
#endif

typedef enum {
    AE_OK = 0,
    AE_ERR_USAGE = 1,       /* invalid argument or configuration */
    AE_ERR_DATA = 2,        /* bad input data: corrupt image, bad CSV row, bad IDX */
    AE_ERR_IO = 3,          /* the file system failed: open, read, write, fsync, rename */
    AE_ERR_NOMEM = 4,       /* out of memory, or a size that would overflow */
    AE_ERR_NUMERIC = 5,     /* NaN or Inf in a loss or in the weights */
    AE_ERR_INTERRUPTED = 6, /* stopped on request (Ctrl-C) */
    AE_ERR_FORMAT = 7       /* a model file that is truncated, corrupt or of another version */
} ae_status;

typedef struct {
    ae_status code;
    char message[1024];
} ae_error;

/* Records code and a printf-style message in err (when err is not NULL) and
 * returns code, so that `return ae_fail(err, AE_ERR_IO, "%s: %s", path, why);`
 * reads as one statement. */
AE_API ae_status ae_fail(ae_error *err, ae_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Puts context in front of an error already recorded: "reading a.png: <old>". */
AE_API void ae_error_prefix(ae_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

AE_API void ae_error_clear(ae_error *err);
AE_API const char *ae_status_name(ae_status code);

/* A small, fast, seedable generator (splitmix64 seeding xoshiro256**): our own,
 * so results do not depend on the C library's rand(). */
typedef struct {
    uint64_t s[4];
} ae_rng;

AE_API void ae_rng_seed(ae_rng *rng, uint64_t seed);
AE_API uint64_t ae_rng_next(ae_rng *rng);
AE_API double ae_rng_uniform(ae_rng *rng);            /* [0, 1) with 53 random bits */
AE_API uint64_t ae_rng_below(ae_rng *rng, uint64_t n); /* uniform in [0, n), n > 0, unbiased */
AE_API double ae_rng_normal(ae_rng *rng);             /* standard normal (Box-Muller) */
AE_API void ae_shuffle_sizes(ae_rng *rng, size_t *v, size_t n); /* Fisher-Yates */

/* Threads the library computes with: a model's own thread pool is made with
 * this many when the model is created (or loaded), and each step or score
 * uses at most this many of them; the score rules' per-image loops run on
 * this many OpenMP threads. 0 or less means all cores, and more than
 * AE_MAX_THREADS means AE_MAX_THREADS (so do decoding threads, which the
 * loader counts on its own). Process-wide: set it before making models. */
#define AE_MAX_THREADS 1024
AE_API void ae_set_num_threads(int n);
AE_API int ae_get_num_threads(void);

/* count zeroed floats (NULL if out of memory), for buffers read every training
 * or scoring step: from 2 MiB on, 2 MiB-aligned and on transparent huge pages
 * where Linux offers them (fewer TLB misses). Free with ae_free_floats. */
AE_API float *ae_alloc_floats(size_t count);
AE_API void ae_free_floats(float *p);

/* Overflow-checked size arithmetic: returns 0 and leaves *out alone on overflow. */
AE_API int ae_mul_size(size_t a, size_t b, size_t *out);

/* The most bytes ae_model_load may plan for a model (weights, activations and
 * scratch for its batch), checked before anything is allocated: a file of a
 * few KB can declare 8192x8192 images. 0 restores the default, half of the
 * physical memory. Process-wide, like ae_set_num_threads: set it first. */
AE_API void ae_set_memory_limit(size_t bytes);
AE_API size_t ae_get_memory_limit(void);

#ifdef __cplusplus
}
#endif
#endif
