//! The calls of the attention layers, whose call arguments (`use_causal_mask`,
//! `return_attention_scores`) Lamina sets on the layer: `Attention`/`AdditiveAttention`, and
//! `MultiHeadAttention` with its query, value, key and mask tensors.

use super::Builder;
use crate::config::layers::{dot_attention_of, mha_of};
use crate::config::read::{cfg_of, class_of, model_err, name_of};
use crate::config::refs::{Produced, keras_ref, resolve};
use lamina_graph::error::{Error, Result};
use lamina_graph::layer::{LayerRef, call_layer_with_masks};
use lamina_graph::layers::{AdditiveAttention, Attention, Configurable, MultiHeadAttention};
use lamina_graph::limits::printable;
use lamina_graph::tensor::Tensor;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// `MultiHeadAttention.call`'s parameters, in Keras's order (positional arguments fill them
/// from the first).
const MHA_ARGS: [&str; 10] = [
    "query",
    "value",
    "key",
    "query_mask",
    "value_mask",
    "key_mask",
    "attention_mask",
    "return_attention_scores",
    "training",
    "use_causal_mask",
];

impl Builder<'_> {
    /// The `Attention` or `AdditiveAttention` of `entry` for a call `node`: its keyword
    /// arguments `use_causal_mask` and `return_attention_scores` are set on the layer (so one
    /// layer's calls must agree on them), `mask` is read by the caller, `training` ignored.
    pub(super) fn dot_attention_for(
        &mut self,
        group: &str,
        entry: &Value,
        node: &Value,
    ) -> Result<LayerRef> {
        let class = class_of(entry);
        let name = name_of(entry);
        let n = printable(&name).into_owned();
        let bad = |detail: String| model_err(format!("{class} '{n}': {detail}"));
        let (causal, scores) = dot_attention_flags(node, &bad)?;
        if let Some(layer) = self.made.get(group) {
            if dot_attention_flags_of(layer) != Some((causal, scores)) {
                return Err(bad(format!(
                    "its calls differ in use_causal_mask or return_attention_scores (this one: \
                     {causal}, {scores}); Lamina sets them once per layer"
                )));
            }
            return Ok(layer.clone());
        }
        let layer = dot_attention_of(class, cfg_of(entry), &name, causal, scores)?;
        self.remember(group, layer.clone(), false);
        Ok(layer)
    }

    /// A functional call of a `MultiHeadAttention`: query, value and key (positional or by
    /// keyword), `attention_mask`, `value_mask`/`key_mask` tensors, and the flags
    /// `use_causal_mask` and `return_attention_scores` (which Lamina sets on the layer, so one
    /// layer's calls must agree on them). `None` while an input tensor is not made yet.
    pub(super) fn call_mha(
        &mut self,
        l: &Value,
        node: &Value,
        node_index: usize,
        group: &str,
        produced: &Produced,
    ) -> Result<Option<Vec<Tensor>>> {
        let call = MhaCall::read(name_of(l), node)?;
        let causal = call.flag("use_causal_mask")?;
        let scores = call.flag("return_attention_scores")?;
        call.flag("training")?;
        let Some(tensors) = call.tensors(produced)? else {
            return Ok(None);
        };
        let (ins, explicit) = tensors.operands();
        self.count_call()?;
        let layer = self.mha_layer(l, &call, group, node_index, (causal, scores))?;
        call_layer_with_masks(layer.as_ref(), &ins, explicit.as_deref()).map(Some)
    }

    /// The `MultiHeadAttention` of `l` (weight group `group`) for call `node_index` with the
    /// flags `(use_causal_mask, return_attention_scores)`: the group's layer where its flags
    /// are these, else a layer sharing its weights (one per set of flags), else (at the
    /// group's first call) a new layer.
    fn mha_layer(
        &mut self,
        l: &Value,
        call: &MhaCall,
        group: &str,
        node_index: usize,
        (causal, scores): (bool, bool),
    ) -> Result<LayerRef> {
        let Some(layer) = self.made.get(group).cloned() else {
            let layer: LayerRef = Arc::new(
                mha_of(cfg_of(l), &call.name)?
                    .use_causal_mask(causal)
                    .return_attention_scores(scores),
            );
            self.remember(group, layer.clone(), false);
            return Ok(layer);
        };
        let Some(first) = layer.as_any().downcast_ref::<MultiHeadAttention>() else {
            return Err(call.bad("is not a MultiHeadAttention layer".to_string()));
        };
        let c = first.config();
        if (c.use_causal_mask, c.return_attention_scores) == (causal, scores) {
            return Ok(layer.clone());
        }
        // Another call with other call arguments: a layer of its own that shares the first
        // one's weights, made once per set of arguments.
        let key = format!("{group}#causal={causal},scores={scores}");
        if let Some(shared) = self.made.get(&key) {
            return Ok(shared.clone());
        }
        let shared: LayerRef = Arc::new(first.sharing_weights(
            &format!("{}_call{}", call.name, node_index),
            causal,
            scores,
        ));
        self.made.insert(key, shared.clone());
        Ok(shared)
    }
}

