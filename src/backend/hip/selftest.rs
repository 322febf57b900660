//! The GPU kernel self-test: every stage on every route of a backend against the CPU f32 reference on
//! the same random inputs, plus two determinism properties:
//! - repeat: the same launch run twice on the GPU gives the same bits;
//! - invariance: `gemm_invariant` over many rows gives, row for row, the bits of `gemv` on that row alone,
//!   and so does `gemm_mma` against itself on one row (it is batch-invariant by construction);
//! - weights in blocks: every matmul route and the embedding, run on a weight in its GGUF block format
//!   (every `DType::WEIGHT_TYPES` but F32), give the bits they give on the same weight dequantised to
//!   f32 on the host (the kernels dequantise with the host's formula);
//! - device hashing: BLAKE3 digests computed on the device equal the host's for buffers of many sizes
//!   (single chunk, chunk edges, odd tails, 16 MiB);
//! - asynchronous copies: bytes copied to the host on the copy stream equal a blocking copy's, for odd
//!   sizes, a kernel's output copied right after the launch, and many copies outstanding at once
//!   ([`copies`]).
//!
//! It is written against the [`Backend`] trait only, so it also runs (and is unit-tested) with the CPU
//! backend standing in for the GPU, where every f32 check is bit-exact.
//!
//! ```
//! use greta::backend::cpu::CpuBackend;
//! use greta::backend::hip::selftest;
//! let report = selftest::run(&CpuBackend::new(1));
//! assert!(report.checks.iter().filter(|c| c.route.precision.name() == "f32").all(|c| c.pass));
//! ```

use crate::backend::Backend;
use crate::backend::cpu::CpuBackend;
use crate::launch::{Bytes, DType, Origin, Params, Precision, Route, Stage, Tensor, Variant};
use std::fmt;
use std::sync::Arc;

pub mod copies;

/// Largest error allowed on f32 routes, relative to the largest magnitude of the reference output:
/// other summation orders and the device's `expf` (not correctly rounded) move the last bits only.
pub const GPU_VS_CPU_F32_REL_TOL: f64 = 1e-5;
/// The same for f16-accumulation routes, compared with the CPU f32 route (binary16 has 11 bits).
pub const GPU_F16_VS_CPU_F32_REL_TOL: f64 = 3e-2;

/// How a check is judged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Expect {
    /// Bit-identical to the CPU (data movement, one rounding per element in the same order, integers).
    Exact,
    /// Within a relative tolerance of the CPU f32 result.
    Close(f64),
}

/// One stage on one route.
#[derive(Clone, Debug)]
pub struct StageCheck {
    /// The stage.
    pub stage: Stage,
    /// The route run on the backend under test.
    pub route: Route,
    /// Rows in the launch.
    pub rows: u32,
    /// Largest distance in units in the last place (f32 outputs), or of the integer values (argmax).
    pub max_ulp: u64,
    /// Largest absolute difference.
    pub max_abs: f64,
    /// Largest magnitude of the reference output.
    pub scale: f64,
    /// Whether a second identical launch gave identical bits.
    pub repeat_bit_exact: bool,
    /// What was expected.
    pub expect: Expect,
    /// Expectation met, repeat bit-exact, no error.
    pub pass: bool,
    /// Why it could not run.
    pub error: Option<String>,
}

/// The whole self-test.
#[derive(Clone, Debug)]
pub struct SelftestReport {
    /// The backend's device description.
    pub device: String,
    /// Kernel file hashes of the backend.
    pub kernel_hashes: Vec<(String, String)>,
    /// Per stage and route.
    pub checks: Vec<StageCheck>,
    /// Rows of one `gemm_invariant` launch that were bit-identical to `gemv` on that row alone, of all.
    pub invariant_rows: (usize, usize),
    /// Rows of one `gemm_mma` launch that were bit-identical to `gemm_mma` on that row alone, of all.
    pub mma_invariant_rows: (usize, usize),
    /// Per (weight format, route): whether the route on the weight's blocks gave the bits it gives on the
    /// host-dequantised f32 weight (`embed` included as a route of its own), or why it could not run.
    pub block_weights: Vec<(DType, String, Result<bool, String>)>,
    /// Device BLAKE3 digests equal to the host's, of all sizes tried; None where the backend does not
    /// hash on the device (the CPU).
    pub device_hashes: Option<(usize, usize)>,
    /// The fused attention route run split (per key block, then merged) bit-identical to the same route in
    /// one launch, of all cases; None where the backend has no split (set by the HIP backend's
    /// [`selftest`](super::selftest), not by [`run`]).
    pub fused_split: Option<(usize, usize)>,
    /// Asynchronous device-to-host copies vs blocking ones; None where the backend does not copy
    /// asynchronously (the CPU).
    pub async_copies: Option<copies::CopyCheck>,
}

