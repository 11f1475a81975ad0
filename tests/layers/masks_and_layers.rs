//! Masks (made by `Embedding` and `Masking`, passed on or dropped by Lambdas, merged, consumed
//! by pooling and `Softmax`) and the inference layer set, against values worked out here from
//! the definitions. Every model also runs on the GPU, which must agree with the CPU.
#![cfg(feature = "gpu")] // compares the CPU interpreter with the GPU backend

use lamina::Predict;
use lamina::prelude::*;
use std::sync::{Arc, Mutex};

use crate::common;
use common::{gpu, run_both};

/// Runs on both backends (see `common::run_both`) and returns the CPU's outputs as `f32`.
fn run(model: &Model, inputs: &[HostTensor]) -> Vec<Vec<f32>> {
    run_both(model, inputs)
        .iter()
        .map(|t| t.to_f32_vec())
        .collect()
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 + 1e-5 * b.abs(),
            "element {i}: got {a}, want {b} (got {got:?})"
        );
    }
}

const VOCAB: usize = 6;
const DIM: usize = 3;

/// Embedding row `id`: distinct, easy values.
fn table() -> Vec<f32> {
    (0..VOCAB * DIM)
        .map(|k| (k as f32 * 0.37).sin() * 2.0)
        .collect()
}

/// Ids: a row with one real token, a row with none padded, a row half padded.
fn ids() -> HostTensor {
    HostTensor::new(&[3, 4], vec![5i32, 0, 0, 0, 1, 2, 3, 4, 2, 3, 0, 0]).unwrap()
}

/// The mean of the table rows of `ids`, leaving out id 0 when `skip_padding`.
fn expected_mean(ids: &[i32], skip_padding: bool) -> Vec<f32> {
    let t = table();
    let kept: Vec<usize> = ids
        .iter()
        .filter(|&&i| !skip_padding || i != 0)
        .map(|&i| i as usize)
        .collect();
    (0..DIM)
        .map(|d| kept.iter().map(|&i| t[i * DIM + d]).sum::<f32>() / kept.len() as f32)
        .collect()
}

/// ids → Embedding(mask_zero) → Lambda (passing the mask on or not) → GlobalAveragePooling1D.
fn pooled_embedding(lambda: Lambda) -> Result<Model> {
    let x = Input::with_dims(vec![Dim::Dynamic])
        .dtype(DType::I32)
        .tensor();
    let emb = Embedding::new(VOCAB, DIM).mask_zero(true);
    let h = emb.call(&x)?;
    emb.set_weight("embeddings", HostTensor::new(&[VOCAB, DIM], table())?)?;
    let h = lambda.call(&h)?;
    let y = GlobalAveragePooling1D::new().call(&h)?;
    Model::new(&[x], &[y])
}

#[test]
fn masked_mean_over_time_leaves_padding_out() -> Result<()> {
    let model = pooled_embedding(Lambda::new(|x| x.clone()).mask_fn(|_, m| m[0].clone()))?;
    let out = run(&model, &[ids()]);
    let ids = ids();
    let rows: Vec<&[i32]> = ids.as_i32()?.chunks(4).collect();
    let mut want = Vec::new();
    for r in &rows {
        want.extend(expected_mean(r, true));
    }
    assert_close(&out[0], &want);
    // The row with one real token is exactly that token's vector.
    assert_close(&out[0][..DIM], &table()[5 * DIM..6 * DIM]);
    // More padding changes nothing.
    let longer = HostTensor::new(
        &[3, 7],
        vec![
            5i32, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 2, 3, 0, 0, 0, 0, 0,
        ],
    )?;
    assert_close(&run(&model, &[longer])[0], &want);
    Ok(())
}

