//! Elementwise kernels: each thread computes the elements `t, t + threads, t + 2 threads, ...`
//! (neighbouring threads on neighbouring elements, so reads and writes coalesce). The linear
//! index is the output's and, for every operand of the same shape, the operand's too: such
//! reads need no division per axis. Big tensors take a bounded number of workgroups, each
//! thread looping a bounded number of times, which spares CPU-hosted adapters the cost of
//! starting many small workgroups.

use crate::gpu::ir::{BufferRef, Builder, Builtin, Expr};
use crate::gpu::lower::{Coords, Label, Lowerer};
use lamina_graph::{DType, Program, Result};

/// Threads per workgroup of elementwise kernels.
pub const WG: u32 = 256;
/// The most elements one thread computes.
const MAX_PER_THREAD: usize = 64;

/// How many workgroups an elementwise kernel over `total` elements dispatches: up to
/// `target` workgroups of one element per thread, then more elements per thread (at most
/// `MAX_PER_THREAD`), then more workgroups.
fn workgroups(total: usize, target: usize) -> usize {
    let one_each = total.div_ceil(WG as usize).max(1);
    if one_each <= target {
        return one_each;
    }
    let per_thread = one_each.div_ceil(target).min(MAX_PER_THREAD);
    one_each.div_ceil(per_thread)
}

/// The elementwise kernel computing `root` over its whole shape. `gpu_shaped` picks many
/// workgroups (GPUs) or few, each looping longer (CPU-hosted adapters).
pub fn build(
    prog: &Program,
    shapes: &[Vec<usize>],
    mat: &dyn Fn(usize) -> bool,
    root: usize,
    gpu_shaped: bool,
) -> Result<crate::gpu::ir::Kernel> {
    let mut lw = Lowerer::new(Builder::new("elementwise", WG), prog, shapes, mat);
    lw.set_root(root);
    let shape = shapes[root].clone();
    let total: usize = shape.iter().product();
    let groups = workgroups(total, if gpu_shaped { 16_384 } else { 256 });
    let threads = groups * WG as usize;
    let t = lw.b.let_(DType::U32, Expr::Builtin(Builtin::GlobalIndex));
    let n = lw.b.param("total", total as u32);
    let dtype = prog.nodes[root].dtype;
    let labels: Vec<Label> = (0..shape.len()).map(Label::Thread).collect();
    if threads >= total {
        lw.b.return_unless_below(t, n);
        let coords = Coords::Linear {
            index: t,
            shape: shape.clone(),
            labels,
        };
        let v = lw.value(root, coords)?;
        lw.b.store(BufferRef::Node(root), dtype, t, v);
    } else {
        let step = lw.b.param("threads", threads as u32);
        lw.loop_(t, n, step, |lw, i| {
            let coords = Coords::Linear {
                index: i,
                shape: shape.clone(),
                labels,
            };
            let v = lw.value(root, coords)?;
            lw.b.store(BufferRef::Node(root), dtype, i, v);
            Ok(())
        })?;
    }
    Ok(lw.b.finish(groups as u64, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workgroups_cover_every_element_with_bounded_loops() {
        for &target in &[256usize, 16_384] {
            for &total in &[1usize, 255, 256, 257, 1 << 20, 16_777_216, 4_294_967_295] {
                let g = workgroups(total, target);
                let threads = g * WG as usize;
                assert!(
                    threads.saturating_mul(MAX_PER_THREAD) >= total,
                    "{total} {target}"
                );
                assert!(total.div_ceil(threads) <= MAX_PER_THREAD);
                assert!(
                    g <= target
                        || total.div_ceil(threads) == MAX_PER_THREAD
                        || g == total.div_ceil(256)
                );
            }
        }
    }
}
