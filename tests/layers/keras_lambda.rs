//! Keras's Lambda behaviours, the documentation examples, and concurrent predict.

use lamina::prelude::*;
use std::sync::Arc;

fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "lengths differ: {got:?} vs {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "element {i}: got {g}, want {w} (all: {got:?})"
        );
    }
}

fn antirectifier(x: &Tensor) -> Tensor {
    let x = x - x.mean_keepdims(1);
    let x = x.l2_normalize(1);
    Tensor::concatenate(&[x.relu(), (-&x).relu()], 1)
}

#[test]
fn square_lambda_in_sequential() -> Result<()> {
    // Keras test_correctness: Lambda(lambda x: x**2) on 2*ones((2,3)) gives 4*ones.
    let mut m = Sequential::new();
    m.add(Input::new(&[3]))?;
    m.add(Lambda::new(|x| x.pow(2.0)))?;
    let y = m.predict(&[HostTensor::full(&[2, 3], 2.0)?])?;
    assert_eq!(y[0].shape(), &[2, 3]);
    assert_eq!(y[0].as_f32()?, &[4.0; 6]);
    Ok(())
}

#[test]
fn sequential_without_input_builds_on_first_predict() -> Result<()> {
    let mut m = Sequential::new();
    m.add(Lambda::new(|x| x * 3.0))?;
    assert!(
        m.summary_string().is_err(),
        "an unbuilt model has no summary"
    );
    let y = m.predict(&[HostTensor::new(&[1, 2], vec![1.0f32, -1.0])?])?;
    assert_eq!(y[0].as_f32()?, &[3.0, -3.0]);
    assert!(m.summary_string()?.contains("(None, 2)"));
    Ok(())
}

#[test]
fn antirectifier_acceptance_rows() -> Result<()> {
    let mut m = Sequential::new();
    m.add(Input::new(&[4]))?;
    m.add(Lambda::new(antirectifier))?;
    let rows = HostTensor::new(
        &[4, 4],
        vec![
            1.0f32, 2.0, 3.0, 4.0, // centred [-1.5,-.5,.5,1.5], norm sqrt(5)
            5.0, 5.0, 5.0, 5.0, // constant: sum of squares 0 is clamped to 1e-12
            3e-7, -1e-7, -1e-7, -1e-7, // tells the epsilon conventions apart
            0.5, -1.0, 2.0, 0.25,
        ],
    )?;
    let y = m.predict(&[rows])?;
    assert_eq!(y[0].shape(), &[4, 8]);
    let d = y[0].as_f32()?;
    assert_close(
        &d[0..8],
        &[
            0.0, 0.0, 0.2236068, 0.6708204, 0.6708204, 0.2236068, 0.0, 0.0,
        ],
        1e-6,
    );
    assert!(
        d[8..16].iter().all(|v| *v == 0.0 && !v.is_nan()),
        "{:?}",
        &d[8..16]
    );
    assert_close(&d[16..24], &[0.3, 0.0, 0.0, 0.0, 0.0, 0.1, 0.1, 0.1], 1e-5);
    assert_close(
        &d[24..32],
        &[
            0.0293105, 0.0, 0.732763, 0.0, 0.0, 0.6741419, 0.0, 0.0879316,
        ],
        1e-5,
    );
    Ok(())
}

#[test]
fn tuple_output_shape_prepends_the_batch() -> Result<()> {
    // Keras test_lambda_basics: stacker with output_shape=(6,) on (None, 3) gives (None, 6).
    let x = Input::new(&[3]).tensor();
    let y = Lambda::new(|x| Tensor::concatenate(&[x.clone(), x.clone()], 1))
        .output_shape(&[6])
        .call(&x)?;
    assert_eq!(y.shape().to_string(), "(None, 6)");
    let m = Model::new(&[x], &[y])?;
    let out = m.predict(&[HostTensor::new(
        &[2, 3],
        vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0],
    )?])?;
    assert_eq!(out[0].shape(), &[2, 6]);
    assert_eq!(
        out[0].as_f32()?,
        &[1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 4.0, 5.0, 6.0]
    );
    Ok(())
}

