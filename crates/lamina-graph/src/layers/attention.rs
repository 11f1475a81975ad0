//! `MultiHeadAttention`: Keras 3's layer for inference, with its weight names and shapes and its
//! mask rules, built from matmuls, views and a masked softmax so both backends run it.

use super::common::{Weights, layer_identity};
use super::init::uniform;
use super::registry::{ConfigContext, Configurable};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{Layer, unique_name};
use crate::ops::Size;
use crate::shape::Dim;
use crate::tensor::{Tensor, next_id};
use crate::variable::Variable;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The configuration of a `MultiHeadAttention`; its weights are `query/kernel`, `query/bias`,
/// `key/...`, `value/...`, `attention_output/...` (biases when `use_bias`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiHeadAttentionConfig {
    /// The layer's name.
    pub name: String,
    /// Number of heads.
    pub num_heads: usize,
    /// Size of each query and key head.
    pub key_dim: usize,
    /// Size of each value head (`key_dim` when absent).
    pub value_dim: Option<usize>,
    /// Dropout rate (nothing at inference).
    #[serde(deserialize_with = "super::registry::finite_f32")]
    pub dropout: f32,
    /// Whether the projections have biases.
    pub use_bias: bool,
    /// The per-position output shape (the query's width when absent).
    pub output_shape: Option<Vec<usize>>,
    /// The attention axes (all middle axes when absent).
    pub attention_axes: Option<Vec<i64>>,
    /// Keras's call argument `use_causal_mask`.
    pub use_causal_mask: bool,
    /// Keras's call argument `return_attention_scores`.
    pub return_attention_scores: bool,
}

/// Keras's `MultiHeadAttention(num_heads, key_dim, value_dim, dropout, use_bias, output_shape,
/// attention_axes)`, for inference (dropout does nothing).
///
/// It is called on `[query, value]`, `[query, value, key]` or `[query, value, key,
/// attention_mask]` (pass `value` as `key` to give a mask without a key). Keras's call arguments
/// `use_causal_mask` and `return_attention_scores` are set on the layer; with the latter it
/// returns two outputs, the attention output and the scores `(B, heads, T, S)` (call it with
/// `call_layer`). The inputs' masks (from `Embedding(mask_zero=True)`, `Masking`) combine as
/// Keras 3 combines them: the query's as `(B, T, 1)`, the value's and key's as `(B, 1, S)`, the
/// causal mask `j <= i` (aligned at the first position when T and S differ), and the
/// `attention_mask`, all and-ed; masked scores become -1e9 before the softmax and 0 after.
/// The output carries the query's mask.
///
/// Inputs of any rank take masks exactly as in Keras 3: the combined mask (NumPy broadcasting;
/// an input mask has the input's rank minus one and gains its axis at -1 or -2, the causal mask
/// is `(1, T, S)` from axis 1 of query and value whatever the attention axes) gets size-1 axes
/// at `-2n - 1` (n attention axes) until it has the rank of the scores `(B, <other axes>,
/// heads, <query attention axes>, <key attention axes>)`, and each of its axes must then be 1
/// or the scores' size. So an `attention_mask` may be `(B, <other axes>, heads, <query axes>,
/// <key axes>)` with any of its leading axes left out or of size 1; the combinations Keras
/// refuses (the causal mask with the default axes of a rank-4 input, input masks whose axes do
/// not line up with the scores') are errors naming the shapes.
///
/// Weights, as Keras names them: `query/kernel` `(d_q, heads, key_dim)`, `query/bias`
/// `(heads, key_dim)`, `key/kernel` `(d_k, heads, key_dim)`, `key/bias`, `value/kernel` `(d_v,
/// heads, value_dim)`, `value/bias` `(heads, value_dim)`, `attention_output/kernel` `(heads,
/// value_dim, output...)`, `attention_output/bias` `(output...)`.
#[derive(Clone)]
pub struct MultiHeadAttention {
    id: u64,
    name: String,
    num_heads: usize,
    key_dim: usize,
    value_dim: Option<usize>,
    dropout: f32,
    use_bias: bool,
    output_shape: Option<Vec<usize>>,
    attention_axes: Option<Vec<isize>>,
    use_causal_mask: bool,
    return_attention_scores: bool,
    seed: u64,
    weights: Arc<Weights>,
}

