//! Networks: a small DAG of layers recorded into one command encoder, with
//! one submission and one readback.
//!
//! Build one with [`NetworkBuilder`]: every call adds a layer reading
//! earlier values and returns the [`Value`] it produces, with its shape
//! checked then and there. [`Network::forward`] records every layer into one
//! encoder and submits it once; only the output is a new tensor.
//!
//! Intermediate tensors live in a pool of buffers planned once per input
//! shape from the layers' liveness: a value's buffer returns to the pool
//! after the last layer that reads it, and the next value takes the
//! smallest free buffer that holds it (growing the largest free one when
//! none does). A layer never writes the buffer it reads. For a chain this
//! keeps the pool at about the two largest adjacent activations;
//! [`Network::memory`] reports the peak, and [`Network::verify`] checks the
//! pooled run bit for bit against a run with a buffer per value.
//!
//! ```no_run
//! use wgconv::{Activation, BatchNorm, Conv2dParams, Engine, Network, Padding};
//! # fn main() -> wgconv::Result<()> {
//! let engine = Engine::new()?;
//! let mut b = Network::builder(&engine, [1, 64, 56, 56])?;
//! let x = b.input();
//! let (w, ones, zeros) = (vec![0.01; 64 * 64 * 9], vec![1.0; 64], vec![0.0; 64]);
//! let bn = BatchNorm { gamma: &ones, beta: &zeros, mean: &zeros, var: &ones, eps: 1e-5 };
//! let same = Conv2dParams::default().padding(Padding::uniform(1));
//! // conv → BN (folded at load time) → ReLU, twice, then the residual add.
//! let h = b.conv2d_bn("conv1", x, &w, [64, 64, 3, 3], &bn, same, Activation::Relu)?;
//! let h = b.conv2d_bn("conv2", h, &w, [64, 64, 3, 3], &bn, same, Activation::None)?;
//! let y = b.add("residual", x, h, Activation::Relu)?;
//! let net = b.build(y)?;
//! let input = vec![0.5; 64 * 56 * 56];
//! let out: Vec<f32> = net.run(&engine, &input, [1, 64, 56, 56])?; // one submission, one readback
//! let check = net.verify(&engine, &input, [1, 64, 56, 56], true)?;
//! assert!(check.passed());
//! println!("peak GPU memory: {} bytes", net.memory([1, 64, 56, 56])?.peak_bytes());
//! # let _ = out; Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::geometry::{
    Activation, Conv2dParams, ConvKind, ConvTranspose2dParams, UpsampleConv2dParams, UpsampleMode,
    UpsampleParams,
};
use crate::geometry::{Pool2dParams, PoolMode};
use crate::ops::batch_norm::BatchNorm;
use crate::ops::concat::Concat;
use crate::ops::conv2d::Conv2d;
use crate::ops::conv_transpose2d::ConvTranspose2d;
use crate::ops::eltwise::Add;
use crate::ops::pool::{GlobalAvgPool, Pool2d};
use crate::ops::upsample::Upsample;
use crate::ops::upsample_conv2d::UpsampleConv2d;
use crate::ops::{ConvLayer, LayerOptions, OpParams};
use crate::plan::Goal;
use crate::reference::{self, Comparison, RefOutput, Tolerance};
use crate::tensor::{checked_len, GpuTensor, STORAGE_USAGE};

/// A tensor in a network: the input, or the output of a layer. It belongs
/// to the builder that made it; another builder rejects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Value(usize, u64);

impl Value {
    /// The value's index: 0 is the network input, `i + 1` the output of
    /// layer `i`.
    pub fn index(self) -> usize {
        self.0
    }
}

/// Distinguishes builders, so a value cannot be used with another's.
static BUILDERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One layer of a network: any op of the library.
#[derive(Debug)]
pub enum Layer {
    /// A forward convolution (every kind).
    Conv2d(Conv2d),
    /// A transposed convolution.
    ConvTranspose2d(ConvTranspose2d),
    /// Nearest or bilinear upsampling.
    Upsample(Upsample),
    /// Fused upsample + convolution.
    UpsampleConv2d(UpsampleConv2d),
    /// Elementwise add of two values (a residual), with a fused activation.
    Add(Add),
    /// Concatenation along channels.
    Concat(Concat),
    /// Max or average pooling.
    Pool2d(Pool2d),
    /// Global average pooling to `[n, c, 1, 1]`.
    GlobalAvgPool(GlobalAvgPool),
}

macro_rules! layer_from {
    ($($t:ident),*) => {$(
        impl From<$t> for Layer {
            fn from(l: $t) -> Self {
                Layer::$t(l)
            }
        }
    )*};
}
layer_from!(
    Conv2d,
    ConvTranspose2d,
    Upsample,
    UpsampleConv2d,
    Add,
    Concat,
    Pool2d,
    GlobalAvgPool
);

/// How far an output pixel sees into the network input, per axis, in input
/// pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReceptiveField {
    /// `(h, w)` input pixels.
    Pixels(u64, u64),
    /// Every input pixel (after a global pooling).
    Global,
}

impl std::fmt::Display for ReceptiveField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReceptiveField::Pixels(h, w) => write!(f, "{h}×{w}"),
            ReceptiveField::Global => f.write_str("global"),
        }
    }
}

/// Receptive field and cumulative stride ("jump") of a value, in input
/// pixels, per axis; `None` once global.
#[derive(Debug, Clone, Copy)]
struct Field(Option<[(f64, f64); 2]>);

impl Field {
    fn input() -> Self {
        Field(Some([(1.0, 1.0); 2]))
    }
    fn merge(fields: &[Field]) -> Self {
        let mut out = [(0f64, f64::INFINITY); 2];
        for f in fields {
            let Some(axes) = f.0 else {
                return Field(None);
            };
            for (o, a) in out.iter_mut().zip(axes) {
                *o = (o.0.max(a.0), o.1.min(a.1));
            }
        }
        Field(Some(out))
    }
    /// A window of `taps` positions `step` apart at stride `stride`.
    fn window(self, taps: [(u32, u32, u32); 2]) -> Self {
        Field(self.0.map(|axes| {
            let mut out = axes;
            for (o, (k, d, s)) in out.iter_mut().zip(taps) {
                let span = f64::from(k.max(1) - 1) * f64::from(d);
                *o = (o.0 + span * o.1, o.1 * f64::from(s));
            }
            out
        }))
    }
    /// Each output reads `reach` adjacent inputs and the grid is `scale`
    /// times finer.
    fn finer(self, reach: [u32; 2], scale: [u32; 2]) -> Self {
        Field(self.0.map(|axes| {
            let mut out = axes;
            for ((o, r), s) in out.iter_mut().zip(reach).zip(scale) {
                *o = (
                    o.0 + f64::from(r.max(1) - 1) * o.1,
                    o.1 / f64::from(s.max(1)),
                );
            }
            out
        }))
    }
    fn report(self) -> ReceptiveField {
        match self.0 {
            Some([h, w]) => ReceptiveField::Pixels(h.0.ceil() as u64, w.0.ceil() as u64),
            None => ReceptiveField::Global,
        }
    }
}

