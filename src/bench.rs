//! The benchmark workloads of `BENCH.md` (`copy`, `chain`, `antirectifier`, `softmax`, `matmul`,
//! `mlp`, `mlp_b1`, `text_classifier`, `cnn`, `transformer`, `lstm`), Keras's application CNNs
//! (`mobilenet_v2`, `resnet50`, `efficientnet_b0`, at batch 8 and, `_b1`, batch 1), and the
//! measurement of one workload on one backend: the median of several runs after a warm-up,
//! compile time apart, and for the GPU the device-only span beside the end-to-end span with
//! upload and read-back.

use crate::{BackendKind, MemoryBudget, Result, Session, create_backend};
pub use lamina_backend::KernelTiming;
use lamina_graph::{
    Activation, DType, Dense, Dim, Embedding, GlobalAveragePooling1D, HostTensor, Input, Lambda,
    Layer, Model, Sequential, Shape, Tensor,
};
use std::time::Instant;

mod applications;
pub use applications::{efficientnet_b0_model, mobilenet_v2_model, resnet50_model};

/// The workload names: BENCH.md's, in its order, then `text_classifier`, then Keras's
/// application CNNs at batch 8 and 1.
pub const WORKLOADS: [&str; 17] = [
    "copy",
    "chain",
    "antirectifier",
    "softmax",
    "matmul",
    "mlp",
    "mlp_b1",
    "text_classifier",
    "cnn",
    "transformer",
    "lstm",
    "mobilenet_v2",
    "mobilenet_v2_b1",
    "resnet50",
    "resnet50_b1",
    "efficientnet_b0",
    "efficientnet_b0_b1",
];

/// What a workload reports besides seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Figure {
    /// Gigabytes per second moved (read + write).
    Bandwidth {
        /// Bytes read and written per run.
        bytes: f64,
    },
    /// Seconds only.
    Seconds,
    /// GFLOP/s.
    Gflops {
        /// Floating-point operations per run.
        flops: f64,
    },
}

/// A workload: a model, its inputs and the figure it reports.
pub struct Workload {
    /// The BENCH.md name (or the model file's, for `lamina bench MODEL`).
    pub name: String,
    /// The model.
    pub model: Model,
    /// The inputs, from a fixed seed.
    pub inputs: Vec<HostTensor>,
    /// The figure to report.
    pub figure: Figure,
}

/// Deterministic values in [-2, 2) from a seed (xorshift).
pub fn seeded(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(0x9E37_79B9) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
        })
        .collect()
}

fn lambda_model(
    per_sample: &[usize],
    f: impl Fn(&Tensor) -> Tensor + Send + Sync + 'static,
) -> Result<Model> {
    let x = Input::new(per_sample).tensor();
    let y = Lambda::new(f).call(&x)?;
    Model::new(&[x], &[y])
}

/// The chain of BENCH.md: `y = x*1.5 + 0.25; z = tanh(y)*exp(-y*y) + max(y, 0);
/// out = sqrt(abs(z) + 1) - 1`.
pub fn chain(x: &Tensor) -> Tensor {
    let y = x * 1.5 + 0.25;
    let z = y.tanh() * (-(&y * &y)).exp() + y.maximum(0.0);
    (z.abs() + 1.0).sqrt() - 1.0
}

/// The Keras documentation's antirectifier.
pub fn antirectifier(x: &Tensor) -> Tensor {
    let x = x - x.mean_keepdims(1);
    let x = x.l2_normalize(1);
    Tensor::concatenate(&[x.relu(), (-&x).relu()], 1)
}

/// Dense 784→512 relu → 512→512 relu → 512→10, weights from fixed seeds.
pub fn mlp_model() -> Result<Model> {
    let mut m = Sequential::named("mlp");
    m.add(Input::new(&[784]))?;
    m.add(Dense::new(512).activation(Activation::Relu).seed(1))?;
    m.add(Dense::new(512).activation(Activation::Relu).seed(2))?;
    m.add(Dense::new(10).seed(3))?;
    m.model()
}

