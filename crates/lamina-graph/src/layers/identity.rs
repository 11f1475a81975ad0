//! `Identity`: its inputs, unchanged, masks included.

use super::common::layer_identity;
use super::registry::{ConfigContext, Configurable};
use crate::error::{Error, Result};
use crate::layer::unique_name;
use crate::tensor::{Tensor, next_id};
use serde::{Deserialize, Serialize};

/// The configuration of an [`Identity`], as Keras names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The layer's name.
    pub name: String,
}

/// Keras's `Identity()`: returns its inputs (one tensor or several) unchanged, and passes each
/// input's mask on to the output in its place.
#[derive(Clone)]
pub struct Identity {
    id: u64,
    name: String,
}

impl Identity {
    /// A new identity layer.
    pub fn new() -> Identity {
        Identity {
            id: next_id(),
            name: unique_name("identity"),
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Identity {
        Identity {
            id: next_id(),
            name: name.to_string(),
        }
    }
}

impl Default for Identity {
    fn default() -> Self {
        Identity::new()
    }
}

impl Configurable for Identity {
    const CLASS: &'static str = "Identity";
    type Config = IdentityConfig;

    fn config(&self) -> IdentityConfig {
        IdentityConfig {
            name: self.name.clone(),
        }
    }

    fn from_config(config: IdentityConfig, _context: &ConfigContext) -> Result<Identity> {
        Ok(Identity::new().name(&config.name))
    }
}

impl crate::layer::Layer for Identity {
    layer_identity!("Identity");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        if inputs.is_empty() {
            return Err(Error::Model {
                detail: format!("Identity '{}' was called on no inputs", self.name),
            });
        }
        Ok(inputs.to_vec())
    }

    fn supports_masking(&self) -> bool {
        true
    }

    /// Each output carries its own input's mask (Keras passes the mask structure through).
    fn compute_mask(
        &self,
        _inputs: &[Tensor],
        masks: &[Option<Tensor>],
        outputs: &[Tensor],
    ) -> Result<Vec<Option<Tensor>>> {
        Ok((0..outputs.len())
            .map(|k| masks.get(k).cloned().flatten())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_round_trips_and_refuses_unknown_fields() {
        let l = Identity::new().name("same");
        let back = Identity::from_config(l.config(), &ConfigContext::default()).unwrap();
        assert_eq!(back.config(), l.config());
        assert_eq!(
            serde_json::to_string(&l.config()).unwrap(),
            r#"{"name":"same"}"#
        );
        let bad = serde_json::from_str::<IdentityConfig>(r#"{"name":"x","scale":2}"#);
        assert!(bad.unwrap_err().to_string().contains("unknown field"));
    }
}
