//! What the parts of recording cost on the device, measured one by one (issue 11's overhead targets):
//! device BLAKE3 throughput for the buffer mixes a run produces, and asynchronous device-to-host copies
//! into new and into reused host memory. Printed by the ignored GPU test `gpu_bench_recording_parts`
//! (tools/gpu-bench-8b runs it); every figure is a wall time around work that was waited for.
//!
//! Why: the whole-process overhead of `--capture hashes` and `--capture full` is the sum of these, paid
//! on the device's one stream or on the inference thread; measured apart they say which to make faster.

use super::HipBackend;
use super::ffi::{self, DevMem};
use crate::backend::BackendError;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

/// Buffers of `len` bytes (filled with a pattern) on the current device.
fn buffers(n: usize, len: usize) -> Result<Vec<Arc<DevMem>>, BackendError> {
    (0..n)
        .map(|i| {
            let bytes: Vec<u8> = (0..len).map(|j| (j * 31 + i * 7) as u8).collect();
            DevMem::upload(&bytes)
                .map(Arc::new)
                .map_err(super::device::dev_err)
        })
        .collect()
}

/// Seconds to digest `bufs` as batches (issued together, then all read): best and median of `reps`.
fn digest_secs(
    h: &Arc<super::digest::DeviceHasher>,
    bufs: &[Arc<DevMem>],
    reps: usize,
) -> Result<(f64, f64), BackendError> {
    let mut all = Vec::with_capacity(reps);
    for _ in 0..reps {
        ffi::synchronize().map_err(super::device::dev_err)?;
        let t = Instant::now();
        let pending = bufs
            .iter()
            .map(|b| h.digest(b))
            .collect::<Result<Vec<_>, String>>()
            .map_err(BackendError::Device)?;
        for p in pending {
            p.wait().map_err(BackendError::Device)?;
        }
        all.push(t.elapsed().as_secs_f64());
    }
    all.sort_by(f64::total_cmp);
    Ok((all[0], all[all.len() / 2]))
}

/// The measurements, as lines of text.
pub fn recording_parts(gpu: &HipBackend) -> Result<String, BackendError> {
    gpu.select()?;
    let mut s = String::new();
    let h = gpu
        .hasher
        .clone()
        .ok_or_else(|| BackendError::Device("no device hasher".into()))?;
    // Clocks up first: the device idles at low clocks between short bursts.
    let warm = buffers(1, 256 << 20)?;
    digest_secs(&h, &warm, 40)?;
    drop(warm);
    // (label, buffers, bytes each): an 8B prefill's largest activations, a layer's mix, decode-sized
    // batches, a large weight.
    let mixes: [(&str, usize, usize); 6] = [
        ("1 x 256 MiB", 1, 256 << 20),
        ("8 x 28 MiB (8B prefill FFN activations)", 8, 28 << 20),
        ("64 x 8 MiB (8B prefill d_model activations)", 64, 8 << 20),
        ("64 x 1.1 MiB (SmolLM2 prefill activations)", 64, 1152 << 10),
        ("64 x 16 KiB (8B decode activations)", 64, 16 << 10),
        ("64 x 2.3 KiB (SmolLM2 decode activations)", 64, 2304),
    ];
    for (label, n, len) in mixes {
        let bufs = buffers(n, len)?;
        let (best, median) = digest_secs(&h, &bufs, 15)?;
        let bytes = (n * len) as f64;
        let _ = writeln!(
            s,
            "device blake3 {label:<44} best {:9.1} us {:7.1} GB/s, median {:9.1} us",
            best * 1e6,
            bytes / best / 1e9,
            median * 1e6
        );
    }

    // Asynchronous device-to-host copies of 64 MiB: into new host memory, then into reused buffers.
    let bufs = buffers(4, 64 << 20)?;
    let copier = Arc::new(super::copy::Copier::new(gpu.ordinal));
    for round in 0..2 {
        ffi::synchronize().map_err(super::device::dev_err)?;
        let t = Instant::now();
        let pending = bufs
            .iter()
            .map(|b| copier.start(b))
            .collect::<Result<Vec<_>, String>>()
            .map_err(BackendError::Device)?;
        let started = t.elapsed().as_secs_f64();
        let mut got = Vec::new();
        for p in pending {
            got.push(p.wait().map_err(BackendError::Device)?);
        }
        let all = t.elapsed().as_secs_f64();
        for g in got {
            crate::launch::host_buffers::give(g);
        }
        let _ = writeln!(
            s,
            "async copies 4 x 64 MiB ({}): started in {:8.1} us, bytes on the host after {:8.1} us \
             ({:.1} GB/s)",
            if round == 0 {
                "into new host memory"
            } else {
                "into reused host buffers"
            },
            started * 1e6,
            all * 1e6,
            (4usize << 26) as f64 / all / 1e9
        );
    }
    Ok(s)
}
