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

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
