//! Importing Keras 3 files: real `.keras` and `.weights.h5` files made by
//! tests/fixtures/make_keras_fixtures.py, whose Keras `predict` outputs Lamina must reproduce
//! on the CPU and the GPU within 1e-5 relative; clear errors for unbound Lambdas, missing
//! layer classes and mismatched weights; mutated files never panic.

mod common;

use lamina::prelude::*;
use lamina::saving::keras::{KerasArchive, KerasBindings};
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
    assert_eq!(got.shape(), want.shape(), "{what}: shapes");
    for (i, (a, b)) in got.to_f32_vec().iter().zip(want.to_f32_vec()).enumerate() {
        let tol = 1e-5 * a.abs().max(b.abs()) + 1e-7;
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
    for (g, w) in cpu.iter().zip(&want) {
        assert_close(&format!("{name} on the cpu"), g, w);
    }
    if let Some(gpu) = common::gpu() {
        let out = Session::with_backend(model.program().clone(), std::sync::Arc::new(gpu))
            .run(&inputs)
            .unwrap();
        for (g, w) in out.iter().zip(&want) {
            assert_close(&format!("{name} on the gpu"), g, w);
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
    for name in ["mlp", "dropout", "two_input", "text", "nested"] {
        let model = Model::load_keras(fixture(&format!("{name}.keras")), &bindings())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        check_against_keras(&model, name);
    }
}

#[test]
fn keras_cnns_reproduce_keras_predictions() {
    // Conv2D, BatchNormalization (trained moving statistics; center=False), ReLU,
    // MaxPooling2D, GlobalAveragePooling2D; then padding, depthwise and separable
    // convolutions, pooling, up-sampling, LeakyReLU/ELU/PReLU and a causal Conv1D.
    for name in ["cnn", "image_misc"] {
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
    assert!(e.contains("2 Lambda layer(s)"), "{e}");
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
    for name in ["mlp", "text", "nested", "two_input"] {
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
