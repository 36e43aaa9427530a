/* The folder layout's flags (--normal-dir, --abnormal-dir, --mask-dir,
 * --mask-suffix, --normal-test-dir, --test-split), class names in place of
 * class numbers, and the training images' ids that let scoring say when it
 * scores images the model trained on. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *cli_data_root(const cli_data_args *d, const char *data_path)
{
    return data_path ? data_path : d->normal_dir;
}

int cli_folder_flags_alone(const cli_command *cmd, const cli_data_args *d)
{
    const char *given = d->abnormal.count ? "--abnormal-dir" : d->mask_dir ? "--mask-dir"
                        : d->mask_suffix ? "--mask-suffix" : d->normal_test_dir ? "--normal-test-dir"
                        : !isnan(d->test_split) ? "--test-split" : NULL;
    if (!d->normal_dir && given)
        return cli_usage_error(cmd, "%s belongs to the folder layout: give --normal-dir DIR too", given);
    return 0;
}

int cli_folder_source(const cli_command *cmd, const cli_data_args *d, const char *root, uint64_t seed, int test,
                      ae_folder_layout *fl, ae_source *src)
{
    int rc = cli_folder_flags_alone(cmd, d);
    if (rc)
        return rc;
    if (!d->normal_dir) {
        if (!strcasecmp(d->layout, "folders"))
            return cli_usage_error(cmd, "--layout folders needs --normal-dir DIR");
        return 0;
    }
    if (root)
        return cli_usage_error(cmd, "give DATA or --normal-dir, not both ('%s' and --normal-dir %s)", root,
                               d->normal_dir);
    if (strcasecmp(d->layout, "auto") && strcasecmp(d->layout, "folders"))
        return cli_usage_error(cmd, "--normal-dir is the folder layout: it does not go with --layout %s", d->layout);
    if (d->labels)
        return cli_usage_error(cmd, "--normal-dir takes its labels from the folders: drop --labels");
    if (d->normal_test_dir && d->test_split > 0)
        return cli_usage_error(cmd, "give --normal-test-dir or --test-split, not both");
    if (!isnan(d->test_split) && !(d->test_split >= 0 && d->test_split < 1))
        return cli_usage_error(cmd, "--test-split wants a fraction in [0, 1), not %g", d->test_split);
    *fl = (ae_folder_layout){
        .normal_dir = d->normal_dir,
        .abnormal_dirs = d->abnormal.items,
        .num_abnormal = d->abnormal.count,
        .normal_test_dir = d->normal_test_dir,
        .mask_dir = d->mask_dir,
        .mask_suffix = d->mask_suffix,
        .test_split = isnan(d->test_split) ? 0 : d->test_split,
        .seed = seed,
        .test = test,
    };
    src->kind = AE_SOURCE_FOLDERS;
    src->folders = fl;
    return 0;
}

int cli_list_classes(const cli_command *cmd, const char *flag, const cli_list *l, const char *const *names,
                     int num_names, int *out, int max, int *count)
{
    *count = 0;
    for (int i = 0; i < l->count; i++) {
        for (const char *p = l->items[i]; *p;) {
            size_t len = strcspn(p, ",");
            int id = -1;
            for (int c = 0; names && c < num_names && id < 0; c++)
                if (names[c] && strlen(names[c]) == len && !strncmp(names[c], p, len))
                    id = c;
            if (id < 0) {
                char *end;
                errno = 0;
                long v = strtol(p, &end, 10);
                if (end == p + len && len && !errno && v >= 0 && v <= 1000000 && p[0] != '-' && p[0] != '+')
                    id = (int)v;
            }
            if (id < 0) {
                char known[512] = "";
                for (int c = 0; names && c < num_names && strlen(known) < sizeof known - 64; c++)
                    if (names[c])
                        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", c ? ", " : "",
                                 names[c]);
                return cli_usage_error(cmd, "--%s: no class '%.*s' (%s%s)", flag, (int)len, p,
                                       known[0] ? "the classes are " : "give class numbers such as 5 or 1,7",
                                       known);
            }
            if (*count == max)
                return cli_usage_error(cmd, "--%s: at most %d classes", flag, max);
            out[(*count)++] = id;
            p += len + (p[len] == ',');
        }
    }
    return 0;
}

static const char *const *class_names;
static int num_class_names;

void cli_set_class_names(const char *const *names, int num_names)
{
    class_names = names;
    num_class_names = names ? num_names : 0;
}

const char *cli_class_label(int id, char *buf, size_t size)
{
    if (id >= 0 && id < num_class_names && class_names[id])
        return class_names[id];
    snprintf(buf, size, "%d", id);
    return buf;
}

/* FNV-1a of the file's real path, in 63 bits; 0 when it has none. */
static int64_t image_id(const ae_item *it)
{
    if (!it->path)
        return 0;
    char *real = realpath(it->path, NULL);
    if (!real)
        return 0;
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = real; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    free(real);
    return (int64_t)(h >> 1) | 1;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

ae_status cli_store_training_ids(const ae_dataset *ds, const size_t *items, size_t n, ae_meta *meta, ae_error *err)
{
    int64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids)
        return ae_fail(err, AE_ERR_NOMEM, "out of memory for %zu image ids", n);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if ((ids[m] = image_id(&ds->items[items[i]])) != 0)
            m++;
    qsort(ids, m, sizeof *ids, cmp_i64);
    ae_status s = m ? ae_meta_set_ints(meta, AE_KEY_TRAIN_IDS, ids, m, err) : AE_OK;
    free(ids);
    return s;
}

