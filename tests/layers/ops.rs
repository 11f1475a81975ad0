//! Every op of `Tensor`, run through a model on the CPU interpreter (the reference semantics) and checked against values
//! worked out independently (by hand, or from the NumPy definition with plain Python): unary
//! math, activations, broadcasting arithmetic, comparisons, reductions, scans, normalisations,
//! movement ops, NumPy slicing, matmul and batch_dot, size-1 dims and int32 inputs.
#![cfg(feature = "gpu")]
// compares the CPU interpreter with the GPU backend

// Expected values are written as Python printed them (9 significant digits), wider than f32 holds,
// and some happen to be e, 1/sqrt(2) or ln 2: that is the point of independent values.
#![allow(clippy::excessive_precision, clippy::approx_constant)]

use crate::common;

use lamina::Element;
use lamina::prelude::*;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// Runs a model on the CPU interpreter, whatever `LAMINA_BACKEND` says.
fn cpu_predict(m: &Model, inputs: &[HostTensor]) -> Result<Vec<HostTensor>> {
    Session::new(m.program().clone(), BackendKind::Cpu)?.run(inputs)
}

/// Builds `Input(shape[1..]) -> Lambda(f)` and runs it on `data` of full shape `shape` (batch
/// first).
fn try_run<T: Element>(
    shape: &[usize],
    data: Vec<T>,
    f: impl Fn(&Tensor) -> Tensor + Send + Sync + 'static,
) -> Result<HostTensor> {
    let x = Input::new(&shape[1..]).dtype(T::DTYPE).tensor();
    let y = Lambda::new(f).call(&x)?;
    let m = Model::new(&[x], &[y])?;
    let mut out = cpu_predict(&m, &[HostTensor::new(shape, data)?])?;
    Ok(out.remove(0))
}

/// `try_run`, panicking with the error's message.
#[track_caller]
fn run<T: Element>(
    shape: &[usize],
    data: Vec<T>,
    f: impl Fn(&Tensor) -> Tensor + Send + Sync + 'static,
) -> HostTensor {
    try_run(shape, data, f).unwrap_or_else(|e| panic!("model failed: {e}"))
}

/// One `float32` input.
#[track_caller]
fn run1(
    shape: &[usize],
    data: Vec<f32>,
    f: impl Fn(&Tensor) -> Tensor + Send + Sync + 'static,
) -> HostTensor {
    run(shape, data, f)
}

/// One `int32` input.
#[track_caller]
fn runi(
    shape: &[usize],
    data: Vec<i32>,
    f: impl Fn(&Tensor) -> Tensor + Send + Sync + 'static,
) -> HostTensor {
    run(shape, data, f)
}

/// Two `float32` inputs of full shapes `sa` and `sb`.
#[track_caller]
fn run2(
    sa: &[usize],
    a: Vec<f32>,
    sb: &[usize],
    b: Vec<f32>,
    f: impl Fn(&Tensor, &Tensor) -> Tensor + Send + Sync + 'static,
) -> HostTensor {
    let go = || -> Result<HostTensor> {
        let xa = Input::new(&sa[1..]).tensor();
        let xb = Input::new(&sb[1..]).tensor();
        let y = Lambda::multi(move |xs| f(&xs[0], &xs[1])).call(&[xa.clone(), xb.clone()])?;
        let m = Model::new(&[xa, xb], &[y])?;
        let mut out = cpu_predict(&m, &[HostTensor::new(sa, a)?, HostTensor::new(sb, b)?])?;
        Ok(out.remove(0))
    };
    go().unwrap_or_else(|e| panic!("model failed: {e}"))
}

/// The error a Lambda gives when it is called on an input of per-sample shape `per_sample`.
#[track_caller]
fn build_error(
    per_sample: &[usize],
    f: impl Fn(&Tensor) -> Tensor + Send + Sync + 'static,
) -> Error {
    build_error_of(DType::F32, per_sample, f)
}

/// `build_error` for an input of another dtype.
#[track_caller]
fn build_error_of(
    dtype: DType,
    per_sample: &[usize],
    f: impl Fn(&Tensor) -> Tensor + Send + Sync + 'static,
) -> Error {
    let x = Input::new(per_sample).dtype(dtype).tensor();
    match Lambda::new(f).call(&x) {
        Ok(y) => panic!(
            "expected a build error, got a tensor of shape {}",
            y.shape()
        ),
        Err(e) => e,
    }
}

/// A float constant of the given shape.
fn constant(shape: &[usize], data: Vec<f32>) -> Tensor {
    Tensor::constant(HostTensor::new(shape, data).expect("constant data"))
}

fn iota(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32).collect()
}

/// Asserts the shape and that every element is within `tol` (relative above 1, absolute
/// below); NaN must meet NaN and infinities must match exactly.
#[track_caller]
fn close(t: &HostTensor, shape: &[usize], want: &[f32], tol: f32) {
    assert_eq!(t.shape(), shape, "output shape");
    let got = t.as_f32().expect("float32 output");
    assert_eq!(got.len(), want.len(), "element count");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= tol * w.abs().max(1.0)
        };
        assert!(
            ok,
            "element {i}: got {g}, want {w}\n  got:  {got:?}\n  want: {want:?}"
        );
    }
}

/// `close` with the tolerance for exact ops (one or two roundings).
#[track_caller]
fn exact(t: &HostTensor, shape: &[usize], want: &[f32]) {
    close(t, shape, want, 1e-6);
}

/// `close` with the tolerance for transcendental functions.
#[track_caller]
fn approx(t: &HostTensor, shape: &[usize], want: &[f32]) {
    close(t, shape, want, 1e-5);
}

#[track_caller]
fn ints(t: &HostTensor, shape: &[usize], want: &[i32]) {
    assert_eq!(t.shape(), shape, "output shape");
    assert_eq!(t.as_i32().expect("int32 output"), want);
}

#[track_caller]
fn bools(t: &HostTensor, shape: &[usize], want: &[bool]) {
    assert_eq!(t.shape(), shape, "output shape");
    assert_eq!(t.as_bool().expect("bool output"), want);
}

const INF: f32 = f32::INFINITY;
const NAN: f32 = f32::NAN;

/// Mixed-sign data for the unary tests, shape (2, 3).
fn signed() -> Vec<f32> {
    vec![-2.0, -0.5, 0.0, 0.5, 1.0, 3.0]
}

/// Positive data for log, sqrt and friends, shape (2, 3).
fn positive() -> Vec<f32> {
    vec![0.25, 0.5, 1.0, 2.0, 4.0, 10.0]
}

// ---------------------------------------------------------------------------------------------
// Unary math
// ---------------------------------------------------------------------------------------------

#[test]
fn negative_abs_and_unary_minus() {
    let s = [2, 3];
    exact(
        &run1(&s, signed(), |x| x.negative()),
        &s,
        &[2.0, 0.5, 0.0, -0.5, -1.0, -3.0],
    );
    exact(
        &run1(&s, signed(), |x| -x),
        &s,
        &[2.0, 0.5, 0.0, -0.5, -1.0, -3.0],
    );
    exact(
        &run1(&s, signed(), |x| -(x * 2.0)),
        &s,
        &[4.0, 1.0, 0.0, -1.0, -2.0, -6.0],
    );
    exact(
        &run1(&s, signed(), |x| x.abs()),
        &s,
        &[2.0, 0.5, 0.0, 0.5, 1.0, 3.0],
    );
}

#[test]
fn exp_tanh_sigmoid_sin_cos_erf() {
    let s = [2, 3];
    type Case = (fn(&Tensor) -> Tensor, [f32; 6]);
    let cases: [Case; 6] = [
        (
            |x| x.exp(),
            [
                0.135335283,
                0.60653066,
                1.0,
                1.64872127,
                2.71828183,
                20.0855369,
            ],
        ),
        (
            |x| x.tanh(),
            [
                -0.96402758,
                -0.462117157,
                0.0,
                0.462117157,
                0.761594156,
                0.995054754,
            ],
        ),
        (
            |x| x.sigmoid(),
            [
                0.119202922,
                0.377540669,
                0.5,
                0.622459331,
                0.731058579,
                0.952574127,
            ],
        ),
        (
            |x| x.sin(),
            [
                -0.909297427,
                -0.479425539,
                0.0,
                0.479425539,
                0.841470985,
                0.141120008,
            ],
        ),
        (
            |x| x.cos(),
            [
                -0.416146837,
                0.877582562,
                1.0,
                0.877582562,
                0.540302306,
                -0.989992497,
            ],
        ),
        (
            |x| x.erf(),
            [
                -0.995322265,
                -0.520499878,
                0.0,
                0.520499878,
                0.842700793,
                0.99997791,
            ],
        ),
    ];
    for (f, want) in cases {
        approx(&run1(&s, signed(), f), &s, &want);
    }
}

#[test]
fn log_sqrt_rsqrt_reciprocal() {
    let s = [2, 3];
    approx(
        &run1(&s, positive(), |x| x.log()),
        &s,
        &[
            -1.38629436,
            -0.693147181,
            0.0,
            0.693147181,
            1.38629436,
            2.30258509,
        ],
    );
    approx(
        &run1(&s, positive(), |x| x.sqrt()),
        &s,
        &[0.5, 0.707106781, 1.0, 1.41421356, 2.0, 3.16227766],
    );
    approx(
        &run1(&s, positive(), |x| x.rsqrt()),
        &s,
        &[2.0, 1.41421356, 1.0, 0.707106781, 0.5, 0.316227766],
    );
    exact(
        &run1(&s, positive(), |x| x.reciprocal()),
        &s,
        &[4.0, 2.0, 1.0, 0.5, 0.25, 0.1],
    );
}

#[test]
fn ieee_special_values() {
    // log(0) = -inf, log(-1) = NaN, sqrt(-1) = NaN, 1/0 = inf, 1/-0 = -inf, rsqrt(0) = inf.
    let s = [1, 4];
    let d = vec![0.0, -1.0, -0.0, 4.0];
    close(
        &run1(&s, d.clone(), |x| x.log()),
        &s,
        &[-INF, NAN, -INF, 1.38629436],
        1e-5,
    );
    close(
        &run1(&s, d.clone(), |x| x.sqrt()),
        &s,
        &[0.0, NAN, 0.0, 2.0],
        1e-6,
    );
    close(
        &run1(&s, d.clone(), |x| x.reciprocal()),
        &s,
        &[INF, -1.0, -INF, 0.25],
        1e-6,
    );
    close(
        &run1(&s, d, |x| x.rsqrt()),
        &s,
        &[INF, NAN, -INF, 0.5],
        1e-6,
    );
    // Saturation at the extremes: exp overflows to inf, sigmoid and tanh reach 0, 1 and -1.
    let d = vec![-1000.0, -100.0, 100.0, 1000.0];
    close(
        &run1(&s, d.clone(), |x| x.exp()),
        &s,
        &[0.0, 0.0, INF, INF],
        1e-6,
    );
    exact(
        &run1(&s, d.clone(), |x| x.sigmoid()),
        &s,
        &[0.0, 0.0, 1.0, 1.0],
    );
    exact(
        &run1(&s, d.clone(), |x| x.tanh()),
        &s,
        &[-1.0, -1.0, 1.0, 1.0],
    );
    exact(&run1(&s, d, |x| x.erf()), &s, &[-1.0, -1.0, 1.0, 1.0]);
}

#[test]
fn floor_ceil_round_half_to_even() {
    let s = [1, 9];
    let d = vec![-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.6, -2.6, 0.4];
    exact(
        &run1(&s, d.clone(), |x| x.floor()),
        &s,
        &[-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 2.0, -3.0, 0.0],
    );
    exact(
        &run1(&s, d.clone(), |x| x.ceil()),
        &s,
        &[-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 3.0, -2.0, 1.0],
    );
    // NumPy rounds halves to the even neighbour: -2.5 -> -2, 0.5 -> 0, 1.5 -> 2, 2.5 -> 2.
    exact(
        &run1(&s, d, |x| x.round()),
        &s,
        &[-2.0, -2.0, 0.0, 0.0, 2.0, 2.0, 3.0, -3.0, 0.0],
    );
}

#[test]
fn sign_of_floats_and_ints() {
    let s = [1, 6];
    close(
        &run1(&s, vec![-3.0, -0.25, 0.0, 2.5, NAN, -INF], |x| x.sign()),
        &s,
        &[-1.0, -1.0, 0.0, 1.0, NAN, -1.0],
        0.0,
    );
    ints(
        &runi(&[1, 4], vec![-7, 0, 3, i32::MIN], |x| x.sign()),
        &[1, 4],
        &[-1, 0, 1, -1],
    );
}

#[test]
fn logical_not_of_bools() {
    let s = [2, 2];
    bools(
        &run(&s, vec![true, false, false, true], |x| x.logical_not()),
        &s,
        &[false, true, true, false],
    );
    // On the result of a comparison.
    bools(
        &run1(&s, vec![1.0, -1.0, 0.0, 2.0], |x| {
            x.greater(0.0).logical_not()
        }),
        &s,
        &[false, true, true, false],
    );
}

#[test]
fn square_and_pow() {
    let s = [1, 4];
    let d = vec![-3.0, -0.5, 0.0, 2.0];
    exact(
        &run1(&s, d.clone(), |x| x.square()),
        &s,
        &[9.0, 0.25, 0.0, 4.0],
    );
    // Exponent 2 on negative bases is exact, as in NumPy (not NaN from exp(2 log x)).
    exact(
        &run1(&s, d.clone(), |x| x.pow(2.0)),
        &s,
        &[9.0, 0.25, 0.0, 4.0],
    );
    exact(
        &run1(&s, d.clone(), |x| x.pow(2)),
        &s,
        &[9.0, 0.25, 0.0, 4.0],
    );
    // An odd integer exponent keeps the sign, as NumPy's (-2.0)**3 == -8.0.
    exact(
        &run1(&s, d.clone(), |x| x.pow(3.0)),
        &s,
        &[-27.0, -0.125, 0.0, 8.0],
    );
    // x ** 1 is x; x ** 0 is 1 everywhere, 0 ** 0 included.
    exact(&run1(&s, d.clone(), |x| x.pow(1.0)), &s, &d);
    exact(
        &run1(&s, d.clone(), |x| x.pow(0.0)),
        &s,
        &[1.0, 1.0, 1.0, 1.0],
    );
    // A negative base to a non-integer power is NaN, as in NumPy.
    close(
        &run1(&s, d, |x| x.pow(0.5)),
        &s,
        &[NAN, NAN, 0.0, 1.41421356],
        1e-6,
    );
    // Non-special exponents on positive bases.
    let s = [2, 3];
    approx(
        &run1(&s, positive(), |x| x.pow(1.5)),
        &s,
        &[0.125, 0.353553391, 1.0, 2.82842712, 8.0, 31.6227766],
    );
    approx(
        &run1(&s, positive(), |x| x.pow(-0.5)),
        &s,
        &[2.0, 1.41421356, 1.0, 0.707106781, 0.5, 0.316227766],
    );
    approx(
        &run1(&s, positive(), |x| x.pow(-1.0)),
        &s,
        &[4.0, 2.0, 1.0, 0.5, 0.25, 0.1],
    );
    // A tensor exponent, broadcast: [2, 3, 0.5] ** [[2], [3]] -> [[4, 9, .25], [8, 27, .125]].
    approx(
        &run2(
            &[1, 3],
            vec![2.0, 3.0, 0.5],
            &[1, 2, 1],
            vec![2.0, 3.0],
            |a, b| a.pow(b),
        ),
        &[1, 2, 3],
        &[4.0, 9.0, 0.25, 8.0, 27.0, 0.125],
    );
}

// ---------------------------------------------------------------------------------------------
// Activations, clip, where, cast
// ---------------------------------------------------------------------------------------------

#[test]
fn relu_silu_gelu_softplus() {
    let s = [2, 3];
    exact(
        &run1(&s, signed(), |x| x.relu()),
        &s,
        &[0.0, 0.0, 0.0, 0.5, 1.0, 3.0],
    );
    approx(
        &run1(&s, signed(), |x| x.silu()),
        &s,
        &[
            -0.238405844,
            -0.188770334,
            0.0,
            0.311229666,
            0.731058579,
            2.85772238,
        ],
    );
    // `gelu()` is keras.ops.gelu's default, the tanh approximation:
    // x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))), in f64.
    approx(
        &run1(&s, signed(), |x| x.gelu()),
        &s,
        &[
            -0.0454023059,
            -0.15428599,
            0.0,
            0.34571401,
            0.841191991,
            2.99636261,
        ],
    );
    // `gelu_with(false)` is the exact form, x/2 * erfc(-x / sqrt(2)) (the "gelu" activation).
    approx(
        &run1(&s, signed(), |x| x.gelu_with(false)),
        &s,
        &[
            -0.0455002639,
            -0.154268769,
            0.0,
            0.345731231,
            0.841344746,
            2.99595031,
        ],
    );
    approx(
        &run1(&[1, 2], vec![-6.0, 6.0], |x| x.gelu_with(false)),
        &[1, 2],
        &[-5.91952587e-9, 5.99999999],
    );
    approx(
        &run1(&[1, 2], vec![-6.0, 6.0], |x| x.gelu_with(true)),
        &[1, 2],
        &[-8.43964898e-11, 6.0],
    );
    approx(
        &run1(&s, signed(), |x| x.softplus()),
        &s,
        &[
            0.126928011,
            0.474076984,
            0.693147181,
            0.974076984,
            1.31326169,
            3.04858735,
        ],
    );
    // Stable at the extremes: softplus(100) = 100 (no overflow), softplus(-100) ~ 3.7e-44.
    let sp = run1(&[1, 3], vec![-100.0, 100.0, 1000.0], |x| x.softplus());
    exact(&sp, &[1, 3], &[0.0, 100.0, 1000.0]);
}

