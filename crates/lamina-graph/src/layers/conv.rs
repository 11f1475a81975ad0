//! The convolution layers: `Conv1D`, `Conv2D`, `DepthwiseConv2D`, `SeparableConv1D`,
//! `SeparableConv2D`, `Conv1DTranspose` and `Conv2DTranspose`, with Keras 3's arguments,
//! defaults, weight names and kernel layouts. Each records one `conv` primitive per call (two
//! for the separable ones) on channels-last data; channels-first inputs are transposed around
//! it.

use super::common::{Weights, one_input};
use super::init::uniform;
use super::pooling::DataFormat;
use super::registry::{ConfigContext, Configurable};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{Layer, LayerRef, unique_name};
use crate::op::ConvSpec;
use crate::shape::Dim;
use crate::tensor::{Tensor, next_id};
use crate::variable::Variable;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The configuration of a convolution layer, shared by the seven classes (Keras's arguments;
/// the fields a class does not use keep their defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvConfig {
    /// The layer's name.
    pub name: String,
    /// Output channels (0 for a depthwise convolution).
    pub filters: usize,
    /// Window per spatial axis (or one for all).
    pub kernel_size: Vec<usize>,
    /// Strides (one per axis or one for all).
    pub strides: Vec<usize>,
    /// `valid`, `same` or `causal`.
    pub padding: String,
    /// `channels_last` or `channels_first`.
    pub data_format: String,
    /// Dilation rates (one per axis or one for all).
    pub dilation_rate: Vec<usize>,
    /// Channel groups.
    pub groups: usize,
    /// Depthwise filters per input channel.
    pub depth_multiplier: usize,
    /// A transposed convolution's output padding, if given.
    pub output_padding: Option<Vec<usize>>,
    /// Keras activation name.
    pub activation: String,
    /// Whether there is a bias.
    pub use_bias: bool,
}

/// Sizes per spatial axis, as Keras takes them: one number for every axis, or one each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sizes(pub Vec<usize>);

impl From<usize> for Sizes {
    fn from(v: usize) -> Sizes {
        Sizes(vec![v])
    }
}
impl<const N: usize> From<[usize; N]> for Sizes {
    fn from(v: [usize; N]) -> Sizes {
        Sizes(v.to_vec())
    }
}
impl From<(usize, usize)> for Sizes {
    fn from(v: (usize, usize)) -> Sizes {
        Sizes(vec![v.0, v.1])
    }
}
impl From<Vec<usize>> for Sizes {
    fn from(v: Vec<usize>) -> Sizes {
        Sizes(v)
    }
}
impl From<&[usize]> for Sizes {
    fn from(v: &[usize]) -> Sizes {
        Sizes(v.to_vec())
    }
}

impl Sizes {
    /// One size per axis of `rank`, or an error naming `what`.
    pub(crate) fn expand(&self, rank: usize, what: &str) -> Result<Vec<usize>> {
        match self.0.len() {
            1 => Ok(vec![self.0[0]; rank]),
            n if n == rank => Ok(self.0.clone()),
            n => Err(Error::Model {
                detail: format!("{what} has {n} values; give 1 or {rank}"),
            }),
        }
    }
}

/// Keras's `padding`: `valid` (none), `same` (output length `ceil(input / stride)`), or
/// `causal` (1-D convolutions only: all padding before the steps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Padding {
    /// No padding.
    #[default]
    Valid,
    /// Zeros around the input so that the output has `ceil(input / stride)` elements.
    Same,
    /// Zeros before the input only (1-D convolutions).
    Causal,
}

