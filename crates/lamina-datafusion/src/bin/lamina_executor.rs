//! A Ballista executor that runs Lamina model functions on its own device.

use clap::Parser;
use lamina_datafusion::cluster::{ExecutorOptions, run_executor};

/// Runs a Ballista executor that rebuilds Lamina models from query plans (on the backend its
/// `LAMINA_BACKEND` chooses: a GPU where there is one).
#[derive(Parser)]
#[command(name = "lamina-executor", version)]
struct Args {
    /// The scheduler, host:port.
    #[arg(long, default_value = "127.0.0.1:50050")]
    scheduler: String,
    /// The IP address this executor serves results on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The Arrow Flight port results are served on.
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// The executor's gRPC port.
    #[arg(long, default_value_t = 50052)]
    grpc_port: u16,
    /// Tasks run at once (default: the machine's cores).
    #[arg(long)]
    concurrent_tasks: Option<usize>,
    /// Where shuffle files go (default: a temporary folder).
    #[arg(long)]
    work_dir: Option<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut options = ExecutorOptions {
        scheduler: args.scheduler,
        host: args.host,
        port: args.port,
        grpc_port: args.grpc_port,
        work_dir: args.work_dir,
        ..Default::default()
    };
    if let Some(n) = args.concurrent_tasks {
        options.concurrent_tasks = n;
    }
    eprintln!(
        "lamina-executor: serving on {}:{}, scheduler {}",
        options.host, options.port, options.scheduler
    );
    match run_executor(&options).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lamina-executor: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
