/* Table-driven option parsing: every option shows its default in --help, and a
 * misspelled option is rejected with the closest real one suggested. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* "run.conf line 3" while a --config file's line is applied: usage errors
 * say where the value came from. */
static char config_where[4200];
const char *cli_config_base;
/* The config files read: options point into their text till the end. */
static char *config_texts[8];
static int n_config_texts;

int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
{
    va_list ap;
    char message[8192]; /* it may name files: escaped on a terminal */
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    fprintf(stderr, "aedet %s: ", cmd->name);
    if (config_where[0]) {
        cli_put_text(stderr, config_where);
        fputs(": ", stderr);
    }
    cli_put_text(stderr, message);
    fprintf(stderr, "\nusage: aedet %s %s\n(see 'aedet %s --help')\n", cmd->name, cmd->usage, cmd->name);
    return EXIT_USAGE;
}

void cli_print_help(const cli_command *cmd, const cli_option *opts, FILE *out)
{
    fprintf(out, "usage: aedet %s %s\n\n%s\n\noptions:\n", cmd->name, cmd->usage, cmd->summary);
    for (const cli_option *o = opts; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(out, "  %-26s %s\n", left, o->help);
    }
    fprintf(out, "  %-26s %s\n", "--config FILE", "options from FILE: 'key = value' lines, keys as the long flags;");
    fprintf(out, "  %-26s %s\n", "", "flags given here win [none]");
    fprintf(out, "  %-26s %s\n", "--json", "machine-readable output, one JSON object a line");
    fprintf(out, "  %-26s %s\n", "--quiet", "no progress, only results and errors");
    fprintf(out, "  %-26s %s\n", "-h, --help", "this help");
    if (cmd->details)
        fprintf(out, "\n%s\n", cmd->details);
}

/* Levenshtein distance, for "did you mean". Option names are short. */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    int row[41];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static int unknown_option(const cli_command *cmd, const cli_option *opts, const char *name)
{
    const char *best = NULL;
    int best_d = 4;
    for (const cli_option *o = opts; o->name; o++) {
        int d = edit_distance(name, o->name);
        if (d < best_d) {
            best_d = d;
            best = o->name;
        }
    }
    if (best)
        return cli_usage_error(cmd, "unknown option --%s; did you mean --%s?", name, best);
    return cli_usage_error(cmd, "unknown option --%s", name);
}

static int parse_bytes(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0) || isinf(v)) /* NaN fails v >= 0 */
        return 0;
    double scale = 1;
    switch (*end) {
    case 'k': case 'K': scale = 1024.0; end++; break;
    case 'm': case 'M': scale = 1024.0 * 1024; end++; break;
    case 'g': case 'G': scale = 1024.0 * 1024 * 1024; end++; break;
    case 't': case 'T': scale = 1024.0 * 1024 * 1024 * 1024; end++; break;
    }
    if (*end == 'i' || *end == 'B')
        end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
    if (*end || v * scale > 1e18)
        return 0;
    *out = (size_t)(v * scale);
    return 1;
}

/* Every numeric option's allowed values, checked where it is parsed (one
 * place for every command; an option has one meaning wherever it appears).
 * Options not listed take any finite number; NaN and Inf are never taken. */
static const struct {
    const char *name;
    double min, max;
} ranges[] = {
    {"threads", 0, 1024}, /* 0: all cores; libgomp crashes on thread counts it cannot create */
    {"batch", 1, 65536},
    {"epochs", 1, 1e9},
    {"latent", 1, 65536},
    {"early-stop", 0, 1e9},
    {"top", 0, 1e9},
    {"gallery", 0, 1e6},
    {"quantile", 0, 1},
    {"threshold-quantile", 0, 1},
    {"contamination", 0, 1},
    {"val-fraction", 0, 1},
    {"slope", 0, 1},
    {"lr", 0, 1e3},
    {"decay", 0, 1e6},
    {"sigma", 0, 8},
    {"max-pixels", 1, (double)AE_IMAGE_MAX_PIXELS},
    {"memory-limit", 1, 1e18},
};

