//! `cargo run --release --example mobilenet_v2 [-- --small]`: the mobilenet_v2 reference
//! network(s) (see `wgconv::nets`), timed and verified on the GPU.

mod common;

fn main() -> std::process::ExitCode {
    common::main("mobilenet_v2")
}
