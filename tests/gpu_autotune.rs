//! Autotuning: a tuned layer still matches the CPU reference whichever tile
//! wins, the choice lands in the cache file keyed by adapter, and a second
//! engine on the same file reuses it without timing again.

mod common;

use common::Rng;
use wgconv::plan::tile_candidates;
use wgconv::{
    Activation, Conv2d, Conv2dParams, ConvTranspose2d, ConvTranspose2dParams, Engine,
    EngineOptions, Kernel, LayerOptions, Padding, Tolerance,
};

fn tuned_engine(cache: &std::path::Path) -> Option<Engine> {
    match Engine::with_options(&EngineOptions {
        autotune: true,
        autotune_cache: Some(cache.to_path_buf()),
        ..EngineOptions::default()
    }) {
        Ok(e) => Some(e),
        Err(e) => {
            if std::env::var("WGCONV_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("WGCONV_REQUIRE_GPU=1 but no GPU: {e}");
            }
            eprintln!("SKIPPED: no GPU adapter ({e})");
            None
        }
    }
}

#[test]
fn tuned_layers_match_the_reference_and_the_choice_persists() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("autotune.json");
    let Some(engine) = tuned_engine(&cache) else {
        return;
    };
    let mut rng = Rng::new(7);
    let mut data = |n: usize| rng.vec(n);

    // A dense conv, a depthwise conv and a stride-2 transposed conv: each has
    // several candidate tiles, and each candidate changes the dispatch grid.
    // The dense layer is pinned to the register-blocked kernel: on a GPU the
    // planner gives it `conv2d_shared`, which has no tiles to tune.
    let tiled = LayerOptions {
        force_kernel: Some(Kernel::Conv2dTiled),
        ..LayerOptions::default()
    };
    let dense_in = [1, 8, 19, 37];
    let dense = Conv2d::with_options(
        &engine,
        &data(16 * 8 * 9),
        [16, 8, 3, 3],
        Some(&data(16)),
        Conv2dParams::default().padding(Padding::uniform(1)),
        Activation::Relu,
        tiled,
    )
    .unwrap();
    let dw_in = [2, 6, 21, 33];
    let dw = Conv2d::new(
        &engine,
        &data(6 * 9),
        [6, 1, 3, 3],
        None,
        Conv2dParams::default()
            .padding(Padding::uniform(1))
            .groups(6),
        Activation::None,
    )
    .unwrap();
    let t_in = [1, 8, 9, 17];
    let tconv = ConvTranspose2d::new(
        &engine,
        &data(8 * 4 * 9),
        [8, 4, 3, 3],
        Some(&data(4)),
        ConvTranspose2dParams::default()
            .stride(2, 2)
            .padding(Padding::uniform(1))
            .output_padding(1, 1),
        Activation::None,
    )
    .unwrap();

    let profile = engine.profile();
    for (name, shape, force) in [
        (
            "dense",
            dense.shape_for(dense_in).unwrap(),
            tiled.force_kernel,
        ),
        ("depthwise", dw.shape_for(dw_in).unwrap(), None),
        ("transposed", tconv.shape_for(t_in).unwrap(), None),
    ] {
        let n = tile_candidates(&shape, Activation::None, &profile, force).len();
        assert!(n >= 2, "{name}: only {n} candidate tiles");
    }

    let x = data(dense_in.iter().product());
    let c = dense
        .verify(&engine, &x, dense_in, Tolerance::F32Accumulation)
        .unwrap();
    assert!(c.passed, "dense: {c:?}");
    let x = data(dw_in.iter().product());
    let c = dw
        .verify(&engine, &x, dw_in, Tolerance::F32Accumulation)
        .unwrap();
    assert!(c.passed, "depthwise: {c:?}");
    let x = data(t_in.iter().product());
    let c = tconv
        .verify(&engine, &x, t_in, Tolerance::F32Accumulation)
        .unwrap();
    assert!(c.passed, "transposed: {c:?}");

    // Three shape classes tuned and written for this adapter.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    let per_adapter = json.as_object().unwrap();
    assert_eq!(per_adapter.len(), 1);
    let classes = per_adapter.values().next().unwrap().as_object().unwrap();
    assert_eq!(classes.len(), 3, "{json}");

    // A second engine on the same file plans with the remembered tiles,
    // without timing (and so without compiling) anything.
    let again = tuned_engine(&cache).unwrap();
    assert_eq!(again.autotuner().unwrap().path(), Some(cache.as_path()));
    let before = again.pipelines_compiled();
    let plan = tconv.plan_on(&again, t_in).unwrap();
    assert_eq!(
        again.pipelines_compiled(),
        before,
        "planning compiles nothing"
    );
    assert_eq!(plan, tconv.plan_on(&engine, t_in).unwrap());
    let shape = tconv.shape_for(t_in).unwrap();
    assert!(
        tile_candidates(&shape, Activation::None, &profile, None).contains(&plan.tile().unwrap())
    );
}

