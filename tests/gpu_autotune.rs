//! Autotuning: a tuned layer still matches the CPU reference whichever
//! candidate wins (a tile, a wider channel block, the Winograd or sub-pixel
//! form), the choice lands in the cache file keyed by adapter, and a second
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

    // Three shape classes tuned and written for this adapter (and, should
    // the transposed layer have timed its sub-pixel form, its phases' own).
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    let per_adapter = json.as_object().unwrap();
    assert_eq!(per_adapter.len(), 1);
    let classes = per_adapter.values().next().unwrap().as_object().unwrap();
    for (name, shape) in [
        ("dense", dense.shape_for(dense_in).unwrap()),
        ("depthwise", dw.shape_for(dw_in).unwrap()),
        ("transposed", tconv.shape_for(t_in).unwrap()),
    ] {
        let shape = format!("{shape:?}");
        assert_eq!(
            classes.keys().filter(|k| k.contains(&shape)).count(),
            1,
            "{name}: {json}"
        );
    }

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
        // 40 outputs of a strided 3×3: 16-channel blocks, and the tuner's
        // 32-channel ones, the second ragged.
        (
            [1, 6, 11, 21],
            [40, 6, 3, 3],
            Conv2dParams::default()
                .stride(2, 2)
                .padding(Padding::uniform(1)),
        ),
    ];
    let mut runs = 0;
    let mut wide = 0;
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
            wide += usize::from(tile.cob4 == Some(8) && weight[2] == 3);
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
        // 40 outputs: 16- and 32-channel blocks, the second ragged.
        (
            [1, 5, 6, 7],
            [5, 40, 2, 2],
            ConvTranspose2dParams::default().stride(2, 2),
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
            assert_eq!(layer.plan_for(input).unwrap().tile(), Some(tile));
            let c = layer
                .verify(engine, &x, input, Tolerance::F32Accumulation)
                .unwrap();
            assert!(c.passed, "{input:?} {weight:?} {tile:?}: {c:?}");
            runs += 1;
            wide += usize::from(tile.cob4 == Some(8));
        }
    }
    assert!(runs >= 20, "only {runs} tiles checked");
    // The wider channel blocks are the tuner's alone on the blocked kernels
    // (the planner keeps 16 channels for kernels wider than 1×1).
    if profile.device_type == wgpu::DeviceType::Cpu {
        assert!(wide >= 4, "only {wide} wider-block tiles checked");
    }
}

/// Reads the tuned classes of the cache file (one adapter).
fn classes(cache: &std::path::Path) -> serde_json::Map<String, serde_json::Value> {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cache).unwrap()).unwrap();
    let per_adapter = json.as_object().unwrap();
    assert_eq!(per_adapter.len(), 1, "{json}");
    per_adapter
        .values()
        .next()
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

/// Writes `choice` for the class of `key` into the cache file.
fn remember(cache: &std::path::Path, key: &str, choice: serde_json::Value) {
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cache).unwrap()).unwrap();
    let per_adapter = json.as_object_mut().unwrap();
    let classes = per_adapter.values_mut().next().unwrap();
    classes[key] = choice;
    std::fs::write(cache, serde_json::to_string(&json).unwrap()).unwrap();
}

