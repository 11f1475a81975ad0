//! Models as layers of other models: every call shares the inner model's weights, weights are
//! addressed by Keras's nested paths (`tower/dense/kernel`), and `summary()` counts them once.
#![cfg(feature = "gpu")] // compares the CPU interpreter with the GPU backend

use crate::common;

use common::run_both;
use lamina::prelude::*;

fn tower() -> Result<Model> {
    let x = Input::new(&[4]).tensor();
    let y = Dense::new(3).name("dense").call(&x)?;
    Model::named("tower", &[x], &[y])
}

#[test]
fn a_model_called_twice_shares_its_weights() -> Result<()> {
    let t = tower()?;
    let a = Input::new(&[4]).tensor();
    let b = Input::new(&[4]).tensor();
    let ya = t.call(&a)?;
    let yb = t.call(&b)?;
    let out = Add::new().name("add").call([&ya, &yb])?;
    let outer = Model::named("outer", &[a, b], &[out])?;
    // One set of weights, under the nested path.
    let paths: Vec<String> = outer.named_weights().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["tower/dense/kernel", "tower/dense/bias"]);
    assert_eq!(outer.count_params(), 15);
    let s = outer.summary_string()?;
    assert!(s.contains("tower (Functional)"), "{s}");
    assert!(s.contains(" Total params: 15 (60.00 B)"), "{s}");
    assert!(s.contains(" Trainable params: 15 (60.00 B)"), "{s}");
    // Set by the nested path; the inner model sees the same weight by its own path.
    let kernel: Vec<f32> = (0..12).map(|i| i as f32 / 10.0).collect();
    outer.set_weight(
        "tower/dense/kernel",
        HostTensor::new(&[4, 3], kernel.clone())?,
    )?;
    outer.set_weight(
        "tower/dense/bias",
        HostTensor::new(&[3], vec![1.0f32, 0.0, -1.0])?,
    )?;
    assert_eq!(t.get_weight("dense/kernel")?.as_f32()?, kernel.as_slice());
    let xa = HostTensor::new(&[1, 4], vec![1.0f32, 0.0, 0.0, 0.0])?;
    let xb = HostTensor::new(&[1, 4], vec![0.0f32, 0.0, 0.0, 2.0])?;
    let y = &run_both(&outer, &[xa, xb])[0];
    // (row 0 of the kernel + bias) + (2 * row 3 + bias), by hand.
    let want = [
        0.0 + 1.0 + 2.0 * 0.9 + 1.0,
        0.1 + 0.0 + 2.0 * 1.0,
        0.2 - 1.0 + 2.0 * 1.1 - 1.0,
    ];
    for (g, w) in y.as_f32()?.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{g} vs {w}");
    }
    // Freezing the tower's weights shows in the outer summary.
    for v in t.weights() {
        v.set_trainable(false);
    }
    let s = outer.summary_string()?;
    assert!(s.contains(" Non-trainable params: 15 (60.00 B)"), "{s}");
    Ok(())
}

#[test]
fn a_sequential_nests_in_a_sequential() -> Result<()> {
    let mut inner = Sequential::named("block");
    inner.add(Input::new(&[3]))?;
    inner.add(Dense::new(2).name("d1"))?;
    inner.add(ReLU::new())?;
    let mut outer = Sequential::named("outer");
    outer.add(Input::new(&[3]))?;
    outer.add(inner.model()?)?;
    outer.add(Dense::new(1).name("head"))?;
    let m = outer.model()?;
    let paths: Vec<String> = m.named_weights().into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        [
            "block/d1/kernel",
            "block/d1/bias",
            "head/kernel",
            "head/bias"
        ]
    );
    assert!(m.summary_string()?.contains("block (Sequential)"));
    let x = HostTensor::new(&[2, 3], vec![1.0f32, 2.0, 3.0, -1.0, 0.0, 1.0])?;
    let y = run_both(&m, std::slice::from_ref(&x));
    // The same as running the inner model and the head by hand.
    let h = run_both(&inner.model()?, &[x])[0].clone();
    let k = m.get_weight("head/kernel")?;
    let k = k.as_f32()?;
    for r in 0..2 {
        let hr = &h.as_f32()?[r * 2..r * 2 + 2];
        let want = hr[0] * k[0] + hr[1] * k[1];
        assert!((y[0].as_f32()?[r] - want).abs() < 1e-5);
    }
    Ok(())
}

