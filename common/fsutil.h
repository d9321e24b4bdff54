// fsutil.h — small file-system helpers shared by the runtime and the CLI.
#ifndef TRLC_FSUTIL_H
#define TRLC_FSUTIL_H
#include <stddef.h>
#include <sys/types.h>

// mkdir -p: creates dir and its missing parents with `mode` (umask applies). Returns 0 when dir is
// a directory afterwards; otherwise -1 with errno set (ENOTDIR when dir exists but is something
// else, ENAMETOOLONG past PATH_MAX) and, when failed != NULL, the path that could not be created
// copied into failed[cap]. Not here: fsync of the new parents (checkpoint.c does that itself).
int fs_mkdir_p(const char *dir, mode_t mode, char *failed, size_t cap);

#endif
