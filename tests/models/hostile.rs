//! Hostile input: a corpus of hand-crafted files, one or more of each class of attack found in
//! review (issue 15), run through `Model::load`, `summary` and `predict` on the CPU (and on the
//! GPU where an adapter exists) under a memory budget, and through the `lamina` command under
//! `ulimit -v`. Each gives a clean error or the right answer within seconds; none may panic,
//! abort or hang.
#![cfg(feature = "gpu")] // compares the CPU interpreter with the GPU backend

use lamina::GpuBackend;
use lamina::prelude::*;
use safetensors::tensor::{Dtype, TensorView};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common;
use common::gpu;

/// The most one case may take in-process, or one `lamina` command: past it the case counts as
/// a hang. Cases take well under a second; the margin is for slow, shared machines.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The memory budget in-process cases run under.
const BUDGET: u64 = 1 << 30;
/// The address-space limit of the `lamina` commands, in KiB (`ulimit -v`).
const ULIMIT_KB: u64 = 4_000_000;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lamina-hostile-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- Building files ----

/// A tensor as a file holds it: name, dtype, shape, little-endian bytes.
type RawTensor = (String, Dtype, Vec<usize>, Vec<u8>);

fn f32_tensor(name: &str, shape: &[usize], values: &[f32]) -> RawTensor {
    let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    (name.to_string(), Dtype::F32, shape.to_vec(), bytes)
}

/// A model file: safetensors with `format`, `version` and `architecture` metadata.
fn model_file(arch: &Value, tensors: &[RawTensor], version: &str) -> Vec<u8> {
    let meta = HashMap::from([
        ("format".to_string(), "lamina-model".to_string()),
        ("version".to_string(), version.to_string()),
        ("architecture".to_string(), arch.to_string()),
    ]);
    raw_file(meta, tensors)
}

fn raw_file(meta: HashMap<String, String>, tensors: &[RawTensor]) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, Some(meta)).unwrap()
}

/// A file taken apart: its metadata (the architecture parsed) and its tensors.
fn parts(bytes: &[u8]) -> (Value, HashMap<String, String>, Vec<RawTensor>) {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let arch: Value = serde_json::from_str(&meta["architecture"]).unwrap();
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    (arch, meta, tensors)
}

/// A valid file with its architecture, metadata or tensors edited.
fn edited(
    bytes: &[u8],
    edit: impl FnOnce(&mut Value, &mut HashMap<String, String>, &mut Vec<RawTensor>),
) -> Vec<u8> {
    let (mut arch, mut meta, mut tensors) = parts(bytes);
    let before = meta["architecture"].clone();
    edit(&mut arch, &mut meta, &mut tensors);
    // The architecture as edited, unless the edit replaced its text outright.
    if meta["architecture"] == before {
        meta.insert("architecture".into(), arch.to_string());
    }
    raw_file(meta, &tensors)
}

fn input_layer(shape: Value) -> Value {
    json!({"class": "InputLayer", "name": "input", "shape": shape, "dtype": "f32"})
}

fn lambda_layer(name: &str, nodes: Vec<Value>) -> Value {
    let output = nodes.len() - 1;
    json!({
        "class": "Lambda", "name": name, "output_shape": null, "arguments": [],
        "variables": [], "body": {"inputs": 1, "nodes": nodes, "output": output}, "mask": null
    })
}

fn node(op: Value, inputs: &[usize]) -> Value {
    json!({"op": op, "inputs": inputs})
}

fn unary(func: &str) -> Value {
    json!({"op": "unary", "func": func})
}

/// An architecture of an input layer (call 0) and then one call per entry of `calls`, each of
/// that layer on the previous call's output.
fn chain(layers: Vec<Value>, calls: impl IntoIterator<Item = usize>) -> Value {
    let mut records = vec![json!({"layer": 0, "inputs": []})];
    for (k, layer) in calls.into_iter().enumerate() {
        records.push(json!({"layer": layer, "inputs": [{"call": k, "output": 0}]}));
    }
    let last = records.len() - 1;
    json!({
        "name": "hostile", "sequential": false, "layers": layers, "calls": records,
        "inputs": [0], "outputs": [{"call": last, "output": 0}]
    })
}

/// A one-Lambda body of `n` nodes: the input, then `n - 1` negations.
fn negations(n: usize) -> Vec<Value> {
    let mut nodes = vec![node(json!({"op": "input", "index": 0}), &[])];
    for k in 1..n {
        nodes.push(node(unary("neg"), &[k - 1]));
    }
    nodes
}

fn x12() -> HostTensor {
    HostTensor::new(&[1, 2], vec![1.0f32, 2.0]).unwrap()
}

/// `x * 2 + 1` with this name, on inputs of 2 features: a model that runs.
fn affine(name: &str) -> Vec<u8> {
    let mut m = Sequential::named("affine");
    m.add(Input::new(&[2])).unwrap();
    m.add(Lambda::new(|x| x * 2.0 + 1.0).name(name)).unwrap();
    m.model().unwrap().to_bytes().unwrap()
}

/// Input, a Lambda, a Dense and a Rescaling: layers whose records and weights cases edit.
fn layered() -> Vec<u8> {
    let mut m = Sequential::named("layered");
    m.add(Input::new(&[2])).unwrap();
    m.add(Lambda::new(|x| x + 1.0).name("plus_one")).unwrap();
    m.add(Dense::new(2).name("dense")).unwrap();
    m.add(Rescaling::new(2.0, 0.5).name("rescale")).unwrap();
    m.model().unwrap().to_bytes().unwrap()
}

// ---- The corpus ----

/// What a case must give.
enum Expect {
    /// Loading fails with an error holding every part.
    LoadErr(Vec<&'static str>),
    /// The model loads, its summary holds every part of `summary`, and `predict` on `input`
    /// gives `output` on the CPU, or an error holding every part of the `Err`; `gpu` says
    /// what the GPU gives.
    Runs {
        summary: Vec<String>,
        input: HostTensor,
        output: std::result::Result<HostTensor, Vec<&'static str>>,
        gpu: OnGpu,
    },
}

/// What the GPU gives, beside the CPU's `output`.
enum OnGpu {
    /// The same answer, or an error where the CPU errs.
    Same,
    /// Where the CPU refuses (over its memory budget), the GPU, which fuses the large buffer
    /// away, gives this answer (or a clean error).
    Answer(HostTensor),
    /// The CPU's answer, or a clean error where the GPU cannot hold the kernel (the note says
    /// why).
    MayRefuse(&'static str),
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    expect: Expect,
}

fn load_err(name: &'static str, bytes: Vec<u8>, parts: &[&'static str]) -> Case {
    Case {
        name,
        bytes,
        expect: Expect::LoadErr(parts.to_vec()),
    }
}

fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    let ok = |y: Vec<f32>| Ok(HostTensor::new(&[1, 2], y).unwrap());

