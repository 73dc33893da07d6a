//! Every bound in the core, in one place (TigerBeetle style). A bound that is
//! hit is a typed error or backpressure, never unbounded growth.

use crate::rate::Rate;

/// Largest encoded peer frame the core emits or accepts, in bytes.
pub const FRAME_BYTES_MAX: usize = 1024 * 1024;

/// Largest command a client may submit (encoded), in bytes.
pub const COMMAND_BYTES_MAX: usize = 64 * 1024;

/// Requests a client may have unanswered on one `/kith/session/1` stream:
/// the replica reads no further request from the stream until one of them
/// is answered (and its answer written).
pub const SESSION_REQUESTS_IN_FLIGHT_MAX: usize = 32;

/// Requests a replica may have unanswered on one `/kith/peer-session/1`
/// stream to another: as many as it may have forwarded and not seen
/// answered.
pub const PEER_SESSION_REQUESTS_IN_FLIGHT_MAX: usize = FORWARDS_PENDING_MAX;

/// Largest log entry (one batch of commands), in bytes. Proposals are packed
/// into entries up to this size.
pub const ENTRY_BYTES_MAX: usize = 256 * 1024;

/// Most commands in one log entry.
pub const ENTRY_COMMANDS_MAX: usize = 1024;

/// Submissions waiting to be packed into an entry on the leader.
pub const PROPOSAL_QUEUE_MAX: usize = 4096;

/// Submissions proposed but not yet applied or dropped on this node.
pub const PROPOSALS_IN_FLIGHT_MAX: usize = 65_536;

/// Bytes proposed but not yet committed before raft-rs refuses more.
pub const UNCOMMITTED_BYTES_MAX: u64 = 32 * 1024 * 1024;

/// Bytes of entries raft-rs puts into one append message.
pub const APPEND_MESSAGE_BYTES_MAX: u64 = 512 * 1024;

/// Append messages in flight to one follower.
pub const APPENDS_IN_FLIGHT_MAX: usize = 64;

/// Bytes of committed entries handed to the state machine per cycle.
pub const APPLY_BATCH_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// Linearizable reads waiting for their read index.
pub const READS_PENDING_MAX: usize = 4096;

/// Voters plus learners in one Raft group.
pub const PEERS_MAX: usize = 16;

/// Persist batches handed to the driver but not yet reported durable.
pub const PERSISTS_IN_FLIGHT_MAX: usize = 1024;

/// Largest state-machine snapshot the core will send, receive or recover.
pub const SNAPSHOT_BYTES_MAX: usize = 1024 * 1024 * 1024;

/// Bytes of applied entries after which a replica snapshots, even before
/// its count of entries says so (`Config::snapshot_threshold_bytes`). A busy
/// leader packs several commands into each entry (about ten, with 31
/// clients on one replica), so 10,000 entries meant 100,000 messages: the
/// log tail a restart replays (up to 4 s), and the history a snapshot then
/// commits at once, holding the run loop 0.5-1.7 s (docs/PERFORMANCE.md,
/// section 4). 4 MiB is about 20,000 signed 64-byte messages (196 bytes
/// each, encoded).
pub const SNAPSHOT_THRESHOLD_BYTES: u64 = 4 * 1024 * 1024;

/// Snapshot bytes carried per chunk frame.
pub const SNAPSHOT_CHUNK_BYTES: usize = 256 * 1024;

/// Largest durable batch (one persist write) accepted on recovery.
pub const DURABLE_BATCH_BYTES_MAX: usize = SNAPSHOT_BYTES_MAX + 1024 * 1024;

/// Outputs queued for the driver before the core refuses new submissions.
pub const OUTPUT_QUEUE_MAX: usize = 1 << 20;

/// Ticks the core catches up at once after the driver was paused.
pub const TICKS_CATCH_UP_MAX: u64 = 64;

/// Longest user display name, in characters.
pub const USER_NAME_CHARS_MAX: usize = 32;

/// Longest room name, in characters.
pub const ROOM_NAME_CHARS_MAX: usize = 64;

