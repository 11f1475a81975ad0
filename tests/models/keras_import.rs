//! Importing Keras 3 files: real `.keras`, `.weights.h5` and legacy `.h5` files made by
//! tests/fixtures/make_keras_fixtures.py, whose Keras `predict` outputs Lamina must reproduce
//! on the CPU within 1e-5 relative and on the GPU within 2e-5 relative and 1e-6 absolute;
//! clear errors for unbound Lambdas and custom layers, missing layer classes and operations,
//! and mismatched weights; mutated files never panic.
#![cfg(feature = "gpu")] // compares the CPU interpreter with the GPU backend

use crate::common;

use lamina::keras::{KerasArchive, KerasBindings};
use lamina::prelude::*;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keras")
        .join(name)
}

fn npys(model: &str, kind: &str) -> Vec<HostTensor> {
    (0..)
        .map(|i| fixture(&format!("{model}.{kind}{i}.npy")))
        .take_while(|p| p.exists())
        .map(|p| HostTensor::read_npy(p).unwrap())
        .collect()
}

fn assert_close(what: &str, got: &HostTensor, want: &HostTensor) {
    assert_close_within(what, got, want, 1e-5, 1e-7);
}

/// As `assert_close`, within `rel` relative plus `abs` absolute, the absolute part also
/// allowing `rel / 10` of the output's largest magnitude: a value that cancels out of larger
/// terms (a resize of unit-scale pixels giving 1e-3) keeps the rounding of those terms.
fn assert_close_within(what: &str, got: &HostTensor, want: &HostTensor, rel: f32, abs: f32) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes");
    let want_values = want.to_f32_vec();
    let scale = want_values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0f32, |m, v| m.max(v.abs()));
    let abs = abs + rel / 10.0 * scale;
    for (i, (a, b)) in got.to_f32_vec().iter().zip(want_values).enumerate() {
        let tol = rel * a.abs().max(b.abs()) + abs;
        assert!(
            (a - b).abs() <= tol,
            "{what}: element {i}: lamina {a} vs keras {b}"
        );
    }
}

/// Runs the model on the fixture's inputs on the CPU and (where there is an adapter) the GPU,
/// and compares both with Keras's outputs.
fn check_against_keras(model: &Model, name: &str) {
    let inputs = npys(name, "input");
    let want = npys(name, "output");
    assert!(!inputs.is_empty() && !want.is_empty(), "{name}: fixtures");
    let cpu = Session::new(model.program().clone(), BackendKind::Cpu)
        .unwrap()
        .run(&inputs)
        .unwrap();
    assert_eq!(cpu.len(), want.len());
    for (k, (g, w)) in cpu.iter().zip(&want).enumerate() {
        assert_close(&format!("{name} output {k} on the cpu"), g, w);
    }
    if let Some(gpu) = common::gpu() {
        let out = Session::with_backend(model.program().clone(), std::sync::Arc::new(gpu))
            .run(&inputs)
            .unwrap();
        assert_eq!(out.len(), want.len());
        // The GPU's own functions (asin, erf, ...) are as close as the backends are to each
        // other: 2e-5 relative and 1e-6 absolute, as common::run_both checks.
        for (k, (g, w)) in out.iter().zip(&want).enumerate() {
            assert_close_within(&format!("{name} output {k} on the gpu"), g, w, 2e-5, 1e-6);
        }
    }
}

/// The error of a load that must fail.
fn load_err(r: lamina::Result<Model>) -> String {
    match r {
        Ok(_) => panic!("the load succeeded"),
        Err(e) => e.to_string(),
    }
}

fn bindings() -> KerasBindings {
    KerasBindings::new()
        // By the Python function's name (`def abs_diff(xs)`).
        .bind("abs_diff", Lambda::multi(|xs| (&xs[0] - &xs[1]).abs()))
        // By the layer's name (a Python `lambda` has none worth binding).
        .bind("affine", Lambda::new(|x| x * 2.0 + 1.0))
        .bind(
            "halve",
            Lambda::new(|x| x * 0.5).mask_fn(|_, masks| masks[0].clone()),
        )
}

#[test]
fn keras_models_reproduce_keras_predictions() {
    for name in ["mlp", "dropout", "two_input", "text", "nested", "identity"] {
        let model = Model::load_keras(fixture(&format!("{name}.keras")), &bindings())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        check_against_keras(&model, name);
    }
}

#[test]
fn keras_cnns_reproduce_keras_predictions() {
    // Conv2D, BatchNormalization (trained moving statistics; center=False), ReLU,
    // MaxPooling2D, GlobalAveragePooling2D; then padding, depthwise and separable
    // convolutions, pooling, up-sampling, LeakyReLU/ELU/PReLU and a causal Conv1D; then the
    // blocks of Keras's application models (inverted residual, squeeze-and-excitation with
    // swish, grouped and separable convolutions).
    for name in ["cnn", "image_misc", "mobile_cnn"] {
        let model = Model::load_keras(fixture(&format!("{name}.keras")), &bindings())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        check_against_keras(&model, name);
    }
    let cnn = Model::load_keras(fixture("cnn.keras"), &bindings()).unwrap();
    let mean = cnn
        .get_weight("batch_normalization/moving_mean")
        .unwrap()
        .to_f32_vec();
    assert!(mean.iter().any(|m| m.abs() > 1e-3), "{mean:?}");
    assert!(cnn.get_weight("batch_normalization_1/beta").is_err());
}

#[test]
fn keras_recurrent_models_reproduce_keras_predictions() {
    // LSTM, SimpleRNN and GRU (reset_after), whose weights Keras keeps under `cell/vars`.
    let model = Model::load_keras(fixture("lstm.keras"), &bindings()).unwrap();
    check_against_keras(&model, "lstm");
    assert_eq!(
        model.get_weight("lstm/lstm_cell/kernel").unwrap().shape(),
        &[4, 32]
    );
}