#[test]
fn a_nested_model_refuses_a_wrong_input() -> Result<()> {
    let t = tower()?;
    let x = Input::new(&[5]).tensor();
    let e = t.call(&x).unwrap_err().to_string();
    assert!(e.contains("tower"), "{e}");
    Ok(())
}

#[test]
fn nested_models_save_and_load() -> Result<()> {
    // A functional tower called twice, inside a Sequential-built block, inside the outer model.
    let t = tower()?;
    let mut block = Sequential::named("block");
    block.add(Input::new(&[3]))?;
    block.add(Dense::new(4).name("d1"))?;
    block.add(PReLU::new().name("act"))?;
    let a = Input::new(&[3]).tensor();
    let b = Input::new(&[4]).tensor();
    let ha = t.call(&block.model()?.call(&a)?)?;
    let hb = t.call(&b)?;
    let out = Dot::new(1).normalize(true).name("cos").call([&ha, &hb])?;
    let outer = Model::named("outer", &[a, b], &[out])?;
    outer.set_weight(
        "block/act/alpha",
        HostTensor::new(&[4], vec![0.1f32, 0.2, 0.3, 0.4])?,
    )?;
    outer
        .find_weight_for_test("tower/dense/bias")?
        .set_trainable(false);
    let inputs = [
        HostTensor::new(&[2, 3], vec![1.0f32, -2.0, 0.5, 0.0, 1.0, -1.0])?,
        HostTensor::new(&[2, 4], vec![0.3f32, -0.2, 1.5, 2.0, -1.0, 0.0, 0.25, 0.5])?,
    ];
    let before = run_both(&outer, &inputs);
    let loaded = Model::from_bytes(&outer.to_bytes()?)?;
    let after = run_both(&loaded, &inputs);
    assert_eq!(before[0].as_f32()?, after[0].as_f32()?);
    let paths =
        |m: &Model| -> Vec<String> { m.named_weights().into_iter().map(|(p, _)| p).collect() };
    assert_eq!(paths(&loaded), paths(&outer));
    assert_eq!(
        paths(&loaded),
        [
            "block/d1/kernel",
            "block/d1/bias",
            "block/act/alpha",
            "tower/dense/kernel",
            "tower/dense/bias"
        ]
    );
    assert_eq!(loaded.summary_string()?, outer.summary_string()?);
    let frozen: Vec<String> = loaded
        .non_trainable_weights()
        .iter()
        .map(|v| v.path())
        .collect();
    assert_eq!(frozen, ["dense/bias"]);
    // The loaded tower still shares its weights between its two calls.
    loaded.set_weight(
        "tower/dense/kernel",
        HostTensor::new(&[4, 3], vec![0.0f32; 12])?,
    )?;
    let zeroed = run_both(&loaded, &inputs);
    assert_ne!(zeroed[0].as_f32()?, before[0].as_f32()?);
    Ok(())
}

/// Finds a weight by its nested path.
trait FindWeight {
    fn find_weight_for_test(&self, path: &str) -> Result<std::sync::Arc<lamina::Variable>>;
}

impl FindWeight for Model {
    fn find_weight_for_test(&self, path: &str) -> Result<std::sync::Arc<lamina::Variable>> {
        self.named_weights()
            .into_iter()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v)
            .ok_or_else(|| lamina::Error::Model {
                detail: format!("no weight {path}"),
            })
    }
}

#[test]
fn load_weights_takes_nested_paths() -> Result<()> {
    let t = tower()?;
    let a = Input::new(&[4]).tensor();
    let y = t.call(&a)?;
    let outer = Model::named("outer", &[a], &[y])?;
    let kernel: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let bytes: Vec<u8> = kernel.iter().flat_map(|x| x.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![4, 3], &bytes).unwrap();
    let file = safetensors::serialize(vec![("tower/dense/kernel", view)], None).unwrap();
    let dir = std::env::temp_dir().join(format!("lamina-nested-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.safetensors");
    std::fs::write(&path, file).unwrap();
    outer.load_weights(&path)?;
    assert_eq!(t.get_weight("dense/kernel")?.as_f32()?, kernel.as_slice());
    // The inner model's own path is not a path of the outer model.
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![4, 3], &bytes).unwrap();
    let file = safetensors::serialize(vec![("dense/kernel", view)], None).unwrap();
    std::fs::write(&path, file).unwrap();
    let e = outer.load_weights(&path).unwrap_err().to_string();
    assert!(e.contains("tower/dense/kernel"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
