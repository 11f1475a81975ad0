//! Keras's preprocessing layers that appear inside saved models: `Normalization` (by a fixed or
//! adapted mean and variance), `CenterCrop` and `Resizing`. (`Rescaling` maps each element on its own and
//! lives with the elementwise layers.)

use super::common::{Weights, one_input};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{Layer, unique_name};
use crate::shape::Dim;
use crate::tensor::{Tensor, next_id};
use crate::variable::Variable;
use std::sync::Arc;

/// Keras's `backend.epsilon()`, the floor of the standard deviation `Normalization` divides by.
const EPSILON: f32 = 1e-7;

/// A fixed mean and variance given to `Normalization` (Keras's `mean=`, `variance=`): scalars,
/// or values of `shape` aligned with the kept axes from the last one backwards.
#[derive(Clone, Debug, PartialEq)]
pub struct FixedStatistics {
    /// The shape of `mean` and `variance` (empty for scalars).
    pub shape: Vec<usize>,
    /// The mean, row-major.
    pub mean: Vec<f32>,
    /// The variance, row-major.
    pub variance: Vec<f32>,
}

struct NormalizationInner {
    id: u64,
    name: String,
    axis: Vec<isize>,
    fixed: Option<FixedStatistics>,
    invert: bool,
    weights: Weights,
}

/// Keras's `Normalization(axis=-1, mean=None, variance=None, invert=False)`:
/// `(x - mean) / max(sqrt(variance), 1e-7)` (or `mean + x * max(sqrt(variance), 1e-7)` when
/// inverted), with one mean and variance per index of the kept `axis` (an empty list keeps none:
/// one scalar statistic). Without fixed statistics its non-trainable weights are `mean` (zeros),
/// `variance` (ones) and `count` (an int32 scalar), as Keras's adapted layer has them.
#[derive(Clone)]
pub struct Normalization {
    inner: Arc<NormalizationInner>,
}

impl Default for Normalization {
    fn default() -> Self {
        Normalization::new()
    }
}

impl Normalization {
    /// A normalization over the last axis, with weights for its statistics.
    pub fn new() -> Normalization {
        Normalization::build(unique_name("normalization"), vec![-1], None, false)
    }

    fn build(
        name: String,
        axis: Vec<isize>,
        fixed: Option<FixedStatistics>,
        invert: bool,
    ) -> Normalization {
        Normalization {
            inner: Arc::new(NormalizationInner {
                id: next_id(),
                name,
                axis,
                fixed,
                invert,
                weights: Weights::default(),
            }),
        }
    }

    fn rebuilt(&self) -> (String, Vec<isize>, Option<FixedStatistics>, bool) {
        let i = &self.inner;
        (i.name.clone(), i.axis.clone(), i.fixed.clone(), i.invert)
    }

    /// The axes that keep their own statistics (Keras's `axis`; negative counts from the end).
    pub fn axis(self, axis: &[isize]) -> Normalization {
        let (name, _, fixed, invert) = self.rebuilt();
        Normalization::build(name, axis.to_vec(), fixed, invert)
    }

    /// Fixed statistics instead of weights (Keras's `mean=` and `variance=`).
    pub fn statistics(self, fixed: FixedStatistics) -> Normalization {
        let (name, axis, _, invert) = self.rebuilt();
        Normalization::build(name, axis, Some(fixed), invert)
    }

