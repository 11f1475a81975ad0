//! Spatial reshaping layers of image and sequence models: `ZeroPadding1D/2D`, `Cropping1D/2D`,
//! `UpSampling1D/2D`. Each is built from slices, gathers and elementwise ops, so both backends
//! run it and the GPU fuses it with its neighbours.

use super::common::{layer_identity, one_input};
use super::pooling::DataFormat;
use super::registry::{ConfigContext, Configurable};
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{Layer, unique_name};
use crate::shape::Dim;
use crate::tensor::{Tensor, next_id};
use serde::{Deserialize, Serialize};

/// The configuration of a `ZeroPadding1D`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroPadding1DConfig {
    /// The layer's name.
    pub name: String,
    /// `(before, after)`.
    pub padding: [i64; 2],
    /// `channels_last` or `channels_first`.
    pub data_format: String,
}

/// The configuration of a `ZeroPadding2D`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroPadding2DConfig {
    /// The layer's name.
    pub name: String,
    /// `((top, bottom), (left, right))`.
    pub padding: [[i64; 2]; 2],
    /// `channels_last` or `channels_first`.
    pub data_format: String,
}

/// The configuration of a `Cropping1D`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cropping1DConfig {
    /// The layer's name.
    pub name: String,
    /// `(start, end)`.
    pub cropping: [i64; 2],
}

/// The configuration of a `Cropping2D`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cropping2DConfig {
    /// The layer's name.
    pub name: String,
    /// `((top, bottom), (left, right))`.
    pub cropping: [[i64; 2]; 2],
    /// `channels_last` or `channels_first`.
    pub data_format: String,
}

/// The configuration of an `UpSampling1D`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpSampling1DConfig {
    /// The layer's name.
    pub name: String,
    /// The repeat count.
    pub size: i64,
}

/// The configuration of an `UpSampling2D`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpSampling2DConfig {
    /// The layer's name.
    pub name: String,
    /// `(rows, cols)` factors.
    pub size: [i64; 2],
    /// `channels_last` or `channels_first`.
    pub data_format: String,
    /// `nearest` or `bilinear`.
    pub interpolation: String,
}

/// `(a, b)` as `[a, b]`.
fn to_array((a, b): (i64, i64)) -> [i64; 2] {
    [a, b]
}

/// `[a, b]` as `(a, b)`.
fn to_pair([a, b]: [i64; 2]) -> (i64, i64) {
    (a, b)
}

/// A configuration error of layer `kind`, raised when it is called (so that it names the layer).
fn config_error(kind: &str, detail: impl Into<String>) -> Error {
    Error::Model {
        detail: format!("{kind}: {}", detail.into()),
    }
}

/// Refuses a negative size, naming the argument.
fn non_negative(kind: &str, arg: &str, values: &[i64]) -> Result<()> {
    match values.iter().find(|&&v| v < 0) {
        Some(v) => Err(config_error(
            kind,
            format!("{arg} must be sizes >= 0, got {v} (in {values:?})"),
        )),
        None => Ok(()),
    }
}

/// The known size of `axis` of `x`, or an error naming the layer.
fn known_dim(kind: &str, x: &Tensor, axis: usize) -> Result<usize> {
    match x.shape().dims().get(axis) {
        Some(Dim::Known(n)) => Ok(*n),
        _ => Err(Error::IncompatibleShapes {
            op: kind.to_ascii_lowercase(),
            shapes: x.shape().to_string(),
            detail: format!("axis {axis} must have a known size"),
        }),
    }
}

/// The spatial axes of a rank-`rank` input in `format`: `1..rank-1` for channels last,
/// `2..rank` for channels first. `spatial` is how many the layer expects.
fn spatial_axes(kind: &str, x: &Tensor, format: DataFormat, spatial: usize) -> Result<Vec<usize>> {
    let rank = x.rank();
    if rank != spatial + 2 {
        return Err(Error::IncompatibleShapes {
            op: kind.to_ascii_lowercase(),
            shapes: x.shape().to_string(),
            detail: format!(
                "{kind} takes inputs of rank {} (batch, {} spatial axes, channels), got rank {rank}",
                spatial + 2,
                spatial
            ),
        });
    }
    Ok(match format {
        DataFormat::ChannelsLast => (1..=spatial).collect(),
        DataFormat::ChannelsFirst => (2..2 + spatial).collect(),
    })
}