    // A model that works, as a baseline.
    cases.push(Case {
        name: "baseline",
        bytes: affine("affine"),
        expect: Expect::Runs {
            summary: vec!["affine (Lambda)".into()],
            input: x12(),
            output: ok(vec![3.0, 5.0]),
            gpu: OnGpu::Same,
        },
    });

    // Allocation: a 744-byte model whose Lambda sums a (65536, 65536) broadcast (16 GiB), and
    // one with twenty 1 GiB intermediates. Refused by the memory budget, never allocated.
    let huge = {
        let x = Input::new(&[1]).tensor();
        let y = Lambda::new(|x| x.broadcast_to(&[65536, 65536]).sum(Axes::All))
            .name("huge")
            .call(&x)
            .unwrap();
        Model::new(&[x], &[y]).unwrap().to_bytes().unwrap()
    };
    cases.push(Case {
        name: "broadcast_16_gib",
        bytes: huge,
        expect: Expect::Runs {
            summary: vec!["huge (Lambda)".into()],
            input: HostTensor::new(&[1, 1], vec![1.0f32]).unwrap(),
            output: Err(vec!["memory budget", "huge"]),
            gpu: OnGpu::MayRefuse(
                "the GPU reads the broadcast in place, but 2^32 elements are past its 32-bit \
                 indexing: refused with an error naming the op and layer",
            ),
        },
    });
    let twenty = {
        let x = Input::new(&[1]).tensor();
        let y = Lambda::new(|x| {
            let mut t = x.broadcast_to(&[16384, 16384]);
            for k in 0..20 {
                t = (t.transpose(&[1, 0]) + k as f32).exp();
            }
            t.sum(Axes::All)
        })
        .name("twenty")
        .call(&x)
        .unwrap();
        Model::new(&[x], &[y]).unwrap().to_bytes().unwrap()
    };
    cases.push(Case {
        name: "twenty_gib_intermediates",
        bytes: twenty,
        expect: Expect::Runs {
            summary: vec!["twenty (Lambda)".into()],
            input: HostTensor::new(&[1, 1], vec![1.0f32]).unwrap(),
            output: Err(vec!["memory budget", "twenty"]),
            gpu: OnGpu::Answer(HostTensor::new(&[], vec![f32::INFINITY]).unwrap()),
        },
    });

    // Amplification at load: a scalar reshaped to rank 100,000 then 3,000 ops (6 GB before);
    // a 2,000-node Lambda called 5,000 times (a 10-million-node graph before).
    let mut body = vec![
        node(json!({"op": "input", "index": 0}), &[]),
        node(
            json!({"op": "reduce", "func": "sum", "axes": [0, 1], "keepdims": false}),
            &[0],
        ),
        node(json!({"op": "reshape", "target": vec![1; 100_000]}), &[1]),
    ];
    for k in 3..3003 {
        body.push(node(unary("neg"), &[k - 1]));
    }
    let arch = chain(
        vec![input_layer(json!([null, 1])), lambda_layer("deep", body)],
        [1],
    );
    cases.push(load_err(
        "rank_100000",
        model_file(&arch, &[], "2"),
        &["reshape", "maximum rank 64"],
    ));
    let arch = chain(
        vec![
            input_layer(json!([null, 1])),
            lambda_layer("big", negations(2000)),
        ],
        std::iter::repeat_n(1, 5000),
    );
    cases.push(load_err(
        "replay_10_million_nodes",
        model_file(&arch, &[], "2"),
        &["would exceed 65536 nodes", "loaded_node_limit"],
    ));
    // The same 2,000-node Lambda called 5,000 times on the same input: each call gives the
    // same tensor, so the calls share one replay instead of making 10 million nodes.
    let mut arch = chain(
        vec![
            input_layer(json!([null, 2])),
            lambda_layer("big", negations(2001)),
        ],
        std::iter::repeat_n(1, 5000),
    );
    for call in arch["calls"].as_array_mut().unwrap().iter_mut().skip(1) {
        call["inputs"][0]["call"] = 0.into();
    }
    cases.push(Case {
        name: "same_call_5000_times",
        bytes: model_file(&arch, &[], "2"),
        expect: Expect::Runs {
            summary: vec!["big (Lambda)".into()],
            input: x12(),
            output: ok(vec![1.0, 2.0]),
            gpu: OnGpu::Same,
        },
    });
    // Within the limits, many calls of a small body load and give the right answer.
    let plus_one = vec![
        node(json!({"op": "input", "index": 0}), &[]),
        node(json!({"op": "constant", "id": 0}), &[]),
        node(json!({"op": "binary", "func": "add"}), &[0, 1]),
    ];
    let arch = chain(
        vec![
            input_layer(json!([null, 2])),
            lambda_layer("plus_one", plus_one),
        ],
        std::iter::repeat_n(1, 1000),
    );
    cases.push(Case {
        name: "thousand_calls",
        bytes: model_file(
            &arch,
            &[f32_tensor("layers/1/constants/0", &[], &[1.0])],
            "2",
        ),
        expect: Expect::Runs {
            summary: vec!["plus_one (Lambda)".into()],
            input: HostTensor::new(&[1, 2], vec![0.5f32, -3.0]).unwrap(),
            output: ok(vec![1000.5, 997.0]),
            gpu: OnGpu::Same,
        },
    });

    // A body that reads one tensor 50,000 times, behind 2,000 identity layers: linear work.
    let mut layers = vec![input_layer(json!([null, 1]))];
    for k in 0..2000 {
        layers.push(json!({"class": "Dropout", "name": format!("drop{k}"), "rate": 0.5}));
    }
    let wide = vec![
        node(json!({"op": "input", "index": 0}), &[]),
        node(json!({"op": "concat", "axis": 1}), &[0; 50_000]),
    ];
    layers.push(lambda_layer("wide", wide));
    let arch = chain(layers, (1..=2001).collect::<Vec<_>>());
    cases.push(Case {
        name: "one_tensor_read_50000_times",
        bytes: model_file(&arch, &[], "2"),
        expect: Expect::Runs {
            summary: vec!["wide (Lambda)".into(), "drop1999 (Dropout)".into()],
            input: HostTensor::new(&[1, 1], vec![7.0f32]).unwrap(),
            output: Ok(HostTensor::new(&[1, 50_000], vec![7.0f32; 50_000]).unwrap()),
            gpu: OnGpu::MayRefuse(
                "a 50,000-input concatenation makes a kernel the GPU's validation refuses",
            ),
        },
    });

