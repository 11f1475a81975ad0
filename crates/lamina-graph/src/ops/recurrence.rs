//! The time loop of a recurrent layer as one graph op, unrolled once the number of steps is
//! known.
//!
//! A recurrent layer records its loop as `Op::Recurrence` nodes (one per output it returns), so
//! that an `Input` with a run-time sequence length (`(batch, None, features)`) can feed it.
//! Before a backend compiles a program for concrete input shapes, [`expand_recurrences`]
//! replaces each loop with its steps: the input projection of every step as one matrix product,
//! then per step `h @ recurrent_kernel` and the gate arithmetic, which both backends fuse. Each
//! sequence length is compiled once and cached by the session; on the GPU a whole run is still
//! one queue submit.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::infer::TypedShape;
use crate::layers::Activation;
use crate::model::{Program, ProgramNode};
use crate::op::Op;
use crate::ops::SliceArg;
use crate::shape::{Dim, Shape};
use crate::tensor::Tensor;
use std::collections::HashMap;
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

/// The unrolled loop: `[output, states...]` for `x` with a known number of steps.
fn unroll(spec: &RecurrenceSpec, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    let x = &inputs[0];
    let steps = match x.dim(1) {
        Some(Dim::Known(t)) if t > 0 => t,
        _ => {
            return Err(Error::IncompatibleShapes {
                op: spec.cell.kind().to_ascii_lowercase(),
                shapes: x.shape().to_string(),
                detail: "the input has no time steps".into(),
            });
        }
    };
    let (kernel, recurrent) = (&inputs[1], &inputs[2]);
    let mut k = 3;
    let bias = spec.has_bias.then(|| {
        k += 1;
        inputs[k - 1].clone()
    });
    let mask = spec.has_mask.then(|| {
        k += 1;
        inputs[k - 1].clone()
    });
    let initial = &inputs[k..];
    let u = spec.units as i64;
    // Input and recurrent biases: GRU with reset_after keeps them apart (bias rows 0, 1).
    let (in_bias, rec_bias) = match (&bias, spec.cell) {
        (Some(b), RecurrentCell::Gru { reset_after: true }) => (
            Some(b.slice(&[SliceArg::Index(0)])),
            Some(b.slice(&[SliceArg::Index(1)])),
        ),
        (b, _) => (b.clone(), None),
    };
    // The input projection of every step at once, time-major so each step is contiguous.
    let mut xw = x.swapaxes(0, 1).matmul(kernel);
    if let Some(b) = &in_bias {
        xw = xw.add(b);
    }
    let mask = mask.map(|m| m.cast(DType::Bool).swapaxes(0, 1));
    // Zero states broadcast over the batch until the first step gives them its size.
    let zeros = Tensor::constant(HostTensor::zeros(&[1, spec.units])?);
    let mut states: Vec<Tensor> = if initial.is_empty() {
        vec![zeros; spec.cell.states()]
    } else {
        initial.to_vec()
    };
    // One scalar zero for every masked output (each constant is a buffer on the GPU).
    let zero = Tensor::scalar(0.0);
    // The previous output, for Keras's unrolled mask semantics.
    let mut previous: Tensor = zero.clone();
    let gate = |z: &Tensor, k: i64| z.slice_axis(-1, Some(k * u), Some((k + 1) * u), 1);
    let act = |t: &Tensor| spec.activation.apply(t);
    let ract = |t: &Tensor| spec.recurrent_activation.apply(t);
    let mut outputs = Vec::with_capacity(if spec.return_sequences { steps } else { 1 });
    for k in 0..steps {
        let t = if spec.go_backwards { steps - 1 - k } else { k };
        let xs = xw.slice(&[SliceArg::Index(t as i64)]);
        let h = &states[0];
        let new: Vec<Tensor> = match spec.cell {
            RecurrentCell::SimpleRnn => vec![act(&xs.add(h.matmul(recurrent)))],
            RecurrentCell::Lstm => {
                let z = xs.add(h.matmul(recurrent));
                let c = ract(&gate(&z, 1))
                    .multiply(&states[1])
                    .add(ract(&gate(&z, 0)).multiply(act(&gate(&z, 2))));
                let h = ract(&gate(&z, 3)).multiply(act(&c));
                vec![h, c]
            }
            RecurrentCell::Gru { reset_after } => {
                let (zr, hh) = if reset_after {
                    let mut r = h.matmul(recurrent);
                    if let Some(b) = &rec_bias {
                        r = r.add(b);
                    }
                    let z = ract(&gate(&xs, 0).add(gate(&r, 0)));
                    let rr = ract(&gate(&xs, 1).add(gate(&r, 1)));
                    (z, act(&gate(&xs, 2).add(rr.multiply(gate(&r, 2)))))
                } else {
                    let r2 = h.matmul(&recurrent.slice_axis(-1, None, Some(2 * u), 1));
                    let z = ract(&gate(&xs, 0).add(gate(&r2, 0)));
                    let rr = ract(&gate(&xs, 1).add(gate(&r2, 1)));
                    let uh = recurrent.slice_axis(-1, Some(2 * u), None, 1);
                    (z, act(&gate(&xs, 2).add(rr.multiply(h).matmul(&uh))))
                };
                // h = z * h + (1 - z) * hh, written as hh + z * (h - hh).
                vec![hh.add(zr.multiply(h.subtract(&hh)))]
            }
        };
        let (next, out) = match &mask {
            Some(m) => {
                let keep = m.slice(&[SliceArg::Index(t as i64)]).expand_dims(-1);
                let next: Vec<Tensor> = new
                    .iter()
                    .zip(&states)
                    .map(|(n, s)| Tensor::where_(&keep, n, s))
                    .collect();
                let out = if spec.unroll {
                    Tensor::where_(&keep, &new[0], &previous)
                } else if spec.zero_output_for_mask {
                    Tensor::where_(&keep, &new[0], &zero)
                } else {
                    next[0].clone()
                };
                (next, out)
            }
            None => (new.clone(), new[0].clone()),
        };
        states = next;
        previous = out.clone();
        if spec.return_sequences || k + 1 == steps {
            outputs.push(out);
        }
    }
    let output = if spec.return_sequences {
        stack_steps(outputs)
    } else {
        outputs.pop().ok_or_else(|| Error::Model {
            detail: format!("{} produced no steps", spec.cell.kind()),
        })?
    };
    let mut result = vec![output];
    result.extend(states);
    for t in &result {
        t.check()?;
    }
    Ok(result)
}