#[test]
fn elu_and_leaky_relu() {
    let s = [2, 3];
    approx(
        &run1(&s, signed(), |x| x.elu(1.0)),
        &s,
        &[-0.864664717, -0.39346934, 0.0, 0.5, 1.0, 3.0],
    );
    approx(
        &run1(&s, signed(), |x| x.elu(0.5)),
        &s,
        &[-0.432332358, -0.19673467, 0.0, 0.5, 1.0, 3.0],
    );
    // A large positive input must not leak the inf of exp(x) into the output.
    exact(
        &run1(&[1, 1], vec![100.0], |x| x.elu(1.0)),
        &[1, 1],
        &[100.0],
    );
    exact(
        &run1(&s, signed(), |x| x.leaky_relu(0.2)),
        &s,
        &[-0.4, -0.1, 0.0, 0.5, 1.0, 3.0],
    );
}

#[test]
fn clip_floats_and_ints() {
    let s = [2, 3];
    exact(
        &run1(&s, signed(), |x| x.clip(-0.5, 1.0)),
        &s,
        &[-0.5, -0.5, 0.0, 0.5, 1.0, 1.0],
    );
    ints(
        &runi(&[1, 5], vec![-9, -1, 0, 4, 9], |x| x.clip(-2, 5)),
        &[1, 5],
        &[-2, -1, 0, 4, 5],
    );
    // Tensor bounds broadcast against x: per-column bounds [0, -1, 2] and [1, 0, 3].
    exact(
        &run1(&s, signed(), |x| {
            x.clip(
                constant(&[3], vec![0.0, -1.0, 2.0]),
                constant(&[3], vec![1.0, 0.0, 3.0]),
            )
        }),
        &s,
        &[0.0, -0.5, 2.0, 0.5, 0.0, 3.0],
    );
}

#[test]
fn where_with_tensors_scalars_and_broadcasting() {
    let s = [2, 3];
    // where(x > 0, x, -x) is |x|.
    exact(
        &run1(&s, signed(), |x| Tensor::where_(&x.greater(0.0), x, -x)),
        &s,
        &[2.0, 0.5, 0.0, 0.5, 1.0, 3.0],
    );
    // Scalar branches take the tensor branch's dtype, or float32 when both are scalars.
    exact(
        &run1(&s, signed(), |x| Tensor::where_(&x.less(0.0), 0.0, x)),
        &s,
        &[0.0, 0.0, 0.0, 0.5, 1.0, 3.0],
    );
    exact(
        &run1(&s, signed(), |x| {
            Tensor::where_(&x.greater_equal(0.0), 1.0, -1.0)
        }),
        &s,
        &[-1.0, -1.0, 1.0, 1.0, 1.0, 1.0],
    );
    ints(
        &runi(&[1, 4], vec![-3, 5, 0, 7], |x| {
            Tensor::where_(&x.greater(0), x, 100)
        }),
        &[1, 4],
        &[100, 5, 100, 7],
    );
    // Condition (B, 1, 3), a (B, 2, 1), b scalar: the result is (B, 2, 3).
    exact(
        &run2(
            &[1, 3],
            vec![1.0, -1.0, 2.0],
            &[1, 2],
            vec![10.0, 20.0],
            |c, a| Tensor::where_(&c.greater(0.0).expand_dims(1), a.expand_dims(-1), -1.0),
        ),
        &[1, 2, 3],
        &[10.0, -1.0, 10.0, 20.0, -1.0, 20.0],
    );
}

#[test]
fn cast_between_dtypes() {
    let s = [1, 7];
    let d = vec![-2.7, -0.5, 0.0, -0.0, 0.9, 2.5, 3.99];
    // float32 -> int32 truncates toward zero.
    ints(
        &run1(&s, d.clone(), |x| x.cast(DType::I32)),
        &s,
        &[-2, 0, 0, 0, 0, 2, 3],
    );
    // float32 -> bool is x != 0 (-0.0 is zero).
    bools(
        &run1(&s, d.clone(), |x| x.cast(DType::Bool)),
        &s,
        &[true, true, false, false, true, true, true],
    );
    // bool -> float32 is 0 or 1.
    exact(
        &run1(&s, d, |x| x.greater(0.0).cast(DType::F32)),
        &s,
        &[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0],
    );
    exact(
        &runi(&[1, 3], vec![-5, 0, 16777216], |x| x.cast(DType::F32)),
        &[1, 3],
        &[-5.0, 0.0, 16777216.0],
    );
    bools(
        &runi(&[1, 3], vec![-5, 0, 2], |x| x.cast(DType::Bool)),
        &[1, 3],
        &[true, false, true],
    );
    ints(
        &run(&[1, 2], vec![true, false], |x| x.cast(DType::I32)),
        &[1, 2],
        &[1, 0],
    );
    // A cast to the same dtype is the identity.
    exact(
        &run1(&[1, 2], vec![1.5, -2.0], |x| x.cast(DType::F32)),
        &[1, 2],
        &[1.5, -2.0],
    );
}

// ---------------------------------------------------------------------------------------------
// Binary arithmetic and broadcasting
// ---------------------------------------------------------------------------------------------

#[test]
fn binary_ops_broadcast_column_against_row() {
    // (B, 3, 1) against (B, 1, 4) gives (B, 3, 4).
    let a = vec![1.0, 2.0, 4.0];
    let b = vec![1.0, 2.0, 4.0, 8.0];
    let (sa, sb, so) = ([1, 3, 1], [1, 1, 4], [1, 3, 4]);
    let go = |f: fn(&Tensor, &Tensor) -> Tensor| run2(&sa, a.clone(), &sb, b.clone(), f);
    exact(
        &go(|a, b| a + b),
        &so,
        &[2.0, 3.0, 5.0, 9.0, 3.0, 4.0, 6.0, 10.0, 5.0, 6.0, 8.0, 12.0],
    );
    exact(
        &go(|a, b| a.add(b)),
        &so,
        &[2.0, 3.0, 5.0, 9.0, 3.0, 4.0, 6.0, 10.0, 5.0, 6.0, 8.0, 12.0],
    );
    exact(
        &go(|a, b| a - b),
        &so,
        &[
            0.0, -1.0, -3.0, -7.0, 1.0, 0.0, -2.0, -6.0, 3.0, 2.0, 0.0, -4.0,
        ],
    );
    exact(
        &go(|a, b| a.subtract(b)),
        &so,
        &[
            0.0, -1.0, -3.0, -7.0, 1.0, 0.0, -2.0, -6.0, 3.0, 2.0, 0.0, -4.0,
        ],
    );
    exact(
        &go(|a, b| a * b),
        &so,
        &[
            1.0, 2.0, 4.0, 8.0, 2.0, 4.0, 8.0, 16.0, 4.0, 8.0, 16.0, 32.0,
        ],
    );
    exact(
        &go(|a, b| a.multiply(b)),
        &so,
        &[
            1.0, 2.0, 4.0, 8.0, 2.0, 4.0, 8.0, 16.0, 4.0, 8.0, 16.0, 32.0,
        ],
    );
    exact(
        &go(|a, b| a / b),
        &so,
        &[
            1.0, 0.5, 0.25, 0.125, 2.0, 1.0, 0.5, 0.25, 4.0, 2.0, 1.0, 0.5,
        ],
    );
    exact(
        &go(|a, b| a.divide(b)),
        &so,
        &[
            1.0, 0.5, 0.25, 0.125, 2.0, 1.0, 0.5, 0.25, 4.0, 2.0, 1.0, 0.5,
        ],
    );
    exact(
        &go(|a, b| a.maximum(b)),
        &so,
        &[1.0, 2.0, 4.0, 8.0, 2.0, 2.0, 4.0, 8.0, 4.0, 4.0, 4.0, 8.0],
    );
    exact(
        &go(|a, b| a.minimum(b)),
        &so,
        &[1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 1.0, 2.0, 4.0, 4.0],
    );
    // The same corner on plain rank-2 tensors: (3, 1) + (1, 4).
    exact(
        &run2(&[1, 3, 1], a.clone(), &[1, 1, 4], b.clone(), |a, b| {
            a.slice(s![0]) + b.slice(s![0])
        }),
        &[3, 4],
        &[2.0, 3.0, 5.0, 9.0, 3.0, 4.0, 6.0, 10.0, 5.0, 6.0, 8.0, 12.0],
    );
}

#[test]
fn binary_ops_broadcast_trailing_vector() {
    // (2, 3) + (3,): the vector is added to every row.
    let v = || constant(&[3], vec![10.0, 20.0, 30.0]);
    exact(
        &run1(&[1, 2, 3], iota(6), move |x| x.slice(s![0]) + v()),
        &[2, 3],
        &[10.0, 21.0, 32.0, 13.0, 24.0, 35.0],
    );
    // (B, 2, 3) - (3,) and (3,) - (B, 2, 3), with a batch of 2.
    exact(
        &run1(&[2, 2, 3], iota(12), move |x| x - v()),
        &[2, 2, 3],
        &[
            -10.0, -19.0, -28.0, -7.0, -16.0, -25.0, -4.0, -13.0, -22.0, -1.0, -10.0, -19.0,
        ],
    );
    exact(
        &run1(&[2, 2, 3], iota(12), move |x| v() - x),
        &[2, 2, 3],
        &[
            10.0, 19.0, 28.0, 7.0, 16.0, 25.0, 4.0, 13.0, 22.0, 1.0, 10.0, 19.0,
        ],
    );
    // (B, 3) * (B, 1): per-sample scale.
    exact(
        &run2(&[2, 3], iota(6), &[2, 1], vec![2.0, -1.0], |a, b| a * b),
        &[2, 3],
        &[0.0, 2.0, 4.0, -3.0, -4.0, -5.0],
    );
    // A (1, 3) constant against a dynamic batch of 2.
    exact(
        &run1(&[2, 3], iota(6), |x| {
            x.maximum(constant(&[1, 3], vec![1.0, 1.0, 4.5]))
        }),
        &[2, 3],
        &[1.0, 1.0, 4.5, 3.0, 4.0, 5.0],
    );
}

#[test]
fn scalars_on_either_side() {
    let s = [2, 3];
    exact(
        &run1(&s, signed(), |x| x * 2.0),
        &s,
        &[-4.0, -1.0, 0.0, 1.0, 2.0, 6.0],
    );
    exact(
        &run1(&s, signed(), |x| 2.0 * x),
        &s,
        &[-4.0, -1.0, 0.0, 1.0, 2.0, 6.0],
    );
    exact(
        &run1(&s, signed(), |x| 1.0 - x),
        &s,
        &[3.0, 1.5, 1.0, 0.5, 0.0, -2.0],
    );
    exact(
        &run1(&s, signed(), |x| x - 1.0),
        &s,
        &[-3.0, -1.5, -1.0, -0.5, 0.0, 2.0],
    );
    exact(
        &run1(&s, signed(), |x| x + 0.5),
        &s,
        &[-1.5, 0.0, 0.5, 1.0, 1.5, 3.5],
    );
    exact(
        &run1(&s, signed(), |x| 0.5 + x),
        &s,
        &[-1.5, 0.0, 0.5, 1.0, 1.5, 3.5],
    );
    exact(
        &run1(&s, signed(), |x| x / 4.0),
        &s,
        &[-0.5, -0.125, 0.0, 0.125, 0.25, 0.75],
    );
    exact(
        &run1(&s, positive(), |x| 1.0 / x),
        &s,
        &[4.0, 2.0, 1.0, 0.5, 0.25, 0.1],
    );
    // Owned tensors on either side, and chains.
    exact(
        &run1(&s, signed(), |x| (x * 2.0) + 1.0),
        &s,
        &[-3.0, 0.0, 1.0, 2.0, 3.0, 7.0],
    );
    exact(
        &run1(&s, signed(), |x| 3.0 - (x * x)),
        &s,
        &[-1.0, 2.75, 3.0, 2.75, 2.0, -6.0],
    );
    exact(
        &run1(&s, signed(), |x| x.maximum(0.25).minimum(1.0)),
        &s,
        &[0.25, 0.25, 0.25, 0.5, 1.0, 1.0],
    );
}

#[test]
fn int32_arithmetic() {
    let s = [2, 3];
    let a = vec![-7, 0, 5, 12, 3, -1];
    ints(&runi(&s, a.clone(), |x| x + 1), &s, &[-6, 1, 6, 13, 4, 0]);
    ints(
        &runi(&s, a.clone(), |x| x * 2),
        &s,
        &[-14, 0, 10, 24, 6, -2],
    );
    ints(
        &runi(&s, a.clone(), |x| x.multiply(3)),
        &s,
        &[-21, 0, 15, 36, 9, -3],
    );
    ints(
        &runi(&s, a.clone(), |x| 10 - x),
        &s,
        &[17, 10, 5, -2, 7, 11],
    );
    ints(&runi(&s, a.clone(), |x| -x), &s, &[7, 0, -5, -12, -3, 1]);
    ints(&runi(&s, a.clone(), |x| x.abs()), &s, &[7, 0, 5, 12, 3, 1]);
    ints(
        &runi(&s, a.clone(), |x| x.square()),
        &s,
        &[49, 0, 25, 144, 9, 1],
    );
    ints(
        &runi(&s, a.clone(), |x| x.pow(2)),
        &s,
        &[49, 0, 25, 144, 9, 1],
    );
    ints(
        &runi(&s, a.clone(), |x| x.maximum(0)),
        &s,
        &[0, 0, 5, 12, 3, 0],
    );
    ints(&runi(&s, a.clone(), |x| x.relu()), &s, &[0, 0, 5, 12, 3, 0]);
    ints(
        &runi(&s, a.clone(), |x| x.minimum(2)),
        &s,
        &[-7, 0, 2, 2, 2, -1],
    );
    // `/` is true division (float32) and `//` floors, as in Python.
    exact(
        &runi(&[1, 4], vec![12, 7, 0, -9], |x| x / 2),
        &[1, 4],
        &[6.0, 3.5, 0.0, -4.5],
    );
    ints(
        &runi(&[1, 4], vec![12, 7, 0, -9], |x| x.floor_divide(2)),
        &[1, 4],
        &[6, 3, 0, -5],
    );
    // Two int inputs with broadcasting: (B, 3) - (B, 1).
    let y = {
        let xa = Input::new(&[3]).dtype(DType::I32).tensor();
        let xb = Input::new(&[1]).dtype(DType::I32).tensor();
        let out = Lambda::multi(|xs| &xs[0] - &xs[1])
            .call(&[xa.clone(), xb.clone()])
            .unwrap();
        let m = Model::new(&[xa, xb], &[out]).unwrap();
        cpu_predict(
            &m,
            &[
                HostTensor::new(&[2, 3], vec![1, 2, 3, 4, 5, 6]).unwrap(),
                HostTensor::new(&[2, 1], vec![1, 10]).unwrap(),
            ],
        )
        .unwrap()
        .remove(0)
    };
    ints(&y, &[2, 3], &[0, 1, 2, -6, -5, -4]);
}

// ---------------------------------------------------------------------------------------------
// Comparisons and logic
// ---------------------------------------------------------------------------------------------

#[test]
fn comparisons() {
    let (a, b) = (vec![1.0, 2.0, 3.0, NAN], vec![3.0, 2.0, 1.0, NAN]);
    let s = [1, 4];
    let go = |f: fn(&Tensor, &Tensor) -> Tensor| run2(&s, a.clone(), &s, b.clone(), f);
    // Every comparison with a NaN is false, except !=.
    bools(&go(|a, b| a.less(b)), &s, &[true, false, false, false]);
    bools(&go(|a, b| a.less_equal(b)), &s, &[true, true, false, false]);
    bools(&go(|a, b| a.greater(b)), &s, &[false, false, true, false]);
    bools(
        &go(|a, b| a.greater_equal(b)),
        &s,
        &[false, true, true, false],
    );
    bools(&go(|a, b| a.equal(b)), &s, &[false, true, false, false]);
    bools(&go(|a, b| a.not_equal(b)), &s, &[true, false, true, true]);
    // Against a scalar, and broadcast (B, 3, 1) against (B, 1, 2).
    bools(
        &run1(&[1, 3], vec![1.0, 1.5, 2.0], |x| x.greater(1.5)),
        &[1, 3],
        &[false, false, true],
    );
    bools(
        &run1(&[1, 3], vec![1.0, 1.5, 2.0], |x| x.equal(1.5)),
        &[1, 3],
        &[false, true, false],
    );
    bools(
        &run2(
            &[1, 3, 1],
            vec![1.0, 2.0, 3.0],
            &[1, 1, 2],
            vec![2.0, 3.0],
            |a, b| a.less(b),
        ),
        &[1, 3, 2],
        &[true, true, false, true, false, false],
    );
    // int32 comparisons.
    bools(
        &runi(&[1, 3], vec![-1, 0, 1], |x| x.greater_equal(0)),
        &[1, 3],
        &[false, true, true],
    );
    bools(
        &runi(&[1, 3], vec![-1, 0, 1], |x| x.not_equal(0)),
        &[1, 3],
        &[true, false, true],
    );
}