/// The tuner times a layer's transformed form against its direct path:
/// the Winograd form of a 3×3 stride-1 layer and the sub-pixel form of a
/// strided transposed one, built for the timing even where the planner would
/// not run them. Each choice it may remember (the form, each tile, each
/// wider channel block) then runs in a new process — here a new engine on the
/// file, with the choice written into it — and matches the reference, and
/// the layer reports the route it runs.
#[test]
fn every_remembered_choice_runs_and_matches_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("autotune.json");
    let Some(engine) = tuned_engine(&cache) else {
        return;
    };
    let profile = engine.profile();
    let mut rng = Rng::new(23);
    let dense_w = rng.vec(32 * 16 * 9);
    let dense_b = rng.vec(32);
    let dense_in = [1, 16, 10, 14];
    let dense_params = Conv2dParams::default().padding(Padding::uniform(1));
    let t_w = rng.vec(16 * 32 * 9);
    let t_in = [1, 16, 5, 7];
    let t_params = ConvTranspose2dParams::default()
        .stride(2, 2)
        .padding(Padding::uniform(1))
        .output_padding(1, 1);
    let dense = |e: &Engine| {
        Conv2d::new(
            e,
            &dense_w,
            [32, 16, 3, 3],
            Some(&dense_b),
            dense_params,
            Activation::Relu,
        )
        .unwrap()
    };
    let tconv = |e: &Engine| {
        ConvTranspose2d::new(e, &t_w, [16, 32, 3, 3], None, t_params, Activation::None).unwrap()
    };
    let dense_x = rng.vec(dense_in.iter().product());
    let t_x = rng.vec(t_in.iter().product());

    // Tune both on first use.
    let c = dense(&engine)
        .verify(&engine, &dense_x, dense_in, Tolerance::F32Accumulation)
        .unwrap();
    assert!(c.passed, "dense, tuned: {c:?}");
    let c = tconv(&engine)
        .verify(&engine, &t_x, t_in, Tolerance::F32Accumulation)
        .unwrap();
    assert!(c.passed, "transposed, tuned: {c:?}");

    let dense_shape = format!("{:?}", dense(&engine).shape_for(dense_in).unwrap());
    let t_shape = format!("{:?}", tconv(&engine).shape_for(t_in).unwrap());
    let tuned = classes(&cache);
    let key_of = |shape: &str| {
        let keys: Vec<_> = tuned.keys().filter(|k| k.contains(shape)).collect();
        assert_eq!(keys.len(), 1, "{shape}: {tuned:?}");
        keys[0].clone()
    };
    let (dense_key, t_key) = (key_of(&dense_shape), key_of(&t_shape));

    let tiles = |shape, act| {
        tile_candidates(&shape, act, &profile, None)
            .into_iter()
            .map(|t| serde_json::to_value(t).unwrap())
            .collect::<Vec<_>>()
    };
    let mut dense_choices = tiles(
        dense(&engine).shape_for(dense_in).unwrap(),
        Activation::Relu,
    );
    dense_choices.push(serde_json::json!({"form": "winograd"}));
    let mut t_choices = tiles(tconv(&engine).shape_for(t_in).unwrap(), Activation::None);
    t_choices.push(serde_json::json!({"form": "sub-pixel"}));
    // What the tuner remembered is one of its candidates.
    assert!(dense_choices.contains(&tuned[&dense_key]), "{tuned:?}");
    assert!(t_choices.contains(&tuned[&t_key]), "{tuned:?}");
    if profile.device_type == wgpu::DeviceType::Cpu {
        // 32 output channels of a 3×3 kernel: the wider block is a candidate.
        assert!(
            dense_choices.iter().any(|c| c["cob4"] == 8),
            "{dense_choices:?}"
        );
    }

    for choice in &dense_choices {
        remember(&cache, &dense_key, choice.clone());
        let e = tuned_engine(&cache).unwrap();
        let layer = dense(&e);
        let winograd = layer.winograd_on(&e, dense_in).unwrap();
        assert_eq!(winograd.is_some(), choice.get("form").is_some(), "{choice}");
        if winograd.is_none() {
            let tile = layer.plan_on(&e, dense_in).unwrap().tile();
            assert_eq!(serde_json::to_value(tile.unwrap()).unwrap(), *choice);
        }
        let c = layer
            .verify(&e, &dense_x, dense_in, Tolerance::F32Accumulation)
            .unwrap();
        assert!(c.passed, "dense {choice}: {c:?}");
        assert_eq!(classes(&cache)[&dense_key], *choice, "no retuning");
    }
    for choice in &t_choices {
        remember(&cache, &t_key, choice.clone());
        let e = tuned_engine(&cache).unwrap();
        let layer = tconv(&e);
        assert_eq!(
            layer.sub_pixel_on(&e, t_in).unwrap(),
            choice.get("form").is_some(),
            "{choice}"
        );
        let c = layer
            .verify(&e, &t_x, t_in, Tolerance::F32Accumulation)
            .unwrap();
        assert!(c.passed, "transposed {choice}: {c:?}");
        assert_eq!(classes(&cache)[&t_key], *choice, "no retuning");
    }
}

/// A layer planned for the first result (`plan::Goal::FirstResult`) is never
/// tuned, even on an autotuning engine: it runs its own plan, without
/// Winograd, and leaves the cache file alone; the same layer planned for
/// throughput is tuned there.
#[test]
fn first_result_layers_are_never_tuned() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("autotune.json");
    let Some(engine) = tuned_engine(&cache) else {
        return;
    };
    let mut rng = Rng::new(0xf125);
    let input = [1, 16, 12, 12];
    let x = rng.vec(input.iter().product());
    let w = rng.vec(16 * 16 * 9);
    let params = Conv2dParams::default().padding(Padding::uniform(1));
    let layer = |goal| {
        let options = LayerOptions {
            goal,
            ..LayerOptions::default()
        };
        Conv2d::with_options(
            &engine,
            &w,
            [16, 16, 3, 3],
            None,
            params,
            Activation::None,
            options,
        )
        .unwrap()
    };
    let run = |l: &Conv2d| {
        let xt = wgconv::GpuTensor::upload(&engine, &x, input).unwrap();
        let y = l.forward(&engine, &xt).unwrap().read(&engine).unwrap();
        let r = l.reference_on(&engine, &x, input).unwrap();
        let cmp = wgconv::reference::compare(&r, Activation::None, &y, Tolerance::F32Accumulation)
            .unwrap();
        assert!(cmp.passed, "{cmp}");
    };
    let first = layer(wgconv::plan::Goal::FirstResult);
    run(&first);
    let kernel = first.kernel_name(&engine, input).unwrap();
    assert!(kernel.starts_with("conv2d_"), "{kernel}");
    assert!(
        !cache.exists() || classes(&cache).is_empty(),
        "{}",
        std::fs::read_to_string(&cache).unwrap_or_default()
    );
    // Tuned: its class (and, where its Winograd form wins, the GEMM's).
    run(&layer(wgconv::plan::Goal::Throughput));
    assert!(!classes(&cache).is_empty());
}
