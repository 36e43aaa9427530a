/* The aedet command: shared pieces of the subcommands. */
#ifndef AEDET_CLI_H
#define AEDET_CLI_H

#include <stdio.h>

#include "aedet.h"

/* Exit codes (documented in `aedet --help`, the README and the man page). */
enum {
    EXIT_OK = 0,
    EXIT_INTERNAL = 1,    /* out of memory, or a bug */
    EXIT_USAGE = 2,       /* a wrong flag or value */
    EXIT_BAD_DATA = 3,    /* unreadable or corrupt input images, CSV, IDX */
    EXIT_IO = 4,          /* the file system failed (disk full, permissions) */
    EXIT_BAD_MODEL = 5,   /* a model file that is corrupt, truncated or too new */
    EXIT_DIVERGED = 6,    /* NaN or Inf during training */
    EXIT_INTERRUPTED = 130 /* Ctrl-C: a checkpoint was saved */
};

int cli_exit_code(ae_status s);
/* Prints "aedet: <message>" (or a JSON error line) and returns the exit code. */
int cli_report_error(const ae_error *err);
/* ---- --json: one object a line on stdout (json.c) ---- */
/* Writes s as a JSON string literal, escaped. */
void cli_json_string(FILE *out, const char *s);
/* v with digits significant digits, or null when not finite. */
void cli_json_number(FILE *f, double v, int digits);
typedef struct {
    FILE *f;
} cli_json;
/* {"event":event  ... fields ...  }\n, flushed: one record a line. */
void cli_json_begin(cli_json *j, const char *event);
void cli_json_key(cli_json *j, const char *key); /* ,"key": for a value written by hand */
void cli_json_str(cli_json *j, const char *key, const char *v); /* NULL: null */
void cli_json_int(cli_json *j, const char *key, long long v);
void cli_json_num(cli_json *j, const char *key, double v, int digits);
void cli_json_bool(cli_json *j, const char *key, int v);
void cli_json_raw(cli_json *j, const char *key, const char *json); /* JSON text, put on one line */
void cli_json_end(cli_json *j);

/* ---- options ---- */
typedef enum {
    OPT_FLAG,   /* int, set to 1 */
    OPT_INT,    /* int */
    OPT_U64,    /* uint64_t */
    OPT_DOUBLE, /* double */
    OPT_STRING, /* const char * */
    OPT_LIST,   /* cli_list: repeatable, or comma-separated */
    OPT_BYTES,  /* size_t, with K/M/G suffixes */
    OPT_SIZE,   /* cli_size: N or HxW */
    OPT_OUTPUT  /* const char *: a file to write; "-" is standard output (cli_stdout_path) */
} cli_opt_kind;

typedef struct {
    const char *items[32];
    int count;
} cli_list;

typedef struct {
    int height, width; /* 0 when not given */
} cli_size;

typedef struct {
    const char *name; /* long name without the dashes */
    cli_opt_kind kind;
    void *target;
    const char *arg;  /* placeholder shown in help, e.g. "N" */
    const char *help; /* ends with the default in brackets, e.g. "[30]" */
} cli_option;

typedef struct {
    const char *name;    /* "train" */
    const char *usage;   /* "MODEL DATA [options]" */
    const char *summary; /* one line */
    const char *details; /* paragraphs printed after the options, may be NULL */
    int min_positional, max_positional;
} cli_command;

/* Parses argv[1..] (argv[0] is the subcommand). Prints help and returns -1 for
 * --help; prints a usage error (with a suggestion for a misspelled option) and
 * returns EXIT_USAGE; else returns 0 with positional arguments collected. */
int cli_parse(const cli_command *cmd, const cli_option *opts, int argc, char **argv,
              const char **positional, int *num_positional);
void cli_print_help(const cli_command *cmd, const cli_option *opts, FILE *out);
/* The options' values as a --config file ("key = value" lines, in the
 * table's order; lists on one line, comma-separated, globs one a line);
 * unset strings and NaN doubles are left out, and so are the names in skip
 * (NULL-terminated, may be NULL). malloc'ed; NULL when out of memory. */
