//! MultiHeadAttention against Keras 3 (outputs recorded from keras 3.15 on JAX, in constants
//! below) and against its definition computed here in f64; masks, causal masks with different
//! query and key lengths, attention scores, run-time sequence lengths, CPU and GPU agreeing,
//! save/load, and errors.
#![cfg(feature = "gpu")] // compares the CPU interpreter with the GPU backend

use lamina::prelude::*;
use lamina::{Masking, call_layer};

use crate::common;
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

// Inputs of rank > 3 with masks, against Keras 3.15 (JAX) outputs printed by
// tests/fixtures/make_attention_rank4.py (inputs and weights as `wave`, attention masks as
// `pattern`, input masks from `Masking` on rows set to zero).
const KERAS_R4_AXES12: [f32; 48] = [
    0.5708052, 0.5306433, 0.4186613, 0.2500156, 0.5643341, 0.5279752, 0.4201573, 0.2554732,
    0.5710834, 0.5339962, 0.4246351, 0.2578016, 0.5706703, 0.5320819, 0.4214787, 0.2538304,
    0.5756298, 0.5344594, 0.4209523, 0.2504714, 0.5711998, 0.5310037, 0.4189388, 0.2501724,
    0.5653617, 0.5286319, 0.4203543, 0.2551838, 0.5668947, 0.5307525, 0.4227754, 0.2575776,
    0.5701942, 0.531703, 0.4212483, 0.2537795, 0.5767181, 0.5362557, 0.4232135, 0.2528913,
    0.5721965, 0.5315622, 0.4189836, 0.2496974, 0.5649304, 0.5282826, 0.4201344, 0.2551229,
];
const KERAS_R4_AXES12_SCORES: [f32; 96] = [
    0.3154829, 0.0, 0.3398966, 0.3446206, 0.3224477, 0.3223056, 0.0, 0.3552467, 0.3303645,
    0.3291111, 0.3405244, 0.0, 0.248042, 0.2469996, 0.2515314, 0.2534271, 0.0, 0.3180895,
    0.3388435, 0.343067, 0.3125095, 0.0, 0.3410388, 0.3464517, 0.3439469, 0.0, 0.3259626,
    0.3300904, 0.3413385, 0.3337942, 0.0, 0.3248672, 0.3532782, 0.3384672, 0.3082546, 0.0,
    0.2687353, 0.2574018, 0.2338854, 0.2399777, 0.0, 0.3416682, 0.3267678, 0.3315639, 0.343478,
    0.0, 0.3261752, 0.3303468, 0.3300051, 0.3236147, 0.0, 0.3463801, 0.33418, 0.3309034, 0.3349166,
    0.0, 0.2463039, 0.2415241, 0.2525413, 0.2596308, 0.0, 0.3109697, 0.3366836, 0.3523467,
    0.3230863, 0.0, 0.3328641, 0.3440495, 0.3326981, 0.3292088, 0.0, 0.338093, 0.3455834,
    0.3428809, 0.0, 0.3115357, 0.3469875, 0.3442813, 0.3087311, 0.0, 0.2591901, 0.257567,
    0.2422094, 0.2410336, 0.0, 0.3403769, 0.3297656, 0.3298575, 0.3523049, 0.0, 0.3247957,
    0.3228992, 0.3485711, 0.3457746, 0.0, 0.3056542,
];
const KERAS_R4_AXES12_HEADS: [f32; 48] = [
    0.5609125, 0.5221098, 0.412642, 0.247325, 0.5711282, 0.5323842, 0.4215844, 0.2537251,
    0.5773536, 0.5387843, 0.4272932, 0.2579699, 0.5591506, 0.5207611, 0.411889, 0.2472696,
    0.5705718, 0.5318632, 0.4211693, 0.2534722, 0.5762367, 0.5376294, 0.4262565, 0.2571918,
    0.5708784, 0.5324097, 0.4218818, 0.2542542, 0.5749311, 0.5363411, 0.4251598, 0.2564352,
    0.5766762, 0.5377794, 0.4260967, 0.2567438, 0.5705677, 0.5319858, 0.4214021, 0.2537836,
    0.5755171, 0.5369047, 0.4256248, 0.2567387, 0.5767159, 0.537879, 0.4262429, 0.2569167,
];
const KERAS_R4_AXIS1_CAUSAL: [f32; 48] = [
    0.5475473, 0.5166898, 0.4159007, 0.2588215, 0.5678754, 0.5332313, 0.4264167, 0.2618887,
    0.5723121, 0.5339431, 0.4233073, 0.2553789, 0.5695879, 0.5307111, 0.4200051, 0.2524533,
    0.5640171, 0.5274898, 0.4195692, 0.2548619, 0.5683682, 0.5316299, 0.422938, 0.2570034,
    0.5498712, 0.5149826, 0.4103936, 0.2502598, 0.554969, 0.5242121, 0.4225056, 0.263615,
    0.5801978, 0.5395061, 0.4257948, 0.2544543, 0.579675, 0.5330501, 0.4142793, 0.2394377,
    0.5523571, 0.5160288, 0.4098584, 0.2482156, 0.5526325, 0.5221379, 0.4209746, 0.2628343,
];
const KERAS_R4_AXIS1_HEADS: [f32; 48] = [
    0.5391058, 0.5037634, 0.400239, 0.2425441, 0.580608, 0.5391725, 0.4247625, 0.252863, 0.5714775,
    0.5305745, 0.4178608, 0.2485916, 0.5620403, 0.5258758, 0.4185364, 0.2545501, 0.5696129,
    0.53377, 0.4256838, 0.2599833, 0.5510384, 0.5103177, 0.4005278, 0.2365284, 0.5708127, 0.53328,
    0.4235704, 0.2565325, 0.5469728, 0.5081537, 0.4005585, 0.2387495, 0.5637908, 0.5281422,
    0.421012, 0.2568999, 0.6266798, 0.5867283, 0.4673661, 0.284748, 0.5815076, 0.5389301,
    0.4234108, 0.2505849, 0.5449049, 0.508014, 0.4023657, 0.2422591,
];
const KERAS_R4_AXIS2_MASKED: [f32; 48] = [
    0.571387, 0.5328836, 0.4222569, 0.2544796, 0.5579309, 0.5251406, 0.421275, 0.2603918,
    0.5710834, 0.5339962, 0.4246351, 0.2578016, 0.5703405, 0.5319348, 0.4215343, 0.2540811,
    0.5763687, 0.5359597, 0.4230111, 0.2528099, 0.4946791, 0.4348953, 0.3162505, 0.1548027,
    0.5667032, 0.5292639, 0.4201913, 0.2542477, 0.5634085, 0.5279037, 0.4209495, 0.2570218,
    0.5696241, 0.5313165, 0.4210978, 0.2538854, 0.5743965, 0.5359762, 0.4250141, 0.2565283,
    0.5814834, 0.5393841, 0.4242819, 0.251755, 0.5741049, 0.5357071, 0.424804, 0.2564056,
];
const KERAS_R4_AXIS2_MASKED_SCORES: [f32; 96] = [
    0.4813743, 0.0, 0.5186257, 0.0, 0.5001101, 0.4998898, 0.0, 0.0, 0.3303645, 0.3291111,
    0.3405244, 0.0, 0.513423, 0.0, 0.4865771, 0.0, 0.5055872, 0.4944127, 0.0, 0.0, 0.3532782,
    0.3384672, 0.3082546, 0.0, 0.2492761, 0.246658, 0.2503619, 0.2537041, 0.0, 0.3171586,
    0.3356639, 0.3471774, 0.0, 0.0, 0.0, 0.0, 0.2648564, 0.2628787, 0.2374277, 0.2348372, 0.0,
    0.3444676, 0.3282181, 0.3273143, 0.0, 0.0, 0.0, 0.0, 0.332987, 0.3220055, 0.0, 0.3450076,
    0.3355907, 0.3309815, 0.3334278, 0.0, 0.2497369, 0.2411801, 0.2493373, 0.2597456, 0.3411048,
    0.349295, 0.0, 0.3096001, 0.3373428, 0.3480708, 0.3145865, 0.0, 0.2558154, 0.2599038, 0.245327,
    0.2389538, 0.0, 0.3164744, 0.327378, 0.3561475, 0.0, 0.0, 0.485454, 0.514546, 0.0, 0.4949135,
    0.0, 0.5050865, 0.0, 0.3414232, 0.3327344, 0.3258425, 0.0, 0.0, 0.5133035, 0.4866965, 0.0,
    0.5409802, 0.0, 0.4590199,
];
const KERAS_R4_AXIS2_CAUSAL: [f32; 36] = [
    0.5475473, 0.5166898, 0.4159007, 0.2588215, 0.5579309, 0.5251406, 0.421275, 0.2603918,
    0.5710834, 0.5339962, 0.4246351, 0.2578016, 0.5676144, 0.5240179, 0.4094981, 0.2395546,
    0.5606648, 0.5225382, 0.4136887, 0.2488483, 0.5619725, 0.5258459, 0.4185485, 0.2546025,
    0.5836807, 0.5403023, 0.4237966, 0.2499319, 0.5789908, 0.5345621, 0.4177828, 0.2444587,
    0.5712087, 0.5298257, 0.4167334, 0.2472382,
];
const KERAS_R4_AXIS1_INPUT_MASKS: [f32; 36] = [
    0.5697242, 0.5302932, 0.4190896, 0.2511641, 0.5575912, 0.52404, 0.4195624, 0.258299, 0.4946791,
    0.4348953, 0.3162505, 0.1548027, 0.569932, 0.5306242, 0.4194987, 0.2515962, 0.5576302,
    0.5240694, 0.4195783, 0.2582992, 0.5687933, 0.5290084, 0.4176248, 0.2497176, 0.5700243,
    0.5306436, 0.4194428, 0.2514724, 0.5578002, 0.5241858, 0.4196254, 0.2582707, 0.5686836,
    0.5289369, 0.417601, 0.2497448,
];
const KERAS_R5_AXES13: [f32; 48] = [
    0.5523698, 0.5201601, 0.4175491, 0.2584248, 0.5565827, 0.5230652, 0.4187533, 0.2577651,
    0.5559825, 0.5237585, 0.4206464, 0.2606017, 0.5766397, 0.5333934, 0.4179547, 0.2459479,
    0.5780802, 0.5331878, 0.416131, 0.2427527, 0.5795869, 0.5356981, 0.4193052, 0.2461613,
    0.5538445, 0.5211357, 0.4178936, 0.2580916, 0.5565675, 0.5238887, 0.420304, 0.2598332,
    0.5523663, 0.5201498, 0.4175335, 0.2584061, 0.577709, 0.5333815, 0.4168634, 0.2439247,
    0.580997, 0.5367247, 0.4198093, 0.2460746, 0.5766544, 0.5334113, 0.4179734, 0.2459647,
];

