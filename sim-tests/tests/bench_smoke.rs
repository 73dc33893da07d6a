//! The benchmarks' smoke runs (tiny sizes, seconds), so they never rot:
//! each must run to its end and print its machine-readable line. The full
//! runs and their figures are in docs/PERFORMANCE.md.

use std::process::Command;

#[test]
fn the_core_commit_path_benchmark_runs() {
    let out = Command::new(env!("CARGO_BIN_EXE_kith-core-bench"))
        .arg("--smoke")
        .output()
        .expect("the benchmark starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.starts_with("BENCH core ")).expect("a BENCH line");
    for key in ["kith_msgs_per_s=", "raw_msgs_per_s=", "ratio=", "kith_p50_us=", "verify_us="] {
        assert!(line.contains(key), "{key} missing from {line}");
    }
}
