//! NumPy-style indexing: `x[:, 1:3]`, `x[..., -1]`, `x[::-1]`, `x[:, None]`, written
//! `x.slice(s![.., 1..3])`, `x.slice(s![..., -1])`, `x.slice(&[SliceArg::step(-1)])`,
//! `x.slice(s![.., SliceArg::NewAxis])`.

use crate::error::Error;
use crate::op::{AxisSlice, Op};
use crate::shape::Dim;
use crate::tensor::Tensor;
use std::ops::{Range, RangeFrom, RangeFull, RangeInclusive, RangeTo, RangeToInclusive};

/// One entry of an index expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceArg {
    /// A single index (negative counts from the end); the axis is removed.
    Index(i64),
    /// A range `start:stop:step`; the axis stays.
    Range(AxisSlice),
    /// A new axis of size 1 (NumPy's `None` / `np.newaxis`).
    NewAxis,
    /// As many full slices as needed (`...`).
    Ellipsis,
}

impl SliceArg {
    /// `start:stop:step` with optional bounds.
    pub fn range(start: Option<i64>, stop: Option<i64>, step: i64) -> SliceArg {
        SliceArg::Range(AxisSlice { start, stop, step })
    }

    /// `::step`, the whole axis with a step (`step(-1)` reverses).
    pub fn step(step: i64) -> SliceArg {
        SliceArg::range(None, None, step)
    }
}

impl From<i64> for SliceArg {
    fn from(i: i64) -> Self {
        SliceArg::Index(i)
    }
}
impl From<i32> for SliceArg {
    fn from(i: i32) -> Self {
        SliceArg::Index(i as i64)
    }
}
/// Indices and bounds held in `usize`, `isize` or `u32` variables (`s![..n]` with `n: usize`);
/// a value past `i64::MAX` stands for `i64::MAX` (past every end).
macro_rules! index_types {
    ($($t:ty),*) => {$(
        impl From<$t> for SliceArg {
            fn from(i: $t) -> Self {
                SliceArg::Index(i64::try_from(i).unwrap_or(i64::MAX))
            }
        }
        impl From<Range<$t>> for SliceArg {
            fn from(r: Range<$t>) -> Self {
                let b = |x: $t| i64::try_from(x).unwrap_or(i64::MAX);
                SliceArg::range(Some(b(r.start)), Some(b(r.end)), 1)
            }
        }
        impl From<RangeFrom<$t>> for SliceArg {
            fn from(r: RangeFrom<$t>) -> Self {
                SliceArg::range(Some(i64::try_from(r.start).unwrap_or(i64::MAX)), None, 1)
            }
        }
        impl From<RangeTo<$t>> for SliceArg {
            fn from(r: RangeTo<$t>) -> Self {
                SliceArg::range(None, Some(i64::try_from(r.end).unwrap_or(i64::MAX)), 1)
            }
        }
    )*};
}

index_types!(usize, isize, u32);

impl From<RangeFull> for SliceArg {
    fn from(_: RangeFull) -> Self {
        SliceArg::Range(AxisSlice::FULL)
    }
}
impl From<Range<i64>> for SliceArg {
    fn from(r: Range<i64>) -> Self {
        SliceArg::range(Some(r.start), Some(r.end), 1)
    }
}
impl From<Range<i32>> for SliceArg {
    fn from(r: Range<i32>) -> Self {
        SliceArg::range(Some(r.start as i64), Some(r.end as i64), 1)
    }
}
impl From<RangeFrom<i64>> for SliceArg {
    fn from(r: RangeFrom<i64>) -> Self {
        SliceArg::range(Some(r.start), None, 1)
    }
}
impl From<RangeFrom<i32>> for SliceArg {
    fn from(r: RangeFrom<i32>) -> Self {
        SliceArg::range(Some(r.start as i64), None, 1)
    }
}
impl From<RangeTo<i64>> for SliceArg {
    fn from(r: RangeTo<i64>) -> Self {
        SliceArg::range(None, Some(r.end), 1)
    }
}
impl From<RangeTo<i32>> for SliceArg {
    fn from(r: RangeTo<i32>) -> Self {
        SliceArg::range(None, Some(r.end as i64), 1)
    }
}
impl From<RangeInclusive<i32>> for SliceArg {
    fn from(r: RangeInclusive<i32>) -> Self {
        let end = *r.end() as i64;
        SliceArg::range(
            Some(*r.start() as i64),
            if end == -1 { None } else { Some(end + 1) },
            1,
        )
    }
}
impl From<RangeToInclusive<i32>> for SliceArg {
    fn from(r: RangeToInclusive<i32>) -> Self {
        let end = r.end as i64;
        SliceArg::range(None, if end == -1 { None } else { Some(end + 1) }, 1)
    }
}

