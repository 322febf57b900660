//! Provenance: which build made a tape. Stored in the header (format version 3); older headers have none
//! and still read (as `provenance: None`; version 2's shape is frozen here as [`TapeHeaderV2`]).
//!
//! `diff` uses it to say when two tapes are really the same computation (same build, model, prompt,
//! routes, options) — only then do equal outputs merely show that the run is repeatable — and to show what
//! differs otherwise.

use super::record::{EngineInfo, ModelIdentity, Producer, RunInfo, TapeHeader};
use serde::{Deserialize, Serialize};

/// The build that recorded a tape.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Provenance {
    /// `git rev-parse HEAD` at build time, `-dirty` appended when tracked files had changes; None when
    /// built outside a git checkout or without git.
    pub git_commit: Option<String>,
    /// blake3 (hex) of the executable that recorded (`std::env::current_exe`); None when unreadable.
    pub binary_blake3: Option<String>,
    /// (source tree, blake3 hex) of the kernel sources compiled in: the CPU reference kernels and the
    /// GPU kernel sources, hashed at build time.
    pub source_hashes: Vec<(String, String)>,
}

impl Provenance {
    /// The provenance of the running build.
    pub fn current() -> Provenance {
        let binary_blake3 = std::env::current_exe()
            .ok()
            .and_then(|p| std::fs::File::open(p).ok())
            .and_then(|f| {
                let mut h = blake3::Hasher::new();
                h.update_reader(f).ok()?;
                Some(h.finalize().to_hex().to_string())
            });
        Provenance {
            git_commit: option_env!("GRETA_GIT_COMMIT").map(str::to_string),
            binary_blake3,
            source_hashes: env!("GRETA_SOURCE_HASHES")
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// What differs between two provenances, in words (empty when the same).
    pub fn differences(a: &Provenance, b: &Provenance) -> Vec<String> {
        let mut out = Vec::new();
        let o = |x: &Option<String>| x.clone().unwrap_or_else(|| "unknown".into());
        if a.git_commit != b.git_commit {
            out.push(format!(
                "git commit {} vs {}",
                o(&a.git_commit),
                o(&b.git_commit)
            ));
        }
        if a.binary_blake3 != b.binary_blake3 {
            let s = |x: &Option<String>| {
                x.as_deref()
                    .map_or("unknown".into(), |h| h[..h.len().min(16)].to_string())
            };
            out.push(format!(
                "greta binary blake3 {} vs {}",
                s(&a.binary_blake3),
                s(&b.binary_blake3)
            ));
        }
        if a.source_hashes != b.source_hashes {
            for (k, v) in &a.source_hashes {
                let w = b
                    .source_hashes
                    .iter()
                    .find(|(k2, _)| k2 == k)
                    .map(|(_, v)| v.as_str());
                if w != Some(v.as_str()) {
                    out.push(format!(
                        "{k} sources {} vs {}",
                        &v[..v.len().min(16)],
                        w.map_or("unknown".into(), |w| w[..w.len().min(16)].to_string())
                    ));
                }
            }
        }
        out
    }
}

/// The header as format version 2 wrote it (no provenance). Frozen: never change it.
#[derive(Deserialize)]
pub(crate) struct TapeHeaderV2 {
    greta_version: String,
    model: ModelIdentity,
    model_config_json: String,
    backend: String,
    device: String,
    routes: Vec<String>,
    threads: u32,
    prompt_tokens: Vec<u32>,
    kernel_hashes: Vec<(String, String)>,
    created_unix: u64,
    capture: String,
    options_json: String,
    engine: Option<EngineInfo>,
}

impl From<TapeHeaderV2> for TapeHeader {
    fn from(h: TapeHeaderV2) -> TapeHeader {
        // Version 2 had no provenance.
        let producer = Producer {
            greta_version: h.greta_version,
            backend: h.backend,
            device: h.device,
            kernel_hashes: h.kernel_hashes,
            engine: h.engine,
            provenance: None,
        };
        let run = RunInfo {
            prompt_tokens: h.prompt_tokens,
            routes: h.routes,
            threads: h.threads,
            capture: h.capture,
            options_json: h.options_json,
            created_unix: h.created_unix,
        };
        TapeHeader::new(h.model, h.model_config_json, producer, run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tape::record::decode_header;

    #[derive(Serialize)]
    struct V2<'a> {
        greta_version: &'a str,
        model: ModelIdentity,
        model_config_json: &'a str,
        backend: &'a str,
        device: &'a str,
        routes: Vec<String>,
        threads: u32,
        prompt_tokens: Vec<u32>,
        kernel_hashes: Vec<(String, String)>,
        created_unix: u64,
        capture: &'a str,
        options_json: &'a str,
        engine: Option<EngineInfo>,
    }

    #[test]
    fn version_2_headers_still_read_and_version_3_round_trips() {
        let v2 = super::super::record::encode(&V2 {
            greta_version: "0.1.0",
            model: ModelIdentity::default(),
            model_config_json: "{}",
            backend: "cpu",
            device: "cpu",
            routes: vec!["precision=f32".into()],
            threads: 2,
            prompt_tokens: vec![1, 2],
            kernel_hashes: vec![],
            created_unix: 5,
            capture: "full",
            options_json: "{}",
            engine: None,
        })
        .unwrap();
        let h = decode_header(&v2, 2).unwrap();
        assert_eq!((h.threads, h.provenance.clone()), (2, None));
        assert!(
            decode_header(&v2, 3).is_err(),
            "a v2 payload is not a v3 header"
        );
        let mut h2 = h;
        h2.provenance = Some(Provenance::current());
        let b = super::super::record::encode(&h2).unwrap();
        assert_eq!(decode_header(&b, 3).unwrap(), h2);
        let p = h2.provenance.unwrap();
        assert!(p.binary_blake3.is_some());
        assert_eq!(p.source_hashes.len(), 2);
        let mut q = p.clone();
        q.git_commit = Some("abc".into());
        let d = Provenance::differences(&p, &q);
        assert_eq!(d.len(), 1);
        assert!(d[0].starts_with("git commit"), "{d:?}");
    }
}
