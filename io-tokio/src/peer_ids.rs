//! How libp2p identities map onto kith's: a replica's Raft id is derived
//! from its PeerId, and a client's user id is its PeerId's ed25519 key.
//!
//! Deriving the Raft id (rather than assigning one) makes the replica
//! directory self-certifying: a record "node N is peer P" is checked by
//! hashing P, so a peer cannot claim another replica's id.

use kith_core::ids::NodeId;
use kith_core::im::identity::UserId;
use libp2p::PeerId;

/// The Raft id of the replica whose key has this PeerId
/// ([`NodeId::of_peer`]).
pub fn node_id_of(peer: &PeerId) -> NodeId {
    NodeId::of_peer(&peer.to_bytes())
}

/// The user a connection's PeerId authenticates, if it is an ed25519 key.
pub fn user_of(peer: &PeerId) -> Option<UserId> {
    UserId::from_peer_id_bytes(&peer.to_bytes()).ok()
}

/// The peer an address names last (`.../p2p/<PEER_ID>`), if it names one.
pub fn named_peer(addr: &libp2p::Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

/// The PeerId of a user.
pub fn peer_of(user: UserId) -> PeerId {
    PeerId::from_bytes(&user.peer_id_bytes()).expect("ed25519 peer ids are valid multihashes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_peers_round_trip() {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let user = user_of(&peer).unwrap();
        assert_eq!(peer_of(user), peer);
        assert_ne!(node_id_of(&peer).get(), 0);
        assert_eq!(node_id_of(&peer), node_id_of(&peer));
        // The core derives the same id from the key alone.
        assert_eq!(user.node_id(), node_id_of(&peer));
    }
}
