/* A synthetic surface-inspection data set with known defects and masks, for
 * the image and pixel AUROC of bench/quality.sh (real MVTec AD cannot be
 * downloaded here). Writes an MVTec-AD tree that `--layout mvtec` reads:
 *
 *   OUT/train/good/000.png, OUT/test/good/000.png      normal surfaces
 *   OUT/test/<kind>/000.png                             one or two defects
 *   OUT/ground_truth/<kind>/000_mask.png                255 on the defect, else 0
 *
 *   bench_textures OUT [--size N (128)] [--train N (400)] [--test-good N (100)]
 *                  [--test-defect N per kind (50)] [--seed S (1)] [--kind scratch|blob|pattern]
 *
 * Normal: two sinusoidal gratings (slightly jittered, random phase) around
 * grey 128, a gentle illumination gradient and sensor noise (sd 4): one kind
 * of surface, which a small autoencoder can learn. Defects are local: a
 * scratch (1-3 px line, +-50..90 grey), a blob (soft irregular spot, +-40..80)
 * or a pattern fault (a patch woven at another angle and frequency). Masks
 * mark each pixel a defect changed by at least a quarter of its strength, not
 * grown (a ring of unchanged pixels would dominate thin scratches' pixel
 * AUROC). Sizes and frequencies are relative to the side: alike at any --size.
 *
 * Reproducible: each image has its own generator, seeded from (seed, folder,
 * number), so a smaller set is a prefix of a larger one and --kind does not
 * change the images. Only +, -, *, /, sqrt and floor are used (all exact under
 * IEEE 754; sines are a local polynomial, not libm's), with contraction off,
 * so the bytes are the same on every machine (gcc and clang, -O0 to -O3).
 *
 * Training needs steps more than epochs: 400 images at batch 32 are 10 steps
 * an epoch, and after 20-30 epochs the model in inference mode still outputs
 * little more than the mean (val_loss ~0.007 against ~0.00035 at batch 8). */
#include "aedet/image.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF /* gcc: the Makefile's -ffp-contract=off */
#endif

#define TAU 6.283185307179586
enum { NUM_KINDS = 3 };
static const char *const KINDS[NUM_KINDS] = {"scratch", "blob", "pattern"};

/* sin(TAU * turns): odd Taylor series to x^11 on [-pi/2, pi/2] (error < 6e-8). */
static double tsin(double turns)
{
    double t = turns - floor(turns + 0.5); /* [-0.5, 0.5), then folded into [-0.25, 0.25] */
    t = t > 0.25 ? 0.5 - t : t < -0.25 ? -0.5 - t : t;
    double x = TAU * t, x2 = x * x, term = x, sum = x;
    for (int k = 2; k <= 10; k += 2) {
        term *= -x2 / (double)(k * (k + 1));
        sum += term;
    }
    return sum;
}

static double tcos(double turns) { return tsin(turns + 0.25); }
static double clamp01(double v) { return v < 0 ? 0 : v > 1 ? 1 : v; }
/* At most one draw per expression: C leaves the order of operands and
 * arguments unspecified, and gcc and clang do differ. */
static double uniform(ae_rng *r, double lo, double hi) { return lo + (hi - lo) * ae_rng_uniform(r); }
static double sign(ae_rng *r) { return ae_rng_below(r, 2) ? 1.0 : -1.0; }

/* splitmix64's finaliser: independent streams per (seed, folder, number). */
static uint64_t mix(uint64_t h, uint64_t v)
{
    h += v + 0x9e3779b97f4a7c15ULL;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

typedef struct {
    double fx, fy, phase, amp; /* cycles per pixel along x and y; turns; grey levels */
} grating;

typedef struct {
    int n; /* side */
    grating g[2];
    double *img;   /* n*n grey levels, before noise and rounding */
    double *w;     /* n*n: the current defect's weight */
    uint8_t *mask, *px;
} surface;

static grating make_grating(ae_rng *r, int n, double turns, double cycles, double amp)
{
    double c = cycles * uniform(r, 0.97, 1.03) / n, phase = ae_rng_uniform(r), a = amp * uniform(r, 0.85, 1.15);
    return (grating){c * tcos(turns), c * tsin(turns), phase, a};
}

static double grating_at(const grating *g, int x, int y)
{
    return g->amp * tsin(g->fx * x + g->fy * y + g->phase);
}

/* The normal surface: the same two weaves in every image, jittered a little
 * (angle +-1.8 degrees, frequency +-3%, amplitude +-15%), random phases. Phases,
 * amplitudes and the gradient span a linear space of 7 dimensions; angle and
 * frequency jitter bend the normal set away from it, and 3x as much of it
 * (the first design) cost 0.05 of image AUROC at 60 epochs. */
static void draw_normal(surface *s, ae_rng *r)
{
    int n = s->n;
    s->g[0] = make_grating(r, n, 0.08 + uniform(r, -0.005, 0.005), 7.0, 24.0);
    s->g[1] = make_grating(r, n, 0.33 + uniform(r, -0.005, 0.005), 11.0, 16.0);
    double dir = ae_rng_uniform(r), grad = uniform(r, 0, 12.0) / (0.5 * n); /* at most +-12 at the edges */
    double gx = grad * tcos(dir), gy = grad * tsin(dir);
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++)
            s->img[y * n + x] = 128.0 + grating_at(&s->g[0], x, y) + grating_at(&s->g[1], x, y) +
                                gx * (x - 0.5 * n) + gy * (y - 0.5 * n);
    memset(s->mask, 0, (size_t)n * n);
}

