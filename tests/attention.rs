//! MultiHeadAttention against Keras 3 (outputs recorded from keras 3.15 on JAX, in constants
//! below) and against its definition computed here in f64; masks, causal masks with different
//! query and key lengths, attention scores, run-time sequence lengths, CPU and GPU agreeing,
//! save/load, and errors.

use lamina::prelude::*;
use lamina::{Masking, call_layer};

mod common;
use common::run_both;

/// `sin(0.37 k + offset) / 2`, the values the Keras reference script used.
fn wave(shape: &[usize], offset: f64) -> HostTensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|k| ((k as f64 * 0.37 + offset).sin() * 0.5) as f32)
        .collect();
    HostTensor::new(shape, v).unwrap()
}

const WEIGHTS: [&str; 8] = [
    "query/kernel",
    "query/bias",
    "key/kernel",
    "key/bias",
    "value/kernel",
    "value/bias",
    "attention_output/kernel",
    "attention_output/bias",
];

/// Sets the layer's weights as the reference script did (weight `i` from offset `1 + i`).
fn set_weights(layer: &MultiHeadAttention) {
    for (i, name) in WEIGHTS.iter().enumerate() {
        let shape = layer.get_weight(name).unwrap().shape().to_vec();
        layer
            .set_weight(name, wave(&shape, 1.0 + i as f64))
            .unwrap();
    }
}

fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len());
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "element {i}: got {a}, want {b}\n got {got:?}"
        );
    }
}

const KERAS_PLAIN: [f32; 24] = [
    0.570655, 0.531918, 0.421188, 0.253453, 0.571128, 0.532384, 0.421584, 0.253725, 0.571143,
    0.532524, 0.421831, 0.254045, 0.57034, 0.531935, 0.421534, 0.254081, 0.570237, 0.531712,
    0.421223, 0.253724, 0.570692, 0.532114, 0.421517, 0.25387,
];
const KERAS_CAUSAL: [f32; 24] = [
    0.547547, 0.51669, 0.415901, 0.258821, 0.557931, 0.525141, 0.421275, 0.260392, 0.571083,
    0.533996, 0.424635, 0.257802, 0.5475, 0.515019, 0.412833, 0.254771, 0.554204, 0.521852,
    0.41887, 0.259195, 0.566858, 0.530618, 0.422562, 0.257313,
];
const KERAS_MASKED: [f32; 24] = [
    0.547547, 0.51669, 0.415901, 0.258821, 0.557931, 0.525141, 0.421275, 0.260392, 0.494679,
    0.434895, 0.316251, 0.154803, 0.5475, 0.515019, 0.412833, 0.254771, 0.5475, 0.515019, 0.412833,
    0.254771, 0.568463, 0.530241, 0.420253, 0.253386,
];
const KERAS_MASKED_SCORES: [f32; 48] = [
    1.0, 0.0, 0.0, 0.0, 0.50011, 0.49989, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0,
    0.505587, 0.494413, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0,
    0.488068, 0.0, 0.511932, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.510686, 0.0, 0.489314,
    0.0,
];
const KERAS_ATTN_MASK: [f32; 24] = [
    0.570805, 0.530643, 0.418661, 0.250016, 0.564334, 0.527975, 0.420157, 0.255473, 0.575912,
    0.534815, 0.421333, 0.250826, 0.571852, 0.531298, 0.418835, 0.249685, 0.564807, 0.527992,
    0.419716, 0.254634, 0.576827, 0.536373, 0.423323, 0.252979,
];
const KERAS_MASKED_NOSCORES: [f32; 24] = [
    0.547547, 0.51669, 0.415901, 0.258821, 0.557931, 0.525141, 0.421275, 0.260392, 0.566581,
    0.529226, 0.420242, 0.254381, 0.5475, 0.515019, 0.412833, 0.254771, 0.5475, 0.515019, 0.412833,
    0.254771, 0.568463, 0.530241, 0.420253, 0.253386,
];

const B: usize = 2;
const T: usize = 3;
const S: usize = 4;
const D: usize = 4;

/// query (None, D) and value (None, D) inputs, optionally through Masking, into `layer`.
fn model(layer: &MultiHeadAttention, masking: bool) -> Model {
    let q = Input::with_dims(vec![Dim::Dynamic, Dim::Known(D)]).tensor();
    let v = Input::with_dims(vec![Dim::Dynamic, Dim::Known(D)]).tensor();
    let (mq, mv) = if masking {
        (
            Masking::new(0.0).call(&q).unwrap(),
            Masking::new(0.0).call(&v).unwrap(),
        )
    } else {
        (q.clone(), v.clone())
    };
    let outs = call_layer(layer, &[mq, mv]).unwrap();
    set_weights(layer);
    Model::new(&[q, v], &outs).unwrap()
}

