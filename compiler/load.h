// load.h — reading a spec and everything it imports: the front end's entry points.
// `import "qwen3";` names a stdlib module (embedded in the binary from stdlib/*.trl at build time;
// the TRLC_STDLIB_DIR environment variable, when set, makes trlc read stdlib modules from that
// directory instead, for development); `import "my/arch.trl";` (a name with `/` or ending in
// `.trl`) is a file relative to the importing file. Each module is loaded once; cycles, unknown
// modules and unreadable files are errors at the import statement.
// Not here: what the modules mean (check.c, lower.c).
#ifndef TRLC_LOAD_H
#define TRLC_LOAD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "arena.h"
#include "ast.h"
#include "diag.h"

enum { LOAD_MAX_BYTES = 16 * 1024 * 1024,   // a larger spec or module is refused
       LOAD_MAX_IMPORT_DEPTH = 64,          // import chains longer than this are refused
       LOAD_MAX_TREE_DEPTH = 1000 };        // deeper syntax trees are refused: recursive walks
                                            // over a parsed AST never go deeper than this

typedef struct LoadedModule {
    const char *name;   // as imported ("qwen3", "my/arch.trl"); for the main spec, its path
    const char *path;   // the path diagnostics show ("stdlib/qwen3.trl", "specs/my/arch.trl")
    uint32_t file;      // Diag source id
    Ast *root;          // AST_SPEC; never NULL once loaded (empty after fatal lexical errors)
    bool stdlib;        // a stdlib module (embedded or from TRLC_STDLIB_DIR)
    const char *key;    // identity: "stdlib:qwen3", or the file's real path
} LoadedModule;

typedef struct LoadedSpec {
    LoadedModule *mods; // dependency order: every module after the modules it imports;
    int nmods;          // the main spec is mods[nmods - 1]
    int cap;
} LoadedSpec;

// Reads `path`, parses it and every module it imports, recursively. Fills *out (arena memory)
// and returns 0, or returns -1 when any error was reported (out still holds what was loaded).
// Every file must start with `trl 1;`.
int load_spec(Diag *d, Arena *a, const char *path, LoadedSpec *out);
// The same for a spec held in memory (tests, `--set`): `path` names it in diagnostics and
// relative imports are resolved against its directory.
int load_spec_text(Diag *d, Arena *a, const char *path, const char *text, size_t len, LoadedSpec *out);
// Adds a stdlib module (and what it imports) to an already loaded spec, unless present; it goes
// before the main spec. Returns its index in spec->mods, or -1 after an error (e.g. unknown name,
// reported without location). For modules a spec needs implicitly (objectives).
int load_stdlib_module(Diag *d, Arena *a, LoadedSpec *spec, const char *name);

// Parses a source already registered with diag_add_source. Returns its AST_SPEC, or NULL when
// the bytes are not text (invalid UTF-8, NUL bytes: reported). After syntax errors (reported,
// counted in d->errors) the tree holds what could be parsed: do not check or lower it.
// A tree deeper than LOAD_MAX_TREE_DEPTH is reported and replaced by an empty AST_SPEC.
Ast *parse_source(Diag *d, Arena *a, uint32_t file);

// The stdlib modules compiled into the binary: count and names ("llama", "qwen3", ...).
int load_stdlib_count(void);
const char *load_stdlib_name(int i);
// The text of an embedded module by name, or NULL.
const char *load_stdlib_text(const char *name, size_t *len);

#endif