/// A masked text classifier: int32 ids (batch 256, 128 steps, the last 28 padded with 0) →
/// `Embedding(20000, 64, mask_zero)` → a Lambda `tanh(2x)` passing the mask on →
/// `GlobalAveragePooling1D` (padding left out) → `Dense(4, softmax)`.
pub fn text_classifier_model() -> Result<Model> {
    let ids = Input::with_dims(vec![Dim::Dynamic])
        .dtype(DType::I32)
        .tensor();
    let x = Embedding::new(20_000, 64)
        .mask_zero(true)
        .seed(6)
        .call(&ids)?;
    let x = Lambda::new(|x| x.multiply(2.0).tanh())
        .mask_fn(|_, m| m[0].clone())
        .call(&x)?;
    let x = GlobalAveragePooling1D::new().call(&x)?;
    let y = Dense::new(4)
        .activation(Activation::Softmax)
        .seed(7)
        .call(&x)?;
    Model::new(&[ids], &[y])
}

/// BENCH.md's `lstm`: `LSTM(256)` over `(100, 128)` sequences (Keras's gate order i, f, c, o,
/// sigmoid/tanh), last output → `Dense(10)`; weights from a fixed seed at the peer's scale
/// (0.05), biases zero as the peer's.
pub fn lstm_model() -> Result<Model> {
    use lamina_graph::LSTM;
    let x = Input::new(&[100, 128]).tensor();
    let lstm = LSTM::new(256).seed(90);
    let h = lstm.call(&x)?;
    let dense = Dense::new(10).seed(91);
    let y = dense.call(&h)?;
    let mut seed = 92;
    let mut fill = |layer: &dyn Layer, name: &str, scale: f32| -> Result<()> {
        let shape = layer.get_weight(name)?.shape().to_vec();
        let n = shape.iter().product();
        seed += 1;
        let vals = seeded(n, seed).iter().map(|r| scale * r).collect();
        layer.set_weight(name, HostTensor::new(&shape, vals)?)
    };
    fill(&lstm, "kernel", 0.05)?;
    fill(&lstm, "recurrent_kernel", 0.05)?;
    fill(&lstm, "bias", 0.0)?;
    fill(&dense, "kernel", 0.05)?;
    fill(&dense, "bias", 0.0)?;
    Model::new(&[x], &[y])
}

/// BENCH.md's `cnn`: (32, 32, 3) images → [Conv2D(f, 3, same) → BatchNormalization → ReLU →
/// MaxPooling2D(2)] for f = 32, 64 → Conv2D(128, 3, same, relu) → GlobalAveragePooling2D →
/// Dense(10, softmax), with non-trivial batch statistics.
pub fn cnn_model() -> Result<Model> {
    use lamina_graph::{
        ActivationLayer, BatchNormalization, Conv2D, GlobalAveragePooling2D, MaxPooling2D, Padding,
    };
    let x = Input::new(&[32, 32, 3]).tensor();
    let mut h = x.clone();
    for (k, f) in [32usize, 64].into_iter().enumerate() {
        h = Conv2D::new(f, 3)
            .padding(Padding::Same)
            .seed(20 + k as u64)
            .call(&h)?;
        let bn = BatchNormalization::new();
        h = bn.call(&h)?;
        let v = |s: u32, scale: f32, base: f32| -> Result<HostTensor> {
            let vals = seeded(f, s)
                .iter()
                .map(|r| base + scale * r.abs())
                .collect();
            HostTensor::new(&[f], vals)
        };
        bn.set_weight("gamma", v(30 + k as u32, 0.1, 1.0)?)?;
        bn.set_weight("beta", v(40 + k as u32, 0.1, 0.0)?)?;
        bn.set_weight("moving_mean", v(50 + k as u32, 0.1, 0.0)?)?;
        bn.set_weight("moving_variance", v(60 + k as u32, 0.1, 1.0)?)?;
        h = ActivationLayer::new(Activation::Relu).call(&h)?;
        h = MaxPooling2D::new(2).call(&h)?;
    }
    h = Conv2D::new(128, 3)
        .padding(Padding::Same)
        .activation(Activation::Relu)
        .seed(22)
        .call(&h)?;
    h = GlobalAveragePooling2D::new().call(&h)?;
    let y = Dense::new(10)
        .activation(Activation::Softmax)
        .seed(23)
        .call(&h)?;
    Model::new(&[x], &[y])
}