/* Distance from (px, py) to the segment a-b. */
static double seg_dist(double px, double py, double ax, double ay, double bx, double by)
{
    double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    double t = len2 > 0 ? clamp01(((px - ax) * dx + (py - ay) * dy) / len2) : 0;
    double ex = px - ax - t * dx, ey = py - ay - t * dy;
    return sqrt(ex * ex + ey * ey);
}

/* A scratch: a quadratic Bezier (bent up to 15% of its length) as a polyline,
 * antialiased by distance; length 15-50% of the side, both ends inside. */
static void weigh_scratch(surface *s, ae_rng *r)
{
    enum { SEGS = 24 };
    int n = s->n;
    double len = uniform(r, 0.15, 0.5) * n, half = 0.5 * (double)(1 + ae_rng_below(r, 3));
    double dir = ae_rng_uniform(r), ux = tcos(dir), uy = tsin(dir);
    double cx = uniform(r, 0.5 * len + 2, n - 0.5 * len - 2), cy = uniform(r, 0.5 * len + 2, n - 0.5 * len - 2);
    double bend = uniform(r, -0.15, 0.15) * len;
    double p[SEGS + 1][2];
    for (int i = 0; i <= SEGS; i++) {
        double t = (double)i / SEGS, along = (t - 0.5) * len, off = 2 * t * (1 - t) * bend;
        p[i][0] = cx + along * ux - off * uy;
        p[i][1] = cy + along * uy + off * ux;
    }
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            double d = 1e9;
            for (int i = 0; i < SEGS && d > 0; i++) {
                double e = seg_dist(x, y, p[i][0], p[i][1], p[i + 1][0], p[i + 1][1]);
                d = e < d ? e : d;
            }
            s->w[y * n + x] = clamp01(half + 0.5 - d);
        }
}

/* Soft ellipse (radii a, b; rotated by turns): 1 inside q <= 0.5, 0 from q >= 1,
 * smoothstep between, max-ed into w. */
static void weigh_ellipse(surface *s, double cx, double cy, double a, double b, double turns)
{
    double c = tcos(turns), sn = tsin(turns);
    for (int y = 0; y < s->n; y++)
        for (int x = 0; x < s->n; x++) {
            double dx = x - cx, dy = y - cy, u = (dx * c + dy * sn) / a, v = (dy * c - dx * sn) / b;
            double t = clamp01((1.0 - (u * u + v * v)) / 0.5), wt = t * t * (3 - 2 * t);
            double *w = &s->w[y * s->n + x];
            *w = wt > *w ? wt : *w;
        }
}

/* A region of radius rel * side, somewhat elliptic, with up to two lobes
 * (irregular shape); the centre keeps it inside the image. */
static void weigh_region(surface *s, ae_rng *r, double rel, int lobes)
{
    int n = s->n;
    double rad = rel * n, m = 1.8 * rad + 2;
    double cx = uniform(r, m, n - m), cy = uniform(r, m, n - m);
    double b = rad * uniform(r, 0.6, 1.0), turns = ae_rng_uniform(r);
    weigh_ellipse(s, cx, cy, rad, b, turns);
    for (int i = 0; i < lobes; i++) {
        double dir = ae_rng_uniform(r), off = uniform(r, 0.5, 0.8) * rad, lr = uniform(r, 0.4, 0.7) * rad;
        double lb = lr * uniform(r, 0.6, 1.0), lt = ae_rng_uniform(r);
        weigh_ellipse(s, cx + off * tcos(dir), cy + off * tsin(dir), lr, lb, lt);
    }
}

