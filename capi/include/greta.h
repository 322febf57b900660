/* greta.h: libgreta, the C ABI of greta's open capture.
 *
 * Another engine records its kernel launches to a greta tape: greta then verifies it, lists it, replays
 * each launch of a greta stage on greta's f64 reference (local error on the recorded inputs), and diffs
 * it against any other tape (`greta verify|ls|replay|diff`). Hand-written; tests/ctest.c compiles against
 * it and exercises every call (run by `cargo test -p greta-capi`).
 *
 * Rules:
 *  - Every call returns a greta_status; greta_last_error() is this thread's message.
 *  - All caller memory (strings, shapes, bytes) is copied during the call; reuse it when the call returns.
 *  - A greta_recorder may be used from several threads at once; a greta_header from one at a time.
 *  - Names: phase "prefill" or "decode<k>"; layer -1 for none; stage a greta stage name (docs/STAGES.md:
 *    attn_norm, q_proj, ..., with greta's input roles such as "x" and "w") so greta can judge it, or any
 *    other name (kept, listed, diffed by hash); route: your kernel's own name.
 *  - Tensors are row-major, little-endian; shape is outermost first; GGML block types are whole blocks.
 *
 * Link: -lgreta_capi (target/release/libgreta_capi.so or .a; the .a also needs -lpthread -ldl -lm).
 */
#ifndef GRETA_H
#define GRETA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GRETA_ABI_VERSION 2u

typedef enum greta_status {
    GRETA_OK = 0,
    GRETA_INVALID_ARGUMENT = 1, /* NULL pointer, bad UTF-8, shape/bytes disagree, unknown dtype/phase */
    GRETA_UNKNOWN_ID = 2,       /* an input names an id no earlier output has */
    GRETA_NOT_BEGUN = 3,        /* greta_end for a launch not begun or already ended */
    GRETA_MODEL_ERROR = 4,      /* the GGUF could not be read / lacks the tensor / none was given */
    GRETA_RECORDER_ERROR = 5,   /* writing the tape failed; it is left .incomplete */
    GRETA_CLOSED = 6,           /* the recorder is closed */
    GRETA_NO_GPU_SUPPORT = 7,   /* device tensor, but libgreta was not compiled with GPU support */
    GRETA_PANIC = 8             /* a bug in greta, caught at the boundary */
} greta_status;

typedef enum greta_dtype {
    GRETA_F32 = 0, GRETA_F64 = 1, GRETA_F16 = 2, GRETA_BF16 = 3, GRETA_I32 = 4,
    GRETA_Q8_0 = 5, GRETA_Q4_0 = 6, GRETA_Q4_1 = 7, GRETA_Q4_K = 8, GRETA_Q6_K = 9,
    GRETA_Q5_0 = 10, GRETA_Q5_1 = 11, GRETA_Q2_K = 12, GRETA_Q3_K = 13, GRETA_Q5_K = 14,
    GRETA_IQ4_NL = 15, GRETA_IQ4_XS = 16
} greta_dtype;

typedef enum greta_tensor_kind {
    GRETA_TENSOR_HOST = 0,   /* data: host pointer to nbytes bytes */
    GRETA_TENSOR_WEIGHT = 1, /* input only: weight_name, a tensor of the header's GGUF (never copied) */
    GRETA_TENSOR_ID = 2,     /* input only: id, an earlier output unchanged (never copied again) */
    GRETA_TENSOR_DEVICE = 3  /* data: HIP device pointer, copied on `stream` (needs the hip build) */
} greta_tensor_kind;

typedef struct greta_tensor {
    const char *role;        /* e.g. "x", "w", "out" */
    int kind;                /* greta_tensor_kind */
    int dtype;               /* greta_dtype (HOST, DEVICE) */
    const int64_t *shape;    /* ndim dimensions (HOST, DEVICE) */
    size_t ndim;
    const void *data;        /* HOST / DEVICE */
    size_t nbytes;
    const char *weight_name; /* WEIGHT */
    uint64_t id;             /* ID: the earlier output's id. Outputs: your id (< 2^63), 0: greta assigns */
    void *stream;            /* DEVICE: the hipStream_t the copy is ordered on (NULL: null stream) */
} greta_tensor;

typedef struct greta_param {
    const char *name;        /* rows, pos, n_heads, n_kv_heads, head_dim, rope_dim, kv_block, rope_theta,
                                eps, scale feed greta's reference; any other name is kept */
    double value;
} greta_param;

typedef struct greta_launch_desc {
    const char *phase;       /* "prefill", "decode0", ... */
    int32_t layer;           /* -1: none (global stage) */
    const char *stage;
    const char *route;
    const greta_param *params;
    size_t n_params;
    const char *op;          /* NULL: the stage's op; else an op of docs/OPS.md ("rms_norm", ...), whose
                              * contract greta_begin enforces (GRETA_INVALID_ARGUMENT names what is missing) */
} greta_launch_desc;

typedef struct greta_header greta_header;
typedef struct greta_recorder greta_recorder;

/* The library's ABI version; compare with GRETA_ABI_VERSION. */
uint32_t greta_abi_version(void);
/* This thread's last error message ("" after a success); valid until this thread's next greta call. */
const char *greta_last_error(void);

greta_status greta_header_new(const char *engine, const char *engine_version, greta_header **out);
/* description_json: a JSON object (architecture, sizes, ...) or NULL; gguf_path: the GGUF the engine
 * loaded or NULL; gguf_blake3: its blake3 hex or NULL (greta hashes the file, and checks a given one). */
greta_status greta_header_set_model(greta_header *h, const char *description_json, const char *gguf_path,
                                    const char *gguf_blake3);
greta_status greta_header_set_device(greta_header *h, const char *device);
greta_status greta_header_set_prompt(greta_header *h, const uint32_t *tokens, size_t n);
void greta_header_free(greta_header *h);

#define GRETA_SYNC 1u /* greta_recorder_new flag: greta_begin returns once the Begin is in the file */
greta_status greta_recorder_new(const char *path, const greta_header *h, uint32_t flags, greta_recorder **out);
/* Before the kernel runs: records the launch and its inputs; *seq_out identifies it for greta_end. */
greta_status greta_begin(greta_recorder *r, const greta_launch_desc *d, const greta_tensor *inputs, size_t n,
                         uint64_t *seq_out);
/* After it ran: its outputs; ids_out (NULL or n entries) receives each output's id. */
greta_status greta_end(greta_recorder *r, uint64_t seq, const greta_tensor *outputs, size_t n, uint64_t *ids_out);
/* Both at once. */
greta_status greta_launch(greta_recorder *r, const greta_launch_desc *d, const greta_tensor *inputs, size_t nin,
                          const greta_tensor *outputs, size_t nout, uint64_t *ids_out);
/* Completes the tape (renamed from path.incomplete to path); launches_out may be NULL. */
greta_status greta_recorder_close(greta_recorder *r, uint64_t *launches_out);
/* Frees the handle; without greta_recorder_close the tape stays path.incomplete (still readable). */
void greta_recorder_free(greta_recorder *r);

#ifdef __cplusplus
}
#endif
#endif /* GRETA_H */