fn inputs() -> Vec<HostTensor> {
    vec![wave(&[B, T, D], 0.1), wave(&[B, S, D], 0.7)]
}

#[test]
fn matches_keras_unmasked_and_causal() {
    let mha = MultiHeadAttention::new(2, 3);
    let m = model(&mha, false);
    let y = run_both(&m, &inputs());
    assert_eq!(y[0].shape(), &[B, T, D]);
    assert_close(&y[0].to_f32_vec(), &KERAS_PLAIN, 2e-5);

    // Causal with T = 3 < S = 4: query i sees keys 0..=i (aligned at the start, as Keras).
    let mha = MultiHeadAttention::new(2, 3).use_causal_mask(true);
    let y = run_both(&model(&mha, false), &inputs());
    assert_close(&y[0].to_f32_vec(), &KERAS_CAUSAL, 2e-5);
}

#[test]
fn matches_keras_with_input_masks_and_scores() {
    let mha = MultiHeadAttention::new(2, 3)
        .use_causal_mask(true)
        .return_attention_scores(true);
    let m = model(&mha, true);
    let mut x = inputs();
    // Zero rows are masked by Masking: query (0, 2); value (0, 3) and (1, 1).
    let mut q = x[0].to_f32_vec();
    q[2 * D..3 * D].fill(0.0);
    let mut v = x[1].to_f32_vec();
    v[3 * D..4 * D].fill(0.0);
    v[(S + 1) * D..(S + 2) * D].fill(0.0);
    x = vec![
        HostTensor::new(&[B, T, D], q).unwrap(),
        HostTensor::new(&[B, S, D], v).unwrap(),
    ];
    let y = run_both(&m, &x);
    assert_eq!(y[1].shape(), &[B, 2, T, S]);
    assert_close(&y[1].to_f32_vec(), &KERAS_MASKED_SCORES, 2e-5);
    assert_close(&y[0].to_f32_vec(), &KERAS_MASKED, 2e-5);
    // Keras's fused path (no scores returned) agrees except at the masked query row (0, 2),
    // where it averages every key instead of giving zero scores.
    for (i, (a, b)) in y[0]
        .to_f32_vec()
        .iter()
        .zip(KERAS_MASKED_NOSCORES)
        .enumerate()
    {
        if i / D != 2 {
            assert!((a - b).abs() < 2e-5, "element {i}: {a} vs {b}");
        }
    }
    // The output carries the query's mask.
    let out_mask = m.outputs()[0].mask().cloned();
    assert!(out_mask.is_some());
}

#[test]
fn matches_keras_attention_mask() {
    let q = Input::with_dims(vec![Dim::Dynamic, Dim::Known(D)]).tensor();
    let v = Input::with_dims(vec![Dim::Dynamic, Dim::Known(D)]).tensor();
    let am = Input::with_dims(vec![Dim::Dynamic, Dim::Dynamic])
        .dtype(DType::Bool)
        .tensor();
    let mha = MultiHeadAttention::new(2, 3);
    let y = mha.call([&q, &v, &v, &am]).unwrap();
    set_weights(&mha);
    let m = Model::new(&[q, v, am], &[y]).unwrap();
    let row = [
        true, false, true, true, true, true, false, true, false, true, true, true,
    ];
    let mask: Vec<bool> = row.iter().chain(&row).copied().collect();
    let mut x = inputs();
    x.push(HostTensor::new(&[B, T, S], mask).unwrap());
    let y = run_both(&m, &x);
    assert_close(&y[0].to_f32_vec(), &KERAS_ATTN_MASK, 2e-5);
}

