//! Reductions and the normalisations built on them: sum, mean, max, min, prod, var, std,
//! argmax, argmin, cumsum, cumprod, logsumexp, softmax, log_softmax, l2_normalize.
//!
//! As in Keras, a reduction drops the axes it reduces (`keepdims=False`): `x.sum(1)`. Each has
//! a `_keepdims` form that keeps them with size 1 (`x.mean_keepdims(1)`), and `reduce` takes
//! `keepdims` as a value.

use super::axes::Axes;
use crate::dtype::DType;
use crate::infer::{axis_error, normalize_axis};
use crate::op::{ArgReduceOp, Op, ReduceOp, ScanOp};
use crate::tensor::Tensor;

impl Tensor {
    /// A reduction over `axes` with keras.ops semantics (negative axes), with `keepdims` as a
    /// value: the explicit form of `sum`/`sum_keepdims`, `mean`/`mean_keepdims`...
    pub fn reduce(&self, op: ReduceOp, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
        if let Some(e) = self.error() {
            return Tensor::invalid(e.clone());
        }
        let shape = self.shape();
        match axes.into().resolve(shape.rank()) {
            // The mean of integers is float32, as in Keras.
            Ok(axes) if op == ReduceOp::Mean && self.dtype() != DType::F32 => Tensor::from_op(
                Op::Reduce {
                    func: op,
                    axes,
                    keepdims,
                },
                &[&self.cast(DType::F32)],
            ),
            Ok(axes) => Tensor::from_op(
                Op::Reduce {
                    func: op,
                    axes,
                    keepdims,
                },
                &[self],
            ),
            Err(bad) => Tensor::invalid(axis_error(op.name(), bad, &shape)),
        }
    }

    /// Sum over `axes`, which are dropped (Keras's default `keepdims=False`): `x.sum(1)`.
    pub fn sum(&self, axes: impl Into<Axes>) -> Tensor {
        self.reduce(ReduceOp::Sum, axes, false)
    }

    /// Sum over `axes`, kept with size 1 (`keepdims=True`): `x.sum_keepdims(1)`.
    pub fn sum_keepdims(&self, axes: impl Into<Axes>) -> Tensor {
        self.reduce(ReduceOp::Sum, axes, true)
    }

    /// Arithmetic mean over `axes`, which are dropped (`keepdims=False`).
    pub fn mean(&self, axes: impl Into<Axes>) -> Tensor {
        self.reduce(ReduceOp::Mean, axes, false)
    }

    /// Arithmetic mean over `axes`, kept with size 1 (`keepdims=True`): `x - x.mean_keepdims(1)`.
    pub fn mean_keepdims(&self, axes: impl Into<Axes>) -> Tensor {
        self.reduce(ReduceOp::Mean, axes, true)
    }

    /// Maximum over `axes`, which are dropped (`keepdims=False`).
    pub fn max(&self, axes: impl Into<Axes>) -> Tensor {
        self.reduce(ReduceOp::Max, axes, false)
    }

    /// Maximum over `axes`, kept with size 1 (`keepdims=True`).
    pub fn max_keepdims(&self, axes: impl Into<Axes>) -> Tensor {
        self.reduce(ReduceOp::Max, axes, true)
    }

    /// Minimum over `axes`, which are dropped (`keepdims=False`).
    pub fn min(&self, axes: impl Into<Axes>) -> Tensor {
        self.reduce(ReduceOp::Min, axes, false)
    }

    /// Minimum over `axes`, kept with size 1 (`keepdims=True`).
    pub fn min_keepdims(&self, axes: impl Into<Axes>) -> Tensor {
        self.reduce(ReduceOp::Min, axes, true)
    }

    /// Product over `axes`, which are dropped (`keepdims=False`).
    pub fn prod(&self, axes: impl Into<Axes>) -> Tensor {
        self.reduce(ReduceOp::Prod, axes, false)
    }

    /// Product over `axes`, kept with size 1 (`keepdims=True`).
    pub fn prod_keepdims(&self, axes: impl Into<Axes>) -> Tensor {
        self.reduce(ReduceOp::Prod, axes, true)
    }

    fn variance(&self, axes: Axes, keepdims: bool) -> Tensor {
        let centred = self.subtract(self.mean_keepdims(axes.clone()));
        centred.square().reduce(ReduceOp::Mean, axes, keepdims)
    }

    /// Population variance over `axes` (NumPy's `var` with `ddof=0`), which are dropped
    /// (`keepdims=False`).
    pub fn var(&self, axes: impl Into<Axes>) -> Tensor {
        self.variance(axes.into(), false)
    }

    /// Population variance over `axes`, kept with size 1 (`keepdims=True`).
    pub fn var_keepdims(&self, axes: impl Into<Axes>) -> Tensor {
        self.variance(axes.into(), true)
    }

    /// Population standard deviation over `axes`, which are dropped (`keepdims=False`).
    pub fn std(&self, axes: impl Into<Axes>) -> Tensor {
        self.var(axes).sqrt()
    }

    /// Population standard deviation over `axes`, kept with size 1 (`keepdims=True`).
    pub fn std_keepdims(&self, axes: impl Into<Axes>) -> Tensor {
        self.var_keepdims(axes).sqrt()
    }

    fn arg_reduce(&self, op: ArgReduceOp, axis: isize, keepdims: bool) -> Tensor {
        let name = if op == ArgReduceOp::ArgMax {
            "argmax"
        } else {
            "argmin"
        };
        match normalize_axis(name, axis, &self.shape()) {
            Ok(axis) => Tensor::from_op(
                Op::ArgReduce {
                    func: op,
                    axis,
                    keepdims,
                },
                &[self],
            ),
            Err(e) => Tensor::invalid(self.error().cloned().unwrap_or(e)),
        }
    }