/// An index constant `[values]` (int32) for `take`.
fn indices(values: Vec<i32>) -> Result<Tensor> {
    let n = values.len();
    Ok(Tensor::constant(HostTensor::new(&[n], values)?))
}

/// `x` with `before` zeros in front and `after` behind along `axis`. The zeros are made from
/// `x`'s first slice through `where(false, ..)`, so that they carry its unknown batch size and
/// are exact zeros whatever `x` holds (NaN, infinities).
fn zero_pad(x: &Tensor, axis: usize, before: usize, after: usize) -> Result<Tensor> {
    if before == 0 && after == 0 {
        return Ok(x.clone());
    }
    let zeros = |n: usize| -> Result<Tensor> {
        crate::limits::check_layer_constant("zero padding", "the padding", Some(n))?;
        let first = x.slice_axis(axis as isize, Some(0), Some(1), 1);
        let picked = first.take(&indices(vec![0; n])?, axis as isize);
        let never = Tensor::constant(HostTensor::new(&[], vec![false])?);
        Ok(Tensor::where_(&never, &picked, 0.0f32).cast(x.dtype()))
    };
    let mut parts = Vec::with_capacity(3);
    if before > 0 {
        parts.push(zeros(before)?);
    }
    parts.push(x.clone());
    if after > 0 {
        parts.push(zeros(after)?);
    }
    Ok(Tensor::concatenate(&parts, axis as isize))
}

/// Pads the spatial axes of one input; `pads[k]` is `(before, after)` of spatial axis `k`.
fn pad_layer(
    kind: &str,
    inputs: &[Tensor],
    format: DataFormat,
    pads: &[(i64, i64)],
) -> Result<Tensor> {
    let flat: Vec<i64> = pads.iter().flat_map(|&(a, b)| [a, b]).collect();
    non_negative(kind, "padding", &flat)?;
    let x = one_input(kind, inputs)?;
    let axes = spatial_axes(kind, x, format, pads.len())?;
    if x.shape().dims().iter().skip(1).any(|d| *d == Dim::Known(0)) {
        return Err(config_error(
            kind,
            format!("cannot pad an empty input {}", x.shape()),
        ));
    }
    let mut y = x.clone();
    for (&axis, &(a, b)) in axes.iter().zip(pads) {
        y = zero_pad(&y, axis, a as usize, b as usize)?;
    }
    Ok(y)
}

/// Crops the spatial axes of one input; `crops[k]` is `(before, after)` of spatial axis `k`.
fn crop_layer(
    kind: &str,
    inputs: &[Tensor],
    format: DataFormat,
    crops: &[(i64, i64)],
) -> Result<Tensor> {
    let flat: Vec<i64> = crops.iter().flat_map(|&(a, b)| [a, b]).collect();
    non_negative(kind, "cropping", &flat)?;
    let x = one_input(kind, inputs)?;
    let axes = spatial_axes(kind, x, format, crops.len())?;
    let mut y = x.clone();
    for (&axis, &(a, b)) in axes.iter().zip(crops) {
        let n = known_dim(kind, x, axis)? as i64;
        if a.saturating_add(b) >= n {
            return Err(config_error(
                kind,
                format!(
                    "cropping ({a}, {b}) of axis {axis} leaves nothing of its {n} elements (input {})",
                    x.shape()
                ),
            ));
        }
        y = y.slice_axis(axis as isize, Some(a), Some(n - b), 1);
    }
    Ok(y)
}

