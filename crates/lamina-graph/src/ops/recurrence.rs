//! The time loop of a recurrent layer as one graph op, unrolled once the number of steps is
//! known.
//!
//! A recurrent layer records its loop as `Op::Recurrence` nodes (one per output it returns), so
//! that an `Input` with a run-time sequence length (`(batch, None, features)`) can feed it.
//! Each backend runs the loop its own way once the number of steps is known (the CPU natively;
//! the GPU unrolled by an internal pass of the backend crate, its `passes` module).

use crate::activation::Activation;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::infer::TypedShape;
use crate::op::Op;
use crate::shape::{Dim, Shape};
use crate::tensor::Tensor;
use std::sync::Arc;

/// Which recurrent cell a loop runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecurrentCell {
    /// `h = activation(x W + h U + b)`.
    SimpleRnn,
    /// Keras's LSTM, gates in the order i, f, c, o; states `[h, c]`.
    Lstm,
    /// Keras's GRU, gates in the order z, r, h; `reset_after` applies the reset gate after the
    /// recurrent product (with separate input and recurrent biases).
    Gru {
        /// Whether the reset gate applies after the recurrent matmul.
        reset_after: bool,
    },
}

impl RecurrentCell {
    /// Gates per unit: the width of the kernels is `gates * units`.
    pub fn gates(self) -> usize {
        match self {
            RecurrentCell::SimpleRnn => 1,
            RecurrentCell::Lstm => 4,
            RecurrentCell::Gru { .. } => 3,
        }
    }

    /// States carried from step to step: `[h]`, or `[h, c]` for an LSTM.
    pub fn states(self) -> usize {
        if self == RecurrentCell::Lstm { 2 } else { 1 }
    }

    /// The Keras class name (`SimpleRNN`, `LSTM`, `GRU`).
    pub fn kind(self) -> &'static str {
        match self {
            RecurrentCell::SimpleRnn => "SimpleRNN",
            RecurrentCell::Lstm => "LSTM",
            RecurrentCell::Gru { .. } => "GRU",
        }
    }
}

/// What one recurrent loop computes: the cell, its activations, the direction, what it returns
/// at each step, and which optional inputs the op has.
///
/// The op's inputs are, in order: `x` `(batch, steps, features)`, `kernel`, `recurrent_kernel`,
/// then `bias` if `has_bias`, the mask `(batch, steps)` if `has_mask`, and the initial states
/// `(batch, units)` if `has_initial_states`.
#[derive(Clone, Debug)]
pub struct RecurrenceSpec {
    /// The cell.
    pub cell: RecurrentCell,
    /// The size of the state and of each output step.
    pub units: usize,
    /// The output activation (tanh in Keras).
    pub activation: Activation,
    /// The gates' activation (sigmoid in Keras).
    pub recurrent_activation: Activation,
    /// Whether the sequence is read last step first.
    pub go_backwards: bool,
    /// Whether output 0 holds every step `(batch, steps, units)` or only the last.
    pub return_sequences: bool,
    /// Whether masked steps output zeros instead of repeating the previous output.
    pub zero_output_for_mask: bool,
    /// Keras's `unroll=True` mask semantics: a masked step repeats the previous output (zeros
    /// before the first output), whatever `zero_output_for_mask` and the initial state say.
    pub unroll: bool,
    /// Whether a bias input follows the kernels.
    pub has_bias: bool,
    /// Whether a mask input follows.
    pub has_mask: bool,
    /// Whether the initial states are inputs (else they are zeros).
    pub has_initial_states: bool,
}

impl RecurrenceSpec {
    /// The number of inputs the op takes.
    fn arity(&self) -> usize {
        3 + usize::from(self.has_bias)
            + usize::from(self.has_mask)
            + if self.has_initial_states {
                self.cell.states()
            } else {
                0
            }
    }

    /// The op's outputs: the output, then each final state.
    pub fn outputs(&self) -> usize {
        1 + self.cell.states()
    }
}