#[test]
fn logical_and_or() {
    let (a, b) = (vec![1.0, 2.0, 3.0, 0.0], vec![3.0, 2.0, 0.0, 0.0]);
    let s = [1, 4];
    let go = |f: fn(&Tensor, &Tensor) -> Tensor| run2(&s, a.clone(), &s, b.clone(), f);
    // a > 1 = [F, T, T, F]; b > 1 = [T, T, F, F].
    bools(
        &go(|a, b| a.greater(1.0).logical_and(b.greater(1.0))),
        &s,
        &[false, true, false, false],
    );
    bools(
        &go(|a, b| a.greater(1.0).logical_or(b.greater(1.0))),
        &s,
        &[true, true, true, false],
    );
    bools(
        &go(|a, _| a.greater(1.0).logical_and(true)),
        &s,
        &[false, true, true, false],
    );
    bools(
        &go(|a, _| a.greater(1.0).logical_or(false)),
        &s,
        &[false, true, true, false],
    );
    // Broadcast (B, 2, 1) against (B, 1, 2).
    bools(
        &run2(
            &[1, 2, 1],
            vec![0.0, 1.0],
            &[1, 1, 2],
            vec![0.0, 1.0],
            |a, b| a.greater(0.5).logical_or(b.greater(0.5)),
        ),
        &[1, 2, 2],
        &[false, true, true, true],
    );
}

// ---------------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------------

#[test]
fn sum_and_mean_over_axes() {
    // x[b, i, j] = 6b + 3i + j, shape (2, 2, 3).
    let s = [2, 2, 3];
    let x = iota(12);
    let go = |f: fn(&Tensor) -> Tensor| run1(&s, x.clone(), f);
    exact(&go(|x| x.sum(2)), &[2, 2], &[3.0, 12.0, 21.0, 30.0]);
    exact(&go(|x| x.sum(-1)), &[2, 2], &[3.0, 12.0, 21.0, 30.0]);
    exact(
        &go(|x| x.sum_keepdims(-1)),
        &[2, 2, 1],
        &[3.0, 12.0, 21.0, 30.0],
    );
    exact(
        &go(|x| x.sum(1)),
        &[2, 3],
        &[3.0, 5.0, 7.0, 15.0, 17.0, 19.0],
    );
    exact(
        &go(|x| x.sum_keepdims(-2)),
        &[2, 1, 3],
        &[3.0, 5.0, 7.0, 15.0, 17.0, 19.0],
    );
    exact(
        &go(|x| x.sum(0)),
        &[2, 3],
        &[6.0, 8.0, 10.0, 12.0, 14.0, 16.0],
    );
    exact(&go(|x| x.sum([1, 2])), &[2], &[15.0, 51.0]);
    exact(&go(|x| x.sum_keepdims([-1, -2])), &[2, 1, 1], &[15.0, 51.0]);
    exact(&go(|x| x.sum([0, 2])), &[2], &[24.0, 42.0]);
    exact(&go(|x| x.sum_keepdims([2, 0])), &[1, 2, 1], &[24.0, 42.0]);
    exact(&go(|x| x.sum(Axes::All)), &[], &[66.0]);
    exact(&go(|x| x.sum_keepdims(Axes::All)), &[1, 1, 1], &[66.0]);
    exact(&go(|x| x.sum(None::<i32>)), &[], &[66.0]);
    exact(&go(|x| x.mean(-1)), &[2, 2], &[1.0, 4.0, 7.0, 10.0]);
    exact(&go(|x| x.mean([0, 1])), &[3], &[4.5, 5.5, 6.5]);
    exact(
        &go(|x| x.mean_keepdims([0, 1])),
        &[1, 1, 3],
        &[4.5, 5.5, 6.5],
    );
    exact(&go(|x| x.mean(Axes::All)), &[], &[5.5]);
    exact(
        &go(|x| x.mean_keepdims(1)),
        &[2, 1, 3],
        &[1.5, 2.5, 3.5, 7.5, 8.5, 9.5],
    );
}

#[test]
fn max_min_prod_over_axes() {
    // Shape (2, 2, 3).
    let s = [2, 2, 3];
    let x = vec![
        3.0, -1.0, 2.0, 0.5, -4.0, 4.0, 1.0, 1.0, 1.0, -2.0, -3.0, 0.5,
    ];
    let go = |f: fn(&Tensor) -> Tensor| run1(&s, x.clone(), f);
    exact(&go(|x| x.max(-1)), &[2, 2], &[3.0, 4.0, 1.0, 0.5]);
    exact(&go(|x| x.min(-1)), &[2, 2], &[-1.0, -4.0, 1.0, -3.0]);
    exact(&go(|x| x.prod(-1)), &[2, 2], &[-6.0, -8.0, 1.0, 3.0]);
    exact(
        &go(|x| x.prod(1)),
        &[2, 3],
        &[1.5, 4.0, 8.0, -2.0, -3.0, 0.5],
    );
    exact(&go(|x| x.max(0)), &[2, 3], &[3.0, 1.0, 2.0, 0.5, -3.0, 4.0]);
    exact(
        &go(|x| x.min_keepdims(0)),
        &[1, 2, 3],
        &[1.0, -1.0, 1.0, -2.0, -4.0, 0.5],
    );
    exact(&go(|x| x.max([1, 2])), &[2], &[4.0, 1.0]);
    exact(&go(|x| x.min([0, -1])), &[2], &[-1.0, -4.0]);
    exact(&go(|x| x.max_keepdims(Axes::All)), &[1, 1, 1], &[4.0]);
    exact(&go(|x| x.min(Axes::All)), &[], &[-4.0]);
    exact(&go(|x| x.prod(Axes::All)), &[], &[144.0]);
    // A NaN wins max and min (NumPy's max propagates NaN).
    close(
        &run1(&[1, 3], vec![1.0, NAN, 3.0], |x| x.max(-1)),
        &[1],
        &[NAN],
        0.0,
    );
    close(
        &run1(&[1, 3], vec![1.0, NAN, 3.0], |x| x.min(-1)),
        &[1],
        &[NAN],
        0.0,
    );
    // -inf and inf are ordinary values.
    exact(
        &run1(&[1, 2], vec![-INF, -INF], |x| x.max(-1)),
        &[1],
        &[-INF],
    );
}

#[test]
fn int32_reductions() {
    let s = [2, 3];
    let x = vec![4, -2, 7, -1, -9, 3];
    ints(&runi(&s, x.clone(), |x| x.sum(-1)), &[2], &[9, -7]);
    ints(
        &runi(&s, x.clone(), |x| x.sum_keepdims(0)),
        &[1, 3],
        &[3, -11, 10],
    );
    ints(&runi(&s, x.clone(), |x| x.max(-1)), &[2], &[7, 3]);
    ints(&runi(&s, x.clone(), |x| x.min(Axes::All)), &[], &[-9]);
    ints(&runi(&s, x.clone(), |x| x.prod(-1)), &[2], &[-56, 27]);
    ints(&runi(&s, x, |x| x.argmax(-1)), &[2], &[2, 2]);
}

#[test]
fn var_and_std() {
    let s = [2, 4];
    let x = vec![1.0, 2.0, 3.0, 4.0, 2.0, 2.0, 2.0, 2.0];
    let go = |f: fn(&Tensor) -> Tensor| run1(&s, x.clone(), f);
    // Population variance (ddof = 0), as NumPy's default.
    exact(&go(|x| x.var(-1)), &[2], &[1.25, 0.0]);
    exact(&go(|x| x.var_keepdims(1)), &[2, 1], &[1.25, 0.0]);
    approx(&go(|x| x.std(-1)), &[2], &[1.11803399, 0.0]);
    exact(&go(|x| x.var(0)), &[4], &[0.25, 0.0, 0.25, 1.0]);
    exact(&go(|x| x.std_keepdims(0)), &[1, 4], &[0.5, 0.0, 0.5, 1.0]);
    exact(&go(|x| x.var(Axes::All)), &[], &[0.6875]);
    approx(&go(|x| x.std(Axes::All)), &[], &[0.829156198]);
}

#[test]
fn argmax_argmin_first_occurrence() {
    let s = [2, 5];
    let x = vec![1.0, 3.0, 3.0, 0.0, 5.0, 2.0, 2.0, 1.0, 1.0, 5.0];
    let go = |f: fn(&Tensor) -> Tensor| run1(&s, x.clone(), f);
    ints(&go(|x| x.argmax(-1)), &[2], &[4, 4]);
    ints(&go(|x| x.argmin(-1)), &[2], &[3, 2]);
    ints(&go(|x| x.argmax_keepdims(1)), &[2, 1], &[4, 4]);
    // Over the batch axis: ties (column 4) pick the first.
    ints(&go(|x| x.argmax(0)), &[5], &[1, 0, 0, 1, 0]);
    ints(&go(|x| x.argmin_keepdims(0)), &[1, 5], &[0, 1, 1, 0, 0]);
    // Ties within a row pick the first.
    let t = run1(&[2, 4], vec![1.0, 3.0, 3.0, 0.0, 2.0, 2.0, 1.0, 1.0], |x| {
        x.argmax(-1)
    });
    ints(&t, &[2], &[1, 0]);
    let t = run1(&[2, 4], vec![1.0, 3.0, 3.0, 0.0, 2.0, 2.0, 1.0, 1.0], |x| {
        x.argmin(-1)
    });
    ints(&t, &[2], &[3, 2]);
    // A NaN counts as the extreme, as in NumPy.
    ints(
        &run1(&[1, 3], vec![1.0, NAN, 3.0], |x| x.argmax(-1)),
        &[1],
        &[1],
    );
    ints(
        &run1(&[1, 3], vec![1.0, NAN, -3.0], |x| x.argmin(-1)),
        &[1],
        &[1],
    );
    // Middle axis of a rank-3 tensor.
    ints(
        &run1(&[1, 3, 2], vec![0.0, 9.0, 5.0, 1.0, 5.0, 9.0], |x| {
            x.argmax(1)
        }),
        &[1, 2],
        &[1, 0],
    );
    ints(
        &run1(&[1, 3, 2], vec![0.0, 9.0, 5.0, 1.0, 5.0, 9.0], |x| {
            x.argmin(-2)
        }),
        &[1, 2],
        &[0, 1],
    );
}

#[test]
fn argmax_of_large_int32_values() {
    // 2^24 and 2^24 + 1 are distinct int32 values (the same float32).
    let big = 1 << 24;
    ints(
        &runi(&[1, 2], vec![big, big + 1], |x| x.argmax(-1)),
        &[1],
        &[1],
    );
    ints(
        &runi(&[1, 2], vec![big + 1, big], |x| x.argmin(-1)),
        &[1],
        &[1],
    );
    ints(
        &runi(&[1, 3], vec![i32::MAX - 1, i32::MAX, i32::MIN], |x| {
            x.argmax(-1)
        }),
        &[1],
        &[1],
    );
}

#[test]
fn cumsum_and_cumprod() {
    let s = [2, 3];
    let x = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let go = |f: fn(&Tensor) -> Tensor| run1(&s, x.clone(), f);
    exact(&go(|x| x.cumsum(-1)), &s, &[1.0, 3.0, 6.0, 4.0, 9.0, 15.0]);
    exact(&go(|x| x.cumsum(1)), &s, &[1.0, 3.0, 6.0, 4.0, 9.0, 15.0]);
    exact(&go(|x| x.cumsum(0)), &s, &[1.0, 2.0, 3.0, 5.0, 7.0, 9.0]);
    exact(
        &go(|x| x.cumprod(-1)),
        &s,
        &[1.0, 2.0, 6.0, 4.0, 20.0, 120.0],
    );
    exact(&go(|x| x.cumprod(0)), &s, &[1.0, 2.0, 3.0, 4.0, 10.0, 18.0]);
    exact(
        &go(|x| x.cumprod(-2)),
        &s,
        &[1.0, 2.0, 3.0, 4.0, 10.0, 18.0],
    );
    // The middle axis of a rank-3 tensor, (1, 3, 2).
    let s3 = [1, 3, 2];
    exact(
        &run1(&s3, x.clone(), |x| x.cumsum(1)),
        &s3,
        &[1.0, 2.0, 4.0, 6.0, 9.0, 12.0],
    );
    exact(
        &run1(&s3, x.clone(), |x| x.cumsum(-2)),
        &s3,
        &[1.0, 2.0, 4.0, 6.0, 9.0, 12.0],
    );
    exact(
        &run1(&s3, x, |x| x.cumprod(-2)),
        &s3,
        &[1.0, 2.0, 3.0, 8.0, 15.0, 48.0],
    );
    // int32.
    ints(
        &runi(&[1, 4], vec![3, -1, 4, 1], |x| x.cumsum(-1)),
        &[1, 4],
        &[3, 2, 6, 7],
    );
    ints(
        &runi(&[1, 4], vec![3, -1, 4, 2], |x| x.cumprod(-1)),
        &[1, 4],
        &[3, -3, -12, -24],
    );
    ints(
        &runi(&[2, 2], vec![3, -1, 4, 2], |x| x.cumsum(0)),
        &[2, 2],
        &[3, -1, 7, 1],
    );
}

// ---------------------------------------------------------------------------------------------
// logsumexp, softmax, log_softmax, l2_normalize
// ---------------------------------------------------------------------------------------------

fn softmax_rows() -> Vec<f32> {
    vec![
        1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 1000.0, 1001.0, 1002.0, -1.0, 0.0, -1.0,
    ]
}

#[test]
fn logsumexp_is_stable() {
    let s = [4, 3];
    approx(
        &run1(&s, softmax_rows(), |x| x.logsumexp(-1)),
        &[4],
        &[3.40760596, 1.09861229, 1002.40761, 0.551444714],
    );
    approx(
        &run1(&s, softmax_rows(), |x| x.logsumexp_keepdims(1)),
        &[4, 1],
        &[3.40760596, 1.09861229, 1002.40761, 0.551444714],
    );
    // Over every axis, and over both axes listed.
    let small = vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0, -1.0, 0.0, -1.0];
    approx(
        &run1(&[3, 3], small.clone(), |x| x.logsumexp(Axes::All)),
        &[],
        &[3.55330694],
    );
    approx(
        &run1(&[3, 3], small.clone(), |x| x.logsumexp_keepdims([0, 1])),
        &[1, 1],
        &[3.55330694],
    );
    // Rank 3, two trailing axes: [[1, 2, 3], [4, 5, 6]] -> log(sum(e^k)).
    approx(
        &run1(&[1, 2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], |x| {
            x.logsumexp([-1, -2])
        }),
        &[1],
        &[6.45619332],
    );
}

#[test]
fn softmax_known_values_and_rows_sum_to_one() {
    let s = [4, 3];
    let want = [
        0.0900305732,
        0.244728471,
        0.665240956,
        0.333333333,
        0.333333333,
        0.333333333,
        0.0900305732,
        0.244728471,
        0.665240956,
        0.211941558,
        0.576116885,
        0.211941558,
    ];
    let y = run1(&s, softmax_rows(), |x| x.softmax(-1));
    approx(&y, &s, &want);
    for row in y.as_f32().unwrap().chunks(3) {
        assert!(
            (row.iter().sum::<f32>() - 1.0).abs() < 1e-6,
            "row {row:?} does not sum to 1"
        );
    }
    approx(&run1(&s, softmax_rows(), |x| x.softmax(1)), &s, &want);
    // Along the batch axis.
    let small = vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0, -1.0, 0.0, -1.0];
    approx(
        &run1(&[3, 3], small, |x| x.softmax(0)),
        &[3, 3],
        &[
            0.665240956,
            0.786986042,
            0.936239552,
            0.244728471,
            0.106506979,
            0.0466126226,
            0.0900305732,
            0.106506979,
            0.0171478255,
        ],
    );
    // -inf scores get probability 0.
    approx(
        &run1(&[1, 3], vec![-INF, 0.0, 0.0], |x| x.softmax(-1)),
        &[1, 3],
        &[0.0, 0.5, 0.5],
    );
    // A middle axis of a rank-3 tensor: (1, 2, 2) over axis 1.
    approx(
        &run1(&[1, 2, 2], vec![0.0, 5.0, 0.0, 5.0], |x| x.softmax(-2)),
        &[1, 2, 2],
        &[0.5, 0.5, 0.5, 0.5],
    );
}

