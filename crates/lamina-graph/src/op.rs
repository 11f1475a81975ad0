//! The primitive op IR: the small set of ops every backend implements. The rich keras.ops-style
//! methods on `Tensor` are compositions of these.

use crate::dtype::DType;
use crate::host::HostTensor;
use crate::variable::Variable;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The declaration of every unary op, one line each, handed to `$callback!` (an "x-macro"):
/// all that the graph crate knows of an elementwise op of one input comes from its line: the
/// [`UnaryOp`] variant and its doc, its keras.ops name ([`UnaryOp::name`]), its dtype rule
/// ([`UnaryOp::kind`]), its place in [`UnaryOp::ALL`], its `Tensor` method
/// (`ops/elementwise.rs`) and the Keras op classes rebuilt as it (`lamina-keras/src/ops.rs`). Its
/// math (the CPU function and the WGSL of each dtype) is `lamina-backend`'s `opdef::unary`,
/// whose exhaustive `match` does not compile until a new op has it.
///
/// A line reads
///
/// ```text
/// /// The doc of the variant, and of the `Tensor` method unless it has its own.
/// Variant = "keras_ops_name", Kind, keras ["KerasClass", ...],
///     /// The doc of the `Tensor` method, where it differs (optional).
///     method tensor_method;
/// ```
///
/// `Kind` is a [`UnaryKind`]. `keras [...]` lists the classes of the Keras operations
/// (`class_name` in a functional graph) that are `Tensor::unary(op)` of their one argument;
/// it is empty where the operation needs more (its own rule in `lamina-keras/src/ops.rs`).
/// `method m` makes `Tensor::m(&self) -> Tensor`, which is `self.unary(op)`; `hand_written m`
/// names a method written by hand in `ops/` (the `is*` tests, which answer integers without a
/// cast). `for_each_unary_op!(cb)` calls `cb! { <lines> }`; `for_each_unary_op!(cb, a b c)`
/// calls `cb! { a b c <lines> }`.
#[macro_export]
macro_rules! for_each_unary_op {
    ($callback:ident $(, $($leading:tt)*)?) => {
        $callback! {
            $($($leading)*)?
            /// `-x`.
            Neg = "negative", Numeric, keras ["Negative"], method negative;
            /// `|x|`.
            Abs = "abs", Numeric, keras ["Absolute"], method abs;
            /// `e^x`.
            Exp = "exp", Float, keras ["Exp"], method exp;
            /// Natural logarithm.
            Log = "log", Float, keras ["Log"], method log;
            /// Square root.
            Sqrt = "sqrt", Float, keras ["Sqrt"], method sqrt;
            /// `1 / sqrt(x)`.
            Rsqrt = "rsqrt", Float, keras ["Rsqrt"], method rsqrt;
            /// `1 / x`.
            Recip = "reciprocal", Float, keras ["Reciprocal"], method reciprocal;
            /// Hyperbolic tangent.
            Tanh = "tanh", Float, keras ["Tanh"], method tanh;
            /// Logistic sigmoid `1 / (1 + e^-x)`.
            Sigmoid = "sigmoid", Float, keras ["Sigmoid"], method sigmoid;
            /// Sine.
            Sin = "sin", Float, keras ["Sin"], method sin;
            /// Cosine.
            Cos = "cos", Float, keras ["Cos"], method cos;
            /// The Gauss error function.
            Erf = "erf", Float, keras ["Erf"], method erf;
            /// The complementary error function `1 - erf(x)`, precise where `erf` is near 1.
            Erfc = "erfc", Float, keras ["Erfc"], method erfc;
            /// Rounds toward negative infinity.
            Floor = "floor", Float, keras ["Floor"], method floor;
            /// Rounds toward positive infinity.
            Ceil = "ceil", Float, keras ["Ceil"], method ceil;
            /// Rounds half to even, as NumPy does.
            // Keras's `Round` takes `decimals`: its own rule.
            Round = "round", Float, keras [], method round;
            /// -1, 0 or 1 by the sign of each element (NaN stays NaN).
            Sign = "sign", Numeric, keras ["Sign"], method sign;
            /// Logical not of a bool tensor.
            // Keras's `LogicalNot` casts its argument to bool: its own rule.
            Not = "logical_not", Logical, keras [], method logical_not;
            /// Tangent.
            Tan = "tan", Float, keras ["Tan"], method tan;
            /// Inverse sine (NaN outside [-1, 1]).
            Asin = "arcsin", Float, keras ["Arcsin"], method arcsin;
            /// Inverse cosine (NaN outside [-1, 1]).
            Acos = "arccos", Float, keras ["Arccos"], method arccos;
            /// Inverse tangent.
            Atan = "arctan", Float, keras ["Arctan"], method arctan;
            /// Hyperbolic sine.
            Sinh = "sinh", Float, keras ["Sinh"], method sinh;
            /// Hyperbolic cosine.
            Cosh = "cosh", Float, keras ["Cosh"], method cosh;
            /// Inverse hyperbolic sine.
            Asinh = "arcsinh", Float, keras ["Arcsinh"], method arcsinh;
            /// Inverse hyperbolic cosine (NaN below 1).
            Acosh = "arccosh", Float, keras ["Arccosh"], method arccosh;
            /// Inverse hyperbolic tangent (±inf at ±1, NaN outside).
            Atanh = "arctanh", Float, keras ["Arctanh"], method arctanh;
            /// `e^x - 1`, accurate for `x` near 0 where `exp(x) - 1` loses every digit.
            Expm1 = "expm1", Float, keras ["Expm1"], method expm1;
            /// `log(1 + x)`, accurate for `x` near 0.
            Log1p = "log1p", Float, keras ["Log1p"], method log1p;
            /// Base-2 logarithm.
            Log2 = "log2", Float, keras ["Log2"], method log2;
            /// Base-10 logarithm.
            Log10 = "log10", Float, keras ["Log10"], method log10;
            /// Whether each element is NaN (bool; false for integers).
            IsNan = "isnan", FloatTest, keras ["Isnan"], hand_written isnan;
            /// Whether each element is +inf or -inf (bool; false for integers).
            IsInf = "isinf", FloatTest, keras ["Isinf"], hand_written isinf;
            /// Whether each element is neither NaN nor infinite (bool; true for integers).
            IsFinite = "isfinite", FloatTest, keras ["Isfinite"], hand_written isfinite;
        }
    };
}
pub(crate) use for_each_unary_op;

