//! The shard packs the weights a MUL_MAT reads for the CPU's kernels, as the head's CPU packs its
//! own layers (crates/rpc/cpp/repack.inc): spoken to byte by byte with one Q4_K matmul.
//! Packed weights still compute the right product, a whole overwrite is packed again, and
//! anything else that touches packed memory ends the session.

mod common;
use common::{frame, reply};

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nova_rpc::wire::{cmd, RPC_TENSOR};

const Q4_K: u32 = llama_cpp_sys_2::GGML_TYPE_Q4_K;
const F32: u32 = llama_cpp_sys_2::GGML_TYPE_F32;
const MUL_MAT: u32 = llama_cpp_sys_2::GGML_OP_MUL_MAT;
const COMPUTE: u32 = llama_cpp_sys_2::GGML_TENSOR_FLAG_COMPUTE;
/// One row of 256 weights is one Q4_K block: f16 d, f16 dmin, 12 bytes of scales, 128 of nibbles.
const K: usize = 256;
const ROWS: usize = 8;
const BLOCK: usize = 144;
const W_AT: u64 = 0;
const X_AT: u64 = 2048;
const Y_AT: u64 = 4096;

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

struct Session {
    s: UnixStream,
    buffer: u64,
    base: u64,
}

impl Session {
    fn open() -> Session {
        let (mut s, shard) = UnixStream::pair().expect("socketpair");
        std::thread::spawn(move || nova_rpc::serve(shard.into(), 1));
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&frame(cmd::HELLO, &[0u8; 24])).unwrap();
        reply(&mut s).unwrap();
        let mut p = 0u32.to_le_bytes().to_vec();
        p.extend_from_slice(&8192u64.to_le_bytes());
        s.write_all(&frame(cmd::ALLOC_BUFFER, &p)).unwrap();
        let buffer = u64_at(&reply(&mut s).unwrap(), 0);
        assert_ne!(buffer, 0, "a buffer");
        s.write_all(&frame(cmd::BUFFER_GET_BASE, &buffer.to_le_bytes())).unwrap();
        let base = u64_at(&reply(&mut s).unwrap(), 0);
        Session { s, buffer, base }
    }

    /// A serialised tensor in this session's buffer.
    fn tensor(&self, id: u64, ty: u32, ne: [u32; 4], nb0: u32, at: u64) -> Vec<u8> {
        let mut t = vec![0u8; RPC_TENSOR as usize];
        t[0..8].copy_from_slice(&id.to_le_bytes());
        t[8..12].copy_from_slice(&ty.to_le_bytes());
        t[12..20].copy_from_slice(&self.buffer.to_le_bytes());
        let mut nb = nb0;
        for i in 0..4 {
            t[20 + 4 * i..24 + 4 * i].copy_from_slice(&ne[i].to_le_bytes());
            t[36 + 4 * i..40 + 4 * i].copy_from_slice(&nb.to_le_bytes());
            // Q4_K rows hold ne[0] / 256 blocks; F32 rows ne[0] floats.
            nb *= if i == 0 {
                if ty == Q4_K {
                    ne[0] / K as u32
                } else {
                    ne[0]
                }
            } else {
                ne[i]
            };
        }
        t[220..228].copy_from_slice(&(self.base + at).to_le_bytes());
        t
    }

    fn w(&self) -> Vec<u8> {
        self.tensor(1, Q4_K, [K as u32, ROWS as u32, 1, 1], BLOCK as u32, W_AT)
    }

    fn x(&self) -> Vec<u8> {
        self.tensor(2, F32, [K as u32, 1, 1, 1], 4, X_AT)
    }

    fn y(&self) -> Vec<u8> {
        let mut y = self.tensor(3, F32, [ROWS as u32, 1, 1, 1], 4, Y_AT);
        y[52..56].copy_from_slice(&MUL_MAT.to_le_bytes());
        y[120..124].copy_from_slice(&COMPUTE.to_le_bytes()); // flags: to be computed
        y[124..132].copy_from_slice(&1u64.to_le_bytes()); // src0 = W
        y[132..140].copy_from_slice(&2u64.to_le_bytes()); // src1 = X
        y
    }

    fn set(&mut self, tensor: &[u8], offset: u64, data: &[u8]) {
        let mut p = tensor.to_vec();
        p.push(0); // not cached
        p.extend_from_slice(&offset.to_le_bytes());
        p.extend_from_slice(data);
        self.s.write_all(&frame(cmd::SET_TENSOR, &p)).unwrap();
    }

    fn get(&mut self, tensor: &[u8], size: u64) -> std::io::Result<Vec<u8>> {
        let mut p = tensor.to_vec();
        p.extend_from_slice(&0u64.to_le_bytes());
        p.extend_from_slice(&size.to_le_bytes());
        self.s.write_all(&frame(cmd::GET_TENSOR, &p))?;
        reply(&mut self.s)
    }

    fn compute(&mut self) {
        let mut g = Vec::new();
        g.extend_from_slice(&0u32.to_le_bytes()); // device
        g.extend_from_slice(&1u32.to_le_bytes()); // n_nodes
        g.extend_from_slice(&3u64.to_le_bytes()); // Y
        g.extend_from_slice(&3u32.to_le_bytes()); // n_tensors
        for t in [self.w(), self.x(), self.y()] {
            g.extend_from_slice(&t);
        }
        self.s.write_all(&frame(cmd::GRAPH_COMPUTE, &g)).unwrap();
    }

    fn product(&mut self) -> Vec<f32> {
        self.compute();
        let y = self.get(&self.y(), (ROWS * 4) as u64).expect("the product");
        y.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    }

    /// Whether the server still answers, or has ended the session.
    fn serving(&mut self) -> bool {
        if self.s.write_all(&frame(cmd::DEVICE_COUNT, &[])).is_err() {
            return false;
        }
        reply(&mut self.s).is_ok()
    }
}