/// Defines a padding or cropping layer: a struct with a name, a data format (where Keras has
/// one) and per-axis `(before, after)` sizes.
macro_rules! pad_crop_layer {
    ($ty:ident, $kind:literal, $prefix:literal, $n:literal, $apply:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Debug)]
        pub struct $ty {
            id: u64,
            name: String,
            sizes: [(i64, i64); $n],
            data_format: DataFormat,
        }

        impl $ty {
            /// The layer with `(before, after)` sizes per spatial axis.
            pub fn asymmetric(sizes: [(i64, i64); $n]) -> $ty {
                $ty {
                    id: next_id(),
                    name: unique_name($prefix),
                    sizes,
                    data_format: DataFormat::ChannelsLast,
                }
            }

            /// Sets the layer's name.
            pub fn name(self, name: &str) -> $ty {
                $ty {
                    id: next_id(),
                    name: name.to_string(),
                    ..self
                }
            }
        }

        impl Layer for $ty {
            layer_identity!($kind);

            fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
                Ok(vec![$apply($kind, inputs, self.data_format, &self.sizes)?])
            }
        }
    };
}

pad_crop_layer!(
    ZeroPadding1D,
    "ZeroPadding1D",
    "zero_padding1d",
    1,
    pad_layer,
    "Keras's `ZeroPadding1D(padding, data_format)`: zeros added before and after the time axis \
     of `(batch, steps, channels)` (`(batch, channels, steps)` with channels first)."
);
pad_crop_layer!(
    ZeroPadding2D,
    "ZeroPadding2D",
    "zero_padding2d",
    2,
    pad_layer,
    "Keras's `ZeroPadding2D(padding, data_format)`: zero rows above and below, zero columns \
     left and right of `(batch, rows, cols, channels)` (channels first: `(batch, channels, \
     rows, cols)`)."
);
pad_crop_layer!(
    Cropping1D,
    "Cropping1D",
    "cropping1d",
    1,
    crop_layer,
    "Keras's `Cropping1D(cropping)`: elements removed from the start and end of the time axis \
     of `(batch, steps, channels)`. Cropping everything is an error."
);
pad_crop_layer!(
    Cropping2D,
    "Cropping2D",
    "cropping2d",
    2,
    crop_layer,
    "Keras's `Cropping2D(cropping, data_format)`: rows removed from the top and bottom, columns \
     from the left and right. Cropping a whole axis is an error."
);

impl ZeroPadding1D {
    /// `padding` zeros on both sides (Keras's default is 1).
    pub fn new(padding: i64) -> ZeroPadding1D {
        ZeroPadding1D::asymmetric([(padding, padding)])
    }

    /// Sets the data format (Keras's default, channels last).
    pub fn data_format(self, data_format: DataFormat) -> ZeroPadding1D {
        ZeroPadding1D {
            data_format,
            ..self
        }
    }
}

impl ZeroPadding2D {
    /// `padding` zeros on every side (Keras's `padding=p`).
    pub fn new(padding: i64) -> ZeroPadding2D {
        ZeroPadding2D::symmetric(padding, padding)
    }

    /// `rows` zero rows above and below, `cols` zero columns left and right (Keras's
    /// `padding=(rows, cols)`; the default is `(1, 1)`).
    pub fn symmetric(rows: i64, cols: i64) -> ZeroPadding2D {
        ZeroPadding2D::asymmetric([(rows, rows), (cols, cols)])
    }

    /// Sets the data format (Keras's default, channels last).
    pub fn data_format(self, data_format: DataFormat) -> ZeroPadding2D {
        ZeroPadding2D {
            data_format,
            ..self
        }
    }
}

impl Cropping1D {
    /// Removes `start` elements at the start and `end` at the end (Keras's default is `(1, 1)`).
    pub fn new(start: i64, end: i64) -> Cropping1D {
        Cropping1D::asymmetric([(start, end)])
    }
}

impl Cropping2D {
    /// Removes `rows` rows at the top and bottom and `cols` columns at the left and right
    /// (Keras's `cropping=(rows, cols)`).
    pub fn symmetric(rows: i64, cols: i64) -> Cropping2D {
        Cropping2D::asymmetric([(rows, rows), (cols, cols)])
    }

    /// Sets the data format (Keras's default, channels last).
    pub fn data_format(self, data_format: DataFormat) -> Cropping2D {
        Cropping2D {
            data_format,
            ..self
        }
    }
}

impl Configurable for ZeroPadding1D {
    const CLASS: &'static str = "ZeroPadding1D";
    type Config = ZeroPadding1DConfig;

    fn config(&self) -> ZeroPadding1DConfig {
        ZeroPadding1DConfig {
            name: self.name.clone(),
            padding: to_array(self.sizes[0]),
            data_format: self.data_format.name().into(),
        }
    }

