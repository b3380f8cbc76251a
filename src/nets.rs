//! The reference networks: the architectures dilated, depthwise-separable,
//! grouped and transposed convolutions were introduced for, built with the
//! [`crate::net`] API and seeded random weights (He-uniform convolutions,
//! batch norms near identity, folded at load time).
//!
//! Each comes at its published size ([`Size::Full`], for benchmarks and the
//! examples) and at a small size with the same structure ([`Size::Small`],
//! for the tests). `wgconv plan --net NAME`, `wgconv bench --net NAME` and
//! `cargo run --release --example NAME` use them.

use crate::conformance::Rng;
use crate::engine::Engine;
use crate::error::Result;
use crate::geometry::{
    Activation, Conv2dParams, ConvTranspose2dParams, Padding, UpsampleConv2dParams, UpsampleParams,
};
use crate::net::{Network, NetworkBuilder, Value};
use crate::ops::batch_norm::BatchNorm;
use crate::plan::Goal;

/// Which size to build a network at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// The published configuration (benchmarks, examples).
    Full,
    /// The same structure with few channels and small images (tests).
    Small,
}

/// A reference network.
#[derive(Debug, Clone, Copy)]
pub struct NetSpec {
    /// Name (`--net NAME`).
    pub name: &'static str,
    /// The example it belongs to (`cargo run --example GROUP`); also
    /// accepted by `--net`.
    pub group: &'static str,
    /// One line: what it is and at which size.
    pub about: &'static str,
    build: fn(&mut NetworkBuilder<'_>, &mut Init, Size) -> Result<Value>,
    /// Input shapes at [`Size::Full`] and [`Size::Small`].
    inputs: [[usize; 4]; 2],
}

impl NetSpec {
    /// The input shape at `size`.
    pub fn input_shape(&self, size: Size) -> [usize; 4] {
        match size {
            Size::Full => self.inputs[0],
            Size::Small => self.inputs[1],
        }
    }

    /// Builds the network on `engine` with weights from `seed`.
    ///
    /// # Errors
    /// Device errors (the shapes are valid by construction).
    pub fn build(&self, engine: &Engine, size: Size, seed: u64) -> Result<Network> {
        self.build_for(engine, size, seed, Goal::Throughput)
    }

    /// [`NetSpec::build`], its convolutions planned for `goal`
    /// ([`NetworkBuilder::plan_for`]).
    ///
    /// # Errors
    /// As [`NetSpec::build`].
    pub fn build_for(&self, engine: &Engine, size: Size, seed: u64, goal: Goal) -> Result<Network> {
        let mut b = NetworkBuilder::new(engine, self.input_shape(size))?;
        b.plan_for(goal);
        let mut init = Init(Rng::new(seed));
        let y = (self.build)(&mut b, &mut init, size)?;
        b.build(y)
    }

    /// A seeded input in `[-1, 1)`.
    pub fn input(&self, size: Size, seed: u64) -> Vec<f32> {
        let n: usize = self.input_shape(size).iter().product();
        let mut rng = Rng::new(seed ^ 0x5EED);
        (0..n).map(|_| rng.unit()).collect()
    }
}

/// Every reference network.
pub const NETS: [NetSpec; 8] = [
    NetSpec {
        name: "context_module",
        group: "context_module",
        about: "dilated context module, basic: 7 3×3 layers (dilation 1,1,2,4,8,16,1) + 1×1, C = 21 at 64×64",
        build: context_basic,
        inputs: [[1, 21, 64, 64], [1, 4, 24, 24]],
    },
    NetSpec {
        name: "context_module_large",
        group: "context_module",
        about: "dilated context module, large: channels 2C,2C,4C,8C,16C,32C,32C then C, C = 21 at 64×64",
        build: context_large,
        inputs: [[1, 21, 64, 64], [1, 4, 24, 24]],
    },
    NetSpec {
        name: "mobilenet_v2_block",
        group: "mobilenet_v2",
        about: "inverted residual: 1×1 expand ×6 + ReLU6, 3×3 depthwise + ReLU6, 1×1 project, residual; 24 ch at 56×56",
        build: mobilenet_block,
        inputs: [[1, 24, 56, 56], [1, 8, 10, 10]],
    },
    NetSpec {
        name: "mobilenet_v2",
        group: "mobilenet_v2",
        about: "MobileNetV2 feature extractor (width 1.0, 17 inverted residuals, 1280 features) at 224×224",
        build: mobilenet_v2,
        inputs: [[1, 3, 224, 224], [1, 3, 32, 32]],
    },
    NetSpec {
        name: "aspp",
        group: "aspp",
        about: "DeepLabv3 ASPP head: 1×1, 3×3 dilated 6/12/18, image pooling, concat, 1×1; 2048 → 256 ch at 33×33",
        build: aspp,
        inputs: [[1, 2048, 33, 33], [1, 16, 9, 9]],
    },
    NetSpec {
        name: "resnext_block",
        group: "resnext_block",
        about: "ResNeXt-50 block: 1×1 256→128, 3×3 grouped (G = 32), 1×1 →256, residual; at 56×56",
        build: resnext_block,
        inputs: [[1, 256, 56, 56], [1, 64, 8, 8]],
    },
    NetSpec {
        name: "decoder",
        group: "decoder",
        about: "DCGAN generator: z 100 → 4×4×512, then four 4×4 stride-2 transposed convs to 3×64×64",
        build: decoder_transposed,
        inputs: [[1, 100, 1, 1], [1, 16, 1, 1]],
    },
    NetSpec {
        name: "decoder_upsample",
        group: "decoder",
        about: "the DCGAN generator with nearest ×2 upsample + 3×3 conv (fused) in place of the stride-2 transposed convs",
        build: decoder_upsample,
        inputs: [[1, 100, 1, 1], [1, 16, 1, 1]],
    },
];

/// The networks a name selects: one by its name, or every network of a
/// group (the example names).
pub fn select(name: &str) -> Vec<&'static NetSpec> {
    let by_name: Vec<_> = NETS.iter().filter(|n| n.name == name).collect();
    if by_name.is_empty() {
        NETS.iter().filter(|n| n.group == name).collect()
    } else {
        by_name
    }
}