/// The definition in f64: per batch and head, softmax(q k^T / sqrt(kd)) masked, times v, then
/// the output projection. `mask[b][t][s]` false hides key s from query t (row all false: 0).
#[allow(clippy::too_many_arguments)]
fn reference(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    w: &[Vec<f32>],
    (b, t, s, dq, dk, dv): (usize, usize, usize, usize, usize, usize),
    (h, kd, vd, dout): (usize, usize, usize, usize),
    mask: &dyn Fn(usize, usize, usize) -> bool,
) -> (Vec<f64>, Vec<f64>) {
    let proj = |x: &[f32], n: usize, d: usize, kern: &[f32], bias: &[f32], e: usize| {
        let mut out = vec![0f64; b * n * h * e];
        for bi in 0..b {
            for i in 0..n {
                for hh in 0..h {
                    for c in 0..e {
                        let mut acc = bias[hh * e + c] as f64;
                        for j in 0..d {
                            acc +=
                                x[(bi * n + i) * d + j] as f64 * kern[(j * h + hh) * e + c] as f64;
                        }
                        out[((bi * n + i) * h + hh) * e + c] = acc;
                    }
                }
            }
        }
        out
    };
    let qp = proj(q, t, dq, &w[0], &w[1], kd);
    let kp = proj(k, s, dk, &w[2], &w[3], kd);
    let vp = proj(v, s, dv, &w[4], &w[5], vd);
    let mut scores = vec![0f64; b * h * t * s];
    let mut out = vec![0f64; b * t * dout];
    for bi in 0..b {
        for hh in 0..h {
            for i in 0..t {
                let logits: Vec<f64> = (0..s)
                    .map(|j| {
                        let dot: f64 = (0..kd)
                            .map(|c| {
                                qp[((bi * t + i) * h + hh) * kd + c]
                                    * kp[((bi * s + j) * h + hh) * kd + c]
                            })
                            .sum();
                        dot / (kd as f64).sqrt()
                    })
                    .collect();
                let keep: Vec<bool> = (0..s).map(|j| mask(bi, i, j)).collect();
                let mx = (0..s)
                    .filter(|&j| keep[j])
                    .map(|j| logits[j])
                    .fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = (0..s)
                    .map(|j| if keep[j] { (logits[j] - mx).exp() } else { 0.0 })
                    .collect();
                let z: f64 = e.iter().sum();
                for j in 0..s {
                    scores[((bi * h + hh) * t + i) * s + j] = if z > 0.0 { e[j] / z } else { 0.0 };
                }
            }
        }
        for i in 0..t {
            for o in 0..dout {
                let mut acc = w[7][o] as f64;
                for hh in 0..h {
                    for c in 0..vd {
                        let a: f64 = (0..s)
                            .map(|j| {
                                scores[((bi * h + hh) * t + i) * s + j]
                                    * vp[((bi * s + j) * h + hh) * vd + c]
                            })
                            .sum();
                        acc += a * w[6][(hh * vd + c) * dout + o] as f64;
                    }
                }
                out[(bi * t + i) * dout + o] = acc;
            }
        }
    }
    (out, scores)
}

fn weights_of(layer: &MultiHeadAttention) -> Vec<Vec<f32>> {
    WEIGHTS
        .iter()
        .map(|n| layer.get_weight(n).unwrap().to_f32_vec())
        .collect()
}

fn close64(got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (*a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs()),
            "element {i}: got {a}, want {b}"
        );
    }
}

#[test]
fn key_value_dims_output_shape_against_definition() {
    // Separate key, value_dim 5, output 6, query length 3, key length 5, different widths.
    let (b, t, s, dq, dk, dv, h, kd, vd, dout) = (2, 3, 5, 4, 6, 7, 3, 2, 5, 6);
    let q = Input::with_dims(vec![Dim::Dynamic, Dim::Known(dq)]).tensor();
    let v = Input::with_dims(vec![Dim::Dynamic, Dim::Known(dv)]).tensor();
    let k = Input::with_dims(vec![Dim::Dynamic, Dim::Known(dk)]).tensor();
    for causal in [false, true] {
        let mha = MultiHeadAttention::new(h, kd)
            .value_dim(vd)
            .output_shape(&[dout])
            .use_causal_mask(causal)
            .return_attention_scores(true);
        let outs = call_layer(&mha, &[q.clone(), v.clone(), k.clone()]).unwrap();
        assert_eq!(
            mha.get_weight("attention_output/kernel").unwrap().shape(),
            &[h, vd, dout]
        );
        assert_eq!(
            mha.get_weight("value/kernel").unwrap().shape(),
            &[dv, h, vd]
        );
        assert_eq!(mha.get_weight("key/bias").unwrap().shape(), &[h, kd]);
        let m = Model::new(&[q.clone(), v.clone(), k.clone()], &outs).unwrap();
        let x = vec![
            wave(&[b, t, dq], 0.3),
            wave(&[b, s, dv], 1.1),
            wave(&[b, s, dk], 2.3),
        ];
        let y = run_both(&m, &x);
        let (want, scores) = reference(
            &x[0].to_f32_vec(),
            &x[2].to_f32_vec(),
            &x[1].to_f32_vec(),
            &weights_of(&mha),
            (b, t, s, dq, dk, dv),
            (h, kd, vd, dout),
            &|_, i, j| !causal || j <= i,
        );
        assert_eq!(y[0].shape(), &[b, t, dout]);
        close64(&y[0].to_f32_vec(), &want);
        close64(&y[1].to_f32_vec(), &scores);
    }
}

