// gemv_q8: the decode matmul of llama.cpp-style engines. Activations are quantised to Q8_1 blocks of 32,
// weights stay in their GGUF block format, and each block's dot product is an exact integer sum; floats
// appear only to scale a block's integer sum and to add the blocks up.
//
// Activation quantisation (quantize_q8_1, ggml's quantize_row_q8_1_ref): per block of 32,
//   amax = max |x_j|;  d = amax / 127;  id = d != 0 ? 1/d : 0;  q_j = roundf(x_j * id) (half away from
//   zero, clamped to [-127, 127], which only matters for non-finite input);
//   dx = f16(d), sx = f16(float(sum_j q_j) * d)   (f16: round to nearest even, kept as f32 values).
//
// Block value v_b (b = block index along the row, 32 weights w_j with quants p_j):
//   Q8_0  (dw * dx) * float(sum p_j q_j)
//   Q4_0  (dw * dx) * float(sum (p_j - 8) q_j)
//   Q4_1  (dw * dx) * float(sum p_j q_j) + mw * sx
//   Q4_K  ((d * sc) * dx) * float(sum p_j q_j) - (dmin * mn) * sx      (sub-block b % 8 of super-block b / 8)
//   Q6_K  (d * dx) * float(sc0 * sum_{j<16} p_j q_j + sc1 * sum_{j>=16} p_j q_j)
// Order: 32 lanes per output (on every vendor); lane l adds v_l, v_{l+32}, v_{l+64}, ... in order
// (acc += v_b), then greta_sum32's butterfly (16, 8, 4, 2, 1). The CPU backend's gemv_q8 emulates all of
// this exactly (the integer sums are exact, every float operation is written in the same order).

#define Q8_WPB 4        // outputs (32-lane groups) per block of gemv_q8
#define Q8_QPB 4        // activation blocks per block of quantize_q8_1

// x [n, in] f32 -> qx [n, in] i8, dx/sx [n, in/32] f32. Grid (in/32/Q8_QPB, n), 32*Q8_QPB threads.
extern "C" __global__ void quantize_q8_1(const float* __restrict__ x, signed char* __restrict__ qx,
                                         float* __restrict__ dx, float* __restrict__ sx, u32 n, u32 in) {
    u32 j = threadIdx.x & 31;
    u32 b = blockIdx.x * Q8_QPB + threadIdx.x / 32;
    u32 i = blockIdx.y;
    u32 nb = in / 32;
    if (b >= nb || i >= n) return;  // whole 32-lane groups leave together
    size_t e = (size_t)i * in + (size_t)b * 32 + j;
    float v = x[e];
    float amax = greta_max32(fabsf(v));
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    float r = roundf(v * id);
    int q = r != r ? 0 : (r > 127.0f ? 127 : (r < -127.0f ? -127 : (int)r));
    qx[e] = (signed char)q;
    int sum = greta_sum32_i(q);
    if (j == 0) {
        size_t o = (size_t)i * nb + b;
        dx[o] = greta_round_half(d);
        sx[o] = greta_round_half((float)sum * d);
    }
}

