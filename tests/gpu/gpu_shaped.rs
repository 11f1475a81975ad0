//! The kernels Lamina builds for real GPUs (workgroup-wide reductions, the tiled matmul through
//! workgroup memory, matmuls computing fused operands; convolutions have their own tests in
//! `gpu_conv.rs`) run on any adapter when `GpuOptions::gpu_shaped_kernels` asks for them: here they run on the CI's
//! lavapipe and must agree with the CPU interpreter. Without an adapter the tests say so and
//! pass, unless `LAMINA_REQUIRE_GPU=1`.
#![cfg(feature = "gpu")] // compares the CPU interpreter with the GPU backend

use crate::common;

use lamina::bench::seeded;
use lamina::prelude::*;
use lamina::{GpuBackend, GpuOptions};
use std::sync::Arc;

/// A GPU backend building GPU-shaped kernels whatever the adapter, or `None` without one.
fn gpu_shaped() -> Option<Arc<GpuBackend>> {
    common::gpu()?;
    Some(Arc::new(
        GpuBackend::with_options(GpuOptions {
            gpu_shaped_kernels: true,
            ..Default::default()
        })
        .expect("a second backend on the adapter that the shared one opened"),
    ))
}

/// Runs `model` on the CPU and on GPU-shaped kernels; asserts they agree within `rel` of the
/// largest magnitude of each output (f32 sums added in another order).
fn agree(name: &str, model: &Model, inputs: &[HostTensor], rel: f32) -> Result<()> {
    let cpu = Session::new(model.program().clone(), BackendKind::Cpu)?.run(inputs)?;
    let Some(g) = gpu_shaped() else {
        return Ok(());
    };
    let gpu = Session::with_backend(model.program().clone(), Arc::new(g)).run(inputs)?;
    common::assert_agree_to_scale(name, &cpu, &gpu, rel);
    Ok(())
}

fn input(shape: &[usize], seed: u32) -> Result<HostTensor> {
    HostTensor::new(shape, seeded(shape.iter().product(), seed))
}

#[test]
fn workgroup_reductions_agree_with_the_cpu() -> Result<()> {
    // Rows of 1,000 and 5,000 elements: one workgroup of 256 threads per row.
    let x = Input::new(&[1000]).tensor();
    let soft = Softmax::new().call(&x)?;
    let model = Model::new(&[x], &[soft])?;
    agree("softmax", &model, &[input(&[37, 1000], 1)?], 1e-5)?;

    let x = Input::new(&[5000]).tensor();
    let norm = LayerNormalization::new().call(&x)?;
    let model = Model::new(&[x], &[norm])?;
    agree("layer norm", &model, &[input(&[9, 5000], 2)?], 1e-5)?;

    // Sum, max and mean over the middle axis, argmax over the last.
    let x = Input::new(&[300, 7]).tensor();
    let stats = Lambda::new(|t| {
        let s = t.sum(1);
        let m = t.max(1);
        let a = t.mean(1);
        &(&s + &m) + &a
    })
    .call(&x)?;
    let model = Model::new(&[x], &[stats])?;
    agree(
        "middle-axis reductions",
        &model,
        &[input(&[5, 300, 7], 3)?],
        1e-5,
    )?;

    let x = Input::new(&[3000]).tensor();
    let arg = Lambda::new(|t| t.argmax(-1).cast(DType::F32)).call(&x)?;
    let model = Model::new(&[x], &[arg])?;
    agree("argmax", &model, &[input(&[11, 3000], 4)?], 0.0)?;
    Ok(())
}

#[test]
fn tiled_matmuls_agree_with_the_cpu() -> Result<()> {
    // Ragged sizes (not multiples of the 64x64 tile), a bias and relu in the epilogue.
    let x = Input::new(&[300]).tensor();
    let dense = Dense::new(150).activation(Activation::Relu);
    let y = dense.call(&x)?;
    let model = Model::new(&[x], &[y])?;
    agree("dense relu", &model, &[input(&[200, 300], 5)?], 1e-5)?;

    // A batched product with a transposed operand (read through its strides).
    let a = Input::new(&[70, 40]).tensor();
    let b = Input::new(&[90, 40]).tensor();
    let p = Lambda::with_scope(|t, _| t[0].matmul(&t[1].swapaxes(-1, -2)))
        .call(&[a.clone(), b.clone()])?;
    let model = Model::new(&[a, b], &[p])?;
    agree(
        "batched matmul with a transpose",
        &model,
        &[input(&[3, 70, 40], 6)?, input(&[3, 90, 40], 7)?],
        1e-5,
    )?;
    Ok(())
}