/// The attention masks of the reference script: `(7 k + 3) % 5 != 0` over the flat index.
fn pattern(shape: &[usize]) -> HostTensor {
    let n: usize = shape.iter().product();
    HostTensor::new(
        shape,
        (0..n).map(|k| (k * 7 + 3) % 5 != 0).collect::<Vec<bool>>(),
    )
    .unwrap()
}

/// `wave(shape, offset)` with the rows (all axes but the last) at `zero` set to 0.
fn wave_zeroed(shape: &[usize], offset: f64, zero: &[&[usize]]) -> HostTensor {
    let mut v = wave(shape, offset).to_f32_vec();
    let d = shape[shape.len() - 1];
    for idx in zero {
        let row = idx
            .iter()
            .zip(&shape[..shape.len() - 1])
            .fold(0, |acc, (&i, &n)| acc * n + i);
        v[row * d..(row + 1) * d].fill(0.0);
    }
    HostTensor::new(shape, v).unwrap()
}

/// One masked case of the reference script.
struct Case {
    name: &'static str,
    axes: Option<&'static [isize]>,
    q: &'static [usize],
    v: &'static [usize],
    mask: Option<&'static [usize]>,
    causal: bool,
    zero_q: &'static [&'static [usize]],
    zero_v: &'static [&'static [usize]],
    want: &'static [f32],
    want_scores: Option<(&'static [usize], &'static [f32])>,
}

