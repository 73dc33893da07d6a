//! File content over the network: `/kith/chunks/1` streams in and out.
//!
//! - [`chunk_stream`]: accepts chunk requests and hands each, with a way to
//!   answer it, to whoever decides (the replica service, or a client's
//!   [`local_files::LocalFiles`]).
//! - [`fetch`]: drives the core's `files::Download` over outbound streams
//!   and a blob store's partial blob (replicas replicating, clients
//!   fetching).
//! - [`local_files`]: the files a client offers while it uploads them,
//!   with [`shared_answers`] for replicas asking for the same groups.
//!
//! Every rule (who may fetch, what to ask whom, what is verified, when a
//! download is done) is the core's; these move bytes and keep time.

pub mod chunk_stream;
pub mod fetch;
pub mod local_files;
pub mod shared_answers;
