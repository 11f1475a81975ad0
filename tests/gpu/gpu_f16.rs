//! f16 storage on the GPU (`GpuOptions::f16_storage`, `LAMINA_GPU_F16=1`): float32 tensors of
//! the program (inputs, weights, constants, intermediates, outputs) are stored as f16 and
//! computed in f32; scratch buffers of multi-pass kernels stay f32; integer buffers unchanged.
//!
//! Host-only: the kernels of a few models, built with f16 storage, pass naga's validation, and
//! declare exactly their float32 node buffers as `array<f16>`.
//!
//! On an adapter offering `SHADER_F16` (lavapipe does; skipped without an adapter unless
//! `LAMINA_REQUIRE_GPU=1`, and skipped with a line where the adapter lacks the feature): an
//! MLP, a softmax and long reductions agree with the CPU interpreter within bounds derived from
//! f16's precision; values exactly representable in f16 come back exactly (integer outputs
//! included); transfers and the memory plan count 2 bytes an element; and asking for f16
//! storage where the adapter lacks it is an error naming the feature.
#![cfg(feature = "gpu")] // compares the CPU interpreter with the GPU backend

use lamina::prelude::*;
use lamina::{Backend, GpuBackend, GpuOptions, MemoryBudget};
use lamina_backend::unstable::ir::BufferRef;
use std::sync::{Arc, OnceLock};

use crate::common;
use common::gpu;

/// The unit roundoff of f16: rounding a value to nearest (even) changes it by at most this
/// fraction of its magnitude (half the spacing of f16's 11-bit significands).
const F16_U: f32 = 1.0 / 2048.0;

/// Deterministic values in [-2, 2).
fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            4.0 * ((s >> 8) as f32 / (1u32 << 24) as f32) - 2.0
        })
        .collect()
}

fn one_lambda(
    per_sample: &[usize],
    f: impl Fn(&Tensor) -> Tensor + Send + Sync + 'static,
) -> Model {
    let x = Input::new(per_sample).tensor();
    let y = Lambda::new(f).call(&x).unwrap();
    Model::new(&[x], &[y]).unwrap()
}

fn mlp() -> Model {
    let mut m = Sequential::new();
    m.add(Input::new(&[64])).unwrap();
    m.add(Dense::new(128).activation(Activation::Relu).seed(1))
        .unwrap();
    m.add(Dense::new(32).activation(Activation::Relu).seed(2))
        .unwrap();
    m.add(Dense::new(10).seed(3)).unwrap();
    m.model().unwrap()
}

fn layer_norm(x: &Tensor) -> Tensor {
    let c = x - x.mean_keepdims(-1);
    let v = (&c * &c).mean_keepdims(-1);
    &c / (v + 1e-5).sqrt()
}

/// Validates WGSL as wgpu does on a device with `SHADER_F16`: naga with the f16 capability.
fn validate(what: &str, src: &str) {
    let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| {
        panic!(
            "{what}: naga cannot parse the kernel: {}\n{src}",
            e.emit_to_string(src)
        )
    });
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{what}: naga rejects the kernel: {e:?}\n{src}"));
}

// ---------------------------------------------------------------------------------------------
// Host-only: kernels with f16 storage validate
// ---------------------------------------------------------------------------------------------

