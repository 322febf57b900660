/*
 * A small greta kernel plugin (include/greta_plugin.h), built and run by the tests (tests/plugin.rs):
 *
 *   cc -O2 -ffp-contract=off -shared -fPIC -Iinclude examples/plugin/rmsnorm_matmul.c -o librmsnorm_matmul.so
 *   greta replay t.tape --stage attn_norm --kernels ./librmsnorm_matmul.so
 *
 * - greta_kernel_{attn,ffn,final}_norm: RMSNorm on f32 activations in greta's own f32 reduction order
 *   (8 interleaved lanes combined as ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)), src/backend/cpu/dot.rs), so it
 *   reproduces a greta f32 recording bit for bit.
 * - greta_kernel_{q,k,v,o}_proj, gate, up, down: matmul with f32 weights, summed left to right in one
 *   accumulator: the same maths in another order, so it does NOT reproduce greta's gemv/gemm routes — the
 *   case greta's report must show as "not bit-exact" with its ULP distance.
 * -ffp-contract=off: no a*b+c fused into an FMA behind our back (greta's kernels never fuse either).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "greta_plugin.h"

static char last_error[256];

const char *greta_plugin_last_error(void) { return last_error; }

uint32_t greta_plugin_abi_version(void) { return GRETA_PLUGIN_ABI_VERSION; }

static int fail(const char *msg) {
    snprintf(last_error, sizeof last_error, "%s", msg);
    return 1;
}

static uint64_t numel(const greta_tensor *t) {
    uint64_t n = 1;
    for (uint32_t i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static float dot8(const float *a, const float *b, uint64_t n) {
    float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    uint64_t full = n / 8 * 8;
    for (uint64_t k = 0; k < full; k += 8)
        for (int i = 0; i < 8; i++) l[i] += a[k + i] * b[k + i];
    for (uint64_t k = full; k < n; k++) l[k - full] += a[k] * b[k];
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

static int rmsnorm(const char *route, const greta_params *p, const greta_tensor *in, uint32_t n_in,
                   greta_tensor *out, uint32_t n_out) {
    (void)route;
    if (n_in != 2 || n_out != 1) return fail("rmsnorm: want inputs x, w and one output");
    const greta_tensor *x = &in[0], *w = &in[1];
    if (x->dtype != GRETA_PLUGIN_F32 || w->dtype != GRETA_PLUGIN_F32 || out[0].dtype != GRETA_PLUGIN_F32)
        return fail("rmsnorm: f32 only");
    uint64_t dim = numel(w), n = numel(x);
    if (dim == 0 || n % dim || out[0].nbytes != n * 4) return fail("rmsnorm: shapes");
    const float *xs = x->data, *ws = w->data;
    float *ys = out[0].data;
    float eps = (float)p->eps, fdim = (float)dim;
    for (uint64_t r = 0; r < n / dim; r++) {
        const float *row = xs + r * dim;
        float inv = 1.0f / sqrtf(dot8(row, row, dim) / fdim + eps);
        for (uint64_t d = 0; d < dim; d++) ys[r * dim + d] = row[d] * inv * ws[d];
    }
    return 0;
}

static int matmul(const char *route, const greta_params *p, const greta_tensor *in, uint32_t n_in,
                  greta_tensor *out, uint32_t n_out) {
    (void)route;
    (void)p;
    if (n_in != 2 || n_out != 1) return fail("matmul: want inputs x, W and one output");
    const greta_tensor *x = &in[0], *w = &in[1];
    if (x->dtype != GRETA_PLUGIN_F32 || w->dtype != GRETA_PLUGIN_F32 || out[0].dtype != GRETA_PLUGIN_F32)
        return fail("matmul: this example handles f32 activations and f32 weights only");
    if (w->ndim != 2 || x->ndim < 1) return fail("matmul: W must be [out, in]");
    uint64_t outd = w->shape[0], ind = w->shape[1], rows = numel(x) / ind;
    if (numel(x) != rows * ind || out[0].nbytes != rows * outd * 4) return fail("matmul: shapes");
    const float *xs = x->data, *ws = w->data;
    float *ys = out[0].data;
    for (uint64_t i = 0; i < rows; i++)
        for (uint64_t o = 0; o < outd; o++) {
            float acc = 0.0f; /* one accumulator, left to right: not greta's order */
            for (uint64_t k = 0; k < ind; k++) acc += xs[i * ind + k] * ws[o * ind + k];
            ys[i * outd + o] = acc;
        }
    return 0;
}

#define KERNEL(stage, impl)                                                                           \
    int32_t greta_kernel_##stage(const char *route, const greta_params *p, const greta_tensor *in,   \
                                 uint32_t n_in, greta_tensor *out, uint32_t n_out) {                 \
        return impl(route, p, in, n_in, out, n_out);                                                  \
    }

KERNEL(attn_norm, rmsnorm)
KERNEL(ffn_norm, rmsnorm)
KERNEL(final_norm, rmsnorm)
KERNEL(q_proj, matmul)
KERNEL(k_proj, matmul)
KERNEL(v_proj, matmul)
KERNEL(o_proj, matmul)
KERNEL(gate, matmul)
KERNEL(up, matmul)
KERNEL(down, matmul)
