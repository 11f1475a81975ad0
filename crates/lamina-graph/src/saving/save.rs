//! Saving: a model (Lambda bodies included) to one safetensors file, written atomically.

use super::format::*;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::host::{HostData, HostTensor};
use crate::layer::LayerCall;
use crate::layers::{Activation, InputLayer, Lambda, LambdaMask, OutputShape, registry};
use crate::model::Model;
use crate::op::Op;
use crate::shape::{Dim, Shape};
use crate::tensor::Tensor;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

fn save_error(path: &Path, detail: impl Into<String>) -> Error {
    Error::File {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

fn dims(shape: &Shape) -> Vec<Option<usize>> {
    shape.dims().iter().map(|d| d.known()).collect()
}

/// Everything that goes in a file: the architecture and the named tensors.
pub(crate) struct Snapshot {
    pub architecture: Architecture,
    pub tensors: BTreeMap<String, HostTensor>,
}

/// Records a model as architecture + tensors; fails on what a file cannot hold (a tensor made
/// outside any layer, a Lambda reading a tensor that is not among its inputs).
pub(crate) fn snapshot(model: &Model) -> Result<Snapshot> {
    let calls = model.calls();
    let call_index: HashMap<u64, usize> = calls
        .iter()
        .enumerate()
        .map(|(i, c)| (c.seq(), i))
        .collect();
    let mut layer_index: HashMap<u64, usize> = HashMap::new();
    let mut layers = Vec::new();
    let mut tensors = BTreeMap::new();
    let tensor_ref = |t: &Tensor, what: &str| -> Result<TensorRef> {
        let Some(h) = t.history() else {
            let op = t.node().map(|n| n.op().name()).unwrap_or_default();
            return Err(Error::Model {
                detail: format!(
                    "cannot save: {what} is made by op {op} outside any layer; wrap that computation in a Lambda"
                ),
            });
        };
        let call = *call_index.get(&h.seq()).ok_or_else(|| Error::Model {
            detail: format!("cannot save: {what} comes from a layer call outside the model"),
        })?;
        let output = h
            .outputs()
            .iter()
            .position(|o| o.id() == t.id())
            .ok_or_else(|| Error::Model {
                detail: format!("cannot save: {what} is not an output of its layer call"),
            })?;
        Ok(TensorRef { call, output })
    };
    let mut call_records = Vec::with_capacity(calls.len());
    let mut non_trainable = Vec::new();
    for call in calls {
        let layer = call.layer();
        let li = match layer_index.get(&layer.id()) {
            Some(&i) => i,
            None => {
                let i = layers.len();
                layers.push(layer_record(call, i, &mut tensors)?);
                layer_index.insert(layer.id(), i);
                // A nested model lists its own non-trainable weights.
                let nested = layer.as_any().is::<Model>();
                for v in layer.variables().into_iter().filter(|_| !nested) {
                    if v.kind() == crate::variable::VariableKind::Weight && !v.trainable() {
                        non_trainable.push(format!("layers/{i}/weights/{}", v.name()));
                    }
                }
                i
            }
        };
        let inputs = call
            .inputs()
            .iter()
            .enumerate()
            .map(|(k, t)| tensor_ref(t, &format!("input {k} of layer '{}'", layer.name())))
            .collect::<Result<Vec<_>>>()?;
        let masks = call
            .explicit_masks()
            .iter()
            .enumerate()
            .map(|(k, m)| {
                m.as_ref()
                    .map(|m| tensor_ref(m, &format!("mask {k} of layer '{}'", layer.name())))
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        call_records.push(CallRecord {
            layer: li,
            inputs,
            masks,
        });
    }
    let inputs = model
        .inputs()
        .iter()
        .map(|t| tensor_ref(t, "a model input").map(|r| r.call))
        .collect::<Result<Vec<_>>>()?;
    let outputs = model
        .outputs()
        .iter()
        .enumerate()
        .map(|(k, t)| tensor_ref(t, &format!("model output {k}")))
        .collect::<Result<Vec<_>>>()?;
    Ok(Snapshot {
        architecture: Architecture {
            name: model.name().to_string(),
            sequential: model.is_sequential(),
            layers,
            calls: call_records,
            inputs,
            outputs,
            non_trainable,
        },
        tensors,
    })
}

fn layer_record(
    call: &Arc<LayerCall>,
    index: usize,
    tensors: &mut BTreeMap<String, HostTensor>,
) -> Result<LayerRecord> {
    let layer = call.layer();
    let any = layer.as_any();
    let name = layer.name();
    if any.downcast_ref::<InputLayer>().is_some() {
        let out = call.outputs().first().ok_or_else(|| Error::Model {
            detail: format!("input layer '{name}' has no output"),
        })?;
        return Ok(LayerRecord::Graph(GraphRecord::InputLayer {
            name,
            shape: dims(&out.shape()),
            dtype: out.dtype(),
        }));
    }
    if let Some(lambda) = any.downcast_ref::<Lambda>() {
        return lambda_record(lambda, call, index, tensors);
    }
    if let Some(inner) = any.downcast_ref::<Model>() {
        let snap = snapshot(inner).map_err(|e| Error::Model {
            detail: format!("cannot save the nested model '{name}': {e}"),
        })?;
        for (k, t) in snap.tensors {
            tensors.insert(format!("layers/{index}/model/{k}"), t);
        }
        return Ok(LayerRecord::Graph(GraphRecord::Model {
            name,
            architecture: Box::new(snap.architecture),
        }));
    }
    let class = registry::class_of(layer.as_ref()).ok_or_else(|| Error::Model {
        detail: format!("cannot save layer '{name}' of type {}", layer.kind()),
    })?;
    let mut serialized = (class.serialize)(any)?;
    if let Some(x) = call.inputs().first()
        && let Some((activation, shape, dtype)) =
            (class.custom_activation)(any, &x.shape(), x.dtype())
    {
        let body = activation_body(&name, &activation, shape, dtype, index, tensors)?;
        let body = serde_json::to_value(body).map_err(|e| Error::Model {
            detail: format!("cannot save the activation of layer '{name}': {e}"),
        })?;
        serialized.config.insert("activation_body".into(), body);
    }
    for v in layer.variables() {
        tensors.insert(format!("layers/{index}/weights/{}", v.name()), v.value());
    }
    Ok(LayerRecord::Layer(serialized))
}

/// The body of a layer's custom activation: the function traced once more on a placeholder
/// shaped like the activation's input in this call, so that only the activation is recorded,
/// not the layer around it.
fn activation_body(
    layer: &str,
    activation: &Activation,
    shape: Shape,
    dtype: DType,
    index: usize,
    tensors: &mut BTreeMap<String, HostTensor>,
) -> Result<BodyRecord> {
    let placeholder = Tensor::input("activation_input", shape, dtype);
    let fail = |detail: String| Error::Model {
        detail: format!(
            "cannot save the activation '{}' of layer '{layer}': {detail}",
            activation.name(),
        ),
    };
    let out = activation.apply(&placeholder);
    out.check().map_err(|e| fail(e.to_string()))?;
    let mut recorder = BodyRecorder {
        index,
        tensors,
        constants: 0,
        arguments: HashMap::new(),
        variables: HashMap::new(),
        leaves: HashMap::from([(placeholder.id(), OpRecord::Input { index: 0 })]),
        inputs: 1,
    };
    recorder.record(&out).map_err(|e| fail(e.to_string()))
}

fn lambda_record(
    lambda: &Lambda,
    call: &Arc<LayerCall>,
    index: usize,
    tensors: &mut BTreeMap<String, HostTensor>,
) -> Result<LayerRecord> {
    let name = crate::layer::Layer::name(lambda);
    let fail = |detail: String| Error::Model {
        detail: format!("cannot save Lambda '{name}': {detail}"),
    };
    let variables = lambda.named_variables();
    for (k, v) in lambda.arguments() {
        tensors.insert(format!("layers/{index}/arguments/{k}"), v.value());
    }
    for (k, v) in &variables {
        tensors.insert(format!("layers/{index}/weights/{k}"), v.value());
    }
    let mut recorder = BodyRecorder {
        index,
        tensors,
        constants: 0,
        arguments: lambda
            .arguments()
            .iter()
            .map(|(k, v)| (v.id(), k.clone()))
            .collect(),
        variables: variables.iter().map(|(k, v)| (v.id(), k.clone())).collect(),
        leaves: HashMap::new(),
        inputs: call.inputs().len(),
    };
    // The body's leaves: the call's inputs, then their masks.
    for (k, t) in call.inputs().iter().enumerate() {
        recorder
            .leaves
            .entry(t.id())
            .or_insert(OpRecord::Input { index: k });
    }
    for (k, m) in call.masks_used().iter().enumerate() {
        if let Some(m) = m {
            recorder
                .leaves
                .entry(m.id())
                .or_insert(OpRecord::InputMask { index: k });
        }
    }
    let out = call
        .outputs()
        .first()
        .ok_or_else(|| fail("it has no output".into()))?;
    let body = recorder.record(out).map_err(|e| fail(e.to_string()))?;
    let more_outputs = call.outputs()[1..]
        .iter()
        .enumerate()
        .map(|(k, o)| {
            recorder
                .record(o)
                .map_err(|e| fail(format!("output {}: {e}", k + 1)))
        })
        .collect::<Result<Vec<_>>>()?;
    let output_masks = if lambda.has_output_masks() {
        let mut list = Vec::new();
        for (k, o) in call.outputs().iter().enumerate() {
            list.push(match o.mask() {
                Some(m) => Some(
                    recorder
                        .record(m)
                        .map_err(|e| fail(format!("mask of output {k}: {e}")))?,
                ),
                None => None,
            });
        }
        Some(list)
    } else {
        None
    };
    let mask = match lambda.mask_spec() {
        None => None,
        Some(LambdaMask::Fixed(m)) => {
            recorder
                .tensors
                .insert(format!("layers/{index}/mask"), m.clone());
            Some(MaskRecord::Fixed)
        }
        Some(LambdaMask::Function(_)) => Some(MaskRecord::Function {
            body: match out.mask() {
                Some(m) => Some(
                    recorder
                        .record(m)
                        .map_err(|e| fail(format!("mask function: {e}")))?,
                ),
                None => None,
            },
        }),
    };
    let output_shape = match lambda.declared_output_shape() {
        None => None,
        Some(OutputShape::PerSample(d)) => Some(OutputShapeRecord::PerSample(
            d.iter().map(|x| x.known()).collect(),
        )),
        Some(OutputShape::Function(f)) => {
            let shapes: Vec<Shape> = call.inputs().iter().map(|t| t.shape()).collect();
            Some(OutputShapeRecord::Full(dims(&f(&shapes))))
        }
    };
    Ok(LayerRecord::Graph(GraphRecord::Lambda {
        name,
        output_shape,
        arguments: lambda.arguments().keys().cloned().collect(),
        variables: variables.iter().map(|(k, _)| k.clone()).collect(),
        body,
        mask,
        static_arguments: lambda.static_arguments(),
        more_outputs,
        output_masks,
    }))
}

/// Records expression graphs of one Lambda: constants go to the file's tensors, numbered
/// across all of the layer's bodies; variables and arguments are named; the leaves (the
/// call's inputs and their masks) end the walk.
struct BodyRecorder<'a> {
    index: usize,
    tensors: &'a mut BTreeMap<String, HostTensor>,
    constants: usize,
    arguments: HashMap<u64, String>,
    variables: HashMap<u64, String>,
    leaves: HashMap<u64, OpRecord>,
    inputs: usize,
}

impl BodyRecorder<'_> {
    /// The graph from the leaves to `out`, in topological order.
    fn record(&mut self, out: &Tensor) -> Result<BodyRecord> {
        let fail = |detail: String| Error::Model { detail };
        let mut nodes: Vec<NodeRecord> = Vec::new();
        let mut position: HashMap<u64, usize> = HashMap::new();
        let mut stack: Vec<(Tensor, bool)> = vec![(out.clone(), false)];
        while let Some((t, expanded)) = stack.pop() {
            if position.contains_key(&t.id()) {
                continue;
            }
            let node = t.node()?;
            if let Some(leaf) = self.leaves.get(&t.id()) {
                position.insert(t.id(), nodes.len());
                nodes.push(NodeRecord {
                    op: leaf.clone(),
                    inputs: vec![],
                });
                continue;
            }
            if !expanded {
                stack.push((t.clone(), true));
                for c in node.inputs().iter().rev() {
                    if !position.contains_key(&c.id()) {
                        stack.push((c.clone(), false));
                    }
                }
                continue;
            }
            let op = match node.op() {
                Op::Input { name: input } => {
                    return Err(fail(format!(
                        "it reads Input '{input}', which is not among the Lambda's inputs"
                    )));
                }
                Op::Constant(c) => {
                    self.tensors.insert(
                        format!("layers/{}/constants/{}", self.index, self.constants),
                        (**c).clone(),
                    );
                    self.constants += 1;
                    OpRecord::Constant {
                        id: self.constants - 1,
                    }
                }
                Op::Variable(v) => {
                    if let Some(n) = self.arguments.get(&v.id()) {
                        OpRecord::Argument { name: n.clone() }
                    } else if let Some(n) = self.variables.get(&v.id()) {
                        OpRecord::Variable { name: n.clone() }
                    } else {
                        return Err(fail(format!(
                            "it reads variable '{}', which belongs to another layer",
                            v.path()
                        )));
                    }
                }
                Op::Recurrence { .. } => {
                    return Err(fail(format!(
                        "op {} cannot be recorded in a Lambda body (call recurrent layers \
                         outside Lambdas)",
                        node.op().name()
                    )));
                }
                op => OpRecord::Op(op.clone()),
            };
            let inputs = node.inputs().iter().map(|c| position[&c.id()]).collect();
            position.insert(t.id(), nodes.len());
            nodes.push(NodeRecord { op, inputs });
        }
        Ok(BodyRecord {
            inputs: self.inputs,
            output: position[&out.id()],
            nodes,
        })
    }
}

/// Serialises a snapshot into the bytes of a safetensors file.
pub(crate) fn to_bytes(snapshot: &Snapshot, path: &Path) -> Result<Vec<u8>> {
    use safetensors::tensor::{Dtype, TensorView};
    let arch = serde_json::to_string(&snapshot.architecture)
        .map_err(|e| save_error(path, format!("cannot encode the architecture: {e}")))?;
    let mut buffers: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in &snapshot.tensors {
        let (dtype, bytes): (Dtype, Vec<u8>) = match t.data() {
            HostData::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            HostData::I32(v) => (Dtype::I32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            HostData::U32(v) => (Dtype::U32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            HostData::Bool(v) => (Dtype::BOOL, v.iter().map(|&b| b as u8).collect()),
        };
        buffers.push((name.clone(), dtype, t.shape().to_vec(), bytes));
    }
    let views = buffers
        .iter()
        .map(|(n, d, s, b)| {
            TensorView::new(*d, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| save_error(path, format!("tensor {n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), FORMAT_NAME.to_string());
    meta.insert("version".to_string(), FORMAT_VERSION.to_string());
    meta.insert("architecture".to_string(), arch);
    let mut bytes = safetensors::tensor::serialize(views, Some(meta))
        .map_err(|e| save_error(path, format!("cannot encode tensors: {e}")))?;
    canonical_header(&mut bytes);
    Ok(bytes)
}

/// Rewrites a safetensors header with its keys sorted (the crate writes the metadata map in
/// hash order), so that the same model always saves to the same bytes. The sorted header has
/// the same length, so the data offsets stay.
fn canonical_header(bytes: &mut [u8]) {
    let Some(len) = bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .and_then(|n| usize::try_from(n).ok())
    else {
        return;
    };
    let Some(header) = bytes.get(8..8usize.saturating_add(len)) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(header) else {
        return;
    };
    let trimmed = text.trim_end_matches(' ');
    let Ok(value) = serde_json::from_str::<serde_json::Value>(trimmed) else {
        return;
    };
    // serde_json's maps are sorted (no `preserve_order`).
    if let Ok(sorted) = serde_json::to_string(&value)
        && sorted.len() == trimmed.len()
    {
        bytes[8..8 + sorted.len()].copy_from_slice(sorted.as_bytes());
    }
}

impl Model {
    /// Saves the model, Lambda bodies included, to one portable file (safetensors tensors plus
    /// the architecture as JSON metadata). The write goes to a temporary file that is renamed
    /// over `path`, so a failed or interrupted save never destroys an existing file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let snap = snapshot(self)?;
        let bytes = to_bytes(&snap, path)?;
        super::atomic::write_atomically(path, &bytes)
    }
}

impl crate::model::Sequential {
    /// Saves the built model (see `Model::save`).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.model()?.save(path)
    }
}

/// Shape of dims for records.
pub(crate) fn dims_to_shape(d: &[Option<usize>]) -> Shape {
    Shape::new(d.iter().map(|x| x.map_or(Dim::Dynamic, Dim::Known)))
}
