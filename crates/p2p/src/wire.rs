//! Messages of the membership, task, retrieval and embedding protocols. Versioned by their
//! protocol names.

use nova_proto::{embed::MAX_EMBED_DIM, ErrorKind, TokenEvent, ValidRequest};
use serde::{Deserialize, Serialize};

/// A worker's state, sent when it joins and in every heartbeat.
pub type Status = nova_proto::NodeStatus;

/// Membership stream messages, worker → gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Membership {
    /// First message: who the worker is.
    Hello(Status),
    /// Every heartbeat interval.
    Heartbeat(Status),
}

/// Membership stream messages, gateway → worker, in answer to a hello or heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MembershipReply {
    /// The latest update bundle the gateway serves: its signed manifest, verbatim, for the
    /// worker to verify before fetching the archive over [`crate::BUNDLE`].
    Bundle {
        /// The manifest JSON.
        manifest: String,
    },
}

/// Task stream messages, worker → gateway, after the gateway sent a [`ValidRequest`].
/// Tagged by `frame` since the inner token events use `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "snake_case")]
pub enum TaskEvent {
    /// A token event from the worker's engine.
    Event(TokenEvent),
    /// The worker's engine failed or refused the task.
    Error {
        /// Why, as a kind the gateway decides retries on.
        kind: ErrorKind,
        /// Human message.
        message: String,
    },
}

/// The task request frame.
pub type TaskRequest = ValidRequest;

/// The retrieval request frame.
pub type KnowledgeRequest = nova_proto::knowledge::KnowledgeQuery;

/// The answer to a [`KnowledgeRequest`], node → gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "snake_case")]
pub enum KnowledgeFrame {
    /// The node's best passages and its index's statistics.
    Reply(nova_proto::knowledge::KnowledgeReply),
    /// The node could not search (busy, its index unreadable).
    Error {
        /// Why, in words.
        message: String,
    },
}

/// The embedding request frame, gateway → worker.
pub type EmbedRequest = nova_proto::EmbedRequest;

/// The answer to an [`EmbedRequest`], worker → gateway: one `Vector` per input, in input
/// order, then `Done`; or an `Error` instead of whatever is left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "snake_case")]
pub enum EmbedFrame {
    /// The next input's vector, as base64 of little-endian `f32`s
    /// (`nova_proto::embed::encode_f32le`).
    Vector {
        /// The vector.
        f32le: String,
    },
    /// Every vector was sent.
    Done {
        /// The model that computed them.
        model: String,
        /// Tokens it read, all inputs together.
        prompt_tokens: u32,
    },
    /// The worker's engine failed or refused the request.
    Error {
        /// Why, as a kind the gateway decides retries on.
        kind: ErrorKind,
        /// Human message.
        message: String,
    },
}

/// Largest [`EmbedFrame`] read: a vector of `MAX_EMBED_DIM` values in base64, and room for the
/// envelope or a message.
pub const MAX_EMBED_FRAME: usize = MAX_EMBED_DIM * 4 / 3 * 4 + 4096;

#[cfg(test)]
mod tests {
    use nova_proto::{FinishReason, Usage};

    use super::*;

    #[test]
    fn frames_roundtrip() {
        for ev in [
            TaskEvent::Event(TokenEvent::Token { text: "hi".into() }),
            TaskEvent::Event(TokenEvent::Done {
                finish_reason: FinishReason::Stop,
                usage: Usage::default(),
            }),
            TaskEvent::Error { kind: ErrorKind::Decode, message: "boom".into() },
        ] {
            let bytes = serde_json::to_vec(&ev).unwrap();
            assert_eq!(serde_json::from_slice::<TaskEvent>(&bytes).unwrap(), ev);
        }
    }

    #[test]
    fn embed_frames_roundtrip_and_the_widest_vector_fits_its_bound() {
        let widest = nova_proto::embed::encode_f32le(&vec![0.5; MAX_EMBED_DIM]);
        for f in [
            EmbedFrame::Vector { f32le: widest },
            EmbedFrame::Done { model: "m".repeat(256), prompt_tokens: 3 },
            EmbedFrame::Error { kind: ErrorKind::Unsupported, message: "no".into() },
        ] {
            let bytes = serde_json::to_vec(&f).unwrap();
            assert!(bytes.len() <= MAX_EMBED_FRAME, "{}", bytes.len());
            assert_eq!(serde_json::from_slice::<EmbedFrame>(&bytes).unwrap(), f);
        }
    }

    #[test]
    fn an_error_kind_from_a_newer_version_still_decodes() {
        let ev: TaskEvent =
            serde_json::from_str(r#"{"frame":"error","kind":"melted","message":"hot"}"#).unwrap();
        assert_eq!(ev, TaskEvent::Error { kind: ErrorKind::Other, message: "hot".into() });
    }
}