/// Longest room topic, in bytes.
pub const TOPIC_BYTES_MAX: usize = 512;

/// Longest message text, in bytes.
pub const MESSAGE_BYTES_MAX: usize = 16 * 1024;

/// Longest reaction (one emoji or short code), in bytes.
pub const REACTION_BYTES_MAX: usize = 32;

/// Distinct reactions on one message.
pub const REACTIONS_PER_MESSAGE_MAX: usize = 64;

/// Members of one room.
pub const MEMBERS_PER_ROOM_MAX: usize = 1000;

/// Rooms one user belongs to (direct rooms included).
pub const ROOMS_PER_USER_MAX: usize = 1000;

/// Pending invitations in one room.
pub const INVITES_PER_ROOM_MAX: usize = 1000;

/// Contacts of one user.
pub const CONTACTS_PER_USER_MAX: usize = 1000;

/// Users one user blocks.
pub const BLOCKS_PER_USER_MAX: usize = 10_000;

/// Requests (contact or message) one user has pending at a time: each is
/// a claim on somebody else's attention, so a sender gets few.
pub const REQUESTS_SENT_PENDING_MAX: usize = 20;

/// Requests pending to one user: past it the oldest lapses, so that no
/// crowd of senders can close a user's door to everyone else.
pub const REQUESTS_RECEIVED_PENDING_MAX: usize = 256;

/// How long a request waits for an answer before it lapses (14 days).
pub const REQUEST_TTL_MS: u64 = 14 * 24 * 60 * 60 * 1000;

/// Messages a sender may place in a direct room before the recipient
/// accepts the message request.
pub const REQUEST_MESSAGES_MAX: u32 = 5;

/// Commands one user may submit through one replica: bursts of 2,000,
/// then 1,000 a second. No person comes near it; it bounds what one key
/// can make the cluster do (the answer says when to retry).
pub const COMMAND_RATE: Rate = Rate { burst: 2000, interval_ms: 1 };

/// Group rooms one user may create: 10 at once, then one a minute.
pub const ROOM_CREATION_RATE: Rate = Rate { burst: 10, interval_ms: 60_000 };

/// New requests (contact or message) one user may make: 20 at once, then
/// one every 30 s, so withdrawing and asking again cannot flood anyone.
pub const REQUEST_RATE: Rate = Rate { burst: 20, interval_ms: 30_000 };

/// Registrations (and renames) of one key, which is what a connection
/// authenticates: 5 at once, then one a minute. (New keys from one
/// address are bounded by the driver's per-source connection budget.)
pub const REGISTRATION_RATE: Rate = Rate { burst: 5, interval_ms: 60_000 };

/// Users and connections a replica keeps rate buckets for at a time; past
/// it, the bucket touched longest ago is forgotten (refilled).
pub const RATE_BUCKETS_MAX: usize = 100_000;

/// Lapsed requests removed per applied command (the rest wait for the
/// next commands), so one command's cost stays bounded.
pub const REQUESTS_EXPIRED_PER_COMMAND_MAX: usize = 16;

/// Entries in one history, inbox or listing page.
pub const PAGE_ENTRIES_MAX: usize = 500;

/// Entries after a read cursor that an unread count looks at: the count
/// stops there, so asking for unread counts costs bounded reads however far
/// behind a user is.
pub const UNREAD_SCAN_ENTRIES_MAX: u64 = 10_000;

/// Rooms one live subscription may follow.
pub const SUBSCRIPTION_ROOMS_MAX: usize = 256;

/// Largest subscribe frame, in bytes: the most rooms, each with the
/// longest room id and two cursors. A stream's first frame is all a
/// stranger needs to send, so it is held to what it can honestly be.
pub const SUBSCRIBE_FRAME_BYTES_MAX: usize = 128 * 1024;
const _: () = assert!(
    16 + SUBSCRIPTION_ROOMS_MAX * (2 + 4 * ROOM_NAME_CHARS_MAX + 2 * 10)
        <= SUBSCRIBE_FRAME_BYTES_MAX
);

/// Live subscriptions one node serves.
pub const SUBSCRIPTIONS_MAX: usize = 10_000;

