//! Activation functions as `Tensor` methods, with Keras 3's names, defaults and formulas
//! (`keras.ops.relu6`, `selu`, `gelu`, ...). Integer and bool inputs are computed in `float32`,
//! as Keras returns them, except where Keras keeps the dtype (`relu`, `hard_tanh`).

use crate::dtype::DType;
use crate::error::Error;
use crate::tensor::Tensor;

/// SELU's `alpha` and `scale` (Klambauer et al.), as Keras and JAX spell them.
const SELU_ALPHA: f32 = 1.673_263_2;
const SELU_SCALE: f32 = 1.050_701;

impl Tensor {
    /// The tensor in `float32` (a copy of the handle when it already is).
    fn float(&self) -> Tensor {
        self.cast(DType::F32)
    }

    /// `min(max(x, 0), 6)`.
    pub fn relu6(&self) -> Tensor {
        self.float().relu().minimum(6.0)
    }

    /// Leaky ReLU: `x` where `x >= 0`, `negative_slope * x` elsewhere (Keras's
    /// `ops.leaky_relu` and the `"leaky_relu"` activation default to 0.2).
    pub fn leaky_relu(&self, negative_slope: f32) -> Tensor {
        let x = self.float();
        Tensor::where_(&x.greater_equal(0.0), &x, x.multiply(negative_slope))
    }

    /// ELU: `x` where positive, `alpha * expm1(x)` elsewhere (`expm1`, not `exp(x) - 1`, so
    /// that `elu(-1e-7)` keeps its digits). Keras's default `alpha` is 1.
    pub fn elu(&self, alpha: f32) -> Tensor {
        let x = self.float();
        let positive = x.greater(0.0);
        // The positive side goes through expm1 as 0, so a large x never makes an inf there.
        let negative = Tensor::where_(&positive, 0.0, &x).expm1().multiply(alpha);
        Tensor::where_(&positive, &x, negative)
    }

    /// SELU: `scale * elu(x, alpha)` with Keras's `alpha = 1.67326324` and
    /// `scale = 1.05070098`.
    pub fn selu(&self) -> Tensor {
        self.elu(SELU_ALPHA).multiply(SELU_SCALE)
    }

    /// CELU: `max(x, 0) + alpha * expm1(min(x, 0) / alpha)`. Keras's default `alpha` is 1.
    pub fn celu(&self, alpha: f32) -> Tensor {
        let x = self.float();
        let negative = x.minimum(0.0).divide(alpha).expm1().multiply(alpha);
        x.maximum(0.0).add(negative)
    }

    /// `x * sigmoid(x)` (silu, also called swish).
    pub fn silu(&self) -> Tensor {
        self.multiply(self.sigmoid())
    }

    /// `silu` by its other Keras name.
    pub fn swish(&self) -> Tensor {
        self.silu()
    }

    /// GELU as `keras.ops.gelu(x)` computes it by default: the tanh approximation
    /// `x * 0.5 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x³)))`. The `"gelu"` activation
    /// (`Activation::Gelu`) is the exact form instead: [`Tensor::gelu_with`]`(false)`.
    pub fn gelu(&self) -> Tensor {
        self.gelu_with(true)
    }

    /// GELU with Keras's `approximate` argument: `true` is the tanh approximation (the
    /// default of `keras.ops.gelu`), `false` the exact `0.5 * x * erfc(-x / sqrt(2))` (the
    /// default of the `"gelu"` activation).
    pub fn gelu_with(&self, approximate: bool) -> Tensor {
        let x = self.float();
        if approximate {
            let sqrt_2_over_pi = (2.0 / std::f64::consts::PI).sqrt() as f32;
            let cubic = x.multiply(x.square()).multiply(0.044715);
            let cdf = x
                .add(cubic)
                .multiply(sqrt_2_over_pi)
                .tanh()
                .add(1.0)
                .multiply(0.5);
            x.multiply(cdf)
        } else {
            let w = x.negative().multiply(std::f32::consts::FRAC_1_SQRT_2);
            x.multiply(0.5).multiply(w.erfc())
        }
    }

    /// `log(1 + e^x)`, as Keras computes it: `logaddexp(x, 0)`, so `max(x, 0) +
    /// log1p(e^-|x|)`, which neither overflows for large `x` nor rounds to 0 for very negative
    /// `x` (`softplus(-20)` is `2.06e-9`).
    pub fn softplus(&self) -> Tensor {
        self.float().logaddexp(0.0)
    }

