//! The cluster benchmark's smoke run (seconds, a few clients), so it never
//! rots: three `kith node` processes, three etcd members and a Prosody server
//! must start, take writes and report every row. etcd and Prosody come from
//! Debian's `etcd-server`, `prosody` and `lua-dbi-sqlite3` (`.ci/run` installs
//! them; the benchmark installs them itself when it can).
//! The full run and its figures are in docs/PERFORMANCE.md.

use std::process::Command;

#[test]
fn the_cluster_benchmark_runs_against_etcd_and_prosody() {
    let out = Command::new(env!("CARGO_BIN_EXE_kith-cluster-bench"))
        .arg("--smoke")
        .output()
        .expect("the benchmark starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.starts_with("BENCH cluster ")).expect("a BENCH line");
    let keys = [
        "kith_per_s=",
        "etcd_per_s=",
        "prosody_per_s=",
        "ratio=",
        "fsync_p50_us=",
        "kith_cpu_ms=",
        "etcd_p99_ms=",
        "kith_open_delivery_p99_ms=",
        "prosody_open_delivery_p99_ms=",
        "kith_fan_out_per_s=",
        "prosody_fan_out_per_s=",
    ];
    for key in keys {
        assert!(line.contains(key), "{key} missing from {line}");
    }
    let figure = |key: &str| -> f64 {
        let start = line.find(key).expect("present") + key.len();
        line[start..].split_whitespace().next().and_then(|v| v.parse().ok()).expect("a number")
    };
    for system in ["kith", "etcd", "prosody"] {
        assert!(figure(&format!("{system}_per_s=")) > 0.0, "{system} took no writes: {line}");
    }
    for key in ["kith_open_delivery_p99_ms=", "prosody_fan_out_per_s=", "kith_fan_out_per_s="] {
        assert!(figure(key) > 0.0, "{key} measured nothing: {line}");
    }
}

/// The history benchmark's smoke run: a replica takes 2,000 messages, is
/// measured, SIGKILLed and restarted twice, and answers history pages.
#[test]
fn the_history_benchmark_runs() {
    let out = Command::new(env!("CARGO_BIN_EXE_kith-history-bench"))
        .arg("--smoke")
        .output()
        .expect("the benchmark starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.starts_with("BENCH history ")).expect("a BENCH line");
    for key in ["rss_mib@500=", "rss_mib@2000=", "page_end_ms@2000=", "restart_s@2000="] {
        assert!(line.contains(key), "{key} missing from {line}");
    }
}

/// The files benchmark's smoke run: a few MiB sent and fetched through a
/// `kith dev` cluster beside a plain TCP copy, with every row reported.
#[test]
fn the_files_benchmark_runs() {
    let out = Command::new(env!("CARGO_BIN_EXE_kith-files-bench"))
        .arg("--smoke")
        .output()
        .expect("the benchmark starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.starts_with("BENCH files ")).expect("a BENCH line");
    let figure = |key: &str| -> f64 {
        let start =
            line.find(key).unwrap_or_else(|| panic!("{key} missing from {line}")) + key.len();
        line[start..].split_whitespace().next().and_then(|v| v.parse().ok()).expect("a number")
    };
    for key in [
        "copy_mib_s=",
        "send_mib_s=",
        "get_mib_s=",
        "get_ratio=",
        "send_peak_kib=",
        "get_peak_kib=",
        "replica_peak_kib=",
    ] {
        assert!(figure(key) > 0.0, "{key} measured nothing: {line}");
    }
}
