//! Recurrent layers: `SimpleRNN`, `LSTM`, `GRU` and the `Bidirectional` wrapper, for inference.
//!
//! A call records the time loop as `Op::Recurrence` nodes, so the sequence length may be known
//! only at run time (`Input(shape=(None, features))`); before compiling for concrete shapes the
//! backends unroll it (an internal pass of `lamina_backend`, `expand_recurrences_except`): the
//! input projection `x @ kernel` runs once for all steps as one matmul, and each step adds
//! `h @ recurrent_kernel` and the gate arithmetic, which both backends fuse; on the GPU the
//! whole run is still one queue submit.

use super::common::Weights;
use super::init::glorot_uniform;
use super::registry::{ConfigContext, Configurable};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{Layer, LayerRef, unique_name};
use crate::shape::Dim;
use crate::tensor::{Tensor, next_id};
use crate::variable::Variable;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::ops::{RecurrenceSpec, RecurrentCell as Cell};

impl Cell {
    /// Keras's default layer name prefix (`lstm`, `simple_rnn`).
    fn prefix(self) -> &'static str {
        match self {
            Cell::SimpleRnn => "simple_rnn",
            Cell::Lstm => "lstm",
            Cell::Gru { .. } => "gru",
        }
    }
    /// The cell's name inside the layer, as in Keras's weight paths (`lstm/lstm_cell/kernel`).
    fn cell_name(self) -> &'static str {
        match self {
            Cell::SimpleRnn => "simple_rnn_cell",
            Cell::Lstm => "lstm_cell",
            Cell::Gru { .. } => "gru_cell",
        }
    }
}

/// The configuration of a recurrent layer: `SimpleRNN`, `LSTM` or `GRU` (`reset_after` is
/// read by GRU only, `unit_forget_bias` by LSTM only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RnnConfig {
    /// The layer's name.
    pub name: String,
    /// State size.
    pub units: usize,
    /// The output activation's name (a built-in one: a file cannot hold a custom one here).
    #[serde(serialize_with = "builtin_activation")]
    pub activation: String,
    /// The gate activation's name (a built-in one).
    #[serde(serialize_with = "builtin_activation")]
    pub recurrent_activation: String,
    /// Whether there is a `bias`.
    pub use_bias: bool,
    /// LSTM: forget bias initialised to 1.
    pub unit_forget_bias: bool,
    /// Every step returned.
    pub return_sequences: bool,
    /// Final states returned.
    pub return_state: bool,
    /// Sequence read backwards.
    pub go_backwards: bool,
    /// Masked steps output zeros.
    pub zero_output_for_mask: bool,
    /// GRU: reset gate after the recurrent matmul.
    pub reset_after: bool,
    /// Keras's `unroll=True`: masked steps repeat the previous output, zeros before the first.
    #[serde(default)]
    pub unroll: bool,
}

/// Writes an activation name, refusing one that is not a built-in activation's: a custom
/// activation is code, which a recurrent layer's configuration has no place for.
fn builtin_activation<S: serde::Serializer>(
    name: &str,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    if name.parse::<Activation>().is_err() {
        return Err(serde::ser::Error::custom(format!(
            "the activation '{name}' is a custom function, which a file can hold on a \
             recurrent layer only as a built-in activation's name"
        )));
    }
    serializer.serialize_str(name)
}

/// The configuration of a `Bidirectional` wrapper.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BidirectionalConfig {
    /// The layer's name.
    pub name: String,
    /// `concat`, `sum`, `mul`, `ave` or `none`.
    pub merge_mode: String,
    /// The wrapped cell type: `SimpleRNN`, `LSTM` or `GRU`.
    pub cell: String,
    /// The forward layer.
    pub forward: RnnConfig,
    /// The backward layer.
    pub backward: RnnConfig,
}

/// The configuration and weights every recurrent layer shares.
#[derive(Clone)]
struct Rnn {
    id: u64,
    name: String,
    cell: Cell,
    units: usize,
    activation: Activation,
    recurrent_activation: Activation,
    use_bias: bool,
    unit_forget_bias: bool,
    return_sequences: bool,
    return_state: bool,
    go_backwards: bool,
    zero_output_for_mask: bool,
    unroll: bool,
    seed: u64,
    weights: Arc<Weights>,
}

/// The weights of one direction: kernel, recurrent kernel, optional bias.
type RnnWeights = (Arc<Variable>, Arc<Variable>, Option<Arc<Variable>>);