/// BENCH.md's `transformer`: one encoder block on `(None, 256)` sequences (run at 128 steps):
/// `MultiHeadAttention(8, 32)` self-attention, residual, `LayerNormalization` (eps 1e-3),
/// `Dense(1024, gelu)` → `Dense(256)`, residual, `LayerNormalization`; weights from a fixed seed
/// at the peer's scale (0.05).
pub fn transformer_model() -> Result<Model> {
    use lamina_graph::{Add, LayerNormalization, MultiHeadAttention};
    let x = Input::with_dims(vec![Dim::Dynamic, Dim::Known(256)]).tensor();
    let mha = MultiHeadAttention::new(8, 32).seed(70);
    let a = mha.call([&x, &x])?;
    let ln1 = LayerNormalization::new();
    let h = ln1.call(&Add::new().call([&x, &a])?)?;
    let d1 = Dense::new(1024).activation(Activation::Gelu).seed(71);
    let f = d1.call(&h)?;
    let d2 = Dense::new(256).seed(72);
    let f = d2.call(&f)?;
    let ln2 = LayerNormalization::new();
    let y = ln2.call(&Add::new().call([&h, &f])?)?;
    let mut seed = 80;
    let mut fill = |layer: &dyn Layer, name: &str, base: f32| -> Result<()> {
        let shape = layer.get_weight(name)?.shape().to_vec();
        let n = shape.iter().product();
        seed += 1;
        let vals = seeded(n, seed).iter().map(|r| base + 0.05 * r).collect();
        layer.set_weight(name, HostTensor::new(&shape, vals)?)
    };
    for w in [
        "query/kernel",
        "query/bias",
        "key/kernel",
        "key/bias",
        "value/kernel",
        "value/bias",
        "attention_output/kernel",
        "attention_output/bias",
    ] {
        fill(&mha, w, 0.0)?;
    }
    for ln in [&ln1, &ln2] {
        fill(ln, "gamma", 1.0)?;
        fill(ln, "beta", 0.0)?;
    }
    for d in [&d1, &d2] {
        fill(d, "kernel", 0.0)?;
        fill(d, "bias", 0.0)?;
    }
    Model::new(&[x], &[y])
}

