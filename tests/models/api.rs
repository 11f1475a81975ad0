//! The API a Keras user reaches for: one way to call a layer, one `summary` signature,
//! reductions with Keras's `keepdims=False` default, `predict` on anything that converts into
//! host inputs, `.npy` files read through the library (and hostile ones refused), the `...`
//! ellipsis in `s!`, and Lambda arguments used as static values.

use lamina::prelude::*;
use lamina::{ModelInputs, ReduceOp};

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "lengths differ: {got:?} vs {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-6 * (1.0 + w.abs()),
            "element {i}: got {g}, want {w} (all: {got:?})"
        );
    }
}

/// Runs `f` on the CPU over `x` (its first axis the batch) and returns the single output.
fn run(x: &HostTensor, f: impl Fn(&Tensor) -> Tensor + Send + Sync + 'static) -> HostTensor {
    let input = Input::new(&x.shape()[1..]).tensor();
    let out = Lambda::new(f).call(&input).unwrap();
    let model = Model::new(&[input], &[out]).unwrap();
    let session = Session::new(model.program().clone(), BackendKind::Cpu).unwrap();
    session.run(std::slice::from_ref(x)).unwrap().remove(0)
}

fn rows() -> HostTensor {
    HostTensor::new(&[2, 3], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap()
}

// ---------------------------------------------------------------------------------------------
// One way to call a layer.

/// Works for every layer type alike: the trait's `call`.
fn apply<L: Layer>(layer: &L, x: &Tensor) -> Result<Tensor> {
    layer.call(x)
}

#[test]
fn every_layer_is_called_the_same_way_on_one_or_several_inputs() -> Result<()> {
    let a = Input::new(&[2]).name("a").tensor();
    let b = Input::new(&[2]).name("b").tensor();
    let diff = Lambda::multi(|xs| &xs[0] - &xs[1]);
    // A list, four spellings: borrowed array, array of references, Vec, borrowed Vec.
    let d1 = diff.call(&[a.clone(), b.clone()])?;
    let d2 = diff.call([&a, &b])?;
    let d3 = diff.call(vec![a.clone(), b.clone()])?;
    let both = vec![a.clone(), b.clone()];
    let d4 = diff.call(&both)?;
    // One tensor: borrowed or owned; the same call for any layer type.
    let scale = Lambda::new(|x| x * 10.0);
    let s1 = scale.call(&d1)?;
    let s2 = scale.call(d2)?;
    let s3 = apply(&Dropout::new(0.5), &d3)?;
    let s4 = apply(&Rescaling::new(2.0, 1.0), &d4)?;
    let sum = Add::new().call(&[s1, s2, s3, s4])?;
    let model = Model::new(&[a, b], &[sum])?;
    let x = HostTensor::new(&[1, 2], vec![3.0f32, 5.0])?;
    let y = HostTensor::new(&[1, 2], vec![1.0f32, 1.0])?;
    let out = model.predict(&[x, y])?;
    // d = [2, 4]: 10d + 10d + d + (2d + 1) = [47, 93].
    assert_close(out[0].as_f32()?, &[47.0, 93.0]);
    Ok(())
}

#[test]
fn a_one_input_lambda_called_on_a_list_is_an_error_naming_the_layer() {
    let a = Input::new(&[2]).tensor();
    let err = Lambda::new(|x| x.abs())
        .name("single")
        .call([&a, &a])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'single'") && err.contains("one input"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// summary() with one signature.

#[test]
fn summary_has_one_signature_on_sequential_and_functional_models() -> Result<()> {
    let mut seq = Sequential::new();
    seq.add(Input::new(&[3]))?;
    seq.add(Dense::new(2))?;
    let x = Input::new(&[3]).tensor();
    let y = Dense::new(2).call(&x)?;
    let functional = Model::new(&[x], &[y])?;
    let (s, f): (Result<String>, Result<String>) =
        (seq.summary_string(), functional.summary_string());
    // 3 * 2 kernel + 2 bias = 8 parameters in each.
    assert!(s?.contains("Total params: 8"));
    assert!(f?.contains("Total params: 8"));
    let printed: [Result<()>; 2] = [seq.summary(), functional.summary()];
    assert!(printed.iter().all(|r| r.is_ok()));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reductions: keepdims=False by default, as in Keras.

#[test]
fn reductions_drop_their_axes_unless_asked_to_keep_them() -> Result<()> {
    let x = rows(); // [[1, 2, 3], [4, 5, 6]]
    let sum = run(&x, |x| x.sum(1));
    assert_eq!(sum.shape(), &[2]);
    assert_close(sum.as_f32()?, &[6.0, 15.0]);
    let kept = run(&x, |x| x.sum_keepdims(1));
    assert_eq!(kept.shape(), &[2, 1]);
    assert_close(kept.as_f32()?, &[6.0, 15.0]);
    let explicit = run(&x, |x| x.reduce(ReduceOp::Sum, 1, true));
    assert_eq!(explicit, kept);
    let explicit = run(&x, |x| x.reduce(ReduceOp::Sum, -1, false));
    assert_eq!(explicit, sum);

    let mean = run(&x, |x| x.mean(0));
    assert_eq!(mean.shape(), &[3]);
    assert_close(mean.as_f32()?, &[2.5, 3.5, 4.5]);
    let centred = run(&x, |x| x - x.mean_keepdims(1));
    assert_close(centred.as_f32()?, &[-1.0, 0.0, 1.0, -1.0, 0.0, 1.0]);

    let all = run(&x, |x| x.max(Axes::All));
    assert_eq!(all.shape(), &[] as &[usize]);
    assert_close(all.as_f32()?, &[6.0]);
    let all = run(&x, |x| x.min_keepdims(Axes::All));
    assert_eq!(all.shape(), &[1, 1]);
    assert_close(all.as_f32()?, &[1.0]);
    assert_close(run(&x, |x| x.prod(1)).as_f32()?, &[6.0, 120.0]);
    assert_eq!(run(&x, |x| x.prod_keepdims(0)).shape(), &[1, 3]);

    // Population variance of (1, 2, 3) is 2/3; its square root 0.8164966.
    let var = run(&x, |x| x.var(1));
    assert_eq!(var.shape(), &[2]);
    assert_close(var.as_f32()?, &[2.0 / 3.0, 2.0 / 3.0]);
    assert_eq!(run(&x, |x| x.var_keepdims(1)).shape(), &[2, 1]);
    let std = run(&x, |x| x.std_keepdims(1));
    assert_eq!(std.shape(), &[2, 1]);
    assert_close(std.as_f32()?, &[0.816_496_6, 0.816_496_6]);
    assert_eq!(run(&x, |x| x.std(1)).shape(), &[2]);

    // log(e + e^2 + e^3) = 3.4076059; the second row is 3 more.
    let lse = run(&x, |x| x.logsumexp(1));
    assert_eq!(lse.shape(), &[2]);
    assert_close(lse.as_f32()?, &[3.407_606, 6.407_606]);
    assert_eq!(run(&x, |x| x.logsumexp_keepdims(1)).shape(), &[2, 1]);

    let am = run(&x, |x| x.argmax(1));
    assert_eq!(am.shape(), &[2]);
    assert_eq!(am.as_i32()?, &[2, 2]);
    let am = run(&x, |x| x.argmin_keepdims(0));
    assert_eq!(am.shape(), &[1, 3]);
    assert_eq!(am.as_i32()?, &[0, 0, 0]);
    assert_eq!(run(&x, |x| x.argmax_keepdims(-1)).shape(), &[2, 1]);
    assert_eq!(run(&x, |x| x.argmin(0)).as_i32()?, &[0, 0, 0]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// predict on anything that converts into host inputs, .npy files included.

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("lamina-api-{name}-{}", std::process::id()))
}

#[test]
fn predict_takes_one_tensor_a_list_or_npy_data() -> Result<()> {
    let mut m = Sequential::new();
    m.add(Input::new(&[3]))?;
    m.add(Lambda::new(|x| x * 2.0))?;
    let x = rows();
    let want = [2.0, 4.0, 6.0, 8.0, 10.0, 12.0];
    assert_close(m.predict(&x)?[0].as_f32()?, &want);
    assert_close(m.predict(x.clone())?[0].as_f32()?, &want);
    assert_close(m.predict(vec![x.clone()])?[0].as_f32()?, &want);
    assert_close(m.predict([&x])?[0].as_f32()?, &want);
    let array = [x.clone()];
    assert_close(m.predict(&array)?[0].as_f32()?, &want);
    let inputs: ModelInputs = (&x).into();
    assert_eq!(inputs.as_slice().len(), 1);

    // A .npy file written by NumPy's layout, read through the library.
    let path = temp_path("x.npy");
    x.write_npy(&path)?;
    assert_close(m.predict(HostTensor::read_npy(&path)?)?[0].as_f32()?, &want);
    std::fs::remove_file(&path).ok();

    // A functional model with two inputs takes a list of them.
    let a = Input::new(&[3]).tensor();
    let b = Input::new(&[3]).tensor();
    let out = Lambda::multi(|xs| &xs[0] * &xs[1]).call([&a, &b])?;
    let model = Model::new(&[a, b], &[out])?;
    let y = model.predict([&x, &x])?;
    assert_close(y[0].as_f32()?, &[1.0, 4.0, 9.0, 16.0, 25.0, 36.0]);
    Ok(())
}

/// A version 1.0 `.npy` file with `header` (the dict text) and `data`, padded as NumPy pads.
fn npy(header: &str, data: &[u8]) -> Vec<u8> {
    let mut text = header.to_string();
    while !(10 + text.len() + 1).is_multiple_of(64) {
        text.push(' ');
    }
    text.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(data);
    out
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn npy_round_trips_every_dtype_and_narrows_64_bit_data() -> Result<()> {
    let cases = [
        HostTensor::new(&[2, 2], vec![1.5f32, -0.0, f32::INFINITY, 3.25])?,
        HostTensor::new(&[3], vec![-7i32, 0, i32::MAX])?,
        HostTensor::new(&[1, 2], vec![5u32, u32::MAX])?,
        HostTensor::new(&[2], vec![true, false])?,
        HostTensor::new(&[0, 4], Vec::<f32>::new())?,
        HostTensor::scalar(2.5),
    ];
    for t in cases {
        let bytes = t.to_npy_bytes()?;
        assert_eq!(&bytes[..6], b"\x93NUMPY");
        assert_eq!(HostTensor::from_npy_bytes(&bytes)?, t);
    }
    // float64 narrows to float32, int64 to int32; big-endian data reads too.
    let f8: Vec<u8> = [0.1f64, -2.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let t = HostTensor::from_npy_bytes(&npy(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
        &f8,
    ))?;
    assert_eq!(t.as_f32()?, &[0.1f32, -2.0]);
    let i8: Vec<u8> = [-3i64, 40].iter().flat_map(|x| x.to_le_bytes()).collect();
    let t = HostTensor::from_npy_bytes(&npy(
        "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }",
        &i8,
    ))?;
    assert_eq!((t.shape(), t.as_i32()?), (&[1usize, 2][..], &[-3, 40][..]));
    let be: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|x| x.to_be_bytes()).collect();
    let t = HostTensor::from_npy_bytes(&npy(
        "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }",
        &be,
    ))?;
    assert_eq!(t.as_f32()?, &[1.0, 2.0]);
    Ok(())
}

fn npy_error(bytes: &[u8]) -> String {
    match HostTensor::from_npy_bytes(bytes) {
        Ok(t) => panic!("accepted: {t:?}"),
        Err(e) => {
            assert!(matches!(e, Error::Npy { .. }), "{e:?}");
            e.to_string()
        }
    }
}

#[test]
fn hostile_npy_data_is_refused_with_a_clear_error() {
    let ok_header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    let data = f32_bytes(&[1.0, 2.0]);
    assert!(HostTensor::from_npy_bytes(&npy(ok_header, &data)).is_ok());

    let e = npy_error(b"PK\x03\x04 a zip file");
    assert!(e.contains("not a .npy file"), "{e}");
    let e = npy_error(b"\x93NUM");
    assert!(e.contains("not a .npy file"), "{e}");
    let mut v9 = npy(ok_header, &data);
    v9[6] = 9;
    assert!(npy_error(&v9).contains("version 9.0"));

    // Data shorter or longer than the shape declares.
    let e = npy_error(&npy(ok_header, &data[..7]));
    assert!(
        e.contains("truncated") && e.contains("needs 8 data bytes, 7"),
        "{e}"
    );
    let mut long = data.clone();
    long.push(0);
    let e = npy_error(&npy(ok_header, &long));
    assert!(e.contains("more data than shape [2]"), "{e}");
    // A header that promises more than it holds.
    let mut cut = npy(ok_header, &data);
    cut.truncate(30);
    assert!(npy_error(&cut).contains("truncated"));

    // A shape far beyond the data, or beyond any tensor: refused before any allocation.
    let e = npy_error(&npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }",
        &data,
    ));
    assert!(e.contains("more than 4294967296 elements"), "{e}");
    let e = npy_error(&npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000), }",
        &data,
    ));
    assert!(e.contains("needs 4000000000 data bytes, 8"), "{e}");
    let e = npy_error(&npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }",
        &data,
    ));
    assert!(e.contains("'-2'"), "{e}");

    // An oversized header, and brackets nested deep enough to make a parser take exponential
    // time: both refused before parsing.
    let mut huge = b"\x93NUMPY\x02\x00".to_vec();
    huge.extend_from_slice(&(70_000u32).to_le_bytes());
    huge.extend(std::iter::repeat_n(b' ', 70_000));
    let e = npy_error(&huge);
    assert!(e.contains("70000 bytes exceeds the limit of 65536"), "{e}");
    let nested = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': {}{}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let e = npy_error(&npy(&nested, &data));
    assert!(e.contains("nests brackets deeper than 8"), "{e}");
    let nested = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': {}}}",
        "(".repeat(40)
    );
    assert!(npy_error(&npy(&nested, &data)).contains("deeper"));

    // What Lamina cannot hold: Fortran order, complex or structured dtypes, Python objects.
    let e = npy_error(&npy(
        "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }",
        &data,
    ));
    assert!(e.contains("Fortran order"), "{e}");
    let e = npy_error(&npy(
        "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }",
        &data,
    ));
    assert!(e.contains("unsupported dtype c8"), "{e}");
    let e = npy_error(&npy(
        "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
        &data,
    ));
    assert!(e.contains("unsupported dtype"), "{e}");
    let e = npy_error(&npy(
        "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
        &data,
    ));
    assert!(e.contains("unsupported dtype"), "{e}");
    let e = npy_error(&npy("{'descr': '<f4', 'fortran_order': False}", &data));
    assert!(e.contains("no 'shape'"), "{e}");
    let big: Vec<u8> = [1i64 << 40].iter().flat_map(|x| x.to_le_bytes()).collect();
    let e = npy_error(&npy(
        "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }",
        &big,
    ));
    assert!(e.contains("does not fit int32"), "{e}");
}