impl SelftestReport {
    /// Every check passed and `gemm_invariant` matched `gemv` on every row.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.pass)
            && self.invariant_rows.0 == self.invariant_rows.1
            && self.mma_invariant_rows.0 == self.mma_invariant_rows.1
            && self.block_weights.iter().all(|(_, _, r)| r == &Ok(true))
            && self.device_hashes.is_none_or(|(a, b)| a == b)
            && self.fused_split.is_none_or(|(a, b)| a == b)
            && self.async_copies.as_ref().is_none_or(|c| c.same == c.tried)
    }
}

impl fmt::Display for SelftestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "device: {}", self.device)?;
        for (file, hash) in &self.kernel_hashes {
            writeln!(f, "kernel {file} blake3 {}", &hash[..16.min(hash.len())])?;
        }
        writeln!(
            f,
            "{:<14} {:<20} {:>4} {:>10} {:>11} {:>9} {:>7} {:<14} result",
            "stage", "route", "rows", "max_ulp", "max_abs", "scale", "repeat", "expect"
        )?;
        for c in &self.checks {
            let expect = match c.expect {
                Expect::Exact => "exact".to_string(),
                Expect::Close(t) => format!("rel<={t:e}"),
            };
            let result = match &c.error {
                Some(e) => format!("ERROR {e}"),
                None if c.pass => "ok".into(),
                None => "FAIL".into(),
            };
            writeln!(
                f,
                "{:<14} {:<20} {:>4} {:>10} {:>11.3e} {:>9.3e} {:>7} {:<14} {result}",
                c.stage.name(),
                c.route.to_string(),
                c.rows,
                c.max_ulp,
                c.max_abs,
                c.scale,
                if c.repeat_bit_exact { "exact" } else { "DIFF" },
                expect
            )?;
        }
        writeln!(
            f,
            "gemm_invariant == gemv per row: {}/{} rows bit-identical",
            self.invariant_rows.0, self.invariant_rows.1
        )?;
        writeln!(
            f,
            "gemm_mma batch-invariant: {}/{} rows bit-identical to the row alone",
            self.mma_invariant_rows.0, self.mma_invariant_rows.1
        )?;
        for (dtype, route, r) in &self.block_weights {
            let r = match r {
                Ok(true) => "bit-identical".to_string(),
                Ok(false) => "DIFFERENT".to_string(),
                Err(e) => format!("ERROR {e}"),
            };
            writeln!(
                f,
                "weights in blocks: {dtype:<5} {route:<15} vs host-dequantised f32: {r}"
            )?;
        }
        match self.device_hashes {
            Some((a, b)) => writeln!(
                f,
                "device blake3 == host blake3: {a}/{b} (sizes as one batch, one by one, then 300 buffers reused)"
            )?,
            None => writeln!(f, "device blake3: not a device backend")?,
        }
        if let Some((a, b)) = self.fused_split {
            writeln!(
                f,
                "fused attention split == one launch: {a}/{b} cases bit-identical"
            )?;
        }
        match &self.async_copies {
            Some(c) => writeln!(f, "{c}")?,
            None => writeln!(f, "async copies: not a device backend")?,
        }
        write!(
            f,
            "selftest: {}",
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}

/// Deterministic inputs (xorshift64*), so every run tests the same values.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((r >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

fn weight(name: &str, shape: Vec<usize>, v: Vec<f32>) -> Tensor {
    Tensor::host(
        DType::F32,
        shape,
        Bytes::F32(Arc::new(v)),
        Origin::Weight(name.into()),
    )
}

/// One launch to compare.
struct Case {
    stage: Stage,
    variant: Variant,
    precision: Precision,
    params: Params,
    inputs: Vec<Tensor>,
    expect: Expect,
}