impl Rnn {
    fn new(cell: Cell, units: usize) -> Rnn {
        let id = next_id();
        Rnn {
            id,
            name: unique_name(cell.prefix()),
            cell,
            units,
            activation: Activation::Tanh,
            recurrent_activation: Activation::Sigmoid,
            use_bias: true,
            unit_forget_bias: true,
            return_sequences: false,
            return_state: false,
            go_backwards: false,
            zero_output_for_mask: false,
            unroll: false,
            seed: id,
            weights: Arc::default(),
        }
    }

    /// A copy with a new identity and no weights (a configuration change makes a new layer).
    fn fresh(mut self) -> Rnn {
        self.id = next_id();
        self.weights = Arc::default();
        self
    }

    fn bias_shape(&self) -> Vec<usize> {
        match self.cell {
            Cell::Gru { reset_after: true } => vec![2, 3 * self.units],
            c => vec![c.gates() * self.units],
        }
    }

    fn err(&self, detail: String) -> Error {
        Error::Model {
            detail: format!("{} '{}': {detail}", self.cell.kind(), self.name),
        }
    }

    fn check_config(&self) -> Result<()> {
        if self.units == 0 {
            return Err(self.err("units must be at least 1".into()));
        }
        // The recurrent kernel (units, gates * units) is the largest weight whatever the
        // input; checked here so that no later product of `units` overflows.
        let gates = self.cell.gates();
        let values = self
            .units
            .checked_mul(gates)
            .and_then(|gu| gu.checked_mul(self.units));
        if values.is_none_or(|n| n > crate::host::MAX_ELEMENTS) {
            return Err(self.err(format!(
                "units {} is too many: the recurrent kernel ({0}, {gates} * {0}) would hold more \
                 than {} values",
                self.units,
                crate::host::MAX_ELEMENTS
            )));
        }
        for a in [&self.activation, &self.recurrent_activation] {
            if matches!(
                a,
                Activation::Softmax | Activation::LogSoftmax | Activation::Glu
            ) {
                return Err(self.err(format!(
                    "activation '{}' is not elementwise; recurrent layers need an elementwise one",
                    a.name()
                )));
            }
        }
        Ok(())
    }

    /// Makes (or finds) the weights, named `{prefix}kernel`, `{prefix}recurrent_kernel` and
    /// `{prefix}bias`, owned by layer `owner`.
    fn build(&self, owner: &str, prefix: &str, input_dim: usize) -> Result<RnnWeights> {
        let gu = self.cell.gates() * self.units;
        let names = [
            format!("{prefix}kernel"),
            format!("{prefix}recurrent_kernel"),
            format!("{prefix}bias"),
        ];
        let mut wanted: Vec<(&str, Vec<usize>)> = vec![
            (names[0].as_str(), vec![input_dim, gu]),
            (names[1].as_str(), vec![self.units, gu]),
        ];
        if self.use_bias {
            wanted.push((names[2].as_str(), self.bias_shape()));
        }
        let units = self.units;
        let forget = self.cell == Cell::Lstm && self.unit_forget_bias;
        let vars = self
            .weights
            .get_or_make(owner, &wanted, |name, shape| {
                if name.ends_with("recurrent_kernel") {
                    HostTensor::new(shape, glorot_uniform(shape[0], shape[1], self.seed ^ 1))
                } else if name.ends_with("kernel") {
                    HostTensor::new(shape, glorot_uniform(shape[0], shape[1], self.seed))
                } else {
                    let n: usize = shape.iter().product();
                    let mut b = vec![0f32; n];
                    if forget {
                        b[units..2 * units].iter_mut().for_each(|v| *v = 1.0);
                    }
                    HostTensor::new(shape, b)
                }
            })
            .map_err(|e| match e {
                Error::VariableShape { name, existing, .. } => Error::VariableShape {
                    name,
                    existing,
                    requested: format!("{:?} for inputs of {input_dim} features", [input_dim, gu]),
                },
                other => other,
            })?;
        let mut it = vars.into_iter();
        match (it.next(), it.next()) {
            (Some(k), Some(r)) => Ok((k, r, it.next())),
            _ => Err(self.err("made no kernel".into())),
        }
    }

