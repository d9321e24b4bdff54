// test_tensorboard.c — the TensorBoard writer against FORMATS.md: CRC-32C check value, the
// known-good scalar record byte for byte, and a written file read back record by record.
#include "tensorboard.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FIXTURES
#define FIXTURES "tests/data/fixtures"
#endif

static const uint8_t known[] = {
    0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x29, 0xed, 0xa9, 0x50,
    0x09, 0x00, 0x00, 0x60, 0x40, 0xfc, 0x54, 0xd9, 0x41, 0x10, 0x0a, 0x2a, 0x13, 0x0a, 0x11, 0x0a,
    0x0a, 0x74, 0x72, 0x61, 0x69, 0x6e, 0x2f, 0x6c, 0x6f, 0x73, 0x73, 0x15, 0x00, 0x00, 0xc0, 0x3f,
    0xe6, 0xc9, 0x00, 0x66};

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int main(void) {
    CHECK(tb_crc32c("123456789", 9) == 0xE3069283u);
    CHECK(tb_crc32c("", 0) == 0);

    uint8_t ev[256], rec[300];
    size_t n = tb_encode_scalar(1700000001.5, 10, "train/loss", 1.5f, ev, sizeof ev);
    CHECK(n == 32);
    size_t m = tb_frame_record(ev, n, rec);
    CHECK(m == sizeof known);
    CHECK(m == sizeof known && memcmp(rec, known, m) == 0);
    CHECK(tb_encode_scalar(1.0, 1, "x", 1.0f, ev, 10) == 0);   // does not fit: refused

    // A real file: version record, then three scalars; every CRC must verify.
    char dir[] = "/tmp/trlc_tb_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char logdir[128];
    snprintf(logdir, sizeof logdir, "%s/run/a", dir);
    Diag d;
    diag_init(&d, stderr);
    TbWriter *w = tb_open_at(&d, logdir, 1700000000.0, "host");
    CHECK(w != NULL);
    if (!w) return test_done("data.tensorboard");
    char want[256];
    snprintf(want, sizeof want, "%s/events.out.tfevents.1700000000.host.%ld", logdir, (long)getpid());
    CHECK(strcmp(tb_path(w), want) == 0);
    CHECK(tb_scalar_at(w, "train/loss", 10, 1.5f, 1700000001.5) == 0);
    CHECK(tb_scalar_at(w, "train/lr", 0, 2e-4f, 1700000002.0) == 0);
    CHECK(tb_scalar(w, "eval/loss", 1ll << 40, 0.25f) == 0);
    char path[256];
    snprintf(path, sizeof path, "%s", tb_path(w));
    CHECK(tb_close(w) == 0);

    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    static uint8_t buf[4096];
    size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    size_t off = 0;
    int nrec = 0;
    while (off + 12 <= len) {
        uint64_t l = get_u64(buf + off);
        CHECK(get_u32(buf + off + 8) == tb_masked_crc(tb_crc32c(buf + off, 8)));
        if (off + 16 + l > len) break;
        CHECK(get_u32(buf + off + 12 + l) == tb_masked_crc(tb_crc32c(buf + off + 12, l)));
        if (nrec == 0) {  // file_version first: 09 <8 bytes> 1a 0d "brain.Event:2"
            CHECK(l == 24 && buf[off + 12] == 0x09 && buf[off + 21] == 0x1A &&
                  memcmp(buf + off + 23, "brain.Event:2", 13) == 0);
        }
        if (nrec == 1) CHECK(l + 16 == sizeof known && memcmp(buf + off, known, sizeof known) == 0);
        off += 16 + l;
        nrec++;
    }
    CHECK(nrec == 4);
    CHECK(off == len);
    unlink(path);

    // The peer: tensorboardX wrote the same scalars (fixtures/tbx_events.bin, gen_tb_fixture.py).
    // With its file_version wall time, our whole file must be byte-identical.
    f = fopen(FIXTURES "/tbx_events.bin", "rb");
    CHECK(f != NULL);
    static uint8_t peer[4096], ours[4096];
    size_t npeer = f ? fread(peer, 1, sizeof peer, f) : 0;
    if (f) fclose(f);
    CHECK(npeer == 184);
    double vwall = 0;
    if (npeer > 21) {
        uint64_t u = get_u64(peer + 13);
        memcpy(&vwall, &u, 8);
    }
    w = tb_open_at(&d, logdir, vwall, "host");
    CHECK(w != NULL);
    if (w) {
        CHECK(tb_scalar_at(w, "train/loss", 10, 1.5f, 1700000001.5) == 0);
        CHECK(tb_scalar_at(w, "train/lr", 0, 2e-4f, 1700000002.0) == 0);
        CHECK(tb_scalar_at(w, "eval/loss", 1ll << 40, 0.25f, 1700000003.25) == 0);
        snprintf(path, sizeof path, "%s", tb_path(w));
        CHECK(tb_close(w) == 0);
        f = fopen(path, "rb");
        size_t nours = f ? fread(ours, 1, sizeof ours, f) : 0;
        if (f) fclose(f);
        CHECK_MSG(nours == npeer && memcmp(ours, peer, npeer) == 0, "differs from tensorboardX (%zu vs %zu bytes)",
                  nours, npeer);
        unlink(path);
    }

    // A log directory that cannot be created: an error, no crash.
    FILE *devnull = fopen("/dev/null", "w");
    Diag d2;
    diag_init(&d2, devnull);
    CHECK(tb_open_at(&d2, "/proc/trlc/none", 1.0, "h") == NULL);
    CHECK(d2.errors == 1);
    diag_free(&d2);
    fclose(devnull);
    diag_free(&d);
    return test_done("data.tensorboard");
}