void cli_warn_trained_overlap(const ae_meta *meta, const ae_dataset *ds, const size_t *items, size_t n)
{
    size_t num_ids = 0, overlap = 0, first = 0;
    const int64_t *ids = ae_meta_get_ints(meta, AE_KEY_TRAIN_IDS, &num_ids);
    if (!ids || !num_ids || cli_out.json)
        return;
    for (size_t i = 0; i < n; i++) {
        int64_t id = image_id(&ds->items[items[i]]);
        if (id && bsearch(&id, ids, num_ids, sizeof *ids, cmp_i64)) {
            if (!overlap++)
                first = items[i];
        }
    }
    if (!overlap)
        return;
    char buf[64];
    fprintf(stderr, "aedet: warning: %zu of the %zu scored images are images the model trained on (", overlap, n);
    cli_put_text(stderr, ae_item_name(&ds->items[first], buf, sizeof buf));
    fprintf(stderr, "%s): their errors are low by construction and the metrics include them; score held-out "
                    "images (the folder layout's --test-split or --normal-test-dir, or --split validation)\n",
            overlap > 1 ? ", ..." : "");
}

const char **cli_csv_class_names(const ae_csv *csv, const char *column, const int *classes, int *num)
{
    *num = 0;
    int col = ae_csv_column(csv, column), max = -1;
    if (col < 0)
        return NULL;
    for (size_t r = 0; r < csv->num_rows; r++)
        max = classes[r] > max ? classes[r] : max;
    const char **names = max >= 0 && max < 65536 ? calloc((size_t)max + 1, sizeof *names) : NULL;
    if (!names)
        return NULL;
    for (size_t r = 0; r < csv->num_rows; r++)
        if (classes[r] >= 0 && !names[classes[r]] && csv->row_columns[r] > col && csv->rows[r][col][0])
            names[classes[r]] = csv->rows[r][col];
    *num = max + 1;
    return names;
}

/* Whether path has a folder named good ("x/good/y.png", "good/y.png"). */
static int in_good_folder(const char *path)
{
    for (const char *p = strstr(path, "good/"); p; p = strstr(p + 1, "good/"))
        if (p == path || p[-1] == '/')
            return 1;
    return 0;
}

int cli_csv_good_class(const ae_csv *csv, const int *classes, const char *const *names, int num)
{
    for (int c = 0; names && c < num; c++)
        if (names[c] && !strcmp(names[c], "good"))
            return c;
    /* An older scores CSV of an MVTec test split: test/good/... */
    int col = ae_csv_column(csv, "image"), good = -1;
    if (col < 0)
        return -1;
    for (size_t r = 0; r < csv->num_rows; r++) {
        if (csv->row_columns[r] <= col)
            return -1;
        int is_good = in_good_folder(csv->rows[r][col]);
        if (is_good && good < 0)
            good = classes[r];
        if (is_good != (good >= 0 && classes[r] == good))
            return -1; /* good images in two classes, or a good class with other images */
    }
    return good;
}