#[test]
fn function_output_shape_gets_and_returns_the_full_shape() -> Result<()> {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let x = Input::new(&[3]).tensor();
    let y = Lambda::new(|x| Tensor::concatenate(&[x.clone(), x.clone()], 1))
        .output_shape_fn(move |shapes| {
            seen2.lock().unwrap().push(shapes[0].to_string());
            let s = &shapes[0];
            let last = s.dims()[1]
                .known()
                .map(|n| Dim::Known(n * 2))
                .unwrap_or(Dim::Dynamic);
            Shape::new([s.dims()[0], last])
        })
        .call(&x)?;
    assert_eq!(y.shape().to_string(), "(None, 6)");
    assert_eq!(seen.lock().unwrap().as_slice(), &["(None, 3)".to_string()]);
    Ok(())
}

#[test]
fn declared_output_shape_is_checked() {
    // Keras #19324: Keras trusts a wrong output_shape; Lamina refuses it.
    let x = Input::new(&[2]).tensor();
    let err = Lambda::new(|x| x.pow(2.0))
        .name("wrong_shape")
        .output_shape(&[6])
        .call(&x)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err.root(), Error::OutputShapeMismatch { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("wrong_shape") && msg.contains("(None, 6)") && msg.contains("(None, 2)"),
        "{msg}"
    );
}

#[test]
fn arguments_are_runtime_values() -> Result<()> {
    // tf-keras test_lambda: x*a + b with arguments {a: 0.6, b: 0.4} on input (3, 2).
    let layer = Lambda::with_scope(|xs, s| &xs[0] * s.argument("a") + s.argument("b"))
        .argument("a", 0.6)
        .argument("b", 0.4);
    let mut m = Sequential::new();
    m.add(Input::new(&[2]))?;
    m.add(layer.clone())?;
    let x = HostTensor::new(&[3, 2], vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0])?;
    let y = m.predict(std::slice::from_ref(&x))?;
    assert_close(y[0].as_f32()?, &[0.4, 1.0, 1.6, 2.2, 2.8, 3.4], 1e-6);
    // Changing an argument changes the next run's result.
    layer.set_argument("b", -1.0)?;
    let y = m.predict(&[x])?;
    assert_close(y[0].as_f32()?, &[-1.0, -0.4, 0.2, 0.8, 1.4, 2.0], 1e-6);
    assert_close(layer.argument_value("a")?.as_f32()?, &[0.6], 0.0);
    Ok(())
}

fn linear_transform() -> Lambda {
    Lambda::with_scope(|xs, scope| {
        let multiplier = scope.variable("multiplier", &[], 1.0);
        let bias = scope.variable("bias", &[], 0.0);
        &xs[0] * multiplier + bias
    })
}

#[test]
fn variables_are_created_once_and_shared_by_both_uses() -> Result<()> {
    let linear = linear_transform();
    let dense = Dense::new(3).activation(Activation::Relu).use_bias(false);
    let mut m = Sequential::new();
    m.add(Input::new(&[2]))?;
    m.add(linear.clone())?;
    m.add(dense.clone())?;
    m.add(linear.clone())?;
    // Two variables, created once although the layer was called twice.
    assert_eq!(linear.variable("multiplier")?.as_f32()?, &[1.0]);
    assert_eq!(linear.variable("bias")?.as_f32()?, &[0.0]);
    let model = m.model()?;
    let names: Vec<String> = model.weights().iter().map(|v| v.path()).collect();
    assert_eq!(
        names.iter().filter(|n| n.ends_with("/multiplier")).count(),
        1,
        "{names:?}"
    );
    assert_eq!(model.count_params(), 2 + 6);
    dense.set_kernel(HostTensor::new(
        &[2, 3],
        vec![1.0f32, 0.0, -1.0, 0.0, 1.0, 1.0],
    )?)?;
    linear.set_variable("multiplier", HostTensor::scalar(2.0))?;
    linear.set_variable("bias", HostTensor::scalar(1.0))?;
    // x = [1, 2]: first use 2x+1 = [3, 5]; dense: [3, 5, 2] -> relu [3, 5, 2];
    // second use of the same variables: [7, 11, 5].
    let y = m.predict(&[HostTensor::new(&[1, 2], vec![1.0f32, 2.0])?])?;
    assert_eq!(y[0].as_f32()?, &[7.0, 11.0, 5.0]);
    // Also readable and settable through the model by path.
    let path = format!("{}/bias", Layer::name(&linear));
    model.set_weight(&path, HostTensor::scalar(0.0))?;
    assert_eq!(model.get_weight(&path)?.as_f32()?, &[0.0]);
    Ok(())
}

