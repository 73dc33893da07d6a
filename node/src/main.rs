//! The `kith` binary. The replica and client commands arrive with the real
//! node (see the issue tracker: "The real node"); until then the binary says
//! so and exits non-zero rather than pretending to run.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "kith {}: the replica and client commands are not built yet.\n\
         Run the seeded cluster simulation instead:\n  \
         cargo run --release -p kith-sim-tests --bin kith-sim -- --seed 42",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
