//! The image-model layers (padding, cropping, upsampling, `RepeatVector`, `Permute`, the
//! activation layers, `Dot`, `TimeDistributed`) against values worked out independently (by
//! the definition in f64, by hand, or recorded from Keras 3.15 on JAX), on the CPU and the GPU
//! (which must agree), through save/load, and with bad configurations.
#![cfg(feature = "gpu")] // compares the CPU interpreter with the GPU backend

use crate::common;

use common::run_both;
use lamina::prelude::*;

/// Deterministic values in [-2, 2).
fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f64 / (1u64 << 24) as f64 * 4.0 - 2.0) as f32
        })
        .collect()
}

fn tensor(shape: &[usize], seed: u64) -> HostTensor {
    HostTensor::new(shape, data(shape.iter().product(), seed)).unwrap()
}

/// A one-layer model on an input of per-sample shape `per_sample`.
fn one_layer(layer: impl Layer + 'static, per_sample: &[usize]) -> Result<Model> {
    let x = Input::new(per_sample).tensor();
    let y = layer.call(&x)?;
    Model::new(&[x], &[y])
}

/// Row-major strides.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * shape[k + 1];
    }
    s
}

/// The output of shape `out_shape` whose element at each index is `f(index)`.
fn build(out_shape: &[usize], f: impl Fn(&[usize]) -> f64) -> Vec<f32> {
    let n: usize = out_shape.iter().product();
    let st = strides(out_shape);
    (0..n)
        .map(|flat| {
            let idx: Vec<usize> = st
                .iter()
                .zip(out_shape)
                .map(|(s, d)| flat / s % d)
                .collect();
            f(&idx) as f32
        })
        .collect()
}

fn at(x: &HostTensor, idx: &[usize]) -> f64 {
    let st = strides(x.shape());
    x.as_f32().unwrap()[idx.iter().zip(&st).map(|(i, s)| i * s).sum::<usize>()] as f64
}

fn assert_close(got: &HostTensor, shape: &[usize], want: &[f32], tol: f32) {
    assert_eq!(got.shape(), shape);
    for (i, (a, b)) in got.as_f32().unwrap().iter().zip(want).enumerate() {
        assert!((a - b).abs() <= tol, "element {i}: got {a}, want {b}");
    }
}

#[test]
fn zero_padding_and_cropping_by_definition() -> Result<()> {
    // ZeroPadding2D ((1, 2), (0, 3)), channels last.
    let x = tensor(&[2, 3, 4, 2], 1);
    let m = one_layer(ZeroPadding2D::asymmetric([(1, 2), (0, 3)]), &[3, 4, 2])?;
    let y = &run_both(&m, std::slice::from_ref(&x))[0];
    let want = build(&[2, 6, 7, 2], |i| {
        let (r, c) = (i[1] as i64 - 1, i[2] as i64);
        if (0..3).contains(&r) && (0..4).contains(&c) {
            at(&x, &[i[0], r as usize, c as usize, i[3]])
        } else {
            0.0
        }
    });
    assert_close(y, &[2, 6, 7, 2], &want, 0.0);
    // Channels first, symmetric: (batch, channels, rows, cols).
    let m = one_layer(
        ZeroPadding2D::symmetric(1, 2).data_format(DataFormat::ChannelsFirst),
        &[2, 3, 4],
    )?;
    let xf = tensor(&[2, 2, 3, 4], 2);
    let y = &run_both(&m, std::slice::from_ref(&xf))[0];
    let want = build(&[2, 2, 5, 8], |i| {
        let (r, c) = (i[2] as i64 - 1, i[3] as i64 - 2);
        if (0..3).contains(&r) && (0..4).contains(&c) {
            at(&xf, &[i[0], i[1], r as usize, c as usize])
        } else {
            0.0
        }
    });
    assert_close(y, &[2, 2, 5, 8], &want, 0.0);
    // ZeroPadding1D keeps NaN and infinities inside and adds exact zeros around them.
    let m = one_layer(ZeroPadding1D::new(1), &[2, 1])?;
    let x1 = HostTensor::new(&[1, 2, 1], vec![f32::NAN, f32::INFINITY])?;
    let y = run_both(&m, &[x1])[0].to_f32_vec();
    assert!(y[0] == 0.0 && y[1].is_nan() && y[2] == f32::INFINITY && y[3] == 0.0);
    // Cropping2D ((1, 0), (0, 1)) (Keras gives shape (1, 2, 2, 2) for a 3x3 input) and
    // Cropping1D (1, 2).
    let m = one_layer(Cropping2D::asymmetric([(1, 0), (0, 1)]), &[3, 3, 2])?;
    let x = tensor(&[1, 3, 3, 2], 3);
    let y = &run_both(&m, std::slice::from_ref(&x))[0];
    let want = build(&[1, 2, 2, 2], |i| at(&x, &[i[0], i[1] + 1, i[2], i[3]]));
    assert_close(y, &[1, 2, 2, 2], &want, 0.0);
    let m = one_layer(
        Cropping2D::symmetric(1, 1).data_format(DataFormat::ChannelsFirst),
        &[2, 4, 5],
    )?;
    let x = tensor(&[1, 2, 4, 5], 4);
    let y = &run_both(&m, std::slice::from_ref(&x))[0];
    let want = build(&[1, 2, 2, 3], |i| at(&x, &[i[0], i[1], i[2] + 1, i[3] + 1]));
    assert_close(y, &[1, 2, 2, 3], &want, 0.0);
    let m = one_layer(Cropping1D::new(1, 2), &[6, 3])?;
    let x = tensor(&[2, 6, 3], 5);
    let y = &run_both(&m, std::slice::from_ref(&x))[0];
    let want = build(&[2, 3, 3], |i| at(&x, &[i[0], i[1] + 1, i[2]]));
    assert_close(y, &[2, 3, 3], &want, 0.0);
    Ok(())
}

