//! Loading: rebuilds a model from a file without running any code. Every index, arity, shape,
//! dtype, name and tensor is checked before use; a bad file gives an `Err`, never a panic.

use super::format::*;
use super::save::dims_to_shape;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{LayerRef, call_layer_with_masks};
use crate::layers::{ConfigContext, Input, Lambda, SerializedLayer, registry};
use crate::model::Model;
use crate::shape::Dim;
use crate::tensor::Tensor;
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

struct Loader<'a> {
    path: String,
    tensors: SafeTensors<'a>,
    /// The tensors read so far: a file whose tensors are not all read is refused.
    used: std::cell::RefCell<HashSet<String>>,
    /// Where the model being built keeps its tensors: empty for the file's model,
    /// `layers/{i}/model/` for a model nested in it as layer `i`.
    prefix: std::cell::RefCell<String>,
}

impl<'a> Loader<'a> {
    fn err(&self, detail: impl Into<String>) -> Error {
        Error::File {
            path: self.path.clone(),
            detail: detail.into(),
        }
    }

    fn new(path: String, tensors: SafeTensors<'a>) -> Loader<'a> {
        Loader {
            path,
            tensors,
            used: Default::default(),
            prefix: Default::default(),
        }
    }

    /// Runs `f` with tensor names read under `prefix` as well (for a nested model's build).
    fn nested<R>(&self, prefix: &str, f: impl FnOnce() -> R) -> R {
        let outer = self
            .prefix
            .replace(format!("{}{prefix}", self.prefix.borrow()));
        let out = f();
        *self.prefix.borrow_mut() = outer;
        out
    }

    fn tensor(&self, name: &str) -> Result<HostTensor> {
        let full = format!("{}{name}", self.prefix.borrow());
        let name = full.as_str();
        let view = self
            .tensors
            .tensor(name)
            .map_err(|_| self.err(format!("tensor '{name}' is missing")))?;
        self.used.borrow_mut().insert(name.to_string());
        let shape = view.shape().to_vec();
        let bytes = view.data();
        let words = |b: &[u8]| -> Vec<[u8; 4]> {
            b.chunks_exact(4)
                .map(|c| [c[0], c[1], c[2], c[3]])
                .collect()
        };
        let t = match view.dtype() {
            Dtype::F32 => HostTensor::new(
                &shape,
                words(bytes).into_iter().map(f32::from_le_bytes).collect(),
            ),
            Dtype::I32 => HostTensor::new(
                &shape,
                words(bytes).into_iter().map(i32::from_le_bytes).collect(),
            ),
            Dtype::U32 => HostTensor::new(
                &shape,
                words(bytes).into_iter().map(u32::from_le_bytes).collect(),
            ),
            Dtype::BOOL => {
                if let Some(b) = bytes.iter().find(|&&b| b > 1) {
                    return Err(self.err(format!("tensor '{name}' holds the byte {b}, not a bool")));
                }
                HostTensor::new(&shape, bytes.iter().map(|&b| b == 1).collect())
            }
            other => {
                return Err(self.err(format!("tensor '{name}' has unsupported dtype {other:?}")));
            }
        };
        t.map_err(|e| self.err(format!("tensor '{name}': {e}")))
    }
}

/// The function of a loaded Lambda: replays its recorded body on new inputs.
fn replay(
    body: &BodyRecord,
    constants: &[HostTensor],
    initial: &HashMap<String, HostTensor>,
    xs: &[Tensor],
    masks: &[Option<Tensor>],
    scope: Option<&crate::layers::LambdaScope<'_>>,
) -> Tensor {
    let bad = |detail: String| {
        Tensor::invalid(Error::Model {
            detail: format!("recorded body: {detail}"),
        })
    };
    if xs.len() != body.inputs {
        return bad(format!(
            "takes {} inputs, called on {}",
            body.inputs,
            xs.len()
        ));
    }
    let mut values: Vec<Tensor> = Vec::with_capacity(body.nodes.len());
    for (i, node) in body.nodes.iter().enumerate() {
        if let Some(&j) = node.inputs.iter().find(|&&j| j >= i) {
            return bad(format!(
                "node {i} reads node {j}, which does not come before it"
            ));
        }
        let t = match &node.op {
            OpRecord::Input { index } => match xs.get(*index) {
                Some(x) => x.clone(),
                None => return bad(format!("node {i} reads input {index} of {}", xs.len())),
            },
            OpRecord::Constant { id } => match constants.get(*id) {
                Some(c) => Tensor::constant(c.clone()),
                None => return bad(format!("node {i} reads constant {id}, which is not stored")),
            },
            OpRecord::InputMask { index } => match masks.get(*index) {
                Some(Some(m)) => m.clone(),
                _ => {
                    return bad(format!(
                        "node {i} reads the mask of input {index}, which has none"
                    ));
                }
            },
            OpRecord::Variable { name } => match (initial.get(name), scope) {
                (Some(v), Some(scope)) => scope.variable_from(name, v.clone()),
                _ => {
                    return bad(format!(
                        "node {i} reads variable '{name}', which is not stored here"
                    ));
                }
            },
            OpRecord::Argument { name } => match scope {
                Some(scope) => scope.argument(name),
                None => {
                    return bad(format!(
                        "node {i} reads argument '{name}' outside the function"
                    ));
                }
            },
            OpRecord::Op(op) => {
                let ins: Vec<&Tensor> = node.inputs.iter().map(|&j| &values[j]).collect();
                Tensor::from_op(op.clone(), &ins)
            }
        };
        if !node.inputs.is_empty() && !matches!(node.op, OpRecord::Op(_)) {
            return bad(format!("node {i} is a leaf but lists inputs"));
        }
        values.push(t);
    }
    match values.get(body.output) {
        Some(t) => t.clone(),
        None => bad(format!("output node {} does not exist", body.output)),
    }
}

enum Built {
    Input {
        input: Input,
        used: bool,
    },
    /// Any other layer; its weights are set from the file after its first call.
    Layer {
        layer: LayerRef,
        weights_set: bool,
    },
}

/// Rebuilds a model from the bytes of a model file. `path` only names the file in errors.
pub(crate) fn from_bytes(bytes: &[u8], path: &str) -> Result<Model> {
    let file_err = |detail: String| Error::File {
        path: path.to_string(),
        detail,
    };
    // The header's declared size is checked before the safetensors parser reads it.
    if let Some(prefix) = bytes.first_chunk::<8>() {
        super::bounded::header_len(prefix).map_err(file_err)?;
    }
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| file_err(format!("not a valid safetensors file: {e}")))?;
    let tensors = SafeTensors::deserialize(bytes)
        .map_err(|e| file_err(format!("not a valid safetensors file: {e}")))?;
    let loader = Loader::new(path.to_string(), tensors);
    let meta = metadata
        .metadata()
        .as_ref()
        .ok_or_else(|| loader.err("no metadata: not a Lamina model file"))?;
    match meta.get("format") {
        Some(f) if f == FORMAT_NAME => {}
        Some(f) => return Err(loader.err(format!("format '{f}' is not '{FORMAT_NAME}'"))),
        None => return Err(loader.err("no 'format' metadata: not a Lamina model file")),
    }
    let version_text = meta
        .get("version")
        .ok_or_else(|| loader.err("no 'version' metadata"))?;
    // Only the canonical spelling: "2", not "+2", "02" or " 2".
    let version: u32 = version_text
        .parse()
        .ok()
        .filter(|v: &u32| v.to_string() == *version_text)
        .ok_or_else(|| {
            loader.err(format!(
                "version '{version_text}' is not a format version (a number in plain digits)"
            ))
        })?;
    if version > FORMAT_VERSION {
        return Err(loader.err(format!(
            "format version {version} is newer than this build reads (up to {FORMAT_VERSION}); upgrade Lamina"
        )));
    }
    if version == 0 {
        return Err(loader.err("format version 0 does not exist"));
    }
    let arch_json = meta
        .get("architecture")
        .ok_or_else(|| loader.err("no 'architecture' metadata"))?;
    let arch: Architecture =
        serde_json::from_str(arch_json).map_err(|e| loader.err(format!("architecture: {e}")))?;
    build(&loader, &arch, bytes.len())
}