    /// Checks the input `(batch, steps, features)` (steps may be unknown until run time) and
    /// returns the number of features.
    fn input_features(&self, x: &Tensor) -> Result<usize> {
        let shape = x.shape();
        let bad = |detail: String| Error::IncompatibleShapes {
            op: self.cell.kind().to_ascii_lowercase(),
            shapes: shape.to_string(),
            detail: format!("{} '{}': {detail}", self.cell.kind(), self.name),
        };
        if shape.rank() != 3 {
            return Err(bad(format!(
                "the input must have rank 3 (batch, timesteps, features), got rank {}",
                shape.rank()
            )));
        }
        if let Some(Dim::Known(0)) = shape.dim(1) {
            return Err(bad("the input has no time steps".into()));
        }
        match shape.dim(2) {
            Some(Dim::Known(f)) => Ok(f),
            _ => Err(bad("the number of features must be known".into())),
        }
    }

    /// Checks the initial states against the cell: their number and `(batch, units)` shapes.
    fn check_states(&self, states: &[Tensor]) -> Result<()> {
        let n = self.cell.states();
        if states.len() != n {
            let what = if n == 2 { "2 (h, c)" } else { "1 (h)" };
            return Err(self.err(format!(
                "takes {what} initial state tensor(s) after the input, got {}",
                states.len()
            )));
        }
        for (k, s) in states.iter().enumerate() {
            let shape = s.shape();
            let ok = shape.rank() == 2 && shape.dim(1) == Some(Dim::Known(self.units));
            if !ok {
                return Err(Error::IncompatibleShapes {
                    op: self.cell.kind().to_ascii_lowercase(),
                    shapes: shape.to_string(),
                    detail: format!(
                        "{} '{}': initial state {k} must have shape (batch, {}), got {shape}",
                        self.cell.kind(),
                        self.name,
                        self.units
                    ),
                });
            }
        }
        Ok(())
    }

    /// Runs the layer on `x` with weights made under `owner`/`prefix`: `[output, states...]`
    /// (states only with `return_state`).
    fn run(
        &self,
        owner: &str,
        prefix: &str,
        x: &Tensor,
        mask: Option<&Tensor>,
        initial: &[Tensor],
    ) -> Result<Vec<Tensor>> {
        self.check_config()?;
        let features = self.input_features(x)?;
        if !initial.is_empty() {
            self.check_states(initial)?;
        }
        let (kernel, recurrent, bias) = self.build(owner, prefix, features)?;
        let mut weights = vec![Tensor::variable(kernel), Tensor::variable(recurrent)];
        weights.extend(bias.map(Tensor::variable));
        let spec = RecurrenceSpec {
            cell: self.cell,
            units: self.units,
            activation: self.activation.clone(),
            recurrent_activation: self.recurrent_activation.clone(),
            go_backwards: self.go_backwards,
            return_sequences: self.return_sequences,
            zero_output_for_mask: self.zero_output_for_mask,
            unroll: self.unroll,
            has_bias: false,
            has_mask: false,
            has_initial_states: false,
        };
        let weights: Vec<&Tensor> = weights.iter().collect();
        let mut outputs = Tensor::recurrence(spec, x, &weights, mask, initial);
        if !self.return_state {
            outputs.truncate(1);
        }
        for t in &outputs {
            t.check()?;
        }
        Ok(outputs)
    }

    fn config(&self) -> RnnConfig {
        RnnConfig {
            name: self.name.clone(),
            units: self.units,
            activation: self.activation.name().to_string(),
            recurrent_activation: self.recurrent_activation.name().to_string(),
            use_bias: self.use_bias,
            unit_forget_bias: self.unit_forget_bias,
            return_sequences: self.return_sequences,
            return_state: self.return_state,
            go_backwards: self.go_backwards,
            zero_output_for_mask: self.zero_output_for_mask,
            reset_after: matches!(self.cell, Cell::Gru { reset_after: true }),
            unroll: self.unroll,
        }
    }

    /// A layer of `cell` (a GRU's `reset_after` from the configuration) from its
    /// configuration, checked as a call checks it.
    fn from_config(cell: Cell, c: &RnnConfig, context: &ConfigContext) -> Result<Rnn> {
        let mut rnn = Rnn::new(cell, c.units);
        if let Cell::Gru { .. } = cell {
            rnn.cell = Cell::Gru {
                reset_after: c.reset_after,
            };
        }
        rnn.name = c.name.clone();
        rnn.activation = context
            .activation(&c.activation)
            .map_err(|e| rnn.err(e.to_string()))?;
        rnn.recurrent_activation = context
            .activation(&c.recurrent_activation)
            .map_err(|e| rnn.err(e.to_string()))?;
        rnn.use_bias = c.use_bias;
        rnn.unit_forget_bias = c.unit_forget_bias;
        rnn.return_sequences = c.return_sequences;
        rnn.return_state = c.return_state;
        rnn.go_backwards = c.go_backwards;
        rnn.zero_output_for_mask = c.zero_output_for_mask;
        rnn.unroll = c.unroll;
        rnn.check_config()?;
        Ok(rnn)
    }

