//! The primitive op IR: the small set of ops every backend implements. The rich keras.ops-style
//! methods on `Tensor` are compositions of these.

use crate::dtype::DType;
use crate::host::HostTensor;
use crate::variable::Variable;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Elementwise functions of one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnaryOp {
    /// `-x`.
    Neg,
    /// `|x|`.
    Abs,
    /// `e^x`.
    Exp,
    /// Natural logarithm.
    Log,
    /// Square root.
    Sqrt,
    /// `1 / sqrt(x)`.
    Rsqrt,
    /// `1 / x`.
    Recip,
    /// Hyperbolic tangent.
    Tanh,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// Sine.
    Sin,
    /// Cosine.
    Cos,
    /// The Gauss error function.
    Erf,
    /// Round toward negative infinity.
    Floor,
    /// Round toward positive infinity.
    Ceil,
    /// Round half to even, as NumPy does.
    Round,
    /// -1, 0 or 1.
    Sign,
    /// Logical not (bool).
    Not,
    /// Tangent.
    Tan,
    /// Inverse sine.
    Asin,
    /// Inverse cosine.
    Acos,
    /// Inverse tangent.
    Atan,
    /// Hyperbolic sine.
    Sinh,
    /// Hyperbolic cosine.
    Cosh,
    /// Inverse hyperbolic sine.
    Asinh,
    /// Inverse hyperbolic cosine.
    Acosh,
    /// Inverse hyperbolic tangent.
    Atanh,
    /// `e^x - 1`, accurate near 0.
    Expm1,
    /// `log(1 + x)`, accurate near 0.
    Log1p,
    /// Base-2 logarithm.
    Log2,
    /// Base-10 logarithm.
    Log10,
    /// Whether each element is NaN (bool; false for integers).
    IsNan,
    /// Whether each element is +inf or -inf (bool; false for integers).
    IsInf,
    /// Whether each element is neither NaN nor infinite (bool; true for integers).
    IsFinite,
}

impl UnaryOp {
    /// The keras.ops name.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "negative",
            UnaryOp::Abs => "abs",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Recip => "reciprocal",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Erf => "erf",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
            UnaryOp::Round => "round",
            UnaryOp::Sign => "sign",
            UnaryOp::Not => "logical_not",
            UnaryOp::Tan => "tan",
            UnaryOp::Asin => "arcsin",
            UnaryOp::Acos => "arccos",
            UnaryOp::Atan => "arctan",
            UnaryOp::Sinh => "sinh",
            UnaryOp::Cosh => "cosh",
            UnaryOp::Asinh => "arcsinh",
            UnaryOp::Acosh => "arccosh",
            UnaryOp::Atanh => "arctanh",
            UnaryOp::Expm1 => "expm1",
            UnaryOp::Log1p => "log1p",
            UnaryOp::Log2 => "log2",
            UnaryOp::Log10 => "log10",
            UnaryOp::IsNan => "isnan",
            UnaryOp::IsInf => "isinf",
            UnaryOp::IsFinite => "isfinite",
        }
    }

    /// Whether the result is a bool whatever the input type (the `is*` tests).
    pub fn is_test(self) -> bool {
        matches!(self, UnaryOp::IsNan | UnaryOp::IsInf | UnaryOp::IsFinite)
    }
}

/// Elementwise functions of two broadcast inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b` (true division for floats, truncating for integers).
    Div,
    /// `a ** b`.
    Pow,
    /// Elementwise maximum (NaN-propagating).
    Max,
    /// Elementwise minimum (NaN-propagating).
    Min,
    /// `a < b`.
    Less,
    /// `a <= b`.
    LessEqual,
    /// `a > b`.
    Greater,
    /// `a >= b`.
    GreaterEqual,
    /// `a == b`.
    Equal,
    /// `a != b`.
    NotEqual,
    /// Logical and (bool).
    And,
    /// Logical or (bool).
    Or,
    /// `arctan2(a, b)`: the angle of the point `(b, a)`, with NumPy's signed-zero rules.
    Atan2,
    /// `floor(a / b)` as NumPy's `floor_divide` (for integers, 0 where `b` is 0).
    FloorDiv,
    /// `a - floor(a / b) * b`, the sign of `b`, as NumPy's `mod` (for integers, 0 where `b` is
    /// 0; NaN for floats).
    Mod,
    /// Bitwise and of integers (logical and of bools), as NumPy's `bitwise_and`.
    BitwiseAnd,
    /// Bitwise or of integers (logical or of bools).
    BitwiseOr,
    /// Bitwise exclusive or of integers (of bools: `a != b`).
    BitwiseXor,
    /// `a << b` for integers; 0 where `b` is negative or at least the bit width.
    LeftShift,
    /// `a >> b` for integers (arithmetic for int32); where `b` is negative or at least the bit
    /// width, 0 (-1 for a negative int32).
    RightShift,
}

