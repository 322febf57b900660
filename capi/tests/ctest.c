/* ctest.c: every call of greta.h, its statuses and messages, compiled against the header as a C user
 * would. Prints "ok" and exits 0 when every check passes; else names the first failing check. */
#include <stdio.h>
#include <string.h>

#include "greta.h"

static int failures = 0;
#define EXPECT(cond)                                                                  \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, __LINE__, #cond, \
                    greta_last_error());                                              \
            failures++;                                                               \
        }                                                                             \
    } while (0)

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: ctest TAPE GGUF\n");
        return 2;
    }
    const char *path = argv[1], *gguf = argv[2];
    EXPECT(greta_abi_version() == GRETA_ABI_VERSION);

    greta_header *h = NULL;
    EXPECT(greta_header_new(NULL, "1", &h) == GRETA_INVALID_ARGUMENT);
    EXPECT(strstr(greta_last_error(), "engine is NULL") != NULL);
    EXPECT(greta_header_new("ctest", "1", NULL) == GRETA_INVALID_ARGUMENT);
    EXPECT(greta_header_new("ctest", "1", &h) == GRETA_OK && h != NULL);
    EXPECT(strcmp(greta_last_error(), "") == 0);
    EXPECT(greta_header_set_model(h, "[1, 2]", NULL, NULL) == GRETA_INVALID_ARGUMENT);
    EXPECT(greta_header_set_model(h, "{\"architecture\": \"llama\"}", "/nonexistent.gguf", NULL) == GRETA_OK);
    greta_recorder *rec = NULL;
    EXPECT(greta_recorder_new(path, h, 0, &rec) == GRETA_MODEL_ERROR);
    EXPECT(strstr(greta_last_error(), "/nonexistent.gguf") != NULL);
    EXPECT(greta_header_set_model(h, "{\"architecture\": \"llama\"}", gguf, "00ff") == GRETA_OK);
    EXPECT(greta_recorder_new(path, h, 0, &rec) == GRETA_MODEL_ERROR); /* wrong blake3 */
    EXPECT(greta_header_set_model(h, "{\"architecture\": \"llama\"}", gguf, NULL) == GRETA_OK);
    EXPECT(greta_header_set_device(h, "a CPU") == GRETA_OK);
    uint32_t prompt[3] = {1, 2, 3};
    EXPECT(greta_header_set_prompt(h, prompt, 3) == GRETA_OK);
    EXPECT(greta_recorder_new(path, h, 0x80, &rec) == GRETA_INVALID_ARGUMENT);
    EXPECT(greta_recorder_new(path, h, GRETA_SYNC, &rec) == GRETA_OK && rec != NULL);
    greta_header_free(h);
    greta_header_free(NULL);

    float x[2 * 64];
    for (int i = 0; i < 2 * 64; i++) x[i] = (float)i / 64.0f;
    int64_t xs[2] = {2, 64};
    greta_tensor in[2];
    memset(in, 0, sizeof in);
    in[0].role = "x"; in[0].kind = GRETA_TENSOR_HOST; in[0].dtype = GRETA_F32;
    in[0].shape = xs; in[0].ndim = 2; in[0].data = x; in[0].nbytes = sizeof x;
    in[1].role = "w"; in[1].kind = GRETA_TENSOR_WEIGHT; in[1].weight_name = "blk.0.attn_q.weight";
    greta_param ps[2] = {{"pos", 0}, {"my_tile", 128}};
    greta_launch_desc d = {"prefill", 0, "q_proj", "ctest_gemm<128>", ps, 2, NULL};
    uint64_t seq = 99;
    EXPECT(greta_begin(rec, &d, in, 2, &seq) == GRETA_OK && seq == 0);

    float y[2 * 64] = {0};
    greta_tensor out = in[0];
    out.role = "out"; out.data = y; out.nbytes = sizeof y;
    uint64_t id = 0;
    EXPECT(greta_end(rec, 7, &out, 1, &id) == GRETA_NOT_BEGUN);
    out.nbytes = 3;
    EXPECT(greta_end(rec, seq, &out, 1, &id) == GRETA_INVALID_ARGUMENT);
    EXPECT(strstr(greta_last_error(), "3 bytes") != NULL);
    out.nbytes = sizeof y;
    EXPECT(greta_end(rec, seq, &out, 1, &id) == GRETA_OK && id != 0);

    /* Inputs by id; a caller-chosen output id; unknown ids and kinds; a bad phase; NULL arrays. */
    greta_tensor byid;
    memset(&byid, 0, sizeof byid);
    byid.role = "x"; byid.kind = GRETA_TENSOR_ID; byid.id = id;
    out.id = 1234;
    uint64_t id2 = 0;
    greta_launch_desc d2 = {"decode0", -1, "custom_thing", "k2", NULL, 0, NULL};
    EXPECT(greta_launch(rec, &d2, &byid, 1, &out, 1, &id2) == GRETA_OK && id2 == 1234);
    byid.id = 555;
    EXPECT(greta_launch(rec, &d2, &byid, 1, NULL, 0, NULL) == GRETA_UNKNOWN_ID);
    byid.kind = 42;
    EXPECT(greta_launch(rec, &d2, &byid, 1, NULL, 0, NULL) == GRETA_INVALID_ARGUMENT);
    greta_launch_desc bad = {"decodeX", 0, "q_proj", "k", NULL, 0, NULL};
    EXPECT(greta_begin(rec, &bad, NULL, 0, &seq) == GRETA_INVALID_ARGUMENT);
    EXPECT(strstr(greta_last_error(), "decodeX") != NULL);
    EXPECT(greta_begin(rec, &d2, NULL, 1, &seq) == GRETA_INVALID_ARGUMENT);
    EXPECT(greta_begin(NULL, &d2, NULL, 0, &seq) == GRETA_INVALID_ARGUMENT);

    /* Strict op contracts (docs/OPS.md): refused before anything is recorded, naming what is missing. */
    greta_param rp[3] = {{"pos", 0}, {"n_heads", 2}, {"head_dim", 32}};
    greta_launch_desc rope = {"prefill", 0, "rope_q", "ctest_rope", rp, 3, NULL};
    EXPECT(greta_begin(rec, &rope, in, 1, &seq) == GRETA_INVALID_ARGUMENT);
    EXPECT(strstr(greta_last_error(), "missing required param `rope_theta`") != NULL);
    greta_param np_[1] = {{"epsilon", 1e-6}};
    greta_launch_desc qn = {"prefill", 0, "attn_q_norm", "ctest_norm", np_, 1, "rms_norm"};
    EXPECT(greta_begin(rec, &qn, in, 1, &seq) == GRETA_INVALID_ARGUMENT);
    EXPECT(strstr(greta_last_error(), "unknown param `epsilon`") != NULL);

    /* Device tensors: this build has no GPU support (the hip feature is off in this test). */
    greta_tensor dev = in[0];
    dev.kind = GRETA_TENSOR_DEVICE;
    EXPECT(greta_begin(rec, &d2, &dev, 1, &seq) == GRETA_NO_GPU_SUPPORT);
    EXPECT(strstr(greta_last_error(), "not compiled with GPU support") != NULL);

    uint64_t launches = 0;
    EXPECT(greta_recorder_close(rec, &launches) == GRETA_OK && launches == 2);
    EXPECT(greta_begin(rec, &d2, NULL, 0, &seq) == GRETA_CLOSED);
    EXPECT(greta_recorder_close(rec, NULL) == GRETA_CLOSED);
    greta_recorder_free(rec);
    greta_recorder_free(NULL);
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
