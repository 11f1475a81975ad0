//! The CPU interpreter's vector paths (SSE2, AVX2 with FMA, AVX-512) compute the same values,
//! bit for bit: the same IEEE operations in the same order, only wider. Each path this CPU
//! supports runs the same models as the baseline.

use lamina::cpu_isa::{self, Isa};
use lamina::prelude::*;

fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            match i % 97 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                2 => -0.0,
                3 => -120.0,
                4 => 95.0,
                _ => (s % 20001) as f32 / 2500.0 - 4.0,
            }
        })
        .collect()
}

type Case = (&'static str, fn(&Tensor) -> Tensor);

fn cases() -> Vec<Case> {
    vec![
        ("chain", |x| {
            let y = x * 1.5 + 0.25;
            let z = y.tanh() * (-(&y * &y)).exp() + y.maximum(0.0);
            (z.abs() + 1.0).sqrt() - 1.0
        }),
        ("softmax", |x| x.softmax(-1)),
        ("antirectifier", |x| {
            let c = x - x.mean_keepdims(-1);
            let n = c.l2_normalize(-1);
            Tensor::concatenate(&[n.relu(), (-&n).relu()], -1)
        }),
        ("single_ops", |x| x.exp()),
        ("tanh_sigmoid", |x| x.tanh() + x.sigmoid()),
        ("sums", |x| x.sum(-1) + x.max(-1) - x.min(-1)),
        ("compare_where", |x| {
            Tensor::where_(&x.greater(0.5), x.log1p(), x.expm1())
        }),
    ]
}

fn run_all() -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    for (name, f) in cases() {
        let x = Input::new(&[1000]).tensor();
        let y = Lambda::new(f).call(&x).unwrap();
        let m = Model::new(&[x], &[y]).unwrap();
        let input = HostTensor::new(&[300, 1000], data(300_000, name.len() as u32)).unwrap();
        let s = Session::new(m.program().clone(), BackendKind::Cpu).unwrap();
        let r = s.run(&[input]).unwrap();
        out.push(r[0].to_f32_vec().iter().map(|v| v.to_bits()).collect());
    }
    out
}

#[test]
fn every_vector_path_computes_the_same_bits() {
    assert!(cpu_isa::force(Isa::Baseline));
    let want = run_all();
    for isa in [Isa::Avx2, Isa::Avx512] {
        if !cpu_isa::force(isa) {
            eprintln!("this CPU has no {}; its path is not compared", isa.name());
            continue;
        }
        let got = run_all();
        for ((name, _), (w, g)) in cases().iter().zip(want.iter().zip(&got)) {
            let diff = w.iter().zip(g).position(|(a, b)| a != b);
            assert!(
                diff.is_none(),
                "{name} on {}: element {diff:?} differs from the baseline",
                isa.name()
            );
        }
    }
}
