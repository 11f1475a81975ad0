//! Layers that map each element on its own: the `Activation` layer, `Dropout` (the identity
//! at inference) and `Rescaling`. All pass masks on.

use super::common::{layer_identity, one_input};
use super::registry::{ConfigContext, Configurable, finite_f32};
use crate::activation::Activation;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::layer::{Layer, unique_name};
use crate::model::SequentialItem;
use crate::shape::Shape;
use crate::tensor::{Tensor, next_id};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The configuration of an [`ActivationLayer`] (Keras's `Activation`). A custom activation is
/// recorded by its name; a file holds its traced body beside the configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationConfig {
    /// The layer's name.
    pub name: String,
    /// Keras activation name (the given name of a custom activation).
    pub activation: String,
}

/// The configuration of a [`Dropout`], as Keras names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropoutConfig {
    /// The layer's name.
    pub name: String,
    /// The rate.
    #[serde(deserialize_with = "finite_f32")]
    pub rate: f32,
}

/// The configuration of a [`Rescaling`], as Keras names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RescalingConfig {
    /// The layer's name.
    pub name: String,
    /// The factor.
    #[serde(deserialize_with = "finite_f32")]
    pub scale: f32,
    /// The offset.
    #[serde(deserialize_with = "finite_f32")]
    pub offset: f32,
}

/// Keras's `Activation(activation)` layer. `Sequential::add(Activation::Relu)` makes one.
#[derive(Clone)]
pub struct ActivationLayer {
    id: u64,
    name: String,
    activation: Activation,
}

