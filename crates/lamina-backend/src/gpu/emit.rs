//! The expression emitter: WGSL for a fused region of elementwise and movement ops, evaluated
//! at symbolic coordinates. Movement ops are index arithmetic on the coordinates; sizes and
//! strides come from the kernel's info uniform, so the text depends on structure, not sizes.

use super::wgsl;
use lamina_graph::op::Op;
use lamina_graph::{DType, Program};
use std::collections::HashMap;

/// What is known about a coordinate: equal to the thread's own coordinate `k` (so values held
/// in registers for the thread can stand in for reads), always zero, or anything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    /// Equal to the thread's coordinate number `k`.
    Thread(usize),
    /// Always 0.
    Zero,
    /// Computed some other way.
    Other,
}

/// A coordinate: a WGSL `u32` expression and its label.
#[derive(Clone, Debug)]
pub struct Coord {
    /// The WGSL expression.
    pub expr: String,
    /// What it is known to equal.
    pub label: Label,
}

impl Coord {
    /// The constant coordinate 0.
    pub fn zero() -> Coord {
        Coord {
            expr: "0u".into(),
            label: Label::Zero,
        }
    }
}

/// Coordinates of a tensor of `rank` axes assembled from parts: each part lists axes and the
/// coordinates that go on them; axes no part names are 0.
pub fn place(rank: usize, parts: &[(&[usize], &[Coord])]) -> Vec<Coord> {
    let mut coords = vec![Coord::zero(); rank];
    for (axes, values) in parts {
        for (&d, c) in axes.iter().zip(values.iter()) {
            coords[d] = c.clone();
        }
    }
    coords
}

/// Why a region could not be emitted as planned.
#[derive(Debug)]
pub enum Retry {
    /// This node must get its own buffer (it is read where a register cannot stand in, or a
    /// kernel binds too much).
    Materialize(Vec<usize>),
}

/// A value held in a register by the kernel (an absorbed reduction, or a matmul accumulator):
/// its WGSL name and, for each of its axes, the thread coordinate it must be read at (`None`
/// for a size-1 axis).
#[derive(Clone, Debug)]
pub struct Register {
    /// The WGSL variable.
    pub name: String,
    /// Required label per axis.
    pub axes: Vec<Option<usize>>,
}

/// Emits WGSL for expressions over a program's nodes.
pub struct Emitter<'a> {
    prog: &'a Program,
    shapes: &'a [Vec<usize>],
    materialized: &'a dyn Fn(usize) -> bool,
    /// Registers standing in for nodes.
    pub registers: HashMap<usize, Register>,
    /// Values of the info uniform, in order.
    pub info: Vec<u32>,
    /// Nodes bound as read-only storage buffers, in binding order.
    pub bindings: Vec<usize>,
    lines: Vec<String>,
    cache: HashMap<String, String>,
    counter: usize,
    emitted: usize,
}

/// The most values one kernel computes before part of its region gets a buffer of its own:
/// keeps shaders small enough to compile quickly, however large the fused graph.
pub const MAX_VALUES_PER_KERNEL: usize = 2048;

impl<'a> Emitter<'a> {
    /// A new emitter; `materialized(n)` says whether node `n` has a buffer to read.
    pub fn new(
        prog: &'a Program,
        shapes: &'a [Vec<usize>],
        materialized: &'a dyn Fn(usize) -> bool,
    ) -> Self {
        Emitter {
            prog,
            shapes,
            materialized,
            registers: HashMap::new(),
            info: Vec::new(),
            bindings: Vec::new(),
            lines: Vec::new(),
            cache: HashMap::new(),
            counter: 0,
            emitted: 0,
        }
    }

    /// A uniform parameter: its WGSL read expression.
    pub fn param(&mut self, v: usize) -> String {
        let i = self.info.len();
        self.info.push(v as u32);
        format!("I({i}u)")
    }

    /// A fresh variable name.
    pub fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    /// Adds a line to the current scope.
    pub fn line(&mut self, l: String) {
        self.lines.push(l);
    }

