//! `GlobalAveragePooling1D` and `GlobalMaxPooling1D`: pooling over time, padded steps excluded.

use super::common::{align_mask, layer_identity, one_input};
use super::registry::{ConfigContext, Configurable};
use super::window_pooling::GlobalPoolConfig;
use crate::error::{Error, Result};
use crate::layer::{Layer, unique_name};
use crate::op::ReduceOp;
use crate::tensor::{Tensor, next_id};

/// Where the steps of a 3-D input are: `(batch, steps, features)` or `(batch, features, steps)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DataFormat {
    /// `(batch, steps, features)`, Keras's default.
    #[default]
    ChannelsLast,
    /// `(batch, features, steps)`.
    ChannelsFirst,
}

impl DataFormat {
    /// The Keras name: `channels_last` or `channels_first`.
    pub fn name(self) -> &'static str {
        match self {
            DataFormat::ChannelsLast => "channels_last",
            DataFormat::ChannelsFirst => "channels_first",
        }
    }

    /// The format of a Keras name.
    pub fn parse(name: &str) -> Result<DataFormat> {
        match name {
            "channels_last" => Ok(DataFormat::ChannelsLast),
            "channels_first" => Ok(DataFormat::ChannelsFirst),
            other => Err(Error::NotFound {
                kind: "data_format".into(),
                name: other.to_string(),
                detail: " (known: channels_last, channels_first)".into(),
            }),
        }
    }
}

/// Which global pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pool {
    Average,
    Max,
}

macro_rules! global_pooling {
    ($(#[$doc:meta])* $ty:ident, $kind:literal, $prefix:literal, $pool:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $ty {
            id: u64,
            name: String,
            data_format: DataFormat,
            keepdims: bool,
        }

        impl $ty {
            /// Pools over the steps of `(batch, steps, features)` inputs, without keeping the axis.
            pub fn new() -> $ty {
                $ty {
                    id: next_id(),
                    name: unique_name($prefix),
                    data_format: DataFormat::ChannelsLast,
                    keepdims: false,
                }
            }

            /// Sets where the steps are.
            pub fn data_format(self, data_format: DataFormat) -> $ty {
                $ty { id: next_id(), data_format, ..self }
            }

            /// Whether the pooled axis stays, with size 1.
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

            fn from_config(config: GlobalPoolConfig, _context: &ConfigContext) -> Result<$ty> {
                Ok($ty::new()
                    .data_format(DataFormat::parse(&config.data_format)?)
                    .keepdims(config.keepdims)
                    .name(&config.name))
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
                self.forward_masked(inputs, &[None])
            }

            fn forward_masked(
                &self,
                inputs: &[Tensor],
                masks: &[Option<Tensor>],
            ) -> Result<Vec<Tensor>> {
                let x = one_input($kind, inputs)?;
                let mask = masks.first().cloned().flatten();
                Ok(vec![pool($pool, x, mask.as_ref(), self.data_format, self.keepdims)?])
            }


            fn supports_masking(&self) -> bool {
                true
            }

            fn compute_mask(
                &self,
                _inputs: &[Tensor],
                _masks: &[Option<Tensor>],
                outputs: &[Tensor],
            ) -> Result<Vec<Option<Tensor>>> {
                Ok(vec![None; outputs.len()])
            }
        }
    };
}

global_pooling!(
    /// Keras's `GlobalAveragePooling1D(data_format, keepdims)`: the mean over the steps. With a
    /// mask, padded steps are left out: the sum of the unmasked steps over their count (a row
    /// with every step masked gives NaN, as in Keras).
    GlobalAveragePooling1D,
    "GlobalAveragePooling1D",
    "global_average_pooling1d",
    Pool::Average
);

global_pooling!(
    /// Keras's `GlobalMaxPooling1D(data_format, keepdims)`: the maximum over the steps. With a
    /// mask, padded steps are left out (Keras ignores the mask here; a row with every step
    /// masked gives -inf).
    GlobalMaxPooling1D,
    "GlobalMaxPooling1D",
    "global_max_pooling1d",
    Pool::Max
);

fn pool(
    kind: Pool,
    x: &Tensor,
    mask: Option<&Tensor>,
    format: DataFormat,
    keepdims: bool,
) -> Result<Tensor> {
    if x.rank() != 3 {
        return Err(Error::IncompatibleShapes {
            op: "global pooling".into(),
            shapes: x.shape().to_string(),
            detail: "expects a 3-D input (batch, steps, features)".into(),
        });
    }
    let (steps, features): (i32, isize) = match format {
        DataFormat::ChannelsLast => (1, 2),
        DataFormat::ChannelsFirst => (2, 1),
    };
    let Some(mask) = mask else {
        return Ok(match kind {
            Pool::Average => x.reduce(ReduceOp::Mean, steps, keepdims),
            Pool::Max => x.reduce(ReduceOp::Max, steps, keepdims),
        });
    };
    // The mask is over (batch, steps): give it the feature axis.
    let m = align_mask(mask, 2).expand_dims(features);
    Ok(match kind {
        Pool::Average => {
            let kept = Tensor::where_(&m, x, 0.0);
            kept.reduce(ReduceOp::Sum, steps, keepdims)
                .divide(m.cast(x.dtype()).reduce(ReduceOp::Sum, steps, keepdims))
        }
        Pool::Max => {
            Tensor::where_(&m, x, f32::NEG_INFINITY).reduce(ReduceOp::Max, steps, keepdims)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_round_trip() {
        let ctx = ConfigContext::default();
        let l = GlobalAveragePooling1D::new()
            .data_format(DataFormat::ChannelsFirst)
            .keepdims(true)
            .name("avg");
        let back = GlobalAveragePooling1D::from_config(l.config(), &ctx).unwrap();
        assert_eq!(back.config(), l.config());
        let l = GlobalMaxPooling1D::new().name("max");
        let back = GlobalMaxPooling1D::from_config(l.config(), &ctx).unwrap();
        assert_eq!(back.config(), l.config());
        assert_eq!(
            serde_json::to_string(&l.config()).unwrap(),
            r#"{"name":"max","data_format":"channels_last","keepdims":false}"#
        );
    }

    #[test]
    fn bad_configurations_are_refused() {
        let mut c = GlobalMaxPooling1D::new().config();
        c.data_format = "steps_first".into();
        assert!(GlobalMaxPooling1D::from_config(c, &ConfigContext::default()).is_err());
    }
}
