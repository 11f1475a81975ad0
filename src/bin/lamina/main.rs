//! `lamina`: inspect and run saved models from the shell.

use clap::{Parser, Subcommand};
use lamina::limits::printable;
use lamina::{BackendKind, HostTensor, KerasImport, Model, Session};
use std::path::PathBuf;
use std::process::ExitCode;

/// The most timed runs `lamina bench --runs` takes.
const MAX_RUNS: u64 = 10_000;
/// The largest divisor `lamina bench --scale` takes (the sizes stay at least 1).
const MAX_SCALE: u64 = 1 << 16;
/// The largest `--batch` and `--length` of `lamina bench MODEL`.
const MAX_BATCH: u64 = 1 << 20;

/// Run Keras-style models saved by Lamina, Lambda layers included.
#[derive(Parser)]
#[command(name = "lamina", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the backends found, the one `auto` would choose, and the limits that matter.
    Info,
    /// Print the Keras-style summary of a saved model.
    Summary {
        /// The model file (written by `Model::save`, or a Keras `.keras` or legacy `.h5` file
        /// without Lambda or custom layers).
        model: PathBuf,
    },
    /// Convert a Keras 3 `.keras` file (or a whole model in the legacy `.h5` format) into a
    /// Lamina model file. A model with Lambda or custom layers cannot be converted here: their
    /// bodies are Python code, which Lamina never runs; bind them from Rust with
    /// `Model::load_keras(path, &bindings)` and `save`.
    Import {
        /// The `.keras` or legacy `.h5` file.
        model: PathBuf,
        /// The Lamina model file to write.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Run a saved model on NumPy inputs and write its outputs as NumPy files.
    Run {
        /// The model file.
        model: PathBuf,
        /// An input `.npy` file, once per model input, in order.
        #[arg(long = "input", required = true)]
        inputs: Vec<PathBuf>,
        /// An output `.npy` file, once per model output, in order.
        #[arg(long = "output", required = true)]
        outputs: Vec<PathBuf>,
        /// Which backend runs the model (default: `LAMINA_BACKEND`, else auto).
        #[arg(long, value_parser = ["cpu", "gpu", "auto"])]
        backend: Option<String>,
        /// Store float32 tensors as f16 on the GPU, computing in f32 (gpu backend only; the
        /// adapter must offer SHADER_F16). The same as LAMINA_GPU_F16=1.
        #[arg(long)]
        f16: bool,
    },
    /// Score a Parquet table with a model through DataFusion (on this machine, or a Ballista
    /// cluster with --scheduler) and write the predictions beside the other columns, as a
    /// Parquet file written atomically. Needs a lamina built with `--features datafusion`.
    Score(ScoreArgs),
    /// Run the benchmark workloads of BENCH.md and print their medians.
    Bench {
        /// A model file to time instead of the workloads (`.lamina`, `.keras` or legacy
        /// `.h5`), on random inputs of its input shapes.
        model: Option<PathBuf>,
        /// With a model: the batch size of its inputs.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_BATCH))]
        batch: u64,
        /// With a model: the length of every other axis whose size is known only at run time
        /// (a sequence length, an image side).
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=MAX_BATCH))]
        length: u64,
        /// Which backends to measure.
        #[arg(long, default_value = "all", value_parser = ["cpu", "gpu", "all"])]
        backend: String,
        /// A workload to run (repeatable; default all): copy, chain, antirectifier, softmax,
        /// matmul, mlp, mlp_b1, text_classifier, cnn, transformer, lstm, mobilenet_v2,
        /// mobilenet_v2_b1, resnet50, resnet50_b1, efficientnet_b0, efficientnet_b0_b1.
        #[arg(long = "workload")]
        workloads: Vec<String>,
        /// One JSON object per workload and backend instead of a table.
        #[arg(long)]
        json: bool,
        /// Timed runs per workload (after a compiling run and a warm-up), 1 to 10000.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=MAX_RUNS))]
        runs: u64,
        /// Divide the sizes by this factor, for a quick run (1 to 65536).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_SCALE))]
        scale: u64,
        /// Also time each GPU kernel with timestamp queries and list them: kind, the op and
        /// shape it writes, median microseconds and share of the total (where the adapter has
        /// no timestamp queries, a line says so).
        #[arg(long)]
        kernels: bool,
        /// Store float32 tensors as f16 on the GPU, computing in f32 (gpu backend only; the
        /// adapter must offer SHADER_F16). The same as LAMINA_GPU_F16=1.
        #[arg(long)]
        f16: bool,
    },
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Info => {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            print_gpu_info();
            println!("cpu threads available: {threads}");
            println!("largest tensor: {} elements", lamina::host::MAX_ELEMENTS);
            println!("largest rank: {} axes", lamina::limits::MAX_RANK);
            println!(
                "model files: headers up to {} bytes, graphs up to {} nodes after replay",
                lamina::limits::MAX_METADATA_BYTES,
                lamina::limits::MAX_LOADED_NODES
            );
            Ok(())
        }
        Command::Summary { model } => {
            let m = load_model(&model)?;
            print!("{}", m.summary_string().map_err(|e| e.to_string())?);
            Ok(())
        }
        Command::Run {
            model,
            inputs,
            outputs,
            backend,
            f16,
        } => {
            let kind = match backend {
                Some(b) => b.parse(),
                None => BackendKind::from_env(),
            }
            .map_err(|e: lamina::Error| e.to_string())?;
            // f16 storage is a GPU option: never fall back to the CPU silently.
            let kind = match (f16, kind) {
                (true, BackendKind::Cpu) => return Err("--f16 needs the gpu backend".into()),
                (true, _) => BackendKind::Gpu,
                (false, k) => k,
            };
            let m = load_model(&model)?;
            let want_in = m.program().inputs.len();
            if inputs.len() != want_in {
                return Err(format!(
                    "the model takes {want_in} input(s) ({}), {} --input given",
                    m.program().input_signature(),
                    inputs.len()
                ));
            }
            let want_out = m.program().outputs.len();
            if outputs.len() != want_out {
                return Err(format!(
                    "the model has {want_out} output(s), {} --output given",
                    outputs.len()
                ));
            }
            let hosts = inputs
                .iter()
                .map(HostTensor::read_npy)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            let session = Session::new(m.program().clone(), kind).map_err(|e| e.to_string())?;
            let results = session.run(&hosts).map_err(|e| e.to_string())?;
            for (path, t) in outputs.iter().zip(&results) {
                t.write_npy(path).map_err(|e| e.to_string())?;
            }
            eprintln!("ran on {}", session.backend_name());
            Ok(())
        }
        Command::Import { model, output } => {
            let m = load_model(&model)?;
            m.save(&output).map_err(|e| e.to_string())?;
            eprintln!(
                "wrote {} ({} layers, {} parameters)",
                output.display(),
                m.layers().len(),
                m.count_params()
            );
            Ok(())
        }
        Command::Score(args) => score(args),
        Command::Bench {
            model,
            batch,
            length,
            backend,
            workloads,
            json,
            runs,
            scale,
            kernels,
            f16,
        } => bench(
            model.map(|m| (m, batch as usize, length as usize)),
            &backend,
            &workloads,
            json,
            runs as usize,
            scale as usize,
            kernels,
            f16,
        ),
    }
}