#[test]
fn log_softmax_known_values() {
    let s = [4, 3];
    approx(
        &run1(&s, softmax_rows(), |x| x.log_softmax(-1)),
        &s,
        &[
            -2.40760596,
            -1.40760596,
            -0.407605964,
            -1.09861229,
            -1.09861229,
            -1.09861229,
            -2.40760596,
            -1.40760596,
            -0.407605964,
            -1.55144471,
            -0.551444714,
            -1.55144471,
        ],
    );
    // exp(log_softmax) is softmax.
    approx(
        &run1(&[1, 3], vec![1.0, 2.0, 3.0], |x| x.log_softmax(1).exp()),
        &[1, 3],
        &[0.0900305732, 0.244728471, 0.665240956],
    );
}

#[test]
fn l2_normalize_tensorflow_epsilon() {
    let s = [4, 2];
    let x = vec![3.0, 4.0, 0.0, 0.0, 1e-7, 0.0, -5.0, 12.0];
    let y = run1(&s, x.clone(), |x| x.l2_normalize(-1));
    // The all-zero row stays zero (no NaN); a tiny row is divided by sqrt(1e-12) = 1e-6, not by
    // its own norm: 1e-7 * 1e6 = 0.1.
    approx(
        &y,
        &s,
        &[0.6, 0.8, 0.0, 0.0, 0.1, 0.0, -5.0 / 13.0, 12.0 / 13.0],
    );
    assert!(y.as_f32().unwrap().iter().all(|v| v.is_finite()));
    approx(
        &run1(&s, x.clone(), |x| x.l2_normalize(1)),
        &s,
        &[0.6, 0.8, 0.0, 0.0, 0.1, 0.0, -5.0 / 13.0, 12.0 / 13.0],
    );
    // Along the batch axis: columns [3, 0, 1e-7, -5] and [4, 0, 0, 12].
    let n0 = (9.0f64 + 1e-14 + 25.0).sqrt();
    approx(
        &run1(&s, x, |x| x.l2_normalize(0)),
        &s,
        &[
            (3.0 / n0) as f32,
            (4.0 / 160f64.sqrt()) as f32,
            0.0,
            0.0,
            (1e-7 / n0) as f32,
            0.0,
            (-5.0 / n0) as f32,
            (12.0 / 160f64.sqrt()) as f32,
        ],
    );
    // Over all axes: the norm of [1, 2, 2, 4] is 5.
    approx(
        &run1(&[1, 2, 2], vec![1.0, 2.0, 2.0, 4.0], |x| {
            x.l2_normalize(Axes::All)
        }),
        &[1, 2, 2],
        &[0.2, 0.4, 0.4, 0.8],
    );
    // An all-zero input everywhere.
    let z = run1(&[2, 3], vec![0.0; 6], |x| x.l2_normalize(-1));
    exact(&z, &[2, 3], &[0.0; 6]);
}

// ---------------------------------------------------------------------------------------------
// Movement ops
// ---------------------------------------------------------------------------------------------

#[test]
fn reshape_with_minus_one() {
    let x = iota(12);
    exact(
        &run1(&[2, 6], x.clone(), |x| x.reshape(&[-1, 2, 3])),
        &[2, 2, 3],
        &x,
    );
    exact(&run1(&[2, 6], x.clone(), |x| x.reshape(&[-1])), &[12], &x);
    exact(
        &run1(&[2, 6], x.clone(), |x| x.reshape(&[4, -1])),
        &[4, 3],
        &x,
    );
    exact(
        &run1(&[2, 2, 3], x.clone(), |x| x.reshape(&[-1, 6])),
        &[2, 6],
        &x,
    );
    exact(
        &run1(&[2, 2, 3], x.clone(), |x| x.reshape(&[2, 3, 2, 1])),
        &[2, 3, 2, 1],
        &x,
    );
    // Reshape after a transpose reads in the transposed order.
    exact(
        &run1(&[1, 2, 3], iota(6), |x| {
            x.transpose(&[0, 2, 1]).reshape(&[-1])
        }),
        &[6],
        &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0],
    );
    // 6 elements do not fill rows of 4.
    let e = build_error(&[6], |x| x.slice(s![0]).reshape(&[-1, 4]));
    assert!(e.to_string().contains("reshape"), "{e}");
    let e = build_error(&[6], |x| x.slice(s![0]).reshape(&[-1, -1]));
    assert!(e.to_string().contains("-1"), "{e}");
}

#[test]
fn transpose_t_and_swapaxes() {
    // x[0, i, j, l] = 12i + 4j + l, shape (1, 2, 3, 4).
    let s = [1, 2, 3, 4];
    let x = iota(24);
    let perm0312 = [
        0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 1.0, 5.0, 9.0, 13.0, 17.0, 21.0, 2.0, 6.0, 10.0, 14.0,
        18.0, 22.0, 3.0, 7.0, 11.0, 15.0, 19.0, 23.0,
    ];
    exact(
        &run1(&s, x.clone(), |x| x.transpose(&[0, 3, 1, 2])),
        &[1, 4, 2, 3],
        &perm0312,
    );
    exact(
        &run1(&s, x.clone(), |x| x.transpose(&[0, -1, -3, -2])),
        &[1, 4, 2, 3],
        &perm0312,
    );
    let swapped = [
        0.0, 12.0, 4.0, 16.0, 8.0, 20.0, 1.0, 13.0, 5.0, 17.0, 9.0, 21.0, 2.0, 14.0, 6.0, 18.0,
        10.0, 22.0, 3.0, 15.0, 7.0, 19.0, 11.0, 23.0,
    ];
    exact(
        &run1(&s, x.clone(), |x| x.swapaxes(1, -1)),
        &[1, 4, 3, 2],
        &swapped,
    );
    exact(
        &run1(&s, x.clone(), |x| x.swapaxes(3, 1)),
        &[1, 4, 3, 2],
        &swapped,
    );
    // t() reverses every axis: (1, 2, 3, 4) -> (4, 3, 2, 1).
    exact(&run1(&s, x.clone(), |x| x.t()), &[4, 3, 2, 1], &swapped);
    // t() of a matrix (batch 2, 3 features) is its transpose.
    exact(
        &run1(&[2, 3], iota(6), |x| x.t()),
        &[3, 2],
        &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0],
    );
    // The identity permutation, and a double transpose.
    exact(&run1(&s, x.clone(), |x| x.transpose(&[0, 1, 2, 3])), &s, &x);
    exact(
        &run1(&s, x.clone(), |x| {
            x.transpose(&[0, 3, 1, 2]).transpose(&[0, 2, 3, 1])
        }),
        &s,
        &x,
    );
}

#[test]
fn expand_dims_and_squeeze() {
    let x = iota(6);
    exact(
        &run1(&[2, 3], x.clone(), |x| x.expand_dims(1)),
        &[2, 1, 3],
        &x,
    );
    exact(
        &run1(&[2, 3], x.clone(), |x| x.expand_dims(-1)),
        &[2, 3, 1],
        &x,
    );
    exact(
        &run1(&[2, 3], x.clone(), |x| x.expand_dims(0)),
        &[1, 2, 3],
        &x,
    );
    exact(
        &run1(&[2, 3], x.clone(), |x| x.expand_dims(-3)),
        &[1, 2, 3],
        &x,
    );
    exact(
        &run1(&[2, 3], x.clone(), |x| x.expand_dims(-2)),
        &[2, 1, 3],
        &x,
    );
    let s = [2, 1, 3, 1];
    exact(&run1(&s, x.clone(), |x| x.squeeze(1)), &[2, 3, 1], &x);
    exact(&run1(&s, x.clone(), |x| x.squeeze(-1)), &[2, 1, 3], &x);
    exact(&run1(&s, x.clone(), |x| x.squeeze([1, 3])), &[2, 3], &x);
    exact(&run1(&s, x.clone(), |x| x.squeeze([-1, -3])), &[2, 3], &x);
    // Axes::All removes every size-1 axis known when the graph is built (not the batch).
    exact(&run1(&s, x.clone(), |x| x.squeeze(Axes::All)), &[2, 3], &x);
    exact(
        &run1(&[1, 1, 3, 1], vec![1.0, 2.0, 3.0], |x| x.squeeze(Axes::All)),
        &[1, 3],
        &[1.0, 2.0, 3.0],
    );
    let e = build_error(&[2, 3], |x| x.squeeze(1));
    assert!(e.to_string().contains("not 1"), "{e}");
}

#[test]
fn broadcast_to_a_larger_shape() {
    exact(
        &run1(&[1, 3], vec![1.0, 2.0, 3.0], |x| {
            x.slice(s![0]).broadcast_to(&[2, 3])
        }),
        &[2, 3],
        &[1.0, 2.0, 3.0, 1.0, 2.0, 3.0],
    );
    exact(
        &run1(&[1, 3, 1], vec![1.0, 2.0, 3.0], |x| {
            x.slice(s![0]).broadcast_to(&[2, 3, 2])
        }),
        &[2, 3, 2],
        &[1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0],
    );
    // Same shape is the identity.
    exact(
        &run1(&[1, 3], vec![1.0, 2.0, 3.0], |x| {
            x.slice(s![0]).broadcast_to(&[3])
        }),
        &[3],
        &[1.0, 2.0, 3.0],
    );
    // The dynamic batch axis broadcasts to an explicit size: (B, 1) -> (2, 3) with B = 1 or 2.
    exact(
        &run1(&[1, 1], vec![7.0], |x| x.broadcast_to(&[2, 3])),
        &[2, 3],
        &[7.0; 6],
    );
    exact(
        &run1(&[2, 1], vec![7.0, 8.0], |x| x.broadcast_to(&[2, 3])),
        &[2, 3],
        &[7.0, 7.0, 7.0, 8.0, 8.0, 8.0],
    );
    exact(
        &run1(&[1, 1], vec![7.0], |x| x.slice(s![0]).broadcast_to(&[2, 2])),
        &[2, 2],
        &[7.0; 4],
    );
    let e = build_error(&[3], |x| x.slice(s![0]).broadcast_to(&[2]));
    assert!(e.to_string().contains("broadcast"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Slicing
// ---------------------------------------------------------------------------------------------

/// x[b, i, j] = 12b + 4i + j, shape (2, 3, 4).
fn cube() -> Vec<f32> {
    iota(24)
}

const CUBE: [usize; 3] = [2, 3, 4];

#[test]
fn slice_integer_index_removes_an_axis() {
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![.., -1])),
        &[2, 4],
        &[8.0, 9.0, 10.0, 11.0, 20.0, 21.0, 22.0, 23.0],
    );
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![.., 0])),
        &[2, 4],
        &[0.0, 1.0, 2.0, 3.0, 12.0, 13.0, 14.0, 15.0],
    );
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![.., -2])),
        &[2, 4],
        &[4.0, 5.0, 6.0, 7.0, 16.0, 17.0, 18.0, 19.0],
    );
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![.., .., -1])),
        &[2, 3],
        &[3.0, 7.0, 11.0, 15.0, 19.0, 23.0],
    );
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![.., 1, 1..])),
        &[2, 3],
        &[5.0, 6.0, 7.0, 17.0, 18.0, 19.0],
    );
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![.., 2, -1])),
        &[2],
        &[11.0, 23.0],
    );
    // On the batch axis (dynamic when the graph is built).
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![1, 0])),
        &[4],
        &[12.0, 13.0, 14.0, 15.0],
    );
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![-1, -1, -1])),
        &[],
        &[23.0],
    );
    exact(&run1(&CUBE, cube(), |x| x.slice(s![0])), &[3, 4], &iota(12));
    // Out-of-range indices are build errors.
    let e = build_error(&[3, 4], |x| x.slice(s![.., 3]));
    assert!(e.to_string().contains("out of range"), "{e}");
    let e = build_error(&[3, 4], |x| x.slice(s![.., -4]));
    assert!(e.to_string().contains("out of range"), "{e}");
}

#[test]
fn slice_ranges_clamp_like_numpy() {
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![.., 1..3])),
        &[2, 2, 4],
        &[
            4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 16.0, 17.0, 18.0, 19.0, 20.0, 21.0, 22.0,
            23.0,
        ],
    );
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![.., -2.., ..])),
        &[2, 2, 4],
        &[
            4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 16.0, 17.0, 18.0, 19.0, 20.0, 21.0, 22.0,
            23.0,
        ],
    );
    // Past-the-end bounds clamp.
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![.., 1..10, ..-3])),
        &[2, 2, 1],
        &[4.0, 8.0, 16.0, 20.0],
    );
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![.., -100..1, 3..])),
        &[2, 1, 1],
        &[3.0, 15.0],
    );
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![.., 0..=1, 2])),
        &[2, 2],
        &[2.0, 6.0, 14.0, 18.0],
    );
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![.., ..=-2, 2])),
        &[2, 2],
        &[2.0, 6.0, 14.0, 18.0],
    );
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![.., ..=-1, 2])),
        &[2, 3],
        &[2.0, 6.0, 10.0, 14.0, 18.0, 22.0],
    );
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![.., 1i64..2i64, 0i64])),
        &[2, 1],
        &[4.0, 16.0],
    );
    // On the batch axis.
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![1.., 0, 0])),
        &[1],
        &[12.0],
    );
    // A slice that selects nothing is a build error.
    let e = build_error(&[3, 4], |x| {
        x.slice(s![.., SliceArg::range(Some(2), Some(1), 1)])
    });
    assert!(e.to_string().contains("selects nothing"), "{e}");
}

/// Slices that keep the last axis whole, read by elementwise ops: the CPU reads them in place
/// (a row map) inside the fused region instead of copying them out; the values must be the
/// slice's, whatever the starts, steps and signs, for a region of one op as of several.
#[test]
fn strided_slices_read_by_elementwise_ops() {
    let shape = [2usize, 5, 4, 3];
    let data: Vec<f32> = (0..120).map(|i| ((i * 37) % 101) as f32 - 50.0).collect();
    let at = |b: usize, h: usize, w: usize, c: usize| data[((b * 5 + h) * 4 + w) * 3 + c];
    let full = SliceArg::from(..);
    // a = x[:, 0:4:2, 1:, :], b = x[:, 4:0:-2, :3, :]: both [2, 2, 3, 3].
    let a = move |x: &Tensor| {
        x.slice(&[
            full,
            SliceArg::range(Some(0), Some(4), 2),
            SliceArg::range(Some(1), None, 1),
            full,
        ])
    };
    let b = move |x: &Tensor| {
        x.slice(&[
            full,
            SliceArg::range(Some(4), Some(0), -2),
            SliceArg::range(None, Some(3), 1),
            full,
        ])
    };
    let mut want_max = Vec::new();
    let mut want_mix = Vec::new();
    for n in 0..2 {
        for i in 0..2 {
            for j in 0..3 {
                for c in 0..3 {
                    let va = at(n, 2 * i, j + 1, c);
                    let vb = at(n, 4 - 2 * i, j, c);
                    want_max.push(va.max(vb));
                    want_mix.push(va.max(vb) + va * 0.5);
                }
            }
        }
    }
    let one_op = run(&shape, data.clone(), move |x| a(x).maximum(b(x)));
    exact(&one_op, &[2, 2, 3, 3], &want_max);
    let several = run(&shape, data.clone(), move |x| {
        a(x).maximum(b(x)).add(a(x).multiply(0.5))
    });
    exact(&several, &[2, 2, 3, 3], &want_mix);
}

/// A slice of more rows than the CPU maps in place (4,194,304) is copied out as before and
/// gives the same values.
#[test]
fn strided_slice_past_the_row_map_limit() {
    let (h, w) = (9000usize, 1000usize);
    let data: Vec<f32> = (0..h * w).map(|i| (i % 977) as f32).collect();
    let got = run(&[1, h, w, 1], data.clone(), |x| {
        let full = SliceArg::from(..);
        x.slice(&[full, SliceArg::step(2), full, full]).add(1.0)
    });
    let want: Vec<f32> = (0..h / 2)
        .flat_map(|i| (0..w).map(move |j| (2 * i, j)))
        .map(|(i, j)| data[i * w + j] + 1.0)
        .collect();
    exact(&got, &[1, h / 2, w, 1], &want);
}