/* Draws one defect of `kind` into img, marks it in mask; returns the pixels marked. */
static size_t draw_defect(surface *s, ae_rng *r, int kind)
{
    size_t count = (size_t)s->n * s->n;
    memset(s->w, 0, count * sizeof *s->w);
    double delta = sign(r);
    grating alt = {0};
    size_t marked = 0;
    if (kind == 0) {
        weigh_scratch(s, r);
        delta *= uniform(r, 50, 90);
    } else if (kind == 1) {
        weigh_region(s, r, uniform(r, 0.03, 0.10), 2);
        delta *= uniform(r, 40, 80);
    } else { /* the first weave turned 45-90 degrees, 1.4-2x as fine, in a patch */
        weigh_region(s, r, uniform(r, 0.05, 0.09), 1);
        double turns = 0.08 + delta * uniform(r, 0.125, 0.25), cycles = 7.0 * uniform(r, 1.4, 2.0); /* delta: +-1 */
        alt = make_grating(r, s->n, turns, cycles, 36.0);
    }
    for (size_t i = 0; i < count; i++) {
        if (s->w[i] <= 0)
            continue;
        int x = (int)(i % (size_t)s->n), y = (int)(i / (size_t)s->n);
        double change = kind < 2 ? delta
                                 : grating_at(&alt, x, y) - grating_at(&s->g[0], x, y) - grating_at(&s->g[1], x, y);
        s->img[i] += s->w[i] * change;
        if (s->w[i] >= 0.25 && !s->mask[i])
            s->mask[i] = 255, marked++;
    }
    return marked;
}

/* Sensor noise (Irwin-Hall of 4 uniforms, sd 4) and rounding to bytes. */
static void finish(surface *s, ae_rng *r)
{
    for (size_t i = 0; i < (size_t)s->n * s->n; i++) {
        double u = 0;
        for (int k = 0; k < 4; k++)
            u += ae_rng_uniform(r);
        double v = floor(s->img[i] + (u - 2.0) * 4.0 * 1.7320508075688772 + 0.5);
        s->px[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

static int make_dir(const char *path)
{
    struct stat st;
    if (mkdir(path, 0755) == 0 || (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
        return 1;
    fprintf(stderr, "bench_textures: cannot create folder %s: %s\n", path, strerror(errno ? errno : ENOTDIR));
    return 0;
}

static int write_png(const char *path, const uint8_t *px, int n)
{
    ae_error err;
    if (ae_png_write(path, px, n, n, 1, &err) == AE_OK)
        return 1;
    fprintf(stderr, "bench_textures: %s\n", err.message);
    return 0;
}

enum { PATH_BYTES = 4096 };

/* Formats a path into p (PATH_BYTES); 0, with a message, when it is too long. */
__attribute__((format(printf, 2, 3))) static int path_of(char *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(p, PATH_BYTES, fmt, ap);
    va_end(ap);
    if (len >= 0 && len < PATH_BYTES)
        return 1;
    fprintf(stderr, "bench_textures: a path under OUT_DIR is too long\n");
    return 0;
}

/* Creates OUT/a and OUT/a/b. */
static int make_dirs(const char *out, const char *a, const char *b)
{
    char p[PATH_BYTES];
    return path_of(p, "%s/%s", out, a) && make_dir(p) && path_of(p, "%s/%s/%s", out, a, b) && make_dir(p);
}

/* Writes `count` images of train/good (kind -1), test/good (-2) or test/<kind>. */
static int write_folder(const char *out, int kind, int count, surface *s, uint64_t seed)
{
    const char *split = kind == -1 ? "train" : "test", *cls = kind < 0 ? "good" : KINDS[kind];
    if (!make_dirs(out, split, cls) || (kind >= 0 && count > 0 && !make_dirs(out, "ground_truth", cls)))
        return 0;
    int digits = 3; /* wide enough that names sort in number order */
    for (int c = count - 1; c >= 1000; c /= 10)
        digits++;
    for (int i = 0; i < count; i++) {
        ae_rng r;
        ae_rng_seed(&r, mix(mix(seed, (uint64_t)(kind + 2)), (uint64_t)i));
        draw_normal(s, &r);
        /* One defect, or two in a third of them when the first is small (3% at most, roughly). */
        size_t defects = kind < 0 ? 0 : 1 + (ae_rng_below(&r, 3) == 0), marked = 0;
        for (size_t d = 0; d < defects && marked < 0.015 * s->n * s->n; d++)
            marked += draw_defect(s, &r, kind);
        finish(s, &r);
        char path[PATH_BYTES];
        if (!path_of(path, "%s/%s/%s/%0*d.png", out, split, cls, digits, i) || !write_png(path, s->px, s->n))
            return 0;
        if (kind >= 0 && (!path_of(path, "%s/ground_truth/%s/%0*d_mask.png", out, cls, digits, i) ||
                          !write_png(path, s->mask, s->n)))
            return 0;
    }
    return 1;
}

/* Prints why (printf-style) and the usage; returns exit status 2, as aedet does. */
__attribute__((format(printf, 1, 2))) static int usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_textures: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: bench_textures OUT_DIR [--size N (128)] [--train N (400)] [--test-good N (100)] "
                    "[--test-defect N per kind (50)] [--seed S (1)] [--kind scratch|blob|pattern]\n");
    return 2;
}

/* OUT must be new or empty: files left from another run would join the set. */
static int is_empty_or_missing(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT;
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)))
        empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    return empty;
}

