//! Connection budgets per source address, so that one source cannot lock a
//! replica's users out.
//!
//! libp2p's `connection_limits` counts pending connections for the whole
//! process and established ones per peer. About 128 TCP connections that
//! open and then send nothing filled the process's pending slots until the
//! handshake deadline freed them, and reopening them kept the replica
//! unreachable; per-peer caps do not help, since fresh keys are free. This
//! behaviour adds what libp2p has no behaviour for: caps per source IP
//! address on pending and on established inbound connections, checked
//! before anything is allocated for the connection. Replicas of the cluster
//! are exempt from the established cap (the reserve: they may share an
//! address, as on one machine); relayed connections are left to the relay's
//! own budgets, since their address is the relay's.

use super::read_budget;
use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    dummy, ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure,
    NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::task::{Context, Poll};

/// Connections one source address may have in the handshake at once.
pub const PENDING_PER_SOURCE_MAX: usize = 8;
/// Inbound connections one source address may hold (replicas exempt).
pub const ESTABLISHED_PER_SOURCE_MAX: usize = 32;

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
#[error("{source_ip} already has {count} {what} connections (at most {max})")]
pub struct SourceBudgetExceeded {
    source_ip: IpAddr,
    count: usize,
    what: &'static str,
    max: usize,
}

/// The per-source budgets.
#[derive(Debug, Default)]
pub struct SourceBudget {
    pending: HashMap<IpAddr, BTreeSet<ConnectionId>>,
    established: HashMap<IpAddr, BTreeSet<ConnectionId>>,
    sources: BTreeMap<ConnectionId, IpAddr>,
    trusted: BTreeSet<PeerId>,
    /// Connections refused so far.
    pub refused: u64,
}

/// The IP address a connection comes from, unless it is relayed.
fn source_of(addr: &Multiaddr) -> Option<IpAddr> {
    if addr.iter().any(|p| p == Protocol::P2pCircuit) {
        return None;
    }
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl SourceBudget {
    /// Exempts `peer` (a replica of the cluster) from the established cap.
    pub fn trust(&mut self, peer: PeerId) {
        self.trusted.insert(peer);
    }

    /// Refuses a connection from `ip`, which already has `count` `what`
    /// connections, once that reaches `max`.
    fn check(
        &mut self,
        what: &'static str,
        ip: IpAddr,
        count: usize,
        max: usize,
    ) -> Result<(), ConnectionDenied> {
        if count < max {
            return Ok(());
        }
        self.refused += 1;
        Err(ConnectionDenied::new(SourceBudgetExceeded { source_ip: ip, count, what, max }))
    }

    fn forget(&mut self, id: ConnectionId) {
        let Some(ip) = self.sources.remove(&id) else { return };
        for table in [&mut self.pending, &mut self.established] {
            if let Some(set) = table.get_mut(&ip) {
                set.remove(&id);
                if set.is_empty() {
                    table.remove(&ip);
                }
            }
        }
    }
}

impl NetworkBehaviour for SourceBudget {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = std::convert::Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = source_of(remote) else { return Ok(()) };
        let pending = self.pending.get(&ip).map_or(0, BTreeSet::len);
        self.check("pending", ip, pending, PENDING_PER_SOURCE_MAX)?;
        self.pending.entry(ip).or_default().insert(id);
        self.sources.insert(id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        // The behaviours after this one set up the same connection next,
        // on this thread: their read accounts are this peer's.
        read_budget::connecting(peer);
        self.forget(id);
        let Some(ip) = source_of(remote) else { return Ok(dummy::ConnectionHandler) };
        if !self.trusted.contains(&peer) {
            let established = self.established.get(&ip).map_or(0, BTreeSet::len);
            self.check("established", ip, established, ESTABLISHED_PER_SOURCE_MAX)?;
        }
        self.established.entry(ip).or_default().insert(id);
        self.sources.insert(id, ip);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _id: ConnectionId,
        peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        read_budget::connecting(peer);
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. })
            | FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.forget(connection_id)
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(ip: &str) -> Multiaddr {
        format!("/ip4/{ip}/tcp/4000").parse().expect("an address")
    }

    #[test]
    fn one_source_is_capped_and_others_are_not() {
        let mut b = SourceBudget::default();
        let local = addr("127.0.0.1");
        for _ in 0..PENDING_PER_SOURCE_MAX {
            let id = ConnectionId::new_unchecked(b.sources.len() + 1);
            b.handle_pending_inbound_connection(id, &local, &addr("10.0.0.2")).expect("room");
        }
        let next = ConnectionId::new_unchecked(1000);
        assert!(b.handle_pending_inbound_connection(next, &local, &addr("10.0.0.2")).is_err());
        assert!(b.handle_pending_inbound_connection(next, &local, &addr("10.0.0.3")).is_ok());
        // A handshake that fails frees its slot.
        b.on_swarm_event(FromSwarm::ListenFailure(ListenFailure {
            local_addr: &local,
            send_back_addr: &addr("10.0.0.2"),
            error: &libp2p::swarm::ListenError::Aborted,
            connection_id: ConnectionId::new_unchecked(1),
            peer_id: None,
        }));
        let again = ConnectionId::new_unchecked(1001);
        assert!(b.handle_pending_inbound_connection(again, &local, &addr("10.0.0.2")).is_ok());
        assert_eq!(b.refused, 1);
    }

    #[test]
    fn replicas_are_exempt_from_the_established_cap() {
        let mut b = SourceBudget::default();
        let (local, from) = (addr("127.0.0.1"), addr("10.0.0.2"));
        let stranger = PeerId::random();
        for i in 0..ESTABLISHED_PER_SOURCE_MAX {
            let id = ConnectionId::new_unchecked(i + 1);
            b.handle_established_inbound_connection(id, stranger, &local, &from).expect("room");
        }
        let id = ConnectionId::new_unchecked(500);
        assert!(b.handle_established_inbound_connection(id, stranger, &local, &from).is_err());
        let replica = PeerId::random();
        b.trust(replica);
        assert!(b.handle_established_inbound_connection(id, replica, &local, &from).is_ok());
        let relayed: Multiaddr = "/ip4/10.0.0.2/tcp/4000/p2p-circuit".parse().expect("relayed");
        let id = ConnectionId::new_unchecked(501);
        assert!(b.handle_established_inbound_connection(id, stranger, &local, &relayed).is_ok());
    }
}
