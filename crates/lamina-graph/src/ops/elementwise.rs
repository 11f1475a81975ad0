//! Elementwise ops: unary math, broadcasting binary ops, comparisons, `where`, `clip`, `cast`.

use crate::dtype::DType;
use crate::error::Error;
use crate::op::{BinaryOp, Op, UnaryOp};
use crate::tensor::Tensor;

/// Something that can stand on either side of a binary op: a tensor, or a Rust scalar that takes
/// the dtype of the tensor it meets (as Python scalars do in Keras).
pub trait Operand {
    /// The operand as a tensor, typed like `like` when it is a scalar.
    fn to_tensor(&self, like: &Tensor) -> Tensor;

    /// Whether this is a Rust scalar (which takes the other side's dtype).
    fn is_scalar(&self) -> bool {
        true
    }
}

impl Operand for Tensor {
    fn to_tensor(&self, _like: &Tensor) -> Tensor {
        self.clone()
    }
    fn is_scalar(&self) -> bool {
        false
    }
}

impl Operand for &Tensor {
    fn to_tensor(&self, _like: &Tensor) -> Tensor {
        (*self).clone()
    }
    fn is_scalar(&self) -> bool {
        false
    }
}

/// A Rust scalar as a rank-0 constant of `like`'s dtype, or a tensor that carries an error
/// when the dtype cannot hold the value exactly (`2.5` or `-1.0` meeting an integer tensor,
/// `0.5` meeting a bool tensor): silently truncating it would give wrong numbers.
fn scalar_like(value: f64, like: &Tensor) -> Tensor {
    let dtype = like.dtype();
    let exact = match dtype {
        DType::F32 => true,
        DType::I32 => value.fract() == 0.0 && (i32::MIN as f64..=i32::MAX as f64).contains(&value),
        DType::U32 => value.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&value),
        DType::Bool => value == 0.0 || value == 1.0,
    };
    if !exact {
        return Tensor::invalid(Error::DType {
            op: "scalar operand".into(),
            detail: format!(
                "the scalar {value} meets a {dtype} tensor of shape {}, which cannot hold it \
                 exactly; cast the tensor to float32 first",
                like.shape()
            ),
        });
    }
    Tensor::scalar_of(value, dtype)
}

impl Operand for f32 {
    fn to_tensor(&self, like: &Tensor) -> Tensor {
        scalar_like(*self as f64, like)
    }
}

impl Operand for f64 {
    fn to_tensor(&self, like: &Tensor) -> Tensor {
        scalar_like(*self, like)
    }
}

impl Operand for i32 {
    fn to_tensor(&self, like: &Tensor) -> Tensor {
        scalar_like(*self as f64, like)
    }
}

impl Operand for bool {
    fn to_tensor(&self, _like: &Tensor) -> Tensor {
        Tensor::scalar_of(if *self { 1.0 } else { 0.0 }, DType::Bool)
    }
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:ident;)*) => {
        impl Tensor {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> Tensor {
                    Tensor::from_op(Op::Unary(UnaryOp::$op), &[self])
                }
            )*
        }
    };
}

unary_methods! {
    /// `-x`.
    negative => Neg;
    /// `|x|`.
    abs => Abs;
    /// `e^x`.
    exp => Exp;
    /// Natural logarithm.
    log => Log;
    /// Square root.
    sqrt => Sqrt;
    /// `1 / sqrt(x)`.
    rsqrt => Rsqrt;
    /// `1 / x`.
    reciprocal => Recip;
    /// Hyperbolic tangent.
    tanh => Tanh;
    /// Logistic sigmoid `1 / (1 + e^-x)`.
    sigmoid => Sigmoid;
    /// Sine.
    sin => Sin;
    /// Cosine.
    cos => Cos;
    /// The Gauss error function.
    erf => Erf;
    /// Rounds toward negative infinity.
    floor => Floor;
    /// Rounds toward positive infinity.
    ceil => Ceil;
    /// Rounds half to even, as NumPy does.
    round => Round;
    /// -1, 0 or 1 by the sign of each element.
    sign => Sign;
    /// Logical not of a bool tensor.
    logical_not => Not;
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:ident;)*) => {
        impl Tensor {
            $(
                $(#[$doc])*
                pub fn $name(&self, other: impl Operand) -> Tensor {
                    self.binary(BinaryOp::$op, &other)
                }
            )*
        }
    };
}

binary_methods! {
    /// `self + other`, broadcasting.
    add => Add;
    /// `self - other`, broadcasting.
    subtract => Sub;
    /// `self * other`, broadcasting.
    multiply => Mul;
    /// `self / other`, broadcasting.
    divide => Div;
    /// Elementwise maximum, broadcasting.
    maximum => Max;
    /// Elementwise minimum, broadcasting.
    minimum => Min;
    /// `self < other` as bools.
    less => Less;
    /// `self <= other` as bools.
    less_equal => LessEqual;
    /// `self > other` as bools.
    greater => Greater;
    /// `self >= other` as bools.
    greater_equal => GreaterEqual;
    /// `self == other` as bools.
    equal => Equal;
    /// `self != other` as bools.
    not_equal => NotEqual;
    /// Logical and of bool tensors.
    logical_and => And;
    /// Logical or of bool tensors.
    logical_or => Or;
}

