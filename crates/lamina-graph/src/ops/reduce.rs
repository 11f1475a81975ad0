//! Reductions and the normalisations built on them: sum, mean, max, min, prod, var, std,
//! argmax, argmin, cumsum, cumprod, logsumexp, softmax, log_softmax, l2_normalize.

use super::axes::Axes;
use crate::dtype::DType;
use crate::infer::{axis_error, normalize_axis};
use crate::op::{ArgReduceOp, Op, ReduceOp, ScanOp};
use crate::tensor::Tensor;

impl Tensor {
    /// A reduction over `axes` with keras.ops semantics (negative axes, `keepdims`).
    pub fn reduce(&self, op: ReduceOp, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
        if let Some(e) = self.error() {
            return Tensor::invalid(e.clone());
        }
        let shape = self.shape();
        match axes.into().resolve(shape.rank()) {
            // The mean of integers is float32, as in Keras.
            Ok(axes) if op == ReduceOp::Mean && self.dtype() != DType::F32 => Tensor::from_op(
                Op::Reduce { op, axes, keepdims },
                &[&self.cast(DType::F32)],
            ),
            Ok(axes) => Tensor::from_op(Op::Reduce { op, axes, keepdims }, &[self]),
            Err(bad) => Tensor::invalid(axis_error(op.name(), bad, &shape)),
        }
    }

    /// Sum over `axes`.
    pub fn sum(&self, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
        self.reduce(ReduceOp::Sum, axes, keepdims)
    }

    /// Arithmetic mean over `axes`.
    pub fn mean(&self, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
        self.reduce(ReduceOp::Mean, axes, keepdims)
    }

    /// Maximum over `axes`.
    pub fn max(&self, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
        self.reduce(ReduceOp::Max, axes, keepdims)
    }

    /// Minimum over `axes`.
    pub fn min(&self, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
        self.reduce(ReduceOp::Min, axes, keepdims)
    }

    /// Product over `axes`.
    pub fn prod(&self, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
        self.reduce(ReduceOp::Prod, axes, keepdims)
    }

    /// Population variance over `axes` (NumPy's `var` with `ddof=0`).
    pub fn var(&self, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
        let axes = axes.into();
        let centred = self.subtract(self.mean(axes.clone(), true));
        centred.square().mean(axes, keepdims)
    }

    /// Population standard deviation over `axes`.
    pub fn std(&self, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
        self.var(axes, keepdims).sqrt()
    }

    fn arg_reduce(&self, op: ArgReduceOp, axis: isize, keepdims: bool) -> Tensor {
        let name = if op == ArgReduceOp::ArgMax {
            "argmax"
        } else {
            "argmin"
        };
        match normalize_axis(name, axis, &self.shape()) {
            Ok(axis) => Tensor::from_op(Op::ArgReduce { op, axis, keepdims }, &[self]),
            Err(e) => Tensor::invalid(self.error().cloned().unwrap_or(e)),
        }
    }

    /// Whether any element is true (non-zero) over `axes`: a `bool` tensor.
    pub fn any(&self, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
        self.cast(DType::Bool)
            .cast(DType::F32)
            .max(axes, keepdims)
            .cast(DType::Bool)
    }

    /// Whether every element is true (non-zero) over `axes`: a `bool` tensor.
    pub fn all(&self, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
        self.cast(DType::Bool)
            .cast(DType::F32)
            .min(axes, keepdims)
            .cast(DType::Bool)
    }

    /// The `int32` index of the first maximum along `axis`.
    pub fn argmax(&self, axis: isize, keepdims: bool) -> Tensor {
        self.arg_reduce(ArgReduceOp::ArgMax, axis, keepdims)
    }

    /// The `int32` index of the first minimum along `axis`.
    pub fn argmin(&self, axis: isize, keepdims: bool) -> Tensor {
        self.arg_reduce(ArgReduceOp::ArgMin, axis, keepdims)
    }

    fn scan(&self, op: ScanOp, axis: isize) -> Tensor {
        let name = if op == ScanOp::CumSum {
            "cumsum"
        } else {
            "cumprod"
        };
        match normalize_axis(name, axis, &self.shape()) {
            Ok(axis) => Tensor::from_op(Op::Scan { op, axis }, &[self]),
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

    /// `log(sum(exp(x)))` over `axes`, computed stably by subtracting the maximum first.
    pub fn logsumexp(&self, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
        let axes = axes.into();
        // Shift by the maximum, or by 0 where it is infinite (a row of -inf, or a +inf), as
        // TensorFlow does: inf - inf would turn the row's -inf or +inf result into NaN.
        let raw = self.max(axes.clone(), true);
        let m = Tensor::where_(&raw.abs().less(f32::INFINITY), &raw, 0.0);
        let s = self
            .subtract(&m)
            .exp()
            .sum(axes.clone(), true)
            .log()
            .add(&m);
        if keepdims { s } else { s.squeeze(axes) }
    }

    /// Softmax along `axis`: `exp(x - max) / sum(exp(x - max))`.
    pub fn softmax(&self, axis: isize) -> Tensor {
        let e = self.subtract(self.max(Axes::List(vec![axis]), true)).exp();
        e.divide(e.sum(Axes::List(vec![axis]), true))
    }

    /// Log-softmax along `axis`: `x - logsumexp(x)`.
    pub fn log_softmax(&self, axis: isize) -> Tensor {
        let shifted = self.subtract(self.max(Axes::List(vec![axis]), true));
        shifted.subtract(shifted.exp().sum(Axes::List(vec![axis]), true).log())
    }

    /// L2 normalisation along `axes` with TensorFlow's convention:
    /// `x * rsqrt(max(sum(x^2), 1e-12))`.
    pub fn l2_normalize(&self, axes: impl Into<Axes>) -> Tensor {
        let ss = self.square().sum(axes, true);
        self.multiply(ss.maximum(1e-12).rsqrt())
    }
}
