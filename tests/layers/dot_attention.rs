//! `Attention` (Luong, dot and concat scores) and `AdditiveAttention` (Bahdanau) against Keras 3
//! (outputs recorded from keras 3 on JAX, in constants below) and against their definitions
//! computed here in f64: input masks (a value masked whole included), causal masks, a separate
//! key, attention scores, the output mask, CPU and GPU agreeing, save/load, and errors.
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

/// Sets rows (batch, time) of a (B, T, D) tensor to zero, so `Masking(0.0)` masks them.
fn zero_rows(x: HostTensor, rows: &[(usize, usize)]) -> HostTensor {
    let s = x.shape().to_vec();
    let mut v = x.to_f32_vec();
    for &(b, t) in rows {
        for d in 0..s[2] {
            v[(b * s[1] + t) * s[2] + d] = 0.0;
        }
    }
    HostTensor::new(&s, v).unwrap()
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

// Recorded with KERAS_BACKEND=jax: q = wave((2,3,4), 0.1), v = wave((2,4,4), 0.7),
// k = wave((2,4,4), 1.3), v5 = wave((2,4,5), 1.9); the masked cases zero query row (1, 2),
// value rows (0, 2), (0, 3) and all of value batch 1, and pass the masks `any(x != 0, -1)`.
const DOT_PLAIN: [f32; 24] = [
    0.1105497,
    0.1242314,
    0.1210989,
    0.1015762,
    0.1724025,
    0.1777577,
    0.1590542,
    0.1188234,
    -0.06111537,
    -0.09509189,
    -0.1161982,
    -0.1215776,
    -0.1577492,
    -0.1878141,
    -0.1924593,
    -0.171056,
    0.0567629,
    0.0662134,
    0.06670225,
    0.05816327,
    0.1869839,
    0.2031118,
    0.1917496,
    0.1544349,
];
const DOT_SCALED_MASKED: [f32; 24] = [
    0.3594028, 0.3708516, 0.3321074, 0.248414, 0.3615774, 0.3669013, 0.3225668, 0.2345743,
    0.3719552, 0.3480488, 0.2770355, 0.1685268, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0,
];
const DOT_SCALED_MASKED_SCORES: [f32; 24] = [
    0.5759307, 0.4240693, 0.0, 0.0, 0.5512036, 0.4487965, 0.0, 0.0, 0.4331973, 0.5668027, 0.0, 0.0,
    0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25,
];
const CONCAT_MASKED_CAUSAL: [f32; 24] = [
    0.3221088, 0.4386002, 0.4957292, 0.4857635, 0.3511235, 0.3858918, 0.3684315, 0.3011057,
    0.3497036, 0.3884715, 0.3746616, 0.3101431, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0,
];
const CONCAT_MASKED_CAUSAL_SCORES: [f32; 24] = [
    1.0, 0.0, 0.0, 0.0, 0.6700743, 0.3299257, 0.0, 0.0, 0.6862212, 0.3137788, 0.0, 0.0, 0.25, 0.25,
    0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25,
];
const CONCAT_PLAIN: [f32; 24] = [
    0.3113914, 0.3533587, 0.3475007, 0.2946101, 0.3020755, 0.3500314, 0.3506121, 0.3037392,
    0.3117863, 0.3719553, 0.381782, 0.3399362, 0.2769587, 0.3233499, 0.3259771, 0.2844849,
    0.3020016, 0.3382806, 0.328775, 0.2747712, 0.2794937, 0.3224826, 0.3218251, 0.2776099,
];
const DOT_KEY_CAUSAL: [f32; 30] = [
    0.47315,
    0.3826775,
    0.2404113,
    0.06560659,
    -0.1180777,
    0.2318993,
    0.1291719,
    0.008961739,
    -0.1124614,
    -0.2186634,
    -0.1380116,
    -0.135231,
    -0.1141475,
    -0.07761467,
    -0.03057707,
    0.06222721,
    -0.1213859,
    -0.2885699,
    -0.4166974,
    -0.4884269,
    -0.1663965,
    -0.249376,
    -0.2986036,
    -0.3074166,
    -0.2746223,
    -0.0891609,
    -0.159991,
    -0.2091671,
    -0.2300334,
    -0.2197658,
];
const DOT_KEY_CAUSAL_SCORES: [f32; 24] = [
    1.0, 0.0, 0.0, 0.0, 0.6821176, 0.3178825, 0.0, 0.0, 0.2114437, 0.3630642, 0.4254921, 0.0, 1.0,
    0.0, 0.0, 0.0, 0.5890113, 0.4109888, 0.0, 0.0, 0.5812948, 0.3029203, 0.1157849, 0.0,
];
const ADD_MASKED: [f32; 24] = [
    0.3683192, 0.3546539, 0.2929878, 0.1916672, 0.3686928, 0.3539754, 0.291349, 0.1892899,
    0.3691176, 0.3532035, 0.289485, 0.186586, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0,
];
const ADD_MASKED_SCORES: [f32; 24] = [
    0.4745419, 0.525458, 0.0, 0.0, 0.4702945, 0.5297056, 0.0, 0.0, 0.4654634, 0.5345366, 0.0, 0.0,
    0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25,
];
const ADD_NOSCALE_CAUSAL_KEY: [f32; 30] = [
    0.47315,
    0.3826775,
    0.2404113,
    0.06560659,
    -0.1180777,
    0.3450415,
    0.2480613,
    0.1175073,
    -0.02895078,
    -0.1714905,
    0.3494781,
    0.2632007,
    0.1413004,
    0.0002756561,
    -0.1407863,
    0.06222721,
    -0.1213859,
    -0.2885699,
    -0.4166974,
    -0.4884269,
    -0.06389265,
    -0.1919914,
    -0.294105,
    -0.3564129,
    -0.3704819,
    -0.07338997,
    -0.1809849,
    -0.2640844,
    -0.3114412,
    -0.316646,
];

const B: usize = 2;
const TQ: usize = 3;
const TV: usize = 4;
const D: usize = 4;

/// query (None, D), value (None, dv) and, with `key`, key (None, D) inputs, optionally through
/// `Masking(0.0)` (query and value), into `layer`; `weights` are set after the call.
fn model(
    layer: &dyn Layer,
    dv: usize,
    key: bool,
    masking: bool,
    weights: &[(&str, HostTensor)],
) -> Model {
    let q = Input::with_dims(vec![Dim::Dynamic, Dim::Known(D)]).tensor();
    let v = Input::with_dims(vec![Dim::Dynamic, Dim::Known(dv)]).tensor();
    let k = Input::with_dims(vec![Dim::Dynamic, Dim::Known(D)]).tensor();
    let (mq, mv) = if masking {
        (
            Masking::new(0.0).call(&q).unwrap(),
            Masking::new(0.0).call(&v).unwrap(),
        )
    } else {
        (q.clone(), v.clone())
    };
    let mut ins = vec![mq, mv];
    let mut model_ins = vec![q, v];
    if key {
        ins.push(k.clone());
        model_ins.push(k);
    }
    let outs = call_layer(layer, &ins).unwrap();
    for (name, value) in weights {
        layer.set_weight(name, value.clone()).unwrap();
    }
    Model::new(&model_ins, &outs).unwrap()
}

fn q() -> HostTensor {
    wave(&[B, TQ, D], 0.1)
}
fn v() -> HostTensor {
    wave(&[B, TV, D], 0.7)
}
fn k() -> HostTensor {
    wave(&[B, TV, D], 1.3)
}
fn v5() -> HostTensor {
    wave(&[B, TV, 5], 1.9)
}
fn qz() -> HostTensor {
    zero_rows(q(), &[(1, 2)])
}
fn vz() -> HostTensor {
    zero_rows(v(), &[(0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)])
}

fn scalar(x: f32) -> HostTensor {
    HostTensor::new(&[], vec![x]).unwrap()
}

#[test]
fn attention_matches_keras() {
    let y = run_both(&model(&Attention::new(), D, false, false, &[]), &[q(), v()]);
    assert_eq!(y[0].shape(), &[B, TQ, D]);
    assert_close(&y[0].to_f32_vec(), &DOT_PLAIN, 2e-5);

    let l = Attention::new()
        .use_scale(true)
        .return_attention_scores(true);
    let m = model(&l, D, false, true, &[("scale", scalar(0.7))]);
    let y = run_both(&m, &[qz(), vz()]);
    assert_eq!(y[1].shape(), &[B, TQ, TV]);
    assert_close(&y[0].to_f32_vec(), &DOT_SCALED_MASKED, 2e-5);
    // Value batch 1 is masked whole: Keras's -1e9 bias leaves a uniform softmax, not zeros.
    assert_close(&y[1].to_f32_vec(), &DOT_SCALED_MASKED_SCORES, 2e-5);

    let l = Attention::new()
        .use_scale(true)
        .score_mode(ScoreMode::Concat)
        .use_causal_mask(true)
        .return_attention_scores(true);
    let w = [("scale", scalar(0.6)), ("concat_score_weight", scalar(1.3))];
    let y = run_both(&model(&l, D, false, true, &w), &[qz(), vz()]);
    assert_close(&y[0].to_f32_vec(), &CONCAT_MASKED_CAUSAL, 2e-5);
    assert_close(&y[1].to_f32_vec(), &CONCAT_MASKED_CAUSAL_SCORES, 2e-5);

    let l = Attention::new().score_mode(ScoreMode::Concat);
    let w = [("concat_score_weight", scalar(1.3))];
    let y = run_both(&model(&l, D, false, false, &w), &[q(), v()]);
    assert_close(&y[0].to_f32_vec(), &CONCAT_PLAIN, 2e-5);

    // A separate key, a value 5 wide, causal with Tq = 3 < Tv = 4.
    let l = Attention::new()
        .use_causal_mask(true)
        .return_attention_scores(true);
    let y = run_both(&model(&l, 5, true, false, &[]), &[q(), v5(), k()]);
    assert_eq!(y[0].shape(), &[B, TQ, 5]);
    assert_close(&y[0].to_f32_vec(), &DOT_KEY_CAUSAL, 2e-5);
    assert_close(&y[1].to_f32_vec(), &DOT_KEY_CAUSAL_SCORES, 2e-5);
}

#[test]
fn additive_attention_matches_keras() {
    let l = AdditiveAttention::new().return_attention_scores(true);
    let m = model(&l, D, false, true, &[("scale", wave(&[D], 2.5))]);
    let y = run_both(&m, &[qz(), vz()]);
    assert_close(&y[0].to_f32_vec(), &ADD_MASKED, 2e-5);
    assert_close(&y[1].to_f32_vec(), &ADD_MASKED_SCORES, 2e-5);

    let l = AdditiveAttention::new()
        .use_scale(false)
        .use_causal_mask(true);
    assert!(l.variables().is_empty());
    let y = run_both(&model(&l, 5, true, false, &[]), &[q(), v5(), k()]);
    assert_close(&y[0].to_f32_vec(), &ADD_NOSCALE_CAUSAL_KEY, 2e-5);
}

/// The layers' definition in f64: scores by `score(q_row, k_row)`, masked scores lowered by
/// 1e9 in float32 (as Keras does, so a row masked whole is the softmax of the lowered scores),
/// softmax, weighted values, zeros where the query is masked. Returns (output, weights).
#[allow(clippy::too_many_arguments)]
fn reference(
    q: &[f32],
    v: &[f32],
    k: &[f32],
    (b, tq, tv, d, dv): (usize, usize, usize, usize, usize),
    score: &dyn Fn(&[f32], &[f32]) -> f64,
    qmask: &dyn Fn(usize, usize) -> bool,
    vmask: &dyn Fn(usize, usize) -> bool,
    causal: bool,
) -> (Vec<f64>, Vec<f64>) {
    let mut out = vec![0.0; b * tq * dv];
    let mut weights = vec![0.0; b * tq * tv];
    for n in 0..b {
        for i in 0..tq {
            let qr = &q[(n * tq + i) * d..][..d];
            let s: Vec<f64> = (0..tv)
                .map(|j| {
                    let kr = &k[(n * tv + j) * d..][..d];
                    let s = score(qr, kr);
                    if vmask(n, j) && (!causal || j <= i) {
                        s
                    } else {
                        ((s as f32) - 1.0e9f32) as f64
                    }
                })
                .collect();
            let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
            let z: f64 = e.iter().sum();
            for j in 0..tv {
                let w = e[j] / z;
                weights[(n * tq + i) * tv + j] = w;
                if qmask(n, i) {
                    for c in 0..dv {
                        out[(n * tq + i) * dv + c] += w * v[(n * tv + j) * dv + c] as f64;
                    }
                }
            }
        }
    }
    (out, weights)
}

fn close64(got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (*a as f64 - b).abs() <= 2e-5 * (1.0 + b.abs()),
            "element {i}: got {a}, want {b}"
        );
    }
}