/// Collects `log` records, so that a test can see the warning about a dropped mask.
struct Recorder(Mutex<Vec<String>>);

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if let Ok(mut v) = self.0.lock() {
            v.push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

static RECORDER: Recorder = Recorder(Mutex::new(Vec::new()));

#[test]
fn a_lambda_without_mask_drops_it_says_so_once_and_pools_everything() -> Result<()> {
    let _ = log::set_logger(&RECORDER);
    log::set_max_level(log::LevelFilter::Warn);
    let dropper = Lambda::new(|x| x.clone()).name("mask_dropper");
    let model = pooled_embedding(dropper.clone())?;
    // The same layer called again on a masked tensor warns no second time.
    let again = Input::with_dims(vec![Dim::Dynamic])
        .dtype(DType::I32)
        .tensor();
    let masked = Embedding::new(VOCAB, DIM).mask_zero(true).call(&again)?;
    assert!(masked.mask().is_some());
    let out = dropper.call(&masked)?;
    assert!(out.mask().is_none());
    let warnings: Vec<String> = RECORDER
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.contains("'mask_dropper'"))
        .cloned()
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("does not support masking"));

    let result = run(&model, &[ids()]);
    let ids = ids();
    let mut want = Vec::new();
    for r in ids.as_i32()?.chunks(4) {
        want.extend(expected_mean(r, false));
    }
    assert_close(&result[0], &want);
    Ok(())
}

#[test]
fn a_fixed_tensor_mask_is_the_output_mask_whatever_the_input() -> Result<()> {
    let x = Input::new(&[4, 2]).tensor();
    let fixed = HostTensor::new(&[1, 4], vec![true, false, true, true])?;
    let h = Lambda::new(|x| x.multiply(3.0)).mask(fixed).call(&x)?;
    assert!(h.mask().is_some());
    let y = GlobalAveragePooling1D::new().call(&h)?;
    let model = Model::new(&[x], &[y])?;
    let data: Vec<f32> = (0..16).map(|k| k as f32 - 5.0).collect();
    let out = run(&model, &[HostTensor::new(&[2, 4, 2], data.clone())?]);
    // Steps 0, 2 and 3 of each sample, times 3.
    let mut want = Vec::new();
    for b in 0..2 {
        for f in 0..2 {
            let s: f32 = [0, 2, 3].iter().map(|&t| data[b * 8 + t * 2 + f]).sum();
            want.push(3.0 * s / 3.0);
        }
    }
    assert_close(&out[0], &want);
    Ok(())
}

/// Two `Masking` branches over one input with different padding values.
fn two_masked_branches() -> Result<(Tensor, Tensor, Tensor)> {
    let x = Input::new(&[3, 2]).tensor();
    let a = Masking::new(0.0).call(&x)?;
    let b = Masking::new(1.0).call(&x)?;
    Ok((x, a, b))
}

fn branch_data() -> HostTensor {
    // Sample 0: steps [0,0] [1,1] [2,3]; sample 1: [1,1] [4,5] [0,0].
    HostTensor::new(
        &[2, 3, 2],
        vec![
            0.0f32, 0.0, 1.0, 1.0, 2.0, 3.0, 1.0, 1.0, 4.0, 5.0, 0.0, 0.0,
        ],
    )
    .unwrap()
}