char *cli_options_config(const cli_option *opts, const char *const *skip);
/* A relative --config path is taken from this folder when set (train
 * --resume alone: the folder the run began in). */
extern const char *cli_config_base;
int cli_usage_error(const cli_command *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "-" as an output: the path of a copy of standard output (/dev/fd/N), which
 * the library writes as it would a pipe; standard output itself then goes
 * to standard error, so that messages never mix with the data. One output
 * per run can be "-"; NULL (after printing why) for a second. */
const char *cli_stdout_path(const cli_command *cmd, const char *option);


/* Integers from a cli_list ("5" or "5,7"); EXIT_USAGE on a bad number. */
int cli_list_ints(const cli_command *cmd, const char *flag, const cli_list *l, int *out, int max, int *count);

/* ---- output manners shared by every subcommand ---- */
typedef struct {
    int json;  /* machine-readable lines on stdout */
    int quiet; /* no progress, only errors and results */
} cli_output;

extern cli_output cli_out;

/* A progress line on a terminal (\r, images/s, ETA), plain lines otherwise. */
void cli_progress(const char *what, size_t done, size_t total, double started);
void cli_progress_end(void);
double cli_now(void);

/* ---- the data flags shared by train, score, encode, reconstruct ---- */
typedef struct {
    const char *labels, *layout, *path_column, *label_column, *mvtec_split, *bad_files;
    cli_list include, exclude, normal, anomaly;
    double contamination;
    size_t memory_budget;
    size_t memory_limit; /* the model's bytes for its batch; 0: half of physical memory */
    uint64_t max_pixels; /* per image, checked from its header; 0: 64 Mi */
    int threads, batch, bf16;
    int allow_outside; /* CSV rows may name files outside DATA */
    /* The folder layout (folders.c): instead of DATA. test_split NaN: not given. */
    const char *normal_dir, *normal_test_dir, *mask_dir, *mask_suffix;
    cli_list abnormal;
    double test_split;
} cli_data_args;

#define CLI_DATA_OPTIONS(d)                                                                                    \
    {"labels", OPT_STRING, &(d).labels, "FILE", "labels: a CSV (Filename,Label), or an IDX labels file"},     \
    {"layout", OPT_STRING, &(d).layout, "KIND", "auto, folder, csv, classes, mvtec, idx or folders [auto]"},           \
    {"path-column", OPT_STRING, &(d).path_column, "NAME", "CSV column with the image paths [Filename]"},     \
    {"label-column", OPT_STRING, &(d).label_column, "NAME", "CSV column with the integer labels [Label]"},   \
    {"include", OPT_LIST, &(d).include, "GLOB", "only files whose path under DATA matches (repeatable)"},     \
    {"exclude", OPT_LIST, &(d).exclude, "GLOB", "skip files whose path under DATA matches (repeatable)"},     \
    {"mvtec-split", OPT_STRING, &(d).mvtec_split, "NAME", "MVTec AD layout: train or test [train]"},          \
    {"normal-dir", OPT_STRING, &(d).normal_dir, "DIR", "folder layout, instead of DATA: the normal images [none]"},  \
    {"abnormal-dir", OPT_LIST, &(d).abnormal, "DIR", "folder layout: a defect class, named after DIR (repeatable) [none]"}, \
    {"mask-dir", OPT_STRING, &(d).mask_dir, "DIR", "folder layout: masks named like their images [none]"},   \
    {"mask-suffix", OPT_STRING, &(d).mask_suffix, "S", "folder layout: mask = image name + S [none, then _mask]"}, \
    {"normal-test-dir", OPT_STRING, &(d).normal_test_dir, "DIR", "folder layout: normal images for scoring [none]"}, \
    {"test-split", OPT_DOUBLE, &(d).test_split, "F", "folder layout: normal share held out for scoring (--seed) [0; score: the model's]"}, \
    {"normal-class", OPT_LIST, &(d).normal, "N", "keep every image of class N or NAME (repeatable) [all images]"},   \
    {"anomaly-class", OPT_LIST, &(d).anomaly, "N", "mix in a fraction of class N or NAME (repeatable) [none]"},      \
    {"contamination", OPT_DOUBLE, &(d).contamination, "F", "fraction of each anomaly class mixed in [0.01]"}, \
    {"memory-budget", OPT_BYTES, &(d).memory_budget, "BYTES", "decoded images kept in memory, else streamed [1G]"}, \
    {"bad-files", OPT_STRING, &(d).bad_files, "POLICY", "stop at the first bad file, or skip and list them [stop]"}, \
    {"allow-outside", OPT_FLAG, &(d).allow_outside, NULL, "let --labels CSV rows name files outside DATA"}, \
    {"memory-limit", OPT_BYTES, &(d).memory_limit, "BYTES", "the most a model may allocate for its batch [half of RAM]"}, \
    {"max-pixels", OPT_U64, &(d).max_pixels, "N", "refuse images of more pixels, from their header [67108864]"}, \
    {"threads", OPT_INT, &(d).threads, "N", "threads for training and decoding, at most 1024 [all cores]"},     \
    {"batch", OPT_INT, &(d).batch, "N", "images per batch [32]"},                                           \
    {"bf16", OPT_FLAG, &(d).bf16, NULL, "convolutions in bfloat16 on AMX tiles or AVX512-BF16 (opt-in; float32 by default)"}

void cli_data_defaults(cli_data_args *d);
/* DATA "-" (image paths on standard input, one a line) or "@FILE" (in FILE,
 * when no file is named "@FILE" itself): the list's name for messages
 * ("standard input", FILE); NULL when DATA is no list (lists.c). */
const char *cli_data_list(const char *data_path);
/* The file DATA reads, for the output checks: the list file for "@FILE",
 * NULL for "-", else data_path. */
const char *cli_data_input(const char *data_path);
/* ae_dataset_open, or ae_dataset_open_list for a list (cli_data_list). */
ae_status cli_dataset_open(const ae_source *src, ae_dataset *ds, ae_error *err);
/* ---- the folder layout and class names (folders.c) ---- */
/* DATA, or the folder layout's normal folder: the root of the names stored
 * in a model (fingerprints). */
const char *cli_data_root(const cli_data_args *d, const char *data_path);
/* EXIT_USAGE when a folder-layout flag comes without --normal-dir; else 0. */
int cli_folder_flags_alone(const cli_command *cmd, const cli_data_args *d);
/* Fills src->folders (into *fl) from the folder flags; EXIT_USAGE when they
 * do not fit together or with DATA. test: the scoring split. */
int cli_folder_source(const cli_command *cmd, const cli_data_args *d, const char *root, uint64_t seed, int test,
                      ae_folder_layout *fl, ae_source *src);
/* Class numbers from a list of class names or numbers ("good", "5,crack"):
 * a name of ds's classes (folder names first), else a number. EXIT_USAGE,
 * naming the classes, for one that is neither. names may be NULL. */
int cli_list_classes(const cli_command *cmd, const char *flag, const cli_list *l, const char *const *names,
                     int num_names, int *out, int max, int *count);
/* The names for the per-class rows of cli_print_metrics (NULL: numbers). */
void cli_set_class_names(const char *const *names, int num_names);
const char *cli_class_label(int id, char *buf, size_t size);
/* Stores ids of the training images (hashes of their real paths) in meta,
 * so that scoring can tell when it scores images the model trained on. */
ae_status cli_store_training_ids(const ae_dataset *ds, const size_t *items, size_t n, ae_meta *meta, ae_error *err);
/* A warning when some of the scored images are images meta trained on. */
void cli_warn_trained_overlap(const ae_meta *meta, const ae_dataset *ds, const size_t *items, size_t n);
/* eval: the names of a scores CSV's classes (its column `column`): names[label]
 * pointing into csv, NULL when it has none; *num = the largest label + 1. */
const char **cli_csv_class_names(const ae_csv *csv, const char *column, const int *classes, int *num);
/* eval: the label of MVTec's normal class, named "good" (or, in an older
 * CSV, the one class whose images all lie in a folder named good); -1. */
int cli_csv_good_class(const ae_csv *csv, const int *classes, const char *const *names, int num);
/* The process-wide limits the data flags set (threads, pixels per image,
 * a model's memory), before a model is loaded or an image decoded. */
void cli_apply_data_limits(const cli_data_args *d);

/* Opens the data set and chooses items by the recipe flags. With
 * normal_selects 0 (scoring), --normal-class alone selects nothing: every
 * image is taken and the flag only labels the normal ones. */
int cli_open_data(const cli_command *cmd, const cli_data_args *d, const char *root, uint64_t seed,
                  int normal_selects, ae_dataset *ds, size_t **items, size_t *count);
/* A fingerprint of the selected images (their names, in order): a resumed
 * run, or a score of the training split, must see the same images. */
int64_t cli_selection_fingerprint(const ae_dataset *ds, const size_t *items, size_t n);
/* The same over the names relative to root (DATA), so that "data", "./data",
 * "data/" and an absolute path agree: what train stores (fingerprint.c). */
int64_t cli_data_fingerprint(const ae_dataset *ds, const char *root, const size_t *items, size_t n);
/* stored is this selection's fingerprint, either form (older models hold the first). */
int cli_same_data(const ae_dataset *ds, const char *root, const size_t *items, size_t n, int64_t stored);
/* A loader for items at the model's size, honouring threads and the bad-file
 * policy; images are kept decoded in memory when they fit memory_budget
 * bytes, else streamed (with one_pass, for a single pass: each file decoded
 * once, its bad files found and printed when that pass ends). */
int cli_make_loader(const cli_data_args *d, const ae_dataset *ds, const size_t *items, size_t count,
                    size_t memory_budget, const ae_config *cfg, int one_pass, ae_loader **loader);
/* Print how many bad files were skipped, and which. */
void cli_print_bad_files(const ae_loader *l);

/* A CSV field, quoted when it holds a comma, quote or newline: every field
 * the tool writes that is not a number goes through here. Fields are kept as
 * they are, a leading =, +, - or @ included (README, "Output files"). */
void cli_csv_field(FILE *f, const char *field);

/* Writes s (a file name, a message, a model's metadata) to f; when f is a
 * terminal, control characters are shown as \xHH, so a name cannot move the
 * cursor, recolour or retitle it. Elsewhere the bytes are kept. */
void cli_put_text(FILE *f, const char *s);

/* ---- outputs: checked before any work ---- */
typedef struct {
    const char *what; /* "-o", "--metrics"; for inputs "the model", "the labels" */
    const char *path; /* NULL when not given */
    int is_dir;       /* reconstruct's -o DIR: PNGs and index.csv are made inside */
} cli_path;

/* Refuses (EXIT_USAGE, naming both paths) an output that is one of inputs, a
 * file of ds (may be NULL), or another output; an existing output that is a
 * folder, a device, a FIFO or a symbolic link (outputs are written to a temp
 * file and renamed over the path); and a folder output that holds images of
 * ds. An output whose folder is missing or not writable is EXIT_IO. Existing
 * files are compared by device and inode, outputs not made yet by the real
 * path of their folder and their name. 0 when all is well. */
int cli_check_outputs(const cli_command *cmd, const cli_path *inputs, int n_inputs, const ae_dataset *ds,
                      const cli_path *outputs, int n_outputs);

/* ---- subcommands ---- */
int cmd_train(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_reconstruct(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_import_keras(int argc, char **argv);
int cmd_export_keras(int argc, char **argv);

#endif

/* ---- a model over data: score, report, encode, reconstruct ---- */
typedef struct {
    ae_model *model;
    ae_meta *meta;
    ae_dataset ds;
    size_t *items, n_items; /* the chosen images (dataset indices) */
    ae_loader *loader;      /* at the model's size; ae_loader_count may skip bad files */
    int one_pass;           /* the loader finds bad files during its pass (cli_session_passed) */
    ae_detector *detector;  /* the model's score rule, or --score's */
} cli_session;

/* Loads MODEL for batches of d->batch, opens DATA with the data flags (the
 * recipe drawn with the model's seed), keeps split ("all", or the model's
 * "train" or "validation" split), checks the outputs against the model and
 * data (cli_check_outputs) and makes the loader. 0, or the exit code after
 * printing the error (nothing left to close). */
int cli_session_open(const cli_command *cmd, const cli_data_args *d, const char *model_path,
                     const char *data_path, const char *split, const cli_path *outputs, int n_outputs,
                     cli_session *s);
/* The session's detector: the rule stored in the model, or score (when not
 * NULL) with what the model learned for it. 0, or the exit code. */
int cli_session_detector(const cli_command *cmd, cli_session *s, const char *model_path, const char *score);
/* After the pass over the loader, when it found the bad files during the
 * pass: prints those it skipped and sets *n to the images it gave. */
void cli_session_passed(const cli_session *s, size_t *n);
void cli_session_close(cli_session *s);

/* ---- training, shared by `train` and `demo` ---- */
typedef struct {
    cli_data_args data;
    const char *data_path;
    const char *output;     /* model file */
    const char *resume;     /* checkpoint to continue, or NULL */
    const char *checkpoint; /* where checkpoints go [output.ckpt] */
    cli_size size;
    int channels;           /* 0: from the first image */
    cli_list filters;
    int latent;
    double slope, learning_rate, decay, val_fraction;
    int epochs;
    uint64_t seed;
    const char *score;         /* the score rule stored in the model [mse] */
    double sigma;              /* its smoothing, NaN for the rule's default */
    double threshold_quantile; /* of the held-out scores: the stored threshold [0.99] */
    int early_stop;            /* patience in epochs; 0: off */
    int keep_best;             /* end with the best validation epoch's weights */
    cli_list augment;          /* flip, shift, brightness */
    /* The command line and working folder stored in checkpoints, so that
     * `train --resume CKPT` alone can rebuild the run; NULL: not stored. */
    const char *command;
    const char *cwd;
} cli_train_args;

/* The model and training flags, shared by `train` and `demo`. */
#define CLI_TRAINING_OPTIONS(t)                                                                                  \
    {"size", OPT_SIZE, &(t).size, "N|HxW", "model input size [the median image's, long side <= 128, aspect kept, sides rounded to 2^levels; demo: 32]"}, \
    {"channels", OPT_INT, &(t).channels, "N", "1 (gray) or 3 (RGB) [first image's]"},                          \
    {"filters", OPT_LIST, &(t).filters, "LIST", "convolution filters per level [16,32,64]"},                  \
    {"latent", OPT_INT, &(t).latent, "N", "latent dimension [32]"},                                           \
    {"slope", OPT_DOUBLE, &(t).slope, "F", "LeakyReLU slope [0.3]"},                                          \
    {"epochs", OPT_INT, &(t).epochs, "N", "epochs [30]"},                                                     \
    {"lr", OPT_DOUBLE, &(t).learning_rate, "F", "Adam learning rate [0.001]"},                                \
    {"decay", OPT_DOUBLE, &(t).decay, "F", "time decay: lr / (1 + decay * step) [2e-05 = lr/50]"},            \
    {"val-fraction", OPT_DOUBLE, &(t).val_fraction, "F", "held-out validation share [0.2]"},                  \
    {"seed", OPT_U64, &(t).seed, "N", "seed for weights, selection, split and shuffling [0]"},                \
    {"score", OPT_STRING, &(t).score, "RULE", "mse, max, topk:P, ssim, relative, latent-knn or combined [mse]"}, \
    {"sigma", OPT_DOUBLE, &(t).sigma, "S", "smoothing of the error map for max and topk, pixels [1]"},          \
    {"threshold-quantile", OPT_DOUBLE, &(t).threshold_quantile, "Q",                                          \
     "threshold stored in the model: this quantile of the validation scores [0.99]"},                        \
    {"early-stop", OPT_INT, &(t).early_stop, "N",                                                           \
     "stop after N epochs without a lower validation loss, keep the best [off]"},                             \
    {"keep-best", OPT_FLAG, &(t).keep_best, NULL, "end with the weights of the best validation epoch"},       \
    {"augment", OPT_LIST, &(t).augment, "LIST", "flip, shift, brightness: for small sets (comma list) [none]"}

void cli_train_defaults(cli_train_args *a);
/* Runs a whole training; fills the selection it used when the pointers are not NULL. */
int cli_train_run(const cli_command *cmd, cli_train_args *a);

/* ---- scoring, shared by `score` and `demo` ---- */
typedef struct {
    cli_data_args data;
    const char *model_path, *data_path, *output, *metrics, *report, *csv;
    double quantile, threshold, sd_k;
    const char *threshold_from; /* "auto", "model", "scored", "train" or "validation" */
    const char *score;          /* --score: another rule than the model's, or NULL */
    const char *pixel_maps;     /* pixel AUROC at the "model"'s size or each "input"'s */
    const char *split;          /* images scored: "all", or the model's "train" or "validation" split */
    int top;                    /* rows printed */
    int gallery;                /* report: images per gallery set */
} cli_score_args;

/* The threshold flags, shared by `score`, `report` and `eval`; --best-f1
 * sets the int best_f1 (the caller turns it into quantile -1). */
#define CLI_THRESHOLD_OPTIONS(a, best_f1)                                                                        \
    {"quantile", OPT_DOUBLE, &(a).quantile, "Q", "flag scores >= this quantile of the scored set [0.95]"},     \
    {"threshold", OPT_DOUBLE, &(a).threshold, "X", "flag scores >= X (overrides --quantile)"},                  \
    {"mean-sd", OPT_DOUBLE, &(a).sd_k, "K", "threshold = mean + K sd of the values (ddof 0)"},                \
    {"best-f1", OPT_FLAG, &(best_f1), NULL, "threshold with the best F1 on the labels"},                       \
    {"threshold-from", OPT_STRING, &(a).threshold_from, "SET",                                                 \
     "model, scored, train or validation [model's stored threshold, else scored]"},                           \
    {"metrics", OPT_OUTPUT, &(a).metrics, "FILE", "write metrics.json (threshold rule, counts, metrics)"}

void cli_score_defaults(cli_score_args *a);
/* The threshold the flags ask for: --threshold, --mean-sd, --best-f1 or
 * --quantile, on the scored values or (--threshold-from) the training or
 * validation errors stored in meta (may be NULL). */
int cli_choose_threshold(const cli_command *cmd, const cli_score_args *a, const float *scores, const int *labels,
                         size_t n, const ae_meta *meta, ae_threshold *t);
/* Pixel-level ROC AUC of the per-pixel squared error against ground-truth
 * masks (MVTec ground_truth/). cli_pixel_maps_begin returns NULL (nothing to
 * do) when no chosen image has a mask or the maps would be too large; else
 * cli_pixel_maps_visit, passed to ae_score_loader, keeps each image's map,
 * and cli_pixel_maps_finish computes the AUROC into *auc and frees. */
typedef struct cli_pixel_maps cli_pixel_maps;
cli_pixel_maps *cli_pixel_maps_begin(const cli_session *s);
ae_status cli_pixel_maps_visit(void *maps, const ae_batch *b, const float *input, const float *recon,
                               const float *errors, ae_error *err);
/* at_input: each map resized to its mask's own size (the input's), rather
 * than the masks to the model's. */
int cli_pixel_maps_finish(cli_pixel_maps *maps, const cli_session *s, const size_t *scored, int at_input,
                          double *auc);
void cli_pixel_maps_free(cli_pixel_maps *maps);
/* AUROC of the normal classes against each other class present, into m,
 * when there are two or more such classes. */
int cli_per_class_auc(const float *scores, const int *classes, size_t n, const int *normal, int num_normal,
                      ae_metrics_summary *m);
/* The one-screen summary (or a JSON line with --json); warnings to stderr. */
void cli_print_metrics(const ae_metrics_summary *m);
/* ,"metrics":{...}: metrics.json's object on the record's line. */
void cli_json_metrics(cli_json *j, const ae_metrics_summary *m);
int cli_score_run(const cli_command *cmd, cli_score_args *a);

/* Turns one batch visitor argument into file names: "path" or "#index". */
const char *cli_item_name(const ae_dataset *ds, size_t item, char *buf, size_t size);
