//! # wgconv
//!
//! A GPU convolution engine on wgpu: every convolution a modern CNN uses,
//! exact to PyTorch/ONNX semantics (NCHW f32, conv weight `[K, C/G, kh, kw]`),
//! verified against a CPU reference with f64 accumulation.
//!
//! ```no_run
//! use wgconv::{Activation, Conv2d, Conv2dParams, Engine, GpuTensor, Padding};
//! # fn main() -> wgconv::Result<()> {
//! let engine = Engine::new()?;
//! let x = GpuTensor::upload(&engine, &vec![1.0; 3 * 8 * 8], [1, 3, 8, 8])?;
//! let w = vec![0.1; 16 * 3 * 3 * 3];
//! let conv = Conv2d::new(
//!     &engine,
//!     &w,
//!     [16, 3, 3, 3],
//!     None,
//!     Conv2dParams::default().padding(Padding::uniform(1)),
//!     Activation::Relu,
//! )?;
//! let y = conv.forward(&engine, &x)?; // stays on the GPU
//! let host: Vec<f32> = y.read(&engine)?; // explicit readback
//! assert_eq!(host.len(), 16 * 8 * 8);
//! # Ok(()) }
//! ```
//!
//! Layers chain into networks that run as one submission with one readback,
//! with a liveness-planned buffer pool: see [`net`] and the reference
//! networks in [`nets`].
#![warn(missing_docs)]

pub mod autotune;
pub mod chunk;
pub mod codegen;
pub mod conformance;
pub mod engine;
pub mod error;
pub mod geometry;
pub mod host;
pub mod net;
pub mod nets;
pub mod npy;
pub mod ops;
pub mod pipelines;
pub mod plan;
pub mod reference;
pub mod suite;
pub mod tensor;
pub mod timing;
pub mod winograd;

pub use chunk::{ChunkLevel, Chunking};
pub use engine::{AdapterReport, Engine, EngineOptions};
pub use error::{Axis, Error, Result};
pub use geometry::{
    Activation, Conv2dParams, Conv2dShape, ConvKind, ConvTranspose2dParams, Padding, Pool2dParams,
    Pool2dShape, PoolMode, UpsampleConv2dParams, UpsampleConv2dShape, UpsampleMode, UpsampleParams,
    UpsampleShape,
};
pub use net::{Network, NetworkBuilder};
pub use ops::batch_norm::BatchNorm;
pub use ops::concat::Concat;
pub use ops::conv2d::{Conv2d, DepthwiseSeparable};
pub use ops::conv_transpose2d::ConvTranspose2d;
pub use ops::eltwise::Add;
pub use ops::pool::{GlobalAvgPool, Pool2d};
pub use ops::upsample::Upsample;
pub use ops::upsample_conv2d::UpsampleConv2d;
pub use ops::{ConvLayer, LayerOptions, OpParams};
pub use pipelines::{Kernel, KernelKey};
pub use reference::{Comparison, Tolerance};
pub use tensor::GpuTensor;