/// Query and value inputs (batch unknown, per-sample sizes known unless `dynamic`), through
/// `Masking` when the case has zero rows, and an attention-mask input, into `layer`.
fn case_model(layer: &MultiHeadAttention, c: &Case) -> Result<Model> {
    let dims = |s: &[usize]| s[1..].iter().map(|&n| Dim::Known(n)).collect::<Vec<_>>();
    let q = Input::with_dims(dims(c.q)).tensor();
    let v = Input::with_dims(dims(c.v)).tensor();
    let masking = !c.zero_q.is_empty() || !c.zero_v.is_empty();
    let (mq, mv) = if masking {
        (Masking::new(0.0).call(&q)?, Masking::new(0.0).call(&v)?)
    } else {
        (q.clone(), v.clone())
    };
    let mut inputs = vec![q, v];
    let outs = match c.mask {
        Some(shape) => {
            let am = Input::with_dims(dims(shape)).dtype(DType::Bool).tensor();
            inputs.push(am.clone());
            call_layer(layer, &[mq, mv.clone(), mv, am])?
        }
        None => call_layer(layer, &[mq, mv])?,
    };
    set_weights(layer);
    Model::new(&inputs, &outs)
}

fn case_layer(c: &Case) -> MultiHeadAttention {
    let mut mha = MultiHeadAttention::new(2, 3)
        .use_causal_mask(c.causal)
        .return_attention_scores(c.want_scores.is_some());
    if let Some(axes) = c.axes {
        mha = mha.attention_axes(axes);
    }
    mha
}

