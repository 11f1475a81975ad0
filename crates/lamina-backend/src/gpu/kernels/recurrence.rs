//! Recurrent loops as GPU loops: the step is compiled once, as a few kernels that the runtime
//! dispatches once per step from the same command buffer, the states updated in place.
//!
//! The kernels of one loop: `init` (once a run: the states from the initial states or zeros,
//! the step counter to 0) and `projection` (once a run: the input projection of every step,
//! `x @ kernel + bias`, as one product on the matmul templates), then per step `recurrent`
//! (`h @ recurrent_kernel`, a product on the same templates), for a GRU without `reset_after`
//! also `reset` (`r * h`) and `reset_product` (`(r * h) @ U_h`), then `cell` (one thread per
//! batch row and unit: the gate activations, the new states where the mask keeps the step, the
//! outputs) and `next` (the step counter plus one). Inputs of more than 4,096 features are
//! projected by each step instead (`input`, one thread per batch row and gate column, in
//! passes of 16,384 features).
//!
//! The step a kernel works on is read from the counter, so every step dispatches the same
//! kernels with the same bindings: compile time and memory do not grow with the sequence, and
//! the work is linear in it. Dispatches within a pass are ordered, so `cell` may update `h` in
//! place after `recurrent` has read it.

use super::Scratch;
use super::matmul::{BufferProduct, K_CHUNK, buffer_product};
use crate::activation::ElementwiseActivation;
use crate::gpu::ir::{BufferRef, Builder, Builtin, Expr, IndexOp, Kernel, Lit, Val};
use lamina_graph::activation::Activation;
use lamina_graph::op::{BinaryOp, Op};
use lamina_graph::ops::{RecurrenceSpec, RecurrentCell};
use lamina_graph::{DType, Error, HostData, Program, Result};

/// Threads per workgroup.
const WG: u32 = 256;
/// The most terms one thread adds in one loop: lavapipe stops a shader loop after 65,535
/// iterations, so longer input projections are summed over several passes.
const PASS_TERMS: usize = 16_384;

/// A loop to build: its spec, its input nodes (in the op's order) and the nodes of the outputs
/// the program reads, as `(output index, node)`.
pub struct LoopKernel<'a> {
    /// The loop.
    pub spec: &'a RecurrenceSpec,
    /// Its inputs: `x`, `kernel`, `recurrent_kernel`, then bias, mask, initial states.
    pub inputs: &'a [usize],
    /// The outputs the program reads: 0 the output, then the final states.
    pub outputs: &'a [(usize, usize)],
}

/// A loop's kernels: `kernels[..body]` run once, `kernels[body..]` once per step, `steps` times.
pub struct LoopKernels {
    /// Every kernel, in dispatch order.
    pub kernels: Vec<Kernel>,
    /// Where the per-step kernels start.
    pub body: usize,
    /// How many steps.
    pub steps: usize,
}

/// An activation as the kernels apply it: the identity, one elementwise op, or the elementwise
/// graph it records on one value, computed in registers.
#[derive(Clone, Debug)]
pub struct Act(ElementwiseActivation);

impl Act {
    /// The activation as elementwise ops, or `None` where the loop must be unrolled.
    pub fn of(activation: &Activation) -> Option<Act> {
        ElementwiseActivation::trace(activation).map(Act)
    }

    /// The activation of `v`.
    fn apply(&self, b: &mut Builder, v: Val) -> Val {
        let graph = match &self.0 {
            ElementwiseActivation::Identity => return v,
            ElementwiseActivation::Unary(op) => {
                return b.let_(DType::F32, Expr::Unary(*op, DType::F32, v));
            }
            ElementwiseActivation::Graph(graph) => graph,
        };
        let mut vals: Vec<Val> = Vec::with_capacity(graph.nodes.len());
        for node in &graph.nodes {
            let dtype = node.dtype;
            let arg = |k: usize| vals[node.inputs[k]];
            let in_dtype = |k: usize| graph.nodes[node.inputs[k]].dtype;
            let val = match &node.op {
                Op::Constant(c) => b.lit(match c.data() {
                    HostData::F32(x) => Lit::F32(x[0]),
                    HostData::I32(x) => Lit::I32(x[0]),
                    HostData::U32(x) => Lit::U32(x[0]),
                    HostData::Bool(x) => Lit::Bool(x[0]),
                }),
                Op::Unary { func: u } => b.let_(dtype, Expr::Unary(*u, dtype, arg(0))),
                Op::Binary { func: op } => {
                    b.let_(dtype, Expr::Binary(*op, in_dtype(0), arg(0), arg(1)))
                }
                Op::Where => b.let_(
                    dtype,
                    Expr::Select {
                        cond: arg(0),
                        then: arg(1),
                        otherwise: arg(2),
                    },
                ),
                Op::Cast { dtype: to } => b.let_(
                    *to,
                    Expr::Cast {
                        from: in_dtype(0),
                        to: *to,
                        value: arg(0),
                    },
                ),
                _ => v,
            };
            vals.push(val);
        }
        graph.outputs.first().map_or(v, |&o| vals[o])
    }
}

