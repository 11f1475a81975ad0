//! The sequence ops (`shape_of`/`reshape_dims`, `full_like`, `arange`, `repeat`, `tile`,
//! `triu`/`tril`) against NumPy's definitions written out here, on models whose sequence length
//! is known only at run time, CPU and GPU agreeing.
#![cfg(feature = "gpu")] // compares the CPU interpreter with the GPU backend

use lamina::prelude::*;

use crate::common;
use common::run_both;

fn seq_input(width: usize) -> Tensor {
    Input::with_dims(vec![Dim::Dynamic, Dim::Known(width)]).tensor()
}

fn iota(shape: &[usize]) -> HostTensor {
    let n: usize = shape.iter().product();
    HostTensor::new(shape, (0..n).map(|k| k as f32 * 0.5 - 1.0).collect()).unwrap()
}

/// One Lambda over `x (None, None, w)`, run on two sequence lengths.
fn run_lambda(
    w: usize,
    f: impl Fn(&Tensor) -> Tensor + Send + Sync + 'static,
) -> Vec<(Vec<usize>, Vec<f32>, Vec<f32>)> {
    let x = seq_input(w);
    let y = Lambda::new(f).call(&x).unwrap();
    let m = Model::new(&[x], &[y]).unwrap();
    [(2usize, 3usize), (1, 5)]
        .into_iter()
        .map(|(b, t)| {
            let input = iota(&[b, t, w]);
            let out = run_both(&m, std::slice::from_ref(&input));
            (
                out[0].shape().to_vec(),
                input.to_f32_vec(),
                out[0].to_f32_vec(),
            )
        })
        .collect()
}

#[test]
fn reshape_with_run_time_dims() {
    // (B, T, 6) → (B, T, 2, 3) → (B, 2, T, 3) and back through shape_of.
    for (shape, x, y) in run_lambda(6, |x| {
        let s = x.shape_of();
        let split = x.reshape_dims(&[s[0].clone(), s[1].clone(), 2.into(), 3.into()]);
        let moved = split.transpose(&[0, 2, 1, 3]);
        let back = moved.transpose(&[0, 2, 1, 3]);
        let s2 = back.shape_of();
        back.reshape_dims(&[s2[0].clone(), Size::Infer, 6.into()])
    }) {
        assert_eq!(shape[2], 6);
        assert_eq!(x, y);
    }
    // A run-time size of another tensor, the only unknown entry, is inferred.
    let x = Input::with_dims(vec![Dim::Dynamic, Dim::Known(4)])
        .batch_size(2)
        .tensor();
    let flat = x.reshape(&[-1]);
    let y = flat.reshape_dims(&[x.size_of(0), x.size_of(1), 4.into()]);
    assert!(y.error().is_none(), "{:?}", y.error());
    assert_eq!(y.shape().to_string(), "(2, None, 4)");
    let x = seq_input(4);
    let flat = x.reshape(&[-1]);
    let bad = flat.reshape_dims(&[x.size_of(0), x.size_of(1), 4.into()]);
    assert!(
        bad.error()
            .unwrap()
            .to_string()
            .contains("run-time sizes of other tensors")
    );
    let bad = x.reshape(&[-9]);
    assert!(
        bad.error().unwrap().to_string().contains("axis 7"),
        "{:?}",
        bad.error()
    );
}

#[test]
fn full_like_and_arange() {
    for (shape, _, y) in run_lambda(3, |x| {
        x.full_like(2.5, None)
            .add(x.ones_like())
            .add(x.zeros_like())
    }) {
        assert_eq!(y, vec![3.5; shape.iter().product()]);
    }
    // arange over a run-time length: positions 0..T broadcast over the batch.
    for (shape, _, y) in run_lambda(2, |x| {
        let pos = Tensor::arange_size(&x.size_of(1), DType::F32);
        x.zeros_like().add(pos.expand_dims(1))
    }) {
        let (b, t, w) = (shape[0], shape[1], shape[2]);
        let want: Vec<f32> = (0..b * t * w).map(|k| ((k / w) % t) as f32).collect();
        assert_eq!(y, want);
    }
    let a = Tensor::arange(1.0, 2.0, 0.25, DType::F32);
    assert_eq!(a.shape(), Shape::known(&[4]));
    let a = Tensor::arange(5.0, 0.0, -2.0, DType::I32);
    assert_eq!(a.shape(), Shape::known(&[3]));
    assert!(Tensor::arange(0.0, 1.0, 0.0, DType::F32).error().is_some());
    assert!(Tensor::arange(2.0, 1.0, 1.0, DType::F32).error().is_some());
    // Size::to_tensor: the run-time length as a number.
    for (shape, _, y) in run_lambda(2, |x| {
        x.zeros_like().add(x.size_of(1).to_tensor(DType::F32))
    }) {
        assert!(y.iter().all(|&v| v == shape[1] as f32));
    }
}

