//! Convolution and upsampling geometry: parameters, validation, output sizes
//! and FLOPs.
//!
//! No wgpu here. Everything else — the CPU reference, the GPU uniforms, the
//! planner, the CLI and the tests — consumes the resolved [`Conv2dShape`],
//! [`UpsampleShape`] or [`UpsampleConv2dShape`] and never re-derives a size.
//!
//! Conventions are PyTorch/ONNX: NCHW tensors, conv weight `[K, C/G, kh, kw]`,
//! transposed weight `[C, K/G, kh, kw]`.

use crate::error::{Axis, Error, Result};

/// Zero padding on each side of the spatial plane (asymmetric allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Padding {
    /// Rows added above.
    pub top: u32,
    /// Columns added on the left.
    pub left: u32,
    /// Rows added below.
    pub bottom: u32,
    /// Columns added on the right.
    pub right: u32,
}

impl Padding {
    /// The same padding on all four sides.
    pub const fn uniform(p: u32) -> Self {
        Self {
            top: p,
            left: p,
            bottom: p,
            right: p,
        }
    }
    /// `h` rows above and below, `w` columns left and right.
    pub const fn symmetric(h: u32, w: u32) -> Self {
        Self {
            top: h,
            left: w,
            bottom: h,
            right: w,
        }
    }
    /// Explicit padding in ONNX/CLI order: top, left, bottom, right.
    pub const fn new(top: u32, left: u32, bottom: u32, right: u32) -> Self {
        Self {
            top,
            left,
            bottom,
            right,
        }
    }
}

/// An activation fused into the convolution kernel, applied after the bias.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Activation {
    /// Identity.
    #[default]
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x` if `x >= 0`, else `alpha * x`.
    LeakyRelu(f32),
    /// `x * sigmoid(x)`.
    Silu,
}

impl Activation {
    /// The code the shaders switch on (`ACT` specialisation constant).
    pub fn code(self) -> u32 {
        match self {
            Activation::None => 0,
            Activation::Relu => 1,
            Activation::Relu6 => 2,
            Activation::LeakyRelu(_) => 3,
            Activation::Silu => 4,
        }
    }
    /// The LeakyReLU slope, 0 for the others.
    pub fn alpha(self) -> f32 {
        match self {
            Activation::LeakyRelu(a) => a,
            _ => 0.0,
        }
    }
    /// Applies the activation in f64 (the reference path).
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::LeakyRelu(a) => {
                if x >= 0.0 {
                    x
                } else {
                    f64::from(a) * x
                }
            }
            Activation::Silu => x / (1.0 + (-x).exp()),
        }
    }
    /// Upper bound of `|f'(x)|`: how much the activation can amplify an
    /// error in its input (SiLU's derivative peaks at about 1.0998).
    pub fn max_slope(self) -> f64 {
        match self {
            Activation::Silu => 1.1,
            Activation::LeakyRelu(a) => f64::from(a.abs()).max(1.0),
            _ => 1.0,
        }
    }
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Activation::None => f.write_str("none"),
            Activation::Relu => f.write_str("relu"),
            Activation::Relu6 => f.write_str("relu6"),
            Activation::LeakyRelu(a) => write!(f, "leaky_relu:{a}"),
            Activation::Silu => f.write_str("silu"),
        }
    }
}

impl std::str::FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "none" => Ok(Activation::None),
            "relu" => Ok(Activation::Relu),
            "relu6" => Ok(Activation::Relu6),
            "silu" => Ok(Activation::Silu),
            _ => match s.strip_prefix("leaky_relu:") {
                Some(a) => match a.parse::<f32>() {
                    Ok(a) if a.is_finite() => Ok(Activation::LeakyRelu(a)),
                    _ => Err(format!("bad LeakyReLU slope {a:?}")),
                },
                None => Err(format!(
                    "unknown activation {s:?} (expected none, relu, relu6, leaky_relu:ALPHA or silu)"
                )),
            },
        }
    }
}

/// Parameters of a forward 2-D convolution. Dilated, grouped, depthwise and
/// pointwise convolutions are values of these, not separate APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    /// Stride (h, w).
    pub stride: (u32, u32),
    /// Zero padding.
    pub padding: Padding,
    /// Dilation (h, w).
    pub dilation: (u32, u32),
    /// Groups; `groups == c_in` (with `c_out = m·c_in`) is depthwise.
    pub groups: u32,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Self {
            stride: (1, 1),
            padding: Padding::default(),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl Conv2dParams {
    /// Sets the stride.
    pub fn stride(mut self, h: u32, w: u32) -> Self {
        self.stride = (h, w);
        self
    }
    /// Sets the padding.
    pub fn padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }
    /// Sets the dilation.
    pub fn dilation(mut self, h: u32, w: u32) -> Self {
        self.dilation = (h, w);
        self
    }
    /// Sets the group count.
    pub fn groups(mut self, groups: u32) -> Self {
        self.groups = groups;
        self
    }
}

/// Parameters of a transposed 2-D convolution (PyTorch `ConvTranspose2d`,
/// ONNX `ConvTranspose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvTranspose2dParams {
    /// Stride (h, w).
    pub stride: (u32, u32),
    /// Padding removed from the full output on each side.
    pub padding: Padding,
    /// Extra rows/columns added at the bottom/right of the output.
    pub output_padding: (u32, u32),
    /// Dilation (h, w).
    pub dilation: (u32, u32),
    /// Groups.
    pub groups: u32,
}

impl Default for ConvTranspose2dParams {
    fn default() -> Self {
        Self {
            stride: (1, 1),
            padding: Padding::default(),
            output_padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl ConvTranspose2dParams {
    /// Sets the stride.
    pub fn stride(mut self, h: u32, w: u32) -> Self {
        self.stride = (h, w);
        self
    }
    /// Sets the padding.
    pub fn padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }
    /// Sets the output padding.
    pub fn output_padding(mut self, h: u32, w: u32) -> Self {
        self.output_padding = (h, w);
        self
    }
    /// Sets the dilation.
    pub fn dilation(mut self, h: u32, w: u32) -> Self {
        self.dilation = (h, w);
        self
    }
    /// Sets the group count.
    pub fn groups(mut self, groups: u32) -> Self {
        self.groups = groups;
        self
    }
}

/// Which of the two convolution ops a shape describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvKind {
    /// Forward convolution, weight `[c_out, c_in/G, k_h, k_w]`.
    Forward,
    /// Transposed convolution, weight `[c_in, c_out/G, k_h, k_w]`.
    Transposed,
}

/// A convolution fully resolved against its input and weight shapes. All
/// sizes are validated: every element count fits the `u32` indices the
/// shaders use, and every byte count fits `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dShape {
    /// Forward or transposed.
    pub kind: ConvKind,
    /// Batch.
    pub n: u32,
    /// Input channels.
    pub c_in: u32,
    /// Input height.
    pub h_in: u32,
    /// Input width.
    pub w_in: u32,
    /// Output channels.
    pub c_out: u32,
    /// Kernel height.
    pub k_h: u32,
    /// Kernel width.
    pub k_w: u32,
    /// Output height.
    pub h_out: u32,
    /// Output width.
    pub w_out: u32,
    /// Groups.
    pub groups: u32,
    /// Stride along H.
    pub stride_h: u32,
    /// Stride along W.
    pub stride_w: u32,
    /// Dilation along H.
    pub dil_h: u32,
    /// Dilation along W.
    pub dil_w: u32,
    /// Padding.
    pub padding: Padding,
    /// Output padding (transposed only; zero for forward).
    pub output_padding: (u32, u32),
}

/// Largest element count the shaders can index (`u32` indices).
const MAX_ELEMENTS: u64 = u32::MAX as u64;

fn nonzero_shape(tensor: &'static str, shape: &[usize]) -> Result<()> {
    if shape.contains(&0) {
        return Err(Error::EmptyDimension {
            tensor,
            shape: shape.to_vec(),
        });
    }
    Ok(())
}

