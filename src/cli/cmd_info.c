/* aedet info MODEL: what a model file holds, after checking all of it. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A float32 array (errors, weights) as the text and the JSON show it. */
typedef struct {
    double lo, hi, sum;
} float_summary;

static float_summary summarize(const float *v, size_t n)
{
    float_summary s = {INFINITY, -INFINITY, 0};
    for (size_t i = 0; i < n; i++) {
        s.lo = v[i] < s.lo ? v[i] : s.lo;
        s.hi = v[i] > s.hi ? v[i] : s.hi;
        s.sum += v[i];
    }
    return s;
}

static void summarize_floats(FILE *o, const float *v, size_t n)
{
    const float_summary s = summarize(v, n);
    fprintf(o, "%zu values", n);
    if (n)
        fprintf(o, ", min %.6g, mean %.6g, max %.6g", s.lo, s.sum / (double)n, s.hi);
}

/* Entry i of the metadata, read once for the text and the JSON alike: the
 * field of its type set, n the length of an array. */
typedef struct {
    const char *key;
    ae_meta_type type;
    int64_t integer;
    double real;
    const char *text;
    const float *floats;
    const int64_t *ints;
    const double *doubles;
    size_t n;
} meta_entry;

static meta_entry read_entry(const ae_meta *meta, size_t i)
{
    meta_entry e = {.key = ae_meta_key(meta, i), .type = ae_meta_entry_type(meta, i)};
    switch (e.type) {
    case AE_META_INT: ae_meta_get_int(meta, e.key, &e.integer); break;
    case AE_META_FLOAT: ae_meta_get_float(meta, e.key, &e.real); break;
    case AE_META_STRING: e.text = ae_meta_get_str(meta, e.key); break;
    case AE_META_FLOATS: e.floats = ae_meta_get_floats(meta, e.key, &e.n); break;
    case AE_META_INTS: e.ints = ae_meta_get_ints(meta, e.key, &e.n); break;
    case AE_META_DOUBLES: e.doubles = ae_meta_get_doubles(meta, e.key, &e.n); break;
    }
    return e;
}

static void print_entry(FILE *o, const ae_meta *meta, size_t i)
{
    const meta_entry e = read_entry(meta, i);
    fputs("  ", o);
    cli_put_text(o, e.key); /* keys and strings come from the file: escaped on a terminal */
    fprintf(o, "%*s ", strlen(e.key) < 26 ? (int)(26 - strlen(e.key)) : 0, "");
    switch (e.type) {
    case AE_META_INT:
        fprintf(o, "%lld", (long long)e.integer);
        break;
    case AE_META_FLOAT:
        fprintf(o, "%.9g", e.real);
        break;
    case AE_META_STRING:
        cli_put_text(o, e.text);
        break;
    case AE_META_FLOATS:
        summarize_floats(o, e.floats, e.n);
        break;
    case AE_META_INTS:
        for (size_t k = 0; k < e.n && k < 16; k++)
            fprintf(o, "%s%lld", k ? "," : "", (long long)e.ints[k]);
        if (e.n > 16)
            fprintf(o, ",... (%zu values)", e.n);
        break;
    case AE_META_DOUBLES:
        for (size_t k = 0; k < e.n && k < 8; k++)
            fprintf(o, "%s%.6g", k ? " " : "", e.doubles[k]);
        if (e.n > 8)
            fprintf(o, " ... (%zu values)", e.n);
        break;
    }
    fputc('\n', o);
}

/* The same entry as one "key":value of the metadata object: float32
 * arrays (errors, weights) summarized as the text does, the rest whole. */
static void json_entry(cli_json *j, const ae_meta *meta, size_t i)
{
    const meta_entry e = read_entry(meta, i);
    FILE *o = j->f;
    if (i)
        fputc(',', o);
    cli_json_string(o, e.key);
    fputc(':', o);
    switch (e.type) {
    case AE_META_INT:
        fprintf(o, "%lld", (long long)e.integer);
        break;
    case AE_META_FLOAT:
        cli_json_number(o, e.real, 17);
        break;
    case AE_META_STRING:
        cli_json_string(o, e.text);
        break;
    case AE_META_FLOATS: {
        const float_summary s = summarize(e.floats, e.n);
        fprintf(o, "{\"count\":%zu,\"min\":", e.n);
        cli_json_number(o, e.n ? s.lo : NAN, 9);
        fputs(",\"mean\":", o);
        cli_json_number(o, e.n ? s.sum / (double)e.n : NAN, 9);
        fputs(",\"max\":", o);
        cli_json_number(o, e.n ? s.hi : NAN, 9);
        fputc('}', o);
        break;
    }
    case AE_META_INTS:
        fputc('[', o);
        for (size_t k = 0; k < e.n; k++)
            fprintf(o, "%s%lld", k ? "," : "", (long long)e.ints[k]);
        fputc(']', o);
        break;
    case AE_META_DOUBLES:
        fputc('[', o);
        for (size_t k = 0; k < e.n; k++) {
            if (k)
                fputc(',', o);
            cli_json_number(o, e.doubles[k], 17);
        }
        fputc(']', o);
        break;
    }
}