/// The constants that recorded bodies of layer `i` read, `layers/{i}/constants/{k}`, numbered
/// in order of first use across the bodies.
fn body_constants<'b>(
    loader: &Loader<'_>,
    i: usize,
    name: &str,
    bodies: impl Iterator<Item = &'b BodyRecord>,
) -> Result<Vec<HostTensor>> {
    let mut constants = Vec::new();
    for node in bodies.flat_map(|b| &b.nodes) {
        if let OpRecord::Constant { id } = node.op {
            if id > constants.len() {
                return Err(loader.err(format!(
                    "layer {i} '{name}': constant {id} appears before constant {}",
                    constants.len()
                )));
            }
            if id == constants.len() {
                constants.push(loader.tensor(&format!("layers/{i}/constants/{id}"))?);
            }
        }
    }
    Ok(constants)
}

/// The traced body of a layer's custom activation, which a file keeps beside the layer's
/// configuration as `activation_body` (`None` for a layer without one).
fn activation_body(layer: &SerializedLayer) -> Result<Option<BodyRecord>> {
    let Some(body) = layer.config.get("activation_body") else {
        return Ok(None);
    };
    serde_json::from_value(body.clone())
        .map(Some)
        .map_err(|e| Error::Model {
            detail: format!("its activation_body: {e}"),
        })
}

