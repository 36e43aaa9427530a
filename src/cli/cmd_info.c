/* aedet info MODEL: what a model file holds, after checking all of it. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void summarize_floats(FILE *o, const float *v, size_t n)
{
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    for (size_t i = 0; i < n; i++) {
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
        sum += v[i];
    }
    fprintf(o, "%zu values", n);
    if (n)
        fprintf(o, ", min %.6g, mean %.6g, max %.6g", lo, sum / (double)n, hi);
}

static void print_entry(FILE *o, const ae_meta *meta, size_t i)
{
    const char *key = ae_meta_key(meta, i);
    size_t n = 0;
    int64_t iv;
    double fv;
    fputs("  ", o);
    cli_put_text(o, key); /* keys and strings come from the file: escaped on a terminal */
    fprintf(o, "%*s ", strlen(key) < 26 ? (int)(26 - strlen(key)) : 0, "");
    switch (ae_meta_entry_type(meta, i)) {
    case AE_META_INT:
        ae_meta_get_int(meta, key, &iv);
        fprintf(o, "%lld", (long long)iv);
        break;
    case AE_META_FLOAT:
        ae_meta_get_float(meta, key, &fv);
        fprintf(o, "%.9g", fv);
        break;
    case AE_META_STRING:
        cli_put_text(o, ae_meta_get_str(meta, key));
        break;
    case AE_META_FLOATS: {
        const float *v = ae_meta_get_floats(meta, key, &n);
        summarize_floats(o, v, n);
        break;
    }
    case AE_META_INTS: {
        const int64_t *v = ae_meta_get_ints(meta, key, &n);
        for (size_t k = 0; k < n && k < 16; k++)
            fprintf(o, "%s%lld", k ? "," : "", (long long)v[k]);
        if (n > 16)
            fprintf(o, ",... (%zu values)", n);
        break;
    }
    case AE_META_DOUBLES: {
        const double *v = ae_meta_get_doubles(meta, key, &n);
        for (size_t k = 0; k < n && k < 8; k++)
            fprintf(o, "%s%.6g", k ? " " : "", v[k]);
        if (n > 8)
            fprintf(o, " ... (%zu values)", n);
        break;
    }
    }
    fputc('\n', o);
}

static const cli_command info_cmd = {"info", "MODEL", "Shows what a model file holds: its config,"
                                     " how it was trained, its tensors. The checksum and every length"
                                     " are checked first.", NULL, 1, 1};

int cmd_info(int argc, char **argv)
{
    const cli_option opts[] = {{0}};
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
    if (cli_out.json) {
        printf("{\"event\":\"info\",\"file\":");
        cli_json_string(o, pos[0]);
        printf(",\"height\":%d,\"width\":%d,\"channels\":%d,\"latent\":%d,\"parameters\":%zu,"
               "\"checkpoint\":%s}\n",
               c->height, c->width, c->channels, c->latent_dim, sum.num_params, has_opt ? "true" : "false");
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
            print_entry(o, meta, i);
    }
    ae_meta_free(meta);
    return 0;
}
