//! The GPU device: adapter discovery, device creation with the adapter's real limits, and
//! turning device errors into `Err`.

use lamina_graph::{Error, Result};
use std::sync::{Arc, Mutex};

/// What Lamina needs to know about an adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// The adapter's name, such as `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// The graphics API: Vulkan, Metal, Dx12, Gl.
    pub api: String,
    /// Integrated, discrete, virtual, CPU (software).
    pub device_type: String,
}

impl AdapterSummary {
    fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        AdapterSummary {
            name: info.name,
            api: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
        }
    }
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {})", self.name, self.api, self.device_type)
    }
}

/// Limits that shape how programs are compiled, read from the device (and optionally lowered,
/// for tests).
#[derive(Clone, Copy, Debug)]
pub struct DeviceLimits {
    /// Storage buffers one kernel may bind.
    pub max_storage_buffers: u32,
    /// The largest storage buffer binding, in bytes.
    pub max_binding_bytes: u64,
    /// The largest buffer, in bytes.
    pub max_buffer_bytes: u64,
    /// Workgroups per grid dimension.
    pub max_workgroups_per_dim: u32,
}

/// Options of the GPU backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct GpuOptions {
    /// Lowers the storage binding size limit below the device's (for tests of large tensors).
    pub max_binding_bytes: Option<u64>,
    /// Lowers the storage buffers per kernel below the device's.
    pub max_storage_buffers: Option<u32>,
    /// Leaves timestamp queries off even where the adapter offers them (for tests of the path
    /// without per-kernel times).
    pub no_timestamps: bool,
    /// Stores float32 tensors (inputs, weights, intermediates, outputs) as f16 on the device,
    /// computing in f32; needs the adapter feature `SHADER_F16`, an error at creation without it.
    pub f16_storage: bool,
    /// Plans and builds kernels as for a GPU even on a CPU-hosted adapter (workgroup-wide
    /// reductions, the tiled matmul, fused matmul operands): for testing those kernels on
    /// lavapipe.
    pub gpu_shaped_kernels: bool,
}

/// The environment variable that turns on f16 storage (`1`) for backends opened with
/// [`GpuOptions::from_env`], such as the shared one that sessions use.
const GPU_F16_ENV: &str = "LAMINA_GPU_F16";

impl GpuOptions {
    /// The default options, with `f16_storage` set when `LAMINA_GPU_F16` is `1` (or `true`).
    pub fn from_env() -> GpuOptions {
        let on = std::env::var(GPU_F16_ENV)
            .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
            .unwrap_or(false);
        GpuOptions {
            f16_storage: on,
            ..GpuOptions::default()
        }
    }
}

/// A device and its queue, shared by every executable of a backend.
pub struct GpuContext {
    /// The wgpu device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// The adapter it runs on.
    pub adapter: AdapterSummary,
    /// The limits compilation respects.
    pub limits: DeviceLimits,
    /// Nanoseconds per timestamp tick, where the device has timestamp queries.
    timestamp_period_ns: Option<f64>,
    /// Whether float32 tensors are stored as f16.
    f16_storage: bool,
    /// Whether kernels are shaped for a GPU whatever the adapter.
    gpu_shaped_kernels: bool,
    /// Whether the adapter offers `SHADER_F16`.
    offers_f16: bool,
    errors: Arc<Mutex<Vec<String>>>,
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Every adapter wgpu finds on this machine.
pub fn list_adapters() -> Vec<AdapterSummary> {
    let inst = instance();
    pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()))
        .iter()
        .map(AdapterSummary::of)
        .collect()
}