    /// Undoes the normalization instead (`mean + x * std`).
    pub fn invert(self, invert: bool) -> Normalization {
        let (name, axis, fixed, _) = self.rebuilt();
        Normalization::build(name, axis, fixed, invert)
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Normalization {
        let (_, axis, fixed, invert) = self.rebuilt();
        Normalization::build(name.to_string(), axis, fixed, invert)
    }

    /// The kept axes, the fixed statistics (if any), and whether it inverts.
    pub fn config(&self) -> (&[isize], Option<&FixedStatistics>, bool) {
        let i = &self.inner;
        (&i.axis, i.fixed.as_ref(), i.invert)
    }

    fn err(&self, shape: &crate::shape::Shape, detail: String) -> Error {
        Error::IncompatibleShapes {
            op: format!("Normalization '{}'", self.inner.name),
            shapes: shape.to_string(),
            detail,
        }
    }

    /// The mean and variance as tensors broadcasting against the input.
    fn statistics_for(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let shape = x.shape();
        let rank = shape.rank();
        let mut keep = Vec::with_capacity(self.inner.axis.len());
        for &a in &self.inner.axis {
            let k = if a < 0 { a + rank as isize } else { a };
            if !(0..rank as isize).contains(&k) {
                return Err(self.err(&shape, format!("axis {a} is not an axis of the input")));
            }
            keep.push(k as usize);
        }
        keep.sort_unstable();
        keep.dedup();
        let mut kept_sizes = Vec::with_capacity(keep.len());
        for &k in &keep {
            match shape.dims()[k] {
                Dim::Known(n) => kept_sizes.push(n),
                _ => {
                    return Err(self.err(&shape, format!("kept axis {k} must have a known size")));
                }
            }
        }
        let mut broadcast = vec![1i64; rank];
        match &self.inner.fixed {
            Some(f) => {
                let n: usize = f.shape.iter().product();
                if f.mean.len() != n || f.variance.len() != n || f.shape.len() > keep.len() {
                    return Err(self.err(
                        &shape,
                        format!(
                            "the fixed mean ({} values) and variance ({} values) of shape {:?} \
                             do not fit the kept axes {keep:?}",
                            f.mean.len(),
                            f.variance.len(),
                            f.shape
                        ),
                    ));
                }
                for (i, &d) in f.shape.iter().rev().enumerate() {
                    broadcast[keep[keep.len() - 1 - i]] = d as i64;
                }
                let mean = Tensor::constant(HostTensor::new(&f.shape, f.mean.clone())?);
                let var = Tensor::constant(HostTensor::new(&f.shape, f.variance.clone())?);
                Ok((mean.reshape(&broadcast), var.reshape(&broadcast)))
            }
            None => {
                let vars = self.inner.weights.get_or_make_flagged(
                    &self.inner.name,
                    &[
                        ("mean", kept_sizes.clone()),
                        ("variance", kept_sizes),
                        ("count", Vec::new()),
                    ],
                    &["mean", "variance", "count"],
                    |name, shape| match name {
                        "variance" => HostTensor::full(shape, 1.0),
                        "count" => HostTensor::new::<i32>(shape, vec![0]),
                        _ => HostTensor::zeros(shape),
                    },
                )?;
                for &k in &keep {
                    broadcast[k] = -1;
                }
                let shaped = |v: &Arc<Variable>| {
                    let dims: Vec<i64> = broadcast
                        .iter()
                        .zip(shape.dims())
                        .map(|(&b, d)| match (b, d) {
                            (-1, Dim::Known(n)) => *n as i64,
                            _ => 1,
                        })
                        .collect();
                    Tensor::variable(v.clone()).reshape(&dims)
                };
                Ok((shaped(&vars[0]), shaped(&vars[1])))
            }
        }
    }
}

impl Layer for Normalization {
    super::common::weighted_layer_identity!("Normalization");

    fn supports_masking(&self) -> bool {
        true
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("Normalization", inputs)?.cast(DType::F32);
        let (mean, variance) = self.statistics_for(&x)?;
        let std = variance.sqrt().maximum(EPSILON);
        Ok(vec![if self.inner.invert {
            mean.add(x.multiply(&std))
        } else {
            x.subtract(&mean).divide(&std)
        }])
    }
}

/// Keras's `CenterCrop(height, width, data_format=None)` for channels-last images: the central
/// `height × width` window (rounding toward the top left, as Keras does). An image smaller than
/// the window along an axis is an error (Keras resizes it instead).
#[derive(Clone)]
pub struct CenterCrop {
    id: u64,
    name: String,
    height: usize,
    width: usize,
}

impl CenterCrop {
    /// Crops to `height × width`.
    pub fn new(height: usize, width: usize) -> CenterCrop {
        CenterCrop {
            id: next_id(),
            name: unique_name("center_crop"),
            height,
            width,
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> CenterCrop {
        CenterCrop {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }

    /// `(height, width)`.
    pub fn size(&self) -> (usize, usize) {
        (self.height, self.width)
    }
}

impl Layer for CenterCrop {
    super::common::layer_identity!("CenterCrop");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("CenterCrop", inputs)?.cast(DType::F32);
        let shape = x.shape();
        let rank = shape.rank();
        if !(3..=4).contains(&rank) {
            return Err(Error::IncompatibleShapes {
                op: format!("CenterCrop '{}'", self.name),
                shapes: shape.to_string(),
                detail: "expects images (height, width, channels), with or without a batch".into(),
            });
        }
        let mut spec = vec![crate::ops::SliceArg::Ellipsis];
        for (axis, want) in [(rank - 3, self.height), (rank - 2, self.width)] {
            let Dim::Known(have) = shape.dims()[axis] else {
                return Err(Error::IncompatibleShapes {
                    op: format!("CenterCrop '{}'", self.name),
                    shapes: shape.to_string(),
                    detail: format!("axis {axis} must have a known size"),
                });
            };
            if have < want || want == 0 {
                return Err(Error::IncompatibleShapes {
                    op: format!("CenterCrop '{}'", self.name),
                    shapes: shape.to_string(),
                    detail: format!(
                        "cannot crop axis {axis} of size {have} to {want} (Lamina crops only)"
                    ),
                });
            }
            let start = ((have - want) / 2) as i64;
            spec.insert(
                spec.len(),
                crate::ops::SliceArg::range(Some(start), Some(start + want as i64), 1),
            );
        }
        spec.push(crate::ops::SliceArg::range(None, None, 1));
        Ok(vec![x.slice(&spec)])
    }

    fn supports_masking(&self) -> bool {
        false
    }
}

/// How `Resizing` computes a pixel of the resized image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeMethod {
    /// Linear interpolation along each axis at the pixel centres (JAX's `bilinear` without
    /// antialiasing, Keras's default).
    Bilinear,
    /// The input pixel whose area holds the output pixel's centre.
    Nearest,
}

impl ResizeMethod {
    /// Keras's name for it.
    pub fn keras_name(self) -> &'static str {
        match self {
            ResizeMethod::Bilinear => "bilinear",
            ResizeMethod::Nearest => "nearest",
        }
    }
}

/// Keras's `Resizing(height, width, interpolation="bilinear")` for channels-last images of a
/// known size: each output pixel centre `(i + 0.5) * in / out - 0.5` read from the input by
/// `interpolation`, without antialiasing (Keras's default). The aspect-ratio options are not
/// supported.
#[derive(Clone)]
pub struct Resizing {
    id: u64,
    name: String,
    height: usize,
    width: usize,
    method: ResizeMethod,
}

impl Resizing {
    /// Resizes to `height × width` bilinearly.
    pub fn new(height: usize, width: usize) -> Resizing {
        Resizing {
            id: next_id(),
            name: unique_name("resizing"),
            height,
            width,
            method: ResizeMethod::Bilinear,
        }
    }

