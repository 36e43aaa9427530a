/* Data sets of files named one by one (a single image, or a list of paths
 * from a file or standard input), and the sizes of a data set's images read
 * from their headers alone (for the default model size and the summary that
 * train prints). */
#include "data/data_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- image headers ---------------------------------------------------- */

/* Opens path for reading if it is a regular file (never waits on a FIFO). */
static FILE *open_regular(const char *path, const char **why)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        *why = strerror(errno);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        *why = S_ISDIR(st.st_mode) ? "is a folder, not a file" : "not a regular file (a device, FIFO or socket)";
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        *why = strerror(errno);
        close(fd);
    }
    return f;
}

static int read_u16be(FILE *f)
{
    int hi = getc(f), lo = getc(f);
    return hi == EOF || lo == EOF ? -1 : hi << 8 | lo;
}

/* The frame header (SOFn) of a JPEG, after its SOI: markers are walked by
 * their lengths, so EXIF blocks cost a seek, not a read. */
static int probe_jpeg(FILE *f, ae_image_info *info)
{
    for (int markers = 0; markers < 4096; markers++) {
        int b = getc(f);
        if (b != 0xff)
            return -1;
        int m;
        do
            m = getc(f);
        while (m == 0xff);
        if (m == EOF || m == 0xd9 || m == 0xda) /* end of image, or scan data before any frame */
            return -1;
        if (m == 0x01 || (m >= 0xd0 && m <= 0xd8)) /* markers without a length */
            continue;
        int len = read_u16be(f);
        if (len < 2)
            return -1;
        if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
            unsigned char s[6];
            if (fread(s, 1, 6, f) != 6)
                return -1;
            info->height = s[1] << 8 | s[2];
            info->width = s[3] << 8 | s[4];
            info->channels = s[5] == 1 ? 1 : 3;
            return info->height > 0 && info->width > 0 ? 0 : -1; /* height 0: given later (DNL) */
        }
        if (fseek(f, len - 2, SEEK_CUR) != 0)
            return -1;
    }
    return -1;
}

ae_status ae_image_probe(const char *path, ae_image_info *info, ae_error *err)
{
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    *info = (ae_image_info){0};
    const char *why = NULL;
    FILE *f = open_regular(path, &why);
    if (!f)
        return ae_fail(err, AE_ERR_IO, "%s: cannot open: %s", path, why);
    unsigned char h[26];
    size_t n = fread(h, 1, sizeof h, f);
    int r = -1;
    const char *kind = "JPEG or PNG image";
    if (n >= 3 && h[0] == 0xff && h[1] == 0xd8 && h[2] == 0xff) {
        kind = "JPEG";
        r = fseek(f, 2, SEEK_SET) == 0 ? probe_jpeg(f, info) : -1;
    } else if (n >= 8 && memcmp(h, png_magic, 8) == 0) {
        kind = "PNG";
        if (n >= 26 && memcmp(h + 12, "IHDR", 4) == 0) {
            uint32_t w = (uint32_t)h[16] << 24 | (uint32_t)h[17] << 16 | (uint32_t)h[18] << 8 | h[19];
            uint32_t ht = (uint32_t)h[20] << 24 | (uint32_t)h[21] << 16 | (uint32_t)h[22] << 8 | h[23];
            int color = h[25];
            if (w > 0 && ht > 0 && w <= (uint32_t)AE_IMAGE_MAX_SIDE && ht <= (uint32_t)AE_IMAGE_MAX_SIDE) {
                info->width = (int)w;
                info->height = (int)ht;
                info->channels = color == 0 || color == 4 ? 1 : 3; /* gray, gray + alpha */
                r = 0;
            }
        }
    }
    fclose(f);
    if (r != 0)
        return ae_fail(err, AE_ERR_DATA, "%s: no %s header with a size", path, kind);
    return AE_OK;
}

