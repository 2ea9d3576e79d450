//! ggml-rpc's wire format (protocol 7.0.0, as in the vendored llama.cpp), as far as a bridge
//! needs it: which command a frame is, how big it may be, and what reply it expects.
//!
//! A request is `cmd u8 | size u64 LE | payload`; a reply, for the commands that have one, is
//! `size u64 LE | payload`. The client sends one request at a time per connection and waits
//! for its reply before the next, so a bridge can follow the conversation frame by frame.

use std::fmt;

/// Command codes (`enum rpc_cmd` in ggml-rpc.cpp).
pub mod cmd {
    /// Allocate a buffer on a device.
    pub const ALLOC_BUFFER: u8 = 0;
    /// A device's buffer alignment.
    pub const GET_ALIGNMENT: u8 = 1;
    /// A device's largest buffer.
    pub const GET_MAX_SIZE: u8 = 2;
    /// A buffer's base address.
    pub const BUFFER_GET_BASE: u8 = 3;
    /// Free a buffer.
    pub const FREE_BUFFER: u8 = 4;
    /// Fill a buffer with one byte.
    pub const BUFFER_CLEAR: u8 = 5;
    /// Write tensor data.
    pub const SET_TENSOR: u8 = 6;
    /// Write tensor data the server may have cached, by hash.
    pub const SET_TENSOR_HASH: u8 = 7;
    /// Read tensor data.
    pub const GET_TENSOR: u8 = 8;
    /// Copy a tensor within the server.
    pub const COPY_TENSOR: u8 = 9;
    /// Run a graph.
    pub const GRAPH_COMPUTE: u8 = 10;
    /// A device's memory.
    pub const GET_DEVICE_MEMORY: u8 = 11;
    /// Initialise a tensor in a buffer.
    pub const INIT_TENSOR: u8 = 12;
    /// The bytes a tensor needs on a device.
    pub const GET_ALLOC_SIZE: u8 = 13;
    /// The first frame: protocol version and transport capabilities.
    pub const HELLO: u8 = 14;
    /// How many devices the server has.
    pub const DEVICE_COUNT: u8 = 15;
    /// Run the graph sent last again (new inputs, same graph).
    pub const GRAPH_RECOMPUTE: u8 = 16;
    /// Fill part of a tensor with one byte.
    pub const MEMSET_TENSOR: u8 = 17;
    /// Commands a client may send.
    pub const COUNT: u8 = 18;
}

/// Bytes of one serialised tensor (`struct rpc_tensor`, packed).
pub const RPC_TENSOR: u64 = 296;
/// `GGML_MAX_SRC`: sources per tensor.
const MAX_SRC: u64 = 10;
/// Protocol version nova's ggml-rpc speaks; the tunnel's protocol id carries the major.
pub const PROTOCOL_MAJOR: u8 = 7;

/// Bounds a bridge applies to frames, whichever side sent them.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    /// Largest tensor write or read, in bytes (weights of one tensor, or logits).
    pub max_tensor: u64,
    /// Largest graph description, in bytes.
    pub max_graph: u64,
}

impl Default for FrameLimits {
    fn default() -> Self {
        // A 270M model's largest tensor (the tied embeddings of Gemma 3) is about 170 MiB in
        // Q8_0; a graph of a few thousand nodes is under 2 MiB.
        Self { max_tensor: 1 << 30, max_graph: 64 << 20 }
    }
}

/// What a request's reply looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// No reply: the client does not wait.
    None,
    /// A reply of exactly this many bytes.
    Fixed(u64),
    /// A GET_TENSOR reply: as many bytes as the request's `size` field, read from the payload.
    TensorData,
}

/// A request header that passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The command.
    pub cmd: u8,
    /// Payload bytes that follow the header.
    pub size: u64,
    /// The reply the client waits for.
    pub reply: Reply,
}