impl GpuContext {
    /// Opens the best adapter (high performance preferred; software adapters accepted) with its
    /// real limits; an error if there is none.
    pub fn new(options: GpuOptions) -> Result<GpuContext> {
        let inst = instance();
        let adapter = pollster::block_on(inst.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            apply_limit_buckets: false,
        }))
        .map_err(|e| Error::Backend {
            backend: "gpu".into(),
            detail: format!("no GPU adapter found ({e}); install a Vulkan driver such as Mesa's lavapipe, or use the cpu backend"),
        })?;
        let summary = AdapterSummary::of(&adapter);
        let limits = adapter.limits();
        let offers_f16 = adapter.features().contains(wgpu::Features::SHADER_F16);
        if options.f16_storage && !offers_f16 {
            return Err(Error::Backend {
                backend: "gpu".into(),
                detail: format!(
                    "f16 storage needs the adapter feature SHADER_F16 (WebGPU's shader-f16), which {summary} does not offer; run without f16 storage ({GPU_F16_ENV}, --f16)"
                ),
            });
        }
        // Timestamps written by compute passes time each kernel (`profile_kernels`); they
        // need no other feature, and cost nothing when no pass writes them.
        let mut features = if options.no_timestamps {
            wgpu::Features::empty()
        } else {
            adapter.features() & wgpu::Features::TIMESTAMP_QUERY
        };
        if options.f16_storage {
            features |= wgpu::Features::SHADER_F16;
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("lamina"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::Backend {
            backend: "gpu".into(),
            detail: format!("cannot open a device on {summary}: {e}"),
        })?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(e.to_string());
        }));
        let lost = errors.clone();
        device.set_device_lost_callback(move |reason, msg| {
            lost.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("device lost ({reason:?}): {msg}"));
        });
        let mut dl = DeviceLimits {
            max_storage_buffers: limits.max_storage_buffers_per_shader_stage,
            max_binding_bytes: limits.max_storage_buffer_binding_size as u64,
            max_buffer_bytes: limits.max_buffer_size,
            max_workgroups_per_dim: limits.max_compute_workgroups_per_dimension,
        };
        if let Some(b) = options.max_binding_bytes {
            dl.max_binding_bytes = dl.max_binding_bytes.min(b);
        }
        if let Some(n) = options.max_storage_buffers {
            dl.max_storage_buffers = dl.max_storage_buffers.min(n.max(3));
        }
        let timestamp_period_ns = device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
            .then(|| queue.get_timestamp_period() as f64);
        Ok(GpuContext {
            device,
            queue,
            adapter: summary,
            limits: dl,
            timestamp_period_ns,
            f16_storage: options.f16_storage,
            gpu_shaped_kernels: options.gpu_shaped_kernels,
            offers_f16,
            errors,
        })
    }

    /// Whether the adapter runs on the CPU (lavapipe, WARP, SwiftShader).
    pub fn adapter_is_cpu(&self) -> bool {
        self.adapter.device_type == "Cpu"
    }

    /// Whether kernels are shaped for a GPU: the adapter is not CPU-hosted, or
    /// `GpuOptions::gpu_shaped_kernels` asks for it.
    pub fn gpu_shaped_kernels(&self) -> bool {
        self.gpu_shaped_kernels || !self.adapter_is_cpu()
    }

    /// Whether the device can time kernels: the adapter offers timestamp queries (wgpu's
    /// `TIMESTAMP_QUERY`) and they were enabled.
    pub fn supports_timestamps(&self) -> bool {
        self.timestamp_period_ns.is_some()
    }

    /// Whether float32 tensors are stored on the device as f16 (`GpuOptions::f16_storage`).
    pub fn f16_storage(&self) -> bool {
        self.f16_storage
    }

    /// Whether the adapter offers `SHADER_F16`, which f16 storage needs.
    pub fn adapter_offers_f16(&self) -> bool {
        self.offers_f16
    }

    /// Nanoseconds per tick of a timestamp query, or `None` where the device has none.
    pub fn timestamp_period_ns(&self) -> Option<f64> {
        self.timestamp_period_ns
    }

    /// Takes the device errors reported since the last call, as one `Err` if there were any.
    pub fn take_errors(&self) -> Result<()> {
        let mut errs = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errs.is_empty() {
            return Ok(());
        }
        let msg =
            lamina_graph::limits::bounded_text(&lamina_graph::limits::bounded_list(&errs, "; "))
                .into_owned();
        errs.clear();
        Err(Error::Backend {
            backend: "gpu".into(),
            detail: format!("device error: {msg}"),
        })
    }

    /// Runs `f` inside a validation and out-of-memory error scope and returns its error, if
    /// any, as an `Err`.
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(o) {
            return Err(Error::Backend {
                backend: "gpu".into(),
                detail: format!("{what}: {e}"),
            });
        }
        Ok(out)
    }
}
