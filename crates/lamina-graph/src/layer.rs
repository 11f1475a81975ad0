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
    /// The variables the layer owns, in creation order (empty until first called). Layers
    /// without weights keep the default, none.
    fn variables(&self) -> Vec<Arc<Variable>> {
        Vec::new()
    }
    /// The layer's weights with their paths as Keras names them in a model: `dense/kernel`
    /// for a layer's own (the default), `tower/dense/kernel` for the weights of a layer
    /// inside a nested model or wrapper, which prefix their own name.
    fn weight_paths(&self) -> Vec<(String, Arc<Variable>)> {
        self.variables()
            .into_iter()
            .filter(|v| v.kind() == crate::variable::VariableKind::Weight)
            .map(|v| (v.path(), v))
            .collect()
    }

    /// A shared handle to this layer.
    fn handle(&self) -> LayerRef;
    /// The layer as `Any`, so that savers can see its concrete type.
    fn as_any(&self) -> &dyn std::any::Any;

    /// Whether the layer passes masks on or makes them (Keras's `supports_masking`). A layer
    /// that does not drops an incoming mask and says so once through the `log` facade.
    fn supports_masking(&self) -> bool {
        false
    }

    /// Records the layer's computation given the inputs' masks (`None` where an input has
    /// none). Layers that consume masks (pooling, `Softmax`) override this; the default
    /// ignores them.
    fn forward_masked(&self, inputs: &[Tensor], masks: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let _ = masks;
        self.forward(inputs)
    }

    /// The masks of the outputs, given the inputs, their masks and the outputs; asked only of
    /// layers that support masking. The default passes the first input's mask on, as Keras does.
    fn compute_mask(
        &self,
        inputs: &[Tensor],
        masks: &[Option<Tensor>],
        outputs: &[Tensor],
    ) -> Result<Vec<Option<Tensor>>> {
        let _ = inputs;
        Ok(vec![masks.first().cloned().flatten(); outputs.len()])
    }

    /// The current value of the layer's variable `name` (`kernel`, `embeddings`, `gamma`).
    fn get_weight(&self, name: &str) -> Result<crate::host::HostTensor> {
        find_variable(self, name).map(|v| v.value())
    }

    /// Sets the layer's variable `name`; the shape and dtype must stay the same.
    fn set_weight(&self, name: &str, value: crate::host::HostTensor) -> Result<()> {
        find_variable(self, name)?.set(value)
    }

    /// Calls the layer on symbolic inputs, as Keras's `layer(x)` and `layer([a, b])`: one
    /// tensor (`&x`, `x`) or several (`&[a, b]`, `[&a, &b]`, `vec![a, b]`, `&xs`), the same
    /// way for every layer. The inputs' masks are used. Returns the layer's output.
    fn call<'a>(&self, inputs: impl Into<LayerInputs<'a>>) -> Result<Tensor>
    where
        Self: Sized,
    {
        let mut outputs = call_layer(self, inputs.into().as_slice())?;
        match outputs.len() {
            1 => Ok(outputs.remove(0)),
            n => Err(Error::Model {
                detail: format!(
                    "layer '{}' ({}) gave {n} outputs where one was expected",
                    self.name(),
                    self.kind()
                ),
            }),
        }
    }
}

/// The inputs of a layer call: one tensor or a list, borrowed or owned. Everything that
/// `Layer::call` accepts converts into it.
#[derive(Clone, Debug)]
pub struct LayerInputs<'a>(std::borrow::Cow<'a, [Tensor]>);

impl LayerInputs<'_> {
    /// The input tensors, in order.
    pub fn as_slice(&self) -> &[Tensor] {
        &self.0
    }
}

impl<'a> From<&'a Tensor> for LayerInputs<'a> {
    fn from(t: &'a Tensor) -> Self {
        LayerInputs(std::borrow::Cow::Borrowed(std::slice::from_ref(t)))
    }
}

impl From<Tensor> for LayerInputs<'_> {
    fn from(t: Tensor) -> Self {
        LayerInputs(std::borrow::Cow::Owned(vec![t]))
    }
}

impl<'a> From<&'a [Tensor]> for LayerInputs<'a> {
    fn from(ts: &'a [Tensor]) -> Self {
        LayerInputs(std::borrow::Cow::Borrowed(ts))
    }
}

impl<'a, const N: usize> From<&'a [Tensor; N]> for LayerInputs<'a> {
    fn from(ts: &'a [Tensor; N]) -> Self {
        LayerInputs(std::borrow::Cow::Borrowed(ts))
    }
}

impl<'a> From<&'a Vec<Tensor>> for LayerInputs<'a> {
    fn from(ts: &'a Vec<Tensor>) -> Self {
        LayerInputs(std::borrow::Cow::Borrowed(ts))
    }
}

impl From<Vec<Tensor>> for LayerInputs<'_> {
    fn from(ts: Vec<Tensor>) -> Self {
        LayerInputs(std::borrow::Cow::Owned(ts))
    }
}

impl<const N: usize> From<[Tensor; N]> for LayerInputs<'_> {
    fn from(ts: [Tensor; N]) -> Self {
        LayerInputs(std::borrow::Cow::Owned(ts.into()))
    }
}

impl<const N: usize> From<[&Tensor; N]> for LayerInputs<'_> {
    fn from(ts: [&Tensor; N]) -> Self {
        LayerInputs(std::borrow::Cow::Owned(ts.into_iter().cloned().collect()))
    }
}