/// A frame that breaks the protocol or nova's bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// A command code past the last one.
    UnknownCommand(u8),
    /// A payload whose size does not fit its command.
    BadSize {
        /// The command.
        cmd: u8,
        /// The size the frame claimed.
        size: u64,
    },
    /// A reply whose contents the client could not use safely.
    BadValue {
        /// The command replied to.
        cmd: u8,
        /// What was wrong.
        what: &'static str,
    },
    /// A reply whose size is not the one its request asked for.
    BadReply {
        /// The command replied to.
        cmd: u8,
        /// Bytes expected.
        expected: u64,
        /// Bytes announced.
        got: u64,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownCommand(c) => write!(f, "unknown ggml-rpc command {c}"),
            Self::BadSize { cmd, size } => {
                write!(f, "a ggml-rpc {} frame of {size} bytes is out of bounds", name(*cmd))
            }
            Self::BadValue { cmd, what } => {
                write!(f, "a ggml-rpc {} reply with {what}", name(*cmd))
            }
            Self::BadReply { cmd, expected, got } => write!(
                f,
                "a ggml-rpc {} reply of {got} bytes where {expected} were due",
                name(*cmd)
            ),
        }
    }
}

impl std::error::Error for WireError {}

/// Checks a request header: a known command and a payload size that fits it.
pub fn request(cmd: u8, size: u64, limits: &FrameLimits) -> Result<Request, WireError> {
    use self::cmd::*;
    let fixed = |want: u64, reply: Reply| {
        if size == want {
            Ok(Request { cmd, size, reply })
        } else {
            Err(WireError::BadSize { cmd, size })
        }
    };
    match cmd {
        ALLOC_BUFFER => fixed(12, Reply::Fixed(16)),
        GET_ALIGNMENT | GET_MAX_SIZE => fixed(4, Reply::Fixed(8)),
        BUFFER_GET_BASE => fixed(8, Reply::Fixed(8)),
        FREE_BUFFER => fixed(8, Reply::None),
        BUFFER_CLEAR => fixed(9, Reply::None),
        SET_TENSOR => {
            let head = RPC_TENSOR + 1 + 8;
            if size < head || size - head > limits.max_tensor {
                return Err(WireError::BadSize { cmd, size });
            }
            Ok(Request { cmd, size, reply: Reply::None })
        }
        SET_TENSOR_HASH => fixed(RPC_TENSOR + 16, Reply::Fixed(1)),
        GET_TENSOR => fixed(RPC_TENSOR + 16, Reply::TensorData),
        COPY_TENSOR => fixed(2 * RPC_TENSOR, Reply::Fixed(1)),
        GRAPH_COMPUTE => {
            if !(8..=limits.max_graph).contains(&size) {
                return Err(WireError::BadSize { cmd, size });
            }
            Ok(Request { cmd, size, reply: Reply::None })
        }
        GET_DEVICE_MEMORY => fixed(4, Reply::Fixed(16)),
        INIT_TENSOR => fixed(RPC_TENSOR, Reply::None),
        GET_ALLOC_SIZE => fixed(4 + RPC_TENSOR * (1 + MAX_SRC), Reply::Fixed(8)),
        HELLO => fixed(24, Reply::Fixed(28)),
        DEVICE_COUNT => fixed(0, Reply::Fixed(4)),
        GRAPH_RECOMPUTE => fixed(4, Reply::None),
        MEMSET_TENSOR => fixed(RPC_TENSOR + 17, Reply::None),
        other => Err(WireError::UnknownCommand(other)),
    }
}

/// The reply size of a GET_TENSOR request, from its payload (`rpc_tensor | offset | size`).
pub fn tensor_reply_size(payload: &[u8], limits: &FrameLimits) -> Result<u64, WireError> {
    let at = RPC_TENSOR as usize + 8;
    let size = payload
        .get(at..at + 8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .ok_or(WireError::BadSize { cmd: cmd::GET_TENSOR, size: payload.len() as u64 })?;
    if size > limits.max_tensor {
        return Err(WireError::BadSize { cmd: cmd::GET_TENSOR, size });
    }
    Ok(size)
}

/// A command's name, for messages and counters.
pub fn name(cmd: u8) -> &'static str {
    const NAMES: [&str; cmd::COUNT as usize] = [
        "ALLOC_BUFFER",
        "GET_ALIGNMENT",
        "GET_MAX_SIZE",
        "BUFFER_GET_BASE",
        "FREE_BUFFER",
        "BUFFER_CLEAR",
        "SET_TENSOR",
        "SET_TENSOR_HASH",
        "GET_TENSOR",
        "COPY_TENSOR",
        "GRAPH_COMPUTE",
        "GET_DEVICE_MEMORY",
        "INIT_TENSOR",
        "GET_ALLOC_SIZE",
        "HELLO",
        "DEVICE_COUNT",
        "GRAPH_RECOMPUTE",
        "MEMSET_TENSOR",
    ];
    NAMES.get(usize::from(cmd)).copied().unwrap_or("UNKNOWN")
}

