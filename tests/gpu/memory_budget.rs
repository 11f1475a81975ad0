//! The memory budget: a compiled program whose buffers would not fit is refused before
//! anything is allocated, naming its largest tensors; buffers freed by liveness let long
//! chains of large intermediates fit a small budget.
#![cfg(feature = "gpu")] // compares the CPU interpreter with the GPU backend

use lamina::prelude::*;
use std::sync::Arc;

use crate::common;
use common::gpu;

/// A Lambda that broadcasts a (batch, 1) input to (batch, 65536) and then to
/// (65536, 65536)-sized work, then sums it: 16 GiB if materialised.
fn broadcast_sum_model() -> Model {
    let x = Input::new(&[1]).tensor();
    let y = Lambda::new(|x| x.broadcast_to(&[65536, 65536]).sum(Axes::All))
        .name("huge")
        .call(&x)
        .unwrap();
    Model::new(&[x], &[y]).unwrap()
}

#[test]
fn a_program_over_budget_is_refused_with_its_largest_tensor() {
    let m = broadcast_sum_model();
    let session = Session::new(m.program().clone(), BackendKind::Cpu)
        .unwrap()
        .with_memory_budget(MemoryBudget::bytes(1 << 30));
    let x = HostTensor::new(&[1, 1], vec![1.0f32]).unwrap();
    let e = session.run(&[x]).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e.root(), Error::Memory { needed, limit, .. } if *needed >= 16 << 30 && *limit == 1 << 30),
        "{msg}"
    );
    for part in [
        "broadcast_to",
        "[65536, 65536]",
        "16.0 GiB",
        "'huge' (Lambda)",
        "LAMINA_MEMORY_LIMIT",
    ] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
}

#[test]
fn buffers_freed_by_liveness_fit_a_small_budget() {
    // Twenty transposes of a 4 MiB tensor: each intermediate dies when the next is made, so
    // the peak is two or three of them, not twenty.
    let x = Input::new(&[1024]).tensor();
    let y = Lambda::new(|x| {
        let mut t = x.clone();
        for _ in 0..20 {
            t = t.transpose(&[1, 0]);
        }
        t
    })
    .call(&x)
    .unwrap();
    let m = Model::new(&[x], &[y]).unwrap();
    let data: Vec<f32> = (0..1024 * 1024).map(|i| i as f32).collect();
    let input = HostTensor::new(&[1024, 1024], data.clone()).unwrap();
    let run = |budget: u64| {
        Session::new(m.program().clone(), BackendKind::Cpu)
            .unwrap()
            .with_memory_budget(MemoryBudget::bytes(budget))
            .run(std::slice::from_ref(&input))
    };
    let out = run(16 << 20).expect("fits 16 MiB");
    // An even number of transposes gives the input back.
    assert_eq!(out[0].as_f32().unwrap(), data.as_slice());
    let e = run(6 << 20).unwrap_err();
    assert!(matches!(e.root(), Error::Memory { .. }), "{e}");
}

#[test]
fn the_gpu_checks_its_buffers_against_the_budget_too() {
    let Some(g) = gpu() else { return };
    let x = Input::new(&[4096]).tensor();
    let y = Lambda::new(|x| x.exp() * 2.0).call(&x).unwrap();
    let m = Model::new(&[x], &[y]).unwrap();
    let input = HostTensor::new(&[256, 4096], vec![0.5f32; 256 * 4096]).unwrap();
    let session = Session::with_backend(m.program().clone(), Arc::new(g))
        .with_memory_budget(MemoryBudget::bytes(2 << 20));
    let e = session.run(std::slice::from_ref(&input)).unwrap_err();
    assert!(
        matches!(e.root(), Error::Memory { backend, .. } if backend == "gpu"),
        "{e}"
    );
    assert!(e.to_string().contains("[256, 4096]"), "{e}");
}

#[test]
fn a_broadcast_over_leading_dims_is_read_in_place() {
    // (1024, 1024) input plus a row broadcast to the same shape: the broadcast is read as its
    // one row inside the fused loop, so only the 4 MiB output is allocated.
    let x = Input::new(&[1024]).tensor();
    let y = Lambda::new(|x| {
        let row = Tensor::constant(
            HostTensor::new(&[1, 1024], (0..1024).map(|i| i as f32).collect()).unwrap(),
        );
        (x + row.broadcast_to(&[1024, 1024])) * 2.0
    })
    .call(&x)
    .unwrap();
    let m = Model::new(&[x], &[y]).unwrap();
    let input = HostTensor::new(&[1024, 1024], vec![1.0f32; 1024 * 1024]).unwrap();
    let out = Session::new(m.program().clone(), BackendKind::Cpu)
        .unwrap()
        .with_memory_budget(MemoryBudget::bytes(5 << 20))
        .run(std::slice::from_ref(&input))
        .expect("the broadcast is never materialised");
    let got = out[0].as_f32().unwrap();
    for (i, &v) in got.iter().enumerate() {
        assert_eq!(v, (1.0 + (i % 1024) as f32) * 2.0, "element {i}");
    }
}
