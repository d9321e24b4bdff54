// arena.h — bump allocation for one compilation: everything is freed at once.
// Not for long-lived runtime buffers (tensors, optimizer state): those use malloc/free.
#ifndef TRLC_ARENA_H
#define TRLC_ARENA_H
#include <stddef.h>

typedef struct ArenaChunk ArenaChunk;
typedef struct Arena {
    ArenaChunk *head;   // newest chunk first
    size_t total;       // bytes handed out, for statistics
} Arena;

void *arena_alloc(Arena *a, size_t size);              // zeroed, 16-byte aligned; never NULL
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void  arena_free(Arena *a);                            // releases every chunk; the arena is reusable

#endif
