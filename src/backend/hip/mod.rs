//! The HIP backend (feature `hip`).