#[test]
fn masks_pass_through_add_and_concatenate() -> Result<()> {
    // Add: the or of both masks, so a step counts when either input holds data there.
    let x = Input::new(&[3, 2]).tensor();
    let z = Input::new(&[3, 2]).tensor();
    let a = Masking::new(0.0).call(&x)?;
    let b = Masking::new(0.0).call(&z)?;
    let sum = Add::new().call(&[a, b])?;
    let pooled = GlobalAveragePooling1D::new().call(&sum)?;
    let model = Model::new(&[x, z], &[pooled])?;
    let xs = branch_data();
    let zs = HostTensor::new(
        &[2, 3, 2],
        vec![
            0.0f32, 0.0, 5.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ],
    )?;
    let out = run(&model, &[xs, zs]);
    // Sample 0: x keeps steps 1,2, z keeps step 1: steps 1,2 of x+z = [6,6] [2,3].
    // Sample 1: x keeps steps 0,1, z nothing: steps 0,1 of x+z = [1,1] [4,5].
    // (With an `and` sample 1 would be NaN; without masks both means would be over 3 steps.)
    assert_close(&out[0], &[4.0, 4.5, 2.5, 3.0]);

    // Add with one unmasked input: no mask (Keras 3), a plain mean.
    let (x, a, _) = two_masked_branches()?;
    let plain = Lambda::new(|t| t.multiply(1.0)).call(&x)?;
    let sum = Add::new().call(&[a, plain])?;
    assert!(sum.mask().is_none());

    // Concatenate along time: the masks are joined.
    let (x, a, b) = two_masked_branches()?;
    let joined = Concatenate::new().axis(1).call(&[a, b])?;
    assert_eq!(joined.shape().to_string(), "(None, 6, 2)");
    let pooled = GlobalAveragePooling1D::new().call(&joined)?;
    let model = Model::new(&[x], &[pooled])?;
    let out = run(&model, &[branch_data()]);
    // Sample 0 keeps a's steps 1,2 and b's steps 0,2: [1,1] [2,3] [0,0] [2,3].
    // Sample 1 keeps a's steps 0,1 and b's steps 1,2: [1,1] [4,5] [4,5] [0,0].
    // (Add above kept every step only because the or of the two masks is all true.)
    let want = [5.0 / 4.0, 7.0 / 4.0, 9.0 / 4.0, 11.0 / 4.0];
    assert_close(&out[0], &want);

    // Concatenate along features with one unmasked input: every step is kept.
    let (x, a, _) = two_masked_branches()?;
    let joined = Concatenate::new().call(&[a, x.clone()])?;
    assert!(joined.mask().is_some());
    let pooled = GlobalAveragePooling1D::new().call(&joined)?;
    let model = Model::new(&[x], &[pooled])?;
    let out = run(&model, &[branch_data()]);
    let want = [
        1.0,
        4.0 / 3.0,
        1.0,
        4.0 / 3.0, // a (padding zeroed), then x
        5.0 / 3.0,
        2.0,
        5.0 / 3.0,
        2.0,
    ];
    assert_close(&out[0], &want);
    Ok(())
}

#[test]
fn a_lambda_reads_the_incoming_mask_as_keras_test_lambda_with_mask() -> Result<()> {
    // Keras's test: add_one with mask=lambda _, prev: prev after Masking(); the last step of
    // every sample is padding.
    let x = Input::new(&[4, 3]).tensor();
    let masked = Masking::default().call(&x)?;
    let added = Lambda::new(|t| t.add(1.0))
        .mask_fn(|_, m| m[0].clone())
        .call(&masked)?;
    let mask_out = Lambda::masked(|_, m| match m {
        Some(m) => m.cast(DType::F32),
        None => Tensor::scalar(-1.0),
    })
    .call(&added)?;
    let model = Model::new(&[x], &[added, mask_out])?;
    let mut data = vec![1.0f32; 5 * 4 * 3];
    for b in 0..5 {
        for f in 0..3 {
            data[b * 12 + 9 + f] = 0.0;
        }
    }
    let out = run(&model, &[HostTensor::new(&[5, 4, 3], data)?]);
    for b in 0..5 {
        for t in 0..4 {
            for f in 0..3 {
                let want = if t == 3 { 1.0 } else { 2.0 };
                assert_eq!(out[0][b * 12 + t * 3 + f], want);
            }
            assert_eq!(out[1][b * 4 + t], if t == 3 { 0.0 } else { 1.0 });
        }
    }
    Ok(())
}

