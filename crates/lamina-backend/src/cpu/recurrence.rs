//! Recurrent loops run natively by the interpreter: one compiled program serves every sequence
//! length, with no per-step graph nodes.
//!
//! The input projections are matrix products of a few steps at a time, kept in cache (of all
//! steps at once, first, for input rows longer than 512); each step is then one product
//! `h @ recurrent_kernel` (threaded when large) and the gate arithmetic row by row. Where the
//! CPU has AVX2 or AVX-512, both kernels are packed once into column panels and kept by the
//! executable (`packed_product`), and the products of the steps read them front to back. The
//! gate arithmetic uses the same slice loops (and so the same results) as the interpreter's
//! elementwise ops; an activation made of several elementwise ops is evaluated op by op with
//! the interpreter's elementwise ops. Loops whose activations read more than their own element
//! (a custom activation with a reduction) are unrolled into the graph instead
//! (`crate::passes::expand_recurrences_except`).

use super::elementwise;
use super::kept::Kept;
use super::matmul::gemm_f32_with;
use super::packed_product::PackedColumns;
use super::vector::unary_into;
use crate::activation::ElementwiseActivation;
use lamina_graph::activation::Activation;
use lamina_graph::op::Op;
use lamina_graph::ops::{RecurrenceSpec, RecurrentCell};
use lamina_graph::{Error, HostData, Program, Result};
use rayon::prelude::*;

/// An activation the loop applies in place: the identity, one elementwise op (the slice
/// loops), or an elementwise graph evaluated op by op with the interpreter's elementwise ops.
#[derive(Clone, Debug)]
pub struct Elementwise(ElementwiseActivation);

impl Elementwise {
    /// The activation as elementwise ops, or `None` where the loop must be unrolled.
    fn of(activation: &Activation) -> Option<Elementwise> {
        ElementwiseActivation::trace(activation).map(Elementwise)
    }

    /// The activation of `src` into `dst` (of the same length).
    fn apply_into(&self, src: &[f32], dst: &mut [f32]) {
        match &self.0 {
            ElementwiseActivation::Unary(op) => unary_into(*op, src, dst),
            ElementwiseActivation::Identity => dst.copy_from_slice(src),
            ElementwiseActivation::Graph(graph) => match evaluate(graph, src) {
                Some(HostData::F32(out)) if out.len() == dst.len() => dst.copy_from_slice(&out),
                _ => dst.copy_from_slice(src),
            },
        }
    }

    /// Applies the activation to `v` in place, through `scratch`.
    fn apply(&self, v: &mut [f32], scratch: &mut Vec<f32>) {
        if matches!(self.0, ElementwiseActivation::Identity) {
            return;
        }
        scratch.clear();
        scratch.extend_from_slice(v);
        self.apply_into(scratch, v);
    }
}

/// The graph of an activation on the values `v`: every node as the interpreter computes it, a
/// constant broadcast over the values.
fn evaluate(graph: &Program, v: &[f32]) -> Option<HostData> {
    let n = v.len();
    let mut vals: Vec<(HostData, Vec<usize>)> = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let arg = |k: usize| &vals[node.inputs[k]];
        let (data, shape) = match &node.op {
            Op::Input { .. } => (HostData::F32(v.to_vec()), vec![n]),
            Op::Constant(c) => (c.data().clone(), vec![1]),
            Op::Unary { func: u } => (elementwise::unary(*u, &arg(0).0).ok()?, arg(0).1.clone()),
            Op::Binary { func: op } => {
                let (a, b) = (arg(0), arg(1));
                let shape = if a.1 == [n] || b.1 == [n] {
                    vec![n]
                } else {
                    vec![1]
                };
                (
                    elementwise::binary(*op, &a.0, &a.1, &b.0, &b.1, &shape).ok()?,
                    shape,
                )
            }
            Op::Where => {
                let (c, a, b) = (arg(0), arg(1), arg(2));
                let wide = [&c.1, &a.1, &b.1].iter().any(|s| **s == [n]);
                let shape = if wide { vec![n] } else { vec![1] };
                let data = elementwise::select(&c.0, &c.1, &a.0, &a.1, &b.0, &b.1, &shape).ok()?;
                (data, shape)
            }
            Op::Cast { dtype: to } => (elementwise::cast(&arg(0).0, *to), arg(0).1.clone()),
            _ => return None,
        };
        vals.push((data, shape));
    }
    let out = graph.outputs.first()?;
    let (data, shape) = vals.swap_remove(*out);
    match data {
        HostData::F32(x) if shape == [1] && n != 1 => Some(HostData::F32(vec![x[0]; n])),
        d => Some(d),
    }
}