impl ActivationLayer {
    /// The layer applying `activation`.
    pub fn new(activation: Activation) -> ActivationLayer {
        ActivationLayer {
            id: next_id(),
            name: unique_name("activation"),
            activation,
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> ActivationLayer {
        ActivationLayer {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }
}

impl Configurable for ActivationLayer {
    const CLASS: &'static str = "Activation";
    type Config = ActivationConfig;

    fn config(&self) -> ActivationConfig {
        ActivationConfig {
            name: self.name.clone(),
            activation: self.activation.name().to_string(),
        }
    }

    fn from_config(config: ActivationConfig, context: &ConfigContext) -> Result<ActivationLayer> {
        let activation = context.activation(&config.activation)?;
        Ok(ActivationLayer::new(activation).name(&config.name))
    }

    /// A custom activation applies to the input as it is.
    fn custom_activation(
        &self,
        input: &Shape,
        dtype: DType,
    ) -> Option<super::registry::ActivationSite> {
        self.activation
            .is_custom()
            .then(|| (self.activation.clone(), input.clone(), dtype))
    }
}

impl Layer for ActivationLayer {
    layer_identity!("Activation");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        Ok(vec![
            self.activation.apply(one_input("Activation", inputs)?),
        ])
    }

    fn supports_masking(&self) -> bool {
        true
    }
}

impl From<Activation> for SequentialItem {
    fn from(a: Activation) -> Self {
        SequentialItem::Layer(Arc::new(ActivationLayer::new(a)))
    }
}

/// Keras's `Dropout(rate, noise_shape, seed)`: the identity at inference, which is all Lamina
/// runs. The rate is still checked (0 <= rate <= 1), as Keras does.
#[derive(Clone)]
pub struct Dropout {
    id: u64,
    name: String,
    rate: f32,
}

impl Dropout {
    /// Dropout of `rate` (used only in training, so never here).
    pub fn new(rate: f32) -> Dropout {
        Dropout {
            id: next_id(),
            name: unique_name("dropout"),
            rate,
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Dropout {
        Dropout {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }
}

/// Refuses a rate outside [0, 1], as Keras does; `who` names the layer.
fn check_rate(who: &str, rate: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&rate) {
        return Err(Error::Model {
            detail: format!("{who}invalid rate {rate}: expected a value between 0 and 1"),
        });
    }
    Ok(())
}

impl Configurable for Dropout {
    const CLASS: &'static str = "Dropout";
    type Config = DropoutConfig;

    fn config(&self) -> DropoutConfig {
        DropoutConfig {
            name: self.name.clone(),
            rate: self.rate,
        }
    }

    fn from_config(config: DropoutConfig, _context: &ConfigContext) -> Result<Dropout> {
        check_rate(&format!("Dropout '{}': ", config.name), config.rate)?;
        Ok(Dropout::new(config.rate).name(&config.name))
    }
}

impl Layer for Dropout {
    layer_identity!("Dropout");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        check_rate("", self.rate)?;
        Ok(vec![one_input("Dropout", inputs)?.clone()])
    }

    fn supports_masking(&self) -> bool {
        true
    }
}

/// Keras's `Rescaling(scale, offset=0.0)`: `x * scale + offset`, in float32.
#[derive(Clone)]
pub struct Rescaling {
    id: u64,
    name: String,
    scale: f32,
    offset: f32,
}

impl Rescaling {
    /// `x * scale + offset`.
    pub fn new(scale: f32, offset: f32) -> Rescaling {
        Rescaling {
            id: next_id(),
            name: unique_name("rescaling"),
            scale,
            offset,
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Rescaling {
        Rescaling {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }
}

impl Configurable for Rescaling {
    const CLASS: &'static str = "Rescaling";
    type Config = RescalingConfig;

    fn config(&self) -> RescalingConfig {
        RescalingConfig {
            name: self.name.clone(),
            scale: self.scale,
            offset: self.offset,
        }
    }

    fn from_config(config: RescalingConfig, _context: &ConfigContext) -> Result<Rescaling> {
        Ok(Rescaling::new(config.scale, config.offset).name(&config.name))
    }
}

impl Layer for Rescaling {
    layer_identity!("Rescaling");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("Rescaling", inputs)?.cast(DType::F32);
        Ok(vec![x.multiply(self.scale).add(self.offset)])
    }

    fn supports_masking(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::Dim;

    #[test]
    fn configs_round_trip_and_bad_ones_are_refused() {
        let ctx = ConfigContext::default();
        let c = ActivationLayer::new(Activation::Tanh).name("a").config();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"name":"a","activation":"tanh"}"#
        );
        let a = ActivationLayer::from_config(c.clone(), &ctx).unwrap();
        assert_eq!(a.config(), c);
        let shape = Shape::new([Dim::Dynamic, Dim::Known(2)]);
        assert!(a.custom_activation(&shape, DType::F32).is_none());
        let bad = ActivationConfig {
            activation: "nope".into(),
            ..c
        };
        assert!(ActivationLayer::from_config(bad.clone(), &ctx).is_err());
        // A custom activation is the context's, and applies at the input's shape and dtype.
        let nope = Activation::custom("nope", |x: &Tensor| x.clone());
        let a = ActivationLayer::from_config(bad, &ConfigContext::with_custom_activation(nope))
            .unwrap();
        let (f, s, d) = a.custom_activation(&shape, DType::I32).unwrap();
        assert_eq!((f.name(), s, d), ("nope", shape, DType::I32));

        let c = Dropout::new(0.25).name("d").config();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"name":"d","rate":0.25}"#
        );
        assert_eq!(Dropout::from_config(c.clone(), &ctx).unwrap().config(), c);
        let e = Dropout::from_config(DropoutConfig { rate: 1.5, ..c }, &ctx)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("'d'") && e.contains("invalid rate"), "{e}");

        let c = Rescaling::new(0.5, -1.0).name("r").config();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"name":"r","scale":0.5,"offset":-1.0}"#
        );
        assert_eq!(Rescaling::from_config(c, &ctx).unwrap().config().scale, 0.5);
        assert!(
            serde_json::from_str::<RescalingConfig>(r#"{"name":"r","scale":1e39,"offset":0}"#)
                .is_err()
        );
    }
}
