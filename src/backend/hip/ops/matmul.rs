//! Weight matmuls on the five routes (kernels/matmul.cu, q8.cu and mma.cu document the orders). The
//! weight stays in its GGUF format on the device; every kernel takes its format code and row bytes.

use super::{blocks, dims};
use crate::backend::BackendError;
use crate::backend::contract::{MatmulDims, matmul_dims};
use crate::backend::hip::device::{HipBackend, bad};
use crate::backend::hip::ffi::Arg;
use crate::backend::hip::source::{self, geom};
use crate::backend::hip::weights::DevWeight;
use crate::launch::{DType, Stage, Tensor, Variant};
use std::sync::Arc;

/// x `[.., in]` (f32) times W `[out, in]` (any weight format) → `[.., out]`.
pub fn matmul(
    b: &HipBackend,
    stage: Stage,
    variant: Variant,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    let MatmulDims { n, out, inn } = matmul_dims(stage, inputs)?;
    let (x, w) = (inputs[0], inputs[1]);
    let xd = b.input(stage, x, DType::F32)?;
    let wd = b.weight_blocks(stage, w)?;
    let y = b.alloc(n * out)?;
    let (fmt, rb) = (wd.format(), wd.row_bytes as u32);
    let args = [
        Arg::Buf(&xd),
        Arg::Buf(&wd.mem),
        Arg::Buf(&y),
        Arg::U32(n as u32),
        Arg::U32(inn as u32),
        Arg::U32(out as u32),
        Arg::U32(fmt),
        Arg::U32(rb),
    ];
    let warp_threads = geom::MM_WPB * b.warp();
    match variant {
        Variant::Gemv => b.run(
            source::GEMV,
            dims([blocks(out, geom::MM_WPB), n as u32, 1], warp_threads),
            &args,
        )?,
        Variant::GemmInvariant => b.run(
            source::GEMM_INVARIANT,
            dims(
                [blocks(out, geom::MM_WPB), blocks(n, geom::INV_ROWS), 1],
                warp_threads,
            ),
            &args,
        )?,
        Variant::GemmTiled => b.run(
            source::GEMM_TILED,
            dims(
                [blocks(out, geom::TILE), blocks(n, geom::TILE), 1],
                geom::TILE * geom::TILE,
            ),
            &args,
        )?,
        Variant::GemmMma => gemm_mma(b, &xd, &wd, &y, n, inn, out)?,
        Variant::GemvQ8 => gemv_q8(b, stage, (x.id, &xd), &wd, &y, n, inn, out)?,
        _ => return Err(bad(stage, format!("{variant} is not a matmul route"))),
    }
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("x has a last dimension") = out;
    Ok(vec![b.tensor(y, DType::F32, shape)])
}

/// `gemv_q8`: quantise x to Q8_1 blocks (one launch, skipped when the same x was just quantised for
/// another weight), then the integer-dot matmul (another).
#[allow(clippy::too_many_arguments)]
fn gemv_q8(
    b: &HipBackend,
    stage: Stage,
    (x_id, xd): (u64, &crate::backend::hip::ffi::DevMem),
    wd: &DevWeight,
    y: &crate::backend::hip::ffi::DevMem,
    n: usize,
    inn: usize,
    out: usize,
) -> Result<(), BackendError> {
    crate::backend::contract::q8_weight(stage, wd.dtype, inn)?;
    let cached = b
        .q8_last
        .lock()
        .expect("q8 cache poisoned")
        .as_ref()
        .filter(|(id, _)| *id == x_id)
        .map(|(_, q)| Arc::clone(q));
    let q = match cached {
        Some(q) => q,
        None => {
            let q = Arc::new(quantize_q8_1(b, xd, n, inn)?);
            *b.q8_last.lock().expect("q8 cache poisoned") = Some((x_id, Arc::clone(&q)));
            q
        }
    };
    let [qx, dx, sx] = &*q;
    b.run(
        source::GEMV_Q8,
        dims([blocks(out, geom::Q8_WPB), n as u32, 1], 32 * geom::Q8_WPB),
        &[
            Arg::Buf(qx),
            Arg::Buf(dx),
            Arg::Buf(sx),
            Arg::Buf(&wd.mem),
            Arg::Buf(y),
            Arg::U32(n as u32),
            Arg::U32(inn as u32),
            Arg::U32(out as u32),
            Arg::U32(wd.format()),
            Arg::U32(wd.row_bytes as u32),
        ],
    )
}