#[test]
fn slice_steps_positive_and_negative() {
    let full = SliceArg::from(..);
    // x[:, :, ::-1]
    exact(
        &run1(&CUBE, cube(), move |x| {
            x.slice(&[full, full, SliceArg::step(-1)])
        }),
        &CUBE,
        &[
            3.0, 2.0, 1.0, 0.0, 7.0, 6.0, 5.0, 4.0, 11.0, 10.0, 9.0, 8.0, 15.0, 14.0, 13.0, 12.0,
            19.0, 18.0, 17.0, 16.0, 23.0, 22.0, 21.0, 20.0,
        ],
    );
    // x[:, ::-1, 0]
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![.., SliceArg::step(-1), 0])),
        &[2, 3],
        &[8.0, 4.0, 0.0, 20.0, 16.0, 12.0],
    );
    // x[::-1] reverses the (dynamic) batch.
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![SliceArg::step(-1), 0, 0])),
        &[2],
        &[12.0, 0.0],
    );
    // x[:, 0, ::2], x[:, 0, 1::2], x[:, 0, 3:0:-2], x[:, 0, -1::-3], x[:, 0, :-5:-1]
    let row = |a: SliceArg| {
        run1(&CUBE, cube(), move |x| {
            x.slice(&[SliceArg::from(..), SliceArg::Index(0), a])
        })
    };
    exact(&row(SliceArg::step(2)), &[2, 2], &[0.0, 2.0, 12.0, 14.0]);
    exact(
        &row(SliceArg::range(Some(1), None, 2)),
        &[2, 2],
        &[1.0, 3.0, 13.0, 15.0],
    );
    exact(
        &row(SliceArg::range(Some(3), Some(0), -2)),
        &[2, 2],
        &[3.0, 1.0, 15.0, 13.0],
    );
    exact(
        &row(SliceArg::range(Some(-1), None, -3)),
        &[2, 2],
        &[3.0, 0.0, 15.0, 12.0],
    );
    exact(
        &row(SliceArg::range(None, Some(-5), -1)),
        &[2, 4],
        &[3.0, 2.0, 1.0, 0.0, 15.0, 14.0, 13.0, 12.0],
    );
    exact(
        &row(SliceArg::range(Some(10), Some(1), -1)),
        &[2, 2],
        &[3.0, 2.0, 15.0, 14.0],
    );
    exact(
        &row(SliceArg::range(Some(-2), Some(-4), -1)),
        &[2, 2],
        &[2.0, 1.0, 14.0, 13.0],
    );
    exact(&row(SliceArg::step(5)), &[2, 1], &[0.0, 12.0]);
    // A slice of a slice: x[:, ::-1][:, 1:] composes.
    exact(
        &run1(&CUBE, cube(), |x| {
            x.slice(s![.., SliceArg::step(-1), 1]).slice(s![.., 1..])
        }),
        &[2, 2],
        &[5.0, 1.0, 17.0, 13.0],
    );
    let e = build_error(&[3, 4], |x| x.slice(s![.., SliceArg::step(0)]));
    assert!(e.to_string().contains("step 0"), "{e}");
}

#[test]
fn slice_ellipsis_and_new_axis() {
    // x[..., -1]
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![SliceArg::Ellipsis, -1])),
        &[2, 3],
        &[3.0, 7.0, 11.0, 15.0, 19.0, 23.0],
    );
    // x[..., 1, :]
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![SliceArg::Ellipsis, 1, ..])),
        &[2, 4],
        &[4.0, 5.0, 6.0, 7.0, 16.0, 17.0, 18.0, 19.0],
    );
    // x[0, ..., 2]
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![0, SliceArg::Ellipsis, 2])),
        &[3],
        &[2.0, 6.0, 10.0],
    );
    // x[...] is x.
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![SliceArg::Ellipsis])),
        &CUBE,
        &cube(),
    );
    // x[:, None]
    exact(
        &run1(&CUBE, cube(), |x| x.slice(s![.., SliceArg::NewAxis])),
        &[2, 1, 3, 4],
        &cube(),
    );
    // x[..., None]
    exact(
        &run1(&CUBE, cube(), |x| {
            x.slice(s![SliceArg::Ellipsis, SliceArg::NewAxis])
        }),
        &[2, 3, 4, 1],
        &cube(),
    );
    // x[None, :, 0, None, ::2]
    exact(
        &run1(&CUBE, cube(), |x| {
            x.slice(s![
                SliceArg::NewAxis,
                ..,
                0,
                SliceArg::NewAxis,
                SliceArg::step(2)
            ])
        }),
        &[1, 2, 1, 2],
        &[0.0, 2.0, 12.0, 14.0],
    );
    // x[:, -1, None, 1:3]
    exact(
        &run1(&CUBE, cube(), |x| {
            x.slice(s![.., -1, SliceArg::NewAxis, 1..3])
        }),
        &[2, 1, 2],
        &[9.0, 10.0, 21.0, 22.0],
    );
    let e = build_error(&[3, 4], |x| {
        x.slice(s![SliceArg::Ellipsis, 0, SliceArg::Ellipsis])
    });
    assert!(e.to_string().contains("ellipsis"), "{e}");
}

#[test]
fn slice_axis_helper() {
    exact(
        &run1(&CUBE, cube(), |x| x.slice_axis(2, Some(1), None, 2)),
        &[2, 3, 2],
        &[
            1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0, 17.0, 19.0, 21.0, 23.0,
        ],
    );
    exact(
        &run1(&CUBE, cube(), |x| {
            x.slice_axis(-2, None, None, -1).slice(s![.., .., 0])
        }),
        &[2, 3],
        &[8.0, 4.0, 0.0, 20.0, 16.0, 12.0],
    );
    exact(
        &run1(&CUBE, cube(), |x| x.slice_axis(0, Some(1), Some(2), 1)),
        &[1, 3, 4],
        &iota(24)[12..],
    );
    exact(
        &run1(&CUBE, cube(), |x| x.slice_axis(-1, Some(-1), None, 1)),
        &[2, 3, 1],
        &[3.0, 7.0, 11.0, 15.0, 19.0, 23.0],
    );
}

// ---------------------------------------------------------------------------------------------
// Concatenate and stack
// ---------------------------------------------------------------------------------------------

#[test]
fn concatenate_along_axes() {
    let a = vec![1.0, 2.0, 3.0, 4.0];
    let b = vec![5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
    // (B, 2) ++ (B, 3) on the last axis.
    let want = [1.0, 2.0, 5.0, 6.0, 7.0, 3.0, 4.0, 8.0, 9.0, 10.0];
    exact(
        &run2(&[2, 2], a.clone(), &[2, 3], b.clone(), |a, b| {
            Tensor::concatenate(&[a.clone(), b.clone()], -1)
        }),
        &[2, 5],
        &want,
    );
    exact(
        &run2(&[2, 2], a.clone(), &[2, 3], b.clone(), |a, b| {
            Tensor::concatenate(&[a.clone(), b.clone()], 1)
        }),
        &[2, 5],
        &want,
    );
    // Rank 3: (B, 1, 2) ++ (B, 2, 2) on axis 1 (and -2).
    let (sa, sb) = ([2, 1, 2], [2, 2, 2]);
    let b8: Vec<f32> = (10..18).map(|v| v as f32).collect();
    let want = [
        1.0, 2.0, 10.0, 11.0, 12.0, 13.0, 3.0, 4.0, 14.0, 15.0, 16.0, 17.0,
    ];
    exact(
        &run2(&sa, a.clone(), &sb, b8.clone(), |a, b| {
            Tensor::concatenate(&[a.clone(), b.clone()], 1)
        }),
        &[2, 3, 2],
        &want,
    );
    exact(
        &run2(&sa, a.clone(), &sb, b8.clone(), |a, b| {
            Tensor::concatenate(&[a.clone(), b.clone()], -2)
        }),
        &[2, 3, 2],
        &want,
    );
    // On the batch axis: (2, 2) ++ (2, 2) -> (4, 2); three pieces, one repeated.
    exact(
        &run2(
            &[2, 2],
            a.clone(),
            &[2, 2],
            vec![5.0, 6.0, 7.0, 8.0],
            |a, b| Tensor::concatenate(&[a.clone(), b.clone(), a.clone()], 0),
        ),
        &[6, 2],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 1.0, 2.0, 3.0, 4.0],
    );
    // One piece is the identity; int32 and bool pieces concatenate too.
    exact(
        &run1(&[2, 2], a.clone(), |x| {
            Tensor::concatenate(std::slice::from_ref(x), -1)
        }),
        &[2, 2],
        &a,
    );
    ints(
        &runi(&[1, 2], vec![1, 2], |x| {
            Tensor::concatenate(&[x.clone(), -x], -1)
        }),
        &[1, 4],
        &[1, 2, -1, -2],
    );
    bools(
        &run1(&[1, 2], vec![1.0, -1.0], |x| {
            Tensor::concatenate(&[x.greater(0.0), x.less(0.0)], 1)
        }),
        &[1, 4],
        &[true, false, false, true],
    );
    let e = build_error(&[2], |x| {
        Tensor::concatenate(&[x.clone(), x.expand_dims(-1)], -1)
    });
    assert!(e.to_string().contains("rank"), "{e}");
}

#[test]
fn stack_along_new_axes() {
    let x = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    // stack([x, 10x], axis) for x of shape (2, 3).
    let go = |axis: isize| {
        run1(&[2, 3], x.clone(), move |x| {
            Tensor::stack(&[x.clone(), x * 10.0], axis)
        })
    };
    exact(
        &go(0),
        &[2, 2, 3],
        &[
            1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0,
        ],
    );
    exact(
        &go(-3),
        &[2, 2, 3],
        &[
            1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0,
        ],
    );
    exact(
        &go(1),
        &[2, 2, 3],
        &[
            1.0, 2.0, 3.0, 10.0, 20.0, 30.0, 4.0, 5.0, 6.0, 40.0, 50.0, 60.0,
        ],
    );
    exact(
        &go(-1),
        &[2, 3, 2],
        &[
            1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0, 5.0, 50.0, 6.0, 60.0,
        ],
    );
    exact(
        &go(2),
        &[2, 3, 2],
        &[
            1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0, 5.0, 50.0, 6.0, 60.0,
        ],
    );
    // Three tensors.
    exact(
        &run1(&[1, 2], vec![1.0, 2.0], |x| {
            Tensor::stack(&[x.clone(), x + 1.0, x * 3.0], -1)
        }),
        &[1, 2, 3],
        &[1.0, 2.0, 3.0, 2.0, 3.0, 6.0],
    );
}

// ---------------------------------------------------------------------------------------------
// matmul and batch_dot
// ---------------------------------------------------------------------------------------------

fn a23() -> Vec<f32> {
    vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
}

fn b32() -> Vec<f32> {
    vec![7.0, 8.0, 9.0, 10.0, 11.0, 12.0]
}

#[test]
fn matmul_2d() {
    // [[1,2,3],[4,5,6]] @ [[7,8],[9,10],[11,12]] = [[58,64],[139,154]].
    exact(
        &run2(&[1, 2, 3], a23(), &[1, 3, 2], b32(), |a, b| {
            a.slice(s![0]).matmul(&b.slice(s![0]))
        }),
        &[2, 2],
        &[58.0, 64.0, 139.0, 154.0],
    );
    exact(
        &run1(&[2, 3], a23(), |x| x.matmul(&constant(&[3, 2], b32()))),
        &[2, 2],
        &[58.0, 64.0, 139.0, 154.0],
    );
    // (B, 3) @ (B, 3)^T is the Gram matrix [[14, 32], [32, 77]].
    exact(
        &run1(&[2, 3], a23(), |x| x.matmul(&x.t())),
        &[2, 2],
        &[14.0, 32.0, 32.0, 77.0],
    );
    // An outer product: (3, 1) @ (1, 4).
    exact(
        &run2(
            &[1, 3, 1],
            vec![1.0, 2.0, 3.0],
            &[1, 1, 4],
            vec![1.0, 10.0, 100.0, 1000.0],
            |a, b| a.matmul(b),
        ),
        &[1, 3, 4],
        &[
            1.0, 10.0, 100.0, 1000.0, 2.0, 20.0, 200.0, 2000.0, 3.0, 30.0, 300.0, 3000.0,
        ],
    );
    exact(
        &run1(&[2, 3], a23(), |x| {
            x.dot(&constant(&[3, 1], vec![1.0, 0.0, -1.0]))
        }),
        &[2, 1],
        &[-2.0, -2.0],
    );
    let e = build_error(&[2, 3], |x| x.matmul(&constant(&[2, 2], vec![0.0; 4])));
    assert!(e.to_string().contains("inner dimensions"), "{e}");
}

#[test]
fn matmul_batched_and_broadcast() {
    // (2, 2, 3) @ (2, 3, 2): a = iota, b = iota - 6.
    let b: Vec<f32> = iota(12).iter().map(|v| v - 6.0).collect();
    exact(
        &run2(&[2, 2, 3], iota(12), &[2, 3, 2], b, |a, b| a.matmul(b)),
        &[2, 2, 2],
        &[-8.0, -5.0, -44.0, -32.0, 46.0, 67.0, 64.0, 94.0],
    );
    // A 2-D right operand broadcasts over the batch.
    exact(
        &run1(&[2, 2, 3], iota(12), |x| {
            x.matmul(&constant(&[3, 2], b32()))
        }),
        &[2, 2, 2],
        &[31.0, 34.0, 112.0, 124.0, 193.0, 214.0, 274.0, 304.0],
    );
    // And a 2-D left operand: [[1,0],[0,2]] @ (B, 2, 3).
    exact(
        &run1(&[2, 2, 3], iota(12), |x| {
            constant(&[2, 2], vec![1.0, 0.0, 0.0, 2.0]).matmul(x)
        }),
        &[2, 2, 3],
        &[
            0.0, 1.0, 2.0, 6.0, 8.0, 10.0, 6.0, 7.0, 8.0, 18.0, 20.0, 22.0,
        ],
    );
    // Batch dims broadcast against each other: (2, 1, 2, 3) @ (3, 3, 2) -> (2, 3, 2, 2), with
    // c = iota(18) / 2 - 4.
    let c: Vec<f32> = iota(18).iter().map(|v| v * 0.5 - 4.0).collect();
    exact(
        &run1(&[2, 1, 2, 3], iota(12), move |x| {
            x.matmul(&constant(&[3, 3, 2], c.clone()))
        }),
        &[2, 3, 2, 2],
        &[
            -7.0, -5.5, -34.0, -28.0, 2.0, 3.5, 2.0, 8.0, 11.0, 12.5, 38.0, 44.0, -61.0, -50.5,
            -88.0, -73.0, 2.0, 12.5, 2.0, 17.0, 65.0, 75.5, 92.0, 107.0,
        ],
    );
}

/// Many products in one batched matmul (attention's shape: batch and heads) run one product per
/// task; the values must be each product's, with the batch dims broadcast against each other.
#[test]
fn matmul_of_many_large_products_matches_the_definition() {
    // (3, 1, 24, 40) @ (4, 40, 30) -> (3, 4, 24, 30): 12 products of 28,800 multiply-adds.
    let (bs, h, m, k, n) = (3usize, 4usize, 24usize, 40usize, 30usize);
    let a: Vec<f32> = (0..bs * m * k)
        .map(|i| ((i * 13) % 17) as f32 * 0.25 - 2.0)
        .collect();
    let w: Vec<f32> = (0..h * k * n)
        .map(|i| ((i * 7) % 11) as f32 * 0.5 - 2.5)
        .collect();
    let mut want = Vec::with_capacity(bs * h * m * n);
    for b in 0..bs {
        for hh in 0..h {
            for i in 0..m {
                for j in 0..n {
                    let dot: f64 = (0..k)
                        .map(|t| a[(b * m + i) * k + t] as f64 * w[(hh * k + t) * n + j] as f64)
                        .sum();
                    want.push(dot as f32);
                }
            }
        }
    }
    let got = run1(&[bs, 1, m, k], a, move |x| {
        x.matmul(&constant(&[h, k, n], w.clone()))
    });
    close(&got, &[bs, h, m, n], &want, 1e-5);
}

#[test]
fn matmul_promotes_vectors() {
    let v = || constant(&[3], vec![1.0, 2.0, 3.0]);
    // v @ M: (3,) @ (3, 2) -> (2,).
    exact(
        &run1(&[1, 3, 2], b32(), move |m| v().matmul(&m.slice(s![0]))),
        &[2],
        &[58.0, 64.0],
    );
    // M @ v: (2, 3) @ (3,) -> (2,).
    exact(
        &run1(&[1, 2, 3], a23(), move |m| m.slice(s![0]).matmul(&v())),
        &[2],
        &[14.0, 32.0],
    );
    // v @ v: (3,) @ (3,) -> a scalar.
    exact(
        &run1(&[1, 3], vec![4.0, 5.0, 6.0], move |x| {
            x.slice(s![0]).matmul(&v())
        }),
        &[],
        &[32.0],
    );
    // (B, 2, 3) @ (3,) -> (B, 2).
    exact(
        &run1(&[2, 2, 3], iota(12), move |x| x.matmul(&v())),
        &[2, 2],
        &[8.0, 26.0, 44.0, 62.0],
    );
    // (3,) @ (B, 3, 2) -> (B, 2).
    exact(
        &run1(&[2, 3, 2], iota(12), move |x| v().matmul(x)),
        &[2, 2],
        &[16.0, 22.0, 52.0, 58.0],
    );
    // (B, 3) @ (3,) -> (B,): a batch of rows against one vector.
    exact(
        &run1(&[2, 3], a23(), move |x| x.matmul(&v())),
        &[2],
        &[14.0, 32.0],
    );
}