#[test]
fn two_lambdas_from_one_function_do_not_share() -> Result<()> {
    let a = linear_transform();
    let b = linear_transform();
    let x = Input::new(&[1]).tensor();
    let ya = a.call(&x)?;
    let yb = b.call(&x)?;
    a.set_variable("multiplier", HostTensor::scalar(5.0))?;
    assert_eq!(b.variable("multiplier")?.as_f32()?, &[1.0]);
    let m = Model::new(&[x], &[ya, yb])?;
    let out = m.predict(&[HostTensor::new(&[1, 1], vec![2.0f32])?])?;
    assert_eq!(out[0].as_f32()?, &[10.0]);
    assert_eq!(out[1].as_f32()?, &[2.0]);
    Ok(())
}

#[test]
fn functional_model_with_two_inputs_branches_and_reuse() -> Result<()> {
    let a = Input::new(&[2]).name("left").tensor();
    let b = Input::new(&[2]).name("right").tensor();
    let shared = Dense::new(2).use_bias(false).name("shared");
    let ha = shared.call(&a)?;
    let hb = shared.call(&b)?;
    // A Lambda over a list: |xs[0] - xs[1]| and a merge of branches.
    let diff = Lambda::multi(|xs| (&xs[0] - &xs[1]).abs()).call(&[ha.clone(), hb.clone()])?;
    let merged = Lambda::multi(|xs| Tensor::concatenate(xs, 1)).call(&[diff, ha])?;
    let m = Model::new(&[a, b], &[merged])?;
    shared.set_kernel(HostTensor::new(&[2, 2], vec![1.0f32, 2.0, 3.0, 4.0])?)?;
    let xa = HostTensor::new(&[1, 2], vec![1.0f32, 1.0])?; // @K = [4, 6]
    let xb = HostTensor::new(&[1, 2], vec![2.0f32, 0.0])?; // @K = [2, 4]
    let y = m.predict(&[xa, xb])?;
    assert_eq!(y[0].shape(), &[1, 4]);
    assert_eq!(y[0].as_f32()?, &[2.0, 2.0, 4.0, 6.0]);
    // One shared layer with one set of weights; the summary shows both calls.
    assert_eq!(m.count_params(), 4);
    let summary = m.summary_string()?;
    assert_eq!(summary.matches("shared (Dense)").count(), 2, "{summary}");
    assert!(summary.contains("left (InputLayer)"), "{summary}");
    assert!(summary.contains("shared[1][0]"), "{summary}");
    Ok(())
}

#[test]
fn summary_matches_keras_layout() -> Result<()> {
    let mut m = Sequential::named("mlp");
    m.add(Input::new(&[16]))?;
    m.add(Dense::new(64).activation(Activation::Relu).name("hidden"))?;
    m.add(Dense::new(10).name("out"))?;
    let s = m.summary_string()?;
    let expected_rows = [
        "Model: \"mlp\"",
        "┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃",
        "│ hidden (Dense)                  │ (None, 64)             │         1,088 │",
        "│ out (Dense)                     │ (None, 10)             │           650 │",
        " Total params: 1,738 (6.79 KB)",
        " Trainable params: 1,738 (6.79 KB)",
        " Non-trainable params: 0 (0.00 B)",
    ];
    for row in expected_rows {
        assert!(s.lines().any(|l| l == row), "missing {row:?} in\n{s}");
    }
    Ok(())
}

#[test]
fn dense_weights_read_and_set() -> Result<()> {
    let d = Dense::new(2).activation(Activation::Relu);
    let x = Input::new(&[3]).tensor();
    let y = d.call(&x)?;
    assert_eq!(d.kernel()?.shape(), &[3, 2]);
    assert_eq!(d.bias()?.as_f32()?, &[0.0, 0.0]);
    // Glorot uniform: |w| <= sqrt(6 / (3 + 2)).
    let limit = (6.0f32 / 5.0).sqrt();
    assert!(d.kernel()?.as_f32()?.iter().all(|w| w.abs() <= limit));
    d.set_kernel(HostTensor::new(
        &[3, 2],
        vec![1.0f32, -1.0, 2.0, -2.0, 3.0, -3.0],
    )?)?;
    d.set_bias(HostTensor::new(&[2], vec![0.5f32, 0.5])?)?;
    let m = Model::new(&[x], &[y])?;
    let out = m.predict(&[HostTensor::new(&[1, 3], vec![1.0f32, 1.0, 1.0])?])?;
    // [1+2+3+0.5, relu(-6+0.5)] = [6.5, 0]
    assert_eq!(out[0].as_f32()?, &[6.5, 0.0]);
    Ok(())
}

