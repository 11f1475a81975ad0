//! The layers of a file, each built from its record: input layers, nested models, Lambdas
//! (their bodies replayed) and configured layers (a custom activation replayed too).

use super::Loader;
use super::build::build;
use super::replay::replay;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::LayerRef;
use crate::layers::{ConfigContext, Input, Lambda, SerializedLayer, registry};
use crate::saving::format::*;
use crate::saving::save::dims_to_shape;
use crate::shape::Dim;
use std::collections::HashMap;
use std::sync::Arc;

/// A layer built from its record, before or after its calls.
pub(super) enum Built {
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

/// Builds every layer of `arch` from its record, in order (a nested model's whole graph too).
pub(super) fn build_layers(
    loader: &Loader<'_>,
    arch: &Architecture,
    file_bytes: usize,
) -> Result<Vec<Built>> {
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
    Ok(built)
}

/// Refuses two layers of the same name: layer names are unique, as Keras requires ("All layer
/// names should be unique").
pub(super) fn check_unique_names(
    loader: &Loader<'_>,
    arch: &Architecture,
    built: &[Built],
) -> Result<()> {
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
    Ok(())
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
pub(super) fn activation_body(layer: &SerializedLayer) -> Result<Option<BodyRecord>> {
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
