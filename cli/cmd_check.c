// cmd_check.c — `trlc check` (stub until its owner fills it in).
#include "cli.h"
#include <stdio.h>

const char usage_check[] = "usage: trlc check ...\n";

int cmd_check(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "trlc: error: `check` is not implemented yet\n");
    return EXIT_RUNTIME;
}