#[test]
fn layer_normalization_follows_its_formula() -> Result<()> {
    let x = Input::new(&[5]).tensor();
    let ln = LayerNormalization::new();
    let y = ln.call(&x)?;
    let gamma = [1.5f32, -0.5, 2.0, 1.0, 0.25];
    let beta = [0.1f32, 0.2, -0.3, 0.0, 1.0];
    ln.set_weight("gamma", HostTensor::new(&[5], gamma.to_vec())?)?;
    ln.set_weight("beta", HostTensor::new(&[5], beta.to_vec())?)?;
    let model = Model::new(&[x], &[y])?;
    assert_eq!(model.count_params(), 10);
    let data = [1.0f32, 2.0, 4.0, -1.0, 0.5, 0.01, 0.02, 0.0, -0.01, 0.03];
    let out = run(&model, &[HostTensor::new(&[2, 5], data.to_vec())?]);
    let mut want = Vec::new();
    for row in data.chunks(5) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / 5.0;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 5.0;
        for (k, &v) in row.iter().enumerate() {
            let norm = (v as f64 - mean) / (var + 1e-3).sqrt();
            want.push((norm * gamma[k] as f64 + beta[k] as f64) as f32);
        }
    }
    assert_close(&out[0], &want);
    Ok(())
}

/// ids → Embedding(10, 2), optionally through a Lambda that adds `shift` to the ids first.
fn lookup(shift: Option<i32>) -> Result<Model> {
    let x = Input::new(&[3]).dtype(DType::I32).tensor();
    let ids = match shift {
        Some(s) => Lambda::new(move |t| t.add(s)).name("shift").call(&x)?,
        None => x.clone(),
    };
    let emb = Embedding::new(10, 2).name("lookup");
    let y = emb.call(&ids)?;
    let values: Vec<f32> = (0..20).map(|k| k as f32).collect();
    emb.set_weight("embeddings", HostTensor::new(&[10, 2], values)?)?;
    Model::new(&[x], &[y])
}

#[test]
fn embedding_looks_up_rows_and_refuses_ids_out_of_range() -> Result<()> {
    let model = lookup(None)?;
    let ids = HostTensor::new(&[2, 3], vec![0i32, 9, 3, 3, 3, 1])?;
    let out = run(&model, &[ids]);
    let want: Vec<f32> = [0, 9, 3, 3, 3, 1]
        .iter()
        .flat_map(|&i| [2.0 * i as f32, 2.0 * i as f32 + 1.0])
        .collect();
    assert_close(&out[0], &want);

    // Ids straight from the input: both backends refuse them, naming the layer, op and shape.
    for bad in [10, -11] {
        let ids = HostTensor::new(&[1, 3], vec![1i32, bad, 2])?;
        let cpu = Session::new(model.program().clone(), BackendKind::Cpu)?;
        let e = cpu.run(std::slice::from_ref(&ids)).unwrap_err().to_string();
        assert!(e.contains("'lookup'") && e.contains("take"), "{e}");
        assert!(
            e.contains(&format!("index {bad}")) && e.contains("[10, 2]"),
            "{e}"
        );
        if let Some(g) = gpu() {
            let gpu = Session::with_backend(model.program().clone(), Arc::new(g));
            let e2 = gpu.run(&[ids]).unwrap_err().to_string();
            assert_eq!(e, e2);
        }
    }

    // Ids computed on the way: the CPU refuses them when it meets them; the GPU never reads
    // out of bounds and gives zeros for them.
    let shifted = lookup(Some(5))?;
    let ids = HostTensor::new(&[1, 3], vec![1i32, 4, 7])?;
    let cpu = Session::new(shifted.program().clone(), BackendKind::Cpu)?;
    let e = cpu.run(std::slice::from_ref(&ids)).unwrap_err().to_string();
    assert!(e.contains("'lookup'") && e.contains("index 12"), "{e}");
    if let Some(g) = gpu() {
        let gpu = Session::with_backend(shifted.program().clone(), Arc::new(g));
        let out = gpu.run(&[ids])?.remove(0);
        assert_eq!(out.as_f32()?, &[12.0, 13.0, 18.0, 19.0, 0.0, 0.0]);
    }
    Ok(())
}