impl Padding {
    /// The Keras name.
    pub fn name(self) -> &'static str {
        match self {
            Padding::Valid => "valid",
            Padding::Same => "same",
            Padding::Causal => "causal",
        }
    }

    /// The padding of a Keras name.
    pub fn parse(name: &str) -> Result<Padding> {
        match name {
            "valid" => Ok(Padding::Valid),
            "same" => Ok(Padding::Same),
            "causal" => Ok(Padding::Causal),
            other => Err(Error::NotFound {
                kind: "padding".into(),
                name: other.to_string(),
                detail: " (known: valid, same, causal)".into(),
            }),
        }
    }

    /// Zeros before and after an axis of `input` elements for a window of `k_eff` elements
    /// (dilation included) moving by `stride`, as Keras (and XLA's `SAME`) pad.
    pub(crate) fn amounts(self, input: usize, k_eff: usize, stride: usize) -> (usize, usize) {
        match self {
            Padding::Valid => (0, 0),
            Padding::Causal => (k_eff.saturating_sub(1), 0),
            Padding::Same => {
                let out = input.div_ceil(stride.max(1));
                let total = (out.max(1) - 1)
                    .saturating_mul(stride)
                    .saturating_add(k_eff)
                    .saturating_sub(input);
                (total / 2, total - total / 2)
            }
        }
    }
}

/// Which member of the family a layer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Conv,
    Depthwise,
    Separable,
    Transpose,
}

/// A convolution layer's state: its configuration, typed, with its family, rank and seed.
#[derive(Clone)]
struct ConvState {
    name: String,
    rank: usize,
    family: Family,
    filters: usize,
    kernel_size: Sizes,
    strides: Sizes,
    padding: Padding,
    data_format: DataFormat,
    dilation_rate: Sizes,
    groups: usize,
    depth_multiplier: usize,
    output_padding: Option<Sizes>,
    activation: Activation,
    use_bias: bool,
    seed: u64,
}

struct ConvInner {
    id: u64,
    config: ConvState,
    weights: Weights,
}

impl Clone for ConvInner {
    fn clone(&self) -> Self {
        ConvInner {
            id: next_id(),
            config: self.config.clone(),
            weights: Weights::default(),
        }
    }
}

/// The shared core of every convolution layer.
#[derive(Clone)]
struct Core {
    inner: Arc<ConvInner>,
}

impl Core {
    fn new(family: Family, rank: usize, prefix: &str, filters: usize, kernel: Sizes) -> Core {
        let id = next_id();
        Core {
            inner: Arc::new(ConvInner {
                id,
                config: ConvState {
                    name: unique_name(prefix),
                    rank,
                    family,
                    filters,
                    kernel_size: kernel,
                    strides: Sizes(vec![1]),
                    padding: Padding::Valid,
                    data_format: DataFormat::ChannelsLast,
                    dilation_rate: Sizes(vec![1]),
                    groups: 1,
                    depth_multiplier: 1,
                    output_padding: None,
                    activation: Activation::Linear,
                    use_bias: true,
                    seed: id,
                },
                weights: Weights::default(),
            }),
        }
    }

    fn configure(mut self, f: impl FnOnce(&mut ConvState)) -> Core {
        f(&mut Arc::make_mut(&mut self.inner).config);
        self
    }