/// The GPU adapters found and what `auto` chooses, with the limits that matter.
#[cfg(feature = "gpu")]
fn print_gpu_info() {
    let adapters = lamina::list_adapters();
    if adapters.is_empty() {
        println!("GPU adapters: none found");
    } else {
        println!("GPU adapters:");
        for a in &adapters {
            println!("  {a}");
        }
    }
    match lamina::shared_gpu() {
        Ok(g) => {
            let l = g.context().limits;
            println!("auto chooses: gpu: {}", g.context().adapter);
            println!("  storage buffers per kernel: {}", l.max_storage_buffers);
            println!("  largest storage binding: {} bytes", l.max_binding_bytes);
            println!("  largest buffer: {} bytes", l.max_buffer_bytes);
            println!(
                "  workgroups per grid dimension: {}",
                l.max_workgroups_per_dim
            );
            println!(
                "  timestamp queries (per-kernel times): {}",
                match g.context().timestamp_period_ns() {
                    Some(p) => format!("yes, {p} ns per tick"),
                    None => "no".into(),
                }
            );
            let c = g.context();
            println!(
                "  f16 storage (SHADER_F16, --f16): {}",
                match (c.adapter_offers_f16(), c.f16_storage()) {
                    (true, true) => "yes, on",
                    (true, false) => "yes",
                    _ => "no",
                }
            );
        }
        Err(e) => println!("auto chooses: cpu interpreter ({e})"),
    }
}

/// Without the GPU backend, `auto` is the CPU interpreter.
#[cfg(not(feature = "gpu"))]
fn print_gpu_info() {
    println!("GPU adapters: none (this lamina was built without the `gpu` feature)");
    println!("auto chooses: cpu interpreter");
}