fn case_inputs(c: &Case) -> Vec<HostTensor> {
    let mut x = vec![
        wave_zeroed(c.q, 0.1, c.zero_q),
        wave_zeroed(c.v, 0.7, c.zero_v),
    ];
    if let Some(shape) = c.mask {
        x.push(pattern(shape));
    }
    x
}

const RANK4_CASES: [Case; 8] = [
    // Default axes (1, 2): attention_mask (B, X, Y, X', Y'), scores (B, N, X, Y, X', Y').
    Case {
        name: "axes12",
        axes: None,
        q: &[2, 2, 3, 4],
        v: &[2, 2, 2, 4],
        mask: Some(&[2, 2, 3, 2, 2]),
        causal: false,
        zero_q: &[],
        zero_v: &[],
        want: &KERAS_R4_AXES12,
        want_scores: Some((&[2, 2, 2, 3, 2, 2], &KERAS_R4_AXES12_SCORES)),
    },
    // Axes (1, 2), a per-head mask in the scores' layout with size-1 query and key axes.
    Case {
        name: "axes12_heads",
        axes: Some(&[1, 2]),
        q: &[2, 2, 3, 4],
        v: &[2, 2, 2, 4],
        mask: Some(&[2, 2, 1, 3, 1, 2]),
        causal: false,
        zero_q: &[],
        zero_v: &[],
        want: &KERAS_R4_AXES12_HEADS,
        want_scores: None,
    },
    // Axes (1,): a (B, T, S) mask broadcast over Y and the heads, and the causal mask.
    Case {
        name: "axis1_causal",
        axes: Some(&[1]),
        q: &[2, 3, 2, 4],
        v: &[2, 4, 2, 4],
        mask: Some(&[2, 3, 4]),
        causal: true,
        zero_q: &[],
        zero_v: &[],
        want: &KERAS_R4_AXIS1_CAUSAL,
        want_scores: None,
    },
    // Axes (1,): a per-head mask (B, Y, N, X, X').
    Case {
        name: "axis1_heads",
        axes: Some(&[1]),
        q: &[2, 3, 2, 4],
        v: &[2, 4, 2, 4],
        mask: Some(&[2, 2, 2, 3, 4]),
        causal: false,
        zero_q: &[],
        zero_v: &[],
        want: &KERAS_R4_AXIS1_HEADS,
        want_scores: None,
    },
    // Axes (2,): query and value masks (Masking) and an attention_mask (B, X, Y, Y').
    Case {
        name: "axis2_masked",
        axes: Some(&[2]),
        q: &[2, 2, 3, 4],
        v: &[2, 2, 4, 4],
        mask: Some(&[2, 2, 3, 4]),
        causal: false,
        zero_q: &[&[0, 1, 2]],
        zero_v: &[&[0, 0, 3], &[1, 1, 0]],
        want: &KERAS_R4_AXIS2_MASKED,
        want_scores: Some((&[2, 2, 2, 3, 4], &KERAS_R4_AXIS2_MASKED_SCORES)),
    },
    // Axes (2,), causal: built from axis 1's lengths, so only X == Y and X' == Y' fit.
    Case {
        name: "axis2_causal",
        axes: Some(&[2]),
        q: &[1, 3, 3, 4],
        v: &[1, 3, 3, 4],
        mask: None,
        causal: true,
        zero_q: &[],
        zero_v: &[],
        want: &KERAS_R4_AXIS2_CAUSAL,
        want_scores: None,
    },
    // Axes (1,) with X == Y: the (B, X, Y, 1) query mask lands on the Y axis, as in Keras.
    Case {
        name: "axis1_input_masks",
        axes: Some(&[1]),
        q: &[1, 3, 3, 4],
        v: &[1, 3, 3, 4],
        mask: None,
        causal: false,
        zero_q: &[&[0, 2, 0]],
        zero_v: &[&[0, 1, 2]],
        want: &KERAS_R4_AXIS1_INPUT_MASKS,
        want_scores: None,
    },
    // Rank 5, axes (1, 3) around the batch-like axis 2: mask (B, X2, X1, X3, X1', X3').
    Case {
        name: "rank5_axes13",
        axes: Some(&[1, 3]),
        q: &[1, 2, 2, 3, 4],
        v: &[1, 3, 2, 2, 4],
        mask: Some(&[1, 2, 2, 3, 3, 2]),
        causal: false,
        zero_q: &[],
        zero_v: &[],
        want: &KERAS_R5_AXES13,
        want_scores: None,
    },
];

