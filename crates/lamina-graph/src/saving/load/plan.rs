//! The plan of a file's calls, made from its architecture alone before any node is: which calls
//! share the outputs of an earlier one, and whether the graph stays within the node limit.

use super::Loader;
use super::layers::activation_body;
use crate::error::Result;
use crate::saving::format::*;
use std::collections::HashMap;

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

/// The calls a file's graph is built from, found from the architecture alone before any node
/// is made: `canonical[c]` is the earlier call whose outputs call `c` shares (a call of the
/// same layer on the same tensors and masks gives the same outputs, so it is not replayed
/// again), or `c` itself. The graph this makes must stay within `limits::loaded_node_limit`:
/// a recorded body (a Lambda's, its mask function's, a custom activation's) counts its nodes
/// once per call that is not shared, every other call one node.
pub(super) fn plan_calls(
    loader: &Loader<'_>,
    arch: &Architecture,
    file_bytes: usize,
) -> Result<Vec<usize>> {
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
