/* The one JSON writer of the tool: every --json record is one object on one
 * line (JSON Lines), {"event":"...", ...}, written to standard output. */
#include "cli.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void cli_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

void cli_json_begin(cli_json *j, const char *event)
{
    j->f = stdout;
    fputs("{\"event\":", j->f);
    cli_json_string(j->f, event);
}

void cli_json_key(cli_json *j, const char *key)
{
    fputc(',', j->f);
    cli_json_string(j->f, key);
    fputc(':', j->f);
}

void cli_json_str(cli_json *j, const char *key, const char *v)
{
    cli_json_key(j, key);
    if (v)
        cli_json_string(j->f, v);
    else
        fputs("null", j->f);
}

void cli_json_int(cli_json *j, const char *key, long long v)
{
    cli_json_key(j, key);
    fprintf(j->f, "%lld", v);
}

void cli_json_number(FILE *f, double v, int digits)
{
    if (isfinite(v))
        fprintf(f, "%.*g", digits, v);
    else
        fputs("null", f); /* NaN and infinities are not JSON numbers */
}

void cli_json_num(cli_json *j, const char *key, double v, int digits)
{
    cli_json_key(j, key);
    cli_json_number(j->f, v, digits);
}

void cli_json_bool(cli_json *j, const char *key, int v)
{
    cli_json_key(j, key);
    fputs(v ? "true" : "false", j->f);
}

void cli_json_raw(cli_json *j, const char *key, const char *json)
{
    cli_json_key(j, key);
    /* JSON the library wrote pretty (metrics.json) on one line: its line
     * breaks and their indentation go (strings hold none: they are escaped). */
    for (const char *p = json; *p; p++) {
        if (*p == '\n') {
            while (p[1] == ' ')
                p++;
            continue;
        }
        fputc(*p, j->f);
    }
}

void cli_json_end(cli_json *j)
{
    fputs("}\n", j->f);
    fflush(j->f);
}

void cli_json_metrics(cli_json *j, const ae_metrics_summary *m)
{
    char *json;
    size_t len;
    if (ae_metrics_json(m, &json, &len, NULL) == AE_OK) {
        while (len && json[len - 1] == '\n')
            json[--len] = '\0';
        cli_json_raw(j, "metrics", json);
        free(json);
    } else
        cli_json_str(j, "metrics", NULL);
}
