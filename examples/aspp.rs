//! `cargo run --release --example aspp [-- --small]`: the aspp reference
//! network(s) (see `wgconv::nets`), timed and verified on the GPU.

mod common;

fn main() -> std::process::ExitCode {
    common::main("aspp")
}
