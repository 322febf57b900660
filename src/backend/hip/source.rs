//! The kernel sources (kernels/*.cu, embedded at build time), the kernels each file exports with their
//! parameter lists, the launch-geometry constants the Rust side shares with them, and their hashes.
//!
//! Each file is compiled as `prelude.h`, a `#line 1 "file.cu"` directive, then the file, so compiler
//! messages point into the right file. The hash recorded on the tape for a file is the blake3 of that
//! exact text, so a tape says which kernels produced it.

use super::ffi::ArgKind::{self, F32, F64, Ptr, U32};

/// kernels/prelude.h.
pub const PRELUDE: &str = include_str!("../../../kernels/prelude.h");

/// One kernels/ source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KernelFile {
    /// matmul.cu: gemv, gemm_tiled, gemm_invariant.
    Matmul,
    /// attention.cu: qk, softmax, pv, fused attention (f32 and f16 accumulation).
    Attention,
    /// norm.cu: rmsnorm.
    Norm,
    /// rope.cu.
    Rope,
    /// elementwise.cu: embed, add, swiglu, argmax.
    Elementwise,
    /// q8.cu: quantize_q8_1 and gemv_q8 (the engine-style decode matmul).
    Q8,
    /// mma.cu: gemm_mma (matrix cores). Optional: a device or compiler without matrix instructions
    /// leaves the route unavailable instead of failing the backend.
    Mma,
    /// blake3.cu: digests of device buffers for hash-only recording.
    Blake3,
}

impl KernelFile {
    /// Every file.
    pub const ALL: [KernelFile; 8] = [
        KernelFile::Matmul,
        KernelFile::Attention,
        KernelFile::Norm,
        KernelFile::Rope,
        KernelFile::Elementwise,
        KernelFile::Q8,
        KernelFile::Mma,
        KernelFile::Blake3,
    ];

    /// Whether a compile failure of this file leaves its routes unavailable rather than failing `open`.
    pub fn optional(self) -> bool {
        self == KernelFile::Mma
    }

    /// Path relative to the repository root, as recorded on the tape.
    pub fn path(self) -> &'static str {
        match self {
            KernelFile::Matmul => "kernels/matmul.cu",
            KernelFile::Attention => "kernels/attention.cu",
            KernelFile::Norm => "kernels/norm.cu",
            KernelFile::Rope => "kernels/rope.cu",
            KernelFile::Elementwise => "kernels/elementwise.cu",
            KernelFile::Q8 => "kernels/q8.cu",
            KernelFile::Mma => "kernels/mma.cu",
            KernelFile::Blake3 => "kernels/blake3.cu",
        }
    }

    /// The file's own text.
    pub fn text(self) -> &'static str {
        match self {
            KernelFile::Matmul => include_str!("../../../kernels/matmul.cu"),
            KernelFile::Attention => include_str!("../../../kernels/attention.cu"),
            KernelFile::Norm => include_str!("../../../kernels/norm.cu"),
            KernelFile::Rope => include_str!("../../../kernels/rope.cu"),
            KernelFile::Elementwise => include_str!("../../../kernels/elementwise.cu"),
            KernelFile::Q8 => include_str!("../../../kernels/q8.cu"),
            KernelFile::Mma => include_str!("../../../kernels/mma.cu"),
            KernelFile::Blake3 => include_str!("../../../kernels/blake3.cu"),
        }
    }

    /// What the compiler sees: prelude, line directive, file.
    pub fn compiled_source(self) -> String {
        let name = self.path().trim_start_matches("kernels/");
        format!("{PRELUDE}\n#line 1 \"{name}\"\n{}", self.text())
    }
}

/// A kernel: its file, its `extern "C"` name and its parameter list (must mirror the .cu declaration:
/// the FFI launch checks arguments against this table, and the table against the source is checked by
/// a unit test below).
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    /// The source file.
    pub file: KernelFile,
    /// The exported name.
    pub name: &'static str,
    /// Parameter kinds in order.
    pub sig: &'static [ArgKind],
}