#[test]
fn read_npy_names_the_file() {
    let missing = temp_path("missing.npy");
    let e = HostTensor::read_npy(&missing).unwrap_err().to_string();
    assert!(
        e.contains("missing.npy") && e.contains("cannot read"),
        "{e}"
    );
    let path = temp_path("short.npy");
    std::fs::write(
        &path,
        npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
            &f32_bytes(&[1.0]),
        ),
    )
    .unwrap();
    let e = HostTensor::read_npy(&path).unwrap_err().to_string();
    assert!(e.contains("short.npy") && e.contains("truncated"), "{e}");
    std::fs::remove_file(&path).ok();
}

// ---------------------------------------------------------------------------------------------
// The ellipsis in s![...]: Keras's feats[..., :2].

/// x of shape (2, 3, 4) holding 0..24.
fn cube() -> HostTensor {
    HostTensor::new(&[2, 3, 4], (0..24).map(|v| v as f32).collect()).unwrap()
}

#[test]
fn s_takes_an_ellipsis_for_as_many_whole_axes_as_needed() -> Result<()> {
    let x = cube();
    // feats[..., :2]: the first two of every last-axis row.
    let y = run(&x, |x| x.slice(s![..., ..2]));
    assert_eq!(y.shape(), &[2, 3, 2]);
    assert_eq!(
        y.as_f32()?,
        &[
            0.0, 1.0, 4.0, 5.0, 8.0, 9.0, 12.0, 13.0, 16.0, 17.0, 20.0, 21.0
        ]
    );
    // x[..., -1], x[0, ...], x[..., 1, :], x[...], x[..., None], x[0, ..., 2]
    let y = run(&x, |x| x.slice(s![..., -1]));
    assert_eq!(y.shape(), &[2, 3]);
    assert_eq!(y.as_f32()?, &[3.0, 7.0, 11.0, 15.0, 19.0, 23.0]);
    let y = run(&x, |x| x.slice(s![1, ...]));
    assert_eq!(y.shape(), &[3, 4]);
    assert_eq!(y.as_f32()?[0], 12.0);
    let y = run(&x, |x| x.slice(s![..., 1, ..]));
    assert_eq!(y.shape(), &[2, 4]);
    assert_eq!(y.as_f32()?, &[4.0, 5.0, 6.0, 7.0, 16.0, 17.0, 18.0, 19.0]);
    assert_eq!(run(&x, |x| x.slice(s![...])), x);
    let y = run(&x, |x| x.slice(s![..., SliceArg::NewAxis]));
    assert_eq!(y.shape(), &[2, 3, 4, 1]);
    let y = run(&x, |x| x.slice(s![1, ..., 2,]));
    assert_eq!(y.shape(), &[3]);
    assert_eq!(y.as_f32()?, &[14.0, 18.0, 22.0]);
    // An ellipsis that stands for no axis at all, and the SliceArg spelling.
    let y = run(&x, |x| x.slice(s![0, ..., 1, 2]));
    assert_eq!(y.as_f32()?, &[6.0]);
    assert_eq!(
        run(&x, |x| x.slice(s![SliceArg::Ellipsis, ..2])),
        run(&x, |x| x.slice(s![..., ..2]))
    );
    Ok(())
}

