//! The patched ggml-rpc server and the shard-side frame checks, spoken to byte by byte, as a
//! hostile head would.

mod common;
use common::{frame, reply};

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nova_rpc::wire::{cmd, FrameLimits, RPC_TENSOR};

const GGML_OP_NONE: u32 = llama_cpp_sys_2::GGML_OP_NONE;
/// Its op_params carry a function pointer that the CPU backend calls.
const GGML_OP_CUSTOM: u32 = llama_cpp_sys_2::GGML_OP_CUSTOM;

fn hello() -> Vec<u8> {
    frame(cmd::HELLO, &[0u8; 24])
}

/// One serialised tensor: 1 float, no buffer, the given op.
fn tensor(id: u64, op: u32) -> Vec<u8> {
    let mut t = vec![0u8; RPC_TENSOR as usize];
    t[0..8].copy_from_slice(&id.to_le_bytes());
    // type F32 (0); buffer 0 (none); ne = 1, 1, 1, 1; nb = 4, 4, 4, 4
    for i in 0..4 {
        t[20 + 4 * i..24 + 4 * i].copy_from_slice(&1u32.to_le_bytes());
        t[36 + 4 * i..40 + 4 * i].copy_from_slice(&4u32.to_le_bytes());
    }
    t[52..56].copy_from_slice(&op.to_le_bytes());
    // op_params: what a hostile head would put there for a custom op (a function pointer).
    t[56..64].copy_from_slice(&0x4141_4141_4141_4141u64.to_le_bytes());
    t
}

/// A one-node graph on device 0.
fn graph(op: u32) -> Vec<u8> {
    let mut g = Vec::new();
    g.extend_from_slice(&0u32.to_le_bytes()); // device
    g.extend_from_slice(&1u32.to_le_bytes()); // n_nodes
    g.extend_from_slice(&7u64.to_le_bytes()); // node ids
    g.extend_from_slice(&1u32.to_le_bytes()); // n_tensors
    g.extend_from_slice(&tensor(7, op));
    g
}

/// A server session on a socketpair; the test holds the head's end.
fn session() -> UnixStream {
    let (head, shard) = UnixStream::pair().expect("socketpair");
    std::thread::spawn(move || nova_rpc::serve(shard.into(), 1));
    head.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    head
}

#[test]
fn a_graph_with_a_custom_op_is_refused_and_the_session_ends() {
    // A harmless graph computes and the session goes on.
    let mut s = session();
    s.write_all(&hello()).unwrap();
    assert_eq!(reply(&mut s).unwrap()[0], 7, "protocol major 7");
    s.write_all(&frame(cmd::GRAPH_COMPUTE, &graph(GGML_OP_NONE))).unwrap();
    s.write_all(&frame(cmd::DEVICE_COUNT, &[])).unwrap();
    assert_eq!(reply(&mut s).unwrap(), 1u32.to_le_bytes(), "still serving after a plain graph");

    // The same graph with a custom op never runs: the server drops the session.
    let mut s = session();
    s.write_all(&hello()).unwrap();
    reply(&mut s).unwrap();
    s.write_all(&frame(cmd::GRAPH_COMPUTE, &graph(GGML_OP_CUSTOM))).unwrap();
    let _ = s.write_all(&frame(cmd::DEVICE_COUNT, &[]));
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(n) => assert_eq!(n, 0, "no reply after a custom op: {rest:?}"),
        // Closed with our DEVICE_COUNT unread: a reset, which is still a close.
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "not closed: {e}"),
    }
}

async fn shard_refuses(frames: Vec<u8>) -> nova_rpc::ShardError {
    let (head, theirs) = tokio::io::duplex(1 << 16);
    // A real server behind the checks: it answers the HELLO that opens each session.
    let (ours, server) = UnixStream::pair().unwrap();
    std::thread::spawn(move || nova_rpc::serve(server.into(), 1));
    ours.set_nonblocking(true).unwrap();
    let ours = tokio::net::UnixStream::from_std(ours).unwrap();
    let limits = FrameLimits { max_tensor: 1 << 20, max_graph: 1 << 16 };
    let task = tokio::spawn(nova_rpc::shard(theirs, ours, limits, u64::MAX));
    let mut head = head;
    tokio::io::AsyncWriteExt::write_all(&mut head, &frames).await.unwrap();
    // Read whatever comes back (the HELLO reply), so the shard never blocks on a full pipe.
    tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut head, &mut sink).await;
    });
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("refused at once")
        .expect("join")
        .expect_err("refused")
}