/// A loop's activation and recurrent activation, each one elementwise op or the identity.
pub type LoopActivations = (Elementwise, Elementwise);

/// The activations of a loop the interpreter runs natively, or `None` where it must be unrolled.
pub fn native(spec: &RecurrenceSpec) -> Option<LoopActivations> {
    Some((
        Elementwise::of(&spec.activation)?,
        Elementwise::of(&spec.recurrent_activation)?,
    ))
}

fn floats<'a>(data: &'a HostData, what: &str) -> Result<&'a [f32]> {
    match data {
        HostData::F32(v) => Ok(v),
        other => Err(Error::Backend {
            backend: "cpu".into(),
            detail: format!(
                "recurrent loop: {what} must be float32, got {}",
                other.dtype()
            ),
        }),
    }
}

/// Whether each `(batch, step)` of a mask is kept (non-zero).
fn kept(mask: &HostData) -> Vec<bool> {
    match mask {
        HostData::Bool(v) => v.clone(),
        HostData::F32(v) => v.iter().map(|&x| x != 0.0).collect(),
        HostData::I32(v) => v.iter().map(|&x| x != 0).collect(),
        HostData::U32(v) => v.iter().map(|&x| x != 0).collect(),
    }
}

/// Runs the loop on concrete inputs (in the op's order, with their shapes): `[output, final
/// states...]`. `projection` holds the input projection while the loop runs (a buffer of an
/// earlier run, written over). `kept` holds the packed forms of the input and recurrent
/// kernels between runs (where given).
pub fn run(
    spec: &RecurrenceSpec,
    (act, ract): LoopActivations,
    inputs: &[(&HostData, &[usize])],
    projection: &mut Vec<f32>,
    kept: [Option<Kept<'_>>; 2],
) -> Result<Vec<HostData>> {
    let LoopInputs {
        b,
        t,
        f,
        x,
        kernel,
        recurrent,
        bias,
        keep,
        mut states,
    } = read_inputs(spec, inputs)?;
    let u = spec.units;
    let g = spec.cell.gates() * u;
    // Input and recurrent biases: GRU with reset_after keeps them apart (bias rows 0, 1). An
    // LSTM adds its bias to the sum of both products, as Keras does (`x W + h U + b`), in its
    // steps; the other cells to the input projection.
    let (in_bias, rec_bias, step_bias) = match (bias, spec.cell) {
        (Some(v), RecurrentCell::Gru { reset_after: true }) => (Some(&v[..g]), Some(&v[g..]), None),
        (v, RecurrentCell::Lstm) => (None, None, v),
        (v, _) => (v, None, None),
    };
    // Short input rows are projected a few steps at a time, in cache; long ones (past the
    // depth the `gemm` crate sums in one pass, where its order would then depend on the rows
    // of each product) all at once first, as one product.
    let chunked = f <= CHUNKED_MAX_FEATURES;
    if !chunked {
        input_projection(x, kernel, in_bias, (b * t, f, g), projection);
    }
    let xw: &[f32] = if chunked { &[] } else { projection };
    let (rec_zr, rec_h) = gru_recurrent_parts(spec.cell, recurrent, u, g);
    // Each shard multiplies its rows by the kernels at every step: packed once here.
    let [kept_kernel, kept_recurrent] = kept;
    let [packs_kernel, packs_recurrent] = packs(spec, f);
    let packed_kernel = packs_kernel.then(|| PackedColumns::of(kernel, (f, g), kept_kernel));
    let packed_recurrent =
        packs_recurrent.then(|| PackedColumns::of(recurrent, (u, g), kept_recurrent));
    let mut out_seq = vec![0f32; if spec.return_sequences { b * t * u } else { 0 }];
    let mut last = vec![0f32; b * u];
    // Rows of the batch never meet: a large batch is split over the threads, each running
    // every step on its rows alone, so that the steps need no hand-off between threads.
    let threads = rayon::current_num_threads().max(1);
    let shards = if t == 0 || u == 0 {
        1
    } else {
        threads.min(b / MIN_SHARD_ROWS).max(1)
    };
    let rows = b.div_ceil(shards).max(1);
    let shard = |r0: usize, n: usize| Loop {
        spec,
        acts: (&act, &ract),
        b: n,
        t,
        u,
        g,
        xw: if chunked {
            &[]
        } else {
            &xw[r0 * t * g..(r0 + n) * t * g]
        },
        x: &x[r0 * t * f..(r0 + n) * t * f],
        f,
        kernel,
        in_bias,
        recurrent,
        rec_zr: &rec_zr,
        rec_h: &rec_h,
        rec_bias,
        packed_recurrent: packed_recurrent.as_ref(),
        packed_kernel: packed_kernel.as_ref(),
        step_bias,
        keep: keep.as_deref().map(|k| &k[r0 * t..(r0 + n) * t]),
        threads: shards == 1,
    };
    if shards == 1 {
        shard(0, b).steps(&mut states, &mut last, &mut out_seq);
    } else {
        // Each shard's states, last outputs and sequence rows: contiguous row ranges.
        let mut parts: Vec<(usize, Vec<Vec<f32>>)> = (0..b.div_ceil(rows))
            .map(|s| {
                let (r0, n) = (s * rows, rows.min(b - s * rows));
                (
                    r0,
                    states
                        .iter()
                        .map(|v| v[r0 * u..(r0 + n) * u].to_vec())
                        .collect(),
                )
            })
            .collect();
        let seqs: Vec<&mut [f32]> = if spec.return_sequences {
            out_seq.chunks_mut(rows * t * u).collect()
        } else {
            parts.iter().map(|_| <&mut [f32]>::default()).collect()
        };
        parts
            .par_iter_mut()
            .zip(last.par_chunks_mut(rows * u))
            .zip(seqs)
            .for_each(|(((r0, st), last), seq)| {
                shard(*r0, last.len() / u).steps(st, last, seq);
            });
        for (r0, st) in parts {
            for (whole, part) in states.iter_mut().zip(st) {
                whole[r0 * u..r0 * u + part.len()].copy_from_slice(&part);
            }
        }
    }
    let mut result = vec![HostData::F32(if spec.return_sequences {
        out_seq
    } else {
        last
    })];
    result.extend(states.into_iter().map(HostData::F32));
    Ok(result)
}

/// Whether a loop over rows of `f` features multiplies by its input and recurrent kernels
/// packed (`packed_product`, where this CPU runs it): the input kernel where the steps project
/// a few at a time, the recurrent kernel but for a GRU without `reset_after` (whose two parts
/// are separate products).
fn packs(spec: &RecurrenceSpec, f: usize) -> [bool; 2] {
    let available = super::packed_product::available();
    [
        available && f > 0 && f <= CHUNKED_MAX_FEATURES,
        available && spec.cell != (RecurrentCell::Gru { reset_after: false }),
    ]
}

/// The input and recurrent kernel nodes of a loop over rows of `f` features, each with the
/// bytes of the packed form it keeps between runs (none where it keeps none).
pub fn kept_bytes(spec: &RecurrenceSpec, f: usize, nodes: [usize; 2]) -> Vec<(usize, u64)> {
    let g = spec.cell.gates() * spec.units;
    let depth = [f, spec.units];
    (0..2)
        .filter(|&j| packs(spec, f)[j])
        .map(|j| (nodes[j], PackedColumns::bytes(depth[j], g)))
        .collect()
}

/// The error of a loop that cannot run: `detail`, after the cell's kind.
fn loop_error(spec: &RecurrenceSpec, detail: String) -> Error {
    Error::Backend {
        backend: "cpu".into(),
        detail: format!("{} loop: {detail}", spec.cell.kind()),
    }
}

/// A loop's inputs, checked: the sizes of `x`, its data, kernels, bias, mask and states.
struct LoopInputs<'a> {
    b: usize,
    t: usize,
    f: usize,
    x: &'a [f32],
    kernel: &'a [f32],
    recurrent: &'a [f32],
    bias: Option<&'a [f32]>,
    keep: Option<Vec<bool>>,
    states: Vec<Vec<f32>>,
}

