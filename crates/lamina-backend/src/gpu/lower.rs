//! Lowering of a fused region to the kernel IR: the value of a node at coordinates, with
//! elementwise ops as IR ops and movement ops as index arithmetic. Every (node, coordinates)
//! pair is lowered once per scope and let-bound, and the walk uses an explicit stack, so
//! neither the IR nor Rust's stack grows with the depth of the graph.

use super::ir::{BufferRef, Builder, Expr, IndexOp, Lit, Val};
use lamina_graph::op::{BinaryOp, Op};
use lamina_graph::{DType, Error, HostData, Program, Result};
use std::collections::HashMap;

/// Concatenations of at least this many parts branch to the part a coordinate falls in.
const BRANCHING_CONCAT_PARTS: usize = 3;
/// The most branching concatenations lowered inside one another (deeper ones select).
const MAX_BRANCHING_DEPTH: usize = 16;

/// What is known about a coordinate: equal to the thread's coordinate on axis `k` of the
/// kernel's domain (so a register held for that coordinate can stand in for a read), always
/// zero, or anything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Label {
    /// Equal to the thread's coordinate on axis `k`.
    Thread(usize),
    /// Always 0.
    Zero,
    /// Computed some other way.
    Other,
}

/// Coordinates of an element of a tensor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Coords {
    /// A row-major linear index over `shape`, split into per-axis coordinates only where an
    /// op needs them (the contiguous fast path: no division per element).
    Linear {
        /// The linear index.
        index: Val,
        /// The tensor's shape.
        shape: Vec<usize>,
        /// What each axis's coordinate is known to equal.
        labels: Vec<Label>,
    },
    /// One coordinate per axis.
    Axes(Vec<(Val, Label)>),
}

/// A value held in a register (an absorbed reduction, a matmul accumulator), valid where the
/// coordinates carry the required labels.
#[derive(Clone, Debug)]
pub struct Register {
    /// The value.
    pub val: Val,
    /// For each axis: the thread coordinate it must be read at (`None`: any).
    pub axes: Vec<Option<usize>>,
}

enum Task {
    Visit(usize, Coords),
    Apply(usize, Coords, Vec<(usize, Coords)>),
    /// `take`, once its index is known: clamp it and read the parameters.
    GatherIndex(usize, Coords, (usize, Coords)),
    GatherValue(usize, Coords, (usize, Coords), Val),
}

/// Lowers values of a program's nodes into a kernel builder.
pub struct Lowerer<'a> {
    /// The kernel being built.
    pub b: Builder,
    prog: &'a Program,
    shapes: &'a [Vec<usize>],
    materialized: &'a dyn Fn(usize) -> bool,
    /// Registers standing in for nodes.
    pub registers: HashMap<usize, Register>,
    cache: Vec<HashMap<(usize, Coords), Val>>,
    /// The node the kernel computes: lowered from its operands even though it has a buffer.
    root: usize,
    /// How many branching concatenations enclose the value being lowered.
    depth: usize,
}

fn internal(detail: String) -> Error {
    Error::Backend {
        backend: "gpu".into(),
        detail: format!("internal: {detail}"),
    }
}

impl<'a> Lowerer<'a> {
    /// A lowerer into `b`; `materialized(n)` says whether node `n` has a buffer to read.
    pub fn new(
        b: Builder,
        prog: &'a Program,
        shapes: &'a [Vec<usize>],
        materialized: &'a dyn Fn(usize) -> bool,
    ) -> Self {
        Lowerer {
            b,
            prog,
            shapes,
            materialized,
            registers: HashMap::new(),
            cache: vec![HashMap::new()],
            root: usize::MAX,
            depth: 0,
        }
    }

    /// Sets the node the kernel computes (its own buffer is written, not read).
    pub fn set_root(&mut self, root: usize) {
        self.root = root;
    }