/// An `Attention`/`AdditiveAttention` call's flags `(use_causal_mask,
/// return_attention_scores)` from its keyword arguments, any other argument than those,
/// `mask` and `training` refused with `bad`.
fn dot_attention_flags(node: &Value, bad: &impl Fn(String) -> Error) -> Result<(bool, bool)> {
    let (mut causal, mut scores) = (false, false);
    match node.get("kwargs") {
        None | Some(Value::Null) => {}
        Some(Value::Object(kwargs)) => {
            for (k, v) in kwargs {
                let flag = match v {
                    Value::Null => false,
                    Value::Bool(b) => *b,
                    _ if k == "mask" => false,
                    _ => {
                        return Err(bad(format!(
                            "the call argument '{}' is {}, not true or false",
                            printable(k),
                            printable(&v.to_string().chars().take(80).collect::<String>())
                        )));
                    }
                };
                match k.as_str() {
                    "mask" | "training" => {}
                    "use_causal_mask" => causal = flag,
                    "return_attention_scores" => scores = flag,
                    other => {
                        return Err(bad(format!(
                            "the call argument '{}' is not supported",
                            printable(other)
                        )));
                    }
                }
            }
        }
        Some(other) => return Err(bad(format!("its call's kwargs are {other}, not a map"))),
    }
    Ok((causal, scores))
}

/// The flags `(use_causal_mask, return_attention_scores)` an `Attention` or
/// `AdditiveAttention` was made with; `None` for another layer.
fn dot_attention_flags_of(layer: &LayerRef) -> Option<(bool, bool)> {
    let any = layer.as_any();
    any.downcast_ref::<Attention>()
        .map(|a| {
            let c = a.config();
            (c.use_causal_mask, c.return_attention_scores)
        })
        .or_else(|| {
            any.downcast_ref::<AdditiveAttention>().map(|a| {
                let c = a.config();
                (c.use_causal_mask, c.return_attention_scores)
            })
        })
}

/// A `MultiHeadAttention` call's arguments, each (positional or by keyword) under its
/// parameter's name of [`MHA_ARGS`].
struct MhaCall<'v> {
    /// The layer's name.
    name: String,
    /// The arguments given, by parameter.
    given: BTreeMap<&'static str, &'v Value>,
}

/// The tensors of a `MultiHeadAttention` call.
struct MhaTensors {
    query: Tensor,
    value: Tensor,
    key: Option<Tensor>,
    attention_mask: Option<Tensor>,
    value_mask: Option<Tensor>,
    key_mask: Option<Tensor>,
}

impl<'v> MhaCall<'v> {
    /// The arguments of call `node` of the layer named `name`, refused where one is not a
    /// parameter, given twice or past the last.
    fn read(name: String, node: &'v Value) -> Result<Self> {
        let mut call = MhaCall {
            name,
            given: BTreeMap::new(),
        };
        let args = node.get("args").and_then(Value::as_array);
        for (k, a) in args.into_iter().flatten().enumerate() {
            let Some(param) = MHA_ARGS.get(k) else {
                return Err(call.bad(format!(
                    "it is called with {} positional arguments; it takes at most {}",
                    args.map_or(0, Vec::len),
                    MHA_ARGS.len()
                )));
            };
            call.given.insert(param, a);
        }
        match node.get("kwargs") {
            None | Some(Value::Null) => {}
            Some(Value::Object(kwargs)) => {
                for (key, v) in kwargs {
                    let Some(param) = MHA_ARGS.iter().find(|p| **p == key.as_str()) else {
                        return Err(call.bad(format!(
                            "the call argument '{}' is not supported (Lamina reads {})",
                            printable(key),
                            MHA_ARGS.join(", ")
                        )));
                    };
                    if call.given.insert(param, v).is_some() {
                        return Err(call.bad(format!("the call argument '{param}' is given twice")));
                    }
                }
            }
            Some(other) => {
                return Err(call.bad(format!("its call's kwargs are {other}, not a map")));
            }
        }
        Ok(call)
    }

