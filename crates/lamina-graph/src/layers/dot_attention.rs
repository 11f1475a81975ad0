//! Keras 3's `Attention` (Luong, dot-product or concat scores) and `AdditiveAttention`
//! (Bahdanau) layers for inference: scores from query and key, Keras's masked softmax (masked
//! scores lowered by 1e9), a weighted sum of the values, zeros where the query is masked.

use super::common::Weights;
use super::init::uniform;
use super::registry::{ConfigContext, Configurable};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{Layer, unique_name};
use crate::shape::Dim;
use crate::tensor::{Tensor, next_id};
use crate::variable::Variable;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How `Attention` scores a query against a key (Keras's `score_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreMode {
    /// `"dot"`: the dot product `q · k` (times `scale` when `use_scale`).
    Dot,
    /// `"concat"`: `concat_score_weight * sum(tanh(scale * (q + k)))`.
    Concat,
}

impl ScoreMode {
    /// Keras's spelling: `"dot"` or `"concat"`.
    pub fn keras_name(self) -> &'static str {
        match self {
            ScoreMode::Dot => "dot",
            ScoreMode::Concat => "concat",
        }
    }

    /// The mode Keras spells `name`, or an error naming the two accepted.
    pub fn from_keras(name: &str) -> Result<ScoreMode> {
        match name {
            "dot" => Ok(ScoreMode::Dot),
            "concat" => Ok(ScoreMode::Concat),
            other => Err(Error::Model {
                detail: format!(
                    "Attention: score_mode must be \"dot\" or \"concat\", got \"{other}\""
                ),
            }),
        }
    }
}

/// What `Attention` and `AdditiveAttention` share: the arguments and the computation.
#[derive(Clone)]
struct Core {
    id: u64,
    name: String,
    use_scale: bool,
    dropout: f32,
    seed: Option<u64>,
    use_causal_mask: bool,
    return_attention_scores: bool,
    weights: Arc<Weights>,
}

impl Core {
    fn new(prefix: &str, use_scale: bool) -> Core {
        Core {
            id: next_id(),
            name: unique_name(prefix),
            use_scale,
            dropout: 0.0,
            seed: None,
            use_causal_mask: false,
            return_attention_scores: false,
            weights: Arc::default(),
        }
    }

    fn fresh(mut self) -> Core {
        self.id = next_id();
        self.weights = Arc::default();
        self
    }

