/* What every subcommand shares: exit codes, error and progress printing, and
 * turning the data flags into a data set, a selection and a loader. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

cli_output cli_out;

int cli_exit_code(ae_status s)
{
    switch (s) {
    case AE_OK: return EXIT_OK;
    case AE_ERR_USAGE: return EXIT_USAGE;
    case AE_ERR_DATA: return EXIT_BAD_DATA;
    case AE_ERR_IO: return EXIT_IO;
    case AE_ERR_FORMAT: return EXIT_BAD_MODEL;
    case AE_ERR_NUMERIC: return EXIT_DIVERGED;
    case AE_ERR_INTERRUPTED: return EXIT_INTERRUPTED;
    case AE_ERR_NOMEM: return EXIT_INTERNAL;
    }
    return EXIT_INTERNAL;
}

int cli_report_error(const ae_error *err)
{
    cli_progress_end();
    if (cli_out.json) {
        cli_json j;
        cli_json_begin(&j, "error");
        cli_json_str(&j, "kind", ae_status_name(err->code));
        cli_json_str(&j, "message", err->message);
        cli_json_int(&j, "exit", cli_exit_code(err->code));
        cli_json_end(&j);
    }
    fprintf(stderr, "aedet: %s: ", ae_status_name(err->code));
    cli_put_text(stderr, err->message); /* it names files */
    fputc('\n', stderr);
    return cli_exit_code(err->code);
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int progress_shown;

