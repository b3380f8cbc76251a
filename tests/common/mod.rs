//! Shared helpers for the integration tests: one engine per test binary,
//! the skip rule, and a seeded generator.
#![allow(dead_code)]

use std::sync::OnceLock;

use wgconv::{Engine, EngineOptions};

/// The options every test engine starts from: the default adapter, with
/// shader runtime checks on (release builds otherwise compile trusted
/// modules; the tests must catch an out-of-range index, not rely on it).
pub fn options() -> EngineOptions {
    EngineOptions {
        runtime_checks: Some(true),
        ..EngineOptions::default()
    }
}

/// A new engine with [`options`] (for tests that need their own).
pub fn own_engine() -> Engine {
    Engine::with_options(&options()).expect("engine")
}

/// The shared engine, or `None` when there is no adapter — in which case
/// the test reports itself skipped, unless `WGCONV_REQUIRE_GPU=1` demands a
/// GPU (CI sets it, so CI can never pass by skipping).
pub fn engine() -> Option<&'static Engine> {
    static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();
    init(&ENGINE)
}

/// The engine for shard `shard` (0 or 1) of a sweep split in two: shard 0
/// runs on the shared engine, shard 1 on a second one. Each engine is its own
/// device, and lavapipe compiles a device's kernels on that device's queue
/// thread, so the two shards' compiles (most of a sweep's time) run on two
/// cores instead of queueing on one.
///
/// The second engine runs without subgroup operations and without texture
/// inputs, so on an adapter that has them each sweep covers both forms of
/// the kernels that read their weights through subgroups
/// (`plan::subgroup_weights`) and their inputs through textures
/// (`plan::texture_input`).
pub fn shard_engine(shard: usize) -> Option<&'static Engine> {
    static SECOND: OnceLock<Option<Engine>> = OnceLock::new();
    match shard {
        0 => engine(),
        _ => init_with(&SECOND, no_subgroups()),
    }
}

/// [`options`] without subgroup operations and without textures: the
/// kernels' plain forms, whose weights come in uniform windows (so large
/// layers run as reduction segments) and inputs from storage buffers.
pub fn no_subgroups() -> EngineOptions {
    EngineOptions {
        subgroups: Some(false),
        texture_inputs: Some(false),
        ..options()
    }
}

fn init(cell: &'static OnceLock<Option<Engine>>) -> Option<&'static Engine> {
    init_with(cell, options())
}

fn init_with(
    cell: &'static OnceLock<Option<Engine>>,
    options: EngineOptions,
) -> Option<&'static Engine> {
    cell.get_or_init(|| match Engine::with_options(&options) {
        Ok(e) => Some(e),
        Err(e) => {
            if std::env::var("WGCONV_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("WGCONV_REQUIRE_GPU=1 but no GPU: {e}");
            }
            None
        }
    })
    .as_ref()
}

/// The number of shards a sweep split with [`shard_engine`] runs as.
pub const SHARDS: usize = 2;

/// Gets the engine (with an argument: the shard's, see [`shard_engine`]) or
/// returns from the test, printing that it was skipped.
#[macro_export]
macro_rules! gpu_or_skip {
    () => {
        $crate::gpu_or_skip!(0)
    };
    ($shard:expr) => {
        match common::shard_engine($shard) {
            Some(e) => e,
            None => {
                eprintln!(
                    "SKIPPED: no GPU adapter (set WGCONV_REQUIRE_GPU=1 to make this a failure)"
                );
                return;
            }
        }
    };
}

/// The library's seeded SplitMix64 generator (the conformance suite's).
#[allow(unused_imports)] // not every test binary draws random data
pub use wgconv::conformance::Rng;