impl Layer {
    /// A short description of the op and its structural parameters.
    pub fn describe(&self) -> String {
        fn conv(kind: &str, w: [usize; 4], s: (u32, u32), d: (u32, u32), g: u32) -> String {
            let mut out = format!("{kind} {}×{}", w[2], w[3]);
            if s != (1, 1) {
                out += &format!(" s{}", pair(s));
            }
            if d != (1, 1) {
                out += &format!(" d{}", pair(d));
            }
            if g != 1 {
                out += &format!(" g{g}");
            }
            out
        }
        fn pair((a, b): (u32, u32)) -> String {
            if a == b {
                a.to_string()
            } else {
                format!("{a},{b}")
            }
        }
        fn act(a: Activation) -> String {
            if a == Activation::None {
                String::new()
            } else {
                format!(" + {a}")
            }
        }
        match self {
            Layer::Conv2d(l) => {
                let p = l.params();
                conv("conv", l.weight_shape(), p.stride, p.dilation, p.groups)
                    + &act(l.activation())
            }
            Layer::ConvTranspose2d(l) => {
                let p = l.params();
                conv("convT", l.weight_shape(), p.stride, p.dilation, p.groups)
                    + &act(l.activation())
            }
            Layer::Upsample(l) => {
                let p = l.params();
                format!("upsample {} ×{}", p.mode, pair(p.scale))
            }
            Layer::UpsampleConv2d(l) => {
                let p = l.params();
                format!(
                    "upsample {} ×{} + {}",
                    p.upsample.mode,
                    pair(p.upsample.scale),
                    conv(
                        "conv",
                        l.weight_shape(),
                        p.conv.stride,
                        p.conv.dilation,
                        p.conv.groups
                    )
                ) + &act(l.activation())
            }
            Layer::Add(l) => format!("add{}", act(l.activation())),
            Layer::Concat(_) => "concat".into(),
            Layer::Pool2d(l) => {
                let p = l.params();
                format!(
                    "{}pool {}×{} s{}",
                    match p.mode {
                        PoolMode::Max => "max",
                        PoolMode::Avg => "avg",
                    },
                    p.kernel.0,
                    p.kernel.1,
                    pair(p.stride)
                )
            }
            Layer::GlobalAvgPool(_) => "global avgpool".into(),
        }
    }

    /// How many inputs the layer takes: `Some(n)`, or `None` for any
    /// number ≥ 1 (concat).
    fn arity(&self) -> Option<usize> {
        match self {
            Layer::Add(_) => Some(2),
            Layer::Concat(_) => None,
            _ => Some(1),
        }
    }

    /// The output shape for these input shapes.
    fn output_shape(&self, inputs: &[[usize; 4]]) -> Result<[usize; 4]> {
        match self {
            Layer::Conv2d(l) => Ok(l.shape_for(inputs[0])?.output_shape()),
            Layer::ConvTranspose2d(l) => Ok(l.shape_for(inputs[0])?.output_shape()),
            Layer::Upsample(l) => Ok(l.shape_for(inputs[0])?.output_shape()),
            Layer::UpsampleConv2d(l) => Ok(l.shape_for(inputs[0])?.output_shape()),
            Layer::Add(l) => l.output_shape(inputs[0], inputs[1]),
            Layer::Concat(l) => l.output_shape(inputs),
            Layer::Pool2d(l) => l.output_shape(inputs[0]),
            Layer::GlobalAvgPool(l) => l.output_shape(inputs[0]),
        }
    }

    fn record_into(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        inputs: &[&GpuTensor],
        output: &GpuTensor,
    ) -> Result<()> {
        match self {
            Layer::Conv2d(l) => l.record_into(engine, encoder, inputs[0], output),
            Layer::ConvTranspose2d(l) => l.record_into(engine, encoder, inputs[0], output),
            Layer::Upsample(l) => l.record_into(engine, encoder, inputs[0], output),
            Layer::UpsampleConv2d(l) => l.record_into(engine, encoder, inputs[0], output),
            Layer::Add(l) => l.record_into(engine, encoder, inputs[0], inputs[1], output),
            Layer::Concat(l) => l.record_into(engine, encoder, inputs, output),
            Layer::Pool2d(l) => l.record_into(engine, encoder, inputs[0], output),
            Layer::GlobalAvgPool(l) => l.record_into(engine, encoder, inputs[0], output),
        }
    }

    /// The CPU reference of the layer on these inputs, and the activation
    /// the comparison must allow for; with `engine`, its error magnitude is
    /// that of the arithmetic the layer runs there (the Winograd form's for
    /// a convolution that runs in it).
    fn reference(
        &self,
        engine: Option<&Engine>,
        inputs: &[(&[f32], [usize; 4])],
    ) -> Result<(RefOutput, Activation)> {
        let (x, shape) = inputs[0];
        match self {
            Layer::Conv2d(l) => {
                let r = match engine {
                    Some(e) => l.reference_on(e, x, shape)?,
                    None => reference::conv(
                        &l.shape_for(shape)?,
                        x,
                        l.host_weight(),
                        l.host_bias(),
                        l.activation(),
                    )?,
                };
                Ok((r, l.activation()))
            }
            Layer::ConvTranspose2d(l) => Ok((
                reference::conv(
                    &l.shape_for(shape)?,
                    x,
                    l.host_weight(),
                    l.host_bias(),
                    l.activation(),
                )?,
                l.activation(),
            )),
            Layer::Upsample(l) => Ok((
                reference::upsample(&l.shape_for(shape)?, x)?,
                Activation::None,
            )),
            Layer::UpsampleConv2d(l) => Ok((
                reference::upsample_conv(
                    &l.shape_for(shape)?,
                    x,
                    l.host_weight(),
                    l.host_bias(),
                    l.activation(),
                )?,
                l.activation(),
            )),
            Layer::Add(l) => Ok((
                reference::add(x, inputs[1].0, l.activation())?,
                l.activation(),
            )),
            Layer::Concat(_) => Ok((reference::concat(inputs)?, Activation::None)),
            Layer::Pool2d(l) => Ok((reference::pool2d(l.params(), x, shape)?, Activation::None)),
            Layer::GlobalAvgPool(_) => {
                Ok((reference::global_avg_pool(x, shape)?, Activation::None))
            }
        }
    }

    /// The kernel the layer runs on `engine` for this input shape.
    fn kernel(&self, engine: &Engine, input: [usize; 4]) -> Result<String> {
        Ok(match self {
            Layer::Conv2d(l) => l.kernel_name(engine, input)?,
            Layer::ConvTranspose2d(l) => l.kernel_name(engine, input)?,
            Layer::Upsample(l) => l.plan_for(input)?.key.to_string(),
            Layer::UpsampleConv2d(l) => l.plan_for(input)?.key.to_string(),
            Layer::Add(l) => l.plan_for(engine, input)?.key.to_string(),
            Layer::Concat(_) => "buffer copies".into(),
            Layer::Pool2d(l) => l.plan_for(input)?.key.to_string(),
            Layer::GlobalAvgPool(l) => l.plan_for(input)?.key.to_string(),
        })
    }

    /// Learned parameters (weights and bias).
    fn params(&self) -> u64 {
        let count = |w: [usize; 4], b: Option<&[f32]>| {
            w.iter().product::<usize>() as u64 + b.map_or(0, |b| b.len() as u64)
        };
        match self {
            Layer::Conv2d(l) => count(l.weight_shape(), l.host_bias()),
            Layer::ConvTranspose2d(l) => count(l.weight_shape(), l.host_bias()),
            Layer::UpsampleConv2d(l) => count(l.weight_shape(), l.host_bias()),
            _ => 0,
        }
    }

    /// GPU bytes of weights and biases.
    fn weight_bytes(&self) -> u64 {
        match self {
            Layer::Conv2d(l) => l.gpu_bytes(),
            Layer::ConvTranspose2d(l) => l.gpu_bytes(),
            Layer::UpsampleConv2d(l) => l.gpu_bytes(),
            _ => 0,
        }
    }

    /// Multiply-adds of a convolution on this input (0 for other ops).
    fn macs(&self, input: [usize; 4]) -> Result<u64> {
        Ok(match self {
            Layer::Conv2d(l) => l.shape_for(input)?.flops() / 2,
            Layer::ConvTranspose2d(l) => l.shape_for(input)?.flops() / 2,
            Layer::UpsampleConv2d(l) => l.shape_for(input)?.flops() / 2,
            _ => 0,
        })
    }

