// fsutil.c — file-system helpers (see fsutil.h).
#include "fsutil.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void note_failed(char *failed, size_t cap, const char *path) {
    if (failed && cap) snprintf(failed, cap, "%s", path);
}

int fs_mkdir_p(const char *dir, mode_t mode, char *failed, size_t cap) {
    char buf[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf) {
        note_failed(failed, cap, dir);
        errno = n ? ENAMETOOLONG : ENOENT;
        return -1;
    }
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, mode) != 0 && errno != EEXIST) {
            note_failed(failed, cap, buf);
            return -1;
        }
        buf[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        note_failed(failed, cap, dir);
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}