    /// The dropout rate must be in [0, 1) (it does nothing at inference).
    fn check_dropout(&self, kind: &str) -> Result<()> {
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Model {
                detail: format!(
                    "{kind} '{}': dropout {} is not in [0, 1)",
                    self.name, self.dropout
                ),
            });
        }
        Ok(())
    }

    fn shape_error(&self, kind: &str, op: &str, shapes: &[&Tensor], detail: String) -> Error {
        Error::IncompatibleShapes {
            op: op.into(),
            shapes: shapes
                .iter()
                .map(|t| t.shape().to_string())
                .collect::<Vec<_>>()
                .join(" and "),
            detail: format!("{kind} '{}': {detail}", self.name),
        }
    }

    /// Checks `[query, value]` or `[query, value, key]`: rank 3 float32 each, key and value of
    /// one length, query and key of one width, batches alike. Returns (query, value, key).
    fn inputs<'a>(
        &self,
        kind: &str,
        op: &str,
        inputs: &'a [Tensor],
    ) -> Result<(&'a Tensor, &'a Tensor, &'a Tensor)> {
        let (q, v, k) = match inputs {
            [q, v] => (q, v, v),
            [q, v, k] => (q, v, k),
            _ => {
                return Err(Error::Inputs {
                    detail: format!(
                        "{kind} '{}' takes [query, value] or [query, value, key], got {} inputs",
                        self.name,
                        inputs.len()
                    ),
                });
            }
        };
        self.check_dropout(kind)?;
        for (what, t) in [("query", q), ("value", v), ("key", k)] {
            if t.rank() != 3 {
                return Err(self.shape_error(
                    kind,
                    op,
                    &[q, v, k],
                    format!(
                        "the {what} must be (batch, time, dim), got rank {}",
                        t.rank()
                    ),
                ));
            }
            if t.dtype() != DType::F32 {
                return Err(self.shape_error(
                    kind,
                    op,
                    &[q, v, k],
                    format!("the {what} must be float32, got {:?}", t.dtype()),
                ));
            }
        }
        let dims = |t: &Tensor| t.shape().dims().to_vec();
        let (qd, vd, kd) = (dims(q), dims(v), dims(k));
        let differ = |a: Dim, b: Dim| matches!((a, b), (Dim::Known(x), Dim::Known(y)) if x != y);
        if differ(qd[2], kd[2]) {
            return Err(self.shape_error(
                kind,
                op,
                &[q, k],
                "query and key must have the same last dimension".into(),
            ));
        }
        if differ(vd[1], kd[1]) {
            return Err(self.shape_error(
                kind,
                op,
                &[v, k],
                "value and key must have the same length (axis 1)".into(),
            ));
        }
        if differ(qd[0], vd[0]) || differ(qd[0], kd[0]) || differ(vd[0], kd[0]) {
            return Err(self.shape_error(
                kind,
                op,
                &[q, v, k],
                "query, value and key must have the same batch size".into(),
            ));
        }
        if qd[2].known().is_none() {
            return Err(self.shape_error(
                kind,
                op,
                &[q, v, k],
                "the query's last dimension must be known".into(),
            ));
        }
        Ok((q, v, k))
    }

    /// Keras's `_calculate_score_mask`, `_apply_scores` and the query mask: the value mask
    /// `(B, 1, Tv)` and-ed with the causal mask `(1, Tq, Tv)` (`j <= i`), scores lowered by 1e9
    /// where masked (a row masked whole keeps its softmax over the lowered scores), the softmax,
    /// its product with the value, zeros where the query is masked. Returns (output, weights).
    fn apply(
        &self,
        scores: Tensor,
        query: &Tensor,
        value: &Tensor,
        masks: &[Option<Tensor>],
    ) -> (Tensor, Tensor) {
        let query_mask = masks.first().cloned().flatten();
        let value_mask = masks.get(1).cloned().flatten();
        let mut mask = value_mask.map(|m| m.cast(DType::Bool).expand_dims(-2));
        if self.use_causal_mask {
            let causal = super::attention::causal_mask(query, value);
            mask = Some(match mask {
                Some(m) => m.logical_and(&causal),
                None => causal,
            });
        }
        let scores = match &mask {
            Some(m) => Tensor::where_(m, &scores, scores.subtract(1.0e9f32)),
            None => scores,
        };
        let weights = scores.softmax(-1);
        let mut out = weights.matmul(value);
        if let Some(m) = query_mask {
            out = Tensor::where_(&m.cast(DType::Bool).expand_dims(-1), &out, 0.0f32);
        }
        (out, weights)
    }

    fn outputs(&self, out: Tensor, weights: Tensor) -> Vec<Tensor> {
        if self.return_attention_scores {
            vec![out, weights]
        } else {
            vec![out]
        }
    }

    fn shape_mapped(&self, e: Error, query: &Tensor, key: &Tensor) -> Error {
        match e {
            Error::VariableShape { name, existing, .. } => Error::VariableShape {
                name,
                existing,
                requested: format!("for query {} and key {}", query.shape(), key.shape()),
            },
            other => other,
        }
    }
}

macro_rules! core_setters {
    ($ty:ident) => {
        impl $ty {
            /// Dropout on the attention weights while training: recorded, nothing at inference.
            pub fn dropout(self, dropout: f32) -> $ty {
                $ty {
                    core: Core {
                        dropout,
                        ..self.core
                    },
                    ..self
                }
            }

            /// Keras's `seed` (of the dropout): recorded, nothing at inference.
            pub fn seed(self, seed: Option<u64>) -> $ty {
                $ty {
                    core: Core { seed, ..self.core },
                    ..self
                }
            }

            /// Keras's call argument `use_causal_mask`: query position `i` sees values `0..=i`.
            pub fn use_causal_mask(self, causal: bool) -> $ty {
                $ty {
                    core: Core {
                        use_causal_mask: causal,
                        ..self.core
                    },
                    ..self
                }
                .fresh()
            }

            /// Keras's call argument `return_attention_scores`: a second output, the attention
            /// weights `(B, Tq, Tv)` after masking and softmax (call it with `call_layer`).
            pub fn return_attention_scores(self, scores: bool) -> $ty {
                $ty {
                    core: Core {
                        return_attention_scores: scores,
                        ..self.core
                    },
                    ..self
                }
                .fresh()
            }

            /// The layer's name.
            pub fn name(self, name: &str) -> $ty {
                $ty {
                    core: Core {
                        name: name.to_string(),
                        ..self.core
                    },
                    ..self
                }
                .fresh()
            }

            /// Whether the layer has its `scale` weight.
            pub fn use_scale(self, use_scale: bool) -> $ty {
                $ty {
                    core: Core {
                        use_scale,
                        ..self.core
                    },
                    ..self
                }
                .fresh()
            }

            fn fresh(self) -> $ty {
                $ty {
                    core: self.core.fresh(),
                    ..self
                }
            }
        }
    };
}