#[test]
fn upsampling_nearest_by_definition() -> Result<()> {
    let m = one_layer(UpSampling1D::new(3), &[4, 2])?;
    let x = tensor(&[2, 4, 2], 6);
    let y = &run_both(&m, std::slice::from_ref(&x))[0];
    let want = build(&[2, 12, 2], |i| at(&x, &[i[0], i[1] / 3, i[2]]));
    assert_close(y, &[2, 12, 2], &want, 0.0);
    let m = one_layer(UpSampling2D::new(2, 3), &[2, 3, 2])?;
    let x = tensor(&[2, 2, 3, 2], 7);
    let y = &run_both(&m, std::slice::from_ref(&x))[0];
    let want = build(&[2, 4, 9, 2], |i| at(&x, &[i[0], i[1] / 2, i[2] / 3, i[3]]));
    assert_close(y, &[2, 4, 9, 2], &want, 0.0);
    let m = one_layer(
        UpSampling2D::new(2, 2).data_format(DataFormat::ChannelsFirst),
        &[3, 2, 2],
    )?;
    let x = tensor(&[1, 3, 2, 2], 8);
    let y = &run_both(&m, std::slice::from_ref(&x))[0];
    let want = build(&[1, 3, 4, 4], |i| at(&x, &[i[0], i[1], i[2] / 2, i[3] / 2]));
    assert_close(y, &[1, 3, 4, 4], &want, 0.0);
    Ok(())
}

/// Bilinear resampling by its definition in f64: half-pixel centres, clamped at the edges.
fn bilinear_ref(x: &HostTensor, fr: usize, fc: usize) -> Vec<f32> {
    let s = x.shape().to_vec();
    let (h, w) = (s[1], s[2]);
    let src = |i: usize, f: usize, n: usize| {
        let p = ((i as f64 + 0.5) / f as f64 - 0.5).clamp(0.0, (n - 1) as f64);
        let l = p.floor() as usize;
        (l, (l + 1).min(n - 1), p - l as f64)
    };
    build(&[s[0], h * fr, w * fc, s[3]], |i| {
        let (r0, r1, a) = src(i[1], fr, h);
        let (c0, c1, b) = src(i[2], fc, w);
        let v = |r, c| at(x, &[i[0], r, c, i[3]]);
        (1.0 - a) * ((1.0 - b) * v(r0, c0) + b * v(r0, c1))
            + a * ((1.0 - b) * v(r1, c0) + b * v(r1, c1))
    })
}