#[test]
fn predict_from_many_threads_at_once() -> Result<()> {
    let mut m = Sequential::new();
    m.add(Input::new(&[4]))?;
    m.add(Lambda::new(antirectifier))?;
    m.add(Lambda::new(|x| x.sum(-1)))?;
    let model = Arc::new(m.model()?);
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let model = model.clone();
            std::thread::spawn(move || -> Result<()> {
                for i in 0..20 {
                    // Row [k, k+1, k+2, k+3] centres to [-1.5,-.5,.5,1.5]/sqrt(5); the sum of
                    // relu(x) and relu(-x) is sum |x| = 4/sqrt(5) whatever k, and the batch
                    // size varies per thread so that each gets its own shape.
                    let batch = 1 + (t + i) % 5;
                    let k = (t * 100 + i) as f32;
                    let data: Vec<f32> = (0..batch)
                        .flat_map(|_| [k, k + 1.0, k + 2.0, k + 3.0])
                        .collect();
                    let y = model.predict(&[HostTensor::new(&[batch, 4], data)?])?;
                    assert_eq!(y[0].shape(), &[batch]);
                    assert_close(y[0].as_f32()?, &vec![4.0 / 5f32.sqrt(); batch], 1e-5);
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread panicked")?;
    }
    Ok(())
}

#[test]
fn models_and_sessions_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Model>();
    check::<Sequential>();
    check::<Session>();
    check::<Lambda>();
    check::<Dense>();
    check::<Tensor>();
}

#[test]
fn outputs_held_by_the_caller_are_never_written_over() -> Result<()> {
    // The CPU backend reuses output buffers the caller has dropped; ones still held must keep
    // their values.
    let x = Input::new(&[3]).tensor();
    let y = Lambda::new(|x| (x * 2.0).tanh() + 1.0).call(&x)?;
    let m = Model::new(&[x], &[y])?;
    let s = Session::new(m.program().clone(), BackendKind::Cpu)?;
    let run = |v: f32| {
        s.run(&[HostTensor::new(&[1, 3], vec![v; 3]).unwrap()])
            .unwrap()
    };
    let want = |v: f32| vec![(v * 2.0).tanh() + 1.0; 3];
    let a = run(0.1);
    let b = run(0.2);
    assert_close(a[0].as_f32()?, &want(0.1), 1e-6);
    drop(a);
    let c = run(0.3);
    assert_close(b[0].as_f32()?, &want(0.2), 1e-6);
    assert_close(c[0].as_f32()?, &want(0.3), 1e-6);
    Ok(())
}

/// A Dense layer on a sequence (its product over every time step at once, with and without an
/// activation) and a per-feature scale broadcast over a sequence, at a batch large enough for
/// the CPU's fused product (3 × 40 rows) and at batch 1: every value against the definition
/// worked out here.
#[test]
fn dense_on_a_sequence_and_a_row_broadcast_against_the_definition() -> Result<()> {
    let (t, f, u) = (40usize, 7usize, 5usize);
    let kernel: Vec<f32> = (0..f * u)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.1)
        .collect();
    let bias: Vec<f32> = (0..u).map(|j| j as f32 * 0.25 - 0.5).collect();
    let scale = vec![1.5f32, -2.0, 0.5, 1.0, -0.25];
    for relu in [false, true] {
        let activation = if relu {
            Activation::Relu
        } else {
            Activation::Linear
        };
        let x = Input::new(&[t, f]).tensor();
        let d = Dense::new(u).activation(activation);
        let y = d.call(&x)?;
        d.set_kernel(HostTensor::new(&[f, u], kernel.clone())?)?;
        d.set_bias(HostTensor::new(&[u], bias.clone())?)?;
        let s = Tensor::constant(HostTensor::new(&[u], scale.clone())?);
        let scaled = Lambda::new(move |v| v * &s).call(&y)?;
        let m = Model::new(&[x], &[y, scaled])?;
        for batch in [3usize, 1] {
            let data: Vec<f32> = (0..batch * t * f)
                .map(|i| ((i * 13 % 29) as f32 - 14.0) * 0.05)
                .collect();
            // The CPU interpreter's result (and the GPU's, which must agree, where there is one).
            let out =
                crate::common::run_both(&m, &[HostTensor::new(&[batch, t, f], data.clone())?]);
            let mut want = vec![0f32; batch * t * u];
            for r in 0..batch * t {
                for j in 0..u {
                    let mut acc = bias[j] as f64;
                    for i in 0..f {
                        acc += data[r * f + i] as f64 * kernel[i * u + j] as f64;
                    }
                    let v = acc as f32;
                    want[r * u + j] = if relu { v.max(0.0) } else { v };
                }
            }
            assert_eq!(out[0].shape(), &[batch, t, u]);
            assert_close(out[0].as_f32()?, &want, 1e-5);
            let want_scaled: Vec<f32> = want
                .iter()
                .enumerate()
                .map(|(i, v)| v * scale[i % u])
                .collect();
            assert_close(out[1].as_f32()?, &want_scaled, 1e-5);
        }
    }
    Ok(())
}

