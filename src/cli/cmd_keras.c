/* aedet import-keras and aedet export-keras: the tutorial's Keras weights
 * (autoencoder.save_weights('x.h5')) to an aedet model file and back. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* "N", "HxW" or "HxWxC". */
static int parse_size(const cli_command *cmd, const char *v, ae_keras_options *o)
{
    long d[3] = {0, 0, 0};
    int n = 0;
    const char *p = v;
    while (n < 3) {
        char *end;
        d[n] = strtol(p, &end, 10);
        if (end == p || d[n] < 1 || d[n] > 1 << 20)
            break;
        n++;
        if (*end == '\0') {
            if (n == 1)
                d[1] = d[0];
            o->height = (int)d[0];
            o->width = (int)d[1];
            o->channels = n == 3 ? (int)d[2] : 0;
            return 0;
        }
        if (*end != 'x' && *end != 'X')
            break;
        p = end + 1;
    }
    return cli_usage_error(cmd, "--size wants N, HxW or HxWxC (e.g. 256x256x3), not '%s'", v);
}

static void print_filters(FILE *o, const int *f, int n, const char *sep)
{
    for (int i = 0; i < n; i++)
        fprintf(o, "%s%d", i ? sep : "", f[i]);
}

static const cli_command import_cmd = {
    "import-keras", "WEIGHTS.h5 -o MODEL --size HxW[xC] [options]",
    "Makes an aedet model from the tutorial's Keras weights: the HDF5 file that\n"
    "autoencoder.save_weights('x.h5') (or model.save('x.h5')) writes with Keras 2.x.",
    "The file holds the kernels, biases and BatchNorm statistics, from which the filters,\n"
    "the latent size and the channels are read; it does not hold the image size, nor\n"
    "LeakyReLU's alpha or BatchNorm's epsilon, which must be the Keras model's (the\n"
    "tutorial's: 0.3 and Keras' 1e-3). Layer names do not matter, their order does, as for\n"
    "Keras' load_weights. aedet feeds the model pixels / 255 in RGB (or gray) order, the\n"
    "images resized by area averaging or bilinear: a Keras model trained on raw 0-255\n"
    "pixels (the tutorial's code as printed) will not score well; train it on x / 255.\n"
    "docs/MODEL_FORMAT.md (\"Keras weights\") says what is and is not carried.\n\n"
    "exit codes: 0 ok, 2 usage (a size or option the weights do not fit), 4 I/O error,\n"
    "5 not HDF5, or not the tutorial's model (the message names the dataset).",
    1, 1};

