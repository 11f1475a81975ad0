//! Windowed pooling (`MaxPooling1D/2D`, `AveragePooling1D/2D`) and global pooling over images
//! (`GlobalAveragePooling2D`, `GlobalMaxPooling2D`). Windowed pooling is recorded as strided
//! slices combined elementwise (one per window position), which both backends fuse into one
//! pass; `same` padding adds `-inf` (max) or zeros (average) around the input, and the average
//! divides by the count of real elements in each window, as Keras does.

use super::common::{layer_identity, one_input};
use super::conv::{Padding, Sizes};
use super::pooling::DataFormat;
use super::registry::{ConfigContext, Configurable};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{Layer, unique_name};
use crate::op::{AxisSlice, Op, ReduceOp};
use crate::shape::Dim;
use crate::tensor::{Tensor, next_id};
use serde::{Deserialize, Serialize};

/// The configuration of a windowed pooling layer (`MaxPooling1D/2D`, `AveragePooling1D/2D`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// The layer's name.
    pub name: String,
    /// Window per spatial axis (or one for all).
    pub pool_size: Vec<usize>,
    /// Strides, when not the pool size.
    pub strides: Option<Vec<usize>>,
    /// `valid` or `same`.
    pub padding: String,
    /// `channels_last` or `channels_first`.
    pub data_format: String,
}

/// The configuration of a global pooling layer (`GlobalAveragePooling1D/2D`,
/// `GlobalMaxPooling1D/2D`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalPoolConfig {
    /// The layer's name.
    pub name: String,
    /// `channels_last` or `channels_first`.
    pub data_format: String,
    /// Whether the pooled axes stay, with size 1.
    pub keepdims: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pool {
    Max,
    Average,
}

/// `n` elements of `value` along `axis`, shaped as `x` elsewhere.
fn fill(x: &Tensor, axis: usize, n: usize, value: f32) -> Tensor {
    let mut axes = vec![AxisSlice::FULL; x.rank()];
    axes[axis] = AxisSlice {
        start: Some(0),
        stop: Some(1),
        step: 1,
    };
    let yes = Tensor::scalar_of(1.0, DType::Bool);
    let one = Tensor::where_(&yes, value, Tensor::from_op(Op::Slice { axes }, &[x]));
    if n == 1 {
        one
    } else {
        Tensor::concatenate(&vec![one; n], axis as isize)
    }
}

/// Tap `t` of every window along `axis`: for output positions `0..out`, the input element at
/// `o * step + t - lo`, or `value` where that falls on the padding. Only the taps' own
/// padding is built (a few elements at the ends), never a padded copy of the whole input, so
/// both backends read the input in place, in one pass, whatever the padding.
fn tap(
    x: &Tensor,
    axis: usize,
    n: usize,
    (t, lo): (usize, usize),
    out: usize,
    step: usize,
    value: f32,
) -> Tensor {
    // The output positions whose tap lands on the input: o * step + t in lo..lo + n.
    let first = lo.saturating_sub(t).div_ceil(step);
    let last = (lo + n).checked_sub(t + 1).map(|m| (m / step).min(out - 1));
    let inside = match last {
        Some(last) if last >= first && first < out => last - first + 1,
        _ => 0,
    };
    if inside == 0 {
        return fill(x, axis, out, value);
    }
    let mut parts = Vec::with_capacity(3);
    if first > 0 {
        parts.push(fill(x, axis, first, value));
    }
    parts.push(strided(x, axis, first * step + t - lo, inside, step));
    let after = out - first - inside;
    if after > 0 {
        parts.push(fill(x, axis, after, value));
    }
    if parts.len() == 1 {
        parts.remove(0)
    } else {
        Tensor::concatenate(&parts, axis as isize)
    }
}

fn strided(x: &Tensor, axis: usize, start: usize, count: usize, step: usize) -> Tensor {
    let mut axes = vec![AxisSlice::FULL; x.rank()];
    axes[axis] = AxisSlice {
        start: Some(start as i64),
        stop: Some((start + (count - 1) * step + 1) as i64),
        step: step as i64,
    };
    Tensor::from_op(Op::Slice { axes }, &[x])
}

/// The most window positions pooled as slices of the input itself ([`joint_taps`]); larger
/// windows are pooled axis by axis (`k + k` slices instead of `k * k`).
const JOINT_TAPS: usize = 16;