impl BinaryOp {
    /// The keras.ops name.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "subtract",
            BinaryOp::Mul => "multiply",
            BinaryOp::Div => "divide",
            BinaryOp::Pow => "power",
            BinaryOp::Max => "maximum",
            BinaryOp::Min => "minimum",
            BinaryOp::Less => "less",
            BinaryOp::LessEqual => "less_equal",
            BinaryOp::Greater => "greater",
            BinaryOp::GreaterEqual => "greater_equal",
            BinaryOp::Equal => "equal",
            BinaryOp::NotEqual => "not_equal",
            BinaryOp::And => "logical_and",
            BinaryOp::Or => "logical_or",
            BinaryOp::Atan2 => "arctan2",
            BinaryOp::FloorDiv => "floor_divide",
            BinaryOp::Mod => "mod",
            BinaryOp::BitwiseAnd => "bitwise_and",
            BinaryOp::BitwiseOr => "bitwise_or",
            BinaryOp::BitwiseXor => "bitwise_xor",
            BinaryOp::LeftShift => "left_shift",
            BinaryOp::RightShift => "right_shift",
        }
    }

    /// Whether the result is a bool whatever the input type.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Less
                | BinaryOp::LessEqual
                | BinaryOp::Greater
                | BinaryOp::GreaterEqual
                | BinaryOp::Equal
                | BinaryOp::NotEqual
        )
    }

    /// Whether the op takes bools (and only bools).
    pub fn is_logical(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or)
    }

    /// Whether the op works on the bits of integers (and, for and/or/xor, on bools).
    pub fn is_bitwise(self) -> bool {
        matches!(
            self,
            BinaryOp::BitwiseAnd
                | BinaryOp::BitwiseOr
                | BinaryOp::BitwiseXor
                | BinaryOp::LeftShift
                | BinaryOp::RightShift
        )
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
#[derive(Clone, Debug)]
pub enum Op {
    /// A model input, bound to host data when the model runs.
    Input {
        /// The input's name.
        name: String,
    },
    /// A constant baked into the graph.
    Constant(Arc<HostTensor>),
    /// A variable or a Lambda argument: a runtime value read when the model runs.
    Variable(Arc<Variable>),
    /// An elementwise function of one input.
    Unary(UnaryOp),
    /// An elementwise function of two inputs broadcast together.
    Binary(BinaryOp),
    /// `where(cond, a, b)`, the three broadcast together.
    Where,
    /// A reduction over `axes` (sorted, distinct, non-negative).
    Reduce {
        /// How elements combine.
        op: ReduceOp,
        /// The reduced axes.
        axes: Vec<usize>,
        /// Whether reduced axes stay as size 1.
        keepdims: bool,
    },
    /// `argmax`/`argmin` along one axis, giving `int32` indices.
    ArgReduce {
        /// Max or min.
        op: ArgReduceOp,
        /// The reduced axis.
        axis: usize,
        /// Whether the axis stays as size 1.
        keepdims: bool,
    },
    /// A running sum or product along one axis.
    Scan {
        /// Sum or product.
        op: ScanOp,
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
    Cast(DType),
    /// A convolution of channels-last `x` (input 0) with `kernel` (input 1) and, when there
    /// is a third input, plus `bias` (`(out,)`); see [`ConvSpec`].
    Conv(ConvSpec),
    /// Output `output` of a recurrent layer's time loop (0 the output, then the final states),
    /// kept whole until the number of steps is known, then run by the backend (natively, or
    /// unrolled); see [`crate::ops::RecurrenceSpec`] for its inputs.
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
            Op::Unary(u) => u.name().into(),
            Op::Binary(b) => b.name().into(),
            Op::Where => "where".into(),
            Op::Reduce { op, .. } => op.name().into(),
            Op::ArgReduce { op, .. } => match op {
                ArgReduceOp::ArgMax => "argmax".into(),
                ArgReduceOp::ArgMin => "argmin".into(),
            },
            Op::Scan { op, .. } => match op {
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
            Op::Cast(d) => format!("cast to {d}"),
            Op::Conv(_) => "conv".into(),
            Op::Recurrence { spec, .. } => spec.cell.kind().to_ascii_lowercase(),
        }
    }
}