#[test]
fn upsampling_bilinear_matches_keras() -> Result<()> {
    // Recorded from Keras 3.15 (JAX): UpSampling2D((2, 3), interpolation="bilinear") of
    // [[5, 1, 2], [3, 4, 5]].
    let keras: [[f32; 9]; 4] = [
        [
            5.0, 5.0, 3.6666665, 2.333333, 1.0, 1.3333334, 1.6666667, 2.0, 2.0,
        ],
        [
            4.5, 4.5, 3.5833335, 2.6666665, 1.75, 2.0833335, 2.4166667, 2.75, 2.75,
        ],
        [
            3.5, 3.5, 3.4166665, 3.3333333, 3.25, 3.5833333, 3.916667, 4.25, 4.25,
        ],
        [
            3.0, 3.0, 3.3333335, 3.6666667, 4.0, 4.3333335, 4.666667, 5.0, 5.0,
        ],
    ];
    let m = one_layer(
        UpSampling2D::new(2, 3).interpolation(Interpolation::Bilinear),
        &[2, 3, 1],
    )?;
    let x = HostTensor::new(&[1, 2, 3, 1], vec![5.0f32, 1.0, 2.0, 3.0, 4.0, 5.0])?;
    let y = &run_both(&m, std::slice::from_ref(&x))[0];
    assert_close(y, &[1, 4, 9, 1], keras.as_flattened(), 2e-6);
    // And against the definition on random data, several channels and a batch.
    let m = one_layer(
        UpSampling2D::new(3, 2).interpolation(Interpolation::Bilinear),
        &[3, 4, 2],
    )?;
    let x = tensor(&[2, 3, 4, 2], 9);
    let y = &run_both(&m, std::slice::from_ref(&x))[0];
    assert_close(y, &[2, 9, 8, 2], &bilinear_ref(&x, 3, 2), 2e-6);
    Ok(())
}

#[test]
fn repeat_vector_and_permute() -> Result<()> {
    let m = one_layer(RepeatVector::new(3), &[4])?;
    let x = tensor(&[2, 4], 10);
    let y = &run_both(&m, std::slice::from_ref(&x))[0];
    let want = build(&[2, 3, 4], |i| at(&x, &[i[0], i[2]]));
    assert_close(y, &[2, 3, 4], &want, 0.0);
    let m = one_layer(Permute::new(&[3, 1, 2]), &[2, 3, 4])?;
    let x = tensor(&[2, 2, 3, 4], 11);
    let y = &run_both(&m, std::slice::from_ref(&x))[0];
    let want = build(&[2, 4, 2, 3], |i| at(&x, &[i[0], i[2], i[3], i[1]]));
    assert_close(y, &[2, 4, 2, 3], &want, 0.0);
    Ok(())
}

#[test]
fn activation_layers_match_keras() -> Result<()> {
    let x = HostTensor::new(&[1, 8], vec![-2.0f32, -0.5, 0.0, 0.4, 0.5, 0.6, 1.5, 3.0])?;
    // Recorded from Keras: ReLU(max_value=2, negative_slope=0.1, threshold=0.5).
    let m = one_layer(
        ReLU::new()
            .max_value(2.0)
            .negative_slope(0.1)
            .threshold(0.5),
        &[8],
    )?;
    let y = &run_both(&m, std::slice::from_ref(&x))[0];
    assert_close(
        y,
        &[1, 8],
        &[-0.25, -0.1, -0.05, -0.01, 0.0, 0.6, 1.5, 2.0],
        1e-6,
    );
    let m = one_layer(ReLU::new().max_value(1.0), &[8])?;
    let y = &run_both(&m, std::slice::from_ref(&x))[0];
    assert_close(y, &[1, 8], &[0.0, 0.0, 0.0, 0.4, 0.5, 0.6, 1.0, 1.0], 0.0);
    // LeakyReLU's own default slope is 0.3.
    let m = one_layer(LeakyReLU::new(), &[8])?;
    let y = &run_both(&m, std::slice::from_ref(&x))[0];
    assert_close(
        y,
        &[1, 8],
        &[-0.6, -0.15, 0.0, 0.4, 0.5, 0.6, 1.5, 3.0],
        1e-6,
    );
    // ELU(alpha=1): Keras gives -0.63212055 at -1.
    let m = one_layer(ELU::new(), &[2])?;
    let y = &run_both(&m, &[HostTensor::new(&[1, 2], vec![-1.0f32, 2.0])?])[0];
    assert_close(y, &[1, 2], &[-0.632_120_55, 2.0], 1e-6);
    let m = one_layer(ELU::new().alpha(0.5), &[2])?;
    let y = &run_both(&m, &[HostTensor::new(&[1, 2], vec![-1.0f32, 2.0])?])[0];
    assert_close(y, &[1, 2], &[0.5 * (-1.0f64).exp_m1() as f32, 2.0], 1e-6);
    Ok(())
}