    fn field(&self, inputs: &[Field]) -> Field {
        let f = Field::merge(inputs);
        let up_reach = |mode: UpsampleMode| match mode {
            UpsampleMode::Nearest => [1, 1],
            UpsampleMode::Bilinear => [2, 2],
        };
        match self {
            Layer::Conv2d(l) => {
                let (w, p) = (l.weight_shape(), l.params());
                f.window(taps(w, p.dilation, p.stride))
            }
            Layer::ConvTranspose2d(l) => {
                let (w, p) = (l.weight_shape(), l.params());
                // An output reads ceil(dilated kernel / stride) adjacent inputs.
                let reach =
                    |k: usize, d: u32, s: u32| ((k.max(1) as u32 - 1) * d + 1).div_ceil(s.max(1));
                f.finer(
                    [
                        reach(w[2], p.dilation.0, p.stride.0),
                        reach(w[3], p.dilation.1, p.stride.1),
                    ],
                    [p.stride.0, p.stride.1],
                )
            }
            Layer::Upsample(l) => {
                let p = l.params();
                f.finer(up_reach(p.mode), [p.scale.0, p.scale.1])
            }
            Layer::UpsampleConv2d(l) => {
                let (w, p) = (l.weight_shape(), l.params());
                f.finer(
                    up_reach(p.upsample.mode),
                    [p.upsample.scale.0, p.upsample.scale.1],
                )
                .window(taps(w, p.conv.dilation, p.conv.stride))
            }
            Layer::Add(_) | Layer::Concat(_) => f,
            Layer::Pool2d(l) => {
                let p = l.params();
                f.window([(p.kernel.0, 1, p.stride.0), (p.kernel.1, 1, p.stride.1)])
            }
            Layer::GlobalAvgPool(_) => Field(None),
        }
    }
}

fn taps(w: [usize; 4], d: (u32, u32), s: (u32, u32)) -> [(u32, u32, u32); 2] {
    [(w[2] as u32, d.0, s.0), (w[3] as u32, d.1, s.1)]
}

/// A layer with its name and the values it reads.
#[derive(Debug)]
pub struct Node {
    name: String,
    layer: Layer,
    inputs: Vec<Value>,
}

impl Node {
    /// The layer's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The layer.
    pub fn layer(&self) -> &Layer {
        &self.layer
    }
    /// The values it reads.
    pub fn inputs(&self) -> &[Value] {
        &self.inputs
    }
}

/// Builds a [`Network`] layer by layer; every call checks shapes against the
/// input shape given to [`NetworkBuilder::new`] and names the layer in its
/// errors.
#[derive(Debug)]
pub struct NetworkBuilder<'e> {
    engine: &'e Engine,
    id: u64,
    nodes: Vec<Node>,
    shapes: Vec<[usize; 4]>,
    goal: Goal,
}

impl<'e> NetworkBuilder<'e> {
    /// A builder for networks whose input is `[n, c, h, w]` (other input
    /// shapes are accepted at run time when every layer accepts them).
    ///
    /// # Errors
    /// [`Error::EmptyDimension`] and [`Error::SizeOverflow`] for the shape.
    pub fn new(engine: &'e Engine, input_shape: [usize; 4]) -> Result<Self> {
        checked_len("network input", input_shape)?;
        Ok(Self {
            engine,
            id: BUILDERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            nodes: Vec::new(),
            shapes: vec![input_shape],
            goal: Goal::Throughput,
        })
    }

    /// Plans the convolutions and transposed convolutions added after this
    /// call for `goal` ([`LayerOptions::goal`]): [`Goal::FirstResult`] for a
    /// network that runs once, where its kernels' compile time outweighs
    /// their speed. The default is [`Goal::Throughput`]. Upsampling
    /// convolutions ([`NetworkBuilder::upsample_conv2d`]) take the goal
    /// too ([`UpsampleConv2d::with_goal`]).
    pub fn plan_for(&mut self, goal: Goal) {
        self.goal = goal;
    }

    /// A convolution layer planned for this builder's goal, its errors
    /// naming the layer.
    fn conv_layer<P: OpParams>(
        &self,
        name: &str,
        weight: &[f32],
        weight_shape: [usize; 4],
        bias: Option<&[f32]>,
        params: P,
        activation: Activation,
    ) -> Result<ConvLayer<P>> {
        let options = LayerOptions {
            goal: self.goal,
            ..LayerOptions::default()
        };
        ConvLayer::with_options(
            self.engine,
            weight,
            weight_shape,
            bias,
            params,
            activation,
            options,
        )
        .map_err(|e| named(name, e))
    }