impl MultiHeadAttention {
    /// `num_heads` heads of `key_dim` each, value_dim = key_dim, biases, the output as wide as
    /// the query, attention over every axis between the batch and the features.
    pub fn new(num_heads: usize, key_dim: usize) -> MultiHeadAttention {
        let id = next_id();
        MultiHeadAttention {
            id,
            name: unique_name("multi_head_attention"),
            num_heads,
            key_dim,
            value_dim: None,
            dropout: 0.0,
            use_bias: true,
            output_shape: None,
            attention_axes: None,
            use_causal_mask: false,
            return_attention_scores: false,
            seed: id,
            weights: Arc::default(),
        }
    }

    fn fresh(mut self) -> MultiHeadAttention {
        self.id = next_id();
        self.weights = Arc::default();
        self
    }

    /// The size of each value head (Keras: `value_dim`, default `key_dim`).
    pub fn value_dim(self, value_dim: usize) -> MultiHeadAttention {
        MultiHeadAttention {
            value_dim: Some(value_dim),
            ..self
        }
        .fresh()
    }

    /// Dropout on the attention scores while training: recorded, nothing at inference.
    pub fn dropout(self, dropout: f32) -> MultiHeadAttention {
        MultiHeadAttention { dropout, ..self }.fresh()
    }

    /// Whether the projections have biases (default true).
    pub fn use_bias(self, use_bias: bool) -> MultiHeadAttention {
        MultiHeadAttention { use_bias, ..self }.fresh()
    }

    /// The per-position output shape (default: the query's last dimension).
    pub fn output_shape(self, shape: &[usize]) -> MultiHeadAttention {
        MultiHeadAttention {
            output_shape: Some(shape.to_vec()),
            ..self
        }
        .fresh()
    }

    /// The axes attention runs over (default: all between the batch axis and the features).
    pub fn attention_axes(self, axes: &[isize]) -> MultiHeadAttention {
        MultiHeadAttention {
            attention_axes: Some(axes.to_vec()),
            ..self
        }
        .fresh()
    }

    /// Keras's call argument `use_causal_mask`: position `i` of the query sees keys `0..=i`.
    pub fn use_causal_mask(self, causal: bool) -> MultiHeadAttention {
        MultiHeadAttention {
            use_causal_mask: causal,
            ..self
        }
        .fresh()
    }

    /// Keras's call argument `return_attention_scores`: a second output, the scores.
    pub fn return_attention_scores(self, scores: bool) -> MultiHeadAttention {
        MultiHeadAttention {
            return_attention_scores: scores,
            ..self
        }
        .fresh()
    }

    /// A layer for another call of this one with other call arguments (Keras passes
    /// `use_causal_mask` and `return_attention_scores` per call): it shares this layer's weights
    /// (made by whichever is called first) and is named `name`.
    pub fn sharing_weights(&self, name: &str, causal: bool, scores: bool) -> MultiHeadAttention {
        MultiHeadAttention {
            id: next_id(),
            name: name.to_string(),
            use_causal_mask: causal,
            return_attention_scores: scores,
            ..self.clone()
        }
    }

    /// The layer's name.
    pub fn name(self, name: &str) -> MultiHeadAttention {
        MultiHeadAttention {
            name: name.to_string(),
            ..self
        }
        .fresh()
    }

    /// The seed of the initial weights.
    pub fn seed(self, seed: u64) -> MultiHeadAttention {
        MultiHeadAttention { seed, ..self }
    }

