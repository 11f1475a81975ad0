//! Activations by Keras name (in `Dense`, the `Activation` layer and `parse`), the two GELU
//! defaults, user functions as activations (and their save/load), masked `Multiply`,
//! `Maximum` and `Minimum`, and `Softmax` with float masks. Expected values are the ones real
//! Keras 3.15 (JAX backend, float32) printed, or the formulas worked out in f64 here. Every
//! model also runs on the GPU where there is an adapter, which must agree with the CPU.
#![cfg(feature = "gpu")]
// compares the CPU interpreter with the GPU backend

// Expected values are written as Python printed them, wider than f32 holds.
#![allow(clippy::excessive_precision)]

use lamina::Predict;
use lamina::layers::Configurable;
use lamina::prelude::*;
use std::sync::Arc;

use crate::common;
use common::run_both;

/// Runs on both backends (see `common::run_both`) and returns the CPU's outputs.
fn run(model: &Model, inputs: &[HostTensor]) -> Vec<HostTensor> {
    run_both(model, inputs)
}

/// `got` against `want` within `rtol * |want| + atol` (NaN matches NaN, infinities exactly).
#[track_caller]
fn assert_close(got: &[f32], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = g as f64;
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= rtol * w.abs() + atol
        };
        assert!(ok, "element {i}: got {g:e}, want {w:e}\n  got:  {got:?}");
    }
}

/// The inputs of Keras's run (notes Q8), as float32.
const XS: [f32; 11] = [-5.0, -1.5, -1.0, -0.5, -1e-7, 0.0, 1e-7, 0.5, 1.0, 1.5, 5.0];

/// What `keras.activations.<name>(XS)` printed (Keras 3.15.1, JAX, float32).
fn keras_values(name: &str) -> Vec<f64> {
    match name {
        "relu" => vec![
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            1.0000000116860974e-07,
            0.5,
            1.0,
            1.5,
            5.0,
        ],
        "leaky_relu" => vec![
            -1.0,
            -0.30000001192092896,
            -0.20000000298023224,
            -0.10000000149011612,
            -1.999999987845058e-08,
            0.0,
            1.0000000116860974e-07,
            0.5,
            1.0,
            1.5,
            5.0,
        ],
        "relu6" => vec![
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            1.0000000116860974e-07,
            0.5,
            1.0,
            1.5,
            5.0,
        ],
        "elu" | "celu" => vec![
            -0.9932620525360107,
            -0.7768698334693909,
            -0.6321205496788025,
            -0.39346933364868164,
            -9.999999406318238e-08,
            0.0,
            1.0000000116860974e-07,
            0.5,
            1.0,
            1.5,
            5.0,
        ],
        "selu" => vec![
            -1.7462533712387085,
            -1.3658143281936646,
            -1.1113307476043701,
            -0.6917582154273987,
            -1.7580991595878004e-07,
            0.0,
            1.0507010017590801e-07,
            0.5253505110740662,
            1.0507010221481323,
            1.5760514736175537,
            5.253505229949951,
        ],
        "softplus" => vec![
            0.006715348456054926,
            0.20141328871250153,
            0.3132616877555847,
            0.4740769863128662,
            0.6931471228599548,
            0.6931471824645996,
            0.6931472420692444,
            0.9740769863128662,
            1.3132617473602295,
            1.7014132738113403,
            5.006715297698975,
        ],
        "softsign" => vec![
            -0.8333333134651184,
            -0.6000000238418579,
            -0.5,
            -0.3333333432674408,
            -9.999998695775503e-08,
            0.0,
            9.999998695775503e-08,
            0.3333333432674408,
            0.5,
            0.6000000238418579,
            0.8333333134651184,
        ],
        "silu" => vec![
            -0.033464252948760986,
            -0.2736383080482483,
            -0.2689414322376251,
            -0.1887703388929367,
            -5.000000058430487e-08,
            0.0,
            5.000000768973223e-08,
            0.3112296760082245,
            0.7310585975646973,
            1.226361632347107,
            4.966536045074463,
        ],
        "sigmoid" => vec![
            0.006692850962281227,
            0.18242552876472473,
            0.2689414322376251,
            0.3775406777858734,
            0.5,
            0.5,
            0.5000000596046448,
            0.622459352016449,
            0.7310585975646973,
            0.8175744414329529,
            0.9933071732521057,
        ],
        "hard_sigmoid" => vec![
            0.0,
            0.25,
            0.3333333432674408,
            0.4166666865348816,
            0.5,
            0.5,
            0.5,
            0.5833333730697632,
            0.6666666865348816,
            0.75,
            1.0,
        ],
        "hard_silu" => vec![
            -0.0,
            -0.375,
            -0.3333333432674408,
            -0.2083333432674408,
            -5.000000058430487e-08,
            0.0,
            5.000000058430487e-08,
            0.2916666865348816,
            0.6666666865348816,
            1.125,
            5.0,
        ],
        "mish" => vec![
            -0.03357623517513275,
            -0.29809969663619995,
            -0.3034014403820038,
            -0.22074377536773682,
            -5.99999978589949e-08,
            0.0,
            6.000001206984962e-08,
            0.37524524331092834,
            0.8650984764099121,
            1.4033782482147217,
            4.999552249908447,
        ],
        "log_sigmoid" => vec![
            -5.006715297698975,
            -1.7014132738113403,
            -1.3132617473602295,
            -0.9740769863128662,
            -0.6931472420692444,
            -0.6931471824645996,
            -0.6931471228599548,
            -0.4740769863128662,
            -0.3132616877555847,
            -0.20141328871250153,
            -0.006715348456054926,
        ],
        "tanh" => vec![
            -0.9999091625213623,
            -0.9051482081413269,
            -0.7615941762924194,
            -0.46211716532707214,
            -1.0000000116860974e-07,
            0.0,
            1.0000000116860974e-07,
            0.46211716532707214,
            0.7615941762924194,
            0.9051482081413269,
            0.9999091625213623,
        ],
        "tanh_shrink" => vec![
            -4.000090599060059,
            -0.5948517918586731,
            -0.23840582370758057,
            -0.037882834672927856,
            0.0,
            0.0,
            0.0,
            0.037882834672927856,
            0.23840582370758057,
            0.5948517918586731,
            4.000090599060059,
        ],
        "sparse_plus" => vec![
            0.0,
            0.0,
            0.0,
            0.0625,
            0.24999994039535522,
            0.25,
            0.2500000596046448,
            0.5625,
            1.0,
            1.5,
            5.0,
        ],
        "squareplus" => vec![
            0.192582368850708,
            0.5,
            0.6180340051651001,
            0.7807763814926147,
            0.9999999403953552,
            1.0,
            1.0,
            1.2807763814926147,
            1.6180340051651,
            2.0,
            5.192582130432129,
        ],
        "linear" => XS.iter().map(|&x| x as f64).collect(),
        "exponential" => vec![
            0.0067379469983279705,
            0.22313016653060913,
            0.3678794503211975,
            0.6065306663513184,
            0.9999998807907104,
            1.0,
            1.0000001192092896,
            1.6487212181091309,
            2.7182817459106445,
            4.481688976287842,
            148.4131622314453,
        ],
        "gelu" => vec![
            -1.4332579212350538e-06,
            -0.10021083056926727,
            -0.15865527093410492,
            -0.1542687714099884,
            -4.999999703159119e-08,
            0.0,
            5.000000768973223e-08,
            0.3457312285900116,
            0.8413447141647339,
            1.3997892141342163,
            4.999998569488525,
        ],
        "sparse_sigmoid" => vec![
            0.0,
            0.0,
            0.0,
            0.25,
            0.4999999403953552,
            0.5,
            0.5000000596046448,
            0.75,
            1.0,
            1.0,
            1.0,
        ],
        "hard_tanh" => vec![
            -1.0,
            -1.0,
            -1.0,
            -0.5,
            -1.0000000116860974e-07,
            0.0,
            1.0000000116860974e-07,
            0.5,
            1.0,
            1.0,
            1.0,
        ],
        "soft_shrink" => vec![-4.5, -1.0, -0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 4.5],
        "hard_shrink" => vec![-5.0, -1.5, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.5, 5.0],
        other => panic!("no Keras values recorded for {other}"),
    }
}