/// Events queued for one subscriber before it is told it lags.
pub const SUBSCRIBER_QUEUE_MAX: usize = 4096;

/// How long a replica may hear from no leader and still count itself in
/// touch with the cluster, in ms. Past it, cut off (partitioned, or removed
/// without having heard so), it ends its live subscriptions and refuses
/// new ones (it shows its subscribers nothing new, and they should follow
/// another replica), and does not trust its log to say which stored
/// contents are released. Many election timeouts, so an election does not
/// send subscribers away.
pub const LEADER_UNHEARD_MS_MAX: u64 = 10_000;

/// Change records one refill of one followed room reads: a subscriber far
/// behind on changes catches up over several refills, never in one long
/// scan.
pub const SUBSCRIPTION_CHANGE_SCAN_MAX: usize = 1024;

/// How old a signed command may be when applied (replay window), in ms.
pub const COMMAND_AGE_MAX_MS: u64 = 10 * 60 * 1000;

/// How far in the future a command's clock may run ahead, in ms.
pub const COMMAND_CLOCK_SKEW_MAX_MS: u64 = 2 * 60 * 1000;

/// Commands remembered per user within the replay window.
pub const RECENT_COMMANDS_PER_USER_MAX: usize = 10_000;

/// Signed commands a node remembers having verified, so that a client's
/// retries of the same bytes are not verified again (FIFO; 32 bytes each).
pub const VERIFIED_COMMANDS_MAX: usize = 4096;

/// Authors whose decompressed public key a node keeps for verifying their
/// next commands (FIFO; about 160 bytes each).
pub const VERIFYING_KEYS_MAX: usize = 4096;

/// Registered users.
pub const USERS_MAX: usize = 1_000_000;

/// Longest presence time-to-live a client may announce, in ms.
pub const PRESENCE_TTL_MAX_MS: u64 = 5 * 60 * 1000;

/// Users in the presence table.
pub const PRESENCE_ENTRIES_MAX: usize = 100_000;

/// Highest Raft term a peer message may carry. Real terms stay far below;
/// raft-rs computes `term + 1` unchecked, so a forged term near `u64::MAX`
/// would overflow.
pub const TERM_MAX: u64 = 1 << 48;

/// Highest log index a peer message may mention (raft-rs adds entry counts
/// to indexes unchecked).
pub const LOG_INDEX_MAX: u64 = 1 << 60;

/// Users one presence query may ask about.
pub const PRESENCE_QUERY_USERS_MAX: usize = 256;

/// Clock disagreement allowed between a typing notice's signer and a
/// replica. A notice older than its life plus this is refused as lapsed, so
/// a captured notice cannot be replayed later.
pub const TYPING_CLOCK_SKEW_MAX_MS: u64 = 30_000;

/// Typists (user and room) whose newest notice a replica remembers to refuse replays.
pub const TYPISTS_MAX: usize = 100_000;

/// Client commands a replica has forwarded to the leader and not yet seen
/// answered; beyond this, clients are told to back off.
pub const FORWARDS_PENDING_MAX: usize = 1024;

/// Typing notices queued per live subscriber; the oldest is dropped first
/// (notices are best effort, and a newer one supersedes it).
pub const SUBSCRIBER_TYPING_QUEUE_MAX: usize = 16;

/// Encoded bytes of room entries in one page of history (a page stops
/// early, with its cursor, when the next entry would pass this), so that
/// any page fits one client frame however long its messages are.
pub const PAGE_BYTES_MAX: usize = 512 * 1024;

/// log2 of a file's chunk group size in 1 KiB BLAKE3 chunks: 4, so 16 KiB.
/// A group is the unit that is verified on arrival, written, counted in a
/// download's bitmap and requested. 16 KiB keeps the hash tree kept beside a
/// file small (64 bytes a group: 4 MiB for 1 GiB, so a replica can keep
/// outboards of many files on disk and read one node per request), keeps a
/// forged or corrupt group cheap to refuse (at most 16 KiB read before the
/// refusal), makes resume granularity fine, and is bao-tree's own default.
/// Smaller groups double the outboard and the bitmap; larger ones waste
/// more on every lost or refused response.
pub const CHUNK_GROUP_LOG: u8 = 4;