/// Checked conversion of a dimension to `u32`, and of the element count of
/// a whole shape to something the shaders can index.
fn checked_elements(what: &'static str, shape: &[usize]) -> Result<u64> {
    let mut total: u64 = 1;
    for &d in shape {
        let d = u64::try_from(d).map_err(|_| Error::SizeOverflow {
            what,
            limit: "u64 bytes",
        })?;
        total = total.checked_mul(d).ok_or(Error::SizeOverflow {
            what,
            limit: "u64 bytes",
        })?;
    }
    total.checked_mul(4).ok_or(Error::SizeOverflow {
        what,
        limit: "u64 bytes",
    })?;
    if total > MAX_ELEMENTS {
        return Err(Error::SizeOverflow {
            what,
            limit: "u32 element indices",
        });
    }
    Ok(total)
}

fn to_u32(what: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::SizeOverflow {
        what,
        limit: "u32 element indices",
    })
}

fn check_common(stride: (u32, u32), dilation: (u32, u32), groups: u32) -> Result<()> {
    if stride.0 == 0 || stride.1 == 0 {
        return Err(Error::ZeroStride {
            h: stride.0,
            w: stride.1,
        });
    }
    if dilation.0 == 0 || dilation.1 == 0 {
        return Err(Error::ZeroDilation {
            h: dilation.0,
            w: dilation.1,
        });
    }
    if groups == 0 {
        return Err(Error::ZeroGroups);
    }
    Ok(())
}

fn check_divisible(what: &'static str, channels: usize, groups: usize) -> Result<()> {
    if !channels.is_multiple_of(groups) {
        return Err(Error::ChannelsNotDivisible {
            what,
            channels,
            groups,
        });
    }
    Ok(())
}

/// Forward output extent along one axis:
/// `floor((in + pad_a + pad_b − dil·(k − 1) − 1) / stride) + 1`.
fn forward_extent(axis: Axis, input: u64, pad: u64, k: u64, dil: u64, stride: u64) -> Result<u64> {
    let padded = input + pad;
    let reach = dil * (k - 1) + 1;
    if reach > padded {
        return Err(Error::KernelLargerThanInput {
            axis,
            padded_input: padded as usize,
            dilated_kernel: reach as usize,
        });
    }
    Ok((padded - reach) / stride + 1)
}

impl Conv2dShape {
    /// Resolves a forward convolution.
    ///
    /// `input` is `[n, c_in, h_in, w_in]`, `weight` is `[c_out, c_in/groups,
    /// k_h, k_w]`, `bias_len` the bias length if there is one.
    ///
    /// # Errors
    /// Any invalid combination, as a typed [`Error`] with the numbers.
    pub fn conv2d(
        input: [usize; 4],
        weight: [usize; 4],
        bias_len: Option<usize>,
        params: &Conv2dParams,
    ) -> Result<Self> {
        check_common(params.stride, params.dilation, params.groups)?;
        nonzero_shape("input", &input)?;
        nonzero_shape("weight", &weight)?;
        let [n, c_in, h_in, w_in] = input;
        let [c_out, wc, k_h, k_w] = weight;
        let g = params.groups as usize;
        check_divisible("input channels", c_in, g)?;
        check_divisible("output channels", c_out, g)?;
        if wc * g != c_in {
            return Err(Error::WeightChannelMismatch {
                weight_channels: wc,
                c_in,
                groups: g,
            });
        }
        if let Some(len) = bias_len {
            if len != c_out {
                return Err(Error::BiasLength { len, c_out });
            }
        }
        checked_elements("input", &input)?;
        checked_elements("weight", &weight)?;
        let p = params.padding;
        let h_out = forward_extent(
            Axis::Height,
            h_in as u64,
            u64::from(p.top) + u64::from(p.bottom),
            k_h as u64,
            u64::from(params.dilation.0),
            u64::from(params.stride.0),
        )?;
        let w_out = forward_extent(
            Axis::Width,
            w_in as u64,
            u64::from(p.left) + u64::from(p.right),
            k_w as u64,
            u64::from(params.dilation.1),
            u64::from(params.stride.1),
        )?;
        let (h_out, w_out) = (h_out as usize, w_out as usize);
        checked_elements("output", &[n, c_out, h_out, w_out])?;
        Ok(Self {
            kind: ConvKind::Forward,
            n: to_u32("input", n)?,
            c_in: to_u32("input", c_in)?,
            h_in: to_u32("input", h_in)?,
            w_in: to_u32("input", w_in)?,
            c_out: to_u32("weight", c_out)?,
            k_h: to_u32("weight", k_h)?,
            k_w: to_u32("weight", k_w)?,
            h_out: to_u32("output", h_out)?,
            w_out: to_u32("output", w_out)?,
            groups: params.groups,
            stride_h: params.stride.0,
            stride_w: params.stride.1,
            dil_h: params.dilation.0,
            dil_w: params.dilation.1,
            padding: p,
            output_padding: (0, 0),
        })
    }

    /// Resolves a transposed convolution.
    ///
    /// `input` is `[n, c_in, h_in, w_in]`, `weight` is `[c_in, c_out/groups,
    /// k_h, k_w]`. Output extent:
    /// `(in − 1)·stride − pad_a − pad_b + dil·(k − 1) + output_padding + 1`.
    ///
    /// # Errors
    /// Any invalid combination, as a typed [`Error`] with the numbers.
    pub fn conv_transpose2d(
        input: [usize; 4],
        weight: [usize; 4],
        bias_len: Option<usize>,
        params: &ConvTranspose2dParams,
    ) -> Result<Self> {
        check_common(params.stride, params.dilation, params.groups)?;
        nonzero_shape("input", &input)?;
        nonzero_shape("weight", &weight)?;
        let [n, c_in, h_in, w_in] = input;
        let [wc_in, k_per_group, k_h, k_w] = weight;
        let g = params.groups as usize;
        check_divisible("input channels", c_in, g)?;
        if wc_in != c_in {
            return Err(Error::WeightChannelMismatch {
                weight_channels: wc_in / g,
                c_in,
                groups: g,
            });
        }
        let c_out = k_per_group.checked_mul(g).ok_or(Error::SizeOverflow {
            what: "weight",
            limit: "u64 bytes",
        })?;
        if let Some(len) = bias_len {
            if len != c_out {
                return Err(Error::BiasLength { len, c_out });
            }
        }
        for (axis, op, stride, dil) in [
            (
                Axis::Height,
                params.output_padding.0,
                params.stride.0,
                params.dilation.0,
            ),
            (
                Axis::Width,
                params.output_padding.1,
                params.stride.1,
                params.dilation.1,
            ),
        ] {
            if op >= stride && op >= dil {
                return Err(Error::OutputPaddingTooLarge {
                    axis,
                    output_padding: op,
                    stride,
                    dilation: dil,
                });
            }
        }
        checked_elements("input", &input)?;
        checked_elements("weight", &weight)?;
        let p = params.padding;
        let extent =
            |axis, input: usize, stride: u32, pa: u32, pb: u32, dil: u32, k: usize, op: u32| {
                let size = (input as i64 - 1) * i64::from(stride) - i64::from(pa) - i64::from(pb)
                    + i64::from(dil) * (k as i64 - 1)
                    + i64::from(op)
                    + 1;
                if size <= 0 {
                    Err(Error::NonPositiveOutput { axis, size })
                } else {
                    Ok(size as usize)
                }
            };
        let h_out = extent(
            Axis::Height,
            h_in,
            params.stride.0,
            p.top,
            p.bottom,
            params.dilation.0,
            k_h,
            params.output_padding.0,
        )?;
        let w_out = extent(
            Axis::Width,
            w_in,
            params.stride.1,
            p.left,
            p.right,
            params.dilation.1,
            k_w,
            params.output_padding.1,
        )?;
        checked_elements("output", &[n, c_out, h_out, w_out])?;
        Ok(Self {
            kind: ConvKind::Transposed,
            n: to_u32("input", n)?,
            c_in: to_u32("input", c_in)?,
            h_in: to_u32("input", h_in)?,
            w_in: to_u32("input", w_in)?,
            c_out: to_u32("weight", c_out)?,
            k_h: to_u32("weight", k_h)?,
            k_w: to_u32("weight", k_w)?,
            h_out: to_u32("output", h_out)?,
            w_out: to_u32("output", w_out)?,
            groups: params.groups,
            stride_h: params.stride.0,
            stride_w: params.stride.1,
            dil_h: params.dilation.0,
            dil_w: params.dilation.1,
            padding: p,
            output_padding: params.output_padding,
        })
    }