int cmd_import_keras(int argc, char **argv)
{
    const char *output = NULL, *size = NULL;
    cli_list filters = {0};
    int latent = 0;
    double slope = 0.3, epsilon = 1e-3;
    const cli_option opts[] = {
        {"output", OPT_OUTPUT, &output, "MODEL", "aedet model file to write (also -o; required)"},
        {"size", OPT_STRING, &size, "HxW[xC]", "the model's input size, as built in Keras (required)"},
        {"filters", OPT_LIST, &filters, "LIST", "check that the weights have these filters [as the file says]"},
        {"latent", OPT_INT, &latent, "N", "check that the latent has N values [as the file says]"},
        {"slope", OPT_DOUBLE, &slope, "F", "LeakyReLU alpha of the Keras model [0.3]"},
        {"bn-epsilon", OPT_DOUBLE, &epsilon, "F", "BatchNormalization epsilon of the Keras model [0.001]"},
        {0},
    };
    const char *pos[1];
    int npos, rc = cli_parse(&import_cmd, opts, argc, argv, pos, &npos);
    if (rc)
        return rc < 0 ? 0 : rc;
    ae_keras_options o;
    ae_keras_options_init(&o);
    if (!output)
        return cli_usage_error(&import_cmd, "-o MODEL is required");
    if (size && (rc = parse_size(&import_cmd, size, &o)))
        return rc;
    if (filters.count &&
        (rc = cli_list_ints(&import_cmd, "--filters", &filters, o.filters, AE_MAX_FILTERS, &o.num_filters)))
        return rc;
    if (!(slope >= 0 && slope < 1) || !(epsilon > 0 && epsilon < 1))
        return cli_usage_error(&import_cmd, "--slope must be in [0, 1) and --bn-epsilon in (0, 1)");
    o.latent_dim = latent > 0 ? latent : 0;
    o.leaky_slope = (float)slope;
    o.bn_epsilon = (float)epsilon;
    const cli_path input = {"the Keras weights", pos[0], 0}, out = {"-o", output, 0};
    if ((rc = cli_check_outputs(&import_cmd, &input, 1, NULL, &out, 1)))
        return rc;

    ae_error err = {0};
    ae_keras_summary sum;
    if (!size) {
        /* Say what the file holds, so the size asked for can be chosen. */
        if (ae_keras_inspect(pos[0], &sum, &err) != AE_OK)
            return cli_report_error(&err);
        return cli_usage_error(&import_cmd,
                               "--size is required: the weights fix only (H/%d) x (W/%d) = %lld (%d channels)",
                               1 << sum.num_filters, 1 << sum.num_filters, sum.grid_cells, sum.channels);
    }
    ae_model *m = NULL;
    ae_meta *meta = ae_meta_new();
    if (!meta) {
        ae_fail(&err, AE_ERR_NOMEM, "out of memory");
        return cli_report_error(&err);
    }
    ae_status st = ae_keras_import(pos[0], &o, 1, &m, &sum, &err);
    if (st == AE_OK) st = ae_meta_set_str(meta, "keras.source", pos[0], &err);
    if (st == AE_OK) st = ae_meta_set_str(meta, "keras.version", sum.keras_version, &err);
    if (st == AE_OK) st = ae_meta_set_str(meta, "keras.backend", sum.backend, &err);
    if (st == AE_OK) st = ae_meta_set_now(meta, "keras.imported", &err);
    if (st == AE_OK) st = ae_model_save(output, m, meta, 0, &err);
    if (st != AE_OK) {
        rc = cli_report_error(&err);
        goto done;
    }
    const ae_config *c = ae_model_config(m);
    if (cli_out.json) {
        printf("{\"event\":\"import-keras\",\"weights\":");
        cli_json_string(stdout, pos[0]);
        printf(",\"model\":");
        cli_json_string(stdout, output);
        printf(",\"keras_version\":");
        cli_json_string(stdout, sum.keras_version);
        printf(",\"height\":%d,\"width\":%d,\"channels\":%d,\"filters\":[", c->height, c->width, c->channels);
        print_filters(stdout, c->filters, c->num_filters, ",");
        printf("],\"latent\":%d,\"weights_read\":%d,\"parameters\":%zu}\n", c->latent_dim, sum.num_weights,
               ae_model_num_params(m));
    } else if (!cli_out.quiet) {
        printf("read          ");
        cli_put_text(stdout, pos[0]);
        printf(": Keras %s weights (%s%s), %s, %d datasets\n", sum.keras_version[0] ? sum.keras_version : "2.x",
               sum.backend[0] ? sum.backend : "backend not named", sum.full_model ? ", a whole saved model" : "",
               sum.nested ? "nested encoder and decoder" : "one flat model", sum.num_weights);
        printf("model         %dx%dx%d, filters ", c->height, c->width, c->channels);
        print_filters(stdout, c->filters, c->num_filters, ",");
        printf(", latent %d, LeakyReLU %g, BatchNorm epsilon %g, %zu parameters\n", c->latent_dim,
               (double)c->leaky_slope, (double)c->bn_epsilon, ae_model_num_params(m));
        printf("saved         ");
        cli_put_text(stdout, output);
        printf("\n");
    }
done:
    ae_model_free(m);
    ae_meta_free(meta);
    return rc;
}

