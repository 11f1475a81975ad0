//! The memory budget: before a compiled program runs, the peak of the buffers it will hold
//! (with buffer reuse) is checked against a limit, so that a graph too large for the machine
//! is a clear error naming its largest tensors instead of an aborted process.

use lamina_graph::{Error, Program, Result};

/// The environment variable that sets the default budget: bytes, or a number with a `K`, `M`,
/// `G` or `T` suffix (powers of 1024; `KiB`, `MB`... are read the same way).
pub const MEMORY_LIMIT_ENV: &str = "LAMINA_MEMORY_LIMIT";

/// The budget when neither the environment nor the machine says otherwise.
const FALLBACK_BYTES: u64 = 8 << 30;

/// How many bytes the buffers of one compiled program may hold at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBudget {
    bytes: u64,
}

impl MemoryBudget {
    /// A budget of `bytes`.
    pub fn bytes(bytes: u64) -> MemoryBudget {
        MemoryBudget { bytes }
    }

    /// No limit (the allocator still fails cleanly where it can).
    pub fn unlimited() -> MemoryBudget {
        MemoryBudget { bytes: u64::MAX }
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.bytes
    }

    /// The default budget: `LAMINA_MEMORY_LIMIT` when set (an unreadable value is an error),
    /// else half the machine's memory (`/proc/meminfo`) or half the process's address-space
    /// limit (`ulimit -v`), whichever is smaller, else 8 GiB.
    pub fn from_env_or_machine() -> Result<MemoryBudget> {
        if let Ok(v) = std::env::var(MEMORY_LIMIT_ENV) {
            return parse_size(&v).map(MemoryBudget::bytes).ok_or_else(|| Error::Backend {
                backend: "any".into(),
                detail: format!(
                    "{MEMORY_LIMIT_ENV}={v:?} is not a size: give bytes, or a number with K, M, \
                     G or T (powers of 1024)"
                ),
            });
        }
        let machine = machine_memory().map_or(FALLBACK_BYTES, |m| m / 2);
        Ok(MemoryBudget::bytes(
            address_space_limit().map_or(machine, |l| machine.min(l / 2)),
        ))
    }

    /// Checks a plan's peak against the budget; the error names the largest tensors alive at
    /// the peak, with the layers that made them.
    pub fn check(&self, backend: &str, program: &Program, plan: &MemoryPlan) -> Result<()> {
        if plan.peak <= self.bytes {
            return Ok(());
        }
        let mut largest = plan.live_at_peak.clone();
        largest.sort_by_key(|&(_, bytes)| std::cmp::Reverse(bytes));
        let names: Vec<String> = largest
            .iter()
            .take(3)
            .map(|&(n, bytes)| {
                let node = &program.nodes[n];
                let layer = node
                    .layer
                    .as_ref()
                    .map(|l| format!(" in layer '{}' ({})", l.0, l.1))
                    .unwrap_or_default();
                format!(
                    "{} {:?} {} ({}){layer}",
                    node.op.name(),
                    plan.shapes[n],
                    node.dtype,
                    human(bytes)
                )
            })
            .collect();
        Err(Error::Memory {
            backend: backend.into(),
            needed: plan.peak,
            limit: self.bytes,
            detail: format!(
                "the program needs {} at its peak for inputs of shapes {:?}, over the budget of \
                 {}; the largest tensors: {}. Use smaller inputs, or raise the budget \
                 ({MEMORY_LIMIT_ENV}, or Session::with_memory_budget)",
                human(plan.peak),
                plan.input_shapes,
                human(self.bytes),
                names.join(", ")
            ),
        })
    }
}

/// The buffers a compiled program allocates, in the order it allocates and frees them: the
/// peak bytes held at once and the tensors alive then.
#[derive(Clone, Debug, Default)]
pub struct MemoryPlan {
    /// The most bytes held at once.
    pub peak: u64,
    /// `(node, bytes)` of the buffers alive at the peak.
    pub live_at_peak: Vec<(usize, u64)>,
    /// The concrete shape of every node, for messages.
    pub shapes: Vec<Vec<usize>>,
    /// The program's input shapes, for messages.
    pub input_shapes: Vec<Vec<usize>>,
}