    /// Input channels per group.
    pub fn c_in_per_group(&self) -> u32 {
        self.c_in / self.groups
    }
    /// Output channels per group.
    pub fn c_out_per_group(&self) -> u32 {
        self.c_out / self.groups
    }
    /// `[n, c_in, h_in, w_in]`.
    pub fn input_shape(&self) -> [usize; 4] {
        [self.n, self.c_in, self.h_in, self.w_in].map(|v| v as usize)
    }
    /// The weight shape in the PyTorch layout of this op.
    pub fn weight_shape(&self) -> [usize; 4] {
        match self.kind {
            ConvKind::Forward => [self.c_out, self.c_in_per_group(), self.k_h, self.k_w],
            ConvKind::Transposed => [self.c_in, self.c_out_per_group(), self.k_h, self.k_w],
        }
        .map(|v| v as usize)
    }
    /// `[n, c_out, h_out, w_out]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.n, self.c_out, self.h_out, self.w_out].map(|v| v as usize)
    }
    /// Elements of the input.
    pub fn input_len(&self) -> usize {
        self.input_shape().iter().product()
    }
    /// Elements of the weight.
    pub fn weight_len(&self) -> usize {
        self.weight_shape().iter().product()
    }
    /// Elements of the output.
    pub fn output_len(&self) -> usize {
        self.output_shape().iter().product()
    }
    /// True for a depthwise convolution (one input channel per group).
    pub fn is_depthwise(&self) -> bool {
        self.groups == self.c_in && self.groups > 1
    }
    /// Terms summed per output element (forward): `c_in/G · k_h · k_w`. For a
    /// transposed convolution this is the most terms any output can receive.
    pub fn reduction_len(&self) -> u64 {
        u64::from(self.c_in_per_group()) * u64::from(self.k_h) * u64::from(self.k_w)
    }
    /// FLOPs as counted in the benchmark suite: forward
    /// `2·N·K·(C/G)·kh·kw·Hout·Wout`, transposed `2·N·C·(K/G)·kh·kw·Hin·Win`.
    pub fn flops(&self) -> u64 {
        let taps = u64::from(self.k_h) * u64::from(self.k_w) * 2 * u64::from(self.n);
        match self.kind {
            ConvKind::Forward => {
                taps * u64::from(self.c_out)
                    * u64::from(self.c_in_per_group())
                    * u64::from(self.h_out)
                    * u64::from(self.w_out)
            }
            ConvKind::Transposed => {
                taps * u64::from(self.c_in)
                    * u64::from(self.c_out_per_group())
                    * u64::from(self.h_in)
                    * u64::from(self.w_in)
            }
        }
    }
    /// Bytes read and written by one call, counting each tensor once
    /// (input, weight, bias, output), in f32.
    pub fn bytes_moved(&self) -> u64 {
        4 * (self.input_len() + self.weight_len() + self.c_out as usize + self.output_len()) as u64
    }
}

/// How an upsampling op fills the new pixels (PyTorch `nn.Upsample` modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UpsampleMode {
    /// Each input pixel repeated `scale_h × scale_w` times: output
    /// `(oh, ow)` reads input `(oh / scale_h, ow / scale_w)`. PyTorch
    /// `mode='nearest'`.
    #[default]
    Nearest,
    /// Bilinear interpolation with PyTorch's `align_corners=False`: along
    /// each axis, output `o` samples the input at
    /// `src = max((o + 0.5) / scale − 0.5, 0)` between `i0 = floor(src)` and
    /// `i1 = min(i0 + 1, in − 1)` with weights `1 − λ` and `λ = src − i0`.
    /// PyTorch `mode='bilinear', align_corners=False`.
    Bilinear,
}

impl UpsampleMode {
    /// The code the shaders switch on (`MODE` specialisation constant).
    pub fn code(self) -> u32 {
        match self {
            UpsampleMode::Nearest => 0,
            UpsampleMode::Bilinear => 1,
        }
    }
}

impl std::fmt::Display for UpsampleMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UpsampleMode::Nearest => "nearest",
            UpsampleMode::Bilinear => "bilinear",
        })
    }
}

/// Parameters of an upsampling op: integer scale factors per axis and the
/// mode (PyTorch `nn.Upsample(scale_factor=(scale_h, scale_w), mode=...)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpsampleParams {
    /// Scale factors (h, w), each at least 1.
    pub scale: (u32, u32),
    /// Nearest or bilinear.
    pub mode: UpsampleMode,
}

impl UpsampleParams {
    /// Nearest-neighbour upsampling by `(h, w)`.
    pub const fn nearest(h: u32, w: u32) -> Self {
        Self {
            scale: (h, w),
            mode: UpsampleMode::Nearest,
        }
    }
    /// Bilinear (`align_corners=False`) upsampling by `(h, w)`.
    pub const fn bilinear(h: u32, w: u32) -> Self {
        Self {
            scale: (h, w),
            mode: UpsampleMode::Bilinear,
        }
    }
}

/// Largest upsampled extent along one axis: the shaders hold upsampled
/// coordinates in `i32`.
pub const MAX_UPSAMPLED_EXTENT: u64 = i32::MAX as u64;

/// Largest scale factor: the shaders' bilinear weights are integers below
/// `2·scale`, exact in f32 only up to 2²⁴.
pub const MAX_SCALE: u32 = 1 << 23;

/// An upsampling op resolved against its input shape. The output extent
/// along each axis is `in · scale` (PyTorch's `floor(in · scale)` for an
/// integer scale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpsampleShape {
    /// Nearest or bilinear.
    pub mode: UpsampleMode,
    /// Batch.
    pub n: u32,
    /// Channels.
    pub c: u32,
    /// Input height.
    pub h_in: u32,
    /// Input width.
    pub w_in: u32,
    /// Scale factor along H.
    pub scale_h: u32,
    /// Scale factor along W.
    pub scale_w: u32,
    /// Output height, `h_in · scale_h`.
    pub h_out: u32,
    /// Output width, `w_in · scale_w`.
    pub w_out: u32,
}

impl UpsampleShape {
    /// Resolves an upsampling of `input` (`[n, c, h, w]`).
    ///
    /// # Errors
    /// [`Error::ZeroScale`], [`Error::ScaleTooLarge`] (above [`MAX_SCALE`]),
    /// [`Error::EmptyDimension`],
    /// [`Error::UpsampledExtentOverflow`] when `extent · scale` exceeds
    /// [`MAX_UPSAMPLED_EXTENT`], [`Error::UpsampledSizeOverflow`] when the
    /// upsampled tensor has more than `u32::MAX` elements, and
    /// [`Error::SizeOverflow`] for an input that is itself too large.
    pub fn new(input: [usize; 4], params: &UpsampleParams) -> Result<Self> {
        let (s_h, s_w) = params.scale;
        if s_h == 0 || s_w == 0 {
            return Err(Error::ZeroScale { h: s_h, w: s_w });
        }
        for (axis, scale) in [(Axis::Height, s_h), (Axis::Width, s_w)] {
            if scale > MAX_SCALE {
                return Err(Error::ScaleTooLarge {
                    axis,
                    scale,
                    max: MAX_SCALE,
                });
            }
        }
        nonzero_shape("input", &input)?;
        checked_elements("input", &input)?;
        let [n, c, h_in, w_in] = input;
        let extent = |axis, e: usize, s: u32| -> Result<u64> {
            (e as u64)
                .checked_mul(u64::from(s))
                .filter(|&v| v <= MAX_UPSAMPLED_EXTENT)
                .ok_or(Error::UpsampledExtentOverflow {
                    axis,
                    extent: e,
                    scale: s,
                    max: MAX_UPSAMPLED_EXTENT,
                })
        };
        let h_out = extent(Axis::Height, h_in, s_h)?;
        let w_out = extent(Axis::Width, w_in, s_w)?;
        let shape = [n as u64, c as u64, h_out, w_out];
        let elements = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&e| e <= MAX_ELEMENTS);
        if elements.is_none() {
            return Err(Error::UpsampledSizeOverflow {
                shape: shape.to_vec(),
                max: MAX_ELEMENTS,
            });
        }
        // Both extents are at most i32::MAX and the input passed checked_elements.
        Ok(Self {
            mode: params.mode,
            n: to_u32("input", n)?,
            c: to_u32("input", c)?,
            h_in: to_u32("input", h_in)?,
            w_in: to_u32("input", w_in)?,
            scale_h: s_h,
            scale_w: s_w,
            h_out: h_out as u32,
            w_out: w_out as u32,
        })
    }

    /// The parameters this shape was resolved with.
    pub fn params(&self) -> UpsampleParams {
        UpsampleParams {
            scale: (self.scale_h, self.scale_w),
            mode: self.mode,
        }
    }
    /// `[n, c, h_in, w_in]`.
    pub fn input_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h_in, self.w_in].map(|v| v as usize)
    }
    /// `[n, c, h_out, w_out]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h_out, self.w_out].map(|v| v as usize)
    }
    /// Elements of the input.
    pub fn input_len(&self) -> usize {
        self.input_shape().iter().product()
    }
    /// Elements of the output.
    pub fn output_len(&self) -> usize {
        self.output_shape().iter().product()
    }
    /// Bytes read and written by one call (each tensor once), in f32.
    pub fn bytes_moved(&self) -> u64 {
        4 * (self.input_len() + self.output_len()) as u64
    }
}