#[test]
fn rank4_masks_match_keras() {
    for c in &RANK4_CASES {
        eprintln!("case {}", c.name);
        let mha = case_layer(c);
        let m = case_model(&mha, c).unwrap();
        let y = run_both(&m, &case_inputs(c));
        assert_eq!(y[0].shape(), c.q, "{}", c.name);
        assert_close(&y[0].to_f32_vec(), c.want, 2e-5);
        if let Some((shape, scores)) = c.want_scores {
            assert_eq!(y[1].shape(), shape, "{}", c.name);
            assert_close(&y[1].to_f32_vec(), scores, 2e-5);
        }
    }
}

#[test]
fn rank4_axis1_run_time_lengths_against_definition() {
    // (B, X, Y, D) with attention over X: for each (b, y), the rank-3 definition over X, with
    // the (B, T, S) attention_mask broadcast over Y and the causal mask; X and X' are known
    // only at run time.
    let (yl, d, h, kd) = (2, 4, 2, 3);
    let q = Input::with_dims(vec![Dim::Dynamic, Dim::Known(yl), Dim::Known(d)]).tensor();
    let v = Input::with_dims(vec![Dim::Dynamic, Dim::Known(yl), Dim::Known(d)]).tensor();
    let am = Input::with_dims(vec![Dim::Dynamic, Dim::Dynamic])
        .dtype(DType::Bool)
        .tensor();
    let mha = MultiHeadAttention::new(h, kd)
        .attention_axes(&[1])
        .use_causal_mask(true)
        .return_attention_scores(true);
    let outs = call_layer(&mha, &[q.clone(), v.clone(), v.clone(), am.clone()]).unwrap();
    let m = Model::new(&[q, v, am], &outs).unwrap();
    for (b, t, s) in [(2usize, 3usize, 4usize), (1, 5, 2)] {
        let x = vec![
            wave(&[b, t, yl, d], 0.4),
            wave(&[b, s, yl, d], 1.3),
            pattern(&[b, t, s]),
        ];
        let y = run_both(&m, &x);
        // (B, X, Y, D) → (B * Y, X, D), the batch of the rank-3 definition.
        let rows = |x: &[f32], n: usize| {
            let mut out = vec![0f32; x.len()];
            for bi in 0..b {
                for i in 0..n {
                    for yy in 0..yl {
                        let src = ((bi * n + i) * yl + yy) * d;
                        let dst = ((bi * yl + yy) * n + i) * d;
                        out[dst..dst + d].copy_from_slice(&x[src..src + d]);
                    }
                }
            }
            out
        };
        let (qr, vr) = (rows(&x[0].to_f32_vec(), t), rows(&x[1].to_f32_vec(), s));
        let keep: Vec<bool> = x[2].to_f32_vec().iter().map(|&k| k != 0.0).collect();
        let mask = |bb: usize, i: usize, j: usize| keep[((bb / yl) * t + i) * s + j] && j <= i;
        let (want, scores) = reference(
            &qr,
            &vr,
            &vr,
            &weights_of(&mha),
            (b * yl, t, s, d, d, d),
            (h, kd, kd, d),
            &mask,
        );
        // The definition's (B * Y, X, D) back to (B, X, Y, D); its scores (B * Y, N, X, X')
        // are already the layer's (B, Y, N, X, X').
        let mut back = vec![0f64; want.len()];
        for bi in 0..b {
            for i in 0..t {
                for yy in 0..yl {
                    let src = ((bi * yl + yy) * t + i) * d;
                    let dst = ((bi * t + i) * yl + yy) * d;
                    back[dst..dst + d].copy_from_slice(&want[src..src + d]);
                }
            }
        }
        assert_eq!(y[0].shape(), &[b, t, yl, d]);
        assert_eq!(y[1].shape(), &[b, yl, h, t, s]);
        close64(&y[0].to_f32_vec(), &back);
        close64(&y[1].to_f32_vec(), &scores);
    }
}