    fn from_config(config: ZeroPadding1DConfig, _context: &ConfigContext) -> Result<Self> {
        Ok(ZeroPadding1D::asymmetric([to_pair(config.padding)])
            .data_format(DataFormat::parse(&config.data_format)?)
            .name(&config.name))
    }
}

impl Configurable for ZeroPadding2D {
    const CLASS: &'static str = "ZeroPadding2D";
    type Config = ZeroPadding2DConfig;

    fn config(&self) -> ZeroPadding2DConfig {
        ZeroPadding2DConfig {
            name: self.name.clone(),
            padding: self.sizes.map(to_array),
            data_format: self.data_format.name().into(),
        }
    }

    fn from_config(config: ZeroPadding2DConfig, _context: &ConfigContext) -> Result<Self> {
        Ok(ZeroPadding2D::asymmetric(config.padding.map(to_pair))
            .data_format(DataFormat::parse(&config.data_format)?)
            .name(&config.name))
    }
}

impl Configurable for Cropping1D {
    const CLASS: &'static str = "Cropping1D";
    type Config = Cropping1DConfig;

    fn config(&self) -> Cropping1DConfig {
        Cropping1DConfig {
            name: self.name.clone(),
            cropping: to_array(self.sizes[0]),
        }
    }

    fn from_config(config: Cropping1DConfig, _context: &ConfigContext) -> Result<Self> {
        Ok(Cropping1D::asymmetric([to_pair(config.cropping)]).name(&config.name))
    }
}

impl Configurable for Cropping2D {
    const CLASS: &'static str = "Cropping2D";
    type Config = Cropping2DConfig;

    fn config(&self) -> Cropping2DConfig {
        Cropping2DConfig {
            name: self.name.clone(),
            cropping: self.sizes.map(to_array),
            data_format: self.data_format.name().into(),
        }
    }

    fn from_config(config: Cropping2DConfig, _context: &ConfigContext) -> Result<Self> {
        Ok(Cropping2D::asymmetric(config.cropping.map(to_pair))
            .data_format(DataFormat::parse(&config.data_format)?)
            .name(&config.name))
    }
}

/// How `UpSampling2D` fills the new pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Interpolation {
    /// Each pixel repeated (Keras's default).
    #[default]
    Nearest,
    /// Bilinear, as Keras 3 computes it: half-pixel centres (source coordinate
    /// `(i + 0.5) / size - 0.5`), clamped at the edges.
    Bilinear,
}

impl Interpolation {
    /// The Keras name.
    pub fn name(self) -> &'static str {
        match self {
            Interpolation::Nearest => "nearest",
            Interpolation::Bilinear => "bilinear",
        }
    }

    /// Looks a mode up by its Keras name.
    pub fn parse(name: &str) -> Result<Interpolation> {
        match name {
            "nearest" => Ok(Interpolation::Nearest),
            "bilinear" => Ok(Interpolation::Bilinear),
            other => Err(Error::NotFound {
                kind: "interpolation".into(),
                name: other.to_string(),
                detail: " (Lamina has 'nearest' and 'bilinear')".into(),
            }),
        }
    }
}

/// Repeats each element of `axis` `size` times (NumPy's `repeat`).
fn repeat_axis(x: &Tensor, axis: usize, n: usize, size: usize) -> Result<Tensor> {
    if size == 1 {
        return Ok(x.clone());
    }
    let m = crate::limits::check_layer_constant("up-sampling", "the output", n.checked_mul(size))?;
    let idx: Vec<i32> = (0..m).map(|i| (i / size) as i32).collect();
    Ok(x.take(&indices(idx)?, axis as isize))
}

