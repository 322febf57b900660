//! The launcher: the one call every op goes through.

use super::{Backend, BackendError, Params, Phase, Route, RoutePolicy, Stage, Tensor};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything about a launch except its tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct LaunchInfo {
    /// Launch number in the run, from 0.
    pub seq: u64,
    /// Prefill or decode step.
    pub phase: Phase,
    /// The stage.
    pub stage: Stage,
    /// Layer index, None for global stages.
    pub layer: Option<u32>,
    /// The route that runs (and ran) it.
    pub route: Route,
    /// Backend name (`cpu`, `hip`).
    pub backend: String,
    /// Scalar parameters.
    pub params: Params,
    /// For a launch recorded by another engine (open capture): its names and roles. None for greta's own.
    pub foreign: Option<std::sync::Arc<super::ForeignLaunch>>,
}

/// Why an observer stopped the run: the observer's own typed error, boxed. launch/ is the lowest layer
/// and cannot name the recorder's `record::RecordError`; the recorder returns that, and a caller who
/// needs to match on it downcasts (`error.downcast_ref::<RecordError>()`). A plain message converts
/// with `.into()`.
pub type ObserverError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Sees every launch: its inputs before the kernel runs and its outputs after. The recorder is one.
pub trait LaunchObserver {
    /// Called before the kernel runs. An error aborts the run (nothing is computed unseen).
    fn begin(&mut self, info: &LaunchInfo, inputs: &[&Tensor]) -> Result<(), ObserverError>;
    /// Called after the kernel ran, with its outputs and wall time.
    fn end(
        &mut self,
        info: &LaunchInfo,
        outputs: &[Tensor],
        duration: Duration,
    ) -> Result<(), ObserverError>;
    /// Called once when the run is over (flush, write the footer).
    fn finish(&mut self) -> Result<(), ObserverError> {
        Ok(())
    }
}

/// A launch failed.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The backend could not run the kernel.
    #[error("launch {seq} ({phase} layer {layer:?} {stage}): {source}")]
    Backend {
        /// Launch number.
        seq: u64,
        /// Phase.
        phase: Phase,
        /// Stage.
        stage: Stage,
        /// Layer.
        layer: Option<u32>,
        /// The cause.
        source: BackendError,
    },
    /// An observer (the recorder) failed.
    #[error("recording launch {seq}: {error}")]
    Observer {
        /// Launch number.
        seq: u64,
        /// What went wrong (the recorder's is a `record::RecordError`). In the message, not chained as
        /// `source()`, so `{e:#}` prints it once.
        error: ObserverError,
    },
}

/// A hook that may change a launch's outputs after the kernel ran (fault injection). It runs before the
/// observers, so what is recorded is what flows downstream.
pub type OutputHook = Box<dyn FnMut(&LaunchInfo, &mut Vec<Tensor>)>;

/// Runs launches on a backend, picking routes by the policy and telling observers.
pub struct Launcher {
    backend: Arc<dyn Backend>,
    /// The route rule in force.
    pub policy: RoutePolicy,
    observers: Vec<Box<dyn LaunchObserver>>,
    /// `GRETA_PROFILE`: per-stage times, and the observers' own cost.
    profile: Option<super::profile::Profile>,
    hooks: Vec<OutputHook>,
    seq: u64,
    phase: Phase,
    crash_at: Option<u64>,
}

impl Launcher {
    /// A launcher on `backend` with `policy`.
    pub fn new(backend: Arc<dyn Backend>, policy: RoutePolicy) -> Launcher {
        // GRETA_DEBUG_CRASH_AT_SEQ=N aborts the process inside launch N, after its Begin was recorded: a
        // stand-in for a kernel that takes the process down, to test crash forensics. Never set it otherwise.
        let crash_at = std::env::var("GRETA_DEBUG_CRASH_AT_SEQ")
            .ok()
            .and_then(|v| v.parse().ok());
        Launcher {
            backend,
            policy,
            observers: Vec::new(),
            profile: super::profile::Profile::requested().then(super::profile::Profile::default),
            hooks: Vec::new(),
            seq: 0,
            phase: Phase::Prefill,
            crash_at,
        }
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Adds an observer (e.g. the recorder).
    pub fn observe(&mut self, obs: Box<dyn LaunchObserver>) {
        self.observers.push(obs);
    }

    /// Adds an output hook (e.g. fault injection).
    pub fn hook(&mut self, hook: OutputHook) {
        self.hooks.push(hook);
    }

    /// Sets the phase of the launches that follow.
    pub fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Launches issued so far.
    pub fn launches(&self) -> u64 {
        self.seq
    }

    /// Picks the route for `stage` over `params.rows` rows by the policy, runs it, and returns its outputs.
    pub fn launch(
        &mut self,
        stage: Stage,
        layer: Option<u32>,
        inputs: &[&Tensor],
        params: Params,
    ) -> Result<Vec<Tensor>, LaunchError> {
        let preferred = self.backend.preferred(stage, inputs);
        let route = self
            .policy
            .choose_with(stage, params.rows as usize, preferred);
        self.launch_on(stage, layer, route, inputs, params)
    }

    /// Runs `stage` on an explicit `route`: `launch(stage, layer, route, inputs, outputs, params)` of DESIGN.md,
    /// with outputs returned.
    pub fn launch_on(
        &mut self,
        stage: Stage,
        layer: Option<u32>,
        route: Route,
        inputs: &[&Tensor],
        params: Params,
    ) -> Result<Vec<Tensor>, LaunchError> {
        let info = LaunchInfo {
            seq: self.seq,
            phase: self.phase,
            stage,
            layer,
            route,
            backend: self.backend.name().to_string(),
            params,
            foreign: None,
        };
        self.seq += 1;
        let t_obs = Instant::now();
        for o in &mut self.observers {
            o.begin(&info, inputs)
                .map_err(|error| LaunchError::Observer {
                    seq: info.seq,
                    error,
                })?;
        }
        let mut observed = t_obs.elapsed();
        if self.crash_at == Some(info.seq) {
            std::process::abort();
        }
        let t0 = Instant::now();
        let mut outputs = self
            .backend
            .execute(stage, route, &params, inputs)
            .map_err(|source| LaunchError::Backend {
                seq: info.seq,
                phase: info.phase,
                stage,
                layer,
                source,
            })?;
        let dt = t0.elapsed();
        for h in &mut self.hooks {
            h(&info, &mut outputs);
        }
        let t_obs = Instant::now();
        for o in &mut self.observers {
            o.end(&info, &outputs, dt)
                .map_err(|error| LaunchError::Observer {
                    seq: info.seq,
                    error,
                })?;
        }
        observed += t_obs.elapsed();
        if let Some(p) = &mut self.profile {
            p.launch(&info, dt, observed);
        }
        Ok(outputs)
    }

    /// Tells observers the run is over.
    pub fn finish(&mut self) -> Result<(), LaunchError> {
        let t = Instant::now();
        for o in &mut self.observers {
            o.finish().map_err(|error| LaunchError::Observer {
                seq: self.seq,
                error,
            })?;
        }
        if let Some(p) = self.profile.take() {
            eprint!("{}", p.report(t.elapsed()));
        }
        Ok(())
    }
}