/// The elementwise activations with Keras values (all but glu, softmax and log_softmax).
const ELEMENTWISE: [&str; 25] = [
    "linear",
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "celu",
    "gelu",
    "sigmoid",
    "hard_sigmoid",
    "sparse_sigmoid",
    "silu",
    "hard_silu",
    "mish",
    "log_sigmoid",
    "softplus",
    "softsign",
    "sparse_plus",
    "squareplus",
    "tanh",
    "tanh_shrink",
    "hard_tanh",
    "hard_shrink",
    "soft_shrink",
    "exponential",
];

fn xs_tensor() -> HostTensor {
    HostTensor::new(&[1, XS.len()], XS.to_vec()).unwrap()
}

/// A Dense layer whose kernel is the identity and bias zero, so that its output is its
/// activation of the input exactly.
fn identity_dense(n: usize, activation: Activation, x: &Tensor) -> Result<Tensor> {
    let dense = Dense::new(n).activation(activation);
    let y = dense.call(x)?;
    let mut eye = vec![0.0f32; n * n];
    for i in 0..n {
        eye[i * n + i] = 1.0;
    }
    dense.set_kernel(HostTensor::new(&[n, n], eye)?)?;
    Ok(y)
}

#[test]
fn every_named_activation_matches_keras_in_dense_the_layer_and_the_op() -> Result<()> {
    let n = XS.len();
    for name in ELEMENTWISE {
        let activation: Activation = name.parse()?;
        assert_eq!(activation.name(), name);
        let x = Input::new(&[n]).tensor();
        let by_layer = ActivationLayer::new(activation.clone()).call(&x)?;
        let by_dense = identity_dense(n, activation.clone(), &x)?;
        let a = activation.clone();
        let by_lambda = Lambda::new(move |t| a.apply(t)).call(&x)?;
        let model = Model::new(&[x], &[by_layer, by_dense, by_lambda])?;
        let out = run(&model, &[xs_tensor()]);
        let want = keras_values(name);
        for (k, o) in out.iter().enumerate() {
            assert_eq!(o.dtype(), DType::F32, "{name}");
            // A few float32 ulps: Keras's transcendental functions and ours round differently.
            let got = o.to_f32_vec();
            std::panic::catch_unwind(|| assert_close(&got, &want, 3e-6, 1e-12))
                .unwrap_or_else(|_| panic!("{name}, path {k} (layer, dense, op)"));
        }
    }
    Ok(())
}

#[test]
fn names_aliases_and_unknown_names() {
    // Every name Keras's activations.get accepts, except sparsemax and threshold.
    for a in Activation::ALL {
        assert_eq!(a.name().parse::<Activation>().unwrap(), a);
        assert_eq!(a.to_string(), a.name());
        assert!(!a.is_custom());
    }
    assert_eq!(Activation::ALL.len(), 28);
    assert_eq!("swish".parse::<Activation>().unwrap(), Activation::Silu);
    assert_eq!(
        "hard_swish".parse::<Activation>().unwrap(),
        Activation::HardSilu
    );
    assert_eq!("ReLU6".parse::<Activation>().unwrap(), Activation::Relu6);
    // Keras rejects these spellings too.
    for bad in ["hardswish", "hardsigmoid", "logsigmoid", "swish2", ""] {
        let e = bad.parse::<Activation>().unwrap_err().to_string();
        assert!(e.contains("activation") && e.contains("hard_swish"), "{e}");
    }
    // An alias saves under the canonical name, as Keras serialises it.
    assert_eq!(
        "hard_swish".parse::<Activation>().unwrap().name(),
        "hard_silu"
    );
}