    fn output_masks(&self, masks: &[Option<Tensor>], outputs: &[Tensor]) -> Vec<Option<Tensor>> {
        let mut out = vec![None; outputs.len()];
        if self.return_sequences {
            out[0] = masks.first().cloned().flatten();
        }
        out
    }

    fn forward_masked(&self, inputs: &[Tensor], masks: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let Some((x, initial)) = inputs.split_first() else {
            return Err(Error::Inputs {
                detail: format!(
                    "{} takes an input and optional initial states",
                    self.cell.kind()
                ),
            });
        };
        let mask = masks.first().cloned().flatten();
        self.run(&self.name, "", x, mask.as_ref(), initial)
    }

    fn weight_paths(&self) -> Vec<(String, Arc<Variable>)> {
        self.weights
            .list()
            .into_iter()
            .map(|v| {
                let path = format!("{}/{}/{}", self.name, self.cell.cell_name(), v.name());
                (path, v)
            })
            .collect()
    }
}

macro_rules! recurrent_layer {
    ($(#[$doc:meta])* $ty:ident, $cell:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $ty {
            rnn: Rnn,
        }

        impl $ty {
            fn configure(mut self, f: impl FnOnce(&mut Rnn)) -> $ty {
                f(&mut self.rnn);
                self.rnn = self.rnn.fresh();
                self
            }

            /// Sets the layer's name.
            pub fn name(self, name: &str) -> $ty {
                self.configure(|r| r.name = name.to_string())
            }

            /// The output activation (Keras's default `tanh`).
            pub fn activation(self, activation: Activation) -> $ty {
                self.configure(|r| r.activation = activation)
            }

            /// Whether the layer adds a bias (default true).
            pub fn use_bias(self, use_bias: bool) -> $ty {
                self.configure(|r| r.use_bias = use_bias)
            }

            /// Whether the output holds every step `(batch, steps, units)` or only the last
            /// `(batch, units)` (the default).
            pub fn return_sequences(self, on: bool) -> $ty {
                self.configure(|r| r.return_sequences = on)
            }

            /// Whether the final states follow the output as more outputs (`[output, h]`, or
            /// `[output, h, c]` for an LSTM).
            pub fn return_state(self, on: bool) -> $ty {
                self.configure(|r| r.return_state = on)
            }

            /// Whether the sequence is read last step first; with `return_sequences` the
            /// outputs are then in that reversed order, as Keras gives them.
            pub fn go_backwards(self, on: bool) -> $ty {
                self.configure(|r| r.go_backwards = on)
            }

            /// Whether masked steps output zeros instead of repeating the previous output
            /// (Keras's `zero_output_for_mask`, default false; `Bidirectional` sets it to
            /// `return_sequences`).
            pub fn zero_output_for_mask(self, on: bool) -> $ty {
                self.configure(|r| r.zero_output_for_mask = on)
            }

            /// Keras's `unroll` (default false). The loop is compiled the same way either way;
            /// what changes is Keras's mask semantics, which differ when unrolled: a masked step
            /// repeats the previous output (zeros before the first output, not the initial
            /// state) and `zero_output_for_mask` is ignored.
            pub fn unroll(self, on: bool) -> $ty {
                self.configure(|r| r.unroll = on)
            }

            /// Sets the seed of the weight initialisers.
            pub fn seed(self, seed: u64) -> $ty {
                self.configure(|r| r.seed = seed)
            }
        }

        impl Configurable for $ty {
            const CLASS: &'static str = stringify!($ty);
            type Config = RnnConfig;

            fn config(&self) -> RnnConfig {
                self.rnn.config()
            }

            fn from_config(config: RnnConfig, context: &ConfigContext) -> Result<$ty> {
                Ok($ty {
                    rnn: Rnn::from_config($cell, &config, context)?,
                })
            }
        }

        impl Layer for $ty {
            fn id(&self) -> u64 {
                self.rnn.id
            }
            fn name(&self) -> String {
                self.rnn.name.clone()
            }
            fn kind(&self) -> &'static str {
                stringify!($ty)
            }
            fn handle(&self) -> LayerRef {
                Arc::new(self.clone())
            }
            fn as_any(&self) -> &dyn std::any::Any {
                self
            }
            fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
                self.rnn.forward_masked(inputs, &[])
            }
            fn forward_masked(
                &self,
                inputs: &[Tensor],
                masks: &[Option<Tensor>],
            ) -> Result<Vec<Tensor>> {
                self.rnn.forward_masked(inputs, masks)
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
                Ok(self.rnn.output_masks(masks, outputs))
            }
            fn variables(&self) -> Vec<Arc<Variable>> {
                self.rnn.weights.list()
            }
            fn weight_paths(&self) -> Vec<(String, Arc<Variable>)> {
                self.rnn.weight_paths()
            }
        }
    };
}