/// Bilinear resampling of `axis` (size `n`) by `size`: each output is a blend of the two
/// nearest inputs, with Keras 3's half-pixel centres clamped at the edges.
fn bilinear_axis(x: &Tensor, axis: usize, n: usize, size: usize) -> Result<Tensor> {
    if size == 1 {
        return Ok(x.clone());
    }
    let m = crate::limits::check_layer_constant("up-sampling", "the output", n.checked_mul(size))?;
    let (mut lo, mut hi, mut w_hi) = (Vec::with_capacity(m), Vec::with_capacity(m), Vec::new());
    for i in 0..m {
        let src = ((i as f64 + 0.5) / size as f64 - 0.5).clamp(0.0, (n - 1) as f64);
        let l = src.floor() as usize;
        let h = (l + 1).min(n - 1);
        lo.push(l as i32);
        hi.push(h as i32);
        w_hi.push((src - l as f64) as f32);
    }
    let w_lo: Vec<f32> = w_hi.iter().map(|w| 1.0 - w).collect();
    // Weights shaped to broadcast along `axis` only.
    let mut wshape = vec![1usize; x.rank() - axis];
    wshape[0] = m;
    let w_lo = Tensor::constant(HostTensor::new(&wshape, w_lo)?);
    let w_hi = Tensor::constant(HostTensor::new(&wshape, w_hi)?);
    let a = x.take(&indices(lo)?, axis as isize);
    let b = x.take(&indices(hi)?, axis as isize);
    Ok(&(&a * &w_lo) + &(&b * &w_hi))
}

/// Keras's `UpSampling1D(size)`: each step of `(batch, steps, features)` repeated `size` times.
#[derive(Clone, Debug)]
pub struct UpSampling1D {
    id: u64,
    name: String,
    size: i64,
}

