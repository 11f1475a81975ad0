//! The functional `Model`: a DAG of layer calls from `Input`s to outputs.

use super::program::Program;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::unique_name;
use crate::layer::{LayerCall, LayerRef};
use crate::tensor::Tensor;
use crate::variable::{Variable, VariableKind};
use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

/// A built model: inputs, outputs, the layer calls between them and the flattened program.
/// Cheap to clone; `Send + Sync`, so several threads may run it at once.
#[derive(Clone)]
pub struct Model {
    inner: Arc<ModelInner>,
}

struct ModelInner {
    id: u64,
    name: String,
    inputs: Vec<Tensor>,
    outputs: Vec<Tensor>,
    program: Arc<Program>,
    calls: Vec<Arc<LayerCall>>,
    sequential: bool,
    runtime: OnceLock<Arc<dyn Any + Send + Sync>>,
}

impl Model {
    /// A functional model from its input tensors (made by `Input`) to its outputs.
    pub fn new(inputs: &[Tensor], outputs: &[Tensor]) -> Result<Model> {
        Model::build(&unique_name("functional"), inputs, outputs, false)
    }

    /// The same, with a name.
    pub fn named(name: &str, inputs: &[Tensor], outputs: &[Tensor]) -> Result<Model> {
        Model::build(name, inputs, outputs, false)
    }

    /// A model named `name` that its summary lays out as a `Sequential` (one column of layers),
    /// from its input and output tensors: what a loader of a Keras `Sequential` makes.
    pub fn named_sequential(name: &str, inputs: &[Tensor], outputs: &[Tensor]) -> Result<Model> {
        Model::build(name, inputs, outputs, true)
    }