/// Builds a workload at BENCH.md's size, or at `1/scale` of it (for quick runs and criterion).
pub fn workload(name: &str, scale: usize) -> Result<Workload> {
    let scale = scale.max(1);
    let f32s = |n: usize| n as f64 * 4.0;
    let w = match name {
        "copy" | "chain" => {
            let n = (1usize << 24) / scale;
            let model = if name == "copy" {
                lambda_model(&[], |x| x * 1.0)?
            } else {
                lambda_model(&[], chain)?
            };
            Workload {
                name: if name == "copy" { "copy" } else { "chain" }.into(),
                model,
                inputs: vec![HostTensor::new(&[n], seeded(n, 1))?],
                figure: Figure::Bandwidth {
                    bytes: 2.0 * f32s(n),
                },
            }
        }
        "antirectifier" | "softmax" => {
            let rows = 65536 / scale;
            let model = if name == "softmax" {
                lambda_model(&[256], |x| x.softmax(-1))?
            } else {
                lambda_model(&[256], antirectifier)?
            };
            Workload {
                name: if name == "softmax" {
                    "softmax"
                } else {
                    "antirectifier"
                }
                .into(),
                model,
                inputs: vec![HostTensor::new(&[rows, 256], seeded(rows * 256, 2))?],
                figure: Figure::Seconds,
            }
        }
        "matmul" => {
            let n = (1024 / scale.isqrt().max(1)).max(16);
            let b = HostTensor::new(&[n, n], seeded(n * n, 4))?;
            let model = lambda_model(&[n], move |x| x.matmul(&Tensor::constant(b.clone())))?;
            Workload {
                name: "matmul".into(),
                model,
                inputs: vec![HostTensor::new(&[n, n], seeded(n * n, 3))?],
                figure: Figure::Gflops {
                    flops: 2.0 * (n as f64).powi(3),
                },
            }
        }
        "mlp" | "mlp_b1" => {
            let batch = if name == "mlp" {
                (1024 / scale).max(1)
            } else {
                1
            };
            Workload {
                name: if name == "mlp" { "mlp" } else { "mlp_b1" }.into(),
                model: mlp_model()?,
                inputs: vec![HostTensor::new(&[batch, 784], seeded(batch * 784, 5))?],
                figure: Figure::Seconds,
            }
        }
        "text_classifier" => {
            let (batch, steps) = ((256 / scale).max(1), 128);
            let ids: Vec<i32> = (0..batch * steps)
                .map(|k| {
                    let real = k % steps < 100;
                    if real {
                        (k * 7919 % 19_999 + 1) as i32
                    } else {
                        0
                    }
                })
                .collect();
            Workload {
                name: "text_classifier".into(),
                model: text_classifier_model()?,
                inputs: vec![HostTensor::new(&[batch, steps], ids)?],
                figure: Figure::Seconds,
            }
        }
        "cnn" => {
            let batch = (64 / scale).max(1);
            Workload {
                name: "cnn".into(),
                model: cnn_model()?,
                inputs: vec![HostTensor::new(
                    &[batch, 32, 32, 3],
                    seeded(batch * 32 * 32 * 3, 24),
                )?],
                figure: Figure::Seconds,
            }
        }
        "mobilenet_v2" | "mobilenet_v2_b1" | "resnet50" | "resnet50_b1" | "efficientnet_b0"
        | "efficientnet_b0_b1" => {
            let batch = if name.ends_with("_b1") {
                1
            } else {
                (8 / scale).max(1)
            };
            let (name, model) = match name {
                "mobilenet_v2" => ("mobilenet_v2", mobilenet_v2_model()?),
                "mobilenet_v2_b1" => ("mobilenet_v2_b1", mobilenet_v2_model()?),
                "resnet50" => ("resnet50", resnet50_model()?),
                "resnet50_b1" => ("resnet50_b1", resnet50_model()?),
                "efficientnet_b0" => ("efficientnet_b0", efficientnet_b0_model()?),
                _ => ("efficientnet_b0_b1", efficientnet_b0_model()?),
            };
            let n = batch * 224 * 224 * 3;
            Workload {
                name: name.into(),
                model,
                inputs: vec![HostTensor::new(&[batch, 224, 224, 3], seeded(n, 91))?],
                figure: Figure::Seconds,
            }
        }
        "transformer" => {
            let batch = (32 / scale).max(1);
            Workload {
                name: "transformer".into(),
                model: transformer_model()?,
                inputs: vec![HostTensor::new(
                    &[batch, 128, 256],
                    seeded(batch * 128 * 256, 73),
                )?],
                figure: Figure::Seconds,
            }
        }
        "lstm" => {
            let batch = (64 / scale).max(1);
            Workload {
                name: "lstm".into(),
                model: lstm_model()?,
                inputs: vec![HostTensor::new(
                    &[batch, 100, 128],
                    seeded(batch * 100 * 128, 99),
                )?],
                figure: Figure::Seconds,
            }
        }
        other => {
            return Err(crate::Error::NotFound {
                kind: "workload".into(),
                name: other.to_string(),
                detail: format!(" (known: {})", WORKLOADS.join(", ")),
            });
        }
    };
    Ok(w)
}

/// A user's model as a workload (`lamina bench MODEL`): inputs of its input shapes, the batch
/// axis `batch` long and every other run-time axis `length` long, filled from a fixed seed:
/// floats in [-2, 2), integer ids 1 to 7 (valid for any `Embedding`, and never the padding id
/// 0), bools true.
pub fn model_workload(name: &str, model: Model, batch: usize, length: usize) -> Result<Workload> {
    let mut inputs = Vec::new();
    for (k, t) in model.inputs().iter().enumerate() {
        let shape: Vec<usize> = t
            .shape()
            .dims()
            .iter()
            .enumerate()
            .map(|(a, d)| match d.known() {
                Some(n) => n,
                None if a == 0 => batch,
                None => length,
            })
            .collect();
        let n = lamina_graph::limits::check_shape(
            "bench input",
            &[],
            &Shape::new(shape.iter().map(|&d| Dim::Known(d))),
        )
        .map(|_| shape.iter().product::<usize>())?;
        let seed = 7 + k as u32;
        inputs.push(match t.dtype() {
            DType::F32 => HostTensor::new(&shape, seeded(n, seed))?,
            DType::I32 => HostTensor::new(&shape, (0..n).map(|i| (i % 7) as i32 + 1).collect())?,
            DType::U32 => HostTensor::new(&shape, (0..n).map(|i| (i % 7) as u32 + 1).collect())?,
            DType::Bool => HostTensor::new(&shape, vec![true; n])?,
        });
    }
    Ok(Workload {
        name: name.to_string(),
        model,
        inputs,
        figure: Figure::Seconds,
    })
}