#[test]
fn prelu_alpha_and_shared_axes() -> Result<()> {
    // One alpha per channel of an image: shared_axes [1, 2], alpha shape (1, 1, 3), as Keras.
    let p = PReLU::new().shared_axes(&[1, 2]).name("prelu");
    let m = one_layer(p.clone(), &[2, 2, 3])?;
    assert_eq!(m.get_weight("prelu/alpha")?.shape(), &[1, 1, 3]);
    // alpha starts at zeros: a ReLU.
    let x = tensor(&[2, 2, 2, 3], 12);
    let y = &run_both(&m, std::slice::from_ref(&x))[0];
    let want = build(&[2, 2, 2, 3], |i| at(&x, i).max(0.0));
    assert_close(y, &[2, 2, 2, 3], &want, 0.0);
    let alpha = [0.1f32, -0.5, 2.0];
    m.set_weight("prelu/alpha", HostTensor::new(&[1, 1, 3], alpha.to_vec())?)?;
    let y = &run_both(&m, std::slice::from_ref(&x))[0];
    let want = build(&[2, 2, 2, 3], |i| {
        let v = at(&x, i);
        if v > 0.0 { v } else { alpha[i[3]] as f64 * v }
    });
    assert_close(y, &[2, 2, 2, 3], &want, 1e-6);
    // Without shared axes, alpha has the per-sample shape.
    let m = one_layer(PReLU::new().name("p2"), &[4, 3])?;
    assert_eq!(m.get_weight("p2/alpha")?.shape(), &[4, 3]);
    assert_eq!(m.count_params(), 12);
    Ok(())
}

#[test]
fn dot_by_definition() -> Result<()> {
    // Dot(axes=(1, 2), normalize=True) of (2, 3, 4) and (2, 5, 3): shape (2, 4, 5) as Keras.
    let a = Input::new(&[3, 4]).tensor();
    let b = Input::new(&[5, 3]).tensor();
    let y = Dot::pair(1, 2).normalize(true).call([&a, &b])?;
    let m = Model::new(&[a, b], &[y])?;
    let (xa, xb) = (tensor(&[2, 3, 4], 13), tensor(&[2, 5, 3], 14));
    let y = &run_both(&m, &[xa.clone(), xb.clone()])[0];
    let want = build(&[2, 4, 5], |i| {
        let na: f64 = (0..3)
            .map(|k| at(&xa, &[i[0], k, i[1]]).powi(2))
            .sum::<f64>()
            .sqrt();
        let nb: f64 = (0..3)
            .map(|k| at(&xb, &[i[0], i[2], k]).powi(2))
            .sum::<f64>()
            .sqrt();
        (0..3)
            .map(|k| at(&xa, &[i[0], k, i[1]]) * at(&xb, &[i[0], i[2], k]))
            .sum::<f64>()
            / (na * nb)
    });
    assert_close(y, &[2, 4, 5], &want, 1e-5);
    // Dot(axes=-1) of two vectors: (batch, 1).
    let a = Input::new(&[3]).tensor();
    let b = Input::new(&[3]).tensor();
    let y = Dot::new(-1).call([&a, &b])?;
    let m = Model::new(&[a, b], &[y])?;
    let xa = HostTensor::new(&[2, 3], vec![1.0f32, 2.0, 3.0, -1.0, 0.5, 0.0])?;
    let xb = HostTensor::new(&[2, 3], vec![4.0f32, 5.0, 6.0, 2.0, 2.0, 9.0])?;
    let y = &run_both(&m, &[xa, xb])[0];
    assert_close(y, &[2, 1], &[32.0, -1.0], 0.0);
    Ok(())
}