    /// The error for this call, saying `detail`.
    fn bad(&self, detail: String) -> Error {
        model_err(format!(
            "MultiHeadAttention '{}': {detail}",
            printable(&self.name)
        ))
    }

    /// A tensor argument: `Ok(None)` while it is not made yet, `Ok(Some(None))` when absent.
    fn tensor(&self, param: &str, produced: &Produced) -> Result<Option<Option<Tensor>>> {
        match self.given.get(param) {
            None | Some(Value::Null) => Ok(Some(None)),
            Some(v) if keras_ref(v).is_some() => {
                let mut out = Vec::new();
                Ok(resolve(v, produced, &mut out)?.map(|()| out.pop()))
            }
            Some(v) => Err(self.bad(format!(
                "the call argument '{param}' is {}, not a tensor",
                printable(&v.to_string().chars().take(80).collect::<String>())
            ))),
        }
    }

    /// A flag argument, false where absent or null.
    fn flag(&self, param: &str) -> Result<bool> {
        match self.given.get(param) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.bad(format!(
                "the call argument '{param}' is {v}, not true or false"
            ))),
        }
    }

    /// The call's tensors, refused where Lamina cannot apply them as Keras does (an explicit
    /// `query_mask`, no query or value, a `key_mask` without a key); `None` while one is not
    /// made yet.
    fn tensors(&self, produced: &Produced) -> Result<Option<MhaTensors>> {
        if self
            .tensor("query_mask", produced)?
            .is_none_or(|m| m.is_some())
        {
            return Err(self.bad(
                "an explicit query_mask is not supported (Keras 3 reads the query's mask from \
                 the query tensor; give the mask to the query, e.g. with Masking)"
                    .into(),
            ));
        }
        let (Some(q), Some(v), Some(k), Some(attention_mask), Some(value_mask), Some(key_mask)) = (
            self.tensor("query", produced)?,
            self.tensor("value", produced)?,
            self.tensor("key", produced)?,
            self.tensor("attention_mask", produced)?,
            self.tensor("value_mask", produced)?,
            self.tensor("key_mask", produced)?,
        ) else {
            return Ok(None);
        };
        let (Some(query), Some(value)) = (q, v) else {
            return Err(self.bad("it is called without a query and a value".into()));
        };
        if key_mask.is_some() && k.is_none() {
            return Err(self.bad(
                "a key_mask without a key is not supported (give the mask to the value)".into(),
            ));
        }
        Ok(Some(MhaTensors {
            query,
            value,
            key: k,
            attention_mask,
            value_mask,
            key_mask,
        }))
    }
}

impl MhaTensors {
    /// The layer's inputs (query, value, then the key where it or an attention mask is given,
    /// then the attention mask) and, where a value or key mask is given, the mask of each.
    fn operands(self) -> (Vec<Tensor>, Option<Vec<Option<Tensor>>>) {
        let (q, v, k) = (self.query, self.value, self.key);
        let key = k.clone().unwrap_or_else(|| v.clone());
        let mut ins = vec![q.clone(), v.clone()];
        if k.is_some() || self.attention_mask.is_some() {
            ins.push(key.clone());
        }
        if let Some(m) = &self.attention_mask {
            ins.push(m.clone());
        }
        let (value_mask, key_mask) = (self.value_mask, self.key_mask);
        let explicit = (value_mask.is_some() || key_mask.is_some()).then(|| {
            let mut m = vec![q.mask().cloned(), value_mask.or_else(|| v.mask().cloned())];
            if ins.len() > 2 {
                m.push(key_mask.or_else(|| key.mask().cloned()));
            }
            if ins.len() > 3 {
                m.push(None);
            }
            m
        });
        (ins, explicit)
    }
}