    fn kind(&self) -> &'static str {
        let c = &self.inner.config;
        match (c.family, c.rank) {
            (Family::Conv, 1) => "Conv1D",
            (Family::Conv, _) => "Conv2D",
            (Family::Depthwise, 1) => "DepthwiseConv1D",
            (Family::Depthwise, _) => "DepthwiseConv2D",
            (Family::Separable, 1) => "SeparableConv1D",
            (Family::Separable, _) => "SeparableConv2D",
            (Family::Transpose, 1) => "Conv1DTranspose",
            (Family::Transpose, _) => "Conv2DTranspose",
        }
    }

    fn bad(&self, detail: String) -> Error {
        Error::Model {
            detail: format!("{} '{}': {detail}", self.kind(), self.inner.config.name),
        }
    }

    /// The checked per-axis configuration: kernel, strides, dilation.
    fn geometry(&self) -> Result<(Vec<usize>, Vec<usize>, Vec<usize>)> {
        let c = &self.inner.config;
        let r = c.rank;
        let wrap = |e: Error| self.bad(e.to_string());
        let k = c.kernel_size.expand(r, "kernel_size").map_err(wrap)?;
        let s = c.strides.expand(r, "strides").map_err(wrap)?;
        let d = c.dilation_rate.expand(r, "dilation_rate").map_err(wrap)?;
        if k.contains(&0) || s.contains(&0) || d.contains(&0) {
            return Err(self.bad(format!(
                "kernel_size {k:?}, strides {s:?} and dilation_rate {d:?} must all be positive"
            )));
        }
        if s.iter().any(|&v| v > 1) && d.iter().any(|&v| v > 1) {
            return Err(self.bad(
                "strides > 1 are not supported together with dilation_rate > 1 (as in Keras)"
                    .into(),
            ));
        }
        if c.padding == Padding::Causal && (r != 1 || c.family == Family::Transpose) {
            return Err(self.bad("causal padding is only for 1-D convolutions".into()));
        }
        if c.family != Family::Depthwise && c.filters == 0 {
            return Err(self.bad("filters must be positive".into()));
        }
        if c.depth_multiplier == 0 {
            return Err(self.bad("depth_multiplier must be positive".into()));
        }
        if c.groups == 0 {
            return Err(self.bad("groups must be positive".into()));
        }
        Ok((k, s, d))
    }

    /// A convolution spec with `padding` worked out for the spatial sizes of channels-last `x`.
    fn spec(
        &self,
        x: &Tensor,
        k: &[usize],
        s: &[usize],
        d: &[usize],
        groups: usize,
    ) -> Result<ConvSpec> {
        let c = &self.inner.config;
        let mut spec = ConvSpec::new(c.rank);
        spec.strides = s.to_vec();
        spec.dilation = d.to_vec();
        spec.groups = groups;
        for a in 0..c.rank {
            let k_eff = (k[a] - 1) * d[a] + 1;
            let n = self.spatial(x, a)?;
            spec.padding[a] = c.padding.amounts(n, k_eff, s[a]);
            if n + spec.padding[a].0 + spec.padding[a].1 < k_eff {
                return Err(self.bad(format!(
                    "the kernel ({} along spatial axis {a}, {k_eff} with dilation) is larger than the padded input ({n} + padding {:?})",
                    k[a], spec.padding[a]
                )));
            }
        }
        Ok(spec)
    }

    fn spatial(&self, x: &Tensor, a: usize) -> Result<usize> {
        match x.shape().dims()[a + 1] {
            Dim::Known(n) => Ok(n),
            Dim::Dynamic => Err(self.bad(format!(
                "spatial axis {a} of the input {} must have a known size",
                x.shape()
            ))),
        }
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let c = &self.inner.config;
        let x = one_input(self.kind(), inputs)?;
        let r = c.rank;
        if x.rank() != r + 2 {
            return Err(self.bad(format!(
                "expects an input of rank {} (batch, {} spatial axes, channels), got {}",
                r + 2,
                r,
                x.shape()
            )));
        }
        let x = match c.data_format {
            DataFormat::ChannelsLast => x.clone(),
            DataFormat::ChannelsFirst => {
                let mut perm = vec![0isize];
                perm.extend((2..r + 2).map(|a| a as isize));
                perm.push(1);
                x.transpose(&perm)
            }
        };
        let cin = match x.shape().dims()[r + 1] {
            Dim::Known(n) if n > 0 => n,
            _ => {
                return Err(self.bad(format!(
                    "the channel axis of the input {} must have a known, positive size",
                    x.shape()
                )));
            }
        };
        let (k, s, d) = self.geometry()?;
        let receptive: usize = k.iter().product();
        let f = c.filters;
        let m = c.depth_multiplier;
        let mut wanted: Vec<(&'static str, Vec<usize>)> = Vec::new();
        let with = |tail: &[usize]| -> Vec<usize> {
            let mut v = k.clone();
            v.extend_from_slice(tail);
            v
        };
        match c.family {
            Family::Conv => {
                if !cin.is_multiple_of(c.groups) || !f.is_multiple_of(c.groups) {
                    return Err(self.bad(format!(
                        "groups ({}) must divide the input channels ({cin}) and filters ({f})",
                        c.groups
                    )));
                }
                wanted.push(("kernel", with(&[cin / c.groups, f])));
            }
            Family::Depthwise => wanted.push(("kernel", with(&[cin, m]))),
            Family::Separable => {
                wanted.push(("depthwise_kernel", with(&[cin, m])));
                let mut pk = vec![1; r];
                pk.extend_from_slice(&[cin * m, f]);
                wanted.push(("pointwise_kernel", pk));
            }
            Family::Transpose => wanted.push(("kernel", with(&[f, cin]))),
        }
        let out_channels = match c.family {
            Family::Depthwise => cin * m,
            _ => f,
        };
        if c.use_bias {
            wanted.push(("bias", vec![out_channels]));
        }
        let seed = c.seed;
        let vars = self
            .inner
            .weights
            .get_or_make(&c.name, &wanted, |name, shape| {
                if name == "bias" {
                    return HostTensor::zeros(shape);
                }
                // Glorot uniform over the receptive field, as Keras.
                let rf: usize = shape[..shape.len() - 2].iter().product();
                let (a, b) = (shape[shape.len() - 2], shape[shape.len() - 1]);
                let limit = (6.0 / ((a + b) * rf) as f64).sqrt();
                let salt = if name == "pointwise_kernel" { 1 } else { 0 };
                HostTensor::new(shape, uniform(rf * a * b, limit, seed.wrapping_add(salt)))
            })?;
        let _ = receptive;
        let var = |name: &str| -> Result<Tensor> {
            vars.iter()
                .find(|v| v.name() == name)
                .map(|v| Tensor::variable(v.clone()))
                .ok_or_else(|| self.bad(format!("made no {name}")))
        };
        let bias = if c.use_bias { Some(var("bias")?) } else { None };
        let y = match c.family {
            Family::Conv => {
                let spec = self.spec(&x, &k, &s, &d, c.groups)?;
                x.conv(&var("kernel")?, bias.as_ref(), spec)
            }
            Family::Depthwise => {
                let spec = self.spec(&x, &k, &s, &d, cin)?;
                let kernel = var("kernel")?.reshape(&depthwise_shape(&k, cin * m));
                x.conv(&kernel, bias.as_ref(), spec)
            }
            Family::Separable => {
                let spec = self.spec(&x, &k, &s, &d, cin)?;
                let dk = var("depthwise_kernel")?.reshape(&depthwise_shape(&k, cin * m));
                let mid = x.conv(&dk, None, spec);
                let pointwise = ConvSpec::new(r);
                mid.conv(&var("pointwise_kernel")?, bias.as_ref(), pointwise)
            }
            Family::Transpose => self.transpose(&x, &var("kernel")?, bias.as_ref(), &k, &s, &d)?,
        };
        let y = c.activation.apply(&y);
        let y = match c.data_format {
            DataFormat::ChannelsLast => y,
            DataFormat::ChannelsFirst => {
                let mut perm = vec![0isize, r as isize + 1];
                perm.extend((1..r + 1).map(|a| a as isize));
                y.transpose(&perm)
            }
        };
        Ok(vec![y])
    }

    /// The transposed convolution: the input spread by the strides, padded as Keras's JAX
    /// backend pads, convolved with the kernel flipped and its channel axes swapped.
    fn transpose(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        bias: Option<&Tensor>,
        k: &[usize],
        s: &[usize],
        d: &[usize],
    ) -> Result<Tensor> {
        let c = &self.inner.config;
        let r = c.rank;
        let output_padding = match &c.output_padding {
            Some(p) => Some(
                p.expand(r, "output_padding")
                    .map_err(|e| self.bad(e.to_string()))?,
            ),
            None => None,
        };
        let mut spec = ConvSpec::new(r);
        spec.dilation = d.to_vec();
        spec.input_dilation = s.to_vec();
        for a in 0..r {
            let n = self.spatial(x, a)?;
            if n == 0 {
                return Err(self.bad(format!("spatial axis {a} of the input is empty")));
            }
            let k_eff = (k[a] - 1) * d[a] + 1;
            let op = output_padding.as_ref().map(|p| p[a]);
            if let Some(p) = op
                && p >= s[a].max(d[a])
            {
                return Err(self.bad(format!(
                    "output_padding ({p}) must be smaller than the stride ({}) or the dilation ({})",
                    s[a], d[a]
                )));
            }
            spec.padding[a] = match c.padding {
                Padding::Valid => {
                    let op = op.unwrap_or(k_eff.max(s[a]) - k_eff);
                    (k_eff - 1, k_eff - 1 + op)
                }
                _ => {
                    let len = match op {
                        None => s[a] + k_eff - 2,
                        Some(p) => k_eff + k_eff % 2 - 2 + p,
                    };
                    let lo = (len / 2 + len % 2).min(k_eff - 1);
                    (lo, len - lo)
                }
            };
        }
        // Flip the spatial axes, then (k..., out, in) -> (k..., in, out).
        let mut flip = vec![crate::op::AxisSlice::FULL; r + 2];
        for f in flip.iter_mut().take(r) {
            f.step = -1;
        }
        let flipped = Tensor::from_op(crate::op::Op::Slice { axes: flip }, &[kernel]);
        let mut perm: Vec<isize> = (0..r as isize).collect();
        perm.extend([r as isize + 1, r as isize]);
        Ok(x.conv(&flipped.transpose(&perm), bias, spec))
    }

    fn config(&self) -> ConvConfig {
        let c = &self.inner.config;
        ConvConfig {
            name: c.name.clone(),
            filters: c.filters,
            kernel_size: c.kernel_size.0.clone(),
            strides: c.strides.0.clone(),
            padding: c.padding.name().into(),
            data_format: c.data_format.name().into(),
            dilation_rate: c.dilation_rate.0.clone(),
            groups: c.groups,
            depth_multiplier: c.depth_multiplier,
            output_padding: c.output_padding.as_ref().map(|p| p.0.clone()),
            activation: c.activation.name().to_string(),
            use_bias: c.use_bias,
        }
    }

    fn configured_from(self, r: ConvConfig, context: &ConfigContext) -> Result<Core> {
        let padding = Padding::parse(&r.padding)?;
        let data_format = DataFormat::parse(&r.data_format)?;
        let activation = context.activation(&r.activation)?;
        // Named first, so that an error names the layer.
        let name = r.name.clone();
        let this = self.configure(|c| c.name = name);
        let max_len = this.inner.config.rank;
        for (what, v) in [
            ("kernel_size", &r.kernel_size),
            ("strides", &r.strides),
            ("dilation_rate", &r.dilation_rate),
        ] {
            if v.is_empty() || v.len() > max_len {
                return Err(this.bad(format!("{what} has {} values", v.len())));
            }
        }
        Ok(this.configure(|c| {
            c.filters = r.filters;
            c.kernel_size = Sizes(r.kernel_size);
            c.strides = Sizes(r.strides);
            c.padding = padding;
            c.data_format = data_format;
            c.dilation_rate = Sizes(r.dilation_rate);
            c.groups = r.groups;
            c.depth_multiplier = r.depth_multiplier;
            c.output_padding = r.output_padding.map(Sizes);
            c.activation = activation;
            c.use_bias = r.use_bias;
        }))
    }
}

