//! Subcommands.

pub(crate) mod ask;
pub(crate) mod bench;
pub(crate) mod bundle;
mod duration_arg;
mod engine_args;
mod gateway_args;
pub(crate) mod guard;
mod guard_args;
pub(crate) mod model;
mod secret_args;
pub(crate) mod serve;
pub(crate) mod status;
pub(crate) mod worker;
