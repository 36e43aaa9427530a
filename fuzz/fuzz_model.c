/* libFuzzer: any bytes as a model file, then a forward pass and the score
 * rules on what loads. The first byte picks the path: odd, the bytes as
 * they are (the checksum catches nearly every change); even, the checksum
 * rewritten to match (a crafted file, so the checks behind it are what
 * stand). Shapes that would take more than a small model's memory are left
 * to the loader's own bounds (tests/test_limits.c): this target looks for
 * crashes and undefined behaviour in parsing and scoring. */
#include "aedet.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small enough that a forward pass costs milliseconds. */
static int small_config(const uint8_t *bytes, size_t len)
{
    ae_model_file *f;
    ae_config cfg;
    if (ae_model_file_parse(bytes, len, "fuzz.aedet", &f, NULL) != AE_OK)
        return 1; /* the loader refuses it before building anything */
    int ok = ae_model_config_from_meta(ae_model_file_meta(f), "fuzz.aedet", &cfg, NULL) != AE_OK ||
             ((size_t)cfg.height * (size_t)cfg.width * (size_t)cfg.channels <= 64 * 64 * 3 &&
              cfg.latent_dim <= 256 && cfg.num_filters <= 4 && cfg.filters[0] <= 64);
    for (int i = 1; ok && i < cfg.num_filters && i < AE_MAX_FILTERS; i++)
        ok = cfg.filters[i] <= 64;
    ae_model_file_free(f);
    return ok;
}

static void score_once(ae_model *m, const ae_meta *meta)
{
    const ae_config *c = ae_model_config(m);
    size_t per_image = (size_t)c->height * (size_t)c->width * (size_t)c->channels;
    float *x = calloc(per_image, sizeof *x), *recon = malloc(per_image * sizeof *recon), mse, score;
    ae_detector *d = NULL;
    if (x && recon && ae_model_score(m, x, 1, &mse, recon, NULL) == AE_OK &&
        ae_detector_from_meta(meta, c->latent_dim, "fuzz.aedet", &d, NULL) == AE_OK && ae_detector_ready(d))
        ae_detector_score(d, c, x, recon, ae_model_latent(m), &mse, 1, &score, NULL);
    ae_detector_free(d);
    free(x);
    free(recon);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t len = size - 1;
    uint8_t *bytes = malloc(len ? len : 1);
    if (!bytes)
        return 0;
    memcpy(bytes, data + 1, len);
    if (!(data[0] & 1) && len >= 4) {
        uLong crc = crc32(crc32(0L, Z_NULL, 0), bytes, (uInt)(len - 4));
        for (int i = 0; i < 4; i++)
            bytes[len - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
    }
    ae_model *m = NULL;
    ae_meta *meta = NULL;
    ae_error err;
    if (small_config(bytes, len)) {
        if (ae_model_load_bytes(bytes, len, "fuzz.aedet", 1, &m, &meta, NULL, &err) == AE_OK)
            score_once(m, meta);
        else if (!strstr(err.message, "fuzz.aedet") && err.code != AE_ERR_NOMEM)
            abort(); /* every refusal names the file */
    }
    ae_meta_free(meta);
    ae_model_free(m);
    free(bytes);
    return 0;
}