/// The declaration of every binary op, one line each, handed to `$callback!` as
/// [`for_each_unary_op!`] does, in the same form: `Kind` is a [`BinaryKind`], the Keras
/// classes are rebuilt as `apply_binary(op, a, b)` (Python scalars on either side), and
/// `method m` makes `Tensor::m(&self, other: impl Operand) -> Tensor`, which is
/// `self.binary(op, &other)`.
#[macro_export]
macro_rules! for_each_binary_op {
    ($callback:ident $(, $($leading:tt)*)?) => {
        $callback! {
            $($($leading)*)?
            /// `a + b`.
            Add = "add", Arithmetic, keras ["Add"],
                /// `self + other`, broadcasting.
                method add;
            /// `a - b`.
            Sub = "subtract", Arithmetic, keras ["Subtract"],
                /// `self - other`, broadcasting.
                method subtract;
            /// `a * b`.
            Mul = "multiply", Arithmetic, keras ["Multiply"],
                /// `self * other`, broadcasting.
                method multiply;
            /// `a / b` (true division for floats, truncating for integers).
            Div = "divide", Float, keras ["Divide", "TrueDivide"],
                /// True division `self / other`, broadcasting: integers and bools are divided as
                /// `float32`, as Keras's `divide` does (`int32 / 2` is `float32`). Use
                /// [`Tensor::floor_divide`] for `//`.
                method divide;
            /// `a ** b`.
            // `Tensor::pow` keeps integer powers of integers exact.
            Pow = "power", Float, keras ["Power"], hand_written pow;
            /// Elementwise maximum (NaN-propagating).
            Max = "maximum", Arithmetic, keras ["Maximum"],
                /// Elementwise maximum, broadcasting; NaN wins, as in NumPy.
                method maximum;
            /// Elementwise minimum (NaN-propagating).
            Min = "minimum", Arithmetic, keras ["Minimum"],
                /// Elementwise minimum, broadcasting; NaN wins, as in NumPy.
                method minimum;
            /// `a < b`.
            Less = "less", Comparison, keras ["Less"],
                /// `self < other` as bools.
                method less;
            /// `a <= b`.
            LessEqual = "less_equal", Comparison, keras ["LessEqual"],
                /// `self <= other` as bools.
                method less_equal;
            /// `a > b`.
            Greater = "greater", Comparison, keras ["Greater"],
                /// `self > other` as bools.
                method greater;
            /// `a >= b`.
            GreaterEqual = "greater_equal", Comparison, keras ["GreaterEqual"],
                /// `self >= other` as bools.
                method greater_equal;
            /// `a == b`.
            Equal = "equal", Comparison, keras ["Equal"],
                /// `self == other` as bools.
                method equal;
            /// `a != b`.
            NotEqual = "not_equal", Comparison, keras ["NotEqual"],
                /// `self != other` as bools.
                method not_equal;
            /// Logical and (bool).
            // Keras's `LogicalAnd` casts its arguments to bool: its own rule.
            And = "logical_and", Logical, keras [],
                /// Logical and of bool tensors.
                method logical_and;
            /// Logical or (bool).
            Or = "logical_or", Logical, keras [],
                /// Logical or of bool tensors.
                method logical_or;
            /// `arctan2(a, b)`: the angle of the point `(b, a)`, with NumPy's signed-zero rules.
            Atan2 = "arctan2", Float, keras ["Arctan2"],
                /// `arctan2(self, other)`: the angle of the point `(other, self)` in `[-pi, pi]`.
                method arctan2;
            /// `floor(a / b)` as NumPy's `floor_divide` (for integers, 0 where `b` is 0).
            FloorDiv = "floor_divide", Arithmetic, keras ["FloorDivide"],
                /// Python's `//` (NumPy's `floor_divide`): rounds the quotient toward negative
                /// infinity; integer division by 0 gives 0.
                method floor_divide;
            /// `a - floor(a / b) * b`, the sign of `b`, as NumPy's `mod` (for integers, 0 where
            /// `b` is 0; NaN for floats).
            Mod = "mod", Arithmetic, keras ["Mod"],
                /// Python's `%` (NumPy's `mod`): the remainder with the sign of the divisor;
                /// integer modulo 0 gives 0, float modulo 0 gives NaN.
                method floor_mod;
            /// Bitwise and of integers (logical and of bools), as NumPy's `bitwise_and`.
            BitwiseAnd = "bitwise_and", Bitwise, keras ["BitwiseAnd"],
                /// Bitwise and of integers (logical and of bools), NumPy's `bitwise_and`.
                method bitwise_and;
            /// Bitwise or of integers (logical or of bools).
            BitwiseOr = "bitwise_or", Bitwise, keras ["BitwiseOr"], method bitwise_or;
            /// Bitwise exclusive or of integers (of bools: `a != b`).
            BitwiseXor = "bitwise_xor", Bitwise, keras ["BitwiseXor"],
                /// Bitwise exclusive or of integers (`!=` of bools).
                method bitwise_xor;
            /// `a << b` for integers; 0 where `b` is negative or at least the bit width.
            LeftShift = "left_shift", Bitwise, keras ["BitwiseLeftShift", "LeftShift"],
                /// `self << other` for integers; 0 where the shift is negative or 32 or more.
                method left_shift;
            /// `a >> b` for integers (arithmetic for int32); where `b` is negative or at least
            /// the bit width, 0 (-1 for a negative int32).
            RightShift = "right_shift", Bitwise, keras ["BitwiseRightShift", "RightShift"],
                /// `self >> other` for integers (arithmetic for int32); a shift that is negative
                /// or 32 or more gives 0 (-1 for a negative int32), as in NumPy.
                method right_shift;
        }
    };
}
pub(crate) use for_each_binary_op;

