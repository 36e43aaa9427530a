/* aedet encode and aedet reconstruct: the encoder as dimensionality reduction,
 * the autoencoder as a denoiser. Both walk the data through the one scoring
 * path and look at each batch on the way. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    ae_model *model;
    const ae_dataset *ds;
    ae_atomic_file out;  /* encode: latents.csv; reconstruct: DIR/index.csv */
    const char *dir;     /* reconstruct: the output folder */
    int error_maps;
    size_t done;
    uint8_t *pixels;     /* one image, H x W x C */
} visit_ctx;

static ae_status encode_batch(void *user, const ae_batch *b, const float *input, const float *recon,
                              const float *errors, ae_error *err)
{
    (void)input;
    (void)recon;
    visit_ctx *c = user;
    /* ae_model_score ran the encoder: its latent is still in the model. */
    const float *z = ae_model_latent(c->model);
    int d = ae_model_config(c->model)->latent_dim;
    char buf[64];
    for (int i = 0; i < b->count && cli_out.json; i++) {
        const ae_item *it = &c->ds->items[b->items[i]];
        cli_json j;
        cli_json_begin(&j, "latent");
        cli_json_str(&j, "image", ae_item_name(it, buf, sizeof buf));
        cli_json_key(&j, "label");
        if (it->label >= 0)
            fprintf(j.f, "%d", it->label);
        else
            fputs("null", j.f);
        cli_json_num(&j, "score", errors[i], 9);
        cli_json_key(&j, "z");
        for (int k = 0; k < d; k++) {
            fputc(k ? ',' : '[', j.f);
            cli_json_number(j.f, z[(size_t)i * (size_t)d + (size_t)k], 9);
        }
        fputc(']', j.f);
        cli_json_end(&j);
    }
    if (!c->out.f) /* --json without -o */
        return AE_OK;
    for (int i = 0; i < b->count; i++) {
        const ae_item *it = &c->ds->items[b->items[i]];
        cli_csv_field(c->out.f, ae_item_name(it, buf, sizeof buf));
        if (it->label >= 0)
            fprintf(c->out.f, ",%d", it->label);
        else
            fputc(',', c->out.f);
        fprintf(c->out.f, ",%.9g", errors[i]);
        for (int k = 0; k < d; k++)
            fprintf(c->out.f, ",%.9g", z[(size_t)i * (size_t)d + (size_t)k]);
        fputc('\n', c->out.f);
    }
    if (ferror(c->out.f))
        return ae_fail(err, AE_ERR_IO, "writing latents: %s", strerror(errno));
    return AE_OK;
}

static uint8_t to_byte(float v)
{
    float x = v * 255.0f + 0.5f;
    return x <= 0 ? 0 : x >= 255 ? 255 : (uint8_t)x;
}

/* "00042_name.png" from the item's file name (or "00042.png" for IDX). A
 * long name is cut to fit NAME_MAX (255 bytes) at a UTF-8 character
 * boundary; the number keeps the names apart. */
static void output_name(const ae_item *it, size_t n, const char *suffix, char *out, size_t size)
{
    const char *base = it->path ? strrchr(it->path, '/') : NULL;
    base = base ? base + 1 : it->path;
    if (!base) {
        snprintf(out, size, "%05zu%s.png", n, suffix);
        return;
    }
    const char *dot = strrchr(base, '.');
    int len = dot ? (int)(dot - base) : (int)strlen(base);
    int room = 255 - snprintf(NULL, 0, "%05zu_%s.png", n, suffix);
    if (len > room) {
        len = room;
        while (len > 0 && ((unsigned char)base[len] & 0xc0) == 0x80)
            len--;
    }
    snprintf(out, size, "%05zu_%.*s%s.png", n, len, base, suffix);
}