    /// Checks what the configuration alone decides: at least one head of at least one value
    /// each way, a dropout rate in [0, 1), and an output shape of sizes of at least 1.
    fn check_config(&self) -> Result<()> {
        let (h, kd) = (self.num_heads, self.key_dim);
        let vd = self.value_dim.unwrap_or(kd);
        if h == 0 || kd == 0 || vd == 0 {
            return Err(self.bad(format!(
                "num_heads ({h}), key_dim ({kd}) and value_dim ({vd}) must be at least 1"
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(self.bad(format!("dropout {} is not in [0, 1)", self.dropout)));
        }
        if let Some(o) = &self.output_shape
            && (o.is_empty() || o.contains(&0))
        {
            return Err(self.bad(format!(
                "output_shape {o:?} must be non-empty sizes of at least 1"
            )));
        }
        Ok(())
    }

    fn bad(&self, detail: String) -> Error {
        Error::Model {
            detail: format!("MultiHeadAttention '{}': {detail}", self.name),
        }
    }

    fn shape_error(&self, shapes: &[&Tensor], detail: impl Into<String>) -> Error {
        Error::IncompatibleShapes {
            op: "multi_head_attention".into(),
            shapes: shapes
                .iter()
                .map(|t| t.shape().to_string())
                .collect::<Vec<_>>()
                .join(" and "),
            detail: detail.into(),
        }
    }

    /// Brings the combined mask `m` onto the scores as Keras 3's `_masked_softmax` and
    /// `Softmax` do: size-1 axes inserted at `-2n - 1` (n attention axes) until it has the rank
    /// of Keras's scores `(B, <batch-like axes>, heads, <query axes>, <key axes>)`, each axis 1
    /// or the scores' size; then the query axes and the key axes flattened, as the scores are
    /// here. Whatever Keras refuses (an axis out of range, a size that does not broadcast) is an
    /// error naming the shapes.
    fn mask_onto_scores(
        &self,
        m: &Tensor,
        query: &Tensor,
        key: &Tensor,
        batch_like: &[usize],
        axes: &[usize],
        shown: &[&Tensor],
    ) -> Result<Tensor> {
        let n = axes.len();
        let (qd, kd) = (query.shape().dims().to_vec(), key.shape().dims().to_vec());
        let mut scores: Vec<Dim> = vec![qd[0]];
        scores.extend(batch_like.iter().map(|&a| qd[a]));
        scores.push(Dim::Known(self.num_heads));
        scores.extend(axes.iter().map(|&a| qd[a]));
        scores.extend(axes.iter().map(|&a| kd[a]));
        let show = |dims: &[Dim]| {
            let parts: Vec<String> = dims
                .iter()
                .map(|d| match d {
                    Dim::Known(k) => k.to_string(),
                    Dim::Dynamic => "None".into(),
                })
                .collect();
            format!("({})", parts.join(", "))
        };
        let fail = |m: &Tensor, why: String| {
            self.shape_error(
                shown,
                format!(
                    "the combined mask {} does not fit the attention scores {} (batch, \
                     batch-like axes, heads, query axes {axes:?}, key axes {axes:?}): {why}",
                    m.shape(),
                    show(&scores)
                ),
            )
        };
        let sr = scores.len();
        if m.rank() > sr {
            return Err(fail(m, format!("it has more than {sr} axes")));
        }
        let at = 2 * n + 1;
        let mut m = m.clone();
        while m.rank() < sr {
            if m.rank() + 1 < at {
                return Err(fail(
                    &m,
                    format!(
                        "a size-1 axis cannot be inserted at {} of a rank-{} mask",
                        -(at as isize),
                        m.rank()
                    ),
                ));
            }
            m = m.expand_dims(-(at as isize));
        }
        for (i, (d, s)) in m.shape().dims().iter().zip(&scores).enumerate() {
            if let (Dim::Known(a), Dim::Known(b)) = (d, s)
                && *a != 1
                && a != b
            {
                return Err(fail(
                    &m,
                    format!("axis {i} is {a}, neither 1 nor the scores' {b}"),
                ));
            }
        }
        if n == 1 {
            return Ok(m);
        }
        // Several attention axes: each run broadcast to the scores' sizes (unless all 1s),
        // then flattened as the scores are.
        let lead = sr - 2 * n;
        let dims = m.shape().dims().to_vec();
        let mut target = vec![1usize; sr];
        for run in [lead, lead + n] {
            if dims[run..run + n].iter().all(|d| *d == Dim::Known(1)) {
                continue;
            }
            for i in run..run + n {
                target[i] = scores[i].known().ok_or_else(|| {
                    fail(
                        &m,
                        "attention over several axes needs those axes' sizes known".into(),
                    )
                })?;
            }
        }
        if target.iter().any(|&t| t != 1) {
            let count: usize = target.iter().product();
            let ones = HostTensor::new(&target, vec![true; count])?;
            m = m.logical_and(Tensor::constant(ones));
        }
        let flat = flatten_run(&m, lead + n, n).and_then(|m| flatten_run(&m, lead, n));
        flat.ok_or_else(|| fail(&m, "its query and key axes cannot be flattened".into()))
    }

    /// `x (B, ..., d) @ kernel (d, a, b) + bias (a, b)` → `(B, ..., a, b)`.
    fn project(x: &Tensor, kernel: &Arc<Variable>, bias: Option<&Arc<Variable>>) -> Tensor {
        let ks = kernel.shape();
        let (d, a, b) = (ks[0], ks[1], ks[2]);
        let mut y =
            x.matmul(&Tensor::variable(kernel.clone()).reshape(&[d as i64, (a * b) as i64]));
        if let Some(bias) = bias {
            y = y.add(Tensor::variable(bias.clone()).reshape(&[(a * b) as i64]));
        }
        let r = x.rank();
        let mut target: Vec<Size> = (0..r - 1).map(|i| Size::Of(y.clone(), i)).collect();
        target.push(Size::Known(a));
        target.push(Size::Known(b));
        y.reshape_dims(&target)
    }
}

impl Configurable for MultiHeadAttention {
    const CLASS: &'static str = "MultiHeadAttention";
    type Config = MultiHeadAttentionConfig;

    fn config(&self) -> MultiHeadAttentionConfig {
        MultiHeadAttentionConfig {
            name: self.name.clone(),
            num_heads: self.num_heads,
            key_dim: self.key_dim,
            value_dim: self.value_dim,
            dropout: self.dropout,
            use_bias: self.use_bias,
            output_shape: self.output_shape.clone(),
            attention_axes: self
                .attention_axes
                .as_ref()
                .map(|a| a.iter().map(|&x| x as i64).collect()),
            use_causal_mask: self.use_causal_mask,
            return_attention_scores: self.return_attention_scores,
        }
    }

    fn from_config(
        config: MultiHeadAttentionConfig,
        _context: &ConfigContext,
    ) -> Result<MultiHeadAttention> {
        let mut layer = MultiHeadAttention::new(config.num_heads, config.key_dim)
            .dropout(config.dropout)
            .use_bias(config.use_bias)
            .use_causal_mask(config.use_causal_mask)
            .return_attention_scores(config.return_attention_scores);
        if let Some(v) = config.value_dim {
            layer = layer.value_dim(v);
        }
        if let Some(o) = &config.output_shape {
            layer = layer.output_shape(o);
        }
        if let Some(axes) = &config.attention_axes {
            let axes = axes
                .iter()
                .map(|&a| {
                    isize::try_from(a).map_err(|_| Error::Model {
                        detail: format!(
                            "MultiHeadAttention '{}': axis {a} is out of range",
                            config.name
                        ),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            layer = layer.attention_axes(&axes);
        }
        let layer = layer.name(&config.name);
        layer.check_config()?;
        Ok(layer)
    }
}

fn known_last(x: &Tensor) -> Option<usize> {
    x.shape().dims().last().and_then(|d| d.known())
}

/// Flattens the axes `from..from + n` of `x` into one; they must be known when `n > 1`.
fn flatten_run(x: &Tensor, from: usize, n: usize) -> Option<Tensor> {
    if n == 1 {
        return Some(x.clone());
    }
    let dims = x.shape();
    let prod: Option<usize> = dims.dims()[from..from + n]
        .iter()
        .map(|d| d.known())
        .product();
    let mut target: Vec<Size> = (0..from).map(|i| Size::Of(x.clone(), i)).collect();
    target.push(Size::Known(prod?));
    target.extend((from + n..x.rank()).map(|i| Size::Of(x.clone(), i)));
    Some(x.reshape_dims(&target))
}

/// Splits axis `at` of `x` into the known sizes `sizes`.
fn unflatten(x: &Tensor, at: usize, sizes: &[usize]) -> Tensor {
    if sizes.len() == 1 {
        return x.clone();
    }
    let mut target: Vec<Size> = (0..at).map(|i| Size::Of(x.clone(), i)).collect();
    target.extend(sizes.iter().map(|&n| Size::Known(n)));
    target.extend((at + 1..x.rank()).map(|i| Size::Of(x.clone(), i)));
    x.reshape_dims(&target)
}

/// Keras's causal mask `(1, T, S)`, true where key position `j <= i`, from axis 1 of the query
/// and the value (whatever the attention axes), for lengths known only at run time too.
pub(crate) fn causal_mask(query: &Tensor, value: &Tensor) -> Tensor {
    let rows = Tensor::arange_size(&query.size_of(1), DType::I32).expand_dims(1);
    let cols = Tensor::arange_size(&value.size_of(1), DType::I32).expand_dims(0);
    cols.less_equal(&rows).expand_dims(0)
}

/// The output masks of an attention layer: the query's mask on the output, none on the
/// attention scores (Keras's `compute_mask`).
pub(crate) fn query_mask_on_output(
    masks: &[Option<Tensor>],
    outputs: &[Tensor],
) -> Vec<Option<Tensor>> {
    let mut out = vec![None; outputs.len()];
    if let Some(first) = out.first_mut() {
        *first = masks.first().cloned().flatten();
    }
    out
}

/// The tensors of one `MultiHeadAttention` call.
struct MhaCall<'t> {
    query: &'t Tensor,
    value: &'t Tensor,
    key: &'t Tensor,
    attention_mask: Option<&'t Tensor>,
    /// Whether the key was given as an input of its own (so its mask is input 2's).
    key_given: bool,
}

impl<'t> MhaCall<'t> {
    /// Reads a call's tensors from its 2 to 4 inputs (the key is the value where not given).
    fn of(inputs: &'t [Tensor]) -> Result<MhaCall<'t>> {
        let (query, value, key, attention_mask) = match inputs {
            [q, v] => (q, v, v, None),
            [q, v, k] => (q, v, k, None),
            [q, v, k, m] => (q, v, k, Some(m)),
            _ => {
                return Err(Error::Inputs {
                    detail: format!(
                        "MultiHeadAttention takes [query, value], [query, value, key] or [query, \
                         value, key, attention_mask], got {} inputs",
                        inputs.len()
                    ),
                });
            }
        };
        Ok(MhaCall {
            query,
            value,
            key,
            attention_mask,
            key_given: inputs.len() > 2,
        })
    }
}

/// Where a call's query axes go while attending.
struct HeadLayout {
    /// The query's rank.
    rank: usize,
    /// The attention axes, sorted.
    axes: Vec<usize>,
    /// The axes between the batch and the features that are not attention axes.
    batch_like: Vec<usize>,
    /// The permutation of a projection `(B, ..., heads, dim)` that puts the heads before the
    /// attention axes: `(B, <batch-like axes>, heads, <attention axes>, dim)`.
    perm: Vec<isize>,
    /// Where the (flattened) attention axes start after `perm`.
    at: usize,
}

/// A projection's kernel and, with `use_bias`, its bias.
type Projection = (Arc<Variable>, Option<Arc<Variable>>);

/// The phases of a `MultiHeadAttention` call (`forward_masked`).
impl MultiHeadAttention {
    /// Checks the call's tensors and gives the feature sizes of the query, value and key.
    fn check_inputs(&self, call: &MhaCall) -> Result<[usize; 3]> {
        let (query, value, key) = (call.query, call.value, call.key);
        let r = query.rank();
        if r < 3 {
            return Err(self.shape_error(
                &[query],
                "the query needs a batch axis, at least one sequence axis and features",
            ));
        }
        for (what, t) in [("value", value), ("key", key)] {
            if t.rank() != r {
                return Err(self.shape_error(
                    &[query, t],
                    format!("the {what} must have the query's rank {r}"),
                ));
            }
            if t.dtype() != DType::F32 || query.dtype() != DType::F32 {
                return Err(
                    self.shape_error(&[query, t], format!("query and {what} must be float32"))
                );
            }
        }
        let (Some(dq), Some(dv), Some(dk)) =
            (known_last(query), known_last(value), known_last(key))
        else {
            return Err(self.shape_error(
                &[query, value, key],
                "the last (feature) dimension of query, value and key must be known",
            ));
        };
        // Key and value must agree on every axis but the features.
        let (ks, vs) = (key.shape(), value.shape());
        for i in 0..r - 1 {
            if let (Dim::Known(a), Dim::Known(b)) = (ks.dims()[i], vs.dims()[i])
                && a != b
            {
                return Err(self.shape_error(
                    &[key, value],
                    format!("key and value differ on axis {i} ({a} vs {b})"),
                ));
            }
        }
        Ok([dq, dv, dk])
    }

    /// The layout of `query`'s axes while attending (attention axes, others, permutation).
    fn head_layout(&self, query: &Tensor) -> Result<HeadLayout> {
        let r = query.rank();
        // Attention axes, among 1..r-1 of the query.
        let axes: Vec<usize> = match &self.attention_axes {
            None => (1..r - 1).collect(),
            Some(list) => {
                let mut v = Vec::new();
                for &a in list {
                    let n = if a < 0 { a + r as isize } else { a };
                    if n < 1 || n >= r as isize - 1 || v.contains(&(n as usize)) {
                        return Err(self.shape_error(
                            &[query],
                            format!(
                                "attention_axes {list:?}: each must be a distinct axis between \
                                 the batch axis and the features (1..{})",
                                r - 2
                            ),
                        ));
                    }
                    v.push(n as usize);
                }
                v.sort_unstable();
                v
            }
        };
        let batch_like: Vec<usize> = (1..r - 1).filter(|a| !axes.contains(a)).collect();
        let mut perm: Vec<isize> = vec![0];
        perm.extend(batch_like.iter().map(|&a| a as isize));
        perm.push(r as isize - 1);
        perm.extend(axes.iter().map(|&a| a as isize));
        perm.push(r as isize);
        let at = batch_like.len() + 2;
        Ok(HeadLayout {
            rank: r,
            axes,
            batch_like,
            perm,
            at,
        })
    }

    /// The output's feature sizes: `output_shape`, else the query's features `dq`.
    fn output_dims(&self, dq: usize) -> Result<Vec<usize>> {
        let out_dims: Vec<usize> = self.output_shape.clone().unwrap_or(vec![dq]);
        if out_dims.contains(&0) {
            return Err(self.bad(format!(
                "output_shape {out_dims:?} must be non-empty sizes of at least 1"
            )));
        }
        Ok(out_dims)
    }

    /// The names and shapes of the layer's weights, in the order they are made.
    fn weight_shapes(
        &self,
        [dq, dv, dk]: [usize; 3],
        out_dims: &[usize],
    ) -> Vec<(&'static str, Vec<usize>)> {
        let (h, kd) = (self.num_heads, self.key_dim);
        let vd = self.value_dim.unwrap_or(kd);
        let mut wanted: Vec<(&'static str, Vec<usize>)> = vec![("query/kernel", vec![dq, h, kd])];
        if self.use_bias {
            wanted.push(("query/bias", vec![h, kd]));
        }
        wanted.push(("key/kernel", vec![dk, h, kd]));
        if self.use_bias {
            wanted.push(("key/bias", vec![h, kd]));
        }
        wanted.push(("value/kernel", vec![dv, h, vd]));
        if self.use_bias {
            wanted.push(("value/bias", vec![h, vd]));
        }
        let mut ok = vec![h, vd];
        ok.extend(out_dims);
        wanted.push(("attention_output/kernel", ok));
        if self.use_bias {
            wanted.push(("attention_output/bias", out_dims.to_vec()));
        }
        wanted
    }

    /// The four projections' weights, made on the first call (Glorot kernels, zero biases).
    fn projection_weights(
        &self,
        call: &MhaCall,
        features: [usize; 3],
        out_dims: &[usize],
    ) -> Result<[Projection; 4]> {
        let wanted = self.weight_shapes(features, out_dims);
        let seed = self.seed;
        let vars = self
            .weights
            .get_or_make(&self.name, &wanted, |name, shape| {
                if name.ends_with("bias") {
                    return HostTensor::zeros(shape);
                }
                // Glorot uniform over the einsum's fans, as Keras's EinsumDense.
                let (fan_in, fan_out) = if name.starts_with("attention_output") {
                    (shape[0] * shape[1], shape[2..].iter().product::<usize>())
                } else {
                    (shape[0], shape[1] * shape[2])
                };
                let n: usize = shape.iter().product();
                let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
                let s = seed ^ (name.len() as u64 * 0x9E37_79B9) ^ name.as_bytes()[0] as u64;
                HostTensor::new(shape, uniform(n, limit, s))
            })
            .map_err(|e| match e {
                Error::VariableShape { name, existing, .. } => Error::VariableShape {
                    name,
                    existing,
                    requested: format!(
                        "for query {}, value {}, key {}",
                        call.query.shape(),
                        call.value.shape(),
                        call.key.shape()
                    ),
                },
                other => other,
            })?;
        let mut it = vars.iter();
        let mut next = |bias: bool| -> Option<&Arc<Variable>> {
            if bias && !self.use_bias {
                None
            } else {
                it.next()
            }
        };
        let (wq, bq) = (next(false), next(true));
        let (wk, bk) = (next(false), next(true));
        let (wv, bv) = (next(false), next(true));
        let (wo, bo) = (next(false), next(true));
        let (Some(wq), Some(wk), Some(wv), Some(wo)) = (wq, wk, wv, wo) else {
            return Err(self.bad("made too few weights".into()));
        };
        Ok([
            (wq.clone(), bq.cloned()),
            (wk.clone(), bk.cloned()),
            (wv.clone(), bv.cloned()),
            (wo.clone(), bo.cloned()),
        ])
    }

    /// The call's masks, combined as Keras 3 combines them and brought onto the scores.
    fn combined_mask(
        &self,
        call: &MhaCall,
        masks: &[Option<Tensor>],
        layout: &HeadLayout,
    ) -> Result<Option<Tensor>> {
        // Masks, combined as Keras 3's `_compute_attention_mask` combines them (NumPy
        // broadcasting), then brought onto the scores as its masked softmax does.
        let (query, value, key) = (call.query, call.value, call.key);
        let query_mask = masks.first().cloned().flatten();
        let value_mask = masks.get(1).cloned().flatten();
        let key_mask = if call.key_given && key.id() != value.id() {
            masks.get(2).cloned().flatten()
        } else {
            None
        };
        let mut mask: Option<Tensor> = None;
        let and = |m: Option<Tensor>, n: Tensor| -> Tensor {
            match m {
                Some(m) => m.logical_and(&n),
                None => n,
            }
        };
        if let Some(m) = &query_mask {
            mask = Some(and(mask, m.cast(DType::Bool).expand_dims(-1)));
        }
        if let Some(m) = &value_mask {
            mask = Some(and(mask, m.cast(DType::Bool).expand_dims(-2)));
        }
        if let Some(m) = &key_mask {
            mask = Some(and(mask, m.cast(DType::Bool).expand_dims(-2)));
        }
        if let Some(m) = call.attention_mask {
            mask = Some(and(mask, m.cast(DType::Bool)));
        }
        if self.use_causal_mask {
            mask = Some(and(mask, causal_mask(query, value)));
        }
        Ok(match mask {
            Some(m) => {
                let mut shown = vec![query, value];
                shown.extend(call.attention_mask);
                m.check().map_err(|e| {
                    self.shape_error(
                        &shown,
                        format!(
                            "the masks (input masks, attention_mask, causal mask) do not \
                             broadcast together: {e}"
                        ),
                    )
                })?;
                Some(self.mask_onto_scores(
                    &m,
                    query,
                    key,
                    &layout.batch_like,
                    &layout.axes,
                    &shown,
                )?)
            }
            None => None,
        })
    }

    /// The query, key and value projected into heads, attention axes flattened, query scaled.
    fn project_heads(
        &self,
        call: &MhaCall,
        [(wq, bq), (wk, bk), (wv, bv)]: [&Projection; 3],
        layout: &HeadLayout,
    ) -> Result<[Tensor; 3]> {
        // Projections: (B, ..., heads, dim), then heads before the attention axes.
        let (query, value, key) = (call.query, call.value, call.key);
        let q = Self::project(query, wq, bq.as_ref());
        let k = Self::project(key, wk, bk.as_ref());
        let v = Self::project(value, wv, bv.as_ref());
        let flat = |t: &Tensor, what: &str| -> Result<Tensor> {
            flatten_run(&t.transpose(&layout.perm), layout.at, layout.axes.len()).ok_or_else(|| {
                self.shape_error(
                    &[query, value],
                    format!("attention over several axes needs the {what}'s axes known"),
                )
            })
        };
        let q = flat(&q, "query")?.multiply(1.0 / (self.key_dim as f64).sqrt() as f32);
        let k = flat(&k, "key")?;
        let v = flat(&v, "value")?;
        Ok([q, k, v])
    }

    /// The attention output `o` back in the query's axis order, through the output projection.
    fn output_projection(
        &self,
        o: Tensor,
        layout: &HeadLayout,
        q_sizes: Option<&[usize]>,
        (wo, bo): &Projection,
        out_dims: &[usize],
    ) -> Tensor {
        let h = self.num_heads;
        let vd = self.value_dim.unwrap_or(self.key_dim);
        let r = layout.rank;
        let dout: usize = out_dims.iter().product();
        let o = match q_sizes {
            Some(s) => unflatten(&o, layout.at, s),
            None => o,
        };
        let mut inverse = vec![0isize; layout.perm.len()];
        for (i, &p) in layout.perm.iter().enumerate() {
            inverse[p as usize] = i as isize;
        }
        let o = o.transpose(&inverse);
        let mut flat_target: Vec<Size> = (0..r - 1).map(|i| Size::Of(o.clone(), i)).collect();
        flat_target.push(Size::Known(h * vd));
        let mut y = o
            .reshape_dims(&flat_target)
            .matmul(&Tensor::variable(wo.clone()).reshape(&[(h * vd) as i64, dout as i64]));
        if let Some(b) = bo {
            y = y.add(Tensor::variable(b.clone()).reshape(&[dout as i64]));
        }
        if out_dims.len() > 1 {
            let mut t: Vec<Size> = (0..r - 1).map(|i| Size::Of(y.clone(), i)).collect();
            t.extend(out_dims.iter().map(|&n| Size::Known(n)));
            y = y.reshape_dims(&t);
        }
        y
    }
}

/// The attention scores of `q` and `k`, softmaxed over the keys (masked as Keras 3 does).
fn attention_scores(q: &Tensor, k: &Tensor, mask: Option<&Tensor>) -> Tensor {
    let mut scores = q.matmul(&k.swapaxes(-1, -2));
    if let Some(m) = mask {
        scores = Tensor::where_(m, &scores, -1e9f32);
        scores = Tensor::where_(m, scores.softmax(-1), 0.0f32);
    } else {
        scores = scores.softmax(-1);
    }
    scores
}

/// The scores to return: with several attention axes, split back where their sizes are known.
fn scores_by_axes(
    scores: Tensor,
    layout: &HeadLayout,
    q_sizes: Option<&[usize]>,
    key: &Tensor,
) -> Tensor {
    let s_sizes: Option<Vec<usize>> = layout
        .axes
        .iter()
        .map(|&a| key.shape().dims()[a].known())
        .collect();
    let mut s = scores;
    if layout.axes.len() > 1
        && let (Some(qs), Some(ks)) = (q_sizes, s_sizes)
    {
        s = unflatten(&unflatten(&s, layout.at + 1, &ks), layout.at, qs);
    }
    s
}

impl Layer for MultiHeadAttention {
    layer_identity!("MultiHeadAttention");

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
        Ok(query_mask_on_output(masks, outputs))
    }

    fn forward_masked(&self, inputs: &[Tensor], masks: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let call = MhaCall::of(inputs)?;
        self.check_config()?;
        let features = self.check_inputs(&call)?;
        let layout = self.head_layout(call.query)?;
        let out_dims = self.output_dims(features[0])?;
        let [wq, wk, wv, wo] = self.projection_weights(&call, features, &out_dims)?;
        let mask = self.combined_mask(&call, masks, &layout)?;
        let [q, k, v] = self.project_heads(&call, [&wq, &wk, &wv], &layout)?;
        let scores = attention_scores(&q, &k, mask.as_ref());
        let o = scores.matmul(&v);
        // Back to (B, ..., heads, value_dim) in the query's axis order.
        let q_sizes: Option<Vec<usize>> = layout
            .axes
            .iter()
            .map(|&a| call.query.shape().dims()[a].known())
            .collect();
        let y = self.output_projection(o, &layout, q_sizes.as_deref(), &wo, &out_dims);
        let mut outs = vec![y];
        if self.return_attention_scores {
            outs.push(scores_by_axes(
                scores,
                &layout,
                q_sizes.as_deref(),
                call.key,
            ));
        }
        Ok(outs)
    }

    fn variables(&self) -> Vec<Arc<Variable>> {
        self.weights.list()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_round_trip_and_bad_ones_are_refused() -> Result<()> {
        let context = ConfigContext::default();
        let layer = MultiHeadAttention::new(2, 4)
            .value_dim(3)
            .dropout(0.1)
            .use_bias(false)
            .output_shape(&[2, 5])
            .attention_axes(&[1, -2])
            .use_causal_mask(true)
            .return_attention_scores(true)
            .name("mha");
        let config = layer.config();
        assert_eq!(config.attention_axes, Some(vec![1, -2]));
        let back = MultiHeadAttention::from_config(config.clone(), &context)?;
        assert_eq!(back.config(), config);
        let plain = MultiHeadAttention::new(1, 8).name("plain").config();
        assert_eq!(
            MultiHeadAttention::from_config(plain.clone(), &context)?.config(),
            plain
        );
        let json = serde_json::to_value(&plain).map_err(|e| Error::Model {
            detail: e.to_string(),
        })?;
        assert_eq!(
            json,
            serde_json::json!({"name": "plain", "num_heads": 1, "key_dim": 8, "value_dim": null,
                "dropout": 0.0, "use_bias": true, "output_shape": null, "attention_axes": null,
                "use_causal_mask": false, "return_attention_scores": false})
        );

        let bad = [
            MultiHeadAttentionConfig {
                num_heads: 0,
                ..plain.clone()
            },
            MultiHeadAttentionConfig {
                value_dim: Some(0),
                ..plain.clone()
            },
            MultiHeadAttentionConfig {
                dropout: 1.5,
                ..plain.clone()
            },
            MultiHeadAttentionConfig {
                output_shape: Some(vec![]),
                ..plain.clone()
            },
        ];
        for config in bad {
            let e = MultiHeadAttention::from_config(config, &context)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(e.contains("'plain'"), "{e}");
        }
        Ok(())
    }
}