    /// Runs `f` in a nested scope (a loop body): its lines are returned, and values it defines
    /// are not visible afterwards.
    pub fn scope<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> (T, Vec<String>) {
        let saved_lines = std::mem::take(&mut self.lines);
        let saved_cache = self.cache.clone();
        let out = f(self);
        let body = std::mem::replace(&mut self.lines, saved_lines);
        self.cache = saved_cache;
        (out, body)
    }

    /// Takes the lines emitted so far.
    pub fn take_lines(&mut self) -> Vec<String> {
        std::mem::take(&mut self.lines)
    }

    /// The binding index of a node's buffer (read-only storage), binding it if new.
    pub fn bind(&mut self, node: usize) -> usize {
        match self.bindings.iter().position(|&b| b == node) {
            Some(i) => i,
            None => {
                self.bindings.push(node);
                self.bindings.len() - 1
            }
        }
    }

    /// Decomposes a linear index into coordinates of `shape` (row-major), labelled by `label`.
    pub fn delinearize(
        &mut self,
        linear: &str,
        shape: &[usize],
        label: impl Fn(usize) -> Label,
    ) -> Vec<Coord> {
        let mut coords = vec![Coord::zero(); shape.len()];
        let rem = self.fresh("rem");
        self.line(format!("var {rem} = {linear};"));
        for d in (0..shape.len()).rev() {
            if shape[d] == 1 {
                coords[d] = Coord {
                    expr: "0u".into(),
                    label: label(d),
                };
                continue;
            }
            let size = self.param(shape[d]);
            let c = self.fresh("c");
            self.line(format!("let {c} = {rem} % {size};"));
            self.line(format!("{rem} = {rem} / {size};"));
            coords[d] = Coord {
                expr: c,
                label: label(d),
            };
        }
        coords
    }

    /// The row-major linear index of coordinates in `shape`.
    pub fn linearize(&mut self, coords: &[Coord], shape: &[usize]) -> String {
        let mut terms = Vec::new();
        let mut stride = 1usize;
        for d in (0..shape.len()).rev() {
            if shape[d] != 1 {
                if stride == 1 && terms.is_empty() {
                    terms.push(coords[d].expr.clone());
                } else {
                    let s = self.param(stride);
                    terms.push(format!("{} * {s}", coords[d].expr));
                }
            }
            stride *= shape[d];
        }
        if terms.is_empty() {
            "0u".into()
        } else {
            terms.join(" + ")
        }
    }

    fn broadcast_coords(&self, coords: &[Coord], from: &[usize], to: &[usize]) -> Vec<Coord> {
        let off = to.len() - from.len();
        (0..from.len())
            .map(|d| {
                if from[d] == 1 {
                    Coord::zero()
                } else {
                    coords[d + off].clone()
                }
            })
            .collect()
    }

