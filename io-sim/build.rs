//! madsim simulates only under `--cfg madsim`, which `.cargo/config.toml`
//! sets. An environment `RUSTFLAGS` silently replaces those flags and would
//! build a "simulator" on the real tokio runtime, so fail loudly instead.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(madsim)");
    println!("cargo::rerun-if-env-changed=RUSTFLAGS");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    if std::env::var_os("CARGO_CFG_MADSIM").is_none() {
        panic!(
            "kith-io-sim must be built with `--cfg madsim` (set in .cargo/config.toml). \
             An environment RUSTFLAGS replaces the config's flags: unset RUSTFLAGS, or add \
             `--cfg madsim` to it."
        );
    }
}
