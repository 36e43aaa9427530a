/* IDX files (the MNIST format), plain or gzip-compressed.
 *
 * Layout: two zero bytes, a type byte (only 0x08, unsigned byte, is accepted),
 * the number of dimensions, each dimension as a big-endian uint32, then the
 * data, whose length must be exactly the product of the dimensions. gzip is
 * recognised by its magic bytes (1f 8b), not by the file name. */
#include "aedet/image.h"
#include "common/file_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_MAX_DIMS 4

void ae_idx_free(ae_idx *idx)
{
    if (idx) {
        free(idx->data);
        memset(idx, 0, sizeof *idx);
    }
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks the header in h (at least 4 bytes, hlen available) and returns the
 * header size and the data size, or an error. */
static ae_status read_header(const uint8_t *h, size_t hlen, const char *name, ae_idx *out,
                             size_t *header_size, size_t *data_size, ae_error *err)
{
    if (hlen < 4)
        return ae_fail(err, AE_ERR_DATA, "%s: not an IDX file: only %zu bytes", name, hlen);
    if (h[0] != 0 || h[1] != 0)
        return ae_fail(err, AE_ERR_DATA,
                       "%s: not an IDX file: magic %02x %02x %02x %02x does not start with 00 00",
                       name, h[0], h[1], h[2], h[3]);
    if (h[2] != 0x08)
        return ae_fail(err, AE_ERR_DATA,
                       "%s: IDX data type 0x%02x is not supported (only 0x08, unsigned byte)",
                       name, h[2]);
    int ndim = h[3];
    if (ndim < 1 || ndim > IDX_MAX_DIMS)
        return ae_fail(err, AE_ERR_DATA, "%s: IDX file has %d dimensions (1 to %d supported)",
                       name, ndim, IDX_MAX_DIMS);
    size_t hsize = 4 + 4 * (size_t)ndim;
    if (hlen < hsize)
        return ae_fail(err, AE_ERR_DATA, "%s: IDX header is truncated (%zu of %zu bytes)", name,
                       hlen, hsize);
    size_t total = 1;
    out->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        uint32_t d = be32(h + 4 + 4 * i);
        if (d == 0 || d > INT_MAX)
            return ae_fail(err, AE_ERR_DATA, "%s: IDX dimension %d is %u", name, i,
                           (unsigned)d);
        if (!ae_mul_size(total, d, &total))
            return ae_fail(err, AE_ERR_DATA, "%s: IDX dimensions overflow a size", name);
        out->dims[i] = (int)d;
    }
    out->count = (size_t)out->dims[0];
    *header_size = hsize;
    *data_size = total;
    return AE_OK;
}

static ae_status parse_plain(const uint8_t *bytes, size_t len, const char *name, ae_idx *out,
                             ae_error *err)
{
    size_t hsize = 0, dsize = 0;
    ae_status st = read_header(bytes, len, name, out, &hsize, &dsize, err);
    if (st != AE_OK)
        return st;
    if (len - hsize < dsize)
        return ae_fail(err, AE_ERR_DATA,
                       "%s: IDX data is %zu bytes but the dimensions need %zu: file too short",
                       name, len - hsize, dsize);
    if (len - hsize > dsize)
        return ae_fail(err, AE_ERR_DATA,
                       "%s: IDX data is longer than the %zu bytes its dimensions need: "
                       "file too long", name, dsize);
    out->data = malloc(dsize);
    if (!out->data)
        return ae_fail(err, AE_ERR_NOMEM, "%s: out of memory for %zu bytes of IDX data", name,
                       dsize);
    memcpy(out->data, bytes + hsize, dsize);
    return AE_OK;
}

/* The whole size (header + data) the header at the start of buf claims, once
 * enough of it has arrived: 1 and *total when known, 0 when not yet, -1 when
 * the header is bad (parse_plain then says why). */
static int claimed_size(const uint8_t *buf, size_t used, size_t *total)
{
    if (used < 4)
        return 0;
    if (buf[0] || buf[1] || buf[3] < 1 || buf[3] > IDX_MAX_DIMS)
        return -1;
    size_t hsize = 4 + 4 * (size_t)buf[3], n = 1;
    if (used < hsize)
        return 0;
    for (size_t i = 4; i < hsize; i += 4)
        if (!ae_mul_size(n, be32(buf + i), &n))
            return -1;
    if (n > SIZE_MAX - hsize)
        return -1;
    *total = hsize + n;
    return 1;
}

