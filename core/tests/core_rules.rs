//! The core's architectural rules, enforced by the test command:
//! no async runtime, network stack or simulator among its dependencies, and
//! no clock, global randomness, sockets or threads in its source.

use std::path::Path;
use std::process::Command;

/// The normal dependencies of `package`, one crate name per line.
fn dependencies(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-p", package, "-e", "normal", "--prefix", "none", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn assert_free_of(package: &str, banned: &[&str]) {
    let deps = dependencies(package);
    assert!(deps.len() > 1, "unexpected cargo tree output for {package}: {deps:?}");
    for b in banned {
        let hit = deps.iter().find(|d| d == b || d.starts_with(&format!("{b}-")));
        assert!(hit.is_none(), "{package} must not depend on {b} (found {hit:?})");
    }
}

#[test]
fn core_depends_on_no_runtime_network_or_simulator() {
    assert!(dependencies("kith-core").iter().any(|d| d == "raft"));
    assert_free_of("kith-core", &["tokio", "libp2p", "madsim", "async-std", "mio"]);
}

/// madsim replaces libc's clock and randomness in any binary that links it.
#[test]
fn real_binary_and_driver_never_link_the_simulator() {
    assert_free_of("kith-node", &["madsim"]);
    assert_free_of("kith-io-tokio", &["madsim"]);
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn core_source_reads_no_clock_randomness_socket_or_thread() {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let banned = [
        "std::time::Instant",
        "SystemTime",
        "thread_rng",
        "rand::random",
        "OsRng",
        "std::net",
        "std::thread",
        "std::fs",
        "HashMap",
        "HashSet",
    ];
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for b in banned {
                assert!(
                    !code.contains(b),
                    "{}:{}: `{b}` is not allowed in kith-core",
                    file.display(),
                    n + 1
                );
            }
        }
    }
}