    /// The engine layers are created on.
    pub fn engine(&self) -> &'e Engine {
        self.engine
    }

    /// The network input.
    pub fn input(&self) -> Value {
        Value(0, self.id)
    }

    /// The shape of a value.
    ///
    /// # Errors
    /// [`Error::UnknownValue`] for a value of another builder.
    pub fn shape(&self, v: Value) -> Result<[usize; 4]> {
        self.shapes
            .get(v.0)
            .copied()
            .filter(|_| v.1 == self.id)
            .ok_or(Error::UnknownValue {
                value: v.0,
                values: self.shapes.len(),
            })
    }

    /// Adds `layer` reading `inputs` and returns its output.
    ///
    /// # Errors
    /// [`Error::DuplicateLayer`], [`Error::UnknownValue`], and
    /// [`Error::Layer`] wrapping the layer's own shape errors (also for a
    /// wrong number of inputs, as [`Error::BadShape`]).
    pub fn layer(
        &mut self,
        name: impl Into<String>,
        layer: impl Into<Layer>,
        inputs: &[Value],
    ) -> Result<Value> {
        let name = name.into();
        let layer = layer.into();
        if self.nodes.iter().any(|n| n.name == name) {
            return Err(Error::DuplicateLayer(name));
        }
        let shapes = inputs
            .iter()
            .map(|&v| self.shape(v))
            .collect::<Result<Vec<_>>>()?;
        let wrap = |e: Error| Error::Layer {
            layer: name.clone(),
            source: Box::new(e),
        };
        check_arity(&layer, inputs.len()).map_err(wrap)?;
        let out = layer.output_shape(&shapes).map_err(wrap)?;
        self.nodes.push(Node {
            name,
            layer,
            inputs: inputs.to_vec(),
        });
        self.shapes.push(out);
        Ok(Value(self.shapes.len() - 1, self.id))
    }

    /// Adds a forward convolution built from a PyTorch-layout weight.
    ///
    /// # Errors
    /// As [`Conv2d::new`] and [`NetworkBuilder::layer`].
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d(
        &mut self,
        name: &str,
        x: Value,
        weight: &[f32],
        weight_shape: [usize; 4],
        bias: Option<&[f32]>,
        params: Conv2dParams,
        activation: Activation,
    ) -> Result<Value> {
        let l: Conv2d = self.conv_layer(name, weight, weight_shape, bias, params, activation)?;
        self.layer(name, l, &[x])
    }

    /// Adds a forward convolution followed by inference-time batch norm,
    /// folded into one convolution at load time.
    ///
    /// # Errors
    /// As [`BatchNorm::fold`] and [`NetworkBuilder::conv2d`].
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_bn(
        &mut self,
        name: &str,
        x: Value,
        weight: &[f32],
        weight_shape: [usize; 4],
        bn: &BatchNorm<'_>,
        params: Conv2dParams,
        activation: Activation,
    ) -> Result<Value> {
        let folded = fold(
            name,
            Some(bn),
            ConvKind::Forward,
            weight,
            weight_shape,
            params.groups,
            None,
        )?;
        let (w, b) = with_folded(&folded, weight, None);
        self.conv2d(name, x, w, weight_shape, b, params, activation)
    }

    /// Adds a transposed convolution (weight `[c_in, c_out/groups, k_h, k_w]`),
    /// optionally followed by a folded batch norm.
    ///
    /// # Errors
    /// As [`ConvTranspose2d::new`], [`BatchNorm::fold`] and
    /// [`NetworkBuilder::layer`].
    #[allow(clippy::too_many_arguments)]
    pub fn conv_transpose2d(
        &mut self,
        name: &str,
        x: Value,
        weight: &[f32],
        weight_shape: [usize; 4],
        bias: Option<&[f32]>,
        bn: Option<&BatchNorm<'_>>,
        params: ConvTranspose2dParams,
        activation: Activation,
    ) -> Result<Value> {
        let folded = fold(
            name,
            bn,
            ConvKind::Transposed,
            weight,
            weight_shape,
            params.groups,
            bias,
        )?;
        let (weight, bias) = with_folded(&folded, weight, bias);
        let l: ConvTranspose2d =
            self.conv_layer(name, weight, weight_shape, bias, params, activation)?;
        self.layer(name, l, &[x])
    }

    /// Adds an upsampling.
    ///
    /// # Errors
    /// As [`Upsample::new`] and [`NetworkBuilder::layer`].
    pub fn upsample(&mut self, name: &str, x: Value, params: UpsampleParams) -> Result<Value> {
        let l = Upsample::new(params).map_err(|e| named(name, e))?;
        self.layer(name, l, &[x])
    }

    /// Adds a fused upsample + convolution, optionally followed by a folded
    /// batch norm.
    ///
    /// # Errors
    /// As [`UpsampleConv2d::new`], [`BatchNorm::fold`] and
    /// [`NetworkBuilder::layer`].
    #[allow(clippy::too_many_arguments)]
    pub fn upsample_conv2d(
        &mut self,
        name: &str,
        x: Value,
        weight: &[f32],
        weight_shape: [usize; 4],
        bias: Option<&[f32]>,
        bn: Option<&BatchNorm<'_>>,
        params: UpsampleConv2dParams,
        activation: Activation,
    ) -> Result<Value> {
        let folded = fold(
            name,
            bn,
            ConvKind::Forward,
            weight,
            weight_shape,
            params.conv.groups,
            bias,
        )?;
        let (weight, bias) = with_folded(&folded, weight, bias);
        let l = UpsampleConv2d::with_goal(
            self.engine,
            weight,
            weight_shape,
            bias,
            params,
            activation,
            self.goal,
        )
        .map_err(|e| named(name, e))?;
        self.layer(name, l, &[x])
    }

    /// Adds `a + b` with a fused activation (a residual connection).
    ///
    /// # Errors
    /// As [`NetworkBuilder::layer`] (the shapes must match).
    pub fn add(&mut self, name: &str, a: Value, b: Value, activation: Activation) -> Result<Value> {
        self.layer(name, Add::new(activation), &[a, b])
    }

    /// Adds a concatenation of `inputs` along channels.
    ///
    /// # Errors
    /// As [`NetworkBuilder::layer`] (batch and spatial sizes must match).
    pub fn concat(&mut self, name: &str, inputs: &[Value]) -> Result<Value> {
        self.layer(name, Concat::new(), inputs)
    }

    /// Adds max or average pooling.
    ///
    /// # Errors
    /// As [`Pool2d::new`] and [`NetworkBuilder::layer`].
    pub fn pool2d(&mut self, name: &str, x: Value, params: Pool2dParams) -> Result<Value> {
        let l = Pool2d::new(params).map_err(|e| named(name, e))?;
        self.layer(name, l, &[x])
    }

    /// Adds global average pooling.
    ///
    /// # Errors
    /// As [`NetworkBuilder::layer`].
    pub fn global_avg_pool(&mut self, name: &str, x: Value) -> Result<Value> {
        self.layer(name, GlobalAvgPool::new(), &[x])
    }

    /// The network computing `output`. Layers `output` does not depend on
    /// are dropped.
    ///
    /// # Errors
    /// [`Error::UnknownValue`], and [`Error::BadShape`] when `output` is the
    /// network input (a network has at least one layer).
    pub fn build(self, output: Value) -> Result<Network> {
        self.shape(output)?;
        if output.0 == 0 {
            return Err(Error::BadShape {
                what: "network output",
                expected: "the output of a layer, not the network input",
                actual: self.shapes[0].to_vec(),
            });
        }
        // Keep the layers the output depends on, in order, and renumber.
        let mut live = vec![false; self.shapes.len()];
        live[output.0] = true;
        for (i, node) in self.nodes.iter().enumerate().rev() {
            if live[i + 1] {
                for v in &node.inputs {
                    live[v.0] = true;
                }
            }
        }
        let mut renumber = vec![0usize; self.shapes.len()];
        let mut nodes = Vec::new();
        for (i, mut node) in self.nodes.into_iter().enumerate() {
            if live[i + 1] {
                for v in &mut node.inputs {
                    v.0 = renumber[v.0];
                }
                nodes.push(node);
                renumber[i + 1] = nodes.len();
            }
        }
        Ok(Network {
            input_shape: self.shapes[0],
            nodes,
            prepared: Mutex::new(HashMap::new()),
        })
    }
}

/// `bn` folded into a convolution's weight and bias ([`BatchNorm::fold`]),
/// if there is one; errors name the layer.
#[allow(clippy::too_many_arguments)]
fn fold(
    layer: &str,
    bn: Option<&BatchNorm<'_>>,
    kind: ConvKind,
    weight: &[f32],
    weight_shape: [usize; 4],
    groups: u32,
    bias: Option<&[f32]>,
) -> Result<Option<(Vec<f32>, Vec<f32>)>> {
    bn.map(|bn| bn.fold(kind, weight, weight_shape, groups as usize, bias))
        .transpose()
        .map_err(|e| named(layer, e))
}

/// The folded weight and bias if there are some, else the originals.
fn with_folded<'a>(
    folded: &'a Option<(Vec<f32>, Vec<f32>)>,
    weight: &'a [f32],
    bias: Option<&'a [f32]>,
) -> (&'a [f32], Option<&'a [f32]>) {
    match folded {
        Some((w, b)) => (w, Some(b)),
        None => (weight, bias),
    }
}

/// Bytes of each value (f32).
fn value_bytes(shapes: &[[usize; 4]]) -> Vec<u64> {
    shapes
        .iter()
        .map(|s| s.iter().product::<usize>() as u64 * 4)
        .collect()
}

fn named(layer: &str, e: Error) -> Error {
    Error::Layer {
        layer: layer.into(),
        source: Box::new(e),
    }
}

fn check_arity(layer: &Layer, n: usize) -> Result<()> {
    let ok = match layer.arity() {
        Some(k) => n == k,
        None => n >= 1,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::BadShape {
            what: "layer inputs",
            expected: match layer.arity() {
                Some(1) => "one input",
                Some(_) => "two inputs",
                None => "at least one input",
            },
            actual: vec![n],
        })
    }
}

/// Where each value lives when the network runs on one input shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Pool buffer of each value (`None` for the network input and output,
    /// which are the caller's and a fresh tensor).
    pub slot_of: Vec<Option<usize>>,
    /// Size of each pool buffer in bytes.
    pub slot_bytes: Vec<u64>,
}

impl MemoryPlan {
    /// Plans the pool for values of `bytes` (value 0 the input, value
    /// `i + 1` the output of layer `i`, the last value the network output),
    /// where layer `i` reads the values `inputs[i]`. Values of 0 bytes get
    /// no buffer.
    pub fn new(bytes: &[u64], inputs: &[Vec<usize>]) -> Self {
        let values = bytes.len();
        let mut last_use = vec![0usize; values];
        for (i, ins) in inputs.iter().enumerate() {
            for &v in ins {
                last_use[v] = last_use[v].max(i);
            }
        }
        let mut slot_of = vec![None; values];
        let mut slot_bytes: Vec<u64> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        let output = values - 1;
        for (i, ins) in inputs.iter().enumerate() {
            let v = i + 1;
            // A value of 0 bytes is never stored (a convolution fused into
            // the add that reads it) and takes no buffer.
            if v != output && bytes[v] > 0 {
                let need = bytes[v];
                // The smallest free buffer that holds the value, else the
                // largest free one grown, else a new one.
                let fit = free
                    .iter()
                    .enumerate()
                    .filter(|(_, &s)| slot_bytes[s] >= need)
                    .min_by_key(|(_, &s)| slot_bytes[s])
                    .map(|(k, _)| k)
                    .or_else(|| {
                        free.iter()
                            .enumerate()
                            .max_by_key(|(_, &s)| slot_bytes[s])
                            .map(|(k, _)| k)
                    });
                let slot = match fit {
                    Some(k) => free.swap_remove(k),
                    None => {
                        slot_bytes.push(0);
                        slot_bytes.len() - 1
                    }
                };
                slot_bytes[slot] = slot_bytes[slot].max(need);
                slot_of[v] = Some(slot);
            }
            // Inputs read for the last time here free their buffers for the
            // next layer (never for this one: it must not write what it reads).
            let mut seen = Vec::new();
            for &u in ins {
                if last_use[u] == i && !seen.contains(&u) {
                    seen.push(u);
                    if let Some(s) = slot_of[u] {
                        free.push(s);
                    }
                }
            }
        }
        Self {
            slot_of,
            slot_bytes,
        }
    }
}

