//! Micro-benchmark of the CPU matmul kernels' inner loops (single thread, minimum of many repetitions):
//! `cargo run --release --example kernel_bench` (set GRETA_NO_SIMD=1 or GRETA_NO_AVX512=1 to compare).
use greta::backend::cpu::dot::{dot_blocked, dot8};
use greta::backend::cpu::fast;
use greta::launch::DType;
use std::time::Instant;

fn main() {
    let (cols, out) = (576usize, 1536usize);
    let mut s = 0x1234_5678_9abc_def1u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for dtype in [DType::Q4_1, DType::Q8_0] {
        let rb = dtype.bytes_for(cols).unwrap();
        let (_, bb) = dtype.block();
        let mut w: Vec<u8> = (0..rb * out).map(|_| next() as u8).collect();
        for blk in w.chunks_exact_mut(bb) {
            blk[0..2].copy_from_slice(&half::f16::from_f32(0.01).to_bits().to_le_bytes());
            blk[2..4].copy_from_slice(&half::f16::from_f32(-0.05).to_bits().to_le_bytes());
        }
        let x: Vec<f32> = (0..cols)
            .map(|_| (next() >> 40) as f32 / 1e7 - 0.8)
            .collect();
        let rows: Vec<&[u8]> = w.chunks_exact(rb).collect();
        let mut y = vec![0f32; out];
        for (name, blocked) in [
            ("gemv (dot8 order)", false),
            ("gemm_tiled (blocked order)", true),
        ] {
            let mut best = f64::MAX;
            for _ in 0..300 {
                let t = Instant::now();
                if fast::fused_supported(dtype, cols) {
                    for (r, o) in rows.chunks(16).zip(y.chunks_mut(16)) {
                        fast::fused_f32(dtype, blocked, &x, r, o);
                    }
                } else {
                    let mut buf = vec![0f32; cols];
                    for (r, o) in rows.iter().zip(y.iter_mut()) {
                        greta::model::quant::dequantize(dtype, r, &mut buf).unwrap();
                        *o = if blocked {
                            dot_blocked(&x, &buf)
                        } else {
                            dot8(&x, &buf)
                        };
                    }
                }
                best = best.min(t.elapsed().as_secs_f64());
            }
            let macs = (cols * out) as f64;
            println!(
                "{dtype} {name}: {:.1} us per {out}x{cols} gemv, {:.2} GMAC/s (y0 {:e})",
                best * 1e6,
                macs / best / 1e9,
                y[0]
            );
        }
    }
}
