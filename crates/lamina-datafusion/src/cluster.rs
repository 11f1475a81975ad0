//! Ballista clusters that run model functions: a client context, and the scheduler and
//! executor configurations that carry models in query plans.

use crate::codec::{LaminaLogicalCodec, LaminaPhysicalCodec};
use ballista::prelude::{SessionConfigExt, SessionContextExt};
use datafusion::error::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use std::sync::Arc;

/// A session config whose plans carry model functions (Ballista's settings, this crate's
/// codecs), starting from `config`.
pub fn ballista_config(config: SessionConfig) -> SessionConfig {
    config
        .with_ballista_logical_extension_codec(Arc::new(LaminaLogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(LaminaPhysicalCodec::default()))
}

/// A context whose queries run on the Ballista scheduler at `address` (`host:port` or
/// `df://host:port`); register model functions on it as on a local context.
pub async fn remote_context(address: &str, config: SessionConfig) -> Result<SessionContext> {
    let url = if address.contains("://") {
        address.to_string()
    } else {
        format!("df://{address}")
    };
    let config =
        ballista_config(SessionConfig::new_with_ballista().with_batch_size(config.batch_size()));
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .build();
    SessionContext::remote_with_state(&url, state).await
}

/// How a scheduler is started.
#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// The address to listen on, `host:port` (port 0 picks a free one).
    pub bind: std::net::SocketAddr,
    /// Seconds without a heartbeat after which an executor counts as lost and its tasks run
    /// elsewhere.
    pub executor_timeout_seconds: u64,
    /// How many times one task may fail before its query fails.
    pub task_max_failures: usize,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            bind: std::net::SocketAddr::from(([127, 0, 0, 1], 50050)),
            executor_timeout_seconds: 20,
            task_max_failures: 4,
        }
    }
}

/// Binds a Ballista scheduler whose plans may carry model functions; returns the address it
/// listens on and the future that serves it.
pub async fn bind_scheduler(
    options: &SchedulerOptions,
) -> Result<(
    std::net::SocketAddr,
    impl std::future::Future<Output = Result<()>> + use<>,
)> {
    use ballista_core::config::TaskSchedulingPolicy;
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;
    use ballista_scheduler::scheduler_process::{
        create_scheduler, start_grpc_service_with_listener,
    };
    use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

    let listener = tokio::net::TcpListener::bind(options.bind).await?;
    let addr = listener.local_addr()?;
    let config = SchedulerConfig {
        bind_host: addr.ip().to_string(),
        external_host: addr.ip().to_string(),
        bind_port: addr.port(),
        // Executors ask for work: one lost executor never holds tasks it was pushed.
        scheduling_policy: TaskSchedulingPolicy::PullStaged,
        executor_timeout_seconds: options.executor_timeout_seconds,
        expire_dead_executor_interval_seconds: 1,
        task_max_failures: options.task_max_failures,
        override_logical_codec: Some(Arc::new(LaminaLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(LaminaPhysicalCodec::default())),
        ..Default::default()
    };
    config.validate().map_err(ballista_error)?;
    let config = Arc::new(config);
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(ballista_error)?;
    let scheduler = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config)
        .await
        .map_err(ballista_error)?;
    let serve = async move {
        start_grpc_service_with_listener(listener, scheduler)
            .await
            .map_err(ballista_error)
    };
    Ok((addr, serve))
}

/// How an executor is started.
#[derive(Clone, Debug)]
pub struct ExecutorOptions {
    /// The scheduler, `host:port`.
    pub scheduler: String,
    /// The address other executors and clients fetch results from (an IP address).
    pub host: String,
    /// The Arrow Flight port results are served on.
    pub port: u16,
    /// The executor's gRPC port.
    pub grpc_port: u16,
    /// Tasks run at once (default: the machine's cores).
    pub concurrent_tasks: usize,
    /// Where shuffle files go (default: a temporary folder).
    pub work_dir: Option<String>,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        ExecutorOptions {
            scheduler: "127.0.0.1:50050".into(),
            host: "127.0.0.1".into(),
            port: 50051,
            grpc_port: 50052,
            concurrent_tasks: std::thread::available_parallelism().map_or(1, |n| n.get()),
            work_dir: None,
        }
    }
}

/// Runs a Ballista executor that rebuilds model functions from the plans it is given, on
/// the backend its own `LAMINA_BACKEND` chooses. Returns when the executor stops.
pub async fn run_executor(options: &ExecutorOptions) -> Result<()> {
    use ballista_core::config::TaskSchedulingPolicy;
    use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};

    let (host, port) = split_address(&options.scheduler)?;
    let config = ExecutorProcessConfig {
        bind_host: options.host.clone(),
        external_host: Some(options.host.clone()),
        port: options.port,
        grpc_port: options.grpc_port,
        scheduler_host: host,
        scheduler_port: port,
        scheduler_connect_timeout_seconds: 30,
        vcores: options.concurrent_tasks.max(1),
        task_scheduling_policy: TaskSchedulingPolicy::PullStaged,
        work_dir: options.work_dir.clone(),
        override_logical_codec: Some(Arc::new(LaminaLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(LaminaPhysicalCodec::default())),
        ..Default::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(ballista_error)
}

fn split_address(address: &str) -> Result<(String, u16)> {
    let bad = || {
        datafusion::error::DataFusionError::Configuration(format!("`{address}` is not host:port"))
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    Ok((host.to_string(), port.parse().map_err(|_| bad())?))
}

fn ballista_error(e: ballista_core::error::BallistaError) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::External(Box::new(e))
}
