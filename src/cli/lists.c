/* DATA as a list of image files: "-" reads the paths from standard input,
 * "@FILE" from FILE, one a line (ae_dataset_open_list). One image file as
 * DATA needs nothing here: the library opens it (AE_SOURCE_AUTO). */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *cli_data_list(const char *data_path)
{
    if (!data_path)
        return NULL;
    if (!strcmp(data_path, "-"))
        return "standard input";
    struct stat st;
    if (data_path[0] == '@' && data_path[1] && stat(data_path, &st) != 0) /* a file named "@x" is itself */
        return data_path + 1;
    return NULL;
}

const char *cli_data_input(const char *data_path)
{
    const char *list = cli_data_list(data_path);
    if (!list)
        return data_path;
    return strcmp(data_path, "-") ? list : NULL;
}

/* Standard input, read once: train and demo may open the data twice. */
static ae_status read_stdin(char **text, size_t *len, ae_error *err)
{
    static char *kept;
    static size_t kept_len;
    static int done;
    if (!done) {
        if (isatty(STDIN_FILENO))
            fprintf(stderr, "aedet: reading image paths from standard input, one a line (Ctrl-D ends)\n");
        size_t cap = 65536;
        char *buf = malloc(cap);
        size_t n = 0;
        while (buf) {
            if (n == cap) {
                if (cap >= ((size_t)1 << 30)) {
                    free(buf);
                    return ae_fail(err, AE_ERR_DATA, "standard input: a list of paths over 1 GiB");
                }
                char *grown = realloc(buf, cap *= 2);
                if (!grown)
                    free(buf);
                buf = grown;
                if (!buf)
                    break;
            }
            ssize_t r = read(STDIN_FILENO, buf + n, cap - n);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                int e = errno;
                free(buf);
                return ae_fail(err, AE_ERR_IO, "reading the list of paths from standard input: %s", strerror(e));
            }
            if (r == 0)
                break;
            n += (size_t)r;
        }
        if (!buf)
            return ae_fail(err, AE_ERR_NOMEM, "out of memory reading standard input");
        kept = buf;
        kept_len = n;
        done = 1;
    }
    *text = kept;
    *len = kept_len;
    return AE_OK;
}

ae_status cli_dataset_open(const ae_source *src, ae_dataset *ds, ae_error *err)
{
    const char *list = cli_data_list(src->root);
    if (!list)
        return ae_dataset_open(src, ds, err);
    *ds = (ae_dataset){0};
    if (src->kind != AE_SOURCE_AUTO)
        return ae_fail(err, AE_ERR_USAGE, "%s: a list of image files takes no --layout", src->root);
    char *text = NULL;
    size_t len = 0;
    uint8_t *bytes = NULL;
    ae_status s;
    if (!strcmp(src->root, "-"))
        s = read_stdin(&text, &len, err);
    else if ((s = ae_read_file(list, &bytes, &len, err)) == AE_OK)
        text = (char *)bytes;
    if (s == AE_OK)
        s = ae_dataset_open_list(src, text, len, list, ds, err);
    free(bytes);
    return s;
}