    /// Whether any element is true (non-zero) over `axes`, which are dropped: a `bool` tensor.
    pub fn any(&self, axes: impl Into<Axes>) -> Tensor {
        self.bool_reduce(ReduceOp::Max, axes, false)
    }

    /// `any` with the reduced axes kept with size 1.
    pub fn any_keepdims(&self, axes: impl Into<Axes>) -> Tensor {
        self.bool_reduce(ReduceOp::Max, axes, true)
    }

    /// Whether every element is true (non-zero) over `axes`, which are dropped: a `bool`
    /// tensor.
    pub fn all(&self, axes: impl Into<Axes>) -> Tensor {
        self.bool_reduce(ReduceOp::Min, axes, false)
    }

    /// `all` with the reduced axes kept with size 1.
    pub fn all_keepdims(&self, axes: impl Into<Axes>) -> Tensor {
        self.bool_reduce(ReduceOp::Min, axes, true)
    }

    fn bool_reduce(&self, op: ReduceOp, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
        self.cast(DType::Bool)
            .cast(DType::F32)
            .reduce(op, axes, keepdims)
            .cast(DType::Bool)
    }

    /// The `int32` index of the first maximum along `axis`, which is dropped
    /// (`keepdims=False`).
    pub fn argmax(&self, axis: isize) -> Tensor {
        self.arg_reduce(ArgReduceOp::ArgMax, axis, false)
    }

    /// The `int32` index of the first maximum along `axis`, kept with size 1.
    pub fn argmax_keepdims(&self, axis: isize) -> Tensor {
        self.arg_reduce(ArgReduceOp::ArgMax, axis, true)
    }

    /// The `int32` index of the first minimum along `axis`, which is dropped
    /// (`keepdims=False`).
    pub fn argmin(&self, axis: isize) -> Tensor {
        self.arg_reduce(ArgReduceOp::ArgMin, axis, false)
    }

    /// The `int32` index of the first minimum along `axis`, kept with size 1.
    pub fn argmin_keepdims(&self, axis: isize) -> Tensor {
        self.arg_reduce(ArgReduceOp::ArgMin, axis, true)
    }

    fn scan(&self, op: ScanOp, axis: isize) -> Tensor {
        let name = if op == ScanOp::CumSum {
            "cumsum"
        } else {
            "cumprod"
        };
        match normalize_axis(name, axis, &self.shape()) {
            Ok(axis) => Tensor::from_op(Op::Scan { func: op, axis }, &[self]),
            Err(e) => Tensor::invalid(self.error().cloned().unwrap_or(e)),
        }
    }

    /// Running sum along `axis`.
    pub fn cumsum(&self, axis: isize) -> Tensor {
        self.scan(ScanOp::CumSum, axis)
    }

    /// Running product along `axis`.
    pub fn cumprod(&self, axis: isize) -> Tensor {
        self.scan(ScanOp::CumProd, axis)
    }

    /// `log(sum(exp(x)))` over `axes`, which are dropped (`keepdims=False`), computed stably
    /// by subtracting the maximum first.
    pub fn logsumexp(&self, axes: impl Into<Axes>) -> Tensor {
        self.log_sum_exp(axes.into(), false)
    }

    /// `log(sum(exp(x)))` over `axes`, kept with size 1 (`keepdims=True`).
    pub fn logsumexp_keepdims(&self, axes: impl Into<Axes>) -> Tensor {
        self.log_sum_exp(axes.into(), true)
    }

    fn log_sum_exp(&self, axes: Axes, keepdims: bool) -> Tensor {
        // Shift by the maximum, or by 0 where it is infinite (a row of -inf, or a +inf), as
        // TensorFlow does: inf - inf would turn the row's -inf or +inf result into NaN.
        let raw = self.max_keepdims(axes.clone());
        let m = Tensor::where_(&raw.abs().less(f32::INFINITY), &raw, 0.0);
        let s = self
            .subtract(&m)
            .exp()
            .sum_keepdims(axes.clone())
            .log()
            .add(&m);
        if keepdims { s } else { s.squeeze(axes) }
    }

    /// Softmax along `axis`: `exp(x - max) / sum(exp(x - max))`.
    pub fn softmax(&self, axis: isize) -> Tensor {
        let e = self
            .subtract(self.max_keepdims(Axes::List(vec![axis])))
            .exp();
        e.divide(e.sum_keepdims(Axes::List(vec![axis])))
    }

    /// Log-softmax along `axis`: `x - logsumexp(x)`.
    pub fn log_softmax(&self, axis: isize) -> Tensor {
        let shifted = self.subtract(self.max_keepdims(Axes::List(vec![axis])));
        shifted.subtract(shifted.exp().sum_keepdims(Axes::List(vec![axis])).log())
    }

    /// L2 normalisation along `axes` with TensorFlow's convention:
    /// `x * rsqrt(max(sum(x^2), 1e-12))`.
    pub fn l2_normalize(&self, axes: impl Into<Axes>) -> Tensor {
        let ss = self.square().sum_keepdims(axes);
        self.multiply(ss.maximum(1e-12).rsqrt())
    }

    /// Keras's `ops.normalize(x, axis, order=2, epsilon)`: `x * min(rsqrt(sum(x^2)), 1/epsilon)`
    /// along `axis` (Keras's default epsilon is `1e-7`). The `Dot(normalize=True)` layer uses it.
    pub fn normalize(&self, axis: isize, epsilon: f32) -> Tensor {
        let x = if self.dtype() == crate::dtype::DType::F32 {
            self.clone()
        } else {
            self.cast(crate::dtype::DType::F32)
        };
        let ss = x.square().sum_keepdims(Axes::List(vec![axis]));
        x.multiply(ss.rsqrt().minimum(1.0 / epsilon))
    }
}