/// Whether a GPU adapter opens, or why not.
fn gpu_available() -> Result<(), String> {
    #[cfg(feature = "gpu")]
    return lamina::shared_gpu().map(|_| ()).map_err(|e| e.to_string());
    #[cfg(not(feature = "gpu"))]
    Err("this lamina was built without the `gpu` feature".into())
}

/// Loads a Lamina model file, a Keras 3 `.keras` file or a legacy `.h5` file (by contents)
/// whose layers need no Rust bindings.
fn load_model(path: &std::path::Path) -> Result<Model, String> {
    Model::open(path).map_err(|e| {
        let text = e.to_string();
        if text.contains("layer(s) need a Rust body") {
            format!(
                "{text}. The lamina command cannot bind Rust code: in a Rust program, load it \
                 with Model::load_keras(path, &bindings) and save it with model.save(...), \
                 which records the bodies as data"
            )
        } else {
            text
        }
    })
}

/// The arguments of `lamina score`.
#[derive(clap::Args)]
#[cfg_attr(not(feature = "datafusion"), allow(dead_code))]
struct ScoreArgs {
    /// The model file (`.lamina`, `.keras` or legacy `.h5`).
    model: PathBuf,
    /// A Parquet file or a folder of Parquet files.
    #[arg(long)]
    input: PathBuf,
    /// A feature column (repeatable): one list column per model input, or one number
    /// column per feature of a flat input.
    #[arg(long = "column", default_value = "features")]
    columns: Vec<String>,
    /// The Parquet file to write.
    #[arg(short, long)]
    output: PathBuf,
    /// A query over the table `input` calling the model as `score(...)`, in place of
    /// `SELECT <other columns>, score(<columns>) AS prediction FROM input`.
    #[arg(long)]
    sql: Option<String>,
    /// A Ballista scheduler (`host:port`) to run the query on; every executor must read
    /// the input at the same path.
    #[arg(long)]
    scheduler: Option<String>,
    /// Rows per batch, and so per predict call (default 8192).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    batch_size: Option<u64>,
    /// Which backend runs the model on this machine (default: `LAMINA_BACKEND`, else auto).
    #[arg(long, value_parser = ["cpu", "gpu", "auto"])]
    backend: Option<String>,
}

#[cfg(feature = "datafusion")]
fn score(args: ScoreArgs) -> Result<(), String> {
    let mut options =
        lamina_datafusion::score::ScoreOptions::new(args.model, args.input, args.output);
    options.columns = args.columns;
    options.sql = args.sql;
    options.scheduler = args.scheduler;
    options.batch_size = args.batch_size.map(|b| b as usize);
    options.backend = args
        .backend
        .map(|b| b.parse::<lamina::BackendKind>())
        .transpose()
        .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let report = runtime
        .block_on(lamina_datafusion::score::score(&options))
        .map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} rows to {} in {:.2} s ({:.0} rows/s)",
        report.rows,
        options.output.display(),
        report.seconds,
        report.rows as f64 / report.seconds.max(1e-9)
    );
    Ok(())
}

#[cfg(not(feature = "datafusion"))]
fn score(_args: ScoreArgs) -> Result<(), String> {
    Err(
        "this lamina was built without DataFusion: build it with `--features datafusion` \
         (cargo install --path . --features datafusion, or cargo run --release --features \
         datafusion -- score ...)"
            .into(),
    )
}

/// A private runtime folder made for this process, removed (with anything in it) when dropped.
struct PrivateRuntimeDir(PathBuf);

impl Drop for PrivateRuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Mesa's Vulkan drivers print a warning on every start when `XDG_RUNTIME_DIR` is unset (as on
/// headless CI machines); give them a private folder so that failures stay one line. The
/// folder lives as long as the returned guard (`main` holds it until it returns).
fn quiet_vulkan_loader() -> Option<PrivateRuntimeDir> {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("lamina-runtime-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let guard = PrivateRuntimeDir(dir);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&guard.0, std::fs::Permissions::from_mode(0o700));
    }
    // SAFETY: called first thing in `main`, before any other thread exists.
    unsafe { std::env::set_var("XDG_RUNTIME_DIR", &guard.0) };
    Some(guard)
}