/// GPU memory a network uses on one input shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryReport {
    /// The pooled intermediate buffers.
    pub pool_bytes: u64,
    /// How many pooled buffers.
    pub pool_buffers: usize,
    /// The input tensor.
    pub input_bytes: u64,
    /// The output tensor.
    pub output_bytes: u64,
    /// Packed weights and biases of every layer.
    pub weight_bytes: u64,
    /// What the intermediates would take with a buffer each.
    pub unpooled_bytes: u64,
    /// The largest single step: one layer's inputs plus its output. No plan
    /// can go below this.
    pub largest_step_bytes: u64,
}

impl MemoryReport {
    /// Peak: input, output, pool and weights (uniforms, the scratch
    /// buffers of chunked layers and the two transformed-tile tensors each
    /// Winograd layer keeps per input shape — `4·(m+2)²·(C + K)` bytes per
    /// tile, at most 32 MiB each — are not counted).
    pub fn peak_bytes(&self) -> u64 {
        self.input_bytes + self.output_bytes + self.pool_bytes + self.weight_bytes
    }
}

/// The network's plan for one input shape: value shapes, the memory plan and
/// the pool's buffers (allocated on first use).
#[derive(Debug)]
struct Prepared {
    shapes: Vec<[usize; 4]>,
    runs: Vec<Run>,
    memory: MemoryPlan,
    buffers: Vec<Arc<wgpu::Buffer>>,
}

/// How a layer runs in the pooled plan ([`Network::runs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// As itself.
    Plain,
    /// A convolution whose only reader is the residual add at layer
    /// `into`: it runs there, fused with the add, and its output is never
    /// stored.
    FusedAway { into: usize },
    /// A residual add that runs the convolution `conv` (a layer index)
    /// fused with it, adding the value `skip` (a value index).
    Fused { conv: usize, skip: usize },
}

/// One layer of the plan report ([`Network::report`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerReport {
    /// The layer's name.
    pub name: String,
    /// What it computes ([`Layer::describe`]).
    pub op: String,
    /// Names of the values it reads (`input` for the network input).
    pub inputs: Vec<String>,
    /// Its output shape.
    pub output_shape: [usize; 4],
    /// Receptive field of an output pixel in the network input.
    pub receptive_field: ReceptiveField,
    /// Learned parameters.
    pub params: u64,
    /// Multiply-adds (convolutions; 0 for the other ops).
    pub macs: u64,
    /// The kernel the planner chose (with its specialisation).
    pub kernel: String,
    /// For the pointwise half of a depthwise-separable pair: the standard
    /// convolution the pair replaces.
    pub separable: Option<SeparableCost>,
}

/// A depthwise + pointwise pair against the standard convolution with the
/// same kernel, stride, dilation, input and output channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeparableCost {
    /// The depthwise layer's name.
    pub depthwise: String,
    /// Multiply-adds of the pair.
    pub macs: u64,
    /// Parameters of the pair.
    pub params: u64,
    /// Multiply-adds of the standard convolution.
    pub standard_macs: u64,
    /// Parameters of the standard convolution (with a bias).
    pub standard_params: u64,
}

/// A network's verification ([`Network::verify`]).
#[derive(Debug, Clone)]
pub struct NetworkCheck {
    /// Each layer's GPU output against the CPU reference applied to the
    /// layer's GPU inputs, under [`Tolerance::F32Accumulation`].
    pub layers: Vec<(String, Comparison)>,
    /// Whether the pooled run's output equals, bit for bit, the output of a
    /// run with a buffer per value.
    pub pooled_matches: bool,
    /// The GPU output against the CPU reference run end to end (its own
    /// f32-rounded values between layers), if asked for: reported, and
    /// passed when within [`END_TO_END_TOLERANCE`] of the output's scale.
    pub end_to_end: Option<Comparison>,
}

/// End to end, each layer's rounding propagates through the layers after
/// it, so no per-element bound like [`Tolerance::F32Accumulation`] applies;
/// the per-layer checks carry the rigour. End to end, the GPU output must
/// be within this fraction of the largest reference magnitude, a sanity
/// bound many orders above f32 rounding (2⁻²⁴ ≈ 6e-8) and far below the
/// error of any wrong index.
pub const END_TO_END_TOLERANCE: f64 = 1e-3;

impl NetworkCheck {
    /// Every layer within its bound, the pooled run identical, and the end
    /// to end comparison (if run) within its bound.
    pub fn passed(&self) -> bool {
        self.pooled_matches
            && self.layers.iter().all(|(_, c)| c.passed)
            && self.end_to_end.as_ref().is_none_or(|c| c.passed)
    }

    /// The layer whose comparison came closest to (or went over) its bound.
    pub fn worst(&self) -> Option<&(String, Comparison)> {
        self.layers
            .iter()
            .max_by(|a, b| a.1.worst_ratio.total_cmp(&b.1.worst_ratio))
    }
}

/// A network of layers, run as one submission. See the module docs.
#[derive(Debug)]
pub struct Network {
    input_shape: [usize; 4],
    nodes: Vec<Node>,
    prepared: Mutex<HashMap<[usize; 4], Arc<Prepared>>>,
}

/// Where [`Network::record_with`] calls its hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Before the first layer.
    Start,
    /// After layer `i` (its index in [`Network::layers`]).
    After(usize),
}