/// What a unary op takes and gives: the rule by which `Tensor::unary` casts its input (and
/// type inference refuses other dtypes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryKind {
    /// Takes numbers (not bools) and keeps their dtype (`negative`, `abs`, `sign`).
    Numeric,
    /// Takes bools and gives bools (`logical_not`).
    Logical,
    /// A float function: `Tensor::unary` casts integer and bool inputs to `float32` first, as
    /// Keras does (`sqrt(int32)` is `float32`).
    Float,
    /// A test of floats, giving bools (the `is*` tests); `Tensor::unary` casts integer and bool
    /// inputs to `float32` first.
    FloatTest,
}

/// What a binary op takes and gives: the rule by which `apply_binary` promotes its operands
/// (and type inference refuses other dtypes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryKind {
    /// Takes numbers of one dtype and gives that dtype (`add`, `maximum`, `floor_divide`).
    Arithmetic,
    /// Computed in `float32`: `apply_binary` casts integer and bool operands first (`divide`,
    /// `power`, `arctan2`).
    Float,
    /// Gives bools whatever the operands' dtype (`less`, `equal`).
    Comparison,
    /// Takes bools and gives bools (`logical_and`, `logical_or`).
    Logical,
    /// Works on the bits of integers (and, for and/or/xor, on bools).
    Bitwise,
}

