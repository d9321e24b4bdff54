// cmd_ir.c — `trlc ir` (stub until its owner fills it in).
#include "cli.h"
#include <stdio.h>

const char usage_ir[] = "usage: trlc ir ...\n";

int cmd_ir(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "trlc: error: `ir` is not implemented yet\n");
    return EXIT_RUNTIME;
}