/// Stacks the step outputs `(batch, units)` into `(batch, steps, units)` in groups of a few
/// steps at a time, so that no fused GPU kernel reads more buffers than a device binds.
fn stack_steps(steps: Vec<Tensor>) -> Tensor {
    const GROUP: usize = 4;
    let mut level: Vec<Tensor> = steps.iter().map(|t| t.expand_dims(1)).collect();
    while level.len() > 1 {
        level = level
            .chunks(GROUP)
            .map(|c| {
                if c.len() == 1 {
                    c[0].clone()
                } else {
                    Tensor::concatenate(c, 1)
                }
            })
            .collect();
    }
    level.remove(0)
}

/// The program with every recurrent loop unrolled for concrete input shapes; `None` when it has
/// none. The GPU compiles this; it computes the same values.
pub fn expand_recurrences(
    program: &Program,
    input_shapes: &[Vec<usize>],
) -> Result<Option<Program>> {
    expand_recurrences_except(program, input_shapes, &|_| false)
}

/// The program with the recurrent loops unrolled for concrete input shapes, except those
/// `native` keeps (a backend that runs them itself); `None` when nothing is unrolled.
pub fn expand_recurrences_except(
    program: &Program,
    input_shapes: &[Vec<usize>],
    native: &dyn Fn(&RecurrenceSpec) -> bool,
) -> Result<Option<Program>> {
    let unrolled = |op: &Op| matches!(op, Op::Recurrence { spec, .. } if !native(spec));
    if !program.nodes.iter().any(|n| unrolled(&n.op)) {
        return Ok(None);
    }
    let shapes = program.specialize(input_shapes)?;
    // The outputs of each loop (one spec, one set of inputs) that the program reads.
    type Key = (usize, Vec<usize>);
    let key_of = |spec: &Arc<RecurrenceSpec>, inputs: &[usize]| -> Key {
        (Arc::as_ptr(spec) as usize, inputs.to_vec())
    };
    let mut wanted: HashMap<Key, Vec<usize>> = HashMap::new();
    for n in &program.nodes {
        if let Op::Recurrence { spec, output } = &n.op {
            let outs = wanted.entry(key_of(spec, &n.inputs)).or_default();
            if !outs.contains(output) {
                outs.push(*output);
            }
        }
    }
    let mut nodes: Vec<ProgramNode> = Vec::with_capacity(program.nodes.len() * 4);
    let mut done: HashMap<Key, HashMap<usize, usize>> = HashMap::new();
    let mut map: Vec<usize> = Vec::with_capacity(program.nodes.len());
    for node in &program.nodes {
        let inputs: Vec<usize> = node.inputs.iter().map(|&j| map[j]).collect();
        let (Op::Recurrence { spec, output }, true) = (&node.op, unrolled(&node.op)) else {
            nodes.push(ProgramNode {
                inputs,
                ..node.clone()
            });
            map.push(nodes.len() - 1);
            continue;
        };
        let key = key_of(spec, &node.inputs);
        if !done.contains_key(&key) {
            let outs = wanted.get(&key).cloned().unwrap_or_default();
            let placeholders: Vec<Tensor> = node
                .inputs
                .iter()
                .enumerate()
                .map(|(k, &j)| {
                    Tensor::input(
                        &format!("recurrence input {k}"),
                        Shape::known(&shapes[j]),
                        program.nodes[j].dtype,
                    )
                })
                .collect();
            let all = unroll(spec, &placeholders).map_err(|e| node.attribute(e))?;
            let picked: Vec<Tensor> = outs.iter().map(|&o| all[o].clone()).collect();
            let sub = Program::from_tensors(&placeholders, &picked)?;
            let mut sub_map = vec![usize::MAX; sub.nodes.len()];
            for (k, &i) in sub.inputs.iter().enumerate() {
                sub_map[i] = inputs[k];
            }
            for (i, n) in sub.nodes.into_iter().enumerate() {
                if sub_map[i] != usize::MAX {
                    continue;
                }
                let ins = n.inputs.iter().map(|&j| sub_map[j]).collect();
                nodes.push(ProgramNode {
                    inputs: ins,
                    layer: node.layer.clone(),
                    ..n
                });
                sub_map[i] = nodes.len() - 1;
            }
            let results = outs
                .iter()
                .zip(&sub.outputs)
                .map(|(&o, &s)| (o, sub_map[s]))
                .collect();
            done.insert(key.clone(), results);
        }
        match done.get(&key).and_then(|r| r.get(output)) {
            Some(&i) => map.push(i),
            None => {
                return Err(node.attribute(Error::Model {
                    detail: format!("recurrence output {output} was not unrolled"),
                }));
            }
        }
    }
    Ok(Some(Program {
        inputs: program.inputs.iter().map(|&i| map[i]).collect(),
        outputs: program.outputs.iter().map(|&o| map[o]).collect(),
        nodes,
    }))
}