/// Parameters of a fused upsample + convolution (resize-convolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpsampleConv2dParams {
    /// The upsampling applied to the input first.
    pub upsample: UpsampleParams,
    /// The convolution applied to the upsampled image.
    pub conv: Conv2dParams,
}

/// A fused upsample + convolution resolved against its input and weight:
/// the convolution is [`Conv2dShape::conv2d`] of the upsampled input shape,
/// so its `h_in`/`w_in` are the upsampled extents and its output is the
/// op's output. The upsampled image is never materialised, but its shape is
/// held to the same limits as a real tensor (every element count fits `u32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpsampleConv2dShape {
    /// The upsampling of the real input.
    pub upsample: UpsampleShape,
    /// The convolution of the (virtual) upsampled input.
    pub conv: Conv2dShape,
}

impl UpsampleConv2dShape {
    /// Resolves a fused upsample + convolution. `input` is the real
    /// (not upsampled) input `[n, c_in, h, w]`, `weight` the PyTorch conv
    /// weight `[c_out, c_in/groups, k_h, k_w]`.
    ///
    /// # Errors
    /// Everything [`UpsampleShape::new`] and [`Conv2dShape::conv2d`] report.
    pub fn new(
        input: [usize; 4],
        weight: [usize; 4],
        bias_len: Option<usize>,
        params: &UpsampleConv2dParams,
    ) -> Result<Self> {
        let upsample = UpsampleShape::new(input, &params.upsample)?;
        let conv = Conv2dShape::conv2d(upsample.output_shape(), weight, bias_len, &params.conv)?;
        Ok(Self { upsample, conv })
    }

    /// The real input, `[n, c_in, h, w]`.
    pub fn input_shape(&self) -> [usize; 4] {
        self.upsample.input_shape()
    }
    /// The weight, `[c_out, c_in/groups, k_h, k_w]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        self.conv.weight_shape()
    }
    /// `[n, c_out, h_out, w_out]`.
    pub fn output_shape(&self) -> [usize; 4] {
        self.conv.output_shape()
    }
    /// Elements of the real input.
    pub fn input_len(&self) -> usize {
        self.upsample.input_len()
    }
    /// Elements of the output.
    pub fn output_len(&self) -> usize {
        self.conv.output_len()
    }
    /// FLOPs of the convolution (as [`Conv2dShape::flops`]; the
    /// interpolation is not counted).
    pub fn flops(&self) -> u64 {
        self.conv.flops()
    }
}

/// One spatial axis of the sub-pixel identity: nearest upsampling by `s`
/// followed by a stride-1 convolution (kernel `k`, dilation `d`, padding
/// `p_b`/`p_e`) is exactly a transposed convolution of the real input with
/// stride `s`, dilation 1 and a derived kernel.
///
/// Output `o = s·q + r` (phase `r ∈ [0, s)`) reads, for forward tap `t`,
/// upsampled index `o + t·d − p_b`, i.e. input `q + δ(r, t)` with
/// `δ(r, t) = ⌊(r + t·d − p_b) / s⌋`, and it is zero padding exactly when
/// `q + δ` is outside `[0, in)` (the upsampled index is outside `[0, s·in)`
/// iff its quotient by `s` is outside `[0, in)`). The transposed gather
/// `o + P = i·s + k'` with `i = q + δ` puts that tap at
/// `k' = r + P − s·δ = P + p_b − t·d + ((r + t·d − p_b) mod s)`: for each `t`
/// the phases cover `k' ∈ P + p_b − t·d + [0, s)`, so over all taps
/// `k' ∈ P + [p_b − (k−1)·d, p_b + s − 1]`. Hence (with `R = (k−1)·d`):
///
/// - `P = max(R − p_b, 0)` (a begin padding beyond `R` leaves `p_b − R`
///   always-zero taps at the kernel's start instead of a negative padding);
/// - `K' = R + s + (P − (R − p_b))`;
/// - output `(in − 1)·s − P − P_e + K' + op = s·in + p_b − P_e + op` must
///   equal the forward `s·in + p_b + p_e − R`: `op − P_e = p_e − R =: E`.
///   `E ≤ 0`: `P_e = −E`; `0 < E < s`: output padding `E`; `E ≥ s`: `E`
///   always-zero taps appended to the kernel (each adds one output).
///
/// The derived weight at `k'` sums the forward taps that map there (one
/// per `t` at most for each phase, so a phase never sums more than `k`
/// nonzero weights).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubPixelAxis {
    /// Upsampling scale: the transposed stride.
    pub scale: u32,
    /// Forward kernel taps.
    pub k: u32,
    /// Forward dilation.
    pub dilation: u32,
    /// Forward begin padding (top or left).
    pub pad_begin: u32,
    /// Transposed kernel extent `K'`.
    pub k_t: u32,
    /// Transposed begin padding `P`.
    pub pad_t_begin: u32,
    /// Transposed end padding `P_e`.
    pub pad_t_end: u32,
    /// Transposed output padding.
    pub output_padding: u32,
}

impl SubPixelAxis {
    /// The axis for scale `s`, forward kernel `k`, dilation `d` and padding
    /// `(p_b, p_e)`; `None` if a size does not fit `u32`.
    pub fn new(s: u32, k: u32, d: u32, p_b: u32, p_e: u32) -> Option<Self> {
        if s == 0 || k == 0 || d == 0 {
            return None;
        }
        let (s64, pb, pe) = (i64::from(s), i64::from(p_b), i64::from(p_e));
        let reach = (i64::from(k) - 1) * i64::from(d);
        let p = (reach - pb).max(0);
        let mut k_t = reach + s64 + (p - (reach - pb));
        let e = pe - reach;
        let (pad_end, op) = if e <= 0 {
            (-e, 0)
        } else if e < s64 {
            (0, e)
        } else {
            k_t += e;
            (0, 0)
        };
        Some(Self {
            scale: s,
            k,
            dilation: d,
            pad_begin: p_b,
            k_t: u32::try_from(k_t).ok()?,
            pad_t_begin: u32::try_from(p).ok()?,
            pad_t_end: u32::try_from(pad_end).ok()?,
            output_padding: u32::try_from(op).ok()?,
        })
    }

    /// The transposed tap `k'` that forward tap `t` becomes for output
    /// phase `r < scale`.
    pub fn tap(&self, r: u32, t: u32) -> usize {
        let td = i64::from(t) * i64::from(self.dilation);
        let pb = i64::from(self.pad_begin);
        let k = i64::from(self.pad_t_begin) + pb - td
            + (i64::from(r) + td - pb).rem_euclid(i64::from(self.scale));
        k as usize
    }

    /// Taps per output phase the transposed kernel loops over, `⌈K'/s⌉`.
    pub fn taps_per_phase(&self) -> u32 {
        self.k_t.div_ceil(self.scale)
    }
}