/// A Dense layer on a sequence pooled over time, and a one-unit Dense used as a gate over
/// every feature, at a batch that the CPU's fused products take (3 × 40 rows): the pooled
/// region and the gate's product have rows of other lengths than the product's, and each must
/// still give the definition's values.
#[test]
fn dense_on_a_sequence_pooled_and_as_a_gate() -> Result<()> {
    let (b, t, f, u) = (3usize, 40usize, 7usize, 16usize);
    let data: Vec<f32> = (0..b * t * f)
        .map(|i| ((i * 17 % 23) as f32 - 11.0) * 0.07)
        .collect();
    let kernel: Vec<f32> = (0..f * u)
        .map(|i| ((i * 5 % 13) as f32 - 6.0) * 0.1)
        .collect();
    let gate_kernel: Vec<f32> = (0..f).map(|i| i as f32 * 0.1 - 0.3).collect();
    let x = Input::new(&[t, f]).tensor();
    let d = Dense::new(u).activation(Activation::Relu);
    let pooled = GlobalAveragePooling1D::new().call(&d.call(&x)?)?;
    let g = Dense::new(1).activation(Activation::Sigmoid);
    let gated = &x * &g.call(&x)?;
    d.set_kernel(HostTensor::new(&[f, u], kernel.clone())?)?;
    d.set_bias(HostTensor::new(&[u], vec![0.1; u])?)?;
    g.set_kernel(HostTensor::new(&[f, 1], gate_kernel.clone())?)?;
    g.set_bias(HostTensor::new(&[1], vec![-0.2])?)?;
    let m = Model::new(&[x], &[pooled, gated])?;
    let out = crate::common::run_both(&m, &[HostTensor::new(&[b, t, f], data.clone())?]);
    let mut want_pooled = vec![0f32; b * u];
    let mut want_gated = vec![0f32; b * t * f];
    for s in 0..b {
        for step in 0..t {
            let row = &data[(s * t + step) * f..][..f];
            for j in 0..u {
                let v: f64 = 0.1
                    + (0..f)
                        .map(|i| row[i] as f64 * kernel[i * u + j] as f64)
                        .sum::<f64>();
                want_pooled[s * u + j] += (v.max(0.0) / t as f64) as f32;
            }
            let z: f64 = -0.2
                + (0..f)
                    .map(|i| row[i] as f64 * gate_kernel[i] as f64)
                    .sum::<f64>();
            let gate = 1.0 / (1.0 + (-z).exp());
            for i in 0..f {
                want_gated[(s * t + step) * f + i] = (row[i] as f64 * gate) as f32;
            }
        }
    }
    assert_eq!(out[0].shape(), &[b, u]);
    assert_close(out[0].as_f32()?, &want_pooled, 1e-5);
    assert_close(out[1].as_f32()?, &want_gated, 1e-5);
    Ok(())
}
