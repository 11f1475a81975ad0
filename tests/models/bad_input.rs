//! Bad input gives a clear `Err` naming the layer, the op and the shapes; never a panic.

use lamina::prelude::*;

fn lambda_error(
    input: &[usize],
    name: &str,
    f: impl Fn(&Tensor) -> Tensor + Send + Sync + 'static,
) -> Error {
    let x = Input::new(input).tensor();
    Lambda::new(f)
        .name(name)
        .call(&x)
        .expect_err("the Lambda should fail")
}

fn assert_mentions(err: &Error, parts: &[&str]) {
    let msg = err.to_string();
    for p in parts {
        assert!(msg.contains(p), "{p:?} missing from: {msg}");
    }
}

#[test]
fn incompatible_shapes_name_layer_op_and_shapes() {
    let err = lambda_error(&[4], "bad_add", |x| x + &x.slice(s![.., 0..3]));
    assert!(
        matches!(err.root(), Error::IncompatibleShapes { .. }),
        "{err}"
    );
    assert_mentions(
        &err,
        &["bad_add", "Lambda", "add", "(None, 4)", "(None, 3)"],
    );

    let err = lambda_error(&[4], "bad_concat", |x| {
        Tensor::concatenate(&[x.clone(), x.reshape(&[-1, 2, 2])], 1)
    });
    assert_mentions(&err, &["bad_concat", "concatenate", "ranks"]);

    let err = lambda_error(&[3], "bad_matmul", |x| {
        x.matmul(&x.expand_dims(-1).reshape(&[-1, 1, 3]))
    });
    assert_mentions(&err, &["bad_matmul", "matmul", "inner dimensions differ"]);

    let err = lambda_error(&[6], "bad_reshape", |x| x.reshape(&[-1, -1]));
    assert_mentions(
        &err,
        &["bad_reshape", "reshape", "(None, 6)", "at most one"],
    );
    let fixed = Input::new(&[6]).batch_size(1).tensor();
    let err = Lambda::new(|x| x.reshape(&[-1, 4]))
        .name("r")
        .call(&fixed)
        .unwrap_err();
    assert_mentions(&err, &["r", "reshape", "(1, 6)", "6 elements"]);
    // With an unknown batch, (None, 6) -> (-1, 4) fits even batches only: checked at run time.
    let x = Input::new(&[6]).tensor();
    let y = Lambda::new(|x| x.reshape(&[-1, 4]))
        .name("fours")
        .call(&x)
        .unwrap();
    let m = Model::new(&[x], &[y]).unwrap();
    let odd = HostTensor::new(&[1, 6], vec![0.0f32; 6]).unwrap();
    assert_mentions(
        &m.predict(&[odd]).unwrap_err(),
        &["layer 'fours' (Lambda)", "reshape", "6 elements"],
    );
    let even = HostTensor::new(&[2, 6], vec![0.0f32; 12]).unwrap();
    assert_eq!(m.predict(&[even]).unwrap()[0].shape(), &[3, 4]);
}

