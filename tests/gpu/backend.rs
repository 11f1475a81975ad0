//! The wgpu backend against the CPU interpreter: every op, the example models and random
//! expression graphs agree; fusion gives the dispatch counts promised; compiles are cached; the
//! device's limits are respected; every generated shader passes naga validation.
//!
//! Where no adapter exists the tests say so and pass, unless `LAMINA_REQUIRE_GPU=1`, where they
//! fail.
#![cfg(feature = "gpu")] // compares the CPU interpreter with the GPU backend

use lamina::prelude::*;
use lamina::{Backend, GpuBackend, GpuOptions};
use std::sync::Arc;

use crate::common;
use common::gpu;

fn cpu_run(m: &Model, inputs: &[HostTensor]) -> Vec<HostTensor> {
    Session::new(m.program().clone(), BackendKind::Cpu)
        .unwrap()
        .run(inputs)
        .unwrap()
}

fn gpu_session(g: &Arc<GpuBackend>, m: &Model) -> Session {
    Session::with_backend(m.program().clone(), Arc::new(g.clone()))
}

/// Validates WGSL with naga, as wgpu does before compiling it.
fn validate(src: &str) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{}\n{src}", e.emit_to_string(src)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{e:?}\n{src}"));
}

fn validate_model(m: &Model, inputs: &[HostTensor]) {
    let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
    for k in GpuBackend::kernels_for(m.program(), &shapes, 8).unwrap() {
        validate(&k.wgsl);
    }
}

fn assert_agree(name: &str, cpu: &[HostTensor], gpu: &[HostTensor], rtol: f32, atol: f32) {
    assert_eq!(cpu.len(), gpu.len(), "{name}");
    for (c, g) in cpu.iter().zip(gpu) {
        assert_eq!(c.shape(), g.shape(), "{name}");
        assert_eq!(c.dtype(), g.dtype(), "{name}");
        let (c, g) = (c.to_f32_vec(), g.to_f32_vec());
        for (i, (a, b)) in c.iter().zip(&g).enumerate() {
            let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= atol + rtol * a.abs();
            assert!(ok, "{name}: element {i}: cpu {a} vs gpu {b}");
        }
    }
}

/// Deterministic values in [-2, 2) (or (0, 4) when positive).
fn data(n: usize, seed: u32, positive: bool) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let u = (s >> 8) as f32 / (1u32 << 24) as f32;
            if positive {
                0.05 + 3.9 * u
            } else {
                4.0 * u - 2.0
            }
        })
        .collect()
}

