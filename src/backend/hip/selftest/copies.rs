//! The self-test of asynchronous device-to-host copies
//! ([`DeviceBuffer::to_host_async`](crate::launch::DeviceBuffer::to_host_async), issue 11): a copy started
//! on the device's copy stream yields exactly the bytes a blocking copy reads,
//! - for buffers of odd sizes (1 byte, a page and 3, 16 MiB);
//! - for the output of a kernel queued just before the copy started (the copy must wait for it);
//! - with many copies outstanding at once while the tensors they copy are dropped (each copy must keep its
//!   buffer out of the device pool, or the next kernel's output would overwrite it first).

use super::Rng;
use crate::backend::Backend;
use crate::launch::{
    DeviceBuffer, Params, PendingBytes, Precision, Route, Stage, Tensor, TensorData, Variant,
};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// Bytes of the buffers of the size check.
const SIZES: [usize; 5] = [1, 2, 4096 + 3, (1 << 20) + 4, 16 << 20];
/// Launches in the chain whose copies are all outstanding at once.
const CHAIN: usize = 24;
/// Rows and width of each tensor of the chain (4 MiB of f32).
const CHAIN_SHAPE: [usize; 2] = [1024, 1024];

/// What the copy check found.
#[derive(Clone, Debug, PartialEq)]
pub struct CopyCheck {
    /// Copies whose bytes were right, of all tried.
    pub same: usize,
    /// Copies tried.
    pub tried: usize,
    /// Milliseconds the chain's launches and copy starts took on the host.
    pub start_ms: f64,
    /// Milliseconds from then until every chained copy had arrived.
    pub wait_ms: f64,
}

impl fmt::Display for CopyCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "async copies == blocking copies: {}/{} ({CHAIN} launches with their copies queued in \
             {:.2} ms; all bytes arrived {:.2} ms later)",
            self.same, self.tried, self.start_ms, self.wait_ms
        )
    }
}

/// A device buffer holding `bytes`, on the device (and with the copier) of `like`'s buffer. Any length,
/// where tensors come in whole elements only.
#[cfg(feature = "hip")]
fn buffer_like(like: &dyn DeviceBuffer, bytes: &[u8]) -> Option<Arc<dyn DeviceBuffer>> {
    let hb = like.as_any().downcast_ref::<super::super::HipBuffer>()?;
    super::super::ffi::set_device(hb.device).ok()?;
    let mem = super::super::ffi::DevMem::upload(bytes).ok()?;
    Some(Arc::new(super::super::HipBuffer {
        mem: Arc::new(mem),
        ..hb.clone()
    }))
}

#[cfg(not(feature = "hip"))]
fn buffer_like(_: &dyn DeviceBuffer, _: &[u8]) -> Option<Arc<dyn DeviceBuffer>> {
    None
}

/// The bytes of an asynchronous copy of `d`, started now; None when the backend does not copy
/// asynchronously.
fn start(d: &dyn DeviceBuffer) -> Option<Result<PendingBytes, String>> {
    d.to_host_async()
}

fn arrived(p: Option<Result<PendingBytes, String>>) -> Option<Vec<u8>> {
    p?.and_then(PendingBytes::wait).ok()
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Runs the check; None when the backend's tensors are not on a device that copies asynchronously.
pub fn async_copies(gpu: &dyn Backend) -> Option<CopyCheck> {
    let mut r = Rng(46);
    let probe = gpu
        .gather_rows(&[(&Tensor::f32(vec![1, 1], vec![0.5]), 0, 1)])
        .ok()?;
    let TensorData::Device(pd) = &probe.data else {
        return None;
    };
    start(pd.as_ref())?.ok()?;
    let (mut same, mut tried) = (0, 0);
    for n in SIZES {
        let bytes: Vec<u8> = (0..n).map(|_| (r.next().to_bits() >> 5) as u8).collect();
        tried += 1;
        let Some(d) = buffer_like(pd.as_ref(), &bytes) else {
            continue;
        };
        if arrived(start(d.as_ref())).as_ref() == Some(&bytes) && d.to_host().ok() == Some(bytes) {
            same += 1;
        }
    }

    // A chain y ← y + step on the device, each output's copy started right after its kernel was queued,
    // and the output dropped as soon as the next launch is queued: only the copy holds its buffer then.
    let [rows, width] = CHAIN_SHAPE;
    let x = r.vec(rows * width);
    let step = r.vec(rows * width);
    let on_device = |v: &[f32]| {
        gpu.gather_rows(&[(&Tensor::f32(CHAIN_SHAPE.to_vec(), v.to_vec()), 0, rows)])
            .ok()
    };
    let (mut y, step_d) = (on_device(&x)?, on_device(&step)?);
    let params = Params {
        rows: rows as u32,
        ..Params::default()
    };
    let route = Route::new(Variant::Direct, Precision::F32);
    let mut want = x;
    let mut pending = Vec::with_capacity(CHAIN);
    let t0 = Instant::now();
    for _ in 0..CHAIN {
        let out = gpu
            .execute(Stage::AttnResidual, route, &params, &[&y, &step_d])
            .ok()?
            .pop()?;
        let TensorData::Device(d) = &out.data else {
            return None;
        };
        pending.push(start(d.as_ref()));
        y = out;
    }
    let start_ms = t0.elapsed().as_secs_f64() * 1e3;
    drop(y);
    let t1 = Instant::now();
    let got: Vec<Option<Vec<u8>>> = pending.into_iter().map(arrived).collect();
    let wait_ms = t1.elapsed().as_secs_f64() * 1e3;
    for g in got {
        // One f32 addition per element: the device's residual add gives the host's bits.
        for (w, s) in want.iter_mut().zip(&step) {
            *w += s;
        }
        tried += 1;
        if g == Some(le_bytes(&want)) {
            same += 1;
        }
    }
    Some(CopyCheck {
        same,
        tried,
        start_ms,
        wait_ms,
    })
}
