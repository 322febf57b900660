//! Weight matmuls on the three routes (kernels/matmul.cu documents the summation orders).

use super::{blocks, dims};
use crate::backend::BackendError;
use crate::backend::contract::{MatmulDims, matmul_dims};
use crate::backend::hip::device::{HipBackend, bad};
use crate::backend::hip::ffi::Arg;
use crate::backend::hip::source::{self, geom};
use crate::launch::{DType, Stage, Tensor, Variant};

/// x `[.., in]` (f32) times W `[out, in]` (any weight dtype, f32 on the device) → `[.., out]`.
pub fn matmul(
    b: &HipBackend,
    stage: Stage,
    variant: Variant,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    let MatmulDims { n, out, inn } = matmul_dims(stage, inputs)?;
    let (x, w) = (inputs[0], inputs[1]);
    let xd = b.input(stage, x, DType::F32)?;
    let wd = b.weight(stage, w)?;
    let y = b.alloc(n * out)?;
    let args = [
        Arg::Buf(&xd),
        Arg::Buf(&wd),
        Arg::Buf(&y),
        Arg::U32(n as u32),
        Arg::U32(inn as u32),
        Arg::U32(out as u32),
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
        _ => return Err(bad(stage, format!("{variant} is not a matmul route"))),
    }
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("x has a last dimension") = out;
    Ok(vec![b.tensor(y, DType::F32, shape)])
}
