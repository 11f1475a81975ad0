//! The `lamina` command line: the quickstart's models saved and run back through `lamina run`.
#![cfg(all(feature = "cli", feature = "gpu"))] // runs the `lamina` command, some parts on the GPU

use lamina::prelude::*;
use npyz::WriterBuilder;
use std::path::{Path, PathBuf};
use std::process::Command;

fn lamina() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lamina"))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lamina-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_npy(path: &Path, shape: &[u64], data: &[f32]) {
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut buf)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    std::fs::write(path, buf).unwrap();
}

fn read_npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<f32>().unwrap())
}

fn antirectifier(x: &Tensor) -> Tensor {
    let x = x - x.mean_keepdims(1);
    let x = x.l2_normalize(1);
    Tensor::concatenate(&[x.relu(), (-&x).relu()], 1)
}

#[test]
fn quickstart_models_run_back_through_lamina_run() -> Result<()> {
    let dir = temp_dir("run");
    // The antirectifier followed by Dense, and the linear_transform model with shared variables.
    let mut anti = Sequential::named("antirectifier");
    anti.add(Input::new(&[4]))?;
    anti.add(Lambda::new(antirectifier))?;
    let linear = Lambda::with_scope(|xs, s| {
        &xs[0] * s.variable("multiplier", &[], 1.0) + s.variable("bias", &[], 0.0)
    });
    let mut lt = Sequential::named("linear_transform");
    lt.add(Input::new(&[4]))?;
    lt.add(linear.clone())?;
    lt.add(Dense::new(4).activation(Activation::Relu))?;
    lt.add(linear.clone())?;
    linear.set_variable("multiplier", HostTensor::scalar(2.0))?;
    let x: Vec<f32> = vec![1.0, 2.0, 3.0, 4.0, 3e-7, -1e-7, -1e-7, -1e-7];
    write_npy(&dir.join("x.npy"), &[2, 4], &x);
    let mut square = Sequential::named("square");
    square.add(Input::new(&[4]))?;
    square.add(Lambda::new(|x| x.pow(2.0)))?;
    let affine = Lambda::with_scope(|xs, s| &xs[0] * s.argument("a") + s.argument("b"))
        .argument("a", 0.6)
        .argument("b", 0.4);
    let mut args = Sequential::named("arguments");
    args.add(Input::new(&[4]))?;
    args.add(affine)?;
    let a = Input::new(&[4]).tensor();
    let b = Input::new(&[4]).tensor();
    let shared = Dense::new(4).activation(Activation::Tanh);
    let (ha, hb) = (shared.call(&a)?, shared.call(&b)?);
    let dist = Lambda::multi(|xs| (&xs[0] - &xs[1]).abs()).call(&[ha.clone(), hb.clone()])?;
    let merged = Lambda::multi(|xs| Tensor::concatenate(xs, -1)).call(&[dist, ha, hb])?;
    let score = Dense::new(1)
        .activation(Activation::Sigmoid)
        .call(&merged)?;
    let siamese = Model::new(&[a, b], &[score])?;
    let y: Vec<f32> = vec![0.5, -1.0, 2.0, 0.25, 1.0, 0.0, -1.0, 0.5];
    write_npy(&dir.join("y.npy"), &[2, 4], &y);
    let models = [
        ("square", square.model()?, vec!["x.npy"]),
        ("anti", anti.model()?, vec!["x.npy"]),
        ("lt", lt.model()?, vec!["x.npy"]),
        ("args", args.model()?, vec!["x.npy"]),
        ("siamese", siamese, vec!["x.npy", "y.npy"]),
    ];
    for (name, model, inputs) in models {
        let path = dir.join(format!("{name}.lamina"));
        model.save(&path)?;
        let out = dir.join(format!("{name}_out.npy"));
        let mut cmd = lamina();
        cmd.args(["run", path.to_str().unwrap()]);
        for i in &inputs {
            cmd.arg("--input").arg(dir.join(i));
        }
        let status = cmd
            .arg("--output")
            .arg(&out)
            .args(["--backend", "cpu"])
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        let (shape, got) = read_npy(&out);
        let hosts: Vec<HostTensor> = inputs
            .iter()
            .map(|i| HostTensor::new(&[2, 4], if *i == "x.npy" { x.clone() } else { y.clone() }))
            .collect::<Result<_>>()?;
        let want = Session::new(model.program().clone(), BackendKind::Cpu)?.run(&hosts)?;
        assert_eq!(
            shape,
            want[0]
                .shape()
                .iter()
                .map(|&d| d as u64)
                .collect::<Vec<_>>()
        );
        assert_eq!(got, want[0].as_f32()?, "{name}");
        // The summary of the saved file is the model's.
        let summary = lamina().arg("summary").arg(&path).output().unwrap();
        assert!(summary.status.success());
        assert_eq!(
            String::from_utf8_lossy(&summary.stdout),
            model.summary_string()?
        );
    }
    // The antirectifier's known row.
    let (_, got) = read_npy(&dir.join("anti_out.npy"));
    let want = [
        0.0, 0.0, 0.2236068, 0.6708204, 0.6708204, 0.2236068, 0.0, 0.0,
    ];
    assert!(
        got[..8].iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6),
        "{got:?}"
    );
    std::fs::remove_dir_all(dir).ok();
    Ok(())
}

