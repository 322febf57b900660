/* toy_forward.c: a toy forward pass in plain C that records its launches with libgreta.
 *
 * Two FFN blocks (ffn_norm, gate, up, swiglu, down, ffn_residual) over a 3-token prefill and one decode
 * step, then final_norm, plus one stage greta does not know ("toy_scale"). Every launch uses greta's stage
 * names and input roles, so `greta replay toy.tape --reference f64` judges each one against greta's f64
 * kernel on the recorded inputs. Outputs are passed on by id: each tensor is captured once.
 *
 * Build: cc -O2 -Icapi/include examples/toy_forward.c -Ltarget/release -lgreta_capi -lm -o toy_forward
 * Run:   LD_LIBRARY_PATH=target/release ./toy_forward toy.tape && greta verify toy.tape
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greta.h"

enum { DIM = 16, FFN = 32, LAYERS = 2, MAXN = 3 };

#define CHECK(call)                                                                   \
    do {                                                                              \
        greta_status s_ = (call);                                                     \
        if (s_ != GRETA_OK) {                                                         \
            fprintf(stderr, "%s failed (%d): %s\n", #call, (int)s_, greta_last_error()); \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static float norm_w[LAYERS + 1][DIM], w_gate[LAYERS][FFN * DIM], w_up[LAYERS][FFN * DIM],
    w_down[LAYERS][DIM * FFN];

static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return ((float)(*s >> 8) / 16777216.0f - 0.5f) * 0.5f;
}

static void rmsnorm(const float *x, const float *w, float *y, int n) {
    for (int i = 0; i < n; i++) {
        float ss = 0;
        for (int k = 0; k < DIM; k++) ss += x[i * DIM + k] * x[i * DIM + k];
        float r = 1.0f / sqrtf(ss / DIM + 1e-5f);
        for (int k = 0; k < DIM; k++) y[i * DIM + k] = x[i * DIM + k] * r * w[k];
    }
}

static void matmul(const float *x, const float *w, float *y, int n, int out, int in) {
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            float acc = 0;
            for (int k = 0; k < in; k++) acc += x[i * in + k] * w[o * in + k];
            y[i * out + o] = acc;
        }
}

/* A host f32 tensor of shape [rows, cols] (rows 0: a vector of cols). */
static greta_tensor host(const char *role, const float *data, int64_t *shape, int64_t rows, int64_t cols) {
    greta_tensor t;
    memset(&t, 0, sizeof t);
    t.role = role;
    t.kind = GRETA_TENSOR_HOST;
    t.dtype = GRETA_F32;
    if (rows > 0) {
        shape[0] = rows;
        shape[1] = cols;
        t.ndim = 2;
    } else {
        shape[0] = cols;
        t.ndim = 1;
    }
    t.shape = shape;
    t.data = data;
    t.nbytes = (size_t)((rows > 0 ? rows : 1) * cols) * sizeof(float);
    return t;
}

/* An input that is the earlier output with this id. */
static greta_tensor by_id(const char *role, uint64_t id) {
    greta_tensor t;
    memset(&t, 0, sizeof t);
    t.role = role;
    t.kind = GRETA_TENSOR_ID;
    t.id = id;
    return t;
}

/* One launch with one f32 output [n, cols]; returns the output's id. */
static uint64_t record(greta_recorder *rec, const char *phase, int layer, const char *stage, const char *route,
                       const greta_tensor *in, size_t nin, const float *out, int n, int cols) {
    greta_param eps = {"eps", 1e-5};
    greta_launch_desc d = {phase, layer, stage, route, &eps, strstr(stage, "norm") ? 1u : 0u, NULL};
    int64_t shape[2];
    greta_tensor o = host("out", out, shape, n, cols);
    uint64_t id = 0;
    CHECK(greta_launch(rec, &d, in, nin, &o, 1, &id));
    return id;
}

