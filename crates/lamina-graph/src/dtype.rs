//! Element types of tensors.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    /// 32-bit IEEE float, the default for every layer.
    F32,
    /// 32-bit signed integer, used for indices such as `argmax`.
    I32,
    /// 32-bit unsigned integer.
    U32,
    /// Boolean, produced by comparisons and used for masks and `where`.
    Bool,
}

impl DType {
    /// The Keras/NumPy spelling of the type (`float32`, `int32`, `uint32`, `bool`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::I32 => "int32",
            DType::U32 => "uint32",
            DType::Bool => "bool",
        }
    }

    /// Whether arithmetic on this type is meaningful (every type but `Bool`).
    pub fn is_numeric(self) -> bool {
        self != DType::Bool
    }

    /// Size of one element in bytes as stored on a device (bools are stored as 4-byte words).
    pub fn size_bytes(self) -> usize {
        4
    }
}

/// The dtype two tensors are promoted to before arithmetic, following Keras 3's
/// `result_type` restricted to Lamina's dtypes: `bool` gives way to any other type, integers
/// give way to `float32`, and `int32` with `uint32` (`int64` in Keras) is `int32`.
pub fn result_type(a: DType, b: DType) -> DType {
    use DType::*;
    match (a, b) {
        (x, y) if x == y => x,
        (Bool, other) | (other, Bool) => other,
        (F32, _) | (_, F32) => F32,
        _ => I32,
    }
}

/// The kind of a Rust scalar meeting a tensor: like Python scalars in Keras, it is "weak" and
/// takes the tensor's dtype unless its kind is wider (a float meeting an integer tensor makes
/// the result `float32`; an integer meeting a bool tensor makes it `int32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarKind {
    /// A Rust `f32` or `f64`.
    Float,
    /// A Rust integer.
    Int,
    /// A Rust `bool`.
    Bool,
}

/// The dtype a tensor of dtype `tensor` and a weak scalar of `kind` are promoted to.
pub fn weak_result_type(tensor: DType, kind: ScalarKind) -> DType {
    match (tensor, kind) {
        (DType::F32, _) => DType::F32,
        (_, ScalarKind::Float) => DType::F32,
        (DType::Bool, ScalarKind::Int) => DType::I32,
        (d, _) => d,
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
