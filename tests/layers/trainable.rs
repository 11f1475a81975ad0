//! Trainable flags: every weight has one, `summary()` counts trainable and non-trainable
//! parameters by it as Keras does, and model files keep it.

use lamina::prelude::*;

fn mlp() -> Result<Model> {
    let mut m = Sequential::named("frozen_mlp");
    m.add(Input::new(&[16]))?;
    m.add(Dense::new(64).activation(Activation::Relu).name("hidden"))?;
    m.add(Dense::new(10).name("out"))?;
    m.model()
}

#[test]
fn weights_start_trainable_and_summary_counts_both_kinds() -> Result<()> {
    let m = mlp()?;
    assert!(m.weights().iter().all(|v| v.trainable()));
    assert_eq!(m.trainable_weights().len(), 4);
    assert!(m.non_trainable_weights().is_empty());
    // Freeze the hidden layer, as Keras's `layer.trainable = False`.
    for v in m.get_layer("hidden")?.variables() {
        v.set_trainable(false);
    }
    let s = m.summary_string()?;
    for row in [
        " Total params: 1,738 (6.79 KB)",
        " Trainable params: 650 (2.54 KB)",
        " Non-trainable params: 1,088 (4.25 KB)",
    ] {
        assert!(s.lines().any(|l| l == row), "missing {row:?} in\n{s}");
    }
    let frozen: Vec<String> = m.non_trainable_weights().iter().map(|v| v.path()).collect();
    assert_eq!(frozen, ["hidden/kernel", "hidden/bias"]);
    assert_eq!(m.count_params(), 1738);
    Ok(())
}

#[test]
fn trainable_flags_survive_save_and_load() -> Result<()> {
    let m = mlp()?;
    m.get_layer("out")?.variables()[1].set_trainable(false);
    let loaded = Model::from_bytes(&m.to_bytes()?)?;
    let frozen: Vec<String> = loaded
        .non_trainable_weights()
        .iter()
        .map(|v| v.path())
        .collect();
    assert_eq!(frozen, ["out/bias"]);
    assert_eq!(loaded.summary_string()?, m.summary_string()?);
    Ok(())
}

#[test]
fn arguments_are_never_trainable() {
    let v = lamina::Variable::new(
        "lambda",
        "scale",
        lamina::VariableKind::Argument,
        HostTensor::scalar(2.0),
    )
    .with_trainable(true);
    assert!(!v.trainable());
    let w = lamina::Variable::new(
        "bn",
        "moving_mean",
        lamina::VariableKind::Weight,
        HostTensor::scalar(0.0),
    )
    .with_trainable(false);
    assert!(!w.trainable());
}