/// Pooling by one slice of `x` per window position, each strided along all spatial axes (from
/// `first`), where every window lies inside the input (`pads`: each axis's length and padding
/// before it) and there are at most [`JOINT_TAPS`] positions; `None` elsewhere.
fn joint_taps(
    pool: Pool,
    x: &Tensor,
    first: usize,
    (k, s): (&[usize], &[usize]),
    pads: &[(usize, usize)],
    out: &[usize],
) -> Option<Tensor> {
    let r = k.len();
    let taps = k.iter().try_fold(1usize, |p, &n| p.checked_mul(n))?;
    let inside = (0..r).all(|a| {
        let (n, lo) = pads[a];
        let last = (out[a] - 1)
            .checked_mul(s[a])
            .and_then(|v| v.checked_add(k[a] - 1));
        lo == 0 && out[a] > 0 && last.is_some_and(|v| v < n)
    });
    if r < 2 || taps > JOINT_TAPS || !inside {
        return None;
    }
    let slice = |at: &[usize]| {
        let mut axes = vec![AxisSlice::FULL; x.rank()];
        for a in 0..r {
            axes[first + a] = AxisSlice {
                start: Some(at[a] as i64),
                stop: Some((at[a] + (out[a] - 1) * s[a] + 1) as i64),
                step: s[a] as i64,
            };
        }
        Tensor::from_op(Op::Slice { axes }, &[x])
    };
    Some(combine_taps(r - 1, &mut vec![0; r], pool, k, &slice))
}

/// The window positions of axes `0..=a` combined at the positions `at` of the axes above, axis
/// 0 innermost: the order of pooling axis by axis.
fn combine_taps(
    a: usize,
    at: &mut [usize],
    pool: Pool,
    k: &[usize],
    slice: &dyn Fn(&[usize]) -> Tensor,
) -> Tensor {
    let mut acc: Option<Tensor> = None;
    for t in 0..k[a] {
        at[a] = t;
        let part = if a == 0 {
            slice(at)
        } else {
            combine_taps(a - 1, at, pool, k, slice)
        };
        acc = Some(match (acc, pool) {
            (None, _) => part,
            (Some(p), Pool::Max) => p.maximum(&part),
            (Some(p), Pool::Average) => p.add(&part),
        });
    }
    // k[a] >= 1: the caller checked that no window size is 0.
    acc.unwrap_or_else(|| slice(at))
}

/// A windowed pooling layer's state: its configuration, typed, with its pool and rank.
#[derive(Clone)]
struct WindowState {
    id: u64,
    name: String,
    rank: usize,
    pool: Pool,
    pool_size: Sizes,
    strides: Option<Sizes>,
    padding: Padding,
    data_format: DataFormat,
}