/// Reads and checks a loop's inputs (in the op's order, with their shapes).
fn read_inputs<'a>(
    spec: &RecurrenceSpec,
    inputs: &'a [(&'a HostData, &'a [usize])],
) -> Result<LoopInputs<'a>> {
    let bad = |detail: String| loop_error(spec, detail);
    let [(x, xs), (kernel, _), (recurrent, _), rest @ ..] = inputs else {
        return Err(bad(format!("{} inputs", inputs.len())));
    };
    let &[b, t, f] = *xs else {
        return Err(bad(format!("input of shape {xs:?}")));
    };
    let u = spec.units;
    let g = spec.cell.gates() * u;
    let (x, kernel, recurrent) = (
        floats(x, "x")?,
        floats(kernel, "kernel")?,
        floats(recurrent, "recurrent kernel")?,
    );
    let mut rest = rest.iter();
    let bias = match spec.has_bias {
        true => Some(floats(
            rest.next().ok_or_else(|| bad("no bias".into()))?.0,
            "bias",
        )?),
        false => None,
    };
    let keep = match spec.has_mask {
        true => Some(kept(rest.next().ok_or_else(|| bad("no mask".into()))?.0)),
        false => None,
    };
    let n_states = spec.cell.states();
    let mut states: Vec<Vec<f32>> = Vec::with_capacity(n_states);
    for _ in 0..n_states {
        states.push(match rest.next() {
            Some((s, shape)) if spec.has_initial_states => {
                if *shape != [b, u] {
                    return Err(bad(format!(
                        "an initial state has shape {shape:?}, expected [{b}, {u}]"
                    )));
                }
                floats(s, "initial state")?.to_vec()
            }
            _ => vec![0f32; b * u],
        });
    }
    let sizes_ok = x.len() == b * t * f
        && kernel.len() == f * g
        && recurrent.len() == u * g
        && bias.is_none_or(|v| v.len() % g == 0)
        && keep.as_ref().is_none_or(|k| k.len() == b * t);
    if !sizes_ok {
        let shapes: Vec<String> = inputs.iter().map(|(_, s)| format!("{s:?}")).collect();
        return Err(bad(format!(
            "input shapes {} do not fit {u} units ({g} gate columns)",
            shapes.join(", ")
        )));
    }
    Ok(LoopInputs {
        b,
        t,
        f,
        x,
        kernel,
        recurrent,
        bias,
        keep,
        states,
    })
}

