//! `cargo run --release --example context_module [-- --small]`: the context_module reference
//! network(s) (see `wgconv::nets`), timed and verified on the GPU.

mod common;

fn main() -> std::process::ExitCode {
    common::main("context_module")
}
