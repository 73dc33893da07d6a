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

/// The simulator's cost beside a bare madsim loop of raft-rs nodes: one
/// short seed of each row.
#[test]
fn the_simulator_cost_benchmark_runs() {
    let out = Command::new(env!("CARGO_BIN_EXE_kith-sim-bench"))
        .arg("--smoke")
        .output()
        .expect("the benchmark starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.starts_with("BENCH sim ")).expect("a BENCH line");
    let figure = |key: &str| -> f64 {
        let start =
            line.find(key).unwrap_or_else(|| panic!("{key} missing from {line}")) + key.len();
        line[start..].split_whitespace().next().and_then(|v| v.parse().ok()).expect("a number")
    };
    assert!(figure("bare_us_per_op=") > 0.0, "the bare loop committed nothing: {line}");
    assert!(figure("kith_us_per_op=") > 0.0 && figure("ratio=") > 0.0, "{line}");
}
