//! CPU time a process has used, from `/proc/PID/stat` (user + system).

use std::path::Path;

/// Clock ticks per second of `/proc` times (`getconf CLK_TCK`; 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// Seconds of CPU process `pid` has used, or 0 if it is gone.
pub fn seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat"))
    else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces; fields after its ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / TICKS_PER_SECOND
}

/// Seconds of CPU the processes `pids` have used together.
pub fn total(pids: &[u32]) -> f64 {
    pids.iter().map(|p| seconds(*p)).sum()
}

/// CPU the servers and this process (the load clients) use over a phase.
pub struct Meter {
    pids: Vec<u32>,
    servers_s: f64,
    client_s: f64,
    started: std::time::Instant,
}

impl Meter {
    /// Starts measuring the servers `pids` and this process.
    pub fn start(pids: Vec<u32>) -> Meter {
        let (servers_s, client_s) = (total(&pids), seconds(std::process::id()));
        Meter { pids, servers_s, client_s, started: std::time::Instant::now() }
    }

    /// Milliseconds of server CPU and of client CPU per operation, for
    /// `per_second` operations a second since the start.
    pub fn per_op(&self, per_second: f64) -> (f64, f64) {
        let ops = (per_second * self.started.elapsed().as_secs_f64()).max(1.0);
        let servers = (total(&self.pids) - self.servers_s) * 1e3 / ops;
        let client = (seconds(std::process::id()) - self.client_s) * 1e3 / ops;
        (servers, client)
    }
}