#[test]
fn softmax_and_max_pooling_leave_masked_positions_out() -> Result<()> {
    let x = Input::new(&[4]).tensor();
    let m = Input::new(&[4]).dtype(DType::Bool).tensor();
    let y = Softmax::new().call_masked(&x, &m)?;
    let model = Model::new(&[x, m], &[y])?;
    let data = vec![1.0f32, 2.0, 30.0, 3.0, 5.0, 6.0, 7.0, 8.0];
    let mask = vec![true, true, false, true, false, false, false, false];
    let inputs = [
        HostTensor::new(&[2, 4], data)?,
        HostTensor::new(&[2, 4], mask)?,
    ];
    let out = run(&model, &inputs);
    // The explicit mask is part of the saved model.
    let loaded = Model::from_bytes(&model.to_bytes()?)?;
    assert_eq!(run(&loaded, &inputs), out);
    let z: f32 = [1.0f32, 2.0, 3.0].iter().map(|v| v.exp()).sum();
    let want = [
        1f32.exp() / z,
        2f32.exp() / z,
        0.0,
        3f32.exp() / z,
        0.0,
        0.0,
        0.0,
        0.0,
    ];
    assert_close(&out[0], &want);

    let x = Input::new(&[3, 2]).tensor();
    let masked = Masking::new(0.0).call(&x)?;
    let y = GlobalMaxPooling1D::new().call(&masked)?;
    let model = Model::new(&[x], &[y])?;
    let data = vec![
        -3.0f32, -4.0, 0.0, 0.0, -1.0, -2.0, 5.0, 1.0, 0.0, 0.0, 2.0, 3.0,
    ];
    // Without the mask the padded [0, 0] step would win in sample 0.
    assert_close(
        &run(&model, &[HostTensor::new(&[2, 3, 2], data)?])[0],
        &[-1.0, -2.0, 5.0, 3.0],
    );
    Ok(())
}

#[test]
fn merge_layers_broadcast_as_keras_does() -> Result<()> {
    let a = Input::new(&[2, 3]).tensor();
    let b = Input::new(&[3]).tensor();
    let outs = [
        Add::new().call(&[a.clone(), b.clone()])?,
        Subtract::new().call(&[a.clone(), b.clone()])?,
        Multiply::new().call(&[a.clone(), b.clone()])?,
        Average::new().call(&[a.clone(), b.clone()])?,
        Maximum::new().call(&[a.clone(), b.clone()])?,
        Minimum::new().call(&[a.clone(), b.clone()])?,
    ];
    // The (batch, 3) input is expanded after its batch axis, to (batch, 1, 3).
    for o in &outs {
        assert_eq!(o.shape().to_string(), "(None, 2, 3)");
    }
    let model = Model::new(&[a, b], &outs)?;
    let av = [1.0f32, -2.0, 3.0, 4.0, 5.0, -6.0];
    let bv = [2.0f32, 2.0, -1.0];
    let out = run(
        &model,
        &[
            HostTensor::new(&[1, 2, 3], av.to_vec())?,
            HostTensor::new(&[1, 3], bv.to_vec())?,
        ],
    );
    let f: [fn(f32, f32) -> f32; 6] = [
        |x, y| x + y,
        |x, y| x - y,
        |x, y| x * y,
        |x, y| (x + y) / 2.0,
        f32::max,
        f32::min,
    ];
    for (k, op) in f.iter().enumerate() {
        let want: Vec<f32> = (0..6).map(|i| op(av[i], bv[i % 3])).collect();
        assert_close(&out[k], &want);
    }
    // Subtract takes exactly two inputs; merges refuse different batch sizes.
    let c = Input::new(&[3]).tensor();
    let e = Subtract::new()
        .call(&[c.clone(), c.clone(), c.clone()])
        .unwrap_err();
    assert!(e.to_string().contains("exactly 2"), "{e}");
    let p = Input::new(&[3]).batch_size(2).tensor();
    let q = Input::new(&[3]).batch_size(4).tensor();
    let e = Add::new().call(&[p, q]).unwrap_err().to_string();
    assert!(e.contains("(Add)") && e.contains("batch sizes"), "{e}");
    Ok(())
}