/// A layer from its class and configuration, with a custom activation rebuilt as a function
/// that replays its recorded body. The body may read only its one input, constants and
/// compute ops.
fn configured_layer(loader: &Loader<'_>, i: usize, layer: &SerializedLayer) -> Result<LayerRef> {
    let name = layer.name();
    let bad = |detail: String| loader.err(format!("layer {i} '{name}': {detail}"));
    let Some(body) = activation_body(layer).map_err(|e| bad(e.to_string()))? else {
        return registry::build_layer(layer, &ConfigContext::default())
            .map_err(|e| bad(e.to_string()));
    };
    let activation = match layer.config.get("activation") {
        Some(serde_json::Value::String(a)) => a.clone(),
        _ => {
            return Err(bad(
                "it records an activation_body but no activation name".into()
            ));
        }
    };
    let bad_body = |detail: String| bad(format!("activation '{activation}': {detail}"));
    if body.inputs != 1 {
        return Err(bad_body(format!(
            "its body takes {} inputs, not 1",
            body.inputs
        )));
    }
    for (k, node) in body.nodes.iter().enumerate() {
        match &node.op {
            OpRecord::Input { index: 0 } | OpRecord::Constant { .. } => {}
            OpRecord::Input { .. }
            | OpRecord::InputMask { .. }
            | OpRecord::Variable { .. }
            | OpRecord::Argument { .. } => {
                return Err(bad_body(format!(
                    "node {k} reads something other than the activation's input or a constant"
                )));
            }
            _ => {}
        }
    }
    let constants = Arc::new(body_constants(loader, i, name, std::iter::once(&body))?);
    let body = Arc::new(body);
    let none = Arc::new(HashMap::new());
    let custom = crate::layers::Activation::custom(&activation, move |x| {
        replay(&body, &constants, &none, std::slice::from_ref(x), &[], None)
    });
    let mut config = layer.clone();
    config.config.remove("activation_body");
    registry::build_layer(&config, &ConfigContext::with_custom_activation(custom))
        .map_err(|e| bad(e.to_string()))
}