/// Geometry of the test: sizes chosen to leave tails everywhere (not multiples of 16, 32 or 64).
const DIM: usize = 200;
const OUT: usize = 300;
const MM_ROWS: usize = 19;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 40;
const ROPE_DIM: usize = 32;
const VOCAB: usize = 1000;
/// Inner dimension of the block-format cases: two Q4_K/Q6_K super-blocks.
const Q_IN: usize = 512;
/// The formats `gemv_q8` takes.
const Q8_TYPES: [DType; 5] = [
    DType::Q8_0,
    DType::Q4_0,
    DType::Q4_1,
    DType::Q4K,
    DType::Q6K,
];

/// A random weight `[rows, cols]` in `dtype`'s block format: random quants, scales in a sane range
/// (random f16 bits would be mostly huge or NaN).
fn block_weight(r: &mut Rng, name: &str, dtype: DType, rows: usize, cols: usize) -> Tensor {
    let rb = crate::model::quant::row_bytes(dtype, cols).expect("whole blocks");
    let mut b: Vec<u8> = (0..rows * rb)
        .map(|_| (r.next().to_bits() >> 7) as u8)
        .collect();
    let h = |r: &mut Rng, scale: f32| {
        half::f16::from_f32(r.next() * scale)
            .to_bits()
            .to_le_bytes()
    };
    match dtype {
        DType::F16 | DType::BF16 => {
            for c in b.chunks_exact_mut(2) {
                let v = r.next();
                let bits = if dtype == DType::F16 {
                    half::f16::from_f32(v).to_bits()
                } else {
                    half::bf16::from_f32(v).to_bits()
                };
                c.copy_from_slice(&bits.to_le_bytes());
            }
        }
        _ => {
            let (_, bb) = dtype.block();
            for blk in b.chunks_exact_mut(bb) {
                for &o in crate::model::quant::f16_fields(dtype) {
                    blk[o..o + 2].copy_from_slice(&h(r, 0.02));
                }
            }
        }
    }
    Tensor::host(
        dtype,
        vec![rows, cols],
        Bytes::Raw(Arc::new(b)),
        Origin::Weight(format!("{name}.{dtype}").into()),
    )
}

/// The same weight dequantised to f32 on the host.
fn dequantised(t: &Tensor) -> Tensor {
    let bytes = t.host_bytes().expect("host weight").as_slice();
    let v =
        crate::model::quant::dequantize_to_vec(t.dtype, bytes, t.numel()).expect("valid blocks");
    let name = format!("{}.f32", t.weight_name().unwrap_or("w"));
    weight(&name, t.shape.clone(), v)
}

fn attn_params(rows: usize, pos: usize) -> Params {
    Params {
        rows: rows as u32,
        pos: pos as u32,
        n_heads: HEADS as u32,
        n_kv_heads: KV_HEADS as u32,
        head_dim: HEAD_DIM as u32,
        rope_dim: ROPE_DIM as u32,
        rope_theta: 10000.0,
        eps: 1e-5,
        scale: 1.0 / (HEAD_DIM as f64).sqrt(),
        kv_block: 5,
    }
}