#[test]
fn rank4_mask_errors_where_keras_refuses() {
    // Each refused by Keras 3.15 too (see tests/fixtures/make_attention_rank4.py).
    let refused = |name: &'static str, c: Case, words: &[&str]| {
        let mha = case_layer(&c).name(name);
        let msg = match case_model(&mha, &c) {
            Ok(_) => panic!("{name}: built, but Keras refuses it"),
            Err(e) => e.to_string(),
        };
        assert!(
            msg.contains(name) && msg.contains("multi_head_attention"),
            "{msg}"
        );
        for w in words {
            assert!(msg.contains(w), "{name}: {msg} lacks {w}");
        }
    };
    let base = |axes: Option<&'static [isize]>, q: &'static [usize], v: &'static [usize]| Case {
        name: "",
        axes,
        q,
        v,
        mask: None,
        causal: false,
        zero_q: &[],
        zero_v: &[],
        want: &[],
        want_scores: None,
    };
    // The (1, T, S) causal mask cannot take size-1 axes at -5 (default axes of a rank-4 input).
    refused(
        "causal_default_axes",
        Case {
            causal: true,
            ..base(None, &[2, 2, 3, 4], &[2, 2, 2, 4])
        },
        &["(1, 2, 2)", "(None, 2, 2, 3, 2, 2)", "-5"],
    );
    // An input mask (B, X, Y, 1) with the default axes: its axes land on the wrong ones.
    refused(
        "masking_default_axes",
        Case {
            zero_q: &[&[0, 0, 0]],
            ..base(None, &[2, 2, 3, 4], &[2, 2, 2, 4])
        },
        &["neither 1 nor"],
    );
    // A (B, X, Y, X', Y') mask with attention over axis 1 only.
    refused(
        "wrong_mask",
        Case {
            mask: Some(&[2, 3, 2, 4, 2]),
            ..base(Some(&[1]), &[2, 3, 2, 4], &[2, 4, 2, 4])
        },
        &["(None, 3, 2, 4, 2)", "neither 1 nor"],
    );
    // More axes than the scores.
    refused(
        "long_mask",
        Case {
            mask: Some(&[2, 1, 1, 1, 1, 1, 1]),
            ..base(Some(&[1]), &[2, 3, 2, 4], &[2, 4, 2, 4])
        },
        &["more than 5 axes"],
    );
    // Causal over axis 1's lengths, attention over axis 2 of another length.
    refused(
        "causal_axis2",
        Case {
            causal: true,
            ..base(Some(&[2]), &[2, 2, 3, 4], &[2, 2, 4, 4])
        },
        &["neither 1 nor"],
    );
    // A rank-1 mask cannot take an axis at -3.
    let q = Input::with_dims(vec![Dim::Known(3), Dim::Known(2), Dim::Known(4)]).tensor();
    let v = Input::with_dims(vec![Dim::Known(4), Dim::Known(2), Dim::Known(4)]).tensor();
    let short = Tensor::constant(HostTensor::new(&[4], vec![true; 4]).unwrap());
    let e = MultiHeadAttention::new(2, 3)
        .attention_axes(&[1])
        .name("short_mask")
        .call([&q, &v, &v, &short])
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("short_mask") && msg.contains("-3"), "{msg}");
}