/// The calls a file's graph is built from, found from the architecture alone before any node
/// is made: `canonical[c]` is the earlier call whose outputs call `c` shares (a call of the
/// same layer on the same tensors and masks gives the same outputs, so it is not replayed
/// again), or `c` itself. The graph this makes must stay within `limits::loaded_node_limit`:
/// a recorded body (a Lambda's, its mask function's, a custom activation's) counts its nodes
/// once per call that is not shared, every other call one node.
/// The nodes one call of a nested model replays: the sum over its calls of their layers'.
fn nested_nodes(arch: &Architecture) -> usize {
    let cost = |l: &LayerRecord| match l {
        LayerRecord::Graph(GraphRecord::Model { architecture, .. }) => nested_nodes(architecture),
        LayerRecord::Graph(GraphRecord::Lambda { body, .. }) => body.nodes.len().saturating_add(1),
        LayerRecord::Layer(l) => match activation_body(l) {
            Ok(Some(b)) => b.nodes.len().saturating_add(1),
            _ => 1,
        },
        LayerRecord::Graph(GraphRecord::InputLayer { .. }) => 1,
    };
    arch.calls.iter().fold(0usize, |n, c| {
        n.saturating_add(arch.layers.get(c.layer).map_or(1, cost))
    })
}

fn plan_calls(loader: &Loader<'_>, arch: &Architecture, file_bytes: usize) -> Result<Vec<usize>> {
    let limit = crate::limits::loaded_node_limit(file_bytes);
    let body_nodes = |b: &BodyRecord| b.nodes.len();
    let per_call: Vec<usize> = arch
        .layers
        .iter()
        .map(|l| match l {
            LayerRecord::Graph(GraphRecord::Model { architecture, .. }) => {
                nested_nodes(architecture)
            }
            LayerRecord::Graph(GraphRecord::Lambda {
                body,
                mask,
                more_outputs,
                output_masks,
                ..
            }) => {
                let mask_nodes = match mask {
                    Some(MaskRecord::Function { body: Some(b) }) => body_nodes(b),
                    _ => 0,
                };
                let extra = more_outputs
                    .iter()
                    .chain(output_masks.iter().flatten().flatten())
                    .map(body_nodes)
                    .fold(0usize, usize::saturating_add);
                body_nodes(body)
                    .saturating_add(mask_nodes)
                    .saturating_add(extra)
            }
            LayerRecord::Layer(l) => match activation_body(l) {
                Ok(Some(b)) => body_nodes(&b).saturating_add(1),
                _ => 1,
            },
            LayerRecord::Graph(GraphRecord::InputLayer { .. }) => 1,
        })
        .collect();
    type Key = (usize, Vec<(usize, usize)>, Vec<Option<(usize, usize)>>);
    let mut seen: HashMap<Key, usize> = HashMap::new();
    let mut canonical = Vec::with_capacity(arch.calls.len());
    let mut total = 0usize;
    for (c, call) in arch.calls.iter().enumerate() {
        // Only calls whose references are valid (earlier calls) are shared; the others are
        // left for `build` to refuse with its own error.
        let resolve = |r: &TensorRef| (r.call < c).then(|| (canonical[r.call], r.output));
        let inputs: Option<Vec<(usize, usize)>> = call.inputs.iter().map(resolve).collect();
        let masks: Option<Vec<Option<(usize, usize)>>> = call
            .masks
            .iter()
            .map(|m| match m {
                Some(r) => resolve(r).map(Some),
                None => Some(None),
            })
            .collect();
        let is_input = matches!(
            arch.layers.get(call.layer),
            Some(LayerRecord::Graph(GraphRecord::InputLayer { .. }))
        );
        if let (Some(inputs), Some(masks), false) = (inputs, masks, is_input) {
            match seen.entry((call.layer, inputs, masks)) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    canonical.push(*e.get());
                    continue;
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(c);
                }
            }
        }
        canonical.push(c);
        let n = per_call.get(call.layer).copied().unwrap_or(1);
        total = total.saturating_add(n);
        if total > limit {
            return Err(loader.err(format!(
                "its graph would exceed {limit} nodes by call {c} of {} (layer {} replays {n} \
                 nodes per call): a file of {file_bytes} bytes may replay into at most {limit} \
                 (limits::loaded_node_limit; MAX_LOADED_NODES is {})",
                arch.calls.len(),
                call.layer,
                crate::limits::MAX_LOADED_NODES
            )));
        }
    }
    Ok(canonical)
}