type OpCase = (&'static str, bool, fn(&Tensor) -> Tensor);

fn op_cases() -> Vec<OpCase> {
    vec![
        ("negative", false, |x| -x),
        ("abs", false, |x| x.abs()),
        ("exp", false, |x| x.exp()),
        ("log", true, |x| x.log()),
        ("sqrt", true, |x| x.sqrt()),
        ("rsqrt", true, |x| x.rsqrt()),
        ("reciprocal", true, |x| x.reciprocal()),
        ("tanh", false, |x| (x * 20.0).tanh()),
        ("sigmoid", false, |x| x.sigmoid()),
        ("sin", false, |x| x.sin()),
        ("cos", false, |x| x.cos()),
        ("erf", false, |x| x.erf()),
        ("floor", false, |x| x.floor()),
        ("ceil", false, |x| x.ceil()),
        ("round", false, |x| (x * 2.0).round()),
        ("sign", false, |x| x.sign()),
        ("square", false, |x| x.square()),
        ("pow3_negative_base", false, |x| x.pow(3.0)),
        ("pow_1.5", true, |x| x.pow(1.5)),
        ("pow_tensor", true, |x| x.pow(x.slice(s![.., .., 0..1]))),
        ("relu", false, |x| x.relu()),
        ("silu", false, |x| x.silu()),
        ("gelu", false, |x| x.gelu()),
        ("softplus", false, |x| x.softplus()),
        ("elu", false, |x| x.elu(1.0)),
        ("leaky_relu", false, |x| x.leaky_relu(0.2)),
        ("clip", false, |x| x.clip(-0.5, 0.75)),
        ("where", false, |x| {
            Tensor::where_(&x.greater(0.0), x, &(x * -3.0))
        }),
        ("comparisons", false, |x| {
            (x.greater(-1.0).logical_and(x.less_equal(1.0)))
                .logical_or(x.equal(0.0))
                .cast(DType::F32)
        }),
        ("not_equal_not", false, |x| {
            x.floor().not_equal(0.0).logical_not().cast(DType::F32)
        }),
        ("cast_i32", false, |x| {
            (x * 3.0).cast(DType::I32).cast(DType::F32)
        }),
        ("int_arithmetic", false, |x| {
            let i = (x * 5.0).cast(DType::I32);
            (i.multiply(3).add(2).divide(i.abs().add(1))).cast(DType::F32)
        }),
        ("broadcast_add", false, |x| x + &x.slice(s![.., 0..1, ..])),
        ("broadcast_sub_row", false, |x| {
            x - &x.slice(s![.., .., 1..2])
        }),
        ("divide", true, |x| x / &x.slice(s![.., 1..2, ..])),
        ("maximum_minimum", false, |x| {
            x.maximum(x.slice(s![.., .., 0..1])).minimum(0.5)
        }),
        ("sum_last", false, |x| x.sum(-1)),
        ("mean_keepdims", false, |x| x.mean_keepdims(1)),
        ("max_two_axes", false, |x| x.max([1, 2])),
        ("min_all", false, |x| x.min(Axes::All)),
        ("prod", true, |x| x.prod_keepdims(-1)),
        ("var", false, |x| x.var(-1)),
        ("std_axis1", false, |x| x.std_keepdims(1)),
        ("sum_axis0", false, |x| x.sum(0)),
        ("argmax", false, |x| x.argmax(-1).cast(DType::F32)),
        ("argmin_axis1", false, |x| {
            x.argmin_keepdims(1).cast(DType::F32)
        }),
        ("cumsum", false, |x| x.cumsum(1)),
        ("cumprod", false, |x| x.cumprod(-1)),
        ("logsumexp", false, |x| x.logsumexp(-1)),
        ("softmax", false, |x| x.softmax(-1)),
        ("softmax_axis1", false, |x| x.softmax(1)),
        ("log_softmax", false, |x| x.log_softmax(-1)),
        ("l2_normalize", false, |x| x.l2_normalize(-1)),
        ("reshape", false, |x| x.reshape(&[-1, 12]) * 2.0),
        ("reshape_split", false, |x| x.reshape(&[-1, 2, 6]).sum(1)),
        ("transpose", false, |x| x.transpose(&[0, 2, 1]) + 1.0),
        ("t", false, |x| x.t() * 1.5),
        ("swapaxes", false, |x| x.swapaxes(0, 2) - 1.0),
        ("expand_squeeze", false, |x| {
            x.expand_dims(1).squeeze(1).expand_dims(-1) * 2.0
        }),
        ("broadcast_to", false, |x| {
            x.slice(s![0..1, .., ..]).broadcast_to(&[2, 3, 4]) + 0.0
        }),
        ("slice_steps", false, |x| {
            x.slice(s![.., SliceArg::step(-1), 1..]) * 1.0
        }),
        ("slice_index", false, |x| x.slice(s![.., -1, ..]) * 2.0),
        ("slice_step2", false, |x| {
            x.slice(&[
                SliceArg::range(None, None, 1),
                SliceArg::range(Some(2), Some(0), -2),
            ]) + 0.5
        }),
        ("newaxis", false, |x| {
            x.slice(s![.., SliceArg::NewAxis, 0, ..]) * 3.0
        }),
        ("concatenate", false, |x| {
            Tensor::concatenate(&[x.clone(), (x * 2.0), x.exp()], -1)
        }),
        ("concatenate_axis1", false, |x| {
            Tensor::concatenate(&[x.slice(s![.., 0..1, ..]), x.clone()], 1) + 1.0
        }),
        ("stack", false, |x| Tensor::stack(&[x.clone(), -x], 1)),
        ("take_computed_ids", false, |x| {
            // Ids computed on the device (argmax, in 0..4) pick rows of a 4-row table.
            let ids = x.argmax(-1);
            let table = HostTensor::new(&[4, 3], data(12, 9, false)).unwrap();
            Tensor::constant(table).take(&ids, 0).sum(-1) + x.slice(s![.., .., 0])
        }),
        ("take_last_axis", false, |x| {
            let cols = HostTensor::new(&[2, 2], vec![3i32, 0, 1, 1]).unwrap();
            x.take(&Tensor::constant(cols), -1).exp()
        }),
        ("any_all", false, |x| {
            let pos = x.greater(0.0);
            pos.any_keepdims(-1).cast(DType::F32) + pos.all_keepdims(1).cast(DType::F32) * 2.0
        }),
        ("tan", false, |x| (x * 0.7).tan()),
        ("arcsin_arccos", false, |x| {
            (x * 0.5).arcsin() + (x * 0.45).arccos()
        }),
        ("arctan", false, |x| (x * 5.0).arctan()),
        ("sinh_cosh", false, |x| x.sinh() - x.cosh()),
        ("arcsinh_arccosh_arctanh", true, |x| {
            x.arcsinh() + (x + 1.0).arccosh() + (x * 0.2).arctanh()
        }),
        ("expm1_log1p", false, |x| {
            (x * 1e-3).expm1() + (x * 1e-3).log1p() * 1e3
        }),
        ("expm1_large", false, |x| (x * 40.0).expm1()),
        ("log2_log10", true, |x| x.log2() + x.log10()),
        ("isnan_isinf_isfinite", false, |x| {
            let y = x.log(); // NaN for negatives, -inf for none of these values
            let z = x.reciprocal().reciprocal().exp().exp().exp(); // inf for the larger ones
            (y.isnan().cast(DType::F32) + z.isinf().cast(DType::F32) * 2.0)
                + z.isfinite().cast(DType::F32) * 4.0
        }),
        ("nan_to_num", false, |x| {
            (x.log() * 100.0).exp().nan_to_num(-1.0, Some(9.0), None)
        }),
        ("arctan2", false, |x| x.arctan2(x.slice(s![.., .., 0..1]))),
        ("floor_divide_mod", false, |x| {
            x.floor_divide(0.3) + x.floor_mod(-0.7) * 10.0
        }),
        ("int_floor_divide_mod", false, |x| {
            let i = (x * 10.0).cast(DType::I32);
            let d = (x.slice(s![.., .., 0..1]) * 3.0).cast(DType::I32);
            (i.floor_divide(&d) * 100 + i.floor_mod(&d)).cast(DType::F32)
        }),
        ("int_promotion", false, |x| {
            let i = (x * 10.0).cast(DType::I32);
            &i * 0.5 + &i / 4 + i.pow(3) % 7
        }),
        ("logaddexp_hypot", false, |x| {
            x.logaddexp(x * 2.0) + x.hypot(x.slice(s![.., 0..1, ..]))
        }),
        ("argmax_signed_zeros", false, |x| {
            // Rows of zeros of both signs: -0.0 ranks below 0.0.
            let z = Tensor::where_(&x.greater(0.0), -0.0f32, 0.0f32);
            z.argmax(-1).cast(DType::F32) * 10.0 + z.argmin(-1).cast(DType::F32)
        }),
        ("take_negative_ids", false, |x| {
            let ids = HostTensor::new(&[3], vec![-1i32, 0, -4]).unwrap();
            x.take(&Tensor::constant(ids), -1)
        }),
        ("matmul_batched", false, |x| x.matmul(&x.swapaxes(1, 2))),
        ("matmul_constant", false, |x| {
            let w = HostTensor::new(&[4, 5], data(20, 7, false)).unwrap();
            x.matmul(&Tensor::constant(w)).relu()
        }),
        ("matmul_vector", false, |x| x.matmul(&x.slice(s![0, 0, ..]))),
        ("batch_dot", false, |x| x.batch_dot(x, (2, 2))),
        ("antirectifier_3d", false, |x| {
            let c = x - x.mean_keepdims(-1);
            let n = c.l2_normalize(-1);
            Tensor::concatenate(&[n.relu(), (-&n).relu()], -1)
        }),
        // Activations (ops/activations.rs), over [-6, 6) where a tail matters.
        ("gelu_exact_tails", false, |x| (x * 3.0).gelu_with(false)),
        ("gelu_approximate_wide", false, |x| (x * 3.0).gelu()),
        ("relu6_hard_sigmoid", false, |x| {
            (x * 4.0).relu6() + (x * 3.0).hard_sigmoid() * 10.0
        }),
        ("selu_celu_elu_tiny", false, |x| {
            (x * 3.0).selu() + (x * 1e-4).celu(1.0) * 1e4 + (x * 2.0).elu(0.5)
        }),
        ("hard_silu_mish", false, |x| {
            (x * 3.0).hard_silu() + (x * 3.0).mish()
        }),
        ("log_sigmoid_softsign", false, |x| {
            (x * 20.0).log_sigmoid() + (x * 5.0).softsign()
        }),
        ("shrinks", false, |x| {
            x.tanh_shrink() + x.hard_shrink(0.5) * 2.0 + x.soft_shrink(0.5) * 4.0
        }),
        ("sparse_plus_squareplus", false, |x| {
            x.sparse_plus() + x.squareplus(4.0) * 2.0 + x.sparse_sigmoid() * 4.0
        }),
        ("hard_tanh_leaky", false, |x| {
            (x * 2.0).hard_tanh() + x.leaky_relu(0.3)
        }),
        ("glu", false, |x| x.glu(-1)),
    ]
}

#[test]
fn every_op_agrees_with_the_cpu() {
    let Some(g) = gpu() else { return };
    for (i, (name, positive, f)) in op_cases().into_iter().enumerate() {
        let x = Input::new(&[3, 4]).tensor();
        let y = Lambda::new(f)
            .call(&x)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let m = Model::new(&[x], &[y]).unwrap();
        let inputs = [HostTensor::new(&[2, 3, 4], data(24, i as u32 + 1, positive)).unwrap()];
        validate_model(&m, &inputs);
        let want = cpu_run(&m, &inputs);
        let got = gpu_session(&g, &m)
            .run(&inputs)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_agree(name, &want, &got, 2e-5, 2e-6);
    }
}

fn antirectifier(x: &Tensor) -> Tensor {
    let x = x - x.mean_keepdims(1);
    let x = x.l2_normalize(1);
    Tensor::concatenate(&[x.relu(), (-&x).relu()], 1)
}

fn chain(x: &Tensor) -> Tensor {
    let y = x * 1.5 + 0.25;
    let z = y.tanh() * (-(&y * &y)).exp() + y.maximum(0.0);
    (z.abs() + 1.0).sqrt() - 1.0
}

fn mlp(batch_input: usize) -> (Model, Vec<HostTensor>) {
    let mut m = Sequential::new();
    m.add(Input::new(&[784])).unwrap();
    m.add(Dense::new(512).activation(Activation::Relu).seed(1))
        .unwrap();
    m.add(Dense::new(512).activation(Activation::Relu).seed(2))
        .unwrap();
    m.add(Dense::new(10).seed(3)).unwrap();
    let x = HostTensor::new(&[batch_input, 784], data(batch_input * 784, 9, false)).unwrap();
    (m.model().unwrap(), vec![x])
}

fn one_lambda(
    per_sample: &[usize],
    f: impl Fn(&Tensor) -> Tensor + Send + Sync + 'static,
) -> Model {
    let x = Input::new(per_sample).tensor();
    let y = Lambda::new(f).call(&x).unwrap();
    Model::new(&[x], &[y]).unwrap()
}

/// Dispatches of one steady-state run.
fn dispatches(g: &Arc<GpuBackend>, m: &Model, inputs: &[HostTensor]) -> (u64, Vec<HostTensor>) {
    let s = gpu_session(g, m);
    s.run(inputs).unwrap();
    let before = g.stats();
    let out = s.run(inputs).unwrap();
    let d = g.stats().since(&before);
    assert_eq!(d.compiles, 0, "a second run compiles nothing");
    (d.dispatches, out)
}

/// A backend of its own, so that counters are not shared with tests running in parallel.
fn private_gpu() -> Option<Arc<GpuBackend>> {
    gpu()?;
    Some(Arc::new(GpuBackend::new().unwrap()))
}

#[test]
fn fusion_gives_the_promised_dispatch_counts() {
    let Some(g) = private_gpu() else { return };
    let x = |shape: &[usize], seed| {
        vec![HostTensor::new(shape, data(shape.iter().product(), seed, false)).unwrap()]
    };
    let m = one_lambda(&[], chain);
    let inputs = x(&[4096], 1);
    let (d, out) = dispatches(&g, &m, &inputs);
    assert_eq!(d, 1, "chain");
    assert_agree("chain", &cpu_run(&m, &inputs), &out, 1e-5, 1e-6);

    let m = one_lambda(&[256], |x| x.softmax(-1));
    let inputs = x(&[64, 256], 2);
    let (d, out) = dispatches(&g, &m, &inputs);
    assert!(d <= 2, "softmax took {d} dispatches");
    assert_agree("softmax", &cpu_run(&m, &inputs), &out, 1e-5, 1e-7);

    let m = one_lambda(&[256], antirectifier);
    let inputs = x(&[64, 256], 3);
    let (d, out) = dispatches(&g, &m, &inputs);
    assert!(d <= 3, "antirectifier took {d} dispatches");
    assert_agree("antirectifier", &cpu_run(&m, &inputs), &out, 1e-5, 1e-6);

    let mut dense = Sequential::new();
    dense.add(Input::new(&[64])).unwrap();
    dense
        .add(Dense::new(32).activation(Activation::Relu))
        .unwrap();
    let dense = dense.model().unwrap();
    let inputs = x(&[16, 64], 4);
    let (d, out) = dispatches(&g, &dense, &inputs);
    assert_eq!(d, 1, "Dense(relu)");
    assert_agree("dense", &cpu_run(&dense, &inputs), &out, 1e-5, 1e-5);

    let (m, inputs) = mlp(64);
    let (d, out) = dispatches(&g, &m, &inputs);
    assert_eq!(d, 3, "mlp");
    assert_agree("mlp", &cpu_run(&m, &inputs), &out, 1e-4, 1e-5);
}

#[test]
fn compiles_are_cached_across_runs_batch_sizes_and_arguments() {
    let Some(g) = private_gpu() else { return };
    let layer =
        Lambda::with_scope(|xs, s| (&xs[0] * s.argument("a")).softmax(-1) + s.argument("b"))
            .argument("a", 0.5)
            .argument("b", 1.0);
    let x = Input::new(&[7]).tensor();
    let y = layer.call(&x).unwrap();
    let m = Model::new(&[x], &[y]).unwrap();
    let s = gpu_session(&g, &m);
    let run = |batch: usize| {
        let inputs = [HostTensor::new(&[batch, 7], data(batch * 7, batch as u32, false)).unwrap()];
        let before = g.stats();
        let out = s.run(&inputs).unwrap();
        (g.stats().since(&before), out, inputs)
    };
    run(3);
    let (second, _, _) = run(3);
    assert_eq!(second.compiles, 0, "second run");
    let (new_batch, out, inputs) = run(5);
    assert_eq!(new_batch.compiles, 0, "a new batch size compiles nothing");
    assert_agree("batch 5", &cpu_run(&m, &inputs), &out, 1e-5, 1e-6);
    layer.set_argument("a", 3.0).unwrap();
    let (new_arg, out, inputs) = run(5);
    assert_eq!(new_arg.compiles, 0, "a new argument value compiles nothing");
    assert_agree("argument changed", &cpu_run(&m, &inputs), &out, 1e-5, 1e-6);
    assert!(new_arg.bytes_uploaded > 0 && new_arg.bytes_read_back == 5 * 7 * 4);
}

#[test]
fn example_models_agree() {
    let Some(g) = gpu() else { return };
    // linear_transform with shared variables, a Dense between the two uses.
    let linear = Lambda::with_scope(|xs, s| {
        &xs[0] * s.variable("multiplier", &[], 1.0) + s.variable("bias", &[], 0.0)
    });
    let mut lt = Sequential::new();
    lt.add(Input::new(&[10])).unwrap();
    lt.add(linear.clone()).unwrap();
    lt.add(Dense::new(10).activation(Activation::Relu)).unwrap();
    lt.add(linear.clone()).unwrap();
    linear
        .set_variable("multiplier", HostTensor::scalar(2.0))
        .unwrap();
    let lt = lt.model().unwrap();
    let xs = [HostTensor::new(&[4, 10], data(40, 5, false)).unwrap()];
    let s = gpu_session(&g, &lt);
    assert_agree(
        "linear_transform",
        &cpu_run(&lt, &xs),
        &s.run(&xs).unwrap(),
        1e-5,
        1e-6,
    );
    // Setting a variable re-uploads it for the next run.
    linear
        .set_variable("bias", HostTensor::scalar(-0.5))
        .unwrap();
    assert_agree(
        "after set_variable",
        &cpu_run(&lt, &xs),
        &s.run(&xs).unwrap(),
        1e-5,
        1e-6,
    );

    // A functional model with two inputs, a shared Dense, list Lambdas and two outputs.
    let a = Input::new(&[6]).tensor();
    let b = Input::new(&[6]).tensor();
    let shared = Dense::new(6).activation(Activation::Tanh);
    let (ha, hb) = (shared.call(&a).unwrap(), shared.call(&b).unwrap());
    let d = Lambda::multi(|xs| (&xs[0] - &xs[1]).abs())
        .call(&[ha.clone(), hb.clone()])
        .unwrap();
    let merged = Lambda::multi(|xs| Tensor::concatenate(xs, -1))
        .call(&[d, ha, hb])
        .unwrap();
    let score = Dense::new(2)
        .activation(Activation::Softmax)
        .call(&merged)
        .unwrap();
    let arg = Lambda::new(|x| x.argmax(-1)).call(&score).unwrap();
    let m = Model::new(&[a, b], &[score, arg]).unwrap();
    let xs = [
        HostTensor::new(&[3, 6], data(18, 6, false)).unwrap(),
        HostTensor::new(&[3, 6], data(18, 7, false)).unwrap(),
    ];
    validate_model(&m, &xs);
    assert_agree(
        "siamese",
        &cpu_run(&m, &xs),
        &gpu_session(&g, &m).run(&xs).unwrap(),
        1e-5,
        1e-6,
    );
}

#[test]
fn large_dispatches_fold_onto_a_2d_grid() {
    let Some(g) = gpu() else { return };
    let n = 65535 * 256 + 1000;
    let m = one_lambda(&[], chain);
    let inputs = [HostTensor::new(&[n], data(n, 11, false)).unwrap()];
    let out = gpu_session(&g, &m).run(&inputs).unwrap();
    assert_agree("chain 16.8M", &cpu_run(&m, &inputs), &out, 1e-5, 1e-6);
    // `erfc` and the exact GELU built on it, over the same axis longer than 65,535 workgroups.
    let m = one_lambda(&[], |x| {
        let y = x * 3.0;
        y.erfc() + y.gelu_with(false)
    });
    let out = gpu_session(&g, &m).run(&inputs).unwrap();
    assert_agree(
        "erfc and gelu 16.8M",
        &cpu_run(&m, &inputs),
        &out,
        1e-5,
        1e-6,
    );
}

#[test]
fn fusion_respects_the_storage_buffer_limit() {
    if gpu().is_none() {
        return;
    }
    let g = Arc::new(
        GpuBackend::with_options(GpuOptions {
            max_storage_buffers: Some(8),
            ..Default::default()
        })
        .unwrap(),
    );
    let inputs: Vec<Tensor> = (0..12).map(|_| Input::new(&[5]).tensor()).collect();
    let y = Lambda::multi(|xs| {
        let mut t = xs[0].clone();
        for (k, x) in xs.iter().enumerate().skip(1) {
            t = &t + &(x * (k as f32));
        }
        t
    })
    .call(&inputs)
    .unwrap();
    let m = Model::new(&inputs, &[y]).unwrap();
    let hosts: Vec<HostTensor> = (0..12)
        .map(|k| HostTensor::new(&[2, 5], data(10, k + 20, false)).unwrap())
        .collect();
    let shapes: Vec<Vec<usize>> = hosts.iter().map(|h| h.shape().to_vec()).collect();
    let kernels = GpuBackend::kernels_for(m.program(), &shapes, 8).unwrap();
    assert!(kernels.len() >= 2);
    for k in &kernels {
        assert!(
            k.reads.len() < 8,
            "a kernel binds {} buffers",
            k.reads.len() + 1
        );
        validate(&k.wgsl);
    }
    let out = gpu_session(&g, &m).run(&hosts).unwrap();
    assert_agree("12 inputs", &cpu_run(&m, &hosts), &out, 1e-5, 1e-5);
}

#[test]
fn a_lowered_binding_limit_refuses_large_tensors_clearly() {
    if gpu().is_none() {
        return;
    }
    let g = Arc::new(
        GpuBackend::with_options(GpuOptions {
            max_binding_bytes: Some(4096),
            ..Default::default()
        })
        .unwrap(),
    );
    let m = one_lambda(&[2048], |x| x * 2.0);
    let big = [HostTensor::new(&[1, 2048], vec![1.0f32; 2048]).unwrap()];
    let err = gpu_session(&g, &m).run(&big).unwrap_err().to_string();
    assert!(err.contains("8192 bytes") && err.contains("4096"), "{err}");
    // Small enough tensors still run on the same device.
    let m = one_lambda(&[512], |x| x * 2.0);
    let small = [HostTensor::new(&[1, 512], vec![1.0f32; 512]).unwrap()];
    assert_eq!(
        gpu_session(&g, &m).run(&small).unwrap()[0]
            .as_f32()
            .unwrap(),
        &[2.0; 512]
    );
}

#[test]
fn wgsl_snapshots() {
    // Snapshots of generated WGSL, so that codegen changes are visible in review. They need no
    // device: the planner and code generator run on the host.
    let shapes = |s: &[usize]| vec![s.to_vec()];
    let anti = one_lambda(&[8], antirectifier);
    let softmax = one_lambda(&[8], |x| x.softmax(-1));
    let mut dense = Sequential::new();
    dense.add(Input::new(&[8])).unwrap();
    dense
        .add(Dense::new(4).activation(Activation::Relu))
        .unwrap();
    let dense = dense.model().unwrap();
    for (name, m) in [
        ("antirectifier", anti),
        ("softmax", softmax),
        ("dense_relu", dense),
    ] {
        let kernels = GpuBackend::kernels_for(m.program(), &shapes(&[2, 8]), 8).unwrap();
        let text: String = kernels
            .iter()
            .map(|k| format!("// {} kernel\n{}", k.kind, k.wgsl))
            .collect();
        for k in &kernels {
            validate(&k.wgsl);
        }
        insta::assert_snapshot!(name, text);
    }
}

mod random_graphs {
    use super::*;
    use proptest::prelude::*;

    /// One step of a random graph, applied to the tensors built so far (all of shape
    /// (B, P, P) or with some dims 1, so that any two broadcast).
    #[derive(Clone, Debug)]
    enum Step {
        Unary(u8, usize),
        Binary(u8, usize, usize),
        Reduce(u8, usize, usize),
        Movement(u8, usize, usize),
    }

    fn apply(nodes: &[Tensor], step: &Step, p: usize) -> Tensor {
        let pick = |i: usize| nodes[i % nodes.len()].clone();
        match *step {
            Step::Unary(k, a) => {
                let x = pick(a);
                match k % 8 {
                    0 => x.tanh(),
                    1 => x.sigmoid(),
                    2 => -x.abs(),
                    3 => x.sin(),
                    4 => x.tanh().exp(),
                    5 => x.relu(),
                    6 => (x.abs() + 1.0).sqrt(),
                    _ => x.gelu(),
                }
            }
            Step::Binary(k, a, b) => {
                let (x, y) = (pick(a), pick(b));
                match k % 6 {
                    0 => &x + &y,
                    1 => &x - &y,
                    2 => (&x * &y).tanh(),
                    3 => x.maximum(&y),
                    4 => &x / &(y.abs() + 1.0),
                    _ => Tensor::where_(&x.greater(&y), &x, &y),
                }
            }
            Step::Reduce(k, a, axis) => {
                let x = pick(a);
                let axis = (axis % 3) as i32;
                match k % 5 {
                    0 => x.sum_keepdims(axis).tanh(),
                    1 => x.mean_keepdims(axis),
                    2 => x.max_keepdims(axis),
                    3 => x.softmax(axis as isize),
                    // l2_normalize of a centred row is ill-conditioned where the row is constant
                    // (it multiplies rounding noise by 1e6), so normalise a row with a norm.
                    _ => (&x - &x.mean_keepdims(-1)) + (x.abs() + 0.5).l2_normalize(-1),
                }
            }
            Step::Movement(k, a, b) => {
                let x = pick(a);
                let full = x
                    .shape()
                    .dims()
                    .iter()
                    .all(|d| *d != Dim::Known(1) || p == 1);
                match k % 5 {
                    0 if full => x.swapaxes(1, 2),
                    1 => x.slice(&[
                        SliceArg::Range(lamina::op::AxisSlice::FULL),
                        SliceArg::step(-1),
                    ]),
                    2 if full => x
                        .reshape(&[-1, (p * p) as i64])
                        .reshape(&[-1, p as i64, p as i64]),
                    3 if full => {
                        let y = pick(b).broadcast_to(&[2, p, p]);
                        Tensor::concatenate(&[x.clone(), y], 2).slice(s![.., .., SliceArg::step(2)])
                    }
                    4 if full && pick(b).shape() == x.shape() => x.matmul(&pick(b)).tanh(),
                    _ => x.cumsum(1).tanh(),
                }
            }
        }
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (any::<u8>(), any::<usize>()).prop_map(|(k, a)| Step::Unary(k, a)),
            4 => (any::<u8>(), any::<usize>(), any::<usize>()).prop_map(|(k, a, b)| Step::Binary(k, a, b)),
            2 => (any::<u8>(), any::<usize>(), any::<usize>()).prop_map(|(k, a, b)| Step::Reduce(k, a, b)),
            2 => (any::<u8>(), any::<usize>(), any::<usize>()).prop_map(|(k, a, b)| Step::Movement(k, a, b)),
        ]
    }

    fn check_graph(p: usize, masks: &[u8], steps: &[Step], seed: u32) {
        let Some(g) = gpu() else { return };
        // Three inputs of shape (B, P, P) with some dims 1: broadcasting corners.
        let shapes: Vec<Vec<usize>> = masks
            .iter()
            .map(|m| {
                vec![
                    if m & 1 == 1 { 1 } else { p },
                    if m & 2 == 2 { 1 } else { p },
                ]
            })
            .collect();
        let inputs: Vec<Tensor> = shapes.iter().map(|s| Input::new(s).tensor()).collect();
        let steps2 = steps.to_vec();
        let out = Lambda::multi(move |xs| {
            let mut nodes: Vec<Tensor> = xs.to_vec();
            for st in &steps2 {
                let t = apply(&nodes, st, p);
                if t.error().is_none() {
                    nodes.push(t);
                }
            }
            let n = nodes.len();
            &nodes[n - 1] + &nodes[n / 2].sum(Axes::All)
        })
        .call(&inputs)
        .unwrap();
        let m = Model::new(&inputs, &[out]).unwrap();
        let hosts: Vec<HostTensor> = shapes
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let full = [2, s[0], s[1]];
                HostTensor::new(
                    &full,
                    data(full.iter().product(), seed.wrapping_add(k as u32), false),
                )
                .unwrap()
            })
            .collect();
        validate_model(&m, &hosts);
        let cpu = cpu_run(&m, &hosts);
        let got = gpu_session(&g, &m).run(&hosts).unwrap();
        assert_agree("random graph", &cpu, &got, 1e-4, 1e-4);
    }

    /// A graph proptest once shrank to (when it still normalised centred rows).
    #[test]
    fn regression_graph_1() {
        use Step::*;
        let steps = [
            Reduce(237, 3458078639353072884, 1425692606034009107),
            Reduce(15, 5885973104627407723, 284768962477862002),
            Unary(0, 0),
            Unary(29, 11609942332986024292),
            Unary(0, 0),
            Unary(0, 0),
            Unary(0, 0),
            Unary(0, 0),
            Unary(0, 0),
            Unary(0, 0),
            Unary(0, 0),
            Unary(0, 2948504989),
            Binary(45, 14987397689889852722, 17189146532480363481),
            Binary(253, 9990317477189546804, 10720019714344347258),
            Movement(177, 18316093774046620522, 17886149658088049247),
            Movement(114, 199560017172457837, 8296063042713898522),
            Binary(252, 11925554539958116580, 12899407741418559549),
            Binary(139, 10576992675217788612, 3676309777607149136),
            Binary(8, 5686464672906061715, 17512922674614142274),
            Reduce(29, 8323895046063297397, 2087793298823587746),
        ];
        check_graph(3, &[1, 0, 0], &steps, 745370066);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(0x001a_314a), ..ProptestConfig::default() })]

        #[test]
        fn random_graphs_agree(
            p in 2usize..5,
            masks in proptest::collection::vec(0u8..4, 3),
            steps in proptest::collection::vec(step(), 20..28),
            seed in any::<u32>(),
        ) {
            check_graph(p, &masks, &steps, seed);
        }
    }
}

