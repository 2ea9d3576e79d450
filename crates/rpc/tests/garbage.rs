//! The shard's frame check against thousands of random head streams: whatever a head sends, the
//! check ends (or goes on) without panicking or hanging, forwards nothing the server would wait
//! on for ever, and never lets the server's buffers pass the budget. The server here is a stand-in
//! that trusts the check and answers each forwarded frame with a reply of the size the protocol
//! says; the real server's own refusals are in server.rs and repack.rs.

use std::time::Duration;

use nova_rpc::wire::{self, cmd, FrameLimits, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMITS: FrameLimits = FrameLimits { max_tensor: 4096, max_graph: 4096 };
const BUDGET: u64 = 1 << 20;

/// xorshift64*: a fixed seed, so a failure names a case that can be run again.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// The exact payload size of a fixed-size command, if it has one.
fn fixed_size(c: u8) -> Option<u64> {
    (0..=2 * wire::RPC_TENSOR + 64).find(|&n| wire::request(c, n, &LIMITS).is_ok())
}

/// One random head stream: mostly well-formed headers with random contents, some not.
fn stream(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let frames = 1 + rng.below(12);
    for i in 0..frames {
        let c = if i == 0 && rng.below(10) < 9 { cmd::HELLO } else { rng.below(21) as u8 };
        let size = match rng.below(6) {
            0 => rng.next(),                       // anything, mostly huge
            1 => rng.below(LIMITS.max_tensor * 2), // around the caps
            _ => fixed_size(c).unwrap_or_else(|| rng.below(600)),
        };
        out.push(c);
        out.extend_from_slice(&size.to_le_bytes());
        let mut payload = rng.bytes(size.min(8192) as usize);
        if c == cmd::ALLOC_BUFFER && payload.len() == 12 {
            // Sizes that sometimes fit the budget and sometimes do not.
            let want = rng.below(BUDGET / 2);
            payload[4..12].copy_from_slice(&want.to_le_bytes());
        }
        if rng.below(20) == 0 {
            payload.truncate(rng.below(payload.len() as u64 + 1) as usize); // cut short
            out.extend_from_slice(&payload);
            break;
        }
        out.extend_from_slice(&payload);
    }
    out
}

/// A server that trusts the check: reads each forwarded frame and answers it with a reply of
/// the protocol's size. Returns the most memory it ever held for the head.
async fn stand_in(mut s: tokio::io::DuplexStream) -> u64 {
    let (mut held, mut most, mut next_ptr) = (0u64, 0u64, 1u64);
    let mut buffers = std::collections::HashMap::new();
    loop {
        let mut header = [0u8; 9];
        if s.read_exact(&mut header).await.is_err() {
            return most;
        }
        let size = u64::from_le_bytes(header[1..].try_into().unwrap());
        let req = wire::request(header[0], size, &LIMITS).expect("the check forwarded a bad frame");
        let mut payload = vec![0u8; size as usize];
        if s.read_exact(&mut payload).await.is_err() {
            return most;
        }
        let reply = match req.reply {
            Reply::None => None,
            Reply::Fixed(n) => Some(vec![0u8; n as usize]),
            Reply::TensorData => {
                let n = wire::tensor_reply_size(&payload, &LIMITS).expect("checked");
                Some(vec![0u8; n as usize])
            }
        };
        let reply = match (req.cmd, reply) {
            (cmd::ALLOC_BUFFER, Some(mut r)) => {
                let want = u64::from_le_bytes(payload[4..12].try_into().unwrap());
                held += want;
                most = most.max(held);
                buffers.insert(next_ptr, want);
                r[..8].copy_from_slice(&next_ptr.to_le_bytes());
                r[8..].copy_from_slice(&want.to_le_bytes());
                next_ptr += 1;
                Some(r)
            }
            (cmd::FREE_BUFFER, r) => {
                let ptr = u64::from_le_bytes(payload[..8].try_into().unwrap());
                held -= buffers.remove(&ptr).unwrap_or(0);
                r
            }
            (_, r) => r,
        };
        if let Some(r) = reply {
            let _ = s.write_all(&(r.len() as u64).to_le_bytes()).await;
            let _ = s.write_all(&r).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_head_streams_end_or_go_on_without_a_panic_a_hang_or_memory_past_the_budget() {
    let mut rng = Rng(0x6e6f_7661_2d72_7063);
    let (mut ok, mut refused) = (0, 0);
    for case in 0..3000 {
        let bytes = stream(&mut rng);
        let (mut head, theirs) = tokio::io::duplex(1 << 16);
        let (ours, server) = tokio::io::duplex(1 << 16);
        let check = tokio::spawn(nova_rpc::shard(theirs, ours, LIMITS, BUDGET));
        let served = tokio::spawn(stand_in(server));
        let head_task = tokio::spawn(async move {
            let _ = head.write_all(&bytes).await;
            // Read replies until the check ends the session, then close.
            let _ = head.shutdown().await;
            let mut sink = Vec::new();
            let _ = head.read_to_end(&mut sink).await;
        });
        let result = tokio::time::timeout(Duration::from_secs(10), check)
            .await
            .unwrap_or_else(|_| panic!("case {case}: the check hung"))
            .unwrap_or_else(|e| panic!("case {case}: the check panicked: {e}"));
        match result {
            Ok(()) => ok += 1,
            Err(_) => refused += 1,
        }
        let most = tokio::time::timeout(Duration::from_secs(10), served)
            .await
            .unwrap_or_else(|_| panic!("case {case}: the server was left waiting"))
            .expect("the stand-in server");
        assert!(most <= BUDGET, "case {case}: the server held {most} bytes, past {BUDGET}");
        head_task.await.expect("the head");
    }
    println!("{ok} sessions ended by the head, {refused} refused by the check");
    assert!(
        ok > 100 && refused > 100,
        "both outcomes are exercised: {ok} ended, {refused} refused"
    );
}

/// A hostile shard (a swarm member that passed the swarm's secret) answering with values that
/// would hang or abort the head's ggml-rpc client: the bridge hands the client a safe stand-in
/// and marks the shard lost, so the engine stops after its decode with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_replying_values_the_client_cannot_use_is_lost_and_the_client_gets_a_stand_in() {
    use std::io::{Read, Write};
    let cases: [(u8, u64, Vec<u8>, &str); 3] = [
        (cmd::DEVICE_COUNT, 0, u32::MAX.to_le_bytes().to_vec(), "device count"),
        (cmd::GET_ALIGNMENT, 4, 0u64.to_le_bytes().to_vec(), "alignment"),
        (cmd::GET_MAX_SIZE, 4, 1u64.to_le_bytes().to_vec(), "maximum buffer size"),
    ];
    for (c, size, bad, what) in cases {
        let link = nova_rpc::Link::new("hostile", LIMITS, Duration::from_secs(5));
        let fd = link
            .bridge(&tokio::runtime::Handle::current(), move || async move {
                let (ours, mut theirs) = tokio::io::duplex(1 << 12);
                tokio::spawn(async move {
                    let mut req = vec![0u8; 9 + size as usize];
                    if theirs.read_exact(&mut req).await.is_ok() {
                        let _ = theirs.write_all(&(bad.len() as u64).to_le_bytes()).await;
                        let _ = theirs.write_all(&bad).await;
                    }
                    let mut sink = Vec::new();
                    let _ = theirs.read_to_end(&mut sink).await;
                });
                Ok(ours)
            })
            .expect("a bridge");
        let reply = tokio::task::spawn_blocking(move || {
            let mut client = std::os::unix::net::UnixStream::from(fd);
            client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            client.write_all(&[c]).unwrap();
            client.write_all(&size.to_le_bytes()).unwrap();
            client.write_all(&vec![0u8; size as usize]).unwrap();
            let mut n = [0u8; 8];
            client.read_exact(&mut n).unwrap();
            let mut v = vec![0u8; u64::from_le_bytes(n) as usize];
            client.read_exact(&mut v).unwrap();
            v
        })
        .await
        .unwrap();
        assert_eq!(reply, wire::stand_in_reply(c, reply.len() as u64), "{what}");
        let lost = link.lost().unwrap_or_else(|| panic!("a bad {what} left the shard trusted"));
        assert!(lost.contains(what), "{lost}");
    }
}
