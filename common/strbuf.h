// strbuf.h — a growable string built with printf-style appends (generated source, canonical keys).
// Out of memory sets `oom` and makes later appends no-ops: check it once at the end.
#ifndef TRLC_STRBUF_H
#define TRLC_STRBUF_H
#include <stdbool.h>
#include <stddef.h>

typedef struct StrBuf {
    char *s;        // NUL-terminated once anything was appended; the caller frees it
    size_t n, cap;  // bytes used (without the NUL), bytes allocated
    bool oom;
} StrBuf;

void sb_printf(StrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
