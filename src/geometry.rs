//! Convolution geometry: parameters, validation, output sizes and FLOPs.
//!
//! No wgpu here. Everything else — the CPU reference, the GPU uniforms, the
//! planner, the CLI and the tests — consumes the resolved [`Conv2dShape`] and
//! never re-derives a size.
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
    fn activation_parses_and_prints() {
        for s in ["none", "relu", "relu6", "silu", "leaky_relu:0.1"] {
            let a: Activation = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
        assert!("leaky_relu:x".parse::<Activation>().is_err());
        assert!("gelu".parse::<Activation>().is_err());
    }
}