/// The sizes and buffers shared by a loop's kernels.
struct Loop<'a> {
    spec: &'a RecurrenceSpec,
    act: Act,
    ract: Act,
    batch: usize,
    steps: usize,
    features: usize,
    units: usize,
    /// Gate columns: `gates * units`.
    g: usize,
    /// Columns of the recurrent product computed with the gates: all, or the z and r gates of
    /// a GRU without `reset_after`.
    gz: usize,
    /// Whether the input projection of every step is one product before the loop (else each
    /// step projects its own input, in passes).
    projected: bool,
    /// Whether products tile through workgroup memory (GPUs) or stream (CPU-hosted adapters).
    shared_memory: bool,
    x: usize,
    kernel: usize,
    recurrent: usize,
    bias: Option<usize>,
    mask: Option<(usize, DType)>,
    initial: Vec<usize>,
    outputs: Vec<(usize, usize)>,
    /// Scratch: the states `h` (and `c`), the input and recurrent products, the previous
    /// output, the step counter; for a GRU without `reset_after`, `z`, `r * h` and its product.
    h: BufferRef,
    c: Option<BufferRef>,
    xz: BufferRef,
    rz: BufferRef,
    last: BufferRef,
    counter: BufferRef,
    gru: Option<(BufferRef, BufferRef, BufferRef)>,
}

fn f32_op(b: &mut Builder, op: BinaryOp, x: Val, y: Val) -> Val {
    b.let_(DType::F32, Expr::Binary(op, DType::F32, x, y))
}

fn activate(b: &mut Builder, act: &Act, v: Val) -> Val {
    act.apply(b, v)
}