/// The result of measuring one workload on one backend.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// The workload.
    pub workload: String,
    /// `cpu` or `gpu`.
    pub backend: String,
    /// The device or interpreter it ran on.
    pub device: String,
    /// Seconds of the first run, which compiles (session creation included).
    pub compile_s: f64,
    /// Median seconds of the steady-state span (for the GPU: kernels on resident inputs).
    pub median_s: f64,
    /// For the GPU: median seconds with upload and read-back.
    pub end_to_end_s: Option<f64>,
    /// The figure: GB/s or GFLOP/s (`None` for seconds-only workloads).
    pub figure: Option<(f64, &'static str)>,
    /// Kernel dispatches per run (GPU).
    pub dispatches_per_run: f64,
    /// Shader compiles per steady-state run (GPU; 0 when caching works).
    pub compiles_per_run: f64,
    /// Timed runs.
    pub runs: usize,
    /// Per-kernel GPU times, when asked for (`None` otherwise; see `measure_kernels`).
    pub kernels: Option<KernelTimes>,
}

/// The per-kernel GPU times of one workload, or why there are none.
#[derive(Clone, Debug)]
pub enum KernelTimes {
    /// Each kernel's median GPU time, in dispatch order.
    Measured(Vec<KernelTiming>),
    /// Why there are none: the CPU backend, or an adapter without timestamp queries.
    Unavailable(String),
}

/// Times each kernel of a workload on a backend with GPU timestamp queries: one untimed run,
/// then `runs` timed ones, the median of each kernel. Where the backend cannot time kernels
/// this is `KernelTimes::Unavailable` with the reason, not an error.
pub fn measure_kernels(w: &Workload, kind: BackendKind, runs: usize) -> Result<KernelTimes> {
    let backend = create_backend(kind)?;
    let shapes: Vec<Vec<usize>> = w.inputs.iter().map(|t| t.shape().to_vec()).collect();
    let program = w.model.program();
    program.check_inputs(&w.inputs)?;
    let exe = backend.compile(program, &shapes, &MemoryBudget::from_env_or_machine()?)?;
    Ok(match exe.kernel_timings(&w.inputs, runs.max(1)) {
        Some(t) => KernelTimes::Measured(t?),
        None if backend.name().starts_with("gpu") => KernelTimes::Unavailable(format!(
            "{} has no timestamp queries (wgpu TIMESTAMP_QUERY), so no per-kernel times",
            backend.name()
        )),
        None => KernelTimes::Unavailable(format!(
            "{} runs no GPU kernels, so no per-kernel times",
            backend.name()
        )),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The shortest warm-up before the timed runs: small workloads repeat their warm-up run until
/// this much time has passed, so that threads started by the first runs (the CPU's helper
/// thread) have been placed on their cores by the OS, as in a steady stream of requests.
const MIN_WARM_UP: std::time::Duration = std::time::Duration::from_millis(50);

/// Measures a workload on a backend: one compiling run, a warm-up of one run or more (at
/// least `MIN_WARM_UP`), then `runs` timed runs.
pub fn measure(w: &Workload, kind: BackendKind, runs: usize) -> Result<Measurement> {
    let runs = runs.max(1);
    let t0 = Instant::now();
    let session = Session::new(w.model.program().clone(), kind)?;
    session.run(&w.inputs)?;
    let compile_s = t0.elapsed().as_secs_f64();
    let warm = Instant::now();
    session.run(&w.inputs)?;
    while warm.elapsed() < MIN_WARM_UP {
        session.run(&w.inputs)?;
    }
    let before = session.stats();
    let mut e2e = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        session.run(&w.inputs)?;
        e2e.push(t.elapsed().as_secs_f64());
    }
    let stats = session.stats().since(&before);
    let is_gpu = session.backend_name().starts_with("gpu");
    let (median_s, end_to_end_s) = if is_gpu {
        let mut device = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            if let Some(r) = session.run_on_device(&w.inputs) {
                r?;
            }
            device.push(t.elapsed().as_secs_f64());
        }
        (median(device), Some(median(e2e)))
    } else if w.name == "copy" {
        // The CPU's ceiling is a plain memory copy of the same buffer.
        let src = w.inputs[0].as_f32()?.to_vec();
        let mut dst = vec![0f32; src.len()];
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&dst);
            times.push(t.elapsed().as_secs_f64());
        }
        (median(times), None)
    } else {
        (median(e2e), None)
    };
    // With f16 storage (the GPU backend's name says so) a float32 element moves 2 bytes, not 4.
    let f16 = is_gpu && session.backend_name().ends_with("with f16 storage");
    let figure = match w.figure {
        Figure::Bandwidth { bytes } => {
            let bytes = if f16 { bytes / 2.0 } else { bytes };
            Some((bytes / median_s / 1e9, "GB/s"))
        }
        Figure::Gflops { flops } => Some((flops / median_s / 1e9, "GFLOP/s")),
        Figure::Seconds => None,
    };
    Ok(Measurement {
        workload: w.name.clone(),
        backend: if is_gpu { "gpu".into() } else { "cpu".into() },
        device: session.backend_name(),
        compile_s,
        median_s,
        end_to_end_s,
        figure,
        dispatches_per_run: stats.dispatches as f64 / runs as f64,
        compiles_per_run: stats.compiles as f64 / runs as f64,
        runs,
        kernels: None,
    })
}