impl Network {
    /// A builder; see [`NetworkBuilder::new`].
    ///
    /// # Errors
    /// As [`NetworkBuilder::new`].
    pub fn builder(engine: &Engine, input_shape: [usize; 4]) -> Result<NetworkBuilder<'_>> {
        NetworkBuilder::new(engine, input_shape)
    }

    /// The input shape the network was built for.
    pub fn input_shape(&self) -> [usize; 4] {
        self.input_shape
    }

    /// The layers, in the order they run.
    pub fn layers(&self) -> &[Node] {
        &self.nodes
    }

    /// The values each layer reads, by index.
    fn inputs(&self) -> Vec<Vec<usize>> {
        self.nodes
            .iter()
            .map(|n| n.inputs.iter().map(|v| v.0).collect())
            .collect()
    }

    /// Every value's shape for an input shape (value 0 is the input).
    ///
    /// # Errors
    /// [`Error::Layer`] for the first layer that rejects its input.
    pub fn shapes(&self, input: [usize; 4]) -> Result<Vec<[usize; 4]>> {
        checked_len("network input", input)?;
        let mut shapes = vec![input];
        for node in &self.nodes {
            let ins: Vec<[usize; 4]> = node.inputs.iter().map(|v| shapes[v.0]).collect();
            shapes.push(
                node.layer
                    .output_shape(&ins)
                    .map_err(|e| named(&node.name, e))?,
            );
        }
        Ok(shapes)
    }

    /// The output shape for an input shape.
    ///
    /// # Errors
    /// As [`Network::shapes`].
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        Ok(*self.shapes(input)?.last().unwrap_or(&input))
    }

    fn prepared(&self, engine: &Engine, input: [usize; 4]) -> Result<Arc<Prepared>> {
        let mut map = self
            .prepared
            .lock()
            .map_err(|_| Error::Validation("network plan cache lock poisoned".into()))?;
        if let Some(p) = map.get(&input) {
            return Ok(Arc::clone(p));
        }
        let shapes = self.shapes(input)?;
        let runs = self.runs(engine, &shapes)?;
        let (bytes, inputs) = self.run_values(&shapes, &runs);
        let memory = MemoryPlan::new(&bytes, &inputs);
        let buffers = engine.scoped(|| {
            memory
                .slot_bytes
                .iter()
                .map(|&size| {
                    engine.check_buffer("network buffer", size)?;
                    Ok(Arc::new(engine.device().create_buffer(
                        &wgpu::BufferDescriptor {
                            label: Some("wgconv network pool"),
                            size,
                            usage: STORAGE_USAGE,
                            mapped_at_creation: false,
                        },
                    )))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let p = Arc::new(Prepared {
            shapes,
            runs,
            memory,
            buffers,
        });
        map.insert(input, Arc::clone(&p));
        Ok(p)
    }

    /// How each layer runs on `engine` for these value shapes: a
    /// convolution (`Conv2d`) whose output only a residual add reads runs
    /// at the add, fused with it (one kernel, its output never stored),
    /// where the layer can fuse ([`crate::Conv2d`] without an activation of
    /// its own, on the direct `conv2d_tiled` path). The add's first input
    /// is tried first.
    fn runs(&self, engine: &Engine, shapes: &[[usize; 4]]) -> Result<Vec<Run>> {
        let mut readers = vec![0usize; shapes.len()];
        for node in &self.nodes {
            for v in &node.inputs {
                readers[v.0] += 1;
            }
        }
        let mut runs = vec![Run::Plain; self.nodes.len()];
        for (j, node) in self.nodes.iter().enumerate() {
            let Layer::Add(add) = &node.layer else {
                continue;
            };
            let [a, b] = [node.inputs[0].0, node.inputs[1].0];
            for (x, skip) in [(a, b), (b, a)] {
                if x == 0 || readers[x] != 1 {
                    continue;
                }
                let conv = x - 1;
                let Layer::Conv2d(c) = &self.nodes[conv].layer else {
                    continue;
                };
                let fits = c
                    .residual_plan(
                        engine,
                        shapes[self.nodes[conv].inputs[0].0],
                        add.activation(),
                    )
                    .map_err(|e| named(&self.nodes[conv].name, e))?
                    .is_some();
                if fits {
                    runs[conv] = Run::FusedAway { into: j };
                    runs[j] = Run::Fused { conv, skip };
                    break;
                }
            }
        }
        Ok(runs)
    }

    /// Value bytes and the values each layer reads as `runs` run the
    /// network: a convolution fused away stores nothing and reads nothing
    /// at its own place; the add it is fused into reads its input and the
    /// skip.
    fn run_values(&self, shapes: &[[usize; 4]], runs: &[Run]) -> (Vec<u64>, Vec<Vec<usize>>) {
        let mut bytes = value_bytes(shapes);
        let mut inputs = self.inputs();
        for (i, run) in runs.iter().enumerate() {
            match *run {
                Run::Plain => {}
                Run::FusedAway { .. } => {
                    bytes[i + 1] = 0;
                    inputs[i].clear();
                }
                Run::Fused { conv, skip } => {
                    inputs[i] = vec![self.nodes[conv].inputs[0].0, skip];
                }
            }
        }
        (bytes, inputs)
    }

    /// The memory plan for an input shape (without allocating it), with a
    /// buffer for every value: no layer fused (see [`Network::memory_on`]).
    ///
    /// # Errors
    /// As [`Network::shapes`].
    pub fn memory_plan(&self, input: [usize; 4]) -> Result<MemoryPlan> {
        let bytes = value_bytes(&self.shapes(input)?);
        Ok(MemoryPlan::new(&bytes, &self.inputs()))
    }

    /// GPU memory the network uses on an input shape with every value
    /// stored: an upper bound on what any engine runs
    /// ([`Network::memory_on`] gives the plan of one engine, which may
    /// fuse layers).
    ///
    /// # Errors
    /// As [`Network::shapes`].
    pub fn memory(&self, input: [usize; 4]) -> Result<MemoryReport> {
        let shapes = self.shapes(input)?;
        Ok(self.memory_report(&value_bytes(&shapes), &self.inputs()))
    }

    /// GPU memory the network uses on an input shape as `engine` runs it:
    /// a convolution fused with the residual add after it stores no output
    /// (see [`Network::report`]).
    ///
    /// # Errors
    /// As [`Network::shapes`], and the planner's errors.
    pub fn memory_on(&self, engine: &Engine, input: [usize; 4]) -> Result<MemoryReport> {
        let shapes = self.shapes(input)?;
        let runs = self.runs(engine, &shapes)?;
        let (bytes, inputs) = self.run_values(&shapes, &runs);
        let mut report = self.memory_report(&bytes, &inputs);
        // Every value would be stored without fusion.
        let all = value_bytes(&shapes);
        report.unpooled_bytes = all[1..all.len() - 1].iter().sum();
        Ok(report)
    }

    /// The report of the pool planned for values of `bytes` read as `inputs` says.
    fn memory_report(&self, bytes: &[u64], inputs: &[Vec<usize>]) -> MemoryReport {
        let plan = MemoryPlan::new(bytes, inputs);
        let last = bytes.len() - 1;
        MemoryReport {
            pool_bytes: plan.slot_bytes.iter().sum(),
            pool_buffers: plan.slot_bytes.len(),
            input_bytes: bytes[0],
            output_bytes: bytes[last],
            weight_bytes: self.nodes.iter().map(|n| n.layer.weight_bytes()).sum(),
            unpooled_bytes: bytes[1..last].iter().sum(),
            largest_step_bytes: inputs
                .iter()
                .enumerate()
                .map(|(i, ins)| {
                    let mut ins = ins.clone();
                    ins.sort_unstable();
                    ins.dedup();
                    ins.iter().map(|&v| bytes[v]).sum::<u64>() + bytes[i + 1]
                })
                .max()
                .unwrap_or(0),
        }
    }

    /// Multiply-adds of every convolution on an input shape.
    ///
    /// # Errors
    /// As [`Network::shapes`].
    pub fn macs(&self, input: [usize; 4]) -> Result<u64> {
        let shapes = self.shapes(input)?;
        self.nodes.iter().try_fold(
            0u64,
            |acc, n| Ok(acc + n.layer.macs(shapes[n.inputs[0].0])?),
        )
    }

    /// Records the network on `input` into `encoder` and returns the output
    /// (a new tensor, valid once the encoder's commands run).
    ///
    /// # Errors
    /// [`Error::Layer`] wrapping the first layer's error.
    pub fn record(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        input: &GpuTensor,
    ) -> Result<GpuTensor> {
        self.record_with(engine, encoder, input, &mut |_, _| Ok(()))
    }

    /// [`Network::record`], calling `hook` before the first layer and after
    /// each (to write timestamps, for example).
    ///
    /// # Errors
    /// As [`Network::record`], and the hook's errors.
    pub fn record_with(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        input: &GpuTensor,
        hook: &mut dyn FnMut(&mut wgpu::CommandEncoder, Step) -> Result<()>,
    ) -> Result<GpuTensor> {
        let prepared = self.prepared(engine, input.shape())?;
        let output_shape = *prepared.shapes.last().unwrap_or(&input.shape());
        let output = GpuTensor::empty(engine, output_shape)?;
        let last = prepared.shapes.len() - 1;
        let tensor = |v: usize| -> Result<GpuTensor> {
            if v == 0 {
                return Ok(input.clone());
            }
            if v == last {
                return Ok(output.clone());
            }
            let slot = prepared.memory.slot_of[v].ok_or(Error::Internal {
                what: "network value without a buffer",
                expected: 1,
                actual: 0,
            })?;
            Ok(GpuTensor::in_buffer(
                Arc::clone(&prepared.buffers[slot]),
                prepared.shapes[v],
            ))
        };
        hook(encoder, Step::Start)?;
        for (i, node) in self.nodes.iter().enumerate() {
            match prepared.runs[i] {
                Run::Plain => {
                    let ins = node
                        .inputs
                        .iter()
                        .map(|v| tensor(v.0))
                        .collect::<Result<Vec<_>>>()?;
                    let refs: Vec<&GpuTensor> = ins.iter().collect();
                    node.layer
                        .record_into(engine, encoder, &refs, &tensor(i + 1)?)
                        .map_err(|e| named(&node.name, e))?;
                }
                // Recorded at the add it is fused into.
                Run::FusedAway { .. } => {}
                Run::Fused { conv, skip } => {
                    let (Layer::Conv2d(c), Layer::Add(add)) =
                        (&self.nodes[conv].layer, &node.layer)
                    else {
                        return Err(Error::Internal {
                            what: "fused layers that are a convolution and an add",
                            expected: 2,
                            actual: 0,
                        });
                    };
                    let conv_name = &self.nodes[conv].name;
                    let x = tensor(self.nodes[conv].inputs[0].0)?;
                    let out = tensor(i + 1)?;
                    let fused = c
                        .record_residual_into(
                            engine,
                            encoder,
                            &x,
                            &tensor(skip)?,
                            add.activation(),
                            &out,
                        )
                        .map_err(|e| named(conv_name, e))?;
                    if !fused {
                        // The route the layer records differs from the one
                        // planned (the autotuner chose another on first
                        // use): the convolution into a tensor of its own,
                        // then the add.
                        let y = GpuTensor::empty(engine, prepared.shapes[conv + 1])
                            .map_err(|e| named(conv_name, e))?;
                        c.record_into(engine, encoder, &x, &y)
                            .map_err(|e| named(conv_name, e))?;
                        let ins = node
                            .inputs
                            .iter()
                            .map(|v| {
                                if v.0 == conv + 1 {
                                    Ok(y.clone())
                                } else {
                                    tensor(v.0)
                                }
                            })
                            .collect::<Result<Vec<_>>>()?;
                        add.record_into(engine, encoder, &ins[0], &ins[1], &out)
                            .map_err(|e| named(&node.name, e))?;
                    }
                }
            }
            hook(encoder, Step::After(i))?;
        }
        Ok(output)
    }

    /// Records the network with a buffer per value and returns every value
    /// (index 0 the input): what [`Network::verify`] compares against.
    ///
    /// # Errors
    /// As [`Network::record`].
    pub fn record_traced(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        input: &GpuTensor,
    ) -> Result<Vec<GpuTensor>> {
        let shapes = self.shapes(input.shape())?;
        let mut values = vec![input.clone()];
        for (node, &shape) in self.nodes.iter().zip(&shapes[1..]) {
            let out = GpuTensor::empty(engine, shape).map_err(|e| named(&node.name, e))?;
            let refs: Vec<&GpuTensor> = node.inputs.iter().map(|v| &values[v.0]).collect();
            node.layer
                .record_into(engine, encoder, &refs, &out)
                .map_err(|e| named(&node.name, e))?;
            values.push(out);
        }
        Ok(values)
    }

    /// Runs the network on `input` as one submission; the result stays on
    /// the GPU.
    ///
    /// # Errors
    /// As [`Network::record`].
    pub fn forward(&self, engine: &Engine, input: &GpuTensor) -> Result<GpuTensor> {
        crate::ops::submit_recorded(engine, "wgconv network", |enc| {
            self.record(engine, enc, input)
        })
    }

    /// Uploads `input`, runs the network as one submission and reads the
    /// output back (one readback).
    ///
    /// # Errors
    /// As [`GpuTensor::upload`], [`Network::record`] and [`GpuTensor::read`].
    pub fn run(&self, engine: &Engine, input: &[f32], input_shape: [usize; 4]) -> Result<Vec<f32>> {
        let x = GpuTensor::upload(engine, input, input_shape)?;
        self.forward(engine, &x)?.read(engine)
    }

    /// Runs the CPU reference end to end: each layer's f64 reference on its
    /// inputs, rounded to f32 before the next layer reads it (as the GPU
    /// stores it). Returns the output layer's reference.
    ///
    /// # Errors
    /// As [`Network::shapes`], and the references' length errors.
    pub fn reference(&self, input: &[f32], input_shape: [usize; 4]) -> Result<RefOutput> {
        let shapes = self.shapes(input_shape)?;
        let len = checked_len("network input", input_shape)?;
        if input.len() != len {
            return Err(Error::DataLength {
                what: "network input",
                shape: input_shape.to_vec(),
                expected: len,
                actual: input.len(),
            });
        }
        let mut values: Vec<Option<Vec<f32>>> = vec![None; shapes.len()];
        values[0] = Some(input.to_vec());
        let mut last_use = vec![0usize; shapes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            for v in &node.inputs {
                last_use[v.0] = i;
            }
        }
        let mut out = None;
        for (i, node) in self.nodes.iter().enumerate() {
            let ins = node
                .inputs
                .iter()
                .map(|v| {
                    values[v.0]
                        .as_deref()
                        .map(|d| (d, shapes[v.0]))
                        .ok_or(Error::Internal {
                            what: "reference value freed early",
                            expected: 1,
                            actual: 0,
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            let (r, _) = node
                .layer
                .reference(None, &ins)
                .map_err(|e| named(&node.name, e))?;
            if i + 1 == self.nodes.len() {
                out = Some(r);
            } else {
                values[i + 1] = Some(r.to_f32());
            }
            for v in &node.inputs {
                if last_use[v.0] == i {
                    values[v.0] = None;
                }
            }
        }
        out.ok_or(Error::Internal {
            what: "network without layers",
            expected: 1,
            actual: 0,
        })
    }

    /// Verifies the network on `input`: runs it with a buffer per value and
    /// checks every layer's GPU output against the CPU reference applied to
    /// that layer's GPU inputs; runs it pooled and checks the output is
    /// identical; and with `end_to_end`, also compares the output with the
    /// CPU reference run end to end ([`Network::reference`]).
    ///
    /// # Errors
    /// Device, readback and shape errors (a mismatch is not an error: see
    /// [`NetworkCheck::passed`]).
    pub fn verify(
        &self,
        engine: &Engine,
        input: &[f32],
        input_shape: [usize; 4],
        end_to_end: bool,
    ) -> Result<NetworkCheck> {
        let x = GpuTensor::upload(engine, input, input_shape)?;
        let traced = crate::ops::submit_recorded(engine, "wgconv network traced", |enc| {
            self.record_traced(engine, enc, &x)
        })?;
        let host: Vec<Vec<f32>> = std::iter::once(Ok(input.to_vec()))
            .chain(traced[1..].iter().map(|t| t.read(engine)))
            .collect::<Result<_>>()?;
        let pooled = self.forward(engine, &x)?.read(engine)?;
        let gpu_out = host.last().map(Vec::as_slice).unwrap_or(&[]);
        let pooled_matches = pooled.len() == gpu_out.len()
            && pooled
                .iter()
                .zip(gpu_out)
                .all(|(a, b)| a.to_bits() == b.to_bits());
        let mut layers = Vec::with_capacity(self.nodes.len());
        for (i, node) in self.nodes.iter().enumerate() {
            let ins: Vec<(&[f32], [usize; 4])> = node
                .inputs
                .iter()
                .map(|v| (host[v.0].as_slice(), traced[v.0].shape()))
                .collect();
            let (r, act) = node
                .layer
                .reference(Some(engine), &ins)
                .map_err(|e| named(&node.name, e))?;
            let c = reference::compare(&r, act, &host[i + 1], Tolerance::F32Accumulation)?;
            layers.push((node.name.clone(), c));
        }
        let end_to_end = if end_to_end {
            let r = self.reference(input, input_shape)?;
            let scale = r.values.iter().fold(0f64, |m, v| m.max(v.abs()));
            Some(reference::compare(
                &r,
                Activation::None,
                &pooled,
                Tolerance::Fixed {
                    abs: END_TO_END_TOLERANCE * scale,
                    rel: 0.0,
                },
            )?)
        } else {
            None
        };
        Ok(NetworkCheck {
            layers,
            pooled_matches,
            end_to_end,
        })
    }

    /// The plan report: per layer its op, output shape, receptive field,
    /// parameters, multiply-adds and chosen kernel, with the standard
    /// convolution each depthwise-separable pair replaces. A convolution
    /// fused with the residual add after it reports `fused into <add>`, and
    /// the add the fused kernel, `<key> (with <conv>)`.
    ///
    /// # Errors
    /// As [`Network::shapes`].
    pub fn report(&self, engine: &Engine, input: [usize; 4]) -> Result<Vec<LayerReport>> {
        let shapes = self.shapes(input)?;
        let runs = self.runs(engine, &shapes)?;
        let mut fields = vec![Field::input()];
        let mut readers = vec![0usize; shapes.len()];
        for node in &self.nodes {
            for v in &node.inputs {
                readers[v.0] += 1;
            }
        }
        let value_name = |v: usize| {
            if v == 0 {
                "input".to_string()
            } else {
                self.nodes[v - 1].name.clone()
            }
        };
        let mut out: Vec<LayerReport> = Vec::with_capacity(self.nodes.len());
        for (i, node) in self.nodes.iter().enumerate() {
            let ins: Vec<Field> = node.inputs.iter().map(|v| fields[v.0]).collect();
            let field = node.layer.field(&ins);
            fields.push(field);
            let x = shapes[node.inputs[0].0];
            let wrap = |e| named(&node.name, e);
            let macs = node.layer.macs(x).map_err(wrap)?;
            let params = node.layer.params();
            let separable = self.separable(i, &readers, &shapes, macs, params, &out);
            out.push(LayerReport {
                name: node.name.clone(),
                op: node.layer.describe(),
                inputs: node.inputs.iter().map(|v| value_name(v.0)).collect(),
                output_shape: shapes[i + 1],
                receptive_field: field.report(),
                params,
                macs,
                kernel: match runs[i] {
                    Run::Plain => node.layer.kernel(engine, x).map_err(wrap)?,
                    Run::FusedAway { into } => format!("fused into {}", self.nodes[into].name),
                    Run::Fused { conv, .. } => {
                        let (c, add) = (&self.nodes[conv], &node.layer);
                        let plan = match (&c.layer, add) {
                            (Layer::Conv2d(l), Layer::Add(a)) => l
                                .residual_plan(engine, shapes[c.inputs[0].0], a.activation())
                                .map_err(|e| named(&c.name, e))?,
                            _ => None,
                        };
                        match plan {
                            Some(p) => format!("{} (with {})", p.key, c.name),
                            None => node.layer.kernel(engine, x).map_err(wrap)?,
                        }
                    }
                },
                separable,
            });
        }
        Ok(out)
    }

    /// If layer `i` is a pointwise convolution reading only the output of a
    /// depthwise one (read by nothing else), the pair's cost against the
    /// standard convolution with the depthwise kernel.
    fn separable(
        &self,
        i: usize,
        readers: &[usize],
        shapes: &[[usize; 4]],
        macs: u64,
        params: u64,
        done: &[LayerReport],
    ) -> Option<SeparableCost> {
        let Layer::Conv2d(pw) = &self.nodes[i].layer else {
            return None;
        };
        let v = self.nodes[i].inputs[0].0;
        let ws = pw.weight_shape();
        if v == 0 || readers[v] != 1 || ws[2] != 1 || ws[3] != 1 || pw.params().groups != 1 {
            return None;
        }
        let Layer::Conv2d(dw) = &self.nodes[v - 1].layer else {
            return None;
        };
        let dw_in = shapes[self.nodes[v - 1].inputs[0].0];
        if dw.params().groups as usize != dw_in[1] || dw_in[1] < 2 {
            return None;
        }
        let prev = &done[v - 1];
        let (k, out) = (dw.weight_shape(), shapes[i + 1]);
        let kk = (k[2] * k[3]) as u64;
        let (c_in, c_out) = (dw_in[1] as u64, out[1] as u64);
        Some(SeparableCost {
            depthwise: prev.name.clone(),
            macs: prev.macs + macs,
            params: prev.params + params,
            standard_macs: kk * c_in * c_out * (out[0] * out[2] * out[3]) as u64,
            standard_params: kk * c_in * c_out + c_out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryPlan;
    use crate::conformance::Rng;

    /// Checks a plan: every pooled value fits its buffer, values alive at
    /// the same time never share one, and no layer writes a buffer it reads.
    fn check(bytes: &[u64], inputs: &[Vec<usize>], plan: &MemoryPlan) {
        let values = bytes.len();
        let out = values - 1;
        let mut last = vec![0usize; values];
        for (i, ins) in inputs.iter().enumerate() {
            for &v in ins {
                last[v] = last[v].max(i);
            }
        }
        assert_eq!(plan.slot_of[0], None);
        assert_eq!(plan.slot_of[out], None);
        for v in 1..out {
            if bytes[v] == 0 {
                assert_eq!(plan.slot_of[v], None, "value {v} of 0 bytes has a buffer");
                continue;
            }
            let s = plan.slot_of[v].expect("intermediate without a buffer");
            assert!(plan.slot_bytes[s] >= bytes[v], "value {v} does not fit");
            // Alive from its producer (layer v − 1) to its last reader.
            for u in v + 1..out {
                if plan.slot_of[u] == Some(s) {
                    assert!(u - 1 > last[v], "values {v} and {u} overlap in buffer {s}");
                }
            }
        }
        for (i, ins) in inputs.iter().enumerate() {
            if let Some(s) = plan.slot_of[i + 1] {
                for &v in ins {
                    assert_ne!(plan.slot_of[v], Some(s), "layer {i} writes what it reads");
                }
            }
        }
    }

    #[test]
    fn a_chain_ping_pongs_between_two_buffers() {
        let bytes = vec![64u64; 10];
        let inputs: Vec<Vec<usize>> = (0..9).map(|i| vec![i]).collect();
        let plan = MemoryPlan::new(&bytes, &inputs);
        check(&bytes, &inputs, &plan);
        assert_eq!(plan.slot_bytes, vec![64, 64]);
    }

    #[test]
    fn a_residual_keeps_its_skip_alive() {
        // 0 → a → b → c; d = a + c; out = f(d).
        let bytes = vec![16, 16, 32, 16, 16, 16];
        let inputs = vec![vec![0], vec![1], vec![2], vec![1, 3], vec![4]];
        let plan = MemoryPlan::new(&bytes, &inputs);
        check(&bytes, &inputs, &plan);
        assert_eq!(plan.slot_bytes.len(), 3, "{plan:?}");
    }

    #[test]
    fn a_fused_convolution_takes_no_buffer_and_keeps_its_input_alive() {
        // 0 → a → b → c; d = a + c; out = f(d), with c fused into d: c is
        // never stored, d reads b (c's input) and a, and b's buffer stays
        // taken until d.
        let bytes = vec![16, 16, 32, 0, 16, 16];
        let inputs = vec![vec![0], vec![1], vec![], vec![2, 1], vec![4]];
        let plan = MemoryPlan::new(&bytes, &inputs);
        check(&bytes, &inputs, &plan);
        assert_eq!(plan.slot_of[3], None);
        assert_eq!(plan.slot_bytes.len(), 3, "{plan:?}");
    }

    #[test]
    fn random_dags_never_alias_live_values() {
        let mut rng = Rng::new(7);
        for _ in 0..500 {
            let layers = rng.range(1, 12) as usize;
            let bytes: Vec<u64> = (0..=layers)
                .map(|_| 4 * u64::from(rng.range(1, 64)))
                .collect();
            let inputs: Vec<Vec<usize>> = (0..layers)
                .map(|i| {
                    (0..rng.range(1, 3))
                        .map(|_| rng.range(0, i as u32) as usize)
                        .collect()
                })
                .collect();
            let plan = MemoryPlan::new(&bytes, &inputs);
            check(&bytes, &inputs, &plan);
        }
    }
}