/// The configuration of an `Attention` layer (Luong); its weights are `scale` and
/// `concat_score_weight` (scalars, when `use_scale` and when `score_mode` is `concat`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttentionConfig {
    /// The layer's name.
    pub name: String,
    /// Whether there is a `scale` weight.
    pub use_scale: bool,
    /// Keras's `score_mode`: `dot` or `concat`.
    pub score_mode: String,
    /// Dropout rate (nothing at inference).
    #[serde(deserialize_with = "super::registry::finite_f32")]
    pub dropout: f32,
    /// The dropout's seed (nothing at inference).
    pub seed: Option<u64>,
    /// Keras's call argument `use_causal_mask`.
    pub use_causal_mask: bool,
    /// Keras's call argument `return_attention_scores`.
    pub return_attention_scores: bool,
}

/// The configuration of an `AdditiveAttention` layer (Bahdanau); its weight is `scale`
/// `(dim,)` when `use_scale`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdditiveAttentionConfig {
    /// The layer's name.
    pub name: String,
    /// Whether there is a `scale` weight.
    pub use_scale: bool,
    /// Dropout rate (nothing at inference).
    #[serde(deserialize_with = "super::registry::finite_f32")]
    pub dropout: f32,
    /// The dropout's seed (nothing at inference).
    pub seed: Option<u64>,
    /// Keras's call argument `use_causal_mask`.
    pub use_causal_mask: bool,
    /// Keras's call argument `return_attention_scores`.
    pub return_attention_scores: bool,
}

/// Keras's `Attention(use_scale=False, score_mode="dot", dropout=0.0, seed=None)`: Luong-style
/// attention, for inference (dropout does nothing).
///
/// Called on `[query (B, Tq, dim), value (B, Tv, dv)]` or `[query, value, key (B, Tv, dim)]`
/// (the value is the key when none is given). Scores are `query @ keyᵀ` (times the scalar
/// `scale` when `use_scale`) with `score_mode` `Dot`, or `concat_score_weight * sum(tanh(scale
/// * (q + k)), -1)` with `Concat`. As in Keras 3, the value's mask (from `Embedding(mask_zero)`,
/// `Masking`) and the causal mask lower masked scores by 1e9 before the softmax, so a row masked
/// whole gets the softmax of its lowered scores (in float32, nearly uniform) rather than zeros;
/// the output is zero where the query is masked and carries the query's mask. Weights: `scale`
/// `()` when `use_scale` and `concat_score_weight` `()` with `Concat`, both initially 1.
#[derive(Clone)]
pub struct Attention {
    core: Core,
    score_mode: ScoreMode,
}

core_setters!(Attention);

impl Attention {
    /// Dot-product scores without a scale, Keras's defaults.
    pub fn new() -> Attention {
        Attention {
            core: Core::new("attention", false),
            score_mode: ScoreMode::Dot,
        }
    }

    /// Keras's `score_mode`: `Dot` (default) or `Concat`.
    pub fn score_mode(self, score_mode: ScoreMode) -> Attention {
        Attention { score_mode, ..self }.fresh()
    }
}

impl Default for Attention {
    fn default() -> Self {
        Attention::new()
    }
}

impl Configurable for Attention {
    const CLASS: &'static str = "Attention";
    type Config = AttentionConfig;

    fn config(&self) -> AttentionConfig {
        let c = &self.core;
        AttentionConfig {
            name: c.name.clone(),
            use_scale: c.use_scale,
            score_mode: self.score_mode.keras_name().to_string(),
            dropout: c.dropout,
            seed: c.seed,
            use_causal_mask: c.use_causal_mask,
            return_attention_scores: c.return_attention_scores,
        }
    }