    /// The value of `node` at `coords`, as the name of a WGSL value.
    pub fn emit(&mut self, node: usize, coords: &[Coord]) -> Result<String, Retry> {
        let key = format!(
            "{node}@{}",
            coords
                .iter()
                .map(|c| c.expr.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
        if let Some(v) = self.cache.get(&key) {
            return Ok(v.clone());
        }
        let v = self.emit_uncached(node, coords)?;
        self.cache.insert(key, v.clone());
        Ok(v)
    }

    fn emit_uncached(&mut self, node: usize, coords: &[Coord]) -> Result<String, Retry> {
        self.emitted += 1;
        if self.emitted > MAX_VALUES_PER_KERNEL && !(self.materialized)(node) {
            return Err(Retry::Materialize(vec![node]));
        }
        let n = &self.prog.nodes[node];
        let dtype = n.dtype;
        let shape = self.shapes[node].clone();
        if let Some(reg) = self.registers.get(&node) {
            let ok = reg.axes.iter().zip(coords).all(|(want, c)| match want {
                Some(k) => c.label == Label::Thread(*k),
                None => true,
            });
            if ok {
                return Ok(reg.name.clone());
            }
            return Err(Retry::Materialize(vec![node]));
        }
        if let Op::Constant(c) = &n.op
            && c.len() == 1
        {
            // Scalar constants are literals (exactly printed), not buffers.
            let v = match c.data() {
                lamina_graph::HostData::F32(v) => wgsl::f32_lit(v[0]),
                lamina_graph::HostData::I32(v) => format!("i32({})", v[0]),
                lamina_graph::HostData::U32(v) => format!("{}u", v[0]),
                lamina_graph::HostData::Bool(v) => v[0].to_string(),
            };
            return Ok(v);
        }
        if (self.materialized)(node) {
            let b = self.bind(node);
            let idx = self.linearize(coords, &shape);
            let v = self.fresh("v");
            let loaded = wgsl::load(dtype, &format!("in{b}[{idx}]"));
            self.line(format!("let {v} = {loaded};"));
            return Ok(v);
        }
        let inputs = n.inputs.clone();
        let in_shape = |k: usize| self.shapes[inputs[k]].clone();
        let expr = match &n.op {
            Op::Unary(u) => {
                let x = self.emit(inputs[0], coords)?;
                wgsl::unary(*u, dtype, &x)
            }
            Op::Binary(b) => {
                let ca = self.broadcast_coords(coords, &in_shape(0), &shape);
                let cb = self.broadcast_coords(coords, &in_shape(1), &shape);
                let a = self.emit(inputs[0], &ca)?;
                let bb = self.emit(inputs[1], &cb)?;
                let in_dtype = self.prog.nodes[inputs[0]].dtype;
                wgsl::binary(*b, in_dtype, &a, &bb)
            }
            Op::Where => {
                let cc = self.broadcast_coords(coords, &in_shape(0), &shape);
                let ca = self.broadcast_coords(coords, &in_shape(1), &shape);
                let cb = self.broadcast_coords(coords, &in_shape(2), &shape);
                let c = self.emit(inputs[0], &cc)?;
                let a = self.emit(inputs[1], &ca)?;
                let b = self.emit(inputs[2], &cb)?;
                format!("select({b}, {a}, {c})")
            }
            Op::Cast(to) => {
                let from = self.prog.nodes[inputs[0]].dtype;
                let x = self.emit(inputs[0], coords)?;
                wgsl::cast(from, *to, &x)
            }
            Op::BroadcastTo { .. } => {
                let c = self.broadcast_coords(coords, &in_shape(0), &shape);
                return self.emit(inputs[0], &c);
            }
            Op::Permute { perm } => {
                let mut c = vec![Coord::zero(); perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    c[p] = coords[i].clone();
                }
                return self.emit(inputs[0], &c);
            }
            Op::ExpandDims { axis } => {
                let mut c = coords.to_vec();
                c.remove(*axis);
                return self.emit(inputs[0], &c);
            }
            Op::Squeeze { axes } => {
                let rank = in_shape(0).len();
                let mut it = coords.iter();
                let c: Vec<Coord> = (0..rank)
                    .map(|d| {
                        if axes.contains(&d) {
                            Coord::zero()
                        } else {
                            it.next().cloned().unwrap_or_else(Coord::zero)
                        }
                    })
                    .collect();
                return self.emit(inputs[0], &c);
            }
            Op::Reshape { .. } => {
                let from = in_shape(0);
                let c = self.reshape_coords(coords, &shape, &from);
                return self.emit(inputs[0], &c);
            }
            Op::Slice { axes } => {
                let from = in_shape(0);
                let mut c = Vec::with_capacity(from.len());
                for (d, sl) in axes.iter().enumerate() {
                    let (start, _, step) = sl.resolve(from[d]);
                    if from[d] == 1 {
                        c.push(Coord::zero());
                    } else if start == 0 && step == 1 {
                        c.push(coords[d].clone());
                    } else {
                        let s = self.param(start);
                        let st = self.param(step as i32 as u32 as usize);
                        c.push(Coord {
                            expr: format!("u32(i32({s}) + i32({st}) * i32({}))", coords[d].expr),
                            label: Label::Other,
                        });
                    }
                }
                return self.emit(inputs[0], &c);
            }
            Op::Concat { axis } => {
                let mut offset = 0usize;
                let mut parts = Vec::new();
                for (k, &input) in inputs.iter().enumerate() {
                    let s = in_shape(k);
                    let mut c = coords.to_vec();
                    let off = self.param(offset);
                    let last = self.param(s[*axis] - 1);
                    c[*axis] = Coord {
                        expr: format!("min(max({}, {off}) - {off}, {last})", coords[*axis].expr),
                        label: Label::Other,
                    };
                    let v = self.emit(input, &c)?;
                    offset += s[*axis];
                    let end = self.param(offset);
                    parts.push((v, end));
                }
                // select chain: the first part whose end is past the coordinate.
                let mut e = parts.last().map(|p| p.0.clone()).unwrap_or_default();
                for (v, end) in parts.iter().rev().skip(1) {
                    e = format!("select({e}, {v}, {} < {end})", coords[*axis].expr);
                }
                e
            }
            Op::Gather { axis } => return self.emit_gather(node, *axis, coords),
            other => {
                // Reductions, matmul, scans and leaves are never inline: they need a buffer.
                let _ = other;
                return Err(Retry::Materialize(vec![node]));
            }
        };
        let v = self.fresh("v");
        self.line(format!("let {v}: {} = {expr};", wgsl::reg_type(dtype)));
        Ok(v)
    }

    /// `take`: the index is read at the output's coordinates on the indices' axes; an index
    /// outside the axis reads a clamped position and is replaced by zero. Kept out of
    /// `emit_uncached` so that its locals do not grow every frame of the emitter's recursion.
    #[inline(never)]
    fn emit_gather(&mut self, node: usize, axis: usize, coords: &[Coord]) -> Result<String, Retry> {
        let n = &self.prog.nodes[node];
        let dtype = n.dtype;
        let inputs = n.inputs.clone();
        let params_shape = self.shapes[inputs[0]].clone();
        if params_shape[axis] == 0 {
            return Ok(wgsl::literal(dtype, 0.0));
        }
        let rank = self.shapes[inputs[1]].len();
        let index = self.emit(inputs[1], &coords[axis..axis + rank])?;
        let size = self.param(params_shape[axis]);
        let index = match self.prog.nodes[inputs[1]].dtype {
            DType::I32 => {
                // A negative index counts from the end; what stays negative is out of range.
                let i = self.fresh("i");
                self.line(format!("let {i}: i32 = {index};"));
                format!("bitcast<u32>(select({i}, {i} + i32({size}), {i} < 0))")
            }
            _ => index,
        };
        let g = self.fresh("g");
        self.line(format!("let {g}: u32 = {index};"));
        let mut c = coords[..axis].to_vec();
        c.push(Coord {
            expr: format!("min({g}, {size} - 1u)"),
            label: Label::Other,
        });
        c.extend_from_slice(&coords[axis + rank..]);
        let v = self.emit(inputs[0], &c)?;
        let expr = format!("select({}, {v}, {g} < {size})", wgsl::literal(dtype, 0.0));
        let out = self.fresh("v");
        self.line(format!("let {out}: {} = {expr};", wgsl::reg_type(dtype)));
        Ok(out)
    }

    /// Coordinates of a reshape's input from its output's: direct when only size-1 axes are
    /// added or removed, else through the linear index.
    fn reshape_coords(&mut self, coords: &[Coord], to: &[usize], from: &[usize]) -> Vec<Coord> {
        let nz_to: Vec<usize> = (0..to.len()).filter(|&d| to[d] != 1).collect();
        let nz_from: Vec<usize> = (0..from.len()).filter(|&d| from[d] != 1).collect();
        if nz_to.len() == nz_from.len()
            && nz_to.iter().zip(&nz_from).all(|(&a, &b)| to[a] == from[b])
        {
            let mut c = vec![Coord::zero(); from.len()];
            for (&a, &b) in nz_to.iter().zip(&nz_from) {
                c[b] = coords[a].clone();
            }
            return c;
        }
        let lin = self.linearize(coords, to);
        let l = self.fresh("lin");
        self.line(format!("let {l} = {lin};"));
        self.delinearize(&l, from, |_| Label::Other)
    }

    /// The dtype of a node.
    pub fn dtype(&self, node: usize) -> DType {
        self.prog.nodes[node].dtype
    }
}
