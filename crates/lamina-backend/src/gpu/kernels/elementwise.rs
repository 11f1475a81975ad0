//! One thread per output element. The thread's linear index is the output's and, for every
//! operand of the same shape, the operand's too: such reads need no division per axis.

use crate::gpu::ir::{BufferRef, Builder, Builtin, Expr, IndexOp, Stmt};
use crate::gpu::lower::{Coords, Label, Lowerer};
use lamina_graph::{Program, Result};

/// Threads per workgroup of elementwise kernels.
pub const WG: u32 = 256;

/// The elementwise kernel computing `root` over its whole shape.
pub fn build(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    root: usize,
) -> Result<crate::gpu::ir::Kernel> {
    let mut lw = Lowerer::new(Builder::new("elementwise", WG), prog, shapes, mat);
    lw.set_root(root);
    let shape = shapes[root].clone();
    let total: usize = shape.iter().product();
    let t = lw.b.let_(
        lamina_graph::DType::U32,
        Expr::Builtin(Builtin::GlobalIndex),
    );
    let n = lw.b.param("total", total as u32);
    let outside = lw.b.index(IndexOp::Less, t, n);
    let outside = lw.b.let_(
        lamina_graph::DType::Bool,
        Expr::Unary(
            lamina_graph::op::UnaryOp::Not,
            lamina_graph::DType::Bool,
            outside,
        ),
    );
    lw.b.push(Stmt::ReturnIf(outside));
    let coords = Coords::Linear {
        index: t,
        shape: shape.clone(),
        labels: (0..shape.len()).map(Label::Thread).collect(),
    };
    let v = lw.value(root, coords)?;
    lw.b.store(BufferRef::Node(root), prog.nodes[root].dtype, t, v);
    Ok(lw.b.finish((total as u64).div_ceil(WG as u64), None))
}
