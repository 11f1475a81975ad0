//! criterion benches of the BENCH.md workloads on each backend, at 1/16 of BENCH.md's sizes so
//! that criterion's sampling stays short (`lamina bench` runs the full sizes).
//!
//! `cargo bench --bench workloads`; on the GPU (when there is an adapter) the timed span is the
//! end-to-end run, upload and read-back included.

use criterion::{Criterion, criterion_group, criterion_main};
use lamina::bench::{WORKLOADS, workload};
use lamina::{BackendKind, Session};
use std::hint::black_box;

fn workloads(c: &mut Criterion) {
    let mut kinds = vec![("cpu", BackendKind::Cpu)];
    if lamina::shared_gpu().is_ok() {
        kinds.push(("gpu", BackendKind::Gpu));
    }
    for name in WORKLOADS {
        let w = workload(name, 16).expect("workload");
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        for (label, kind) in &kinds {
            let session = Session::new(w.model.program().clone(), *kind).expect("session");
            session.run(&w.inputs).expect("warm-up run");
            group.bench_function(*label, |b| {
                b.iter(|| black_box(session.run(black_box(&w.inputs)).expect("run")))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, workloads);
criterion_main!(benches);