#[tokio::test]
async fn the_shard_checks_frames_before_the_server_sees_them() {
    let e = shard_refuses(frame(cmd::DEVICE_COUNT, &[])).await;
    assert!(matches!(e, nova_rpc::ShardError::NoHello), "{e}");

    let mut f = hello();
    f.extend_from_slice(&frame(200, &[]));
    let e = shard_refuses(f).await;
    assert!(e.to_string().contains("unknown ggml-rpc command 200"), "{e}");

    // A 2 GiB tensor write is refused from its header alone, before any payload is read.
    let mut f = hello();
    f.push(cmd::SET_TENSOR);
    f.extend_from_slice(&(2u64 << 30).to_le_bytes());
    let e = shard_refuses(f).await;
    assert!(e.to_string().contains("SET_TENSOR frame of 2147483648 bytes"), "{e}");

    // A fixed-size command with a size that is not its own.
    let mut f = hello();
    f.extend_from_slice(&frame(cmd::GET_ALIGNMENT, &[0u8; 4096]));
    let e = shard_refuses(f).await;
    assert!(e.to_string().contains("GET_ALIGNMENT frame of 4096 bytes"), "{e}");
}

/// ALLOC_BUFFER of `bytes` on device 0; the reply's remote pointer (0: refused).
async fn alloc(head: &mut tokio::io::DuplexStream, bytes: u64) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut p = 0u32.to_le_bytes().to_vec();
    p.extend_from_slice(&bytes.to_le_bytes());
    head.write_all(&frame(cmd::ALLOC_BUFFER, &p)).await.unwrap();
    assert_eq!(head.read_u64_le().await.unwrap(), 16);
    let ptr = head.read_u64_le().await.unwrap();
    let _size = head.read_u64_le().await.unwrap();
    ptr
}

#[tokio::test]
async fn a_shard_holds_its_buffers_to_its_budget() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A real server behind the shard's checks, with a 1 MiB budget.
    let (mut head, theirs) = tokio::io::duplex(1 << 16);
    let (ours, server) = UnixStream::pair().unwrap();
    std::thread::spawn(move || nova_rpc::serve(server.into(), 1));
    ours.set_nonblocking(true).unwrap();
    let ours = tokio::net::UnixStream::from_std(ours).unwrap();
    tokio::spawn(nova_rpc::shard(theirs, ours, FrameLimits::default(), 1 << 20));
    head.write_all(&hello()).await.unwrap();
    assert_eq!(head.read_u64_le().await.unwrap(), 28);
    let mut rest = [0u8; 28];
    head.read_exact(&mut rest).await.unwrap();

    let a = alloc(&mut head, 512 << 10).await;
    assert_ne!(a, 0, "within the budget");
    assert_eq!(alloc(&mut head, 768 << 10).await, 0, "past the budget: a null buffer");
    head.write_all(&frame(cmd::FREE_BUFFER, &a.to_le_bytes())).await.unwrap();
    assert_ne!(alloc(&mut head, 768 << 10).await, 0, "room again after a free");
}

#[test]
fn too_many_shards_or_an_empty_one_are_refused_before_anything_connects() {
    let shard = |i: usize, layers: u32| nova_rpc::Shard {
        // Never routed and not an address: anything that tried to connect would fail loudly.
        endpoint: format!("never-routed-{i}"),
        layers,
        link: nova_rpc::Link::new("x", FrameLimits::default(), Duration::from_secs(1)),
    };
    let many: Vec<_> = (0..1000).map(|i| shard(i, 1)).collect();
    let e = nova_rpc::with_devices(&many, |_| ()).expect_err("1000 shards");
    assert!(e.to_string().contains("1000 shards asked for; a model splits over at most 15"), "{e}");
    let e = nova_rpc::with_devices(&[shard(0, 0)], |_| ()).expect_err("no layers");
    assert!(e.to_string().contains("was given no layers"), "{e}");
}