recurrent_layer!(
    /// Keras's `SimpleRNN(units)`: `h = activation(x @ kernel + h @ recurrent_kernel + bias)`.
    /// Weights `kernel` `(features, units)`, `recurrent_kernel` `(units, units)`, `bias`
    /// `(units,)`. Inputs: `x` `(batch, steps, features)` and optionally the initial `h`
    /// `(batch, units)`. A masked step keeps the state and repeats the previous output.
    SimpleRNN,
    Cell::SimpleRnn
);

recurrent_layer!(
    /// Keras's `LSTM(units)` with gates in Keras's order i, f, c, o: `kernel`
    /// `(features, 4 units)`, `recurrent_kernel` `(units, 4 units)`, `bias` `(4 units,)`
    /// (forget part initialised to 1, Keras's `unit_forget_bias`). Inputs: `x` and optionally
    /// the initial `h` and `c`. With `return_state`, the outputs are `[output, h, c]`.
    LSTM,
    Cell::Lstm
);

recurrent_layer!(
    /// Keras's `GRU(units)` with gates in Keras's order z, r, h: `kernel` `(features, 3 units)`,
    /// `recurrent_kernel` `(units, 3 units)`, `bias` `(2, 3 units)` (input and recurrent
    /// biases) with `reset_after` (the default), else `(3 units,)`. Inputs: `x` and optionally
    /// the initial `h`.
    GRU,
    Cell::Gru { reset_after: true }
);

impl SimpleRNN {
    /// A SimpleRNN of `units` with Keras's defaults (tanh, bias, last output only).
    pub fn new(units: usize) -> SimpleRNN {
        SimpleRNN {
            rnn: Rnn::new(Cell::SimpleRnn, units),
        }
    }
}

impl LSTM {
    /// An LSTM of `units` with Keras's defaults (tanh, sigmoid gates, bias, last output only).
    pub fn new(units: usize) -> LSTM {
        LSTM {
            rnn: Rnn::new(Cell::Lstm, units),
        }
    }

    /// The activation of the gates (Keras's default `sigmoid`).
    pub fn recurrent_activation(self, activation: Activation) -> LSTM {
        self.configure(|r| r.recurrent_activation = activation)
    }

    /// Whether the forget part of the bias starts at 1 (default true; initial values only).
    pub fn unit_forget_bias(self, on: bool) -> LSTM {
        self.configure(|r| r.unit_forget_bias = on)
    }
}

impl GRU {
    /// A GRU of `units` with Keras's defaults (tanh, sigmoid gates, `reset_after`).
    pub fn new(units: usize) -> GRU {
        GRU {
            rnn: Rnn::new(Cell::Gru { reset_after: true }, units),
        }
    }

    /// The activation of the gates (Keras's default `sigmoid`).
    pub fn recurrent_activation(self, activation: Activation) -> GRU {
        self.configure(|r| r.recurrent_activation = activation)
    }

    /// Whether the reset gate applies after the recurrent matmul (Keras 3's default, true,
    /// with a `(2, 3 units)` bias) or before it (`(3 units,)` bias).
    pub fn reset_after(self, on: bool) -> GRU {
        self.configure(|r| r.cell = Cell::Gru { reset_after: on })
    }
}

/// How `Bidirectional` combines the two directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeMode {
    /// Joined along the last axis (the default).
    Concat,
    /// Added.
    Sum,
    /// Multiplied.
    Mul,
    /// Averaged.
    Ave,
    /// Not combined: two outputs, forward then backward (Keras's `merge_mode=None`).
    None,
}