#[test]
fn elu_selu_celu_keep_their_digits_near_zero() -> Result<()> {
    // Keras uses expm1: elu(-1e-7) is -9.9999994e-8, where exp(x) - 1 in float32 gives
    // -1.1920929e-7 (notes Q11).
    let x = Input::new(&[2]).tensor();
    let ys = [
        ActivationLayer::new(Activation::Elu).call(&x)?,
        ActivationLayer::new(Activation::Selu).call(&x)?,
        ActivationLayer::new(Activation::Celu).call(&x)?,
        Lambda::new(|t| t.elu(2.0)).call(&x)?,
        Lambda::new(|t| t.celu(2.0)).call(&x)?,
    ];
    let model = Model::new(&[x], &ys)?;
    let out = run(&model, &[HostTensor::new(&[1, 2], vec![-1e-7f32, -1e-4])?]);
    let f = |k: usize| out[k].to_f32_vec();
    assert_close(
        &f(0),
        &[-9.999999406318238e-08, -9.999499889090657e-05],
        1e-6,
        0.0,
    );
    assert_close(
        &f(1),
        &[-1.7580991595878004e-07, -0.00017580113490112126],
        1e-6,
        0.0,
    );
    assert_close(
        &f(2),
        &[-9.999999406318238e-08, -9.999499889090657e-05],
        1e-6,
        0.0,
    );
    assert_close(
        &f(3),
        &[-1.9999998812636477e-07, -0.00019998999778181314],
        1e-6,
        0.0,
    );
    // celu(x, 2) = 2 * expm1(x / 2), in f64.
    let celu2 = |x: f64| 2.0 * (x / 2.0).exp_m1();
    assert_close(
        &f(4),
        &[celu2(-1e-7f32 as f64), celu2(-1e-4f32 as f64)],
        1e-6,
        0.0,
    );
    Ok(())
}

/// `f` applied by a Lambda to `data` of shape `shape` (batch first), run on both backends.
fn apply(shape: &[usize], data: Vec<f32>, f: fn(&Tensor) -> Tensor) -> HostTensor {
    let x = Input::new(&shape[1..]).tensor();
    let y = Lambda::new(f).call(&x).unwrap();
    let model = Model::new(&[x], &[y]).unwrap();
    run(&model, &[HostTensor::new(shape, data).unwrap()]).remove(0)
}

#[test]
fn gelu_op_defaults_to_tanh_and_the_activation_is_exact() -> Result<()> {
    let xs = vec![-3.0f32, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0];
    // keras.ops.gelu(x) (approximate=True), notes Q7.
    let approximate = [
        -0.003637343645095825,
        -0.15880796313285828,
        -0.1542859971523285,
        0.0,
        0.3457140028476715,
        0.8411920070648193,
        2.9963626861572266,
    ];
    // keras.activations.gelu(x) (approximate=False).
    let exact = [
        -0.0040496960282325745,
        -0.15865527093410492,
        -0.1542687714099884,
        0.0,
        0.3457312285900116,
        0.8413447141647339,
        2.995950222015381,
    ];
    let got = |f| apply(&[1, 7], xs.clone(), f).to_f32_vec();
    // At -3, 1 + tanh(-2.63) cancels to 0.0024: one float32 ulp of tanh is 2.5e-5 of it.
    assert_close(&got(|x| x.gelu()), &approximate, 5e-5, 1e-12);
    assert_close(&got(|x| x.gelu_with(true)), &approximate, 5e-5, 1e-12);
    assert_close(&got(|x| x.gelu_with(false)), &exact, 3e-6, 1e-12);
    assert_close(&got(|x| Activation::Gelu.apply(x)), &exact, 3e-6, 1e-12);
    let parsed: Activation = "gelu".parse()?;
    assert_eq!(parsed, Activation::Gelu);

    // The exact form keeps its relative precision in the far negative tail, where
    // 1 + erf(x / sqrt 2) rounds away: 0.5 x erfc(-x / sqrt 2) in f64.
    let tail = [-5.0f64, -7.0, -9.0, -12.0];
    let want: Vec<f64> = tail
        .iter()
        .map(|&x| 0.5 * x * erfc(-x / 2f64.sqrt()))
        .collect();
    let got = apply(&[1, 4], tail.iter().map(|&x| x as f32).collect(), |x| {
        x.gelu_with(false)
    })
    .to_f32_vec();
    assert_close(&got, &want, 2e-5, 0.0);
    // Keras's own value at -5.
    assert_close(&got[..1], &[-1.4332579212350538e-06], 2e-5, 0.0);
    // Integers are computed in float32, as in Keras.
    let x = Input::new(&[3]).dtype(DType::I32).tensor();
    assert_eq!(x.gelu().dtype(), DType::F32);
    Ok(())
}

/// erfc in f64 by its continued fraction for x > 2 and 1 - erf's series below (only for the
/// tail test: x is 3.5 to 8.5 there).
fn erfc(x: f64) -> f64 {
    assert!(x > 2.0);
    // Lentz's continued fraction: erfc(x) = exp(-x²)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))).
    let mut f = x;
    for k in (1..200).rev() {
        f = x + (k as f64 / 2.0) / f;
    }
    (-x * x).exp() / std::f64::consts::PI.sqrt() / f
}

