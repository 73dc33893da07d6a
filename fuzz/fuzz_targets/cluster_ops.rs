//! A fuzzer-chosen schedule of crashes, restarts, partitions, leadership
//! transfers, membership changes and time (decoded with `arbitrary`), while
//! list-append clients write and read on the in-memory harness: every Raft
//! invariant holds after every step, and after healing the cluster
//! converges with a linearizable history.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kith_core::testing::fuzz::cluster_ops(data, kith_sim_tests::invariants::all)
});
