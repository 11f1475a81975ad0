//! Saving and loading: everything round-trips with bit-identical CPU outputs, saves are atomic,
//! and hostile files give errors.
#![cfg(feature = "gpu")] // compares the CPU interpreter with the GPU backend

use lamina::prelude::*;
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lamina-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn antirectifier(x: &Tensor) -> Tensor {
    let x = x - x.mean_keepdims(1);
    let x = x.l2_normalize(1);
    Tensor::concatenate(&[x.relu(), (-&x).relu()], 1)
}

/// The quickstart's models, with inputs to run them on.
fn models() -> Result<Vec<(Model, Vec<HostTensor>)>> {
    let mut out = Vec::new();

    let mut square = Sequential::named("square");
    square.add(Input::new(&[3]))?;
    square.add(Lambda::new(|x| x.pow(2.0)).output_shape(&[3]))?;
    out.push((
        square.model()?,
        vec![HostTensor::new(
            &[2, 3],
            vec![1.0f32, -2.0, 3.0, 0.5, 4.0, -1.5],
        )?],
    ));

    let mut anti = Sequential::named("antirectifier");
    anti.add(Input::new(&[4]))?;
    anti.add(Lambda::new(antirectifier).name("antirectifier"))?;
    anti.add(Dense::new(3).activation(Activation::Softmax))?;
    out.push((
        anti.model()?,
        vec![HostTensor::new(
            &[2, 4],
            vec![1.0f32, 2.0, 3.0, 4.0, 3e-7, -1e-7, -1e-7, -1e-7],
        )?],
    ));

    let linear = Lambda::with_scope(|xs, s| {
        &xs[0] * s.variable("multiplier", &[], 1.0) + s.variable("bias", &[], 0.0)
    })
    .name("linear_transform");
    let mut lt = Sequential::named("linear");
    lt.add(Input::new(&[5]))?;
    lt.add(linear.clone())?;
    lt.add(Dense::new(5).activation(Activation::Relu))?;
    lt.add(linear.clone())?;
    linear.set_variable("multiplier", HostTensor::scalar(1.5))?;
    linear.set_variable("bias", HostTensor::scalar(-0.25))?;
    out.push((
        lt.model()?,
        vec![HostTensor::new(&[1, 5], vec![0.1f32, 0.2, 0.3, 0.4, 0.5])?],
    ));

    let a = Input::new(&[4]).name("a").tensor();
    let b = Input::new(&[4]).name("b").tensor();
    let shared = Dense::new(4).activation(Activation::Tanh).name("shared");
    let ha = shared.call(&a)?;
    let hb = shared.call(&b)?;
    let dist = Lambda::with_scope(|xs, s| (&xs[0] - &xs[1]).abs() * s.argument("scale"))
        .argument("scale", 2.0)
        .name("distance")
        .call(&[ha.clone(), hb.clone()])?;
    let sliced = Lambda::new(|x| x.slice(s![.., 1..]).cumsum(-1).softmax(-1))
        .output_shape_fn(|s| Shape::new([s[0].dims()[0], Dim::Known(3)]))
        .call(&dist)?;
    let merged = Lambda::multi(|xs| Tensor::concatenate(xs, -1)).call(&[sliced, ha, hb])?;
    let score = Dense::new(2).use_bias(false).call(&merged)?;
    let argmax =
        Lambda::new(|x| x.argmax_keepdims(-1).cast(DType::F32).where_gt_zero()).call(&score)?;
    let siamese = Model::named("siamese", &[a, b], &[score, argmax])?;
    out.push((
        siamese,
        vec![
            HostTensor::new(&[2, 4], vec![0.1f32, 0.2, 0.3, 0.4, 1.0, 0.0, -1.0, 0.5])?,
            HostTensor::new(&[2, 4], vec![0.1f32, -0.2, 0.3, 0.9, -1.0, 0.5, 1.0, 0.0])?,
        ],
    ));
    Ok(out)
}

/// A small extension used above so the body holds a comparison, a constant and `where`.
trait WhereGtZero {
    fn where_gt_zero(&self) -> Tensor;
}
impl WhereGtZero for Tensor {
    fn where_gt_zero(&self) -> Tensor {
        Tensor::where_(&self.greater(0.0), self, -1.0)
    }
}