fn cases(cpu: &CpuBackend) -> Vec<Case> {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let close = Expect::Close(GPU_VS_CPU_F32_REL_TOL);
    let half = Expect::Close(GPU_F16_VS_CPU_F32_REL_TOL);
    let f32c = |stage, variant, params, inputs, expect| Case {
        stage,
        variant,
        precision: Precision::F32,
        params,
        inputs,
        expect,
    };
    let mut out = Vec::new();
    let n = 5;
    let p = attn_params(n, 7);
    let table = weight("selftest.token_embd", vec![VOCAB, DIM], r.vec(VOCAB * DIM));
    let ids = Tensor::i32(vec![n], vec![3, 999, 0, 17, 3]);
    out.push(f32c(
        Stage::Embed,
        Variant::Direct,
        p,
        vec![ids, table],
        Expect::Exact,
    ));
    let x = Tensor::f32(vec![n, DIM], r.vec(n * DIM));
    let nw = weight("selftest.attn_norm", vec![DIM], r.vec(DIM));
    out.push(f32c(
        Stage::AttnNorm,
        Variant::Direct,
        p,
        vec![x.clone(), nw],
        close,
    ));
    let mx = Tensor::f32(vec![MM_ROWS, DIM], r.vec(MM_ROWS * DIM));
    let w = weight("selftest.q", vec![OUT, DIM], r.vec(OUT * DIM));
    for v in [Variant::Gemv, Variant::GemmTiled, Variant::GemmInvariant] {
        let mp = Params {
            rows: MM_ROWS as u32,
            ..p
        };
        out.push(f32c(
            Stage::QProj,
            v,
            mp,
            vec![mx.clone(), w.clone()],
            close,
        ));
    }
    // The engine-style routes: gemm_mma on f32 weights (tails everywhere) and on Q4_K; gemv_q8 on every
    // block format it takes, bit-exact against the CPU's emulation.
    let mp = Params {
        rows: MM_ROWS as u32,
        ..p
    };
    out.push(f32c(
        Stage::QProj,
        Variant::GemmMma,
        mp,
        vec![mx.clone(), w.clone()],
        close,
    ));
    let qx = Tensor::f32(vec![MM_ROWS, Q_IN], r.vec(MM_ROWS * Q_IN));
    for dtype in Q8_TYPES {
        let wq = block_weight(&mut r, "selftest.blocks", dtype, OUT, Q_IN);
        for rows in [1, 3] {
            let x1 = Tensor::f32(vec![rows, Q_IN], r.vec(rows * Q_IN));
            out.push(f32c(
                Stage::QProj,
                Variant::GemvQ8,
                Params {
                    rows: rows as u32,
                    ..p
                },
                vec![x1, wq.clone()],
                Expect::Exact,
            ));
        }
        if dtype == DType::Q4K {
            out.push(f32c(
                Stage::QProj,
                Variant::GemmMma,
                mp,
                vec![qx.clone(), wq],
                close,
            ));
        }
    }
    let q = Tensor::f32(vec![n, HEADS * HEAD_DIM], r.vec(n * HEADS * HEAD_DIM));
    let k = Tensor::f32(vec![n, KV_HEADS * HEAD_DIM], r.vec(n * KV_HEADS * HEAD_DIM));
    out.push(f32c(
        Stage::RopeQ,
        Variant::Direct,
        p,
        vec![q.clone()],
        close,
    ));
    out.push(f32c(
        Stage::RopeK,
        Variant::Direct,
        p,
        vec![k.clone()],
        close,
    ));
    out.push(f32c(
        Stage::KvWrite,
        Variant::Direct,
        p,
        vec![k.clone(), k],
        Expect::Exact,
    ));
    let ctx = 7 + n;
    let kc = Tensor::f32(
        vec![ctx, KV_HEADS * HEAD_DIM],
        r.vec(ctx * KV_HEADS * HEAD_DIM),
    );
    let vc = Tensor::f32(
        vec![ctx, KV_HEADS * HEAD_DIM],
        r.vec(ctx * KV_HEADS * HEAD_DIM),
    );
    // Softmax and pv get the CPU's own upstream outputs, so each stage is tested in isolation.
    let f32r = Route::new(Variant::Manual, Precision::F32);
    let scores = cpu
        .execute(Stage::Qk, f32r, &p, &[&q, &kc])
        .map(|mut o| o.remove(0));
    let probs = scores
        .as_ref()
        .ok()
        .and_then(|s| cpu.execute(Stage::Softmax, f32r, &p, &[s]).ok())
        .map(|mut o| o.remove(0));
    for (prec, expect) in [(Precision::F32, close), (Precision::F16, half)] {
        let c = |stage, variant, params, inputs| Case {
            stage,
            variant,
            precision: prec,
            params,
            inputs,
            expect,
        };
        out.push(c(
            Stage::Qk,
            Variant::Manual,
            p,
            vec![q.clone(), kc.clone()],
        ));
        if let Ok(s) = &scores {
            out.push(c(Stage::Softmax, Variant::Manual, p, vec![s.clone()]));
        }
        if let Some(pr) = &probs {
            out.push(c(
                Stage::Pv,
                Variant::Manual,
                p,
                vec![pr.clone(), vc.clone()],
            ));
        }
        out.push(c(
            Stage::Attn,
            Variant::Fused,
            p,
            vec![q.clone(), kc.clone(), vc.clone()],
        ));
        // A decode-shaped launch: one row at the end of the context.
        let q1 = Tensor::f32(vec![1, HEADS * HEAD_DIM], r.vec(HEADS * HEAD_DIM));
        out.push(c(
            Stage::Attn,
            Variant::Fused,
            attn_params(1, ctx - 1),
            vec![q1, kc.clone(), vc.clone()],
        ));
    }
    let a = Tensor::f32(vec![n, DIM], r.vec(n * DIM));
    out.push(f32c(
        Stage::AttnResidual,
        Variant::Direct,
        p,
        vec![x.clone(), a],
        Expect::Exact,
    ));
    let (g, u) = (
        Tensor::f32(vec![n, OUT], r.vec(n * OUT)),
        Tensor::f32(vec![n, OUT], r.vec(n * OUT)),
    );
    out.push(f32c(Stage::Swiglu, Variant::Direct, p, vec![g, u], close));
    let mut logits = r.vec(3 * VOCAB);
    logits[VOCAB + 10] = 5.0; // a tie: the first index must win
    logits[VOCAB + 700] = 5.0;
    logits[2 * VOCAB + 999] = 7.0;
    out.push(f32c(
        Stage::Argmax,
        Variant::Direct,
        p,
        vec![Tensor::f32(vec![3, VOCAB], logits)],
        Expect::Exact,
    ));
    out
}

