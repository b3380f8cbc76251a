//! GPU timestamp queries written inside one encoder, resolved and read back
//! once: what the autotuner times candidates with where the device has them,
//! and what `wgconv bench` times layers and networks with.

use crate::engine::Engine;
use crate::error::Error;

/// Whether `engine`'s device can write timestamps inside an encoder (both
/// `TIMESTAMP_QUERY` and `TIMESTAMP_QUERY_INSIDE_ENCODERS`).
pub fn available(engine: &Engine) -> bool {
    engine
        .device()
        .features()
        .contains(wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
}

/// Records with `record` into a new encoder that may write up to `count`
/// timestamps into the query set it is given, submits it, waits, and returns
/// every timestamp in ms (the device's ticks times its period). What
/// `record` returns (outputs, say) is kept alive until the work is done.
/// Needs [`available`].
///
/// # Errors
/// What `record` returns, [`Error::Readback`] when the timestamps cannot be
/// read back, and device errors.
pub fn record_timed<T, E: From<Error>>(
    engine: &Engine,
    count: u32,
    record: impl FnOnce(&mut wgpu::CommandEncoder, &wgpu::QuerySet) -> Result<T, E>,
) -> Result<Vec<f64>, E> {
    let device = engine.device();
    let qs = device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("wgconv timestamps"),
        ty: wgpu::QueryType::Timestamp,
        count,
    });
    let size = u64::from(count) * 8;
    let resolve = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("wgconv timestamps resolve"),
        size,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("wgconv timestamps staging"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("wgconv timestamps"),
    });
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
        .map_err(|_| Error::Readback("timestamp readback callback dropped".into()))?
        .map_err(|e| Error::Readback(format!("timestamp readback failed: {e}")))?;
    let ticks: Vec<u64> = {
        let view = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| Error::Readback(format!("timestamp readback failed: {e}")))?;
        bytemuck::pod_collect_to_vec::<u8, u64>(&view)
    };
    staging.unmap();
    drop(kept);
    let period = f64::from(engine.queue().get_timestamp_period());
    Ok(ticks.iter().map(|&t| t as f64 * period / 1e6).collect())
}
