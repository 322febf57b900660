//! Launches recorded by another engine (open capture): greta cannot run the engine's kernel (that is
//! what `--kernels` plugins are for), so a foreign launch of a greta stage is replayed on the route greta's
//! own engine would have chosen for it, and judged by greta's f64 reference on the same inputs.

pub use crate::analysis::exec::greta_route;
use crate::launch::{Precision, Route, Variant};
use crate::tape::LaunchBegin;

/// True when the launch ran another engine's kernel.
pub fn is_foreign(b: &LaunchBegin) -> bool {
    b.route.variant == Variant::Engine
}

/// The route to replay `b` on when none is forced: the recorded one, or greta's f32 route for a
/// foreign launch.
pub fn replay_route(b: &LaunchBegin) -> Route {
    if is_foreign(b) {
        greta_route(b.stage, b.params.rows.max(1) as usize, Precision::F32)
    } else {
        b.route
    }
}