#[test]
fn glu_halves_the_axis() -> Result<()> {
    // keras.activations.glu([[1, 2, 3, 0.5, -1, 0]]) -> [0.62245935, 0.53788286, 1.5].
    let out = apply(&[1, 6], vec![1.0, 2.0, 3.0, 0.5, -1.0, 0.0], |x| x.glu(-1));
    assert_eq!(out.shape(), &[1, 3]);
    assert_close(
        &out.to_f32_vec(),
        &[0.622459352016449, 0.5378828644752502, 1.5],
        3e-6,
        0.0,
    );
    // glu(2x4 / 4 - 1, axis=0) -> (1, 4); the batch axis must have a known size for that.
    let x = Input::new(&[4]).batch_size(2).tensor();
    let y = Lambda::new(|t| t.glu(0)).call(&x)?;
    let data: Vec<f32> = (0..8).map(|k| k as f32 / 4.0 - 1.0).collect();
    let out = run(&Model::new(&[x], &[y])?, &[HostTensor::new(&[2, 4], data)?]).remove(0);
    assert_eq!(out.shape(), &[1, 4]);
    assert_close(
        &out.to_f32_vec(),
        &[
            -0.5,
            -0.42163240909576416,
            -0.3112296760082245,
            -0.16979467868804932,
        ],
        3e-6,
        0.0,
    );
    // As Dense's activation: (None, 6) -> (None, 3); symbolic (None, 5, 6) -> (None, 5, 3).
    let x = Input::new(&[4]).tensor();
    assert_eq!(
        Dense::new(6)
            .activation(Activation::Glu)
            .call(&x)?
            .shape()
            .to_string(),
        "(None, 3)"
    );
    let x = Input::new(&[5, 6]).tensor();
    assert_eq!(
        ActivationLayer::new(Activation::Glu)
            .call(&x)?
            .shape()
            .to_string(),
        "(None, 5, 3)"
    );
    // An odd axis is an error naming glu, as Keras's "axis size must be divisible by 2".
    let x = Input::new(&[3]).tensor();
    let e = ActivationLayer::new(Activation::Glu)
        .call(&x)
        .unwrap_err()
        .to_string();
    assert!(e.contains("glu") && e.contains("divisible by 2"), "{e}");
    Ok(())
}

#[test]
fn dtypes_follow_keras() {
    let i = Input::new(&[3]).dtype(DType::I32).tensor();
    // relu, linear and hard_tanh keep int32; the others compute in float32.
    assert_eq!(Activation::Relu.apply(&i).dtype(), DType::I32);
    assert_eq!(Activation::Linear.apply(&i).dtype(), DType::I32);
    assert_eq!(Activation::HardTanh.apply(&i).dtype(), DType::I32);
    for a in [
        Activation::LeakyRelu,
        Activation::Relu6,
        Activation::Elu,
        Activation::Selu,
        Activation::Celu,
        Activation::Softplus,
        Activation::Softsign,
        Activation::HardSigmoid,
        Activation::HardSilu,
        Activation::Mish,
        Activation::LogSigmoid,
        Activation::Tanh,
        Activation::TanhShrink,
        Activation::SparsePlus,
        Activation::Squareplus,
        Activation::Exponential,
        Activation::Gelu,
        Activation::SparseSigmoid,
        Activation::SoftShrink,
        Activation::HardShrink,
    ] {
        assert_eq!(a.apply(&i).dtype(), DType::F32, "{a}");
    }
    let out = apply(&[1, 3], vec![-2.0, 0.5, 2.0], |x| {
        x.cast(DType::I32).hard_tanh().cast(DType::F32)
    });
    assert_eq!(out.to_f32_vec(), vec![-1.0, 0.0, 1.0]);
}

#[test]
fn softplus_is_logaddexp_as_in_keras() {
    // keras.activations.softplus: logaddexp(x, 0). Keras's XLA flushes exp(-100) to 0; our CPU
    // keeps the subnormal 3.7e-44, so that value is checked against both.
    let xs = vec![
        -30.0f32,
        -20.0,
        -10.0,
        100.0,
        1000.0,
        f32::NEG_INFINITY,
        f32::INFINITY,
        f32::NAN,
    ];
    let out = apply(&[1, 8], xs, |x| x.softplus()).to_f32_vec();
    assert_close(
        &out,
        &[
            9.357622912219837e-14,
            2.06115369216775e-09,
            4.5398901420412585e-05,
            100.0,
            1000.0,
            0.0,
            f64::INFINITY,
            f64::NAN,
        ],
        3e-6,
        0.0,
    );
    let tiny = apply(&[1, 1], vec![-100.0], |x| x.softplus()).to_f32_vec()[0];
    assert!((0.0..=4e-44).contains(&tiny), "{tiny:e}");
    // log_sigmoid = -softplus(-x): exact for very negative x, and -0 (Keras) or a subnormal
    // for very positive x.
    let out = apply(&[1, 3], vec![-100.0, 100.0, f32::NEG_INFINITY], |x| {
        x.log_sigmoid()
    })
    .to_f32_vec();
    assert_eq!(out[0], -100.0);
    assert!(out[1] <= 0.0 && out[1] > -1e-40, "{}", out[1]);
    assert_eq!(out[2], f32::NEG_INFINITY);
}

// ---------------------------------------------------------------------------------------------
// User functions as activations
// ---------------------------------------------------------------------------------------------

/// LeCun's scaled tanh, `1.7159 tanh(2x / 3)`, as a user activation.
fn lecun_tanh() -> Activation {
    Activation::custom("lecun_tanh", |x| {
        x.multiply(2.0 / 3.0).tanh().multiply(1.7159)
    })
}

fn lecun_tanh_f64(x: f64) -> f64 {
    1.7159 * (2.0 * x / 3.0).tanh()
}