const fn k(file: KernelFile, name: &'static str, sig: &'static [ArgKind]) -> Kernel {
    Kernel { file, name, sig }
}

const MM: &[ArgKind] = &[Ptr, Ptr, Ptr, U32, U32, U32, U32, U32];
const QK: &[ArgKind] = &[Ptr, Ptr, Ptr, U32, U32, U32, U32, U32, U32, F32];
const PV: &[ArgKind] = &[Ptr, Ptr, Ptr, U32, U32, U32, U32, U32, U32];
const FUSED: &[ArgKind] = &[Ptr, Ptr, Ptr, Ptr, U32, U32, U32, U32, U32, U32, F32, U32];
const PART: &[ArgKind] = &[
    Ptr, Ptr, Ptr, Ptr, U32, U32, U32, U32, U32, U32, F32, U32, U32,
];
const MERGE: &[ArgKind] = &[Ptr, Ptr, U32, U32, U32, U32, U32];

/// matmul.cu `gemv(x, w, y, n, in, out, fmt, rb)`.
pub const GEMV: Kernel = k(KernelFile::Matmul, "gemv", MM);
/// matmul.cu `gemm_tiled(x, w, y, n, in, out, fmt, rb)`.
pub const GEMM_TILED: Kernel = k(KernelFile::Matmul, "gemm_tiled", MM);
/// matmul.cu `gemm_invariant(x, w, y, n, in, out, fmt, rb)`.
pub const GEMM_INVARIANT: Kernel = k(KernelFile::Matmul, "gemm_invariant", MM);
/// q8.cu `quantize_q8_1(x, qx, dx, sx, n, in)`.
pub const QUANTIZE_Q8_1: Kernel = k(
    KernelFile::Q8,
    "quantize_q8_1",
    &[Ptr, Ptr, Ptr, Ptr, U32, U32],
);
/// q8.cu `gemv_q8(qx, dx, sx, w, y, n, in, out, fmt, rb)`.
pub const GEMV_Q8: Kernel = k(
    KernelFile::Q8,
    "gemv_q8",
    &[Ptr, Ptr, Ptr, Ptr, Ptr, U32, U32, U32, U32, U32],
);
/// mma.cu `mma_x_f16(x, xh, n, in, kp)`.
pub const MMA_X_F16: Kernel = k(KernelFile::Mma, "mma_x_f16", &[Ptr, Ptr, U32, U32, U32]);
/// mma.cu `mma_w_f16(w, wh, out, in, kp, fmt, rb)`.
pub const MMA_W_F16: Kernel = k(
    KernelFile::Mma,
    "mma_w_f16",
    &[Ptr, Ptr, U32, U32, U32, U32, U32],
);
/// mma.cu `gemm_mma(xh, wh, y, n, out, kp)`.
pub const GEMM_MMA: Kernel = k(KernelFile::Mma, "gemm_mma", &[Ptr, Ptr, Ptr, U32, U32, U32]);
/// blake3.cu `blake3_many(descs, first, count, slots, cv, tickets, out)`.
pub const BLAKE3: Kernel = k(
    KernelFile::Blake3,
    "blake3_many",
    &[Ptr, U32, U32, U32, Ptr, Ptr, Ptr],
);
/// attention.cu `qk_f32(q, k, s, n, ctx, nh, nkv, hd, pos, scale)`.
pub const QK_F32: Kernel = k(KernelFile::Attention, "qk_f32", QK);
/// attention.cu `qk_f16`.
pub const QK_F16: Kernel = k(KernelFile::Attention, "qk_f16", QK);
/// attention.cu `softmax_f32(s, p, ctx)`.
pub const SOFTMAX_F32: Kernel = k(KernelFile::Attention, "softmax_f32", &[Ptr, Ptr, U32]);
/// attention.cu `softmax_f16`.
pub const SOFTMAX_F16: Kernel = k(KernelFile::Attention, "softmax_f16", &[Ptr, Ptr, U32]);
/// attention.cu `pv_f32(p, v, o, n, ctx, nh, nkv, hd, pos)`.
pub const PV_F32: Kernel = k(KernelFile::Attention, "pv_f32", PV);
/// attention.cu `pv_f16`.
pub const PV_F16: Kernel = k(KernelFile::Attention, "pv_f16", PV);
/// attention.cu `attn_fused_f32(q, k, v, o, n, ctx, nh, nkv, hd, pos, scale, kv_block)`.
pub const FUSED_F32: Kernel = k(KernelFile::Attention, "attn_fused_f32", FUSED);
/// attention.cu `attn_fused_f16`.
pub const FUSED_F16: Kernel = k(KernelFile::Attention, "attn_fused_f16", FUSED);
/// attention.cu `attn_part_f32(q, k, v, part, n, ctx, h, hk, hd, pos, scale, kv_block, nkb)`: the split
/// fused route's per-key-block half.
pub const PART_F32: Kernel = k(KernelFile::Attention, "attn_part_f32", PART);
/// attention.cu `attn_part_f16`.
pub const PART_F16: Kernel = k(KernelFile::Attention, "attn_part_f16", PART);
/// attention.cu `attn_merge_f32(part, o, h, hd, pos, kv_block, nkb)`: the split fused route's merge.
pub const MERGE_F32: Kernel = k(KernelFile::Attention, "attn_merge_f32", MERGE);
/// attention.cu `attn_merge_f16`.
pub const MERGE_F16: Kernel = k(KernelFile::Attention, "attn_merge_f16", MERGE);
/// norm.cu `rmsnorm_f32(x, w, y, n, dim, eps)`.
pub const RMSNORM: Kernel = k(
    KernelFile::Norm,
    "rmsnorm_f32",
    &[Ptr, Ptr, Ptr, U32, U32, F32],
);
/// rope.cu `rope_f32(x, y, n, heads, hd, rd, pos, base)`.
pub const ROPE: Kernel = k(
    KernelFile::Rope,
    "rope_f32",
    &[Ptr, Ptr, U32, U32, U32, U32, U32, F64],
);
/// elementwise.cu `embed(ids, table, y, n, dim, fmt, rb)`.
pub const EMBED: Kernel = k(
    KernelFile::Elementwise,
    "embed",
    &[Ptr, Ptr, Ptr, U32, U32, U32, U32],
);
/// elementwise.cu `add_f32(a, b, y, count)`.
pub const ADD: Kernel = k(KernelFile::Elementwise, "add_f32", &[Ptr, Ptr, Ptr, U32]);
/// elementwise.cu `swiglu_f32(g, u, y, count)`.
pub const SWIGLU: Kernel = k(KernelFile::Elementwise, "swiglu_f32", &[Ptr, Ptr, Ptr, U32]);
/// elementwise.cu `argmax_f32(x, ids, n, cols)`.
pub const ARGMAX: Kernel = k(KernelFile::Elementwise, "argmax_f32", &[Ptr, Ptr, U32, U32]);