impl WindowState {
    fn kind(&self) -> &'static str {
        match (self.pool, self.rank) {
            (Pool::Max, 1) => "MaxPooling1D",
            (Pool::Max, _) => "MaxPooling2D",
            (Pool::Average, 1) => "AveragePooling1D",
            (Pool::Average, _) => "AveragePooling2D",
        }
    }

    fn bad(&self, detail: String) -> Error {
        Error::Model {
            detail: format!("{} '{}': {detail}", self.kind(), self.name),
        }
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Tensor> {
        let x = one_input(self.kind(), inputs)?;
        let r = self.rank;
        if x.rank() != r + 2 {
            return Err(self.bad(format!(
                "expects an input of rank {} (batch, {r} spatial axes, channels), got {}",
                r + 2,
                x.shape()
            )));
        }
        let wrap = |e: Error| self.bad(e.to_string());
        let k = self.pool_size.expand(r, "pool_size").map_err(wrap)?;
        let s = match &self.strides {
            Some(s) => s.expand(r, "strides").map_err(wrap)?,
            None => k.clone(),
        };
        if k.contains(&0) || s.contains(&0) {
            return Err(self.bad(format!(
                "pool_size {k:?} and strides {s:?} must be positive"
            )));
        }
        if self.padding == Padding::Causal {
            return Err(self.bad("padding must be valid or same".into()));
        }
        // Spatial axes of the input in its own layout.
        let first = match self.data_format {
            DataFormat::ChannelsLast => 1,
            DataFormat::ChannelsFirst => 2,
        };
        let mut y = if x.dtype() == DType::F32 {
            x.clone()
        } else {
            x.cast(DType::F32)
        };
        let mut counts: Vec<Vec<f32>> = Vec::with_capacity(r);
        let mut out_sizes = Vec::with_capacity(r);
        // Per spatial axis: its length and the padding before it.
        let mut pads = Vec::with_capacity(r);
        for a in 0..r {
            let n = match x.shape().dims()[first + a] {
                Dim::Known(n) => n,
                Dim::Dynamic => {
                    return Err(self.bad(format!(
                        "spatial axis {a} of the input {} must have a known size",
                        x.shape()
                    )));
                }
            };
            let (lo, hi) = self.padding.amounts(n, k[a], s[a]);
            let padded = n
                .checked_add(lo)
                .and_then(|v| v.checked_add(hi))
                .ok_or_else(|| self.bad(format!("the padding of spatial axis {a} overflows")))?;
            if padded < k[a] {
                return Err(self.bad(format!(
                    "the pool ({}) is larger than the padded input ({n} + padding ({lo}, {hi})) along spatial axis {a}",
                    k[a]
                )));
            }
            let out = (padded - k[a]) / s[a] + 1;
            // How many real elements each window covers along this axis.
            counts.push(
                (0..out)
                    .map(|o| {
                        let start = (o * s[a]) as isize - lo as isize;
                        let end = start + k[a] as isize;
                        (end.min(n as isize) - start.max(0)) as f32
                    })
                    .collect(),
            );
            out_sizes.push(out);
            pads.push((n, lo));
        }
        // Where no window reaches the padding (always so with `valid`), each window position is
        // one slice of the input strided along every spatial axis at once, read in one pass
        // with no intermediate result per axis; combined in the axis-by-axis order, so the
        // values are the same.
        y = match joint_taps(self.pool, &y, first, (&k, &s), &pads, &out_sizes) {
            Some(joint) => joint,
            None => self.pool_axis_by_axis(y, first, (&k, &s), &pads, &out_sizes)?,
        };
        if self.pool == Pool::Average {
            // Divide by the number of real elements of each window (a constant of the
            // spatial shape, broadcast over batch and channels).
            let mut shape = vec![1usize; r + 2];
            shape[first..first + r].copy_from_slice(&out_sizes);
            let total: usize = out_sizes.iter().product();
            let mut values = Vec::with_capacity(total);
            for i in 0..total {
                let mut rest = i;
                let mut c = 1.0f32;
                for a in (0..r).rev() {
                    c *= counts[a][rest % out_sizes[a]];
                    rest /= out_sizes[a];
                }
                values.push(1.0 / c);
            }
            y = y.multiply(Tensor::constant(HostTensor::new(&shape, values)?));
        }
        Ok(y)
    }

    /// Pools `y` axis by axis (separable: max and sum both are), each axis's window positions
    /// as taps of the previous axis's result, with `same` padding's fill where a tap reaches it.
    fn pool_axis_by_axis(
        &self,
        mut y: Tensor,
        first: usize,
        (k, s): (&[usize], &[usize]),
        pads: &[(usize, usize)],
        out_sizes: &[usize],
    ) -> Result<Tensor> {
        let value = match self.pool {
            Pool::Max => f32::NEG_INFINITY,
            Pool::Average => 0.0,
        };
        for a in 0..k.len() {
            let (n, lo) = pads[a];
            let mut acc: Option<Tensor> = None;
            // Only the taps that reach the input in some window: o * step + t - lo in 0..n
            // for an o in 0..out. The others see padding alone (-inf for max, 0 for average)
            // and change nothing, so a window of 2^40 taps costs as much as one the size of
            // the input.
            let reach_first = lo.saturating_sub((out_sizes[a] - 1).saturating_mul(s[a]));
            let Some(reach_last) = lo
                .saturating_add(n)
                .checked_sub(1)
                .map(|t| t.min(k[a].saturating_sub(1)))
            else {
                return Err(self.bad(format!("spatial axis {a} is empty")));
            };
            for t in reach_first..=reach_last {
                let part = tap(&y, first + a, n, (t, lo), out_sizes[a], s[a], value);
                acc = Some(match (acc, self.pool) {
                    (None, _) => part,
                    (Some(p), Pool::Max) => p.maximum(&part),
                    (Some(p), Pool::Average) => p.add(&part),
                });
            }
            y = acc.ok_or_else(|| self.bad("empty pool".into()))?;
        }
        Ok(y)
    }

    fn config(&self) -> PoolConfig {
        PoolConfig {
            name: self.name.clone(),
            pool_size: self.pool_size.0.clone(),
            strides: self.strides.as_ref().map(|s| s.0.clone()),
            padding: self.padding.name().into(),
            data_format: self.data_format.name().into(),
        }
    }
}