#[test]
fn a_masked_text_classifier_runs_from_int32_ids() -> Result<()> {
    let dir = temp_dir("masked");
    let ids = Input::with_dims(vec![Dim::Dynamic])
        .dtype(DType::I32)
        .tensor();
    let x = Embedding::new(12, 4).mask_zero(true).call(&ids)?;
    let x = Lambda::new(|x| x.tanh())
        .mask_fn(|_, m| m[0].clone())
        .call(&x)?;
    let x = GlobalAveragePooling1D::new().call(&x)?;
    let y = Dense::new(3).activation(Activation::Softmax).call(&x)?;
    let model = Model::new(&[ids], &[y])?;
    model.save(dir.join("tc.lamina"))?;
    let data = vec![3i32, 0, 0, 0, 5, 6, 7, 11];
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::<i32>::new()
        .default_dtype()
        .shape(&[2, 4])
        .writer(&mut buf)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    std::fs::write(dir.join("ids.npy"), buf).unwrap();
    let out = lamina()
        .current_dir(&dir)
        .args([
            "run",
            "tc.lamina",
            "--input",
            "ids.npy",
            "--output",
            "p.npy",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (shape, got) = read_npy(&dir.join("p.npy"));
    assert_eq!(shape, [2, 3]);
    let want = model.predict(&[HostTensor::new(&[2, 4], data)?])?.remove(0);
    for (a, b) in got.iter().zip(want.as_f32()?) {
        assert!((a - b).abs() <= 1e-5, "{got:?} vs {want:?}");
    }
    // The summary names the new layers and counts the embedding table.
    let out = lamina()
        .current_dir(&dir)
        .args(["summary", "tc.lamina"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("(Embedding)") && text.contains("48"),
        "{text}"
    );
    std::fs::remove_dir_all(dir).ok();
    Ok(())
}

#[test]
fn bad_invocations_fail_with_one_clear_line() -> Result<()> {
    let dir = temp_dir("bad");
    let mut m = Sequential::named("m");
    m.add(Input::new(&[3]))?;
    m.add(Lambda::new(|x| x.exp()))?;
    let model = dir.join("m.lamina");
    m.save(&model)?;
    write_npy(&dir.join("wrong.npy"), &[2, 4], &[0.0; 8]);
    let check = |args: &[&str], needle: &str| {
        let out = lamina().current_dir(&dir).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {needle:?} not in {err}");
    };
    check(
        &[
            "run",
            "m.lamina",
            "--input",
            "wrong.npy",
            "--output",
            "o.npy",
        ],
        "expects shape (None, 3)",
    );
    check(
        &[
            "run",
            "m.lamina",
            "--input",
            "wrong.npy",
            "--input",
            "wrong.npy",
            "--output",
            "o.npy",
        ],
        "1 input(s)",
    );
    check(
        &[
            "run",
            "m.lamina",
            "--input",
            "missing.npy",
            "--output",
            "o.npy",
        ],
        "missing.npy",
    );
    check(
        &[
            "run", "m.lamina", "--input", "m.lamina", "--output", "o.npy",
        ],
        "not a .npy file",
    );
    check(
        &[
            "run",
            "wrong.npy",
            "--input",
            "wrong.npy",
            "--output",
            "o.npy",
        ],
        "not a safetensors file: it is NumPy .npy",
    );
    check(&["summary", "nope.lamina"], "nope.lamina");
    check(
        &[
            "run",
            "m.lamina",
            "--input",
            "wrong.npy",
            "--output",
            "o.npy",
            "--backend",
            "tpu",
        ],
        "tpu",
    );
    check(&["frobnicate"], "frobnicate");
    check(
        &["bench", "--workload", "nope"],
        "workload 'nope' not found",
    );
    for sub in ["info", "summary", "run", "bench"] {
        let out = lamina().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub} --help");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
    }
    // A quick bench run prints one JSON object per workload and backend.
    let out = lamina()
        .args([
            "bench",
            "--backend",
            "cpu",
            "--workload",
            "chain",
            "--workload",
            "mlp_b1",
            "--json",
            "--runs",
            "2",
            "--scale",
            "256",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 2, "{text}");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["median_s"].as_f64().unwrap() > 0.0, "{line}");
    }
    let info = lamina().arg("info").output().unwrap();
    assert!(info.status.success());
    assert!(String::from_utf8_lossy(&info.stdout).contains("auto chooses"));
    std::fs::remove_dir_all(dir).ok();
    Ok(())
}

#[test]
fn bench_on_all_backends_says_when_it_measures_the_cpu_only() {
    // The default `--backend all` measures every backend there is; without a GPU adapter it
    // measures the CPU and says so on stderr, and stdout still holds only the results.
    let out = lamina()
        .args([
            "bench",
            "--workload",
            "mlp_b1",
            "--json",
            "--runs",
            "1",
            "--scale",
            "256",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    let has_gpu = lamina::shared_gpu().is_ok();
    let backends: Vec<String> = text
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["backend"].as_str().unwrap().to_string()
        })
        .collect();
    if has_gpu {
        assert_eq!(backends, ["cpu", "gpu"], "{text}");
        assert!(!err.contains("no GPU adapter"), "{err}");
    } else {
        assert_eq!(backends, ["cpu"], "{text}");
        assert!(
            err.contains("lamina bench: no GPU adapter; measuring the cpu only"),
            "{err}"
        );
    }
}

#[test]
fn keras_files_with_recorded_masks_import_and_run() {
    // Embedding(mask_zero) and Masking: Keras records their masks as keras.ops nodes, which
    // `lamina import` keeps as Lambda layers; the written file runs to Keras's outputs and
    // summarises as the .keras file does.
    let dir = temp_dir("import");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keras");
    // A whole model in the legacy HDF5 format imports the same way.
    for (file, name) in [
        ("transformer.keras", "transformer"),
        ("bilstm.keras", "bilstm"),
        ("legacy.h5", "legacy"),
    ] {
        let keras = fixtures.join(file);
        let path = dir.join(format!("{name}.lamina"));
        let import = lamina()
            .arg("import")
            .arg(&keras)
            .arg("-o")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            import.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&import.stderr)
        );
        let out = dir.join(format!("{name}_out.npy"));
        let run = lamina()
            .arg("run")
            .arg(&path)
            .arg("--input")
            .arg(fixtures.join(format!("{name}.input0.npy")))
            .arg("--output")
            .arg(&out)
            .args(["--backend", "cpu"])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let (shape, got) = read_npy(&out);
        let (want_shape, want) = read_npy(&fixtures.join(format!("{name}.output0.npy")));
        assert_eq!(shape, want_shape, "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 * g.abs().max(w.abs()) + 1e-7,
                "{name}: element {i}: lamina {g} vs keras {w}"
            );
        }
        let summary = |p: &Path| {
            let s = lamina().arg("summary").arg(p).output().unwrap();
            assert!(s.status.success(), "{name}");
            String::from_utf8_lossy(&s.stdout).into_owned()
        };
        let saved = summary(&path);
        assert_eq!(saved, summary(&keras), "{name}");
        if name != "legacy" {
            assert!(saved.contains("not_equal (Lambda)"), "{name}: {saved}");
        }
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bench_times_a_users_model_file() {
    // `lamina bench MODEL`: random inputs of the model's input shapes, the batch given; the
    // JSON line names the file.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keras");
    for (file, extra) in [
        ("mlp.keras", vec![]),
        ("bilstm.keras", vec!["--length", "9"]),
        ("legacy.h5", vec![]),
    ] {
        let out = lamina()
            .arg("bench")
            .arg(fixtures.join(file))
            .args(["--batch", "3", "--runs", "2", "--backend", "cpu", "--json"])
            .args(&extra)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(line["workload"], file);
        assert!(line["median_s"].as_f64().unwrap() > 0.0);
    }
    let out = lamina()
        .arg("bench")
        .arg(fixtures.join("mlp.keras"))
        .args(["--workload", "mlp"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not both"));
}

/// A Parquet file of `rows` rows: an id and four features as a fixed-size list.
#[cfg(feature = "datafusion")]
fn write_features_parquet(path: &Path, rows: usize) {
    use lamina_datafusion::datafusion::arrow::array::{
        ArrayRef, FixedSizeListArray, Float32Array, Int64Array, RecordBatch,
    };
    use lamina_datafusion::datafusion::arrow::datatypes::{DataType, Field};
    use std::sync::Arc;
    let values: Vec<f32> = (0..rows * 4)
        .map(|i| (i % 13) as f32 / 13.0 - 0.5)
        .collect();
    let item = Arc::new(Field::new_list_field(DataType::Float32, true));
    let features =
        FixedSizeListArray::try_new(item, 4, Arc::new(Float32Array::from(values)), None).unwrap();
    let batch = RecordBatch::try_from_iter(vec![
        (
            "id",
            Arc::new(Int64Array::from((0..rows as i64).collect::<Vec<_>>())) as ArrayRef,
        ),
        ("features", Arc::new(features) as ArrayRef),
    ])
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = lamina_datafusion::datafusion::parquet::arrow::ArrowWriter::try_new(
        file,
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn score_writes_a_parquet_file_or_says_how_to_get_the_command() -> Result<()> {
    let dir = temp_dir("score");
    let mut model = Sequential::new();
    model.add(Input::new(&[4]))?;
    model.add(Lambda::new(antirectifier).name("antirectifier"))?;
    model.add(Dense::new(2))?;
    let model_file = dir.join("anti.lamina");
    model.save(&model_file)?;
    let input = dir.join("in.parquet");
    let output = dir.join("out.parquet");
    #[cfg(feature = "datafusion")]
    write_features_parquet(&input, 1000);
    let out = lamina()
        .arg("score")
        .arg(&model_file)
        .arg("--input")
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .args(["--backend", "cpu", "--batch-size", "300"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if cfg!(feature = "datafusion") {
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("wrote 1000 rows to"), "{stderr}");
        let bytes = std::fs::read(&output).unwrap();
        assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
    } else {
        assert!(!out.status.success());
        assert!(stderr.contains("--features datafusion"), "{stderr}");
        assert!(!output.exists());
    }
    std::fs::remove_dir_all(dir).ok();
    Ok(())
}

/// Without `XDG_RUNTIME_DIR` (a headless machine), `lamina` makes a private runtime folder for
/// the Vulkan loader and removes it when it ends, whether it succeeds or fails: no folder is
/// left behind in the temporary directory per run.
#[test]
fn the_private_runtime_folder_is_removed_at_exit() {
    for args in [
        &["--version"][..],
        &["bench", "--workload", "chain", "--runs", "1"],
        &["run"],
    ] {
        let child = lamina()
            .args(args)
            .env_remove("XDG_RUNTIME_DIR")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("lamina-runtime-{}", child.id()));
        let output = child.wait_with_output().unwrap();
        assert!(
            !dir.exists(),
            "lamina {args:?} (exit {:?}) left {}",
            output.status.code(),
            dir.display()
        );
    }
}