/* One FFN block on n rows at x (id x_id); leaves the result in x and returns its id. */
static uint64_t ffn_block(greta_recorder *rec, const char *phase, int l, float *x, uint64_t x_id, int n) {
    float h[MAXN * DIM], g[MAXN * FFN], u[MAXN * FFN], s[MAXN * FFN], dn[MAXN * DIM];
    int64_t s1[2], s2[2];
    rmsnorm(x, norm_w[l], h, n);
    greta_tensor in_norm[2] = {by_id("x", x_id), host("w", norm_w[l], s1, 0, DIM)};
    uint64_t h_id = record(rec, phase, l, "ffn_norm", "toy_rmsnorm_f32", in_norm, 2, h, n, DIM);

    matmul(h, w_gate[l], g, n, FFN, DIM);
    greta_tensor in_gate[2] = {by_id("x", h_id), host("w", w_gate[l], s2, FFN, DIM)};
    uint64_t g_id = record(rec, phase, l, "gate", "toy_matmul_f32", in_gate, 2, g, n, FFN);
    matmul(h, w_up[l], u, n, FFN, DIM);
    greta_tensor in_up[2] = {by_id("x", h_id), host("w", w_up[l], s2, FFN, DIM)};
    uint64_t u_id = record(rec, phase, l, "up", "toy_matmul_f32", in_up, 2, u, n, FFN);

    for (int i = 0; i < n * FFN; i++) s[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    greta_tensor in_sw[2] = {by_id("gate", g_id), by_id("up", u_id)};
    uint64_t s_id = record(rec, phase, l, "swiglu", "toy_swiglu_f32", in_sw, 2, s, n, FFN);

    matmul(s, w_down[l], dn, n, DIM, FFN);
    greta_tensor in_down[2] = {by_id("x", s_id), host("w", w_down[l], s2, DIM, FFN)};
    uint64_t d_id = record(rec, phase, l, "down", "toy_matmul_f32", in_down, 2, dn, n, DIM);

    for (int i = 0; i < n * DIM; i++) x[i] += dn[i];
    greta_tensor in_res[2] = {by_id("x", x_id), by_id("r", d_id)};
    return record(rec, phase, l, "ffn_residual", "toy_add_f32", in_res, 2, x, n, DIM);
}

static void forward(greta_recorder *rec, const char *phase, float *x, int n) {
    int64_t sh[2];
    /* The input rows: a stage greta does not know (kept, listed, diffed by hash; no reference). */
    float x0[MAXN * DIM];
    memcpy(x0, x, sizeof(float) * (size_t)(n * DIM));
    for (int i = 0; i < n * DIM; i++) x[i] *= 2.0f;
    greta_tensor in0 = host("x", x0, sh, n, DIM);
    uint64_t id = record(rec, phase, -1, "toy_scale", "toy_scale_by_2", &in0, 1, x, n, DIM);
    for (int l = 0; l < LAYERS; l++) id = ffn_block(rec, phase, l, x, id, n);
    float y[MAXN * DIM];
    rmsnorm(x, norm_w[LAYERS], y, n);
    greta_tensor in_fn[2] = {by_id("x", id), host("w", norm_w[LAYERS], sh, 0, DIM)};
    record(rec, phase, -1, "final_norm", "toy_rmsnorm_f32", in_fn, 2, y, n, DIM);
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "toy.tape";
    if (greta_abi_version() != GRETA_ABI_VERSION) {
        fprintf(stderr, "libgreta ABI %u, header %u\n", greta_abi_version(), GRETA_ABI_VERSION);
        return 1;
    }
    unsigned seed = 42;
    for (int l = 0; l <= LAYERS; l++)
        for (int k = 0; k < DIM; k++) norm_w[l][k] = 1.0f + frand(&seed);
    for (int l = 0; l < LAYERS; l++)
        for (int i = 0; i < FFN * DIM; i++) {
            w_gate[l][i] = frand(&seed);
            w_up[l][i] = frand(&seed);
            w_down[l][i] = frand(&seed);
        }
    float x[MAXN * DIM];
    for (int i = 0; i < MAXN * DIM; i++) x[i] = frand(&seed) * 4.0f;

    /* README:begin */
    greta_header *h;
    greta_recorder *rec;
    CHECK(greta_header_new("toy-c", "1.0", &h));
    CHECK(greta_header_set_model(h, "{\"architecture\": \"toy-ffn\", \"n_embd\": 16, \"n_ff\": 32}", NULL, NULL));
    CHECK(greta_recorder_new(path, h, GRETA_SYNC, &rec));
    greta_header_free(h);

    float xr[DIM] = {0}, out[DIM];
    int64_t shape[2] = {1, DIM};
    greta_tensor in = {.role = "x", .kind = GRETA_TENSOR_HOST, .dtype = GRETA_F32,
                       .shape = shape, .ndim = 2, .data = xr, .nbytes = sizeof xr};
    greta_launch_desc d = {.phase = "prefill", .layer = 0, .stage = "my_kernel", .route = "my_kernel_v2"};
    uint64_t seq;
    CHECK(greta_begin(rec, &d, &in, 1, &seq));     /* before the kernel: a crash now leaves it named */
    for (int k = 0; k < DIM; k++) out[k] = xr[k] + 1.0f;   /* the engine's kernel */
    greta_tensor o = in;
    o.role = "out";
    o.data = out;
    CHECK(greta_end(rec, seq, &o, 1, NULL));
    /* README:end */

    forward(rec, "prefill", x, MAXN);
    /* decode step 0: one new row */
    float x1[DIM];
    for (int k = 0; k < DIM; k++) x1[k] = frand(&seed) * 4.0f;
    forward(rec, "decode0", x1, 1);

    uint64_t launches = 0;
    CHECK(greta_recorder_close(rec, &launches));
    greta_recorder_free(rec);
    printf("%s: %llu launches\n", path, (unsigned long long)launches);
    return 0;
}
