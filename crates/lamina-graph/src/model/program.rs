//! A model's expression graph flattened into topological order: what backends compile.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::infer::infer;
use crate::op::Op;
use crate::shape::{Dim, Shape};
use crate::tensor::Tensor;
use crate::variable::Variable;
use std::collections::HashMap;
use std::sync::Arc;

/// One node of a program: an op and the indices of its inputs (always earlier nodes).
#[derive(Clone, Debug)]
pub struct ProgramNode {
    /// The op.
    pub op: Op,
    /// Indices of the input nodes.
    pub inputs: Vec<usize>,
    /// The symbolic shape.
    pub shape: Shape,
    /// The element type.
    pub dtype: DType,
    /// The layer whose call made this node, as `(name, type)`, so that errors raised when the
    /// program runs can name it.
    pub layer: Option<Arc<(String, &'static str)>>,
}

impl ProgramNode {
    /// Attributes an error raised at this node to the layer that made it, if known.
    pub fn attribute(&self, error: Error) -> Error {
        match &self.layer {
            Some(l) => error.in_layer(&l.0, l.1),
            None => error,
        }
    }
}

/// A `take` node whose ids come from model input `input`, through an optional cast.
#[derive(Clone, Debug)]
pub struct GatherInputCheck {
    /// The `take` node.
    pub node: usize,
    /// Its table (`params`) node.
    pub params: usize,
    /// The axis it picks along.
    pub axis: usize,
    /// Which model input holds the ids.
    pub input: usize,
    /// The integer type the ids are cast to on the way, if any.
    pub cast: Option<DType>,
}

/// The expression graph of a model in topological order, with its inputs and outputs.
#[derive(Clone, Debug)]
pub struct Program {
    /// Every node, inputs before the nodes that use them.
    pub nodes: Vec<ProgramNode>,
    /// The node index of each model input, in order.
    pub inputs: Vec<usize>,
    /// The node index of each model output, in order.
    pub outputs: Vec<usize>,
}

impl Program {
    /// Flattens the graph between `inputs` and `outputs`. Every input node the outputs depend
    /// on must be among `inputs`.
    pub fn from_tensors(inputs: &[Tensor], outputs: &[Tensor]) -> Result<Program> {
        let mut index: HashMap<u64, usize> = HashMap::new();
        let mut nodes: Vec<ProgramNode> = Vec::new();
        let mut input_ids = Vec::with_capacity(inputs.len());
        for t in inputs {
            let node = t.node()?;
            if !matches!(node.op(), Op::Input { .. }) {
                return Err(Error::Model {
                    detail: format!(
                        "model inputs must be Input tensors, got the result of op {} with shape {}",
                        node.op().name(),
                        node.shape()
                    ),
                });
            }
            if input_ids.contains(&node.id()) {
                return Err(Error::Model {
                    detail: "the same Input is given twice as a model input".into(),
                });
            }
            input_ids.push(node.id());
        }
        // Iterative post-order walk, so that deep graphs cannot overflow the stack. Each node
        // is attributed to the layer whose output it lies under, down to that call's inputs.
        type Owner = Option<Arc<(String, &'static str)>>;
        let owner_of = |t: &Tensor, parent: &Owner| -> Owner {
            let mut t = t.clone();
            while let Some(call) = t.history() {
                // A layer that returns its input unchanged (Dropout) made no node: the node
                // belongs to whichever layer made that input.
                match call.inputs().iter().find(|i| i.id() == t.id()) {
                    Some(same) => t = same.clone(),
                    None => return Some(Arc::new((call.layer().name(), call.layer().kind()))),
                }
            }
            parent.clone()
        };
        for out in outputs {
            out.node()?;
            let mut stack: Vec<(Tensor, bool, Owner)> =
                vec![(out.clone(), false, owner_of(out, &None))];
            while let Some((t, expanded, owner)) = stack.pop() {
                let node = t.node()?;
                if index.contains_key(&node.id()) {
                    continue;
                }
                if !expanded {
                    stack.push((t.clone(), true, owner.clone()));
                    // Each distinct child once (its first occurrence, as before), so that a
                    // node reading one tensor many times (a concatenation of x with itself)
                    // costs its owner walk once, not once per read.
                    let mut seen = std::collections::HashSet::new();
                    let children: Vec<&Tensor> = node
                        .inputs()
                        .iter()
                        .filter(|c| !index.contains_key(&c.id()) && seen.insert(c.id()))
                        .collect();
                    for child in children.into_iter().rev() {
                        stack.push((child.clone(), false, owner_of(child, &owner)));
                    }
                    continue;
                }
                if let Op::Input { name } = node.op()
                    && !input_ids.contains(&node.id())
                {
                    return Err(Error::Model {
                        detail: format!(
                            "the outputs depend on Input '{name}' of shape {}, which is not among the model's inputs",
                            node.shape()
                        ),
                    });
                }
                let ins = node.inputs().iter().map(|c| index[&c.id()]).collect();
                index.insert(node.id(), nodes.len());
                nodes.push(ProgramNode {
                    op: node.op().clone(),
                    inputs: ins,
                    shape: node.shape().clone(),
                    dtype: node.dtype(),
                    layer: owner,
                });
            }
        }
        // Inputs the outputs do not use still get a node, so that `predict` takes them all.
        let mut input_idx = Vec::with_capacity(inputs.len());
        for t in inputs {
            let node = t.node()?;
            let i = match index.get(&node.id()) {
                Some(&i) => i,
                None => {
                    index.insert(node.id(), nodes.len());
                    nodes.push(ProgramNode {
                        op: node.op().clone(),
                        inputs: vec![],
                        shape: node.shape().clone(),
                        dtype: node.dtype(),
                        layer: None,
                    });
                    nodes.len() - 1
                }
            };
            input_idx.push(i);
        }
        let outputs = outputs.iter().map(|t| index[&t.id()]).collect();
        Ok(Program {
            nodes,
            inputs: input_idx,
            outputs,
        })
    }

    /// Checks host inputs against the model's inputs: count, dtype, rank and known dims.
    pub fn check_inputs(&self, inputs: &[HostTensor]) -> Result<()> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::Inputs {
                detail: format!(
                    "the model takes {} input(s) ({}), {} given",
                    self.inputs.len(),
                    self.input_signature(),
                    inputs.len()
                ),
            });
        }
        for (k, (&i, host)) in self.inputs.iter().zip(inputs).enumerate() {
            let node = &self.nodes[i];
            let name = match &node.op {
                Op::Input { name } => name.as_str(),
                _ => "?",
            };
            if host.dtype() != node.dtype {
                return Err(Error::Inputs {
                    detail: format!(
                        "input {k} ('{name}') expects dtype {}, got {}",
                        node.dtype,
                        host.dtype()
                    ),
                });
            }
            let ok = host.shape().len() == node.shape.rank()
                && node
                    .shape
                    .dims()
                    .iter()
                    .zip(host.shape())
                    .all(|(d, &n)| n > 0 && d.known().is_none_or(|k| k == n));
            if !ok {
                return Err(Error::Inputs {
                    detail: format!(
                        "input {k} ('{name}') expects shape {}, got {:?}",
                        node.shape,
                        host.shape()
                    ),
                });
            }
        }
        Ok(())
    }

    /// The `take` nodes whose ids come from a model input (directly, or through reshapes and
    /// one cast to an integer type), found once when a backend compiles the program, so that
    /// `check_gather_indices` reads only those inputs on each run.
    pub fn gather_input_checks(&self) -> Vec<GatherInputCheck> {
        let mut checks = Vec::new();
        for (node, n) in self.nodes.iter().enumerate() {
            let Op::Gather { axis } = n.op else {
                continue;
            };
            let (Some(&params), Some(&indices)) = (n.inputs.first(), n.inputs.get(1)) else {
                continue;
            };
            // Follow views (values unchanged) and at most one cast to an integer type back
            // to a model input; anything else is checked by the backends as they run.
            let mut source = indices;
            let mut cast: Option<DType> = None;
            loop {
                let m = &self.nodes[source];
                match &m.op {
                    Op::Reshape { .. }
                    | Op::ExpandDims { .. }
                    | Op::Squeeze { .. }
                    | Op::Permute { .. } => {}
                    Op::Cast {
                        dtype: to @ (DType::I32 | DType::U32),
                    } if cast.is_none() => cast = Some(*to),
                    _ => break,
                }
                source = m.inputs[0];
            }
            if let Some(input) = self.inputs.iter().position(|&i| i == source) {
                checks.push(GatherInputCheck {
                    node,
                    params,
                    axis,
                    input,
                    cast,
                });
            }
        }
        checks
    }

    /// Checks the ids that model inputs feed to `take` (the `checks` found by
    /// `gather_input_checks`): an id outside its axis is an error here, before any backend
    /// runs, so that both backends report it the same way and name the layer.
    pub fn check_gather_indices(
        &self,
        checks: &[GatherInputCheck],
        shapes: &[Vec<usize>],
        inputs: &[HostTensor],
    ) -> Result<()> {
        use crate::host::HostData;
        for c in checks {
            let (Some(host), Some(params_shape)) = (inputs.get(c.input), shapes.get(c.params))
            else {
                continue;
            };
            let size = params_shape.get(c.axis).copied().unwrap_or(0) as i64;
            let outside = |v: i64| !(-size..size).contains(&v);
            // Each value as the CPU's cast makes it (Rust's `as`, saturating from floats).
            let bad = match (host.data(), c.cast) {
                (HostData::F32(v), Some(DType::I32)) => {
                    v.iter().map(|&x| x as i32 as i64).find(|&x| outside(x))
                }
                (HostData::F32(v), Some(DType::U32)) => {
                    v.iter().map(|&x| x as u32 as i64).find(|&x| outside(x))
                }
                (HostData::I32(v), None | Some(DType::I32)) => {
                    v.iter().map(|&x| x as i64).find(|&x| outside(x))
                }
                (HostData::I32(v), Some(DType::U32)) => {
                    v.iter().map(|&x| x as u32 as i64).find(|&x| outside(x))
                }
                (HostData::U32(v), None | Some(DType::U32)) => {
                    v.iter().map(|&x| x as i64).find(|&x| outside(x))
                }
                (HostData::U32(v), Some(DType::I32)) => {
                    v.iter().map(|&x| x as i32 as i64).find(|&x| outside(x))
                }
                _ => None,
            };
            if let Some(bad) = bad {
                let e = crate::ops::index_out_of_range(bad, c.axis, params_shape);
                return Err(self.nodes[c.node].attribute(e));
            }
        }
        Ok(())
    }

    /// The inputs' shapes and dtypes, for messages: `(None, 4) float32, (None, 2) float32`.
    pub fn input_signature(&self) -> String {
        self.inputs
            .iter()
            .map(|&i| format!("{} {}", self.nodes[i].shape, self.nodes[i].dtype))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The concrete shape of every node for these input shapes, or the first op whose shapes do
    /// not fit (such as two inputs with different batch sizes meeting in an add).
    pub fn specialize(&self, input_shapes: &[Vec<usize>]) -> Result<Vec<Vec<usize>>> {
        self.validate()?;
        let mut shapes: Vec<Vec<usize>> = Vec::with_capacity(self.nodes.len());
        let mut input_pos: HashMap<usize, usize> = HashMap::new();
        for (k, &i) in self.inputs.iter().enumerate() {
            input_pos.insert(i, k);
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let shape = match &node.op {
                Op::Input { .. } => match input_pos.get(&i).and_then(|&k| input_shapes.get(k)) {
                    Some(s) => s.clone(),
                    None => {
                        return Err(Error::Inputs {
                            detail: format!("no shape given for input node {i}"),
                        });
                    }
                },
                Op::Constant(c) => c.shape().to_vec(),
                Op::Variable(v) => v.shape(),
                op => {
                    let typed: Vec<(Shape, DType)> = node
                        .inputs
                        .iter()
                        .map(|&j| (Shape::known(&shapes[j]), self.nodes[j].dtype))
                        .collect();
                    let (s, _) = infer(op, &typed).map_err(|e| node.attribute(e))?;
                    s.dims()
                        .iter()
                        .map(|d| match d {
                            Dim::Known(n) => Ok(*n),
                            Dim::Dynamic => Err(Error::Model {
                                detail: format!("op {} left a dimension unknown", op.name()),
                            }),
                        })
                        .collect::<Result<Vec<usize>>>()?
                }
            };
            crate::host::checked_numel(&shape).map_err(|e| Error::Model {
                detail: format!("op {} would make a tensor too large: {e}", node.op.name()),
            })?;
            shapes.push(shape);
        }
        Ok(shapes)
    }

    /// Checks the program's wiring: every node reads earlier nodes only, and the inputs are
    /// distinct input nodes and the outputs exist.
    pub fn validate(&self) -> Result<()> {
        let bad = |detail: String| Err(Error::Model { detail });
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(&j) = n.inputs.iter().find(|&&j| j >= i) {
                return bad(format!(
                    "program node {i} reads node {j}, which is not earlier"
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for &i in &self.inputs {
            match self.nodes.get(i) {
                Some(ProgramNode {
                    op: Op::Input { .. },
                    ..
                }) if seen.insert(i) => {}
                _ => return bad(format!("program input {i} is not a distinct input node")),
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if matches!(n.op, Op::Input { .. }) && !seen.contains(&i) {
                return bad(format!(
                    "program node {i} is an input the program does not take"
                ));
            }
        }
        if let Some(&o) = self.outputs.iter().find(|&&o| o >= self.nodes.len()) {
            return bad(format!("program output {o} does not exist"));
        }
        Ok(())
    }

    /// The variables and arguments the program reads, each once.
    pub fn variables(&self) -> Vec<Arc<Variable>> {
        let mut seen = std::collections::HashSet::new();
        self.nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::Variable(v) if seen.insert(v.id()) => Some(v.clone()),
                _ => None,
            })
            .collect()
    }
}
