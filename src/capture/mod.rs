//! Open capture: the front door through which another engine (C++/HIP, llama.cpp, PyTorch) writes a
//! greta tape of its own kernel launches.
//!
//! greta's own engine records through the launcher; a foreign engine records through a
//! [`CaptureRecorder`]. Both end in the same recorder worker ([`crate::record::Recorder`]): hashing,
//! chunking and compression run on its thread, not the caller's; the caller's thread only copies the
//! bytes it hands over (its buffers may change as soon as the call returns).
//!
//! A foreign launch uses greta's vocabulary where it can: the phase, the layer, and the stage when the
//! engine's name is one of greta's stages (`q_proj`, `attn_norm`, ...). Then greta's f64 reference can
//! judge it on the recorded inputs and `greta diff` aligns it with any other tape. A free-form stage name
//! is kept ([`Stage::Other`](crate::launch::Stage::Other) plus the name in
//! [`Foreign`](crate::launch::Foreign)): listed and diffed by hash, never run. The route is the engine's
//! own kernel name (greta's `Route` says [`Variant::Engine`](crate::launch::Variant::Engine)).
//!
//! Capture once: every output gets an id ([`CaptureRecorder::end`] returns them; the caller may choose
//! them). An input given as [`TensorIn::Id`] is "that earlier output, unchanged": it is recorded as a
//! reference and its bytes are never copied again. A weight given as [`TensorIn::Weight`] is read from the
//! GGUF file named in the header and referenced by its tensor name (the worker hashes it once).
//!
//! Crash forensics: [`CaptureRecorder::begin`] writes the launch's Begin record before the engine runs
//! its kernel and [`CaptureRecorder::end`] its End record; with [`Durability::EveryLaunch`] the Begin is
//! in the file before `begin` returns, so a process that dies inside the kernel leaves it named.
//!
//! ```
//! use greta::capture::{CaptureHeader, CaptureOptions, CaptureRecorder, LaunchDesc, TensorIn, TensorOut};
//! use greta::launch::{DType, Phase};
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("engine.tape");
//! let rec = CaptureRecorder::create(&path, CaptureHeader::new("toy", "0.1"), CaptureOptions::default()).unwrap();
//! let x: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
//! let w: Vec<u8> = [1.0f32; 4].iter().flat_map(|v| v.to_le_bytes()).collect();
//! let desc = LaunchDesc::new(Phase::Prefill, Some(0), "attn_norm", "toy_rmsnorm").param("eps", 1e-5);
//! let ids = rec.launch(
//!     &desc,
//!     vec![("x".into(), TensorIn::host(DType::F32, vec![1, 4], x.clone())),
//!          ("w".into(), TensorIn::host(DType::F32, vec![4], w))],
//!     vec![("out".into(), TensorOut::new(DType::F32, vec![1, 4], x))],
//! ).unwrap();
//! // The next launch reads that output unchanged: by id, no bytes.
//! let desc = LaunchDesc::new(Phase::Prefill, Some(0), "my_custom_op", "toy_kernel");
//! let out: Vec<u8> = [0.5f32; 4].iter().flat_map(|v| v.to_le_bytes()).collect();
//! rec.launch(&desc, vec![("x".into(), TensorIn::Id(ids[0]))],
//!            vec![("out".into(), TensorOut::new(DType::F32, vec![1, 4], out))]).unwrap();
//! let summary = rec.finish().unwrap();
//! assert_eq!(summary.launches, 2);
//! ```

mod error;
mod header;
mod launch;
mod recorder;

pub use crate::record::Durability;
pub use error::CaptureError;
pub use header::{CaptureHeader, ModelDesc, parse_description};
pub use launch::{LaunchDesc, TensorIn, TensorOut};
pub use recorder::{CaptureOptions, CaptureRecorder, FIRST_AUTO_ID};