macro_rules! window_pooling {
    ($(#[$doc:meta])* $ty:ident, $pool:expr, $rank:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $ty {
            c: WindowState,
        }

        impl $ty {
            /// Pools over windows of `pool_size` (one size for every axis, or one per axis),
            /// with strides equal to the pool size and `valid` padding.
            pub fn new(pool_size: impl Into<Sizes>) -> $ty {
                $ty {
                    c: WindowState {
                        id: next_id(),
                        name: unique_name($prefix),
                        rank: $rank,
                        pool: $pool,
                        pool_size: pool_size.into(),
                        strides: None,
                        padding: Padding::Valid,
                        data_format: DataFormat::ChannelsLast,
                    },
                }
            }

            fn with(mut self, f: impl FnOnce(&mut WindowState)) -> $ty {
                f(&mut self.c);
                self.c.id = next_id();
                self
            }

            /// Sets the strides (default: the pool size).
            pub fn strides(self, strides: impl Into<Sizes>) -> $ty {
                let s = strides.into();
                self.with(|c| c.strides = Some(s))
            }

            /// Sets the padding, `valid` (default) or `same`.
            pub fn padding(self, padding: Padding) -> $ty {
                self.with(|c| c.padding = padding)
            }

            /// Sets where the channels are.
            pub fn data_format(self, data_format: DataFormat) -> $ty {
                self.with(|c| c.data_format = data_format)
            }

            /// Sets the layer's name.
            pub fn name(self, name: &str) -> $ty {
                let name = name.to_string();
                self.with(|c| c.name = name)
            }
        }

        impl Configurable for $ty {
            const CLASS: &'static str = stringify!($ty);
            type Config = PoolConfig;

            fn config(&self) -> PoolConfig {
                self.c.config()
            }

            fn from_config(r: PoolConfig, _context: &ConfigContext) -> Result<$ty> {
                let too_long = |v: &[usize]| v.is_empty() || v.len() > $rank;
                if too_long(&r.pool_size) || r.strides.as_deref().is_some_and(too_long) {
                    return Err(Error::Model {
                        detail: format!("{} '{}': bad pool_size or strides", stringify!($ty), r.name),
                    });
                }
                let mut l = $ty::new(Sizes(r.pool_size.clone()))
                    .padding(Padding::parse(&r.padding)?)
                    .data_format(DataFormat::parse(&r.data_format)?)
                    .name(&r.name);
                if let Some(s) = r.strides {
                    l = l.strides(Sizes(s));
                }
                Ok(l)
            }
        }

        impl Layer for $ty {
            fn id(&self) -> u64 {
                self.c.id
            }
            fn name(&self) -> String {
                self.c.name.clone()
            }
            fn kind(&self) -> &'static str {
                self.c.kind()
            }
            fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
                Ok(vec![self.c.forward(inputs)?])
            }
            fn handle(&self) -> crate::layer::LayerRef {
                std::sync::Arc::new(self.clone())
            }
            fn as_any(&self) -> &dyn std::any::Any {
                self
            }
        }
    };
}

window_pooling!(
    /// Keras's `MaxPooling1D(pool_size=2, strides=None, padding="valid", data_format)`.
    MaxPooling1D, Pool::Max, 1, "max_pooling1d"
);
window_pooling!(
    /// Keras's `MaxPooling2D(pool_size=(2, 2), strides=None, padding="valid", data_format)`.
    MaxPooling2D, Pool::Max, 2, "max_pooling2d"
);
window_pooling!(
    /// Keras's `AveragePooling1D(pool_size, strides=None, padding="valid", data_format)`;
    /// with `same` padding the padded elements are left out of each window's count.
    AveragePooling1D, Pool::Average, 1, "average_pooling1d"
);
window_pooling!(
    /// Keras's `AveragePooling2D(pool_size, strides=None, padding="valid", data_format)`;
    /// with `same` padding the padded elements are left out of each window's count.
    AveragePooling2D, Pool::Average, 2, "average_pooling2d"
);