impl From<&[&Tensor]> for LayerInputs<'_> {
    fn from(ts: &[&Tensor]) -> Self {
        LayerInputs(std::borrow::Cow::Owned(
            ts.iter().map(|&t| t.clone()).collect(),
        ))
    }
}

fn find_variable<L: Layer + ?Sized>(layer: &L, name: &str) -> Result<Arc<Variable>> {
    let vars = layer.variables();
    vars.iter()
        .find(|v| v.name() == name)
        .cloned()
        .ok_or_else(|| Error::NotFound {
            kind: "weight".into(),
            name: name.to_string(),
            detail: format!(
                " in layer '{}' (it has: {}; weights appear when the layer is built)",
                layer.name(),
                if vars.is_empty() {
                    "none".to_string()
                } else {
                    vars.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")
                }
            ),
        })
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
    /// Masks given explicitly for the inputs (empty when the inputs' own masks were used).
    explicit_masks: Vec<Option<Tensor>>,
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
    /// The masks given explicitly for the inputs (`layer(x, mask=m)`), or empty when the
    /// inputs' own masks were used.
    pub fn explicit_masks(&self) -> &[Option<Tensor>] {
        &self.explicit_masks
    }

    /// The masks the layer saw: the explicit ones, or else those its inputs carry.
    pub fn masks_used(&self) -> Vec<Option<Tensor>> {
        if self.explicit_masks.is_empty() {
            self.inputs.iter().map(|t| t.mask().cloned()).collect()
        } else {
            self.explicit_masks.clone()
        }
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
        let mut inputs = std::mem::take(&mut self.inputs);
        inputs.extend(
            std::mem::take(&mut self.explicit_masks)
                .into_iter()
                .flatten(),
        );
        (inputs, std::mem::take(&mut self.outputs))
    }

    pub(crate) fn record(
        layer: LayerRef,
        inputs: &[Tensor],
        explicit_masks: Option<&[Option<Tensor>]>,
        outputs: &[Tensor],
    ) -> Arc<LayerCall> {
        Arc::new(LayerCall {
            seq: next_id(),
            layer,
            inputs: inputs.to_vec(),
            explicit_masks: explicit_masks.map(|m| m.to_vec()).unwrap_or_default(),
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
        stack.extend(
            std::mem::take(&mut self.explicit_masks)
                .into_iter()
                .flatten(),
        );
        stack.append(&mut self.outputs);
        crate::tensor::release_tensors(&mut stack);
    }
}

/// Calls a layer on symbolic inputs: runs its `forward`, attributes any error to the layer,
/// propagates masks as Keras 3 does, and marks the outputs with the call so that models can
/// find their layers.
pub fn call_layer(layer: &dyn Layer, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    call_layer_with_masks(layer, inputs, None)
}

/// Calls a layer with explicit masks for its inputs (Keras's `layer(x, mask=m)`), which take
/// the place of the masks the inputs carry; `None` uses the carried ones.
pub fn call_layer_with_masks(
    layer: &dyn Layer,
    inputs: &[Tensor],
    masks: Option<&[Option<Tensor>]>,
) -> Result<Vec<Tensor>> {
    let context = |e: Error| e.in_layer(&layer.name(), layer.kind());
    for t in inputs {
        t.check().map_err(|e| context(e.clone()))?;
    }
    let explicit = masks;
    let masks: Vec<Option<Tensor>> = match masks {
        Some(m) if m.len() == inputs.len() => m.to_vec(),
        Some(m) => {
            return Err(context(Error::Inputs {
                detail: format!("{} masks given for {} inputs", m.len(), inputs.len()),
            }));
        }
        None => inputs.iter().map(|t| t.mask().cloned()).collect(),
    };
    for m in masks.iter().flatten() {
        m.check().map_err(|e| context(e.clone()))?;
    }
    let outputs = layer.forward_masked(inputs, &masks).map_err(context)?;
    for t in &outputs {
        t.check().map_err(|e| context(e.clone()))?;
    }
    let outputs = if layer.supports_masking() {
        let out_masks = layer
            .compute_mask(inputs, &masks, &outputs)
            .map_err(context)?;
        let mut masked = Vec::with_capacity(outputs.len());
        for (k, t) in outputs.into_iter().enumerate() {
            let m = match out_masks.get(k).cloned().flatten() {
                Some(m) => {
                    m.check().map_err(|e| context(e.clone()))?;
                    Some(m.cast(crate::dtype::DType::Bool))
                }
                None => None,
            };
            masked.push(t.with_mask(m));
        }
        masked
    } else {
        if masks.iter().any(|m| m.is_some()) {
            warn_mask_dropped(layer);
        }
        outputs.into_iter().map(|t| t.with_mask(None)).collect()
    };
    let call = LayerCall::record(layer.handle(), inputs, explicit, &outputs);
    Ok(outputs
        .into_iter()
        .map(|t| t.with_history(call.clone()))
        .collect())
}

/// Says once per layer, through the `log` facade, that a layer without mask support dropped a
/// mask, in Keras's words.
fn warn_mask_dropped(layer: &dyn Layer) {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static WARNED: Mutex<Option<HashSet<u64>>> = Mutex::new(None);
    let mut guard = WARNED.lock().unwrap_or_else(|p| p.into_inner());
    if guard.get_or_insert_with(HashSet::new).insert(layer.id()) {
        log::warn!(
            "Layer '{}' (of type {}) was passed an input with a mask attached to it. However, \
             this layer does not support masking and will therefore destroy the mask \
             information. Downstream layers will not see the mask.",
            layer.name(),
            layer.kind()
        );
    }
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
