//! Length-prefixed JSON frames: a 4-byte big-endian length, then that many bytes of JSON. The
//! length is checked against [`MAX_FRAME`] before anything is allocated, and decoding failures
//! are typed so the caller can drop (and log) a peer that sends garbage.

use futures_util::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use serde::{de::DeserializeOwned, Serialize};

/// Largest frame accepted or sent.
pub const MAX_FRAME: usize = 1 << 20;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The stream ended cleanly before a frame began.
    #[error("the peer closed the stream")]
    Closed,
    /// The transport failed.
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
    /// The announced length exceeds [`MAX_FRAME`]; the peer is broken or hostile.
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    /// The bytes are not the JSON message expected.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Writes `msg` as one frame and flushes. Cancel-safe only in that a dropped write leaves the
/// stream unusable, which closes it.
pub async fn write<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<(), FrameError> {
    let bytes = serde_json::to_vec(msg).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if bytes.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(bytes.len()));
    }
    w.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
    w.write_all(&bytes).await?;
    w.flush().await?;
    Ok(())
}

/// Writes several frames and flushes once: tokens that arrive together cross the network
/// together instead of paying a flush (and a packet) each.
pub async fn write_many<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msgs: &[T],
) -> Result<(), FrameError> {
    let mut buf = Vec::new();
    for msg in msgs {
        let bytes = serde_json::to_vec(msg).map_err(|e| FrameError::Malformed(e.to_string()))?;
        if bytes.len() > MAX_FRAME {
            return Err(FrameError::TooLarge(bytes.len()));
        }
        buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        buf.extend_from_slice(&bytes);
    }
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

/// Reads a 4-byte big-endian length prefix and checks it against `max` before anything is
/// allocated. A stream that ends before the prefix is [`FrameError::Closed`].
pub(crate) async fn read_len<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<usize, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// Reads one frame. Not cancel-safe: a partially read frame is lost.
pub async fn read<R: AsyncRead + Unpin, T: DeserializeOwned>(r: &mut R) -> Result<T, FrameError> {
    read_max(r, MAX_FRAME).await
}

/// Reads one frame of at most `max` bytes (and never more than [`MAX_FRAME`]), for a protocol
/// whose frames are known to be smaller. Not cancel-safe: a partially read frame is lost.
pub async fn read_max<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
    max: usize,
) -> Result<T, FrameError> {
    let len = read_len(r, max.min(MAX_FRAME)).await?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    serde_json::from_slice(&buf).map_err(|e| FrameError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use futures_util::io::Cursor;

    use super::*;

    #[tokio::test]
    async fn roundtrip_and_garbage() {
        let mut buf = Vec::new();
        write(&mut buf, &serde_json::json!({"a": 1})).await.unwrap();
        let v: serde_json::Value = read(&mut Cursor::new(buf.clone())).await.unwrap();
        assert_eq!(v["a"], 1);
        // Empty stream: closed.
        assert!(matches!(
            read::<_, serde_json::Value>(&mut Cursor::new(vec![])).await,
            Err(FrameError::Closed)
        ));
        // Oversized length: refused before allocating.
        let huge = (u32::MAX).to_be_bytes().to_vec();
        assert!(matches!(
            read::<_, serde_json::Value>(&mut Cursor::new(huge)).await,
            Err(FrameError::TooLarge(_))
        ));
        // Garbage body.
        let mut bad = 3u32.to_be_bytes().to_vec();
        bad.extend_from_slice(b"{{{");
        assert!(matches!(
            read::<_, serde_json::Value>(&mut Cursor::new(bad)).await,
            Err(FrameError::Malformed(_))
        ));
        // Several frames written at once read back one by one.
        let mut many = Vec::new();
        write_many(&mut many, &[serde_json::json!(1), serde_json::json!(2)]).await.unwrap();
        let mut cur = Cursor::new(many);
        assert_eq!(read::<_, serde_json::Value>(&mut cur).await.unwrap(), 1);
        assert_eq!(read::<_, serde_json::Value>(&mut cur).await.unwrap(), 2);
        // Truncated body.
        let mut cut = buf.clone();
        cut.truncate(buf.len() - 1);
        assert!(matches!(
            read::<_, serde_json::Value>(&mut Cursor::new(cut)).await,
            Err(FrameError::Io(_))
        ));
    }
}
