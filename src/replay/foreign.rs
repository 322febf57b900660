//! Launches recorded by another engine (open capture): greta cannot run the engine's kernel (that is
//! what `--kernels` plugins are for), so a foreign launch of a greta stage is replayed on the route greta's
//! own engine would have chosen for it, and judged by greta's f64 reference on the same inputs.

use crate::launch::{Precision, Route, RoutePolicy, Stage, Variant};
use crate::tape::LaunchBegin;

/// The route greta's default rule picks for `stage` over `rows` rows, at precision `p`. Attention stages
/// keep their own family member (`attn` is the fused route, `qk`/`softmax`/`pv` the manual one).
pub fn greta_route(stage: Stage, rows: usize, p: Precision) -> Route {
    let variant = match stage {
        Stage::Attn => Variant::Fused,
        Stage::Qk | Stage::Softmax | Stage::Pv => Variant::Manual,
        s => RoutePolicy::new(p).choose(s, rows).variant,
    };
    Route::new(variant, p)
}

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

/// The f64 reference route for `b`: its own variant at f64, or greta's for a foreign launch.
pub fn reference_route(b: &LaunchBegin) -> Route {
    let v = if is_foreign(b) {
        greta_route(b.stage, b.params.rows.max(1) as usize, Precision::F64).variant
    } else {
        b.route.variant
    };
    Route::new(v, Precision::F64)
}
