//! What the byte-level tests of the server share: a request frame and a reply, as ggml-rpc
//! puts them on the wire (a command byte, a u64 size, the payload; a u64 size, the reply).

use std::io::Read;
use std::os::unix::net::UnixStream;

pub(crate) fn frame(c: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![c];
    f.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    f.extend_from_slice(payload);
    f
}

pub(crate) fn reply(s: &mut UnixStream) -> std::io::Result<Vec<u8>> {
    let mut size = [0u8; 8];
    s.read_exact(&mut size)?;
    let mut v = vec![0u8; u64::from_le_bytes(size) as usize];
    s.read_exact(&mut v)?;
    Ok(v)
}
