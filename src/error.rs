//! The one error type of the library.
//!
//! Parameter errors carry the numbers that made them invalid, not prose, so a
//! caller can match on them and a message can name exactly what is wrong.

/// A spatial axis of an NCHW tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Rows (H).
    Height,
    /// Columns (W).
    Width,
}

impl std::fmt::Display for Axis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Axis::Height => "height",
            Axis::Width => "width",
        })
    }
}

/// Everything that can go wrong in wgconv.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A stride of zero on some axis.
    #[error("stride must be at least 1 (got {h},{w})")]
    ZeroStride {
        /// Stride along H.
        h: u32,
        /// Stride along W.
        w: u32,
    },
    /// A dilation of zero on some axis.
    #[error("dilation must be at least 1 (got {h},{w})")]
    ZeroDilation {
        /// Dilation along H.
        h: u32,
        /// Dilation along W.
        w: u32,
    },
    /// `groups == 0`.
    #[error("groups must be at least 1")]
    ZeroGroups,
    /// A tensor with a zero-sized dimension.
    #[error("{tensor} shape {shape:?} has a zero dimension")]
    EmptyDimension {
        /// Which tensor ("input", "weight", ...).
        tensor: &'static str,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// `groups` does not divide a channel count.
    #[error("{what} ({channels}) is not divisible by groups ({groups})")]
    ChannelsNotDivisible {
        /// "input channels" or "output channels".
        what: &'static str,
        /// The channel count.
        channels: usize,
        /// The group count.
        groups: usize,
    },
    /// The weight's channel dimension does not equal the channels per group.
    #[error(
        "weight has {weight_channels} channels per group but the input has {c_in} channels in {groups} groups ({} per group)",
        c_in / groups.max(&1)
    )]
    WeightChannelMismatch {
        /// The weight's per-group channel dimension.
        weight_channels: usize,
        /// Channels of the input.
        c_in: usize,
        /// Groups.
        groups: usize,
    },
    /// Bias length differs from the number of output channels.
    #[error("bias has {len} elements but the layer has {c_out} output channels")]
    BiasLength {
        /// Bias length.
        len: usize,
        /// Output channels.
        c_out: usize,
    },
    /// The dilated kernel reaches further than the padded input.
    #[error("dilated kernel {axis} {dilated_kernel} exceeds padded input {axis} {padded_input}")]
    KernelLargerThanInput {
        /// Which axis.
        axis: Axis,
        /// Input extent plus padding.
        padded_input: usize,
        /// `dilation * (k - 1) + 1`.
        dilated_kernel: usize,
    },
    /// A transposed-convolution output padding not smaller than stride or dilation.
    #[error("output padding {output_padding} along {axis} must be smaller than the stride ({stride}) or the dilation ({dilation})")]
    OutputPaddingTooLarge {
        /// Which axis.
        axis: Axis,
        /// Requested output padding.
        output_padding: u32,
        /// Stride on that axis.
        stride: u32,
        /// Dilation on that axis.
        dilation: u32,
    },
    /// A formula produced an output extent of zero or less.
    #[error("output {axis} would be {size}, which is not positive")]
    NonPositiveOutput {
        /// Which axis.
        axis: Axis,
        /// The (non-positive) size the formula gave.
        size: i64,
    },
    /// An upsampling scale factor of zero on some axis.
    #[error("upsampling scale factor must be at least 1 (got {h},{w})")]
    ZeroScale {
        /// Scale factor along H.
        h: u32,
        /// Scale factor along W.
        w: u32,
    },
    /// An upsampling scale factor above the largest supported.
    #[error("upsampling scale factor {scale} along {axis} exceeds the largest supported, {max}")]
    ScaleTooLarge {
        /// Which axis.
        axis: Axis,
        /// The scale factor given.
        scale: u32,
        /// The largest allowed.
        max: u32,
    },
    /// An input extent times its scale factor exceeds what the shaders'
    /// signed coordinates can hold.
    #[error("upsampling {axis} {extent} by {scale} exceeds the largest extent {max}")]
    UpsampledExtentOverflow {
        /// Which axis.
        axis: Axis,
        /// The input extent on that axis.
        extent: usize,
        /// The scale factor on that axis.
        scale: u32,
        /// The largest upsampled extent allowed.
        max: u64,
    },
    /// The upsampled tensor has more elements than the shaders can index.
    #[error("the upsampled tensor {shape:?} has more than {max} elements")]
    UpsampledSizeOverflow {
        /// The upsampled shape `[n, c, h·scale_h, w·scale_w]`.
        shape: Vec<u64>,
        /// The largest element count allowed.
        max: u64,
    },
    /// Element or byte counts overflow what can be addressed.
    #[error("{what} is too large: its size overflows {limit}")]
    SizeOverflow {
        /// Which tensor or quantity.
        what: &'static str,
        /// What it overflowed ("u32 indices", "u64 bytes").
        limit: &'static str,
    },
    /// A host slice whose length does not match the shape it came with.
    #[error("{what} has {actual} elements but its shape {shape:?} needs {expected}")]
    DataLength {
        /// Which tensor.
        what: &'static str,
        /// The declared shape.
        shape: Vec<usize>,
        /// Elements the shape needs.
        expected: usize,
        /// Elements given.
        actual: usize,
    },
    /// A tensor's rank or shape is not what an operation needs.
    #[error("{what} must have shape {expected}, got {actual:?}")]
    BadShape {
        /// Which tensor.
        what: &'static str,
        /// A description of the expected shape, e.g. "[N, C, H, W]".
        expected: &'static str,
        /// The shape given.
        actual: Vec<usize>,
    },
    /// The input tensor does not match the layer it is fed to.
    #[error("layer expects {expected} input channels, got {actual}")]
    InputChannels {
        /// Channels the layer's weight expects.
        expected: usize,
        /// Channels of the tensor given.
        actual: usize,
    },
    /// A device limit would be exceeded.
    #[error("{what} needs {size} but the device allows at most {max}")]
    ExceedsLimit {
        /// What (a binding, a dispatch dimension, ...).
        what: &'static str,
        /// The size needed.
        size: u64,
        /// The device's limit.
        max: u64,
    },
    /// A plan broke an invariant the kernels rely on (a bug in wgconv: the
    /// planner and a kernel disagree).
    #[error("internal error: {what}: expected {expected}, got {actual}")]
    Internal {
        /// The quantity that disagrees.
        what: &'static str,
        /// What the kernel needs.
        expected: u64,
        /// What the plan has.
        actual: u64,
    },
    /// No adapter matched.
    #[error("no GPU adapter found (backends: {backends}{})", adapter_name.as_ref().map(|n| format!(", WGPU_ADAPTER_NAME={n}")).unwrap_or_default())]
    NoAdapter {
        /// Backends searched.
        backends: String,
        /// The adapter name filter in effect.
        adapter_name: Option<String>,
    },
    /// The adapter refused to create a device.
    #[error("could not create a device on {adapter}: {message}")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// wgpu's message.
        message: String,
    },
    /// A GPU validation error captured from an error scope.
    #[error("GPU validation error: {0}")]
    Validation(String),
    /// The device ran out of memory.
    #[error("GPU out of memory: {0}")]
    OutOfMemory(String),
    /// The device was lost or destroyed.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    /// Mapping a buffer for readback failed.
    #[error("readback failed: {0}")]
    Readback(String),
    /// A shader failed naga validation or translation (a bug in wgconv).
    #[error("shader {kernel}: {message}")]
    Shader {
        /// Kernel name.
        kernel: String,
        /// naga's message.
        message: String,
    },
    /// Two tensors that must have the same shape do not.
    #[error("{what} has shape {actual:?} but must match {expected:?}")]
    ShapeMismatch {
        /// Which tensor ("second input", ...).
        what: &'static str,
        /// The shape it must match.
        expected: Vec<usize>,
        /// Its shape.
        actual: Vec<usize>,
    },
    /// A pooling window of zero on some axis.
    #[error("pool window must be at least 1×1 (got {h}×{w})")]
    ZeroPoolKernel {
        /// Window height.
        h: u32,
        /// Window width.
        w: u32,
    },
    /// A pooling window larger than the (unpadded) input.
    #[error("pool window {axis} {kernel} exceeds input {axis} {input}")]
    PoolWindowLargerThanInput {
        /// Which axis.
        axis: Axis,
        /// The window extent on that axis.
        kernel: u32,
        /// The input extent on that axis.
        input: usize,
    },
    /// An op that needs at least one input got none.
    #[error("{what} needs at least one input")]
    NoInputs {
        /// The op.
        what: &'static str,
    },
    /// A concatenation input whose batch, height or width differs from the
    /// first input's.
    #[error("concat input {index} has shape {actual:?}, but every input needs the batch, height and width of input 0 {expected:?}")]
    ConcatMismatch {
        /// Position of the input in the list.
        index: usize,
        /// The first input's shape.
        expected: Vec<usize>,
        /// This input's shape.
        actual: Vec<usize>,
    },
    /// The output tensor shares its buffer with an input: a pass cannot read
    /// and write one buffer (wgpu rejects the aliasing).
    #[error("the output shares its buffer with input {input}")]
    AliasedOutput {
        /// Position of the input (0 for the first).
        input: usize,
    },
    /// A batch norm's `var + eps` is not positive (and finite) for a channel.
    #[error("batch norm channel {channel}: var ({var}) + eps ({eps}) must be positive")]
    BatchNormVariance {
        /// The channel.
        channel: usize,
        /// Its running variance.
        var: f32,
        /// The epsilon.
        eps: f32,
    },
    /// A network value used with a builder it does not belong to.
    #[error("value {value} does not belong to this network builder (it has {values} values)")]
    UnknownValue {
        /// The handle's index.
        value: usize,
        /// Values the network has.
        values: usize,
    },
    /// A network layer failed; `source` says why.
    #[error("layer {layer}: {source}")]
    Layer {
        /// The layer's name.
        layer: String,
        /// What went wrong.
        source: Box<Error>,
    },
    /// Two network layers share a name (names key the plan report and timings).
    #[error("two layers are named {0:?}")]
    DuplicateLayer(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
