//! Ops for sequence models: `shape` as run-time values and `reshape` taking them,
//! `full_like`/`ones_like`/`zeros_like`, `arange`, `repeat`, `tile`, `triu`/`tril`. All are
//! compositions of the primitive ops (constants, `where`, `cumsum`, views), so both backends
//! run and fuse them. A dimension unknown when the graph is built (a sequence length from
//! `Input(shape=(None, d))`) becomes concrete when the program is specialised for the inputs'
//! shapes; these ops keep it symbolic until then.

use super::axes::Axes;
use super::slicing::SliceArg;
use crate::dtype::DType;
use crate::error::Error;
use crate::host::HostTensor;
use crate::infer::normalize_axis;
use crate::op::{AxisSlice, Op};
use crate::shape::Dim;
use crate::tensor::Tensor;

/// One entry of `keras.ops.shape(x)`: a size known when the graph is built, the run-time size
/// of a tensor's axis, or (in a reshape target) "whatever is left" (`-1`).
#[derive(Clone, Debug)]
pub enum Size {
    /// A size known now.
    Known(usize),
    /// The size of `axis` of a tensor, known when the model runs.
    Of(Tensor, usize),
    /// `-1` in a reshape target.
    Infer,
}

impl From<usize> for Size {
    fn from(n: usize) -> Size {
        Size::Known(n)
    }
}

impl Size {
    /// The size, if known when the graph is built.
    pub fn known(&self) -> Option<usize> {
        match self {
            Size::Known(n) => Some(*n),
            Size::Of(t, a) => t.shape().dims().get(*a).and_then(|d| d.known()),
            Size::Infer => None,
        }
    }

    /// The size as a rank-0 tensor of `dtype` (for arithmetic such as `1 / sqrt(d)`).
    pub fn to_tensor(&self, dtype: DType) -> Tensor {
        if let Some(n) = self.known() {
            return Tensor::scalar_of(n as f64, dtype);
        }
        match self {
            Size::Of(..) => Tensor::arange_size(self, dtype)
                .full_like(1.0, None)
                .sum(Axes::All),
            _ => Tensor::invalid(Error::Model {
                detail: "-1 (Size::Infer) is not a size".into(),
            }),
        }
    }
}

fn invalid_for(x: &Tensor, op: &str, detail: String) -> Tensor {
    Tensor::invalid(x.error().cloned().unwrap_or(Error::IncompatibleShapes {
        op: op.into(),
        shapes: x.shape().to_string(),
        detail,
    }))
}

/// A bool constant `true` of `shape`, for broadcasting a tensor through `where`.
fn true_of(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    match HostTensor::new(shape, vec![true; n]) {
        Ok(h) => Tensor::constant(h),
        Err(e) => Tensor::invalid(e),
    }
}

