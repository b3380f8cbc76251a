//! One file per op family: the Pod params struct mirroring its shaders, the
//! dispatch math, and the layer type.

pub mod conv2d;
