//! Elementwise ops: unary math, broadcasting binary ops, comparisons, `where`, `clip`, `cast`.

use crate::dtype::{DType, ScalarKind, result_type, weak_result_type};
use crate::error::Error;
use crate::op::{
    BinaryKind, BinaryOp, Op, UnaryKind, UnaryOp, for_each_binary_op, for_each_unary_op,
};
use crate::tensor::Tensor;

/// Something that can stand on either side of a binary op: a tensor, or a Rust scalar that is
/// "weak" as Python scalars are in Keras: it takes the tensor's dtype unless its own kind is
/// wider (`int_tensor * 0.5` is `float32`).
pub trait Operand {
    /// The operand as a tensor, typed like `like` when it is a scalar.
    fn to_tensor(&self, like: &Tensor) -> Tensor;

    /// The scalar's value and kind, or `None` for a tensor.
    fn weak_scalar(&self) -> Option<(f64, ScalarKind)>;

    /// Whether this is a Rust scalar (which takes the other side's dtype).
    fn is_scalar(&self) -> bool {
        self.weak_scalar().is_some()
    }
}

impl Operand for Tensor {
    fn to_tensor(&self, _like: &Tensor) -> Tensor {
        self.clone()
    }
    fn weak_scalar(&self) -> Option<(f64, ScalarKind)> {
        None
    }
}

impl Operand for &Tensor {
    fn to_tensor(&self, _like: &Tensor) -> Tensor {
        (*self).clone()
    }
    fn weak_scalar(&self) -> Option<(f64, ScalarKind)> {
        None
    }
}

/// A Rust scalar as a rank-0 constant of `like`'s dtype, or a tensor that carries an error
/// when the dtype cannot hold the value exactly (`-1` meeting a `uint32` tensor, `2` meeting a
/// bool tensor in a logical op): silently wrapping it would give wrong numbers.
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
                 exactly; cast the tensor first",
                like.shape()
            ),
        });
    }
    Tensor::scalar_of(value, dtype)
}

macro_rules! scalar_operand {
    ($($t:ty => $kind:ident),*) => {$(
        impl Operand for $t {
            fn to_tensor(&self, like: &Tensor) -> Tensor {
                scalar_like(*self as f64, like)
            }
            fn weak_scalar(&self) -> Option<(f64, ScalarKind)> {
                Some((*self as f64, ScalarKind::$kind))
            }
        }
    )*};
}

scalar_operand!(f32 => Float, f64 => Float, i32 => Int, i64 => Int, u32 => Int);

impl Operand for bool {
    fn to_tensor(&self, _like: &Tensor) -> Tensor {
        Tensor::scalar_of(if *self { 1.0 } else { 0.0 }, DType::Bool)
    }
    fn weak_scalar(&self) -> Option<(f64, ScalarKind)> {
        Some((if *self { 1.0 } else { 0.0 }, ScalarKind::Bool))
    }
}

/// Two operands as tensors of one dtype, promoted as Keras 3 does: tensors by `result_type`,
/// a scalar by the weak rules (`int32 + 1.5` is `float32`, `int32 + 1` stays `int32`). Two
/// scalars become `float32` (or `int32` when both are integers).
pub fn promote(a: &dyn Operand, b: &dyn Operand) -> (Tensor, Tensor) {
    let anchor = |scalar: &dyn Operand, tensor: Tensor| {
        let (_, kind) = scalar.weak_scalar().expect("a scalar operand");
        let t = tensor.cast(weak_result_type(tensor.dtype(), kind));
        (scalar.to_tensor(&t), t)
    };
    match (a.weak_scalar(), b.weak_scalar()) {
        (None, None) => {
            let (x, y) = (
                a.to_tensor(&Tensor::scalar(0.0)),
                b.to_tensor(&Tensor::scalar(0.0)),
            );
            let d = result_type(x.dtype(), y.dtype());
            (x.cast(d), y.cast(d))
        }
        (Some(_), None) => anchor(a, b.to_tensor(&Tensor::scalar(0.0))),
        (None, Some(_)) => {
            let (y, x) = anchor(b, a.to_tensor(&Tensor::scalar(0.0)));
            (x, y)
        }
        (Some((_, ka)), Some((_, kb))) => {
            let d = if ka != ScalarKind::Float && kb != ScalarKind::Float {
                DType::I32
            } else {
                DType::F32
            };
            let like = Tensor::scalar_of(0.0, d);
            (a.to_tensor(&like), b.to_tensor(&like))
        }
    }
}

