//! Keras's preprocessing layers that appear inside saved models: `Normalization` (by a fixed or
//! adapted mean and variance), `CenterCrop` and `Resizing`. (`Rescaling` maps each element on its own and
//! lives with the elementwise layers.)

use super::common::{Weights, one_input};
use super::registry::{ConfigContext, Configurable};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{Layer, LayerRef, unique_name};
use crate::shape::Dim;
use crate::tensor::{Tensor, next_id};
use crate::variable::Variable;
use serde::{Deserialize, Serialize};
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

/// The configuration of a `Normalization`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizationConfig {
    /// The layer's name.
    pub name: String,
    /// The kept axes (negative counts from the end).
    pub axis: Vec<isize>,
    /// The shape of the fixed statistics, when they are fixed (else the layer has weights).
    #[serde(default)]
    pub fixed_shape: Option<Vec<usize>>,
    /// The fixed mean, row-major (empty when not fixed).
    #[serde(default)]
    pub fixed_mean: Vec<f32>,
    /// The fixed variance, row-major (empty when not fixed).
    #[serde(default)]
    pub fixed_variance: Vec<f32>,
    /// Whether it undoes the normalization.
    pub invert: bool,
}

struct NormalizationInner {
    id: u64,
    config: NormalizationConfig,
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
        Normalization::build(NormalizationConfig {
            name: unique_name("normalization"),
            axis: vec![-1],
            fixed_shape: None,
            fixed_mean: Vec::new(),
            fixed_variance: Vec::new(),
            invert: false,
        })
    }

    fn build(config: NormalizationConfig) -> Normalization {
        Normalization {
            inner: Arc::new(NormalizationInner {
                id: next_id(),
                config,
                weights: Weights::default(),
            }),
        }
    }

    /// A new layer (new weights) with the configuration changed by `f`.
    fn with(&self, f: impl FnOnce(&mut NormalizationConfig)) -> Normalization {
        let mut config = self.inner.config.clone();
        f(&mut config);
        Normalization::build(config)
    }

    /// The axes that keep their own statistics (Keras's `axis`; negative counts from the end).
    pub fn axis(self, axis: &[isize]) -> Normalization {
        self.with(|c| c.axis = axis.to_vec())
    }

    /// Fixed statistics instead of weights (Keras's `mean=` and `variance=`).
    pub fn statistics(self, fixed: FixedStatistics) -> Normalization {
        self.with(|c| {
            c.fixed_shape = Some(fixed.shape);
            c.fixed_mean = fixed.mean;
            c.fixed_variance = fixed.variance;
        })
    }

    /// Undoes the normalization instead (`mean + x * std`).
    pub fn invert(self, invert: bool) -> Normalization {
        self.with(|c| c.invert = invert)
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Normalization {
        self.with(|c| c.name = name.to_string())
    }

    fn err(&self, shape: &crate::shape::Shape, detail: String) -> Error {
        Error::IncompatibleShapes {
            op: format!("Normalization '{}'", self.inner.config.name),
            shapes: shape.to_string(),
            detail,
        }
    }

    /// The mean and variance as tensors broadcasting against the input.
    fn statistics_for(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let shape = x.shape();
        let rank = shape.rank();
        let config = &self.inner.config;
        let mut keep = Vec::with_capacity(config.axis.len());
        for &a in &config.axis {
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
        match &config.fixed_shape {
            Some(fixed_shape) => {
                let (mean, variance) = (&config.fixed_mean, &config.fixed_variance);
                let n: usize = fixed_shape.iter().product();
                if mean.len() != n || variance.len() != n || fixed_shape.len() > keep.len() {
                    return Err(self.err(
                        &shape,
                        format!(
                            "the fixed mean ({} values) and variance ({} values) of shape \
                             {fixed_shape:?} do not fit the kept axes {keep:?}",
                            mean.len(),
                            variance.len(),
                        ),
                    ));
                }
                for (i, &d) in fixed_shape.iter().rev().enumerate() {
                    broadcast[keep[keep.len() - 1 - i]] = d as i64;
                }
                let mean = Tensor::constant(HostTensor::new(fixed_shape, mean.clone())?);
                let var = Tensor::constant(HostTensor::new(fixed_shape, variance.clone())?);
                Ok((mean.reshape(&broadcast), var.reshape(&broadcast)))
            }
            None => {
                let vars = self.inner.weights.get_or_make_flagged(
                    &config.name,
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

impl Configurable for Normalization {
    const CLASS: &'static str = "Normalization";
    type Config = NormalizationConfig;

    fn config(&self) -> NormalizationConfig {
        self.inner.config.clone()
    }

    fn from_config(mut config: NormalizationConfig, _context: &ConfigContext) -> Result<Self> {
        // Statistics without a shape are not fixed ones: a file's stray values are dropped.
        if config.fixed_shape.is_none() {
            config.fixed_mean.clear();
            config.fixed_variance.clear();
        }
        Ok(Normalization::build(config))
    }
}

impl Layer for Normalization {
    fn id(&self) -> u64 {
        self.inner.id
    }

    fn name(&self) -> String {
        self.inner.config.name.clone()
    }

    fn kind(&self) -> &'static str {
        "Normalization"
    }

    fn handle(&self) -> LayerRef {
        Arc::new(self.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn variables(&self) -> Vec<Arc<Variable>> {
        self.inner.weights.list()
    }

    fn supports_masking(&self) -> bool {
        true
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("Normalization", inputs)?.cast(DType::F32);
        let (mean, variance) = self.statistics_for(&x)?;
        let std = variance.sqrt().maximum(EPSILON);
        Ok(vec![if self.inner.config.invert {
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
    config: CenterCropConfig,
}

/// The configuration of a `CenterCrop`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CenterCropConfig {
    /// The layer's name.
    pub name: String,
    /// The height kept.
    pub height: usize,
    /// The width kept.
    pub width: usize,
}

impl CenterCrop {
    /// Crops to `height × width`.
    pub fn new(height: usize, width: usize) -> CenterCrop {
        CenterCrop {
            id: next_id(),
            config: CenterCropConfig {
                name: unique_name("center_crop"),
                height,
                width,
            },
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> CenterCrop {
        let mut config = self.config;
        config.name = name.to_string();
        CenterCrop {
            id: next_id(),
            config,
        }
    }
}

impl Configurable for CenterCrop {
    const CLASS: &'static str = "CenterCrop";
    type Config = CenterCropConfig;

    fn config(&self) -> CenterCropConfig {
        self.config.clone()
    }

    fn from_config(config: CenterCropConfig, _context: &ConfigContext) -> Result<Self> {
        Ok(CenterCrop::new(config.height, config.width).name(&config.name))
    }
}

impl Layer for CenterCrop {
    fn id(&self) -> u64 {
        self.id
    }

    fn name(&self) -> String {
        self.config.name.clone()
    }

    fn kind(&self) -> &'static str {
        "CenterCrop"
    }

    fn handle(&self) -> LayerRef {
        Arc::new(self.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("CenterCrop", inputs)?.cast(DType::F32);
        let CenterCropConfig {
            name,
            height,
            width,
        } = &self.config;
        let shape = x.shape();
        let rank = shape.rank();
        if !(3..=4).contains(&rank) {
            return Err(Error::IncompatibleShapes {
                op: format!("CenterCrop '{name}'"),
                shapes: shape.to_string(),
                detail: "expects images (height, width, channels), with or without a batch".into(),
            });
        }
        let mut spec = vec![crate::ops::SliceArg::Ellipsis];
        for (axis, want) in [(rank - 3, *height), (rank - 2, *width)] {
            let Dim::Known(have) = shape.dims()[axis] else {
                return Err(Error::IncompatibleShapes {
                    op: format!("CenterCrop '{name}'"),
                    shapes: shape.to_string(),
                    detail: format!("axis {axis} must have a known size"),
                });
            };
            if have < want || want == 0 {
                return Err(Error::IncompatibleShapes {
                    op: format!("CenterCrop '{name}'"),
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

/// The configuration of a `Resizing`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResizingConfig {
    /// The layer's name.
    pub name: String,
    /// The height made.
    pub height: usize,
    /// The width made.
    pub width: usize,
    /// `bilinear` or `nearest`.
    pub interpolation: String,
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

impl Configurable for Resizing {
    const CLASS: &'static str = "Resizing";
    type Config = ResizingConfig;

    fn config(&self) -> ResizingConfig {
        ResizingConfig {
            name: self.name.clone(),
            height: self.height,
            width: self.width,
            interpolation: self.method.keras_name().to_string(),
        }
    }

    fn from_config(config: ResizingConfig, _context: &ConfigContext) -> Result<Self> {
        let method = match config.interpolation.as_str() {
            "bilinear" => ResizeMethod::Bilinear,
            "nearest" => ResizeMethod::Nearest,
            other => {
                return Err(Error::Model {
                    detail: format!(
                        "Resizing '{}': interpolation '{other}' is unknown",
                        config.name
                    ),
                });
            }
        };
        Ok(Resizing::new(config.height, config.width)
            .interpolation(method)
            .name(&config.name))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Configurable>(layer: T) -> T::Config
    where
        T::Config: Clone + PartialEq + std::fmt::Debug,
    {
        let config = layer.config();
        let back = T::from_config(config.clone(), &ConfigContext::default()).unwrap();
        assert_eq!(back.config(), config);
        config
    }

    #[test]
    fn configurations_round_trip() {
        let c = round_trip(Normalization::new().axis(&[1, -1]).invert(true).name("n"));
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"name":"n","axis":[1,-1],"fixed_shape":null,"fixed_mean":[],"fixed_variance":[],"invert":true}"#
        );
        round_trip(Normalization::new().statistics(FixedStatistics {
            shape: vec![2],
            mean: vec![1.0, 2.0],
            variance: vec![0.5, 4.0],
        }));
        let c = round_trip(CenterCrop::new(3, 4).name("crop"));
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"name":"crop","height":3,"width":4}"#
        );
        let c = round_trip(
            Resizing::new(5, 6)
                .interpolation(ResizeMethod::Nearest)
                .name("r"),
        );
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"name":"r","height":5,"width":6,"interpolation":"nearest"}"#
        );
    }

    #[test]
    fn older_and_bad_configurations() {
        let ctx = ConfigContext::default();
        // The statistics' fields may be absent; values without a shape are dropped.
        let c: NormalizationConfig =
            serde_json::from_str(r#"{"name":"n","axis":[-1],"fixed_mean":[1.0],"invert":false}"#)
                .unwrap();
        let n = Normalization::from_config(c, &ctx).unwrap();
        assert!(n.config().fixed_mean.is_empty());
        let mut c = Resizing::new(2, 2).name("r").config();
        c.interpolation = "bicubic".into();
        let e = Resizing::from_config(c, &ctx).err().unwrap().to_string();
        assert!(e.contains("Resizing 'r'") && e.contains("bicubic"), "{e}");
        assert!(
            serde_json::from_str::<CenterCropConfig>(r#"{"name":"c","height":-1,"width":2}"#)
                .is_err()
        );
    }
}