macro_rules! global_pooling_2d {
    ($(#[$doc:meta])* $ty:ident, $kind:literal, $prefix:literal, $op:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $ty {
            id: u64,
            name: String,
            data_format: DataFormat,
            keepdims: bool,
        }

        impl $ty {
            /// Pools over the height and width of `(batch, height, width, channels)` inputs.
            pub fn new() -> $ty {
                $ty {
                    id: next_id(),
                    name: unique_name($prefix),
                    data_format: DataFormat::ChannelsLast,
                    keepdims: false,
                }
            }

            /// Sets where the channels are.
            pub fn data_format(self, data_format: DataFormat) -> $ty {
                $ty { id: next_id(), data_format, ..self }
            }

            /// Whether the pooled axes stay, with size 1.
            pub fn keepdims(self, keepdims: bool) -> $ty {
                $ty { id: next_id(), keepdims, ..self }
            }

            /// Sets the layer's name.
            pub fn name(self, name: &str) -> $ty {
                $ty { id: next_id(), name: name.to_string(), ..self }
            }
        }

        impl Configurable for $ty {
            const CLASS: &'static str = $kind;
            type Config = GlobalPoolConfig;

            fn config(&self) -> GlobalPoolConfig {
                GlobalPoolConfig {
                    name: self.name.clone(),
                    data_format: self.data_format.name().into(),
                    keepdims: self.keepdims,
                }
            }

            fn from_config(r: GlobalPoolConfig, _context: &ConfigContext) -> Result<$ty> {
                Ok($ty::new()
                    .data_format(DataFormat::parse(&r.data_format)?)
                    .keepdims(r.keepdims)
                    .name(&r.name))
            }
        }

        impl Default for $ty {
            fn default() -> Self {
                $ty::new()
            }
        }

        impl Layer for $ty {
            layer_identity!($kind);

            fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
                let x = one_input($kind, inputs)?;
                if x.rank() != 4 {
                    return Err(Error::Model {
                        detail: format!(
                            "{} '{}': expects a 4-D input, got {}",
                            $kind,
                            self.name,
                            x.shape()
                        ),
                    });
                }
                let axes: [isize; 2] = match self.data_format {
                    DataFormat::ChannelsLast => [1, 2],
                    DataFormat::ChannelsFirst => [2, 3],
                };
                Ok(vec![x.reduce($op, crate::ops::Axes::List(axes.to_vec()), self.keepdims)])
            }
        }
    };
}

global_pooling_2d!(
    /// Keras's `GlobalAveragePooling2D(data_format, keepdims=False)`: the mean over height and
    /// width.
    GlobalAveragePooling2D,
    "GlobalAveragePooling2D",
    "global_average_pooling2d",
    ReduceOp::Mean
);
global_pooling_2d!(
    /// Keras's `GlobalMaxPooling2D(data_format, keepdims=False)`: the maximum over height and
    /// width.
    GlobalMaxPooling2D,
    "GlobalMaxPooling2D",
    "global_max_pooling2d",
    ReduceOp::Max
);

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
        round_trip(
            MaxPooling1D::new(3)
                .strides(2)
                .padding(Padding::Same)
                .name("p"),
        );
        round_trip(MaxPooling2D::new((2, 3)).data_format(DataFormat::ChannelsFirst));
        round_trip(AveragePooling1D::new(2));
        round_trip(AveragePooling2D::new(2).strides([1, 2]));
        round_trip(GlobalAveragePooling2D::new().keepdims(true).name("g"));
        round_trip(GlobalMaxPooling2D::new().data_format(DataFormat::ChannelsFirst));
        assert_eq!(
            serde_json::to_string(&MaxPooling2D::new(2).name("m").config()).unwrap(),
            r#"{"name":"m","pool_size":[2],"strides":null,"padding":"valid","data_format":"channels_last"}"#
        );
        assert_eq!(
            serde_json::to_string(&GlobalMaxPooling2D::new().name("g").config()).unwrap(),
            r#"{"name":"g","data_format":"channels_last","keepdims":false}"#
        );
    }

    #[test]
    fn bad_configurations_are_refused() {
        let ctx = ConfigContext::default();
        let good = MaxPooling1D::new(2).name("p").config();
        let mut c = good.clone();
        c.pool_size = vec![2, 2];
        let e = MaxPooling1D::from_config(c, &ctx)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("MaxPooling1D 'p'"), "{e}");
        let mut c = good.clone();
        c.strides = Some(vec![]);
        assert!(MaxPooling1D::from_config(c, &ctx).is_err());
        let mut c = good;
        c.padding = "full".into();
        assert!(MaxPooling1D::from_config(c, &ctx).is_err());
        let mut g = GlobalAveragePooling2D::new().config();
        g.data_format = "nchw".into();
        assert!(GlobalAveragePooling2D::from_config(g, &ctx).is_err());
    }
}