#[test]
fn repeat_and_tile() {
    // repeat along the run-time axis: each step twice.
    for (shape, x, y) in run_lambda(2, |x| x.repeat(2, Some(1))) {
        let (b, t2, w) = (shape[0], shape[1], shape[2]);
        let t = t2 / 2;
        let want: Vec<f32> = (0..b * t2 * w)
            .map(|k| {
                let (bi, i, c) = (k / (t2 * w), (k / w) % t2, k % w);
                x[(bi * t + i / 2) * w + c]
            })
            .collect();
        assert_eq!(y, want);
    }
    // repeat along the features with per-element counts, and flattened.
    for (shape, x, y) in run_lambda(3, |x| x.repeat_each(&[1, 0, 2], Some(-1))) {
        assert_eq!(shape[2], 3);
        let want: Vec<f32> = x.chunks(3).flat_map(|r| [r[0], r[2], r[2]]).collect();
        assert_eq!(y, want);
    }
    let x = seq_input(2);
    assert_eq!(x.repeat(3, None).rank(), 1);
    // tile: (B, T, 2) by (1, 2, 3) → (B, 2T, 6).
    for (shape, x, y) in run_lambda(2, |x| x.tile(&[1, 2, 3])) {
        let (b, t2, w6) = (shape[0], shape[1], shape[2]);
        let (t, w) = (t2 / 2, w6 / 3);
        assert_eq!(w, 2);
        let want: Vec<f32> = (0..b * t2 * w6)
            .map(|k| {
                let (bi, i, c) = (k / (t2 * w6), (k / w6) % t2, k % w6);
                x[(bi * t + i % t) * w + c % w]
            })
            .collect();
        assert_eq!(y, want);
    }
    // Fewer counts than axes apply to the last ones; more add leading axes.
    let x = Input::new(&[2, 3]).tensor();
    assert_eq!(x.tile(&[2]).shape().to_string(), "(None, 2, 6)");
    assert_eq!(x.tile(&[2, 1, 1, 1]).shape().to_string(), "(2, None, 2, 3)");
    assert!(x.tile(&[0]).error().is_some());
    assert!(x.repeat_each(&[1, 2], Some(2)).error().is_some());
}

#[test]
fn triu_and_tril() {
    for k in [-1i64, 0, 1] {
        for (shape, x, y) in run_lambda(4, move |x| x.triu(k).add(x.tril(k - 1).multiply(10.0))) {
            let (t, w) = (shape[1], shape[2]);
            let want: Vec<f32> = x
                .iter()
                .enumerate()
                .map(|(n, &v)| {
                    let (i, j) = (((n / w) % t) as i64, (n % w) as i64);
                    let upper = if j - i >= k { v } else { 0.0 };
                    let lower = if j - i < k { v * 10.0 } else { 0.0 };
                    upper + lower
                })
                .collect();
            assert_eq!(y, want, "k = {k}");
        }
    }
    assert!(Tensor::scalar(1.0).triu(0).error().is_some());
}

#[test]
fn lambda_with_several_outputs_and_masks() {
    // ids → Embedding(mask_zero) → Lambda returning (2x, sum over features), the first output
    // keeping the padding mask and the second none → masked mean of the first.
    let ids = Input::with_dims(vec![Dim::Dynamic])
        .dtype(DType::I32)
        .tensor();
    let emb = Embedding::new(5, 3).mask_zero(true);
    let e = emb.call(&ids).unwrap();
    let split = Lambda::with_outputs(|xs, _| vec![xs[0].multiply(2.0), xs[0].sum(-1)])
        .output_masks(|_, masks| vec![masks[0].clone(), None])
        .name("split");
    let outs = split.call_outputs(&e).unwrap();
    assert_eq!(outs.len(), 2);
    assert!(outs[0].mask().is_some() && outs[1].mask().is_none());
    let pooled = GlobalAveragePooling1D::new().call(&outs[0]).unwrap();
    let m = Model::new(std::slice::from_ref(&ids), &[pooled, outs[1].clone()]).unwrap();
    let table = emb.get_weight("embeddings").unwrap().to_f32_vec();
    let tokens = [1i32, 3, 0, 4, 0, 0];
    let x = HostTensor::new(&[2, 3], tokens.to_vec()).unwrap();
    let y = run_both(&m, std::slice::from_ref(&x));
    let row = |i: i32| &table[i as usize * 3..i as usize * 3 + 3];
    let want0: Vec<f32> = (0..3)
        .map(|c| (row(1)[c] + row(3)[c]) / 2.0 * 2.0)
        .chain((0..3).map(|c| row(4)[c] * 2.0))
        .collect();
    for (a, b) in y[0].to_f32_vec().iter().zip(&want0) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    let want1: Vec<f32> = tokens.iter().map(|&t| row(t).iter().sum()).collect();
    for (a, b) in y[1].to_f32_vec().iter().zip(&want1) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    // A single-output call names the problem; a wrong number of masks is an error.
    let e2 = emb.call(&ids).unwrap();
    let err = split.call(&e2).unwrap_err().to_string();
    assert!(err.contains("split") && err.contains("2 outputs"), "{err}");
    let bad = Lambda::with_outputs(|xs, _| vec![xs[0].clone(), xs[0].clone()])
        .output_masks(|_, _| vec![None])
        .name("bad_masks");
    let err = bad.call_outputs(&e2).unwrap_err().to_string();
    assert!(
        err.contains("bad_masks") && err.contains("1 masks for 2 outputs"),
        "{err}"
    );
    // Save and load: both outputs and the per-output masks come back.
    let dir = std::env::temp_dir().join(format!("lamina_multi_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.lamina");
    m.save(&path).unwrap();
    let loaded = Model::load(&path).unwrap();
    let z = run_both(&loaded, &[x]);
    assert_eq!(y[0].to_f32_vec(), z[0].to_f32_vec());
    assert_eq!(y[1].to_f32_vec(), z[1].to_f32_vec());
    let _ = std::fs::remove_dir_all(&dir);
}