template <int F>
__device__ __forceinline__ float q8_block(const u8* __restrict__ row, u32 b, const signed char* __restrict__ q,
                                          float dx, float sx) {
    if (F == GRETA_W_Q8_0) {
        const u8* blk = row + (size_t)b * 34;
        int s = 0;
        for (int j = 0; j < 32; j++) s += (int)(signed char)blk[2 + j] * (int)q[j];
        return (greta_f16_at(blk) * dx) * (float)s;
    } else if (F == GRETA_W_Q4_0) {
        const u8* blk = row + (size_t)b * 18;
        int s = 0;
        for (int j = 0; j < 16; j++) {
            u32 c = blk[2 + j];
            s += ((int)(c & 0x0fu) - 8) * (int)q[j] + ((int)(c >> 4) - 8) * (int)q[j + 16];
        }
        return (greta_f16_at(blk) * dx) * (float)s;
    } else if (F == GRETA_W_Q4_1) {
        const u8* blk = row + (size_t)b * 20;
        int s = 0;
        for (int j = 0; j < 16; j++) {
            u32 c = blk[4 + j];
            s += (int)(c & 0x0fu) * (int)q[j] + (int)(c >> 4) * (int)q[j + 16];
        }
        return (greta_f16_at(blk) * dx) * (float)s + greta_f16_at(blk + 2) * sx;
    } else if (F == GRETA_W_Q4_K) {
        // Super-blocks are 144 bytes and rows whole super-blocks, so qs (at 16 + 32 * (g / 2)) is 16-byte
        // aligned, as are the 32 activation quants: both are read as words and dotted four at a time.
        const u8* blk = row + (size_t)(b >> 3) * 144;
        u32 g = b & 7;
        u32 sc, mn;
        greta_q4k_sm(blk + 4, g, &sc, &mn);
        // Four 16-byte loads instead of sixteen 4-byte ones (same words, same order of the dot).
        const uint4* qs4 = (const uint4*)(blk + 16 + (g >> 1) * 32);
        const uint4* qw4 = (const uint4*)q;
        uint4 a0 = qs4[0], a1 = qs4[1], b0 = qw4[0], b1 = qw4[1];
        u32 qs[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
        u32 qw[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
        u32 sh = 4 * (g & 1);
        int s = 0;
#pragma unroll
        for (int j = 0; j < 8; j++) s = greta_dp4a((int)((qs[j] >> sh) & 0x0f0f0f0fu), (int)qw[j], s);
        float ds = greta_f16_at(blk) * (float)sc;
        float dm = greta_f16_at(blk + 2) * (float)mn;
        return (ds * dx) * (float)s - dm * sx;
    } else {  // GRETA_W_Q6_K
        // Super-blocks are 210 bytes: rows and fields are 2-byte aligned, so quants are read in halves
        // and packed into words. sum (p - 32) q = sum p q - 32 sum q, all exact integers.
        const u8* blk = row + (size_t)(b >> 3) * 210;
        u32 part = b & 7, h = part >> 2, kk = part & 3;
        // The 32 quant bytes of ql and of qh start 2-aligned: nine aligned words each, re-joined by shifts
        // where the super-block starts off a word (same bytes as 2-byte reads, fewer loads).
        const u8* qlp = blk + 64 * h + 32 * (kk & 1);
        const u8* qhp = blk + 128 + 32 * h;
        u32 mis = (u32)((size_t)qlp & 2);  // qhp - qlp is a multiple of 32: the same for both
        const u32* lw32 = (const u32*)(qlp - mis);
        const u32* hw32 = (const u32*)(qhp - mis);
        u32 L[9], Hw[9];
#pragma unroll
        for (int j = 0; j < 9; j++) {
            L[j] = lw32[j];
            Hw[j] = hw32[j];
        }
        const uint4* qw4 = (const uint4*)q;
        uint4 b0 = qw4[0], b1 = qw4[1];
        int qw[8] = {(int)b0.x, (int)b0.y, (int)b0.z, (int)b0.w, (int)b1.x, (int)b1.y, (int)b1.z, (int)b1.w};
        u32 shl = 4 * (kk >> 1), shh = 2 * kk;
        int s0 = 0, s1 = 0, q0 = 0, q1 = 0;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            u32 lw = mis ? (L[j] >> 16) | (L[j + 1] << 16) : L[j];
            u32 hw = mis ? (Hw[j] >> 16) | (Hw[j + 1] << 16) : Hw[j];
            int v = (int)(((lw >> shl) & 0x0f0f0f0fu) | (((hw >> shh) & 0x03030303u) << 4));
            if (j < 4) {
                s0 = greta_dp4a(v, qw[j], s0);
                q0 = greta_dp4a(0x01010101, qw[j], q0);
            } else {
                s1 = greta_dp4a(v, qw[j], s1);
                q1 = greta_dp4a(0x01010101, qw[j], q1);
            }
        }
        s0 -= 32 * q0;
        s1 -= 32 * q1;
        int sc0 = (int)(signed char)blk[192 + 2 * part], sc1 = (int)(signed char)blk[192 + 2 * part + 1];
        return (greta_f16_at(blk + 208) * dx) * (float)(sc0 * s0 + sc1 * s1);
    }
}

template <int F>
__device__ __forceinline__ void gemv_q8_body(const signed char* __restrict__ qx, const float* __restrict__ dx,
                                             const float* __restrict__ sx, const u8* __restrict__ w,
                                             float* __restrict__ y, u32 n, u32 in, u32 out, u32 rb) {
    u32 lane = threadIdx.x & 31;
    u32 o = blockIdx.x * Q8_WPB + threadIdx.x / 32;
    u32 i = blockIdx.y;
    if (o >= out || i >= n) return;  // whole 32-lane groups leave together
    u32 nb = in / 32;
    const u8* wr = w + (size_t)o * rb;
    float acc = 0.0f;
    // Unrolled so several blocks' loads are in flight at once; the additions stay in block order.
#pragma unroll 4
    for (u32 b = lane; b < nb; b += 32) {
        size_t xb = (size_t)i * nb + b;
        acc += q8_block<F>(wr, b, qx + xb * 32, dx[xb], sx[xb]);
    }
    acc = greta_sum32(acc);
    if (lane == 0) y[(size_t)i * out + o] = acc;
}

// y [n, out] from the quantised activations and W (fmt, rb bytes a row). Grid (out/Q8_WPB, n), 32*Q8_WPB threads.
extern "C" __global__ void gemv_q8(const signed char* __restrict__ qx, const float* __restrict__ dx,
                                   const float* __restrict__ sx, const u8* __restrict__ w, float* __restrict__ y,
                                   u32 n, u32 in, u32 out, u32 fmt, u32 rb) {
    switch (fmt) {
        case GRETA_W_Q8_0: gemv_q8_body<GRETA_W_Q8_0>(qx, dx, sx, w, y, n, in, out, rb); break;
        case GRETA_W_Q4_0: gemv_q8_body<GRETA_W_Q4_0>(qx, dx, sx, w, y, n, in, out, rb); break;
        case GRETA_W_Q4_1: gemv_q8_body<GRETA_W_Q4_1>(qx, dx, sx, w, y, n, in, out, rb); break;
        case GRETA_W_Q4_K: gemv_q8_body<GRETA_W_Q4_K>(qx, dx, sx, w, y, n, in, out, rb); break;
        case GRETA_W_Q6_K: gemv_q8_body<GRETA_W_Q6_K>(qx, dx, sx, w, y, n, in, out, rb); break;
        default: break;
    }
}
