// Shared by the cargo-fuzz target fuzz_targets/p2p_frame.rs and the stable corpus replay
// (crates/cli/tests/fuzz_replay.rs), so CI and the fuzzer check the same properties.
//
// The p2p read path: length-prefixed JSON frames of every message type a peer can send, and
// the bundle protocol's binary chunks. Reading never panics, never allocates past the limits,
// and every frame that decodes re-encodes to one that decodes to the same message.
//
// Input: one byte choosing the message type (`E`: an embedding request, `F`: embedding reply
// frames, else its value modulo 7), then the stream's bytes.

use std::fmt::Debug;

use futures_util::{io::Cursor, FutureExt as _};
use nova_p2p::{
    bundle::{self, BundleReply, BundleRequest},
    frame,
    wire::{EmbedFrame, EmbedRequest, Membership, MembershipReply, TaskEvent, TaskRequest},
};
use serde::{de::DeserializeOwned, Serialize};

/// Reads frames of type `T` until the stream fails or ends.
async fn frames<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) {
    let mut r = Cursor::new(bytes);
    // Every frame takes at least its 4-byte prefix, so this ends; the bound is belt and braces.
    for _ in 0..=bytes.len() / 4 {
        let Ok(msg) = frame::read::<_, T>(&mut r).await else { return };
        let mut wire = Vec::new();
        frame::write(&mut wire, &msg).await.expect("a decoded message re-encodes");
        let back: T = frame::read(&mut Cursor::new(wire)).await.expect("and decodes again");
        assert_eq!(back, msg);
    }
}

/// Reads bundle chunks until the terminator or an error; never more than the input.
async fn chunks(bytes: &[u8]) {
    let mut r = Cursor::new(bytes);
    let mut buf = Vec::new();
    let mut total = 0;
    while let Ok(true) = bundle::read_chunk(&mut r, &mut buf).await {
        assert!(buf.len() <= bundle::MAX_CHUNK);
        total += buf.len();
        assert!(total <= bytes.len());
    }
}

/// The check: panics on a violation.
pub(crate) fn check(data: &[u8]) {
    let Some((&which, stream)) = data.split_first() else { return };
    let read = async {
        match which {
            b'E' => return frames::<EmbedRequest>(stream).await,
            b'F' => return frames::<EmbedFrame>(stream).await,
            _ => {}
        }
        match which % 7 {
            0 => frames::<TaskRequest>(stream).await,
            1 => frames::<TaskEvent>(stream).await,
            2 => frames::<Membership>(stream).await,
            3 => frames::<MembershipReply>(stream).await,
            4 => frames::<BundleRequest>(stream).await,
            5 => frames::<BundleReply>(stream).await,
            _ => chunks(stream).await,
        }
    };
    // In-memory I/O never waits, so the future completes on its first poll.
    read.now_or_never().expect("reading from memory never pends");
}
