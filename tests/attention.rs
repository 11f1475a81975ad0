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
    0.5706549882888794,
    0.5319179892539978,
    0.42118799686431885,
    0.25345298647880554,
    0.5711280107498169,
    0.5323839783668518,
    0.42158401012420654,
    0.25372499227523804,
    0.5711429715156555,
    0.5325239896774292,
    0.42183101177215576,
    0.2540450096130371,
    0.5703399777412415,
    0.5319349765777588,
    0.42153400182724,
    0.25408101081848145,
    0.5702369809150696,
    0.531711995601654,
    0.4212230145931244,
    0.25372400879859924,
    0.5706920027732849,
    0.5321140289306641,
    0.421517014503479,
    0.25387001037597656,
];
const KERAS_CAUSAL: [f32; 24] = [
    0.5475469827651978,
    0.5166900157928467,
    0.4159010052680969,
    0.2588210105895996,
    0.5579310059547424,
    0.5251410007476807,
    0.42127498984336853,
    0.2603920102119446,
    0.5710830092430115,
    0.5339959859848022,
    0.42463499307632446,
    0.25780200958251953,
    0.5475000143051147,
    0.5150189995765686,
    0.41283300518989563,
    0.25477099418640137,
    0.554203987121582,
    0.5218520164489746,
    0.4188700020313263,
    0.2591949999332428,
    0.5668579936027527,
    0.5306180119514465,
    0.42256200313568115,
    0.2573130130767822,
];
const KERAS_MASKED: [f32; 24] = [
    0.5475469827651978,
    0.5166900157928467,
    0.4159010052680969,
    0.2588210105895996,
    0.5579310059547424,
    0.5251410007476807,
    0.42127498984336853,
    0.2603920102119446,
    0.4946790039539337,
    0.43489500880241394,
    0.3162510097026825,
    0.15480299293994904,
    0.5475000143051147,
    0.5150189995765686,
    0.41283300518989563,
    0.25477099418640137,
    0.5475000143051147,
    0.5150189995765686,
    0.41283300518989563,
    0.25477099418640137,
    0.5684630274772644,
    0.5302410125732422,
    0.4202530086040497,
    0.253385990858078,
];
const KERAS_MASKED_SCORES: [f32; 48] = [
    1.0,
    0.0,
    0.0,
    0.0,
    0.5001099705696106,
    0.499889999628067,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    1.0,
    0.0,
    0.0,
    0.0,
    0.5055869817733765,
    0.49441298842430115,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    1.0,
    0.0,
    0.0,
    0.0,
    1.0,
    0.0,
    0.0,
    0.0,
    0.48806801438331604,
    0.0,
    0.5119320154190063,
    0.0,
    1.0,
    0.0,
    0.0,
    0.0,
    1.0,
    0.0,
    0.0,
    0.0,
    0.5106859803199768,
    0.0,
    0.4893139898777008,
    0.0,
];
const KERAS_ATTN_MASK: [f32; 24] = [
    0.570805013179779,
    0.5306429862976074,
    0.4186609983444214,
    0.2500160038471222,
    0.564333975315094,
    0.5279750227928162,
    0.42015698552131653,
    0.25547298789024353,
    0.5759119987487793,
    0.5348150134086609,
    0.421332985162735,
    0.25082600116729736,
    0.5718520283699036,
    0.5312979817390442,
    0.41883501410484314,
    0.24968500435352325,
    0.5648069977760315,
    0.5279920101165771,
    0.4197160005569458,
    0.25463399291038513,
    0.5768269896507263,
    0.5363730192184448,
    0.42332300543785095,
    0.25297901034355164,
];
const KERAS_MASKED_NOSCORES: [f32; 24] = [
    0.5475469827651978,
    0.5166900157928467,
    0.4159010052680969,
    0.2588210105895996,
    0.5579310059547424,
    0.5251410007476807,
    0.42127498984336853,
    0.2603920102119446,
    0.5665810108184814,
    0.5292260050773621,
    0.4202420115470886,
    0.254381000995636,
    0.5475000143051147,
    0.5150189995765686,
    0.41283300518989563,
    0.25477099418640137,
    0.5475000143051147,
    0.5150189995765686,
    0.41283300518989563,
    0.25477099418640137,
    0.5684630274772644,
    0.5302410125732422,
    0.4202530086040497,
    0.253385990858078,
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