static ae_status reconstruct_batch(void *user, const ae_batch *b, const float *input, const float *recon,
                                   const float *errors, ae_error *err)
{
    visit_ctx *c = user;
    const ae_config *cfg = ae_model_config(c->model);
    size_t hw = (size_t)cfg->height * (size_t)cfg->width, per = hw * (size_t)cfg->channels;
    char name[512], path[4096], buf[64];
    for (int i = 0; i < b->count; i++, c->done++) {
        const ae_item *it = &c->ds->items[b->items[i]];
        const float *r = recon + (size_t)i * per, *x = input + (size_t)i * per;
        for (size_t k = 0; k < per; k++)
            c->pixels[k] = to_byte(r[k]);
        output_name(it, c->done, "", name, sizeof name);
        if (snprintf(path, sizeof path, "%s/%s", c->dir, name) >= (int)sizeof path)
            return ae_fail(err, AE_ERR_USAGE, "%s/%s: path too long", c->dir, name);
        ae_status s = ae_png_write(path, c->pixels, cfg->height, cfg->width, cfg->channels, err);
        if (s != AE_OK)
            return s;
        cli_csv_field(c->out.f, ae_item_name(it, buf, sizeof buf));
        fprintf(c->out.f, ",%.9g,", errors[i]);
        cli_csv_field(c->out.f, name);
        if (c->error_maps) {
            /* Mean absolute error over the channels, 0..255: dark is good. */
            for (size_t p = 0; p < hw; p++) {
                float e = 0;
                for (int ch = 0; ch < cfg->channels; ch++)
                    e += fabsf(r[p * (size_t)cfg->channels + (size_t)ch] - x[p * (size_t)cfg->channels + (size_t)ch]);
                c->pixels[p] = to_byte(e / (float)cfg->channels);
            }
            output_name(it, c->done, "_error", name, sizeof name);
            if (snprintf(path, sizeof path, "%s/%s", c->dir, name) >= (int)sizeof path)
                return ae_fail(err, AE_ERR_USAGE, "%s/%s: path too long", c->dir, name);
            if ((s = ae_png_write(path, c->pixels, cfg->height, cfg->width, 1, err)) != AE_OK)
                return s;
            fputc(',', c->out.f);
            cli_csv_field(c->out.f, name);
        }
        fputc('\n', c->out.f);
        if (cli_out.json) {
            cli_json j;
            cli_json_begin(&j, "reconstruction");
            cli_json_str(&j, "image", ae_item_name(it, buf, sizeof buf));
            cli_json_num(&j, "score", errors[i], 9);
            output_name(it, c->done, "", name, sizeof name);
            snprintf(path, sizeof path, "%s/%s", c->dir, name);
            cli_json_str(&j, "file", path);
            if (c->error_maps) {
                output_name(it, c->done, "_error", name, sizeof name);
                snprintf(path, sizeof path, "%s/%s", c->dir, name);
                cli_json_str(&j, "error_map", path);
            }
            cli_json_end(&j);
        }
    }
    return AE_OK;
}

typedef struct {
    cli_data_args data;
    const char *output;
    int error_maps;
} walk_args;

static int reconstruct_begin(visit_ctx *c, const walk_args *a);

/* Loads the model and data and walks every image through visit. */
static int walk(const cli_command *cmd, const char *model_path, const char *data_path, walk_args *a,
                visit_ctx *c, ae_batch_visitor visit, int (*begin)(visit_ctx *, const walk_args *))
{
    cli_session se;
    const cli_path output = {"-o", a->output, begin == reconstruct_begin};
    int rc = cli_session_open(cmd, &a->data, model_path, data_path, "all", &output, 1, &se);
    if (rc)
        return rc;
    ae_error err = {0};
    const ae_config *cfg = ae_model_config(se.model);
    size_t n = ae_loader_count(se.loader);
    float *scores = malloc((n ? n : 1) * sizeof *scores);
    c->model = se.model;
    c->ds = &se.ds;
    c->pixels = malloc((size_t)cfg->height * (size_t)cfg->width * (size_t)cfg->channels);
    if (!scores || !c->pixels) {
        ae_fail(&err, AE_ERR_NOMEM, "out of memory for %zu images", n);
        rc = cli_report_error(&err);
    } else if (!(rc = begin(c, a))) {
        ae_status s = ae_score_loader(se.model, se.loader, a->data.batch, scores, NULL, visit, c, &err);
        if (s == AE_OK)
            cli_session_passed(&se, &n);
        if (s != AE_OK) {
            ae_atomic_commit(&c->out, 0, NULL); /* nothing half-written replaces anything */
            rc = cli_report_error(&err);
        } else if (ae_atomic_commit(&c->out, 1, &err) != AE_OK)
            rc = cli_report_error(&err);
        else {
            if (c->dir) /* the PNGs' temp files that a killed run left */
                ae_remove_stale_temps_in(c->dir, ".png");
            if (cli_out.json) {
                cli_json j;
                cli_json_begin(&j, c->dir ? "reconstructed" : "encoded");
                cli_json_int(&j, "images", (long long)n);
                cli_json_str(&j, "output", a->output);
                cli_json_end(&j);
            } else if (!cli_out.quiet && a->output)
                fprintf(stderr, "wrote %zu images' results to %s\n", n, a->output);
        }
    }
    free(c->pixels);
    free(scores);
    cli_session_close(&se);
    return rc;
}

