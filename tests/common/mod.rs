//! Shared helpers for the integration tests: one engine per test binary,
//! the skip rule, and a seeded generator.
#![allow(dead_code)]

use std::sync::OnceLock;

use wgconv::Engine;

/// The shared engine, or `None` when there is no adapter — in which case
/// the test reports itself skipped, unless `WGCONV_REQUIRE_GPU=1` demands a
/// GPU (CI sets it, so CI can never pass by skipping).
pub fn engine() -> Option<&'static Engine> {
    static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| match Engine::new() {
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

/// SplitMix64: a small, seeded, reproducible generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next_u64() % u64::from(hi - lo + 1)) as u32
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next_u64() % items.len() as u64) as usize]
    }
    pub fn chance(&mut self, percent: u32) -> bool {
        self.range(0, 99) < percent
    }
    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.unit()).collect()
    }
}