/// Checks a shard's reply to `request` (its payload) before the head's ggml-rpc client sees
/// it. The client trusts these values, and some would abort or hang the head's whole process:
/// an alignment of 0 divides by zero, a device count of 4 billion makes that many devices, a
/// maximum buffer size of 1 cuts a model into that many buffers. The capabilities in a HELLO
/// reply are cleared (they could ask the client to switch transports).
pub fn check_reply(cmd: u8, request: &[u8], reply: &mut [u8]) -> Result<(), WireError> {
    let u64_at = |b: &[u8], at: usize| {
        b.get(at..at + 8).map_or(0, |x| u64::from_le_bytes(x.try_into().expect("8 bytes")))
    };
    let alignment = u64_at(reply, 0);
    let what = match cmd {
        cmd::HELLO if reply.first() != Some(&PROTOCOL_MAJOR) => "another protocol version",
        cmd::HELLO => {
            reply.iter_mut().skip(4).for_each(|b| *b = 0);
            return Ok(());
        }
        cmd::DEVICE_COUNT if reply.get(..4) != Some(&1u32.to_le_bytes()[..]) => {
            "a device count other than 1"
        }
        cmd::GET_ALIGNMENT if !alignment.is_power_of_two() || alignment > 1 << 16 => {
            "an alignment that is not a power of two up to 64 KiB"
        }
        cmd::GET_MAX_SIZE if u64_at(reply, 0) < 1 << 20 => "a maximum buffer size under 1 MiB",
        cmd::ALLOC_BUFFER if u64_at(reply, 0) != 0 && u64_at(reply, 8) < u64_at(request, 4) => {
            "a buffer smaller than asked for"
        }
        cmd::BUFFER_GET_BASE if u64_at(reply, 0) == 0 => "a null base address",
        cmd::COPY_TENSOR | cmd::SET_TENSOR_HASH if reply.first().is_some_and(|&r| r > 1) => {
            "a result other than 0 or 1"
        }
        _ => return Ok(()),
    };
    Err(WireError::BadValue { cmd, what })
}

