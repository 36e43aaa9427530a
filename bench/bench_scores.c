/* What each score rule costs on top of the model's own scoring (the mean
 * squared error, computed inside the model's last layer): images/s of
 * ae_model_score alone and with each rule's ae_detector_score, in one run,
 * as a ratio. The bound: at most 20% more time than mse at 256x256.
 *
 *   bench_scores [--size HxWxC] [--threads N] [--seconds S per rule (10)] [--reference N]
 *
 * Random weights and images: the cost does not depend on the values. */
#include "aedet.h"
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUNDS 5

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Scoring batches for about `seconds` as `aedet score` does
 * (ae_score_batch): the model's own mse (d NULL, no reconstruction asked
 * for), or by d's rule. */
static double images_per_second(ae_model *m, const ae_detector *d, const ae_config *cfg, const float *x,
                                float *recon, double seconds)
{
    (void)cfg;
    int batch = ae_model_max_batch(m);
    float scores[64];
    ae_error err;
    size_t images = 0;
    double start = bench_now(), t;
    do {
        if (ae_score_batch(m, d, x, batch, scores, d && ae_score_rule_uses_recon(ae_detector_rule(d)) ? recon : NULL,
                           &err) != AE_OK) {
            fprintf(stderr, "%s\n", err.message);
            exit(1);
        }
        images += (size_t)batch;
    } while ((t = bench_now() - start) < seconds);
    return (double)images / t;
}

int main(int argc, char **argv)
{
    int h = 256, w = 256, c = 3, threads = 0, batch = 32;
    double seconds = 10;
    size_t num_ref = 4096;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--size") && sscanf(argv[i + 1], "%dx%dx%d", &h, &w, &c) == 3)
            continue;
        if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--reference"))
            num_ref = (size_t)atol(argv[i + 1]);
        else {
            fprintf(stderr, "usage: %s [--size HxWxC] [--threads N] [--seconds S] [--reference N]\n", argv[0]);
            return 2;
        }
    }
    ae_set_num_threads(threads);
    ae_config cfg;
    ae_config_init(&cfg, h, w, c);
    ae_model *m;
    ae_error err;
    if (ae_model_create(&cfg, batch, &m, &err) != AE_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    ae_model_init_weights(m, 1);
    size_t per_image = (size_t)h * (size_t)w * (size_t)c;
    float *x = bench_random_floats((size_t)batch * per_image), *recon = malloc((size_t)batch * per_image * sizeof(float));
    float *ref = bench_random_floats(num_ref * (size_t)cfg.latent_dim), mse[64];
    for (size_t i = 0; i < (size_t)batch * per_image; i++)
        x[i] += 0.5f;
    printf("# %dx%dx%d, batch %d, %d threads, %zu reference latents; the time of mse scoring alone "
           "(ae_model_score) and with each rule, alternating, %d rounds of %.1f s each: median ratio\n",
           h, w, c, batch, ae_get_num_threads(), num_ref, ROUNDS, seconds / ROUNDS);
    /* mse with a detector: the cost of writing the reconstruction out alone */
    const char *rules[] = {"mse", "max", "topk:1", "ssim", "relative", "latent-knn", "combined"};
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
        ae_score_rule rule;
        ae_detector *d;
        ae_score_rule_parse(rules[r], &rule, NULL);
        ae_detector_create(&rule, &d, NULL);
        ae_detector_set_reference(d, ref, num_ref, cfg.latent_dim, 0, NULL);
        ae_model_score(m, x, batch, mse, recon, &err);
        ae_detector_calibrate(d, &cfg, x, mse, recon, ae_model_latent(m), (size_t)batch, NULL);
        double ratio[ROUNDS], base_rate = 0, rule_rate = 0;
        for (int round = 0; round < ROUNDS; round++) {
            double base = images_per_second(m, NULL, &cfg, x, recon, seconds / ROUNDS / 2);
            double with = images_per_second(m, d, &cfg, x, recon, seconds / ROUNDS / 2);
            ratio[round] = base / with;
            base_rate += base / ROUNDS, rule_rate += with / ROUNDS;
        }
        qsort(ratio, ROUNDS, sizeof *ratio, compare_doubles);
        printf("%-11s mse %7.1f images/s, with the rule %7.1f: %.3fx the time (rounds %.3f-%.3f)\n", rules[r],
               base_rate, rule_rate, ratio[ROUNDS / 2], ratio[0], ratio[ROUNDS - 1]);
        ae_detector_free(d);
    }
    free(x), free(recon), free(ref);
    ae_model_free(m);
    return 0;
}