/// A nearest-upsample + stride-1 convolution as a transposed convolution
/// (see [`SubPixelAxis`]): its parameters and weight shape `[c_in,
/// c_out/groups, K'_h, K'_w]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubPixel {
    /// The height axis.
    pub h: SubPixelAxis,
    /// The width axis.
    pub w: SubPixelAxis,
    /// The transposed convolution's parameters (groups as the forward's).
    pub params: ConvTranspose2dParams,
    /// The transposed weight shape.
    pub weight_shape: [usize; 4],
}

impl UpsampleConv2dParams {
    /// The transposed convolution this op equals, for a forward weight
    /// `[c_out, c_in/groups, k_h, k_w]`: `Some` for nearest upsampling with
    /// a stride-1 convolution whose derived sizes fit, `None` otherwise
    /// (bilinear is not a pure sub-pixel identity at the borders).
    pub fn sub_pixel(&self, weight: [usize; 4]) -> Option<SubPixel> {
        if self.upsample.mode != UpsampleMode::Nearest || self.conv.stride != (1, 1) {
            return None;
        }
        let (s, c, pad) = (self.upsample.scale, self.conv, self.conv.padding);
        let h = SubPixelAxis::new(
            s.0,
            u32::try_from(weight[2]).ok()?,
            c.dilation.0,
            pad.top,
            pad.bottom,
        )?;
        let w = SubPixelAxis::new(
            s.1,
            u32::try_from(weight[3]).ok()?,
            c.dilation.1,
            pad.left,
            pad.right,
        )?;
        let groups = c.groups as usize;
        if groups == 0 || !weight[0].is_multiple_of(groups) {
            return None;
        }
        Some(SubPixel {
            h,
            w,
            params: ConvTranspose2dParams {
                stride: s,
                padding: Padding::new(h.pad_t_begin, w.pad_t_begin, h.pad_t_end, w.pad_t_end),
                output_padding: (h.output_padding, w.output_padding),
                dilation: (1, 1),
                groups: c.groups,
            },
            weight_shape: [
                weight[1].checked_mul(groups)?,
                weight[0] / groups,
                h.k_t as usize,
                w.k_t as usize,
            ],
        })
    }
}

/// What a pooling window reduces to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolMode {
    /// The largest value of the window (PyTorch `MaxPool2d`; WGSL's `max`
    /// leaves NaN handling to the driver).
    Max,
    /// The mean of the window (PyTorch `AvgPool2d`; without padding the
    /// divisor is always `k_h·k_w`).
    Avg,
}

impl PoolMode {
    /// The code the pooling shader switches on (`MODE` specialisation
    /// constant).
    pub fn code(self) -> u32 {
        match self {
            PoolMode::Max => 0,
            PoolMode::Avg => 1,
        }
    }
}

impl std::fmt::Display for PoolMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PoolMode::Max => "max",
            PoolMode::Avg => "avg",
        })
    }
}

/// Parameters of a 2-D pooling: PyTorch `MaxPool2d` / `AvgPool2d` with no
/// padding, no dilation and `ceil_mode=False`, so the output extent is
/// `(in − k) / s + 1` (floor) per axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pool2dParams {
    /// Max or average.
    pub mode: PoolMode,
    /// Window `(k_h, k_w)`, each at least 1.
    pub kernel: (u32, u32),
    /// Stride `(stride_h, stride_w)`, each at least 1.
    pub stride: (u32, u32),
}

impl Pool2dParams {
    /// 2×2 max pooling with stride 2 (halves H and W).
    pub const fn max2x2() -> Self {
        Self {
            mode: PoolMode::Max,
            kernel: (2, 2),
            stride: (2, 2),
        }
    }
    /// 2×2 average pooling with stride 2 (halves H and W).
    pub const fn avg2x2() -> Self {
        Self {
            mode: PoolMode::Avg,
            kernel: (2, 2),
            stride: (2, 2),
        }
    }
    /// Checks what the parameters alone fix.
    ///
    /// # Errors
    /// [`Error::ZeroPoolKernel`] and [`Error::ZeroStride`].
    pub fn validate(&self) -> Result<()> {
        let (k_h, k_w) = self.kernel;
        if k_h == 0 || k_w == 0 {
            return Err(Error::ZeroPoolKernel { h: k_h, w: k_w });
        }
        let (s_h, s_w) = self.stride;
        if s_h == 0 || s_w == 0 {
            return Err(Error::ZeroStride { h: s_h, w: s_w });
        }
        Ok(())
    }
}

/// A 2-D pooling resolved against its input shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pool2dShape {
    /// Max or average.
    pub mode: PoolMode,
    /// Batch.
    pub n: u32,
    /// Channels.
    pub c: u32,
    /// Input height.
    pub h_in: u32,
    /// Input width.
    pub w_in: u32,
    /// Window height.
    pub k_h: u32,
    /// Window width.
    pub k_w: u32,
    /// Stride along H.
    pub stride_h: u32,
    /// Stride along W.
    pub stride_w: u32,
    /// Output height, `(h_in − k_h) / stride_h + 1`.
    pub h_out: u32,
    /// Output width, `(w_in − k_w) / stride_w + 1`.
    pub w_out: u32,
}

impl Pool2dShape {
    /// Resolves a pooling of `input` (`[n, c, h, w]`).
    ///
    /// # Errors
    /// [`Error::ZeroPoolKernel`], [`Error::ZeroStride`],
    /// [`Error::EmptyDimension`], [`Error::SizeOverflow`] (more than
    /// `u32::MAX` elements), and [`Error::PoolWindowLargerThanInput`] when
    /// the window does not fit in the input on some axis.
    pub fn new(input: [usize; 4], params: &Pool2dParams) -> Result<Self> {
        params.validate()?;
        nonzero_shape("input", &input)?;
        checked_elements("input", &input)?;
        let [n, c, h_in, w_in] = input;
        let (k_h, k_w) = params.kernel;
        let (stride_h, stride_w) = params.stride;
        let out = |axis, extent: usize, k: u32, s: u32| -> Result<u32> {
            // extent ≤ u32::MAX (checked_elements), so the quotient fits.
            let room = extent
                .checked_sub(k as usize)
                .ok_or(Error::PoolWindowLargerThanInput {
                    axis,
                    kernel: k,
                    input: extent,
                })?;
            to_u32("output", room / s as usize + 1)
        };
        let h_out = out(Axis::Height, h_in, k_h, stride_h)?;
        let w_out = out(Axis::Width, w_in, k_w, stride_w)?;
        Ok(Self {
            mode: params.mode,
            n: to_u32("input", n)?,
            c: to_u32("input", c)?,
            h_in: to_u32("input", h_in)?,
            w_in: to_u32("input", w_in)?,
            k_h,
            k_w,
            stride_h,
            stride_w,
            h_out,
            w_out,
        })
    }

    /// The parameters this shape was resolved with.
    pub fn params(&self) -> Pool2dParams {
        Pool2dParams {
            mode: self.mode,
            kernel: (self.k_h, self.k_w),
            stride: (self.stride_h, self.stride_w),
        }
    }
    /// `[n, c, h_in, w_in]`.
    pub fn input_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h_in, self.w_in].map(|v| v as usize)
    }
    /// `[n, c, h_out, w_out]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h_out, self.w_out].map(|v| v as usize)
    }
    /// Elements of the input.
    pub fn input_len(&self) -> usize {
        self.input_shape().iter().product()
    }
    /// Elements of the output.
    pub fn output_len(&self) -> usize {
        self.output_shape().iter().product()
    }
    /// Elements per window, `k_h·k_w` (at most the input plane, so it fits).
    pub fn window_len(&self) -> u32 {
        self.k_h * self.k_w
    }
}

/// The output shape of an element-wise binary op: both inputs must have the
/// same shape (no broadcasting), which is the output's.
///
/// # Errors
/// [`Error::ShapeMismatch`] when the shapes differ, [`Error::EmptyDimension`]
/// and [`Error::SizeOverflow`] (more than `u32::MAX` elements).
pub fn eltwise_shape(a: [usize; 4], b: [usize; 4]) -> Result<[usize; 4]> {
    if a != b {
        return Err(Error::ShapeMismatch {
            what: "second input",
            expected: a.to_vec(),
            actual: b.to_vec(),
        });
    }
    nonzero_shape("input", &a)?;
    checked_elements("input", &a)?;
    Ok(a)
}