#[test]
fn two_ellipses_in_one_index_are_an_error() {
    let input = Input::new(&[3, 4]).tensor();
    let err = Lambda::new(|x| x.slice(s![..., 0, ...]))
        .name("crop")
        .call(&input)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'crop'") && err.contains("only one ellipsis") && err.contains("holds 2"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Lambda arguments as static values.

fn cropper() -> Lambda {
    // Keras: Lambda(lambda x, n, a: x[:, :n] * a, arguments={"n": 2, "a": 10.0})
    Lambda::with_scope(|xs, s| xs[0].slice(s![.., ..s.static_int("n")]) * s.argument("a"))
        .name("crop")
        .argument("n", 2)
        .argument("a", 10.0)
}

fn row4() -> HostTensor {
    HostTensor::new(&[1, 4], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap()
}

#[test]
fn a_static_argument_is_a_plain_number_at_trace_time() -> Result<()> {
    let crop = cropper();
    let mut m = Sequential::new();
    m.add(Input::new(&[4]))?;
    m.add(crop.clone())?;
    let y = m.predict(row4())?;
    assert_eq!(y[0].shape(), &[1, 2]);
    assert_close(y[0].as_f32()?, &[10.0, 20.0]);
    assert_eq!(crop.static_arguments(), ["n"]);

    // The run-time argument still changes the next run; the static one is fixed, and saying
    // so is an error that leaves the value as it was.
    crop.set_argument("a", 0.5)?;
    let err = crop.set_argument("n", 3).unwrap_err().to_string();
    assert!(
        err.contains("argument 'n' of Lambda 'crop'") && err.contains("static value"),
        "{err}"
    );
    assert_eq!(crop.argument_value("n")?.as_i32()?, &[2]);
    let y = m.predict(row4())?;
    assert_close(y[0].as_f32()?, &[0.5, 1.0]);

    // A copy configured anew is a separate layer, free to take another value before its call.
    let wider = crop.clone().argument("n", 3).name("wider");
    assert!(wider.static_arguments().is_empty());
    wider.set_argument("n", 1)?;
    let x = Input::new(&[4]).tensor();
    let out = wider.call(&x)?;
    assert_eq!(out.shape().to_string(), "(None, 1)");

    // static_float: a float argument read as a plain number (an f32 constant in the graph),
    // and an integral float read as an integer.
    let scale = Lambda::with_scope(|xs, s| {
        &xs[0] * (s.static_float("k") as f32) + s.static_int("b") as f32
    })
    .argument("k", 0.25)
    .argument("b", 3.0);
    let x = Input::new(&[4]).tensor();
    let model = Model::new(std::slice::from_ref(&x), &[scale.call(&x)?])?;
    assert_close(model.predict(row4())?[0].as_f32()?, &[3.25, 3.5, 3.75, 4.0]);
    Ok(())
}

#[test]
fn static_arguments_that_are_not_numbers_are_errors_naming_them() {
    let x = Input::new(&[4]).tensor();
    let call = |l: Lambda| l.name("bad").call(&x).unwrap_err().to_string();
    let err =
        call(Lambda::with_scope(|xs, s| xs[0].slice(s![.., ..s.static_int("m")])).argument("n", 2));
    assert!(
        err.contains("'bad'") && err.contains("unknown argument 'm'") && err.contains(": n"),
        "{err}"
    );
    let err = call(
        Lambda::with_scope(|xs, s| xs[0].slice(s![.., ..s.static_int("n")])).argument("n", 2.5),
    );
    assert!(err.contains("'n' is 2.5, which is not an integer"), "{err}");
    let err = call(
        Lambda::with_scope(|xs, s| &xs[0] * s.static_float("v") as f32)
            .argument("v", HostTensor::new(&[2], vec![1.0f32, 2.0]).unwrap()),
    );
    assert!(
        err.contains("'v' must be one number") && err.contains("[2]"),
        "{err}"
    );
}

#[test]
fn static_arguments_survive_save_and_load() -> Result<()> {
    let x = Input::new(&[4]).tensor();
    let model = Model::new(std::slice::from_ref(&x), &[cropper().call(&x)?])?;
    let path = temp_path("static.lamina");
    model.save(&path)?;
    let loaded = Model::load(&path)?;
    let y = loaded.predict(row4())?;
    assert_eq!(y[0].shape(), &[1, 2]);
    assert_close(y[0].as_f32()?, &[10.0, 20.0]);
    let layer = loaded.get_layer("crop")?;
    let crop = layer.as_any().downcast_ref::<Lambda>().expect("a Lambda");
    assert_eq!(crop.static_arguments(), ["n"]);
    assert!(crop.set_argument("n", 3).is_err());
    crop.set_argument("a", 1.0)?;
    assert_close(loaded.predict(row4())?[0].as_f32()?, &[1.0, 2.0]);
    // And again, from the loaded model.
    loaded.save(&path)?;
    let again = Model::load(&path)?;
    let layer = again.get_layer("crop")?;
    let crop = layer.as_any().downcast_ref::<Lambda>().expect("a Lambda");
    assert_eq!(crop.static_arguments(), ["n"]);
    assert_close(again.predict(row4())?[0].as_f32()?, &[1.0, 2.0]);
    std::fs::remove_file(&path).ok();

    // The file lists them by name; a name that is not an argument of the layer is refused.
    let bytes = model.to_bytes()?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = meta.metadata().clone().unwrap();
    let arch = meta["architecture"].clone();
    assert!(arch.contains(r#""static_arguments":["n"]"#), "{arch}");
    meta.insert(
        "architecture".into(),
        arch.replace(r#""static_arguments":["n"]"#, r#""static_arguments":["z"]"#),
    );
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let hostile = safetensors::serialize(st.tensors(), Some(meta)).unwrap();
    let err = match Model::from_bytes(&hostile) {
        Ok(_) => panic!("a file naming an unknown static argument loaded"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("static argument") && err.contains("'z'"),
        "{err}"
    );
    // A model without static arguments writes no such field.
    let plain = Model::new(
        std::slice::from_ref(&x),
        &[Lambda::new(|x| x * 2.0).call(&x)?],
    )?;
    let bytes = plain.to_bytes()?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert!(!meta.metadata().as_ref().unwrap()["architecture"].contains("static_arguments"));
    Ok(())
}

#[test]
fn a_sequential_without_input_builds_and_compiles_once_per_input_shape() -> Result<()> {
    // Keras builds a Sequential without an Input on its first call; Lamina too, and later
    // calls of the same per-sample shape (any batch) reuse that model and its session.
    let mut s = Sequential::new();
    s.add(Dense::new(3))?;
    let x = HostTensor::new(&[2, 4], vec![0.5f32; 8])?;
    let first = s.predict(&x)?;
    let (a, b) = (s.model_for(&[2, 4])?, s.model_for(&[7, 4])?);
    assert!(std::sync::Arc::ptr_eq(&a.session()?, &b.session()?));
    assert_eq!(s.predict(&x)?[0].to_f32_vec(), first[0].to_f32_vec());
    Ok(())
}
