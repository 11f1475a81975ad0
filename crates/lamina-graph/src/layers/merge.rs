//! Merge layers: `Add`, `Subtract`, `Multiply`, `Average`, `Maximum`, `Minimum` (elementwise,
//! broadcasting) and `Concatenate`, with Keras 3's shape and mask rules: the output mask of an
//! elementwise merge is the `or` of the input masks (none if any input has none), and
//! `Multiply`, `Maximum` and `Minimum` also use the masks for their values.

use super::common::{align_mask, layer_identity};
use super::registry::{ConfigContext, Configurable};
use super::softmax::config_axis;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::infer::normalize_axis;
use crate::layer::{Layer, unique_name};
use crate::shape::Dim;
use crate::tensor::{Tensor, next_id};
use serde::{Deserialize, Serialize};

/// The configuration of an elementwise merge (`Add`, `Subtract`, `Multiply`, `Average`,
/// `Maximum`, `Minimum`): its name only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeConfig {
    /// The layer's name.
    pub name: String,
}

/// The configuration of a [`Concatenate`], as Keras names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcatenateConfig {
    /// The layer's name.
    pub name: String,
    /// The axis.
    pub axis: i64,
}

/// Checks a merge's inputs: at least one, all of one batch size, and brings lower-rank inputs
/// up by inserting axes after the batch axis, as Keras does.
fn merge_inputs(kind: &str, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    if inputs.is_empty() {
        return Err(Error::Inputs {
            detail: format!("{kind} should be called on a list of at least 1 input"),
        });
    }
    let batches: Vec<Dim> = inputs.iter().filter_map(|t| t.dim(0)).collect();
    let known: Vec<usize> = batches.iter().filter_map(|d| d.known()).collect();
    if known.windows(2).any(|w| w[0] != w[1]) {
        return Err(Error::IncompatibleShapes {
            op: kind.to_lowercase(),
            shapes: shapes_of(inputs),
            detail: "cannot merge tensors with different batch sizes".into(),
        });
    }
    let rank = inputs.iter().map(|t| t.rank()).max().unwrap_or(0);
    Ok(inputs
        .iter()
        .map(|t| {
            let mut t = t.clone();
            while t.rank() < rank && t.rank() >= 1 {
                t = t.expand_dims(1);
            }
            t
        })
        .collect())
}

fn shapes_of(inputs: &[Tensor]) -> String {
    inputs
        .iter()
        .map(|t| t.shape().to_string())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The mask of an elementwise merge: none if any input has none, else their logical or.
fn or_masks(masks: &[Option<Tensor>]) -> Option<Tensor> {
    let mut out: Option<Tensor> = None;
    for m in masks {
        let m = m.as_ref()?.cast(DType::Bool);
        out = Some(match out {
            None => m,
            Some(o) => o.logical_or(&m),
        });
    }
    out
}

/// The masks that take part in the values: each input's, as bools with trailing axes to its
/// rank. An input that `merge_inputs` had to bring up to a higher rank has none, as in Keras,
/// where the expanded tensor no longer carries the mask.
fn value_masks(inputs: &[Tensor], xs: &[Tensor], masks: &[Option<Tensor>]) -> Vec<Option<Tensor>> {
    inputs
        .iter()
        .zip(xs)
        .enumerate()
        .map(|(k, (input, x))| {
            let m = masks.get(k)?.as_ref()?;
            (input.rank() == x.rank()).then(|| align_mask(m, x.rank()))
        })
        .collect()
}

/// Which elementwise merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MergeOp {
    Add,
    Subtract,
    Multiply,
    Average,
    Maximum,
    Minimum,
}

/// The merged values. `masks` are the inputs' masks aligned to their ranks (`None` where an
/// input has none); `Multiply`, `Maximum` and `Minimum` use them as Keras 3 does, the others
/// ignore them.
fn merge_values(op: MergeOp, xs: &[Tensor], masks: &[Option<Tensor>]) -> Tensor {
    match op {
        MergeOp::Multiply if masks.iter().any(Option::is_some) => masked_product(xs, masks),
        MergeOp::Maximum | MergeOp::Minimum if masks.iter().any(Option::is_some) => {
            masked_extreme(op, xs, masks)
        }
        _ => plain_merge(op, xs),
    }
}

/// Keras 3's masked `Multiply`: a masked entry counts as 1; when every input has a mask, a
/// position masked in all of them is 0.
fn masked_product(xs: &[Tensor], masks: &[Option<Tensor>]) -> Tensor {
    let factors: Vec<Tensor> = xs
        .iter()
        .zip(masks)
        .map(|(x, m)| match m {
            Some(m) => Tensor::where_(m, x, Tensor::scalar_of(1.0, x.dtype())),
            None => x.clone(),
        })
        .collect();
    let mut out = factors[0].clone();
    for f in &factors[1..] {
        out = out.multiply(f);
    }
    match or_masks(masks) {
        Some(m) => Tensor::where_(&m, &out, Tensor::scalar_of(0.0, out.dtype())),
        None => out,
    }
}

