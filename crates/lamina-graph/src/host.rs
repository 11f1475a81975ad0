//! Host tensors: plain shape + data, what users hand to `predict` and get back.

use crate::dtype::DType;
use crate::error::{Error, Result};

/// The data of a host tensor, one vector per element type.
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    /// `float32` data.
    F32(Vec<f32>),
    /// `int32` data.
    I32(Vec<i32>),
    /// `uint32` data.
    U32(Vec<u32>),
    /// `bool` data.
    Bool(Vec<bool>),
}

impl HostData {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            HostData::F32(_) => DType::F32,
            HostData::I32(_) => DType::I32,
            HostData::U32(_) => DType::U32,
            HostData::Bool(_) => DType::Bool,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            HostData::F32(v) => v.len(),
            HostData::I32(v) => v.len(),
            HostData::U32(v) => v.len(),
            HostData::Bool(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Element types that a host tensor can be built from.
pub trait Element: Copy + Send + Sync + 'static {
    /// The matching dtype.
    const DTYPE: DType;
    /// Wraps a vector of this element type.
    fn wrap(v: Vec<Self>) -> HostData;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn wrap(v: Vec<Self>) -> HostData {
        HostData::F32(v)
    }
}
impl Element for i32 {
    const DTYPE: DType = DType::I32;
    fn wrap(v: Vec<Self>) -> HostData {
        HostData::I32(v)
    }
}
impl Element for u32 {
    const DTYPE: DType = DType::U32;
    fn wrap(v: Vec<Self>) -> HostData {
        HostData::U32(v)
    }
}
impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn wrap(v: Vec<Self>) -> HostData {
        HostData::Bool(v)
    }
}

/// A tensor in host memory: a shape and row-major data.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    shape: Vec<usize>,
    data: std::sync::Arc<HostData>,
}

impl HostTensor {
    /// A tensor from a shape and row-major data; the data length must equal the product of the
    /// shape.
    pub fn new<T: Element>(shape: &[usize], data: Vec<T>) -> Result<Self> {
        Self::from_data(shape, T::wrap(data))
    }

    /// A tensor from a shape and already-wrapped data.
    pub fn from_data(shape: &[usize], data: HostData) -> Result<Self> {
        Self::from_arc(shape, std::sync::Arc::new(data))
    }

    /// A rank-0 `float32` tensor.
    pub fn scalar(value: f32) -> Self {
        HostTensor {
            shape: vec![],
            data: std::sync::Arc::new(HostData::F32(vec![value])),
        }
    }

    /// A `float32` tensor of the given shape filled with one value.
    pub fn full(shape: &[usize], value: f32) -> Result<Self> {
        let n = checked_numel(shape)?;
        Self::new(shape, vec![value; n])
    }

    /// A `float32` tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Result<Self> {
        Self::full(shape, 0.0)
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The data.
    pub fn data(&self) -> &HostData {
        &self.data
    }

    /// The shared data: cloning a host tensor, or handing it to a backend, copies nothing.
    pub fn data_arc(&self) -> &std::sync::Arc<HostData> {
        &self.data
    }

    /// A tensor over shared data; the data length must equal the product of the shape.
    pub fn from_arc(shape: &[usize], data: std::sync::Arc<HostData>) -> Result<Self> {
        let expected = checked_numel(shape)?;
        if expected != data.len() {
            return Err(Error::HostTensor {
                detail: format!(
                    "shape {shape:?} holds {expected} elements but {} were given",
                    data.len()
                ),
            });
        }
        Ok(HostTensor {
            shape: shape.to_vec(),
            data,
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor holds no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The data as `f32`, or an error if the tensor holds another type.
    pub fn as_f32(&self) -> Result<&[f32]> {
        match &*self.data {
            HostData::F32(v) => Ok(v),
            other => Err(self.wrong_type("float32", other.dtype())),
        }
    }

    /// The data as `i32`, or an error if the tensor holds another type.
    pub fn as_i32(&self) -> Result<&[i32]> {
        match &*self.data {
            HostData::I32(v) => Ok(v),
            other => Err(self.wrong_type("int32", other.dtype())),
        }
    }

    /// The data as `bool`, or an error if the tensor holds another type.
    pub fn as_bool(&self) -> Result<&[bool]> {
        match &*self.data {
            HostData::Bool(v) => Ok(v),
            other => Err(self.wrong_type("bool", other.dtype())),
        }
    }

    /// The data converted to `f32` whatever its type (bools become 0 or 1).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match &*self.data {
            HostData::F32(v) => v.clone(),
            HostData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            HostData::U32(v) => v.iter().map(|&x| x as f32).collect(),
            HostData::Bool(v) => v.iter().map(|&x| x as u8 as f32).collect(),
        }
    }

    /// Splits into shape and data.
    pub fn into_parts(self) -> (Vec<usize>, HostData) {
        let data = std::sync::Arc::unwrap_or_clone(self.data);
        (self.shape, data)
    }

    fn wrong_type(&self, wanted: &str, got: DType) -> Error {
        Error::HostTensor {
            detail: format!(
                "asked for {wanted} data but the tensor of shape {:?} holds {got}",
                self.shape
            ),
        }
    }
}

impl From<f32> for HostTensor {
    fn from(v: f32) -> Self {
        HostTensor::scalar(v)
    }
}

impl From<i32> for HostTensor {
    /// A rank-0 `int32` tensor: `.argument("n", 2)`.
    fn from(v: i32) -> Self {
        HostTensor {
            shape: vec![],
            data: std::sync::Arc::new(HostData::I32(vec![v])),
        }
    }
}

/// The most elements one tensor may hold: 2^32 (16 GiB of `float32`). Larger shapes are
/// refused with an error instead of an allocation that would abort the process.
pub const MAX_ELEMENTS: usize = 1 << 32;

/// The number of elements of a shape, or an error if it exceeds `MAX_ELEMENTS` (or any one
/// dimension does).
pub fn checked_numel(shape: &[usize]) -> Result<usize> {
    let too_big = || Error::HostTensor {
        detail: format!("shape {shape:?} has more than {MAX_ELEMENTS} elements"),
    };
    if shape.iter().any(|&d| d > MAX_ELEMENTS) {
        return Err(too_big());
    }
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(too_big)?;
    if n > MAX_ELEMENTS {
        return Err(too_big());
    }
    Ok(n)
}