/// The op enum, its list, names and kinds, from the lines of a `for_each_*_op!` declaration.
macro_rules! declare_ops {
    (
        $(#[$enum_doc:meta])* $Enum:ident, $Kind:ident, $every:literal;
        $(
            $(#[$doc:meta])*
            $op:ident = $name:literal, $kind:ident, keras [$($class:literal),*],
            $(#[$method_doc:meta])* $how:ident $method:ident;
        )*
    ) => {
        $(#[$enum_doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $Enum {
            $($(#[$doc])* $op,)*
        }

        impl $Enum {
            #[doc = concat!("Every ", $every, " op, in declaration order.")]
            pub const ALL: [$Enum; [$($Enum::$op),*].len()] = [$($Enum::$op),*];

            /// The keras.ops name.
            pub fn name(self) -> &'static str {
                match self {
                    $($Enum::$op => $name,)*
                }
            }

            /// What the op takes and gives.
            pub fn kind(self) -> $Kind {
                match self {
                    $($Enum::$op => $Kind::$kind,)*
                }
            }
        }
    };
}

for_each_unary_op! {
    declare_ops,
    /// Elementwise functions of one input.
    UnaryOp, UnaryKind, "unary";
}

for_each_binary_op! {
    declare_ops,
    /// Elementwise functions of two broadcast inputs.
    BinaryOp, BinaryKind, "binary";
}

impl UnaryOp {
    /// Whether the result is a bool whatever the input type (the `is*` tests).
    pub fn is_test(self) -> bool {
        self.kind() == UnaryKind::FloatTest
    }
}

impl BinaryOp {
    /// Whether the result is a bool whatever the input type.
    pub fn is_comparison(self) -> bool {
        self.kind() == BinaryKind::Comparison
    }

    /// Whether the op takes bools (and only bools).
    pub fn is_logical(self) -> bool {
        self.kind() == BinaryKind::Logical
    }

    /// Whether the op works on the bits of integers (and, for and/or/xor, on bools).
    pub fn is_bitwise(self) -> bool {
        self.kind() == BinaryKind::Bitwise
    }
}

/// How a reduction combines the elements it reduces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReduceOp {
    /// Sum.
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
    /// Product.
    Prod,
}

impl ReduceOp {
    /// The keras.ops name.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::Prod => "prod",
        }
    }
}

/// Which index a reduction to an index picks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgReduceOp {
    /// The index of the first maximum.
    ArgMax,
    /// The index of the first minimum.
    ArgMin,
}

/// A running reduction along one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanOp {
    /// Running sum.
    CumSum,
    /// Running product.
    CumProd,
}

/// One axis of a slice, in NumPy's terms: `start:stop:step`, with negative values counted from
/// the end and `None` meaning the natural bound for the step's direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AxisSlice {
    /// First index, or `None` for the start (the end when the step is negative).
    pub start: Option<i64>,
    /// One past the last index, or `None` for the end (before the start when negative).
    pub stop: Option<i64>,
    /// Step; never 0.
    pub step: i64,
}