    // Rank 64, the most there may be, runs.
    let rank64 = {
        let mut m = Sequential::named("rank64");
        m.add(Input::new(&[1; 63])).unwrap();
        m.add(Lambda::new(|x| (x * 2.0 + 1.0).sum_keepdims(-1)).name("deep"))
            .unwrap();
        m.model().unwrap().to_bytes().unwrap()
    };
    cases.push(Case {
        name: "rank_64",
        bytes: rank64,
        expect: Expect::Runs {
            summary: vec!["deep (Lambda)".into()],
            input: HostTensor::new(&[1; 64], vec![3.0f32]).unwrap(),
            output: Ok(HostTensor::new(&[1; 64], vec![7.0f32]).unwrap()),
            gpu: OnGpu::Same,
        },
    });

    // Shapes past the limits: rank, a dimension of 2^63, a concatenation whose size overflows.
    let mut deep_shape = vec![Value::Null];
    deep_shape.extend(std::iter::repeat_n(json!(1), 64));
    let arch = chain(
        vec![
            input_layer(Value::Array(deep_shape)),
            lambda_layer("l", negations(2)),
        ],
        [1],
    );
    cases.push(load_err(
        "input_rank_65",
        model_file(&arch, &[], "2"),
        &["rank 65", "maximum rank 64"],
    ));
    let arch = chain(
        vec![
            input_layer(json!([null, 9223372036854775808u64])),
            lambda_layer("l", negations(2)),
        ],
        [1],
    );
    cases.push(load_err(
        "input_dim_2_63",
        model_file(&arch, &[], "2"),
        &["9223372036854775808", "elements"],
    ));
    let concat = vec![
        node(json!({"op": "input", "index": 0}), &[]),
        node(
            json!({"op": "broadcast_to", "shape": [2, 9223372036854775808u64]}),
            &[0],
        ),
        node(json!({"op": "concat", "axis": 1}), &[1, 1]),
    ];
    let arch = chain(
        vec![input_layer(json!([2, 1])), lambda_layer("cat", concat)],
        [1],
    );
    cases.push(load_err(
        "concatenate_overflow",
        model_file(&arch, &[], "2"),
        &["'cat'", "broadcast_to", "elements"],
    ));

    // Names: 70,000 characters (past format!'s width limit), terminal escape sequences.
    let long = "n".repeat(70_000);
    cases.push(Case {
        name: "name_70000_chars",
        bytes: affine(&long),
        expect: Expect::Runs {
            summary: vec![format!("{long} (Lambda)")],
            input: x12(),
            output: ok(vec![3.0, 5.0]),
            gpu: OnGpu::Same,
        },
    });
    cases.push(Case {
        name: "name_escape_sequences",
        bytes: affine("\x1b[2J\x1b]0;pwned\x07\u{202e}evil\r\n"),
        expect: Expect::Runs {
            summary: vec!["\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\u{202e}evil\\r\\n (Lambda)".into()],
            input: x12(),
            output: ok(vec![3.0, 5.0]),
            gpu: OnGpu::Same,
        },
    });

    // Duplicate layer names, as Keras refuses them.
    let base = layered();
    cases.push(load_err(
        "duplicate_layer_names",
        edited(&base, |a, _, _| a["layers"][3]["name"] = "dense".into()),
        &["both named 'dense'", "unique"],
    ));

    // Lenient parsing: versions, stowaway tensors, float configs that overflow float32.
    for (name, v) in [
        ("version_plus_2", "+2"),
        ("version_02", "02"),
        ("version_space_2", " 2"),
        ("version_2_0", "2.0"),
    ] {
        cases.push(load_err(
            name,
            edited(&base, |_, m, _| {
                m.insert("version".into(), v.into());
            }),
            &["version", "not a format version"],
        ));
    }
    cases.push(load_err(
        "stowaway_tensor",
        edited(&base, |_, _, t| {
            t.push(f32_tensor("stowaway", &[2], &[1.0, 2.0]))
        }),
        &["tensor 'stowaway' is not used"],
    ));
    cases.push(load_err(
        "extra_dense_weight",
        edited(&base, |_, _, t| {
            t.push(f32_tensor("layers/2/weights/extra", &[1], &[1.0]))
        }),
        &["layers/2/weights/extra", "not a weight of layer 'dense'"],
    ));
    cases.push(load_err(
        "rescaling_scale_1e39",
        edited(&base, |a, _, _| a["layers"][3]["scale"] = json!(1e39)),
        &["not a finite float32"],
    ));

    // Hostile framing: header lengths past the limit, truncation, deeply nested JSON.
    let mut max = base.clone();
    max[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    cases.push(load_err("header_length_u64_max", max, &["maximum"]));
    let mut over = ((64u64 << 20) + 1).to_le_bytes().to_vec();
    over.extend_from_slice(b"{\"__metadata__\":{}}");
    cases.push(load_err(
        "header_length_past_64_mib",
        over,
        &["MAX_METADATA_BYTES"],
    ));
    cases.push(load_err(
        "truncated",
        base[..base.len() / 2].to_vec(),
        &["safetensors"],
    ));
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    cases.push(load_err(
        "architecture_nested_100000_deep",
        edited(&base, |_, m, _| {
            m.insert("architecture".into(), nested);
        }),
        &["architecture"],
    ));
    cases
}

/// `.npy` inputs: a 150-byte header with brackets nested 24 deep (exponential time in the
/// `npyz` parser), and a shape of 2^64 elements.
fn npy_corpus() -> Vec<(&'static str, Vec<u8>)> {
    let npy = |dict: String| {
        let mut header = dict.into_bytes();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(b' ');
        }
        header.push(b'\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes
    };
    vec![
        (
            "nested_brackets",
            npy(format!(
                "{{'descr': '<f4', 'fortran_order': False, 'shape': {}1,{}}}",
                "(".repeat(24),
                ")".repeat(24)
            )),
        ),
        (
            "shape_2_64",
            npy(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }"
                    .into(),
            ),
        ),
    ]
}

// ---- Running cases ----

/// Runs `f` on a thread and waits at most `TIMEOUT`: a hang or a panic is an `Err`.
fn bounded<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, String> + Send + 'static,
) -> std::result::Result<T, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(r) => {
            let _ = handle.join();
            r
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            Err(format!("did not finish within {TIMEOUT:?}"))
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            let panic = handle.join().err();
            let msg = panic
                .as_ref()
                .and_then(|p| {
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                })
                .unwrap_or_default();
            Err(format!("panicked: {msg}"))
        }
    }
}

fn holds_all(text: &str, parts: &[&str]) -> std::result::Result<(), String> {
    match parts.iter().find(|p| !text.contains(**p)) {
        Some(p) => Err(format!("{p:?} not in: {}", shorten(text))),
        None => Ok(()),
    }
}

fn shorten(text: &str) -> String {
    let mut s: String = text.chars().take(600).collect();
    if s.len() < text.len() {
        s.push_str("...");
    }
    s
}