/// Builds a plan by replaying allocations and frees: `alloc(node, bytes)` and `free(node)`
/// in program order, with a scratch allocation that lasts one step.
pub struct PlanBuilder {
    plan: MemoryPlan,
    live: Vec<(usize, u64)>,
    /// Buffers held to the end and beyond, never freed ([`PlanBuilder::keep`]).
    kept: Vec<(usize, u64)>,
    held: u64,
}

impl PlanBuilder {
    /// A builder for a program with these node shapes and input shapes.
    pub fn new(shapes: &[Vec<usize>], input_shapes: &[Vec<usize>]) -> PlanBuilder {
        PlanBuilder {
            plan: MemoryPlan {
                shapes: shapes.to_vec(),
                input_shapes: input_shapes.to_vec(),
                ..MemoryPlan::default()
            },
            live: Vec::new(),
            kept: Vec::new(),
            held: 0,
        }
    }

    fn note_peak(&mut self, extra: u64) {
        let now = self.held.saturating_add(extra);
        if now > self.plan.peak {
            self.plan.peak = now;
            self.plan.live_at_peak = self.live.iter().chain(&self.kept).copied().collect();
        }
    }

    /// A buffer of `bytes` for `node`, alive until `free(node)`; `scratch` more bytes are held
    /// only while it is computed (a broadcast operand copied, a transpose before a reduction).
    pub fn alloc(&mut self, node: usize, bytes: u64, scratch: u64) {
        self.held = self.held.saturating_add(bytes);
        self.live.push((node, bytes));
        self.note_peak(scratch);
    }

    /// A buffer of `bytes` made for `node` (a convolution's transformed kernel) and kept from
    /// run to run: never freed, and apart from the node's own buffer.
    pub fn keep(&mut self, node: usize, bytes: u64) {
        self.held = self.held.saturating_add(bytes);
        self.kept.push((node, bytes));
        self.note_peak(0);
    }

    /// Frees the buffer of `node`.
    pub fn free(&mut self, node: usize) {
        if let Some(p) = self.live.iter().position(|&(n, _)| n == node) {
            let (_, bytes) = self.live.swap_remove(p);
            self.held -= bytes;
        }
    }

    /// The finished plan.
    pub fn finish(self) -> MemoryPlan {
        self.plan
    }
}

/// The bytes of a tensor of `shape` with 4-byte elements, saturating (a shape whose size
/// overflows can never fit any budget).
pub fn tensor_bytes(shape: &[usize]) -> u64 {
    shape
        .iter()
        .try_fold(4u64, |acc, &d| acc.checked_mul(d as u64))
        .unwrap_or(u64::MAX)
}

/// Reads sizes such as `8G`, `512MiB`, `1500000`.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
    let scale: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return None,
    };
    let bytes = value * scale as f64;
    (bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// The machine's total memory from `/proc/meminfo`, where there is one.
fn machine_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The process's address-space limit (`ulimit -v`) from `/proc/self/limits`, where one is set.
fn address_space_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    // "Max address space   <soft>   <hard>   bytes": the soft limit is the one enforced.
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Bytes for people: `16.0 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("1500"), Some(1500));
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("1.5k"), Some(1536));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("-1G"), None);
        assert_eq!(parse_size("1e400"), None);
    }

    #[test]
    fn the_peak_counts_buffers_alive_together() {
        let shapes = vec![vec![10], vec![20], vec![30]];
        let mut b = PlanBuilder::new(&shapes, &[]);
        b.alloc(0, 40, 0);
        b.alloc(1, 80, 40);
        b.free(0);
        b.alloc(2, 120, 0);
        let p = b.finish();
        assert_eq!(p.peak, 200);
        let mut live = p.live_at_peak.clone();
        live.sort();
        assert_eq!(live, vec![(1, 80), (2, 120)]);
        assert_eq!(tensor_bytes(&[usize::MAX, 2]), u64::MAX);
        assert_eq!(human(3 << 30), "3.0 GiB");
    }
}