/// The architecture JSON and the named tensors of a file (metadata order is not fixed).
fn contents(bytes: &[u8]) -> (String, Vec<(String, Vec<u8>)>) {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    let arch = meta.metadata().as_ref().unwrap()["architecture"].clone();
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let mut tensors: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.data().to_vec()))
        .collect();
    tensors.sort();
    (arch, tensors)
}

#[test]
fn every_model_round_trips_bit_identically() -> Result<()> {
    let dir = temp_dir("roundtrip");
    for (i, (model, inputs)) in models()?.into_iter().enumerate() {
        let path = dir.join(format!("m{i}.lamina"));
        model.save(&path)?;
        let loaded = Model::load(&path)?;
        // Bit-identical on the CPU interpreter, whatever LAMINA_BACKEND says.
        let cpu = |m: &Model| Session::new(m.program().clone(), BackendKind::Cpu)?.run(&inputs);
        let want = cpu(&model)?;
        let got = cpu(&loaded)?;
        // And the loaded model agrees on the GPU, where there is one.
        if let Ok(g) = lamina::shared_gpu() {
            let on_gpu = Session::with_backend(loaded.program().clone(), std::sync::Arc::new(g))
                .run(&inputs)?;
            for (w, g) in want.iter().zip(&on_gpu) {
                let (w, g) = (w.to_f32_vec(), g.to_f32_vec());
                assert!(
                    w.iter()
                        .zip(&g)
                        .all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + a.abs())),
                    "model {i} on the GPU: {w:?} vs {g:?}"
                );
            }
        }
        assert_eq!(want.len(), got.len());
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(w.shape(), g.shape());
            let (w, g) = (w.to_f32_vec(), g.to_f32_vec());
            assert!(
                w.iter().zip(&g).all(|(a, b)| a.to_bits() == b.to_bits()),
                "model {i}: {w:?} vs {g:?}"
            );
        }
        assert_eq!(
            model.summary_string()?,
            loaded.summary_string()?,
            "model {i}"
        );
        assert_eq!(model.count_params(), loaded.count_params());
        assert_eq!(model.layers().len(), loaded.layers().len());
        // Saving the loaded model again gives the same architecture and tensors.
        assert_eq!(
            contents(&model.to_bytes()?),
            contents(&loaded.to_bytes()?),
            "model {i}"
        );
    }
    std::fs::remove_dir_all(dir).ok();
    Ok(())
}

#[test]
fn sharing_arguments_and_variables_survive_loading() -> Result<()> {
    let (model, inputs) = models()?.swap_remove(2);
    let loaded = Model::from_bytes(&model.to_bytes()?)?;
    // One linear_transform layer, called twice, with one set of variables.
    let names: Vec<String> = loaded.layers().iter().map(|l| l.name()).collect();
    assert_eq!(
        names.iter().filter(|n| *n == "linear_transform").count(),
        1,
        "{names:?}"
    );
    assert_eq!(
        loaded.get_weight("linear_transform/multiplier")?.as_f32()?,
        &[1.5]
    );
    loaded.set_weight("linear_transform/bias", HostTensor::scalar(0.0))?;
    model.set_weight("linear_transform/bias", HostTensor::scalar(0.0))?;
    assert_eq!(
        model.predict(&inputs)?[0].as_f32()?,
        loaded.predict(&inputs)?[0].as_f32()?
    );

    // Arguments stay runtime values after loading.
    let (siamese, inputs) = models()?.swap_remove(3);
    let loaded = Model::from_bytes(&siamese.to_bytes()?)?;
    let layer = loaded.get_layer("distance")?;
    let lambda = layer.as_any().downcast_ref::<Lambda>().expect("a Lambda");
    assert_eq!(lambda.argument_value("scale")?.as_f32()?, &[2.0]);
    lambda.set_argument("scale", 0.0)?;
    // With scale 0 the distance is 0, its cumsum 0, softmax uniform.
    let score_in = loaded.predict(&inputs)?;
    assert_eq!(score_in[0].shape(), &[2, 2]);
    Ok(())
}