/// The input projection `x @ kernel + bias` of every (batch, step) row, into `xw`.
fn input_projection(
    x: &[f32],
    kernel: &[f32],
    bias: Option<&[f32]>,
    (rows, f, g): (usize, usize, usize),
    xw: &mut Vec<f32>,
) {
    // Written over by the product (no need to clear a buffer of the same size).
    xw.resize(rows * g, 0.0);
    if f == 0 {
        xw.fill(0.0);
    } else {
        super::matmul::gemm_f32_with(rows, f, g, x, kernel, xw, rows * f * g >= 1 << 18);
    }
    if let Some(bias) = bias {
        for row in xw.chunks_exact_mut(g) {
            row.iter_mut().zip(bias).for_each(|(a, &c)| *a += c);
        }
    }
}

/// A GRU-without-reset_after recurrent kernel split into its `z, r` and `h` columns.
fn gru_recurrent_parts(
    cell: RecurrentCell,
    recurrent: &[f32],
    u: usize,
    g: usize,
) -> (Vec<f32>, Vec<f32>) {
    // GRU without reset_after multiplies `r * h` by the last third of the recurrent kernel;
    // the other cells need no split (empty parts).
    match cell {
        RecurrentCell::Gru { reset_after: false } => {
            let mut zr = Vec::with_capacity(u * 2 * u);
            let mut hh = Vec::with_capacity(u * u);
            for row in recurrent.chunks_exact(g) {
                zr.extend_from_slice(&row[..2 * u]);
                hh.extend_from_slice(&row[2 * u..]);
            }
            (zr, hh)
        }
        _ => (Vec::new(), Vec::new()),
    }
}

