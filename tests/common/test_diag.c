// test_diag.c — the reporter: line/column from byte offsets, excerpts, windows on long lines,
// did-you-mean.
#include "diag.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>

static char *report_to_string(Diag *d, Loc loc, const char *msg) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    d->out = f;
    diag_error(d, loc, "%s", msg);
    fclose(f);
    d->out = stderr;
    return buf;
}

int main(void) {
    Diag d;
    diag_init(&d, stderr);
    const char *text = "trl 1;\nlora x {\n    alhpa = 32;\n}\n";
    uint32_t f = diag_add_source(&d, "a.trl", text, strlen(text));
    Loc loc = {f, (uint32_t)(strstr(text, "alhpa") - text), 5};
    int line, col;
    diag_linecol(&d, loc, &line, &col);
    CHECK(line == 3);
    CHECK(col == 5);
    char *out = report_to_string(&d, loc, "unknown key `alhpa`");
    CHECK_MSG(strcmp(out, "a.trl:3:5: error: unknown key `alhpa`\n"
                          "    3 |     alhpa = 32;\n"
                          "      |     ^~~~~\n") == 0, "got:\n%s", out);
    free(out);
    CHECK(d.errors == 1);

    // columns count characters, not bytes
    const char *utf = "x = \"é\"; y";
    uint32_t g = diag_add_source(&d, "u.trl", utf, strlen(utf));
    Loc ly = {g, (uint32_t)(strrchr(utf, 'y') - utf), 1};
    diag_linecol(&d, ly, &line, &col);
    CHECK(line == 1 && col == 10);

    // a 1 MB line is shown as a window around the caret
    size_t n = 1 << 20;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = 0;
    uint32_t h = diag_add_source(&d, "big.trl", big, n);
    out = report_to_string(&d, (Loc){h, (uint32_t)(n / 2), 1}, "too long");
    CHECK(strlen(out) < 600);
    CHECK(strstr(out, "...") != NULL);
    free(out);
    free(big);

    // invalid UTF-8 in the excerpt is shown as '?', valid multi-byte characters as they are
    const char *bad = "x = \"\xff\xc3\xa9\x80\";";
    uint32_t b = diag_add_source(&d, "bad.trl", bad, strlen(bad));
    out = report_to_string(&d, (Loc){b, 4, 1}, "bad string");
    CHECK_MSG(strstr(out, "x = \"?\xc3\xa9?\";") != NULL, "got:\n%s", out);
    free(out);

    // a Source pointer stays valid while more sources are registered (the table grows)
    const Source *first = diag_source(&d, f);
    for (int i = 0; i < 100; i++) diag_add_source(&d, "more.trl", "x", 1);
    CHECK(first == diag_source(&d, f) && strcmp(first->path, "a.trl") == 0);

    const char *keys[] = {"rank", "alpha", "dropout", "targets", "rslora"};
    CHECK(suggest_word("alhpa", keys, 5) && !strcmp(suggest_word("alhpa", keys, 5), "alpha"));
    CHECK(suggest_word("dropuot", keys, 5) && !strcmp(suggest_word("dropuot", keys, 5), "dropout"));
    CHECK(suggest_word("zzzzzz", keys, 5) == NULL);
    diag_free(&d);
    return test_done("test_diag");
}
