//! The bundle protocol ([`crate::BUNDLE`]): a worker asks the gateway for the update bundle it
//! was announced, by sha256; the gateway answers with one JSON [`frame`](crate::frame)
//! ([`BundleReply`]) and then the archive as binary chunks: a 4-byte big-endian length and that
//! many bytes, at most [`MAX_CHUNK`] each, ended by a zero-length chunk. A stream that ends
//! without the terminator was cut, which the reader reports as [`FrameError::Closed`].

use futures_util::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use serde::{Deserialize, Serialize};

use crate::frame::FrameError;

/// Largest chunk sent or accepted.
pub const MAX_CHUNK: usize = 256 * 1024;

/// Worker → gateway: the bundle wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleRequest {
    /// sha256 of the archive, from the signed manifest the gateway announced.
    pub sha256: String,
}

/// Gateway → worker, before the chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BundleReply {
    /// The archive follows, `size` bytes as the manifest says.
    Sending {
        /// Bytes that will follow.
        size: u64,
    },
    /// The gateway does not have that bundle (any more).
    Unavailable {
        /// Why.
        reason: String,
    },
}

/// Writes one chunk (not flushed; [`write_end`] flushes). Empty `data` is skipped, since an
/// empty chunk means the end.
pub async fn write_chunk<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8]) -> Result<(), FrameError> {
    for part in data.chunks(MAX_CHUNK) {
        w.write_all(&(part.len() as u32).to_be_bytes()).await?;
        w.write_all(part).await?;
    }
    Ok(())
}

/// Writes the terminator and flushes.
pub async fn write_end<W: AsyncWrite + Unpin>(w: &mut W) -> Result<(), FrameError> {
    w.write_all(&0u32.to_be_bytes()).await?;
    w.flush().await?;
    Ok(())
}

/// Reads the next chunk into `buf` (replacing its contents). `Ok(false)` at the terminator;
/// [`FrameError::Closed`] when the stream ends without one. Not cancel-safe.
pub async fn read_chunk<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<bool, FrameError> {
    let len = crate::frame::read_len(r, MAX_CHUNK).await?;
    buf.resize(len, 0);
    match r.read_exact(buf).await {
        Ok(()) => Ok(len > 0),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(FrameError::Closed),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use futures_util::io::Cursor;

    use super::*;

    #[tokio::test]
    async fn chunks_roundtrip_and_cut_streams_are_detected() {
        let data: Vec<u8> = (0..(MAX_CHUNK * 2 + 10)).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        write_chunk(&mut wire, &data).await.unwrap();
        write_chunk(&mut wire, &[]).await.unwrap();
        write_end(&mut wire).await.unwrap();
        let mut r = Cursor::new(wire.clone());
        let (mut got, mut buf) = (Vec::new(), Vec::new());
        while read_chunk(&mut r, &mut buf).await.unwrap() {
            assert!(buf.len() <= MAX_CHUNK);
            got.extend_from_slice(&buf);
        }
        assert_eq!(got, data);
        // Cut before the terminator, or mid-chunk.
        for cut in [wire.len() - 4, wire.len() / 2] {
            let mut r = Cursor::new(wire[..cut].to_vec());
            let err = loop {
                match read_chunk(&mut r, &mut buf).await {
                    Ok(true) => continue,
                    Ok(false) => panic!("a cut stream looked complete"),
                    Err(e) => break e,
                }
            };
            assert!(matches!(err, FrameError::Closed), "{err}");
        }
        // An oversized length is refused before allocating.
        let mut r = Cursor::new(u32::MAX.to_be_bytes().to_vec());
        assert!(matches!(read_chunk(&mut r, &mut buf).await, Err(FrameError::TooLarge(_))));
    }
}