fn host_values(t: &Tensor) -> Result<Vec<f64>, String> {
    let b = t.to_host_bytes()?;
    Ok(match t.dtype {
        DType::I32 => b
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
            .collect(),
        DType::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
            .collect(),
        d => return Err(format!("unexpected output dtype {d}")),
    })
}

/// Distance of two f32 values in units in the last place (0 for equal values, including -inf, -0 vs 0).
pub fn ulp_distance(a: f32, b: f32) -> u64 {
    if a == b {
        return 0;
    }
    if a.is_nan() || b.is_nan() {
        return u64::MAX;
    }
    let ord = |x: f32| {
        let i = x.to_bits() as i32;
        if i < 0 {
            -((i & 0x7fff_ffff) as i64)
        } else {
            i as i64
        }
    };
    ord(a).abs_diff(ord(b))
}

fn bytes_of(outs: &[Tensor]) -> Result<Vec<Vec<u8>>, String> {
    outs.iter()
        .map(|t| t.to_host_bytes().map(|b| b.into_owned()))
        .collect()
}

fn check(gpu: &dyn Backend, cpu: &CpuBackend, case: &Case) -> StageCheck {
    let route = Route::new(case.variant, case.precision);
    let mut c = StageCheck {
        stage: case.stage,
        route,
        rows: case.params.rows,
        max_ulp: 0,
        max_abs: 0.0,
        scale: 0.0,
        repeat_bit_exact: false,
        expect: case.expect,
        pass: false,
        error: None,
    };
    let inputs: Vec<&Tensor> = case.inputs.iter().collect();
    let run = || {
        gpu.execute(case.stage, route, &case.params, &inputs)
            .map_err(|e| e.to_string())
    };
    let reference = cpu
        .execute(
            case.stage,
            Route::new(case.variant, Precision::F32),
            &case.params,
            &inputs,
        )
        .map_err(|e| format!("cpu reference: {e}"));
    let result = (|| -> Result<(), String> {
        let (first, second, reference) = (run()?, run()?, reference?);
        c.repeat_bit_exact = bytes_of(&first)? == bytes_of(&second)?;
        if first.len() != reference.len() {
            return Err(format!(
                "{} outputs, reference has {}",
                first.len(),
                reference.len()
            ));
        }
        for (g, r) in first.iter().zip(&reference) {
            if g.shape != r.shape || g.dtype != r.dtype {
                return Err(format!(
                    "output {:?} {}, reference {:?} {}",
                    g.shape, g.dtype, r.shape, r.dtype
                ));
            }
            let (gv, rv) = (host_values(g)?, host_values(r)?);
            for (&a, &b) in gv.iter().zip(&rv) {
                let ulp = if g.dtype == DType::F32 {
                    ulp_distance(a as f32, b as f32)
                } else {
                    (a - b).abs() as u64
                };
                c.max_ulp = c.max_ulp.max(ulp);
                if a != b {
                    c.max_abs = c.max_abs.max((a - b).abs());
                }
                if b.is_finite() {
                    c.scale = c.scale.max(b.abs());
                }
            }
        }
        Ok(())
    })();
    match result {
        Err(e) => c.error = Some(e),
        Ok(()) => {
            let within = match c.expect {
                Expect::Exact => c.max_ulp == 0,
                Expect::Close(tol) => {
                    c.max_ulp == 0 || c.max_abs <= tol * c.scale.max(f64::MIN_POSITIVE)
                }
            };
            c.pass = within && c.repeat_bit_exact;
        }
    }
    c
}