/// A Lambda rebuilt from its record: each body (the output's, more outputs', the mask
/// function's, the output masks') becomes a function that replays it on the call's inputs,
/// with the file's constants, arguments and variables.
fn lambda_layer(loader: &Loader<'_>, i: usize, record: &GraphRecord) -> Result<Lambda> {
    let GraphRecord::Lambda {
        name,
        output_shape,
        arguments,
        variables,
        body,
        mask,
        static_arguments,
        more_outputs,
        output_masks,
    } = record
    else {
        return Err(loader.err(format!("layer {i} is not a Lambda")));
    };
    let mask_body = match mask {
        Some(MaskRecord::Function { body: Some(b) }) => Some(b),
        _ => None,
    };
    let constants = body_constants(
        loader,
        i,
        name,
        std::iter::once(body)
            .chain(mask_body)
            .chain(more_outputs)
            .chain(output_masks.iter().flatten().flatten()),
    )?;
    let mut initial = HashMap::new();
    for v in variables {
        initial.insert(
            v.clone(),
            loader.tensor(&format!("layers/{i}/weights/{v}"))?,
        );
    }
    let body = Arc::new(body.clone());
    let constants = Arc::new(constants);
    let initial = Arc::new(initial);
    let mut lambda = if more_outputs.is_empty() {
        let (constants, initial) = (constants.clone(), initial.clone());
        Lambda::with_scope(move |xs, scope| {
            replay(&body, &constants, &initial, xs, scope.masks(), Some(scope))
        })
        .name(name)
    } else {
        let (constants, initial) = (constants.clone(), initial.clone());
        let bodies: Vec<BodyRecord> = std::iter::once(body.as_ref().clone())
            .chain(more_outputs.iter().cloned())
            .collect();
        Lambda::with_outputs(move |xs, scope| {
            bodies
                .iter()
                .map(|b| replay(b, &constants, &initial, xs, scope.masks(), Some(scope)))
                .collect()
        })
        .name(name)
    };
    if let Some(list) = output_masks {
        let (constants, initial) = (constants.clone(), initial.clone());
        let list = list.clone();
        lambda = lambda.output_masks(move |xs, masks| {
            list.iter()
                .map(|b| {
                    b.as_ref()
                        .map(|b| replay(b, &constants, &initial, xs, masks, None))
                })
                .collect()
        });
    }
    for a in arguments {
        lambda = lambda.argument(a, loader.tensor(&format!("layers/{i}/arguments/{a}"))?);
    }
    for a in static_arguments {
        lambda
            .mark_static(a)
            .map_err(|e| loader.err(format!("layer {i} '{name}': static argument: {e}")))?;
    }
    lambda = match output_shape {
        None => lambda,
        Some(OutputShapeRecord::PerSample(d)) => {
            lambda.output_shape_dims(d.iter().map(|x| Dim::from(*x)).collect())
        }
        Some(OutputShapeRecord::Full(d)) => {
            let full = dims_to_shape(d);
            lambda.output_shape_fn(move |_| full.clone())
        }
    };
    lambda = match mask {
        None => lambda,
        Some(MaskRecord::Fixed) => lambda.mask(loader.tensor(&format!("layers/{i}/mask"))?),
        Some(MaskRecord::Function { body: None }) => lambda.mask_fn(|_, _| None),
        Some(MaskRecord::Function { body: Some(b) }) => {
            let b = Arc::new(b.clone());
            lambda.mask_fn(move |xs, masks| Some(replay(&b, &constants, &initial, xs, masks, None)))
        }
    };
    Ok(lambda)
}