/// Weights `q(row, k)` in 0..16 as Q4_K blocks with d = 1 and no minimum, so each weight is `q`.
fn q4_k(q: impl Fn(usize, usize) -> u8) -> Vec<u8> {
    let mut out = Vec::new();
    for r in 0..ROWS {
        let mut b = vec![0u8; BLOCK];
        b[0..2].copy_from_slice(&0x3C00u16.to_le_bytes()); // d = 1.0 (f16)
        b[4..8].fill(1); // sub-blocks 0-3: scale 1, min 0
        b[12..16].fill(1); // sub-blocks 4-7: scale 1, min 0
        for pair in 0..4 {
            for l in 0..32 {
                let lo = q(r, 64 * pair + l);
                let hi = q(r, 64 * pair + 32 + l);
                b[16 + 32 * pair + l] = lo | (hi << 4);
            }
        }
        out.extend_from_slice(&b);
    }
    out
}

fn x(k: usize) -> f32 {
    ((k % 7) as f32 - 3.0) / 4.0
}

fn check(got: &[f32], q: impl Fn(usize, usize) -> u8) {
    for (r, &g) in got.iter().enumerate() {
        let want: f64 = (0..K).map(|k| f64::from(q(r, k)) * f64::from(x(k))).sum();
        let scale: f64 = (0..K).map(|k| (f64::from(q(r, k)) * f64::from(x(k))).abs()).sum();
        assert!(
            (f64::from(g) - want).abs() <= 0.02 * scale + 1e-3,
            "row {r}: {g}, want {want} (all: {got:?})"
        );
    }
}

fn packs() -> bool {
    // CPU_REPACK takes Q4_K on x86 only with AVX2 (and with some ARM dot-product extensions,
    // which this test does not try to name).
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

fn first(r: usize, k: usize) -> u8 {
    ((r * 3 + k * 5) % 16) as u8
}

fn second(r: usize, k: usize) -> u8 {
    ((r * 7 + k * 3 + 1) % 16) as u8
}

fn loaded() -> Session {
    let mut s = Session::open();
    let xs: Vec<u8> = (0..K).flat_map(|k| x(k).to_le_bytes()).collect();
    s.set(&s.x(), 0, &xs);
    s.set(&s.w(), 0, &q4_k(first));
    s
}

#[test]
fn packed_weights_compute_the_product_and_a_whole_overwrite_is_packed_again() {
    let mut s = loaded();
    check(&s.product(), first);
    // Again, from the packed weights.
    check(&s.product(), first);
    // New weights, whole: packed again, and the product follows them.
    s.set(&s.w(), 0, &q4_k(second));
    check(&s.product(), second);
    assert!(s.serving());
}

#[test]
fn a_packed_weight_is_neither_read_back_nor_partly_written() {
    if !packs() {
        eprintln!("this CPU has no repacked Q4_K kernels: nothing is packed, nothing to refuse");
        return;
    }
    // Read back: its bytes are no longer the layout the head sent.
    let mut s = loaded();
    check(&s.product(), first);
    let w = s.w();
    assert!(s.get(&w, (ROWS * BLOCK) as u64).is_err(), "a packed weight was read back");
    assert!(!s.serving(), "the session goes on after a refused read");

    // A write over part of it would leave half of one layout in the other.
    let mut s = loaded();
    check(&s.product(), first);
    let w = s.w();
    s.set(&w, BLOCK as u64, &q4_k(second)[..BLOCK]);
    assert!(!s.serving(), "the session goes on after a partial write over packed weights");

    // Before any MUL_MAT reads it, a weight is plain: read back as sent.
    let mut s = loaded();
    let w = s.w();
    assert_eq!(s.get(&w, (ROWS * BLOCK) as u64).unwrap(), q4_k(first));
}