    /// The program.
    pub fn program(&self) -> &'a Program {
        self.prog
    }

    /// The shape of a node.
    pub fn shape(&self, n: usize) -> &'a [usize] {
        &self.shapes[n]
    }

    /// Opens a nested scope (a loop or condition body).
    pub fn open(&mut self) {
        self.b.open();
        self.cache.push(HashMap::new());
    }

    /// Closes the innermost scope, returning its statements.
    pub fn close(&mut self) -> Vec<super::ir::Stmt> {
        self.cache.pop();
        self.b.close()
    }

    /// `for (i = start; i < end; i += step) { body(i) }` with values lowered in the body
    /// forgotten afterwards.
    pub fn loop_(
        &mut self,
        start: Val,
        end: Val,
        step: Val,
        body: impl FnOnce(&mut Self, Val) -> Result<()>,
    ) -> Result<()> {
        self.cache.push(HashMap::new());
        let (var, i) = self.b.begin_loop();
        let r = body(self, i);
        self.cache.pop();
        self.b.end_loop(var, start, end, step);
        r
    }

    /// `if (cond) { body }`.
    pub fn if_(&mut self, cond: Val, body: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        self.open();
        let r = body(self);
        let stmts = self.close();
        self.b.push(super::ir::Stmt::If { cond, body: stmts });
        r
    }

    fn cached(&self, node: usize, c: &Coords) -> Option<Val> {
        let key = (node, c.clone());
        self.cache.iter().rev().find_map(|m| m.get(&key).copied())
    }

    fn remember(&mut self, node: usize, c: Coords, v: Val) {
        if let Some(m) = self.cache.last_mut() {
            m.insert((node, c), v);
        }
    }

    /// Per-axis coordinates of `c` (splitting a linear index where needed).
    pub fn axes(&mut self, c: &Coords) -> Vec<(Val, Label)> {
        match c {
            Coords::Axes(a) => a.clone(),
            Coords::Linear {
                index,
                shape,
                labels,
            } => {
                let vals = self.delinearize(*index, shape);
                vals.into_iter().zip(labels.iter().copied()).collect()
            }
        }
    }

    /// Splits a row-major linear index into coordinates of `shape` (size-1 axes are 0).
    pub fn delinearize(&mut self, index: Val, shape: &[usize]) -> Vec<Val> {
        let zero = self.b.u32(0);
        let mut out = vec![zero; shape.len()];
        let mut rem = index;
        let first = shape.iter().position(|&s| s != 1);
        for d in (0..shape.len()).rev() {
            if shape[d] == 1 {
                continue;
            }
            if Some(d) == first {
                out[d] = rem;
                break;
            }
            let size = self.b.param("size", shape[d] as u32);
            out[d] = self.b.index(IndexOp::Rem, rem, size);
            rem = self.b.index(IndexOp::Div, rem, size);
        }
        out
    }

    /// The row-major linear index of `c` in a tensor of `shape`.
    pub fn linearize(&mut self, c: &Coords, shape: &[usize]) -> Val {
        if let Coords::Linear {
            index, shape: s, ..
        } = c
            && s.iter().product::<usize>() == shape.iter().product::<usize>()
            && (s == shape
                || s.iter()
                    .filter(|&&d| d != 1)
                    .eq(shape.iter().filter(|&&d| d != 1)))
        {
            return *index;
        }
        let axes = self.axes(c);
        let mut acc: Option<Val> = None;
        let mut stride = 1usize;
        for d in (0..shape.len()).rev() {
            if shape[d] != 1 {
                let term = if stride == 1 {
                    axes[d].0
                } else {
                    let s = self.b.param("stride", stride as u32);
                    self.b.index(IndexOp::Mul, axes[d].0, s)
                };
                acc = Some(match acc {
                    None => term,
                    Some(a) => self.b.index(IndexOp::Add, a, term),
                });
            }
            stride *= shape[d];
        }
        acc.unwrap_or_else(|| self.b.u32(0))
    }

    fn zero_coord(&mut self) -> (Val, Label) {
        (self.b.u32(0), Label::Zero)
    }

    /// Coordinates of an input of shape `from` broadcast to `to`.
    fn broadcast(&mut self, c: &Coords, from: &[usize], to: &[usize]) -> Coords {
        if from == to {
            return c.clone();
        }
        if from.iter().product::<usize>() == 1 {
            let z = self.zero_coord();
            return Coords::Axes(vec![z; from.len()]);
        }
        let a = self.axes(c);
        let off = to.len() - from.len();
        let z = self.zero_coord();
        Coords::Axes(
            (0..from.len())
                .map(|d| if from[d] == 1 { z } else { a[d + off] })
                .collect(),
        )
    }

    fn labels_match(&mut self, reg: &Register, c: &Coords) -> bool {
        let labels: Vec<Label> = match c {
            Coords::Axes(a) => a.iter().map(|x| x.1).collect(),
            Coords::Linear { labels, .. } => labels.clone(),
        };
        labels.len() == reg.axes.len()
            && reg.axes.iter().zip(&labels).all(|(want, got)| match want {
                Some(k) => *got == Label::Thread(*k),
                None => true,
            })
    }

    /// The value of `node` at `coords`.
    pub fn value(&mut self, node: usize, coords: Coords) -> Result<Val> {
        let mut stack = vec![Task::Visit(node, coords.clone())];
        while let Some(task) = stack.pop() {
            match task {
                Task::Visit(n, c) => {
                    if self.cached(n, &c).is_some() {
                        continue;
                    }
                    if let Some(v) = self.leaf(n, &c)? {
                        self.remember(n, c, v);
                        continue;
                    }
                    if let Op::Concat { axis } = self.prog.nodes[n].op
                        && self.prog.nodes[n].inputs.len() >= BRANCHING_CONCAT_PARTS
                        && self.depth < MAX_BRANCHING_DEPTH
                    {
                        let v = self.branching_concat(n, &c, axis)?;
                        self.remember(n, c, v);
                        continue;
                    }
                    let requests = self.requests(n, &c)?;
                    if let Op::Gather { axis } = &self.prog.nodes[n].op {
                        let rank = self.shapes[self.prog.nodes[n].inputs[1]].len();
                        let a = self.axes(&c);
                        let idx = (
                            self.prog.nodes[n].inputs[1],
                            Coords::Axes(a[*axis..*axis + rank].to_vec()),
                        );
                        stack.push(Task::GatherIndex(n, c, idx.clone()));
                        stack.push(Task::Visit(idx.0, idx.1));
                        continue;
                    }
                    stack.push(Task::Apply(n, c, requests.clone()));
                    for (i, ic) in requests.into_iter().rev() {
                        stack.push(Task::Visit(i, ic));
                    }
                }
                Task::Apply(n, c, requests) => {
                    let mut vals = Vec::with_capacity(requests.len());
                    for (i, ic) in &requests {
                        vals.push(
                            self.cached(*i, ic)
                                .ok_or_else(|| internal("an operand was not lowered".into()))?,
                        );
                    }
                    let v = self.apply(n, &c, &vals)?;
                    self.remember(n, c, v);
                }
                Task::GatherIndex(n, c, idx) => {
                    let index = self
                        .cached(idx.0, &idx.1)
                        .ok_or_else(|| internal("a take index was not lowered".into()))?;
                    let (params, g, size) = self.gather_position(n, index);
                    let Op::Gather { axis } = self.prog.nodes[n].op else {
                        return Err(internal("not a take".into()));
                    };
                    let rank = self.shapes[self.prog.nodes[n].inputs[1]].len();
                    let a = self.axes(&c);
                    let one = self.b.u32(1);
                    let last = self.b.index(IndexOp::Sub, size, one);
                    let clamped = self.b.index(IndexOp::Min, g, last);
                    let mut pc = a[..axis].to_vec();
                    pc.push((clamped, Label::Other));
                    pc.extend_from_slice(&a[axis + rank..]);
                    let req = (params, Coords::Axes(pc));
                    stack.push(Task::GatherValue(n, c, req.clone(), g));
                    stack.push(Task::Visit(req.0, req.1));
                }
                Task::GatherValue(n, c, req, g) => {
                    let v = self
                        .cached(req.0, &req.1)
                        .ok_or_else(|| internal("a take value was not lowered".into()))?;
                    let dtype = self.prog.nodes[n].dtype;
                    let params = self.prog.nodes[n].inputs[0];
                    let Op::Gather { axis } = self.prog.nodes[n].op else {
                        return Err(internal("not a take".into()));
                    };
                    let size = self.b.param("size", self.shapes[params][axis] as u32);
                    let inside = self.b.index(IndexOp::Less, g, size);
                    let zero = self.b.lit(Lit::of(dtype, 0.0));
                    let out = self.b.let_(
                        dtype,
                        Expr::Select {
                            cond: inside,
                            then: v,
                            otherwise: zero,
                        },
                    );
                    self.remember(n, c, out);
                }
            }
        }
        self.cached(node, &coords)
            .ok_or_else(|| internal("a value was not lowered".into()))
    }

    /// A concatenation of many parts, computing only the part the coordinate falls in (one
    /// branch per part), where a select would compute every part.
    fn branching_concat(&mut self, n: usize, c: &Coords, axis: usize) -> Result<Val> {
        let node = &self.prog.nodes[n];
        let dtype = node.dtype;
        let inputs = node.inputs.clone();
        let a = self.axes(c);
        let zero = self.b.lit(Lit::of(dtype, 0.0));
        let out = self.b.var(dtype, zero);
        let mut offset = 0usize;
        self.depth += 1;
        for &input in &inputs {
            let size = self.shapes[input][axis];
            let off = self.b.param("offset", offset as u32);
            let end = self.b.param("end", (offset + size) as u32);
            let below_end = self.b.index(IndexOp::Less, a[axis].0, end);
            let cond = if offset == 0 {
                below_end
            } else {
                let before = self.b.index(IndexOp::Less, a[axis].0, off);
                let after = self.b.let_(
                    DType::Bool,
                    Expr::Unary(lamina_graph::op::UnaryOp::Not, DType::Bool, before),
                );
                self.b.let_(
                    DType::Bool,
                    Expr::Binary(BinaryOp::And, DType::Bool, after, below_end),
                )
            };
            let rel = self.b.index(IndexOp::Sub, a[axis].0, off);
            let mut ic = a.clone();
            ic[axis] = (rel, Label::Other);
            let r = self.if_(cond, |lw| {
                let v = lw.value(input, Coords::Axes(ic))?;
                lw.b.assign(out, v);
                Ok(())
            });
            if r.is_err() {
                self.depth -= 1;
                return r.map(|_| zero);
            }
            offset += size;
        }
        self.depth -= 1;
        Ok(self.b.read(out, dtype))
    }

    /// The position a `take` reads: a negative id counts from the end, and what stays out of
    /// range is caught by the caller's bound check.
    fn gather_position(&mut self, n: usize, index: Val) -> (usize, Val, Val) {
        let node = &self.prog.nodes[n];
        let (params, ids) = (node.inputs[0], node.inputs[1]);
        let Op::Gather { axis } = node.op else {
            let z = self.b.u32(0);
            return (params, z, z);
        };
        let size = self.b.param("size", self.shapes[params][axis] as u32);
        let g = match self.prog.nodes[ids].dtype {
            DType::I32 => {
                let size_i = self.b.let_(
                    DType::I32,
                    Expr::Bitcast {
                        to: DType::I32,
                        value: size,
                    },
                );
                let zero = self.b.lit(Lit::I32(0));
                let neg = self.b.let_(
                    DType::Bool,
                    Expr::Binary(BinaryOp::Less, DType::I32, index, zero),
                );
                let wrapped = self.b.let_(
                    DType::I32,
                    Expr::Binary(BinaryOp::Add, DType::I32, index, size_i),
                );
                let i = self.b.let_(
                    DType::I32,
                    Expr::Select {
                        cond: neg,
                        then: wrapped,
                        otherwise: index,
                    },
                );
                self.b.let_(
                    DType::U32,
                    Expr::Bitcast {
                        to: DType::U32,
                        value: i,
                    },
                )
            }
            DType::U32 => index,
            other => self.b.let_(
                DType::U32,
                Expr::Cast {
                    from: other,
                    to: DType::U32,
                    value: index,
                },
            ),
        };
        (params, g, size)
    }

    /// A value that needs no operands: a register, a scalar constant, or a buffer read.
    fn leaf(&mut self, n: usize, c: &Coords) -> Result<Option<Val>> {
        if let Some(reg) = self.registers.get(&n).cloned() {
            if self.labels_match(&reg, c) {
                return Ok(Some(reg.val));
            }
            return Err(internal(format!(
                "the register of node {n} is read at other coordinates"
            )));
        }
        let node = &self.prog.nodes[n];
        if let Op::Constant(t) = &node.op
            && t.len() == 1
        {
            let l = match t.data() {
                HostData::F32(v) => Lit::F32(v[0]),
                HostData::I32(v) => Lit::I32(v[0]),
                HostData::U32(v) => Lit::U32(v[0]),
                HostData::Bool(v) => Lit::Bool(v[0]),
            };
            return Ok(Some(self.b.lit(l)));
        }
        if n != self.root && (self.materialized)(n) {
            let shape = self.shapes[n].clone();
            let index = self.linearize(c, &shape);
            return Ok(Some(self.b.load(BufferRef::Node(n), node.dtype, index)));
        }
        if matches!(
            node.op,
            Op::MatMul
                | Op::Conv { .. }
                | Op::Reduce { .. }
                | Op::ArgReduce { .. }
                | Op::Scan { .. }
                | Op::Input { .. }
                | Op::Constant(_)
                | Op::Variable(_)
        ) {
            return Err(internal(format!(
                "op {} reached inside a fused region without a buffer",
                node.op.name()
            )));
        }
        Ok(None)
    }

    /// The operands an op reads, at which coordinates (index arithmetic is added to the
    /// kernel as needed).
    fn requests(&mut self, n: usize, c: &Coords) -> Result<Vec<(usize, Coords)>> {
        let node = &self.prog.nodes[n];
        let shape = self.shapes[n].clone();
        let inputs = node.inputs.clone();
        let in_shape = |k: usize| self.shapes[inputs[k]].clone();
        Ok(match &node.op {
            Op::Unary { .. } | Op::Cast { .. } => vec![(inputs[0], c.clone())],
            Op::Binary { .. } | Op::Where | Op::BroadcastTo { .. } => inputs
                .iter()
                .enumerate()
                .map(|(k, &i)| {
                    let s = in_shape(k);
                    (i, self.broadcast(c, &s, &shape))
                })
                .collect(),
            Op::Permute { perm } => {
                let a = self.axes(c);
                let mut out = vec![self.zero_coord(); perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    out[p] = a[i];
                }
                vec![(inputs[0], Coords::Axes(out))]
            }
            Op::ExpandDims { .. } | Op::Squeeze { .. } | Op::Reshape { .. } => {
                vec![(inputs[0], self.reshape_coords(c, &shape, &in_shape(0)))]
            }
            Op::Slice { axes } => {
                let from = in_shape(0);
                let a = self.axes(c);
                let mut out = Vec::with_capacity(from.len());
                for (d, sl) in axes.iter().enumerate() {
                    let (start, _, step) = sl.resolve(from[d]);
                    if from[d] == 1 {
                        out.push(self.zero_coord());
                    } else if start == 0 && step == 1 {
                        out.push(a[d]);
                    } else {
                        // start + step * c, in wrapping u32 arithmetic (exact for the
                        // in-range results, whatever the sign of the step).
                        let s = self.b.param("start", start as u32);
                        let st = self.b.param("step", step as i32 as u32);
                        let m = self.b.index(IndexOp::Mul, st, a[d].0);
                        out.push((self.b.index(IndexOp::Add, s, m), Label::Other));
                    }
                }
                vec![(inputs[0], Coords::Axes(out))]
            }
            Op::Concat { axis } => {
                let a = self.axes(c);
                let mut offset = 0usize;
                let mut reqs = Vec::new();
                for (k, &i) in inputs.iter().enumerate() {
                    let s = in_shape(k);
                    let mut ic = a.clone();
                    let off = self.b.param("offset", offset as u32);
                    let last = self.b.param("last", s[*axis].saturating_sub(1) as u32);
                    let lo = self.b.index(IndexOp::Max, a[*axis].0, off);
                    let rel = self.b.index(IndexOp::Sub, lo, off);
                    ic[*axis] = (self.b.index(IndexOp::Min, rel, last), Label::Other);
                    offset += s[*axis];
                    reqs.push((i, Coords::Axes(ic)));
                }
                reqs
            }
            Op::Gather { .. } => Vec::new(),
            other => {
                return Err(internal(format!(
                    "op {} cannot be fused into a kernel",
                    other.name()
                )));
            }
        })
    }

    /// Coordinates of a reshape's input from its output's: direct when only size-1 axes are
    /// added or removed, else through the linear index (split lazily).
    fn reshape_coords(&mut self, c: &Coords, to: &[usize], from: &[usize]) -> Coords {
        let nz_to: Vec<usize> = (0..to.len()).filter(|&d| to[d] != 1).collect();
        let nz_from: Vec<usize> = (0..from.len()).filter(|&d| from[d] != 1).collect();
        let direct = nz_to.len() == nz_from.len()
            && nz_to.iter().zip(&nz_from).all(|(&a, &b)| to[a] == from[b]);
        if direct {
            if let Coords::Linear { index, labels, .. } = c {
                let mut l = vec![Label::Zero; from.len()];
                for (&a, &b) in nz_to.iter().zip(&nz_from) {
                    l[b] = labels[a];
                }
                return Coords::Linear {
                    index: *index,
                    shape: from.to_vec(),
                    labels: l,
                };
            }
            let a = self.axes(c);
            let z = self.zero_coord();
            let mut out = vec![z; from.len()];
            for (&x, &y) in nz_to.iter().zip(&nz_from) {
                out[y] = a[x];
            }
            return Coords::Axes(out);
        }
        let index = self.linearize(c, to);
        Coords::Linear {
            index,
            shape: from.to_vec(),
            labels: vec![Label::Other; from.len()],
        }
    }

    /// Computes an op from its operands' values.
    fn apply(&mut self, n: usize, c: &Coords, vals: &[Val]) -> Result<Val> {
        let node = &self.prog.nodes[n];
        let dtype = node.dtype;
        let in_dtype = |k: usize| self.prog.nodes[node.inputs[k]].dtype;
        Ok(match &node.op {
            Op::Unary { func: u } => self.b.let_(dtype, Expr::Unary(*u, dtype, vals[0])),
            Op::Binary { func: op } => self
                .b
                .let_(dtype, Expr::Binary(*op, in_dtype(0), vals[0], vals[1])),
            Op::Where => self.b.let_(
                dtype,
                Expr::Select {
                    cond: vals[0],
                    then: vals[1],
                    otherwise: vals[2],
                },
            ),
            Op::Cast { dtype: to } => self.b.let_(
                *to,
                Expr::Cast {
                    from: in_dtype(0),
                    to: *to,
                    value: vals[0],
                },
            ),
            Op::Concat { axis } => {
                let a = self.axes(c);
                let inputs = node.inputs.clone();
                let mut ends = Vec::new();
                let mut offset = 0usize;
                for &i in &inputs {
                    offset += self.shapes[i][*axis];
                    ends.push(offset);
                }
                let mut e = *vals.last().ok_or_else(|| internal("empty concat".into()))?;
                for k in (0..vals.len() - 1).rev() {
                    let end = self.b.param("end", ends[k] as u32);
                    let before = self.b.index(IndexOp::Less, a[*axis].0, end);
                    e = self.b.let_(
                        dtype,
                        Expr::Select {
                            cond: before,
                            then: vals[k],
                            otherwise: e,
                        },
                    );
                }
                e
            }
            // Movement ops: the operand's value at the moved coordinates.
            _ => vals[0],
        })
    }
}