fn build(loader: &Loader<'_>, arch: &Architecture, file_bytes: usize) -> Result<Model> {
    let canonical = plan_calls(loader, arch, file_bytes)?;
    let mut built = Vec::with_capacity(arch.layers.len());
    for (i, record) in arch.layers.iter().enumerate() {
        built.push(match record {
            LayerRecord::Graph(GraphRecord::InputLayer { name, shape, dtype }) => {
                let Some((batch, rest)) = shape.split_first() else {
                    return Err(loader.err(format!("input layer {i} '{name}' has rank 0")));
                };
                let mut input = Input::with_dims(rest.iter().map(|d| Dim::from(*d)).collect())
                    .dtype(*dtype)
                    .name(name);
                if let Some(b) = batch {
                    input = input.batch_size(*b);
                }
                Built::Input { input, used: false }
            }
            LayerRecord::Graph(GraphRecord::Model { name, architecture }) => {
                let inner = loader.nested(&format!("layers/{i}/model/"), || {
                    build(loader, architecture, file_bytes)
                })?;
                if inner.name() != name {
                    return Err(loader.err(format!(
                        "layer {i} is named '{name}' but its model '{}'",
                        inner.name()
                    )));
                }
                Built::Layer {
                    layer: Arc::new(inner),
                    weights_set: true,
                }
            }
            LayerRecord::Graph(lambda @ GraphRecord::Lambda { .. }) => Built::Layer {
                layer: Arc::new(lambda_layer(loader, i, lambda)?),
                weights_set: true,
            },
            LayerRecord::Layer(layer) => Built::Layer {
                layer: configured_layer(loader, i, layer)?,
                weights_set: false,
            },
        });
    }
    // Layer names are unique, as Keras requires ("All layer names should be unique").
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, (b, record)) in built.iter().zip(&arch.layers).enumerate() {
        let name = match (b, record) {
            (Built::Layer { layer, .. }, _) => layer.name(),
            (_, LayerRecord::Graph(GraphRecord::InputLayer { name, .. })) => name.clone(),
            _ => continue,
        };
        if let Some(first) = names.insert(name.clone(), i) {
            return Err(loader.err(format!(
                "layers {first} and {i} are both named '{name}': all layer names should be \
                 unique"
            )));
        }
    }
    // Each layer's stored weights by name, found once: `layers/{i}/weights/{name}`.
    let mut weight_names: HashMap<usize, Vec<(&str, &str)>> = HashMap::new();
    let prefix = loader.prefix.borrow().clone();
    for name in loader.tensors.names() {
        // Names relative to this model's place in the file (a nested model's are prefixed).
        let Some(name) = name.strip_prefix(prefix.as_str()) else {
            continue;
        };
        let Some(rest) = name.strip_prefix("layers/") else {
            continue;
        };
        // Only the canonical spelling of an index counts ("3", not "03" or "+3").
        if let Some((index_text, weight)) = rest.split_once("/weights/")
            && let Ok(index) = index_text.parse::<usize>()
            && index.to_string() == index_text
        {
            weight_names.entry(index).or_default().push((weight, name));
        }
    }
    let mut outputs: Vec<Vec<Tensor>> = Vec::with_capacity(arch.calls.len());
    for (c, call) in arch.calls.iter().enumerate() {
        if canonical[c] != c {
            // The same layer on the same tensors: its outputs are shared, not built again.
            let shared = outputs[canonical[c]].clone();
            outputs.push(shared);
            continue;
        }
        let mut ins = Vec::with_capacity(call.inputs.len());
        let mut masks: Vec<Option<Tensor>> = Vec::with_capacity(call.masks.len());
        if !call.masks.is_empty() && call.masks.len() != call.inputs.len() {
            return Err(loader.err(format!(
                "call {c} has {} masks for {} inputs",
                call.masks.len(),
                call.inputs.len()
            )));
        }
        for r in &call.masks {
            let Some(r) = r else {
                masks.push(None);
                continue;
            };
            let t = outputs
                .get(r.call)
                .filter(|_| r.call < c)
                .and_then(|o| o.get(r.output))
                .ok_or_else(|| {
                    loader.err(format!(
                        "call {c} takes a mask from output {} of call {}, which does not come before it",
                        r.output, r.call
                    ))
                })?;
            masks.push(Some(t.clone()));
        }
        let explicit = (!masks.is_empty()).then_some(masks.as_slice());
        for r in &call.inputs {
            let t = outputs
                .get(r.call)
                .filter(|_| r.call < c)
                .and_then(|o| o.get(r.output))
                .ok_or_else(|| {
                    loader.err(format!(
                        "call {c} reads output {} of call {}, which does not come before it",
                        r.output, r.call
                    ))
                })?;
            ins.push(t.clone());
        }
        let layer = built.get_mut(call.layer).ok_or_else(|| {
            loader.err(format!(
                "call {c} names layer {}, which does not exist",
                call.layer
            ))
        })?;
        let in_layer = |e: Error| loader.err(format!("call {c}: {e}"));
        let outs = match layer {
            Built::Input { input, used } => {
                if !ins.is_empty() || *used {
                    return Err(loader.err(format!(
                        "call {c}: an input layer is called once, on nothing"
                    )));
                }
                *used = true;
                let t = input.clone().tensor();
                t.check().map_err(|e| in_layer(e.clone()))?;
                vec![t]
            }
            Built::Layer { layer, weights_set } => {
                if *weights_set {
                    call_layer_with_masks(layer.as_ref(), &ins, explicit).map_err(in_layer)?
                } else {
                    // The first call takes its weights from the file, checked before use.
                    let mut stored = HashMap::new();
                    for (weight, name) in weight_names.get(&call.layer).into_iter().flatten() {
                        stored.insert(weight.to_string(), loader.tensor(name)?);
                    }
                    let names: Vec<String> = stored.keys().cloned().collect();
                    let outs = crate::layers::with_stored_weights(stored, || {
                        call_layer_with_masks(layer.as_ref(), &ins, explicit)
                    })
                    .map_err(in_layer)?;
                    // Every stored weight must be one the layer has.
                    let has: Vec<String> = layer
                        .variables()
                        .iter()
                        .map(|v| v.name().to_string())
                        .collect();
                    if let Some(extra) = names.iter().find(|n| !has.contains(n)) {
                        return Err(loader.err(format!(
                            "tensor 'layers/{}/weights/{extra}' is not a weight of layer '{}' \
                             (it has: {})",
                            call.layer,
                            layer.name(),
                            crate::limits::bounded_list(&has, ", ")
                        )));
                    }
                    *weights_set = true;
                    outs
                }
            }
        };
        outputs.push(outs);
    }
    let mut inputs = Vec::with_capacity(arch.inputs.len());
    for &c in &arch.inputs {
        let is_input = arch
            .calls
            .get(c)
            .and_then(|call| arch.layers.get(call.layer))
            .is_some_and(|l| matches!(l, LayerRecord::Graph(GraphRecord::InputLayer { .. })));
        if !is_input {
            return Err(loader.err(format!("model input {c} is not the call of an input layer")));
        }
        inputs.push(outputs[c][0].clone());
    }
    let mut outs = Vec::with_capacity(arch.outputs.len());
    for r in &arch.outputs {
        let t = outputs
            .get(r.call)
            .and_then(|o| o.get(r.output))
            .ok_or_else(|| {
                loader.err(format!(
                    "model output refers to call {} output {}",
                    r.call, r.output
                ))
            })?;
        outs.push(t.clone());
    }
    let model = Model::build(&arch.name, &inputs, &outs, arch.sequential)
        .map_err(|e| loader.err(e.to_string()))?;
    set_trainable_flags(loader, arch, &built)?;
    if !prefix.is_empty() {
        // A nested model: the file's model checks the tensors once it is built.
        return Ok(model);
    }
    // Every tensor of the file belongs to something: an unknown extra one is refused.
    let used = loader.used.borrow();
    let mut unused: Vec<&str> = loader
        .tensors
        .names()
        .into_iter()
        .filter(|n| !used.contains(*n))
        .collect();
    unused.sort_unstable();
    if let Some(first) = unused.first() {
        return Err(loader.err(format!(
            "tensor '{first}' is not used by the model{}",
            match unused.len() {
                1 => String::new(),
                n => format!(" ({} unused tensors in all)", n),
            }
        )));
    }
    Ok(model)
}

