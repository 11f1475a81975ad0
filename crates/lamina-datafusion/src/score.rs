//! Scoring a Parquet table with a model, on one machine or a Ballista cluster: what
//! `lamina score` runs.

use crate::cluster::remote_context;
use crate::udf::ModelUdf;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::ScalarUDF;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use lamina_backend::BackendKind;
use lamina_graph::saving::AtomicFile;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The table name queries read the input as.
pub const INPUT_TABLE: &str = "input";

/// What to score and where to write it.
#[derive(Clone, Debug)]
pub struct ScoreOptions {
    /// The model file (`.lamina`, `.keras` or legacy `.h5`).
    pub model: PathBuf,
    /// A Parquet file, or a folder of Parquet files.
    pub input: PathBuf,
    /// The feature columns: one list column per model input, or one number column per feature
    /// of a flat input.
    pub columns: Vec<String>,
    /// The Parquet file to write.
    pub output: PathBuf,
    /// A query over the table `input` that calls the model as `score(...)`, in place of
    /// `SELECT <other columns>, score(<columns>) AS prediction FROM input`.
    pub sql: Option<String>,
    /// The function's name in queries.
    pub function: String,
    /// A Ballista scheduler (`host:port`) to run the query on, instead of this machine.
    pub scheduler: Option<String>,
    /// Rows per Arrow batch, and so per `predict` call (DataFusion's default when `None`).
    pub batch_size: Option<usize>,
    /// Print progress on standard error (by default only when it is a terminal).
    pub progress: Option<bool>,
    /// The backend on this machine (`LAMINA_BACKEND` when `None`); executors use their own.
    pub backend: Option<BackendKind>,
}

impl ScoreOptions {
    /// Options with the defaults: function `score`, the column `features`.
    pub fn new(
        model: impl Into<PathBuf>,
        input: impl Into<PathBuf>,
        output: impl Into<PathBuf>,
    ) -> Self {
        ScoreOptions {
            model: model.into(),
            input: input.into(),
            columns: vec!["features".into()],
            output: output.into(),
            sql: None,
            function: "score".into(),
            scheduler: None,
            batch_size: None,
            progress: None,
            backend: None,
        }
    }
}

/// What a scoring run did.
#[derive(Clone, Debug)]
pub struct ScoreReport {
    /// Rows written.
    pub rows: u64,
    /// Seconds from planning to the output's rename.
    pub seconds: f64,
    /// The query that ran.
    pub sql: String,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Rows and row groups in the input's Parquet files, from their footers (for progress).
fn input_size(path: &Path) -> (u64, usize) {
    let files: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        vec![path.to_path_buf()]
    };
    let mut rows = 0u64;
    let mut groups = 0usize;
    for f in files {
        if let Ok(reader) = std::fs::File::open(&f)
            .map_err(|_| ())
            .and_then(|file| SerializedFileReader::new(file).map_err(|_| ()))
        {
            let meta = reader.metadata();
            rows += meta.file_metadata().num_rows().max(0) as u64;
            groups += meta.num_row_groups();
        }
    }
    (rows, groups)
}

/// The default query: every input column but the features, then the prediction.
fn default_sql(schema: &SchemaRef, options: &ScoreOptions) -> Result<String> {
    for c in &options.columns {
        if schema.field_with_name(c).is_err() {
            return Err(DataFusionError::Plan(format!(
                "score: the input has no column `{c}` (its columns: {})",
                schema
                    .fields()
                    .iter()
                    .map(|f| format!("`{}` {}", f.name(), f.data_type()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let mut select: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.name())
        .filter(|n| !options.columns.contains(n))
        .map(|n| quote(n))
        .collect();
    let args: Vec<String> = options.columns.iter().map(|c| quote(c)).collect();
    select.push(format!(
        "{}({}) AS prediction",
        options.function,
        args.join(", ")
    ));
    Ok(format!("SELECT {} FROM {INPUT_TABLE}", select.join(", ")))
}

/// Scores the input with the model and writes the result to `options.output` atomically: a
/// failed or interrupted run leaves no partial file (and any earlier file intact).
pub async fn score(options: &ScoreOptions) -> Result<ScoreReport> {
    let start = Instant::now();
    let mut udf = ModelUdf::from_file(&options.function, &options.model)
        .map_err(|e| DataFusionError::Plan(format!("{}: {e}", options.model.display())))?;
    if let Some(kind) = options.backend {
        udf = udf.on_backend(kind);
    }
    let udf = ScalarUDF::new_from_impl(udf);
    let mut config = SessionConfig::new();
    if let Some(b) = options.batch_size {
        config = config.with_batch_size(b.max(1));
    }
    let ctx = match &options.scheduler {
        Some(addr) => remote_context(addr, config).await?,
        None => SessionContext::new_with_config(config),
    };
    ctx.register_udf(udf);
    let input = options.input.to_string_lossy().into_owned();
    ctx.register_parquet(INPUT_TABLE, &input, ParquetReadOptions::default())
        .await?;
    let sql = match &options.sql {
        Some(q) => q.clone(),
        None => {
            let schema = ctx.table(INPUT_TABLE).await?.schema().inner().clone();
            default_sql(&schema, options)?
        }
    };
    let df = ctx.sql(&sql).await?;
    let schema: SchemaRef = df.schema().inner().clone();
    let mut stream = df.execute_stream().await?;

    let io = |e: std::io::Error| DataFusionError::External(Box::new(e));
    let lamina = |e: lamina_graph::Error| DataFusionError::External(Box::new(e));
    let mut out = AtomicFile::create(&options.output).map_err(lamina)?;
    let file = out.file().try_clone().map_err(io)?;
    let mut writer = ArrowWriter::try_new(file, schema, None)?;
    let show = options
        .progress
        .unwrap_or_else(|| std::io::stderr().is_terminal());
    let (total, groups) = if show {
        input_size(&options.input)
    } else {
        (0, 0)
    };
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        writer.write(&batch)?;
        if show {
            progress(rows, total, groups);
        }
    }
    writer.close()?;
    if show {
        eprintln!();
    }
    out.commit().map_err(lamina)?;
    Ok(ScoreReport {
        rows,
        seconds: start.elapsed().as_secs_f64(),
        sql,
    })
}

/// One line of progress: rows scored out of the input's, and the row groups that makes.
fn progress(rows: u64, total: u64, groups: usize) {
    const WIDTH: usize = 30;
    if total == 0 {
        eprint!("\rscored {rows} rows");
        return;
    }
    let part = (rows as f64 / total as f64).min(1.0);
    let filled = (part * WIDTH as f64).round() as usize;
    let done_groups = (part * groups as f64).floor() as usize;
    eprint!(
        "\r[{}{}] {rows}/{total} rows, {done_groups}/{groups} row groups",
        "#".repeat(filled),
        " ".repeat(WIDTH - filled)
    );
}
