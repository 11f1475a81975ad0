//! Rows per second of a model as a DataFusion function, against a plain loop over `predict` in
//! batches of the same size, on BENCH.md's `mlp` and `text_classifier` models (CPU backend).
//!
//! ```sh
//! cargo run --release -p lamina-datafusion --example score_bench -- [ROWS] [--cluster]
//! ```
//!
//! Each round times, interleaved: the plain loop over in-memory batches; SQL over the same
//! batches in memory; SQL over a Parquet file of them (and the file read alone, no model); with
//! `--cluster`, SQL on a scheduler and two executors started in this process on loopback.
//! Medians of 3 rounds.

use datafusion::arrow::array::{
    ArrayRef, FixedSizeListArray, Float32Array, Int32Array, RecordBatch,
};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::datasource::MemTable;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::*;
use lamina::prelude::*;
use lamina_datafusion::cluster::{ExecutorOptions, SchedulerOptions, bind_scheduler, run_executor};
use lamina_datafusion::model_udf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH: usize = 8192;
const ROUNDS: usize = 3;

/// One model and its table: the feature column and the host tensors of each batch.
struct Case {
    name: &'static str,
    model: Model,
    batches: Vec<RecordBatch>,
    hosts: Vec<HostTensor>,
}

fn case_mlp(rows: usize) -> Case {
    let model = lamina::bench::mlp_model().unwrap();
    let width = 784;
    let mut batches = vec![];
    let mut hosts = vec![];
    for (k, start) in (0..rows).step_by(BATCH).enumerate() {
        let n = BATCH.min(rows - start);
        let data = lamina::bench::seeded(n * width, k as u32 + 1);
        hosts.push(HostTensor::new(&[n, width], data.clone()).unwrap());
        let item = Arc::new(Field::new_list_field(DataType::Float32, true));
        let list = FixedSizeListArray::try_new(
            item,
            width as i32,
            Arc::new(Float32Array::from(data)),
            None,
        )
        .unwrap();
        batches.push(
            RecordBatch::try_from_iter(vec![("features", Arc::new(list) as ArrayRef)]).unwrap(),
        );
    }
    Case {
        name: "mlp",
        model,
        batches,
        hosts,
    }
}

fn case_text(rows: usize) -> Case {
    let model = lamina::bench::text_classifier_model().unwrap();
    let len = 128;
    let mut batches = vec![];
    let mut hosts = vec![];
    for start in (0..rows).step_by(BATCH) {
        let n = BATCH.min(rows - start);
        // Ids 1..19999, the last 28 steps padded with 0 (BENCH.md's text_classifier).
        let ids: Vec<i32> = (0..n * len)
            .map(|i| {
                let (r, t) = ((start + i / len) as u64, (i % len) as u64);
                if t >= 100 {
                    0
                } else {
                    1 + ((r * 7919 + t * 104729) % 19999) as i32
                }
            })
            .collect();
        hosts.push(HostTensor::new(&[n, len], ids.clone()).unwrap());
        let item = Arc::new(Field::new_list_field(DataType::Int32, true));
        let list =
            FixedSizeListArray::try_new(item, len as i32, Arc::new(Int32Array::from(ids)), None)
                .unwrap();
        batches.push(
            RecordBatch::try_from_iter(vec![("features", Arc::new(list) as ArrayRef)]).unwrap(),
        );
    }
    Case {
        name: "text_classifier",
        model,
        batches,
        hosts,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn count_rows(ctx: &SessionContext, sql: &str) -> usize {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    batches.iter().map(|b| b.num_rows()).sum()
}

async fn start_cluster() -> String {
    let options = SchedulerOptions {
        bind: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let (addr, serve) = bind_scheduler(&options).await.unwrap();
    tokio::spawn(serve);
    for _ in 0..2 {
        let port = |_: ()| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let options = ExecutorOptions {
            scheduler: addr.to_string(),
            port: port(()),
            grpc_port: port(()),
            concurrent_tasks: 1,
            ..Default::default()
        };
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let _ = rt.block_on(run_executor(&options));
        });
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    addr.to_string()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(65_536);
    let cluster = args.iter().any(|a| a == "--cluster");
    // SAFETY: set before any other thread starts.
    unsafe { std::env::set_var("LAMINA_BACKEND", "cpu") };
    let dir = std::env::temp_dir().join(format!("lamina-score-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let address = if cluster {
        Some(start_cluster().await)
    } else {
        None
    };
    println!(
        "rows {rows}, batches of {BATCH}, {} threads, medians of {ROUNDS} rounds (rows/s)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for case in [case_mlp(rows), case_text(rows)] {
        let path = dir.join(format!("{}.parquet", case.name));
        {
            let file = std::fs::File::create(&path).unwrap();
            let mut w = ArrowWriter::try_new(file, case.batches[0].schema(), None).unwrap();
            for b in &case.batches {
                w.write(b).unwrap();
            }
            w.close().unwrap();
        }
        let ctx = SessionContext::new();
        ctx.register_udf(model_udf("score", &case.model).unwrap());
        let table =
            MemTable::try_new(case.batches[0].schema(), vec![case.batches.clone()]).unwrap();
        ctx.register_table("mem", Arc::new(table)).unwrap();
        ctx.register_parquet("pq", path.to_str().unwrap(), ParquetReadOptions::default())
            .await
            .unwrap();
        let remote = match &address {
            Some(a) => {
                let c = lamina_datafusion::cluster::remote_context(a, SessionConfig::new())
                    .await
                    .unwrap();
                c.register_udf(model_udf("score", &case.model).unwrap());
                c.register_parquet("pq", path.to_str().unwrap(), ParquetReadOptions::default())
                    .await
                    .unwrap();
                Some(c)
            }
            None => None,
        };
        // Warm-up: compile every batch size once on each path.
        for h in &case.hosts {
            case.model.predict(h).unwrap();
        }
        count_rows(&ctx, "SELECT score(features) FROM mem").await;
        let (mut plain, mut mem, mut pq, mut cl) = (vec![], vec![], vec![], vec![]);
        let mut read = vec![];
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let mut n = 0;
            for h in &case.hosts {
                n += case.model.predict(h).unwrap()[0].shape()[0];
            }
            plain.push(n as f64 / t.elapsed().as_secs_f64());
            let t = Instant::now();
            let n = count_rows(&ctx, "SELECT score(features) FROM mem").await;
            mem.push(n as f64 / t.elapsed().as_secs_f64());
            let t = Instant::now();
            let n = count_rows(&ctx, "SELECT score(features) FROM pq").await;
            pq.push(n as f64 / t.elapsed().as_secs_f64());
            let t = Instant::now();
            let n = count_rows(&ctx, "SELECT features FROM pq").await;
            read.push(n as f64 / t.elapsed().as_secs_f64());
            if let Some(c) = &remote {
                let t = Instant::now();
                let n = count_rows(c, "SELECT score(features) FROM pq").await;
                cl.push(n as f64 / t.elapsed().as_secs_f64());
            }
        }
        let base = median(plain.clone());
        let line = |what: &str, v: &Vec<f64>| {
            if !v.is_empty() {
                let m = median(v.clone());
                println!(
                    "{:<16} {:<34} {:>12.0} rows/s  {:.2}x the loop",
                    case.name,
                    what,
                    m,
                    m / base
                );
            }
        };
        line("plain loop over predict", &plain);
        line("SQL, batches in memory", &mem);
        line("SQL, Parquet file", &pq);
        line("(reading the Parquet file alone)", &read);
        line("SQL, 2 executors on loopback", &cl);
    }
    std::fs::remove_dir_all(&dir).ok();
    std::process::exit(0);
}