/// Sets every loaded weight's trainable flag from the file: the weights it lists as
/// non-trainable are, all others are trainable. A listed name that is not a weight of the
/// model is refused.
fn set_trainable_flags(loader: &Loader<'_>, arch: &Architecture, built: &[Built]) -> Result<()> {
    let listed: HashSet<&str> = arch.non_trainable.iter().map(String::as_str).collect();
    let mut found = HashSet::new();
    for (i, b) in built.iter().enumerate() {
        let Built::Layer { layer, .. } = b else {
            continue;
        };
        if layer.as_any().is::<Model>() {
            // A nested model set its weights' flags from its own list.
            continue;
        }
        for v in layer.variables() {
            if v.kind() != crate::variable::VariableKind::Weight {
                continue;
            }
            let name = format!("layers/{i}/weights/{}", v.name());
            let frozen = listed.contains(name.as_str());
            if frozen {
                found.insert(name);
            }
            v.set_trainable(!frozen);
        }
    }
    match arch.non_trainable.iter().find(|n| !found.contains(*n)) {
        Some(n) => Err(loader.err(format!(
            "'{n}' is listed as non-trainable but is not a weight of the model"
        ))),
        None => Ok(()),
    }
}

impl Model {
    /// Loads a model saved by `save`. Runs no code: Lambda bodies are replayed from their
    /// recorded graphs, and every field is validated; a truncated, corrupt or hostile file, or
    /// one of a newer format version, gives an `Err`.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let bytes = super::bounded::read_safetensors_file(path)?;
        from_bytes(&bytes, &path.display().to_string())
    }

    /// Loads a model from the bytes of a model file (see `load`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        from_bytes(bytes, "<bytes>")
    }

    /// The bytes of the model file `save` would write.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let snap = super::save::snapshot(self)?;
        super::save::to_bytes(&snap, Path::new("<bytes>"))
    }

    /// Loads weights from a safetensors file whose tensors are named by their Keras paths
    /// (`dense/kernel`, `dense/bias`, `linear/multiplier`, `tower/dense/kernel` inside a nested
    /// model), as trained elsewhere. Every name and
    /// shape is checked before anything is set, so a bad file changes nothing.
    pub fn load_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = super::bounded::read_safetensors_file(path)?;
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| Error::File {
            path: path.display().to_string(),
            detail: format!("not a valid safetensors file: {e}"),
        })?;
        let loader = Loader::new(path.display().to_string(), tensors);
        let weights = self.named_weights();
        let mut updates = Vec::new();
        for name in loader.tensors.names() {
            let var = weights
                .iter()
                .find(|(p, _)| p == name)
                .map(|(_, v)| v)
                .ok_or_else(|| {
                    loader.err(format!(
                        "weight '{name}' is not in the model (it has: {})",
                        crate::limits::bounded_list(
                            &weights.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
                            ", "
                        )
                    ))
                })?;
            let value = loader.tensor(name)?;
            if value.shape() != var.shape().as_slice() || value.dtype() != var.dtype() {
                return Err(loader.err(format!(
                    "layer '{}': weight '{}' has shape {:?} {} in the model but {:?} {} in the file",
                    var.layer(),
                    var.name(),
                    var.shape(),
                    var.dtype(),
                    value.shape(),
                    value.dtype()
                )));
            }
            updates.push((var.clone(), value));
        }
        for (var, value) in updates {
            var.set(value)?;
        }
        Ok(())
    }

    /// As `load_weights` (safetensors named `layer/variable`), but every weight of the model
    /// must be in the file: the error lists those it lacks, and then nothing is changed.
    pub fn load_weights_strict(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = super::bounded::read_safetensors_file(path)?;
        let names: Vec<String> = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| strict_err(path, format!("not a valid safetensors file: {e}")))?
            .names()
            .into_iter()
            .map(str::to_string)
            .collect();
        let missing: Vec<String> = self
            .weights()
            .iter()
            .map(|v| v.path())
            .filter(|p| !names.contains(p))
            .collect();
        if !missing.is_empty() {
            return Err(strict_err(
                path,
                format!(
                    "it lacks {} weight(s) of the model: {}",
                    missing.len(),
                    crate::limits::bounded_list(&missing, ", ")
                ),
            ));
        }
        self.load_weights(path)
    }
}

fn strict_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::File {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}
