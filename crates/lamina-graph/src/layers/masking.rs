//! `Masking`: marks the time steps whose features all equal a padding value.

use super::common::{layer_identity, one_input};
use crate::error::Result;
use crate::layer::{Layer, unique_name};
use crate::tensor::{Tensor, next_id};

/// Keras's `Masking(mask_value=0.0)`: a step (all axes but the last) is masked when every
/// feature equals `mask_value`; masked steps are set to 0 and the output carries the mask.
#[derive(Clone)]
pub struct Masking {
    id: u64,
    name: String,
    mask_value: f32,
}

impl Masking {
    /// Masks steps whose features all equal `mask_value` (Keras's default is 0.0).
    pub fn new(mask_value: f32) -> Masking {
        Masking {
            id: next_id(),
            name: unique_name("masking"),
            mask_value,
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Masking {
        Masking {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }

    /// The padding value.
    pub fn mask_value(&self) -> f32 {
        self.mask_value
    }

    fn keep(&self, x: &Tensor, keepdims: bool) -> Tensor {
        let differs = x.not_equal(self.mask_value);
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
    layer_identity!("Masking");

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
