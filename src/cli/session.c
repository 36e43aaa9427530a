/* What score, report, encode and reconstruct share: a model, the data set,
 * the chosen images and a loader at the model's size. */
#include "cli.h"
#include "dist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Narrows the selection to the model's training or validation split: the
 * same recipe, seed and fraction as `train`, checked by the fingerprint. */
static int keep_split(const cli_command *cmd, const char *model_path, const char *data_path, const char *split,
                      cli_session *s)
{
    int64_t seed = 0, fingerprint = 0;
    double fraction;
    if (!ae_meta_get_float(s->meta, AE_KEY_VAL_FRACTION, &fraction) ||
        !ae_meta_get_int(s->meta, AE_KEY_SEED, &seed) ||
        !ae_meta_get_int(s->meta, AE_KEY_DATA_FINGERPRINT, &fingerprint))
        return cli_usage_error(cmd, "%s does not record its split", model_path);
    if (!cli_same_data(&s->ds, data_path, s->items, s->n_items, fingerprint))
        return cli_usage_error(cmd, "--split needs the data and data flags %s was trained with", model_path);
    size_t *train = NULL, *val = NULL, n_train = 0, n_val = 0;
    ae_error err = {0};
    if (ae_split(s->items, s->n_items, fraction, (uint64_t)seed, &train, &n_train, &val, &n_val, &err) != AE_OK)
        return cli_report_error(&err);
    free(s->items);
    int want_train = !strcmp(split, "train");
    s->items = want_train ? train : val;
    s->n_items = want_train ? n_train : n_val;
    free(want_train ? val : train);
    return 0;
}

int cli_session_open(const cli_command *cmd, const cli_data_args *d, const char *model_path,
                     const char *data_path, const char *split, const cli_path *outputs, int n_outputs,
                     cli_session *s)
{
    *s = (cli_session){0};
    ae_error err = {0};
    cli_apply_data_limits(d);
    if (d->batch < 1)
        return cli_usage_error(cmd, "--batch must be at least 1");
    if (strcmp(split, "all") && strcmp(split, "train") && strcmp(split, "validation"))
        return cli_usage_error(cmd, "--split wants all, train or validation, not '%s'", split);
    if (ae_model_load(model_path, d->batch, &s->model, &s->meta, NULL, &err) != AE_OK)
        return cli_report_error(&err);
    if (d->bf16 && ae_model_set_bf16(s->model, 1, &err) != AE_OK) {
        cli_session_close(s);
        return cli_report_error(&err);
    }
    /* The model's seed: with --anomaly-class, the same sample as `train` took. */
    int64_t seed = 0;
    ae_meta_get_int(s->meta, AE_KEY_SEED, &seed);
    int whole = !strcmp(split, "all"), rc;
    /* The folder layout: the normal share training held out, unless given. */
    cli_data_args dd = *d;
    double stored_split;
    if (dd.normal_dir && isnan(dd.test_split) && ae_meta_get_float(s->meta, AE_KEY_TEST_SPLIT, &stored_split) && stored_split >= 0 &&
        stored_split < 1)
        dd.test_split = stored_split;
    /* Every caller reads the images once, so each is decoded once; under
     * mpirun every rank must know its count before the pass (dist.h). */
    s->one_pass = cli_dist_size() == 1;
    /* Before the loader decodes anything: no output may replace an input. */
    const cli_path inputs[] = {{"the model", model_path, 0}, {"DATA", cli_data_input(data_path), 0}, {"the labels", d->labels, 0}};
    if ((rc = cli_open_data(cmd, &dd, data_path, (uint64_t)seed, !whole, &s->ds, &s->items, &s->n_items)) ||
        (rc = cli_check_outputs(cmd, inputs, 3, &s->ds, outputs, n_outputs)) ||
        (!whole && (rc = keep_split(cmd, model_path, cli_data_root(d, data_path), split, s))) ||
        (rc = cli_dist_shard_items(cmd, &s->ds, &s->items, &s->n_items)) || /* under mpirun */
        (rc = cli_make_loader(d, &s->ds, s->items, s->n_items, d->memory_budget ? d->memory_budget : 1,
                              ae_model_config(s->model), s->one_pass, &s->loader))) {
        cli_session_close(s);
        return rc;
    }
    return 0;
}

int cli_session_detector(const cli_command *cmd, cli_session *s, const char *model_path, const char *score)
{
    ae_error err = {0};
    const ae_config *cfg = ae_model_config(s->model);
    if (ae_detector_from_meta(s->meta, cfg->latent_dim, model_path, &s->detector, &err) != AE_OK)
        return cli_report_error(&err);
    if (!score)
        return 0;
    ae_score_rule rule;
    if (ae_score_rule_parse(score, &rule, &err) != AE_OK)
        return cli_usage_error(cmd, "--score: %s", err.message);
    ae_detector_set_rule(s->detector, &rule);
    if (!ae_detector_ready(s->detector))
        return cli_usage_error(cmd, "--score %s needs what training learns for it (reference latents), and "
                                    "%s has none: retrain it with this version",
                               score, model_path);
    return 0;
}

void cli_session_passed(const cli_session *s, size_t *n)
{
    if (!s->one_pass || !ae_loader_is_streaming(s->loader))
        return; /* cli_make_loader printed them */
    cli_print_bad_files(s->loader);
    *n = ae_loader_count(s->loader);
}

void cli_session_close(cli_session *s)
{
    ae_detector_free(s->detector);
    ae_loader_free(s->loader);
    free(s->items);
    ae_dataset_free(&s->ds);
    ae_meta_free(s->meta);
    ae_model_free(s->model);
    *s = (cli_session){0};
}
