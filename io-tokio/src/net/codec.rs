//! The request-response codec: each request and each response is one frame,
//! a 4-byte big-endian length then that many bytes. The bytes are a
//! versioned postcard frame that the receiver decodes (and may refuse); the
//! codec only enforces the size limit, before allocating.

use super::read_budget::{
    Account, HeldFrame, Hold, ReadBudget, EVICTED, READ_BUDGET, READ_CHUNK_BYTES,
};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response;
use libp2p::StreamProtocol;
use std::io;
use std::sync::Arc;

/// Length-prefixed frames of at most `max_bytes`, read against the
/// process's [`READ_BUDGET`] and charged to their connection's account.
#[derive(Debug)]
pub struct FrameCodec {
    max_bytes: usize,
    account: Option<Arc<Account>>,
}

impl FrameCodec {
    /// A codec that refuses frames longer than `max_bytes`.
    pub fn new(max_bytes: usize) -> FrameCodec {
        FrameCodec { max_bytes, account: None }
    }
}

/// request-response clones the behaviour's codec once per connection, and
/// that one once per stream: the first clone opens the connection's
/// account, later clones share it.
impl Clone for FrameCodec {
    fn clone(&self) -> FrameCodec {
        let account = match &self.account {
            Some(account) => account.clone(),
            None => READ_BUDGET.open_account(),
        };
        FrameCodec { max_bytes: self.max_bytes, account: Some(account) }
    }
}

/// Reads one length-prefixed frame, refusing oversized ones before
/// allocating, and holding what has arrived against the process's
/// [`READ_BUDGET`] while it is read (a frame that cannot get its next chunk
/// is refused).
pub async fn read_frame<T: AsyncRead + Unpin>(io: &mut T, max_bytes: usize) -> io::Result<Vec<u8>> {
    Ok(read_frame_within(io, max_bytes, &READ_BUDGET, None).await?.0)
}

/// Reads one length-prefixed frame that answers a request of this side's,
/// at most `max_bytes`, into one buffer allocated whole once its length is
/// read, so a chunk answer is not copied four times over as its buffer
/// regrows (as [`read_frame`]'s, reserved as bytes arrive, is). Its whole
/// length is taken from [`READ_BUDGET`] at once, before allocating: the
/// answers being read stay within the process's budget however many
/// requests are out, and a source that declares an answer and trickles it
/// holds no more than that until the request times out.
pub async fn read_answer_frame<T: AsyncRead + Unpin>(
    io: &mut T,
    max_bytes: usize,
) -> io::Result<Vec<u8>> {
    let len = read_length(io, max_bytes).await?;
    let mut hold = READ_BUDGET.hold(None);
    hold.grow(len)?;
    let mut buf = vec![0; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

/// [`read_frame`] against `budget`, charged to the connection `account`;
/// returns the frame and what it holds of the budget.
pub async fn read_frame_within<'a, T: AsyncRead + Unpin>(
    io: &mut T,
    max_bytes: usize,
    budget: &'a ReadBudget,
    account: Option<Arc<Account>>,
) -> io::Result<(Vec<u8>, Hold<'a>)> {
    let len = read_length(io, max_bytes).await?;
    let mut hold = budget.hold(account);
    let mut buf = Vec::new();
    while buf.len() < len {
        let chunk = (len - buf.len()).min(READ_CHUNK_BYTES);
        hold.grow(chunk)?;
        let start = buf.len();
        buf.reserve_exact(chunk);
        buf.resize(start + chunk, 0);
        io.read_exact(&mut buf[start..]).await?;
    }
    Ok((buf, hold))
}

/// Reads a frame's length prefix, refusing one over `max_bytes` before
/// anything is allocated for it.
async fn read_length<T: AsyncRead + Unpin>(io: &mut T, max_bytes: usize) -> io::Result<usize> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {max_bytes}"),
        ));
    }
    Ok(len)
}

/// The length prefix of `frame`: 4 bytes, big-endian.
fn length_prefix(frame: &[u8]) -> io::Result<[u8; 4]> {
    length_prefix_of(frame.len())
}

/// The length prefix of a frame of `len` bytes.
fn length_prefix_of(len: usize) -> io::Result<[u8; 4]> {
    let len = u32::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    Ok(len.to_be_bytes())
}

/// Writes one length-prefixed frame.
pub async fn write_frame<T: AsyncWrite + Unpin>(io: &mut T, frame: &[u8]) -> io::Result<()> {
    io.write_all(&length_prefix(frame)?).await?;
    io.write_all(frame).await?;
    io.flush().await
}

/// Appends one length-prefixed frame to `out`, as [`write_frame`] writes
/// it (for writing several frames at once).
pub fn append_frame(out: &mut Vec<u8>, frame: &[u8]) -> io::Result<()> {
    append_frame_of(out, &[frame])
}