#[test]
fn batch_dot_rank2_and_rank3() {
    // Rank 2: row-wise dot products, shape (B, 1).
    exact(
        &run2(
            &[2, 3],
            a23(),
            &[2, 3],
            vec![1.0, 0.0, -1.0, 2.0, 2.0, 2.0],
            |x, y| x.batch_dot(y, (1, 1)),
        ),
        &[2, 1],
        &[-2.0, 30.0],
    );
    exact(
        &run2(
            &[2, 3],
            a23(),
            &[2, 3],
            vec![1.0, 0.0, -1.0, 2.0, 2.0, 2.0],
            |x, y| x.batch_dot(y, (-1, -1)),
        ),
        &[2, 1],
        &[-2.0, 30.0],
    );
    // Rank 3, axes (2, 1): a batched matrix product (2, 2, 3) x (2, 3, 4) -> (2, 2, 4).
    let bd21 = [
        20.0, 23.0, 26.0, 29.0, 56.0, 68.0, 80.0, 92.0, 344.0, 365.0, 386.0, 407.0, 488.0, 518.0,
        548.0, 578.0,
    ];
    exact(
        &run2(&[2, 2, 3], iota(12), &[2, 3, 4], iota(24), |x, y| {
            x.batch_dot(y, (2, 1))
        }),
        &[2, 2, 4],
        &bd21,
    );
    exact(
        &run2(&[2, 2, 3], iota(12), &[2, 3, 4], iota(24), |x, y| {
            x.batch_dot(y, (-1, -2))
        }),
        &[2, 2, 4],
        &bd21,
    );
    // Axes (2, 2): x (2, 2, 3), y (2, 4, 3) -> x @ y^T.
    exact(
        &run2(&[2, 2, 3], iota(12), &[2, 4, 3], iota(24), |x, y| {
            x.batch_dot(y, (2, 2))
        }),
        &[2, 2, 4],
        &[
            5.0, 14.0, 23.0, 32.0, 14.0, 50.0, 86.0, 122.0, 275.0, 338.0, 401.0, 464.0, 392.0,
            482.0, 572.0, 662.0,
        ],
    );
    // Axes (1, 1): x (2, 3, 2), y (2, 3, 4) -> x^T @ y.
    exact(
        &run2(&[2, 3, 2], iota(12), &[2, 3, 4], iota(24), |x, y| {
            x.batch_dot(y, (1, 1))
        }),
        &[2, 2, 4],
        &[
            40.0, 46.0, 52.0, 58.0, 52.0, 61.0, 70.0, 79.0, 400.0, 424.0, 448.0, 472.0, 448.0,
            475.0, 502.0, 529.0,
        ],
    );
    // Rank 3 with rank 2: (2, 2, 3) . (2, 3) -> (2, 2), and (2, 3) . (2, 3, 4) -> (2, 4).
    let yv = vec![1.0, 0.0, -1.0, 2.0, 2.0, 2.0];
    exact(
        &run2(&[2, 2, 3], iota(12), &[2, 3], yv.clone(), |x, y| {
            x.batch_dot(y, (2, 1))
        }),
        &[2, 2],
        &[-2.0, -2.0, 42.0, 60.0],
    );
    exact(
        &run2(&[2, 3], yv, &[2, 3, 4], iota(24), |x, y| {
            x.batch_dot(y, (1, 1))
        }),
        &[2, 4],
        &[-8.0, -8.0, -8.0, -8.0, 96.0, 102.0, 108.0, 114.0],
    );
    let e = build_error(&[3], |x| x.batch_dot(x, (0, 0)));
    assert!(e.to_string().contains("batch"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Size-1 dims everywhere
// ---------------------------------------------------------------------------------------------

#[test]
fn size_one_dims_everywhere() {
    let s = [1, 1, 1];
    let one = || vec![-2.5f32];
    let go = |f: fn(&Tensor) -> Tensor| run1(&s, one(), f);
    exact(&go(|x| x.sum(Axes::All)), &[], &[-2.5]);
    exact(&go(|x| x.sum(-1)), &[1, 1], &[-2.5]);
    exact(&go(|x| x.mean_keepdims([0, 1, 2])), &[1, 1, 1], &[-2.5]);
    exact(&go(|x| x.max(1)), &[1, 1], &[-2.5]);
    exact(&go(|x| x.prod(Axes::All)), &[], &[-2.5]);
    exact(&go(|x| x.var(-1)), &[1, 1], &[0.0]);
    exact(&go(|x| x.std(Axes::All)), &[], &[0.0]);
    ints(&go(|x| x.argmax(-1)), &[1, 1], &[0]);
    ints(&go(|x| x.argmin_keepdims(0)), &[1, 1, 1], &[0]);
    exact(&go(|x| x.cumsum(1)), &s, &[-2.5]);
    exact(&go(|x| x.cumprod(0)), &s, &[-2.5]);
    exact(&go(|x| x.softmax(-1)), &s, &[1.0]);
    exact(&go(|x| x.log_softmax(-1)), &s, &[0.0]);
    exact(&go(|x| x.logsumexp(-1)), &[1, 1], &[-2.5]);
    exact(&go(|x| x.l2_normalize(-1)), &s, &[-1.0]);
    exact(&go(|x| x.transpose(&[2, 0, 1])), &s, &[-2.5]);
    exact(&go(|x| x.t()), &s, &[-2.5]);
    exact(&go(|x| x.squeeze(Axes::All)), &[1], &[-2.5]);
    exact(&go(|x| x.squeeze([1, 2])), &[1], &[-2.5]);
    exact(&go(|x| x.expand_dims(-1)), &[1, 1, 1, 1], &[-2.5]);
    exact(&go(|x| x.reshape(&[-1])), &[1], &[-2.5]);
    exact(&go(|x| x.slice(s![.., 0, -1])), &[1], &[-2.5]);
    exact(
        &go(|x| x.slice(s![.., SliceArg::step(-1), 0..1])),
        &s,
        &[-2.5],
    );
    exact(&go(|x| x.matmul(x)), &s, &[6.25]);
    exact(&go(|x| x.batch_dot(x, (2, 1))), &s, &[6.25]);
    exact(
        &go(|x| x.slice(s![.., 0]).batch_dot(&x.slice(s![.., 0]), (1, 1))),
        &[1, 1],
        &[6.25],
    );
    exact(
        &go(|x| Tensor::concatenate(&[x.clone(), x.clone()], 1)),
        &[1, 2, 1],
        &[-2.5, -2.5],
    );
    exact(
        &go(|x| Tensor::stack(std::slice::from_ref(x), 0)),
        &[1, 1, 1, 1],
        &[-2.5],
    );
    exact(
        &go(|x| x.slice(s![0, 0]).broadcast_to(&[2, 3])),
        &[2, 3],
        &[-2.5; 6],
    );
    // (1, 1, 1) broadcast against (3,) and (1, 3).
    exact(
        &go(|x| x + constant(&[3], vec![1.0, 2.0, 3.0])),
        &[1, 1, 3],
        &[-1.5, -0.5, 0.5],
    );
    exact(
        &go(|x| x * constant(&[1, 3], vec![1.0, 2.0, 3.0])),
        &[1, 1, 3],
        &[-2.5, -5.0, -7.5],
    );
    // A batch of 1 against a batch of 3 broadcasts (the dynamic batch dims meet at run time).
    exact(
        &run2(
            &[1, 2],
            vec![1.0, 2.0],
            &[3, 1],
            vec![10.0, 20.0, 30.0],
            |a, b| a + b,
        ),
        &[3, 2],
        &[11.0, 12.0, 21.0, 22.0, 31.0, 32.0],
    );
}

// ---------------------------------------------------------------------------------------------
// Edge cases: infinities, precision, dtype mixing, dynamic dims, build errors
// ---------------------------------------------------------------------------------------------

/// Asserts each element within a relative tolerance (for tiny values, where `close` is absolute).
#[track_caller]
fn relative(t: &HostTensor, shape: &[usize], want: &[f32], tol: f32) {
    assert_eq!(t.shape(), shape, "output shape");
    let got = t.as_f32().expect("float32 output");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * w.abs(),
            "element {i}: got {g:e}, want {w:e} (relative tolerance {tol})"
        );
    }
}

#[test]
fn softplus_is_accurate_for_large_negative_inputs() {
    // NumPy's logaddexp(0, x) = log1p(exp(x)): tiny but not zero.
    relative(
        &run1(&[1, 4], vec![-30.0, -20.0, -10.0, -5.0], |x| x.softplus()),
        &[1, 4],
        &[9.35762297e-14, 2.06115362e-9, 4.53988992e-5, 6.71534849e-3],
        1e-5,
    );
    // The infinities: softplus(-inf) = 0, softplus(inf) = inf; NaN stays NaN.
    close(
        &run1(&[1, 3], vec![-INF, INF, NAN], |x| x.softplus()),
        &[1, 3],
        &[0.0, INF, NAN],
        0.0,
    );
}

#[test]
fn logsumexp_of_infinite_rows() {
    // A row of -inf has logsumexp -inf (log of 0), a +inf gives +inf, as in NumPy and
    // TensorFlow; NaN stays NaN; an ordinary row next to them is unaffected.
    let y = run1(
        &[4, 2],
        vec![-INF, -INF, INF, 1.0, NAN, 0.0, 0.0, 0.0],
        |x| x.logsumexp(-1),
    );
    close(&y, &[4], &[-INF, INF, NAN, std::f32::consts::LN_2], 1e-6);
    // -inf entries among finite ones contribute nothing.
    approx(
        &run1(&[1, 3], vec![-INF, 0.0, 0.0], |x| x.logsumexp_keepdims(-1)),
        &[1, 1],
        &[std::f32::consts::LN_2],
    );
    // Over all axes of an all -inf tensor.
    close(
        &run1(&[2, 2], vec![-INF; 4], |x| x.logsumexp(Axes::All)),
        &[],
        &[-INF],
        0.0,
    );
}

#[test]
fn maximum_minimum_propagate_nan() {
    let s = [1, 3];
    close(
        &run2(&s, vec![NAN, 1.0, 2.0], &s, vec![0.0, NAN, 1.0], |a, b| {
            a.maximum(b)
        }),
        &s,
        &[NAN, NAN, 2.0],
        0.0,
    );
    close(
        &run2(&s, vec![NAN, 1.0, 2.0], &s, vec![0.0, NAN, 1.0], |a, b| {
            a.minimum(b)
        }),
        &s,
        &[NAN, NAN, 1.0],
        0.0,
    );
    close(
        &run1(&s, vec![NAN, -1.0, 2.0], |x| x.relu()),
        &s,
        &[NAN, 0.0, 2.0],
        0.0,
    );
}

#[test]
fn float_scalars_promote_integer_tensors_as_keras_does() {
    // Keras 3: int32 * 0.5, int32 + 1.5 and int32 / 2 are float32 (Python floats are weak
    // floats; an integer tensor meeting one becomes float32).
    exact(
        &runi(&[1, 3], vec![1, 2, 3], |x| x * 2.5),
        &[1, 3],
        &[2.5, 5.0, 7.5],
    );
    exact(
        &runi(&[1, 3], vec![1, 2, 3], |x| 0.5 + x),
        &[1, 3],
        &[1.5, 2.5, 3.5],
    );
    exact(
        &runi(&[1, 3], vec![-1, 1, 3], |x| x.clip(0.5, 2.0)),
        &[1, 3],
        &[0.5, 1.0, 2.0],
    );
    exact(
        &runi(&[1, 3], vec![-1, 1, 3], |x| {
            Tensor::where_(&x.greater(0), x, 0.5)
        }),
        &[1, 3],
        &[0.5, 1.0, 3.0],
    );
    bools(
        &runi(&[1, 3], vec![-1, 1, 3], |x| x.less(1.5)),
        &[1, 3],
        &[true, true, false],
    );
    // A whole-valued float is still a float: int32 * 2.0 is float32 in Keras.
    exact(
        &runi(&[1, 3], vec![1, 2, 3], |x| x * 2.0),
        &[1, 3],
        &[2.0, 4.0, 6.0],
    );
    // An int tensor meeting a float tensor is float32; bool meeting int32 is int32.
    let y = {
        let xa = Input::new(&[2]).dtype(DType::I32).tensor();
        let xb = Input::new(&[2]).tensor();
        let out = Lambda::multi(|xs| &xs[0] + &xs[1])
            .call(&[xa.clone(), xb.clone()])
            .unwrap();
        assert_eq!(out.dtype(), DType::F32);
        let m = Model::new(&[xa, xb], &[out]).unwrap();
        cpu_predict(
            &m,
            &[
                HostTensor::new(&[1, 2], vec![3i32, -4]).unwrap(),
                HostTensor::new(&[1, 2], vec![0.25f32, 0.5]).unwrap(),
            ],
        )
    };
    exact(&y.unwrap()[0], &[1, 2], &[3.25, -3.5]);
    ints(
        &runi(&[1, 3], vec![-1, 1, 3], |x| x.greater(0).add(x)),
        &[1, 3],
        &[-1, 2, 4],
    );
    // Float functions of integers are float32, as keras.ops gives them.
    approx(
        &runi(&[1, 3], vec![0, 1, 4], |x| x.sqrt() + x.exp()),
        &[1, 3],
        &[1.0, 1.0 + std::f32::consts::E, 2.0 + 4f32.exp()],
    );
    exact(
        &runi(&[1, 4], vec![1, 2, 3, 6], |x| x.mean(-1)),
        &[1],
        &[3.0],
    );
    // A negative scalar against uint32, and 0.5 against a bool tensor.
    let e = build_error_of(DType::U32, &[3], |x| x.maximum(-1));
    assert!(e.to_string().contains("cannot hold"), "{e}");
    let e = build_error_of(DType::Bool, &[3], |x| x.logical_and(0.5));
    assert!(e.to_string().contains("cannot hold"), "{e}");
    // Integer scalars keep the integer type.
    ints(
        &runi(&[1, 3], vec![1, 2, 3], |x| x * -3 + 1),
        &[1, 3],
        &[-2, -5, -8],
    );
    exact(
        &runi(&[1, 3], vec![1, 2, 3], |x| x.cast(DType::F32) * 2.5),
        &[1, 3],
        &[2.5, 5.0, 7.5],
    );
    bools(
        &run(&[1, 2], vec![true, false], |x| x.equal(1.0)),
        &[1, 2],
        &[true, false],
    );
}

#[test]
fn dynamic_sequence_axis() {
    // Input (B, T, 2) with T unknown when the graph is built: the last time step, means and
    // softmax over T, and reshapes with -1 work once T is known.
    let go = |data: Vec<f32>, t: usize, f: fn(&Tensor) -> Tensor| {
        let x = Input::with_dims(vec![Dim::Dynamic, Dim::Known(2)]).tensor();
        let y = Lambda::new(f).call(&x).unwrap();
        let m = Model::new(&[x], &[y]).unwrap();
        cpu_predict(&m, &[HostTensor::new(&[1, t, 2], data).unwrap()])
            .unwrap()
            .remove(0)
    };
    let d = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    exact(
        &go(d.clone(), 3, |x| x.slice(s![.., -1])),
        &[1, 2],
        &[5.0, 6.0],
    );
    exact(
        &go(d.clone(), 3, |x| x.slice(s![.., -2])),
        &[1, 2],
        &[3.0, 4.0],
    );
    exact(
        &go(d.clone(), 3, |x| x.slice(s![.., 1..])),
        &[1, 2, 2],
        &[3.0, 4.0, 5.0, 6.0],
    );
    exact(
        &go(d.clone(), 3, |x| x.slice(s![.., SliceArg::step(-1), 0])),
        &[1, 3],
        &[5.0, 3.0, 1.0],
    );
    exact(&go(d.clone(), 3, |x| x.mean(1)), &[1, 2], &[3.0, 4.0]);
    exact(
        &go(d.clone(), 3, |x| x.sum_keepdims(-2)),
        &[1, 1, 2],
        &[9.0, 12.0],
    );
    exact(&go(d.clone(), 3, |x| x.reshape(&[-1])), &[6], &d);
    exact(
        &go(d[..4].to_vec(), 2, |x| x.reshape(&[1, -1, 4])),
        &[1, 1, 4],
        &d[..4],
    );
    approx(
        &go(vec![0.0, 1.0, 0.0, 1.0], 2, |x| x.softmax(1)),
        &[1, 2, 2],
        &[0.5, 0.5, 0.5, 0.5],
    );
    exact(
        &go(d.clone(), 3, |x| x.cumsum(1)),
        &[1, 3, 2],
        &[1.0, 2.0, 4.0, 6.0, 9.0, 12.0],
    );
    exact(
        &go(d.clone(), 3, |x| x.matmul(&x.transpose(&[0, 2, 1]))),
        &[1, 3, 3],
        &[5.0, 11.0, 17.0, 11.0, 25.0, 39.0, 17.0, 39.0, 61.0],
    );
}

#[test]
fn flatten_batch_and_empty_axis_lists() {
    exact(
        &run1(&[2, 2, 3], iota(12), |x| x.flatten_batch()),
        &[2, 6],
        &iota(12),
    );
    // sum over no axes is the identity (NumPy's sum(axis=())).
    exact(
        &run1(&[2, 3], iota(6), |x| x.sum(Vec::<i32>::new())),
        &[2, 3],
        &iota(6),
    );
}

#[test]
fn malformed_ops_are_build_errors() {
    let msg = |e: Error| e.to_string();
    assert!(msg(build_error(&[2, 3], |x| x.transpose(&[0, 1, 1]))).contains("permutation"));
    assert!(msg(build_error(&[2, 3], |x| x.transpose(&[0, 1]))).contains("permutation"));
    assert!(msg(build_error(&[2, 3], |x| x.expand_dims(4))).contains("axis 4"));
    assert!(msg(build_error(&[2, 3], |x| x.sum(3))).contains("axis 3"));
    assert!(msg(build_error(&[2, 3], |x| x.argmax(-4))).contains("axis -4"));
    assert!(msg(build_error(&[2, 3], |x| x.cumsum(5))).contains("axis 5"));
    assert!(msg(build_error(&[2, 3], |x| x.softmax(3))).contains("axis 3"));
    assert!(msg(build_error(&[2, 3], |x| x.swapaxes(0, 3))).contains("axis 3"));
    assert!(msg(build_error(&[2, 3], |x| x.slice(s![.., .., .., 0]))).contains("rank"));
    assert!(
        msg(build_error(&[2, 3], |x| {
            x + constant(&[2], vec![1.0, 2.0])
        }))
        .contains("broadcast")
    );
    assert!(msg(build_error(&[3], |x| x.logical_not())).contains("bool"));
    assert!(msg(build_error(&[3], |x| x.logical_and(x))).contains("bool"));
    assert!(msg(build_error_of(DType::Bool, &[3], |x| x.sum(-1))).contains("numeric"));
    assert!(msg(build_error(&[3], |x| Tensor::where_(x, x, x))).contains("bool"));
    assert!(
        msg(build_error(&[3], |x| {
            x.matmul(&constant(&[], vec![1.0]))
        }))
        .contains("scalar")
    );
    // batch_dot of rank-2 operands with different contracted sizes must not broadcast.
    let e = build_error(&[3], |x| x.batch_dot(&x.slice(s![.., 0..1]), (1, 1)));
    assert!(msg(e).contains("differ"));
    let e = build_error(&[2, 3], |x| x.batch_dot(x, (2, 1)));
    assert!(msg(e).contains("differ"));
}

// ---------------------------------------------------------------------------------------------
// take, any, all
// ---------------------------------------------------------------------------------------------

#[test]
fn take_picks_slices_along_any_axis() {
    let msg = |e: Error| e.to_string();
    // A table of rows [10k, 10k + 1, 10k + 2] picked by int32 ids of shape (batch, 2).
    let table = constant(
        &[4, 3],
        (0..12).map(|k| (k / 3 * 10 + k % 3) as f32).collect(),
    );
    let t = table.clone();
    let out = runi(&[2, 2], vec![3, 0, 1, 1], move |ids| t.take(ids, 0));
    exact(
        &out,
        &[2, 2, 3],
        &[30., 31., 32., 0., 1., 2., 10., 11., 12., 10., 11., 12.],
    );
    // Along the last axis of a data input: columns 2 and 0 of each row.
    let cols = Tensor::constant(HostTensor::new(&[2], vec![2i32, 0]).unwrap());
    let out = run1(&[2, 3], vec![1., 2., 3., 4., 5., 6.], move |x| {
        x.take(&cols, -1)
    });
    exact(&out, &[2, 2], &[3., 1., 6., 4.]);
    // An id past the table is a run-time error naming the op, the id and the table's shape.
    let x = Input::new(&[2]).dtype(DType::I32).tensor();
    let y = Lambda::new(move |ids| table.take(&ids.add(1), 0))
        .call(&x)
        .unwrap();
    let m = Model::new(&[x], &[y]).unwrap();
    let e = cpu_predict(&m, &[HostTensor::new(&[1, 2], vec![0i32, 3]).unwrap()]).unwrap_err();
    let e = msg(e);
    assert!(
        e.contains("take") && e.contains("index 4") && e.contains("[4, 3]"),
        "{e}"
    );
    // Float indices are refused at build time.
    assert!(msg(build_error(&[2], |x| x.take(x, 0))).contains("int32"));
    assert!(msg(build_error(&[2], |x| x.take(&x.cast(DType::I32), 3))).contains("axis 3"));
}

#[test]
fn any_and_all_reduce_truth() {
    let data = vec![0., 0., 2., 0., 1., -1.];
    bools(
        &run1(&[2, 3], data.clone(), |x| x.any(-1)),
        &[2],
        &[true, true],
    );
    bools(
        &run1(&[2, 3], data.clone(), |x| x.all(-1)),
        &[2],
        &[false, false],
    );
    bools(
        &run1(&[2, 3], data, |x| x.all_keepdims(0)),
        &[1, 3],
        &[false, false, true],
    );
}

// ---------------------------------------------------------------------------------------------
// Keras 3 parity: floor division and modulo, float tests, numerically careful functions,
// inverse trigonometry, signed zeros in argmax, negative take indices, long sums. Expected
// values are Keras 3.15's (JAX backend) where it defines them, else the f64 definition.
// ---------------------------------------------------------------------------------------------

fn bits(t: &HostTensor) -> Vec<u32> {
    t.as_f32().unwrap().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn integer_floor_divide_and_mod_follow_python() {
    let s = [1, 6];
    let a = vec![-7, 7, -7, 7, 5, -5];
    let d = || Tensor::constant(HostTensor::new(&[6], vec![2i32, -2, -2, 2, 0, 0]).unwrap());
    // Python: -7 // 2 = -4, 7 // -2 = -4, -7 // -2 = 3; by 0 gives 0 (NumPy's answer).
    ints(
        &runi(&s, a.clone(), move |x| x.floor_divide(d())),
        &s,
        &[-4, -4, 3, 3, 0, 0],
    );
    ints(
        &runi(&s, a.clone(), move |x| x.floor_mod(d())),
        &s,
        &[1, -1, -1, 1, 0, 0],
    );
    // `%` is the same operator as Python's, with an integer scalar on either side.
    ints(&runi(&s, a.clone(), |x| x % 3), &s, &[2, 1, 2, 1, 2, 1]);
    ints(&runi(&s, a, |x| 20 % x), &s, &[-1, 6, -1, 6, 0, 0]);
}

#[test]
fn float_floor_divide_and_mod_follow_keras() {
    let s = [1, 6];
    let x = vec![1.0, -1.0, 5.5, -5.5, 5.5, -5.5];
    let d = || {
        Tensor::constant(HostTensor::new(&[6], vec![0.1f32, 0.1, -2.0, 2.0, -2.0, 2.0]).unwrap())
    };
    // 1 // 0.1 is 9 (the quotient of the exact remainder), and -1.0 // 0.1 is -10 in float32.
    exact(
        &run1(&s, x.clone(), move |x| x.floor_divide(d())),
        &s,
        &[9.0, -10.0, -3.0, -3.0, -3.0, -3.0],
    );
    let m = run1(&s, x, move |x| x.floor_mod(d()));
    let got = m.as_f32().unwrap();
    assert!((got[0] - 0.099_999_99).abs() < 1e-7, "{got:?}");
    assert_eq!(&got[2..], &[-0.5, 0.5, -0.5, 0.5]);
    // Division by zero, infinities and the sign of a zero remainder, as Keras gives them.
    let s = [1, 8];
    let x = vec![1.0, -1.0, 0.0, 2.0, -2.0, -4.0, 4.0, INF];
    let d = || {
        let v = vec![0.0f32, 0.0, 0.0, INF, INF, 2.0, -2.0, 2.0];
        Tensor::constant(HostTensor::new(&[8], v).unwrap())
    };
    close(
        &run1(&s, x.clone(), move |x| x.floor_divide(d())),
        &s,
        &[INF, -INF, NAN, 0.0, -1.0, -2.0, -2.0, NAN],
        0.0,
    );
    let m = run1(&s, x, move |x| x.floor_mod(d()));
    close(&m, &s, &[NAN, NAN, NAN, 2.0, INF, 0.0, 0.0, NAN], 0.0);
    // -4 % 2 is -0.0 in Keras (the remainder keeps the dividend's sign); 4 % -2 is +0.0.
    assert_eq!(bits(&m)[5], (-0.0f32).to_bits());
    assert_eq!(bits(&m)[6], 0.0f32.to_bits());
}

#[test]
fn nan_and_inf_tests_and_nan_to_num() {
    let s = [1, 5];
    let x = vec![NAN, INF, -INF, 1.5, 0.0];
    bools(
        &run1(&s, x.clone(), |x| x.isnan()),
        &s,
        &[true, false, false, false, false],
    );
    bools(
        &run1(&s, x.clone(), |x| x.isinf()),
        &s,
        &[false, true, true, false, false],
    );
    bools(
        &run1(&s, x.clone(), |x| x.isfinite()),
        &s,
        &[false, false, false, true, true],
    );
    // The common NaN-cleaning Lambda.
    exact(
        &run1(&s, x.clone(), |x| {
            Tensor::where_(&x.isnan(), 0.0, x).minimum(2.0)
        }),
        &s,
        &[0.0, 2.0, -INF, 1.5, 0.0],
    );
    // Keras's defaults: NaN to 0, infinities to the largest finite float32 of their sign.
    exact(
        &run1(&s, x.clone(), |x| x.nan_to_num(0.0, None, None)),
        &s,
        &[0.0, f32::MAX, f32::MIN, 1.5, 0.0],
    );
    exact(
        &run1(&s, x, |x| x.nan_to_num(-1.0, Some(7.0), Some(-7.0))),
        &s,
        &[-1.0, 7.0, -7.0, 1.5, 0.0],
    );
    // Integers are never NaN or infinite.
    bools(
        &runi(&[1, 2], vec![3, -3], |x| x.isnan().logical_or(x.isinf())),
        &[1, 2],
        &[false, false],
    );
    bools(
        &runi(&[1, 2], vec![3, -3], |x| x.isfinite()),
        &[1, 2],
        &[true, true],
    );
}

#[test]
fn expm1_log1p_logaddexp_hypot() {
    let s = [1, 4];
    let x = vec![1e-7f32, -1e-4, 0.5, -3.0];
    let want = |f: fn(f64) -> f64| -> Vec<f32> { x.iter().map(|&v| f(v as f64) as f32).collect() };
    close(
        &run1(&s, x.clone(), |x| x.expm1()),
        &s,
        &want(f64::exp_m1),
        2e-7,
    );
    close(
        &run1(&s, vec![1e-7f32, -1e-4, 0.5, 3.0], |x| x.log1p()),
        &s,
        &[1e-7f64, -1e-4, 0.5, 3.0]
            .iter()
            .map(|&v| f64::ln_1p(v as f32 as f64) as f32)
            .collect::<Vec<_>>(),
        2e-7,
    );
    // The relative precision near 0 is the point: exp(x) - 1 would give 1.19e-7 for 1e-7.
    let e = run1(&[1, 1], vec![1e-7], |x| x.expm1());
    assert!((e.as_f32().unwrap()[0] - 1e-7).abs() < 1e-13);
    let pair = |a: Vec<f32>, b: Vec<f32>, f: fn(&Tensor, &Tensor) -> Tensor| {
        let n = a.len();
        run2(&[1, n], a, &[1, n], b, f)
    };
    close(
        &pair(
            vec![-INF, INF, 1000.0, -1000.0, NAN],
            vec![-INF, INF, 1000.0, 0.0, 1.0],
            |a, b| a.logaddexp(b),
        ),
        &[1, 5],
        &[-INF, INF, 1000.0 + std::f32::consts::LN_2, 0.0, NAN],
        1e-7,
    );
    close(
        &pair(
            vec![3.0, 1e30, INF, 0.0, -5.0],
            vec![4.0, 1e30, NAN, 0.0, 12.0],
            |a, b| a.hypot(b),
        ),
        &[1, 5],
        &[5.0, 1.414_213_6e30, INF, 0.0, 13.0],
        1e-6,
    );
    // arctan2 with NumPy's signed-zero and infinity rules.
    let pi = std::f32::consts::PI;
    close(
        &pair(
            vec![0.0, -0.0, 0.0, 1.0, -1.0],
            vec![-0.0, -0.0, 0.0, -INF, 0.0],
            |a, b| a.arctan2(b),
        ),
        &[1, 5],
        &[pi, -pi, 0.0, pi, -pi / 2.0],
        1e-7,
    );
}

#[test]
fn inverse_trigonometric_and_hyperbolic_functions() {
    let s = [1, 5];
    let x = vec![-0.9f32, -0.3, 0.0, 0.4, 0.95];
    type F = fn(&Tensor) -> Tensor;
    type Reference = fn(f64) -> f64;
    let cases: [(F, Reference); 9] = [
        (|x| x.tan(), f64::tan),
        (|x| x.arcsin(), f64::asin),
        (|x| x.arccos(), f64::acos),
        (|x| x.arctan(), f64::atan),
        (|x| x.sinh(), f64::sinh),
        (|x| x.cosh(), f64::cosh),
        (|x| x.arcsinh(), f64::asinh),
        (|x| x.arctanh(), f64::atanh),
        (|x| (x + 2.0).arccosh(), |v| (v + 2.0).acosh()),
    ];
    for (f, g) in cases {
        let want: Vec<f32> = x.iter().map(|&v| g(v as f64) as f32).collect();
        close(&run1(&s, x.clone(), f), &s, &want, 1e-6);
    }
    close(
        &run1(&[1, 3], vec![8.0, 1000.0, 0.5], |x| x.log2() + x.log10()),
        &[1, 3],
        &[3.0 + 0.903_089_96, 9.965_784 + 3.0, -1.0 - 0.301_03],
        1e-6,
    );
    // Outside the domain: NaN, and the ends of arctanh's.
    close(
        &run1(&[1, 3], vec![2.0, 1.0, -1.0], |x| x.arcsin() + x.arctanh()),
        &[1, 3],
        &[NAN, INF, -INF],
        0.0,
    );
}

#[test]
fn exp_underflows_gradually() {
    // exp(-100) is 3.72e-44, a subnormal float32; log(exp(-95)) is -95, not -87.3.
    let e = run1(&[1, 3], vec![-100.0, -95.0, -104.0], |x| x.exp());
    let got = e.as_f32().unwrap();
    assert!(
        (got[0] as f64 - (-100f64).exp()).abs() <= 1.5e-45,
        "{got:?}"
    );
    assert!((got[1] as f64 - (-95f64).exp()).abs() <= 1.5e-45, "{got:?}");
    assert_eq!(got[2], 0.0);
    let l = run1(&[1, 1], vec![-95.0], |x| x.exp().log());
    assert!((l.as_f32().unwrap()[0] + 95.0).abs() < 1e-3, "{l:?}");
}

#[test]
fn argmax_ranks_negative_zero_below_zero() {
    let s = [2, 2];
    let x = vec![0.0, -0.0, -0.0, 0.0];
    ints(&run1(&s, x.clone(), |x| x.argmax(-1)), &[2], &[0, 1]);
    ints(&run1(&s, x, |x| x.argmin(-1)), &[2], &[1, 0]);
    // NaN wins both, as in Keras.
    let s = [1, 3];
    ints(&run1(&s, vec![1.0, NAN, 3.0], |x| x.argmax(-1)), &[1], &[1]);
    ints(
        &run1(&s, vec![1.0, NAN, -3.0], |x| x.argmin(-1)),
        &[1],
        &[1],
    );
}

#[test]
fn take_counts_negative_indices_from_the_end() {
    let ids = || Tensor::constant(HostTensor::new(&[3], vec![-1i32, -3, 1]).unwrap());
    exact(
        &run1(&[1, 3], vec![10.0, 20.0, 30.0], move |x| x.take(&ids(), -1)),
        &[1, 3],
        &[30.0, 10.0, 20.0],
    );
    // -4 is outside a 3-element axis: an error naming it, never a read out of bounds.
    let ids = Tensor::constant(HostTensor::new(&[1], vec![-4i32]).unwrap());
    let e = try_run(&[1, 3], vec![10.0f32, 20.0, 30.0], move |x| {
        x.take(&ids, -1)
    })
    .unwrap_err();
    assert!(e.to_string().contains("index -4"), "{e}");
}

#[test]
fn long_sums_do_not_stall() {
    // 2^22 copies of 0.1f: adding them one by one in 8 lanes drifts by about 1e-3; in blocks
    // added pairwise, the sum stays within a few float32 ulps of the exact total.
    let n = 1 << 22;
    let v = 0.1f32;
    let exact_total = v as f64 * n as f64;
    let s = run1(&[1, n], vec![v; n], |x| x.sum(-1));
    let got = s.as_f32().unwrap()[0] as f64;
    assert!(
        ((got - exact_total) / exact_total).abs() < 1e-6,
        "{got} vs {exact_total}"
    );
    // The same over a middle axis (2^21 rows of two columns), and as a mean.
    let rows = 1 << 21;
    let m = run1(&[1, rows, 2], vec![v; rows * 2], |x| x.mean(1));
    for &g in m.as_f32().unwrap() {
        assert!(((g as f64 - v as f64) / v as f64).abs() < 1e-6, "{g}");
    }
}

#[test]
fn bool_arithmetic_is_logical_and_int_powers_are_exact() {
    let s = [1, 4];
    let a = vec![true, true, false, false];
    let b = || Tensor::constant(HostTensor::new(&[4], vec![true, false, true, false]).unwrap());
    bools(
        &run(&s, a.clone(), move |x| x.add(b())),
        &s,
        &[true, true, true, false],
    );
    bools(
        &run(&s, a, move |x| x.multiply(b())),
        &s,
        &[true, false, false, false],
    );
    ints(
        &runi(&s, vec![3, -2, 0, 46341], |x| x.pow(2)),
        &s,
        &[9, 4, 0, 46341i32.wrapping_mul(46341)],
    );
    ints(
        &runi(&s, vec![3, -2, 0, 7], |x| x.pow(0)),
        &s,
        &[1, 1, 1, 1],
    );
    ints(
        &runi(&s, vec![3, -2, 0, 7], |x| x.pow(5)),
        &s,
        &[243, -32, 0, 16807],
    );
    let e = build_error_of(DType::I32, &[2], |x| x.pow(-1));
    assert!(e.to_string().contains("power"), "{e}");
    // A float exponent makes the result float32, as in Keras.
    exact(
        &runi(&[1, 2], vec![4, 9], |x| x.pow(0.5)),
        &[1, 2],
        &[2.0, 3.0],
    );
}

#[test]
fn lookups_read_in_place_by_fused_regions() {
    // The table rows picked by input ids feed an elementwise chain (read block by block) and a
    // softmax (read row by row) without being copied out first; negative ids count from the
    // end.
    let table = || {
        let t: Vec<f32> = (0..12).map(|i| i as f32 * 0.25).collect();
        Tensor::constant(HostTensor::new(&[4, 3], t).unwrap())
    };
    let ids = vec![0, 3, -1, 1, -4, 2];
    let row = |id: i32| {
        let r = id.rem_euclid(4) as usize;
        (0..3).map(move |c| (r * 3 + c) as f32 * 0.25)
    };
    let want: Vec<f32> = ids
        .iter()
        .flat_map(|&i| row(i).map(|v| v * 2.0 + 1.0))
        .collect();
    exact(
        &runi(&[2, 3], ids.clone(), move |x| {
            table().take(x, 0) * 2.0 + 1.0
        }),
        &[2, 3, 3],
        &want,
    );
    let want: Vec<f32> = ids
        .iter()
        .flat_map(|&i| {
            let v: Vec<f64> = row(i).map(|v| v as f64).collect();
            let m = v.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = v.iter().map(|x| (x - m).exp()).sum();
            v.into_iter().map(move |x| ((x - m).exp() / z) as f32)
        })
        .collect();
    approx(
        &runi(&[2, 3], ids, move |x| table().take(x, 0).softmax(-1)),
        &[2, 3, 3],
        &want,
    );
}

#[test]
fn a_product_with_its_epilogue_matches_the_definition() {
    // (131, 70) @ (70, 33) + bias, relu: the region computes the product slab by slab and
    // runs its epilogue on each slab (131 rows: slabs that do not divide it evenly).
    let (m, k, n) = (131usize, 70usize, 33usize);
    let a: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7919) % 201) as f32 / 100.0 - 1.0)
        .collect();
    let w: Vec<f32> = (0..k * n)
        .map(|i| ((i * 104729) % 199) as f32 / 100.0 - 0.99)
        .collect();
    let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.01 - 0.15).collect();
    let mut want = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let dot: f64 = (0..k)
                .map(|p| a[i * k + p] as f64 * w[p * n + j] as f64)
                .sum();
            want[i * n + j] = (dot + bias[j] as f64).max(0.0) as f32;
        }
    }
    let (w2, b2) = (w.clone(), bias.clone());
    let got = run1(&[m, k], a, move |x| {
        let w = Tensor::constant(HostTensor::new(&[k, n], w2.clone()).unwrap());
        let b = Tensor::constant(HostTensor::new(&[n], b2.clone()).unwrap());
        (x.matmul(&w) + b).relu()
    });
    close(&got, &[m, n], &want, 1e-5);
}