    fn from_config(config: AttentionConfig, _context: &ConfigContext) -> Result<Attention> {
        let score_mode = ScoreMode::from_keras(&config.score_mode).map_err(|_| Error::Model {
            detail: format!(
                "Attention '{}': score_mode must be \"dot\" or \"concat\", got \"{}\"",
                config.name, config.score_mode
            ),
        })?;
        let layer = Attention::new()
            .use_scale(config.use_scale)
            .score_mode(score_mode)
            .dropout(config.dropout)
            .seed(config.seed)
            .use_causal_mask(config.use_causal_mask)
            .return_attention_scores(config.return_attention_scores)
            .name(&config.name);
        layer.core.check_dropout("Attention")?;
        Ok(layer)
    }
}

impl Layer for Attention {
    fn id(&self) -> u64 {
        self.core.id
    }
    fn name(&self) -> String {
        self.core.name.clone()
    }
    fn kind(&self) -> &'static str {
        "Attention"
    }
    fn handle(&self) -> crate::layer::LayerRef {
        Arc::new(self.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.forward_masked(inputs, &vec![None; inputs.len()])
    }

    fn supports_masking(&self) -> bool {
        true
    }

    fn compute_mask(
        &self,
        _inputs: &[Tensor],
        masks: &[Option<Tensor>],
        outputs: &[Tensor],
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(super::attention::query_mask_on_output(masks, outputs))
    }

    fn forward_masked(&self, inputs: &[Tensor], masks: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let c = &self.core;
        let (q, v, k) = c.inputs("Attention", "attention", inputs)?;
        let mut wanted: Vec<(&str, Vec<usize>)> = Vec::new();
        if c.use_scale {
            wanted.push(("scale", vec![]));
        }
        if self.score_mode == ScoreMode::Concat {
            wanted.push(("concat_score_weight", vec![]));
        }
        let vars = c
            .weights
            .get_or_make(&c.name, &wanted, |_, shape| {
                HostTensor::new(shape, vec![1.0f32])
            })
            .map_err(|e| c.shape_mapped(e, q, k))?;
        let mut it = vars.iter().map(|v| Tensor::variable(v.clone()));
        let scale = if c.use_scale { it.next() } else { None };
        let scores = match self.score_mode {
            ScoreMode::Dot => {
                let s = q.matmul(&k.swapaxes(-2, -1));
                match scale {
                    Some(w) => s.multiply(&w),
                    None => s,
                }
            }
            ScoreMode::Concat => {
                let Some(w) = it.next() else {
                    return Err(Error::Model {
                        detail: format!("Attention '{}' made too few weights", c.name),
                    });
                };
                let sum = q.expand_dims(-2).add(k.expand_dims(-3));
                let sum = match scale {
                    Some(s) => s.multiply(&sum),
                    None => sum,
                };
                w.multiply(sum.tanh().sum(-1))
            }
        };
        let (out, weights) = c.apply(scores, q, v, masks);
        Ok(c.outputs(out, weights))
    }

    fn variables(&self) -> Vec<Arc<Variable>> {
        self.core.weights.list()
    }
}

/// Keras's `AdditiveAttention(use_scale=True, dropout=0.0)`: Bahdanau-style attention, for
/// inference (dropout does nothing).
///
/// Called as `Attention` is, on `[query, value]` or `[query, value, key]`, with the same masks,
/// causal mask, attention scores output and output mask. Scores are `sum(scale * tanh(q + k),
/// -1)` over the feature axis, with the weight `scale` of shape `(dim,)` (Glorot-uniform
/// initially, as Keras) when `use_scale`, else 1.
#[derive(Clone)]
pub struct AdditiveAttention {
    core: Core,
    init_seed: u64,
}

core_setters!(AdditiveAttention);

impl AdditiveAttention {
    /// With the `scale` weight, Keras's default.
    pub fn new() -> AdditiveAttention {
        let core = Core::new("additive_attention", true);
        AdditiveAttention {
            init_seed: core.id,
            core,
        }
    }
}

impl Default for AdditiveAttention {
    fn default() -> Self {
        AdditiveAttention::new()
    }
}

impl Configurable for AdditiveAttention {
    const CLASS: &'static str = "AdditiveAttention";
    type Config = AdditiveAttentionConfig;

    fn config(&self) -> AdditiveAttentionConfig {
        let c = &self.core;
        AdditiveAttentionConfig {
            name: c.name.clone(),
            use_scale: c.use_scale,
            dropout: c.dropout,
            seed: c.seed,
            use_causal_mask: c.use_causal_mask,
            return_attention_scores: c.return_attention_scores,
        }
    }