/// Every kernel.
pub const ALL_KERNELS: &[Kernel] = &[
    GEMV,
    GEMM_TILED,
    GEMM_INVARIANT,
    QUANTIZE_Q8_1,
    GEMV_Q8,
    MMA_X_F16,
    MMA_W_F16,
    GEMM_MMA,
    BLAKE3,
    QK_F32,
    QK_F16,
    SOFTMAX_F32,
    SOFTMAX_F16,
    PV_F32,
    PV_F16,
    FUSED_F32,
    FUSED_F16,
    PART_F32,
    PART_F16,
    MERGE_F32,
    MERGE_F16,
    RMSNORM,
    ROPE,
    EMBED,
    ADD,
    SWIGLU,
    ARGMAX,
];

/// Launch geometry shared with the kernels (each constant names its `#define`).
pub mod geom {
    /// matmul.cu MM_WPB: warps per block of gemv and gemm_invariant.
    pub const MM_WPB: u32 = 4;
    /// matmul.cu INV_ROWS: rows per warp of gemm_invariant.
    pub const INV_ROWS: u32 = 8;
    /// matmul.cu TILE: gemm_tiled output tile edge.
    pub const TILE: u32 = 16;
    /// attention.cu ATT_WPB: warps per block of qk.
    pub const ATT_WPB: u32 = 4;
    /// attention.cu PV_THREADS.
    pub const PV_THREADS: u32 = 128;
    /// attention.cu FUSED_THREADS.
    pub const FUSED_THREADS: u32 = 128;
    /// prelude.h GRETA_BLOCK: threads of the block-reduction kernels (softmax, rmsnorm, argmax).
    pub const BLOCK: u32 = 256;
    /// rope.cu ROPE_THREADS.
    pub const ROPE_THREADS: u32 = 128;
    /// elementwise.cu EW_THREADS.
    pub const EW_THREADS: u32 = 256;
    /// q8.cu Q8_WPB: outputs (32-lane groups) per block of gemv_q8.
    pub const Q8_WPB: u32 = 4;
    /// q8.cu Q8_QPB: activation blocks per block of quantize_q8_1.
    pub const Q8_QPB: u32 = 4;
    /// mma.cu MMA_BM: rows per block tile of gemm_mma.
    pub const MMA_BM: u32 = 128;
    /// mma.cu MMA_BN: outputs per block tile of gemm_mma.
    pub const MMA_BN: u32 = 128;
    /// mma.cu MMA_BK: K slice of gemm_mma (the f16 operands' rows are padded to a multiple of it).
    pub const MMA_BK: u32 = 32;
    /// mma.cu MMA_THREADS.
    pub const MMA_THREADS: u32 = 256;
    /// mma.cu MMA_CVT_THREADS: threads of the f16 conversion kernels.
    pub const MMA_CVT_THREADS: u32 = 256;
    /// blake3.cu B3_THREADS: chunks (threads) per block.
    pub const B3_THREADS: u32 = 64;
}