/// A chunk group's size in bytes (the last group of a file may be shorter).
pub const CHUNK_GROUP_BYTES: u64 = 1024 << CHUNK_GROUP_LOG;

/// Largest file, in bytes (4 GiB: a download's bitmap is then 32 KiB).
pub const FILE_BYTES_MAX: u64 = 4 * 1024 * 1024 * 1024;

/// Chunk groups in the largest file.
pub const FILE_GROUPS_MAX: u64 = FILE_BYTES_MAX / CHUNK_GROUP_BYTES;

/// Longest file name, in bytes.
pub const FILE_NAME_BYTES_MAX: usize = 255;

/// Longest media type, in bytes.
pub const MEDIA_TYPE_BYTES_MAX: usize = 255;

/// Bytes of files one user may keep in rooms (each file message counts its
/// file's size, even when another message shares the content, so that
/// nobody can use up storage through someone else's quota). Deleting the
/// message gives the bytes back.
pub const USER_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024 * 1024;

/// How long content a replica holds may wait for a message referring to
/// it before it is released, in ms of the replicated clock: an upload
/// whose message never came.
pub const ORPHAN_HOLD_MS: u64 = 24 * 60 * 60 * 1000;

/// How often a replica looks for referenced content it lacks, how many
/// contents one look goes through, and how soon after start the first
/// look comes.
pub const FILE_SWEEP_INTERVAL_MS: u64 = 30_000;
/// See [`FILE_SWEEP_INTERVAL_MS`].
pub const FILE_SWEEP_FILES_MAX: usize = 1024;
/// See [`FILE_SWEEP_INTERVAL_MS`].
pub const FILE_SWEEP_FIRST_MS: u64 = 5_000;

/// Contents a replica fetches at once to replicate them (uploads are
/// bounded apart, by [`UPLOADS_MAX`]).
pub const REPLICATION_FETCHES_MAX: usize = 16;

/// How long a replica remembers why an upload failed, to tell the client
/// that asks about it next.
pub const UPLOAD_FAILURE_REMEMBERED_MS: u64 = 60_000;

/// How long a client waits before asking a replica again whether it
/// stored an upload, at first, in ms; the pause doubles up to
/// [`UPLOAD_ASK_PAUSE_MAX_MS`]. Short: the replica holds a "still
/// storing" answer until the content is stored (up to [`STORE_WAIT_MS`]),
/// so asking again at once costs little and the end is heard when it
/// comes; the backoff only spares a replica that answers at once.
pub const UPLOAD_ASK_PAUSE_FIRST_MS: u64 = 5;
/// See [`UPLOAD_ASK_PAUSE_FIRST_MS`].
pub const UPLOAD_ASK_PAUSE_MAX_MS: u64 = 50;
const _: () = assert!(UPLOAD_ASK_PAUSE_FIRST_MS <= UPLOAD_ASK_PAUSE_MAX_MS);
/// An upload that takes nothing from its client for this long is over
/// (a replica whose disk is full, say); nothing was acknowledged, and
/// asking again goes on from what the replica synced.
pub const UPLOAD_STALL_MS: u64 = 120_000;
/// `StoreFailed` answers in a row after which a client's upload is over.
pub const UPLOAD_STORE_FAILURES_MAX: u32 = 3;

/// Files one client offers (serves while uploading) at once.
pub const OFFERED_FILES_MAX: usize = 16;

/// Contents held but referred to by no entry, cluster-wide.
pub const ORPHAN_FILES_MAX: usize = 100_000;

/// Orphaned contents one command's apply releases at most (the rest on
/// the next commands), so no apply does unbounded work.
pub const ORPHANS_EXPIRED_PER_COMMAND_MAX: usize = 16;

/// How long a replica holds back a `SendFile`'s answer waiting for its
/// content to be stored on a majority, in ms; then the client is told to
/// retry (the same command, a duplicate, waits again).
pub const FILE_STORED_WAIT_MS: u64 = 60_000;