fn close(a: &HostTensor, b: &HostTensor) -> bool {
    a.shape() == b.shape()
        && a.to_f32_vec()
            .iter()
            .zip(b.to_f32_vec())
            .all(|(&x, y)| x == y || (x - y).abs() <= 1e-5 * y.abs().max(1.0))
}

/// Checks what `predict` gave against the CPU's expected `output` and, on the GPU, `on_gpu`.
fn check_predict(
    got: Result<Vec<HostTensor>>,
    output: &std::result::Result<HostTensor, Vec<&'static str>>,
    on_gpu: &OnGpu,
) -> std::result::Result<(), String> {
    let one = |y: &[HostTensor], want: &HostTensor| y.len() == 1 && close(&y[0], want);
    match (got, output, on_gpu) {
        (Ok(y), Ok(want), OnGpu::Same | OnGpu::MayRefuse(_)) if one(&y, want) => Ok(()),
        (Err(_), Ok(_), OnGpu::MayRefuse(why)) => {
            eprintln!("the GPU refuses, as it may: {why}");
            Ok(())
        }
        (Err(e), Err(parts), OnGpu::Same) => holds_all(&e.to_string(), parts),
        (Err(_), Err(_), _) => Ok(()),
        (Ok(y), Err(_), OnGpu::Answer(want)) if one(&y, want) => Ok(()),
        (Ok(y), _, _) => Err(format!("predict gave {y:?}, not what was expected")),
        (Err(e), Ok(_), _) => Err(format!("predict failed: {e}")),
    }
}

fn check_case(
    case: &Case,
    path: &Path,
    gpu: Option<Arc<GpuBackend>>,
) -> std::result::Result<(), String> {
    let loaded = Model::from_bytes(&case.bytes);
    let from_file = Model::load(path);
    match &case.expect {
        Expect::LoadErr(parts) => {
            for (how, r) in [("from_bytes", loaded), ("load", from_file)] {
                match r {
                    Ok(_) => return Err(format!("{how}: a hostile file loaded")),
                    Err(e) => {
                        holds_all(&e.to_string(), parts).map_err(|e| format!("{how}: {e}"))?
                    }
                }
            }
            Ok(())
        }
        Expect::Runs {
            summary,
            input,
            output,
            gpu: on_gpu,
        } => {
            let model = from_file.map_err(|e| format!("load: {e}"))?;
            loaded.map_err(|e| format!("from_bytes: {e}"))?;
            let table = model
                .summary_string()
                .map_err(|e| format!("summary: {e}"))?;
            let parts: Vec<&str> = summary.iter().map(|s| s.as_str()).collect();
            holds_all(&table, &parts).map_err(|e| format!("summary: {e}"))?;
            if let Some(c) = table.chars().find(|&c| c != '\n' && c.is_control()) {
                return Err(format!("summary prints the control character {c:?}"));
            }
            let program = model.program().clone();
            let mut sessions = vec![(
                "cpu",
                Session::new(program.clone(), BackendKind::Cpu).map_err(|e| e.to_string())?,
            )];
            if let Some(g) = gpu {
                sessions.push(("gpu", Session::with_backend(program, Arc::new(g))));
            }
            for (backend, session) in sessions {
                let session = session.with_memory_budget(MemoryBudget::bytes(BUDGET));
                let got = session.run(std::slice::from_ref(input));
                let expect = if backend == "gpu" {
                    on_gpu
                } else {
                    &OnGpu::Same
                };
                check_predict(got, output, expect).map_err(|e| format!("{backend}: {e}"))?;
            }
            Ok(())
        }
    }
}

#[test]
fn the_corpus_gives_errors_or_right_answers_in_process() {
    let dir = temp_dir("corpus");
    let gpu = gpu();
    let mut failures = Vec::new();
    for case in corpus() {
        let path = dir.join(format!("{}.lamina", case.name));
        std::fs::write(&path, &case.bytes).unwrap();
        let name = case.name;
        let g = gpu.clone();
        let start = Instant::now();
        if let Err(e) = bounded(move || check_case(&case, &path, g)) {
            failures.push(format!("{name}: {e}"));
        }
        eprintln!("{name}: {:.2} s", start.elapsed().as_secs_f64());
    }
    for (name, bytes) in npy_corpus() {
        match bounded(move || Ok(HostTensor::from_npy_bytes(&bytes).map_err(|e| e.to_string()))) {
            Ok(Err(_)) => {}
            Ok(Ok(t)) => failures.push(format!("npy {name}: read as {:?}", t.shape())),
            Err(e) => failures.push(format!("npy {name}: {e}")),
        }
    }
    // Endless files are read only as far as their declared sizes.
    if Path::new("/dev/zero").exists() {
        match bounded(|| {
            Ok(Model::load("/dev/zero")
                .map(|_| ())
                .map_err(|e| e.to_string()))
        }) {
            Ok(Err(e)) if e.contains("safetensors") => {}
            other => failures.push(format!("/dev/zero as a model: {other:?}")),
        }
        match bounded(|| {
            Ok(HostTensor::read_npy("/dev/zero")
                .map(|_| ())
                .map_err(|e| e.to_string()))
        }) {
            Ok(Err(_)) => {}
            other => failures.push(format!("/dev/zero as .npy: {other:?}")),
        }
    }
    std::fs::remove_dir_all(dir).ok();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---- The command line under ulimit -v ----

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `lamina args` under `ulimit -v`, killing it past `TIMEOUT`.
fn lamina_limited(dir: &Path, args: &[&str]) -> std::result::Result<Outcome, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {ULIMIT_KB}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_lamina"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    // Read the pipes on threads so that a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut s).ok();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut s).ok();
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("lamina {args:?} hung: killed after {TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = String::from_utf8_lossy(&out.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return Err(format!(
                "lamina {args:?} died of signal {sig}: {}",
                shorten(&stderr)
            ));
        }
    }
    if stderr.contains("panicked") || stderr.contains("memory allocation of") {
        return Err(format!("lamina {args:?} panicked: {}", shorten(&stderr)));
    }
    Ok(Outcome {
        code: status.code(),
        stdout,
        stderr,
    })
}

/// A clean failure: exit code 1 (or 2 for bad arguments), one line on stderr.
fn clean_error(o: &Outcome, args: &[&str]) -> std::result::Result<(), String> {
    if !matches!(o.code, Some(1 | 2)) || o.stderr.trim_end().lines().count() != 1 {
        return Err(format!(
            "lamina {args:?}: exit {:?}, stderr: {}",
            o.code,
            shorten(&o.stderr)
        ));
    }
    if o.stderr.chars().any(|c| c != '\n' && c.is_control()) {
        return Err(format!("lamina {args:?} printed a control character"));
    }
    Ok(())
}