#[test]
fn a_failed_save_leaves_the_old_file_intact() -> Result<()> {
    let dir = temp_dir("atomic");
    let path = dir.join("model.lamina");
    let (good, inputs) = models()?.swap_remove(1);
    good.save(&path)?;
    let before = std::fs::read(&path).unwrap();
    // A model with an op outside any layer cannot be saved; the old file must survive.
    let x = Input::new(&[2]).tensor();
    let y = Lambda::new(|x| x.exp()).call(&x)? * 2.0;
    let bad = Model::new(&[x], &[y])?;
    let err = bad.save(&path).unwrap_err();
    assert!(err.to_string().contains("outside any layer"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // Saving into a folder that does not exist fails without touching anything.
    assert!(good.save(dir.join("missing").join("m.lamina")).is_err());
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    assert_eq!(
        Model::load(&path)?.predict(&inputs)?,
        good.predict(&inputs)?
    );
    std::fs::remove_dir_all(dir).ok();
    Ok(())
}

#[test]
fn lambdas_that_capture_outside_tensors_cannot_be_saved() -> Result<()> {
    let a = Input::new(&[2]).tensor();
    let b = Input::new(&[2]).tensor();
    let captured = b.clone();
    let y = Lambda::new(move |x| x + &captured)
        .name("capture")
        .call(&a)?;
    let m = Model::new(&[a, b], &[y])?;
    let err = m.to_bytes().unwrap_err().to_string();
    assert!(
        err.contains("capture") && err.contains("not among the Lambda's inputs"),
        "{err}"
    );
    Ok(())
}

#[test]
fn load_weights_by_layer_name() -> Result<()> {
    let dir = temp_dir("weights");
    let mut m = Sequential::named("w");
    m.add(Input::new(&[2]))?;
    m.add(Dense::new(2).name("d").use_bias(true))?;
    let kernel: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let bias: Vec<u8> = [0.5f32, -0.5]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let write = |name: &str, tensors: Vec<(&str, Vec<usize>, &[u8])>| {
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
            .into_iter()
            .map(|(n, s, b)| {
                (
                    n.to_string(),
                    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s, b).unwrap(),
                )
            })
            .collect();
        let bytes = safetensors::serialize(views, None).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let good = write(
        "good.safetensors",
        vec![
            ("d/kernel", vec![2, 2], &kernel),
            ("d/bias", vec![2], &bias),
        ],
    );
    m.model()?.load_weights(&good)?;
    let y = m.predict(&[HostTensor::new(&[1, 2], vec![1.0f32, 1.0])?])?;
    assert_eq!(y[0].as_f32()?, &[4.5, 5.5]);
    // A shape mismatch names the layer and both shapes, and changes nothing.
    let bad = write(
        "bad.safetensors",
        vec![("d/bias", vec![2], &bias), ("d/kernel", vec![4], &kernel)],
    );
    let err = m.model()?.load_weights(&bad).unwrap_err().to_string();
    assert!(
        err.contains("layer 'd'") && err.contains("[2, 2]") && err.contains("[4]"),
        "{err}"
    );
    let unknown = write(
        "unknown.safetensors",
        vec![("e/kernel", vec![2, 2], &kernel)],
    );
    assert!(
        m.model()?
            .load_weights(&unknown)
            .unwrap_err()
            .to_string()
            .contains("e/kernel")
    );
    std::fs::remove_dir_all(dir).ok();
    Ok(())
}

// ---- Hostile files ----

/// Rebuilds a model file with the architecture JSON replaced (tensors kept).
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

fn with_metadata(bytes: &[u8], key: &str, value: &str) -> Vec<u8> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    let mut meta = meta.metadata().clone().unwrap();
    meta.insert(key.into(), value.into());
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        st.tensors().into_iter().collect();
    safetensors::serialize(tensors, Some(meta)).unwrap()
}

fn load_err(bytes: &[u8]) -> String {
    match Model::from_bytes(bytes) {
        Ok(_) => panic!("a hostile file loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn hostile_files_give_errors() -> Result<()> {
    let (model, _) = models()?.swap_remove(3);
    let good = model.to_bytes()?;
    // Truncated anywhere.
    for len in (0..good.len()).step_by(37).chain([good.len() - 1]) {
        assert!(
            Model::from_bytes(&good[..len]).is_err(),
            "prefix {len} loaded"
        );
    }
    // A hostile header length.
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(Model::from_bytes(&huge).is_err());
    // A newer format, a foreign format.
    assert!(load_err(&with_metadata(&good, "version", "3")).contains("newer"));
    assert!(load_err(&with_metadata(&good, "format", "pickle")).contains("pickle"));
    // An unknown op is named.
    let unknown_op = with_architecture(&good, |a| {
        a["layers"][3]["body"]["nodes"][2]["op"]["op"] = "launch_missiles".into();
    });
    assert!(load_err(&unknown_op).contains("launch_missiles"));
    // A cyclic body: a node reading itself.
    let cyclic = with_architecture(&good, |a| {
        let nodes = a["layers"][3]["body"]["nodes"].as_array_mut().unwrap();
        let last = nodes.len() - 1;
        nodes[last]["inputs"] = serde_json::json!([last]);
    });
    assert!(load_err(&cyclic).contains("does not come before"));
    // A call reading a later call, or a layer that does not exist.
    let later = with_architecture(&good, |a| a["calls"][2]["inputs"][0]["call"] = 99.into());
    assert!(load_err(&later).contains("does not come before"));
    let no_layer = with_architecture(&good, |a| a["calls"][2]["layer"] = 1000.into());
    assert!(load_err(&no_layer).contains("does not exist"));
    // Arity errors, duplicate axes, hostile sizes.
    let arity = with_architecture(&good, |a| {
        let nodes = a["layers"][3]["body"]["nodes"].as_array_mut().unwrap();
        nodes.push(serde_json::json!({"op": {"op": "binary", "func": "add"}, "inputs": [0]}));
        let n = nodes.len() - 1;
        a["layers"][3]["body"]["output"] = n.into();
    });
    assert!(load_err(&arity).contains("takes 2 inputs"));
    let huge_reshape = with_architecture(&good, |a| {
        let nodes = a["layers"][3]["body"]["nodes"].as_array_mut().unwrap();
        nodes.push(serde_json::json!({"op": {"op": "reshape", "target": [4611686018427387904u64, 4]}, "inputs": [0]}));
        let n = nodes.len() - 1;
        a["layers"][3]["body"]["output"] = n.into();
    });
    assert!(Model::from_bytes(&huge_reshape).is_err());
    let bad_output = with_architecture(&good, |a| a["outputs"][0]["output"] = 7.into());
    assert!(Model::from_bytes(&bad_output).is_err());
    let missing_constant = with_architecture(&good, |a| {
        let nodes = a["layers"][3]["body"]["nodes"].as_array_mut().unwrap();
        nodes.push(serde_json::json!({"op": {"op": "constant", "id": 50}}));
    });
    assert!(load_err(&missing_constant).contains("constant"));
    let bad_activation = with_architecture(&good, |a| {
        for l in a["layers"].as_array_mut().unwrap() {
            if l["class"] == "Dense" {
                l["activation"] = "rm -rf".into();
            }
        }
    });
    assert!(load_err(&bad_activation).contains("rm -rf"));
    Ok(())
}

mod mutation {
    use super::*;
    use proptest::prelude::*;

    fn good_bytes() -> Vec<u8> {
        static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        BYTES
            .get_or_init(|| models().unwrap().swap_remove(3).0.to_bytes().unwrap())
            .clone()
    }

    fn try_model(bytes: &[u8]) {
        // Loading must never panic; a file that loads must also run or fail cleanly.
        if let Ok(m) = Model::from_bytes(bytes) {
            let x = HostTensor::new(&[1, 4], vec![0.5f32, -0.5, 1.0, 2.0]).unwrap();
            let _ = m.predict(&[x.clone(), x]);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 6000, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(0x001a_314a), ..ProptestConfig::default() })]

        /// Random byte flips, truncations and insertions anywhere in a valid file.
        #[test]
        fn mutated_bytes_never_panic(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in proptest::option::of(any::<usize>()),
        ) {
            let mut bytes = good_bytes();
            for (pos, val) in flips {
                let n = bytes.len();
                bytes[pos % n] ^= val | 1;
            }
            if let Some(c) = cut {
                let n = bytes.len();
                bytes.truncate(c % n);
            }
            try_model(&bytes);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(0x001a_314a), ..ProptestConfig::default() })]

        /// Structural mutations of the architecture JSON: any number or string replaced.
        #[test]
        fn mutated_architecture_never_panics(
            picks in proptest::collection::vec((any::<usize>(), any::<i64>(), 0u8..4), 1..4),
        ) {
            try_model(&mutated(&good_bytes(), picks));
        }
    }

    /// A model with masks and most of the layer set: Embedding(mask_zero), a mask-passing
    /// Lambda, LayerNormalization, Dense, merges, pooling, Softmax.
    fn masked_bytes() -> Vec<u8> {
        static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        BYTES
            .get_or_init(|| {
                let ids = Input::new(&[4]).dtype(DType::I32).tensor();
                let e = Embedding::new(8, 3).mask_zero(true).call(&ids).unwrap();
                let l = Lambda::new(|x| x.multiply(2.0))
                    .mask_fn(|_, m| m[0].clone())
                    .call(&e)
                    .unwrap();
                let n = LayerNormalization::new().call(&l).unwrap();
                let d = Dense::new(3).call(&n).unwrap();
                let j = Concatenate::new().call(&[n, d.clone()]).unwrap();
                let p = GlobalAveragePooling1D::new().call(&j).unwrap();
                let q = GlobalMaxPooling1D::new()
                    .call(Add::new().call(&[l, d]).unwrap())
                    .unwrap();
                let y = Softmax::new()
                    .call(Concatenate::new().call(&[p, q]).unwrap())
                    .unwrap();
                Model::new(&[ids], &[y]).unwrap().to_bytes().unwrap()
            })
            .clone()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(0x001a_314b), ..ProptestConfig::default() })]

        /// Structural mutations of a model with masks and the layer set.
        #[test]
        fn mutated_masked_model_never_panics(
            picks in proptest::collection::vec((any::<usize>(), any::<i64>(), 0u8..3), 1..4),
        ) {
            let bytes = mutated(&masked_bytes(), picks);
            if let Ok(m) = Model::from_bytes(&bytes) {
                let ids = HostTensor::new(&[2, 4], vec![1i32, 2, 0, 0, 7, 9, 3, 0]).unwrap();
                let _ = m.predict(&[ids]);
            }
        }
    }

    /// The file with leaves of its architecture JSON replaced: for each `(pick, value, kind)`,
    /// leaf `pick` becomes `value` (kind 0), a small index (1), -1..-3 (2) or an op name (3).
    fn mutated(bytes: &[u8], picks: Vec<(usize, i64, u8)>) -> Vec<u8> {
        with_architecture(bytes, |arch| {
            for (pick, value, kind) in picks {
                let mut leaves: Vec<&mut serde_json::Value> = Vec::new();
                collect(arch, &mut leaves);
                let n = leaves.len();
                let leaf = &mut leaves[pick % n];
                **leaf = match kind {
                    0 => serde_json::json!(value),
                    1 => serde_json::json!(value.rem_euclid(8)),
                    2 => serde_json::json!(-1 - value.rem_euclid(3)),
                    _ => serde_json::json!(
                        ["sum", "max", "add", "matmul", "input"][value.rem_euclid(5) as usize]
                    ),
                };
            }
        })
    }

    fn collect<'a>(v: &'a mut serde_json::Value, out: &mut Vec<&'a mut serde_json::Value>) {
        match v {
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| collect(x, out)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|x| collect(x, out)),
            leaf => out.push(leaf),
        }
    }
}