/// Whether a product `m × k` by `k × n` is worth threads.
fn threaded(m: usize, k: usize, n: usize) -> bool {
    m * k * n >= 1 << 18
}

/// Steps whose input projections are made at once, into a buffer that stays in cache: the
/// projection of every step, made first, went to memory and back (a tenth of an LSTM's time).
pub(super) const PROJECTED_STEPS: usize = 8;
/// The longest input rows projected a few steps at a time: the `gemm` crate sums at least 512
/// terms in one pass, so its order does not depend on how many rows a product has.
const CHUNKED_MAX_FEATURES: usize = 512;

/// Rows of the batch each thread takes at least when a loop's batch is split over threads.
const MIN_SHARD_ROWS: usize = 8;

/// What every step of a loop reads: spec, activations, sizes, input projection, kernels, mask.
struct Loop<'a> {
    spec: &'a RecurrenceSpec,
    acts: (&'a Elementwise, &'a Elementwise),
    b: usize,
    t: usize,
    u: usize,
    g: usize,
    /// The input projection of every step, `[rows, t, g]`, where it was made first (long
    /// input rows); empty where the steps make it a few steps at a time from the rows' inputs
    /// `x` (`[rows, t, f]`), the input kernel and bias.
    xw: &'a [f32],
    x: &'a [f32],
    f: usize,
    kernel: &'a [f32],
    in_bias: Option<&'a [f32]>,
    recurrent: &'a [f32],
    rec_zr: &'a [f32],
    rec_h: &'a [f32],
    rec_bias: Option<&'a [f32]>,
    /// The recurrent kernel packed for [`super::packed_product`], where the loop's steps use it.
    packed_recurrent: Option<&'a PackedColumns>,
    /// The input kernel packed likewise.
    packed_kernel: Option<&'a PackedColumns>,
    /// The bias an LSTM adds to the sum of its two products in each step.
    step_bias: Option<&'a [f32]>,
    keep: Option<&'a [bool]>,
    /// Whether a step may spread its products and rows over threads (not when the batch is
    /// already split over them).
    threads: bool,
}

/// The buffers a loop's steps work in: recurrent products, gates, new states, scratch.
struct StepBuffers {
    /// The input projections of a few steps, `[steps, rows, g]`, and where the current
    /// step's begin.
    xw: Vec<f32>,
    xw_at: usize,
    z: Vec<f32>,
    rh: Vec<f32>,
    rh_out: Vec<f32>,
    scratch: Vec<f32>,
    gates: Vec<f32>,
    new_h: Vec<f32>,
    new_c: Vec<f32>,
}