/// x `[n, inn]` as Q8_1 blocks: quants (bytes), scales and sums (f32 per block of 32).
fn quantize_q8_1(
    b: &HipBackend,
    xd: &crate::backend::hip::ffi::DevMem,
    n: usize,
    inn: usize,
) -> Result<[crate::backend::hip::ffi::DevMem; 3], BackendError> {
    let nb = inn / 32;
    // Quants as bytes, scales as f32: alloc() counts 4-byte elements.
    let qx = b.alloc((n * inn).div_ceil(4))?;
    let dx = b.alloc(n * nb)?;
    let sx = b.alloc(n * nb)?;
    b.run(
        source::QUANTIZE_Q8_1,
        dims([blocks(nb, geom::Q8_QPB), n as u32, 1], 32 * geom::Q8_QPB),
        &[
            Arg::Buf(xd),
            Arg::Buf(&qx),
            Arg::Buf(&dx),
            Arg::Buf(&sx),
            Arg::U32(n as u32),
            Arg::U32(inn as u32),
        ],
    )?;
    Ok([qx, dx, sx])
}

/// `gemm_mma`: x and W to zero-padded binary16 operands (two launches), then the matrix-core GEMM.
fn gemm_mma(
    b: &HipBackend,
    xd: &crate::backend::hip::ffi::DevMem,
    wd: &DevWeight,
    y: &crate::backend::hip::ffi::DevMem,
    n: usize,
    inn: usize,
    out: usize,
) -> Result<(), BackendError> {
    let up = |v: usize, m: u32| v.div_ceil(m as usize) * m as usize;
    let (np, op, kp) = (
        up(n, geom::MMA_BM),
        up(out, geom::MMA_BN),
        up(inn, geom::MMA_BK),
    );
    // binary16 operands; alloc() counts 4-byte elements.
    let xh = b.alloc((np * kp).div_ceil(2))?;
    let wh = b.alloc((op * kp).div_ceil(2))?;
    let cvt = |rows: usize| {
        dims(
            [rows as u32, blocks(kp, geom::MMA_CVT_THREADS), 1],
            geom::MMA_CVT_THREADS,
        )
    };
    b.run(
        source::MMA_X_F16,
        cvt(np),
        &[
            Arg::Buf(xd),
            Arg::Buf(&xh),
            Arg::U32(n as u32),
            Arg::U32(inn as u32),
            Arg::U32(kp as u32),
        ],
    )?;
    b.run(
        source::MMA_W_F16,
        cvt(op),
        &[
            Arg::Buf(&wd.mem),
            Arg::Buf(&wh),
            Arg::U32(out as u32),
            Arg::U32(inn as u32),
            Arg::U32(kp as u32),
            Arg::U32(wd.format()),
            Arg::U32(wd.row_bytes as u32),
        ],
    )?;
    b.run(
        source::GEMM_MMA,
        dims(
            [
                (op / geom::MMA_BN as usize) as u32,
                (np / geom::MMA_BM as usize) as u32,
                1,
            ],
            geom::MMA_THREADS,
        ),
        &[
            Arg::Buf(&xh),
            Arg::Buf(&wh),
            Arg::Buf(y),
            Arg::U32(n as u32),
            Arg::U32(out as u32),
            Arg::U32(kp as u32),
        ],
    )
}
