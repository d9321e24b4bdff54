// cmd_tokenize.c — `trlc tokenize` (stub until its owner fills it in).
#include "cli.h"
#include <stdio.h>

const char usage_tokenize[] = "usage: trlc tokenize ...\n";

int cmd_tokenize(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "trlc: error: `tokenize` is not implemented yet\n");
    return EXIT_RUNTIME;
}
