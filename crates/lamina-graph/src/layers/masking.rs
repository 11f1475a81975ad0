//! `Masking`: marks the time steps whose features all equal a padding value.

use super::common::one_input;
use super::registry::{ConfigContext, Configurable, finite_f32};
use crate::error::Result;
use crate::layer::{Layer, LayerRef, unique_name};
use crate::tensor::{Tensor, next_id};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The configuration of a [`Masking`] layer, as Keras names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingConfig {
    /// The layer's name.
    pub name: String,
    /// The padding value.
    #[serde(deserialize_with = "finite_f32")]
    pub mask_value: f32,
}

/// Keras's `Masking(mask_value=0.0)`: a step (all axes but the last) is masked when every
/// feature equals `mask_value`; masked steps are set to 0 and the output carries the mask.
#[derive(Clone)]
pub struct Masking {
    id: u64,
    config: MaskingConfig,
}

impl Masking {
    /// Masks steps whose features all equal `mask_value` (Keras's default is 0.0).
    pub fn new(mask_value: f32) -> Masking {
        Masking {
            id: next_id(),
            config: MaskingConfig {
                name: unique_name("masking"),
                mask_value,
            },
        }
    }

    /// Sets the layer's name.
    pub fn name(mut self, name: &str) -> Masking {
        self.id = next_id();
        self.config.name = name.to_string();
        self
    }

    fn keep(&self, x: &Tensor, keepdims: bool) -> Tensor {
        let differs = x.not_equal(self.config.mask_value);
        if keepdims {
            differs.any_keepdims(-1)
        } else {
            differs.any(-1)
        }
    }
}

impl Default for Masking {
    fn default() -> Self {
        Masking::new(0.0)
    }
}

impl Layer for Masking {
    fn id(&self) -> u64 {
        self.id
    }

    fn name(&self) -> String {
        self.config.name.clone()
    }

    fn kind(&self) -> &'static str {
        "Masking"
    }

    fn handle(&self) -> LayerRef {
        Arc::new(self.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("Masking", inputs)?;
        Ok(vec![x.multiply(self.keep(x, true).cast(x.dtype()))])
    }

    fn supports_masking(&self) -> bool {
        true
    }

    fn compute_mask(
        &self,
        inputs: &[Tensor],
        _masks: &[Option<Tensor>],
        _outputs: &[Tensor],
    ) -> Result<Vec<Option<Tensor>>> {
        let x = one_input("Masking", inputs)?;
        Ok(vec![Some(self.keep(x, false))])
    }
}

impl Configurable for Masking {
    const CLASS: &'static str = "Masking";
    type Config = MaskingConfig;

    fn config(&self) -> MaskingConfig {
        self.config.clone()
    }

    fn from_config(config: MaskingConfig, _context: &ConfigContext) -> Result<Masking> {
        Ok(Masking::new(config.mask_value).name(&config.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_and_refuses_a_value_beyond_float32() {
        let ctx = ConfigContext::default();
        let c = Masking::new(-1.5).name("m").config();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"name":"m","mask_value":-1.5}"#
        );
        assert_eq!(Masking::from_config(c.clone(), &ctx).unwrap().config(), c);
        assert!(
            serde_json::from_str::<MaskingConfig>(r#"{"name":"m","mask_value":1e39}"#).is_err()
        );
        assert!(serde_json::from_str::<MaskingConfig>(r#"{"name":"m"}"#).is_err());
    }
}
