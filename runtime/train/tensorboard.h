// tensorboard.h — a TensorBoard event-file writer (scalars only), byte-compatible with what
// TensorFlow/PyTorch's SummaryWriter produce: `events.out.tfevents.<secs>.<host>.<pid>` holding
// length-prefixed records with masked CRC-32C, a `brain.Event:2` file_version record first, then one
// Event per scalar. Does not: write histograms, images, text or hparams; read event files.
#ifndef TRLC_TENSORBOARD_H
#define TRLC_TENSORBOARD_H
#include "diag.h"
#include <stddef.h>
#include <stdint.h>

typedef struct TbWriter TbWriter;

// CRC-32C (Castagnoli, reflected 0x82F63B78); tb_crc32c("123456789", 9) == 0xE3069283.
uint32_t tb_crc32c(const void *data, size_t n);
// The TFRecord mask: ((c >> 15 | c << 17) + 0xA282EAD8) mod 2^32.
uint32_t tb_masked_crc(uint32_t crc);

// Frames `data` as one record (u64 len | u32 masked crc(len) | data | u32 masked crc(data)) into
// out, which must hold n + 16 bytes. Returns the bytes written (n + 16).
size_t tb_frame_record(const void *data, size_t n, uint8_t *out);
// Encodes a scalar Event (wall_time, step, summary{value{tag, simple_value}}) into out (cap bytes).
// Returns the encoded size, or 0 when it does not fit or the tag is too long (> 4096 bytes).
size_t tb_encode_scalar(double wall_time, int64_t step, const char *tag, float value, uint8_t *out,
                        size_t cap);

// Creates logdir (and parents) if needed and opens a new event file in it; the first record is the
// file_version event. Returns NULL with a diagnostic on failure.
TbWriter *tb_open(Diag *d, const char *logdir);
// Same with an explicit wall clock and host name (tests use this for reproducible files).
TbWriter *tb_open_at(Diag *d, const char *logdir, double wall_time, const char *host);
// The path of the event file (owned by the writer).
const char *tb_path(const TbWriter *w);
// Appends one scalar at the current time (tb_scalar_at: given wall time). 0 ok, nonzero on a write
// error (reported once through the Diag given to tb_open).
int tb_scalar(TbWriter *w, const char *tag, int64_t step, float value);
int tb_scalar_at(TbWriter *w, const char *tag, int64_t step, float value, double wall_time);
// Flushes buffered records to disk. 0 ok.
int tb_flush(TbWriter *w);
// Flushes and closes; returns nonzero when any write failed. Accepts NULL.
int tb_close(TbWriter *w);

#endif