/// File sends one replica remembers or holds answers for at once.
pub const FILE_SENDS_PENDING_MAX: usize = 1024;

/// Uploads (`StoreFile`) one replica fetches from clients at once, and
/// per user.
pub const UPLOADS_MAX: usize = 64;
/// See [`UPLOADS_MAX`].
pub const UPLOADS_PER_USER_MAX: usize = 2;

/// How long a replica holds a `StoreFile`'s "still storing" answer, in
/// ms, so that the client hears the moment its content is stored rather
/// than when it next asks. Below every client's attempt timeout (the
/// simulated clients' is 800 ms), so a held answer is never given up on.
pub const STORE_WAIT_MS: u64 = 500;
/// `StoreFile` answers one replica holds at once (beyond, "still
/// storing" is answered at once).
pub const STORE_WAITS_MAX: usize = 256;
const _: () = assert!(STORE_WAITS_MAX >= UPLOADS_MAX * UPLOADS_PER_USER_MAX);

/// Entries that may refer to one file's content at once.
pub const FILE_REFERENCES_MAX: usize = 100_000;

/// Chunk groups one request asks for (256 KiB a response).
pub const GROUPS_PER_REQUEST_MAX: u64 = 16;

/// Parent hash pairs a response carries beside its groups: at most two per
/// level of the tree (the left and right edges of the range), 64 bytes each.
const RESPONSE_PARENT_BYTES_MAX: u64 = 2 * 64 * 64;

/// Largest chunk response, in bytes: its groups and their parents.
pub const CHUNK_RESPONSE_BYTES_MAX: u64 =
    GROUPS_PER_REQUEST_MAX * CHUNK_GROUP_BYTES + RESPONSE_PARENT_BYTES_MAX;

/// Chunk requests one download keeps in flight (2 MiB: enough to keep a
/// loopback or LAN path full, and what a download holds in memory at most).
pub const DOWNLOAD_REQUESTS_IN_FLIGHT_MAX: usize = 8;

/// Chunk requests one download keeps in flight to one source, so that with
/// several sources the load is spread and a slow one holds up little.
pub const DOWNLOAD_REQUESTS_PER_SOURCE_MAX: usize = 4;

/// Verified data handed to the driver to write but not yet reported
/// durable, in writes, counting the requests in flight (each may become a
/// write); at the bound the download stops asking (the disk is the
/// bottleneck, and memory stays bounded: 16 x 256 KiB).
pub const DOWNLOAD_WRITES_PENDING_MAX: usize = 16;

/// Sources one download knows.
pub const DOWNLOAD_SOURCES_MAX: usize = PEERS_MAX + 1;

/// How long a chunk request may take before its source counts as failed,
/// in ms.
pub const CHUNK_REQUEST_TIMEOUT_MS: u64 = 10_000;

/// How long a source that failed is left alone, doubling with each failure
/// in a row up to [`SOURCE_BACKOFF_MS_MAX`], in ms.
pub const SOURCE_BACKOFF_MS_MIN: u64 = 250;

/// The longest a failed source is left alone, in ms.
pub const SOURCE_BACKOFF_MS_MAX: u64 = 8_000;

/// Failures in a row after which a download stops asking a source (about
/// a minute of backing off: a source that long unable to serve is gone or
/// broken, and a download with no source left fails with a clear error).
pub const SOURCE_FAILURES_MAX: u32 = 12;

/// Answered request ids a download remembers, to tell a duplicate answer
/// from one it never asked for.
pub const DOWNLOAD_ANSWERED_REMEMBERED_MAX: usize = 64;