static const cli_command export_cmd = {
    "export-keras", "MODEL -o WEIGHTS.h5",
    "Writes an aedet model's weights as the Keras HDF5 weights file of the tutorial's model,\n"
    "as autoencoder.save_weights('x.h5') writes it with Keras 2.x, for autoencoder.load_weights.",
    "Carried: every kernel and bias and BatchNorm's gamma, beta and moving statistics. Not\n"
    "carried (a weights file has no place for them): the image size, LeakyReLU's alpha and\n"
    "BatchNorm's epsilon (build the Keras model with the model's, printed here), the\n"
    "preprocessing, the score rule, the stored threshold and errors, the training history,\n"
    "and Adam's state. docs/MODEL_FORMAT.md (\"Keras weights\") has the details.",
    1, 1};

int cmd_export_keras(int argc, char **argv)
{
    const char *output = NULL;
    const cli_option opts[] = {
        {"output", OPT_OUTPUT, &output, "WEIGHTS", "Keras weights file to write, .h5 (also -o; required)"},
        {0},
    };
    const char *pos[1];
    int npos, rc = cli_parse(&export_cmd, opts, argc, argv, pos, &npos);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (!output)
        return cli_usage_error(&export_cmd, "-o WEIGHTS.h5 is required");
    const cli_path input = {"the model", pos[0], 0}, out = {"-o", output, 0};
    if ((rc = cli_check_outputs(&export_cmd, &input, 1, NULL, &out, 1)))
        return rc;
    ae_error err = {0};
    ae_model *m = NULL;
    if (ae_model_load(pos[0], 1, &m, NULL, NULL, &err) != AE_OK || ae_keras_export(output, m, &err) != AE_OK) {
        ae_model_free(m);
        return cli_report_error(&err);
    }
    const ae_config *c = ae_model_config(m);
    int k = c->num_filters, datasets = 12 * k + 6;
    if (cli_out.json) {
        printf("{\"event\":\"export-keras\",\"model\":");
        cli_json_string(stdout, pos[0]);
        printf(",\"weights\":");
        cli_json_string(stdout, output);
        printf(",\"height\":%d,\"width\":%d,\"channels\":%d,\"filters\":[", c->height, c->width, c->channels);
        print_filters(stdout, c->filters, k, ",");
        printf("],\"latent\":%d,\"leaky_slope\":%.9g,\"bn_epsilon\":%.9g,\"datasets\":%d}\n", c->latent_dim,
               (double)c->leaky_slope, (double)c->bn_epsilon, datasets);
    } else if (!cli_out.quiet) {
        printf("wrote         ");
        cli_put_text(stdout, output);
        printf(": Keras 2.x weights, %d datasets, of a %dx%dx%d model, filters ", datasets, c->height, c->width,
               c->channels);
        print_filters(stdout, c->filters, k, ",");
        printf(", latent %d\n", c->latent_dim);
        /* The tutorial's build(width, height, depth, filters, latentDim). */
        printf("in Keras      (encoder, decoder, autoencoder) = Convolution_Autoencoder.build(%d, %d, %d, "
               "filters=(", c->width, c->height, c->channels);
        print_filters(stdout, c->filters, k, ", ");
        printf("%s), latentDim=%d)\n              autoencoder.load_weights(...)\n", k == 1 ? "," : "",
               c->latent_dim);
        if (fabsf(c->leaky_slope - 0.3f) > 1e-7f || fabsf(c->bn_epsilon - 1e-3f) > 1e-10f)
            printf("note          this model has LeakyReLU alpha %g and BatchNorm epsilon %g: build the Keras "
                   "layers with those, the tutorial's are 0.3 and 0.001\n",
                   (double)c->leaky_slope, (double)c->bn_epsilon);
    }
    ae_model_free(m);
    return 0;
}
