/* libFuzzer: decode any bytes as an image; when that works, prepare it and
 * check that a PNG round trip gives the same pixels back. */
#include "aedet/image.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ae_image img;
    ae_error err;
    if (ae_image_decode(data, size, "fuzz", &img, &err) != AE_OK) {
        if (img.pixels || err.code != AE_ERR_DATA || !strstr(err.message, "fuzz"))
            abort(); /* failures are data errors, name the input, and return nothing */
        return 0;
    }
    if (img.height <= 0 || img.width <= 0 || (img.channels != 1 && img.channels != 3))
        abort();
    uint8_t small[7 * 5 * 3];
    if (ae_image_prepare(&img, 7, 5, 3, small, &err) != AE_OK ||
        ae_image_prepare(&img, 5, 7, 1, small, &err) != AE_OK)
        abort();
    if ((size_t)img.height * (size_t)img.width <= 1 << 16) {
        uint8_t *png;
        size_t len;
        ae_image back;
        if (ae_png_encode(img.pixels, img.height, img.width, img.channels, &png, &len, &err) !=
                AE_OK ||
            ae_image_decode(png, len, "round trip", &back, &err) != AE_OK)
            abort();
        size_t n = (size_t)img.height * (size_t)img.width * (size_t)img.channels;
        if (back.channels != img.channels || back.height != img.height ||
            back.width != img.width || memcmp(back.pixels, img.pixels, n) != 0)
            abort();
        ae_image_free(&back);
        free(png);
    }
    ae_image_free(&img);
    return 0;
}