#[test]
fn axis_out_of_range() {
    let err = lambda_error(&[4], "mean3", |x| x.mean(3));
    assert!(
        matches!(
            err.root(),
            Error::AxisOutOfRange {
                axis: 3,
                rank: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_mentions(&err, &["mean3", "mean", "axis 3", "rank 2", "(None, 4)"]);
    let err = lambda_error(&[4], "neg_axis", |x| x.softmax(-3));
    assert!(
        matches!(err.root(), Error::AxisOutOfRange { axis: -3, .. }),
        "{err}"
    );
    let err = lambda_error(&[4], "ed", |x| x.expand_dims(4));
    assert!(matches!(err.root(), Error::AxisOutOfRange { .. }), "{err}");
    let err = lambda_error(&[4], "cs", |x| x.cumsum(2));
    assert!(matches!(err.root(), Error::AxisOutOfRange { .. }), "{err}");
}

#[test]
fn slice_out_of_bounds() {
    let err = lambda_error(&[4], "idx", |x| x.slice(s![.., 4]));
    assert!(
        matches!(
            err.root(),
            Error::OutOfBounds {
                axis: 1,
                size: 4,
                ..
            }
        ),
        "{err}"
    );
    assert_mentions(&err, &["idx", "slice", "index 4", "(None, 4)"]);
    let err = lambda_error(&[4], "neg_idx", |x| x.slice(s![.., -5]));
    assert!(matches!(err.root(), Error::OutOfBounds { .. }), "{err}");
    let err = lambda_error(&[4], "empty", |x| x.slice(s![.., 10..20]));
    assert_mentions(&err, &["empty", "selects nothing"]);
    let err = lambda_error(&[4], "too_many", |x| x.slice(s![.., 0, 1]));
    assert_mentions(&err, &["too_many", "3 indices", "rank 2"]);
    // An index on the dynamic batch axis that is out of range at run time.
    let x = Input::new(&[2]).tensor();
    let y = Lambda::new(|x| x.slice(s![3]))
        .name("fourth")
        .call(&x)
        .unwrap();
    let m = Model::new(&[x], &[y]).unwrap();
    let err = m
        .predict(&[HostTensor::new(&[2, 2], vec![0.0f32; 4]).unwrap()])
        .unwrap_err();
    assert_mentions(&err, &["layer 'fourth'", "slice", "selects nothing"]);
}

#[test]
fn unknown_argument_name() {
    let x = Input::new(&[2]).tensor();
    let err = Lambda::with_scope(|xs, s| &xs[0] * s.argument("c"))
        .argument("a", 1.0)
        .argument("b", 2.0)
        .name("args")
        .call(&x)
        .unwrap_err();
    assert!(matches!(err.root(), Error::UnknownArgument { .. }), "{err}");
    assert_mentions(&err, &["args", "'c'", "a, b"]);
    let l = Lambda::new(|x| x.clone()).argument("a", 1.0);
    assert!(matches!(
        l.set_argument("z", 1.0),
        Err(Error::UnknownArgument { .. })
    ));
}

#[test]
fn host_tensor_length_must_match_shape() {
    let err = HostTensor::new(&[2, 3], vec![1.0f32; 5]).unwrap_err();
    assert!(matches!(err, Error::HostTensor { .. }));
    assert_mentions(&err, &["[2, 3]", "6 elements", "5 were given"]);
    // An overflowing shape is an error, not a panic or a huge allocation.
    assert!(HostTensor::full(&[usize::MAX, 4], 0.0).is_err());
}

#[test]
fn predict_checks_count_shape_and_dtype() -> Result<()> {
    let a = Input::new(&[3]).tensor();
    let b = Input::new(&[3]).tensor();
    let y = Lambda::multi(|xs| &xs[0] + &xs[1])
        .name("sum")
        .call(&[a.clone(), b.clone()])?;
    let m = Model::new(&[a, b], &[y])?;
    let ok = HostTensor::new(&[2, 3], vec![1.0f32; 6])?;
    let err = m.predict(std::slice::from_ref(&ok)).unwrap_err();
    assert!(matches!(err, Error::Inputs { .. }));
    assert_mentions(&err, &["2 input(s)", "1 given"]);
    let wrong_shape = HostTensor::new(&[2, 4], vec![1.0f32; 8])?;
    let err = m.predict(&[ok.clone(), wrong_shape]).unwrap_err();
    assert_mentions(&err, &["input 1", "(None, 3)", "[2, 4]"]);
    let wrong_rank = HostTensor::new(&[6], vec![1.0f32; 6])?;
    assert!(m.predict(&[ok.clone(), wrong_rank]).is_err());
    let wrong_dtype = HostTensor::new(&[2, 3], vec![1i32; 6])?;
    let err = m.predict(&[ok.clone(), wrong_dtype]).unwrap_err();
    assert_mentions(&err, &["float32", "int32"]);
    // Batch sizes that disagree at run time meet in the add.
    let other_batch = HostTensor::new(&[3, 3], vec![1.0f32; 9])?;
    let err = m.predict(&[ok, other_batch]).unwrap_err();
    assert_mentions(&err, &["layer 'sum' (Lambda)", "add", "cannot broadcast"]);
    // A zero-sized batch.
    let empty = HostTensor::new(&[0, 3], Vec::<f32>::new())?;
    assert!(m.predict(&[empty.clone(), empty]).is_err());
    Ok(())
}

#[test]
fn variable_created_twice_with_different_shapes() {
    let l = Lambda::with_scope(|xs, s| {
        let a = s.variable("w", &[2], 1.0);
        let b = s.variable("w", &[3], 1.0);
        &xs[0] * a + b.sum(0)
    })
    .name("twice");
    let x = Input::new(&[2]).tensor();
    let err = l.call(&x).unwrap_err();
    assert!(matches!(err.root(), Error::VariableShape { .. }), "{err}");
    assert_mentions(&err, &["twice", "twice/w", "[2]", "[3]"]);
}

#[test]
fn setting_weights_with_the_wrong_shape() -> Result<()> {
    let d = Dense::new(2).name("d");
    assert!(
        matches!(d.kernel(), Err(Error::NotFound { .. })),
        "unbuilt layer has no kernel"
    );
    d.call(Input::new(&[3]).tensor())?;
    let err = d.set_kernel(HostTensor::zeros(&[2, 2])?).unwrap_err();
    assert_mentions(&err, &["d/kernel", "[3, 2]", "[2, 2]"]);
    // Reusing the layer on an input of another width.
    let err = d.call(Input::new(&[5]).tensor()).unwrap_err();
    assert_mentions(&err, &["'d' (Dense)", "d/kernel"]);
    let lin = Lambda::with_scope(|xs, s| &xs[0] * s.variable("m", &[], 1.0));
    assert!(
        lin.set_variable("m", HostTensor::scalar(1.0)).is_err(),
        "not created yet"
    );
    lin.call(Input::new(&[1]).tensor())?;
    assert!(lin.set_variable("m", HostTensor::zeros(&[2])?).is_err());
    assert!(lin.set_variable("nope", HostTensor::scalar(1.0)).is_err());
    Ok(())
}

#[test]
fn dtype_mismatch_and_bad_casts() {
    // Mixed numeric dtypes promote as in Keras; what cannot promote is still an error.
    let x = Input::new(&[2]).dtype(DType::U32).tensor();
    let y = Input::new(&[2]).tensor();
    let err = Lambda::new(|x| x - -1)
        .name("negative_uint")
        .call(&x)
        .unwrap_err();
    assert_mentions(&err, &["negative_uint", "-1", "uint32"]);
    let err = Lambda::new(|x| x.logical_and(x))
        .name("float_and")
        .call(&y)
        .unwrap_err();
    assert_mentions(&err, &["float_and", "logical_and", "bool", "float32"]);
    let err = Lambda::multi(|xs| xs[0].take(&xs[1], 0))
        .name("float_ids")
        .call(&[y.clone(), y])
        .unwrap_err();
    assert_mentions(&err, &["float_ids", "take"]);
}

#[test]
fn lambda_panics_and_wrong_arity_are_errors() {
    let x = Input::new(&[2]).tensor();
    let err = Lambda::multi(|xs| xs[5].clone())
        .name("oops")
        .call(&x)
        .unwrap_err();
    assert_mentions(&err, &["oops", "panicked"]);
    let err = Lambda::new(|x| x.clone())
        .name("one")
        .call(&[x.clone(), x])
        .unwrap_err();
    assert_mentions(&err, &["one", "one input"]);
}

#[test]
fn models_refuse_wrong_wiring() {
    let a = Input::new(&[2]).tensor();
    let b = Input::new(&[2]).tensor();
    let y = Lambda::multi(|xs| &xs[0] + &xs[1])
        .call(&[a.clone(), b])
        .unwrap();
    let err = Model::new(std::slice::from_ref(&a), &[y])
        .err()
        .expect("b is missing");
    assert_mentions(&err, &["not among the model's inputs"]);
    assert!(Model::new(&[], std::slice::from_ref(&a)).is_err());
    let not_input = a.clone() * 2.0;
    assert!(Model::new(&[not_input], &[a]).is_err());
    assert!(Input::new(&[0]).tensor().check().is_err());
    let mut s = Sequential::new();
    s.add(Input::new(&[3])).unwrap();
    let err = s
        .add(Dense::new(2).name("x1"))
        .and_then(|_| s.add(Lambda::new(|x| x.slice(s![.., 5])).name("cut")));
    assert_mentions(&err.unwrap_err(), &["cut", "index 5"]);
    assert!(s.add(Input::new(&[3])).is_err(), "a second Input");
    assert!(
        s.predict(&[HostTensor::new(&[1, 3], vec![0.0f32; 3]).unwrap()])
            .is_ok(),
        "the failed layer was not added"
    );
}