#[test]
fn large_transposes_match_the_definition_run_after_run() -> Result<()> {
    // (4, 64, 32, 40) with its middle axes swapped, as attention splits heads: 327,680
    // elements, enough for the CPU to split the work over threads; three runs of one session.
    let (a, b, c, d) = (4usize, 64usize, 32usize, 40usize);
    let x = Input::new(&[b, c, d]).tensor();
    let y = Lambda::new(|t: &Tensor| t.transpose(&[0, 2, 1, 3]) * 2.0).call(&x)?;
    let z = Lambda::new(|t: &Tensor| t.transpose(&[0, 2, 1, 3])).call(&x)?;
    let model = Model::new(&[x], &[y, z])?;
    let session = Session::new(model.program().clone(), BackendKind::Cpu)?;
    for run in 0..3 {
        let data: Vec<f32> = (0..a * b * c * d).map(|i| (i + run) as f32).collect();
        let out = session.run(&[HostTensor::new(&[a, b, c, d], data.clone())?])?;
        let mut want = Vec::with_capacity(data.len());
        for i in 0..a {
            for k in 0..c {
                for j in 0..b {
                    let at = ((i * b + j) * c + k) * d;
                    want.extend_from_slice(&data[at..at + d]);
                }
            }
        }
        assert_eq!(out[1].shape(), &[a, c, b, d]);
        assert_eq!(out[1].as_f32()?, &want[..], "run {run}");
        let doubled: Vec<f32> = want.iter().map(|v| v * 2.0).collect();
        assert_eq!(out[0].as_f32()?, &doubled[..], "run {run}");
    }
    Ok(())
}