/// A failed check for each route the backend lists ([`Backend::routes`]) on a stage the self-test covers
/// but no case runs: a new route cannot pass the self-test untested. `f64` is the CPU reference's, not a
/// GPU route.
fn untested(gpu: &dyn Backend, cases: &[Case]) -> Vec<StageCheck> {
    let mut stages: Vec<Stage> = Vec::new();
    for c in cases {
        if !stages.contains(&c.stage) {
            stages.push(c.stage);
        }
    }
    let covered = |s: Stage, r: Route| {
        cases
            .iter()
            .any(|c| c.stage == s && c.variant == r.variant && c.precision == r.precision)
    };
    stages
        .into_iter()
        .flat_map(|s| gpu.routes(s).into_iter().map(move |r| (s, r)))
        .filter(|&(s, r)| r.precision != Precision::F64 && !covered(s, r))
        .map(|(stage, route)| StageCheck {
            stage,
            route,
            rows: 0,
            max_ulp: 0,
            max_abs: 0.0,
            scale: 0.0,
            repeat_bit_exact: false,
            expect: Expect::Exact,
            pass: false,
            error: Some("no self-test case for this route".into()),
        })
        .collect()
}

/// `variant` over many rows vs `one` on each row alone: how many rows are bit-identical.
fn row_invariance(gpu: &dyn Backend, variant: Variant, one: Variant) -> (usize, usize) {
    let mut r = Rng(42);
    let x = Tensor::f32(vec![MM_ROWS, DIM], r.vec(MM_ROWS * DIM));
    let w = weight("selftest.invariance", vec![OUT, DIM], r.vec(OUT * DIM));
    let f32r = |v| Route::new(v, Precision::F32);
    let p = Params {
        rows: MM_ROWS as u32,
        ..Params::default()
    };
    let Some(all) = gpu
        .execute(Stage::QProj, f32r(variant), &p, &[&x, &w])
        .ok()
        .and_then(|o| o[0].to_host_bytes().ok().map(|b| b.into_owned()))
    else {
        return (0, MM_ROWS);
    };
    let xs = x.as_f32().expect("host f32");
    let same = (0..MM_ROWS)
        .filter(|&i| {
            let xi = Tensor::f32(vec![1, DIM], xs[i * DIM..(i + 1) * DIM].to_vec());
            let p1 = Params { rows: 1, ..p };
            gpu.execute(Stage::QProj, f32r(one), &p1, &[&xi, &w])
                .ok()
                .and_then(|o| o[0].to_host_bytes().ok().map(|b| b.into_owned()))
                .is_some_and(|row| row[..] == all[i * OUT * 4..(i + 1) * OUT * 4])
        })
        .count();
    (same, MM_ROWS)
}

/// Every matmul route (and embed) on block-format weights vs on their host-dequantised f32 values.
fn block_weights(gpu: &dyn Backend) -> Vec<(DType, String, Result<bool, String>)> {
    let mut r = Rng(44);
    let rows = 5;
    let x = Tensor::f32(vec![rows, Q_IN], r.vec(rows * Q_IN));
    let ids = Tensor::i32(vec![4], vec![0, 69, 7, 0]);
    let run = |stage: Stage, v: Variant, inputs: &[&Tensor]| -> Result<Vec<u8>, String> {
        let p = Params {
            rows: inputs[0].rows() as u32,
            ..Params::default()
        };
        let o = gpu
            .execute(stage, Route::new(v, Precision::F32), &p, inputs)
            .map_err(|e| e.to_string())?;
        Ok(o[0].to_host_bytes()?.into_owned())
    };
    let mut out = Vec::new();
    // Every weight format but f32 itself.
    for &dtype in DType::WEIGHT_TYPES.iter().filter(|&&d| d != DType::F32) {
        let wq = block_weight(&mut r, "selftest.identity", dtype, 70, Q_IN);
        let wf = dequantised(&wq);
        for v in [
            Variant::Gemv,
            Variant::GemmTiled,
            Variant::GemmInvariant,
            Variant::GemmMma,
        ] {
            let same = run(Stage::QProj, v, &[&x, &wq])
                .and_then(|a| Ok(a == run(Stage::QProj, v, &[&x, &wf])?));
            out.push((dtype, v.name().to_string(), same));
        }
        let same = run(Stage::Embed, Variant::Direct, &[&ids, &wq])
            .and_then(|a| Ok(a == run(Stage::Embed, Variant::Direct, &[&ids, &wf])?));
        out.push((dtype, "embed".to_string(), same));
    }
    out
}