    fn from_config(
        config: AdditiveAttentionConfig,
        _context: &ConfigContext,
    ) -> Result<AdditiveAttention> {
        let layer = AdditiveAttention::new()
            .use_scale(config.use_scale)
            .dropout(config.dropout)
            .seed(config.seed)
            .use_causal_mask(config.use_causal_mask)
            .return_attention_scores(config.return_attention_scores)
            .name(&config.name);
        layer.core.check_dropout("AdditiveAttention")?;
        Ok(layer)
    }
}

impl Layer for AdditiveAttention {
    fn id(&self) -> u64 {
        self.core.id
    }
    fn name(&self) -> String {
        self.core.name.clone()
    }
    fn kind(&self) -> &'static str {
        "AdditiveAttention"
    }
    fn handle(&self) -> crate::layer::LayerRef {
        Arc::new(self.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.forward_masked(inputs, &vec![None; inputs.len()])
    }

    fn supports_masking(&self) -> bool {
        true
    }

    fn compute_mask(
        &self,
        _inputs: &[Tensor],
        masks: &[Option<Tensor>],
        outputs: &[Tensor],
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(super::attention::query_mask_on_output(masks, outputs))
    }

    fn forward_masked(&self, inputs: &[Tensor], masks: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let c = &self.core;
        let (q, v, k) = c.inputs("AdditiveAttention", "additive_attention", inputs)?;
        let dim = q.shape().dims()[2].known().unwrap_or(1);
        let t = q.expand_dims(-2).add(k.expand_dims(-3)).tanh();
        let scores = if c.use_scale {
            let seed = self.init_seed;
            let vars = c
                .weights
                .get_or_make(&c.name, &[("scale", vec![dim])], |_, shape| {
                    // Keras's glorot_uniform of a 1-D shape: fan_in = fan_out = dim.
                    let limit = (6.0 / (2 * shape[0]) as f64).sqrt();
                    HostTensor::new(shape, uniform(shape[0], limit, seed))
                })
                .map_err(|e| c.shape_mapped(e, q, k))?;
            let Some(w) = vars.first() else {
                return Err(Error::Model {
                    detail: format!("AdditiveAttention '{}' made too few weights", c.name),
                });
            };
            Tensor::variable(w.clone()).multiply(&t).sum(-1)
        } else {
            t.sum(-1)
        };
        let (out, weights) = c.apply(scores, q, v, masks);
        Ok(c.outputs(out, weights))
    }

    fn variables(&self) -> Vec<Arc<Variable>> {
        self.core.weights.list()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_round_trip_and_bad_ones_are_refused() -> Result<()> {
        let context = ConfigContext::default();
        let attention = Attention::new()
            .use_scale(true)
            .score_mode(ScoreMode::Concat)
            .dropout(0.25)
            .seed(Some(7))
            .use_causal_mask(true)
            .return_attention_scores(true)
            .name("att");
        let config = attention.config();
        assert_eq!(config.score_mode, "concat");
        assert_eq!(
            Attention::from_config(config.clone(), &context)?.config(),
            config
        );
        let additive = AdditiveAttention::new()
            .use_scale(false)
            .use_causal_mask(true)
            .name("add");
        let config = additive.config();
        assert_eq!(
            AdditiveAttention::from_config(config.clone(), &context)?.config(),
            config
        );

        let e = Attention::from_config(
            AttentionConfig {
                score_mode: "general".into(),
                ..attention.config()
            },
            &context,
        )
        .map(|_| ())
        .unwrap_err()
        .to_string();
        assert!(e.contains("'att'") && e.contains("score_mode"), "{e}");
        let e = AdditiveAttention::from_config(
            AdditiveAttentionConfig {
                dropout: 1.0,
                ..additive.config()
            },
            &context,
        )
        .map(|_| ())
        .unwrap_err()
        .to_string();
        assert!(e.contains("'add'") && e.contains("dropout"), "{e}");
        // The JSON is the old record's, an overflowing float refused.
        let json = serde_json::to_value(additive.config()).map_err(|e| Error::Model {
            detail: e.to_string(),
        })?;
        assert_eq!(
            json,
            serde_json::json!({"name": "add", "use_scale": false, "dropout": 0.0, "seed": null,
                "use_causal_mask": true, "return_attention_scores": false})
        );
        let mut huge = json;
        huge["dropout"] = serde_json::json!(1e39);
        assert!(serde_json::from_value::<AdditiveAttentionConfig>(huge).is_err());
        Ok(())
    }
}