#[test]
fn reshaping_and_elementwise_layers() -> Result<()> {
    let mut m = Sequential::new();
    m.add(Input::new(&[2, 3]))?;
    m.add(Rescaling::new(2.0, -1.0))?;
    m.add(Reshape::new(&[3, -1]))?;
    m.add(Activation::Relu)?;
    m.add(Dropout::new(0.5))?;
    m.add(Flatten::new())?;
    let model = m.model()?;
    let summary = model.summary_string()?;
    for kind in ["Rescaling", "Reshape", "Activation", "Dropout", "Flatten"] {
        assert!(summary.contains(&format!("({kind})")), "{summary}");
    }
    assert!(summary.contains("(None, 3, 2)") && summary.contains("(None, 6)"));
    let data = [0.0f32, 1.0, 0.25, 2.0, -1.0, 0.75];
    let out = run(&model, &[HostTensor::new(&[1, 2, 3], data.to_vec())?]);
    let want: Vec<f32> = data.iter().map(|v| (v * 2.0 - 1.0f32).max(0.0)).collect();
    assert_close(&out[0], &want);

    // Flatten with channels_first moves the channel axis last first.
    let x = Input::new(&[2, 3]).tensor();
    let y = Flatten::new()
        .data_format(DataFormat::ChannelsFirst)
        .call(&x)?;
    let model = Model::new(&[x], &[y])?;
    let out = run(&model, &[HostTensor::new(&[1, 2, 3], data.to_vec())?]);
    assert_close(&out[0], &[0.0, 2.0, 1.0, -1.0, 0.25, 0.75]);

    // Bad configurations are errors naming the layer.
    let x = Input::new(&[6]).tensor();
    let e = Reshape::new(&[4, -1]).name("r").call(&x).unwrap_err();
    assert!(e.to_string().contains("layer 'r' (Reshape)"), "{e}");
    let e = Reshape::new(&[1 << 62, 4, 1 << 40]).call(&x).unwrap_err();
    assert!(e.to_string().contains("too large"), "{e}");
    let e = Dropout::new(1.5).call(&x).unwrap_err();
    assert!(e.to_string().contains("rate"), "{e}");
    let e = GlobalAveragePooling1D::new().call(&x).unwrap_err();
    assert!(e.to_string().contains("3-D"), "{e}");
    Ok(())
}

#[test]
fn every_new_layer_saves_and_loads() -> Result<()> {
    let ids = Input::with_dims(vec![Dim::Dynamic])
        .dtype(DType::I32)
        .name("ids")
        .tensor();
    let emb = Embedding::new(VOCAB, 4).mask_zero(true).call(&ids)?;
    let scaled = Lambda::with_scope(|xs, s| match s.mask(0) {
        Some(m) => xs[0].multiply(m.cast(DType::F32).expand_dims(-1)),
        None => xs[0].clone(),
    })
    .mask_fn(|_, m| m[0].as_ref().map(|m| m.logical_and(true)))
    .call(&[emb])?;
    let normed = LayerNormalization::new().call(&scaled)?;
    let a = Dense::new(4).call(&normed)?;
    let merged = Add::new().call(&[normed.clone(), a.clone()])?;
    let joined = Concatenate::new().call(&[merged, a])?;
    let rescaled = Rescaling::new(0.5, 0.1).call(&joined)?;
    let dropped = Dropout::new(0.1).call(&rescaled)?;
    let avg = GlobalAveragePooling1D::new().call(&dropped)?;
    let max = GlobalMaxPooling1D::new().call(&dropped)?;
    let both = Average::new().call(&[avg, max])?;
    let probs = Softmax::new().call(&both)?;
    let act = ActivationLayer::new(Activation::Tanh).call(&probs)?;
    let shaped = Reshape::new(&[2, 4]).call(&act)?;
    let flat = Flatten::new().call(&shaped)?;
    let fixed = Lambda::new(|x| x.clone())
        .mask(HostTensor::new(&[1, 8], vec![true; 8])?)
        .call(&flat)?;
    let model = Model::new(&[ids], &[fixed])?;
    // Give the weights values unlike their initial ones.
    for w in model.weights() {
        let n = w.numel();
        let v: Vec<f32> = (0..n).map(|k| ((k * 7 % 11) as f32 - 5.0) / 7.0).collect();
        w.set(HostTensor::new(&w.shape(), v)?)?;
    }
    let input = ids_batch();
    let before = run(&model, std::slice::from_ref(&input));
    let bytes = model.to_bytes()?;
    let loaded = Model::from_bytes(&bytes)?;
    assert_eq!(loaded.summary_string()?, model.summary_string()?);
    let after = run(&loaded, &[input]);
    assert_eq!(before, after);
    Ok(())
}