#[test]
fn rank4_causal_mismatch_at_run_time_is_an_error() {
    // Axes (2,) with the causal mask from axis 1: with run-time lengths the mismatch shows
    // when the model runs (as in Keras), as an error, not a panic.
    let q = Input::with_dims(vec![Dim::Dynamic, Dim::Dynamic, Dim::Known(4)]).tensor();
    let mha = MultiHeadAttention::new(2, 3)
        .attention_axes(&[2])
        .use_causal_mask(true);
    let y = mha.call([&q, &q]).unwrap();
    let m = Model::new(&[q], &[y]).unwrap();
    // X == Y fits (and is the causal mask over axis 2) ...
    let ok = run_both(&m, &[wave(&[1, 3, 3, 4], 0.2)]);
    assert_eq!(ok[0].shape(), &[1, 3, 3, 4]);
    // ... X != Y does not.
    let session = Session::new(m.program().clone(), BackendKind::Cpu).unwrap();
    assert!(session.run(&[wave(&[1, 2, 3, 4], 0.2)]).is_err());
    if let Some(g) = common::gpu() {
        let session = Session::with_backend(m.program().clone(), std::sync::Arc::new(g));
        assert!(session.run(&[wave(&[1, 2, 3, 4], 0.2)]).is_err());
    }
}

#[test]
fn rank3_attention_mask_shapes_keras_accepts() {
    // Keras also takes a (T, S) mask and a per-head (B, heads, T, S) one on (B, T, D) inputs:
    // head h under a per-head mask scores as under that head's (B, T, S) mask alone.
    let q = Input::with_dims(vec![Dim::Dynamic, Dim::Known(D)]).tensor();
    let v = Input::with_dims(vec![Dim::Dynamic, Dim::Known(D)]).tensor();
    let run = |mask: HostTensor| {
        let am = Tensor::constant(mask);
        let mha = MultiHeadAttention::new(2, 3).return_attention_scores(true);
        let outs = call_layer(&mha, &[q.clone(), v.clone(), v.clone(), am]).unwrap();
        set_weights(&mha);
        run_both(
            &Model::new(&[q.clone(), v.clone()], &outs).unwrap(),
            &inputs(),
        )
    };
    let heads = pattern(&[B, 2, T, S]).to_f32_vec();
    let per_head = run(pattern(&[B, 2, T, S]));
    for hh in 0..2 {
        let mut one = Vec::new();
        for b in 0..B {
            let at = (b * 2 + hh) * T * S;
            one.extend(heads[at..at + T * S].iter().map(|&k| k != 0.0));
        }
        let alone = run(HostTensor::new(&[B, T, S], one).unwrap());
        let (a, p) = (alone[1].to_f32_vec(), per_head[1].to_f32_vec());
        for b in 0..B {
            let at = (b * 2 + hh) * T * S;
            assert_eq!(
                &p[at..at + T * S],
                &a[at..at + T * S],
                "head {hh}, batch {b}"
            );
        }
    }
    // A (T, S) mask is the same mask for every batch entry.
    let ts = pattern(&[T, S]).to_f32_vec();
    let both: Vec<bool> = ts.iter().chain(&ts).map(|&k| k != 0.0).collect();
    let shared = run(pattern(&[T, S]));
    let repeated = run(HostTensor::new(&[B, T, S], both).unwrap());
    assert_eq!(shared[0].to_f32_vec(), repeated[0].to_f32_vec());
    assert_eq!(shared[1].to_f32_vec(), repeated[1].to_f32_vec());
}
