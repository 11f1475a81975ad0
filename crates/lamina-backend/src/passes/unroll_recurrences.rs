//! Recurrent loops unrolled into the graph for concrete sequence lengths: each step's
//! matrix products and gate arithmetic as ordinary ops, so that a backend without a loop of
//! its own (the GPU, and the CPU for cells whose activations it does not run natively)
//! computes them with its usual kernels. The same values as the loop.

use lamina_graph::op::Op;
use lamina_graph::ops::{RecurrenceSpec, RecurrentCell, SliceArg};
use lamina_graph::{DType, Dim, Error, HostTensor, Program, ProgramNode, Result, Shape, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

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