impl MergeMode {
    /// Keras's name (`concat`, `sum`, `mul`, `ave`, or `none`).
    pub fn name(self) -> &'static str {
        match self {
            MergeMode::Concat => "concat",
            MergeMode::Sum => "sum",
            MergeMode::Mul => "mul",
            MergeMode::Ave => "ave",
            MergeMode::None => "none",
        }
    }

    fn parse(s: &str) -> Result<MergeMode> {
        Ok(match s {
            "concat" => MergeMode::Concat,
            "sum" => MergeMode::Sum,
            "mul" => MergeMode::Mul,
            "ave" => MergeMode::Ave,
            "none" => MergeMode::None,
            other => {
                return Err(Error::Model {
                    detail: format!(
                        "unknown Bidirectional merge_mode '{other}' (concat, sum, mul, ave or none)"
                    ),
                });
            }
        })
    }
}

/// Keras's `Bidirectional(layer, merge_mode="concat")`: the layer runs forward, a copy runs
/// on the reversed sequence (its own weights), and the two outputs are merged; with
/// `return_sequences` the backward outputs are flipped back into time order first. Weights
/// are named as Keras's paths: `forward_lstm/lstm_cell/kernel`, `backward_lstm/lstm_cell/kernel`
/// (in a model, `bidirectional/forward_lstm/lstm_cell/kernel`). Inputs: `x`, then optionally
/// the forward layer's initial states followed by the backward layer's. With `return_state`
/// the outputs are the merged output(s), then the forward states, then the backward ones.
#[derive(Clone)]
pub struct Bidirectional {
    id: u64,
    name: String,
    merge_mode: MergeMode,
    forward: Rnn,
    backward: Rnn,
}

fn as_rnn(layer: &dyn Layer) -> Option<Rnn> {
    let any = layer.as_any();
    if let Some(l) = any.downcast_ref::<SimpleRNN>() {
        Some(l.rnn.clone())
    } else if let Some(l) = any.downcast_ref::<LSTM>() {
        Some(l.rnn.clone())
    } else {
        any.downcast_ref::<GRU>().map(|l| l.rnn.clone())
    }
}

impl Bidirectional {
    /// Wraps a `SimpleRNN`, `LSTM` or `GRU` with `merge_mode` concat. The backward layer is a
    /// copy with `go_backwards` flipped and its own weights. Another layer type is an error.
    pub fn new(layer: &dyn Layer) -> Result<Bidirectional> {
        let forward = as_rnn(layer).ok_or_else(|| Error::Model {
            detail: format!(
                "Bidirectional wraps a SimpleRNN, LSTM or GRU, got '{}' ({})",
                layer.name(),
                layer.kind()
            ),
        })?;
        let mut backward = forward.clone();
        backward.go_backwards = !forward.go_backwards;
        backward.seed = forward.seed.wrapping_add(7919);
        Bidirectional::assemble(forward, backward, MergeMode::Concat)
    }

    /// Wraps `layer` with an explicit backward layer (Keras's `backward_layer`): the same cell
    /// type, units, `return_sequences` and `return_state`, and the opposite `go_backwards`.
    pub fn with_backward(layer: &dyn Layer, backward: &dyn Layer) -> Result<Bidirectional> {
        let forward = as_rnn(layer);
        let back = as_rnn(backward);
        match (forward, back) {
            (Some(f), Some(b)) => Bidirectional::assemble(f, b, MergeMode::Concat),
            _ => Err(Error::Model {
                detail: format!(
                    "Bidirectional wraps SimpleRNN, LSTM or GRU layers, got '{}' ({}) and '{}' ({})",
                    layer.name(),
                    layer.kind(),
                    backward.name(),
                    backward.kind()
                ),
            }),
        }
    }

    fn assemble(forward: Rnn, backward: Rnn, merge_mode: MergeMode) -> Result<Bidirectional> {
        let (f, b) = (&forward, &backward);
        let same_cell = std::mem::discriminant(&f.cell) == std::mem::discriminant(&b.cell)
            && f.units == b.units;
        if !same_cell
            || f.return_sequences != b.return_sequences
            || f.return_state != b.return_state
            || f.go_backwards == b.go_backwards
        {
            return Err(Error::Model {
                detail: format!(
                    "Bidirectional: the backward layer '{}' must be the same cell type with the same \
                     units, return_sequences and return_state as '{}', and the opposite go_backwards",
                    b.name, f.name
                ),
            });
        }
        let inner = f.name.clone();
        let mut forward = forward.fresh();
        let mut backward = backward.fresh();
        // Keras forces zero outputs at masked steps when both directions return sequences.
        forward.zero_output_for_mask = forward.return_sequences;
        backward.zero_output_for_mask = backward.return_sequences;
        forward.name = format!("forward_{inner}");
        backward.name = format!("backward_{inner}");
        Ok(Bidirectional {
            id: next_id(),
            name: unique_name("bidirectional"),
            merge_mode,
            forward,
            backward,
        })
    }