/// Runs a case through `lamina summary` and `lamina run` on the CPU and, with `gpu`, on the
/// GPU too (where it must give the right answer, or any clean error).
fn check_cli_case(dir: &Path, case: &Case, gpu: bool) -> std::result::Result<(), String> {
    let file = format!("{}.lamina", case.name);
    std::fs::write(dir.join(&file), &case.bytes).unwrap();
    let input = match &case.expect {
        Expect::Runs { input, .. } => input.clone(),
        Expect::LoadErr(_) => x12(),
    };
    let x = format!("{}.x.npy", case.name);
    let y = format!("{}.y.npy", case.name);
    input.write_npy(dir.join(&x)).unwrap();
    let summary = ["summary", file.as_str()];
    let run = [
        "run",
        &file,
        "--input",
        &x,
        "--output",
        &y,
        "--backend",
        "cpu",
    ];
    let s = lamina_limited(dir, &summary)?;
    let r = lamina_limited(dir, &run)?;
    match &case.expect {
        Expect::LoadErr(_) => {
            clean_error(&s, &summary)?;
            clean_error(&r, &run)?;
            holds_all(&s.stderr, &["lamina: error: model file"])?;
        }
        Expect::Runs { output, .. } => {
            if s.code != Some(0) || s.stdout.chars().any(|c| c != '\n' && c.is_control()) {
                return Err(format!(
                    "summary: exit {:?}, stderr {}",
                    s.code,
                    shorten(&s.stderr)
                ));
            }
            match output {
                Ok(want) => {
                    if r.code != Some(0) {
                        return Err(format!("run: exit {:?}: {}", r.code, shorten(&r.stderr)));
                    }
                    let got = HostTensor::read_npy(dir.join(&y)).map_err(|e| e.to_string())?;
                    if !close(&got, want) {
                        return Err(format!("run gave {got:?}, not {want:?}"));
                    }
                }
                Err(_) => clean_error(&r, &run)?,
            }
            if gpu {
                let y = format!("{}.gpu.npy", case.name);
                let run = [
                    "run",
                    &file,
                    "--input",
                    &x,
                    "--output",
                    &y,
                    "--backend",
                    "gpu",
                ];
                let r = lamina_limited(dir, &run)?;
                match (r.code, output) {
                    (Some(0), Ok(want)) => {
                        let got = HostTensor::read_npy(dir.join(&y)).map_err(|e| e.to_string())?;
                        if !close(&got, want) {
                            return Err(format!("run on the gpu gave {got:?}, not {want:?}"));
                        }
                    }
                    (Some(0), Err(_)) => {}
                    _ => clean_error(&r, &run)?,
                }
            }
        }
    }
    Ok(())
}

#[test]
fn the_command_line_survives_the_corpus_under_ulimit() {
    if !cfg!(unix) {
        eprintln!("skipping: ulimit needs a Unix shell");
        return;
    }
    let dir = temp_dir("cli");
    let gpu = gpu().is_some();
    let mut failures = Vec::new();
    for case in corpus() {
        if let Err(e) = check_cli_case(&dir, &case, gpu) {
            failures.push(format!("{}: {e}", case.name));
        }
    }
    // `.npy` inputs that are hostile, and endless files as models and inputs.
    std::fs::write(dir.join("ok.lamina"), affine("affine")).unwrap();
    for (name, bytes) in npy_corpus() {
        let file = format!("{name}.npy");
        std::fs::write(dir.join(&file), bytes).unwrap();
        let args = ["run", "ok.lamina", "--input", &file, "--output", "o.npy"];
        match lamina_limited(&dir, &args) {
            Ok(o) => {
                if let Err(e) = clean_error(&o, &args) {
                    failures.push(format!("npy {name}: {e}"));
                }
            }
            Err(e) => failures.push(format!("npy {name}: {e}")),
        }
    }
    let mut bad_args: Vec<Vec<&str>> = vec![
        vec!["bench", "--runs", "18446744073709551615"],
        vec!["bench", "--runs", "1000000000000"],
        vec!["bench", "--runs", "0"],
        vec!["bench", "--scale", "18446744073709551615"],
        vec!["bench", "--workload", "\x1b[2Jevil"],
    ];
    if Path::new("/dev/zero").exists() {
        bad_args.push(vec!["summary", "/dev/zero"]);
        bad_args.push(vec![
            "run",
            "ok.lamina",
            "--input",
            "/dev/zero",
            "--output",
            "o.npy",
        ]);
    }
    for args in &bad_args {
        match lamina_limited(&dir, args) {
            Ok(o) => {
                if let Err(e) = clean_error(&o, args) {
                    failures.push(e);
                }
            }
            Err(e) => failures.push(e),
        }
    }
    std::fs::remove_dir_all(dir).ok();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---- The API: checked shapes, unique names, saves ----

#[test]
fn shape_arithmetic_is_checked_and_names_the_op() {
    // Two (2, 2^31) tensors concatenate to 2^33 elements: refused, not wrapped to (2, 0).
    let x = Input::new(&[1 << 31]).batch_size(2).tensor();
    let e = Tensor::concatenate(&[x.clone(), x.clone()], 1)
        .check()
        .unwrap_err()
        .to_string();
    for part in [
        "concatenate",
        "(2, 2147483648) and (2, 2147483648)",
        "4294967296 elements",
    ] {
        assert!(e.contains(part), "{part} not in {e}");
    }
    // Sizes past usize: a broadcast, a reshape(-1) of it, a product of dims.
    let s = Tensor::scalar(1.0);
    let e = s
        .broadcast_to(&[1 << 63, 4])
        .check()
        .unwrap_err()
        .to_string();
    assert!(e.contains("broadcast_to"), "{e}");
    let e = s
        .broadcast_to(&[1 << 32, 1 << 32])
        .reshape(&[-1])
        .check()
        .unwrap_err()
        .to_string();
    assert!(e.contains("broadcast_to"), "{e}");
    let e = s
        .reshape(&[1 << 40, 1 << 40])
        .check()
        .unwrap_err()
        .to_string();
    assert!(e.contains("reshape") && e.contains("too large"), "{e}");
    // Rank: 64 axes are fine, 65 are refused where they are made.
    let ones64 = vec![1i64; 64];
    assert_eq!(s.reshape(&ones64).rank(), 64);
    let e = s.reshape(&[1; 65]).check().unwrap_err().to_string();
    assert!(
        e.contains("reshape") && e.contains("maximum rank 64"),
        "{e}"
    );
    let e = s
        .reshape(&ones64)
        .expand_dims(0)
        .check()
        .unwrap_err()
        .to_string();
    assert!(e.contains("expand_dims") && e.contains("65 axes"), "{e}");
    let e = Input::new(&[1; 64])
        .tensor()
        .check()
        .unwrap_err()
        .to_string();
    assert!(e.contains("maximum rank 64"), "{e}");
    assert!(Input::new(&[1; 63]).tensor().check().is_ok());
    // Inside a layer, the error names the layer too.
    let x = Input::new(&[2]).tensor();
    let e = Lambda::new(|x| x.broadcast_to(&[1 << 33, 2]))
        .name("wide")
        .call(&x)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'wide' (Lambda)") && e.contains("broadcast_to"),
        "{e}"
    );
}