#[test]
fn a_user_function_works_in_dense_and_the_activation_layer() -> Result<()> {
    let x = Input::new(&[2]).tensor();
    let dense = Dense::new(2).activation(lecun_tanh());
    let h = dense.call(&x)?;
    dense.set_kernel(HostTensor::new(&[2, 2], vec![1.0f32, -2.0, 0.5, 3.0])?)?;
    dense.set_bias(HostTensor::new(&[2], vec![0.25f32, -1.0])?)?;
    let y = ActivationLayer::new(lecun_tanh()).call(&x)?;
    let model = Model::new(&[x], &[h, y])?;
    let data = [0.3f64, -1.2, 2.0, 0.7];
    let out = run(
        &model,
        &[HostTensor::new(
            &[2, 2],
            data.iter().map(|&v| v as f32).collect(),
        )?],
    );
    // Dense: x @ [[1, -2], [0.5, 3]] + [0.25, -1], then the function.
    let mut want = Vec::new();
    for r in 0..2 {
        let (a, b) = (data[2 * r], data[2 * r + 1]);
        want.push(lecun_tanh_f64(a + 0.5 * b + 0.25));
        want.push(lecun_tanh_f64(-2.0 * a + 3.0 * b - 1.0));
    }
    assert_close(&out[0].to_f32_vec(), &want, 3e-6, 1e-7);
    let want: Vec<f64> = data.iter().map(|&v| lecun_tanh_f64(v)).collect();
    assert_close(&out[1].to_f32_vec(), &want, 3e-6, 1e-7);

    // Equality is by function: clones are equal, a second one made the same way is not.
    let a = lecun_tanh();
    assert_eq!(a, a.clone());
    assert_ne!(a, lecun_tanh());
    assert!(a.is_custom());
    assert_eq!(a.name(), "lecun_tanh");
    assert_eq!(dense.config().activation, "lecun_tanh");
    Ok(())
}

#[test]
fn a_user_activation_saves_as_its_traced_graph_and_loads_back() -> Result<()> {
    // A function with a captured constant, a reduction and a shape change, in both places.
    let scale = Tensor::constant(HostTensor::new(&[3], vec![1.0f32, -2.0, 0.5])?);
    let scaled = Activation::custom("scaled_softsign", move |x| x.softsign().multiply(&scale));
    let pairs = Activation::custom("pair_mean", |x| {
        x.slice_axis(-1, Some(0), Some(2), 1)
            .mean_keepdims(-1)
            .add(x)
    });
    let x = Input::new(&[4]).tensor();
    let h = Dense::new(3).activation(scaled).seed(7).call(&x)?;
    let y = ActivationLayer::new(pairs).name("pairs").call(&h)?;
    let model = Model::new(&[x], &[y])?;
    let inputs = [HostTensor::new(
        &[2, 4],
        vec![0.5f32, -1.0, 2.0, 0.25, -0.75, 1.5, 0.0, 3.0],
    )?];
    let want = run(&model, &inputs);

    let bytes = model.to_bytes()?;
    let loaded = Model::from_bytes(&bytes)?;
    let got = run(&loaded, &inputs);
    assert_eq!(got[0].to_f32_vec(), want[0].to_f32_vec());
    // Independently: softsign(x @ k + b) * scale, then each row plus the mean of its first two.
    let dense = loaded
        .layers()
        .into_iter()
        .find(|l| l.kind() == "Dense")
        .expect("a Dense layer");
    let k = dense.get_weight("kernel")?.to_f32_vec();
    let mut expected = Vec::new();
    for r in 0..2 {
        let row: Vec<f64> = (0..3)
            .map(|j| {
                let z: f64 = (0..4)
                    .map(|i| inputs[0].to_f32_vec()[r * 4 + i] as f64 * k[i * 3 + j] as f64)
                    .sum();
                z / (z.abs() + 1.0) * [1.0, -2.0, 0.5][j]
            })
            .collect();
        let m = (row[0] + row[1]) / 2.0;
        expected.extend(row.iter().map(|v| v + m));
    }
    assert_close(&got[0].to_f32_vec(), &expected, 1e-5, 1e-6);
    // The loaded layers carry their activations as custom ones, by the names given.
    let activations: Vec<Activation> = loaded
        .layers()
        .iter()
        .filter_map(|l| {
            let any = l.as_any();
            // The activation is applied at some shape; any does to get it back.
            let at = Shape::new(vec![Dim::Known(1), Dim::Known(3)]);
            any.downcast_ref::<Dense>()
                .and_then(|d| d.custom_activation(&at, DType::F32))
                .or_else(|| {
                    any.downcast_ref::<ActivationLayer>()
                        .and_then(|a| a.custom_activation(&at, DType::F32))
                })
                .map(|(a, _, _)| a)
        })
        .collect();
    let names: Vec<&str> = activations.iter().map(|a| a.name()).collect();
    assert_eq!(names, ["scaled_softsign", "pair_mean"]);
    assert!(activations.iter().all(|a| a.is_custom()));
    // Saved again and loaded, it still computes the same.
    let again = Model::from_bytes(&loaded.to_bytes()?)?;
    assert_eq!(run(&again, &inputs)[0].to_f32_vec(), want[0].to_f32_vec());
    Ok(())
}

#[test]
fn a_user_activation_that_cannot_be_saved_says_why() -> Result<()> {
    // Reading a model input other than its own argument cannot be recorded.
    let x = Input::new(&[3]).tensor();
    let other = Input::new(&[3]).tensor();
    let leak = other.clone();
    let h = Dense::new(3)
        .activation(Activation::custom("adds_other_input", move |t| {
            t.add(&leak)
        }))
        .call(&x)?;
    let model = Model::new(&[x, other], &[h])?;
    let e = model.to_bytes().unwrap_err().to_string();
    assert!(e.contains("adds_other_input") && e.contains("Input"), "{e}");

    // A panicking function is an error of the layer call, not a crash.
    let x = Input::new(&[3]).tensor();
    let e = ActivationLayer::new(Activation::custom("boom", |_| panic!("no luck")))
        .call(&x)
        .unwrap_err()
        .to_string();
    assert!(e.contains("boom") && e.contains("no luck"), "{e}");
    Ok(())
}