    pub(crate) fn build(
        name: &str,
        inputs: &[Tensor],
        outputs: &[Tensor],
        sequential: bool,
    ) -> Result<Model> {
        if inputs.is_empty() || outputs.is_empty() {
            return Err(Error::Model {
                detail: format!(
                    "a model needs at least one input and one output ({} and {} given)",
                    inputs.len(),
                    outputs.len()
                ),
            });
        }
        for t in inputs.iter().chain(outputs) {
            t.check()?;
        }
        let calls = collect_calls(outputs);
        check_unique_names(name, &calls)?;
        let program = Program::from_tensors(inputs, outputs)?;
        Ok(Model {
            inner: Arc::new(ModelInner {
                id: crate::tensor::next_id(),
                name: name.to_string(),
                inputs: inputs.to_vec(),
                outputs: outputs.to_vec(),
                program: Arc::new(program),
                calls,
                sequential,
                runtime: OnceLock::new(),
            }),
        })
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// A process-unique id, shared by clones (the model's id as a layer of another model).
    pub(crate) fn model_id(&self) -> u64 {
        self.inner.id
    }

    /// The input tensors.
    pub fn inputs(&self) -> &[Tensor] {
        &self.inner.inputs
    }

    /// The output tensors.
    pub fn outputs(&self) -> &[Tensor] {
        &self.inner.outputs
    }

    /// The flattened expression graph that backends compile.
    pub fn program(&self) -> &Arc<Program> {
        &self.inner.program
    }

    /// The layer calls in the order they were made (input layers first).
    pub fn calls(&self) -> &[Arc<LayerCall>] {
        &self.inner.calls
    }

    /// Whether this model was built by `Sequential` (it prints without input rows).
    pub fn is_sequential(&self) -> bool {
        self.inner.sequential
    }

    /// The distinct layers, in the order of their first call.
    pub fn layers(&self) -> Vec<LayerRef> {
        let mut seen = HashSet::new();
        self.inner
            .calls
            .iter()
            .filter(|c| seen.insert(c.layer().id()))
            .map(|c| c.layer().clone())
            .collect()
    }

    /// The layer of that name.
    pub fn get_layer(&self, name: &str) -> Result<LayerRef> {
        let layers = self.layers();
        layers
            .iter()
            .find(|l| l.name() == name)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                kind: "layer".into(),
                name: name.to_string(),
                detail: format!(
                    " (the model has: {})",
                    layers
                        .iter()
                        .map(|l| l.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    /// Every weight of every layer, each once, named `layer/variable`.
    pub fn weights(&self) -> Vec<Arc<Variable>> {
        let mut seen = HashSet::new();
        self.layers()
            .iter()
            .flat_map(|l| l.variables())
            .filter(|v| v.kind() == VariableKind::Weight && seen.insert(v.id()))
            .collect()
    }

    /// The trainable weights (Keras's `model.trainable_weights`), each once.
    pub fn trainable_weights(&self) -> Vec<Arc<Variable>> {
        self.weights()
            .into_iter()
            .filter(|v| v.trainable())
            .collect()
    }

    /// The non-trainable weights (Keras's `model.non_trainable_weights`: `BatchNormalization`'s
    /// moving statistics, frozen weights), each once.
    pub fn non_trainable_weights(&self) -> Vec<Arc<Variable>> {
        self.weights()
            .into_iter()
            .filter(|v| !v.trainable())
            .collect()
    }

    /// The value of the weight named `layer/variable` (`dense/kernel`, `lambda/multiplier`).
    pub fn get_weight(&self, path: &str) -> Result<HostTensor> {
        self.find_weight(path).map(|v| v.value())
    }

    /// Sets the weight named `layer/variable`; the shape must stay the same.
    pub fn set_weight(&self, path: &str, value: HostTensor) -> Result<()> {
        self.find_weight(path)?.set(value)
    }

    /// Every weight with its Keras path, each once: `dense/kernel`, and for the layers of a
    /// nested model or a wrapper, `tower/dense/kernel`, `time_distributed/dense/kernel`.
    pub fn named_weights(&self) -> Vec<(String, Arc<Variable>)> {
        let mut seen = HashSet::new();
        self.layers()
            .iter()
            .flat_map(|l| l.weight_paths())
            .filter(|(_, v)| v.kind() == VariableKind::Weight && seen.insert(v.id()))
            .collect()
    }

    pub(crate) fn find_weight(&self, path: &str) -> Result<Arc<Variable>> {
        let weights = self.named_weights();
        // Keras's variable paths start with the model's name (`sequential/dense/kernel`).
        let short = path
            .strip_prefix(self.name())
            .and_then(|p| p.strip_prefix('/'))
            .filter(|p| p.contains('/'));
        weights
            .iter()
            .find(|(p, _)| p == path)
            .or_else(|| short.and_then(|s| weights.iter().find(|(p, _)| p == s)))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| Error::NotFound {
                kind: "weight".into(),
                name: path.to_string(),
                detail: format!(
                    " (the model has: {})",
                    weights
                        .iter()
                        .map(|(p, _)| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    /// The total number of weight elements, each shared weight counted once.
    pub fn count_params(&self) -> usize {
        self.weights().iter().map(|v| v.numel()).sum()
    }

    /// A slot where a runtime (such as the facade's default session) keeps its state for this
    /// model; the graph crate never looks inside.
    pub fn runtime_slot(&self) -> &OnceLock<Arc<dyn Any + Send + Sync>> {
        &self.inner.runtime
    }
}

/// Refuses two distinct layers of one name, as Keras does ("All layer names should be
/// unique"): weights are addressed as `layer/variable`, so a second layer of the same name
/// could never be reached. The same layer called twice is one layer.
fn check_unique_names(model: &str, calls: &[Arc<LayerCall>]) -> Result<()> {
    let mut first: HashMap<String, u64> = HashMap::new();
    for call in calls {
        let layer = call.layer();
        let name = layer.name();
        match first.get(&name) {
            Some(&id) if id != layer.id() => {
                let count = calls
                    .iter()
                    .filter(|c| c.layer().name() == name)
                    .map(|c| c.layer().id())
                    .collect::<HashSet<_>>()
                    .len();
                return Err(duplicate_name_error(model, &name, count));
            }
            Some(_) => {}
            None => {
                first.insert(name, layer.id());
            }
        }
    }
    Ok(())
}

/// The error for a layer name used by `count` distinct layers of one model.
pub(crate) fn duplicate_name_error(model: &str, name: &str, count: usize) -> Error {
    Error::Model {
        detail: format!(
            "the name '{name}' is used by {count} layers in model '{model}': all layer names \
             should be unique (name one of them with .name(\"...\"))"
        ),
    }
}

/// Finds every layer call behind the outputs, by walking tensors and their histories.
fn collect_calls(outputs: &[Tensor]) -> Vec<Arc<LayerCall>> {
    let mut calls: HashMap<u64, Arc<LayerCall>> = HashMap::new();
    let mut seen_tensors: HashSet<(u64, Option<u64>)> = HashSet::new();
    let mut stack: Vec<Tensor> = outputs.to_vec();
    while let Some(t) = stack.pop() {
        let key = (t.id(), t.history().map(|c| c.seq()));
        if !seen_tensors.insert(key) {
            continue;
        }
        if let Some(call) = t.history() {
            if calls.insert(call.seq(), call.clone()).is_none() {
                stack.extend(call.inputs().iter().cloned());
                stack.extend(call.explicit_masks().iter().flatten().cloned());
            }
            continue;
        }
        if let Ok(node) = t.node() {
            stack.extend(node.inputs().iter().cloned());
        }
    }
    let mut out: Vec<Arc<LayerCall>> = calls.into_values().collect();
    out.sort_by_key(|c| c.seq());
    out
}
