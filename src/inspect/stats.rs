//! Summary statistics of a tensor's values, for `greta show`.

use serde::Serialize;

/// Statistics over the finite values, plus counts of the non-finite ones.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Stats {
    /// Elements.
    pub count: usize,
    /// Smallest finite value.
    pub min: f64,
    /// Largest finite value.
    pub max: f64,
    /// Mean of the finite values.
    pub mean: f64,
    /// Sum of |x| over the finite values.
    pub abs_sum: f64,
    /// NaNs.
    pub nan: usize,
    /// ±Inf.
    pub inf: usize,
}

/// Statistics of `v`.
pub fn stats(v: &[f64]) -> Stats {
    let mut s = Stats {
        count: v.len(),
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        ..Stats::default()
    };
    let mut sum = 0.0;
    let mut finite = 0usize;
    for &x in v {
        if x.is_nan() {
            s.nan += 1;
        } else if x.is_infinite() {
            s.inf += 1;
        } else {
            finite += 1;
            sum += x;
            s.abs_sum += x.abs();
            s.min = s.min.min(x);
            s.max = s.max.max(x);
        }
    }
    s.mean = if finite > 0 {
        sum / finite as f64
    } else {
        f64::NAN
    };
    if finite == 0 {
        s.min = f64::NAN;
        s.max = f64::NAN;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_non_finite_apart() {
        let s = stats(&[1.0, -3.0, f64::NAN, f64::NEG_INFINITY, 2.0]);
        assert_eq!((s.count, s.nan, s.inf), (5, 1, 1));
        assert_eq!((s.min, s.max, s.mean, s.abs_sum), (-3.0, 2.0, 0.0, 6.0));
    }
}