#[test]
fn time_distributed_dense() -> Result<()> {
    let dense = Dense::new(2).name("dd");
    let td = TimeDistributed::new(dense.clone()).name("td");
    let m = one_layer(td, &[5, 3])?;
    // Keras names the weights td/dd/kernel and td/dd/bias.
    let paths: Vec<String> = m.named_weights().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["td/dd/kernel", "td/dd/bias"]);
    m.set_weight("td/dd/bias", HostTensor::new(&[2], vec![0.5f32, -1.0])?)?;
    let s = m.summary_string()?;
    assert!(s.contains("td (TimeDistributed)"), "{s}");
    assert!(s.contains(" Total params: 8 (32.00 B)"), "{s}");
    let x = tensor(&[2, 5, 3], 15);
    let y = &run_both(&m, std::slice::from_ref(&x))[0];
    let k = dense.kernel()?;
    let bias = [0.5, -1.0];
    let want = build(&[2, 5, 2], |i| {
        (0..3)
            .map(|j| at(&x, &[i[0], i[1], j]) * at(&k, &[j, i[2]]))
            .sum::<f64>()
            + bias[i[2]]
    });
    assert_close(y, &[2, 5, 2], &want, 1e-5);
    Ok(())
}

/// A model with every new layer, for the save/load round trip.
fn everything() -> Result<(Model, Vec<HostTensor>)> {
    let img = Input::new(&[4, 5, 3]).name("img").tensor();
    let x = ZeroPadding2D::asymmetric([(1, 0), (2, 1)]).call(&img)?;
    let x = Cropping2D::symmetric(1, 1).call(&x)?;
    let x = UpSampling2D::new(2, 1)
        .interpolation(Interpolation::Bilinear)
        .call(&x)?;
    let x = UpSampling2D::new(1, 2).call(&x)?;
    let x = PReLU::new().shared_axes(&[1, 2]).call(&x)?;
    let x = ReLU::new().max_value(6.0).negative_slope(0.1).call(&x)?;
    let x = LeakyReLU::new().call(&x)?;
    let x = ELU::new().alpha(0.7).call(&x)?;
    let x = Permute::new(&[2, 1, 3]).call(&x)?;
    let x = Reshape::new(&[12, -1]).call(&x)?;
    let x = TimeDistributed::new(Dense::new(4)).call(&x)?;
    let x = ZeroPadding1D::asymmetric([(0, 2)])
        .data_format(DataFormat::ChannelsFirst)
        .call(&x)?;
    let x = Cropping1D::new(1, 1).call(&x)?;
    let x = UpSampling1D::new(2).call(&x)?;
    let v = Input::new(&[6]).name("vec").tensor();
    let r = RepeatVector::new(20).call(&v)?;
    let r = Dense::new(6).call(&r)?;
    let d = Dot::pair(2, 2).normalize(true).call([&x, &r])?;
    let m = Model::new(&[img, v], &[d])?;
    // Non-zero alphas, so the PReLU weight matters.
    let prelu = m
        .layers()
        .into_iter()
        .find(|l| l.kind() == "PReLU")
        .unwrap();
    prelu.set_weight(
        "alpha",
        HostTensor::new(&[1, 1, 3], vec![0.2f32, -0.3, 0.4])?,
    )?;
    Ok((m, vec![tensor(&[2, 4, 5, 3], 16), tensor(&[2, 6], 17)]))
}