/// Rebuilds a model file with the architecture JSON edited (tensors kept).
fn with_architecture(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    let mut meta = meta.metadata().clone().unwrap();
    let mut arch: serde_json::Value = serde_json::from_str(&meta["architecture"]).unwrap();
    edit(&mut arch);
    meta.insert("architecture".into(), arch.to_string());
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        st.tensors().into_iter().collect();
    safetensors::serialize(tensors, Some(meta)).unwrap()
}

#[test]
fn a_recorded_activation_that_reads_anything_else_is_refused_at_load() -> Result<()> {
    let x = Input::new(&[3]).tensor();
    let h = Dense::new(2)
        .activation(Activation::custom("plus_two", |t| t.add(2.0)))
        .name("d")
        .call(&x)?;
    let bytes = Model::new(&[x], &[h])?.to_bytes()?;
    assert!(Model::from_bytes(&bytes).is_ok());
    type BodyEdit = fn(&mut serde_json::Value);
    let edits: [(&str, BodyEdit); 5] = [
        ("reads a variable", |body| {
            body["nodes"][0]["op"] = serde_json::json!({"op": "variable", "name": "kernel"})
        }),
        ("reads an input mask", |body| {
            body["nodes"][0]["op"] = serde_json::json!({"op": "input_mask", "index": 0})
        }),
        ("reads a second input", |body| {
            body["nodes"][0]["op"] = serde_json::json!({"op": "input", "index": 1})
        }),
        ("takes two inputs", |body| {
            body["inputs"] = serde_json::json!(2)
        }),
        ("reads a missing constant", |body| {
            body["nodes"][1]["op"] = serde_json::json!({"op": "constant", "id": 7})
        }),
    ];
    for (what, edit) in edits {
        let bad = with_architecture(&bytes, |arch| {
            let dense = &mut arch["layers"][1];
            assert_eq!(dense["class"], "Dense");
            edit(&mut dense["activation_body"]);
        });
        let Err(e) = Model::from_bytes(&bad) else {
            panic!("{what}: loaded");
        };
        let e = e.to_string();
        assert!(e.contains("'d'") || e.contains("layer 1"), "{what}: {e}");
    }
    Ok(())
}