/// Appends one length-prefixed frame made of `parts`, one after the other
/// (a header and a body, say, without joining them first).
pub fn append_frame_of(out: &mut Vec<u8>, parts: &[&[u8]]) -> io::Result<()> {
    let len = parts.iter().map(|p| p.len()).sum();
    out.reserve(4 + len);
    out.extend_from_slice(&length_prefix_of(len)?);
    for part in parts {
        out.extend_from_slice(part);
    }
    Ok(())
}

/// Bytes gathered into one write (see [`gather`]).
pub const GATHERED_BYTES_MAX: usize = 256 * 1024;

/// Appends `first`, then what is already queued behind it on `queue`, to
/// `wire` (each with `append`) until `wire` holds `bytes_max`: what queued
/// up while the last write was under way goes out in one write and one
/// flush, one noise frame instead of one per item. Stops, returning
/// false, as soon as `append` does.
pub fn gather<T>(
    wire: &mut Vec<u8>,
    first: T,
    queue: &mut tokio::sync::mpsc::Receiver<T>,
    bytes_max: usize,
    mut append: impl FnMut(&mut Vec<u8>, T) -> bool,
) -> bool {
    let mut next = Some(first);
    while let Some(item) = next.take() {
        if !append(wire, item) {
            return false;
        }
        if wire.len() < bytes_max {
            next = queue.try_recv().ok();
        }
    }
    true
}

/// Writes frames gathered with [`append_frame`] in one write, and flushes.
pub async fn write_frames<T: AsyncWrite + Unpin>(io: &mut T, wire: &[u8]) -> io::Result<()> {
    io.write_all(wire).await?;
    io.flush().await
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    /// Requests keep their hold until the replica drops them (after the
    /// service took them); responses answer this side's own requests.
    type Request = HeldFrame;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<HeldFrame>
    where
        T: AsyncRead + Unpin + Send,
    {
        let account = self.account.clone();
        let read = read_frame_within(io, self.max_bytes, &READ_BUDGET, account).await;
        match read {
            Ok((bytes, hold)) => Ok(HeldFrame::held(bytes, hold)),
            Err(e) => {
                // A stream closed before any byte is no fault of note.
                if e.kind() != io::ErrorKind::UnexpectedEof {
                    READ_BUDGET.note_unreadable(self.account.as_deref(), e.kind() == EVICTED);
                }
                Err(e)
            }
        }
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let account = self.account.clone();
        Ok(read_frame_within(io, self.max_bytes, &READ_BUDGET, account).await?.0)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: HeldFrame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, req.bytes()).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_ones_are_refused_before_reading() {
        futures::executor::block_on(async {
            let mut buf = Vec::new();
            write_frame(&mut buf, b"hello").await.unwrap();
            let mut cursor = futures::io::Cursor::new(buf.clone());
            assert_eq!(read_frame(&mut cursor, 5).await.unwrap(), b"hello");
            let mut cursor = futures::io::Cursor::new(buf.clone());
            assert_eq!(
                read_frame(&mut cursor, 4).await.unwrap_err().kind(),
                io::ErrorKind::InvalidData
            );
            let mut cursor = futures::io::Cursor::new(buf[..6].to_vec());
            assert!(read_frame(&mut cursor, 5).await.is_err());
            let mut answer = futures::io::Cursor::new(b"\0\0\0\x05hello\0\0\0\x09".to_vec());
            assert_eq!(read_answer_frame(&mut answer, 5).await.unwrap(), b"hello");
            let over = read_answer_frame(&mut answer, 8).await.unwrap_err();
            assert_eq!(over.kind(), io::ErrorKind::InvalidData);
        });
    }

    #[test]
    fn a_frame_beyond_the_budget_is_refused_and_its_bytes_released() {
        futures::executor::block_on(async {
            let budget = ReadBudget::new(2 * READ_CHUNK_BYTES);
            let big = vec![7u8; 3 * READ_CHUNK_BYTES];
            let mut buf = Vec::new();
            write_frame(&mut buf, &big).await.unwrap();
            let mut cursor = futures::io::Cursor::new(buf.clone());
            let refused =
                read_frame_within(&mut cursor, big.len(), &budget, None).await.unwrap_err();
            assert_eq!(refused.kind(), io::ErrorKind::OutOfMemory);
            assert_eq!(budget.used_bytes(), 0);
            let small = vec![1u8; READ_CHUNK_BYTES + 1];
            let mut buf = Vec::new();
            write_frame(&mut buf, &small).await.unwrap();
            let mut cursor = futures::io::Cursor::new(buf);
            let (read, hold) =
                read_frame_within(&mut cursor, small.len(), &budget, None).await.unwrap();
            assert_eq!(read, small);
            // Held until whoever takes the frame drops its hold.
            assert_eq!(budget.used_bytes(), small.len());
            drop(hold);
            assert_eq!(budget.used_bytes(), 0);
        });
    }
}