impl Measurement {
    /// One JSON object (no dependencies: the fields are numbers and plain strings).
    pub fn to_json(&self) -> String {
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let mut s = format!(
            "{{\"workload\":\"{}\",\"backend\":\"{}\",\"device\":\"{}\",\"median_s\":{:.9},\"compile_s\":{:.6},\"runs\":{}",
            self.workload,
            self.backend,
            esc(&self.device),
            self.median_s,
            self.compile_s,
            self.runs
        );
        if let Some(e) = self.end_to_end_s {
            s += &format!(",\"end_to_end_s\":{e:.9}");
        }
        if let Some((v, unit)) = self.figure {
            let key = if unit == "GB/s" { "GBps" } else { "GFLOPs" };
            s += &format!(",\"{key}\":{v:.3}");
        }
        s += &format!(
            ",\"dispatches_per_run\":{},\"compiles_per_run\":{}",
            self.dispatches_per_run, self.compiles_per_run
        );
        match &self.kernels {
            None => {}
            Some(KernelTimes::Unavailable(why)) => {
                s += &format!(",\"kernels\":null,\"kernels_note\":\"{}\"", esc(why));
            }
            Some(KernelTimes::Measured(ks)) => {
                let total: f64 = ks.iter().map(|k| k.seconds).sum();
                let items: Vec<String> = ks
                    .iter()
                    .map(|k| {
                        format!(
                            "{{\"kind\":\"{}\",\"label\":\"{}\",\"median_us\":{:.3},\"share\":{:.4}}}",
                            k.kind,
                            esc(&k.label),
                            k.seconds * 1e6,
                            share(k.seconds, total)
                        )
                    })
                    .collect();
                s += &format!(
                    ",\"kernels_total_us\":{:.3},\"kernels\":[{}]",
                    total * 1e6,
                    items.join(",")
                );
            }
        }
        s + "}"
    }

    /// The per-kernel table, or the line saying why there is none; empty when not asked for.
    pub fn kernel_table(&self) -> String {
        let head = format!("{} on {}", self.workload, self.backend);
        match &self.kernels {
            None => String::new(),
            Some(KernelTimes::Unavailable(why)) => format!("{head}: {why}\n"),
            Some(KernelTimes::Measured(ks)) => {
                let total: f64 = ks.iter().map(|k| k.seconds).sum();
                let mut s = format!(
                    "{head}: {} kernel(s), {:.1} us of GPU time (medians of {} timed runs)\n",
                    ks.len(),
                    total * 1e6,
                    self.runs
                );
                s += &format!(
                    "  {:>3}  {:<15} {:<33} {:>12} {:>7}\n",
                    "#", "kind", "writes", "median us", "share"
                );
                for (i, k) in ks.iter().enumerate() {
                    s += &format!(
                        "  {i:>3}  {:<15} {:<33} {:>12.1} {:>6.1}%\n",
                        k.kind,
                        k.label,
                        k.seconds * 1e6,
                        100.0 * share(k.seconds, total)
                    );
                }
                let per_step = ["loop_input", "loop_recurrent", "loop_reset", "loop_cell"];
                if ks
                    .iter()
                    .any(|k| per_step.iter().any(|p| k.kind.starts_with(p)))
                {
                    s += "  (a recurrent loop's step kernels are timed on one step; they run once a step)\n";
                }
                s
            }
        }
    }
}

/// `part / total`, or 0 when the total is 0 (a driver whose clock did not move).
fn share(part: f64, total: f64) -> f64 {
    if total > 0.0 { part / total } else { 0.0 }
}