static int check_range(const cli_command *cmd, const cli_option *o, double x, const char *v)
{
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (!strcmp(ranges[i].name, o->name) && !(x >= ranges[i].min && x <= ranges[i].max))
            return cli_usage_error(cmd, "--%s wants a value from %.10g to %.10g, not '%s'", o->name,
                                   ranges[i].min, ranges[i].max, v);
    return 0;
}

/* A list item ("4,8") with an empty part: "1,", ",4", "4,,8" or "". Globs
 * (--include, --exclude) are taken whole, commas and all. */
static int has_empty_item(const cli_option *o, const char *v)
{
    if (!strcmp(o->name, "include") || !strcmp(o->name, "exclude"))
        return !*v;
    return !*v || *v == ',' || v[strlen(v) - 1] == ',' || strstr(v, ",,");
}

static int set_value(const cli_command *cmd, const cli_option *o, const char *v)
{
    char *end;
    errno = 0;
    switch (o->kind) {
    case OPT_FLAG:
        *(int *)o->target = 1;
        return 0;
    case OPT_INT: {
        long x = strtol(v, &end, 10);
        if (end == v || *end || errno || x < -2147483647L || x > 2147483647L)
            return cli_usage_error(cmd, "--%s wants a whole number, not '%s'", o->name, v);
        if (check_range(cmd, o, (double)x, v))
            return EXIT_USAGE;
        *(int *)o->target = (int)x;
        return 0;
    }
    case OPT_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (end == v || *end || errno || v[0] == '-')
            return cli_usage_error(cmd, "--%s wants a non-negative whole number, not '%s'", o->name, v);
        if (check_range(cmd, o, (double)x, v))
            return EXIT_USAGE;
        *(uint64_t *)o->target = (uint64_t)x;
        return 0;
    }
    case OPT_DOUBLE: {
        double x = strtod(v, &end);
        if (end == v || *end || errno || !isfinite(x))
            return cli_usage_error(cmd, "--%s wants a finite number, not '%s'", o->name, v);
        if (check_range(cmd, o, x, v))
            return EXIT_USAGE;
        *(double *)o->target = x;
        return 0;
    }
    case OPT_STRING:
        *(const char **)o->target = v;
        return 0;
    case OPT_OUTPUT:
        if (!strcmp(v, "-") && !(v = cli_stdout_path(cmd, o->name)))
            return EXIT_USAGE;
        *(const char **)o->target = v;
        return 0;
    case OPT_LIST: {
        cli_list *l = o->target;
        if (l->count == (int)(sizeof l->items / sizeof l->items[0]))
            return cli_usage_error(cmd, "--%s given too many times", o->name);
        if (has_empty_item(o, v))
            return cli_usage_error(cmd, "--%s has an empty item in '%s'", o->name, v);
        l->items[l->count++] = v;
        return 0;
    }
    case OPT_BYTES:
        if (!parse_bytes(v, o->target))
            return cli_usage_error(cmd, "--%s wants a size such as 512M or 2G, not '%s'", o->name, v);
        return check_range(cmd, o, (double)*(size_t *)o->target, v);
    case OPT_SIZE: {
        cli_size *sz = o->target;
        long h = strtol(v, &end, 10), w = h;
        if (end != v && (*end == 'x' || *end == 'X')) {
            const char *ws = end + 1;
            w = strtol(ws, &end, 10);
            if (end == ws)
                w = -1;
        }
        if (end == v || *end || h < 1 || w < 1 || h > 65536 || w > 65536)
            return cli_usage_error(cmd, "--%s wants N or HxW (e.g. 256 or 128x96), not '%s'", o->name, v);
        sz->height = (int)h;
        sz->width = (int)w;
        return 0;
    }
    }
    return 0;
}