/// Builds the kernels of `m` with f16 storage, validates each, checks which bindings are f16,
/// and returns how many kernels bind a scratch buffer (which must stay f32).
fn check_f16_kernels(what: &str, m: &Model, shapes: &[Vec<usize>]) -> usize {
    let prog = m.program();
    let kernels = GpuBackend::kernels_for_f16(prog, shapes, 8)
        .unwrap_or_else(|e| panic!("{what}: kernels_for_f16 failed: {e}"));
    let mut with_scratch = 0;
    for (i, k) in kernels.iter().enumerate() {
        let what = format!("{what} (kernel {i}, {})", k.kind);
        validate(&what, &k.wgsl);
        let mut any_f16 = false;
        for (j, b) in k.bindings.iter().enumerate() {
            let decl = format!("b{j}: array<");
            let ty = k.wgsl[k.wgsl.find(&decl).unwrap() + decl.len()..]
                .split('>')
                .next()
                .unwrap();
            let f16 = match b.buffer {
                BufferRef::Node(n) => prog.nodes[n].dtype == DType::F32,
                BufferRef::Scratch(_) => {
                    with_scratch += 1;
                    false
                }
            };
            any_f16 |= f16;
            assert_eq!(
                ty == "f16",
                f16,
                "{what}: binding {j} ({:?}, {:?}) is declared array<{ty}>",
                b.buffer,
                b.dtype
            );
        }
        assert_eq!(
            k.wgsl.starts_with("enable f16;"),
            any_f16,
            "{what}: `enable f16;` exactly when a binding is f16\n{}",
            k.wgsl
        );
    }
    // The f32 kernels (what snapshots see) are unchanged by the option.
    for k in GpuBackend::kernels_for(prog, shapes, 8).unwrap() {
        assert!(
            !k.wgsl.contains("f16"),
            "{what}: an f32 kernel mentions f16"
        );
    }
    with_scratch
}

#[test]
fn kernels_with_f16_storage_pass_naga_validation() {
    check_f16_kernels("dense + relu", &mlp(), &[vec![3, 64]]);
    check_f16_kernels(
        "softmax",
        &one_lambda(&[10], |x| x.softmax(-1)),
        &[vec![4, 10]],
    );
    check_f16_kernels("layernorm", &one_lambda(&[32], layer_norm), &[vec![4, 32]]);
    check_f16_kernels(
        "layernorm, long rows",
        &one_lambda(&[5000], layer_norm),
        &[vec![2, 5000]],
    );
    let scratch = check_f16_kernels(
        "long-axis sum",
        &one_lambda(&[200_000], |x| x.sum(-1)),
        &[vec![2, 200_000]],
    );
    assert!(
        scratch > 0,
        "a long-axis sum runs in passes through scratch"
    );
    check_f16_kernels(
        "long-axis argmax (an i32 output)",
        &one_lambda(&[200_000], |x| x.argmax(-1)),
        &[vec![2, 200_000]],
    );
    check_f16_kernels(
        "long-axis cumsum",
        &one_lambda(&[100_000], |x| x.cumsum(-1)),
        &[vec![2, 100_000]],
    );
    let w = HostTensor::new(&[48, 24], data(48 * 24, 7)).unwrap();
    check_f16_kernels(
        "matmul with an epilogue",
        &one_lambda(&[48], move |x| {
            (x.matmul(&Tensor::constant(w.clone())) + 0.5).relu()
        }),
        &[vec![16, 48]],
    );
    check_f16_kernels(
        "batched matmul",
        &one_lambda(&[8, 6], |x| x.matmul(&x.swapaxes(1, 2)).tanh()),
        &[vec![3, 8, 6]],
    );
    check_f16_kernels(
        "matmul with a long inner dimension",
        &one_lambda(&[16384], |x| x.matmul(&x.swapaxes(0, 1))),
        &[vec![4, 16384]],
    );
    check_f16_kernels(
        "mixed dtypes",
        &one_lambda(&[6], |x| {
            let mask = x.greater(0.0);
            Tensor::where_(&mask, x, x * 0.5) + x.argmax_keepdims(-1).cast(DType::F32)
        }),
        &[vec![5, 6]],
    );
}

// ---------------------------------------------------------------------------------------------
// On an adapter with SHADER_F16
// ---------------------------------------------------------------------------------------------

