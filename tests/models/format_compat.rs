//! The `.lamina` format stays readable: `tests/fixtures/lamina/every_layer.lamina` was written by
//! the build of 2026-12-07 (format version 2, before layer configurations became data) from
//! `every_layer_model`, with its inputs and outputs beside it as `.npy`. Every build must load
//! it, predict the same outputs, and write the same architecture back.

use lamina::prelude::*;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lamina")
}

/// Deterministic values in [-1, 1).
fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f64 / (1u64 << 23) as f64 - 1.0) as f32
        })
        .collect()
}

/// A functional model that calls every layer class a Lamina file records, most with
/// settings other than their defaults, on four inputs: an image, a sequence, token ids and a
/// flat vector.
fn every_layer_model() -> Result<Model> {
    let image = Input::new(&[8, 8, 3]).name("image").tensor();
    let sequence = Input::new(&[6, 4]).name("sequence").tensor();
    let ids = Input::new(&[5]).dtype(DType::I32).name("ids").tensor();
    let flat = Input::new(&[4]).name("flat").tensor();

    // Images.
    let x = ZeroPadding2D::symmetric(1, 1).call(&image)?;
    let x = Conv2D::new(4, 3)
        .activation(Activation::Relu)
        .seed(1)
        .call(&x)?;
    let x = BatchNormalization::new().epsilon(1e-2).call(&x)?;
    let x = DepthwiseConv2D::new(3)
        .padding(Padding::Same)
        .seed(2)
        .call(&x)?;
    let x = SeparableConv2D::new(4, 3)
        .padding(Padding::Same)
        .seed(3)
        .call(&x)?;
    let x = Conv2DTranspose::new(4, 2).strides(2).seed(4).call(&x)?;
    let x = MaxPooling2D::new(2).call(&x)?;
    let x = AveragePooling2D::new(2).padding(Padding::Same).call(&x)?;
    let x = Cropping2D::symmetric(1, 1).call(&x)?;
    let x = UpSampling2D::new(2, 2)
        .interpolation(Interpolation::Bilinear)
        .call(&x)?;
    let x = ReLU::new().max_value(6.0).negative_slope(0.1).call(&x)?;
    let x = LeakyReLU::new().negative_slope(0.2).call(&x)?;
    let x = ELU::new().alpha(0.5).call(&x)?;
    let x = PReLU::new().shared_axes(&[1, 2]).call(&x)?;
    let x = Resizing::new(6, 6).call(&x)?;
    let x = CenterCrop::new(4, 4).call(&x)?;
    let x = LayerScale::new(0.5, 4).call(&x)?;
    let x = StochasticDepth::new(0.1).call(&x)?;
    let image_avg = GlobalAveragePooling2D::new().call(&x)?;
    let image_max = GlobalMaxPooling2D::new().keepdims(false).call(&x)?;

    // Sequences.
    let s = Conv1D::new(4, 2)
        .padding(Padding::Causal)
        .seed(5)
        .call(&sequence)?;
    let s = SeparableConv1D::new(4, 2)
        .padding(Padding::Same)
        .seed(6)
        .call(&s)?;
    let s = Conv1DTranspose::new(4, 1).seed(7).call(&s)?;
    let s = ZeroPadding1D::new(1).call(&s)?;
    let s = Cropping1D::new(1, 1).call(&s)?;
    let s = UpSampling1D::new(2).call(&s)?;
    let s = MaxPooling1D::new(2).call(&s)?;
    let s = AveragePooling1D::new(2).call(&s)?;
    let s_avg = GlobalAveragePooling1D::new().call(&s)?;
    let masked = Masking::new(0.0).call(&sequence)?;
    let lstm = LSTM::new(5).return_sequences(true).seed(8).call(&masked)?;
    let gru = GRU::new(5)
        .return_sequences(true)
        .reset_after(false)
        .seed(9)
        .call(&lstm)?;
    let rnn = SimpleRNN::new(3).go_backwards(true).seed(10).call(&gru)?;
    let bi = Bidirectional::new(&LSTM::new(3).seed(11))?
        .merge_mode(MergeMode::Sum)
        .call(&sequence)?;
    let td = TimeDistributed::new(Dense::new(4).seed(12)).call(&sequence)?;
    let td = LayerNormalization::new().epsilon(1e-3).call(&td)?;
    let mha = MultiHeadAttention::new(2, 3)
        .seed(13)
        .call(&[td.clone(), sequence.clone()])?;
    let luong = Attention::new()
        .use_scale(true)
        .score_mode(ScoreMode::Concat)
        .call(&[mha.clone(), td.clone()])?;
    let bahdanau = AdditiveAttention::new().call(&[luong.clone(), td])?;
    let p = Permute::new(&[2, 1]).call(&bahdanau)?;
    let p = Reshape::new(&[-1, 3]).call(&p)?;
    let s_max = GlobalMaxPooling1D::new().call(&p)?;
    let rep = RepeatVector::new(2).call(&rnn)?;
    let rep = Flatten::new().call(&rep)?;
    let dot = Dot::new(1)
        .normalize(true)
        .call(&[rnn.clone(), s_max.clone()])?;

    // Token ids.
    let e = Embedding::new(10, 4).mask_zero(true).call(&ids)?;
    let e = GlobalAveragePooling1D::new().call(&e)?;

    // Flat vectors: a nested model, a Lambda, a custom activation and the merges.
    let mut inner = Sequential::named("inner");
    inner.add(Input::new(&[4]))?;
    inner.add(Dense::new(4).seed(14).activation(Activation::Tanh))?;
    let f = Layer::call(&inner.model()?, &flat)?;
    let f = Rescaling::new(2.0, 0.5).call(&f)?;
    let f = Normalization::new()
        .statistics(lamina::FixedStatistics {
            shape: vec![4],
            mean: vec![0.1, 0.2, 0.3, 0.4],
            variance: vec![1.0, 2.0, 0.5, 4.0],
        })
        .call(&f)?;
    let f = Dropout::new(0.3).call(&f)?;
    let f = Lambda::new(|x| x.relu() - (-x).relu() * 0.5).call(&f)?;
    let swish = Activation::custom("half_swish", |x| x * x.sigmoid() * 0.5);
    let f = Dense::new(4).activation(swish).seed(15).call(&f)?;
    let g = ActivationLayer::new(Activation::Gelu).call(&f)?;
    let add = Add::new().call(&[f.clone(), g.clone()])?;
    let sub = Subtract::new().call(&[f.clone(), g.clone()])?;
    let mul = Multiply::new().call(&[add.clone(), sub.clone()])?;
    let avg = Average::new().call(&[add.clone(), mul.clone()])?;
    let max = Maximum::new().call(&[avg.clone(), sub.clone()])?;
    let min = Minimum::new().call(&[max.clone(), e.clone()])?;
    let probs = Softmax::new().call(&min)?;

    let all =
        Concatenate::new().call(&[image_avg, image_max, s_avg, s_max, rep, dot, bi, probs])?;
    let out = Dense::new(3).seed(16).call(&all)?;
    Model::new(&[image, sequence, ids, flat], &[out, mha, lstm])
}