    /// `x / (|x| + 1)`.
    pub fn softsign(&self) -> Tensor {
        let x = self.float();
        x.divide(x.abs().add(1.0))
    }

    /// `x * tanh(softplus(x))`.
    pub fn mish(&self) -> Tensor {
        let x = self.float();
        x.multiply(x.softplus().tanh())
    }

    /// `log(sigmoid(x))`, computed as `-softplus(-x)`, which stays finite for very negative
    /// `x`.
    pub fn log_sigmoid(&self) -> Tensor {
        self.float().negative().softplus().negative()
    }

    /// `relu6(x + 3) / 6`: 0 below -3, 1 above 3, linear between.
    pub fn hard_sigmoid(&self) -> Tensor {
        self.float().add(3.0).relu6().divide(6.0)
    }

    /// `x * hard_sigmoid(x)` (hard silu, also called hard swish).
    pub fn hard_silu(&self) -> Tensor {
        let x = self.float();
        x.multiply(x.hard_sigmoid())
    }

    /// `hard_silu` by its other Keras name.
    pub fn hard_swish(&self) -> Tensor {
        self.hard_silu()
    }

    /// `x - tanh(x)`.
    pub fn tanh_shrink(&self) -> Tensor {
        let x = self.float();
        x.subtract(x.tanh())
    }

    /// 0 for `x <= -1`, `x` for `x >= 1`, `(x + 1)² / 4` between.
    pub fn sparse_plus(&self) -> Tensor {
        let x = self.float();
        let middle = x.add(1.0).square().divide(4.0);
        let upper = Tensor::where_(&x.greater_equal(1.0), &x, middle);
        Tensor::where_(&x.less_equal(-1.0), 0.0, upper)
    }

    /// `(x + sqrt(x² + b)) / 2`, a smooth ReLU; Keras's default `b` is 4.
    pub fn squareplus(&self, b: f32) -> Tensor {
        let x = self.float();
        x.add(x.square().add(b).sqrt()).divide(2.0)
    }

    /// `0.5 * clip(x + 1, 0, 2)`: 0 below -1, 1 above 1, linear between.
    pub fn sparse_sigmoid(&self) -> Tensor {
        self.float().add(1.0).clip(0.0, 2.0).multiply(0.5)
    }

    /// `x` clipped to `[-1, 1]` (integer tensors stay integers, as in Keras).
    pub fn hard_tanh(&self) -> Tensor {
        let inner = Tensor::where_(&self.less(-1), -1, self);
        Tensor::where_(&self.greater(1), 1, inner)
    }

    /// `x` where `|x| > threshold`, else 0. Keras's default `threshold` is 0.5.
    pub fn hard_shrink(&self, threshold: f32) -> Tensor {
        let x = self.float();
        Tensor::where_(&x.abs().greater(threshold), &x, 0.0)
    }

    /// `x - threshold` above `threshold`, `x + threshold` below `-threshold`, else 0.
    /// Keras's default `threshold` is 0.5.
    pub fn soft_shrink(&self, threshold: f32) -> Tensor {
        let x = self.float();
        let lower = Tensor::where_(&x.less(-threshold), x.add(threshold), 0.0);
        Tensor::where_(&x.greater(threshold), x.subtract(threshold), lower)
    }

    /// Keras's `glu(x, axis=-1)`: the halves `a, b` of `axis` give `a * sigmoid(b)`, so the
    /// axis halves. Its size must be known and even.
    pub fn glu(&self, axis: isize) -> Tensor {
        if let Some(e) = self.error() {
            return Tensor::invalid(e.clone());
        }
        let size = match self.dim(axis) {
            None => {
                return Tensor::invalid(crate::infer::axis_error("glu", axis, &self.shape()));
            }
            Some(d) => d.known(),
        };
        let half = match size {
            Some(n) if n % 2 == 0 => n as i64 / 2,
            _ => {
                return Tensor::invalid(Error::IncompatibleShapes {
                    op: "glu".into(),
                    shapes: self.shape().to_string(),
                    detail: format!(
                        "the size of axis {axis} must be known and divisible by 2, got {}",
                        size.map_or("an unknown size".to_string(), |n| n.to_string())
                    ),
                });
            }
        };
        let x = self.float();
        let a = x.slice_axis(axis, Some(0), Some(half), 1);
        let b = x.slice_axis(axis, Some(half), None, 1);
        a.multiply(b.sigmoid())
    }
}
