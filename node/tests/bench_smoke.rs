//! The cluster benchmark's smoke run (seconds, a few clients), so it never
//! rots: three `kith node` processes and three etcd members must start, take
//! writes and report every row. etcd comes from Debian's `etcd-server`
//! (`.ci/run` installs it; the benchmark installs it itself when it can).
//! The full run and its figures are in docs/PERFORMANCE.md.

use std::process::Command;

#[test]
fn the_cluster_benchmark_runs_against_etcd() {
    let out = Command::new(env!("CARGO_BIN_EXE_kith-cluster-bench"))
        .arg("--smoke")
        .output()
        .expect("the benchmark starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.starts_with("BENCH cluster ")).expect("a BENCH line");
    for key in ["kith_per_s=", "etcd_per_s=", "ratio=", "kith_cpu_ms=", "etcd_p99_ms="] {
        assert!(line.contains(key), "{key} missing from {line}");
    }
    let figure = |key: &str| -> f64 {
        let start = line.find(key).expect("present") + key.len();
        line[start..].split_whitespace().next().and_then(|v| v.parse().ok()).expect("a number")
    };
    assert!(figure("kith_per_s=") > 0.0 && figure("etcd_per_s=") > 0.0, "both took writes");
}
