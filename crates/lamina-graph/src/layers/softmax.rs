//! The `Softmax` layer, with Keras 3's mask handling.

use super::common::{align_mask, layer_identity, one_input};
use super::registry::{ConfigContext, Configurable};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::layer::{Layer, call_layer_with_masks, unique_name};
use crate::tensor::{Tensor, next_id};
use serde::{Deserialize, Serialize};

/// The configuration of a [`Softmax`] layer, as Keras names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftmaxConfig {
    /// The layer's name.
    pub name: String,
    /// The axis.
    pub axis: i64,
}

/// Keras's `Softmax(axis=-1)`. With a mask (the input's, or one given to `call_masked`),
/// masked positions take -1e9 before the softmax and exactly 0 after it, so they get no
/// weight and a fully masked row gives zeros, as in Keras 3.15. A bool mask keeps its true
/// positions, a float mask those above 0.5, an integer mask those above 0. A mask of lower
/// rank covers the leading axes.
#[derive(Clone)]
pub struct Softmax {
    id: u64,
    name: String,
    axis: isize,
}

impl Softmax {
    /// A softmax over the last axis.
    pub fn new() -> Softmax {
        Softmax {
            id: next_id(),
            name: unique_name("softmax"),
            axis: -1,
        }
    }

    /// Sets the axis.
    pub fn axis(self, axis: isize) -> Softmax {
        Softmax {
            id: next_id(),
            axis,
            ..self
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Softmax {
        Softmax {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }

    /// Calls the layer with an explicit mask, true (or, for a float mask, above 0.5) where a
    /// position takes part (Keras's `Softmax()(x, mask=m)`).
    pub fn call_masked(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let masks = [Some(mask.clone())];
        Ok(call_layer_with_masks(self, std::slice::from_ref(x), Some(&masks))?.remove(0))
    }
}

impl Default for Softmax {
    fn default() -> Self {
        Softmax::new()
    }
}

/// Where a mask keeps a position, as Keras 3 reads it: a bool mask as it is, a float mask
/// where it is above 0.5 (0.5 itself is masked), an integer mask where it is above 0 (Keras
/// compares with 0.5 cast to the mask's dtype).
fn kept(mask: &Tensor) -> Tensor {
    match mask.dtype() {
        DType::Bool => mask.clone(),
        DType::F32 => mask.greater(0.5),
        DType::I32 | DType::U32 => mask.greater(0),
    }
}

/// Keras's large negative number for float32 masks.
const LARGE_NEGATIVE: f32 = -1e9;

impl Layer for Softmax {
    layer_identity!("Softmax");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.forward_masked(inputs, &[None])
    }

    fn forward_masked(&self, inputs: &[Tensor], masks: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = one_input("Softmax", inputs)?;
        let out = match masks.first().cloned().flatten() {
            None => x.softmax(self.axis),
            Some(mask) => {
                let m = align_mask(&kept(&mask), x.rank());
                let y = Tensor::where_(&m, x, LARGE_NEGATIVE).softmax(self.axis);
                let y = Tensor::where_(&m, &y, 0.0);
                let (xs, ys) = (x.shape(), y.shape());
                let grown = xs.rank() != ys.rank()
                    || xs.dims().iter().zip(ys.dims()).any(
                        |(a, b)| matches!((a.known(), b.known()), (Some(a), Some(b)) if a != b),
                    );
                if y.check().is_ok() && grown {
                    return Err(Error::IncompatibleShapes {
                        op: "softmax".into(),
                        shapes: format!("{} and mask {}", x.shape(), mask.shape()),
                        detail: "the mask must broadcast to the input's shape".into(),
                    });
                }
                y
            }
        };
        Ok(vec![out])
    }

    fn supports_masking(&self) -> bool {
        true
    }

    /// Passes the mask on as the bools the softmax used (a float mask thresholded at 0.5).
    fn compute_mask(
        &self,
        _inputs: &[Tensor],
        masks: &[Option<Tensor>],
        _outputs: &[Tensor],
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![masks.first().cloned().flatten().map(|m| kept(&m))])
    }
}

/// An axis of a configuration as an `isize`, or an error naming the layer.
pub(crate) fn config_axis(kind: &str, name: &str, axis: i64) -> Result<isize> {
    isize::try_from(axis).map_err(|_| Error::Model {
        detail: format!("{kind} '{name}': axis {axis} is out of range"),
    })
}

impl Configurable for Softmax {
    const CLASS: &'static str = "Softmax";
    type Config = SoftmaxConfig;

    fn config(&self) -> SoftmaxConfig {
        SoftmaxConfig {
            name: self.name.clone(),
            axis: self.axis as i64,
        }
    }

    fn from_config(config: SoftmaxConfig, _context: &ConfigContext) -> Result<Softmax> {
        let axis = config_axis("Softmax", &config.name, config.axis)?;
        Ok(Softmax::new().axis(axis).name(&config.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_and_refuses_a_bad_axis() {
        let ctx = ConfigContext::default();
        let c = Softmax::new().axis(1).name("s").config();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"name":"s","axis":1}"#
        );
        assert_eq!(Softmax::from_config(c.clone(), &ctx).unwrap().config(), c);
        assert!(serde_json::from_str::<SoftmaxConfig>(r#"{"name":"s","axis":1.5}"#).is_err());
        assert!(serde_json::from_str::<SoftmaxConfig>(r#"{"name":"s","axis":1,"x":0}"#).is_err());
    }
}
