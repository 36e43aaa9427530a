/* Issue 20, items 2, 3, 4 and 9: the default model size and the summary of
 * the input sizes; one image file, "-" (paths on standard input) and @LIST
 * as DATA; --json as JSON Lines everywhere (checked by a JSON parser here);
 * --config FILE, and the resolved configuration stored in the model. */
#include "support.h"

#include "aedet.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define NUM_IMAGES 12
#define SMALL "--size 16 --filters 4,8 --latent 4 --batch 8 --threads 1"

static char data[PATH_MAX], labels[PATH_MAX], model[PATH_MAX];

/* ---- a strict JSON checker: one value, nothing after it ---- */

static const char *js_value(const char *p, int depth);

static const char *js_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    return p;
}

static const char *js_string(const char *p)
{
    if (!p || *p != '"')
        return NULL;
    for (p++; *p && *p != '"'; p++) {
        if ((unsigned char)*p < 0x20)
            return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)p[i]))
                        return NULL;
                p += 4;
            } else if (!*p || !strchr("\"\\/bfnrt", *p))
                return NULL;
        }
    }
    return *p == '"' ? p + 1 : NULL;
}

static const char *js_number(const char *p)
{
    const char *s = p;
    if (*p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return NULL;
    if (*p == '0')
        p++;
    else
        while (isdigit((unsigned char)*p))
            p++;
    if (*p == '.') {
        if (!isdigit((unsigned char)*++p))
            return NULL;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return NULL;
        while (isdigit((unsigned char)*p))
            p++;
    }
    return p > s ? p : NULL;
}

static const char *js_value(const char *p, int depth)
{
    p = js_ws(p);
    if (depth > 64)
        return NULL;
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = js_ws(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (close == '}') {
                p = js_ws(js_string(js_ws(p)));
                if (!p || *p != ':')
                    return NULL;
                p++;
            }
            if (!(p = js_value(p, depth + 1)))
                return NULL;
            p = js_ws(p);
            if (*p == close)
                return p + 1;
            if (*p++ != ',')
                return NULL;
        }
    }
    if (*p == '"')
        return js_string(p);
    if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4))
        return p + 4;
    if (!strncmp(p, "false", 5))
        return p + 5;
    return js_number(p);
}

/* Every line of text is one JSON object; returns how many lines. */
static int json_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl); /* every record ends its line */
        char *line = strndup(p, (size_t)(nl - p));
        const char *end = js_value(line, 0);
        if (line[0] != '{' || !end || *js_ws(end))
            fail_msg("line %d is not one JSON object: %s", n + 1, line);
        free(line);
        n++;
        p = nl + 1;
    }
    return n;
}

/* Line i (0-based) of text, in a static buffer. */
static const char *line_of(const char *text, int i)
{
    static char buf[1 << 16];
    const char *p = text;
    for (int k = 0; k < i && p; k++)
        p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL;
    assert_non_null(p);
    size_t n = strcspn(p, "\n");
    snprintf(buf, sizeof buf, "%.*s", (int)n, p);
    return buf;
}

/* ---- running the tool ---- */


static char out_text[1 << 20], err_text[1 << 16];

static void read_into(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
}

/* `aedet ARGS` with standard input from input (NULL: /dev/null); its
 * standard output in out_text, its standard error in err_text. */
