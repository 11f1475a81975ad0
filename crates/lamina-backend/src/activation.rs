//! A layer's activation as the backends' recurrent loops apply it inside the loop: traced once
//! on a symbolic value into the identity, one elementwise op, or a small graph of elementwise
//! ops on the value and scalar constants (`relu` is `maximum(x, 0)`; `hard_sigmoid`, `elu`,
//! `silu`, a custom activation built from elementwise ops). An activation that reads more than
//! its own element (a custom one with a reduction) has no such form; the loop is then unrolled.

use lamina_graph::activation::Activation;
use lamina_graph::op::{Op, UnaryOp};
use lamina_graph::{DType, Program, Shape, Tensor};
use std::sync::Arc;

/// An activation as elementwise ops on one value.
#[derive(Clone, Debug)]
pub enum ElementwiseActivation {
    /// The identity.
    Identity,
    /// One elementwise op.
    Unary(UnaryOp),
    /// A graph whose input 0 is the value and whose other leaves are scalar constants, all ops
    /// elementwise (unary, binary, where, cast), its one output float32.
    Graph(Arc<Program>),
}

impl ElementwiseActivation {
    /// The activation traced on a value, or `None` where it reads anything but its value and
    /// scalar constants.
    pub fn trace(activation: &Activation) -> Option<ElementwiseActivation> {
        let x = Tensor::input("x", Shape::known(&[1]), DType::F32);
        let y = activation.apply(&x);
        if y.id() == x.id() {
            return Some(ElementwiseActivation::Identity);
        }
        let node = y.node().ok()?;
        if let Op::Unary { func: u } = node.op()
            && node.inputs().len() == 1
            && node.inputs()[0].id() == x.id()
        {
            return Some(ElementwiseActivation::Unary(*u));
        }
        let graph = Program::from_tensors(std::slice::from_ref(&x), &[y]).ok()?;
        let elementwise = graph.nodes.iter().all(|n| {
            let op_ok = match &n.op {
                Op::Input { .. }
                | Op::Unary { .. }
                | Op::Binary { .. }
                | Op::Where
                | Op::Cast { .. } => true,
                Op::Constant(c) => c.len() == 1,
                _ => false,
            };
            op_ok && n.shape.dims().iter().all(|d| d.known() == Some(1))
        });
        let out = graph.outputs.first().map(|&o| graph.nodes[o].dtype);
        (elementwise && out == Some(DType::F32))
            .then(|| ElementwiseActivation::Graph(Arc::new(graph)))
    }
}