enum { SIZE, TRAIN, TEST_GOOD, TEST_DEFECT, SEED, NUM_OPTS };
static const char *const OPTS[NUM_OPTS] = {"--size", "--train", "--test-good", "--test-defect", "--seed"};
static const long long LO[NUM_OPTS] = {32, 1, 0, 0, 0}, HI[NUM_OPTS] = {4096, 1000000, 1000000, 1000000, INT64_MAX};

/* Fills out, v[] and kind; returns 0, or the exit status after a message. */
static int parse_args(int argc, char **argv, const char **out, long long *v, int *kind)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            if (*out)
                return usage("more than one OUT_DIR");
            *out = a;
            continue;
        }
        int o = 0;
        while (o < NUM_OPTS && strcmp(a, OPTS[o]))
            o++;
        if (o == NUM_OPTS && strcmp(a, "--kind"))
            return usage("unknown option %s", a);
        if (!val)
            return usage("%s needs a value", a);
        i++;
        char *end;
        errno = 0;
        if (o < NUM_OPTS) {
            v[o] = strtoll(val, &end, 10);
            if (errno || end == val || *end || v[o] < LO[o] || v[o] > HI[o])
                return usage("%s %s: give a whole number from %lld to %lld", a, val, LO[o], HI[o]);
            continue;
        }
        for (*kind = 0; *kind < NUM_KINDS && strcmp(val, KINDS[*kind]); ++*kind) {
        }
        if (*kind == NUM_KINDS)
            return usage("--kind %s: choose scratch, blob or pattern", val);
    }
    return *out ? 0 : usage("OUT_DIR is missing");
}

int main(int argc, char **argv)
{
    const char *out = NULL;
    long long v[NUM_OPTS] = {128, 400, 100, 50, 1};
    int kind = -1, n, ok, status = parse_args(argc, argv, &out, v, &kind);
    if (status)
        return status;
    if (!is_empty_or_missing(out))
        return usage("OUT_DIR exists and is not an empty folder (remove it first)");
    n = (int)v[SIZE];
    surface s = {.n = n};
    s.img = malloc((size_t)n * n * sizeof *s.img);
    s.w = malloc((size_t)n * n * sizeof *s.w);
    s.mask = malloc((size_t)n * n);
    s.px = malloc((size_t)n * n);
    if (!s.img || !s.w || !s.mask || !s.px) {
        fprintf(stderr, "bench_textures: out of memory\n");
        return 1;
    }
    ok = make_dir(out) && write_folder(out, -1, (int)v[TRAIN], &s, (uint64_t)v[SEED]) &&
         write_folder(out, -2, (int)v[TEST_GOOD], &s, (uint64_t)v[SEED]);
    for (int k = 0; k < NUM_KINDS && ok; k++)
        if (kind < 0 || kind == k)
            ok = write_folder(out, k, (int)v[TEST_DEFECT], &s, (uint64_t)v[SEED]);
    free(s.img), free(s.w), free(s.mask), free(s.px);
    if (!ok)
        return 4; /* aedet's exit status for an I/O error */
    printf("bench_textures: %s: %lld train, %lld test good, %lld per defect kind (%s), %dx%d gray, seed %lld\n", out,
           v[TRAIN], v[TEST_GOOD], v[TEST_DEFECT], kind < 0 ? "scratch, blob, pattern" : KINDS[kind], n, n, v[SEED]);
    return 0;
}