impl Tensor {
    /// `keras.ops.shape(x)`: each dimension, known now or the run-time size of that axis.
    pub fn shape_of(&self) -> Vec<Size> {
        self.shape()
            .dims()
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Dim::Known(n) => Size::Known(*n),
                Dim::Dynamic => Size::Of(self.clone(), i),
            })
            .collect()
    }

    /// The size of one axis (negative counts from the end), as `keras.ops.shape(x)[axis]`.
    pub fn size_of(&self, axis: isize) -> Size {
        match normalize_axis("shape", axis, &self.shape()) {
            Ok(a) => self.shape_of().swap_remove(a),
            Err(_) => Size::Of(self.clone(), usize::MAX),
        }
    }

    /// `reshape` with run-time dimensions: each entry a known size, the size of one of this
    /// tensor's axes (from `shape_of`), or `Size::Infer` (`-1`, at most one). A run-time size
    /// of another tensor resolves to a known size when it is one; otherwise it must be the only
    /// unknown entry and is inferred from the element count (as `-1`).
    pub fn reshape_dims(&self, dims: &[Size]) -> Tensor {
        let mut target = Vec::with_capacity(dims.len());
        let mut foreign = Vec::new();
        for (i, d) in dims.iter().enumerate() {
            match d {
                Size::Infer => target.push(-1),
                Size::Known(n) => target.push(*n as i64),
                Size::Of(t, a) => match t.shape().dims().get(*a) {
                    Some(Dim::Known(n)) => target.push(*n as i64),
                    Some(Dim::Dynamic) if t.id() == self.id() => target.push(-2 - *a as i64),
                    Some(Dim::Dynamic) => {
                        foreign.push(i);
                        target.push(-1);
                    }
                    None => {
                        return invalid_for(
                            self,
                            "reshape",
                            format!(
                                "dimension {i} refers to axis {a} of a tensor of shape {}",
                                t.shape()
                            ),
                        );
                    }
                },
            }
        }
        if !foreign.is_empty() && target.iter().filter(|&&t| t == -1).count() > 1 {
            return invalid_for(
                self,
                "reshape",
                format!(
                    "dimensions {foreign:?} are run-time sizes of other tensors; only one unknown \
                     entry can be inferred (use this tensor's own sizes from shape_of, or -1)"
                ),
            );
        }
        self.reshape(&target)
    }

    /// `keras.ops.full_like(x, value, dtype)`: a tensor of `x`'s shape (run-time dims
    /// included) filled with `value`, of `dtype` (`x`'s when `None`).
    pub fn full_like(&self, value: f64, dtype: Option<DType>) -> Tensor {
        let dtype = dtype.unwrap_or(self.dtype());
        let fill = Tensor::scalar_of(value, dtype);
        Tensor::from_op(
            Op::Where,
            &[
                &Tensor::scalar_of(1.0, DType::Bool),
                &fill,
                &self.cast(dtype),
            ],
        )
    }

    /// `keras.ops.ones_like(x)`.
    pub fn ones_like(&self) -> Tensor {
        self.full_like(1.0, None)
    }

    /// `keras.ops.zeros_like(x)`.
    pub fn zeros_like(&self) -> Tensor {
        self.full_like(0.0, None)
    }

    /// `keras.ops.arange(start, stop, step, dtype)`: `start, start + step, ...` below `stop`
    /// (above it for a negative step), as a constant. An empty range or a step of 0 is an
    /// error.
    pub fn arange(start: f64, stop: f64, step: f64, dtype: DType) -> Tensor {
        let bad = |detail: String| {
            Tensor::invalid(Error::Model {
                detail: format!("arange({start}, {stop}, {step}): {detail}"),
            })
        };
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !stop.is_finite() {
            return bad("the step must be finite and not 0, the bounds finite".into());
        }
        let n = ((stop - start) / step).ceil();
        if n < 1.0 || n > crate::host::MAX_ELEMENTS as f64 {
            return bad(format!("{n} elements (at least 1 needed)"));
        }
        let n = n as usize;
        let values = (0..n).map(|i| start + i as f64 * step);
        let host = match dtype {
            DType::F32 => HostTensor::new(&[n], values.map(|v| v as f32).collect()),
            DType::I32 => HostTensor::new(&[n], values.map(|v| v as i32).collect()),
            DType::U32 => HostTensor::new(&[n], values.map(|v| v as u32).collect()),
            DType::Bool => HostTensor::new(&[n], values.map(|v| v != 0.0).collect()),
        };
        match host {
            Ok(h) => Tensor::constant(h),
            Err(e) => Tensor::invalid(e),
        }
    }

    /// `keras.ops.arange(n)` for a size known now or only at run time: `0, 1, ..., n - 1` of
    /// `dtype` (float32 or an integer type), shape `(n,)`.
    pub fn arange_size(size: &Size, dtype: DType) -> Tensor {
        match size {
            Size::Known(n) => Tensor::arange(0.0, *n as f64, 1.0, dtype),
            Size::Infer => Tensor::invalid(Error::Model {
                detail: "arange: -1 (Size::Infer) is not a size".into(),
            }),
            Size::Of(t, a) => {
                let rank = t.rank();
                if *a >= rank {
                    return invalid_for(t, "arange", format!("the tensor has no axis {a}"));
                }
                if let Some(n) = size.known() {
                    return Tensor::arange(0.0, n as f64, 1.0, dtype);
                }
                if dtype == DType::Bool {
                    return invalid_for(t, "arange", "a bool range is not a range".into());
                }
                // One line of `t` along the axis, its values replaced by ones, summed up.
                let args: Vec<SliceArg> = (0..rank)
                    .map(|i| {
                        if i == *a {
                            SliceArg::Range(AxisSlice::FULL)
                        } else {
                            SliceArg::range(Some(0), Some(1), 1)
                        }
                    })
                    .collect();
                let line = t.slice(&args);
                let line = line.reshape_dims(&[Size::Of(line.clone(), *a)]);
                line.full_like(1.0, Some(dtype))
                    .cumsum(0)
                    .subtract(Tensor::scalar_of(1.0, dtype))
            }
        }
    }

    /// Broadcasts through a size-1 axis `axis` to `r` copies (any dtype, run-time dims kept).
    fn spread(&self, axis: usize, r: usize) -> Tensor {
        let mut shape = vec![1usize; self.rank() - axis];
        shape[0] = r;
        Tensor::from_op(Op::Where, &[&true_of(&shape), self, self])
    }

    /// Merges axes `axis` and `axis + 1` into one, other dims (run-time ones included) kept.
    fn merge_axes(&self, axis: usize) -> Tensor {
        let shape = self.shape();
        let dims = shape.dims();
        let merged = match (dims[axis], dims[axis + 1]) {
            (Dim::Known(a), Dim::Known(b)) => Size::Known(a * b),
            _ => Size::Infer,
        };
        let mut target = Vec::with_capacity(dims.len() - 1);
        for i in 0..dims.len() {
            if i == axis {
                target.push(merged.clone());
            } else if i != axis + 1 {
                target.push(Size::Of(self.clone(), i));
            }
        }
        self.reshape_dims(&target)
    }

    /// `keras.ops.repeat(x, repeats, axis)`: each element repeated `repeats` times along
    /// `axis`; with `axis` `None`, over the flattened tensor.
    pub fn repeat(&self, repeats: usize, axis: Option<isize>) -> Tensor {
        let (x, axis) = match self.repeat_axis(axis) {
            Ok(v) => v,
            Err(t) => return t,
        };
        if repeats == 0 {
            return invalid_for(self, "repeat", "0 repeats leave nothing".into());
        }
        if repeats == 1 {
            return x;
        }
        x.expand_dims(axis as isize + 1)
            .spread(axis + 1, repeats)
            .merge_axes(axis)
    }

    /// `keras.ops.repeat(x, repeats, axis)` with one count per element of `axis` (whose size
    /// must be known and equal `repeats.len()`).
    pub fn repeat_each(&self, repeats: &[usize], axis: Option<isize>) -> Tensor {
        let (x, axis) = match self.repeat_axis(axis) {
            Ok(v) => v,
            Err(t) => return t,
        };
        let n = x.shape().dims()[axis].known();
        if n != Some(repeats.len()) {
            return invalid_for(
                &x,
                "repeat",
                format!(
                    "{} counts given for axis {axis} of size {}",
                    repeats.len(),
                    x.shape().dims()[axis]
                ),
            );
        }
        // The index vector is as long as the counts' sum: checked before it is built.
        let total = repeats.iter().try_fold(0usize, |a, &r| a.checked_add(r));
        if let Err(e) = crate::limits::check_layer_constant("repeat", "the indices", total) {
            return Tensor::invalid(e);
        }
        let idx: Vec<i32> = repeats
            .iter()
            .enumerate()
            .flat_map(|(i, &r)| std::iter::repeat_n(i as i32, r))
            .collect();
        if idx.is_empty() {
            return invalid_for(&x, "repeat", "the counts leave nothing".into());
        }
        match HostTensor::new(&[idx.len()], idx) {
            Ok(h) => x.take(&Tensor::constant(h), axis as isize),
            Err(e) => Tensor::invalid(e),
        }
    }

    fn repeat_axis(&self, axis: Option<isize>) -> Result<(Tensor, usize), Tensor> {
        match axis {
            None => Ok((self.reshape(&[-1]), 0)),
            Some(a) => match normalize_axis("repeat", a, &self.shape()) {
                Ok(a) => Ok((self.clone(), a)),
                Err(e) => Err(Tensor::invalid(self.error().cloned().unwrap_or(e))),
            },
        }
    }

    /// `keras.ops.tile(x, repeats)`: `x` repeated `repeats[i]` times along axis `i`; fewer
    /// counts than axes apply to the last axes, more add leading axes (NumPy's rules).
    pub fn tile(&self, repeats: &[usize]) -> Tensor {
        if repeats.contains(&0) {
            return invalid_for(self, "tile", format!("repeats {repeats:?} leave nothing"));
        }
        let mut x = self.clone();
        while x.rank() < repeats.len() && x.error().is_none() {
            x = x.expand_dims(0);
        }
        let skip = x.rank() - repeats.len();
        for (k, &r) in repeats.iter().enumerate() {
            if r > 1 {
                let a = skip + k;
                x = x.expand_dims(a as isize).spread(a, r).merge_axes(a);
            }
        }
        x
    }

    fn triangle(&self, k: i64, upper: bool) -> Tensor {
        let name = if upper { "triu" } else { "tril" };
        if self.rank() < 2 {
            return invalid_for(self, name, "needs at least 2 axes".into());
        }
        let rows = Tensor::arange_size(&self.size_of(-2), DType::I32).expand_dims(1);
        let cols = Tensor::arange_size(&self.size_of(-1), DType::I32).expand_dims(0);
        let diag = cols.subtract(&rows);
        let keep = if upper {
            diag.greater_equal(Tensor::scalar_of(k as f64, DType::I32))
        } else {
            diag.less_equal(Tensor::scalar_of(k as f64, DType::I32))
        };
        let zero = Tensor::scalar_of(0.0, self.dtype());
        Tensor::from_op(Op::Where, &[&keep, self, &zero])
    }

    /// `keras.ops.triu(x, k)`: the last two axes' elements on and above diagonal `k`, zeros
    /// below.
    pub fn triu(&self, k: i64) -> Tensor {
        self.triangle(k, true)
    }

    /// `keras.ops.tril(x, k)`: the last two axes' elements on and below diagonal `k`, zeros
    /// above.
    pub fn tril(&self, k: i64) -> Tensor {
        self.triangle(k, false)
    }
}