static int run_split(const char *input, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run_split(const char *input, const char *fmt, ...)
{
    char args[8192], cmd[16384], out[PATH_MAX], errs[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(out, sizeof out, "%s/run.out", test_tmpdir());
    snprintf(errs, sizeof errs, "%s/run.err", test_tmpdir());
    snprintf(cmd, sizeof cmd, "%s %s > %s 2> %s < %s", test_aedet(), args, test_quote(out), test_quote(errs),
             input ? test_quote(input) : "/dev/null");
    int status = system(cmd);
    read_into(out, out_text, sizeof out_text);
    read_into(errs, err_text, sizeof err_text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void write_text(const char *path, const char *text)
{
    test_write_file(path, text, strlen(text));
}

static void write_image(const char *path, int k, int h, int w)
{
    uint8_t *px = malloc((size_t)h * (size_t)w);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            px[y * w + x] = (uint8_t)(127.5 + 100 * sin(0.3 * k + 0.3 * x * 16 / w + 0.2 * y * 16 / h));
    test_write_png(path, px, h, w, 0, 8);
    free(px);
}

/* The setup's image k: heights 20-40, widths 24-56. */
static void write_setup_image(const char *path, int k)
{
    write_image(path, k, 20 + 4 * (k % 6), 24 + 8 * (k % 5));
}

/* Images of several sizes with a labels CSV, and a small model trained on
 * them at 16x16. */
static int setup(void **state)
{
    (void)state;
    return test_labelled_model(data, labels, model, sizeof data, NUM_IMAGES, write_setup_image,
                               SMALL);
}

static void inspect(const char *path, ae_model_summary *sum, ae_meta **meta)
{
    ae_error err;
    if (ae_model_inspect(path, sum, meta, &err) != AE_OK)
        fail_msg("%s", err.message);
}

/* ---- item 2: the default size ---- */

static void test_default_size_rule(void **state)
{
    (void)state;
    int h, w;
    ae_default_input_size(28, 28, 3, 128, &h, &w); /* Fashion-MNIST: as before */
    assert_int_equal(h, 32);
    assert_int_equal(w, 32);
    ae_default_input_size(360, 496, 3, 128, &h, &w); /* the set: 92.9 x 128 */
    assert_int_equal(h, 96);
    assert_int_equal(w, 128);
    ae_default_input_size(1000, 250, 2, 128, &h, &w); /* tall: 128 x 32 */
    assert_int_equal(h, 128);
    assert_int_equal(w, 32);
    ae_default_input_size(97, 57, 3, 128, &h, &w); /* small: only rounded */
    assert_int_equal(h, 96);
    assert_int_equal(w, 56);
    ae_default_input_size(100, 60, 3, 128, &h, &w); /* halves round up */
    assert_int_equal(h, 104);
    assert_int_equal(w, 64);
    ae_default_input_size(3, 3, 3, 128, &h, &w); /* at least one step */
    assert_int_equal(h, 8);
    assert_int_equal(w, 8);
}

static void test_probe_and_size_stats(void **state)
{
    (void)state;
    char jpeg[PATH_MAX], png[PATH_MAX], junk[PATH_MAX];
    snprintf(jpeg, sizeof jpeg, "%s/probe.jpg", test_tmpdir());
    snprintf(png, sizeof png, "%s/probe.png", test_tmpdir());
    snprintf(junk, sizeof junk, "%s/probe.txt", test_tmpdir());
    uint8_t rgb[30 * 50 * 3];
    for (size_t i = 0; i < sizeof rgb; i++)
        rgb[i] = (uint8_t)(i * 7);
    test_write_jpeg(jpeg, rgb, 30, 50, 3, 90);
    test_write_png(png, rgb, 50, 30, 2, 8);
    write_text(junk, "not an image\n");
    ae_image_info info;
    ae_error err;
    assert_int_equal(ae_image_probe(jpeg, &info, &err), AE_OK);
    assert_int_equal(info.height, 30);
    assert_int_equal(info.width, 50);
    assert_int_equal(info.channels, 3);
    assert_int_equal(ae_image_probe(png, &info, &err), AE_OK);
    assert_int_equal(info.height, 50);
    assert_int_equal(info.width, 30);
    assert_int_equal(info.channels, 3);
    assert_int_equal(ae_image_probe(junk, &info, &err), AE_ERR_DATA);
    assert_non_null(strstr(err.message, "probe.txt"));

    /* the data set of setup: heights 20 + 4 (k % 6), widths 24 + 8 (k % 5) */
    ae_source src = {.kind = AE_SOURCE_FOLDER, .root = data};
    ae_dataset ds;
    assert_int_equal(ae_dataset_open(&src, &ds, &err), AE_OK);
    size_t items[NUM_IMAGES];
    for (size_t i = 0; i < NUM_IMAGES; i++)
        items[i] = i;
    ae_size_stats st;
    assert_int_equal(ae_dataset_size_stats(&ds, items, NUM_IMAGES, &st, &err), AE_OK);
    assert_int_equal(st.count, NUM_IMAGES);
    assert_int_equal(st.unreadable, 0);
    assert_int_equal(st.min_height, 20);
    assert_int_equal(st.max_height, 40);
    assert_int_equal(st.median_height, 28); /* 20 20 24 24 28 28 | 32 32 36 36 40 40: lower middle */
    assert_int_equal(st.min_width, 24);
    assert_int_equal(st.max_width, 56);
    assert_int_equal(st.median_width, 32); /* 24 24 24 32 32 32 | 40 40 48 48 56 56 */
    assert_int_equal(st.distinct, NUM_IMAGES); /* (k % 6, k % 5) differ for k < 30 */
    ae_dataset_free(&ds);
}

static void test_default_size_in_train(void **state)
{
    (void)state;
    char big[PATH_MAX], m[PATH_MAX];
    snprintf(big, sizeof big, "%s/big", test_tmpdir());
    snprintf(m, sizeof m, "%s/big.aedet", test_tmpdir());
    mkdir(big, 0777);
    for (int k = 0; k < 6; k++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/b%d.png", big, k);
        write_image(path, k, k < 3 ? 180 : 200, k < 3 ? 248 : 300);
    }
    /* no --size: the median 180x248 becomes 92.9x128 -> 92x128 in steps of 4 */
    assert_int_equal(run_split(NULL, "train %s --filters 4,8 --latent 4 --batch 8 --threads 1 --epochs 1 -o %s",
                               test_quote(big), test_quote(m)),
                     0);
    assert_non_null(strstr(err_text, "input sizes   2 distinct among 6 images: height 180-200 (median 180), "
                                     "width 248-300 (median 248)"));
    assert_non_null(strstr(err_text, "image size    180x248 median resized to 92x128x1"));
    assert_non_null(strstr(err_text, "the long side at most 128"));
    ae_model_summary sum;
    ae_meta *meta;
    inspect(m, &sum, &meta);
    assert_int_equal(sum.config.height, 92);
    assert_int_equal(sum.config.width, 128);
    ae_meta_free(meta);
    /* --json: the summary is a record; --quiet: nothing */
    assert_int_equal(run_split(NULL, "train %s --filters 4,8 --latent 4 --batch 8 --threads 1 --epochs 1 -o %s --json",
                               test_quote(big), test_quote(m)),
                     0);
    int n = json_lines(out_text);
    assert_true(n >= 4);
    assert_string_equal(line_of(out_text, 0), "{\"event\":\"input_sizes\",\"images\":6,\"unreadable\":0,\"distinct\":2,"
                                              "\"height\":{\"min\":180,\"median\":180,\"max\":200},"
                                              "\"width\":{\"min\":248,\"median\":248,\"max\":300}}");
    assert_int_equal(run_split(NULL, "train %s --filters 4,8 --latent 4 --batch 8 --threads 1 --epochs 1 -o %s --quiet",
                               test_quote(big), test_quote(m)),
                     0);
    assert_null(strstr(err_text, "input sizes"));
}

/* IDX images keep their size (rounded to the levels, as before), and one
 * size prints no summary line: the demo's output is as it was. */
static void test_idx_keeps_its_size(void **state)
{
    (void)state;
    char idx[PATH_MAX], m[PATH_MAX];
    snprintf(idx, sizeof idx, "%s/images.idx", test_tmpdir());
    snprintf(m, sizeof m, "%s/idx.aedet", test_tmpdir());
    enum { N = 10, S = 28 };
    static uint8_t bytes[16 + N * S * S];
    uint8_t header[16] = {0, 0, 8, 3, 0, 0, 0, N, 0, 0, 0, S, 0, 0, 0, S};
    memcpy(bytes, header, 16);
    for (int i = 0; i < N * S * S; i++)
        bytes[16 + i] = (uint8_t)(i * 13);
    test_write_file(idx, bytes, sizeof bytes);
    assert_int_equal(run_split(NULL, "train %s --latent 4 --batch 8 --threads 1 --epochs 1 -o %s", test_quote(idx), test_quote(m)), 0);
    assert_non_null(strstr(err_text, "image size    28x28 resized to 32x32x1"));
    assert_null(strstr(err_text, "input sizes"));
    assert_null(strstr(err_text, "default size"));
    ae_model_summary sum;
    ae_meta *meta;
    inspect(m, &sum, &meta);
    assert_int_equal(sum.config.height, 32);
    assert_int_equal(sum.config.width, 32);
    ae_meta_free(meta);
}

/* ---- item 3: one image, "-" and @LIST ---- */

/* The score of image (a path) in score --json's records, or NAN. */
static double score_of(const char *text, const char *image)
{
    char needle[PATH_MAX + 32];
    snprintf(needle, sizeof needle, "\"image\":\"%s\"", image);
    const char *p = strstr(text, needle);
    if (!p)
        return NAN;
    p = strstr(p, "\"score\":");
    return p ? strtod(p + 8, NULL) : NAN;
}

static void test_one_image_and_lists(void **state)
{
    (void)state;
    char img[PATH_MAX], img3[PATH_MAX], list[PATH_MAX], missing[PATH_MAX], all_scores[1 << 16];
    snprintf(img, sizeof img, "%s/img05.png", data);
    snprintf(img3, sizeof img3, "%s/img03.png", data);
    snprintf(list, sizeof list, "%s/list.txt", test_tmpdir());
    snprintf(missing, sizeof missing, "%s/missing.txt", test_tmpdir());
    assert_int_equal(run_split(NULL, "score %s %s --batch 8 --json", test_quote(model), test_quote(data)), 0);
    assert_int_equal(json_lines(out_text), NUM_IMAGES + 1);
    snprintf(all_scores, sizeof all_scores, "%s", out_text);
    double want5 = score_of(all_scores, img), want3 = score_of(all_scores, img3);
    assert_false(isnan(want5));

    /* one image file: not "not an IDX file" */
    assert_int_equal(run_split(NULL, "score %s %s", test_quote(model), test_quote(img)), 0);
    assert_non_null(strstr(out_text, "of 1 images"));
    assert_non_null(strstr(out_text, img));
    assert_int_equal(run_split(NULL, "score %s %s --json", test_quote(model), test_quote(img)), 0);
    assert_int_equal(json_lines(out_text), 2);
    assert_true(fabs(score_of(out_text, img) - want5) <= 1e-6 * want5);

    /* "-": the paths on standard input, blank lines and comments skipped */
    char text[4 * PATH_MAX];
    snprintf(text, sizeof text, "# two images\n%s\n\n%s\r\n", img3, img);
    write_text(list, text);
    assert_int_equal(run_split(list, "score %s - --json", test_quote(model)), 0);
    assert_int_equal(json_lines(out_text), 3);
    assert_true(fabs(score_of(out_text, img) - want5) <= 1e-6 * want5);
    assert_true(fabs(score_of(out_text, img3) - want3) <= 1e-6 * want3);
    /* @LIST: the same */
    assert_int_equal(run_split(NULL, "score %s @%s --json", test_quote(model), list), 0);
    assert_int_equal(json_lines(out_text), 3);
    assert_true(fabs(score_of(out_text, img3) - want3) <= 1e-6 * want3);
    /* encode and train take lists too */
    assert_int_equal(run_split(list, "encode %s - --json", test_quote(model)), 0);
    assert_int_equal(json_lines(out_text), 3);
    char m2[PATH_MAX];
    snprintf(m2, sizeof m2, "%s/from-list.aedet", test_tmpdir());
    assert_int_equal(run_split(list, "train - --epochs 1 " SMALL " -o %s", test_quote(m2)), 0);
    assert_non_null(strstr(err_text, "list standard input: 2 images"));

    /* errors name the list and the line */
    snprintf(text, sizeof text, "%s\n%s\n%s/nope.png\n", img, img3, data);
    write_text(list, text);
    assert_int_equal(run_split(list, "score %s -", test_quote(model)), 3);
    assert_non_null(strstr(err_text, "standard input line 3: "));
    assert_non_null(strstr(err_text, "nope.png"));
    assert_int_equal(run_split(NULL, "score %s @%s", test_quote(model), list), 3);
    assert_non_null(strstr(err_text, "list.txt line 3: "));
    snprintf(text, sizeof text, "%s\n%s\n", img, labels); /* not an image */
    write_text(list, text);
    assert_int_equal(run_split(NULL, "score %s @%s", test_quote(model), list), 3);
    assert_non_null(strstr(err_text, "list.txt line 2: "));
    assert_non_null(strstr(err_text, "not a JPEG or PNG"));
    /* --bad-files skip: listed with the other bad files, the rest scored */
    assert_int_equal(run_split(NULL, "score %s @%s --bad-files skip --json", test_quote(model), list), 0);
    assert_int_equal(json_lines(out_text), 2);
    assert_non_null(strstr(err_text, "skipped 1 bad file"));
    /* an empty list, a list file that is missing */
    write_text(list, "\n# nothing\n");
    assert_int_equal(run_split(list, "score %s -", test_quote(model)), 3);
    assert_non_null(strstr(err_text, "standard input: no image paths"));
    assert_int_equal(run_split(NULL, "score %s @%s", test_quote(model), missing), 4);
    assert_non_null(strstr(err_text, "missing.txt"));
}

/* ---- item 4: JSON Lines ---- */

static void test_json_lines(void **state)
{
    (void)state;
    char scores[PATH_MAX], metrics[PATH_MAX];
    snprintf(scores, sizeof scores, "%s/scores.csv", test_tmpdir());
    snprintf(metrics, sizeof metrics, "%s/metrics.json", test_tmpdir());
    /* score: one record per image, most anomalous first, then the summary */
    assert_int_equal(run_split(NULL, "score %s %s --labels %s --normal-class 0 --batch 8 --json -o %s --metrics %s",
                               test_quote(model), test_quote(data), test_quote(labels), test_quote(scores), test_quote(metrics)),
                     0);
    assert_int_equal(json_lines(out_text), NUM_IMAGES + 1);
    double last = INFINITY;
    for (int i = 0; i < NUM_IMAGES; i++) {
        const char *l = line_of(out_text, i);
        char rank[32];
        snprintf(rank, sizeof rank, "\"rank\":%d,", i + 1);
        assert_non_null(strstr(l, "{\"event\":\"image\","));
        assert_non_null(strstr(l, rank));
        assert_non_null(strstr(l, "\"flagged\":"));
        assert_true(strstr(l, "\"label\":0,") || strstr(l, "\"label\":1,"));
        double s = strtod(strstr(l, "\"score\":") + 8, NULL);
        assert_true(s <= last);
        last = s;
    }
    const char *summary = line_of(out_text, NUM_IMAGES);
    assert_non_null(strstr(summary, "{\"event\":\"metrics\","));
    assert_non_null(strstr(summary, "\"images\":12,"));
    assert_non_null(strstr(summary, "\"roc_auc\": "));
    /* the metrics file keeps its pretty form */
    size_t len;
    uint8_t *file;
    ae_error err;
    assert_int_equal(ae_read_file(metrics, &file, &len, &err), AE_OK);
    assert_non_null(strstr((char *)file, "{\n  \"threshold\": {"));
    free(file);

    /* eval: one line */
    assert_int_equal(run_split(NULL, "eval %s --json", test_quote(scores)), 0);
    assert_int_equal(json_lines(out_text), 1);
    assert_non_null(strstr(out_text, "\"average_precision\": "));

    /* encode: latents as records, -o optional */
    assert_int_equal(run_split(NULL, "encode %s %s --batch 8 --json", test_quote(model), test_quote(data)), 0);
    assert_int_equal(json_lines(out_text), NUM_IMAGES + 1);
    const char *l = line_of(out_text, 0);
    assert_non_null(strstr(l, "{\"event\":\"latent\",\"image\":"));
    const char *z = strstr(l, "\"z\":[");
    assert_non_null(z);
    int commas = 0;
    for (const char *p = z; *p != ']'; p++)
        commas += *p == ',';
    assert_int_equal(commas, 3); /* latent 4 */
    assert_non_null(strstr(line_of(out_text, NUM_IMAGES), "{\"event\":\"encoded\",\"images\":12,"));
    assert_int_equal(run_split(NULL, "encode %s %s", test_quote(model), test_quote(data)), 2); /* without --json, -o is needed */

    /* reconstruct */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/recon", test_tmpdir());
    assert_int_equal(run_split(NULL, "reconstruct %s %s --batch 8 --json -o %s", test_quote(model), test_quote(data), test_quote(dir)), 0);
    assert_int_equal(json_lines(out_text), NUM_IMAGES + 1);
    assert_non_null(strstr(line_of(out_text, 0), "\"file\":"));

    /* train: every line a record */
    char m[PATH_MAX];
    snprintf(m, sizeof m, "%s/json.aedet", test_tmpdir());
    assert_int_equal(run_split(NULL, "train %s --epochs 2 " SMALL " -o %s --json", test_quote(data), test_quote(m)), 0);
    assert_int_equal(json_lines(out_text), 5); /* input_sizes, config, 2 epochs, saved */

    /* info: everything the text shows */
    assert_int_equal(run_split(NULL, "info %s --json", test_quote(model)), 0);
    assert_int_equal(json_lines(out_text), 1);
    ae_model_summary sum;
    ae_meta *meta;
    inspect(model, &sum, &meta);
    for (size_t i = 0; i < ae_meta_count(meta); i++) {
        char key[256];
        snprintf(key, sizeof key, "\"%s\":", ae_meta_key(meta, i));
        if (!strstr(out_text, key))
            fail_msg("info --json lacks %s:\n%s", key, out_text);
    }
    ae_meta_free(meta);
    assert_non_null(strstr(out_text, "\"filters\":[4,8],"));
    assert_non_null(strstr(out_text, "\"train.errors\":{\"count\":"));
    assert_non_null(strstr(out_text, "\"train.losses\":["));
    assert_non_null(strstr(out_text, "\"tensors\":"));

    /* errors are records too */
    assert_int_equal(run_split(NULL, "score %s %s/none --json", test_quote(model), data), 4);
    assert_int_equal(json_lines(out_text), 1);
    assert_non_null(strstr(out_text, "{\"event\":\"error\","));
}

/* ---- item 9: --config ---- */

static const double *losses_of(const char *path, ae_meta **meta, size_t *n)
{
    ae_model_summary sum;
    inspect(path, &sum, meta);
    return ae_meta_get_doubles(*meta, AE_KEY_TRAIN_LOSSES, n);
}

static void test_config_file(void **state)
{
    (void)state;
    char conf[PATH_MAX], m[PATH_MAX], again[PATH_MAX], shown[PATH_MAX];
    snprintf(conf, sizeof conf, "%s/run.conf", test_tmpdir());
    snprintf(m, sizeof m, "%s/conf.aedet", test_tmpdir());
    snprintf(again, sizeof again, "%s/again.aedet", test_tmpdir());
    snprintf(shown, sizeof shown, "%s/shown.conf", test_tmpdir());
    write_text(conf, "# a small run\n"
                     "epochs = 2\n"
                     "size = 16\n"
                     "filters = 4,8\n"
                     "latent = 4\n"
                     "  batch=8\n"
                     "threads = 1\n"
                     "lr = 0.002   # more than the default\n"
                     "keep_best = true\n"
                     "exclude = \"img11.png\"\n");
    /* the command line wins: --latent, and --filters replaces the file's list */
    assert_int_equal(run_split(NULL, "train %s --config %s --latent 3 --filters 2,4 -o %s", test_quote(data), test_quote(conf), test_quote(m)), 0);
    ae_model_summary sum;
    ae_meta *meta;
    inspect(m, &sum, &meta);
    assert_int_equal(sum.config.latent_dim, 3);
    assert_int_equal(sum.config.num_filters, 2);
    assert_int_equal(sum.config.filters[0], 2);
    assert_int_equal(sum.config.filters[1], 4);
    assert_int_equal(sum.config.height, 16);
    double lr = 0;
    int64_t epochs = 0, keep = 0;
    assert_true(ae_meta_get_float(meta, AE_KEY_LEARNING_RATE, &lr));
    assert_true(lr == 0.002);
    assert_true(ae_meta_get_int(meta, AE_KEY_EPOCHS, &epochs));
    assert_int_equal(epochs, 2);
    assert_true(ae_meta_get_int(meta, AE_KEY_KEEP_BEST, &keep));
    assert_int_equal(keep, 1);
    assert_non_null(strstr(ae_meta_get_str(meta, AE_KEY_DATA), "11 images")); /* img11 excluded */
    const char *stored = ae_meta_get_str(meta, AE_KEY_CONFIG);
    assert_non_null(stored);
    assert_non_null(strstr(stored, "\nlatent = 3\n"));
    assert_non_null(strstr(stored, "\nfilters = 2,4\n"));
    assert_non_null(strstr(stored, "\nsize = 16x16\n"));
    assert_non_null(strstr(stored, "\nlr = 0.002\n"));
    assert_non_null(strstr(stored, "\nexclude = img11.png\n"));
    ae_meta_free(meta);

    /* info shows it; --show-config writes a file that repeats the run */
    assert_int_equal(run_split(NULL, "info %s", test_quote(m)), 0);
    assert_non_null(strstr(out_text, "config (aedet train DATA --config FILE repeats the run):\n"));
    assert_non_null(strstr(out_text, "\n  latent = 3\n"));
    assert_int_equal(run_split(NULL, "info %s --show-config", test_quote(m)), 0);
    write_text(shown, out_text);
    assert_int_equal(run_split(NULL, "train %s --config %s -o %s", test_quote(data), test_quote(shown), test_quote(again)), 0);
    ae_meta *m1, *m2;
    size_t n1, n2;
    const double *l1 = losses_of(m, &m1, &n1), *l2 = losses_of(again, &m2, &n2);
    assert_int_equal(n1, 2);
    assert_int_equal(n2, n1);
    for (size_t i = 0; i < n1; i++)
        assert_true(l1[i] == l2[i]); /* the same run, bit for bit */
    ae_meta_free(m1);
    ae_meta_free(m2);

    /* errors name the file and the line */
    write_text(conf, "epochs = 1\n\n# ok so far\nepoch = 3\n");
    assert_int_equal(run_split(NULL, "train %s --config %s -o %s", test_quote(data), test_quote(conf), test_quote(m)), 2);
    assert_non_null(strstr(err_text, "run.conf line 4: unknown key 'epoch'"));
    assert_non_null(strstr(err_text, "did you mean 'epochs'?"));
    write_text(conf, "batch = many\n");
    assert_int_equal(run_split(NULL, "train %s --config %s -o %s", test_quote(data), test_quote(conf), test_quote(m)), 2);
    assert_non_null(strstr(err_text, "run.conf line 1: --batch wants a whole number, not 'many'"));
    write_text(conf, "keep-best = perhaps\n");
    assert_int_equal(run_split(NULL, "train %s --config %s -o %s", test_quote(data), test_quote(conf), test_quote(m)), 2);
    assert_non_null(strstr(err_text, "run.conf line 1: keep-best wants true or false"));
    write_text(conf, "batch\n");
    assert_int_equal(run_split(NULL, "train %s --config %s -o %s", test_quote(data), test_quote(conf), test_quote(m)), 2);
    assert_non_null(strstr(err_text, "run.conf line 1: batch needs a value"));
    assert_int_equal(run_split(NULL, "train %s --config %s/nothing.conf -o %s", test_quote(data), test_tmpdir(), test_quote(m)), 4);
    assert_non_null(strstr(err_text, "nothing.conf"));
    /* other commands read it too: score's --top from a file */
    write_text(conf, "top = 2\nbatch = 8\n");
    assert_int_equal(run_split(NULL, "score %s %s --config %s", test_quote(model), test_quote(data), test_quote(conf)), 0);
    assert_non_null(strstr(out_text, "\n    2  "));
    assert_null(strstr(out_text, "\n    3  "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_size_rule),
        cmocka_unit_test(test_probe_and_size_stats),
        cmocka_unit_test(test_default_size_in_train),
        cmocka_unit_test(test_idx_keeps_its_size),
        cmocka_unit_test(test_one_image_and_lists),
        cmocka_unit_test(test_json_lines),
        cmocka_unit_test(test_config_file),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
