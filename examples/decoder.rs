//! `cargo run --release --example decoder [-- --small]`: the decoder reference
//! network(s) (see `wgconv::nets`), timed and verified on the GPU.

mod common;

fn main() -> std::process::ExitCode {
    common::main("decoder")
}