#[test]
fn async_read_back_gives_the_same_results() {
    let x = Input::new(&[16]).tensor();
    let y = Lambda::new(|x| x.softmax(-1) * 3.0).call(&x).unwrap();
    let m = Model::new(&[x], &[y]).unwrap();
    let inputs = [HostTensor::new(&[4, 16], data(64, 3, false)).unwrap()];
    let want = cpu_run(&m, &inputs);
    let cpu = Session::new(m.program().clone(), BackendKind::Cpu).unwrap();
    assert_eq!(pollster::block_on(cpu.run_async(&inputs)).unwrap(), want);
    let Some(g) = gpu() else { return };
    let s = gpu_session(&g, &m);
    let blocking = s.run(&inputs).unwrap();
    let asynchronous = pollster::block_on(s.run_async(&inputs)).unwrap();
    assert_eq!(blocking, asynchronous);
    assert_agree("async", &want, &asynchronous, 1e-5, 1e-7);
}

/// Values that WGSL lets a driver assume away: NaN, infinities, signed zeros, and floats past
/// the integer types' ranges.
fn specials() -> Vec<f32> {
    vec![
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        1.0,
        -1.0,
        3e9,
        -3e9,
        5e9,
        0.5,
        -2.5,
        2.5,
        f32::NAN,
        7.0,
        -0.0,
    ]
}

