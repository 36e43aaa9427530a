/* A user's program, built against the installed aedet (tests/install/run.sh):
 * trains a small model on images in memory, scores them, and saves the
 * model to argv[1] for the installed tool to read. */
#include <aedet.h>

#include <stdio.h>
#include <stdlib.h>

enum { N = 48, SIDE = 8 };

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: app MODEL\n");
        return 2;
    }
    static uint8_t pixels[N * SIDE * SIDE];
    ae_rng rng;
    ae_rng_seed(&rng, 1);
    for (size_t i = 0; i < sizeof pixels; i++) /* a ramp with noise */
        pixels[i] = (uint8_t)((i % SIDE) * 24 + ae_rng_below(&rng, 40));
    ae_fit_options o;
    ae_fit_options_init(&o);
    o.epochs = 2;
    o.batch_size = 8;
    ae_model *model = NULL;
    ae_meta *meta = NULL;
    ae_detector *detector = NULL;
    ae_error err = {0};
    float scores[N];
    int ok = ae_fit_pixels(pixels, N, SIDE, SIDE, 1, &o, &model, &meta, &err) == AE_OK &&
             ae_detector_from_meta(meta, ae_model_config(model)->latent_dim, argv[1], &detector, &err) == AE_OK &&
             ae_run_pixels(model, detector, pixels, N, SIDE, SIDE, 1, scores, NULL, NULL, &err) == AE_OK &&
             ae_model_save(argv[1], model, meta, 0, &err) == AE_OK;
    if (ok) {
        double threshold = 0;
        ae_meta_get_float(meta, AE_KEY_THRESHOLD_VALUE, &threshold);
        int flagged = 0;
        for (int i = 0; i < N; i++)
            flagged += scores[i] >= threshold;
        printf("aedet %s: trained on %d images, %d flagged at %g, saved %s\n", AE_VERSION_STRING, N, flagged,
               threshold, argv[1]);
    } else
        fprintf(stderr, "app: %s: %s\n", ae_status_name(err.code), err.message);
    ae_detector_free(detector);
    ae_meta_free(meta);
    ae_model_free(model);
    return ok ? 0 : 1;
}