/* ---- --config FILE ---- */

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static int parse_bool(const char *v, int *out)
{
    static const char *yes[] = {"", "true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!strcasecmp(v, yes[i]))
            return *out = 1, 1;
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (!strcasecmp(v, no[i]))
            return *out = 0, 1;
    return 0;
}

/* One "key = value" line of a config file (already trimmed, not a comment). */
static int config_line(const cli_command *cmd, const cli_option *opts, char *line, cli_list **from_file,
                       int *n_from_file)
{
    char *eq = strchr(line, '=');
    char *key = line, *value = (char *)"";
    if (eq) {
        *eq = '\0';
        value = trim(eq + 1);
    }
    key = trim(key);
    if (!strncmp(key, "--", 2))
        key += 2;
    for (char *p = key; *p; p++)
        if (*p == '_')
            *p = '-'; /* early_stop = early-stop */
    size_t vn = strlen(value);
    if (vn >= 2 && ((value[0] == '"' && value[vn - 1] == '"') || (value[0] == '\'' && value[vn - 1] == '\''))) {
        value[vn - 1] = '\0'; /* quoted: taken as it is, # and spaces included */
        value++;
    } else {
        char *hash = strstr(value, " #"); /* a comment after the value */
        if (!hash)
            hash = strstr(value, "\t#");
        if (hash) {
            *hash = '\0';
            value = trim(value);
        }
    }
    if (!*key)
        return cli_usage_error(cmd, "a line without a key (want 'key = value')");
    int b;
    if (!strcmp(key, "json") || !strcmp(key, "quiet")) {
        if (!parse_bool(value, &b))
            return cli_usage_error(cmd, "%s wants true or false, not '%s'", key, value);
        *(key[0] == 'j' ? &cli_out.json : &cli_out.quiet) = b;
        return 0;
    }
    if (!strcmp(key, "config") || !strcmp(key, "help"))
        return cli_usage_error(cmd, "'%s' cannot be set in a config file", key);
    if (!strcmp(key, "o"))
        key = (char *)"output";
    const cli_option *o = opts;
    while (o->name && strcmp(o->name, key))
        o++;
    if (!o->name) {
        const char *best = NULL;
        int best_d = 4;
        for (const cli_option *c = opts; c->name; c++) {
            int d = edit_distance(key, c->name);
            if (d < best_d) {
                best_d = d;
                best = c->name;
            }
        }
        if (best)
            return cli_usage_error(cmd, "unknown key '%s' (aedet %s has no --%s); did you mean '%s'?", key,
                                   cmd->name, key, best);
        return cli_usage_error(cmd, "unknown key '%s' (aedet %s has no --%s)", key, cmd->name, key);
    }
    if (o->kind == OPT_FLAG) {
        if (!parse_bool(value, &b))
            return cli_usage_error(cmd, "%s wants true or false, not '%s'", key, value);
        *(int *)o->target = b;
        return 0;
    }
    if (!eq)
        return cli_usage_error(cmd, "%s needs a value ('%s = %s')", key, key, o->arg ? o->arg : "...");
    if (o->kind == OPT_LIST && *n_from_file < 64) {
        int seen = 0;
        for (int k = 0; k < *n_from_file; k++)
            seen |= from_file[k] == o->target;
        if (!seen)
            from_file[(*n_from_file)++] = o->target;
    }
    return set_value(cmd, o, value);
}

/* --config FILE (the last one given), applied before the command line so
 * that flags given there win. The file's text is kept: options point into it. */
static int apply_config(const cli_command *cmd, const cli_option *opts, int argc, char **argv,
                        cli_list **from_file, int *n_from_file)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc)
                return cli_usage_error(cmd, "--config needs a value (FILE)");
            path = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9))
            path = argv[i] + 9;
        else if (!strcmp(argv[i], "-o") || (argv[i][0] == '-' && argv[i][1] == '-' && !strchr(argv[i], '='))) {
            /* skip an option's value, which may itself be "--config" */
            const char *name = argv[i][1] == '-' ? argv[i] + 2 : "output";
            for (const cli_option *o = opts; o->name; o++)
                if (!strcmp(o->name, name) && o->kind != OPT_FLAG)
                    i++;
        }
    }
    if (!path)
        return 0;
    char full[4200];
    if (path[0] != '/' && cli_config_base) { /* train --resume alone: where the run began */
        snprintf(full, sizeof full, "%s/%s", cli_config_base, path);
        path = full;
    }
    uint8_t *bytes;
    size_t len;
    ae_error err = {0};
    if (ae_read_file(path, &bytes, &len, &err) != AE_OK) {
        ae_error_prefix(&err, "--config");
        return cli_report_error(&err);
    }
    if (memchr(bytes, '\0', len)) {
        free(bytes);
        return cli_usage_error(cmd, "--config %s is not a text file", path);
    }
    if (n_config_texts < 8)
        config_texts[n_config_texts++] = (char *)bytes;
    int rc = 0;
    size_t line_no = 0;
    for (char *line = (char *)bytes; line && !rc;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        line_no++;
        char *t = trim(line);
        if (line_no == 1 && !strncmp(t, "\xef\xbb\xbf", 3)) /* a UTF-8 BOM */
            t = trim(t + 3);
        if (*t && *t != '#') {
            snprintf(config_where, sizeof config_where, "%.4000s line %zu", path, line_no);
            rc = config_line(cmd, opts, t, from_file, n_from_file);
            config_where[0] = '\0';
        }
        line = next;
    }
    return rc; /* bytes stay: the options point into them */
}

