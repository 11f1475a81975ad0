//! The `Layer` trait and layer calls: what ties the symbolic graph to Keras-style layers.

use crate::error::{Error, Result};
use crate::tensor::{Tensor, next_id};
use crate::variable::Variable;
use std::fmt;
use std::sync::Arc;

/// A Keras-style layer: a named, reusable function from tensors to tensors that may own
/// variables. Calling it twice reuses its variables.
pub trait Layer: Send + Sync {
    /// A process-unique id; clones of one layer handle share it.
    fn id(&self) -> u64;
    /// The layer's name, unique by default (`dense`, `dense_1`, ...).
    fn name(&self) -> String;
    /// The layer's type as Keras prints it (`Dense`, `Lambda`).
    fn kind(&self) -> &'static str;
    /// Records the layer's computation on symbolic inputs and returns its outputs.
    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>>;
    /// The variables the layer owns, in creation order (empty until first called).
    fn variables(&self) -> Vec<Arc<Variable>>;
    /// A shared handle to this layer.
    fn handle(&self) -> LayerRef;
    /// The layer as `Any`, so that savers can see its concrete type.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// A shared handle to a layer of any type.
pub type LayerRef = Arc<dyn Layer>;

impl fmt::Debug for dyn Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.kind())
    }
}

/// One application of a layer to inputs: the edge of a functional model's layer graph.
#[derive(Debug)]
pub struct LayerCall {
    seq: u64,
    layer: LayerRef,
    inputs: Vec<Tensor>,
    outputs: Vec<Tensor>,
}

impl LayerCall {
    /// The layer that was called.
    pub fn layer(&self) -> &LayerRef {
        &self.layer
    }
    /// The tensors it was called on.
    pub fn inputs(&self) -> &[Tensor] {
        &self.inputs
    }
    /// The tensors it produced (without their history).
    pub fn outputs(&self) -> &[Tensor] {
        &self.outputs
    }
    /// A creation sequence number: earlier calls have smaller numbers.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Moves the tensors out, leaving the call empty (for non-recursive drops).
    pub(crate) fn into_tensors(mut self) -> (Vec<Tensor>, Vec<Tensor>) {
        (
            std::mem::take(&mut self.inputs),
            std::mem::take(&mut self.outputs),
        )
    }

    pub(crate) fn record(layer: LayerRef, inputs: &[Tensor], outputs: &[Tensor]) -> Arc<LayerCall> {
        Arc::new(LayerCall {
            seq: next_id(),
            layer,
            inputs: inputs.to_vec(),
            outputs: outputs
                .iter()
                .map(|t| t.clone().without_history())
                .collect(),
        })
    }
}

impl Drop for LayerCall {
    fn drop(&mut self) {
        let mut stack = std::mem::take(&mut self.inputs);
        stack.append(&mut self.outputs);
        crate::tensor::release_tensors(&mut stack);
    }
}

/// Calls a layer on symbolic inputs: runs its `forward`, attributes any error to the layer,
/// and marks the outputs with the call so that models can find their layers.
pub fn call_layer(layer: &dyn Layer, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    let context = |e: Error| e.in_layer(&layer.name(), layer.kind());
    for t in inputs {
        t.check().map_err(|e| context(e.clone()))?;
    }
    let outputs = layer.forward(inputs).map_err(context)?;
    for t in &outputs {
        t.check().map_err(|e| context(e.clone()))?;
    }
    let call = LayerCall::record(layer.handle(), inputs, &outputs);
    Ok(outputs
        .into_iter()
        .map(|t| t.with_history(call.clone()))
        .collect())
}

/// Makes unique default layer names the way Keras does: `dense`, `dense_1`, `dense_2`...
pub(crate) fn unique_name(prefix: &str) -> String {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static COUNTS: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);
    let mut guard = COUNTS.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    let n = map.entry(prefix.to_string()).or_insert(0);
    let name = if *n == 0 {
        prefix.to_string()
    } else {
        format!("{prefix}_{n}")
    };
    *n += 1;
    name
}
