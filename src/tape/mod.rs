//! The tape: greta's append-only recording format.