/// The output shape of a global average pooling, `[n, c, 1, 1]`.
///
/// # Errors
/// [`Error::EmptyDimension`] and [`Error::SizeOverflow`].
pub fn global_pool_shape(input: [usize; 4]) -> Result<[usize; 4]> {
    nonzero_shape("input", &input)?;
    checked_elements("input", &input)?;
    Ok([input[0], input[1], 1, 1])
}

/// The output shape of a concatenation along channels:
/// `[n, Σ c_i, h, w]` for inputs `[n, c_i, h, w]`.
///
/// # Errors
/// [`Error::NoInputs`] for an empty list, [`Error::ConcatMismatch`] when an
/// input's `n`, `h` or `w` differs from the first input's,
/// [`Error::EmptyDimension`] and [`Error::SizeOverflow`] (for any input or
/// the output).
pub fn concat_shape(inputs: &[[usize; 4]]) -> Result<[usize; 4]> {
    let first = *inputs.first().ok_or(Error::NoInputs { what: "concat" })?;
    let mut c = 0usize;
    for (index, s) in inputs.iter().enumerate() {
        if [s[0], s[2], s[3]] != [first[0], first[2], first[3]] {
            return Err(Error::ConcatMismatch {
                index,
                expected: first.to_vec(),
                actual: s.to_vec(),
            });
        }
        nonzero_shape("input", s)?;
        checked_elements("input", s)?;
        c = c.checked_add(s[1]).ok_or(Error::SizeOverflow {
            what: "output",
            limit: "u32 element indices",
        })?;
    }
    let out = [first[0], c, first[2], first[3]];
    checked_elements("output", &out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (input shape, weight shape, parameters, expected output shape)
    type Row<P> = ([usize; 4], [usize; 4], P, [usize; 4]);

    fn p(stride: u32, pad: u32, dil: u32, groups: u32) -> Conv2dParams {
        Conv2dParams::default()
            .stride(stride, stride)
            .padding(Padding::uniform(pad))
            .dilation(dil, dil)
            .groups(groups)
    }

    #[test]
    fn forward_output_sizes() {
        // (input, weight, params, expected output shape); sizes as PyTorch computes them.
        let table: &[Row<Conv2dParams>] = &[
            (
                [1, 3, 224, 224],
                [64, 3, 7, 7],
                p(2, 3, 1, 1),
                [1, 64, 112, 112],
            ),
            (
                [1, 64, 56, 56],
                [64, 64, 3, 3],
                p(1, 1, 1, 1),
                [1, 64, 56, 56],
            ),
            (
                [1, 128, 56, 56],
                [128, 128, 3, 3],
                p(2, 1, 1, 1),
                [1, 128, 28, 28],
            ),
            (
                [1, 256, 33, 33],
                [256, 256, 3, 3],
                p(1, 12, 12, 1),
                [1, 256, 33, 33],
            ),
            (
                [1, 144, 56, 56],
                [144, 1, 3, 3],
                p(1, 1, 1, 144),
                [1, 144, 56, 56],
            ),
            (
                [1, 7, 11, 13],
                [14, 1, 5, 5],
                p(1, 2, 1, 7),
                [1, 14, 11, 13],
            ),
            ([2, 3, 25, 25], [5, 3, 3, 3], p(2, 4, 4, 1), [2, 5, 13, 13]),
            ([1, 3, 5, 5], [4, 3, 5, 5], p(1, 0, 1, 1), [1, 4, 1, 1]),
            ([1, 2, 1, 1], [3, 2, 3, 3], p(1, 1, 1, 1), [1, 3, 1, 1]),
            ([1, 4, 1, 17], [4, 4, 1, 3], p(1, 0, 1, 1), [1, 4, 1, 15]),
            (
                [1, 5, 11, 9],
                [7, 5, 3, 3],
                p(2, 0, 1, 1).padding(Padding::new(0, 1, 0, 1)).stride(2, 1),
                [1, 7, 5, 9],
            ),
            (
                [1, 6, 10, 10],
                [4, 6, 3, 3],
                p(1, 0, 1, 1).padding(Padding::new(0, 2, 1, 0)),
                [1, 4, 9, 10],
            ),
            (
                [1, 4, 17, 23],
                [6, 4, 3, 3],
                p(1, 0, 1, 1)
                    .padding(Padding::new(1, 3, 1, 3))
                    .dilation(1, 3),
                [1, 6, 17, 23],
            ),
            // floor division: (10 + 0 - 3) / 3 + 1 = 3
            ([1, 1, 10, 10], [1, 1, 3, 3], p(3, 0, 1, 1), [1, 1, 3, 3]),
        ];
        for (input, weight, params, expected) in table {
            let s = Conv2dShape::conv2d(*input, *weight, Some(weight[0]), params)
                .unwrap_or_else(|e| panic!("{input:?} {weight:?}: {e}"));
            assert_eq!(
                s.output_shape(),
                *expected,
                "{input:?} {weight:?} {params:?}"
            );
        }
    }

    #[test]
    fn forward_errors_carry_numbers() {
        let ok_in = [1, 4, 8, 8];
        let ok_w = [6, 4, 3, 3];
        let d = Conv2dParams::default();
        let cases: Vec<(Result<Conv2dShape>, &str)> = vec![
            (
                Conv2dShape::conv2d(ok_in, ok_w, None, &d.stride(0, 1)),
                "ZeroStride { h: 0, w: 1 }",
            ),
            (
                Conv2dShape::conv2d(ok_in, ok_w, None, &d.dilation(1, 0)),
                "ZeroDilation { h: 1, w: 0 }",
            ),
            (
                Conv2dShape::conv2d(ok_in, ok_w, None, &d.groups(0)),
                "ZeroGroups",
            ),
            (
                Conv2dShape::conv2d([1, 6, 8, 8], [6, 2, 3, 3], None, &d.groups(4)),
                "ChannelsNotDivisible { what: \"input channels\", channels: 6, groups: 4 }",
            ),
            (
                Conv2dShape::conv2d([1, 4, 8, 8], [6, 1, 3, 3], None, &d.groups(4)),
                "ChannelsNotDivisible { what: \"output channels\", channels: 6, groups: 4 }",
            ),
            (
                Conv2dShape::conv2d(ok_in, [6, 3, 3, 3], None, &d),
                "WeightChannelMismatch { weight_channels: 3, c_in: 4, groups: 1 }",
            ),
            (
                Conv2dShape::conv2d(ok_in, ok_w, Some(5), &d),
                "BiasLength { len: 5, c_out: 6 }",
            ),
            (
                Conv2dShape::conv2d([1, 4, 4, 8], ok_w, None, &d.dilation(2, 1)),
                "KernelLargerThanInput { axis: Height, padded_input: 4, dilated_kernel: 5 }",
            ),
            (
                Conv2dShape::conv2d([1, 4, 8, 2], [6, 4, 1, 3], None, &d),
                "KernelLargerThanInput { axis: Width, padded_input: 2, dilated_kernel: 3 }",
            ),
            (
                Conv2dShape::conv2d([1, 4, 0, 8], ok_w, None, &d),
                "EmptyDimension { tensor: \"input\", shape: [1, 4, 0, 8] }",
            ),
            (
                Conv2dShape::conv2d([1 << 20, 4, 1 << 10, 1 << 10], ok_w, None, &d),
                "SizeOverflow { what: \"input\", limit: \"u32 element indices\" }",
            ),
            (
                Conv2dShape::conv2d([usize::MAX / 2, 4, 8, 8], ok_w, None, &d),
                "SizeOverflow { what: \"input\", limit: \"u64 bytes\" }",
            ),
            (
                // Input fits, but the output of a 1x1 conv with many channels does not.
                Conv2dShape::conv2d([1, 1, 1 << 15, 1 << 15], [16, 1, 1, 1], None, &d),
                "SizeOverflow { what: \"output\", limit: \"u32 element indices\" }",
            ),
        ];
        for (got, want) in cases {
            match got {
                Ok(s) => panic!("expected {want}, got Ok({s:?})"),
                Err(e) => assert_eq!(format!("{e:?}"), want),
            }
        }
    }

    #[test]
    fn padding_makes_a_large_kernel_fit() {
        // 3x3 kernel on a 1x1 input fits once padded by 1 on each side.
        let s = Conv2dShape::conv2d([1, 2, 1, 1], [3, 2, 3, 3], None, &p(1, 1, 1, 1)).unwrap();
        assert_eq!((s.h_out, s.w_out), (1, 1));
        // asymmetric: only bottom padding
        let s = Conv2dShape::conv2d(
            [1, 1, 2, 3],
            [1, 1, 3, 3],
            None,
            &Conv2dParams::default().padding(Padding::new(0, 0, 1, 0)),
        )
        .unwrap();
        assert_eq!((s.h_out, s.w_out), (1, 1));
    }

    #[test]
    fn transposed_output_sizes() {
        let t = ConvTranspose2dParams::default;
        let table: &[Row<ConvTranspose2dParams>] = &[
            ([1, 4, 7, 6], [4, 5, 3, 3], t(), [1, 5, 9, 8]),
            (
                [1, 8, 8, 8],
                [8, 4, 4, 4],
                t().stride(2, 2).padding(Padding::uniform(1)),
                [1, 4, 16, 16],
            ),
            (
                [2, 4, 6, 5],
                [4, 3, 3, 3],
                t().stride(2, 2)
                    .padding(Padding::uniform(1))
                    .output_padding(1, 1),
                [2, 3, 12, 10],
            ),
            ([1, 3, 5, 4], [3, 2, 2, 2], t().stride(3, 3), [1, 2, 14, 11]),
            (
                [1, 3, 6, 6],
                [3, 4, 3, 3],
                t().stride(2, 2)
                    .padding(Padding::new(0, 1, 2, 0))
                    .output_padding(1, 0),
                [1, 4, 12, 12],
            ),
            (
                [1, 4, 6, 6],
                [4, 4, 3, 3],
                t().stride(2, 2)
                    .padding(Padding::uniform(1))
                    .dilation(2, 2)
                    .output_padding(1, 1),
                [1, 4, 14, 14],
            ),
            (
                [1, 6, 5, 5],
                [6, 2, 3, 3],
                t().stride(2, 2).groups(2),
                [1, 4, 11, 11],
            ),
            (
                [1, 2, 4, 3],
                [2, 3, 5, 5],
                t().stride(4, 4)
                    .padding(Padding::new(1, 2, 1, 2))
                    .output_padding(3, 2),
                [1, 3, 18, 11],
            ),
            // output_padding < dilation is allowed even with stride 1
            (
                [1, 1, 4, 4],
                [1, 1, 3, 3],
                t().dilation(2, 2).output_padding(1, 1),
                [1, 1, 9, 9],
            ),
        ];
        for (input, weight, params, expected) in table {
            let s = Conv2dShape::conv_transpose2d(*input, *weight, None, params)
                .unwrap_or_else(|e| panic!("{input:?} {weight:?}: {e}"));
            assert_eq!(
                s.output_shape(),
                *expected,
                "{input:?} {weight:?} {params:?}"
            );
        }
    }

    #[test]
    fn transposed_errors_carry_numbers() {
        let t = ConvTranspose2dParams::default;
        let cases: Vec<(Result<Conv2dShape>, &str)> = vec![
            (
                Conv2dShape::conv_transpose2d(
                    [1, 4, 5, 5],
                    [4, 2, 3, 3],
                    None,
                    &t().stride(2, 2).output_padding(2, 0),
                ),
                "OutputPaddingTooLarge { axis: Height, output_padding: 2, stride: 2, dilation: 1 }",
            ),
            (
                Conv2dShape::conv_transpose2d(
                    [1, 4, 5, 5],
                    [4, 2, 3, 3],
                    None,
                    &t().output_padding(0, 1),
                ),
                "OutputPaddingTooLarge { axis: Width, output_padding: 1, stride: 1, dilation: 1 }",
            ),
            (
                Conv2dShape::conv_transpose2d(
                    [1, 4, 1, 1],
                    [4, 2, 1, 1],
                    None,
                    &t().padding(Padding::new(1, 0, 0, 0)),
                ),
                "NonPositiveOutput { axis: Height, size: 0 }",
            ),
            (
                Conv2dShape::conv_transpose2d([1, 4, 5, 5], [4, 2, 3, 3], Some(3), &t()),
                "BiasLength { len: 3, c_out: 2 }",
            ),
            (
                Conv2dShape::conv_transpose2d([1, 6, 5, 5], [6, 2, 3, 3], None, &t().groups(4)),
                "ChannelsNotDivisible { what: \"input channels\", channels: 6, groups: 4 }",
            ),
            (
                Conv2dShape::conv_transpose2d([1, 4, 5, 5], [3, 2, 3, 3], None, &t()),
                "WeightChannelMismatch { weight_channels: 3, c_in: 4, groups: 1 }",
            ),
            (
                Conv2dShape::conv_transpose2d([1, 4, 5, 5], [4, 2, 3, 3], None, &t().stride(1, 0)),
                "ZeroStride { h: 1, w: 0 }",
            ),
        ];
        for (got, want) in cases {
            match got {
                Ok(s) => panic!("expected {want}, got Ok({s:?})"),
                Err(e) => assert_eq!(format!("{e:?}"), want),
            }
        }
    }

    #[test]
    fn flops_match_the_suite_table() {
        // peers.md: r3x3 = 231.2 MFLOP, tconv4 = 268.4 MFLOP, dw3 = 8.13 MFLOP.
        let r = Conv2dShape::conv2d([1, 64, 56, 56], [64, 64, 3, 3], None, &p(1, 1, 1, 1)).unwrap();
        assert_eq!(r.flops(), 231_211_008);
        let dw =
            Conv2dShape::conv2d([1, 144, 56, 56], [144, 1, 3, 3], None, &p(1, 1, 1, 144)).unwrap();
        assert_eq!(dw.flops(), 8_128_512);
        let t = Conv2dShape::conv_transpose2d(
            [1, 128, 32, 32],
            [128, 64, 4, 4],
            None,
            &ConvTranspose2dParams::default()
                .stride(2, 2)
                .padding(Padding::uniform(1)),
        )
        .unwrap();
        assert_eq!(t.flops(), 268_435_456);
    }

    #[test]
    fn upsample_output_sizes() {
        let (n, b) = (UpsampleParams::nearest, UpsampleParams::bilinear);
        // (input, params, expected output): in · scale per axis, as PyTorch computes it.
        let table: &[([usize; 4], UpsampleParams, [usize; 4])] = &[
            ([1, 3, 7, 5], n(2, 2), [1, 3, 14, 10]),
            ([2, 1, 1, 1], b(4, 3), [2, 1, 4, 3]),
            ([1, 8, 13, 7], b(1, 1), [1, 8, 13, 7]),
            ([1, 2, 1, 17], n(3, 1), [1, 2, 3, 17]),
            ([3, 9, 4, 6], b(1, 4), [3, 9, 4, 24]),
        ];
        for (input, params, expected) in table {
            let s = UpsampleShape::new(*input, params).unwrap();
            assert_eq!(s.output_shape(), *expected, "{input:?} {params:?}");
            assert_eq!(s.input_shape(), *input);
            assert_eq!(s.params(), *params);
        }
    }

    /// (input, weight, upsampling, convolution, expected output shape)
    type FusedRow = (
        [usize; 4],
        [usize; 4],
        UpsampleParams,
        Conv2dParams,
        [usize; 4],
    );

    #[test]
    fn upsample_conv_output_sizes() {
        let (n, b) = (UpsampleParams::nearest, UpsampleParams::bilinear);
        let c = Conv2dParams::default;
        // (input, weight, upsample, conv, expected): the conv output of the upsampled size.
        let table: &[FusedRow] = &[
            // 7x5 -> 14x10, 3x3 pad 1
            (
                [1, 4, 7, 5],
                [6, 4, 3, 3],
                n(2, 2),
                c().padding(Padding::uniform(1)),
                [1, 6, 14, 10],
            ),
            // 7x5 -> 14x15; stride 2, pad (t 0, l 1, b 1, r 0): (14+1-3)/2+1 = 7, (15+1-3)/2+1 = 7
            (
                [1, 4, 7, 5],
                [6, 4, 3, 3],
                b(2, 3),
                c().stride(2, 2).padding(Padding::new(0, 1, 1, 0)),
                [1, 6, 7, 7],
            ),
            // 5x5 -> 15x15; depthwise 5x5 dilation 2 (reach 9), pad 4: 15+8-9+1 = 15
            (
                [2, 3, 5, 5],
                [3, 1, 5, 5],
                n(3, 3),
                c().groups(3).dilation(2, 2).padding(Padding::uniform(4)),
                [2, 3, 15, 15],
            ),
            // 1x1 -> 4x4, 4x4 kernel: 1x1
            ([1, 1, 1, 1], [2, 1, 4, 4], n(4, 4), c(), [1, 2, 1, 1]),
        ];
        for (input, weight, up, conv, expected) in table {
            let params = UpsampleConv2dParams {
                upsample: *up,
                conv: *conv,
            };
            let s = UpsampleConv2dShape::new(*input, *weight, None, &params).unwrap();
            assert_eq!(
                s.output_shape(),
                *expected,
                "{input:?} {weight:?} {params:?}"
            );
            assert_eq!(s.input_shape(), *input);
            assert_eq!(
                [s.conv.h_in, s.conv.w_in],
                [s.upsample.h_out, s.upsample.w_out]
            );
        }
    }

    #[test]
    fn upsample_errors_carry_numbers() {
        let (n, b) = (UpsampleParams::nearest, UpsampleParams::bilinear);
        let cases: Vec<(Result<UpsampleShape>, &str)> = vec![
            (
                UpsampleShape::new([1, 1, 4, 4], &n(0, 2)),
                "ZeroScale { h: 0, w: 2 }",
            ),
            (
                UpsampleShape::new([1, 1, 4, 4], &b(2, MAX_SCALE + 1)),
                "ScaleTooLarge { axis: Width, scale: 8388609, max: 8388608 }",
            ),
            (
                UpsampleShape::new([1, 1, 1 << 30, 1], &n(2, 1)),
                "UpsampledExtentOverflow { axis: Height, extent: 1073741824, scale: 2, max: 2147483647 }",
            ),
            (
                UpsampleShape::new([1, 1, 1, 1 << 20], &b(1, 4096)),
                "UpsampledExtentOverflow { axis: Width, extent: 1048576, scale: 4096, max: 2147483647 }",
            ),
            (
                UpsampleShape::new([1, 16, 1 << 12, 1 << 12], &n(4, 4)),
                "UpsampledSizeOverflow { shape: [1, 16, 16384, 16384], max: 4294967295 }",
            ),
            (
                UpsampleShape::new([1, 0, 4, 4], &n(2, 2)),
                "EmptyDimension { tensor: \"input\", shape: [1, 0, 4, 4] }",
            ),
            (
                UpsampleShape::new([1 << 20, 4, 1 << 10, 1 << 10], &n(1, 1)),
                "SizeOverflow { what: \"input\", limit: \"u32 element indices\" }",
            ),
        ];
        for (got, want) in cases {
            match got {
                Ok(s) => panic!("expected {want}, got Ok({s:?})"),
                Err(e) => assert_eq!(format!("{e:?}"), want),
            }
        }
        let p = |up, conv| UpsampleConv2dParams { upsample: up, conv };
        let d = Conv2dParams::default();
        let fused: Vec<(Result<UpsampleConv2dShape>, &str)> = vec![
            (
                UpsampleConv2dShape::new([1, 4, 2, 2], [6, 4, 5, 5], None, &p(n(2, 2), d)),
                "KernelLargerThanInput { axis: Height, padded_input: 4, dilated_kernel: 5 }",
            ),
            (
                UpsampleConv2dShape::new([1, 4, 2, 2], [6, 4, 3, 3], None, &p(b(2, 0), d)),
                "ZeroScale { h: 2, w: 0 }",
            ),
            (
                UpsampleConv2dShape::new(
                    [1, 4, 8, 8],
                    [6, 4, 3, 3],
                    None,
                    &p(n(1, 1), d.stride(0, 1)),
                ),
                "ZeroStride { h: 0, w: 1 }",
            ),
            (
                UpsampleConv2dShape::new([1, 4, 8, 8], [6, 4, 3, 3], Some(4), &p(n(2, 2), d)),
                "BiasLength { len: 4, c_out: 6 }",
            ),
        ];
        for (got, want) in fused {
            match got {
                Ok(s) => panic!("expected {want}, got Ok({s:?})"),
                Err(e) => assert_eq!(format!("{e:?}"), want),
            }
        }
    }

    #[test]
    fn activation_parses_and_prints() {
        for s in ["none", "relu", "relu6", "silu", "leaky_relu:0.1"] {
            let a: Activation = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
        assert!("leaky_relu:x".parse::<Activation>().is_err());
        assert!("gelu".parse::<Activation>().is_err());
    }

    #[test]
    fn pool_output_sizes() {
        // (input, params, expected output); sizes as PyTorch's MaxPool2d computes them.
        let mp = |k: u32, s: u32| Pool2dParams {
            mode: PoolMode::Max,
            kernel: (k, k),
            stride: (s, s),
        };
        let table: &[([usize; 4], Pool2dParams, [usize; 4])] = &[
            ([1, 64, 112, 112], mp(3, 2), [1, 64, 55, 55]),
            ([1, 3, 224, 224], Pool2dParams::max2x2(), [1, 3, 112, 112]),
            ([2, 5, 7, 7], Pool2dParams::avg2x2(), [2, 5, 3, 3]),
            ([1, 1, 4, 4], mp(4, 1), [1, 1, 1, 1]),
            ([1, 1, 5, 9], mp(1, 3), [1, 1, 2, 3]),
            (
                [1, 2, 6, 1],
                Pool2dParams {
                    mode: PoolMode::Avg,
                    kernel: (3, 1),
                    stride: (1, 5),
                },
                [1, 2, 4, 1],
            ),
        ];
        for &(input, params, expected) in table {
            let s = Pool2dShape::new(input, &params).unwrap();
            assert_eq!(s.output_shape(), expected, "{input:?} {params:?}");
            assert_eq!(s.params(), params);
        }
    }

    #[test]
    fn pool_errors_carry_the_numbers() {
        let p = |k: (u32, u32), s: (u32, u32)| Pool2dParams {
            mode: PoolMode::Max,
            kernel: k,
            stride: s,
        };
        assert!(matches!(
            Pool2dShape::new([1, 1, 4, 4], &p((0, 2), (1, 1))),
            Err(Error::ZeroPoolKernel { h: 0, w: 2 })
        ));
        assert!(matches!(
            Pool2dShape::new([1, 1, 4, 4], &p((2, 2), (1, 0))),
            Err(Error::ZeroStride { h: 1, w: 0 })
        ));
        assert!(matches!(
            Pool2dShape::new([1, 1, 4, 3], &p((2, 4), (1, 1))),
            Err(Error::PoolWindowLargerThanInput {
                axis: Axis::Width,
                kernel: 4,
                input: 3
            })
        ));
        assert!(matches!(
            Pool2dShape::new([1, 0, 4, 4], &Pool2dParams::max2x2()),
            Err(Error::EmptyDimension { .. })
        ));
    }

    #[test]
    fn eltwise_concat_and_global_pool_shapes() {
        assert_eq!(
            eltwise_shape([1, 2, 3, 4], [1, 2, 3, 4]).unwrap(),
            [1, 2, 3, 4]
        );
        assert!(matches!(
            eltwise_shape([1, 2, 3, 4], [1, 2, 4, 3]),
            Err(Error::ShapeMismatch { .. })
        ));
        assert_eq!(global_pool_shape([2, 7, 5, 3]).unwrap(), [2, 7, 1, 1]);
        assert_eq!(
            concat_shape(&[[2, 3, 4, 5], [2, 1, 4, 5], [2, 8, 4, 5]]).unwrap(),
            [2, 12, 4, 5]
        );
        assert!(matches!(concat_shape(&[]), Err(Error::NoInputs { .. })));
        assert!(matches!(
            concat_shape(&[[1, 3, 4, 5], [1, 3, 4, 6]]),
            Err(Error::ConcatMismatch { index: 1, .. })
        ));
        assert!(matches!(
            concat_shape(&[[1, 1 << 30, 2, 2], [1, 1 << 30, 2, 2]]),
            Err(Error::SizeOverflow { .. })
        ));
    }
}