fn any_nonzero(x: &[f32], d: usize) -> impl Fn(usize, usize, usize) -> bool + '_ {
    move |t, n, j| x[(n * t + j) * d..][..d].iter().any(|&a| a != 0.0)
}

type Case<'a> = (
    Box<dyn Layer>,
    &'a dyn Fn(&[f32], &[f32]) -> f64,
    Vec<(&'static str, HostTensor)>,
);

#[test]
fn both_layers_against_definition() {
    let (b, tq, tv, d, dv) = (3, 5, 6, 3, 2);
    let mut qx = wave(&[b, tq, d], 0.4);
    qx = zero_rows(qx, &[(0, 4), (2, 0)]);
    let vx = zero_rows(wave(&[b, tv, dv], 1.7), &[(1, 5), (1, 2), (2, 0), (2, 1)]);
    let kx = wave(&[b, tv, d], 2.9);
    let (qs, vs, ks) = (qx.to_f32_vec(), vx.to_f32_vec(), kx.to_f32_vec());
    let qm = any_nonzero(&qs, d);
    let vm = any_nonzero(&vs, dv);
    let dot = |a: &[f32], c: &[f32]| a.iter().zip(c).map(|(x, y)| *x as f64 * *y as f64).sum();
    let sw = wave(&[d], 0.9).to_f32_vec();
    let add = |a: &[f32], c: &[f32]| {
        (0..a.len())
            .map(|i| sw[i] as f64 * (a[i] as f64 + c[i] as f64).tanh())
            .sum()
    };
    for causal in [false, true] {
        let layers: Vec<Case> = vec![
            (
                Box::new(
                    Attention::new()
                        .use_causal_mask(causal)
                        .return_attention_scores(true),
                ),
                &dot,
                vec![],
            ),
            (
                Box::new(
                    AdditiveAttention::new()
                        .use_causal_mask(causal)
                        .return_attention_scores(true),
                ),
                &add,
                vec![("scale", wave(&[d], 0.9))],
            ),
        ];
        for (layer, score, w) in layers {
            let qi = Input::with_dims(vec![Dim::Dynamic, Dim::Known(d)]).tensor();
            let vi = Input::with_dims(vec![Dim::Dynamic, Dim::Known(dv)]).tensor();
            let ki = Input::with_dims(vec![Dim::Dynamic, Dim::Known(d)]).tensor();
            let mq = Masking::new(0.0).call(&qi).unwrap();
            let mv = Masking::new(0.0).call(&vi).unwrap();
            let outs = call_layer(layer.as_ref(), &[mq, mv, ki.clone()]).unwrap();
            for (name, value) in &w {
                layer.set_weight(name, value.clone()).unwrap();
            }
            // The output carries the query's mask.
            let mask = outs[0].mask().expect("the output carries a mask").clone();
            let mut model_outs = outs.clone();
            model_outs.push(mask);
            let m = Model::new(&[qi, vi, ki], &model_outs).unwrap();
            let y = run_both(&m, &[qx.clone(), vx.clone(), kx.clone()]);
            let (want, weights) = reference(
                &qs,
                &vs,
                &ks,
                (b, tq, tv, d, dv),
                score,
                &|n, i| qm(tq, n, i),
                &|n, j| vm(tv, n, j),
                causal,
            );
            close64(&y[0].to_f32_vec(), &want);
            close64(&y[1].to_f32_vec(), &weights);
            let want_mask: Vec<bool> = (0..b * tq).map(|r| qm(tq, r / tq, r % tq)).collect();
            assert_eq!(y[2].as_bool().unwrap().to_vec(), want_mask);
        }
    }
}

