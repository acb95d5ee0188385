//! One switch for gocontext's loom mode: `--cfg gocontext_loom` turns on
//! `cfg(loom)` inside this crate only (see docs/loom.md for why gocontext
//! has a switch of its own, and why plain `--cfg loom` works as well).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_CFG_GOCONTEXT_LOOM").is_some() {
        println!("cargo:rustc-cfg=loom");
    }
}