impl Loop<'_> {
    /// Runs every step on this loop's rows from `states`, leaving the final states there and
    /// writing the last outputs (and the sequence, if returned).
    fn steps(&self, states: &mut [Vec<f32>], last: &mut [f32], out_seq: &mut [f32]) {
        let (b, u, g) = (self.b, self.u, self.g);
        let mut buf = StepBuffers {
            xw: vec![0f32; PROJECTED_STEPS.min(self.t) * b * g],
            xw_at: 0,
            z: vec![0f32; b * g],
            rh: vec![0f32; b * u],
            rh_out: vec![0f32; b * u],
            scratch: Vec::with_capacity(g),
            gates: vec![0f32; g],
            new_h: vec![0f32; b * u],
            new_c: vec![0f32; b * u],
        };
        let t = self.t;
        let step_of = |step: usize| {
            if self.spec.go_backwards {
                t - 1 - step
            } else {
                step
            }
        };
        for step in 0..t {
            let tt = step_of(step);
            let c = step % PROJECTED_STEPS;
            if c == 0 && b * g > 0 {
                for (k, block) in buf.xw.chunks_exact_mut(b * g).enumerate() {
                    if step + k < t {
                        self.project(step_of(step + k), block);
                    }
                }
            }
            buf.xw_at = c * b * g;
            self.recurrent_products(&states[0], &mut buf);
            self.new_rows(states, &mut buf);
            self.commit_step(step, tt, &buf, states, last, out_seq);
        }
    }

    /// Every row's input projection at step `tt`, `x_tt @ kernel + bias`, into `out`
    /// (`[rows, g]`): copied from `xw` where it was made first.
    fn project(&self, tt: usize, out: &mut [f32]) {
        let (b, t, f, g) = (self.b, self.t, self.f, self.g);
        if !self.xw.is_empty() {
            for (r, row) in out.chunks_exact_mut(g).enumerate() {
                row.copy_from_slice(&self.xw[(r * t + tt) * g..][..g]);
            }
            return;
        }
        if f == 0 {
            out.fill(0.0);
        } else if let Some(w) = self.packed_kernel {
            let x = (&self.x[tt * f..], t * f);
            super::packed_product::product(b, x, w, (out, g), (false, false));
        } else {
            // SAFETY: `gemm_strided` takes raw pointers. `x` holds b rows of t * f floats, of
            // which floats tt * f.. (f of them) of each are read (row stride t * f); `kernel`
            // holds f rows of g; `out` holds b rows of g, all written. All accesses stay inside
            // the slices, and `out` is borrowed exclusively.
            unsafe {
                super::matmul::gemm_strided(
                    (b, f, g),
                    (self.x.as_ptr().add(tt * f), t * f),
                    (self.kernel.as_ptr(), g),
                    (out.as_mut_ptr(), g),
                    false,
                    false,
                );
            }
        }
        if let Some(bias) = self.in_bias {
            for row in out.chunks_exact_mut(g) {
                row.iter_mut().zip(bias).for_each(|(a, &c)| *a += c);
            }
        }
    }

    /// The current step's recurrent products of state `h` into `buf.z` (and `buf.rh_out` for
    /// a GRU).
    fn recurrent_products(&self, h: &[f32], buf: &mut StepBuffers) {
        let (b, u, g) = (self.b, self.u, self.g);
        let z = &mut buf.z;
        match self.spec.cell {
            RecurrentCell::Gru { reset_after: false } => {
                gemm_f32_with(
                    b,
                    u,
                    2 * u,
                    h,
                    self.rec_zr,
                    &mut z[..b * 2 * u],
                    self.threads && threaded(b, u, 2 * u),
                );
                // First the gates and `r * h` of every row, then `(r * h) @ U_h` at once.
                for r in 0..b {
                    let xrow = &buf.xw[buf.xw_at + r * g..][..g];
                    let zrow = &z[r * 2 * u..][..2 * u];
                    for j in 0..2 * u {
                        buf.gates[j] = xrow[j] + zrow[j];
                    }
                    self.acts.1.apply(&mut buf.gates[..2 * u], &mut buf.scratch);
                    for j in 0..u {
                        buf.rh[r * u + j] = buf.gates[u + j] * h[r * u + j];
                    }
                    // Keep z for the second phase where `r * h` was.
                    z[r * 2 * u..][..u].copy_from_slice(&buf.gates[..u]);
                }
                gemm_f32_with(
                    b,
                    u,
                    u,
                    &buf.rh,
                    self.rec_h,
                    &mut buf.rh_out,
                    self.threads && threaded(b, u, u),
                );
            }
            _ => match self.packed_recurrent {
                Some(w) => super::packed_product::product(
                    b,
                    (h, u),
                    w,
                    (z, g),
                    (false, self.threads && threaded(b, u, g)),
                ),
                None => gemm_f32_with(
                    b,
                    u,
                    g,
                    h,
                    self.recurrent,
                    z,
                    self.threads && threaded(b, u, g),
                ),
            },
        }
        if let Some(rb) = self.rec_bias {
            for row in z.chunks_exact_mut(g) {
                row.iter_mut().zip(rb).for_each(|(a, &c)| *a += c);
            }
        }
    }

    /// Each row's new state at the current step into `buf.new_h`/`new_c`, over threads when
    /// large.
    fn new_rows(&self, states: &[Vec<f32>], buf: &mut StepBuffers) {
        let (u, g) = (self.u, self.g);
        let cell = StepRows {
            kind: self.spec.cell,
            acts: self.acts,
            u,
            g,
            xw: &buf.xw[buf.xw_at..buf.xw_at + self.b * g],
            bias: self.step_bias,
            z: &buf.z,
            rh_out: &buf.rh_out,
            states,
        };
        if self.threads && self.b * g >= PARALLEL_ROW_VALUES {
            let rows = buf.new_h.par_chunks_mut(u).zip(buf.new_c.par_chunks_mut(u));
            rows.enumerate().for_each_init(
                || (vec![0f32; g], Vec::with_capacity(g)),
                |(gates, scratch), (r, (nh, nc))| cell.row(r, nh, nc, gates, scratch),
            );
        } else {
            let rows = buf.new_h.chunks_mut(u).zip(buf.new_c.chunks_mut(u));
            for (r, (nh, nc)) in rows.enumerate() {
                cell.row(r, nh, nc, &mut buf.gates, &mut buf.scratch);
            }
        }
    }

    /// Keeps the new states of the rows the mask keeps and writes each row's output of `step`.
    fn commit_step(
        &self,
        step: usize,
        tt: usize,
        buf: &StepBuffers,
        states: &mut [Vec<f32>],
        last: &mut [f32],
        out_seq: &mut [f32],
    ) {
        let (t, u) = (self.t, self.u);
        let spec = self.spec;
        for r in 0..self.b {
            let new_h = &buf.new_h[r * u..][..u];
            let new_c = &buf.new_c[r * u..][..u];
            let keep_row = self.keep.is_none_or(|k| k[r * t + tt]);
            if keep_row {
                states[0][r * u..][..u].copy_from_slice(new_h);
                if spec.cell == RecurrentCell::Lstm {
                    states[1][r * u..][..u].copy_from_slice(new_c);
                }
            }
            let out = &mut last[r * u..][..u];
            if keep_row {
                out.copy_from_slice(new_h);
            } else if spec.unroll {
                // Keras's unrolled loop repeats the previous output (zeros before the first),
                // which `last` holds.
            } else if spec.zero_output_for_mask {
                out.fill(0.0);
            } else {
                out.copy_from_slice(&states[0][r * u..][..u]);
            }
            if spec.return_sequences {
                out_seq[(r * t + step) * u..][..u].copy_from_slice(out);
            }
        }
    }
}

