/* libpng's allocations, for the PNG decoder and encoder: they go through
 * these (png_create_*_struct_2 with mem_ptr = an int flag), so that a failed
 * one is known for what it is: libpng's own message ("Out of memory") is
 * also given for a size of 0, and cannot tell it from a bad file. */
#ifndef AEDET_DATA_PNG_MEMORY_H
#define AEDET_DATA_PNG_MEMORY_H

#include <png.h>

/* malloc; sets the int at png_get_mem_ptr(png) to 1 when it fails. */
png_voidp ae_png_alloc(png_structp png, png_alloc_size_t size);
void ae_png_release(png_structp png, png_voidp p);

#endif