/// A backend with f16 storage of its own (counters not shared with other tests), or `None`
/// with a line saying why: no adapter (an error with `LAMINA_REQUIRE_GPU=1`), or an adapter
/// without `SHADER_F16`.
fn private_f16_gpu() -> Option<Arc<GpuBackend>> {
    let g = gpu()?;
    if !g.context().adapter_offers_f16() {
        eprintln!(
            "skipping the f16 part: {} does not offer SHADER_F16",
            g.context().adapter
        );
        return None;
    }
    let f16 = GpuBackend::with_options(GpuOptions {
        f16_storage: true,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("the adapter offers SHADER_F16, yet: {e}"));
    assert!(f16.context().f16_storage());
    Some(Arc::new(f16))
}

/// One f16 backend shared by the tests that only compare values.
fn f16_gpu() -> Option<Arc<GpuBackend>> {
    static G: OnceLock<Option<Arc<GpuBackend>>> = OnceLock::new();
    G.get_or_init(private_f16_gpu).clone()
}

fn cpu_run(m: &Model, inputs: &[HostTensor]) -> Vec<f32> {
    Session::new(m.program().clone(), BackendKind::Cpu)
        .unwrap()
        .run(inputs)
        .unwrap()[0]
        .to_f32_vec()
}

fn gpu_run(g: &Arc<GpuBackend>, m: &Model, inputs: &[HostTensor]) -> Vec<f32> {
    let out = Session::with_backend(m.program().clone(), Arc::new(g.clone()))
        .run(inputs)
        .unwrap();
    assert_eq!(out[0].dtype(), DType::F32, "read back as float32");
    out[0].to_f32_vec()
}

/// Asserts `|gpu - cpu| <= bound(i, cpu)` element by element; returns the largest ratio of
/// error to bound (printed, to show the margin).
fn assert_within(what: &str, cpu: &[f32], gpu: &[f32], bound: impl Fn(usize, f32) -> f32) -> f32 {
    assert_eq!(cpu.len(), gpu.len(), "{what}");
    let mut worst = 0.0f32;
    for (i, (&c, &g)) in cpu.iter().zip(gpu).enumerate() {
        let b = bound(i, c);
        let err = (g - c).abs();
        assert!(
            err <= b,
            "{what}: element {i}: cpu {c} vs gpu {g} (error {err}, bound {b})"
        );
        worst = worst.max(err / b);
    }
    eprintln!(
        "{what}: largest error is {:.0}% of its bound",
        worst * 100.0
    );
    worst
}

#[test]
fn an_mlp_agrees_with_the_cpu_within_f16_precision() {
    let Some(g) = f16_gpu() else { return };
    let m = mlp();
    let x = [HostTensor::new(&[8, 64], data(8 * 64, 3)).unwrap()];
    let (cpu, gpu) = (cpu_run(&m, &x), gpu_run(&g, &m, &x));
    // Every stored value is rounded to f16, a relative error of at most F16_U: the input, each
    // layer's weights and biases, each layer's (stored) activations and the output: five
    // roundings between the input and an output. A dot product's error is relative to the
    // magnitudes of its terms, not to its (possibly cancelling) result, so the bound is
    // relative to the output's scale (its largest magnitude) as well as to the element:
    // 8 * F16_U (~4e-3) of (|element| + scale), with a margin over five roundings for the
    // sums of many rounded terms.
    let scale = cpu.iter().fold(0.0f32, |a, &c| a.max(c.abs()));
    assert!(scale > 0.1, "the outputs are not all tiny ({scale})");
    assert_within("mlp", &cpu, &gpu, |_, c| 8.0 * F16_U * (c.abs() + scale));
}

#[test]
fn a_softmax_agrees_with_the_cpu_within_f16_precision() {
    let Some(g) = f16_gpu() else { return };
    let m = one_lambda(&[100], |x| x.softmax(-1));
    let x = [HostTensor::new(&[8, 100], data(800, 5)).unwrap()];
    let (cpu, gpu) = (cpu_run(&m, &x), gpu_run(&g, &m, &x));
    // The logits (|x| < 2) are rounded to f16: each moves by at most 2 * F16_U. softmax_i
    // changes by a factor exp(dx_i - sum_j p_j dx_j), at most exp(2 * 2 * F16_U), about
    // 4 * F16_U relative; the output is rounded once more (F16_U). Bound: 6 * F16_U (~3e-3)
    // relative to each probability, and an absolute floor for the smallest ones.
    let rel = 6.0 * F16_U;
    assert_within("softmax", &cpu, &gpu, |_, c| rel * c.abs() + 1e-7);
    // Rows still sum to one, up to the output rounding.
    for row in gpu.chunks(100) {
        let s: f32 = row.iter().sum();
        assert!((s - 1.0).abs() <= 2.0 * F16_U, "a row sums to {s}");
    }
}

#[test]
fn long_reductions_agree_with_the_cpu_within_f16_precision() {
    let Some(g) = f16_gpu() else { return };
    let (rows, n) = (2, 100_000);
    let xs = data(rows * n, 9);
    let x = [HostTensor::new(&[rows, n], xs.clone()).unwrap()];
    // Sum: each of the n inputs moves by at most F16_U of itself when stored, so the sum by at
    // most F16_U * sum |x_i|; partial sums stay f32 in scratch (their own rounding, about
    // 2^-24 per addition on both backends, is far below that); the result is rounded once
    // more (F16_U of itself).
    let abs_sums: Vec<f32> = xs
        .chunks(n)
        .map(|r| r.iter().map(|v| v.abs()).sum())
        .collect();
    let sum = one_lambda(&[n], |x| x.sum(-1));
    let (cpu, gpu) = (cpu_run(&sum, &x), gpu_run(&g, &sum, &x));
    assert_within("long sum", &cpu, &gpu, |i, c| {
        F16_U * (abs_sums[i] + c.abs())
    });
    // Mean: the same, divided by n.
    let mean = one_lambda(&[n], |x| x.mean(-1));
    let (cpu, gpu) = (cpu_run(&mean, &x), gpu_run(&g, &mean, &x));
    assert_within("long mean", &cpu, &gpu, |i, c| {
        F16_U * (abs_sums[i] / n as f32 + c.abs())
    });
    // Max: rounding is monotonic, so the max of the rounded inputs is the rounded max.
    let max = one_lambda(&[n], |x| x.max(-1));
    let (cpu, gpu) = (cpu_run(&max, &x), gpu_run(&g, &max, &x));
    assert_within("long max", &cpu, &gpu, |_, c| F16_U * c.abs());
}

#[test]
fn values_exact_in_f16_come_back_exactly() {
    let Some(g) = f16_gpu() else { return };
    // Multiples of 1/64 in [-4, 4): exact in f16, and so are x * 2 + 1 and their sums of
    // eight (at most 10 bits of significand). The argmax (an i32 buffer) sees the same values
    // as the CPU, so it matches exactly too.
    let xs: Vec<f32> = data(6 * 8, 13)
        .iter()
        .map(|v| (v * 128.0).floor() / 64.0)
        .collect();
    let x = [HostTensor::new(&[6, 8], xs).unwrap()];
    let x_in = Input::new(&[8]).tensor();
    let y = Lambda::new(|x| x * 2.0 + 1.0).call(&x_in).unwrap();
    let s = Lambda::new(|y| y.sum(-1)).call(&y).unwrap();
    let a = Lambda::new(|y| y.argmax(-1)).call(&y).unwrap();
    let m = Model::new(&[x_in], &[y, s, a]).unwrap();
    let cpu = Session::new(m.program().clone(), BackendKind::Cpu)
        .unwrap()
        .run(&x)
        .unwrap();
    let gpu = Session::with_backend(m.program().clone(), Arc::new(g.clone()))
        .run(&x)
        .unwrap();
    for (c, g) in cpu.iter().zip(&gpu) {
        assert_eq!(c.dtype(), g.dtype());
        assert_eq!(c.to_f32_vec(), g.to_f32_vec(), "{:?} output", c.dtype());
    }
}

#[test]
fn transfers_and_the_memory_plan_count_two_bytes_an_element() {
    let Some(g) = private_f16_gpu() else { return };
    let m = one_lambda(&[7], |x| x * 2.0);
    let x = [HostTensor::new(&[5, 7], data(35, 1)).unwrap()];
    let s = Session::with_backend(m.program().clone(), Arc::new(g.clone()));
    s.run(&x).unwrap();
    let before = g.stats();
    s.run(&x).unwrap();
    let d = g.stats().since(&before);
    // 35 f16 values: 70 bytes read back; uploaded padded to whole 4-byte words.
    assert_eq!(d.bytes_read_back, 70);
    assert_eq!(d.bytes_uploaded, 72);
    // The plan holds the input, the output and its read-back copy: 3 * 4096 elements, 24 KiB
    // in f16 and 48 KiB in f32; a 36 KiB budget admits only the first.
    let m = one_lambda(&[4096], |x| x * 2.0);
    let budget = MemoryBudget::bytes(36 * 1024);
    g.compile(m.program(), &[vec![1, 4096]], &budget)
        .unwrap_or_else(|e| panic!("f16 storage fits 36 KiB: {e}"));
    let f32_gpu = gpu().unwrap();
    assert!(
        f32_gpu
            .compile(m.program(), &[vec![1, 4096]], &budget)
            .is_err(),
        "f32 storage does not fit 36 KiB"
    );
}

#[test]
fn f16_storage_without_shader_f16_is_an_error() {
    let Some(shared) = gpu() else { return };
    let asked = GpuBackend::with_options(GpuOptions {
        f16_storage: true,
        ..Default::default()
    });
    match (shared.context().adapter_offers_f16(), asked) {
        (true, Ok(g)) => {
            let g = Arc::new(g);
            assert!(g.context().f16_storage());
            assert!(g.name().contains("f16 storage"), "{}", g.name());
            eprintln!(
                "{} offers SHADER_F16; the refusal is checked only on adapters without it",
                shared.context().adapter
            );
        }
        (false, Err(e)) => {
            let e = e.to_string();
            assert!(e.contains("SHADER_F16"), "the error names the feature: {e}");
        }
        (offers, Ok(_)) => panic!("offers SHADER_F16: {offers}, yet f16 storage opened"),
        (offers, Err(e)) => panic!("offers SHADER_F16: {offers}, yet: {e}"),
    }
    // Without the option nothing changes.
    assert!(!shared.context().f16_storage());
}

#[test]
fn convolutions_and_recurrent_loops_agree_with_the_cpu_within_f16_precision() {
    let Some(g) = f16_gpu() else { return };
    // A convolution block: 3x3 convolution with BatchNormalization folded in and relu6, a
    // depthwise 3x3, a 1x1 projection. The input, weights and each kernel's output are rounded
    // to f16 (about six roundings between input and output); sums of rounded terms are bounded
    // relative to the output's scale, as for the MLP, with room for the longer chain.
    let x = Input::new(&[8, 8, 4]).tensor();
    let h = Conv2D::new(8, 3).padding(Padding::Same).call(&x).unwrap();
    let h = BatchNormalization::new().call(&h).unwrap();
    let h = ReLU::new().max_value(6.0).call(&h).unwrap();
    let h = DepthwiseConv2D::new(3)
        .padding(Padding::Same)
        .call(&h)
        .unwrap();
    let y = Conv2D::new(6, 1).call(&h).unwrap();
    let m = Model::new(&[x], &[y]).unwrap();
    let input = [HostTensor::new(&[2, 8, 8, 4], data(2 * 8 * 8 * 4, 9)).unwrap()];
    let (cpu, gpu) = (cpu_run(&m, &input), gpu_run(&g, &m, &input));
    let scale = cpu.iter().fold(0.0f32, |a, &c| a.max(c.abs()));
    assert!(scale > 0.1, "the outputs are not all tiny ({scale})");
    assert_within("conv block", &cpu, &gpu, |_, c| {
        16.0 * F16_U * (c.abs() + scale)
    });
    // An LSTM over 6 steps: its states stay f32 in the loop; the input, the weights and the
    // output sequence are rounded to f16.
    let x = Input::shape(&[None, Some(5)]).tensor();
    let y = LSTM::new(8).return_sequences(true).call(&x).unwrap();
    let m = Model::new(&[x], &[y]).unwrap();
    let input = [HostTensor::new(&[2, 6, 5], data(2 * 6 * 5, 10)).unwrap()];
    let (cpu, gpu) = (cpu_run(&m, &input), gpu_run(&g, &m, &input));
    let scale = cpu.iter().fold(0.0f32, |a, &c| a.max(c.abs()));
    assert!(scale > 0.05, "the outputs are not all tiny ({scale})");
    assert_within("lstm", &cpu, &gpu, |_, c| 16.0 * F16_U * (c.abs() + scale));
}