impl UpSampling1D {
    /// Repeats each step `size` times (Keras's default is 2).
    pub fn new(size: i64) -> UpSampling1D {
        UpSampling1D {
            id: next_id(),
            name: unique_name("up_sampling1d"),
            size,
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> UpSampling1D {
        UpSampling1D {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }
}

impl Configurable for UpSampling1D {
    const CLASS: &'static str = "UpSampling1D";
    type Config = UpSampling1DConfig;

    fn config(&self) -> UpSampling1DConfig {
        UpSampling1DConfig {
            name: self.name.clone(),
            size: self.size,
        }
    }

    fn from_config(config: UpSampling1DConfig, _context: &ConfigContext) -> Result<Self> {
        Ok(UpSampling1D::new(config.size).name(&config.name))
    }
}

impl Layer for UpSampling1D {
    layer_identity!("UpSampling1D");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        const KIND: &str = "UpSampling1D";
        if self.size < 1 {
            return Err(config_error(
                KIND,
                format!("size must be >= 1, got {}", self.size),
            ));
        }
        let x = one_input(KIND, inputs)?;
        if x.rank() != 3 {
            return Err(Error::IncompatibleShapes {
                op: "upsampling1d".into(),
                shapes: x.shape().to_string(),
                detail: "UpSampling1D takes inputs of rank 3 (batch, steps, features)".into(),
            });
        }
        let n = known_dim(KIND, x, 1)?;
        Ok(vec![repeat_axis(x, 1, n, self.size as usize)?])
    }
}

/// Keras's `UpSampling2D(size, data_format, interpolation)`: rows repeated `size.0` times and
/// columns `size.1` times (`nearest`), or resampled bilinearly as Keras 3 does (`bilinear`).
#[derive(Clone, Debug)]
pub struct UpSampling2D {
    id: u64,
    name: String,
    size: (i64, i64),
    data_format: DataFormat,
    interpolation: Interpolation,
}

impl UpSampling2D {
    /// Upsamples rows by `rows` and columns by `cols` (Keras's default is `(2, 2)`), nearest.
    pub fn new(rows: i64, cols: i64) -> UpSampling2D {
        UpSampling2D {
            id: next_id(),
            name: unique_name("up_sampling2d"),
            size: (rows, cols),
            data_format: DataFormat::ChannelsLast,
            interpolation: Interpolation::Nearest,
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> UpSampling2D {
        UpSampling2D {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }

    /// Sets the data format (Keras's default, channels last).
    pub fn data_format(self, data_format: DataFormat) -> UpSampling2D {
        UpSampling2D {
            data_format,
            ..self
        }
    }

    /// Sets the interpolation (Keras's default, nearest).
    pub fn interpolation(self, interpolation: Interpolation) -> UpSampling2D {
        UpSampling2D {
            interpolation,
            ..self
        }
    }
}

impl Configurable for UpSampling2D {
    const CLASS: &'static str = "UpSampling2D";
    type Config = UpSampling2DConfig;

    fn config(&self) -> UpSampling2DConfig {
        UpSampling2DConfig {
            name: self.name.clone(),
            size: to_array(self.size),
            data_format: self.data_format.name().into(),
            interpolation: self.interpolation.name().into(),
        }
    }

    fn from_config(config: UpSampling2DConfig, _context: &ConfigContext) -> Result<Self> {
        Ok(UpSampling2D::new(config.size[0], config.size[1])
            .data_format(DataFormat::parse(&config.data_format)?)
            .interpolation(Interpolation::parse(&config.interpolation)?)
            .name(&config.name))
    }
}

impl Layer for UpSampling2D {
    layer_identity!("UpSampling2D");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        const KIND: &str = "UpSampling2D";
        let (r, c) = self.size;
        if r < 1 || c < 1 {
            return Err(config_error(
                KIND,
                format!("size must be >= 1, got ({r}, {c})"),
            ));
        }
        let x = one_input(KIND, inputs)?;
        let axes = spatial_axes(KIND, x, self.data_format, 2)?;
        let mut y = x.clone();
        for (&axis, factor) in axes.iter().zip([r as usize, c as usize]) {
            let n = known_dim(KIND, x, axis)?;
            y = match self.interpolation {
                Interpolation::Nearest => repeat_axis(&y, axis, n, factor)?,
                Interpolation::Bilinear => {
                    if n == 0 {
                        return Err(config_error(KIND, "cannot resample an empty axis"));
                    }
                    bilinear_axis(&y, axis, n, factor)?
                }
            };
        }
        Ok(vec![y])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Configurable>(layer: T)
    where
        T::Config: Clone + PartialEq + std::fmt::Debug,
    {
        let config = layer.config();
        let back = T::from_config(config.clone(), &ConfigContext::default()).unwrap();
        assert_eq!(back.config(), config);
    }

    #[test]
    fn configurations_round_trip() {
        round_trip(ZeroPadding1D::asymmetric([(1, 2)]).data_format(DataFormat::ChannelsFirst));
        round_trip(ZeroPadding2D::asymmetric([(1, 2), (3, 4)]).name("pad"));
        round_trip(Cropping1D::new(1, 2));
        round_trip(Cropping2D::symmetric(1, 2).data_format(DataFormat::ChannelsFirst));
        round_trip(UpSampling1D::new(3));
        round_trip(UpSampling2D::new(2, 3).interpolation(Interpolation::Bilinear));
        let json = |v: serde_json::Result<String>| v.unwrap();
        assert_eq!(
            json(serde_json::to_string(
                &ZeroPadding2D::asymmetric([(1, 2), (3, 4)])
                    .name("p")
                    .config()
            )),
            r#"{"name":"p","padding":[[1,2],[3,4]],"data_format":"channels_last"}"#
        );
        assert_eq!(
            json(serde_json::to_string(
                &Cropping1D::new(1, 2).name("c").config()
            )),
            r#"{"name":"c","cropping":[1,2]}"#
        );
        assert_eq!(
            json(serde_json::to_string(
                &UpSampling2D::new(2, 3).name("u").config()
            )),
            r#"{"name":"u","size":[2,3],"data_format":"channels_last","interpolation":"nearest"}"#
        );
    }

    #[test]
    fn bad_configurations_are_refused() {
        let ctx = ConfigContext::default();
        let mut c = UpSampling2D::new(2, 2).config();
        c.interpolation = "bicubic".into();
        let e = UpSampling2D::from_config(c, &ctx)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("bicubic"), "{e}");
        let mut c = ZeroPadding1D::new(1).config();
        c.data_format = "nwc".into();
        assert!(ZeroPadding1D::from_config(c, &ctx).is_err());
        let mut c = Cropping2D::symmetric(1, 1).config();
        c.data_format = "nhwc".into();
        assert!(Cropping2D::from_config(c, &ctx).is_err());
        // Cropping1D has no data_format.
        let json = r#"{"name":"c","cropping":[1,1],"data_format":"channels_last"}"#;
        assert!(serde_json::from_str::<Cropping1DConfig>(json).is_err());
    }
}
