//! Subcommands.

pub(crate) mod ask;
pub(crate) mod bench;
pub(crate) mod model;
mod engine_args;