/// Device digests of buffers of many sizes vs the host's blake3; None when the backend's tensors are not
/// on a device that hashes.
fn device_hashes(gpu: &dyn Backend) -> Option<(usize, usize)> {
    let mut r = Rng(45);
    // (dtype, rows) of [rows, 1] tensors: 2-byte and 4-byte elements, one chunk and less, chunk edges
    // (1024 bytes), odd chunk counts, 1 MiB + 4 and 16 MiB + 2 bytes.
    let sizes: &[(DType, usize)] = &[
        (DType::F16, 1),
        (DType::F16, 31),
        (DType::F16, 32),
        (DType::F16, 33),
        (DType::F16, 511),
        (DType::F16, 513),
        (DType::F32, 256),
        (DType::F32, 257),
        (DType::F32, 512),
        (DType::F32, 768),
        (DType::F32, 1280 + 3),
        (DType::F32, 4096 * 7 + 1),
        (DType::F32, (1 << 18) + 1),
        (DType::F16, (1 << 23) + 1),
        // One block's worth of chunks (64), one more, two blocks, 64 blocks, 64 blocks and a partial one.
        (DType::F32, 1 << 14),
        (DType::F32, (1 << 14) + 256),
        (DType::F32, 1 << 15),
        (DType::F32, 1 << 20),
        (DType::F32, (1 << 20) + 300),
        // The merge above the blocks, B3_THREADS nodes a group: 64 groups of 64 blocks (256 MiB), and one
        // block more (a third level).
        (DType::F32, 1 << 26),
        (DType::F32, (1 << 26) + 7),
    ];
    // All digests issued before any is read, so they hash as one batch (kernels/blake3.cu
    // `blake3_many`); then once more one at a time (a batch of one each).
    let mut inputs = Vec::new();
    for &(dtype, rows) in sizes {
        let n = rows * if dtype == DType::F16 { 2 } else { 4 };
        let bytes: Vec<u8> = if n <= 16 << 20 {
            (0..n).map(|_| (r.next().to_bits() >> 5) as u8).collect()
        } else {
            // Large buffers: a 64-bit LCG, eight bytes a step (the per-byte generator takes seconds).
            let mut x = r.next().to_bits() as u64 | 1;
            (0..n.div_ceil(8))
                .flat_map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    x.to_le_bytes()
                })
                .take(n)
                .collect()
        };
        let host = Tensor::from_le_bytes(dtype, vec![rows, 1], bytes.clone(), Origin::Value);
        let dev = gpu.gather_rows(&[(&host, 0, rows)]).ok()?;
        inputs.push((dev, *blake3::hash(&bytes).as_bytes()));
    }
    let digest = |t: &Tensor| match &t.data {
        crate::launch::TensorData::Device(d) => d.digest(),
        crate::launch::TensorData::Host(_) => None,
    };
    let batch: Vec<_> = inputs
        .iter()
        .map(|(t, _)| digest(t))
        .collect::<Option<_>>()?;
    let mut tried = 0;
    let mut same = 0;
    for (p, (_, want)) in batch.into_iter().zip(&inputs) {
        tried += 1;
        same += usize::from(p.and_then(|p| p.wait()).ok() == Some(*want));
    }
    for (t, want) in &inputs {
        tried += 1;
        same += usize::from(digest(t)?.and_then(|p| p.wait()).ok() == Some(*want));
    }
    // Buffers go back to the pool once their batch is launched: 300 digests issued (more than a batch),
    // the tensors dropped, 300 new tensors of the same size uploaded into the reused buffers, and only
    // then the digests read: each must still be its own tensor's.
    let mut first = Vec::new();
    for i in 0..300usize {
        let bytes: Vec<u8> = (0..4096 + 12).map(|j| (i * 7 + j * 13) as u8).collect();
        let host = Tensor::from_le_bytes(DType::F32, vec![1027, 1], bytes.clone(), Origin::Value);
        let dev = gpu.gather_rows(&[(&host, 0, 1027)]).ok()?;
        first.push((digest(&dev)?, *blake3::hash(&bytes).as_bytes()));
    }
    let mut second = Vec::new();
    for i in 0..300usize {
        let bytes: Vec<u8> = (0..4096 + 12).map(|j| (i * 11 + j * 3 + 1) as u8).collect();
        let host = Tensor::from_le_bytes(DType::F32, vec![1027, 1], bytes, Origin::Value);
        second.push(gpu.gather_rows(&[(&host, 0, 1027)]).ok()?);
    }
    for (p, want) in first {
        tried += 1;
        same += usize::from(p.and_then(|p| p.wait()).ok() == Some(want));
    }
    drop(second);
    Some((same, tried))
}