impl Tensor {
    /// Applies a binary primitive with `other` converted to a tensor.
    pub fn binary(&self, op: BinaryOp, other: &dyn Operand) -> Tensor {
        let rhs = other.to_tensor(self);
        Tensor::from_op(Op::Binary(op), &[self, &rhs])
    }

    /// `x * x`.
    pub fn square(&self) -> Tensor {
        self.multiply(self)
    }

    /// `self ** exponent`. Exponents 1, 2 and 0.5 become a copy, a square and a square root,
    /// which are exact and valid for negative bases; other exponents follow `powf`.
    pub fn pow(&self, exponent: impl Operand) -> Tensor {
        let e = exponent.to_tensor(self);
        if let Some(v) = e.scalar_value() {
            if v == 1.0 {
                return self.clone();
            }
            if v == 2.0 {
                return self.square();
            }
            if v == 0.5 {
                return self.sqrt();
            }
        }
        Tensor::from_op(Op::Binary(BinaryOp::Pow), &[self, &e])
    }

    /// `max(x, 0)`.
    pub fn relu(&self) -> Tensor {
        self.maximum(0.0)
    }

    /// `x * sigmoid(x)` (swish).
    pub fn silu(&self) -> Tensor {
        self.multiply(self.sigmoid())
    }

    /// The exact, erf-based GELU: `0.5 * x * (1 + erf(x / sqrt(2)))`.
    pub fn gelu(&self) -> Tensor {
        let inner = self
            .multiply(std::f32::consts::FRAC_1_SQRT_2)
            .erf()
            .add(1.0);
        self.multiply(inner).multiply(0.5)
    }

    /// `log(1 + e^x)`, computed stably as `max(x, 0) + log1p(e^-|x|)`. `log1p(y)` is
    /// Kahan's `log(u) * y / (u - 1)` with `u = 1 + y` (and `y` itself where `u` rounds to 1),
    /// so that `softplus(-20)` is `2.06e-9`, not 0.
    pub fn softplus(&self) -> Tensor {
        let y = self.abs().negative().exp();
        let u = y.add(1.0);
        let log1p = Tensor::where_(
            &u.equal(1.0),
            &y,
            u.log().multiply(&y).divide(u.subtract(1.0)),
        );
        self.relu().add(log1p)
    }

    /// ELU: `x` where positive, `alpha * (e^x - 1)` elsewhere.
    pub fn elu(&self, alpha: f32) -> Tensor {
        let neg = self.exp().subtract(1.0).multiply(alpha);
        Tensor::where_(&self.greater(0.0), self, &neg)
    }

    /// Leaky ReLU: `x` where positive, `negative_slope * x` elsewhere.
    pub fn leaky_relu(&self, negative_slope: f32) -> Tensor {
        Tensor::where_(&self.greater(0.0), self, self.multiply(negative_slope))
    }

    /// Clips every element into `[min, max]` (`minimum(maximum(x, min), max)`).
    pub fn clip(&self, min: impl Operand, max: impl Operand) -> Tensor {
        self.maximum(min).minimum(max)
    }

    /// Chooses elementwise: `a` where `condition` is true, else `b`; the three broadcast.
    pub fn where_(condition: &Tensor, a: impl Operand, b: impl Operand) -> Tensor {
        let (a_t, b_t) = if !a.is_scalar() {
            let a_t = a.to_tensor(condition);
            let b_t = b.to_tensor(&a_t);
            (a_t, b_t)
        } else if !b.is_scalar() {
            let b_t = b.to_tensor(condition);
            (a.to_tensor(&b_t), b_t)
        } else {
            let f = Tensor::scalar(0.0);
            (a.to_tensor(&f), b.to_tensor(&f))
        };
        Tensor::from_op(Op::Where, &[condition, &a_t, &b_t])
    }

    /// Converts to another dtype (`float32` to `int32` truncates toward zero; to `bool` is
    /// `x != 0`).
    pub fn cast(&self, dtype: DType) -> Tensor {
        if self.dtype() == dtype {
            return self.clone();
        }
        Tensor::from_op(Op::Cast(dtype), &[self])
    }

    /// The value of a rank-0 constant, if this is one.
    pub fn scalar_value(&self) -> Option<f64> {
        let node = self.node().ok()?;
        match node.op() {
            Op::Constant(c) if c.shape().is_empty() => Some(c.to_f32_vec()[0] as f64),
            _ => None,
        }
    }
}
