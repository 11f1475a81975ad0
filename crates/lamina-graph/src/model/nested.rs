//! A model used as a layer of another model (Keras's nested models): each call replays the
//! model's layer calls on new inputs, so every call shares the same layers and weights.

use super::functional::Model;
use crate::error::{Error, Result};
use crate::layer::{Layer, LayerRef, call_layer_with_masks};
use crate::shape::Dim;
use crate::tensor::Tensor;
use crate::variable::Variable;
use std::collections::HashMap;
use std::sync::Arc;

impl Model {
    /// Checks that `x` fits model input `k`: the same rank and the same size wherever both
    /// are known.
    fn check_input(&self, k: usize, x: &Tensor) -> Result<()> {
        let want = self.inputs()[k].shape();
        let got = x.shape();
        let fits = want.rank() == got.rank()
            && want
                .dims()
                .iter()
                .zip(got.dims())
                .all(|(w, g)| match (w, g) {
                    (Dim::Known(a), Dim::Known(b)) => a == b,
                    _ => true,
                });
        if fits {
            Ok(())
        } else {
            Err(Error::IncompatibleShapes {
                op: "model call".into(),
                shapes: format!("{got} for input {k} of shape {want}"),
                detail: format!(
                    "model '{}' cannot take this input",
                    Layer::name(self).as_str()
                ),
            })
        }
    }
}

impl Layer for Model {
    fn id(&self) -> u64 {
        self.model_id()
    }

    fn name(&self) -> String {
        Model::name(self).to_string()
    }

    fn kind(&self) -> &'static str {
        if self.is_sequential() {
            "Sequential"
        } else {
            "Functional"
        }
    }

    fn handle(&self) -> LayerRef {
        Arc::new(self.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn variables(&self) -> Vec<Arc<Variable>> {
        self.weights()
    }

    fn weight_paths(&self) -> Vec<(String, Arc<Variable>)> {
        let prefix = Model::name(self);
        self.named_weights()
            .into_iter()
            .map(|(p, v)| (format!("{prefix}/{p}"), v))
            .collect()
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
        Ok(outputs.iter().map(|t| t.mask().cloned()).collect())
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let masks: Vec<Option<Tensor>> = inputs.iter().map(|t| t.mask().cloned()).collect();
        self.forward_masked(inputs, &masks)
    }

    /// Replays the model's layer calls, in order, on `inputs` (with `masks`), and returns the
    /// tensors that stand where the model's outputs stood.
    fn forward_masked(&self, inputs: &[Tensor], masks: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let own = self.inputs();
        if inputs.len() != own.len() {
            return Err(Error::Inputs {
                detail: format!(
                    "model '{}' takes {} inputs, got {}",
                    Model::name(self),
                    own.len(),
                    inputs.len()
                ),
            });
        }
        let mut map: HashMap<u64, Tensor> = HashMap::new();
        for (k, (mine, x)) in own.iter().zip(inputs).enumerate() {
            self.check_input(k, x)?;
            let m = masks.get(k).cloned().flatten();
            map.insert(mine.id(), x.clone().with_mask(m));
        }
        let lookup = |map: &HashMap<u64, Tensor>, t: &Tensor| -> Result<Tensor> {
            map.get(&t.id()).cloned().ok_or_else(|| Error::Model {
                detail: format!(
                    "model '{}': a layer reads a tensor of shape {} that none of its inputs \
                     lead to",
                    Model::name(self),
                    t.shape()
                ),
            })
        };
        for call in self.calls() {
            let layer = call.layer();
            if layer.kind() == "InputLayer" {
                continue;
            }
            let ins = call
                .inputs()
                .iter()
                .map(|t| lookup(&map, t))
                .collect::<Result<Vec<_>>>()?;
            let explicit = call
                .explicit_masks()
                .iter()
                .map(|m| m.as_ref().map(|m| lookup(&map, m)).transpose())
                .collect::<Result<Vec<_>>>()?;
            let explicit = (!explicit.is_empty()).then_some(explicit.as_slice());
            let outs = call_layer_with_masks(layer.as_ref(), &ins, explicit)?;
            for (old, new) in call.outputs().iter().zip(outs) {
                map.insert(old.id(), new);
            }
        }
        self.outputs().iter().map(|t| lookup(&map, t)).collect()
    }
}