impl AxisSlice {
    /// The whole axis.
    pub const FULL: AxisSlice = AxisSlice {
        start: None,
        stop: None,
        step: 1,
    };

    /// Whether this is the slice of one index `i:i+1` (or `-1:`), one element whatever the size.
    pub fn is_single_index(&self) -> bool {
        match (self.start, self.stop) {
            (Some(-1), None) => self.step == 1,
            (Some(s), Some(e)) => self.step == 1 && s.checked_add(1) == Some(e) && e != 0,
            _ => false,
        }
    }

    /// Resolves the slice against an axis of `size` elements: `(first index, count, step)`,
    /// following NumPy's clamping rules. The step is clamped to the axis size (which selects
    /// the same elements), so that no later index arithmetic can overflow; a step of 0 selects
    /// nothing.
    pub fn resolve(&self, size: usize) -> (usize, usize, i64) {
        let n = size.min(1 << 48) as i64;
        if self.step == 0 {
            return (0, 0, 1);
        }
        let step = self.step.clamp(-n.max(1), n.max(1));
        let norm = |v: i64, lo: i64, hi: i64| {
            let v = if v < 0 { v.saturating_add(n) } else { v };
            v.clamp(lo, hi)
        };
        let (start, stop) = if step > 0 {
            (
                self.start.map_or(0, |s| norm(s, 0, n)),
                self.stop.map_or(n, |s| norm(s, 0, n)),
            )
        } else {
            (
                self.start.map_or(n - 1, |s| norm(s, -1, n - 1)),
                self.stop.map_or(-1, |s| norm(s, -1, n - 1)),
            )
        };
        let count = if step > 0 {
            if stop > start {
                (stop - start + step - 1) / step
            } else {
                0
            }
        } else if start > stop {
            (start - stop - step - 1) / (-step)
        } else {
            0
        };
        (start.max(0) as usize, count as usize, step)
    }
}

impl fmt::Display for AxisSlice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        write!(f, "{}:{}", o(self.start), o(self.stop))?;
        if self.step != 1 {
            write!(f, ":{}", self.step)?;
        }
        Ok(())
    }
}

/// The geometry of a convolution over the spatial axes of channels-last tensors: input
/// `(batch, spatial..., in)`, kernel `(k..., in / groups, out)`, output `(batch, spatial'...,
/// out)`. The input is first spread by `input_dilation` (zeros between its elements, as a
/// transposed convolution needs), then padded by `padding`, then the kernel, spread by
/// `dilation`, slides over it by `strides`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvSpec {
    /// Step of the window per spatial axis (at least 1).
    pub strides: Vec<usize>,
    /// Spacing of the kernel taps per spatial axis (at least 1).
    pub dilation: Vec<usize>,
    /// Spacing of the input elements per spatial axis (at least 1; more for transposed
    /// convolutions).
    pub input_dilation: Vec<usize>,
    /// Zeros added before and after each spatial axis.
    pub padding: Vec<(usize, usize)>,
    /// Channel groups: input and output channels split into this many independent parts.
    pub groups: usize,
}

impl ConvSpec {
    /// A plain convolution of `rank` spatial axes: stride 1, no dilation, no padding, one group.
    pub fn new(rank: usize) -> ConvSpec {
        ConvSpec {
            strides: vec![1; rank],
            dilation: vec![1; rank],
            input_dilation: vec![1; rank],
            padding: vec![(0, 0); rank],
            groups: 1,
        }
    }

    /// The number of spatial axes.
    pub fn rank(&self) -> usize {
        self.strides.len()
    }

    /// The output length of spatial axis `d` for an input of `input` and a kernel of `kernel`
    /// elements, or `None` where the (dilated) kernel is longer than the padded input.
    pub fn output_len(&self, d: usize, input: usize, kernel: usize) -> Option<usize> {
        let spread = if input == 0 {
            0
        } else {
            (input - 1).checked_mul(self.input_dilation[d])? + 1
        };
        let padded = spread
            .checked_add(self.padding[d].0)?
            .checked_add(self.padding[d].1)?;
        let k_eff = kernel.checked_sub(1)?.checked_mul(self.dilation[d])? + 1;
        if kernel == 0 || padded < k_eff {
            return None;
        }
        Some((padded - k_eff) / self.strides[d] + 1)
    }
}