static int encode_begin(visit_ctx *c, const walk_args *a)
{
    ae_error err;
    if (!a->output) /* --json alone: the records on standard output */
        return 0;
    if (ae_atomic_open(a->output, &c->out, &err) != AE_OK)
        return cli_report_error(&err);
    int d = ae_model_config(c->model)->latent_dim;
    fprintf(c->out.f, "image,label,score");
    for (int k = 0; k < d; k++)
        fprintf(c->out.f, ",z%d", k);
    fputc('\n', c->out.f);
    return 0;
}

static int reconstruct_begin(visit_ctx *c, const walk_args *a)
{
    ae_error err;
    if (mkdir(a->output, 0777) != 0 && errno != EEXIST) {
        ae_fail(&err, AE_ERR_IO, "%s: %s", a->output, strerror(errno));
        return cli_report_error(&err);
    }
    c->dir = a->output;
    c->error_maps = a->error_maps;
    char index_path[4096];
    snprintf(index_path, sizeof index_path, "%s/index.csv", a->output);
    if (ae_atomic_open(index_path, &c->out, &err) != AE_OK)
        return cli_report_error(&err);
    fprintf(c->out.f, "image,score,reconstruction%s\n", a->error_maps ? ",error_map" : "");
    return 0;
}

static const cli_command encode_cmd = {
    "encode", "MODEL DATA|--normal-dir DIR -o latents.csv [options]",
    "The encoder as dimensionality reduction: one latent vector per image.",
    "latents.csv: image,label,score,z0,...,z<latent-1>, in the data's order. With --json,\n"
    "one {\"event\":\"latent\",\"image\",\"label\",\"score\",\"z\":[...]} line per image on standard\n"
    "output (then -o is optional), and a final {\"event\":\"encoded\"} line.", 1, 2};

static const cli_command reconstruct_cmd = {
    "reconstruct", "MODEL DATA|--normal-dir DIR -o DIR [options]",
    "The autoencoder as a denoiser: writes each image's reconstruction as PNG into DIR.",
    "Files are named <n>_<original name>.png; --error-map adds <n>_<name>_error.png, the\n"
    "per-pixel mean absolute error over the channels (0 black .. 1 white). DIR/index.csv\n"
    "lists image,score,reconstruction[,error_map].",
    1, 2};

static int run_walk(const cli_command *cmd, int argc, char **argv, int reconstruct)
{
    walk_args a = {0};
    cli_data_defaults(&a.data);
    const cli_option encode_opts[] = {
        {"output", OPT_OUTPUT, &a.output, "FILE", "latents CSV to write (also -o; required without --json)"},
        CLI_DATA_OPTIONS(a.data),
        {0},
    };
    const cli_option reconstruct_opts[] = {
        {"output", OPT_STRING, &a.output, "DIR", "folder for the PNGs (required; also -o)"},
        {"error-map", OPT_FLAG, &a.error_maps, NULL, "also write per-pixel error maps"},
        CLI_DATA_OPTIONS(a.data),
        {0},
    };
    const char *pos[2];
    int npos, rc = cli_parse(cmd, reconstruct ? reconstruct_opts : encode_opts, argc, argv, pos, &npos);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (!a.output && (reconstruct || !cli_out.json))
        return cli_usage_error(cmd, "-o %s is required%s", reconstruct ? "DIR" : "FILE",
                               reconstruct ? "" : " (or --json for the latents on standard output)");
    const char *data_path = npos > 1 ? pos[1] : NULL;
    if ((rc = cli_folder_flags_alone(cmd, &a.data)))
        return rc;
    if (!data_path && !a.data.normal_dir)
        return cli_usage_error(cmd, "DATA (or --normal-dir DIR) is required");
    visit_ctx c = {0};
    if (reconstruct)
        return walk(cmd, pos[0], data_path, &a, &c, reconstruct_batch, reconstruct_begin);
    return walk(cmd, pos[0], data_path, &a, &c, encode_batch, encode_begin);
}

int cmd_encode(int argc, char **argv) { return run_walk(&encode_cmd, argc, argv, 0); }
int cmd_reconstruct(int argc, char **argv) { return run_walk(&reconstruct_cmd, argc, argv, 1); }