#[test]
fn save_load_round_trip() {
    let dir = std::env::temp_dir().join(format!("lamina_dot_attention_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.lamina");
    let a = Attention::new()
        .use_scale(true)
        .score_mode(ScoreMode::Concat)
        .use_causal_mask(true)
        .return_attention_scores(true)
        .name("luong");
    let w = [("scale", scalar(0.6)), ("concat_score_weight", scalar(1.3))];
    let m = model(&a, D, false, true, &w);
    m.save(&path).unwrap();
    let loaded = Model::load(&path).unwrap();
    let y = run_both(&loaded, &[qz(), vz()]);
    assert_close(&y[0].to_f32_vec(), &CONCAT_MASKED_CAUSAL, 2e-5);
    assert_close(&y[1].to_f32_vec(), &CONCAT_MASKED_CAUSAL_SCORES, 2e-5);

    let a = AdditiveAttention::new()
        .return_attention_scores(true)
        .name("bahdanau");
    let m = model(&a, D, false, true, &[("scale", wave(&[D], 2.5))]);
    m.save(&path).unwrap();
    let loaded = Model::load(&path).unwrap();
    let y = run_both(&loaded, &[qz(), vz()]);
    assert_close(&y[0].to_f32_vec(), &ADD_MASKED, 2e-5);
    assert_close(&y[1].to_f32_vec(), &ADD_MASKED_SCORES, 2e-5);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn clear_errors() {
    let q = Input::with_dims(vec![Dim::Dynamic, Dim::Known(4)]).tensor();
    let q5 = Input::with_dims(vec![Dim::Dynamic, Dim::Known(5)]).tensor();
    let flat = Input::with_dims(vec![Dim::Known(4)]).tensor();
    let short = Input::with_dims(vec![Dim::Known(3), Dim::Known(4)]).tensor();
    let long = Input::with_dims(vec![Dim::Known(6), Dim::Known(4)]).tensor();

    let e = call_layer(&Attention::new().name("one"), std::slice::from_ref(&q)).unwrap_err();
    assert!(e.to_string().contains("[query, value]"), "{e}");
    let e = call_layer(&Attention::new().name("ranks"), &[q.clone(), flat.clone()]).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("ranks") && msg.contains("rank 2"), "{msg}");
    let e = call_layer(&Attention::new().name("widths"), &[q.clone(), q5.clone()]).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("widths") && msg.contains("last dimension") && msg.contains("(None, None, 5)"),
        "{msg}"
    );
    let e = call_layer(
        &AdditiveAttention::new().name("lengths"),
        &[q.clone(), short, long],
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("lengths") && msg.contains("same length"),
        "{msg}"
    );
    let e = call_layer(
        &Attention::new().dropout(1.5).name("drop"),
        &[q.clone(), q.clone()],
    )
    .unwrap_err();
    assert!(e.to_string().contains("dropout"), "{e}");
    // A layer built for width 4 called on width 5.
    let l = AdditiveAttention::new().name("reuse");
    call_layer(&l, &[q.clone(), q.clone()]).unwrap();
    let e = call_layer(&l, &[q5.clone(), q5]).unwrap_err();
    assert!(e.to_string().contains("scale"), "{e}");
    assert!(ScoreMode::from_keras("general").is_err());
}