int cli_parse(const cli_command *cmd, const cli_option *opts, int argc, char **argv,
              const char **positional, int *num_positional)
{
    *num_positional = 0;
    int only_positional = 0, rc;
    cli_list *from_file[64];
    int n_from_file = 0;
    if ((rc = apply_config(cmd, opts, argc, argv, from_file, &n_from_file)))
        return rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_positional || a[0] != '-' || a[1] == '\0') {
            if (*num_positional >= cmd->max_positional)
                return cli_usage_error(cmd, "unexpected argument '%s'", a);
            positional[(*num_positional)++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_positional = 1;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cli_print_help(cmd, opts, stdout);
            return -1;
        }
        if (!strcmp(a, "--json")) {
            cli_out.json = 1;
            continue;
        }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            cli_out.quiet = 1;
            continue;
        }
        if (!strcmp(a, "--config") || !strncmp(a, "--config=", 9)) { /* read before the loop */
            i += !a[8];
            continue;
        }
        char name[64];
        const char *value = NULL;
        if (!strcmp(a, "-o"))
            snprintf(name, sizeof name, "output");
        else if (a[1] != '-')
            return cli_usage_error(cmd, "unknown option %s", a);
        else {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            if (len >= sizeof name)
                return cli_usage_error(cmd, "unknown option %s", a);
            memcpy(name, a + 2, len);
            name[len] = '\0';
            if (eq)
                value = eq + 1;
        }
        const cli_option *o = opts;
        while (o->name && strcmp(o->name, name))
            o++;
        if (!o->name)
            return unknown_option(cmd, opts, name);
        if (o->kind == OPT_FLAG) {
            if (value)
                return cli_usage_error(cmd, "--%s takes no value", name);
        } else if (!value) {
            if (i + 1 >= argc)
                return cli_usage_error(cmd, "--%s needs a value (%s)", name, o->arg ? o->arg : "");
            value = argv[++i];
        }
        /* a list the config file set is replaced, not added to */
        for (int k = 0; k < n_from_file; k++)
            if (from_file[k] == o->target) {
                from_file[k]->count = 0;
                from_file[k] = NULL;
            }
        if ((rc = set_value(cmd, o, value)))
            return rc;
    }
    if (*num_positional < cmd->min_positional)
        return cli_usage_error(cmd, "missing argument%s", cmd->min_positional - *num_positional > 1 ? "s" : "");
    return 0;
}

int cli_list_ints(const cli_command *cmd, const char *flag, const cli_list *l, int *out, int max, int *count)
{
    *count = 0;
    for (int i = 0; i < l->count; i++) {
        const char *p = l->items[i];
        while (*p) {
            char *end;
            errno = 0;
            long v = strtol(p, &end, 10);
            if (end == p || errno || v < 0 || v > 1000000 || (*end && *end != ','))
                return cli_usage_error(cmd, "--%s wants class numbers such as 5 or 1,7, not '%s'", flag,
                                       l->items[i]);
            if (*count == max)
                return cli_usage_error(cmd, "--%s: at most %d classes", flag, max);
            out[(*count)++] = (int)v;
            p = *end ? end + 1 : end;
        }
    }
    return 0;
}