#[test]
fn duplicate_layer_names_are_refused_as_keras_does() -> Result<()> {
    let mut m = Sequential::named("m");
    m.add(Input::new(&[2]))?;
    m.add(Dense::new(2).name("d"))?;
    let e = m.add(Dense::new(2).name("d")).unwrap_err().to_string();
    assert!(
        e.contains("'d'") && e.contains("all layer names should be unique"),
        "{e}"
    );
    assert_eq!(m.layers().len(), 1);
    // The same layer twice is one layer, as in Keras.
    let shared = Dense::new(2).name("shared");
    m.add(shared.clone())?;
    m.add(shared)?;
    // Functional models too, also against an input's name.
    let x = Input::new(&[2]).name("x").tensor();
    let a = Dense::new(2).name("twin").call(&x)?;
    let b = Dense::new(2).name("twin").call(&a)?;
    let e = Model::new(std::slice::from_ref(&x), &[b])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("'twin' is used by 2 layers"), "{e}");
    let c = Dense::new(2).name("x").call(&x)?;
    assert!(Model::new(&[x], &[c]).is_err());
    Ok(())
}

#[test]
fn saves_remove_stale_temp_files_and_write_through_links() -> Result<()> {
    let dir = temp_dir("save");
    let model = Model::from_bytes(&affine("affine"))?;
    // A save killed with -9 leaves `.m.lamina.tmp-{pid}-{n}`; the next save removes it once
    // its process is gone, and leaves a live process's temp file and other files alone.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = dir.join(format!(".m.lamina.tmp-{dead}-12"));
    let other = dir.join(format!(".n.lamina.tmp-{dead}-12"));
    std::fs::write(&stale, b"half a model").unwrap();
    std::fs::write(&other, b"half a model").unwrap();
    model.save(dir.join("m.lamina"))?;
    if Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{dead}")).exists() {
        assert!(
            !stale.exists(),
            "the stale temp file survived the next save"
        );
    }
    assert!(other.exists());
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".m.lamina.tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A link is written through: the link stays a link, its target gets the model.
    #[cfg(unix)]
    {
        let target = dir.join("target.lamina");
        std::fs::write(&target, b"old").unwrap();
        let link = dir.join("link.lamina");
        std::os::unix::fs::symlink("target.lamina", &link).unwrap();
        model.save(&link)?;
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let loaded = Model::load(&target)?;
        let y = Session::new(loaded.program().clone(), BackendKind::Cpu)?.run(&[x12()])?;
        assert_eq!(y[0].as_f32()?, &[3.0, 5.0]);
        // A dangling link gets its target created.
        let dangling = dir.join("dangling.lamina");
        std::os::unix::fs::symlink("new.lamina", &dangling).unwrap();
        model.save(&dangling)?;
        assert!(dir.join("new.lamina").is_file());
        // A loop of links is an error, not a hang.
        std::os::unix::fs::symlink("loop_b", dir.join("loop_a")).unwrap();
        std::os::unix::fs::symlink("loop_a", dir.join("loop_b")).unwrap();
        let e = model.save(dir.join("loop_a")).unwrap_err().to_string();
        assert!(e.contains("symbolic links"), "{e}");
    }
    std::fs::remove_dir_all(dir).ok();
    Ok(())
}

// ---- Round two (issue 24): the Keras importer, layer configs and saves ----

use common::crafted::{empty_h5, keras_archive, one_name_many_links};

/// A Keras functional config: an `InputLayer` of `shape` (batch first, `null` for any), then
/// `layers` (Keras layer entries without `inbound_nodes`), each called on the previous output.
fn keras_chain(shape: Value, layers: Vec<Value>) -> Value {
    let tensor = |name: &str| {
        json!({"class_name": "__keras_tensor__",
               "config": {"shape": shape.clone(), "dtype": "float32", "keras_history": [name, 0, 0]}})
    };
    let mut entries = vec![json!({"class_name": "InputLayer", "name": "input",
        "config": {"batch_shape": shape.clone(), "dtype": "float32", "name": "input"},
        "inbound_nodes": []})];
    let mut previous = "input".to_string();
    for (k, mut layer) in layers.into_iter().enumerate() {
        let name = format!("layer_{k}");
        layer["name"] = json!(name);
        layer["config"]["name"] = json!(name);
        layer["inbound_nodes"] = json!([{"args": [tensor(&previous)], "kwargs": {}}]);
        entries.push(layer);
        previous = name;
    }
    json!({"class_name": "Functional", "config": {"name": "crafted", "layers": entries,
        "input_layers": [["input", 0, 0]], "output_layers": [[previous, 0, 0]]}})
}

fn keras_layer(class: &str, config: Value) -> Value {
    json!({"class_name": class, "module": "keras.layers", "config": config})
}

/// Loads a `.keras` (or, for a name ending in `.lamina`, a Lamina) file's bytes through the
/// library (bounded in time) and through `lamina summary` under `ulimit -v`; both must fail
/// cleanly with every part, in a bounded message.
fn keras_load_fails(
    dir: &Path,
    name: &str,
    bytes: Vec<u8>,
    parts: &[&str],
) -> std::result::Result<(), String> {
    let file = if name.ends_with(".lamina") {
        name.to_string()
    } else {
        format!("{name}.keras")
    };
    let path = dir.join(&file);
    std::fs::write(&path, &bytes).unwrap();
    let e = bounded(move || {
        let loaded = if path.extension().is_some_and(|e| e == "lamina") {
            Model::load(&path)
        } else {
            Model::load_keras(&path, &KerasBindings::new())
        };
        match loaded {
            Ok(_) => Err("it loaded".to_string()),
            Err(e) => Ok(e.to_string()),
        }
    })
    .map_err(|e| format!("{name} (library): {e}"))?;
    holds_all(&e, parts).map_err(|e| format!("{name} (library): {e}"))?;
    if e.len() > 4000 {
        return Err(format!("{name}: a {} byte error", e.len()));
    }
    let args = ["summary", file.as_str()];
    let o = lamina_limited(dir, &args).map_err(|e| format!("{name} (cli): {e}"))?;
    clean_error(&o, &args).map_err(|e| format!("{name} (cli): {e}"))?;
    holds_all(&o.stderr, parts).map_err(|e| format!("{name} (cli): {e}"))
}