#[test]
fn every_new_layer_saves_and_loads() -> Result<()> {
    let (m, inputs) = everything()?;
    let before = run_both(&m, &inputs);
    assert_eq!(before[0].shape(), &[2, 20, 20]);
    let loaded = Model::from_bytes(&m.to_bytes()?)?;
    let after = run_both(&loaded, &inputs);
    assert_eq!(before[0].as_f32()?, after[0].as_f32()?);
    assert_eq!(loaded.summary_string()?, m.summary_string()?);
    let kinds: Vec<&str> = loaded.layers().iter().map(|l| l.kind()).collect();
    for k in [
        "ZeroPadding2D",
        "Cropping2D",
        "UpSampling2D",
        "PReLU",
        "ReLU",
        "LeakyReLU",
        "ELU",
        "Permute",
        "TimeDistributed",
        "ZeroPadding1D",
        "Cropping1D",
        "UpSampling1D",
        "RepeatVector",
        "Dot",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    Ok(())
}

/// The error of calling `layer` on an input of per-sample shape `per_sample`.
fn call_error(layer: impl Layer + 'static, per_sample: &[usize]) -> String {
    let x = Input::new(per_sample).tensor();
    match layer.call(&x) {
        Ok(_) => panic!("{} accepted a bad configuration", layer.kind()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_configurations_name_the_layer() {
    let cases: Vec<(String, &str)> = vec![
        (
            call_error(ZeroPadding2D::new(-1).name("zp"), &[3, 3, 1]),
            "padding must be sizes >= 0",
        ),
        (
            call_error(ZeroPadding1D::new(1).name("zp"), &[3, 3, 1]),
            "rank 3",
        ),
        (
            call_error(Cropping2D::symmetric(2, 0).name("crop"), &[4, 3, 1]),
            "leaves nothing",
        ),
        (
            call_error(Cropping1D::new(-1, 0).name("crop"), &[4, 1]),
            "cropping must be sizes >= 0",
        ),
        (
            call_error(UpSampling2D::new(0, 2).name("up"), &[2, 2, 1]),
            "size must be >= 1",
        ),
        (
            call_error(UpSampling1D::new(-2).name("up"), &[2, 1]),
            "size must be >= 1",
        ),
        (
            call_error(RepeatVector::new(0).name("rv"), &[3]),
            "n must be >= 1",
        ),
        (
            call_error(RepeatVector::new(2).name("rv"), &[3, 2]),
            "rank 2",
        ),
        (
            call_error(Permute::new(&[1, 1]).name("perm"), &[2, 3]),
            "not a permutation",
        ),
        (
            call_error(Permute::new(&[0, 1]).name("perm"), &[2, 3]),
            "not a permutation",
        ),
        (
            call_error(ReLU::new().max_value(-1.0).name("relu"), &[2]),
            "max_value of a ReLU layer cannot be a negative value",
        ),
        (
            call_error(ReLU::new().threshold(-1.0).name("relu"), &[2]),
            "threshold",
        ),
        (
            call_error(LeakyReLU::new().negative_slope(-0.1).name("leaky"), &[2]),
            "negative_slope",
        ),
        (
            call_error(PReLU::new().shared_axes(&[0]).name("prelu"), &[2, 3]),
            "shared axis 0",
        ),
        (
            call_error(TimeDistributed::new(Dense::new(2)).name("td"), &[3]),
            "rank 3 or more",
        ),
    ];
    for (msg, want) in cases {
        assert!(msg.contains(want), "{msg:?} does not say {want:?}");
        let named = [
            "zp", "crop", "up", "rv", "perm", "relu", "leaky", "prelu", "td",
        ]
        .iter()
        .any(|n| msg.contains(&format!("'{n}'")));
        assert!(named, "{msg:?} does not name the layer");
    }
    // Dot: an axis out of range, the batch axis, and mismatched sizes.
    for (axes, shapes) in [
        ((3, 1), ([3], [3])),
        ((0, 0), ([3], [3])),
        ((1, 1), ([3], [4])),
    ] {
        let a = Input::new(&shapes.0).tensor();
        let b = Input::new(&shapes.1).tensor();
        let e = Dot::pair(axes.0, axes.1)
            .name("dotty")
            .call([&a, &b])
            .unwrap_err()
            .to_string();
        assert!(e.contains("'dotty'"), "{e}");
    }
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

/// The index of the first layer record of class `class`.
fn layer_of(arch: &serde_json::Value, class: &str) -> usize {
    arch["layers"]
        .as_array()
        .unwrap()
        .iter()
        .position(|l| l["class"] == class)
        .unwrap()
}

#[test]
fn hostile_records_of_the_new_layers_give_errors() -> Result<()> {
    let (m, _) = everything()?;
    let bytes = m.to_bytes()?;
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|a| {
                let i = layer_of(a, "ZeroPadding2D");
                a["layers"][i]["padding"][0][1] = (-3).into();
            }),
            "padding must be sizes >= 0",
        ),
        (
            Box::new(|a| {
                let i = layer_of(a, "Cropping2D");
                a["layers"][i]["cropping"][1][0] = 1000.into();
            }),
            "leaves nothing",
        ),
        (
            Box::new(|a| {
                let i = layer_of(a, "UpSampling2D");
                a["layers"][i]["interpolation"] = "bicubic".into();
            }),
            "bicubic",
        ),
        (
            Box::new(|a| {
                let i = layer_of(a, "UpSampling1D");
                a["layers"][i]["size"] = 0.into();
            }),
            "size must be >= 1",
        ),
        (
            Box::new(|a| {
                let i = layer_of(a, "ReLU");
                a["layers"][i]["max_value"] = (-1.0).into();
            }),
            "max_value",
        ),
        (
            Box::new(|a| {
                let i = layer_of(a, "Permute");
                a["layers"][i]["dims"] = serde_json::json!([1, 1, 3]);
            }),
            "not a permutation",
        ),
        (
            Box::new(|a| {
                let i = layer_of(a, "TimeDistributed");
                a["layers"][i]["layer"] = serde_json::json!({"class": "InputLayer", "name": "x", "shape": [null, 2], "dtype": "f32"});
            }),
            "wraps an input layer",
        ),
        (
            Box::new(|a| {
                a["non_trainable"] = serde_json::json!(["layers/99/weights/kernel"]);
            }),
            "non-trainable",
        ),
        (
            Box::new(|a| {
                let i = layer_of(a, "Dot");
                a["layers"][i]["axes"] = serde_json::json!([0, 2]);
            }),
            "Dot: axis 0",
        ),
    ];
    for (edit, want) in cases {
        let bad = with_architecture(&bytes, edit);
        match Model::from_bytes(&bad) {
            Ok(_) => panic!("a file with a bad record loaded (wanted {want:?})"),
            Err(e) => {
                let e = e.to_string();
                assert!(e.contains(want), "{e:?} does not say {want:?}");
            }
        }
    }
    Ok(())
}

#[test]
fn time_distributed_on_run_time_lengths_keeps_the_mask() -> Result<()> {
    // (None, None, 3): batch and steps both known only at run time, masked by Masking; the
    // output keeps the input's mask (Keras's TimeDistributed passes it on), so the pooling
    // after it averages the kept steps only.
    let dense = Dense::new(2).name("tdd");
    let x = Input::with_dims(vec![Dim::Dynamic, Dim::Known(3)]).tensor();
    let m = Masking::new(0.0).call(&x)?;
    let y = TimeDistributed::new(dense.clone()).call(&m)?;
    assert_eq!(y.shape().to_string(), "(None, None, 2)");
    assert!(y.mask().is_some());
    let pooled = GlobalAveragePooling1D::new().call(&y)?;
    let model = Model::new(&[x], &[y, pooled])?;
    let k = dense.kernel()?;
    for (batch, steps) in [(2, 4), (3, 1), (1, 6)] {
        let mut x = tensor(&[batch, steps, 3], 7 + steps as u64);
        // Step 1 of every row masked (all zeros) where there is one.
        if steps > 1 {
            let mut v = x.to_f32_vec();
            for b in 0..batch {
                for j in 0..3 {
                    v[(b * steps + 1) * 3 + j] = 0.0;
                }
            }
            x = HostTensor::new(&[batch, steps, 3], v)?;
        }
        let out = run_both(&model, std::slice::from_ref(&x));
        let want = build(&[batch, steps, 2], |i| {
            (0..3)
                .map(|j| at(&x, &[i[0], i[1], j]) * at(&k, &[j, i[2]]))
                .sum::<f64>()
        });
        assert_close(&out[0], &[batch, steps, 2], &want, 1e-5);
        let kept: Vec<usize> = (0..steps).filter(|&t| steps == 1 || t != 1).collect();
        let mean = build(&[batch, 2], |i| {
            kept.iter()
                .map(|&t| want[(i[0] * steps + t) * 2 + i[1]] as f64)
                .sum::<f64>()
                / kept.len() as f64
        });
        assert_close(&out[1], &[batch, 2], &mean, 1e-5);
    }
    Ok(())
}