/// One dimension of a reshape target: a size, -1 for "whatever is left", or `-2 - axis` for
/// "the size of the input's `axis`" (a run-time dimension, known when the program is
/// specialised for concrete input shapes; see `Tensor::reshape_dims`).
pub type ReshapeDim = i64;

/// A primitive op: what a node of the expression graph computes from its inputs.
///
/// The compute ops serialise as a model file records them in a recorded body (a Lambda's, a
/// custom activation's): an object whose `op` is the variant's name in snake case, beside its
/// fields (`{"op": "reduce", "func": "sum", "axes": [1], "keepdims": false}`). The leaves a
/// graph holds (inputs, constants, variables) and recurrences are not serialised: a file
/// records its own leaves ([`crate::saving::format::OpRecord`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// A model input, bound to host data when the model runs.
    #[serde(skip)]
    Input {
        /// The input's name.
        name: String,
    },
    /// A constant baked into the graph.
    #[serde(skip)]
    Constant(Arc<HostTensor>),
    /// A variable or a Lambda argument: a runtime value read when the model runs.
    #[serde(skip)]
    Variable(Arc<Variable>),
    /// An elementwise function of one input.
    Unary {
        /// Which function.
        func: UnaryOp,
    },
    /// An elementwise function of two inputs broadcast together.
    Binary {
        /// Which function.
        func: BinaryOp,
    },
    /// `where(cond, a, b)`, the three broadcast together.
    Where,
    /// A reduction over `axes` (sorted, distinct, non-negative).
    Reduce {
        /// How elements combine.
        func: ReduceOp,
        /// The reduced axes.
        axes: Vec<usize>,
        /// Whether reduced axes stay as size 1.
        keepdims: bool,
    },
    /// `argmax`/`argmin` along one axis, giving `int32` indices.
    ArgReduce {
        /// Max or min.
        func: ArgReduceOp,
        /// The reduced axis.
        axis: usize,
        /// Whether the axis stays as size 1.
        keepdims: bool,
    },
    /// A running sum or product along one axis.
    Scan {
        /// Sum or product.
        func: ScanOp,
        /// The axis.
        axis: usize,
    },
    /// A view with a new shape (same elements, row-major order); one dim may be -1.
    Reshape {
        /// The target, as given (sizes and at most one -1).
        target: Vec<ReshapeDim>,
    },
    /// A view with axes reordered: output axis `i` is input axis `perm[i]`.
    Permute {
        /// The permutation.
        perm: Vec<usize>,
    },
    /// A view broadcast to a larger shape (NumPy rules).
    BroadcastTo {
        /// The target shape.
        shape: Vec<usize>,
    },
    /// A strided view: one `AxisSlice` per input axis.
    Slice {
        /// The slice of each axis.
        axes: Vec<AxisSlice>,
    },
    /// A view with a new axis of size 1 at `axis` (of the output).
    ExpandDims {
        /// Where the new axis goes.
        axis: usize,
    },
    /// A view without the given size-1 axes (sorted, distinct).
    Squeeze {
        /// The removed axes.
        axes: Vec<usize>,
    },
    /// The inputs joined along `axis`.
    Concat {
        /// The axis.
        axis: usize,
    },
    /// `take`: the slices of `params` (input 0) along `axis` picked by the integer `indices`
    /// (input 1); the output's shape is `params[..axis] + indices + params[axis + 1..]`. An index
    /// outside `0..size` is an error on the CPU and reads zeros on the GPU, never out of bounds.
    Gather {
        /// The axis of `params` the indices pick along.
        axis: usize,
    },
    /// NumPy `matmul` of two tensors of rank 2 or more, batch dims broadcast.
    MatMul,
    /// Conversion to another element type.
    Cast {
        /// The target element type.
        dtype: DType,
    },
    /// A convolution of channels-last `x` (input 0) with `kernel` (input 1) and, when there
    /// is a third input, plus `bias` (`(out,)`); see [`ConvSpec`].
    Conv {
        /// Strides, dilations, padding and groups.
        spec: ConvSpec,
    },
    /// Output `output` of a recurrent layer's time loop (0 the output, then the final states),
    /// kept whole until the number of steps is known, then run by the backend (natively, or
    /// unrolled); see [`crate::ops::RecurrenceSpec`] for its inputs.
    #[serde(skip)]
    Recurrence {
        /// The loop.
        spec: std::sync::Arc<crate::ops::RecurrenceSpec>,
        /// Which output this node is.
        output: usize,
    },
}