/// `(k..., 1, channels)`: a depthwise kernel `(k..., in, multiplier)` as a grouped one.
fn depthwise_shape(k: &[usize], channels: usize) -> Vec<i64> {
    let mut v: Vec<i64> = k.iter().map(|&n| n as i64).collect();
    v.extend([1, channels as i64]);
    v
}

macro_rules! conv_layer {
    ($(#[$doc:meta])* $ty:ident, $family:expr, $rank:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $ty {
            core: Core,
        }

        impl $ty {
            fn wrap(core: Core) -> $ty {
                $ty { core }
            }

            /// Sets the strides (one value for every axis, or one per axis; default 1).
            pub fn strides(self, strides: impl Into<Sizes>) -> $ty {
                let s = strides.into();
                $ty::wrap(self.core.configure(|c| c.strides = s))
            }

            /// Sets the padding (default `valid`).
            pub fn padding(self, padding: Padding) -> $ty {
                $ty::wrap(self.core.configure(|c| c.padding = padding))
            }

            /// Sets where the channels are (default `channels_last`).
            pub fn data_format(self, data_format: DataFormat) -> $ty {
                $ty::wrap(self.core.configure(|c| c.data_format = data_format))
            }

            /// Sets the dilation rate (default 1).
            pub fn dilation_rate(self, rate: impl Into<Sizes>) -> $ty {
                let d = rate.into();
                $ty::wrap(self.core.configure(|c| c.dilation_rate = d))
            }

            /// Sets the activation applied to the output (default none).
            pub fn activation(self, activation: Activation) -> $ty {
                $ty::wrap(self.core.configure(|c| c.activation = activation))
            }

            /// Whether the layer adds a bias (default true).
            pub fn use_bias(self, use_bias: bool) -> $ty {
                $ty::wrap(self.core.configure(|c| c.use_bias = use_bias))
            }

            /// Sets the layer's name.
            pub fn name(self, name: &str) -> $ty {
                $ty::wrap(self.core.configure(|c| c.name = name.to_string()))
            }

            /// Sets the seed of the kernel initialiser.
            pub fn seed(self, seed: u64) -> $ty {
                $ty::wrap(self.core.configure(|c| c.seed = seed))
            }

        }

        impl Configurable for $ty {
            const CLASS: &'static str = stringify!($ty);
            type Config = ConvConfig;

            fn config(&self) -> ConvConfig {
                self.core.config()
            }

            fn from_config(config: ConvConfig, context: &ConfigContext) -> Result<$ty> {
                let kernel = Sizes(config.kernel_size.clone());
                Ok($ty::wrap(
                    Core::new($family, $rank, $prefix, config.filters, kernel)
                        .configured_from(config, context)?,
                ))
            }
        }

        impl Layer for $ty {
            fn id(&self) -> u64 {
                self.core.inner.id
            }
            fn name(&self) -> String {
                self.core.inner.config.name.clone()
            }
            fn kind(&self) -> &'static str {
                self.core.kind()
            }
            fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
                self.core.forward(inputs)
            }
            fn variables(&self) -> Vec<Arc<Variable>> {
                self.core.inner.weights.list()
            }
            fn handle(&self) -> LayerRef {
                Arc::new(self.clone())
            }
            fn as_any(&self) -> &dyn std::any::Any {
                self
            }
        }
    };
}