impl Loop<'_> {
    fn is_gru_without_reset_after(&self) -> bool {
        self.spec.cell == (RecurrentCell::Gru { reset_after: false })
    }

    /// The step this dispatch works on (from the counter) and the time index it reads
    /// (reversed for `go_backwards`).
    fn step(&self, b: &mut Builder) -> (Val, Val) {
        let zero = b.u32(0);
        let t = b.load(self.counter, DType::U32, zero);
        if !self.spec.go_backwards {
            return (t, t);
        }
        let last = b.param("last_step", (self.steps as u32).saturating_sub(1));
        let tt = b.index(IndexOp::Sub, last, t);
        (t, tt)
    }

    /// A kernel with one thread per index below `total`: `(builder, thread index)`.
    fn threads(&self, kind: &'static str, total: usize) -> (Builder, Val) {
        let mut b = Builder::new(kind, WG);
        let t = b.let_(DType::U32, Expr::Builtin(Builtin::GlobalIndex));
        let n = b.param("total", total as u32);
        b.return_unless_below(t, n);
        (b, t)
    }

    fn finish(b: Builder, total: usize) -> Kernel {
        b.finish((total as u64).div_ceil(WG as u64).max(1), None)
    }

    /// `sum_{k in from..from + len} a[a0 + k] * m[k * stride + m0]` (`len` at most
    /// `PASS_TERMS`).
    fn dot(
        b: &mut Builder,
        (a, a0): (BufferRef, Val),
        (m, m0): (BufferRef, Val),
        (from, len): (Val, Val),
        stride: usize,
    ) -> Val {
        let zero_f = b.lit(Lit::F32(0.0));
        let acc = b.var(DType::F32, zero_f);
        let one = b.u32(1);
        let st = b.param("stride", stride as u32);
        let end = b.index(IndexOp::Add, from, len);
        b.loop_(from, end, one, |b, k| {
            let ai = b.index(IndexOp::Add, a0, k);
            let av = b.load(a, DType::F32, ai);
            let mk = b.index(IndexOp::Mul, k, st);
            let mi = b.index(IndexOp::Add, mk, m0);
            let mv = b.load(m, DType::F32, mi);
            let p = f32_op(b, BinaryOp::Mul, av, mv);
            let cur = b.read(acc, DType::F32);
            let next = f32_op(b, BinaryOp::Add, cur, p);
            b.assign(acc, next);
        });
        b.read(acc, DType::F32)
    }

    /// The states from the initial states (or zeros), the previous output zero, the counter
    /// 0; the state outputs already hold the initial states (for a loop of no steps).
    fn init(&self) -> Kernel {
        let total = self.batch * self.units;
        let (mut b, t) = self.threads("loop_init", total);
        let zero_f = b.lit(Lit::F32(0.0));
        let mut states = vec![self.h];
        states.extend(self.c);
        for (k, &s) in states.iter().enumerate() {
            let v = match self.initial.get(k) {
                Some(&n) => b.load(BufferRef::Node(n), DType::F32, t),
                None => zero_f,
            };
            b.store(s, DType::F32, t, v);
            if let Some(node) = self.output(k + 1) {
                b.store(BufferRef::Node(node), DType::F32, t, v);
            }
        }
        b.store(self.last, DType::F32, t, zero_f);
        if !self.spec.return_sequences
            && let Some(node) = self.output(0)
        {
            b.store(BufferRef::Node(node), DType::F32, t, zero_f);
        }
        let zero = b.u32(0);
        let one = b.u32(1);
        let is_first = b.index(IndexOp::Less, t, one);
        b.if_(is_first, |b| b.store(self.counter, DType::U32, zero, zero));
        Self::finish(b, total)
    }

    /// The node of output `k`, where the program reads it.
    fn output(&self, k: usize) -> Option<usize> {
        self.outputs.iter().find(|o| o.0 == k).map(|o| o.1)
    }

    /// Pass `pass` of the step's input projection, per batch row and gate column: the terms
    /// of features `pass * PASS_TERMS ..` of `x_t @ kernel`, added to the earlier passes' (the
    /// first pass starts from the input bias).
    fn input(&self, pass: usize) -> Kernel {
        let total = self.batch * self.g;
        let (mut b, t) = self.threads("loop_input", total);
        let (_, tt) = self.step(&mut b);
        let g = b.param("gates", self.g as u32);
        let row = b.index(IndexOp::Div, t, g);
        let col = b.index(IndexOp::Rem, t, g);
        // x[row, tt, :]
        let steps = b.param("steps", self.steps as u32);
        let features = b.param("features", self.features as u32);
        let r = b.index(IndexOp::Mul, row, steps);
        let r = b.index(IndexOp::Add, r, tt);
        let x0 = b.index(IndexOp::Mul, r, features);
        let first = pass * PASS_TERMS;
        let from = b.param("first_feature", first as u32);
        let len = b.param(
            "pass_features",
            (self.features - first).min(PASS_TERMS) as u32,
        );
        let sum = Self::dot(
            &mut b,
            (BufferRef::Node(self.x), x0),
            (BufferRef::Node(self.kernel), col),
            (from, len),
            self.g,
        );
        let before = if pass == 0 {
            self.bias
                .map(|bias| b.load(BufferRef::Node(bias), DType::F32, col))
        } else {
            Some(b.load(self.xz, DType::F32, t))
        };
        let v = match before {
            Some(v) => f32_op(&mut b, BinaryOp::Add, v, sum),
            None => sum,
        };
        b.store(self.xz, DType::F32, t, v);
        Self::finish(b, total)
    }

    /// Before the loop: the input projection of every step, `x @ kernel + bias` as one
    /// product of `(batch * steps, features)` by `(features, gates)`, rows in `x`'s order.
    fn projection(&self) -> Option<Kernel> {
        let p = BufferProduct {
            a: BufferRef::Node(self.x),
            a_row: self.features,
            b: BufferRef::Node(self.kernel),
            b_first: 0,
            b_row: self.g,
            m: self.batch * self.steps,
            k: self.features,
            n: self.g,
        };
        buffer_product(
            "loop_projection",
            &p,
            self.shared_memory,
            |b, row, col, acc| {
                let v = match self.bias {
                    Some(bias) => {
                        let v = b.load(BufferRef::Node(bias), DType::F32, col);
                        f32_op(b, BinaryOp::Add, acc, v)
                    }
                    None => acc,
                };
                let g = b.param("gates", self.g as u32);
                let at = b.index(IndexOp::Mul, row, g);
                let at = b.index(IndexOp::Add, at, col);
                b.store(self.xz, DType::F32, at, v);
            },
        )
    }

    /// Per batch row and recurrent column (all gate columns, or the z and r gates of a GRU
    /// without `reset_after`): `h @ recurrent_kernel`, with the recurrent bias of a GRU with
    /// `reset_after`; on the matmul templates where the units fit one workgroup's sum.
    fn recurrent(&self) -> Kernel {
        let product = BufferProduct {
            a: self.h,
            a_row: self.units,
            b: BufferRef::Node(self.recurrent),
            b_first: 0,
            b_row: self.g,
            m: self.batch,
            k: self.units,
            n: self.gz,
        };
        let tiled = buffer_product(
            "loop_recurrent",
            &product,
            self.shared_memory,
            |b, row, col, acc| {
                let rz = self.recurrent_bias(b, col, acc);
                let gz = b.param("recurrent_columns", self.gz as u32);
                let at = b.index(IndexOp::Mul, row, gz);
                let at = b.index(IndexOp::Add, at, col);
                b.store(self.rz, DType::F32, at, rz);
            },
        );
        if let Some(k) = tiled {
            return k;
        }
        let total = self.batch * self.gz;
        let (mut b, t) = self.threads("loop_recurrent", total);
        let gz = b.param("recurrent_columns", self.gz as u32);
        let row = b.index(IndexOp::Div, t, gz);
        let col = b.index(IndexOp::Rem, t, gz);
        let units = b.param("units", self.units as u32);
        let h0 = b.index(IndexOp::Mul, row, units);
        let zero = b.u32(0);
        let rz = Self::dot(
            &mut b,
            (self.h, h0),
            (BufferRef::Node(self.recurrent), col),
            (zero, units),
            self.g,
        );
        let rz = self.recurrent_bias(&mut b, col, rz);
        b.store(self.rz, DType::F32, t, rz);
        Self::finish(b, total)
    }

    /// `v` plus the recurrent bias of column `col` for a GRU with `reset_after` (else `v`).
    fn recurrent_bias(&self, b: &mut Builder, col: Val, v: Val) -> Val {
        match (self.bias, self.spec.cell) {
            (Some(bias), RecurrentCell::Gru { reset_after: true }) => {
                let g = b.param("gates", self.g as u32);
                let at = b.index(IndexOp::Add, g, col);
                let r = b.load(BufferRef::Node(bias), DType::F32, at);
                f32_op(b, BinaryOp::Add, v, r)
            }
            _ => v,
        }
    }

    /// Column `col` of the input projection of batch row `row` at time `tt`: from the
    /// projection of every step (made before the loop) or of this step.
    fn x_part(&self, b: &mut Builder, row: Val, tt: Val, col: Val) -> Val {
        let g = b.param("gates", self.g as u32);
        let r = if self.projected {
            let steps = b.param("steps", self.steps as u32);
            let r = b.index(IndexOp::Mul, row, steps);
            b.index(IndexOp::Add, r, tt)
        } else {
            row
        };
        let xr = b.index(IndexOp::Mul, r, g);
        let xi = b.index(IndexOp::Add, xr, col);
        b.load(self.xz, DType::F32, xi)
    }

    /// Column `col` of the recurrent product of batch row `row`.
    fn r_part(&self, b: &mut Builder, row: Val, col: Val) -> Val {
        let gz = b.param("recurrent_columns", self.gz as u32);
        let rr = b.index(IndexOp::Mul, row, gz);
        let ri = b.index(IndexOp::Add, rr, col);
        b.load(self.rz, DType::F32, ri)
    }

    /// Gate `gate` of unit `unit` in batch row `row` at time `tt`: input part plus recurrent
    /// part.
    fn gate_sum(&self, b: &mut Builder, row: Val, tt: Val, gate: usize, unit: Val) -> Val {
        let off = b.param("gate_offset", (gate * self.units) as u32);
        let col = b.index(IndexOp::Add, off, unit);
        let xv = self.x_part(b, row, tt, col);
        let rv = self.r_part(b, row, col);
        f32_op(b, BinaryOp::Add, xv, rv)
    }

    /// A GRU without `reset_after`: the update gate `z` and `r * h`, per batch row and unit.
    fn reset(&self) -> Kernel {
        let total = self.batch * self.units;
        let (mut b, t) = self.threads("loop_reset", total);
        let Some((zg, rh, _)) = self.gru else {
            return Self::finish(b, total);
        };
        let (_, tt) = self.step(&mut b);
        let units = b.param("units", self.units as u32);
        let row = b.index(IndexOp::Div, t, units);
        let unit = b.index(IndexOp::Rem, t, units);
        let z = self.gate_sum(&mut b, row, tt, 0, unit);
        let z = activate(&mut b, &self.ract, z);
        let r = self.gate_sum(&mut b, row, tt, 1, unit);
        let r = activate(&mut b, &self.ract, r);
        let h = b.load(self.h, DType::F32, t);
        let v = f32_op(&mut b, BinaryOp::Mul, r, h);
        b.store(zg, DType::F32, t, z);
        b.store(rh, DType::F32, t, v);
        Self::finish(b, total)
    }

    /// A GRU without `reset_after`: `(r * h) @ U_h`, per batch row and unit.
    fn reset_product(&self) -> Kernel {
        let total = self.batch * self.units;
        if let Some((_, rh, out)) = self.gru {
            let product = BufferProduct {
                a: rh,
                a_row: self.units,
                b: BufferRef::Node(self.recurrent),
                b_first: 2 * self.units,
                b_row: self.g,
                m: self.batch,
                k: self.units,
                n: self.units,
            };
            let tiled = buffer_product(
                "loop_reset_product",
                &product,
                self.shared_memory,
                |b, row, col, acc| {
                    let units = b.param("units", self.units as u32);
                    let at = b.index(IndexOp::Mul, row, units);
                    let at = b.index(IndexOp::Add, at, col);
                    b.store(out, DType::F32, at, acc);
                },
            );
            if let Some(k) = tiled {
                return k;
            }
        }
        let (mut b, t) = self.threads("loop_reset_product", total);
        let Some((_, rh, out)) = self.gru else {
            return Self::finish(b, total);
        };
        let units = b.param("units", self.units as u32);
        let row = b.index(IndexOp::Div, t, units);
        let unit = b.index(IndexOp::Rem, t, units);
        let h0 = b.index(IndexOp::Mul, row, units);
        let off = b.param("gate_offset", (2 * self.units) as u32);
        let col = b.index(IndexOp::Add, off, unit);
        let zero = b.u32(0);
        let v = Self::dot(
            &mut b,
            (rh, h0),
            (BufferRef::Node(self.recurrent), col),
            (zero, units),
            self.g,
        );
        b.store(out, DType::F32, t, v);
        Self::finish(b, total)
    }

    /// Per batch row and unit: the new states (where the mask keeps the step) and the outputs.
    fn cell(&self) -> Kernel {
        let total = self.batch * self.units;
        let (mut b, t) = self.threads("loop_cell", total);
        let (step, tt) = self.step(&mut b);
        let units = b.param("units", self.units as u32);
        let row = b.index(IndexOp::Div, t, units);
        let unit = b.index(IndexOp::Rem, t, units);
        let h = b.load(self.h, DType::F32, t);
        let (act, ract) = (&self.act, &self.ract);
        let (new_h, new_c) = match self.spec.cell {
            RecurrentCell::SimpleRnn => {
                let v = self.gate_sum(&mut b, row, tt, 0, unit);
                (activate(&mut b, act, v), None)
            }
            RecurrentCell::Lstm => {
                let i = self.gate_sum(&mut b, row, tt, 0, unit);
                let i = activate(&mut b, ract, i);
                let f = self.gate_sum(&mut b, row, tt, 1, unit);
                let f = activate(&mut b, ract, f);
                let cand = self.gate_sum(&mut b, row, tt, 2, unit);
                let cand = activate(&mut b, act, cand);
                let o = self.gate_sum(&mut b, row, tt, 3, unit);
                let o = activate(&mut b, ract, o);
                let c_buf = self.c.unwrap_or(self.h);
                let c = b.load(c_buf, DType::F32, t);
                let fc = f32_op(&mut b, BinaryOp::Mul, f, c);
                let ig = f32_op(&mut b, BinaryOp::Mul, i, cand);
                let nc = f32_op(&mut b, BinaryOp::Add, fc, ig);
                let ac = activate(&mut b, act, nc);
                (f32_op(&mut b, BinaryOp::Mul, ac, o), Some((c_buf, nc)))
            }
            RecurrentCell::Gru { reset_after } => {
                let (z, hh) = if reset_after {
                    let z = self.gate_sum(&mut b, row, tt, 0, unit);
                    let z = activate(&mut b, ract, z);
                    let r = self.gate_sum(&mut b, row, tt, 1, unit);
                    let r = activate(&mut b, ract, r);
                    // x_h + r * (h @ U_h + b_h)
                    let off = b.param("gate_offset", (2 * self.units) as u32);
                    let col = b.index(IndexOp::Add, off, unit);
                    let xv = self.x_part(&mut b, row, tt, col);
                    let rv = self.r_part(&mut b, row, col);
                    let rr = f32_op(&mut b, BinaryOp::Mul, r, rv);
                    let s = f32_op(&mut b, BinaryOp::Add, xv, rr);
                    (z, activate(&mut b, act, s))
                } else {
                    let Some((zg, _, product)) = self.gru else {
                        return Self::finish(b, total);
                    };
                    let z = b.load(zg, DType::F32, t);
                    let off = b.param("gate_offset", (2 * self.units) as u32);
                    let col = b.index(IndexOp::Add, off, unit);
                    let xv = self.x_part(&mut b, row, tt, col);
                    let pv = b.load(product, DType::F32, t);
                    let s = f32_op(&mut b, BinaryOp::Add, xv, pv);
                    (z, activate(&mut b, act, s))
                };
                // hh + z * (h - hh)
                let d = f32_op(&mut b, BinaryOp::Sub, h, hh);
                let zd = f32_op(&mut b, BinaryOp::Mul, z, d);
                (f32_op(&mut b, BinaryOp::Add, hh, zd), None)
            }
        };
        // Where the mask drops the step the states stay, and the output follows Keras.
        let keep = self.mask.map(|(m, dtype)| {
            let steps = b.param("steps", self.steps as u32);
            let mr = b.index(IndexOp::Mul, row, steps);
            let mi = b.index(IndexOp::Add, mr, tt);
            let v = b.load(BufferRef::Node(m), dtype, mi);
            if dtype == DType::Bool {
                v
            } else {
                b.let_(
                    DType::Bool,
                    Expr::Cast {
                        from: dtype,
                        to: DType::Bool,
                        value: v,
                    },
                )
            }
        });
        let pick = |b: &mut Builder, then: Val, otherwise: Val| match keep {
            Some(cond) => b.let_(
                DType::F32,
                Expr::Select {
                    cond,
                    then,
                    otherwise,
                },
            ),
            None => then,
        };
        let next_h = pick(&mut b, new_h, h);
        b.store(self.h, DType::F32, t, next_h);
        let mut finals = vec![next_h];
        if let Some((c_buf, nc)) = new_c {
            let c = b.load(c_buf, DType::F32, t);
            let next_c = pick(&mut b, nc, c);
            b.store(c_buf, DType::F32, t, next_c);
            finals.push(next_c);
        }
        let out = if self.mask.is_none() {
            new_h
        } else if self.spec.unroll {
            let previous = b.load(self.last, DType::F32, t);
            pick(&mut b, new_h, previous)
        } else if self.spec.zero_output_for_mask {
            let zero = b.lit(Lit::F32(0.0));
            pick(&mut b, new_h, zero)
        } else {
            next_h
        };
        b.store(self.last, DType::F32, t, out);
        if let Some(node) = self.output(0) {
            if self.spec.return_sequences {
                // (batch, steps, units), in the order the steps run.
                let steps = b.param("steps", self.steps as u32);
                let r = b.index(IndexOp::Mul, row, steps);
                let r = b.index(IndexOp::Add, r, step);
                let r = b.index(IndexOp::Mul, r, units);
                let at = b.index(IndexOp::Add, r, unit);
                b.store(BufferRef::Node(node), DType::F32, at, out);
            } else {
                b.store(BufferRef::Node(node), DType::F32, t, out);
            }
        }
        for (k, v) in finals.into_iter().enumerate() {
            if let Some(node) = self.output(k + 1) {
                b.store(BufferRef::Node(node), DType::F32, t, v);
            }
        }
        Self::finish(b, total)
    }

    /// The step counter plus one.
    fn next(&self) -> Kernel {
        let mut b = Builder::new("loop_next", 1);
        let zero = b.u32(0);
        // A parameter, so that the kernel reads its uniform as every kernel's binding 0.
        let one = b.param("increment", 1);
        let t = b.load(self.counter, DType::U32, zero);
        let t1 = b.index(IndexOp::Add, t, one);
        b.store(self.counter, DType::U32, zero, t1);
        b.finish(1, None)
    }
}

