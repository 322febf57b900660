/*
 * greta_plugin.h — foreign kernels in isolation: `greta replay T.tape --kernels libengine.so`.
 *
 * An engine exposes its own kernels through a shared library with one C entry point per greta stage.
 * greta loads the library (dlopen), and for each selected launch of the tape whose stage the library
 * implements, calls the entry point on the launch's recorded inputs, then compares what the kernel
 * wrote with the recorded outputs bit for bit (and with greta's f64 reference when --reference f64 is
 * given). A kernel that reproduces its own recording is deterministic on these inputs; one that does not
 * (a different summation order, a different thread split, atomics) shows where and by how many ULP.
 *
 * Stage contracts (which inputs, in which order, which shapes): docs/STAGES.md. Plugin guide: docs/PLUGINS.md.
 *
 * Required export:
 *     uint32_t greta_plugin_abi_version(void);    returns GRETA_PLUGIN_ABI_VERSION
 * One optional export per stage, named greta_kernel_<stage> (greta_kernel_attn_norm, greta_kernel_q_proj,
 * greta_kernel_attn, ...), of type greta_kernel_fn. A stage without an export is reported as
 * "not implemented by the plugin", not as a failure.
 * Optional export:
 *     const char *greta_plugin_last_error(void);  message for the last non-zero return (thread-local or static)
 *
 * Memory: greta owns every buffer. Inputs are read-only and live for the call. Outputs are allocated by
 * greta with the recorded output's dtype and shape, zero-filled; the kernel writes exactly `nbytes` bytes
 * of each. Weights arrive as stored in the model file (any dtype, e.g. GRETA_PLUGIN_Q4_1 blocks); the
 * kernel dequantises them as it does in its engine. All data is little-endian, row-major, outermost
 * dimension first (shape[ndim-1] is contiguous).
 *
 * Calls come from one thread at a time. A kernel must not keep pointers after it returns.
 */
#ifndef GRETA_PLUGIN_H
#define GRETA_PLUGIN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GRETA_PLUGIN_ABI_VERSION 1u

/* Element types (values are part of the ABI). */
enum greta_plugin_dtype {
    GRETA_PLUGIN_F32 = 0,
    GRETA_PLUGIN_F64 = 1,
    GRETA_PLUGIN_F16 = 2,
    GRETA_PLUGIN_BF16 = 3,
    GRETA_PLUGIN_I32 = 4,
    GRETA_PLUGIN_Q8_0 = 5,
    GRETA_PLUGIN_Q4_0 = 6,
    GRETA_PLUGIN_Q4_1 = 7,
    GRETA_PLUGIN_Q4_K = 8,
    GRETA_PLUGIN_Q6_K = 9,
    GRETA_PLUGIN_Q5_0 = 10,
    GRETA_PLUGIN_Q5_1 = 11,
    GRETA_PLUGIN_Q2_K = 12,
    GRETA_PLUGIN_Q3_K = 13,
    GRETA_PLUGIN_Q5_K = 14,
    GRETA_PLUGIN_IQ4_NL = 15,
    GRETA_PLUGIN_IQ4_XS = 16
};

/* A tensor: an input (read-only) or an output buffer. */
typedef struct greta_tensor {
    const char *role;       /* the stage contract's name: "x", "w", "q", "k_cache", "out", ... */
    int32_t dtype;          /* enum greta_plugin_dtype */
    uint32_t ndim;
    const uint64_t *shape;  /* ndim entries, outermost first */
    void *data;             /* nbytes bytes; read-only for inputs */
    uint64_t nbytes;
} greta_tensor;

/* The launch's scalar parameters (greta's Params; a stage reads the fields it needs, see STAGES.md). */
typedef struct greta_params {
    uint32_t rows;        /* rows (tokens) in the launch */
    uint32_t pos;         /* sequence position of row 0 */
    uint32_t n_heads;
    uint32_t n_kv_heads;
    uint32_t head_dim;
    uint32_t rope_dim;
    double rope_theta;
    double eps;
    double scale;         /* attention score scale */
    uint32_t kv_block;
    uint32_t reserved;
} greta_params;

/*
 * One stage's kernel. `route` is the route recorded on the tape (the engine's own kernel name, or greta's
 * route such as "gemv/f32"), so one entry point can pick the variant that ran. Returns 0 on success;
 * anything else is an error (greta then asks greta_plugin_last_error, if exported, for the message).
 */
typedef int32_t (*greta_kernel_fn)(const char *route, const greta_params *params,
                                   const greta_tensor *inputs, uint32_t n_inputs,
                                   greta_tensor *outputs, uint32_t n_outputs);

#ifdef __cplusplus
}
#endif

#endif /* GRETA_PLUGIN_H */