    /// Sets the interpolation.
    pub fn interpolation(self, method: ResizeMethod) -> Resizing {
        Resizing {
            id: next_id(),
            method,
            ..self
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Resizing {
        Resizing {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }

    /// `(height, width, interpolation)`.
    pub fn config(&self) -> (usize, usize, ResizeMethod) {
        (self.height, self.width, self.method)
    }

    /// `x` resized along `axis` from `have` to `want` values.
    fn along(&self, x: &Tensor, axis: usize, have: usize, want: usize) -> Result<Tensor> {
        crate::limits::check_layer_constant(
            &format!("Resizing '{}'", self.name),
            "the output",
            Some(want),
        )?;
        let scale = have as f64 / want as f64;
        let last = have as i64 - 1;
        let rank = x.rank();
        let mut shape = vec![1i64; rank];
        shape[axis] = want as i64;
        match self.method {
            ResizeMethod::Nearest => {
                let idx: Vec<i32> = (0..want)
                    .map(|i| (((i as f64 + 0.5) * scale).floor() as i64).clamp(0, last) as i32)
                    .collect();
                let idx = Tensor::constant(HostTensor::new(&[want], idx)?);
                Ok(x.take(&idx, axis as isize))
            }
            ResizeMethod::Bilinear => {
                let mut lo = Vec::with_capacity(want);
                let mut hi = Vec::with_capacity(want);
                let mut frac = Vec::with_capacity(want);
                for i in 0..want {
                    let src = (i as f64 + 0.5) * scale - 0.5;
                    let f = src.floor();
                    lo.push((f as i64).clamp(0, last) as i32);
                    hi.push((f as i64 + 1).clamp(0, last) as i32);
                    frac.push((src - f) as f32);
                }
                let lo = Tensor::constant(HostTensor::new(&[want], lo)?);
                let hi = Tensor::constant(HostTensor::new(&[want], hi)?);
                let keep: Vec<f32> = frac.iter().map(|f| 1.0 - f).collect();
                let frac = Tensor::constant(HostTensor::new(&[want], frac)?).reshape(&shape);
                let keep = Tensor::constant(HostTensor::new(&[want], keep)?).reshape(&shape);
                // (1 - f) * a + f * b, the weighted sum JAX computes.
                let a = x.take(&lo, axis as isize);
                let b = x.take(&hi, axis as isize);
                Ok(a.multiply(&keep).add(b.multiply(&frac)))
            }
        }
    }
}

impl Layer for Resizing {
    super::common::layer_identity!("Resizing");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("Resizing", inputs)?.cast(DType::F32);
        let shape = x.shape();
        let rank = shape.rank();
        let bad = |detail: String| Error::IncompatibleShapes {
            op: format!("Resizing '{}'", self.name),
            shapes: shape.to_string(),
            detail,
        };
        if !(3..=4).contains(&rank) {
            return Err(bad(
                "expects images (height, width, channels), with or without a batch".into(),
            ));
        }
        if self.height == 0 || self.width == 0 {
            return Err(bad(format!(
                "cannot resize to {} x {}",
                self.height, self.width
            )));
        }
        let mut y = x.clone();
        for (axis, want) in [(rank - 3, self.height), (rank - 2, self.width)] {
            let Dim::Known(have) = shape.dims()[axis] else {
                return Err(bad(format!(
                    "axis {axis} must have a known size (Lamina resizes images of a fixed size)"
                )));
            };
            if have == 0 {
                return Err(bad(format!("axis {axis} is empty")));
            }
            if have != want {
                y = self.along(&y, axis, have, want)?;
            }
        }
        Ok(vec![y])
    }

    fn supports_masking(&self) -> bool {
        false
    }
}