#[test]
fn names_and_weights_follow_keras() {
    let m = Model::load_keras(fixture("two_input.keras"), &bindings()).unwrap();
    assert_eq!(m.name(), "siamese");
    // The shared layer is one layer with one set of weights, called twice.
    assert_eq!(m.get_weight("shared/kernel").unwrap().shape(), &[5, 7]);
    assert_eq!(m.get_weight("head/bias").unwrap().shape(), &[2]);
    let names: Vec<String> = m.layers().iter().map(|l| l.name()).collect();
    for n in [
        "left",
        "right",
        "shared",
        "abs_diff",
        "affine",
        "concatenate",
        "head",
    ] {
        assert!(names.contains(&n.to_string()), "{n} in {names:?}");
    }
    // Nested models are inlined, their layers keep their Keras names.
    let nested = Model::load_keras(fixture("nested.keras"), &bindings()).unwrap();
    assert_eq!(
        nested.get_weight("dense_5/kernel").unwrap().shape(),
        &[4, 6]
    );
    assert_eq!(
        nested.get_weight("dense_6/kernel").unwrap().shape(),
        &[6, 6]
    );
}

#[test]
fn keras_weights_load_into_a_model_built_in_rust() {
    let build = || {
        let mut s = Sequential::new();
        s.add(Input::new(&[8])).unwrap();
        s.add(Dense::new(16).activation(Activation::Relu)).unwrap();
        s.add(Dense::new(4)).unwrap();
        s.model().unwrap()
    };
    for file in ["mlp.weights.h5", "mlp.keras"] {
        let model = build();
        model.load_keras_weights(fixture(file)).unwrap();
        check_against_keras(&model, "mlp");
    }
    // A model of another shape: every mismatch is listed and nothing changes.
    let mut s = Sequential::new();
    s.add(Input::new(&[8])).unwrap();
    s.add(Dense::new(15)).unwrap();
    s.add(Dense::new(4)).unwrap();
    s.add(Dense::new(2)).unwrap();
    let m = s.model().unwrap();
    let before = m.weights().iter().map(|v| v.value()).collect::<Vec<_>>();
    let e = m
        .load_keras_weights(fixture("mlp.weights.h5"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("layers/dense'") && e.contains("[8, 15]"), "{e}");
    assert!(e.contains("layers/dense_2"), "{e}");
    let after = m.weights().iter().map(|v| v.value()).collect::<Vec<_>>();
    assert_eq!(before, after);
}

#[test]
fn unbound_lambdas_are_named_with_how_to_bind_them() {
    let e = load_err(Model::load_keras(
        fixture("two_input.keras"),
        &KerasBindings::new(),
    ));
    assert!(e.contains("2 layer(s) need a Rust body"), "{e}");
    assert!(e.contains("Lambda 'abs_diff'"), "{e}");
    assert!(e.contains("the Python function 'abs_diff'"), "{e}");
    assert!(e.contains(".bind(\"abs_diff\", Lambda::multi"), "{e}");
    assert!(e.contains("Lambda 'affine'"), "{e}");
    assert!(
        e.contains("Python bytecode") && e.contains("<lambda>"),
        "{e}"
    );
    // A Keras mask function needs a mask in the binding.
    let no_mask = KerasBindings::new().bind("halve", Lambda::new(|x| x * 0.5));
    let e = load_err(Model::load_keras(fixture("text.keras"), &no_mask));
    assert!(e.contains("'halve' has a mask function"), "{e}");
}

#[test]
fn missing_layer_classes_are_all_listed() {
    let path = fixture("mlp.keras");
    let mut archive = KerasArchive::open(&path).unwrap();
    let text = String::from_utf8(archive.config.clone()).unwrap();
    let text = text
        .replacen("\"class_name\": \"Dense\"", "\"class_name\": \"Conv7D\"", 1)
        .replacen(
            "\"class_name\": \"Dense\"",
            "\"class_name\": \"QuantumLayer\"",
            1,
        );
    archive.config = text.into_bytes();
    let e = load_err(Model::from_keras_archive(
        &archive,
        &KerasBindings::new(),
        &path,
    ));
    assert!(
        e.contains("Conv7D (dense)") && e.contains("QuantumLayer (dense_1)"),
        "{e}"
    );
}

#[test]
fn other_formats_are_named() {
    let dir = std::env::temp_dir().join(format!("lamina-keras-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut s = Sequential::new();
    s.add(Input::new(&[8])).unwrap();
    s.add(Dense::new(4)).unwrap();
    let m = s.model().unwrap();
    let e = m
        .load_weights(fixture("mlp.weights.h5"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("HDF5"), "{e}");
    let e = m
        .load_weights(fixture("mlp.keras"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("zip"), "{e}");
    let e = m
        .load_weights(fixture("mlp.input0.npy"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("NumPy"), "{e}");
    let e = load_err(Model::load_keras(
        fixture("mlp.weights.h5"),
        &KerasBindings::new(),
    ));
    assert!(e.contains("load_keras_weights"), "{e}");
    // Strict safetensors loading names the weights a file lacks.
    let path = dir.join("partial.safetensors");
    let bigger = {
        let mut t = Sequential::new();
        t.add(Input::new(&[8])).unwrap();
        t.add(Dense::new(4).name("only")).unwrap();
        t.model().unwrap()
    };
    let kernel = bigger.get_weight("only/kernel").unwrap();
    let bytes = kernel
        .as_f32()
        .unwrap()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect::<Vec<u8>>();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![8, 4], &bytes).unwrap();
    safetensors::serialize_to_file([("only/kernel", view)], None, &path).unwrap();
    bigger.load_weights(&path).unwrap();
    let e = bigger.load_weights_strict(&path).unwrap_err().to_string();
    assert!(e.contains("only/bias"), "{e}");
}

/// A small deterministic generator, so that failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn mutated_keras_files_give_errors_not_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let dir = std::env::temp_dir().join(format!("lamina-keras-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in [
        "mlp",
        "text",
        "nested",
        "two_input",
        "bilstm",
        "time_distributed_dot",
        "dot_attention",
    ] {
        let path = fixture(&format!("{name}.keras"));
        let archive = KerasArchive::open(&path).unwrap();
        let start = std::time::Instant::now();
        for round in 0..300 {
            // The HDF5 bytes: flips, overwrites with extreme values, truncation.
            let mut h5 = archive.weights.clone();
            match round % 3 {
                0 => {
                    for _ in 0..(1 + rng.next() % 8) {
                        let i = (rng.next() as usize) % h5.len();
                        h5[i] ^= 1 << (rng.next() % 8);
                    }
                }
                1 => {
                    let i = (rng.next() as usize) % (h5.len() - 8);
                    let v = [0u8, 0xff, 0x7f, 0x80][(rng.next() % 4) as usize];
                    h5[i..i + 8].fill(v);
                }
                _ => h5.truncate((rng.next() as usize) % h5.len()),
            }
            let mutated = KerasArchive {
                config: archive.config.clone(),
                metadata: Vec::new(),
                weights: h5,
            };
            let _ = Model::from_keras_archive(&mutated, &bindings(), &path);
            // The configuration: a byte changed.
            let mut config = archive.config.clone();
            let i = (rng.next() as usize) % config.len();
            let alphabet = b"{}[]\",:0-9ez \x00";
            config[i] = alphabet[(rng.next() as usize) % alphabet.len()];
            let mutated = KerasArchive {
                config,
                metadata: Vec::new(),
                weights: archive.weights.clone(),
            };
            let _ = Model::from_keras_archive(&mutated, &bindings(), &path);
        }
        // The zip itself: flips and truncation, through the file reader.
        let bytes = std::fs::read(&path).unwrap();
        for round in 0..100 {
            let mut b = bytes.clone();
            if round % 2 == 0 {
                let i = (rng.next() as usize) % b.len();
                b[i] ^= 1 << (rng.next() % 8);
            } else {
                b.truncate((rng.next() as usize) % b.len());
            }
            let p = dir.join(format!("{name}-{round}.keras"));
            std::fs::write(&p, &b).unwrap();
            let _ = Model::load_keras(&p, &bindings());
            let _ = std::fs::remove_file(&p);
        }
        assert!(
            start.elapsed().as_secs() < 120,
            "{name}: mutations took too long"
        );
    }
}

#[test]
fn keras_variable_paths_with_the_model_name_are_accepted() {
    let m = Model::load_keras(fixture("mlp.keras"), &KerasBindings::new()).unwrap();
    assert_eq!(
        m.get_weight("mlp/dense/kernel").unwrap(),
        m.get_weight("dense/kernel").unwrap()
    );
}

#[test]
fn keras_attention_models_reproduce_keras_predictions() {
    // Token ids of run-time length -> Embedding(mask_zero) -> MultiHeadAttention called as
    // mha(x, x) on the masked embeddings -> residuals, LayerNormalization, feed-forward ->
    // masked pooling; the recorded ids have padding at the end of three rows.
    let model = Model::load_keras(fixture("transformer.keras"), &bindings()).unwrap();
    check_against_keras(&model, "transformer");
    assert_eq!(
        model
            .get_weight("multi_head_attention/query/kernel")
            .unwrap()
            .shape(),
        &[16, 2, 8]
    );
    // TimeDistributed(Dense), Dot(axes=2), Dot(axes=(1, 1), normalize=True), and a causal
    // cross-attention called with keywords (query, value, key, attention_mask).
    let model = Model::load_keras(fixture("time_distributed_dot.keras"), &bindings()).unwrap();
    check_against_keras(&model, "time_distributed_dot");
}

#[test]
fn keras_luong_and_bahdanau_attention_reproduce_keras_predictions() {
    // Embedding(mask_zero) query and value -> Attention(use_scale, score_mode="concat") called
    // causally with its scores, and AdditiveAttention on [query, value, key]; one value is
    // padded whole (Keras's -1e9 bias gives it a uniform softmax, not zeros).
    let model = Model::load_keras(fixture("dot_attention.keras"), &bindings()).unwrap();
    check_against_keras(&model, "dot_attention");
    let scalar: &[usize] = &[];
    assert_eq!(
        model
            .get_weight("attention/concat_score_weight")
            .unwrap()
            .shape(),
        scalar
    );
    assert_eq!(
        model
            .get_weight("additive_attention/scale")
            .unwrap()
            .shape(),
        &[6]
    );
    let scores = "\"return_attention_scores\": true";
    let e = load_edited("dot_attention", |t| {
        t.replace(scores, &format!("{scores}, \"bogus\": 1"))
    });
    assert!(
        e.contains("Attention 'attention'") && e.contains("'bogus'"),
        "{e}"
    );
    let e = load_edited("dot_attention", |t| {
        t.replace(scores, "\"return_attention_scores\": 2")
    });
    assert!(e.contains("not true or false"), "{e}");
    let e = load_edited("dot_attention", |t| {
        t.replace("\"score_mode\": \"concat\"", "\"score_mode\": \"general\"")
    });
    assert!(e.contains("'attention'") && e.contains("score_mode"), "{e}");
}

#[test]
fn keras_bidirectional_models_reproduce_keras_predictions() {
    // Masking -> Bidirectional(LSTM, return_sequences) -> Bidirectional(GRU, merge_mode="sum")
    // -> Dense over a run-time length, with masked steps at the end and in the middle.
    let model = Model::load_keras(fixture("bilstm.keras"), &bindings()).unwrap();
    check_against_keras(&model, "bilstm");
    for path in [
        "bidirectional/forward_lstm/lstm_cell/kernel",
        "bidirectional/backward_lstm/lstm_cell/kernel",
    ] {
        let names: Vec<String> = model.weights().iter().map(|v| v.path()).collect();
        assert!(names.contains(&path.to_string()), "{path} in {names:?}");
    }
}

/// The first `len` steps of sample `row` of a `(batch, steps, ...)` tensor, as a batch of one.
fn prefix_of(t: &HostTensor, row: usize, len: usize) -> HostTensor {
    let per_step: usize = t.shape()[2..].iter().product();
    let steps = t.shape()[1];
    let mut shape = t.shape().to_vec();
    shape[0] = 1;
    shape[1] = len;
    let range = row * steps * per_step..(row * steps + len) * per_step;
    match t.dtype() {
        DType::I32 => HostTensor::new(&shape, t.as_i32().unwrap()[range].to_vec()).unwrap(),
        _ => HostTensor::new(&shape, t.as_f32().unwrap()[range].to_vec()).unwrap(),
    }
}

/// Keras's output for sample `row`, as a batch of one.
fn row_of(t: &HostTensor, row: usize) -> HostTensor {
    let n: usize = t.shape()[1..].iter().product();
    let mut shape = t.shape().to_vec();
    shape[0] = 1;
    HostTensor::new(&shape, t.as_f32().unwrap()[row * n..(row + 1) * n].to_vec()).unwrap()
}

#[test]
fn keras_sequence_models_run_on_other_lengths() {
    // A sample whose last steps are masked gives what its unmasked prefix gives alone: the
    // padding is left out of attention, pooling and both recurrent directions.
    for (name, cases) in [
        ("transformer", &[(0usize, 4usize), (2, 6), (3, 1)][..]),
        ("bilstm", &[(0, 4)][..]),
    ] {
        let model = Model::load_keras(fixture(&format!("{name}.keras")), &bindings()).unwrap();
        let x = &npys(name, "input")[0];
        let want = &npys(name, "output")[0];
        for &(row, len) in cases {
            let got = common::run_both(&model, &[prefix_of(x, row, len)]);
            assert_close(
                &format!("{name}: sample {row} cut to {len} steps"),
                &got[0],
                &row_of(want, row),
            );
        }
    }
    // Another length than the recorded one runs, on both backends.
    let model = Model::load_keras(fixture("bilstm.keras"), &bindings()).unwrap();
    let mut rng = Rng(7);
    let data: Vec<f32> = (0..2 * 9 * 4)
        .map(|_| (rng.next() % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    let out = common::run_both(&model, &[HostTensor::new(&[2, 9, 4], data).unwrap()]);
    assert_eq!(out[0].shape(), &[2, 2]);
    assert!(out[0].to_f32_vec().iter().all(|v| v.is_finite()));
}

#[test]
fn keras_weights_of_wrappers_and_attention_load_into_models_built_in_rust() {
    // Keras's places: `bidirectional/forward_layer/cell/vars`, `time_distributed/layer/vars`,
    // `multi_head_attention/query_dense/vars` ...
    let x = Input::with_dims(vec![Dim::Dynamic, Dim::Known(4)]).tensor();
    let h = Masking::new(0.0).call(&x).unwrap();
    let h = Bidirectional::new(&LSTM::new(6).return_sequences(true))
        .unwrap()
        .call(&h)
        .unwrap();
    let h = Bidirectional::new(&GRU::new(5))
        .unwrap()
        .merge_mode(MergeMode::Sum)
        .call(&h)
        .unwrap();
    let y = Dense::new(2).call(&h).unwrap();
    let bilstm = Model::new(&[x], &[y]).unwrap();
    bilstm.load_keras_weights(fixture("bilstm.keras")).unwrap();
    check_against_keras(&bilstm, "bilstm");

    let x = Input::new(&[5, 4]).tensor();
    let ctx = Input::new(&[6, 4]).tensor();
    let allowed = Input::new(&[5, 6]).dtype(DType::Bool).tensor();
    let a = TimeDistributed::new(Dense::new(3)).call(&x).unwrap();
    let b = Dense::new(3).call(&x).unwrap();
    let d1 = Dot::new(2).call([&a, &b]).unwrap();
    let d2 = Dot::pair(1, 1).normalize(true).call([&a, &b]).unwrap();
    let key = Dense::new(4).call(&ctx).unwrap();
    let att = MultiHeadAttention::new(2, 3)
        .use_causal_mask(true)
        .call([&x, &ctx, &key, &allowed])
        .unwrap();
    let model = Model::new(&[x, ctx, allowed], &[d1, d2, att]).unwrap();
    model
        .load_keras_weights(fixture("time_distributed_dot.keras"))
        .unwrap();
    check_against_keras(&model, "time_distributed_dot");

    // A model whose attention is narrower: each mismatch is named, nothing is loaded.
    let q = Input::new(&[5, 4]).tensor();
    let v = Input::new(&[6, 4]).tensor();
    let att = MultiHeadAttention::new(1, 3).call([&q, &v]).unwrap();
    let narrow = Model::new(&[q, v], &[att]).unwrap();
    let e = narrow
        .load_keras_weights(fixture("time_distributed_dot.keras"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("multi_head_attention/query_dense") && e.contains("[4, 1, 3]"),
        "{e}"
    );
    assert!(e.contains("layers/time_distributed/layer"), "{e}");
}

#[test]
fn imported_attention_and_wrappers_save_and_load_as_lamina_files() {
    // TimeDistributed, Dot and a causal MultiHeadAttention with an attention_mask input keep
    // their configuration and weights through a Lamina file.
    let dir = std::env::temp_dir().join(format!("lamina-keras-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let name = "time_distributed_dot";
    let model = Model::load_keras(fixture(&format!("{name}.keras")), &bindings()).unwrap();
    let path = dir.join(format!("{name}.lamina"));
    model.save(&path).unwrap();
    check_against_keras(&Model::load(&path).unwrap(), name);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn imported_masked_models_save_and_load_as_lamina_files() {
    // The masks Keras records as keras.ops nodes (NotEqual of Embedding(mask_zero) and of
    // Masking, LogicalOr, Any) are imported as Lambda layers, so they save as expression
    // graphs: the loaded file gives the imported model's outputs, which are Keras's.
    let dir = std::env::temp_dir().join(format!("lamina-keras-masks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, ops) in [
        ("text", &["not_equal"][..]),
        (
            "transformer",
            &["not_equal", "logical_or", "logical_or_1"][..],
        ),
        ("bilstm", &["not_equal", "any"][..]),
    ] {
        let model = Model::load_keras(fixture(&format!("{name}.keras")), &bindings())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for op in ops {
            let layer = model.get_layer(op).unwrap();
            assert_eq!(layer.kind(), "Lambda", "{name}: {op}");
            assert!(layer.variables().is_empty(), "{name}: {op}");
        }
        let path = dir.join(format!("{name}.lamina"));
        model
            .save(&path)
            .unwrap_or_else(|e| panic!("{name}: save: {e}"));
        let loaded = Model::load(&path).unwrap_or_else(|e| panic!("{name}: load: {e}"));
        if name == "transformer" {
            // "Connected to" lists a mask given explicitly after the inputs, as Keras does.
            let summary = model.summary_string().unwrap();
            assert!(
                summary.contains("layer_normalization_1[0][0], logical_or_1[0][0]"),
                "{summary}"
            );
        }
        assert_eq!(
            loaded.summary_string().unwrap(),
            model.summary_string().unwrap(),
            "{name}: summary"
        );
        check_against_keras(&loaded, name);
        let inputs = npys(name, "input");
        let want = common::run_both(&model, &inputs);
        let got = common::run_both(&loaded, &inputs);
        for (g, w) in got.iter().zip(&want) {
            assert_close(&format!("{name}: loaded vs imported"), g, w);
        }
        let _ = std::fs::remove_file(&path);
    }
    // An op sees no masks, as in Keras, where only layers take them: `any` over the Masking
    // layer's (masked) output instead of over `not_equal` makes the same mask, and saves.
    let keras = fixture("bilstm.keras");
    let mut archive = KerasArchive::open(&keras).unwrap();
    let text = String::from_utf8(archive.config.clone()).unwrap();
    let edited = text.replacen(
        r#""keras_history": ["not_equal", 0, 0]"#,
        r#""keras_history": ["masking", 0, 0]"#,
        1,
    );
    assert_ne!(edited, text);
    archive.config = edited.into_bytes();
    let model = Model::from_keras_archive(&archive, &bindings(), &keras).unwrap();
    check_against_keras(&model, "bilstm");
    let path = dir.join("bilstm_any_of_masked.lamina");
    model.save(&path).unwrap();
    check_against_keras(&Model::load(&path).unwrap(), "bilstm");
    let _ = std::fs::remove_file(&path);
    // An op called twice (text's pooling takes its mask from a second call of `not_equal`)
    // shares its layer when both calls compute the same, and gets a second one otherwise.
    for (constant, second) in [(0, None), (1, Some("not_equal_call1"))] {
        let keras = fixture("text.keras");
        let mut archive = KerasArchive::open(&keras).unwrap();
        let mut config: serde_json::Value = serde_json::from_slice(&archive.config).unwrap();
        for layer in config["config"]["layers"].as_array_mut().unwrap() {
            match layer["name"].as_str() {
                Some("not_equal") => {
                    let nodes = layer["inbound_nodes"].as_array_mut().unwrap();
                    let mut node = nodes[0].clone();
                    node["args"][1] = constant.into();
                    nodes.push(node);
                }
                Some("global_average_pooling1d") => {
                    layer["inbound_nodes"][0]["kwargs"]["mask"]["config"]["keras_history"] =
                        serde_json::json!(["not_equal", 1, 0]);
                }
                _ => {}
            }
        }
        archive.config = serde_json::to_vec(&config).unwrap();
        let model = Model::from_keras_archive(&archive, &bindings(), &keras).unwrap();
        let ops: Vec<String> = model
            .layers()
            .iter()
            .map(|l| l.name())
            .filter(|n| n.starts_with("not_equal"))
            .collect();
        let want: Vec<&str> = std::iter::once("not_equal").chain(second).collect();
        assert_eq!(ops, want, "{constant}");
        let path = dir.join("text_two_calls.lamina");
        model.save(&path).unwrap();
        let inputs = npys("text", "input");
        let want = common::run_both(&model, &inputs);
        let got = common::run_both(&Model::load(&path).unwrap(), &inputs);
        assert_close("text with two calls of not_equal", &got[0], &want[0]);
        if second.is_none() {
            check_against_keras(&model, "text");
        }
        let _ = std::fs::remove_file(&path);
    }
    let _ = std::fs::remove_dir(&dir);
}

/// The error of loading `name`'s archive after `edit` of its config.json.
fn load_edited(name: &str, edit: impl Fn(String) -> String) -> String {
    let path = fixture(&format!("{name}.keras"));
    let mut archive = KerasArchive::open(&path).unwrap();
    let text = String::from_utf8(archive.config.clone()).unwrap();
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the edit changed nothing");
    archive.config = edited.into_bytes();
    load_err(Model::from_keras_archive(&archive, &bindings(), &path))
}

#[test]
fn unsupported_attention_and_wrapper_arguments_are_named() {
    let causal = "\"use_causal_mask\": true";
    let e = load_edited("time_distributed_dot", |t| {
        t.replace(causal, &format!("{causal}, \"bogus\": 1"))
    });
    assert!(
        e.contains("MultiHeadAttention 'multi_head_attention'") && e.contains("'bogus'"),
        "{e}"
    );
    let e = load_edited("time_distributed_dot", |t| {
        t.replace(causal, "\"use_causal_mask\": \"yes\"")
    });
    assert!(
        e.contains("use_causal_mask") && e.contains("not true or false"),
        "{e}"
    );
    let e = load_edited("time_distributed_dot", |t| {
        t.replace(causal, &format!("{causal}, \"query_mask\": {{\"a\": 1}}"))
    });
    assert!(e.contains("query_mask"), "{e}");
    let e = load_edited("time_distributed_dot", |t| {
        t.replace("\"use_gate\": false", "\"use_gate\": true")
    });
    assert!(
        e.contains("'multi_head_attention'") && e.contains("use_gate"),
        "{e}"
    );
    let e = load_edited("transformer", |t| {
        t.replace("\"sliding_window\": null", "\"sliding_window\": 4")
    });
    assert!(e.contains("sliding_window"), "{e}");
    // Wrappers: an unknown wrapped class is listed with the others; a Bidirectional of a
    // Dense, or an unknown merge mode, names the layer.
    let e = load_edited("time_distributed_dot", |t| {
        t.replacen("\"class_name\": \"Dense\"", "\"class_name\": \"Conv7D\"", 1)
    });
    assert!(e.contains("Conv7D (dense"), "{e}");
    let e = load_edited("bilstm", |t| {
        t.replacen("\"class_name\": \"LSTM\"", "\"class_name\": \"Dense\"", 1)
    });
    assert!(e.contains("'bidirectional'") && e.contains("Dense"), "{e}");
    let e = load_edited("bilstm", |t| {
        t.replace("\"merge_mode\": \"sum\"", "\"merge_mode\": \"max\"")
    });
    assert!(e.contains("'bidirectional_1'") && e.contains("max"), "{e}");
    let e = load_edited("bilstm", |t| {
        t.replacen("\"stateful\": false", "\"stateful\": true", 1)
    });
    assert!(e.contains("stateful"), "{e}");
    // Keras's other flags are read: with return_attention_scores the layer gives the scores
    // as a second output, and the model's output (the first) is unchanged.
    let path = fixture("time_distributed_dot.keras");
    let mut archive = KerasArchive::open(&path).unwrap();
    let text = String::from_utf8(archive.config.clone()).unwrap();
    archive.config = text
        .replace(
            causal,
            &format!("{causal}, \"return_attention_scores\": true, \"training\": false"),
        )
        .into_bytes();
    let model = Model::from_keras_archive(&archive, &bindings(), &path).unwrap();
    check_against_keras(&model, "time_distributed_dot");
    let mha = model.get_layer("multi_head_attention").unwrap();
    let config = lamina::layers::Configurable::config(
        mha.as_any().downcast_ref::<MultiHeadAttention>().unwrap(),
    );
    assert!(
        config.use_causal_mask && config.return_attention_scores,
        "use_causal_mask and return_attention_scores"
    );
    // Dot's axes must be integers.
    let e = load_edited("time_distributed_dot", |t| {
        t.replace("\"axes\": 2", "\"axes\": \"two\"")
    });
    assert!(e.contains("'dot'") && e.contains("axes"), "{e}");
}

#[test]
fn configurations_larger_than_their_weights_are_refused_before_allocating() {
    // Sizes whose initial values would take gigabytes: each is an error naming the layer, made
    // before anything that large is allocated (every weight must come from the file).
    let e = load_edited("mlp", |t| {
        t.replacen("\"units\": 16", "\"units\": 536870912", 1)
    });
    assert!(
        e.contains("'dense'") && e.contains("more than the weights file has left"),
        "{e}"
    );
    let e = load_edited("bilstm", |t| t.replace("\"units\": 6", "\"units\": 30000"));
    assert!(e.contains("more than the weights file has left"), "{e}");
    let e = load_edited("transformer", |t| {
        t.replacen("\"input_dim\": 50", "\"input_dim\": 100000000", 1)
    });
    assert!(e.contains("more than the weights file has left"), "{e}");
    let e = load_edited("transformer", |t| {
        t.replacen("\"num_heads\": 2", "\"num_heads\": 300000", 1)
    });
    assert!(e.contains("more than the weights file has left"), "{e}");
}

/// A recurrent layer whose units make an impossible recurrent kernel (the product overflows)
/// is an error naming the layer, not an overflow panic.
#[test]
fn recurrent_units_past_every_limit_are_named() {
    let e = load_edited("lstm", |t| {
        t.replacen("\"units\": 8", "\"units\": 4611686018427387904", 1)
    });
    assert!(e.contains("LSTM") && e.contains("units"), "{e}");
}

#[test]
fn keras_ops_graphs_reproduce_keras_predictions() {
    // x + y, scalars on either side, slices with steps, indices, None and ..., expand_dims,
    // mean/sum/max, concatenate, where, clip, softmax, matmul, and the OnesLike/ExpandDims/
    // Concatenate nodes Keras records for a masked concatenation.
    let model = Model::load_keras(fixture("ops_graph.keras"), &bindings()).unwrap();
    check_against_keras(&model, "ops_graph");
    // Most rows of the table, each an output: math, activations with their arguments,
    // reductions, scans, movement, bitwise ops and rounding on int32.
    let model = Model::load_keras(fixture("ops_table.keras"), &bindings()).unwrap();
    check_against_keras(&model, "ops_table");
    // An operation Lamina lacks is named.
    let e = load_edited("ops_graph", |t| {
        t.replacen(
            "\"class_name\": \"Matmul\"",
            "\"class_name\": \"Einsum\"",
            1,
        )
    });
    assert!(e.contains("Einsum (a keras.ops operation)"), "{e}");
    // A bad argument names the operation and its operands' shapes.
    let e = load_edited("ops_graph", |t| {
        t.replacen("\"axis\": -1}", "\"axis\": 7}", 1)
    });
    assert!(
        e.contains("operation 'expand_dims' (ExpandDims) on tensors of shapes [(None, 6)]")
            && e.contains("axis 7"),
        "{e}"
    );
    // Every entry of the table is a distinct Keras class.
    let mut classes: Vec<&str> = lamina::keras::KERAS_OPS.iter().map(|e| e.0).collect();
    classes.sort_unstable();
    let n = classes.len();
    classes.dedup();
    assert_eq!(classes.len(), n);
    // The book's table lists every one.
    let book =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src/saving.md"))
            .unwrap();
    for (class, method) in lamina::keras::KERAS_OPS {
        let row = format!("| `{class}` | `{method}` |");
        assert!(book.contains(&row), "docs/src/saving.md lacks {row}");
    }
}

#[test]
fn keras_preprocessing_and_application_layers_reproduce_keras_predictions() {
    // Rescaling, Normalization with fixed and adapted statistics, CenterCrop; a ConvNeXt block
    // with LayerScale, StochasticDepth and an `x + y` op.
    for name in ["preprocessing", "convnext_block"] {
        let model = Model::load_keras(fixture(&format!("{name}.keras")), &bindings())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        check_against_keras(&model, name);
    }
    let model = Model::load_keras(fixture("preprocessing.keras"), &bindings()).unwrap();
    let mean = model
        .get_weight("normalization_1/mean")
        .unwrap()
        .to_f32_vec();
    assert!(mean.iter().all(|m| (m - 2.0).abs() < 1.0), "{mean:?}");
    let block = Model::load_keras(fixture("convnext_block.keras"), &bindings()).unwrap();
    assert_eq!(block.get_weight("layer_scale/gamma").unwrap().shape(), &[8]);
}

fn scaled_residual() -> KerasBindings {
    bindings().bind_class("ScaledResidual", |cfg| {
        let alpha = cfg.f64("alpha")? as f32;
        Ok(Lambda::with_scope(move |xs, scope| {
            let width = xs[0].shape().dims()[1].known().unwrap_or(1);
            let kernel = scope.variable("kernel", &[width, width], 0.0);
            &xs[0] + &(xs[0].matmul(&kernel).tanh() * alpha)
        }))
    })
}

#[test]
fn custom_layers_are_bound_from_rust_by_class_name() {
    let model = Model::load_keras(fixture("custom_layer.keras"), &scaled_residual()).unwrap();
    check_against_keras(&model, "custom_layer");
    // The weight came from the file (its initial value is zeros).
    let kernel = model.get_weight("residual/kernel").unwrap().to_f32_vec();
    assert!(kernel.iter().any(|k| k.abs() > 1e-3));
    // Bound by the registered name too; unbound, the error names the class, its config keys
    // and the line to write.
    let by_registered = bindings().bind_class("demo>ScaledResidual", |cfg| {
        let alpha = cfg.f64("alpha")? as f32;
        Ok(Lambda::with_scope(move |xs, scope| {
            let kernel = scope.variable("kernel", &[4, 4], 0.0);
            &xs[0] + &(xs[0].matmul(&kernel).tanh() * alpha)
        }))
    });
    let model = Model::load_keras(fixture("custom_layer.keras"), &by_registered).unwrap();
    check_against_keras(&model, "custom_layer");
    let e = load_err(Model::load_keras(
        fixture("custom_layer.keras"),
        &bindings(),
    ));
    assert!(
        e.contains("custom layer class 'ScaledResidual'")
            && e.contains("alpha")
            && e.contains("bind_class(\"ScaledResidual\""),
        "{e}"
    );
    // A binding whose weights do not match the file is refused, naming the layer.
    let wrong = bindings().bind_class("ScaledResidual", |_| {
        Ok(Lambda::with_scope(|xs, scope| {
            &xs[0] + &scope.variable("kernel", &[4], 0.0)
        }))
    });
    let e = load_err(Model::load_keras(fixture("custom_layer.keras"), &wrong));
    assert!(e.contains("'residual'") && e.contains("[4, 4]"), "{e}");
}

#[test]
fn keras_state_passing_nested_outputs_and_shared_attention_reproduce_keras() {
    // An encoder-decoder LSTM (initial_state), a VAE whose outputs are nested functional
    // models' outputs, one MultiHeadAttention called with and without scores.
    for name in ["seq2seq", "mha_twice"] {
        let model = Model::load_keras(fixture(&format!("{name}.keras")), &bindings())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        check_against_keras(&model, name);
    }
    // The two attention calls share one set of weights.
    let model = Model::load_keras(fixture("mha_twice.keras"), &bindings()).unwrap();
    let n = model.weights().len();
    assert_eq!(
        n, 8,
        "query, key, value and output kernels and biases, once"
    );
}

#[test]
fn imported_ops_custom_and_preprocessing_models_save_and_load_as_lamina_files() {
    let dir = std::env::temp_dir().join(format!("lamina-keras-new-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in [
        "ops_graph",
        "preprocessing",
        "convnext_block",
        "custom_layer",
        "mha_twice",
        "seq2seq",
    ] {
        let model = Model::load_keras(fixture(&format!("{name}.keras")), &scaled_residual())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let path = dir.join(format!("{name}.lamina"));
        model.save(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let back = Model::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_against_keras(&back, name);
        let _ = std::fs::remove_file(&path);
    }
    let _ = std::fs::remove_dir(&dir);
}

#[test]
fn configs_without_their_default_keys_load_to_the_same_predictions() {
    // Each `<name>.stripped.json` is the model's config.json with every key that holds
    // Keras's default removed (make_keras_fixtures.py checks that Keras loads it to the same
    // predictions): Lamina must fill in the same defaults.
    let mut checked = 0;
    for entry in std::fs::read_dir(fixture("")).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(name) = file.strip_suffix(".stripped.json") else {
            continue;
        };
        let keras_path = fixture(&format!("{name}.keras"));
        let mut archive = KerasArchive::open(&keras_path).unwrap();
        archive.config = std::fs::read(&path).unwrap();
        let model = Model::from_keras_archive(&archive, &bindings(), &keras_path)
            .unwrap_or_else(|e| panic!("{name} without default keys: {e}"));
        check_against_keras(&model, name);
        checked += 1;
    }
    assert!(checked >= 15, "{checked} stripped configs");
}

#[test]
fn absent_config_keys_take_keras_defaults() {
    // Keras's recurrent layers default to tanh: a config without "activation" is not linear.
    let path = fixture("lstm.keras");
    let mut archive = KerasArchive::open(&path).unwrap();
    let text = String::from_utf8(archive.config.clone()).unwrap();
    let edited = text.replace("\"activation\": \"tanh\", ", "");
    assert_ne!(edited, text);
    archive.config = edited.into_bytes();
    let model = Model::from_keras_archive(&archive, &bindings(), &path).unwrap();
    check_against_keras(&model, "lstm");
}

#[test]
fn dot_normalize_matches_keras_for_tiny_vectors() {
    // Keras: x * min(rsqrt(sum x^2), 1e7). For x = (1e-8, 0) that is (0.1, 0), so the cosine
    // with (1, 0) is 0.1 (TensorFlow's l2_normalize convention would give 0.01).
    let a = Input::new(&[2]).tensor();
    let b = Input::new(&[2]).tensor();
    let out = Dot::new(1)
        .normalize(true)
        .call([a.clone(), b.clone()])
        .unwrap();
    let model = Model::new(&[a, b], &[out]).unwrap();
    let got = model
        .predict(&[
            HostTensor::new(&[1, 2], vec![1e-8f32, 0.0]).unwrap(),
            HostTensor::new(&[1, 2], vec![1.0f32, 0.0]).unwrap(),
        ])
        .unwrap();
    let v = got[0].to_f32_vec();
    assert!((v[0] - 0.1).abs() < 1e-6, "{v:?}");
}

#[test]
fn legacy_h5_models_reproduce_keras_predictions() {
    // `model.save("legacy.h5")`: the config in the model_config attribute, the weights under
    // model_weights/<layer>/ in the order of each group's weight_names.
    let model = Model::load_keras(fixture("legacy.h5"), &bindings()).unwrap();
    check_against_keras(&model, "legacy");
    // Nested models: their groups list their layers' weights by name.
    let model = Model::load_keras(fixture("legacy_nested.h5"), &bindings()).unwrap();
    check_against_keras(&model, "legacy_nested");
    // A weights-only HDF5 file is named as such.
    let e = load_err(Model::load_keras(fixture("mlp.weights.h5"), &bindings()));
    assert!(
        e.contains("no model_config") && e.contains("load_keras_weights"),
        "{e}"
    );
    // Mutated, it gives errors, never a panic (attributes, the global heap, the config).
    let bytes = std::fs::read(fixture("legacy.h5")).unwrap();
    let dir = std::env::temp_dir().join(format!("lamina-legacy-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for round in 0..300 {
        let mut b = bytes.clone();
        match round % 3 {
            0 => {
                for _ in 0..(1 + rng.next() % 8) {
                    let i = (rng.next() as usize) % b.len();
                    b[i] ^= 1 << (rng.next() % 8);
                }
            }
            1 => {
                let i = (rng.next() as usize) % (b.len() - 8);
                let v = [0u8, 0xff, 0x7f, 0x80][(rng.next() % 4) as usize];
                b[i..i + 8].fill(v);
            }
            _ => b.truncate(8 + (rng.next() as usize) % (b.len() - 8)),
        }
        let p = dir.join(format!("legacy-{round}.h5"));
        std::fs::write(&p, &b).unwrap();
        let _ = Model::load_keras(&p, &bindings());
        let _ = std::fs::remove_file(&p);
    }
    let _ = std::fs::remove_dir(&dir);
}

/// keras-io's VAE `Sampling` layer: `z_mean + exp(0.5 * z_log_var) * epsilon`.
fn sampling() -> KerasBindings {
    bindings().bind_class("Sampling", |_| {
        Ok(Lambda::multi(|xs| {
            let epsilon = xs[0].random_normal_like(0.0, 1.0, 1337);
            &xs[0] + &((&xs[1] * 0.5).exp() * epsilon)
        }))
    })
}

#[test]
fn a_vae_with_a_sampling_layer_runs_and_samples_by_its_distribution() {
    // The decoder's output, z_mean and z_log_var match Keras; z is random (Keras draws with
    // JAX's bits), so it is checked by its distribution.
    let model = Model::load_keras(fixture("vae.keras"), &sampling()).unwrap();
    let inputs = npys("vae", "input");
    let want = npys("vae", "output");
    let out = common::run_both(&model, &inputs);
    assert_eq!(out.len(), 4);
    for (k, (g, w)) in out.iter().zip(&want).take(3).enumerate() {
        assert_close(&format!("vae output {k}"), g, w);
    }
    assert_eq!(out[3].shape(), want[3].shape());
    // 4000 copies of the first input: epsilon = (z - z_mean) / exp(z_log_var / 2) ~ N(0, 1).
    let row = &inputs[0].to_f32_vec()[..6];
    let batch: Vec<f32> = row.iter().copied().cycle().take(6 * 4000).collect();
    let out = Session::new(model.program().clone(), BackendKind::Cpu)
        .unwrap()
        .run(&[HostTensor::new(&[4000, 6], batch).unwrap()])
        .unwrap();
    let (m, v, z) = (
        out[1].to_f32_vec(),
        out[2].to_f32_vec(),
        out[3].to_f32_vec(),
    );
    let eps: Vec<f64> = (0..z.len())
        .map(|i| ((z[i] - m[i]) / (0.5 * v[i]).exp()) as f64)
        .collect();
    let n = eps.len() as f64;
    let mean = eps.iter().sum::<f64>() / n;
    let var = eps.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / n;
    assert!(
        mean.abs() < 5.0 / n.sqrt() && (var - 1.0).abs() < 0.1,
        "{mean} {var}"
    );
    // The model saves with its sampling as data and loads back the same.
    let path = std::env::temp_dir().join(format!("lamina-vae-{}.lamina", std::process::id()));
    model.save(&path).unwrap();
    let back = Model::load(&path).unwrap();
    let again = Session::new(back.program().clone(), BackendKind::Cpu)
        .unwrap()
        .run(&inputs)
        .unwrap();
    assert_eq!(
        again[3].to_f32_vec(),
        common::run_both(&model, &inputs)[3].to_f32_vec()
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn keras_weights_load_into_a_rust_model_with_a_nested_model() {
    // The `nested` fixture rebuilt in Rust: a Sequential block used as a layer, whose weights
    // Keras keeps under layers/sequential/layers/dense....
    let mut block = Sequential::new();
    block.add(Input::new(&[4])).unwrap();
    block
        .add(Dense::new(6).activation(Activation::Relu))
        .unwrap();
    block.add(Dense::new(6)).unwrap();
    let block = block.model().unwrap();
    let inp = Input::new(&[4]).tensor();
    let h = block.call(&inp).unwrap();
    let side = Dense::new(6).call(&inp).unwrap();
    let sum = Add::new().call([h, side]).unwrap();
    let out = Softmax::new().call(&sum).unwrap();
    let model = Model::new(&[inp], &[out]).unwrap();
    model.load_keras_weights(fixture("nested.keras")).unwrap();
    check_against_keras(&model, "nested");
}