#[allow(clippy::too_many_arguments)]
fn bench(
    model: Option<(PathBuf, usize, usize)>,
    backend: &str,
    workloads: &[String],
    json: bool,
    runs: usize,
    scale: usize,
    kernels: bool,
    f16: bool,
) -> Result<(), String> {
    use lamina::bench::{WORKLOADS, measure, measure_kernels, model_workload, workload};
    // Every argument is checked before anything is probed or printed, so that a bad invocation
    // fails with its one line and nothing else.
    if let Some(bad) = workloads.iter().find(|w| !WORKLOADS.contains(&w.as_str())) {
        return Err(format!(
            "workload '{bad}' not found (known: {})",
            WORKLOADS.join(", ")
        ));
    }
    if f16 && backend == "cpu" {
        return Err("--f16 needs the gpu backend".into());
    }
    if model.is_some() && !workloads.is_empty() {
        return Err("give a model file or --workload, not both".into());
    }
    // A user's model: loaded (and its inputs made) before anything is probed.
    let user = match &model {
        Some((path, batch, length)) => {
            let m = load_model(path)?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into());
            let name = lamina::limits::printable(&name).into_owned();
            Some(model_workload(&name, m, *batch, *length).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let kinds: Vec<BackendKind> = match backend {
        "cpu" => vec![BackendKind::Cpu],
        "gpu" => vec![BackendKind::Gpu],
        _ => {
            let mut k = vec![BackendKind::Cpu];
            match gpu_available() {
                Ok(()) => k.push(BackendKind::Gpu),
                // Asked for f16 storage: say why the GPU cannot give it.
                Err(e) if f16 => return Err(e),
                Err(_) => eprintln!("lamina bench: no GPU adapter; measuring the cpu only"),
            }
            k
        }
    };
    let names: Vec<String> = match (&user, workloads.is_empty()) {
        (Some(w), _) => vec![w.name.clone()],
        (None, true) => WORKLOADS.iter().map(|s| s.to_string()).collect(),
        (None, false) => workloads.to_vec(),
    };
    let mut user = user;
    let mut results = Vec::new();
    for name in &names {
        let w = match user.take() {
            Some(w) => w,
            None => workload(name, scale).map_err(|e| e.to_string())?,
        };
        for &kind in &kinds {
            eprintln!("lamina bench: {name} on {kind} ...");
            let mut m = measure(&w, kind, runs).map_err(|e| format!("{name} on {kind}: {e}"))?;
            if kernels {
                let k = measure_kernels(&w, kind, runs)
                    .map_err(|e| format!("{name} on {kind}, timing kernels: {e}"))?;
                m.kernels = Some(k);
            }
            if json {
                println!("{}", m.to_json());
            }
            results.push(m);
        }
    }
    if json {
        return Ok(());
    }
    println!(
        "{:<14} {:<4} {:>12} {:>16} {:>14} {:>11} {:>10} {:>9}",
        "workload", "on", "median", "figure", "end-to-end", "compile", "dispatch", "compiles"
    );
    for m in &results {
        let fig = m
            .figure
            .map(|(v, u)| format!("{v:.2} {u}"))
            .unwrap_or_default();
        let e2e = m
            .end_to_end_s
            .map(|e| format!("{:.6} s", e))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<14} {:<4} {:>10.6} s {:>16} {:>14} {:>9.3} s {:>10.1} {:>9.1}",
            m.workload,
            m.backend,
            m.median_s,
            fig,
            e2e,
            m.compile_s,
            m.dispatches_per_run,
            m.compiles_per_run
        );
    }
    for b in ["cpu", "gpu"] {
        let find = |w: &str| {
            results
                .iter()
                .find(|m| m.backend == b && m.workload == w)
                .and_then(|m| m.figure)
        };
        if let (Some((chain, _)), Some((copy, _))) = (find("chain"), find("copy")) {
            println!(
                "{b}: chain runs at {:.0}% of the copy ceiling ({chain:.2} of {copy:.2} GB/s)",
                100.0 * chain / copy
            );
        }
    }
    for m in &results {
        print!("{}", m.kernel_table());
    }
    if let Some(m) = results.first() {
        println!("device: {}", m.device);
    }
    Ok(())
}

fn main() -> ExitCode {
    let _runtime_dir = quiet_vulkan_loader();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            print!("{e}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("lamina: {}", printable(first.trim_start_matches("error: ")));
            return ExitCode::from(2);
        }
    };
    if let Command::Run { f16: true, .. } | Command::Bench { f16: true, .. } = cli.command {
        // The shared GPU backend reads its options from the environment when first opened.
        // SAFETY: no other thread exists yet (parsing the arguments starts none).
        unsafe { std::env::set_var("LAMINA_GPU_F16", "1") };
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Names and paths come from files and users: escape what a terminal would act on.
            eprintln!("lamina: error: {}", printable(&e.replace('\n', " ")));
            ExitCode::FAILURE
        }
    }
}