/* The resolved configuration train stored (train.config), as its lines. */
static void print_config(FILE *o, const char *config)
{
    fprintf(o, "config (aedet train DATA --config FILE repeats the run):\n");
    for (const char *p = config; *p;) {
        size_t n = strcspn(p, "\n");
        fprintf(o, "  ");
        char line[4096];
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), p);
        cli_put_text(o, line);
        fputc('\n', o);
        p += n + (p[n] == '\n');
    }
}

static const cli_command info_cmd = {"info", "MODEL", "Shows what a model file holds: its config,"
                                     " how it was trained, its tensors. The checksum and every length"
                                     " are checked first.",
                                     "--json prints all of it as one line: the model's shape, and \"metadata\" with\n"
                                     "every entry (float32 arrays as count, min, mean and max, as the text does).\n"
                                     "--show-config prints the options train ran with, as a --config file:\n"
                                     "  aedet info model.aedet --show-config > run.conf\n"
                                     "  aedet train DATA --config run.conf -o again.aedet", 1, 1};

int cmd_info(int argc, char **argv)
{
    int show_config = 0;
    const cli_option opts[] = {
        {"show-config", OPT_FLAG, &show_config, NULL, "print only the training configuration, as a --config file"},
        {0},
    };
    const char *pos[1];
    int npos, rc = cli_parse(&info_cmd, opts, argc, argv, pos, &npos);
    if (rc)
        return rc < 0 ? 0 : rc;
    ae_error err = {0};
    ae_meta *meta = NULL;
    ae_model_summary sum;
    /* Checked like a load, but from the file alone: no activations are
     * allocated, however large the images it declares. */
    if (ae_model_inspect(pos[0], &sum, &meta, &err) != AE_OK)
        return cli_report_error(&err);
    const ae_config *c = &sum.config;
    int has_opt = sum.has_optimizer;
    FILE *o = stdout;
    const char *config = ae_meta_get_str(meta, AE_KEY_CONFIG);
    if (show_config) {
        if (!config) {
            ae_meta_free(meta);
            return cli_usage_error(&info_cmd, "%s holds no training configuration (trained by an older version)",
                                   pos[0]);
        }
        fputs(config, o);
    } else if (cli_out.json) {
        cli_json j;
        cli_json_begin(&j, "info");
        cli_json_str(&j, "file", pos[0]);
        cli_json_int(&j, "format", AE_MODEL_FORMAT_VERSION);
        cli_json_bool(&j, "checkpoint", has_opt);
        cli_json_int(&j, "height", c->height);
        cli_json_int(&j, "width", c->width);
        cli_json_int(&j, "channels", c->channels);
        cli_json_key(&j, "filters");
        for (int i = 0; i < c->num_filters; i++)
            fprintf(o, "%c%d", i ? ',' : '[', c->filters[i]);
        fputs(c->num_filters ? "]" : "[]", o);
        cli_json_int(&j, "latent", c->latent_dim);
        cli_json_int(&j, "parameters", (long long)sum.num_params);
        cli_json_int(&j, "tensors", sum.num_tensors);
        cli_json_key(&j, "metadata");
        fputc('{', o);
        for (size_t i = 0; i < ae_meta_count(meta); i++)
            json_entry(&j, meta, i);
        fputc('}', o);
        cli_json_end(&j);
    } else {
        cli_put_text(o, pos[0]);
        fprintf(o, ": aedet model file, format %d%s\n", AE_MODEL_FORMAT_VERSION,
                has_opt ? " (training checkpoint: holds the optimizer state)" : "");
        fprintf(o, "  input %dx%dx%d, filters", c->height, c->width, c->channels);
        for (int i = 0; i < c->num_filters; i++)
            fprintf(o, "%s%d", i ? "," : " ", c->filters[i]);
        fprintf(o, ", latent %d, %zu parameters, %d tensors\n", c->latent_dim, sum.num_params, sum.num_tensors);
        fprintf(o, "metadata:\n");
        for (size_t i = 0; i < ae_meta_count(meta); i++)
            if (!config || strcmp(ae_meta_key(meta, i), AE_KEY_CONFIG))
                print_entry(o, meta, i);
        if (config)
            print_config(o, config);
    }
    ae_meta_free(meta);
    return 0;
}