void cli_apply_data_limits(const cli_data_args *d)
{
    ae_set_num_threads(d->threads);
    ae_image_set_max_pixels((size_t)d->max_pixels);
    ae_set_memory_limit(d->memory_limit);
}

/* A value as a config file holds it: quoted when spaces at its ends, a '#'
 * or quotes would change how it reads back. */
static void config_value(FILE *f, const char *v)
{
    size_t n = strlen(v);
    int quote = n && (strchr(v, '#') || v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t' ||
                      v[0] == '"' || v[0] == '\'');
    if (quote && !strchr(v, '"'))
        fprintf(f, "\"%s\"", v);
    else if (quote)
        fprintf(f, "'%s'", v);
    else
        fputs(v, f);
}

/* Whether x is a value --name takes (0 for max-pixels means "the default"
 * inside, but is no value to give). */
static int in_range(const char *name, double x)
{
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (!strcmp(ranges[i].name, name))
            return x >= ranges[i].min && x <= ranges[i].max;
    return 1;
}

/* The shortest form that reads back as the same double (0.3, not 0.29999999999999999). */
static void put_double(FILE *f, double v)
{
    char buf[40];
    for (int digits = 6; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    fputs(buf, f);
}

char *cli_options_config(const cli_option *opts, const char *const *skip)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    for (const cli_option *o = opts; o->name; o++) {
        int skipped = 0;
        for (const char *const *s = skip; s && *s && !skipped; s++)
            skipped = !strcmp(*s, o->name);
        if (skipped)
            continue;
        switch (o->kind) {
        case OPT_FLAG:
            fprintf(f, "%s = %s\n", o->name, *(int *)o->target ? "true" : "false");
            break;
        case OPT_INT:
            if (in_range(o->name, *(int *)o->target))
                fprintf(f, "%s = %d\n", o->name, *(int *)o->target);
            break;
        case OPT_U64:
            if (in_range(o->name, (double)*(uint64_t *)o->target))
                fprintf(f, "%s = %llu\n", o->name, (unsigned long long)*(uint64_t *)o->target);
            break;
        case OPT_DOUBLE:
            if (!isnan(*(double *)o->target) && in_range(o->name, *(double *)o->target)) { /* NaN: the default */
                fprintf(f, "%s = ", o->name);
                put_double(f, *(double *)o->target);
                fputc('\n', f);
            }
            break;
        case OPT_BYTES:
            if (in_range(o->name, (double)*(size_t *)o->target))
                fprintf(f, "%s = %zu\n", o->name, *(size_t *)o->target);
            break;
        case OPT_SIZE: {
            const cli_size *sz = o->target;
            if (sz->height)
                fprintf(f, "%s = %dx%d\n", o->name, sz->height, sz->width);
            break;
        }
        case OPT_STRING:
        case OPT_OUTPUT: {
            const char *v = *(const char **)o->target;
            if (v && !strchr(v, '\n')) {
                fprintf(f, "%s = ", o->name);
                config_value(f, v);
                fputc('\n', f);
            }
            break;
        }
        case OPT_LIST: {
            const cli_list *l = o->target;
            int globs = !strcmp(o->name, "include") || !strcmp(o->name, "exclude");
            /* globs may hold commas: one line each; other lists on one line */
            for (int i = 0; i < l->count; i++) {
                if (strchr(l->items[i], '\n'))
                    continue;
                if (globs || i == 0)
                    fprintf(f, "%s%s = ", i && !globs ? "\n" : "", o->name);
                else
                    fputc(',', f);
                config_value(f, l->items[i]);
                if (globs)
                    fputc('\n', f);
            }
            if (l->count && !globs)
                fputc('\n', f);
            break;
        }
        }
    }
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