/// Every op whose result the WGSL spells with bit tests (comparisons, max/min, casts, sign,
/// pow's special cases, max/min/argmax reductions) agrees with the CPU bit for bit. Plain
/// arithmetic is left to the driver: llvmpipe folds `x * 0` and `x - x` to 0 even for NaN and
/// inf, as WGSL allows.
#[test]
fn nan_inf_signed_zeros_and_casts_agree_bit_for_bit() {
    let Some(g) = gpu() else { return };
    type F = fn(&Tensor) -> Tensor;
    let cases: Vec<(&str, F)> = vec![
        ("relu", |x| x.relu()),
        ("maximum", |x| {
            x.maximum(x.slice(s![.., SliceArg::step(-1)]))
        }),
        ("minimum", |x| {
            x.minimum(x.slice(s![.., SliceArg::step(-1)]))
        }),
        ("clip", |x| x.clip(-1.0, 1.0)),
        ("nan_cleaning", |x| Tensor::where_(&x.not_equal(x), 0.0, x)),
        ("comparisons", |x| {
            x.equal(x).cast(DType::F32)
                + x.less(1.0).cast(DType::F32) * 2.0
                + x.greater_equal(0.0).cast(DType::F32) * 4.0
                + x.greater(x.slice(s![.., SliceArg::step(-1)]))
                    .cast(DType::F32)
                    * 8.0
        }),
        ("cast_i32", |x| x.cast(DType::I32).cast(DType::F32)),
        ("cast_u32", |x| x.cast(DType::U32).cast(DType::F32)),
        ("cast_bool", |x| x.cast(DType::Bool).cast(DType::F32)),
        ("sign", |x| x.sign()),
        ("pow_one", |x| Tensor::scalar(1.0).pow(x)),
        ("pow_special_exponents", |x| {
            // Exponents whose powers are exact: 0 and -0 give 1 for every base, NaN gives NaN
            // except for the base 1.
            let e = vec![
                0.0f32,
                f32::NAN,
                -0.0,
                f32::NAN,
                0.0,
                f32::NAN,
                -0.0,
                f32::NAN,
            ];
            let e = Tensor::constant(HostTensor::new(&[8], e).unwrap());
            x.reshape(&[-1, 2, 8]).pow(e)
        }),
        ("max_min_rows", |x| {
            Tensor::stack(&[x.max(-1), x.min(-1)], -1)
        }),
        ("argmax_argmin", |x| {
            x.argmax(-1).cast(DType::F32) * 100.0 + x.argmin(-1).cast(DType::F32)
        }),
    ];
    for (name, f) in cases {
        let m = one_lambda(&[16], f);
        let inputs = [HostTensor::new(&[1, 16], specials()).unwrap()];
        validate_model(&m, &inputs);
        let want = cpu_run(&m, &inputs);
        let got = gpu_session(&g, &m)
            .run(&inputs)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (c, g) in want.iter().zip(&got) {
            assert_eq!(c.shape(), g.shape(), "{name}");
            for (i, (a, b)) in c.to_f32_vec().iter().zip(g.to_f32_vec()).enumerate() {
                let same = (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits();
                assert!(same, "{name}: element {i}: cpu {a:?} vs gpu {b:?}");
            }
        }
    }
}

/// The ops added for Keras parity on NaN, infinities, signed zeros and huge values: the GPU
/// gives the CPU's NaNs and infinities, and its finite values within float tolerance.
#[test]
fn new_ops_agree_on_special_values() {
    let Some(g) = gpu() else { return };
    type F = fn(&Tensor) -> Tensor;
    let cases: Vec<(&str, F)> = vec![
        ("floor_divide", |x| {
            x.floor_divide(x.slice(s![.., SliceArg::step(-1)]))
        }),
        ("mod", |x| x.floor_mod(x.slice(s![.., SliceArg::step(-1)]))),
        ("floor_divide_scalar", |x| {
            x.floor_divide(0.25) + x.floor_mod(-0.5)
        }),
        ("isnan_isinf_isfinite", |x| {
            x.isnan().cast(DType::F32)
                + x.isinf().cast(DType::F32) * 2.0
                + x.isfinite().cast(DType::F32) * 4.0
        }),
        ("nan_to_num", |x| x.nan_to_num(0.0, None, None)),
        ("expm1", |x| x.expm1()),
        ("log1p", |x| x.log1p()),
        ("arctan2", |x| {
            x.arctan2(x.slice(s![.., SliceArg::step(-1)]))
        }),
        ("hypot", |x| x.hypot(x.slice(s![.., SliceArg::step(-1)]))),
        ("logaddexp", |x| {
            x.logaddexp(x.slice(s![.., SliceArg::step(-1)]))
        }),
        ("atan_tanh", |x| x.arctan() + x.tanh()),
    ];
    for (name, f) in cases {
        let m = one_lambda(&[16], f);
        let inputs = [HostTensor::new(&[1, 16], specials()).unwrap()];
        validate_model(&m, &inputs);
        let want = cpu_run(&m, &inputs);
        let got = gpu_session(&g, &m)
            .run(&inputs)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_agree(name, &want, &got, 2e-5, 2e-6);
    }
}