/// Runs every check of the self-test on `gpu` (any backend).
pub fn run(gpu: &dyn Backend) -> SelftestReport {
    let cpu = CpuBackend::new(1);
    let cases = cases(&cpu);
    let mut checks: Vec<StageCheck> = cases.iter().map(|c| check(gpu, &cpu, c)).collect();
    checks.extend(untested(gpu, &cases));
    SelftestReport {
        device: gpu.device(),
        kernel_hashes: gpu.kernel_hashes(),
        checks,
        invariant_rows: row_invariance(gpu, Variant::GemmInvariant, Variant::Gemv),
        mma_invariant_rows: row_invariance(gpu, Variant::GemmMma, Variant::GemmMma),
        block_weights: block_weights(gpu),
        device_hashes: device_hashes(gpu),
        fused_split: None,
        async_copies: copies::async_copies(gpu),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_against_itself_is_exact_on_f32_and_refuses_f16() {
        let report = run(&CpuBackend::new(2));
        for c in &report.checks {
            if c.route.precision == Precision::F32 {
                assert!(c.pass && c.max_ulp == 0 && c.repeat_bit_exact, "{c:?}");
            } else {
                assert!(c.error.is_some(), "{c:?}");
            }
        }
        assert_eq!(report.invariant_rows, (MM_ROWS, MM_ROWS));
        assert_eq!(report.mma_invariant_rows, (MM_ROWS, MM_ROWS));
        // Every weight format but f32, five routes each (four matmuls and the embedding).
        assert_eq!(
            report.block_weights.len(),
            (DType::WEIGHT_TYPES.len() - 1) * 5
        );
        for (d, v, r) in &report.block_weights {
            assert_eq!(r, &Ok(true), "{d} {v}");
        }
        assert_eq!(report.device_hashes, None);
        assert_eq!(report.async_copies, None);
        assert!(report.to_string().contains("q_proj"));
    }

    #[test]
    fn cases_run_every_gpu_route_of_every_family() {
        let cases = cases(&CpuBackend::new(1));
        for &v in Variant::ALL {
            assert!(cases.iter().any(|c| c.variant == v), "no case for {v}");
        }
        for c in &cases {
            let r = Route::new(c.variant, c.precision);
            assert!(
                super::super::routes(c.stage).contains(&r),
                "{} {r} is no GPU route",
                c.stage
            );
        }
        // A GPU route on a tested stage without a case is reported as a failed check.
        struct Gpu;
        impl Backend for Gpu {
            fn name(&self) -> &'static str {
                "hip"
            }
            fn device(&self) -> String {
                "routes only".into()
            }
            fn routes(&self, stage: Stage) -> Vec<Route> {
                super::super::routes(stage)
            }
            fn execute(
                &self,
                stage: Stage,
                route: Route,
                _: &Params,
                _: &[&Tensor],
            ) -> Result<Vec<Tensor>, crate::backend::BackendError> {
                Err(crate::backend::BackendError::unsupported(
                    self, stage, route,
                ))
            }
        }
        assert!(untested(&Gpu, &cases).is_empty());
        let fewer: Vec<Case> = cases
            .into_iter()
            .filter(|c| !(c.variant == Variant::Fused && c.precision == Precision::F16))
            .collect();
        let missing = untested(&Gpu, &fewer);
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].route, Route::new(Variant::Fused, Precision::F16));
        assert!(!missing[0].pass);
    }

    #[test]
    fn ulp_distance_counts_representable_steps() {
        assert_eq!(ulp_distance(1.0, 1.0), 0);
        assert_eq!(ulp_distance(1.0, f32::from_bits(1.0f32.to_bits() + 3)), 3);
        assert_eq!(ulp_distance(-0.0, 0.0), 0);
        assert_eq!(ulp_distance(f32::NEG_INFINITY, f32::NEG_INFINITY), 0);
        assert_eq!(ulp_distance(-f32::from_bits(1), f32::from_bits(1)), 2);
        assert_eq!(ulp_distance(f32::NAN, 1.0), u64::MAX);
    }
}