fn ids_batch() -> HostTensor {
    HostTensor::new(&[2, 4], vec![1i32, 2, 0, 0, 3, 4, 5, 1]).unwrap()
}

#[test]
fn embedding_weights_are_named_and_counted() -> Result<()> {
    let x = Input::new(&[4]).tensor();
    let y = Embedding::new(20, 8).name("words").call(&x)?;
    let model = Model::new(&[x], &[y])?;
    assert_eq!(model.count_params(), 160);
    let table = model.get_weight("words/embeddings")?;
    assert_eq!(table.shape(), &[20, 8]);
    assert!(table.as_f32()?.iter().all(|v| v.abs() <= 0.05));
    let e = model
        .set_weight("words/embeddings", HostTensor::zeros(&[8, 20])?)
        .unwrap_err();
    assert!(e.to_string().contains("words/embeddings"), "{e}");
    // Keras's `weights=[table]`: the initial table, checked against the layer's shape.
    let table3: Vec<f32> = (0..6).map(|k| k as f32 * 0.5).collect();
    let ids3 = Input::new(&[2]).dtype(DType::I32).tensor();
    let e3 = Embedding::new(3, 2)
        .weights(HostTensor::new(&[3, 2], table3)?)
        .call(&ids3)?;
    let m3 = Model::new(&[ids3], &[e3])?;
    let out = m3
        .predict(&[HostTensor::new(&[1, 2], vec![2i32, 0])?])?
        .remove(0);
    assert_eq!(out.as_f32()?, &[2.0, 2.5, 0.0, 0.5]);
    let bad = Embedding::new(3, 2)
        .weights(HostTensor::zeros(&[2, 3])?)
        .name("bad_table")
        .call(Input::new(&[2]).tensor())
        .unwrap_err();
    assert!(bad.to_string().contains("bad_table/embeddings"), "{bad}");
    // Float ids are cast to int32, as Keras does.
    let ids = HostTensor::new(&[1, 4], vec![1.0f32, 2.0, 3.0, 19.0])?;
    let out = model.predict(&[ids])?.remove(0);
    let t = table.as_f32()?;
    assert_eq!(&out.as_f32()?[24..32], &t[19 * 8..20 * 8]);
    Ok(())
}

#[test]
fn dense_passes_masks_on_and_errors_name_the_layer_that_made_the_node() -> Result<()> {
    let x = Input::new(&[4]).dtype(DType::I32).tensor();
    let e = Embedding::new(VOCAB, DIM)
        .mask_zero(true)
        .name("words")
        .call(&x)?;
    let d = Dropout::new(0.2).call(&e)?;
    let h = Dense::new(2).call(&d)?;
    assert!(h.mask().is_some(), "Dense passes the mask on, as in Keras");
    let y = GlobalAveragePooling1D::new().call(&h)?;
    let model = Model::new(&[x], &[y])?;
    let ids = HostTensor::new(&[1, 4], vec![1i32, 0, 9, 0])?;
    let err = model.predict(&[ids]).unwrap_err().to_string();
    // The id is read by the Embedding's lookup; Dropout returned that same tensor.
    assert!(
        err.contains("layer 'words' (Embedding)") && err.contains("index 9"),
        "{err}"
    );
    Ok(())
}
