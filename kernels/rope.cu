// RoPE, llama.cpp NORM pairing: pairs (2p, 2p+1) of each head, for p < rope_dim/2 rotated by
// theta_p = (pos+i) * base^(-2p/rope_dim); dimensions past rope_dim are copied unchanged.
// The angle, cos and sin are computed in double precision and rounded to f32, like the CPU reference
// (which uses libm in f64); the device's double cos/sin/pow are not correctly rounded either, so the
// f32 values agree with the CPU except in rare double-rounding cases. One thread per (row, head, pair).

#define ROPE_THREADS 128

extern "C" __global__ void rope_f32(const float* __restrict__ x, float* __restrict__ y, u32 n, u32 heads,
                                    u32 hd, u32 rd, u32 pos, double base) {
    u32 e = blockIdx.x * ROPE_THREADS + threadIdx.x;  // pair index within the row
    u32 i = blockIdx.y;
    u32 half_hd = hd / 2;
    if (i >= n || e >= heads * half_hd) return;
    u32 h = e / half_hd, p = e % half_hd;
    size_t at = (size_t)i * heads * hd + h * hd + 2 * p;
    float a = x[at], b = x[at + 1];
    if (2 * p < rd) {
        double freq = pow(base, -2.0 * (double)p / (double)rd);
        double ang = (double)(pos + i) * freq;
        float c = (float)cos(ang), s = (float)sin(ang);
        y[at] = a * c - b * s;
        y[at + 1] = a * s + b * c;
    } else {
        y[at] = a;
        y[at + 1] = b;
    }
}
