//! Messages of the membership and task protocols. Versioned by their protocol names.

use nova_proto::{ErrorKind, TokenEvent, ValidRequest};
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
    fn an_error_kind_from_a_newer_version_still_decodes() {
        let ev: TaskEvent =
            serde_json::from_str(r#"{"frame":"error","kind":"melted","message":"hot"}"#).unwrap();
        assert_eq!(ev, TaskEvent::Error { kind: ErrorKind::Other, message: "hot".into() });
    }
}