void cli_progress(const char *what, size_t done, size_t total, double started)
{
    if (cli_out.quiet || cli_out.json || !isatty(STDERR_FILENO))
        return; /* plain output gets per-epoch lines instead */
    double elapsed = cli_now() - started;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    double eta = rate > 0 ? (double)(total - done) / rate : 0;
    int width = 30, filled = total ? (int)((double)width * (double)done / (double)total) : width;
    char bar[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r%-14s [%s] %zu/%zu  %.0f images/s  ETA %.0fs   ", what, bar, done, total, rate, eta);
    progress_shown = 1;
}

void cli_progress_end(void)
{
    if (progress_shown) {
        fprintf(stderr, "\r%*s\r", 100, "");
        progress_shown = 0;
    }
}

void cli_data_defaults(cli_data_args *d)
{
    *d = (cli_data_args){0};
    d->contamination = 0.01;
    d->memory_budget = (size_t)1 << 30;
    d->batch = 32;
    d->bad_files = "stop";
    d->layout = "auto";
    d->test_split = NAN; /* not given: 0 for train, the model's for score */
}

static int parse_layout(const char *s, ae_source_kind *kind)
{
    static const struct { const char *name; ae_source_kind kind; } layouts[] = {
        {"auto", AE_SOURCE_AUTO},       {"folder", AE_SOURCE_FOLDER}, {"csv", AE_SOURCE_CSV},
        {"classes", AE_SOURCE_CLASS_FOLDERS}, {"mvtec", AE_SOURCE_MVTEC}, {"idx", AE_SOURCE_IDX},
        {"folders", AE_SOURCE_FOLDERS},
    };
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        if (!strcasecmp(s, layouts[i].name)) {
            *kind = layouts[i].kind;
            return 1;
        }
    return 0;
}

int cli_open_data(const cli_command *cmd, const cli_data_args *d, const char *root, uint64_t seed,
                  int normal_selects, ae_dataset *ds, size_t **items, size_t *count)
{
    ae_source src = {0};
    if (!parse_layout(d->layout, &src.kind))
        return cli_usage_error(cmd, "--layout wants auto, folder, csv, classes, mvtec, idx or folders, not '%s'",
                               d->layout);
    if (strcmp(d->bad_files, "stop") && strcmp(d->bad_files, "skip"))
        return cli_usage_error(cmd, "--bad-files wants stop or skip, not '%s'", d->bad_files);
    if (!(d->contamination >= 0 && d->contamination <= 1))
        return cli_usage_error(cmd, "--contamination wants a fraction in [0, 1], not %g", d->contamination);
    src.root = root;
    src.labels = d->labels;
    src.path_column = d->path_column;
    src.label_column = d->label_column;
    src.include = d->include.items;
    src.num_include = d->include.count;
    src.exclude = d->exclude.items;
    src.num_exclude = d->exclude.count;
    src.mvtec_split = d->mvtec_split;
    src.bad_policy = strcmp(d->bad_files, "skip") ? AE_BAD_STOP : AE_BAD_SKIP;
    src.allow_outside = d->allow_outside;
    /* The folder layout: training takes its training split, scoring the rest. */
    ae_folder_layout folders;
    int normal[32], anomaly[32], nn = 0, na = 0, rc;
    if ((rc = cli_folder_source(cmd, d, root, seed, !normal_selects, &folders, &src)))
        return rc;
    root = cli_data_root(d, root);
    if (d->anomaly.count && !d->normal.count)
        return cli_usage_error(cmd, "--anomaly-class needs --normal-class too");

    ae_error err = {0};
    ae_status s = cli_dataset_open(&src, ds, &err); /* "-" and "@FILE": lists.c */
    if (s != AE_OK)
        return cli_report_error(&err);
    for (size_t i = 0; i < ds->num_notes && i < 20; i++) {
        fputs("aedet: warning: ", stderr);
        cli_put_text(stderr, ds->notes[i]);
        fputc('\n', stderr);
    }
    if (ds->num_notes > 20)
        fprintf(stderr, "aedet: warning: ... and %zu more like these\n", ds->num_notes - 20);
    if ((d->normal.count || d->anomaly.count) && ds->num_classes == 0) {
        ae_dataset_free(ds);
        return cli_usage_error(cmd, "--normal-class/--anomaly-class need labels, and %s has none "
                               "(give --labels, or a class-per-folder, MVTec or folder layout)", root);
    }
    /* Classes by name (the folder's) or number. */
    const char *const *names = (const char *const *)ds->class_names;
    if ((rc = cli_list_classes(cmd, "normal-class", &d->normal, names, ds->num_classes, normal, 32, &nn)) ||
        (rc = cli_list_classes(cmd, "anomaly-class", &d->anomaly, names, ds->num_classes, anomaly, 32, &na))) {
        ae_dataset_free(ds);
        return rc;
    }
    /* Without --anomaly-class, scoring takes every image: --normal-class then
     * only says which labels are normal. */
    if (!normal_selects && na == 0)
        nn = 0;
    ae_recipe recipe = {normal, nn, anomaly, na, d->contamination, seed};
    s = ae_recipe_select(ds, &recipe, items, count, &err);
    if (s == AE_OK && *count == 0)
        s = ae_fail(&err, AE_ERR_DATA, "%s: no images selected", root);
    if (s != AE_OK) {
        ae_dataset_free(ds);
        return cli_report_error(&err);
    }
    return 0;
}

int cli_make_loader(const cli_data_args *d, const ae_dataset *ds, const size_t *items, size_t count,
                    size_t memory_budget, const ae_config *cfg, int one_pass, ae_loader **loader)
{
    ae_loader_config lc = {.height = cfg->height, .width = cfg->width, .channels = cfg->channels,
                           .memory_budget = memory_budget, .threads = d->threads,
                           .bad_policy = strcmp(d->bad_files, "skip") ? AE_BAD_STOP : AE_BAD_SKIP,
                           .one_pass = one_pass};
    ae_error err = {0};
    ae_status s = ae_loader_create(ds, items, count, &lc, loader, &err);
    if (s != AE_OK)
        return cli_report_error(&err);
    if (!one_pass || !ae_loader_is_streaming(*loader))
        cli_print_bad_files(*loader);
    return 0;
}

void cli_print_bad_files(const ae_loader *l)
{
    size_t n = ae_loader_num_bad(l);
    if (n == 0)
        return;
    fprintf(stderr, "aedet: skipped %zu bad file%s:\n", n, n == 1 ? "" : "s");
    for (size_t i = 0; i < n; i++) {
        fputs("  ", stderr);
        cli_put_text(stderr, ae_loader_bad(l, i));
        fputc('\n', stderr);
    }
}

void cli_csv_field(FILE *f, const char *field)
{
    if (!strpbrk(field, ",\"\r\n")) {
        fputs(field, f);
        return;
    }
    fputc('"', f);
    for (const char *p = field; *p; p++) {
        if (*p == '"')
            fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

int64_t cli_selection_fingerprint(const ae_dataset *ds, const size_t *items, size_t n)
{
    /* FNV-1a over the selected items' names. */
    uint64_t h = 1469598103934665603ULL;
    char buf[64];
    for (size_t i = 0; i < n; i++) {
        const char *name = ae_item_name(&ds->items[items[i]], buf, sizeof buf);
        for (const char *p = name; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    return (int64_t)(h >> 1);
}

void cli_put_text(FILE *f, const char *s)
{
    if (!isatty(fileno(f))) {
        fputs(s, f);
        return;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        /* C0 controls and DEL, and C1 controls (U+0080..U+009F, UTF-8 C2 80..C2 9F:
         * some terminals take U+009B as CSI). */
        if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            fprintf(f, "\\xc2\\x%02x", p[1]);
            p++;
        } else
            fputc(*p, f);
    }
}

const char *cli_stdout_path(const cli_command *cmd, const char *option)
{
    static char path[32];
    if (path[0]) {
        cli_usage_error(cmd, "--%s -: only one output can be standard output", option);
        return NULL;
    }
    fflush(stdout);
    int fd = dup(STDOUT_FILENO);
    if (fd < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
        cli_usage_error(cmd, "--%s -: cannot use standard output: %s", option, strerror(errno));
        return NULL;
    }
    snprintf(path, sizeof path, "/dev/fd/%d", fd);
    return path;
}

/* A file's identity: device and inode when it exists, else the real path of
 * its folder and its name (the folder must exist; else where is empty). */
typedef struct {
    int exists;
    struct stat st;
    char where[PATH_MAX + NAME_MAX + 2];
} file_id;

/* The folder part of path ("." when there is none). */
static void folder_part(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    size_t n = !slash ? 0 : slash == path ? 1 : (size_t)(slash - path);
    if (n == 0) /* a bare name: the current folder */
        snprintf(buf, size, ".");
    else
        snprintf(buf, size, "%.*s", (int)n, path);
}

static void identify(const char *path, file_id *id)
{
    char dir[PATH_MAX], real[PATH_MAX];
    id->exists = stat(path, &id->st) == 0;
    id->where[0] = '\0';
    folder_part(path, dir, sizeof dir);
    const char *slash = strrchr(path, '/');
    if (!id->exists && realpath(dir, real))
        snprintf(id->where, sizeof id->where, "%s/%s", real, slash ? slash + 1 : path);
}

static int same_file(const file_id *a, const file_id *b)
{
    if ((a->exists && S_ISCHR(a->st.st_mode)) || (b->exists && S_ISCHR(b->st.st_mode)))
        return 0; /* /dev/null twice overwrites nothing */
    if (a->exists || b->exists)
        return a->exists && b->exists && a->st.st_dev == b->st.st_dev && a->st.st_ino == b->st.st_ino;
    return a->where[0] && !strcmp(a->where, b->where);
}

/* One output alone: what it is, and whether its folder takes files. */
static int check_output_kind(const cli_command *cmd, const cli_path *o, const file_id *id)
{
    struct stat lst;
    if (!id->exists && lstat(o->path, &lst) == 0 && S_ISLNK(lst.st_mode))
        return cli_usage_error(cmd, "%s %s is a symbolic link to a file that does not exist", o->what, o->path);
    if (id->exists && o->is_dir && !S_ISDIR(id->st.st_mode))
        return cli_usage_error(cmd, "%s %s is not a folder", o->what, o->path);
    if (id->exists && !o->is_dir && S_ISDIR(id->st.st_mode))
        return cli_usage_error(cmd, "%s %s is a folder, not a file", o->what, o->path);
    if (id->exists && S_ISSOCK(id->st.st_mode))
        return cli_usage_error(cmd, "%s %s is a socket: write to a file, a pipe or a device", o->what, o->path);
    /* a pipe, terminal or device is written as it is (ae_atomic_open) */
    if (id->exists && !S_ISREG(id->st.st_mode) && !S_ISDIR(id->st.st_mode))
        return 0;
    char folder[PATH_MAX], bare[PATH_MAX];
    snprintf(bare, sizeof bare, "%s", o->path);
    for (size_t n = strlen(bare); o->is_dir && n > 1 && bare[n - 1] == '/'; n--)
        bare[n - 1] = '\0'; /* "out/": the folder to make is out, in . */
    if (o->is_dir && id->exists)
        snprintf(folder, sizeof folder, "%s", bare);
    else
        folder_part(bare, folder, sizeof folder);
    if (access(folder, W_OK | X_OK) != 0) {
        ae_error err;
        ae_fail(&err, AE_ERR_IO, "%s %s: cannot write to the folder %s: %s", o->what, o->path, folder,
                strerror(errno));
        return cli_report_error(&err);
    }
    return 0;
}

/* Every image (and mask) of ds against the outputs that exist: an output
 * file that is one of them, or an output folder holding a PNG of them. */
static int check_against_data(const cli_command *cmd, const ae_dataset *ds, const cli_path *outputs,
                              const file_id *ids, int n_outputs)
{
    for (size_t i = 0; i < ds->count; i++)
        for (int which = 0; which < 2; which++) {
            const char *p = which ? ds->items[i].mask_path : ds->items[i].path;
            struct stat st;
            if (!p || stat(p, &st) != 0)
                continue;
            char folder[PATH_MAX];
            struct stat fst;
            const char *dot = strrchr(p, '.');
            int png = dot && !strcasecmp(dot, ".png");
            for (int k = 0; k < n_outputs; k++) {
                if (!outputs[k].path || !ids[k].exists)
                    continue;
                if (outputs[k].is_dir) {
                    folder_part(p, folder, sizeof folder);
                    if (png && stat(folder, &fst) == 0 && fst.st_dev == ids[k].st.st_dev &&
                        fst.st_ino == ids[k].st.st_ino)
                        return cli_usage_error(cmd, "%s %s holds %s, an image of the data set: the reconstructions "
                                                    "written there could replace such images (and be read as "
                                                    "data next time); choose another folder",
                                               outputs[k].what, outputs[k].path, p);
                } else if (st.st_dev == ids[k].st.st_dev && st.st_ino == ids[k].st.st_ino)
                    return cli_usage_error(cmd, "%s %s would overwrite %s %s", outputs[k].what, outputs[k].path,
                                           which ? "a mask of the data set" : "an image of the data set", p);
            }
        }
    return 0;
}

int cli_check_outputs(const cli_command *cmd, const cli_path *inputs, int n_inputs, const ae_dataset *ds,
                      const cli_path *outputs, int n_outputs)
{
    enum { MAX_OUTPUTS = 8 };
    file_id ids[MAX_OUTPUTS], in;
    int rc, any_exists = 0;
    if (n_outputs > MAX_OUTPUTS)
        n_outputs = MAX_OUTPUTS;
    for (int k = 0; k < n_outputs; k++) {
        const cli_path *o = &outputs[k];
        if (!o->path)
            continue;
        identify(o->path, &ids[k]);
        any_exists |= ids[k].exists;
        if ((rc = check_output_kind(cmd, o, &ids[k])))
            return rc;
        /* reconstruct's folder: its index.csv is the file that could be an input */
        file_id index;
        char index_path[PATH_MAX];
        const file_id *id = &ids[k];
        if (o->is_dir) {
            snprintf(index_path, sizeof index_path, "%s/index.csv", o->path);
            identify(index_path, &index);
            id = &index;
        }
        for (int j = 0; j < n_inputs; j++) {
            if (!inputs[j].path)
                continue;
            identify(inputs[j].path, &in);
            if (same_file(id, &in))
                return cli_usage_error(cmd, "%s %s would overwrite %s %s", o->what, o->is_dir ? index_path : o->path,
                                       inputs[j].what, inputs[j].path);
        }
        for (int j = 0; j < k; j++)
            if (outputs[j].path && same_file(&ids[k], &ids[j]))
                return cli_usage_error(cmd, "%s %s would overwrite %s %s (the same file)", o->what, o->path,
                                       outputs[j].what, outputs[j].path);
    }
    /* A new file cannot be an image already there: the data set's files are
     * only looked at when some output exists. */
    if (ds && any_exists && (rc = check_against_data(cmd, ds, outputs, ids, n_outputs)))
        return rc;
    return 0;
}
