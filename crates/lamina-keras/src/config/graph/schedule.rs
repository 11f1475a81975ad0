//! The order of a functional model's calls: each runs as soon as every tensor it reads is
//! made, so that a configuration listed in any order loads in linear time.

use super::Builder;
use crate::config::read::{class_of, model_err, name_of};
use crate::config::refs::{Produced, refs_of, refs_of_kwargs};
use lamina_graph::error::{Error, Result};
use lamina_graph::limits::printable;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};

/// A call of a functional container: (layer index, node index).
type CallId = (usize, usize);

/// Which calls wait on which (layer, node) pairs, and which can run now.
struct Waits {
    /// The calls waiting on each (layer name, node index) that is not made yet.
    waiting: HashMap<(String, usize), Vec<CallId>>,
    /// How many (layer, node) pairs each waiting call still lacks.
    missing_inputs: HashMap<CallId, usize>,
    /// The calls whose inputs are all made.
    ready: VecDeque<CallId>,
}

impl Builder<'_> {
    /// Makes every call of a functional container's `layers`, each once what it reads is made.
    pub(super) fn run_calls(
        &mut self,
        layers: &[Value],
        groups: &[Option<String>],
        produced: &mut Produced,
        prefix: &str,
        depth: usize,
    ) -> Result<()> {
        let pending = pending_calls(layers);
        // Calls run as soon as what they read is made: each call waits on the (layer, node)
        // pairs its arguments name, and is woken when the last of them is produced, so a
        // configuration listed in any order loads in linear time.
        let mut w = waits(layers, &pending, produced);
        let mut done = 0usize;
        let mut stuck: Vec<CallId> = Vec::new();
        while let Some((i, k)) = w.ready.pop_front() {
            if !self.call_node(layers, groups, produced, prefix, depth, i, k)? {
                stuck.push((i, k));
                continue;
            }
            done += 1;
            for woken in w
                .waiting
                .remove(&(name_of(&layers[i]), k))
                .unwrap_or_default()
            {
                if let Some(left) = w.missing_inputs.get_mut(&woken) {
                    *left -= 1;
                    if *left == 0 {
                        w.ready.push_back(woken);
                    }
                }
            }
        }
        if done < pending.len() {
            return Err(unmade_inputs(layers, &pending, &stuck, &w.missing_inputs));
        }
        Ok(())
    }
}

/// Every call a functional container's layers make, as (layer index, node index).
fn pending_calls(layers: &[Value]) -> Vec<CallId> {
    let mut pending: Vec<CallId> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        if class_of(l) == "InputLayer" {
            continue;
        }
        let nodes = l
            .get("inbound_nodes")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        pending.extend((0..nodes).map(|k| (i, k)));
    }
    pending
}

/// What each of the `pending` calls waits on, given the tensors `produced` so far.
fn waits(layers: &[Value], pending: &[CallId], produced: &Produced) -> Waits {
    let mut w = Waits {
        waiting: HashMap::new(),
        missing_inputs: HashMap::new(),
        ready: VecDeque::new(),
    };
    for &(i, k) in pending {
        let node = &layers[i]["inbound_nodes"][k];
        let mut needs: Vec<(String, usize)> = refs_of(node.get("args").unwrap_or(&Value::Null))
            .into_iter()
            .chain(refs_of_kwargs(node))
            .map(|(l, n, _)| (l.to_string(), n))
            .filter(|key| !produced.contains_key(key))
            .collect();
        needs.sort_unstable();
        needs.dedup();
        if needs.is_empty() {
            w.ready.push_back((i, k));
        } else {
            w.missing_inputs.insert((i, k), needs.len());
            for key in needs {
                w.waiting.entry(key).or_default().push((i, k));
            }
        }
    }
    w
}

/// The error for calls left unmade: the first that found an input missing, else the first
/// still waiting on one.
fn unmade_inputs(
    layers: &[Value],
    pending: &[CallId],
    stuck: &[CallId],
    missing_inputs: &HashMap<CallId, usize>,
) -> Error {
    let (i, k) = stuck
        .first()
        .copied()
        .or_else(|| {
            pending
                .iter()
                .copied()
                .find(|key| missing_inputs.get(key).is_some_and(|&n| n > 0))
        })
        .unwrap_or(pending[0]);
    model_err(format!(
        "call {k} of layer '{}' reads tensors that no layer makes (a cycle or a \
         missing layer)",
        printable(&name_of(&layers[i]))
    ))
}
