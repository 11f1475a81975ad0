//! A Ballista scheduler for queries that call Lamina model functions.

use clap::Parser;
use lamina_datafusion::cluster::{SchedulerOptions, bind_scheduler};

/// Runs a Ballista scheduler whose query plans may carry Lamina models.
#[derive(Parser)]
#[command(name = "lamina-scheduler", version)]
struct Args {
    /// The address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:50050")]
    bind: std::net::SocketAddr,
    /// Seconds without a heartbeat after which an executor is lost and its tasks rerun.
    #[arg(long, default_value_t = 20)]
    executor_timeout: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let options = SchedulerOptions {
        bind: args.bind,
        executor_timeout_seconds: args.executor_timeout,
        ..Default::default()
    };
    let result = async {
        let (addr, serve) = bind_scheduler(&options).await?;
        println!("lamina-scheduler listening on {addr}");
        serve.await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lamina-scheduler: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