#[test]
fn run_time_lengths_with_embedding_masks() {
    // ids (None,) → Embedding(mask_zero) → self-attention; one model, two lengths.
    let (h, kd, dm) = (2, 4, 6);
    let ids = Input::with_dims(vec![Dim::Dynamic])
        .dtype(DType::I32)
        .tensor();
    let emb = Embedding::new(10, dm).mask_zero(true);
    let e = emb.call(&ids).unwrap();
    let mha = MultiHeadAttention::new(h, kd).return_attention_scores(true);
    let outs = call_layer(&mha, &[e.clone(), e]).unwrap();
    let m = Model::new(&[ids], &outs).unwrap();
    let table = emb.get_weight("embeddings").unwrap().to_f32_vec();
    for (b, t, tokens) in [
        (2usize, 3usize, vec![3i32, 1, 0, 4, 0, 0]),
        (1, 5, vec![2, 7, 9, 1, 0]),
    ] {
        let x = HostTensor::new(&[b, t], tokens.clone()).unwrap();
        let y = run_both(&m, &[x]);
        let xs: Vec<f32> = tokens
            .iter()
            .flat_map(|&i| table[i as usize * dm..(i as usize + 1) * dm].to_vec())
            .collect();
        let keep =
            |bi: usize, i: usize, j: usize| tokens[bi * t + i] != 0 && tokens[bi * t + j] != 0;
        let (want, scores) = reference(
            &xs,
            &xs,
            &xs,
            &weights_of(&mha),
            (b, t, t, dm, dm, dm),
            (h, kd, kd, dm),
            &keep,
        );
        close64(&y[0].to_f32_vec(), &want);
        close64(&y[1].to_f32_vec(), &scores);
    }
}

#[test]
fn save_load_round_trip() {
    let mha = MultiHeadAttention::new(2, 3)
        .value_dim(2)
        .use_causal_mask(true)
        .name("attn");
    let m = model(&mha, true);
    let dir = std::env::temp_dir().join(format!("lamina_mha_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.lamina");
    m.save(&path).unwrap();
    let loaded = Model::load(&path).unwrap();
    let x = inputs();
    let a = run_both(&m, &x);
    let b = run_both(&loaded, &x);
    assert_eq!(a[0].to_f32_vec(), b[0].to_f32_vec());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn clear_errors() {
    let q = Input::with_dims(vec![Dim::Dynamic, Dim::Known(4)]).tensor();
    let v3 = Input::with_dims(vec![Dim::Known(2), Dim::Dynamic, Dim::Known(4)]).tensor();
    let e = MultiHeadAttention::new(0, 3)
        .name("bad_heads")
        .call([&q, &q])
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("bad_heads") && msg.contains("num_heads"),
        "{msg}"
    );
    let e = MultiHeadAttention::new(2, 3)
        .name("ranks")
        .call([&q, &v3])
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("ranks") && msg.contains("(None, None, 4)"),
        "{msg}"
    );
    let e = MultiHeadAttention::new(2, 3).call([&q]).unwrap_err();
    assert!(e.to_string().contains("[query, value]"), "{e}");
    let e = MultiHeadAttention::new(2, 3)
        .attention_axes(&[2])
        .name("axes")
        .call([&q, &q])
        .unwrap_err();
    assert!(e.to_string().contains("attention_axes"), "{e}");
    // A layer built for width 4 called on width 5.
    let mha = MultiHeadAttention::new(2, 3).name("reuse");
    mha.call([&q, &q]).unwrap();
    let q5 = Input::with_dims(vec![Dim::Dynamic, Dim::Known(5)]).tensor();
    let e = mha.call([&q5, &q5]).unwrap_err();
    assert!(e.to_string().contains("reuse"), "{e}");
}