conv_layer!(
    /// Keras's `Conv1D(filters, kernel_size, strides=1, padding="valid",
    /// data_format="channels_last", dilation_rate=1, groups=1, activation=None,
    /// use_bias=True)` over `(batch, steps, channels)`: kernel `(k, in / groups, filters)`,
    /// bias `(filters,)`.
    Conv1D, Family::Conv, 1, "conv1d"
);
conv_layer!(
    /// Keras's `Conv2D(filters, kernel_size, strides=1, padding="valid",
    /// data_format="channels_last", dilation_rate=1, groups=1, activation=None,
    /// use_bias=True)` over `(batch, height, width, channels)`: kernel
    /// `(kh, kw, in / groups, filters)`, bias `(filters,)`.
    Conv2D, Family::Conv, 2, "conv2d"
);
conv_layer!(
    /// Keras's `DepthwiseConv2D(kernel_size, strides=1, padding="valid", depth_multiplier=1,
    /// data_format, dilation_rate, activation, use_bias)`: each input channel convolved with
    /// its own `depth_multiplier` filters; kernel `(kh, kw, in, depth_multiplier)`, bias
    /// `(in * depth_multiplier,)`, output channel `c * depth_multiplier + m`.
    DepthwiseConv2D, Family::Depthwise, 2, "depthwise_conv2d"
);
conv_layer!(
    /// Keras's `SeparableConv1D(filters, kernel_size, strides, padding, data_format,
    /// dilation_rate, depth_multiplier=1, activation, use_bias)`: a depthwise convolution
    /// (`depthwise_kernel` `(k, in, depth_multiplier)`) then a pointwise one
    /// (`pointwise_kernel` `(1, in * depth_multiplier, filters)`), bias `(filters,)`.
    SeparableConv1D, Family::Separable, 1, "separable_conv1d"
);
conv_layer!(
    /// Keras's `SeparableConv2D(filters, kernel_size, strides, padding, data_format,
    /// dilation_rate, depth_multiplier=1, activation, use_bias)`: `depthwise_kernel`
    /// `(kh, kw, in, depth_multiplier)`, `pointwise_kernel` `(1, 1, in * depth_multiplier,
    /// filters)`, bias `(filters,)`.
    SeparableConv2D, Family::Separable, 2, "separable_conv2d"
);
conv_layer!(
    /// Keras's `Conv1DTranspose(filters, kernel_size, strides=1, padding="valid",
    /// output_padding=None, data_format, dilation_rate, activation, use_bias)`: kernel
    /// `(k, filters, in)`, bias `(filters,)`; output length `(n - 1) * stride + k` for
    /// `valid` and `n * stride` for `same` (without output_padding).
    Conv1DTranspose, Family::Transpose, 1, "conv1d_transpose"
);
conv_layer!(
    /// Keras's `Conv2DTranspose(filters, kernel_size, strides=1, padding="valid",
    /// output_padding=None, data_format, dilation_rate, activation, use_bias)`: kernel
    /// `(kh, kw, filters, in)`, bias `(filters,)`.
    Conv2DTranspose, Family::Transpose, 2, "conv2d_transpose"
);

