//! A client with no config and no address finds the cluster by mDNS:
//! `kith --mdns` hears every replica run with `kith node --mdns` on the
//! local network, and chats through them; with two clusters there, it
//! names both and asks which.
//!
//! libp2p's mDNS runs on every interface but loopback, and answers with
//! the addresses a replica listens on at the interface a query came in on,
//! so the replicas here also listen on `0.0.0.0` and the test needs a
//! network interface that is up and multicast-capable (a host with
//! loopback alone cannot be found by mDNS at all: it says so and stops).

mod support;

use support::{free_port, kith, Cluster, Scratch};

/// The first interface that is up, not loopback and takes multicast.
fn lan_interface() -> Option<String> {
    const IFF_UP: u32 = 0x1;
    const IFF_LOOPBACK: u32 = 0x8;
    const IFF_MULTICAST: u32 = 0x1000;
    let entries = std::fs::read_dir("/sys/class/net").ok()?;
    entries.flatten().find_map(|entry| {
        let text = std::fs::read_to_string(entry.path().join("flags")).ok()?;
        let flags = u32::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()?;
        let lan = flags & IFF_UP != 0 && flags & IFF_LOOPBACK == 0 && flags & IFF_MULTICAST != 0;
        lan.then(|| entry.file_name().to_string_lossy().into_owned())
    })
}

async fn run(home: &str, args: &[&str]) -> (bool, String, String) {
    let out = kith().env("KITH_HOME", home).env_remove("KITH_NODE").args(args).output().await;
    let out = out.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_no_config_finds_every_replica_by_mdns_and_chats() {
    let Some(interface) = lan_interface() else {
        eprintln!("no multicast-capable interface besides loopback: mDNS cannot run here");
        return;
    };
    eprintln!("mDNS over {interface}");
    // Each replica also listens on every interface (loopback is the one
    // the cluster itself uses).
    let lan = || format!("/ip4/0.0.0.0/tcp/{}", free_port());
    let mut cluster = Cluster::start("mdns", 1, &["--mdns", "--listen", &lan()]).await;
    for i in 1..3 {
        cluster.init_replica(&["--mdns", "--listen", &lan()]);
        cluster.join_and_add(i).await;
    }

    let client = Scratch::new("mdns-client");
    let home = client.0.to_str().unwrap();
    let (made, _, err) = run(home, &["id", "new", "ann"]).await;
    assert!(made, "kith id new failed:\n{err}");
    // Nothing tells the client where the cluster is...
    let (lost, _, err) = run(home, &["--as", "ann", "register"]).await;
    assert!(!lost && err.contains("no node address"), "{err}");

    // ...but mDNS does, for each command.
    let (registered, _, err) = run(home, &["--mdns", "--as", "ann", "register"]).await;
    assert!(registered, "kith --mdns register failed:\n{err}");
    for replica in &cluster.replicas {
        assert!(
            err.contains(&format!("found a replica by mDNS peer={}", replica.peer)),
            "replica {} was not found:\n{err}",
            replica.peer
        );
    }
    for args in [["room", "create", "lan"], ["send", "lan", "found you"]] {
        let mut full = vec!["--mdns", "--as", "ann"];
        full.extend(args);
        let (done, _, err) = run(home, &full).await;
        assert!(done, "kith {full:?} failed:\n{err}");
    }
    let (read, out, err) = run(home, &["--mdns", "--as", "ann", "history", "lan"]).await;
    assert!(read && out.contains("found you"), "history:\n{out}\n{err}");

    // A second cluster on the same network: the client will not guess.
    let other = Cluster::start("mdns-other", 1, &["--mdns", "--listen", &lan()]).await;
    let (mixed, _, err) = run(home, &["--mdns", "--as", "ann", "history", "lan"]).await;
    assert!(!mixed && err.contains("2 kith clusters answered"), "{err}");
    for replica in cluster.replicas.iter().chain(&other.replicas) {
        assert!(err.contains(&replica.peer.to_string()), "{} not offered:\n{err}", replica.peer);
    }
}
