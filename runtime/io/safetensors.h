// safetensors.h — reading and writing .safetensors files (huggingface/safetensors format), and
// "checkpoints": a model directory holding model.safetensors or shards listed by
// model.safetensors.index.json.
// Reading maps the file (mmap) and validates EVERY rule of the format before handing out tensors
// (header length, UTF-8 JSON object, entry fields and types, offsets tiling the data exactly,
// sizes, overflow, metadata string → string, duplicate names); tensor data are zero-copy views.
// Does not: convert between non-float dtypes beyond st_to_f32 / st_from_f32, or read pickles.
#ifndef TRLC_SAFETENSORS_H
#define TRLC_SAFETENSORS_H
#include "diag.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Every dtype name of the format. Reading accepts all; st_to_f32 converts the numeric ones
// except F4 / F6_* / C64.
typedef enum StDtype {
    ST_BOOL, ST_U8, ST_I8, ST_F8_E5M2, ST_F8_E4M3, ST_F8_E8M0, ST_I16, ST_U16, ST_F16, ST_BF16,
    ST_I32, ST_U32, ST_F32, ST_F64, ST_I64, ST_U64, ST_F4, ST_F6_E2M3, ST_F6_E3M2, ST_C64,
    ST_NDTYPES
} StDtype;

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER 100000000u

typedef struct StTensor {
    const char *name;                   // owned by the file
    const char *file;                   // path of the file holding it (for messages)
    StDtype dtype;
    int ndim;                           // 0 = scalar
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;                      // product of shape (1 for a scalar)
    const void *data;                   // nbytes bytes, row-major, little-endian; may be unaligned
    size_t nbytes;
    size_t offset;                      // data_offsets[0], relative to the data section
} StTensor;

const char *st_dtype_name(StDtype t);  // "BF16", ...
int st_dtype_from_name(const char *s); // -1 when unknown
int st_dtype_bits(StDtype t);          // 1..128 (BOOL = 8, F4 = 4, F6 = 6, C64 = 64)

// ---- reading ----
typedef struct StFile StFile;

// Maps and validates `path`. NULL after reporting `path: error: ...` (naming the tensor when one
// is at fault).
StFile *st_open(Diag *d, const char *path);
// Same for a buffer in memory (not copied: it must outlive the StFile); `name` used in messages.
StFile *st_open_buffer(Diag *d, const char *name, const void *buf, size_t len);
void st_close(StFile *f);

const char *st_file_path(const StFile *f);
size_t st_count(const StFile *f);
const StTensor *st_tensor(const StFile *f, size_t i);          // in data-offset order
const StTensor *st_find(const StFile *f, const char *name);    // NULL when absent
// __metadata__ value, or NULL. n_meta/meta_key/meta_value enumerate them.
const char *st_metadata(const StFile *f, const char *key);
size_t st_metadata_count(const StFile *f);
const char *st_metadata_key(const StFile *f, size_t i);
const char *st_metadata_value(const StFile *f, size_t i);

// Converts all t->numel elements to float into out (numel floats). BOOL → 0/1, integers exactly
// when representable, F64 rounded. Returns 0, or -1 after reporting an unconvertible dtype.
int st_to_f32(Diag *d, const StTensor *t, float *out /* (numel) */);

// Scalar conversions (round to nearest even; NaN stays NaN; overflow → ±inf as torch does).
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float f);
float st_f16_to_f32(uint16_t h);
uint16_t st_f32_to_f16(float f);

// ---- writing ----
// Collects tensors (data are NOT copied: they must stay valid until st_writer_write) and writes
// one file: header = {"__metadata__": {"format": "pt", ...}, tensors in data order}, padded with
// spaces to a multiple of 8; tensors ordered by element size (largest first, so each is aligned)
// then by name; written to PATH.tmp.<pid> then renamed over PATH.
typedef struct StWriter StWriter;

StWriter *st_writer_new(void);   // NULL on OOM
void st_writer_free(StWriter *w);
// Adds a tensor stored as `dtype` from bytes already in that dtype. Returns 0, -1 on a duplicate
// name, a bad shape, or OOM (reported).
int st_writer_add(Diag *d, StWriter *w, const char *name, StDtype dtype, int ndim,
                  const int64_t *shape, const void *data);
// Adds a tensor from float data, converted at write time to `dtype` (F32, F16 or BF16).
int st_writer_add_f32(Diag *d, StWriter *w, const char *name, StDtype dtype, int ndim,
                      const int64_t *shape, const float *data);
// Extra __metadata__ entries ("format": "pt" is always written). Strings are copied.
int st_writer_set_metadata(StWriter *w, const char *key, const char *value);
size_t st_writer_count(const StWriter *w);
uint64_t st_writer_data_bytes(const StWriter *w);   // sum of tensor sizes as written
int st_writer_write(Diag *d, StWriter *w, const char *path);   // 0, or -1 (reported)

// ---- checkpoints (a model directory: one file or shards with an index) ----
typedef struct StCheckpoint StCheckpoint;

// `path` is a model directory (model.safetensors, else model.safetensors.index.json — the order
// transformers' from_pretrained uses), an
// index.json, or a single .safetensors file. Every shard named by the index is opened and every
// weight_map entry checked to be in its shard (error naming the tensor and the shard).
StCheckpoint *st_checkpoint_open(Diag *d, const char *path);
void st_checkpoint_close(StCheckpoint *ck);
const StTensor *st_checkpoint_find(const StCheckpoint *ck, const char *name);
size_t st_checkpoint_count(const StCheckpoint *ck);
const StTensor *st_checkpoint_tensor(const StCheckpoint *ck, size_t i);   // sorted by name
const char *st_checkpoint_path(const StCheckpoint *ck);   // what was opened (for messages)
// Finds `name`, checks that its shape is exactly shape[0..ndim) and converts it into out (numel
// floats). Returns 0, or -1 after `file: error: tensor `name` ...` (missing, shape, dtype).
int st_checkpoint_read_f32(Diag *d, const StCheckpoint *ck, const char *name, int ndim, const int64_t *shape,
                           float *out);

// "dir/name" (no second '/' where dir ends in one), malloc'd; NULL when out of memory. The paths
// of a checkpoint's files (here and export.c).
char *st_path_join(const char *dir, const char *name);

#endif