/// The kernels of a recurrent loop whose activations are `(act, ract)`.
pub fn build(
    prog: &Program,
    shapes: &[Vec<usize>],
    lk: &LoopKernel<'_>,
    (act, ract): (Act, Act),
    shared_memory: bool,
    scratch: &mut Scratch,
) -> Result<LoopKernels> {
    let spec = lk.spec;
    let leader = lk.outputs.iter().map(|o| o.1).min().unwrap_or(0);
    let bad = |detail: String| -> Error {
        prog.nodes[leader].attribute(Error::Backend {
            backend: "gpu".into(),
            detail: format!("{} loop: {detail}", spec.cell.kind()),
        })
    };
    let &[x, kernel, recurrent, ref rest @ ..] = lk.inputs else {
        return Err(bad(format!("{} inputs", lk.inputs.len())));
    };
    let &[batch, steps, features] = shapes[x].as_slice() else {
        return Err(bad(format!("an input of shape {:?}", shapes[x])));
    };
    let units = spec.units;
    let g = spec.cell.gates() * units;
    let mut rest = rest.iter().copied();
    let bias = if spec.has_bias { rest.next() } else { None };
    let mask = if spec.has_mask {
        rest.next().map(|m| (m, prog.nodes[m].dtype))
    } else {
        None
    };
    let initial: Vec<usize> = rest.collect();
    let fits = shapes[kernel].iter().product::<usize>() == features * g
        && shapes[recurrent].iter().product::<usize>() == units * g
        && bias.is_none_or(|b| shapes[b].iter().product::<usize>() % g == 0)
        && mask.is_none_or(|(m, _)| shapes[m].iter().product::<usize>() == batch * steps)
        && initial
            .iter()
            .all(|&s| shapes[s].iter().product::<usize>() == batch * units)
        && (initial.is_empty() || initial.len() == spec.cell.states());
    if !fits {
        let all: Vec<String> = lk
            .inputs
            .iter()
            .map(|&i| format!("{:?}", shapes[i]))
            .collect();
        return Err(bad(format!(
            "input shapes {} do not fit {units} units ({g} gate columns)",
            all.join(", ")
        )));
    }
    if units > PASS_TERMS {
        return Err(bad(format!(
            "{units} units: the GPU backend's loop sums at most {PASS_TERMS} terms a thread; use the cpu backend"
        )));
    }
    let bu = batch * units;
    let gru_plain = spec.cell == (RecurrentCell::Gru { reset_after: false });
    let gz = if gru_plain { 2 * units } else { g };
    // One product before the loop where it fits one workgroup's sum and its output the
    // kernels' 32-bit indexing; else each step projects its own input in passes.
    let projected =
        features <= K_CHUNK && (batch as u64) * (steps as u64) * (g as u64) < u32::MAX as u64;
    let l = Loop {
        spec,
        act,
        ract,
        batch,
        steps,
        features,
        units,
        g,
        gz,
        projected,
        shared_memory,
        x,
        kernel,
        recurrent,
        bias,
        mask,
        initial,
        outputs: lk.outputs.to_vec(),
        h: scratch.alloc(bu),
        c: (spec.cell == RecurrentCell::Lstm).then(|| scratch.alloc(bu)),
        xz: scratch.alloc(batch * g * if projected { steps } else { 1 }),
        rz: scratch.alloc(batch * gz),
        last: scratch.alloc(bu),
        counter: scratch.alloc(1),
        gru: gru_plain.then(|| (scratch.alloc(bu), scratch.alloc(bu), scratch.alloc(bu))),
    };
    let mut kernels = vec![l.init()];
    let projection = if projected { l.projection() } else { None };
    let per_step_input = projection.is_none();
    kernels.extend(projection);
    let body = kernels.len();
    let l = Loop {
        projected: !per_step_input,
        ..l
    };
    if per_step_input {
        for pass in 0..features.div_ceil(PASS_TERMS).max(1) {
            kernels.push(l.input(pass));
        }
    }
    kernels.push(l.recurrent());
    if l.is_gru_without_reset_after() {
        kernels.push(l.reset());
        kernels.push(l.reset_product());
    }
    kernels.push(l.cell());
    kernels.push(l.next());
    Ok(LoopKernels {
        kernels,
        body,
        steps,
    })
}
