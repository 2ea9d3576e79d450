//! Records the target triple, which bundles carry so a worker never installs a binary built for
//! another platform.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=NOVA_UPDATE_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