#[test]
fn identity_passes_tensors_and_their_masks_through_and_round_trips() -> Result<()> {
    // Steps of one sample: [1, 2], [0, 0] (masked), [3, 5]; the masked mean over the kept
    // steps is ([1, 2] + [3, 5]) / 2 = [2, 3.5]. The pair's second tensor is passed unchanged.
    let steps = Input::new(&[3, 2]).tensor();
    let extra = Input::new(&[2]).tensor();
    let masked = Masking::new(0.0).call(&steps)?;
    let same = Identity::new().name("same").call(&masked)?;
    let pooled = GlobalAveragePooling1D::new().call(&same)?;
    let pair = lamina::call_layer(&Identity::new().name("pair"), &[pooled, extra.clone()])?;
    assert_eq!(pair.len(), 2);
    let sum = Add::new().call(&[pair[0].clone(), pair[1].clone()])?;
    let model = Model::new(&[steps, extra], &[sum])?;
    let xs = [
        HostTensor::new(&[1, 3, 2], vec![1.0f32, 2.0, 0.0, 0.0, 3.0, 5.0])?,
        HostTensor::new(&[1, 2], vec![10.0f32, 20.0])?,
    ];
    assert_eq!(model.predict(&xs)?[0].as_f32()?, &[12.0, 23.5]);
    let dir = temp_dir("identity");
    let path = dir.join("identity.lamina");
    model.save(&path)?;
    let loaded = Model::load(&path)?;
    assert_eq!(loaded.predict(&xs)?[0].as_f32()?, &[12.0, 23.5]);
    std::fs::remove_dir_all(dir).ok();
    let err = Identity::new().forward(&[]).unwrap_err().to_string();
    assert!(
        err.contains("Identity") && err.contains("no inputs"),
        "{err}"
    );
    Ok(())
}