/// Steps whose rows hold at least this many gate values compute their rows over threads.
const PARALLEL_ROW_VALUES: usize = 1 << 14;

/// What every row of one step reads: the cell, the step's input projection (one row per batch
/// row), the recurrent products `z` (and `rh_out` for a GRU without `reset_after`), the states.
struct StepRows<'a> {
    kind: RecurrentCell,
    acts: (&'a Elementwise, &'a Elementwise),
    u: usize,
    g: usize,
    xw: &'a [f32],
    /// The bias an LSTM adds to the sum of its two products.
    bias: Option<&'a [f32]>,
    z: &'a [f32],
    rh_out: &'a [f32],
    states: &'a [Vec<f32>],
}

impl StepRows<'_> {
    /// Row `r`'s new `h` (and `c` for an LSTM), through the buffers `gates` (`g` values) and
    /// `scratch`.
    fn row(
        &self,
        r: usize,
        new_h: &mut [f32],
        new_c: &mut [f32],
        gates: &mut [f32],
        scratch: &mut Vec<f32>,
    ) {
        let (u, g) = (self.u, self.g);
        let (act, ract) = self.acts;
        let xrow = &self.xw[r * g..][..g];
        let h = &self.states[0][r * u..][..u];
        match self.kind {
            RecurrentCell::SimpleRnn => {
                let zrow = &self.z[r * g..][..g];
                for j in 0..u {
                    new_h[j] = xrow[j] + zrow[j];
                }
                act.apply(new_h, scratch);
            }
            RecurrentCell::Lstm => {
                let zrow = &self.z[r * g..][..g];
                match self.bias {
                    Some(bias) => {
                        for j in 0..g {
                            gates[j] = xrow[j] + zrow[j] + bias[j];
                        }
                    }
                    None => {
                        for j in 0..g {
                            gates[j] = xrow[j] + zrow[j];
                        }
                    }
                }
                // The activations from `gates` into `scratch`: i and f, the candidate, o.
                scratch.resize(g, 0.0);
                ract.apply_into(&gates[..2 * u], &mut scratch[..2 * u]);
                act.apply_into(&gates[2 * u..3 * u], &mut scratch[2 * u..3 * u]);
                ract.apply_into(&gates[3 * u..g], &mut scratch[3 * u..g]);
                let (i_f, rest) = scratch.split_at(2 * u);
                let (cand, o) = rest.split_at(u);
                let c = &self.states[1][r * u..][..u];
                for j in 0..u {
                    new_c[j] = i_f[u + j] * c[j] + i_f[j] * cand[j];
                }
                act.apply_into(new_c, new_h);
                for j in 0..u {
                    new_h[j] *= o[j];
                }
            }
            RecurrentCell::Gru { reset_after: true } => {
                // The recurrent bias is already in `z`.
                let zrow = &self.z[r * g..][..g];
                for j in 0..2 * u {
                    gates[j] = xrow[j] + zrow[j];
                }
                ract.apply(&mut gates[..2 * u], scratch);
                for j in 0..u {
                    new_h[j] = xrow[2 * u + j] + gates[u + j] * zrow[2 * u + j];
                }
                act.apply(new_h, scratch);
                for j in 0..u {
                    new_h[j] += gates[j] * (h[j] - new_h[j]);
                }
            }
            RecurrentCell::Gru { reset_after: false } => {
                let zg = &self.z[r * 2 * u..][..u];
                for j in 0..u {
                    new_h[j] = xrow[2 * u + j] + self.rh_out[r * u + j];
                }
                act.apply(new_h, scratch);
                for j in 0..u {
                    new_h[j] += zg[j] * (h[j] - new_h[j]);
                }
            }
        }
    }
}