/// Seeded weights.
struct Init(Rng);

/// A batch norm's parameters, owned.
struct Bn {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    mean: Vec<f32>,
    var: Vec<f32>,
}

impl Bn {
    fn get(&self) -> BatchNorm<'_> {
        BatchNorm {
            gamma: &self.gamma,
            beta: &self.beta,
            mean: &self.mean,
            var: &self.var,
            eps: 1e-5,
        }
    }
}

impl Init {
    fn uniform(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n)
            .map(|_| lo + (self.0.unit() + 1.0) * 0.5 * (hi - lo))
            .collect()
    }
    /// He-uniform for `fan_in` inputs per output: variance `2 / fan_in`.
    fn he(&mut self, n: usize, fan_in: usize) -> Vec<f32> {
        let bound = (6.0 / fan_in.max(1) as f32).sqrt();
        self.uniform(n, -bound, bound)
    }
    fn bn(&mut self, c: usize) -> Bn {
        Bn {
            gamma: self.uniform(c, 0.8, 1.2),
            beta: self.uniform(c, -0.1, 0.1),
            mean: self.uniform(c, -0.1, 0.1),
            var: self.uniform(c, 0.8, 1.2),
        }
    }
}

/// A `k`×`k` convolution to `c_out` channels with "same" padding for
/// stride 1 (`dilation·(k−1)/2`), then a folded batch norm and `act`.
#[allow(clippy::too_many_arguments)]
fn conv_bn(
    b: &mut NetworkBuilder<'_>,
    init: &mut Init,
    name: &str,
    x: Value,
    c_out: usize,
    k: usize,
    stride: u32,
    dilation: u32,
    groups: u32,
    act: Activation,
) -> Result<Value> {
    let c_in = b.shape(x)?[1];
    let shape = [c_out, c_in / groups as usize, k, k];
    let w = init.he(shape.iter().product(), shape[1] * k * k);
    let bn = init.bn(c_out);
    let pad = dilation * (k as u32 - 1) / 2;
    let params = Conv2dParams::default()
        .stride(stride, stride)
        .padding(Padding::uniform(pad))
        .dilation(dilation, dilation)
        .groups(groups);
    b.conv2d_bn(name, x, &w, shape, &bn.get(), params, act)
}

/// Yu & Koltun's context module: layers 1–7 are 3×3 with dilation 1, 1, 2,
/// 4, 8, 16, 1 and ReLU, layer 8 is 1×1 back to C channels.
fn context(b: &mut NetworkBuilder<'_>, init: &mut Init, widths: [usize; 7]) -> Result<Value> {
    let c = b.shape(b.input())?[1];
    let mut x = b.input();
    for (i, (&d, &w)) in [1u32, 1, 2, 4, 8, 16, 1].iter().zip(&widths).enumerate() {
        let shape = [w, b.shape(x)?[1], 3, 3];
        let weight = init.he(shape.iter().product(), shape[1] * 9);
        let bias = init.uniform(w, -0.1, 0.1);
        let p = Conv2dParams::default()
            .padding(Padding::uniform(d))
            .dilation(d, d);
        x = b.conv2d(
            &format!("ctx{}_d{d}", i + 1),
            x,
            &weight,
            shape,
            Some(&bias),
            p,
            Activation::Relu,
        )?;
    }
    let shape = [c, b.shape(x)?[1], 1, 1];
    let weight = init.he(shape.iter().product(), shape[1]);
    b.conv2d(
        "ctx8_1x1",
        x,
        &weight,
        shape,
        None,
        Conv2dParams::default(),
        Activation::None,
    )
}