impl Tensor {
    /// The outputs of a recurrent loop over `x` `(batch, steps, features)`: the output (every
    /// step, or the last), then the final states. `steps` may be unknown until run time.
    /// `weights` are the kernel, the recurrent kernel and optionally the bias; the spec's
    /// `has_bias`, `has_mask` and `has_initial_states` are set from the arguments given.
    pub fn recurrence(
        spec: RecurrenceSpec,
        x: &Tensor,
        weights: &[&Tensor],
        mask: Option<&Tensor>,
        initial: &[Tensor],
    ) -> Vec<Tensor> {
        let mut spec = spec;
        spec.has_mask = mask.is_some();
        spec.has_initial_states = !initial.is_empty();
        spec.has_bias = weights.len() > 2;
        let mut inputs: Vec<&Tensor> = vec![x];
        inputs.extend_from_slice(weights);
        inputs.extend(mask);
        inputs.extend(initial);
        let spec = Arc::new(spec);
        (0..spec.outputs())
            .map(|output| {
                Tensor::from_op(
                    Op::Recurrence {
                        spec: spec.clone(),
                        output,
                    },
                    &inputs,
                )
            })
            .collect()
    }
}

/// The shape of output `output` of a recurrent loop, with every input checked.
pub(crate) fn infer_recurrence(
    spec: &RecurrenceSpec,
    output: usize,
    inputs: &[TypedShape],
) -> Result<TypedShape> {
    let name = spec.cell.kind().to_ascii_lowercase();
    let shapes: Vec<String> = inputs.iter().map(|(s, _)| s.to_string()).collect();
    let bad = |detail: String| Error::IncompatibleShapes {
        op: name.clone(),
        shapes: shapes.join(", "),
        detail,
    };
    if inputs.len() != spec.arity() {
        return Err(bad(format!(
            "takes {} inputs (x, kernel, recurrent_kernel, then bias, mask and initial states as \
             configured), got {}",
            spec.arity(),
            inputs.len()
        )));
    }
    if output >= spec.outputs() {
        return Err(bad(format!(
            "has {} outputs, output {output} was asked for",
            spec.outputs()
        )));
    }
    let known = |d: Dim| d.known();
    let (x, dx) = &inputs[0];
    if x.rank() != 3 {
        return Err(bad(format!(
            "the input must have rank 3 (batch, timesteps, features), got {x}"
        )));
    }
    let gu = spec
        .cell
        .gates()
        .checked_mul(spec.units)
        .filter(|&n| n > 0 && n <= crate::host::MAX_ELEMENTS)
        .ok_or_else(|| {
            bad(format!(
                "{} units: a loop needs at least 1 and at most {} gate values per row",
                spec.units,
                crate::host::MAX_ELEMENTS
            ))
        })?;
    let expect = |k: usize, want: &[Option<usize>], what: &str| -> Result<()> {
        let (s, d) = &inputs[k];
        let fits = s.rank() == want.len()
            && s.dims()
                .iter()
                .zip(want)
                .all(|(&got, w)| w.is_none() || known(got).is_none() || known(got) == *w);
        if !fits || *d != DType::F32 {
            let want: Vec<String> = want
                .iter()
                .map(|w| w.map_or("batch".to_string(), |n| n.to_string()))
                .collect();
            return Err(bad(format!(
                "{what} must be float32 of shape ({}), got {s} {d}",
                want.join(", ")
            )));
        }
        Ok(())
    };
    if *dx != DType::F32 {
        return Err(bad(format!("the input must be float32, got {dx}")));
    }
    let features = known(x.dims()[2]);
    expect(1, &[features, Some(gu)], "the kernel")?;
    expect(2, &[Some(spec.units), Some(gu)], "the recurrent kernel")?;
    let mut k = 3;
    if spec.has_bias {
        let want: Vec<Option<usize>> = match spec.cell {
            RecurrentCell::Gru { reset_after: true } => vec![Some(2), Some(gu)],
            _ => vec![Some(gu)],
        };
        expect(k, &want, "the bias")?;
        k += 1;
    }
    if spec.has_mask {
        let (m, _) = &inputs[k];
        let fits = m.rank() == 2
            && m.dims()
                .iter()
                .zip(&x.dims()[..2])
                .all(|(&a, &b)| known(a).is_none() || known(b).is_none() || known(a) == known(b));
        if !fits {
            return Err(bad(format!(
                "the mask must have shape (batch, timesteps) of the input {x}, got {m}"
            )));
        }
        k += 1;
    }
    if spec.has_initial_states {
        for s in 0..spec.cell.states() {
            expect(
                k + s,
                &[known(x.dims()[0]), Some(spec.units)],
                "an initial state",
            )?;
        }
    }
    if let Some(0) = known(x.dims()[1]) {
        return Err(bad("the input has no time steps".into()));
    }
    let batch = x.dims()[0];
    let units = Dim::Known(spec.units);
    let shape = if output == 0 && spec.return_sequences {
        Shape::new([batch, x.dims()[1], units])
    } else {
        Shape::new([batch, units])
    };
    Ok((shape, DType::F32))
}
