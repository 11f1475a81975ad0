//! Per-kernel GPU times from timestamp queries: one timing per kernel, in dispatch order, each
//! finite and non-negative, named after the kernel it times.
//!
//! Where no adapter exists the test says so and passes, unless `LAMINA_REQUIRE_GPU=1`; where
//! the adapter has no timestamp queries it says so and passes.
#![cfg(feature = "gpu")] // compares the CPU interpreter with the GPU backend

use lamina::prelude::*;
use lamina::{Backend, GpuBackend, GpuOptions};
use std::sync::Arc;

use crate::common;
use common::gpu;

/// Softmax over rows (a row kernel), then a product with a constant (a matmul kernel).
fn two_kernel_model() -> Model {
    let w = HostTensor::new(
        &[64, 16],
        (0..64 * 16).map(|i| (i % 7) as f32 - 3.0).collect(),
    )
    .unwrap();
    let x = Input::new(&[64]).tensor();
    let y = Lambda::new(move |x| x.softmax(-1).matmul(&Tensor::constant(w.clone())))
        .call(&x)
        .unwrap();
    Model::new(&[x], &[y]).unwrap()
}

#[test]
fn one_timing_per_kernel() {
    let Some(g) = gpu() else { return };
    let model = two_kernel_model();
    let x = HostTensor::new(
        &[32, 64],
        (0..32 * 64).map(|i| (i % 17) as f32 * 0.25).collect(),
    )
    .unwrap();
    let shapes = vec![x.shape().to_vec()];
    let program = model.program();
    let backend: Arc<GpuBackend> = g.clone();
    let exe = backend
        .compile(program, &shapes, &MemoryBudget::unlimited())
        .unwrap();
    let Some(timings) = exe.kernel_timings(std::slice::from_ref(&x), 3) else {
        assert!(!g.context().supports_timestamps());
        eprintln!(
            "skipping: {} has no timestamp queries (wgpu TIMESTAMP_QUERY)",
            g.context().adapter
        );
        return;
    };
    let timings = timings.unwrap();
    let kernels =
        GpuBackend::kernels_for(program, &shapes, g.context().limits.max_storage_buffers).unwrap();
    let kinds: Vec<&str> = kernels.iter().map(|k| k.kind).collect();
    assert_eq!(
        kinds,
        ["row", "matmul"],
        "the model should plan to two kernels"
    );
    let all_shapes = program.specialize(&shapes).unwrap();
    assert_eq!(timings.len(), kernels.len());
    for (t, k) in timings.iter().zip(&kernels) {
        assert_eq!(t.kind, k.kind);
        assert_eq!(t.output, k.output);
        let op = program.nodes[k.output].op.name();
        assert_eq!(t.label, format!("{op} {:?}", all_shapes[k.output]));
        assert!(
            t.seconds.is_finite() && t.seconds >= 0.0,
            "{} took {} s",
            t.label,
            t.seconds
        );
    }
    // The timed runs leave the results as an ordinary run gives them.
    let y = exe.run(std::slice::from_ref(&x)).unwrap();
    assert_eq!(y[0].shape(), &[32, 16]);
}

#[test]
fn no_timings_without_timestamps() {
    if gpu().is_none() {
        return;
    }
    let g = Arc::new(
        GpuBackend::with_options(GpuOptions {
            no_timestamps: true,
            ..Default::default()
        })
        .unwrap(),
    );
    assert!(!g.context().supports_timestamps());
    assert_eq!(g.context().timestamp_period_ns(), None);
    let model = two_kernel_model();
    let x = HostTensor::new(&[4, 64], vec![0.5; 4 * 64]).unwrap();
    let exe = g
        .compile(model.program(), &[vec![4, 64]], &MemoryBudget::unlimited())
        .unwrap();
    assert!(exe.kernel_timings(std::slice::from_ref(&x), 2).is_none());
    // Runs as usual.
    assert_eq!(exe.run(&[x]).unwrap()[0].shape(), &[4, 16]);
}