fn context_basic(b: &mut NetworkBuilder<'_>, init: &mut Init, _: Size) -> Result<Value> {
    let c = b.shape(b.input())?[1];
    context(b, init, [c; 7])
}

fn context_large(b: &mut NetworkBuilder<'_>, init: &mut Init, _: Size) -> Result<Value> {
    let c = b.shape(b.input())?[1];
    context(b, init, [2, 2, 4, 8, 16, 32, 32].map(|m| m * c))
}

/// torchvision's `_make_divisible`: the nearest multiple of 8, at least 8,
/// never below 90 % of `v`.
fn divisible(v: f64) -> usize {
    let d = 8.0;
    let mut r = (((v + d / 2.0) / d).floor() * d).max(d);
    if r < 0.9 * v {
        r += d;
    }
    r as usize
}

/// MobileNetV2's inverted residual (expansion `t`).
fn inverted_residual(
    b: &mut NetworkBuilder<'_>,
    init: &mut Init,
    name: &str,
    x: Value,
    c_out: usize,
    stride: u32,
    t: usize,
) -> Result<Value> {
    let c_in = b.shape(x)?[1];
    let hidden = c_in * t;
    let mut h = x;
    if t != 1 {
        h = conv_bn(
            b,
            init,
            &format!("{name}.expand"),
            h,
            hidden,
            1,
            1,
            1,
            1,
            Activation::Relu6,
        )?;
    }
    h = conv_bn(
        b,
        init,
        &format!("{name}.dw"),
        h,
        hidden,
        3,
        stride,
        1,
        hidden as u32,
        Activation::Relu6,
    )?;
    h = conv_bn(
        b,
        init,
        &format!("{name}.project"),
        h,
        c_out,
        1,
        1,
        1,
        1,
        Activation::None,
    )?;
    if stride == 1 && c_in == c_out {
        h = b.add(&format!("{name}.residual"), x, h, Activation::None)?;
    }
    Ok(h)
}

fn mobilenet_block(b: &mut NetworkBuilder<'_>, init: &mut Init, _: Size) -> Result<Value> {
    let x = b.input();
    let c = b.shape(x)?[1];
    inverted_residual(b, init, "block", x, c, 1, 6)
}

/// MobileNetV2 (Sandler et al. 2018, Table 2) up to the 1280-channel
/// features; width 1.0, or 0.25 for the small size.
fn mobilenet_v2(b: &mut NetworkBuilder<'_>, init: &mut Init, size: Size) -> Result<Value> {
    let width = match size {
        Size::Full => 1.0,
        Size::Small => 0.25,
    };
    let mut x = conv_bn(
        b,
        init,
        "stem",
        b.input(),
        divisible(32.0 * width),
        3,
        2,
        1,
        1,
        Activation::Relu6,
    )?;
    let settings: [(usize, f64, usize, u32); 7] = [
        (1, 16.0, 1, 1),
        (6, 24.0, 2, 2),
        (6, 32.0, 3, 2),
        (6, 64.0, 4, 2),
        (6, 96.0, 3, 1),
        (6, 160.0, 3, 2),
        (6, 320.0, 1, 1),
    ];
    let mut block = 0;
    for (t, c, n, s) in settings {
        for i in 0..n {
            block += 1;
            let stride = if i == 0 { s } else { 1 };
            x = inverted_residual(
                b,
                init,
                &format!("b{block}"),
                x,
                divisible(c * width),
                stride,
                t,
            )?;
        }
    }
    conv_bn(
        b,
        init,
        "features",
        x,
        divisible(1280.0 * f64::max(1.0, width)),
        1,
        1,
        1,
        1,
        Activation::Relu6,
    )
}

