//! The first differing element of a non-deterministic launch. Determinism runs keep only hashes; when two
//! runs differ at launch `seq`, both configurations run once more with [`KeepOutput`] holding that launch's
//! first output, and the two are compared element by element (index, both values). A difference that does
//! not come back on the rerun is reported as such.

use crate::analysis::{Compare, compare};
use crate::launch::{DType, LaunchInfo, LaunchObserver, ObserverError, Tensor};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// The kept output: dtype, shape, bytes.
pub type Kept = Rc<RefCell<Option<(DType, Vec<u64>, Vec<u8>)>>>;

/// Keeps output 0 of launch `seq`.
pub struct KeepOutput {
    /// The launch.
    pub seq: u64,
    /// Where its output goes.
    pub out: Kept,
}

impl LaunchObserver for KeepOutput {
    fn begin(&mut self, _: &LaunchInfo, _: &[&Tensor]) -> Result<(), ObserverError> {
        Ok(())
    }
    fn end(
        &mut self,
        info: &LaunchInfo,
        outputs: &[Tensor],
        _: Duration,
    ) -> Result<(), ObserverError> {
        if info.seq == self.seq {
            if let Some(t) = outputs.first() {
                let b = t.to_host_bytes()?.to_vec();
                let shape = t.shape.iter().map(|&d| d as u64).collect();
                *self.out.borrow_mut() = Some((t.dtype, shape, b));
            }
        }
        Ok(())
    }
}

/// Compares two kept outputs (None when either run did not reach the launch).
pub fn compare_kept(a: &Kept, b: &Kept) -> Option<Compare> {
    let (a, b) = (a.borrow(), b.borrow());
    let ((da, sa, ba), (db, _, bb)) = (a.as_ref()?, b.as_ref()?);
    Some(compare(*da, ba, *db, bb, sa))
}
