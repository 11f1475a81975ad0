//! A Ballista cluster on loopback: a scheduler and two executors started as child processes
//! (the crate's own binaries), the model carried to them inside the query plan.

mod common;

use common::*;
use datafusion::arrow::array::Int64Array;
use datafusion::prelude::*;
use lamina_datafusion::cluster::remote_context;
use lamina_datafusion::model_udf;
use lamina_datafusion::score::{ScoreOptions, score};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills its child processes when dropped, so a failed test leaves none behind.
struct Cluster {
    scheduler: Child,
    executors: Vec<Child>,
    address: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self
            .executors
            .iter_mut()
            .chain(std::iter::once(&mut self.scheduler))
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_cluster(executors: usize, work: &std::path::Path) -> Cluster {
    let mut scheduler = Command::new(env!("CARGO_BIN_EXE_lamina-scheduler"))
        .args(["--bind", "127.0.0.1:0", "--executor-timeout", "10"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(scheduler.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .rsplit(' ')
        .next()
        .expect("the scheduler prints its address")
        .to_string();
    let mut cluster = Cluster {
        scheduler,
        executors: vec![],
        address: address.clone(),
    };
    for k in 0..executors {
        let dir = work.join(format!("executor{k}"));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_lamina-executor"))
            .args(["--scheduler", &address, "--host", "127.0.0.1"])
            .args(["--port", &free_port().to_string()])
            .args(["--grpc-port", &free_port().to_string()])
            .args(["--concurrent-tasks", "1"])
            .args(["--work-dir", dir.to_str().unwrap()])
            .env("LAMINA_BACKEND", "cpu")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        cluster.executors.push(child);
    }
    cluster
}

/// A context on the cluster, once the executors have registered (a trivial query succeeds).
async fn connect(cluster: &Cluster) -> SessionContext {
    let start = Instant::now();
    loop {
        let ctx = remote_context(&cluster.address, SessionConfig::new())
            .await
            .unwrap();
        let ok = match ctx.sql("SELECT 1").await {
            Ok(df) => df.collect().await.is_ok(),
            Err(_) => false,
        };
        if ok {
            // Give the second executor time to register too.
            tokio::time::sleep(Duration::from_secs(2)).await;
            return ctx;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the cluster did not come up"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A folder of Parquet files holding `rows` rows of 8 features, and the features.
fn table(dir: &std::path::Path, files: usize, rows: usize) -> Vec<f32> {
    std::fs::create_dir_all(dir).unwrap();
    let data = values(rows * 8, 7);
    let per = rows / files;
    for f in 0..files {
        let lo = f * per;
        let hi = if f + 1 == files { rows } else { lo + per };
        let ids = std::sync::Arc::new(Int64Array::from((lo as i64..hi as i64).collect::<Vec<_>>()));
        write_parquet(
            &dir.join(format!("part{f}.parquet")),
            vec![
                ("id", ids as _),
                ("features", fixed_list(&data[lo * 8..hi * 8], 8)),
            ],
            4096,
        );
    }
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_on_two_executors_equals_the_local_result_and_survives_losing_one() {
    let work = temp_dir("cluster");
    let rows = 40_000;
    let data = table(&work.join("data"), 8, rows);
    let model = mlp();
    let want = predict_rows(&model, &data, 8);
    let want = want[0].as_f32().unwrap();
    let mut cluster = start_cluster(2, &work);
    let ctx = connect(&cluster).await;

    // SQL through the cluster: the executors rebuild the model from the plan.
    ctx.register_udf(model_udf("score", &model).unwrap());
    ctx.register_parquet(
        "data",
        work.join("data").to_str().unwrap(),
        ParquetReadOptions::default(),
    )
    .await
    .unwrap();
    let batches = ctx
        .sql("SELECT id, score(features) AS p FROM data")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_rows_match(&rows_by_id(&batches, "p"), want, 3, rows);

    // `score` against the cluster, with one executor killed while it runs: Ballista reruns
    // the lost tasks on the other, or the run fails with an error; either way no partial
    // output file is left.
    let model_file = work.join("mlp.lamina");
    model.save(&model_file).unwrap();
    let out = work.join("scored.parquet");
    let mut options = ScoreOptions::new(&model_file, work.join("data"), &out);
    options.scheduler = Some(cluster.address.clone());
    options.batch_size = Some(1024);
    options.progress = Some(false);
    let run = tokio::spawn(async move { score(&options).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut victim = cluster.executors.remove(0);
    victim.kill().unwrap();
    victim.wait().unwrap();
    let result = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the query ends")
        .unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("scored.parquet.tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    match result {
        Ok(report) => {
            eprintln!(
                "the run survived the lost executor in {:.1} s",
                report.seconds
            );
            assert_eq!(report.rows, rows as u64);
            assert_rows_match(
                &rows_by_id(&read_parquet(&out), "prediction"),
                want,
                3,
                rows,
            );
        }
        Err(e) => {
            let text = e.to_string();
            eprintln!("the run failed after the executor was lost: {text}");
            assert!(!text.is_empty());
            assert!(!out.exists(), "a failed run leaves no output: {text}");
        }
    }
}