fn inputs() -> Result<Vec<HostTensor>> {
    let ids: Vec<i32> = vec![3, 0, 7, 9, 1, 4, 4, 0, 0, 0];
    Ok(vec![
        HostTensor::new(&[2, 8, 8, 3], data(384, 1))?,
        HostTensor::new(&[2, 6, 4], data(48, 2))?,
        HostTensor::new(&[2, 5], ids)?,
        HostTensor::new(&[2, 4], data(8, 3))?,
    ])
}

/// The architecture a file records, as JSON.
fn architecture(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap();
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let text = metadata.metadata().as_ref().unwrap()["architecture"].clone();
    serde_json::from_str(&text).unwrap()
}

/// Writes the fixture (run by hand: `cargo test --test format_compat -- --ignored`); the file
/// in the repository must stay the one the old build wrote.
#[test]
#[ignore]
fn write_every_layer_fixture() -> Result<()> {
    let dir = fixtures();
    std::fs::create_dir_all(&dir).unwrap();
    let model = every_layer_model()?;
    model.save(dir.join("every_layer.lamina"))?;
    let xs = inputs()?;
    for (k, x) in xs.iter().enumerate() {
        x.write_npy(dir.join(format!("every_layer.input{k}.npy")))?;
    }
    let ys = model.predict(&xs)?;
    for (k, y) in ys.iter().enumerate() {
        y.write_npy(dir.join(format!("every_layer.output{k}.npy")))?;
    }
    Ok(())
}

#[test]
fn a_version_2_file_loads_predicts_and_saves_as_it_did() -> Result<()> {
    let dir = fixtures();
    let model = Model::load(dir.join("every_layer.lamina"))?;
    let xs = (0..4)
        .map(|k| HostTensor::read_npy(dir.join(format!("every_layer.input{k}.npy"))))
        .collect::<Result<Vec<_>>>()?;
    let ys = model.predict(&xs)?;
    assert_eq!(ys.len(), 3);
    for (k, y) in ys.iter().enumerate() {
        let want = HostTensor::read_npy(dir.join(format!("every_layer.output{k}.npy")))?;
        assert_eq!(y.shape(), want.shape(), "output {k}");
        for (i, (a, b)) in y.as_f32()?.iter().zip(want.as_f32()?).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "output {k} element {i}: {a} vs {b}"
            );
        }
    }
    let resaved = std::env::temp_dir().join(format!("lamina-compat-{}", std::process::id()));
    std::fs::create_dir_all(&resaved).unwrap();
    let path = resaved.join("again.lamina");
    model.save(&path)?;
    let (again, old) = (
        architecture(&path),
        architecture(&dir.join("every_layer.lamina")),
    );
    let (again_layers, old_layers) = (again["layers"].as_array(), old["layers"].as_array());
    assert_eq!(again_layers.map(Vec::len), old_layers.map(Vec::len));
    for (k, (a, b)) in again_layers
        .iter()
        .flat_map(|l| l.iter())
        .zip(old_layers.iter().flat_map(|l| l.iter()))
        .enumerate()
    {
        assert_eq!(a, b, "layer {k} is written back differently");
    }
    assert_eq!(
        again, old,
        "the architecture written back differs from the file's"
    );
    std::fs::remove_dir_all(&resaved).ok();
    Ok(())
}

#[test]
fn the_fixture_calls_every_layer_class() {
    let arch = architecture(&fixtures().join("every_layer.lamina"));
    let mut classes: Vec<String> = Vec::new();
    let mut collect = |layers: &serde_json::Value| {
        for l in layers.as_array().unwrap() {
            classes.push(l["class"].as_str().unwrap().to_string());
            if let Some(inner) = l.get("layer") {
                classes.push(inner["class"].as_str().unwrap().to_string());
            }
        }
    };
    collect(&arch["layers"]);
    // Classes added after the fixture was written (each has its own save/load test).
    const NEWER_THAN_THE_FIXTURE: [&str; 1] = ["Identity"];
    for class in lamina::layers::layer_classes() {
        if NEWER_THAN_THE_FIXTURE.contains(&class) {
            continue;
        }
        assert!(
            classes.iter().any(|c| c == class),
            "the fixture has no {class} layer"
        );
    }
}