/* Inflates gzip data (one or more members) into a buffer grown as data
 * arrives, so that a small file claiming huge dimensions costs nothing, and
 * stops as soon as the output is longer than its header claims (or the
 * header is bad), so that a gzip bomb costs nothing either. */
static ae_status gunzip(const uint8_t *bytes, size_t len, const char *name, uint8_t **out,
                        size_t *out_len, ae_error *err)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return ae_fail(err, AE_ERR_NOMEM, "%s: cannot start gzip decompression", name);
    size_t cap = 1 << 16, used = 0, in_pos = 0;
    uint8_t *buf = malloc(cap);
    ae_status st = AE_OK;
    if (!buf)
        st = ae_fail(err, AE_ERR_NOMEM, "%s: out of memory for gzip data", name);
    while (st == AE_OK) {
        if (used == cap) {
            uint8_t *grown = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!grown) {
                st = ae_fail(err, AE_ERR_NOMEM, "%s: out of memory for gzip data", name);
                break;
            }
            buf = grown;
            cap *= 2;
        }
        size_t in_chunk = len - in_pos < UINT_MAX ? len - in_pos : UINT_MAX;
        size_t out_chunk = cap - used < UINT_MAX ? cap - used : UINT_MAX;
        z.next_in = (Bytef *)(bytes + in_pos);
        z.avail_in = (uInt)in_chunk;
        z.next_out = buf + used;
        z.avail_out = (uInt)out_chunk;
        int r = inflate(&z, Z_NO_FLUSH);
        in_pos += in_chunk - z.avail_in;
        used += out_chunk - z.avail_out;
        size_t total;
        int known = claimed_size(buf, used, &total);
        if (known < 0 || (known > 0 && used > total))
            break; /* parse_plain reports the bad header or the extra data */
        if (r == Z_STREAM_END) {
            if (in_pos == len)
                break;
            /* Concatenated gzip members form one stream (as gzip -d reads them). */
            if (len - in_pos >= 2 && bytes[in_pos] == 0x1f && bytes[in_pos + 1] == 0x8b) {
                inflateReset(&z);
                continue;
            }
            st = ae_fail(err, AE_ERR_DATA, "%s: %zu bytes of garbage after the gzip data", name,
                         len - in_pos);
        } else if (r == Z_BUF_ERROR && in_pos == len && z.avail_in == 0 && used < cap) {
            st = ae_fail(err, AE_ERR_DATA, "%s: gzip data is truncated", name);
        } else if (r == Z_MEM_ERROR) {
            st = ae_fail(err, AE_ERR_NOMEM, "%s: out of memory in gzip decompression", name);
        } else if (r != Z_OK && r != Z_BUF_ERROR) {
            st = ae_fail(err, AE_ERR_DATA, "%s: corrupt gzip data: %s", name,
                         z.msg ? z.msg : "unknown error");
        }
    }
    inflateEnd(&z);
    if (st != AE_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    *out_len = used;
    return AE_OK;
}

ae_status ae_idx_parse(const uint8_t *bytes, size_t len, const char *name, ae_idx *out,
                       ae_error *err)
{
    memset(out, 0, sizeof *out);
    if (!name)
        name = "IDX data";
    ae_status st;
    if (len >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) {
        uint8_t *plain = NULL;
        size_t plain_len = 0;
        st = gunzip(bytes, len, name, &plain, &plain_len, err);
        if (st != AE_OK)
            return st;
        st = parse_plain(plain, plain_len, name, out, err);
        free(plain);
    } else {
        st = parse_plain(bytes, len, name, out, err);
    }
    if (st != AE_OK)
        ae_idx_free(out);
    return st;
}

static ae_status parse_bytes(const uint8_t *bytes, size_t len, const char *name, void *out, ae_error *err)
{
    return ae_idx_parse(bytes, len, name, out, err);
}

ae_status ae_idx_read(const char *path, ae_idx *out, ae_error *err)
{
    memset(out, 0, sizeof *out);
    return ae_parse_file(path, parse_bytes, out, err);
}