macro_rules! with_filters {
    ($($ty:ident, $family:expr, $rank:literal, $prefix:literal);*) => {$(
        impl $ty {
            /// A layer with `filters` output channels and a `kernel_size` window (one size for
            /// every axis, or one per axis), with Keras's defaults.
            pub fn new(filters: usize, kernel_size: impl Into<Sizes>) -> $ty {
                $ty::wrap(Core::new($family, $rank, $prefix, filters, kernel_size.into()))
            }
        }
    )*};
}
with_filters!(
    Conv1D, Family::Conv, 1, "conv1d";
    Conv2D, Family::Conv, 2, "conv2d";
    SeparableConv1D, Family::Separable, 1, "separable_conv1d";
    SeparableConv2D, Family::Separable, 2, "separable_conv2d";
    Conv1DTranspose, Family::Transpose, 1, "conv1d_transpose";
    Conv2DTranspose, Family::Transpose, 2, "conv2d_transpose"
);

impl Conv1D {
    /// Sets the number of channel groups (default 1); it must divide the input channels and
    /// the filters.
    pub fn groups(self, groups: usize) -> Conv1D {
        Conv1D::wrap(self.core.configure(|c| c.groups = groups))
    }
}

impl Conv2D {
    /// Sets the number of channel groups (default 1); it must divide the input channels and
    /// the filters.
    pub fn groups(self, groups: usize) -> Conv2D {
        Conv2D::wrap(self.core.configure(|c| c.groups = groups))
    }
}

