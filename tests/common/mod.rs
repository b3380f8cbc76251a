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
    ENGINE
        .get_or_init(|| match Engine::with_options(&options()) {
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

/// Gets the engine or returns from the test, printing that it was skipped.
#[macro_export]
macro_rules! gpu_or_skip {
    () => {
        match common::engine() {
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
