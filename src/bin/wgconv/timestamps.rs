//! GPU timestamp queries written inside one encoder, resolved and read back
//! once: what `wgconv bench` times layers and networks with.

use anyhow::anyhow;
use wgconv::Engine;

/// Records with `record` into a new encoder that may write up to `count`
/// timestamps into the query set it is given, submits it, and returns every
/// timestamp in ms (the device's ticks times its period).
pub fn record_timed<T>(
    engine: &Engine,
    count: u32,
    record: impl FnOnce(&mut wgpu::CommandEncoder, &wgpu::QuerySet) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<f64>> {
    let device = engine.device();
    let qs = device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("wgconv bench"),
        ty: wgpu::QueryType::Timestamp,
        count,
    });
    let size = u64::from(count) * 8;
    let resolve = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("wgconv bench resolve"),
        size,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("wgconv bench staging"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("wgconv bench"),
    });
    // Outputs stay alive until the work is done.
    let kept = record(&mut enc, &qs)?;
    enc.resolve_query_set(&qs, 0..count, &resolve, 0);
    enc.copy_buffer_to_buffer(&resolve, 0, &staging, 0, size);
    engine.queue().submit([enc.finish()]);
    let (tx, rx) = std::sync::mpsc::channel();
    staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    engine.wait()?;
    rx.recv()
        .map_err(|_| anyhow!("timestamp readback callback dropped"))?
        .map_err(|e| anyhow!("timestamp readback failed: {e}"))?;
    let ticks: Vec<u64> = {
        let view = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| anyhow!("timestamp readback failed: {e}"))?;
        bytemuck::pod_collect_to_vec::<u8, u64>(&view)
    };
    staging.unmap();
    drop(kept);
    let period = f64::from(engine.queue().get_timestamp_period());
    Ok(ticks.iter().map(|&t| t as f64 * period / 1e6).collect())
}