/// Keras 3's masked `Maximum` / `Minimum`: each input's masked entries take the running
/// result's value and the running result's masked entries take the input's, so only valid
/// inputs count; a position masked everywhere keeps the first input's value. The running mask
/// is dropped from the first input without one on.
fn masked_extreme(op: MergeOp, xs: &[Tensor], masks: &[Option<Tensor>]) -> Tensor {
    let mut out = xs[0].clone();
    let mut out_mask = masks[0].clone();
    for (x, m) in xs[1..].iter().zip(&masks[1..]) {
        let x = match m {
            Some(m) => Tensor::where_(m, x, &out),
            None => x.clone(),
        };
        if let Some(om) = &out_mask {
            out = Tensor::where_(om, &out, &x);
        }
        out_mask = match (&out_mask, m) {
            (Some(om), Some(m)) => Some(om.logical_or(m)),
            _ => None,
        };
        out = if op == MergeOp::Maximum {
            out.maximum(&x)
        } else {
            out.minimum(&x)
        };
    }
    out
}

fn plain_merge(op: MergeOp, xs: &[Tensor]) -> Tensor {
    let mut acc = xs[0].clone();
    for x in &xs[1..] {
        acc = match op {
            MergeOp::Add | MergeOp::Average => acc.add(x),
            MergeOp::Subtract => acc.subtract(x),
            MergeOp::Multiply => acc.multiply(x),
            MergeOp::Maximum => acc.maximum(x),
            MergeOp::Minimum => acc.minimum(x),
        };
    }
    if op == MergeOp::Average {
        acc = acc.divide(xs.len() as f32);
    }
    acc
}

macro_rules! elementwise_merge {
    ($(#[$doc:meta])* $ty:ident, $kind:literal, $prefix:literal, $op:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $ty {
            id: u64,
            name: String,
        }

        impl $ty {
            /// A new layer.
            pub fn new() -> $ty {
                $ty {
                    id: next_id(),
                    name: unique_name($prefix),
                }
            }

            /// Sets the layer's name.
            pub fn name(self, name: &str) -> $ty {
                $ty {
                    id: next_id(),
                    name: name.to_string(),
                }
            }
        }

        impl Configurable for $ty {
            const CLASS: &'static str = $kind;
            type Config = MergeConfig;

            fn config(&self) -> MergeConfig {
                MergeConfig {
                    name: self.name.clone(),
                }
            }

            fn from_config(config: MergeConfig, _context: &ConfigContext) -> Result<$ty> {
                Ok($ty::new().name(&config.name))
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
                self.forward_masked(inputs, &vec![None; inputs.len()])
            }

            fn forward_masked(
                &self,
                inputs: &[Tensor],
                masks: &[Option<Tensor>],
            ) -> Result<Vec<Tensor>> {
                if $op == MergeOp::Subtract && inputs.len() != 2 {
                    return Err(Error::Inputs {
                        detail: format!(
                            "a Subtract layer should be called on exactly 2 inputs, got {}",
                            inputs.len()
                        ),
                    });
                }
                let xs = merge_inputs($kind, inputs)?;
                let masks = value_masks(inputs, &xs, masks);
                let out = merge_values($op, &xs, &masks);
                out.check()?;
                Ok(vec![out])
            }

            fn supports_masking(&self) -> bool {
                true
            }

            fn compute_mask(
                &self,
                _inputs: &[Tensor],
                masks: &[Option<Tensor>],
                _outputs: &[Tensor],
            ) -> Result<Vec<Option<Tensor>>> {
                Ok(vec![or_masks(masks)])
            }
        }
    };
}

elementwise_merge!(
    /// Keras's `Add`: the sum of its inputs (broadcast). The output mask is the `or` of the
    /// inputs' masks when every input has one, else none.
    Add, "Add", "add", MergeOp::Add
);
elementwise_merge!(
    /// Keras's `Subtract`: the first of exactly two inputs minus the second.
    Subtract, "Subtract", "subtract", MergeOp::Subtract
);
elementwise_merge!(
    /// Keras's `Multiply`: the product of its inputs. With masks, as in Keras 3, a masked
    /// entry counts as 1, and when every input has a mask a position masked in all of them
    /// is 0.
    Multiply, "Multiply", "multiply", MergeOp::Multiply
);
elementwise_merge!(
    /// Keras's `Average`: the mean of its inputs.
    Average, "Average", "average", MergeOp::Average
);
elementwise_merge!(
    /// Keras's `Maximum`: the elementwise maximum of its inputs. With masks, as in Keras 3,
    /// only the inputs valid at a position count; one masked in every input keeps the first
    /// input's value.
    Maximum, "Maximum", "maximum", MergeOp::Maximum
);
elementwise_merge!(
    /// Keras's `Minimum`: the elementwise minimum of its inputs, with `Maximum`'s mask rules.
    Minimum, "Minimum", "minimum", MergeOp::Minimum
);