// How the limits must relate; a change that breaks one fails the build.
// An entry's overhead around its command (ids, author, stamps, edits and
// reactions) is far under this.
const ENTRY_OVERHEAD_BYTES_MAX: usize = 8 * 1024;
const _: () = assert!(MESSAGE_BYTES_MAX + ENTRY_OVERHEAD_BYTES_MAX <= COMMAND_BYTES_MAX);
const _: () = assert!(COMMAND_BYTES_MAX <= ENTRY_BYTES_MAX);
const _: () = assert!(ENTRY_BYTES_MAX as u64 <= APPEND_MESSAGE_BYTES_MAX);
// Full entries alone must not make a replica snapshot every few entries.
const _: () = assert!(SNAPSHOT_THRESHOLD_BYTES >= 16 * ENTRY_BYTES_MAX as u64);
// One entry always fits a page, and a page (with its frame around it) a frame.
const _: () = assert!(COMMAND_BYTES_MAX + ENTRY_OVERHEAD_BYTES_MAX <= PAGE_BYTES_MAX);
const _: () = assert!(PAGE_BYTES_MAX + 64 * 1024 <= FRAME_BYTES_MAX);
// A snapshot chunk and its frame header fit a frame.
const _: () = assert!(SNAPSHOT_CHUNK_BYTES + 4 * 1024 <= FRAME_BYTES_MAX);
const _: () = assert!(SNAPSHOT_CHUNK_BYTES <= SNAPSHOT_BYTES_MAX);
const _: () = assert!(SNAPSHOT_BYTES_MAX < DURABLE_BATCH_BYTES_MAX);
const _: () = assert!(PROPOSAL_QUEUE_MAX <= PROPOSALS_IN_FLIGHT_MAX);
const _: () = assert!(ENTRY_COMMANDS_MAX <= PROPOSAL_QUEUE_MAX);
const _: () = assert!(SUBSCRIBER_TYPING_QUEUE_MAX <= SUBSCRIBER_QUEUE_MAX);
const _: () = assert!(PAGE_ENTRIES_MAX <= SUBSCRIBER_QUEUE_MAX);
const _: () = assert!(SUBSCRIPTION_CHANGE_SCAN_MAX <= SUBSCRIBER_QUEUE_MAX);
// A presence lookup's answer (a few dozen bytes a user) fits a frame.
const _: () = assert!(PRESENCE_QUERY_USERS_MAX * 128 <= FRAME_BYTES_MAX);
// A chunk response and its frame header fit a frame; a request fits one
// response's worth of groups; the bitmap of the largest file is small.
const _: () = assert!(CHUNK_RESPONSE_BYTES_MAX + 4 * 1024 <= FRAME_BYTES_MAX as u64);
const _: () = assert!(GROUPS_PER_REQUEST_MAX >= 1 && FILE_GROUPS_MAX / 8 <= 64 * 1024);
const _: () = assert!(DOWNLOAD_REQUESTS_PER_SOURCE_MAX <= DOWNLOAD_REQUESTS_IN_FLIGHT_MAX);
// Requests count against the write bound (each may become a write).
const _: () = assert!(DOWNLOAD_REQUESTS_IN_FLIGHT_MAX < DOWNLOAD_WRITES_PENDING_MAX);
const _: () = assert!(SOURCE_BACKOFF_MS_MIN <= SOURCE_BACKOFF_MS_MAX);
const _: () = assert!(FILE_BYTES_MAX <= USER_FILE_BYTES_MAX);
// A sender's pending requests all fit in one recipient's list, and one
// user's contacts do not exceed the rooms they could share with them.
const _: () = assert!(REQUESTS_SENT_PENDING_MAX <= REQUESTS_RECEIVED_PENDING_MAX);
const _: () = assert!(CONTACTS_PER_USER_MAX <= ROOMS_PER_USER_MAX);
const _: () = assert!(REQUEST_MESSAGES_MAX >= 1 && REQUESTS_EXPIRED_PER_COMMAND_MAX >= 1);
// Every rate lets at least one through, and a user may fill their
// pending requests at once.
const _: () = assert!(COMMAND_RATE.burst >= 1 && ROOM_CREATION_RATE.burst >= 1);
const _: () = assert!(REQUEST_RATE.burst as usize >= REQUESTS_SENT_PENDING_MAX);
const _: () = assert!(REGISTRATION_RATE.burst >= 1 && RATE_BUCKETS_MAX >= 1);