/// The reply a bridge gives in place of a shard that is gone: the exact size the client
/// waits for, with values that make it fail cleanly rather than crash. An ALLOC_BUFFER of a
/// null buffer makes a load fail with "unable to allocate"; a read returns zeros, which the
/// engine never samples from because it checks the shard's health after every decode.
pub fn stand_in_reply(cmd: u8, size: u64) -> Vec<u8> {
    let mut out = vec![0u8; usize::try_from(size).unwrap_or(0)];
    match cmd {
        cmd::HELLO => out[0] = PROTOCOL_MAJOR,
        cmd::DEVICE_COUNT => out[0] = 1,
        // Alignment and sizes of zero would divide by zero in the allocator.
        cmd::GET_ALIGNMENT => out[0] = 32,
        cmd::GET_ALLOC_SIZE | cmd::BUFFER_GET_BASE => out[0] = 64,
        cmd::GET_MAX_SIZE => out[..8].copy_from_slice(&u64::MAX.to_le_bytes()),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_frames_must_have_their_size_and_big_ones_are_capped() {
        let l = FrameLimits { max_tensor: 1000, max_graph: 500 };
        assert_eq!(request(cmd::HELLO, 24, &l).unwrap().reply, Reply::Fixed(28));
        assert!(request(cmd::HELLO, 25, &l).is_err());
        assert!(request(cmd::DEVICE_COUNT, u64::MAX, &l).is_err());
        assert_eq!(request(cmd::GET_TENSOR, 312, &l).unwrap().reply, Reply::TensorData);
        assert!(request(cmd::SET_TENSOR, 305 + 1000, &l).is_ok());
        assert!(request(cmd::SET_TENSOR, 305 + 1001, &l).is_err());
        assert!(request(cmd::SET_TENSOR, 304, &l).is_err());
        assert!(request(cmd::GRAPH_COMPUTE, 501, &l).is_err());
        assert_eq!(request(cmd::COUNT, 0, &l), Err(WireError::UnknownCommand(cmd::COUNT)));
        assert_eq!(request(255, 0, &l), Err(WireError::UnknownCommand(255)));
    }

    #[test]
    fn a_tensor_read_is_as_big_as_it_asks_within_the_cap() {
        let l = FrameLimits { max_tensor: 1000, max_graph: 500 };
        let mut p = vec![0u8; 312];
        p[304..312].copy_from_slice(&800u64.to_le_bytes());
        assert_eq!(tensor_reply_size(&p, &l), Ok(800));
        p[304..312].copy_from_slice(&1001u64.to_le_bytes());
        assert!(tensor_reply_size(&p, &l).is_err());
        assert!(tensor_reply_size(&p[..100], &l).is_err());
    }

    #[test]
    fn stand_in_replies_have_the_size_the_client_waits_for() {
        for c in 0..cmd::COUNT {
            if let Ok(Request { reply: Reply::Fixed(n), .. }) =
                request(c, 0, &FrameLimits::default())
                    .or_else(|_| request(c, 4, &FrameLimits::default()))
            {
                assert_eq!(stand_in_reply(c, n).len() as u64, n, "{}", name(c));
            }
        }
        assert_eq!(stand_in_reply(cmd::HELLO, 28)[0], PROTOCOL_MAJOR);
    }

    #[test]
    fn replies_the_client_cannot_use_safely_are_refused_and_stand_ins_pass() {
        let mut alloc_req = vec![0u8; 12];
        alloc_req[4..12].copy_from_slice(&4096u64.to_le_bytes());
        let refused: &[(u8, &[u8], Vec<u8>)] = &[
            (cmd::HELLO, &[], {
                let mut r = vec![0u8; 28];
                r[0] = PROTOCOL_MAJOR + 1;
                r
            }),
            (cmd::DEVICE_COUNT, &[], u32::MAX.to_le_bytes().to_vec()),
            (cmd::DEVICE_COUNT, &[], 0u32.to_le_bytes().to_vec()),
            (cmd::GET_ALIGNMENT, &[], 0u64.to_le_bytes().to_vec()),
            (cmd::GET_ALIGNMENT, &[], 48u64.to_le_bytes().to_vec()),
            (cmd::GET_ALIGNMENT, &[], (1u64 << 40).to_le_bytes().to_vec()),
            (cmd::GET_MAX_SIZE, &[], 1u64.to_le_bytes().to_vec()),
            (cmd::ALLOC_BUFFER, &alloc_req, [7u64.to_le_bytes(), 100u64.to_le_bytes()].concat()),
            (cmd::BUFFER_GET_BASE, &[], 0u64.to_le_bytes().to_vec()),
            (cmd::COPY_TENSOR, &[], vec![2]),
        ];
        for (c, req, reply) in refused {
            let mut reply = reply.clone();
            let e = check_reply(*c, req, &mut reply).expect_err(name(*c));
            assert!(matches!(e, WireError::BadValue { .. }), "{e}");
        }
        // A failed allocation (null buffer) is a fine answer; so is what a real server says.
        let mut r = [0u64.to_le_bytes(), 0u64.to_le_bytes()].concat();
        assert!(check_reply(cmd::ALLOC_BUFFER, &alloc_req, &mut r).is_ok());
        let mut r = [9u64.to_le_bytes(), 4096u64.to_le_bytes()].concat();
        assert!(check_reply(cmd::ALLOC_BUFFER, &alloc_req, &mut r).is_ok());
        // HELLO's capabilities are cleared.
        let mut hello = vec![0xffu8; 28];
        hello[0] = PROTOCOL_MAJOR;
        check_reply(cmd::HELLO, &[], &mut hello).unwrap();
        assert!(hello[4..].iter().all(|&b| b == 0));
        // Every stand-in passes its own check.
        for c in 0..cmd::COUNT {
            let limits = FrameLimits::default();
            if let Some(Request { reply: Reply::Fixed(n), .. }) =
                (0..=2 * RPC_TENSOR + 64).find_map(|size| request(c, size, &limits).ok())
            {
                let mut r = stand_in_reply(c, n);
                if let Err(e) = check_reply(c, &alloc_req, &mut r) {
                    panic!("the stand-in for {} fails: {e}", name(c));
                }
            }
        }
    }
}
