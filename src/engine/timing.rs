//! GPU time per pass from timestamp queries: a query pair around each compute pass that
//! [`super::CompiledPlan::encode`] records, resolved into the caller's readback so that timing
//! costs no extra submission or map.

use super::device::GpuContext;

/// Timestamp queries for the passes of a plan, with the buffer they resolve into.
pub struct StageTimer {
    query_set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    passes: u32,
}

impl StageTimer {
    /// Queries for `passes` passes (two timestamps each). Needs the adapter's timestamp queries
    /// ([`GpuContext::has_timestamps`]).
    pub fn new(ctx: &GpuContext, passes: u32) -> Self {
        let passes = passes.max(1);
        let query_set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("stage timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: 2 * passes,
        });
        let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamp resolve"),
            size: 16 * passes as u64,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        Self {
            query_set,
            resolve,
            passes,
        }
    }

    /// How many passes it times.
    pub fn passes(&self) -> u32 {
        self.passes
    }

    /// The query set to give [`super::CompiledPlan::encode`].
    pub fn query_set(&self) -> &wgpu::QuerySet {
        &self.query_set
    }

    /// Bytes the resolved timestamps take in a readback buffer.
    pub fn bytes(&self) -> u64 {
        16 * self.passes as u64
    }

    /// Resolves the timestamps written by the encoded plan and copies them into `staging` at
    /// `offset` (the same encoder: they come back with the results).
    pub fn resolve_into(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        staging: &wgpu::Buffer,
        offset: u64,
    ) {
        encoder.resolve_query_set(&self.query_set, 0..2 * self.passes, &self.resolve, 0);
        encoder.copy_buffer_to_buffer(&self.resolve, 0, staging, offset, self.bytes());
    }

    /// Milliseconds of each pass, named in order, from the resolved bytes.
    pub fn milliseconds(
        ctx: &GpuContext,
        resolved: &[u8],
        names: Vec<String>,
    ) -> Vec<(String, f64)> {
        let period_ns = ctx.queue.get_timestamp_period() as f64;
        let ticks: Vec<u64> = resolved
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8-byte chunk")))
            .collect();
        names
            .into_iter()
            .enumerate()
            .filter(|(p, _)| 2 * p + 1 < ticks.len())
            .map(|(p, name)| {
                let (start, end) = (ticks[2 * p], ticks[2 * p + 1]);
                (name, end.saturating_sub(start) as f64 * period_ns / 1e6)
            })
            .collect()
    }
}