    /// Sets how the two directions combine.
    pub fn merge_mode(self, merge_mode: MergeMode) -> Bidirectional {
        Bidirectional {
            merge_mode,
            id: next_id(),
            forward: self.forward.fresh(),
            backward: self.backward.fresh(),
            ..self
        }
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Bidirectional {
        Bidirectional {
            name: name.to_string(),
            id: next_id(),
            forward: self.forward.fresh(),
            backward: self.backward.fresh(),
            ..self
        }
    }

    fn prefix(&self, rnn: &Rnn) -> String {
        format!("{}/{}/", rnn.name, rnn.cell.cell_name())
    }
}

impl Configurable for Bidirectional {
    const CLASS: &'static str = "Bidirectional";
    type Config = BidirectionalConfig;

    fn config(&self) -> BidirectionalConfig {
        BidirectionalConfig {
            name: self.name.clone(),
            merge_mode: self.merge_mode.name().into(),
            cell: self.forward.cell.kind().to_string(),
            forward: self.forward.config(),
            backward: self.backward.config(),
        }
    }

    fn from_config(config: BidirectionalConfig, context: &ConfigContext) -> Result<Bidirectional> {
        let r = &config;
        let cell = match r.cell.as_str() {
            "SimpleRNN" => Cell::SimpleRnn,
            "LSTM" => Cell::Lstm,
            "GRU" => Cell::Gru { reset_after: true },
            other => {
                return Err(Error::Model {
                    detail: format!("Bidirectional '{}' wraps unknown cell '{other}'", r.name),
                });
            }
        };
        let forward = Rnn::from_config(cell, &r.forward, context)?;
        let backward = Rnn::from_config(cell, &r.backward, context)?;
        let merge_mode = MergeMode::parse(&r.merge_mode).map_err(|e| Error::Model {
            detail: format!("Bidirectional '{}': {e}", r.name),
        })?;
        let mut bi = Bidirectional::assemble(forward, backward, merge_mode)?;
        // The names and mask behaviour recorded, not the ones `assemble` derives.
        bi.forward.name = r.forward.name.clone();
        bi.backward.name = r.backward.name.clone();
        bi.forward.zero_output_for_mask = r.forward.zero_output_for_mask;
        bi.backward.zero_output_for_mask = r.backward.zero_output_for_mask;
        bi.name = r.name.clone();
        Ok(bi)
    }
}

impl Layer for Bidirectional {
    fn id(&self) -> u64 {
        self.id
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn kind(&self) -> &'static str {
        "Bidirectional"
    }
    fn handle(&self) -> LayerRef {
        Arc::new(self.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.forward_masked(inputs, &[])
    }
    fn forward_masked(&self, inputs: &[Tensor], masks: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let Some((x, initial)) = inputs.split_first() else {
            return Err(Error::Inputs {
                detail: "Bidirectional takes an input and optional initial states".into(),
            });
        };
        let n = self.forward.cell.states();
        let (fi, bi) = match initial.len() {
            0 => (&[][..], &[][..]),
            k if k == 2 * n => initial.split_at(n),
            k => {
                return Err(Error::Model {
                    detail: format!(
                        "Bidirectional '{}': takes {} initial states (the forward layer's {n}, then \
                         the backward layer's {n}), got {k}",
                        self.name,
                        2 * n
                    ),
                });
            }
        };
        let mask = masks.first().cloned().flatten();
        let f = self.forward.run(
            &self.name,
            &self.prefix(&self.forward),
            x,
            mask.as_ref(),
            fi,
        )?;
        let b = self.backward.run(
            &self.name,
            &self.prefix(&self.backward),
            x,
            mask.as_ref(),
            bi,
        )?;
        let (y, mut fs) = (f[0].clone(), f[1..].to_vec());
        let (mut yr, bs) = (b[0].clone(), b[1..].to_vec());
        if self.forward.return_sequences {
            yr = yr.slice_axis(1, None, None, -1);
        }
        let mut out = match self.merge_mode {
            MergeMode::Concat => vec![Tensor::concatenate(&[y, yr], -1)],
            MergeMode::Sum => vec![y.add(&yr)],
            MergeMode::Mul => vec![y.multiply(&yr)],
            MergeMode::Ave => vec![y.add(&yr).multiply(0.5f32)],
            MergeMode::None => vec![y, yr],
        };
        fs.extend(bs);
        out.extend(fs);
        Ok(out)
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
        let mut out = vec![None; outputs.len()];
        if self.forward.return_sequences {
            let m = masks.first().cloned().flatten();
            let merged = if self.merge_mode == MergeMode::None {
                2
            } else {
                1
            };
            for o in out.iter_mut().take(merged) {
                *o = m.clone();
            }
        }
        Ok(out)
    }
    fn variables(&self) -> Vec<Arc<Variable>> {
        let mut v = self.forward.weights.list();
        v.extend(self.backward.weights.list());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_json<T: Serialize>(config: &T) -> Result<serde_json::Value> {
        serde_json::to_value(config).map_err(|e| Error::Model {
            detail: e.to_string(),
        })
    }

    #[test]
    fn configurations_round_trip_and_bad_ones_are_refused() -> Result<()> {
        let context = ConfigContext::default();
        let simple = SimpleRNN::new(3)
            .activation(Activation::Relu)
            .go_backwards(true)
            .name("s");
        assert_eq!(
            SimpleRNN::from_config(simple.config(), &context)?.config(),
            simple.config()
        );
        let lstm = LSTM::new(4)
            .recurrent_activation(Activation::HardSigmoid)
            .unit_forget_bias(false)
            .return_sequences(true)
            .return_state(true)
            .unroll(true)
            .name("l");
        assert_eq!(
            LSTM::from_config(lstm.config(), &context)?.config(),
            lstm.config()
        );
        let gru = GRU::new(2).reset_after(false).use_bias(false).name("g");
        let config = gru.config();
        assert!(!config.reset_after && !config.use_bias);
        assert_eq!(GRU::from_config(config, &context)?.config(), gru.config());
        // The old record's JSON, `unroll` optional when read.
        let json = to_json(&GRU::new(2).name("g").config())?;
        assert_eq!(
            json,
            serde_json::json!({"name": "g", "units": 2, "activation": "tanh",
                "recurrent_activation": "sigmoid", "use_bias": true, "unit_forget_bias": true,
                "return_sequences": false, "return_state": false, "go_backwards": false,
                "zero_output_for_mask": false, "reset_after": true, "unroll": false})
        );
        let mut old = json;
        if let Some(o) = old.as_object_mut() {
            o.remove("unroll");
        }
        let read: RnnConfig = serde_json::from_value(old).map_err(|e| Error::Model {
            detail: e.to_string(),
        })?;
        assert_eq!(read, GRU::new(2).name("g").config());

        let bi = Bidirectional::new(&LSTM::new(3).return_sequences(true).name("inner"))?
            .merge_mode(MergeMode::Sum)
            .name("bi");
        let config = bi.config();
        assert_eq!(
            (config.cell.as_str(), config.merge_mode.as_str()),
            ("LSTM", "sum")
        );
        assert_eq!(config.forward.name, "forward_inner");
        assert!(config.backward.go_backwards && config.backward.zero_output_for_mask);
        let back = Bidirectional::from_config(config.clone(), &context)?;
        assert_eq!(back.config(), config);

        // Bad configurations: no units, an unknown or non-elementwise activation, an unknown
        // cell or merge mode, directions that do not pair.
        let bad_rnn = [
            RnnConfig {
                units: 0,
                ..simple.config()
            },
            RnnConfig {
                activation: "nope".into(),
                ..simple.config()
            },
            RnnConfig {
                recurrent_activation: "softmax".into(),
                ..simple.config()
            },
        ];
        for c in bad_rnn {
            let e = SimpleRNN::from_config(c, &context)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(e.contains("SimpleRNN 's'"), "{e}");
        }
        let bad_bi = [
            BidirectionalConfig {
                cell: "ConvLSTM".into(),
                ..config.clone()
            },
            BidirectionalConfig {
                merge_mode: "max".into(),
                ..config.clone()
            },
            BidirectionalConfig {
                backward: RnnConfig {
                    go_backwards: false,
                    ..config.backward.clone()
                },
                ..config.clone()
            },
        ];
        for c in bad_bi {
            let e = Bidirectional::from_config(c, &context)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(e.contains("Bidirectional"), "{e}");
        }
        Ok(())
    }

    #[test]
    fn a_custom_activation_is_refused_when_written() {
        let tanh2 = Activation::custom("tanh2", |x: &Tensor| x.tanh());
        let lstm = LSTM::new(2).activation(tanh2).name("l");
        let e = serde_json::to_value(lstm.config()).unwrap_err().to_string();
        assert!(e.contains("tanh2") && e.contains("custom"), "{e}");
    }
}