#[test]
fn crafted_keras_files_fail_cleanly_in_bounded_time_and_memory() {
    let dir = temp_dir("round-two");
    let flat = |layers| {
        keras_chain(json!([null, 4, 2]), layers)
            .to_string()
            .into_bytes()
    };
    let mut failures = Vec::new();
    let mut check = |name: &str, bytes: Vec<u8>, parts: &[&str]| {
        if let Err(e) = keras_load_fails(&dir, name, bytes, parts) {
            failures.push(e);
        }
    };
    // 1. One 1 MiB link name behind 60,000 links of the weights file (60 GiB of copies).
    check(
        "name_amplification",
        keras_archive(&flat(vec![]), &one_name_many_links(1 << 20, 60_000)),
        &["link names total more than"],
    );
    // 2. Layers whose arguments ask for gigantic constants.
    for (name, shape, layer, part) in [
        (
            "upsampling",
            json!([null, 4, 2]),
            keras_layer("UpSampling1D", json!({"size": 1u64 << 30})),
            "up-sampling",
        ),
        (
            "zero_padding",
            json!([null, 4, 2]),
            keras_layer("ZeroPadding1D", json!({"padding": 1u64 << 31})),
            "zero padding",
        ),
        (
            "resizing",
            json!([null, 4, 2, 3]),
            keras_layer("Resizing", json!({"height": 1u64 << 30, "width": 2})),
            "Resizing",
        ),
    ] {
        let config = keras_chain(shape, vec![layer]).to_string();
        check(
            name,
            keras_archive(config.as_bytes(), &empty_h5()),
            &[part, "MAX_LAYER_CONSTANT"],
        );
    }
    // A keras.ops Repeat whose counts sum to 2^41.
    let repeat = json!({"class_name": "Repeat", "module": "keras.src.ops.numpy",
        "config": {"repeats": [1u64 << 40, 1u64 << 40], "axis": 2}});
    check(
        "repeat_op",
        keras_archive(&flat(vec![repeat]), &empty_h5()),
        &["repeat", "MAX_LAYER_CONSTANT"],
    );
    // The same layers in Lamina's own files.
    let x = Input::new(&[4, 2]).tensor();
    let y = UpSampling1D::new(2).call(&x).unwrap();
    let y = ZeroPadding1D::new(1).call(&y).unwrap();
    let saved = dir.join("small.lamina");
    Model::new(&[x], &[y]).unwrap().save(&saved).unwrap();
    let bytes = std::fs::read(&saved).unwrap();
    let big_size = edited(&bytes, |arch, _, _| {
        arch["layers"][1]["size"] = json!(1u64 << 30)
    });
    check(
        "upsampling.lamina",
        big_size,
        &["up-sampling", "MAX_LAYER_CONSTANT"],
    );
    let big_pad = edited(&bytes, |arch, _, _| {
        arch["layers"][2]["padding"] = json!([1u64 << 31, 0])
    });
    check(
        "zero_padding.lamina",
        big_pad,
        &["zero padding", "MAX_LAYER_CONSTANT"],
    );
    // A pooling window of 2^40 taps with same padding runs as one the size of its input.
    let pool = keras_chain(
        json!([null, 4, 2]),
        vec![keras_layer(
            "MaxPooling1D",
            json!({"pool_size": 1u64 << 40, "strides": 1, "padding": "same"}),
        )],
    );
    let path = dir.join("pool.keras");
    std::fs::write(
        &path,
        keras_archive(pool.to_string().as_bytes(), &empty_h5()),
    )
    .unwrap();
    let got = bounded(move || {
        let m = Model::load_keras(&path, &KerasBindings::new()).map_err(|e| e.to_string())?;
        let x = HostTensor::new(&[1, 4, 2], vec![1f32, -1., 4., 0., 2., 7., -3., 5.]).unwrap();
        Session::new(m.program().clone(), BackendKind::Cpu)
            .and_then(|s| s.run(&[x]))
            .map_err(|e| e.to_string())
    });
    match got {
        // Every window covers the whole axis: the column maxima at every step.
        Ok(y) => assert_eq!(y[0].to_f32_vec(), [4.0, 7.0].repeat(4)),
        Err(e) => panic!("pool: {e}"),
    }
    // 4. A Lambda's bytecode of 55,000 distinct strings (read in linear time).
    let mut code = Vec::new();
    for i in 0..55_000u32 {
        let s = format!("name{i:06}");
        code.push(b'z');
        code.push(s.len() as u8);
        code.extend(s.bytes());
    }
    let lambda = keras_layer(
        "Lambda",
        json!({"function": {"class_name": "__lambda__", "config": {"code": base64(&code)}}}),
    );
    check(
        "bytecode",
        keras_archive(&flat(vec![lambda]), &empty_h5()),
        &["need a Rust body", "name000000"],
    );
    // 9. A config.json that inflates to 100 MiB, past MAX_METADATA_BYTES (64 MiB).
    let mut bomb = b"{\"a\": \"".to_vec();
    bomb.resize(100 << 20, b' ');
    check(
        "config_bomb",
        keras_archive(&bomb, &empty_h5()),
        &["config.json", "declares", "67108864 at most"],
    );
    // 10. 20,000 unknown classes: the error lists a few and counts the rest.
    let unknown = (0..20_000)
        .map(|k| keras_layer(&format!("Unknown{k}"), json!({})))
        .collect();
    check(
        "unknown_classes",
        keras_archive(&flat(unknown), &empty_h5()),
        &["Unknown0 (layer_0)", "and 19988 more"],
    );
    std::fs::remove_dir_all(&dir).ok();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Standard base64 (with padding), as Keras writes a Lambda's bytecode.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn functional_configs_load_in_linear_time_in_any_order() {
    // 20,000 chained activations listed last-first (each pass of the old loader made one call:
    // 200 s), then a branching graph in random orders, each loading to the same predictions.
    let n = 20_000;
    let layers: Vec<Value> = (0..n)
        .map(|_| keras_layer("Activation", json!({"activation": "relu"})))
        .collect();
    let mut config = keras_chain(json!([null, 3]), layers);
    config["config"]["layers"].as_array_mut().unwrap()[1..].reverse();
    let dir = temp_dir("order");
    let path = dir.join("reversed.keras");
    std::fs::write(
        &path,
        keras_archive(config.to_string().as_bytes(), &empty_h5()),
    )
    .unwrap();
    let y = bounded(move || {
        let m = Model::load_keras(&path, &KerasBindings::new()).map_err(|e| e.to_string())?;
        let x = HostTensor::new(&[1, 3], vec![-1f32, 0.5, 2.0]).unwrap();
        Session::new(m.program().clone(), BackendKind::Cpu)
            .and_then(|s| s.run(&[x]))
            .map_err(|e| e.to_string())
    })
    .unwrap();
    assert_eq!(y[0].to_f32_vec(), [0.0, 0.5, 2.0]);
    // A diamond repeated: x -> (a, b) -> add -> ..., shuffled with a seeded generator.
    let mut entries = vec![json!({"class_name": "InputLayer", "name": "input",
        "config": {"batch_shape": [null, 2], "dtype": "float32", "name": "input"}, "inbound_nodes": []})];
    let t = |name: &str| json!({"class_name": "__keras_tensor__", "config": {"keras_history": [name, 0, 0]}});
    let mut previous = "input".to_string();
    for k in 0..200 {
        let (a, b, s) = (format!("a{k}"), format!("b{k}"), format!("s{k}"));
        entries.push(json!({"class_name": "Activation", "name": a, "config": {"name": a, "activation": "tanh"},
            "inbound_nodes": [{"args": [t(&previous)], "kwargs": {}}]}));
        entries.push(json!({"class_name": "Rescaling", "name": b, "config": {"name": b, "scale": 0.5, "offset": 0.25},
            "inbound_nodes": [{"args": [t(&previous)], "kwargs": {}}]}));
        entries.push(
            json!({"class_name": "Add", "name": s, "config": {"name": s},
            "inbound_nodes": [{"args": [[t(&a), t(&b)]], "kwargs": {}}]}),
        );
        previous = s;
    }
    let run = |entries: &[Value]| {
        let config = json!({"class_name": "Functional", "config": {"name": "diamonds", "layers": entries,
            "input_layers": [["input", 0, 0]], "output_layers": [[previous, 0, 0]]}});
        let path = dir.join("diamonds.keras");
        std::fs::write(
            &path,
            keras_archive(config.to_string().as_bytes(), &empty_h5()),
        )
        .unwrap();
        let m = Model::load_keras(&path, &KerasBindings::new()).unwrap();
        let x = HostTensor::new(&[1, 2], vec![0.3f32, -0.7]).unwrap();
        Session::new(m.program().clone(), BackendKind::Cpu)
            .unwrap()
            .run(&[x])
            .unwrap()[0]
            .to_f32_vec()
    };
    let want = run(&entries);
    let mut state = 0x853c_49e6_748f_ea9bu64;
    for _ in 0..20 {
        // Fisher-Yates with a xorshift generator: a different order each round.
        for i in (2..entries.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let j = 1 + (state % i as u64) as usize;
            entries.swap(i, j);
        }
        assert_eq!(run(&entries), want);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn convolution_scratch_and_long_recurrences_stay_within_the_budget() -> Result<()> {
    // 5. A Conv1D of 2^13 taps over 2^13 channels giving 8 outputs: its patches (8 rows of
    // 2^26 floats, 2 GiB) count against the memory budget, refused before anything runs.
    let steps = (1 << 13) + 7;
    let x = Input::new(&[steps, 1 << 13]).tensor();
    let y = Conv1D::new(1, 1 << 13).call(&x)?;
    let model = Model::new(&[x], &[y])?;
    let session = Session::new(model.program().clone(), BackendKind::Cpu)?
        .with_memory_budget(MemoryBudget::bytes(1 << 30));
    let input = HostTensor::new(&[1, steps, 1 << 13], vec![0f32; steps << 13])?;
    let e = session.run(&[input]).unwrap_err();
    assert!(matches!(e.root(), Error::Memory { .. }), "{e}");
    // 6. Recurrences are loops, not unrolled graphs: 100,000 steps of an LSTM with a relu
    // activation run at once on the CPU; 3,000 on the GPU agree with it.
    for steps in [100_000usize, 3_000] {
        let x = Input::new(&[steps, 4]).tensor();
        let y = LSTM::new(8).activation(Activation::Relu).call(&x)?;
        let model = Model::new(&[x], &[y])?;
        let data: Vec<f32> = (0..steps * 4)
            .map(|i| ((i % 7) as f32 - 3.0) * 0.1)
            .collect();
        let input = HostTensor::new(&[1, steps, 4], data)?;
        if steps == 100_000 {
            let y = Session::new(model.program().clone(), BackendKind::Cpu)?.run(&[input])?;
            assert!(y[0].to_f32_vec().iter().all(|v| v.is_finite()));
        } else {
            common::run_both(&model, &[input]);
        }
    }
    Ok(())
}

#[cfg(unix)]
#[test]
fn saves_refuse_special_files_and_planted_links() -> Result<()> {
    let dir = temp_dir("special");
    let model = Model::load(write_temp(&dir, "affine.lamina", &affine("affine")))?;
    // 7. A FIFO at the target: refused, left a FIFO (a device node is refused the same way).
    let fifo = dir.join("fifo.lamina");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let is_fifo = |p: &Path| {
        use std::os::unix::fs::FileTypeExt;
        std::fs::symlink_metadata(p).unwrap().file_type().is_fifo()
    };
    let e = model.save(&fifo).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    assert!(is_fifo(&fifo));
    let e = x12().write_npy(&fifo).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    let keras = dir.join("ok.keras");
    let config = keras_chain(
        json!([null, 2]),
        vec![keras_layer("Activation", json!({"activation": "relu"}))],
    );
    std::fs::write(
        &keras,
        keras_archive(config.to_string().as_bytes(), &empty_h5()),
    )
    .unwrap();
    let args = ["import", "ok.keras", "-o", "fifo.lamina"];
    let o = lamina_limited(&dir, &args).unwrap();
    clean_error(&o, &args).unwrap();
    assert!(o.stderr.contains("not a regular file"), "{}", o.stderr);
    assert!(is_fifo(&fifo));
    // 8. Links planted at every temporary name the old scheme would pick are not followed:
    // the victim keeps its bytes and the save lands.
    let victim = dir.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let pid = std::process::id();
    for k in 0..2_000 {
        std::os::unix::fs::symlink(&victim, dir.join(format!(".m.lamina.tmp-{pid}-{k}"))).unwrap();
    }
    model.save(dir.join("m.lamina"))?;
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(Model::load(dir.join("m.lamina")).is_ok());
    // 10. The same model saves to the same bytes; an import too.
    model.save(dir.join("again.lamina"))?;
    assert_eq!(
        std::fs::read(dir.join("m.lamina")).unwrap(),
        std::fs::read(dir.join("again.lamina")).unwrap()
    );
    let imports: Vec<Vec<u8>> = ["a.lamina", "b.lamina"]
        .iter()
        .map(|out| {
            let args = ["import", "ok.keras", "-o", out];
            let o = lamina_limited(&dir, &args).unwrap();
            assert_eq!(o.code, Some(0), "{}", o.stderr);
            std::fs::read(dir.join(out)).unwrap()
        })
        .collect();
    assert_eq!(imports[0], imports[1]);
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}