#[test]
fn named_activations_save_and_load() -> Result<()> {
    let mut m = Sequential::new();
    m.add(Input::new(&[4]))?;
    m.add(Dense::new(6).activation(Activation::Selu).seed(3))?;
    m.add(Activation::Glu)?;
    m.add(Dense::new(4).activation("hard_swish".parse()?).seed(4))?;
    m.add(Activation::Mish)?;
    let inputs = [HostTensor::new(&[1, 4], vec![0.1f32, -0.4, 1.3, 2.0])?];
    let model = m.model()?;
    let want = run(&model, &inputs);
    let loaded = Model::from_bytes(&model.to_bytes()?)?;
    assert_eq!(run(&loaded, &inputs)[0].to_f32_vec(), want[0].to_f32_vec());
    assert_eq!(loaded.predict(&inputs)?[0].shape(), &[1, 4]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Masked merges (notes Q3) and Softmax float masks (notes Q4)
// ---------------------------------------------------------------------------------------------

/// Keras's A and B of shape (1, 3, 2).
const A: [f32; 6] = [1.0, 2.0, 3.0, -4.0, 5.0, 6.0];
const B: [f32; 6] = [-1.0, 7.0, 2.0, -3.0, -6.0, 0.5];

/// `x` carrying the mask read from the bool input `m` (None: no mask).
fn masked(x: &Tensor, m: Option<&Tensor>) -> Result<Tensor> {
    match m {
        None => Ok(x.clone()),
        Some(m) => Lambda::multi(|xs| xs[0].clone())
            .mask_fn(|xs, _| Some(xs[1].clone()))
            .call(&[x.clone(), m.clone()]),
    }
}

/// The mask `t` carries downstream, as floats (`-1` for no mask).
fn mask_out(t: &Tensor) -> Result<Tensor> {
    Lambda::masked(|_, m| match m {
        Some(m) => m.cast(DType::F32),
        None => Tensor::scalar(-1.0),
    })
    .call(t)
}

/// Runs merge `make` on A, B (and C) with the given masks; returns the values and the
/// output mask (`None` when there is none).
fn merge(
    make: MakeMerge,
    values: &[[f32; 6]],
    masks: &[Option<[bool; 3]>],
) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
    let mut model_inputs = Vec::new();
    let mut data = Vec::new();
    let mut branches = Vec::new();
    for (v, m) in values.iter().zip(masks) {
        let x = Input::new(&[3, 2]).tensor();
        model_inputs.push(x.clone());
        data.push(HostTensor::new(&[1, 3, 2], v.to_vec())?);
        let mt = match m {
            Some(bits) => {
                let mt = Input::new(&[3]).dtype(DType::Bool).tensor();
                model_inputs.push(mt.clone());
                data.push(HostTensor::new(&[1, 3], bits.to_vec())?);
                Some(mt)
            }
            None => None,
        };
        branches.push(masked(&x, mt.as_ref())?);
    }
    let layer = make();
    let out = lamina::call_layer(layer.as_ref(), &branches)?.remove(0);
    let has_mask = out.mask().is_some();
    let shown = mask_out(&out)?;
    let model = Model::new(&model_inputs, &[out, shown])?;
    let res = run(&model, &data);
    let mask = has_mask.then(|| res[1].to_f32_vec());
    Ok((res[0].to_f32_vec(), mask))
}

/// Makes a merge layer.
type MakeMerge = fn() -> Arc<dyn Layer>;

fn multiply() -> Arc<dyn Layer> {
    Arc::new(Multiply::new())
}
fn maximum() -> Arc<dyn Layer> {
    Arc::new(Maximum::new())
}
fn minimum() -> Arc<dyn Layer> {
    Arc::new(Minimum::new())
}
fn add() -> Arc<dyn Layer> {
    Arc::new(Add::new())
}

#[track_caller]
fn check(got: (Vec<f32>, Option<Vec<f32>>), values: &[f32], mask: Option<[f32; 3]>) {
    assert_eq!(got.0, values, "values");
    assert_eq!(got.1.as_deref(), mask.as_ref().map(|m| &m[..]), "mask");
}

#[test]
fn masked_multiply_maximum_minimum_follow_keras() -> Result<()> {
    let (ma, mb) = ([true, false, true], [true, true, false]);
    let all = Some([1.0, 1.0, 1.0]);
    // Both masked (Keras: eager, both masks).
    let both = [Some(ma), Some(mb)];
    check(
        merge(multiply, &[A, B], &both)?,
        &[-1.0, 14.0, 2.0, -3.0, 5.0, 6.0],
        all,
    );
    check(
        merge(maximum, &[A, B], &both)?,
        &[1.0, 7.0, 2.0, -3.0, 5.0, 6.0],
        all,
    );
    check(
        merge(minimum, &[A, B], &both)?,
        &[-1.0, 2.0, 2.0, -3.0, 5.0, 6.0],
        all,
    );
    // Add ignores the masks in its values.
    check(
        merge(add, &[A, B], &both)?,
        &[0.0, 9.0, 5.0, -7.0, -1.0, 6.5],
        all,
    );
    // Only A masked: no output mask, no zeroing.
    let only_a = [Some(ma), None];
    check(
        merge(multiply, &[A, B], &only_a)?,
        &[-1.0, 14.0, 2.0, -3.0, -30.0, 3.0],
        None,
    );
    check(
        merge(maximum, &[A, B], &only_a)?,
        &[1.0, 7.0, 2.0, -3.0, 5.0, 6.0],
        None,
    );
    check(
        merge(minimum, &[A, B], &only_a)?,
        &[-1.0, 2.0, 2.0, -3.0, -6.0, 0.5],
        None,
    );
    // Only B masked.
    let only_b = [None, Some(mb)];
    check(
        merge(multiply, &[A, B], &only_b)?,
        &[-1.0, 14.0, 6.0, 12.0, 5.0, 6.0],
        None,
    );
    check(
        merge(maximum, &[A, B], &only_b)?,
        &[1.0, 7.0, 3.0, -3.0, 5.0, 6.0],
        None,
    );
    check(
        merge(minimum, &[A, B], &only_b)?,
        &[-1.0, 2.0, 2.0, -4.0, 5.0, 6.0],
        None,
    );
    // A position masked in both (q3b): Multiply gives 0 there, Maximum/Minimum the first
    // input's value.
    let masked_both = [Some([true, false, false]), Some([true, false, true])];
    let mask = Some([1.0, 0.0, 1.0]);
    check(
        merge(multiply, &[A, B], &masked_both)?,
        &[-1.0, 14.0, 0.0, 0.0, -6.0, 0.5],
        mask,
    );
    check(
        merge(maximum, &[A, B], &masked_both)?,
        &[1.0, 7.0, 3.0, -4.0, -6.0, 0.5],
        mask,
    );
    check(
        merge(minimum, &[A, B], &masked_both)?,
        &[-1.0, 2.0, 3.0, -4.0, -6.0, 0.5],
        mask,
    );
    // Three inputs (q3b): A [T,T,F], C = [100, -100] everywhere [T,F,F], B [F,T,T].
    let c = [100.0, -100.0, 100.0, -100.0, 100.0, -100.0];
    let three = [
        Some([true, true, false]),
        Some([true, false, false]),
        Some([false, true, true]),
    ];
    check(
        merge(multiply, &[A, c, B], &three)?,
        &[100.0, -200.0, 6.0, 12.0, -6.0, 0.5],
        all,
    );
    check(
        merge(maximum, &[A, c, B], &three)?,
        &[100.0, 2.0, 3.0, -3.0, -6.0, 0.5],
        all,
    );
    check(
        merge(minimum, &[A, c, B], &three)?,
        &[1.0, -100.0, 2.0, -4.0, -6.0, 0.5],
        all,
    );
    Ok(())
}

#[test]
fn masked_merges_of_embeddings_match_keras_functional_model() -> Result<()> {
    // Keras: Embedding(5, 2, mask_zero=True) shared, ids A = [[1, 0, 2]], B = [[3, 4, 0]].
    let table = HostTensor::new(
        &[5, 2],
        vec![10.0f32, -10.0, 1.0, 2.0, 3.0, -4.0, -5.0, 6.0, 7.0, 8.0],
    )?;
    let cases: [(MakeMerge, [f32; 6]); 4] = [
        (multiply, [-5.0, 12.0, 7.0, 8.0, 3.0, -4.0]),
        (maximum, [1.0, 6.0, 7.0, 8.0, 3.0, -4.0]),
        (minimum, [-5.0, 2.0, 7.0, 8.0, 3.0, -4.0]),
        (add, [-4.0, 8.0, 17.0, -2.0, 13.0, -14.0]),
    ];
    for (make, want) in cases {
        let ia = Input::new(&[3]).dtype(DType::I32).tensor();
        let ib = Input::new(&[3]).dtype(DType::I32).tensor();
        let emb = Embedding::new(5, 2).mask_zero(true).weights(table.clone());
        let (ea, eb) = (emb.call(&ia)?, emb.call(&ib)?);
        let layer = make();
        let out = lamina::call_layer(layer.as_ref(), &[ea, eb])?.remove(0);
        let shown = mask_out(&out)?;
        let model = Model::new(&[ia, ib], &[out, shown])?;
        let inputs = [
            HostTensor::new(&[1, 3], vec![1i32, 0, 2])?,
            HostTensor::new(&[1, 3], vec![3i32, 4, 0])?,
        ];
        let res = run(&model, &inputs);
        assert_eq!(res[0].to_f32_vec(), want, "{}", layer.kind());
        assert_eq!(res[1].to_f32_vec(), vec![1.0, 1.0, 1.0], "{}", layer.kind());
        // And after a save and load.
        let loaded = Model::from_bytes(&model.to_bytes()?)?;
        assert_eq!(run(&loaded, &inputs)[0].to_f32_vec(), want);
    }
    Ok(())
}

#[test]
fn softmax_reads_float_masks_as_keras_3_15() -> Result<()> {
    let x = Input::new(&[4]).tensor();
    let fm = Input::new(&[4]).tensor();
    let im = Input::new(&[4]).dtype(DType::I32).tensor();
    let bm = Input::new(&[4]).dtype(DType::Bool).tensor();
    let sm = Softmax::new();
    let by_float = sm.call_masked(&x, &fm)?;
    let by_int = sm.call_masked(&x, &im)?;
    let by_bool = sm.call_masked(&x, &bm)?;
    let passed_on = mask_out(&by_float)?;
    let model = Model::new(&[x, fm, im, bm], &[by_float, by_int, by_bool, passed_on])?;
    let rows = 4;
    let xs: Vec<f32> = (0..rows).flat_map(|_| [1.0f32, 2.0, 3.0, 4.0]).collect();
    let floats = vec![
        1.0f32, 0.3, 0.7, 0.0, // keeps 0 and 2
        1.0, 0.5, 0.51, 0.0, // 0.5 itself is masked
        0.0, 0.2, 0.4, 0.0, // fully masked: zeros
        0.6, 0.9, 1.0, 2.0, // all kept
    ];
    let ints = vec![1i32, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 2, 1, 1, 1];
    let bools: Vec<bool> = ints.iter().map(|&i| i != 0).collect();
    let inputs = [
        HostTensor::new(&[rows, 4], xs)?,
        HostTensor::new(&[rows, 4], floats)?,
        HostTensor::new(&[rows, 4], ints)?,
        HostTensor::new(&[rows, 4], bools)?,
    ];
    let out = run(&model, &inputs);
    // Keras: [0.11920291185379028, 0.0, 0.8807970285415649, 0.0] for the first two rows, all
    // zeros for the third, the plain softmax for the last.
    let two = [0.11920291185379028, 0.0, 0.8807970285415649, 0.0];
    let full = [
        0.032058604061603546,
        0.08714432269334793,
        0.23688283562660217,
        0.6439142823219299,
    ];
    let want: Vec<f64> = [two, two, [0.0; 4], full].concat();
    for (k, o) in out.iter().take(3).enumerate() {
        let got = o.to_f32_vec();
        assert_close(&got, &want, 2e-7, 0.0);
        // Masked outputs are exactly 0.
        for (i, g) in got.iter().enumerate() {
            if want[i] == 0.0 {
                assert_eq!(g.to_bits(), 0, "output {k}, element {i}");
            }
        }
    }
    // The mask passed on is the one the softmax used.
    assert_eq!(
        out[3].to_f32_vec(),
        vec![
            1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0
        ]
    );
    // The explicit float mask is part of a saved model.
    let loaded = Model::from_bytes(&model.to_bytes()?)?;
    assert_eq!(run(&loaded, &inputs)[0].to_f32_vec(), out[0].to_f32_vec());
    Ok(())
}

/// Softmax over rows of several lengths (within one block of the sum, over several, past the
/// shallow cascade), with a row holding -inf, a row of -inf only and a row holding NaN:
/// against the formula worked out in f64 (NaN anywhere in a row gives a row of NaN, as the
/// maximum is NaN), and bit for bit against the same ops where the CPU cannot run them as one
/// softmax pass (the shifted row is read twice).
#[test]
fn softmax_over_rows_matches_the_formula_and_the_ops_it_fuses() {
    for len in [1usize, 5, 128, 200, 256, 300, 33_000] {
        let rows = 4;
        let mut x: Vec<f32> = (0..rows * len)
            .map(|i| ((i as f32) * 0.37).sin() * 20.0)
            .collect();
        x[len + len / 3] = f32::NEG_INFINITY;
        x[2 * len..3 * len].fill(f32::NEG_INFINITY);
        x[3 * len + len / 2] = f32::NAN;
        let shape = [rows, len];
        let fused = apply(&shape, x.clone(), |t| t.softmax(-1)).to_f32_vec();
        let unfused = apply(&shape, x.clone(), |t| {
            let d = t - t.max_keepdims(-1);
            let e = d.exp();
            e.divide(e.sum_keepdims(-1)) + d.abs().minimum(0.0)
        })
        .to_f32_vec();
        let mut want = Vec::with_capacity(x.len());
        for row in x.chunks(len) {
            let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| {
                if m.is_nan() || v.is_nan() {
                    f64::NAN
                } else {
                    m.max(v as f64)
                }
            });
            let e: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
            let s: f64 = e.iter().sum();
            want.extend(e.iter().map(|v| v / s));
        }
        assert_close(&fused, &want, 2e-6, 1e-12);
        // The first row is finite, where `min(|d|, 0)` adds nothing.
        for i in 0..len {
            assert_eq!(
                fused[i].to_bits(),
                unfused[i].to_bits(),
                "len {len}, element {i}"
            );
        }
    }
}