impl Op {
    /// The op's name in keras.ops spelling, for error messages and summaries.
    pub fn name(&self) -> String {
        match self {
            Op::Input { .. } => "input".into(),
            Op::Constant(_) => "constant".into(),
            Op::Variable(v) => format!("variable '{}'", v.name()),
            Op::Unary { func } => func.name().into(),
            Op::Binary { func } => func.name().into(),
            Op::Where => "where".into(),
            Op::Reduce { func, .. } => func.name().into(),
            Op::ArgReduce { func, .. } => match func {
                ArgReduceOp::ArgMax => "argmax".into(),
                ArgReduceOp::ArgMin => "argmin".into(),
            },
            Op::Scan { func, .. } => match func {
                ScanOp::CumSum => "cumsum".into(),
                ScanOp::CumProd => "cumprod".into(),
            },
            Op::Reshape { .. } => "reshape".into(),
            Op::Permute { .. } => "transpose".into(),
            Op::BroadcastTo { .. } => "broadcast_to".into(),
            Op::Slice { .. } => "slice".into(),
            Op::ExpandDims { .. } => "expand_dims".into(),
            Op::Squeeze { .. } => "squeeze".into(),
            Op::Concat { .. } => "concatenate".into(),
            Op::Gather { .. } => "take".into(),
            Op::MatMul => "matmul".into(),
            Op::Cast { dtype } => format!("cast to {dtype}"),
            Op::Conv { .. } => "conv".into(),
            Op::Recurrence { spec, .. } => spec.cell.kind().to_ascii_lowercase(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `IsNan` as serde's `rename_all = "snake_case"` spells it: `is_nan`.
    fn snake_case(variant: &str) -> String {
        let mut s = String::new();
        for (i, c) in variant.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        }
        s
    }

    #[test]
    fn the_declarations_make_complete_lists_distinct_names_and_stable_serde_names() {
        for (i, op) in UnaryOp::ALL.into_iter().enumerate() {
            assert_eq!(op as usize, i);
            assert!(!UnaryOp::ALL[..i].iter().any(|o| o.name() == op.name()));
            // Saved programs store these: they are the variants' names in snake case.
            let saved = serde_json::to_value(op).unwrap();
            assert_eq!(saved, snake_case(&format!("{op:?}")).as_str());
            assert_eq!(serde_json::from_value::<UnaryOp>(saved).unwrap(), op);
        }
        for (i, op) in BinaryOp::ALL.into_iter().enumerate() {
            assert_eq!(op as usize, i);
            assert!(!BinaryOp::ALL[..i].iter().any(|o| o.name() == op.name()));
            let saved = serde_json::to_value(op).unwrap();
            assert_eq!(saved, snake_case(&format!("{op:?}")).as_str());
            assert_eq!(serde_json::from_value::<BinaryOp>(saved).unwrap(), op);
        }
        assert_eq!(serde_json::to_value(UnaryOp::IsNan).unwrap(), "is_nan");
        assert_eq!(
            serde_json::to_value(BinaryOp::FloorDiv).unwrap(),
            "floor_div"
        );
        assert!(UnaryOp::IsFinite.is_test() && !UnaryOp::Sign.is_test());
        assert!(BinaryOp::NotEqual.is_comparison() && BinaryOp::Or.is_logical());
        assert!(BinaryOp::RightShift.is_bitwise() && !BinaryOp::Mod.is_bitwise());
    }
}