#[test]
fn a_batched_product_with_its_softmax_matches_the_definition() {
    // Attention's scores: (2, 3, 70, 9) @ (2, 3, 9, 70) scaled, then a softmax over each row.
    // The region computes each batch's product slab by slab (70 rows per batch, 420 in all)
    // and runs the scale and the softmax on each slab.
    let (b, h, t, d) = (2usize, 3usize, 70usize, 9usize);
    let q: Vec<f32> = (0..b * h * t * d)
        .map(|i| ((i * 7919) % 201) as f32 / 50.0 - 2.0)
        .collect();
    let k: Vec<f32> = (0..b * h * d * t)
        .map(|i| ((i * 104729) % 199) as f32 / 50.0 - 1.99)
        .collect();
    let mut want = vec![0f32; b * h * t * t];
    for bh in 0..b * h {
        for i in 0..t {
            let s: Vec<f64> = (0..t)
                .map(|j| {
                    (0..d)
                        .map(|p| q[(bh * t + i) * d + p] as f64 * k[(bh * d + p) * t + j] as f64)
                        .sum::<f64>()
                        * 0.5
                })
                .collect();
            let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = s.iter().map(|v| (v - max).exp()).sum();
            for j in 0..t {
                want[(bh * t + i) * t + j] = ((s[j] - max).exp() / total) as f32;
            }
        }
    }
    let got = run2(&[b, h, t, d], q, &[b, h, d, t], k, |q, k| {
        (q.matmul(k) * 0.5).softmax(-1)
    });
    close(&got, &[b, h, t, t], &want, 1e-5);
}

#[test]
fn reductions_over_the_axis_before_the_last_of_a_fused_region() {
    // (2, 300, 5): the region tanh(x * 0.5 + 0.25) feeds a sum, mean or max over its 300 rows
    // per batch element without being written out (300 rows: more than one block of 128).
    let (b, t, d) = (2usize, 300usize, 5usize);
    let x: Vec<f32> = (0..b * t * d)
        .map(|i| ((i * 37) % 101) as f32 / 25.0 - 2.0)
        .collect();
    let f = |v: f32| ((v as f64) * 0.5 + 0.25).tanh();
    let reduce = |combine: fn(&[f64]) -> f64| -> Vec<f32> {
        let mut out = Vec::new();
        for i in 0..b {
            for k in 0..d {
                let col: Vec<f64> = (0..t).map(|j| f(x[(i * t + j) * d + k])).collect();
                out.push(combine(&col) as f32);
            }
        }
        out
    };
    let sum = reduce(|c| c.iter().sum());
    let mean = reduce(|c| c.iter().sum::<f64>() / c.len() as f64);
    let max = reduce(|c| c.iter().cloned().fold(f64::MIN, f64::max));
    close(
        &run1(&[b, t, d], x.clone(), |x| (x * 0.5 + 0.25).tanh().sum(1)),
        &[b, d],
        &sum,
        1e-5,
    );
    close(
        &run1(&[b, t, d], x.clone(), |x| {
            (x * 0.5 + 0.25).tanh().mean_keepdims(1)
        }),
        &[b, 1, d],
        &mean,
        1e-5,
    );
    close(
        &run1(&[b, t, d], x, |x| (x * 0.5 + 0.25).tanh().max(1)),
        &[b, d],
        &max,
        1e-6,
    );
}

#[test]
fn slices_take_usize_and_isize_variables() {
    // x = [[0, 1, 2], [3, 4, 5]]: x[1, :n] with n: usize, x[:, k:] with k: isize.
    let n: usize = 2;
    let k: isize = -1;
    let row: usize = 1;
    let out = run1(&[2, 3], iota(6), move |x| x.slice(s![row, ..n]));
    close(&out, &[2], &[3.0, 4.0], 0.0);
    let out = run1(&[2, 3], iota(6), move |x| x.slice(s![.., k..]));
    close(&out, &[2, 1], &[2.0, 5.0], 0.0);
    let (a, b) = (0usize, 2usize);
    let out = run1(&[2, 3], iota(6), move |x| x.slice(s![a..b, 1u32..]));
    close(&out, &[2, 2], &[1.0, 2.0, 4.0, 5.0], 0.0);
}

#[test]
fn bitwise_ops_follow_numpy() {
    // int32: 1 << [0, 1, 31, 32, -1] = [1, 2, -2**31, 0, 0]; -8 >> [1, 3, 40] = [-4, -1, -1].
    let out = runi(&[1, 5], vec![0, 1, 31, 32, -1], |s| {
        Tensor::scalar_of(1.0, DType::I32).left_shift(s)
    });
    assert_eq!(out.to_f32_vec(), vec![1.0, 2.0, -2147483648.0, 0.0, 0.0]);
    let out = runi(&[1, 3], vec![1, 3, 40], |s| {
        Tensor::scalar_of(-8.0, DType::I32).right_shift(s)
    });
    assert_eq!(out.to_f32_vec(), vec![-4.0, -1.0, -1.0]);
    // 12 & 10 = 8, 12 | 10 = 14, 12 ^ 10 = 6.
    let out = runi(&[1, 1], vec![12], |x| {
        Tensor::stack(&[x.bitwise_and(10), x.bitwise_or(10), x.bitwise_xor(10)], 1)
    });
    assert_eq!(out.to_f32_vec(), vec![8.0, 14.0, 6.0]);
    // Floats are refused by name.
    let e = try_run(&[1, 2], vec![1.0f32, 2.0], |x| x.bitwise_xor(x)).unwrap_err();
    assert!(e.to_string().contains("bitwise_xor"), "{e}");
}

#[test]
fn random_tensors_have_their_distributions_and_are_fixed_by_the_seed() {
    // 4 x 5000 values each: the sample mean within 5 standard errors of the true mean, the
    // variance within 5%, and a 10-bin histogram within 5 sigma of its expected counts.
    let n = 20_000f64;
    let x = Input::new(&[5000]).tensor();
    let outs = vec![
        x.random_uniform_like(0.0, 1.0, 7),
        x.random_normal_like(0.0, 1.0, 7),
        x.random_normal_like(2.0, 3.0, 8),
        x.random_uniform_like(0.0, 1.0, 7),
        x.random_uniform_like(0.0, 1.0, 8),
    ];
    let model = Model::new(&[x], &outs).unwrap();
    let zeros = HostTensor::new(&[4, 5000], vec![0f32; 20_000]).unwrap();
    let got = common::run_both(&model, &[zeros]);
    let stats = |v: &[f32]| {
        let m = v.iter().map(|&a| a as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&a| (a as f64 - m).powi(2)).sum::<f64>() / v.len() as f64;
        (m, var)
    };
    let u = got[0].to_f32_vec();
    assert!(u.iter().all(|&a| (0.0..1.0).contains(&a)));
    let (m, var) = stats(&u);
    assert!(
        (m - 0.5).abs() < 5.0 * (1.0 / 12f64).sqrt() / n.sqrt(),
        "{m}"
    );
    assert!((var - 1.0 / 12.0).abs() < 0.05 / 12.0, "{var}");
    let mut bins = [0usize; 10];
    for &a in &u {
        bins[(a * 10.0) as usize] += 1;
    }
    let sigma = (n * 0.1 * 0.9).sqrt();
    assert!(
        bins.iter()
            .all(|&b| (b as f64 - n * 0.1).abs() < 5.0 * sigma),
        "{bins:?}"
    );
    let z = got[1].to_f32_vec();
    let (m, var) = stats(&z);
    assert!(m.abs() < 5.0 / n.sqrt(), "{m}");
    assert!((var - 1.0).abs() < 0.05, "{var}");
    // Normal quantiles: P(|z| < 1) = 0.6827, P(|z| < 2) = 0.9545.
    let within = |k: f32| z.iter().filter(|a| a.abs() < k).count() as f64 / n;
    assert!((within(1.0) - 0.6827).abs() < 0.02 && (within(2.0) - 0.9545).abs() < 0.01);
    let (m, var) = stats(&got[2].to_f32_vec());
    assert!(
        (m - 2.0).abs() < 5.0 * 3.0 / n.sqrt() && (var - 9.0).abs() < 0.45,
        "{m} {var}"
    );
    // The same seed gives the same values; another seed others; neighbours are uncorrelated.
    assert_eq!(got[0].to_f32_vec(), got[3].to_f32_vec());
    assert_ne!(got[0].to_f32_vec(), got[4].to_f32_vec());
    let c = u
        .windows(2)
        .map(|w| (w[0] as f64 - 0.5) * (w[1] as f64 - 0.5))
        .sum::<f64>()
        / (n - 1.0)
        * 12.0;
    assert!(c.abs() < 5.0 / n.sqrt(), "lag-1 correlation {c}");
    // A smaller batch gives the first rows of the larger one.
    let x = Input::new(&[5000]).tensor();
    let y = x.random_uniform_like(0.0, 1.0, 7);
    let model = Model::new(&[x], &[y]).unwrap();
    let small = common::run_both(
        &model,
        &[HostTensor::new(&[1, 5000], vec![0f32; 5000]).unwrap()],
    );
    assert_eq!(small[0].to_f32_vec(), u[..5000].to_vec());
}

#[test]
fn new_ops_agree_on_both_backends_for_special_values_and_long_axes() {
    // Rows of 70,000 (past the 65,535 a GPU loop may take in one invocation): one of plain
    // values, one with NaN, infinities and signed zeros among them.
    let n = 70_000;
    let special = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0];
    let mut data: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) * 0.25).collect();
    data.extend((0..n).map(|i| match i % 11 {
        k if k < 5 => special[k],
        k => k as f32 - 8.0,
    }));
    let ints: Vec<i32> = (0..2 * n as i32).map(|i| (i % 203) - 101).collect();
    let x = Input::new(&[n]).tensor();
    let k = Input::new(&[n]).dtype(DType::I32).tensor();
    let shift = k.abs().floor_mod(40);
    let outs = vec![
        x.normalize(-1, 1e-7),
        x.random_uniform_like(-1.0, 1.0, 5),
        x.random_normal_like(0.0, 2.0, 5),
        k.bitwise_xor(k.multiply(3)),
        k.bitwise_and(0x55),
        k.left_shift(&shift),
        k.right_shift(&shift),
    ];
    let model = Model::new(&[x, k], &outs).unwrap();
    common::run_both(
        &model,
        &[
            HostTensor::new(&[2, n], data.clone()).unwrap(),
            HostTensor::new(&[2, n], ints).unwrap(),
        ],
    );
    // Resizing and CenterCrop over a 70,000-wide image.
    let img = Input::new(&[2, n, 1]).tensor();
    let down = Resizing::new(3, n / 2).call(&img).unwrap();
    let near = Resizing::new(2, n / 3)
        .interpolation(ResizeMethod::Nearest)
        .call(&img)
        .unwrap();
    let crop = CenterCrop::new(1, n - 3).call(&img).unwrap();
    let model = Model::new(&[img], &[down, near, crop]).unwrap();
    common::run_both(&model, &[HostTensor::new(&[1, 2, n, 1], data).unwrap()]);
}

/// Outputs larger than the caches (32 MiB and more) are written with streaming stores, row by
/// row (a softmax) and block by block (an elementwise chain), at every offset of a row; the
/// values are those of the definitions.
#[test]
fn outputs_past_the_caches_are_streamed_with_the_same_values() -> Result<()> {
    let (rows, len) = (32_769, 256); // 32 MiB and one row more: a short last task
    let data: Vec<f32> = (0..rows * len)
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 97.0)
        .collect();
    let softmax = try_run(&[rows, len], data.clone(), |x| x.softmax(-1))?;
    let got = softmax.as_f32()?;
    for r in (0..rows).step_by(4093).chain([rows - 1]) {
        let row = &data[r * len..(r + 1) * len];
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        for (c, &v) in row.iter().enumerate() {
            let want = (v as f64 - max).exp() / sum;
            let g = got[r * len + c] as f64;
            assert!(
                (g - want).abs() <= 1e-6 * want.max(1e-30) + 1e-12,
                "row {r} col {c}: {g} vs {want}"
            );
        }
    }
    let affine = try_run(&[rows, len], data.clone(), |x| x * 2.0 + 1.0)?;
    for (i, (&g, &v)) in affine.as_f32()?.iter().zip(&data).enumerate() {
        assert_eq!(g, v * 2.0 + 1.0, "element {i}");
    }
    Ok(())
}
