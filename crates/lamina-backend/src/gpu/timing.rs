//! Kernel timings: a timestamp written at the start and the end of each kernel's compute pass
//! (wgpu's `TIMESTAMP_QUERY`), resolved into a buffer, read back and turned into seconds.

use super::device::GpuContext;
use lamina_graph::{Error, Result};

pub use crate::backend::KernelTiming;

/// Queries per query set (wgpu's maximum); even, so a kernel's pair never straddles two sets.
const PER_SET: u32 = wgpu::QUERY_SET_MAX_QUERIES;

/// Two timestamps per kernel, in as many query sets as needed, with the buffers they are
/// resolved into and read back from.
pub(crate) struct TimestampQueries {
    sets: Vec<(wgpu::QuerySet, u32)>,
    resolve: wgpu::Buffer,
    read: wgpu::Buffer,
    kernels: usize,
    period_ns: f64,
}

fn gpu_error(detail: String) -> Error {
    Error::Backend {
        backend: "gpu".into(),
        detail,
    }
}

impl TimestampQueries {
    /// Query sets and buffers for `kernels` kernels (at least one); an error where the device
    /// has no timestamp queries.
    pub(crate) fn new(ctx: &GpuContext, kernels: usize) -> Result<TimestampQueries> {
        let period_ns = ctx.timestamp_period_ns().ok_or_else(|| {
            gpu_error(format!(
                "{} does not support timestamp queries (wgpu TIMESTAMP_QUERY)",
                ctx.adapter
            ))
        })?;
        let queries = u32::try_from(kernels.max(1) * 2)
            .map_err(|_| gpu_error(format!("too many kernels to time ({kernels})")))?;
        let device = &ctx.device;
        ctx.scoped("creating timestamp queries", || {
            let sets = (0..queries.div_ceil(PER_SET))
                .map(|i| {
                    let count = (queries - i * PER_SET).min(PER_SET);
                    let set = device.create_query_set(&wgpu::QuerySetDescriptor {
                        label: Some("lamina kernel timestamps"),
                        ty: wgpu::QueryType::Timestamp,
                        count,
                    });
                    (set, count)
                })
                .collect();
            // Set i resolves at i * PER_SET * 8 bytes, a multiple of the 256-byte alignment.
            let bytes = queries as u64 * wgpu::QUERY_SIZE as u64;
            let resolve = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("lamina timestamps"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let read = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("lamina timestamps read-back"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            TimestampQueries {
                sets,
                resolve,
                read,
                kernels,
                period_ns,
            }
        })
    }

    /// The timestamp writes of kernel `k`'s compute pass: its start and its end.
    pub(crate) fn writes(&self, k: usize) -> wgpu::ComputePassTimestampWrites<'_> {
        let q = 2 * k as u32;
        let (set, _) = &self.sets[(q / PER_SET) as usize];
        let i = q % PER_SET;
        wgpu::ComputePassTimestampWrites {
            query_set: set,
            beginning_of_pass_write_index: Some(i),
            end_of_pass_write_index: Some(i + 1),
        }
    }

    /// Records the resolve of every query and the copy into the read-back buffer.
    pub(crate) fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        for (i, (set, count)) in self.sets.iter().enumerate() {
            let offset = i as u64 * PER_SET as u64 * wgpu::QUERY_SIZE as u64;
            encoder.resolve_query_set(set, 0..*count, &self.resolve, offset);
        }
        encoder.copy_buffer_to_buffer(&self.resolve, 0, &self.read, 0, self.resolve.size());
    }

    /// Waits for the submitted work and returns each kernel's seconds, end minus start (zero
    /// where a driver's clock went backwards).
    pub(crate) fn read(&self, ctx: &GpuContext) -> Result<Vec<f64>> {
        self.read.slice(..).map_async(wgpu::MapMode::Read, |_| {});
        ctx.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| gpu_error(format!("waiting for the device: {e}")))?;
        ctx.take_errors()?;
        let ticks: Vec<u64> = {
            let view = self
                .read
                .slice(..)
                .get_mapped_range()
                .map_err(|e| gpu_error(format!("reading timestamps back: {e}")))?;
            view.chunks_exact(8)
                .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect()
        };
        self.read.unmap();
        Ok(ticks
            .chunks_exact(2)
            .take(self.kernels)
            .map(|p| p[1].saturating_sub(p[0]) as f64 * self.period_ns * 1e-9)
            .collect())
    }
}

/// The median of some samples (NaN for none).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_even_and_none() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }
}