impl DepthwiseConv2D {
    /// A depthwise convolution with a `kernel_size` window and Keras's defaults.
    pub fn new(kernel_size: impl Into<Sizes>) -> DepthwiseConv2D {
        DepthwiseConv2D::wrap(Core::new(
            Family::Depthwise,
            2,
            "depthwise_conv2d",
            0,
            kernel_size.into(),
        ))
    }

    /// Sets the filters per input channel (default 1).
    pub fn depth_multiplier(self, m: usize) -> DepthwiseConv2D {
        DepthwiseConv2D::wrap(self.core.configure(|c| c.depth_multiplier = m))
    }
}

macro_rules! multiplier {
    ($($ty:ident),*) => {$(
        impl $ty {
            /// Sets the depthwise filters per input channel (default 1).
            pub fn depth_multiplier(self, m: usize) -> $ty {
                $ty::wrap(self.core.configure(|c| c.depth_multiplier = m))
            }
        }
    )*};
}
multiplier!(SeparableConv1D, SeparableConv2D);

macro_rules! output_padding {
    ($($ty:ident),*) => {$(
        impl $ty {
            /// Sets the extra output elements per axis (Keras's `output_padding`; each smaller
            /// than the stride).
            pub fn output_padding(self, p: impl Into<Sizes>) -> $ty {
                let p = p.into();
                $ty::wrap(self.core.configure(|c| c.output_padding = Some(p)))
            }
        }
    )*};
}
output_padding!(Conv1DTranspose, Conv2DTranspose);

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Configurable<Config = ConvConfig>>(layer: T) {
        let config = layer.config();
        let back = T::from_config(config.clone(), &ConfigContext::default()).unwrap();
        assert_eq!(back.config(), config);
        assert_eq!(back.name(), layer.name());
    }

    #[test]
    fn configurations_round_trip() {
        round_trip(
            Conv1D::new(4, 3)
                .padding(Padding::Causal)
                .groups(2)
                .name("c1"),
        );
        round_trip(
            Conv2D::new(8, (3, 2))
                .strides(2)
                .padding(Padding::Same)
                .data_format(DataFormat::ChannelsFirst)
                .activation(Activation::Relu)
                .use_bias(false),
        );
        round_trip(DepthwiseConv2D::new(3).depth_multiplier(2).dilation_rate(2));
        round_trip(SeparableConv1D::new(4, 2).depth_multiplier(3));
        round_trip(SeparableConv2D::new(4, [3, 3]));
        round_trip(Conv1DTranspose::new(4, 3).strides(2).output_padding(1));
        round_trip(Conv2DTranspose::new(4, 2).activation(Activation::Tanh));
    }

    #[test]
    fn the_configuration_keeps_the_old_record_form() {
        let json = serde_json::to_string(&Conv2D::new(4, 3).name("conv").config()).unwrap();
        assert_eq!(
            json,
            r#"{"name":"conv","filters":4,"kernel_size":[3],"strides":[1],"padding":"valid","data_format":"channels_last","dilation_rate":[1],"groups":1,"depth_multiplier":1,"output_padding":null,"activation":"linear","use_bias":true}"#
        );
    }

    #[test]
    fn bad_configurations_are_refused() {
        let good = Conv2D::new(4, 3).name("conv").config();
        let ctx = ConfigContext::default();
        let mut c = good.clone();
        c.kernel_size = vec![3, 3, 3];
        let e = Conv2D::from_config(c, &ctx).err().unwrap().to_string();
        assert!(
            e.contains("Conv2D 'conv'") && e.contains("kernel_size"),
            "{e}"
        );
        let mut c = good.clone();
        c.strides = vec![];
        assert!(Conv2D::from_config(c, &ctx).is_err());
        let mut c = good.clone();
        c.padding = "full".into();
        assert!(Conv2D::from_config(c, &ctx).is_err());
        let mut c = good.clone();
        c.activation = "no_such_activation".into();
        assert!(Conv2D::from_config(c, &ctx).is_err());
        let mut c = good;
        c.data_format = "channels_middle".into();
        assert!(Conv2D::from_config(c, &ctx).is_err());
        let unknown: std::result::Result<ConvConfig, _> = serde_json::from_str(
            r#"{"name":"c","filters":4,"kernel_size":[3],"strides":[1],"padding":"valid","data_format":"channels_last","dilation_rate":[1],"groups":1,"depth_multiplier":1,"output_padding":null,"activation":"linear","use_bias":true,"extra":1}"#,
        );
        assert!(unknown.is_err());
    }
}
