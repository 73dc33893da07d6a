//! Taking inbound streams of one protocol from libp2p-stream.

use libp2p::StreamProtocol;
use libp2p_stream::{Control, IncomingStreams};

/// The inbound streams of `protocol`, or `None` (logged: a bug) when the
/// protocol was already taken by another acceptor.
pub fn incoming(control: &mut Control, protocol: StreamProtocol) -> Option<IncomingStreams> {
    match control.accept(protocol.clone()) {
        Ok(incoming) => Some(incoming),
        Err(e) => {
            tracing::error!(%protocol, error = %e, "protocol registered twice");
            None
        }
    }
}