/// DeepLabv3's ASPP head (Chen et al. 2017) at output stride 16.
fn aspp(b: &mut NetworkBuilder<'_>, init: &mut Init, size: Size) -> Result<Value> {
    let out = match size {
        Size::Full => 256,
        Size::Small => 8,
    };
    let x = b.input();
    let [_, _, h, w] = b.shape(x)?;
    let relu = Activation::Relu;
    let mut branches = vec![conv_bn(b, init, "aspp.1x1", x, out, 1, 1, 1, 1, relu)?];
    for r in [6u32, 12, 18] {
        branches.push(conv_bn(
            b,
            init,
            &format!("aspp.3x3_d{r}"),
            x,
            out,
            3,
            1,
            r,
            1,
            relu,
        )?);
    }
    let pooled = b.global_avg_pool("aspp.pool", x)?;
    let pooled = conv_bn(b, init, "aspp.pool_1x1", pooled, out, 1, 1, 1, 1, relu)?;
    branches.push(b.upsample(
        "aspp.pool_up",
        pooled,
        UpsampleParams::bilinear(h as u32, w as u32),
    )?);
    let cat = b.concat("aspp.concat", &branches)?;
    conv_bn(b, init, "aspp.project", cat, out, 1, 1, 1, 1, relu)
}

/// ResNeXt-50 (32×4d) conv2 block (Xie et al. 2017, Fig. 3c).
fn resnext_block(b: &mut NetworkBuilder<'_>, init: &mut Init, size: Size) -> Result<Value> {
    let width = match size {
        Size::Full => 128,
        Size::Small => 64,
    };
    let x = b.input();
    let c = b.shape(x)?[1];
    let relu = Activation::Relu;
    let h = conv_bn(b, init, "reduce_1x1", x, width, 1, 1, 1, 1, relu)?;
    let h = conv_bn(b, init, "grouped_3x3", h, width, 3, 1, 1, 32, relu)?;
    let h = conv_bn(b, init, "expand_1x1", h, c, 1, 1, 1, 1, Activation::None)?;
    b.add("residual", x, h, relu)
}

fn decoder_width(size: Size) -> usize {
    match size {
        Size::Full => 64,
        Size::Small => 4,
    }
}

/// A transposed convolution with a folded batch norm.
#[allow(clippy::too_many_arguments)]
fn convt_bn(
    b: &mut NetworkBuilder<'_>,
    init: &mut Init,
    name: &str,
    x: Value,
    c_out: usize,
    stride: u32,
    pad: u32,
    bn: bool,
    act: Activation,
) -> Result<Value> {
    let c_in = b.shape(x)?[1];
    let shape = [c_in, c_out, 4, 4];
    // Each output gathers c_in·16/stride² terms.
    let fan_in = c_in * 16 / (stride * stride) as usize;
    let w = init.he(shape.iter().product(), fan_in);
    let norm = bn.then(|| init.bn(c_out));
    let params = ConvTranspose2dParams::default()
        .stride(stride, stride)
        .padding(Padding::uniform(pad));
    b.conv_transpose2d(
        name,
        x,
        &w,
        shape,
        None,
        norm.as_ref().map(Bn::get).as_ref(),
        params,
        act,
    )
}

/// The DCGAN generator (Radford et al. 2016) for 64×64 images; the final
/// tanh is left out (not one of the fused activations).
fn decoder_transposed(b: &mut NetworkBuilder<'_>, init: &mut Init, size: Size) -> Result<Value> {
    let g = decoder_width(size);
    let relu = Activation::Relu;
    let mut x = convt_bn(b, init, "project", b.input(), 8 * g, 1, 0, true, relu)?;
    for (i, c) in [4 * g, 2 * g, g].into_iter().enumerate() {
        x = convt_bn(b, init, &format!("up{}", i + 1), x, c, 2, 1, true, relu)?;
    }
    convt_bn(b, init, "to_rgb", x, 3, 2, 1, false, Activation::None)
}

/// The DCGAN generator with resize-convolutions: nearest ×2 then 3×3.
fn decoder_upsample(b: &mut NetworkBuilder<'_>, init: &mut Init, size: Size) -> Result<Value> {
    let g = decoder_width(size);
    let relu = Activation::Relu;
    let mut x = convt_bn(b, init, "project", b.input(), 8 * g, 1, 0, true, relu)?;
    let stages = [(4 * g, true), (2 * g, true), (g, true), (3, false)];
    for (i, (c, bn)) in stages.into_iter().enumerate() {
        let c_in = b.shape(x)?[1];
        let shape = [c, c_in, 3, 3];
        let w = init.he(shape.iter().product(), c_in * 9);
        let norm = bn.then(|| init.bn(c));
        let params = UpsampleConv2dParams {
            upsample: UpsampleParams::nearest(2, 2),
            conv: Conv2dParams::default().padding(Padding::uniform(1)),
        };
        let name = if bn {
            format!("up{}", i + 1)
        } else {
            "to_rgb".into()
        };
        x = b.upsample_conv2d(
            &name,
            x,
            &w,
            shape,
            None,
            norm.as_ref().map(Bn::get).as_ref(),
            params,
            if bn { relu } else { Activation::None },
        )?;
    }
    Ok(x)
}
