//! What the integration tests share: the GPU backend when an adapter exists.

pub mod crafted;

use lamina::GpuBackend;
use std::sync::Arc;

/// The shared GPU backend, or `None` (with a line saying so) where there is no adapter; with
/// `LAMINA_REQUIRE_GPU=1`, as in CI, a missing adapter fails the test instead. The first call
/// names the adapter on stderr, past the test harness's capture, so that CI logs show it.
pub fn gpu() -> Option<Arc<GpuBackend>> {
    match lamina::shared_gpu() {
        Ok(g) => {
            static NAMED: std::sync::Once = std::sync::Once::new();
            NAMED.call_once(|| {
                use std::io::Write;
                let line = format!("GPU tests run on: {}\n", g.context().adapter);
                let _ = std::io::stderr().write_all(line.as_bytes());
            });
            Some(g)
        }
        Err(e) => {
            if std::env::var("LAMINA_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("LAMINA_REQUIRE_GPU=1 but there is no GPU adapter: {e}");
            }
            // Once per test binary, past the harness's capture (which hides what a passing
            // test prints), so that a run without an adapter says its GPU parts did not run.
            static SKIPPED: std::sync::Once = std::sync::Once::new();
            SKIPPED.call_once(|| {
                use std::io::Write;
                let line = format!("GPU parts of these tests skipped: {e}\n");
                let _ = std::io::stderr().write_all(line.as_bytes());
            });
            eprintln!("skipping the GPU part: {e}");
            None
        }
    }
}

/// Runs a model on the CPU and, where there is an adapter, on the GPU; asserts the two agree
/// (same shapes and dtypes, values within 2e-5 relative and 1e-6 absolute, NaN matching NaN,
/// infinities exactly) and returns the CPU's outputs.
#[allow(dead_code)]
pub fn run_both(model: &lamina::Model, inputs: &[lamina::HostTensor]) -> Vec<lamina::HostTensor> {
    let (cpu, gpu) = run_on_each(model, inputs);
    if let Some(gpu) = gpu {
        assert_eq!(
            cpu.len(),
            gpu.len(),
            "the backends give different output counts"
        );
        for (c, g) in cpu.iter().zip(&gpu) {
            assert_eq!(c.shape(), g.shape());
            assert_eq!(c.dtype(), g.dtype());
            for (i, (a, b)) in c.to_f32_vec().iter().zip(g.to_f32_vec()).enumerate() {
                let ok =
                    (a.is_nan() && b.is_nan()) || *a == b || (a - b).abs() <= 1e-6 + 2e-5 * a.abs();
                assert!(ok, "element {i}: cpu {a} vs gpu {b}");
            }
        }
    }
    cpu
}

/// Runs a model on the CPU and, where there is an adapter, on the GPU; asserts the two agree
/// within `rel` of each output's largest magnitude (for sums that the backends form in
/// different ways, where a value near zero keeps fewer digits of its own) and returns the
/// CPU's outputs.
#[allow(dead_code)]
pub fn run_both_to_scale(
    model: &lamina::Model,
    inputs: &[lamina::HostTensor],
    rel: f32,
) -> Vec<lamina::HostTensor> {
    let (cpu, gpu) = run_on_each(model, inputs);
    if let Some(gpu) = gpu {
        assert_agree_to_scale("cpu against gpu", &cpu, &gpu, rel);
    }
    cpu
}

/// A model's outputs on the CPU and, where there is an adapter, on the GPU.
#[allow(dead_code)]
fn run_on_each(
    model: &lamina::Model,
    inputs: &[lamina::HostTensor],
) -> (Vec<lamina::HostTensor>, Option<Vec<lamina::HostTensor>>) {
    use lamina::{BackendKind, Session};
    let cpu = Session::new(model.program().clone(), BackendKind::Cpu)
        .unwrap()
        .run(inputs)
        .unwrap();
    let gpu = gpu().map(|g| {
        Session::with_backend(model.program().clone(), Arc::new(g))
            .run(inputs)
            .unwrap()
    });
    (cpu, gpu)
}

/// Asserts that two backends' outputs have the same count and shapes and agree element by
/// element within `rel` of each output's largest finite magnitude (sums added in another
/// order), NaN matching NaN and infinities matching exactly.
#[allow(dead_code)]
pub fn assert_agree_to_scale(
    name: &str,
    cpu: &[lamina::HostTensor],
    gpu: &[lamina::HostTensor],
    rel: f32,
) {
    assert_eq!(cpu.len(), gpu.len(), "{name}: output counts");
    for (c, g) in cpu.iter().zip(gpu) {
        assert_eq!(c.shape(), g.shape(), "{name}");
        let (c, g) = (c.to_f32_vec(), g.to_f32_vec());
        let scale = c
            .iter()
            .filter(|v| v.is_finite())
            .fold(0f32, |m, v| m.max(v.abs()))
            .max(1e-30);
        for (i, (a, b)) in c.iter().zip(&g).enumerate() {
            let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= rel * scale;
            assert!(
                ok,
                "{name}: element {i}: cpu {a} vs gpu {b} (scale {scale})"
            );
        }
    }
}
