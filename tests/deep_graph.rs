//! Deep graphs are built, run and dropped without recursion (no stack overflow).

use lamina::prelude::*;

#[test]
fn a_chain_of_100k_ops_builds_runs_and_drops() -> Result<()> {
    // Test threads have small stacks, so a recursive walk or drop would overflow here.
    let x = Input::new(&[1]).tensor();
    let y = Lambda::new(|x| {
        let mut t = x.clone();
        for _ in 0..100_000 {
            t = &t + 1.0;
        }
        t
    })
    .call(&x)?;
    let m = Model::new(&[x], &[y])?;
    // On the CPU: one fused GPU kernel of 100k ops is a compile-time stress test of its own.
    let cpu = Session::new(m.program().clone(), BackendKind::Cpu)?;
    let out = cpu.run(&[HostTensor::new(&[1, 1], vec![0.5f32])?])?;
    assert_eq!(out[0].as_f32()?, &[100_000.5]);
    drop(m);
    Ok(())
}
