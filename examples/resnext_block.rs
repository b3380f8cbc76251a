//! `cargo run --release --example resnext_block [-- --small]`: the resnext_block reference
//! network(s) (see `wgconv::nets`), timed and verified on the GPU.

mod common;

fn main() -> std::process::ExitCode {
    common::main("resnext_block")
}