ae_status ae_dataset_item_info(const ae_dataset *ds, size_t i, ae_image_info *info, ae_error *err)
{
    *info = (ae_image_info){0};
    if (i >= ds->count)
        return ae_fail(err, AE_ERR_USAGE, "item %zu of a data set of %zu", i, ds->count);
    const ae_item *item = &ds->items[i];
    if (item->path)
        return ae_image_probe(item->path, info, err);
    const ae_idx *im = &ds->idx_images;
    info->height = im->dims[1];
    info->width = im->dims[2];
    info->channels = im->ndim == 4 ? im->dims[3] : 1;
    return AE_OK;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int cmp_pair(const void *a, const void *b)
{
    const int *x = a, *y = b;
    return x[0] != y[0] ? (x[0] > y[0]) - (x[0] < y[0]) : (x[1] > y[1]) - (x[1] < y[1]);
}

ae_status ae_dataset_size_stats(const ae_dataset *ds, const size_t *items, size_t n, ae_size_stats *out,
                                ae_error *err)
{
    *out = (ae_size_stats){0};
    size_t cap = n ? n : 1;
    int *hs = malloc(cap * sizeof *hs), *ws = malloc(cap * sizeof *ws), *pairs = malloc(2 * cap * sizeof *pairs);
    if (!hs || !ws || !pairs) {
        free(hs);
        free(ws);
        free(pairs);
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for %zu image sizes", n);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        ae_image_info info;
        ae_error ignored;
        if (ae_dataset_item_info(ds, items[i], &info, &ignored) != AE_OK) {
            out->unreadable++; /* the loader says why, under the bad-file policy */
            continue;
        }
        if (k == 0) {
            out->first_height = info.height;
            out->first_width = info.width;
        }
        hs[k] = info.height;
        ws[k] = info.width;
        pairs[2 * k] = info.height;
        pairs[2 * k + 1] = info.width;
        k++;
    }
    out->count = k;
    if (k) {
        qsort(hs, k, sizeof *hs, cmp_int);
        qsort(ws, k, sizeof *ws, cmp_int);
        qsort(pairs, k, 2 * sizeof *pairs, cmp_pair);
        out->min_height = hs[0];
        out->max_height = hs[k - 1];
        out->median_height = hs[(k - 1) / 2];
        out->min_width = ws[0];
        out->max_width = ws[k - 1];
        out->median_width = ws[(k - 1) / 2];
        out->distinct = 1;
        for (size_t i = 1; i < k; i++)
            out->distinct += cmp_pair(pairs + 2 * i, pairs + 2 * (i - 1)) != 0;
    }
    free(hs);
    free(ws);
    free(pairs);
    return AE_OK;
}

/* One side: the nearest multiple of step, at least step. */
static int round_to(double v, int step)
{
    int r = (int)((v + step / 2.0) / step) * step;
    return r < step ? step : r;
}

void ae_default_input_size(int height, int width, int num_filters, int long_side, int *out_h, int *out_w)
{
    int step = 1 << (num_filters > 0 && num_filters < 16 ? num_filters : 0);
    double h = height > 0 ? height : 1, w = width > 0 ? width : 1;
    double longest = h > w ? h : w;
    if (long_side > 0 && longest > long_side) {
        h = h * long_side / longest;
        w = w * long_side / longest;
    }
    *out_h = round_to(h, step);
    *out_w = round_to(w, step);
}

/* ---- single files and lists ------------------------------------------- */

int data_looks_like_image(const char *path)
{
    const char *why;
    FILE *f = open_regular(path, &why);
    if (!f)
        return 0;
    unsigned char h[8];
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    return (n >= 3 && h[0] == 0xff && h[1] == 0xd8 && h[2] == 0xff) || (n == 8 && !memcmp(h, png_magic, 8));
}

static ae_status describe_files(ae_dataset *ds, const char *what, const char *name, ae_error *err)
{
    char buf[1024];
    if (ds->count == 1 && !strcmp(what, "image"))
        snprintf(buf, sizeof buf, "image %s", name);
    else
        snprintf(buf, sizeof buf, "%s %s: %zu image%s, unlabelled", what, name, ds->count, ds->count == 1 ? "" : "s");
    ds->description = strdup(buf);
    return ds->description ? AE_OK : ae_fail(err, AE_ERR_NOMEM, "out of memory");
}

ae_status data_open_single(const ae_source *src, ae_dataset *ds, ae_error *err)
{
    if (src->labels)
        return ae_fail(err, AE_ERR_USAGE, "%s is one image: labels come with a folder, a CSV or an IDX file",
                       src->root);
    size_t cap = 0;
    char *path = strdup(src->root);
    ae_status s = path ? data_add_item(ds, &cap, path, 0, -1, NULL, err)
                       : ae_fail(err, AE_ERR_NOMEM, "out of memory");
    return s == AE_OK ? describe_files(ds, "image", src->root, err) : s;
}

ae_status ae_dataset_open_list(const ae_source *src, const char *text, size_t len, const char *name,
                               ae_dataset *out, ae_error *err)
{
    *out = (ae_dataset){0};
    if (!name)
        name = "the list";
    if (src && src->labels) /* a CSV of paths and labels is the csv layout */
        return ae_fail(err, AE_ERR_USAGE, "%s: a list of image paths has no labels (give a labels CSV as DATA's "
                       "--labels with a folder)", name);
    ae_bad_policy policy = src ? src->bad_policy : AE_BAD_STOP;
    size_t cap = 0, line = 0, listed = 0;
    ae_status s = AE_OK;
    for (size_t pos = 0; pos < len && s == AE_OK;) {
        const char *start = text + pos, *nl = memchr(start, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - start) : len - pos;
        pos += n + (nl != NULL);
        line++;
        if (n && start[n - 1] == '\r')
            n--;
        if (n == 0 || start[0] == '#')
            continue;
        if (memchr(start, '\0', n)) {
            s = ae_fail(err, AE_ERR_DATA, "%s line %zu: a NUL byte in the path (is it a list of paths?)", name, line);
            break;
        }
        char *path = strndup(start, n);
        if (!path) {
            s = ae_fail(err, AE_ERR_NOMEM, "out of memory reading %s", name);
            break;
        }
        listed++;
        if (src && !data_glob_keep(src, path)) {
            free(path);
            continue;
        }
        const char *why = NULL;
        FILE *f = open_regular(path, &why);
        if (f)
            fclose(f);
        if (!why && !data_looks_like_image(path))
            why = "not a JPEG or PNG image (unknown first bytes)";
        if (why && policy == AE_BAD_STOP) {
            s = ae_fail(err, AE_ERR_DATA, "%s line %zu: %s: %s", name, line, path, why);
            free(path);
            break;
        }
        /* under AE_BAD_SKIP the loader lists it with the other bad files */
        s = data_add_item(out, &cap, path, (int64_t)out->count, -1, NULL, err);
    }
    if (s == AE_OK && out->count == 0)
        s = ae_fail(err, AE_ERR_DATA, "%s: no image paths%s", name,
                    listed ? " left after the include/exclude patterns" : " (one path a line)");
    if (s == AE_OK)
        s = describe_files(out, "list", name, err);
    if (s != AE_OK)
        ae_dataset_free(out);
    return s;
}
