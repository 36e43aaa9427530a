/* aedet: find the odd ones out in a pile of images. The tool is a thin layer
 * over the library: each subcommand parses flags, calls the library, prints. */
#include "cli.h"
#include "dist.h"

#include <string.h>

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"train", cmd_train, "train the autoencoder on a folder of images"},
    {"score", cmd_score, "score images by reconstruction error, flag the anomalies"},
    {"encode", cmd_encode, "the encoder as dimensionality reduction: latents as CSV"},
    {"reconstruct", cmd_reconstruct, "the autoencoder as a denoiser: reconstructions as PNG"},
    {"report", cmd_report, "score and write a self-contained HTML report"},
    {"eval", cmd_eval, "metrics of a scores CSV against its labels"},
    {"info", cmd_info, "what a model file holds"},
    {"import-keras", cmd_import_keras, "the tutorial's Keras weights (.h5) to an aedet model"},
    {"export-keras", cmd_export_keras, "an aedet model's weights as Keras weights (.h5)"},
    {"demo", cmd_demo, "the tutorial's experiment on Fashion-MNIST, end to end"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: aedet COMMAND [options]   (aedet COMMAND --help for each)\n\n"
                 "Finds the odd ones out in a pile of images: trains a convolutional autoencoder on\n"
                 "them, scores each by its reconstruction error, flags those above a threshold.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nexit codes: 0 ok, 1 internal error, 2 usage, 3 bad data, 4 I/O error,\n"
                 "            5 bad model file, 6 training diverged, 130 interrupted\n");
}

static int run_command(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("aedet %s\n", AE_VERSION_STRING);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "aedet: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    int rc = cli_dist_start(argc, argv); /* under mpirun (dist.h) */
    return cli_dist_finish(rc ? rc : run_command(argc, argv));
}