/// The `fmt` code kernels take for a weight stored as `dtype` (prelude.h GRETA_W_*), None for types that
/// are not weight formats.
pub fn weight_format(dtype: crate::launch::DType) -> Option<u32> {
    use crate::launch::DType;
    Some(match dtype {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::BF16 => 2,
        DType::Q8_0 => 3,
        DType::Q4_0 => 4,
        DType::Q4_1 => 5,
        DType::Q4K => 6,
        DType::Q6K => 7,
        DType::Q5_0 => 8,
        DType::Q5_1 => 9,
        DType::Q2K => 10,
        DType::Q3K => 11,
        DType::Q5K => 12,
        DType::IQ4NL => 13,
        DType::IQ4XS => 14,
        DType::F64 | DType::I32 => return None,
    })
}

/// (file, blake3 of the text the compiler sees) for every kernel file, for the tape header.
pub fn hashes() -> Vec<(String, String)> {
    KernelFile::ALL
        .iter()
        .map(|f| {
            (
                f.path().to_string(),
                blake3::hash(f.compiled_source().as_bytes())
                    .to_hex()
                    .to_string(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn define(text: &str, name: &str) -> u32 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("#define {name} ")))
            .expect(name);
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    }

    #[test]
    fn signatures_and_constants_mirror_the_sources() {
        for kern in ALL_KERNELS {
            let text = kern.file.text();
            let at = text
                .find(&format!("void {}(", kern.name))
                .unwrap_or_else(|| panic!("{} not found", kern.name));
            let params = &text[at..at + text[at..].find(')').unwrap()];
            let kinds: Vec<ArgKind> = params
                .split_once('(')
                .unwrap()
                .1
                .split(',')
                .map(|p| {
                    let p = p.trim();
                    if p.contains('*') {
                        Ptr
                    } else if p.starts_with("u32") {
                        U32
                    } else if p.starts_with("float") {
                        F32
                    } else if p.starts_with("double") {
                        F64
                    } else {
                        panic!("{}: parameter `{p}`", kern.name)
                    }
                })
                .collect();
            assert_eq!(kinds, kern.sig, "{}", kern.name);
        }
        let (mm, att) = (KernelFile::Matmul.text(), KernelFile::Attention.text());
        assert_eq!(define(mm, "MM_WPB"), geom::MM_WPB);
        assert_eq!(define(mm, "INV_ROWS"), geom::INV_ROWS);
        assert_eq!(define(mm, "TILE"), geom::TILE);
        assert_eq!(define(att, "ATT_WPB"), geom::ATT_WPB);
        assert_eq!(define(att, "PV_THREADS"), geom::PV_THREADS);
        assert_eq!(define(att, "FUSED_THREADS"), geom::FUSED_THREADS);
        assert_eq!(define(PRELUDE, "GRETA_BLOCK"), geom::BLOCK);
        assert_eq!(
            define(KernelFile::Rope.text(), "ROPE_THREADS"),
            geom::ROPE_THREADS
        );
        assert_eq!(
            define(KernelFile::Elementwise.text(), "EW_THREADS"),
            geom::EW_THREADS
        );
        let (q8, mma) = (KernelFile::Q8.text(), KernelFile::Mma.text());
        assert_eq!(define(q8, "Q8_WPB"), geom::Q8_WPB);
        assert_eq!(define(q8, "Q8_QPB"), geom::Q8_QPB);
        assert_eq!(define(mma, "MMA_BM"), geom::MMA_BM);
        assert_eq!(define(mma, "MMA_BN"), geom::MMA_BN);
        assert_eq!(define(mma, "MMA_THREADS"), geom::MMA_THREADS);
        assert_eq!(define(mma, "MMA_BK"), geom::MMA_BK);
        assert_eq!(define(mma, "MMA_CVT_THREADS"), geom::MMA_CVT_THREADS);
        assert_eq!(
            define(KernelFile::Blake3.text(), "B3_THREADS"),
            geom::B3_THREADS
        );
        assert_eq!(hashes().len(), KernelFile::ALL.len());
        // The format codes mirror prelude.h's GRETA_W_* defines.
        for (name, dtype) in [
            ("GRETA_W_F32", crate::launch::DType::F32),
            ("GRETA_W_F16", crate::launch::DType::F16),
            ("GRETA_W_BF16", crate::launch::DType::BF16),
            ("GRETA_W_Q8_0", crate::launch::DType::Q8_0),
            ("GRETA_W_Q4_0", crate::launch::DType::Q4_0),
            ("GRETA_W_Q4_1", crate::launch::DType::Q4_1),
            ("GRETA_W_Q4_K", crate::launch::DType::Q4K),
            ("GRETA_W_Q6_K", crate::launch::DType::Q6K),
            ("GRETA_W_Q5_0", crate::launch::DType::Q5_0),
            ("GRETA_W_Q5_1", crate::launch::DType::Q5_1),
            ("GRETA_W_Q2_K", crate::launch::DType::Q2K),
            ("GRETA_W_Q3_K", crate::launch::DType::Q3K),
            ("GRETA_W_Q5_K", crate::launch::DType::Q5K),
            ("GRETA_W_IQ4_NL", crate::launch::DType::IQ4NL),
            ("GRETA_W_IQ4_XS", crate::launch::DType::IQ4XS),
        ] {
            assert_eq!(Some(define(PRELUDE, name)), weight_format(dtype), "{name}");
        }
    }
}