/// Keras's `Concatenate(axis=-1)`: the inputs joined along `axis`. Its output mask, when any
/// input has one, joins the masks (all-true for unmasked inputs) along the axis and keeps a
/// step where any of its values is kept, as Keras 3 does.
#[derive(Clone)]
pub struct Concatenate {
    id: u64,
    name: String,
    axis: isize,
}

impl Concatenate {
    /// Concatenation along the last axis.
    pub fn new() -> Concatenate {
        Concatenate {
            id: next_id(),
            name: unique_name("concatenate"),
            axis: -1,
        }
    }

    /// Sets the axis.
    pub fn axis(self, axis: isize) -> Concatenate {
        Concatenate {
            id: next_id(),
            axis,
            ..self
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Concatenate {
        Concatenate {
            id: next_id(),
            name: name.to_string(),
            ..self
        }
    }
}

impl Configurable for Concatenate {
    const CLASS: &'static str = "Concatenate";
    type Config = ConcatenateConfig;

    fn config(&self) -> ConcatenateConfig {
        ConcatenateConfig {
            name: self.name.clone(),
            axis: self.axis as i64,
        }
    }

    fn from_config(config: ConcatenateConfig, _context: &ConfigContext) -> Result<Concatenate> {
        let axis = config_axis("Concatenate", &config.name, config.axis)?;
        Ok(Concatenate::new().axis(axis).name(&config.name))
    }
}

impl Default for Concatenate {
    fn default() -> Self {
        Concatenate::new()
    }
}

impl Layer for Concatenate {
    layer_identity!("Concatenate");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        if inputs.is_empty() {
            return Err(Error::Inputs {
                detail: "Concatenate should be called on a list of at least 1 input".into(),
            });
        }
        let out = Tensor::concatenate(inputs, self.axis);
        out.check()?;
        Ok(vec![out])
    }

    fn supports_masking(&self) -> bool {
        true
    }

    fn compute_mask(
        &self,
        inputs: &[Tensor],
        masks: &[Option<Tensor>],
        _outputs: &[Tensor],
    ) -> Result<Vec<Option<Tensor>>> {
        if masks.iter().all(|m| m.is_none()) {
            return Ok(vec![None]);
        }
        let full: Vec<Tensor> = inputs
            .iter()
            .zip(masks)
            .map(|(x, m)| {
                let all_true = x.cast(DType::Bool).logical_or(true);
                match m {
                    None => all_true,
                    Some(m) => align_mask(m, x.rank()).logical_and(&all_true),
                }
            })
            .collect();
        let axis = normalize_axis("concatenate", self.axis, &inputs[0].shape())?;
        let joined = Tensor::concatenate(&full, axis as isize);
        Ok(vec![Some(joined.any(-1))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Configurable<Config = MergeConfig>>(layer: T) {
        let c = layer.config();
        let back = T::from_config(c.clone(), &ConfigContext::default()).unwrap();
        assert_eq!(back.config(), c);
        assert_eq!(back.name(), c.name);
    }

    #[test]
    fn configs_round_trip_and_refuse_unknown_fields() {
        round_trip(Add::new().name("a"));
        round_trip(Subtract::new().name("s"));
        round_trip(Multiply::new().name("m"));
        round_trip(Average::new().name("av"));
        round_trip(Maximum::new().name("max"));
        round_trip(Minimum::new().name("min"));
        assert_eq!(
            serde_json::to_string(&Add::new().name("a").config()).unwrap(),
            r#"{"name":"a"}"#
        );
        assert!(serde_json::from_str::<MergeConfig>(r#"{"name":"a","axis":1}"#).is_err());

        let ctx = ConfigContext::default();
        let c = Concatenate::new().axis(1).name("c").config();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"name":"c","axis":1}"#
        );
        assert_eq!(
            Concatenate::from_config(c.clone(), &ctx).unwrap().config(),
            c
        );
        assert!(serde_json::from_str::<ConcatenateConfig>(r#"{"name":"c"}"#).is_err());
    }
}