/// Every tile the autotuner may pick computes the right result, for dense,
/// strided, dilated, grouped, depthwise and transposed layers.
#[test]
fn every_candidate_tile_matches_the_reference() {
    let Some(engine) = common::engine() else {
        eprintln!("SKIPPED: no GPU adapter");
        return;
    };
    let profile = engine.profile();
    let mut rng = Rng::new(11);
    let forward = [
        (
            [1, 5, 13, 29],
            [6, 5, 3, 3],
            Conv2dParams::default().padding(Padding::uniform(1)),
        ),
        (
            [2, 4, 9, 23],
            [8, 4, 3, 2],
            Conv2dParams::default().stride(2, 2),
        ),
        (
            [1, 3, 17, 31],
            [5, 3, 3, 3],
            Conv2dParams::default()
                .dilation(2, 3)
                .padding(Padding::uniform(3)),
        ),
        (
            [1, 8, 11, 19],
            [8, 2, 3, 3],
            Conv2dParams::default()
                .groups(4)
                .padding(Padding::uniform(1)),
        ),
        (
            [1, 6, 15, 27],
            [12, 1, 3, 3],
            Conv2dParams::default()
                .groups(6)
                .stride(2, 1)
                .padding(Padding::uniform(1)),
        ),
        // Pointwise with 40 outputs: 32-channel blocks, the second one ragged.
        ([1, 16, 7, 33], [40, 16, 1, 1], Conv2dParams::default()),
    ];
    let mut runs = 0;
    for (input, weight, params) in forward {
        let w = rng.vec(weight.iter().product());
        let x = rng.vec(input.iter().product());
        let base = Conv2d::new(engine, &w, weight, None, params, Activation::Silu).unwrap();
        let shape = base.shape_for(input).unwrap();
        for tile in tile_candidates(&shape, Activation::Silu, &profile, None) {
            let options = LayerOptions {
                force_tile: Some(tile),
                ..LayerOptions::default()
            };
            let layer =
                Conv2d::with_options(engine, &w, weight, None, params, Activation::Silu, options)
                    .unwrap();
            assert_eq!(layer.plan_for(input).unwrap().tile(), Some(tile));
            let c = layer
                .verify(engine, &x, input, Tolerance::F32Accumulation)
                .unwrap();
            assert!(c.passed, "{input:?} {weight:?} {tile:?}: {c:?}");
            runs += 1;
        }
    }
    let transposed = [
        (
            [1, 4, 7, 9],
            [4, 3, 4, 4],
            ConvTranspose2dParams::default()
                .stride(2, 2)
                .padding(Padding::uniform(1)),
        ),
        (
            [1, 3, 5, 6],
            [3, 2, 3, 3],
            ConvTranspose2dParams::default()
                .stride(3, 3)
                .output_padding(2, 1),
        ),
    ];
    for (input, weight, params) in transposed {
        let w = rng.vec(weight.iter().product());
        let x = rng.vec(input.iter().product());
        let base =
            ConvTranspose2d::new(engine, &w, weight, None, params, Activation::None).unwrap();
        let shape = base.shape_for(input).unwrap();
        for tile in tile_candidates(&shape, Activation::None, &profile, None) {
            let options = LayerOptions {
                force_tile: Some(tile),
                ..LayerOptions::default()
            };
            let layer = ConvTranspose2d::with_options(
                engine,
                &w,
                weight,
                None,
                params,
                Activation::None,
                options,
            )
            .unwrap();
            let c = layer
                .verify(engine, &x, input, Tolerance::F32Accumulation)
                .unwrap();
            assert!(c.passed, "{input:?} {weight:?} {tile:?}: {c:?}");
            runs += 1;
        }
    }
    assert!(runs >= 20, "only {runs} tiles checked");
}