/// Builds an index expression for `Tensor::slice`, NumPy's `x[...]` written with Rust ranges:
/// `s![.., 1..3]` is `x[:, 1:3]`, `s![..., ..2]` is `x[..., :2]` (`...` stands for as many whole
/// axes as needed, at most once), `s![.., SliceArg::NewAxis]` is `x[:, None]`. Every other
/// entry converts with `SliceArg::from`: an index, a range, or a `SliceArg`.
#[macro_export]
macro_rules! s {
    (@args [$($out:expr),*]) => {
        &[$($out),*][..]
    };
    (@args [$($out:expr),*] ... $(, $($rest:tt)*)?) => {
        $crate::s!(@args [$($out,)* $crate::SliceArg::Ellipsis] $($($rest)*)?)
    };
    (@args [$($out:expr),*] $e:expr $(, $($rest:tt)*)?) => {
        $crate::s!(@args [$($out,)* $crate::SliceArg::from($e)] $($($rest)*)?)
    };
    ($($t:tt)*) => {
        $crate::s!(@args [] $($t)*)
    };
}

/// `SliceArg::NewAxis` and `SliceArg::Ellipsis` convert to themselves (for `s!`).
impl From<&SliceArg> for SliceArg {
    fn from(a: &SliceArg) -> Self {
        *a
    }
}

impl Tensor {
    /// NumPy indexing with slices, indices, new axes and one ellipsis. Out-of-range indices and
    /// slices that select nothing are errors; ranges that run past an end are clamped, as in
    /// NumPy.
    pub fn slice(&self, args: &[SliceArg]) -> Tensor {
        if let Some(e) = self.error() {
            return Tensor::invalid(e.clone());
        }
        let shape = self.shape();
        let rank = shape.rank();
        let ellipses = args.iter().filter(|a| **a == SliceArg::Ellipsis).count();
        let consuming = args
            .iter()
            .filter(|a| matches!(a, SliceArg::Index(_) | SliceArg::Range(_)))
            .count();
        let bad = |detail: String| {
            Tensor::invalid(Error::IncompatibleShapes {
                op: "slice".into(),
                shapes: shape.to_string(),
                detail,
            })
        };
        if ellipses > 1 {
            return bad(format!(
                "an index may hold only one ellipsis (`...`), this one holds {ellipses}"
            ));
        }
        if consuming > rank {
            return bad(format!(
                "{consuming} indices given for a tensor of rank {rank}"
            ));
        }
        // Expand the ellipsis (or pad at the end) into full slices.
        let mut expanded: Vec<SliceArg> = Vec::with_capacity(rank + args.len());
        for a in args {
            if *a == SliceArg::Ellipsis {
                for _ in 0..rank - consuming {
                    expanded.push(SliceArg::Range(AxisSlice::FULL));
                }
            } else {
                expanded.push(*a);
            }
        }
        if ellipses == 0 {
            for _ in consuming..rank {
                expanded.push(SliceArg::Range(AxisSlice::FULL));
            }
        }
        let mut axes = Vec::with_capacity(rank);
        let mut squeeze = Vec::new();
        let mut new_axes = Vec::new();
        let mut out_pos = 0usize;
        for a in &expanded {
            match *a {
                SliceArg::Index(i) => {
                    let axis = axes.len();
                    if let Dim::Known(n) = shape.dims()[axis]
                        && (i >= n as i64 || i < -(n as i64))
                    {
                        return Tensor::invalid(Error::OutOfBounds {
                            op: "slice".into(),
                            detail: format!("index {i} is out of range"),
                            axis,
                            size: n,
                            shape: shape.to_string(),
                        });
                    }
                    let stop = if i == -1 {
                        None
                    } else {
                        Some(i.saturating_add(1))
                    };
                    axes.push(AxisSlice {
                        start: Some(i),
                        stop,
                        step: 1,
                    });
                    squeeze.push(axis);
                }
                SliceArg::Range(r) => {
                    axes.push(r);
                    out_pos += 1;
                }
                SliceArg::NewAxis => {
                    new_axes.push(out_pos);
                    out_pos += 1;
                }
                SliceArg::Ellipsis => {}
            }
        }
        let mut out = if axes.iter().all(|a| *a == AxisSlice::FULL) {
            self.clone()
        } else {
            Tensor::from_op(Op::Slice { axes }, &[self])
        };
        if !squeeze.is_empty() {
            out = Tensor::from_op(Op::Squeeze { axes: squeeze }, &[&out]);
        }
        for &p in &new_axes {
            out = Tensor::from_op(Op::ExpandDims { axis: p }, &[&out]);
        }
        out
    }

    /// `x[start:stop:step]` along one axis, other axes whole.
    pub fn slice_axis(
        &self,
        axis: isize,
        start: Option<i64>,
        stop: Option<i64>,
        step: i64,
    ) -> Tensor {
        let rank = self.rank() as isize;
        let a = if axis < 0 { axis + rank } else { axis };
        if a < 0 || a >= rank {
            return Tensor::invalid(
                self.error()
                    .cloned()
                    .unwrap_or_else(|| crate::infer::axis_error("slice", axis, &self.shape())),
            );
        }
        let mut args = vec![SliceArg::Range(AxisSlice::FULL); a as usize];
        args.push(SliceArg::range(start, stop, step));
        self.slice(&args)
    }
}