/// Applies a binary primitive to two operands promoted as Keras 3 does (see [`promote`]):
/// `divide`, `power` and `arctan2` work in `float32` whatever the input types, logical ops
/// take bools as they are.
pub fn apply_binary(op: BinaryOp, a: &dyn Operand, b: &dyn Operand) -> Tensor {
    let (a, b) = if op.is_logical() {
        let a = a.to_tensor(&Tensor::scalar_of(0.0, DType::Bool));
        let b = b.to_tensor(&a);
        (a, b)
    } else {
        promote(a, b)
    };
    let (a, b) = if op.kind() == BinaryKind::Float {
        (a.cast(DType::F32), b.cast(DType::F32))
    } else {
        (a, b)
    };
    // Arithmetic on two bools is logical, as in Keras (`add(bool, bool)` is `or`).
    let op = match (a.dtype(), b.dtype(), op) {
        (DType::Bool, DType::Bool, BinaryOp::Add | BinaryOp::Max) => BinaryOp::Or,
        (DType::Bool, DType::Bool, BinaryOp::Mul | BinaryOp::Min) => BinaryOp::And,
        _ => op,
    };
    Tensor::from_op(Op::Binary { func: op }, &[&a, &b])
}

/// The `Tensor` method of each op of a `for_each_*_op!` declaration (in `op.rs`) that has a
/// plain one: `method m` makes `m`, with the op's doc unless the line gives the method its own;
/// `hand_written m` makes nothing (`m` is below).
macro_rules! elementwise_methods {
    (
        $Enum:ident, $params:tt, |$self_:ident, $op_:ident| $body:expr;
        $(
            $(#[$doc:meta])*
            $op:ident = $name:literal, $kind:ident, keras [$($class:literal),*],
            $(#[$method_doc:meta])* $how:ident $method:ident;
        )*
    ) => {
        impl Tensor {
            $(
                elementwise_methods! {
                    @$how $method, $Enum::$op, $params, |$self_, $op_| $body,
                    [$(#[$doc])*], [$(#[$method_doc])*]
                }
            )*
        }
    };
    (@hand_written $($rest:tt)*) => {};
    (
        @method $method:ident, $op:expr, ($($params:tt)*), |$self_:ident, $op_:ident| $body:expr,
        [$($doc:tt)*], []
    ) => {
        $($doc)*
        pub fn $method(&$self_, $($params)*) -> Tensor {
            let $op_ = $op;
            $body
        }
    };
    (
        @method $method:ident, $op:expr, ($($params:tt)*), |$self_:ident, $op_:ident| $body:expr,
        [$($doc:tt)*], [$($method_doc:tt)+]
    ) => {
        $($method_doc)+
        pub fn $method(&$self_, $($params)*) -> Tensor {
            let $op_ = $op;
            $body
        }
    };
}

for_each_unary_op! {
    elementwise_methods,
    UnaryOp, (), |self, op| self.unary(op);
}

for_each_binary_op! {
    elementwise_methods,
    BinaryOp, (other: impl Operand), |self, op| self.binary(op, &other);
}

impl Tensor {
    /// Applies a unary primitive. Integer and bool inputs of the float functions are first
    /// cast to `float32`, as Keras does (`sqrt(int32)` is `float32`).
    pub fn unary(&self, op: UnaryOp) -> Tensor {
        let keeps_dtype = matches!(op.kind(), UnaryKind::Numeric | UnaryKind::Logical);
        let x = if keeps_dtype || self.dtype() == DType::F32 {
            self.clone()
        } else {
            self.cast(DType::F32)
        };
        Tensor::from_op(Op::Unary { func: op }, &[&x])
    }

    /// Applies a binary primitive to `self` and `other` promoted to one dtype as Keras 3 does
    /// (see [`promote`]); logical ops take bools as they are.
    pub fn binary(&self, op: BinaryOp, other: &dyn Operand) -> Tensor {
        apply_binary(op, &self, other)
    }

    /// `floor_mod` by its NumPy and Keras name, `mod`.
    pub fn r#mod(&self, other: impl Operand) -> Tensor {
        self.floor_mod(other)
    }

    /// Whether each element is NaN (all false for integer and bool tensors).
    pub fn isnan(&self) -> Tensor {
        self.float_test(UnaryOp::IsNan, false)
    }

    /// Whether each element is +inf or -inf (all false for integer and bool tensors).
    pub fn isinf(&self) -> Tensor {
        self.float_test(UnaryOp::IsInf, false)
    }

    /// Whether each element is finite (all true for integer and bool tensors).
    pub fn isfinite(&self) -> Tensor {
        self.float_test(UnaryOp::IsFinite, true)
    }

    fn float_test(&self, op: UnaryOp, for_integers: bool) -> Tensor {
        if self.dtype() == DType::F32 {
            Tensor::from_op(Op::Unary { func: op }, &[self])
        } else if for_integers {
            self.equal(self)
        } else {
            self.not_equal(self)
        }
    }

    /// NumPy's `nan_to_num`: NaN becomes `nan`, +inf `posinf` and -inf `neginf`, where `None`
    /// means the largest finite float32 of that sign (Keras's defaults: `nan=0.0`,
    /// `posinf=None`, `neginf=None`). Integer tensors are returned as they are.
    pub fn nan_to_num(&self, nan: f32, posinf: Option<f32>, neginf: Option<f32>) -> Tensor {
        if self.dtype() != DType::F32 {
            return self.clone();
        }
        let posinf = posinf.unwrap_or(f32::MAX);
        let neginf = neginf.unwrap_or(f32::MIN);
        let inf = Tensor::where_(&self.greater(0.0), posinf, neginf);
        let x = Tensor::where_(&self.isinf(), inf, self);
        Tensor::where_(&self.isnan(), nan, x)
    }

    /// `log(e^self + e^other)` without overflow: `max + log1p(e^-|self - other|)`, with
    /// `logaddexp(-inf, -inf) = -inf` and `logaddexp(inf, inf) = inf` as in NumPy.
    pub fn logaddexp(&self, other: impl Operand) -> Tensor {
        let (a, b) = promote(&self, &other);
        let (a, b) = (a.cast(DType::F32), b.cast(DType::F32));
        let m = a.maximum(&b);
        let d = a.subtract(&b);
        let stable = m.add(d.abs().negative().exp().log1p());
        // Equal infinities give a NaN difference: their sum is the answer.
        Tensor::where_(&d.isnan(), a.add(&b), stable)
    }

    /// `sqrt(self² + other²)` without overflow or underflow: scaled by the larger magnitude;
    /// an infinite side gives +inf even against NaN, as NumPy's `hypot` does.
    pub fn hypot(&self, other: impl Operand) -> Tensor {
        let (a, b) = promote(&self, &other);
        let (a, b) = (a.cast(DType::F32).abs(), b.cast(DType::F32).abs());
        let hi = a.maximum(&b);
        let lo = a.minimum(&b);
        let safe_hi = Tensor::where_(&hi.equal(0.0), 1.0, &hi);
        let r = lo.divide(&safe_hi);
        let scaled = hi.multiply(r.square().add(1.0).sqrt());
        let any_inf = a.isinf().logical_or(b.isinf());
        Tensor::where_(&any_inf, f32::INFINITY, scaled)
    }

    /// `x * x`.
    pub fn square(&self) -> Tensor {
        self.multiply(self)
    }

    /// `self ** exponent`. Exponents 1, 2 and 0.5 become a copy, a square and a square root,
    /// which are exact and valid for negative bases; other exponents follow `powf`.
    pub fn pow(&self, exponent: impl Operand) -> Tensor {
        let int_base = matches!(self.dtype(), DType::I32 | DType::U32);
        if let (true, Some((e, ScalarKind::Int))) = (int_base, exponent.weak_scalar()) {
            return self.int_pow(e);
        }
        if self.dtype() != DType::F32 || !exponent.is_scalar() {
            let (a, b) = promote(&self, &exponent);
            if a.dtype() != DType::F32 {
                // Integer tensors to integer tensor powers: computed in float32 and rounded.
                let p = a
                    .cast(DType::F32)
                    .binary(BinaryOp::Pow, &b.cast(DType::F32));
                return p.round().cast(a.dtype());
            }
            return a.binary(BinaryOp::Pow, &b);
        }
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
        Tensor::from_op(
            Op::Binary {
                func: BinaryOp::Pow,
            },
            &[self, &e],
        )
    }

    /// An integer tensor to a non-negative integer power, exactly (wrapping as integer
    /// multiplication does), by repeated squaring.
    fn int_pow(&self, exponent: f64) -> Tensor {
        if exponent < 0.0 || exponent > u32::MAX as f64 {
            return Tensor::invalid(Error::DType {
                op: "power".into(),
                detail: format!(
                    "integers cannot be raised to the power {exponent} (shape {}, {}); cast \
                     to float32 first",
                    self.shape(),
                    self.dtype()
                ),
            });
        }
        let mut e = exponent as u64;
        let mut result: Option<Tensor> = None;
        let mut base = self.clone();
        while e > 0 {
            if e & 1 == 1 {
                result = Some(match result {
                    Some(r) => r.multiply(&base),
                    None => base.clone(),
                });
            }
            e >>= 1;
            if e > 0 {
                base = base.square();
            }
        }
        result.unwrap_or_else(|| self.multiply(0).add(1))
    }

    /// `max(x, 0)`.
    pub fn relu(&self) -> Tensor {
        self.maximum(0)
    }

    /// Clips every element into `[min, max]` (`minimum(maximum(x, min), max)`).
    pub fn clip(&self, min: impl Operand, max: impl Operand) -> Tensor {
        self.maximum(min).minimum(max)
    }

    /// Chooses elementwise: `a` where `condition` is true, else `b`; the three broadcast and
    /// the branches are promoted to one dtype as Keras does.
    pub fn where_(condition: &Tensor, a: impl Operand, b: impl Operand) -> Tensor {
        let (a_t, b_t) = promote(&a, &b);
        Tensor::from_op(Op::Where, &[condition, &a_t, &b_t])
    }

    /// Converts to another dtype (`float32` to `int32` truncates toward zero; to `bool` is
    /// `x != 0`).
    pub fn cast(&self, dtype: DType) -> Tensor {
        if self.dtype() == dtype {
            return self.clone();
        }
        Tensor::from_op(Op::Cast { dtype }, &[self])
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
