//! Deep graphs are built, run and dropped without recursion (no stack overflow).
#![cfg(feature = "gpu")] // compares the CPU interpreter with the GPU backend

use lamina::prelude::*;

#[test]
fn a_chain_of_100k_ops_builds_runs_and_drops() -> Result<()> {
    // Test threads have small stacks, so a recursive walk or drop would overflow here.
    let x = Input::new(&[1]).tensor();
    let y = Lambda::new(|x| {
        let mut t = x.clone();
        for _ in 0..100_000 {
            t = &t + 1.0;
        }
        t
    })
    .call(&x)?;
    let m = Model::new(&[x], &[y])?;
    // On the CPU: one fused GPU kernel of 100k ops is a compile-time stress test of its own.
    let cpu = Session::new(m.program().clone(), BackendKind::Cpu)?;
    let out = cpu.run(&[HostTensor::new(&[1, 1], vec![0.5f32])?])?;
    assert_eq!(out[0].as_f32()?, &[100_000.5]);
    drop(m);
    Ok(())
}

#[test]
fn a_long_chain_splits_into_several_gpu_kernels() -> Result<()> {
    // 10,000 fused ops would make one huge shader; the planner splits it.
    let x = Input::new(&[1]).tensor();
    let y = Lambda::new(|x| {
        let mut t = x.clone();
        for _ in 0..10_000 {
            t = &t * 1.0001;
        }
        t
    })
    .call(&x)?;
    let m = Model::new(&[x], &[y])?;
    let kernels = lamina::GpuBackend::kernels_for(m.program(), &[vec![1, 1]], 8)?;
    assert!(kernels.len() >= 5, "{} kernels", kernels.len());
    let input = [HostTensor::new(&[1, 1], vec![1.0f32])?];
    let cpu = Session::new(m.program().clone(), BackendKind::Cpu)?.run(&input)?;
    if let Ok(g) = lamina::shared_gpu() {
        let gpu = Session::with_backend(m.program().clone(), std::sync::Arc::new(g)).run(&input)?;
        let (c, g) = (cpu[0].as_f32()?[0], gpu[0].as_f32()?[0]);
        // 10,000 roundings each way; drivers may reassociate the constant products.
        assert!((c - g).abs() <= 1e-3 * c.abs(), "cpu {c} gpu {g}");
    }
    Ok(())
}
