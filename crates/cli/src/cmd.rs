//! Subcommands.

/// `println!` for what a long-running command tells its operator: a closed stdout (the reader
/// went away) must not stop a gateway or worker, so write errors are ignored.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub(crate) mod ask;
pub(crate) mod bench;
pub(crate) mod bundle;
pub(crate) mod chat;
mod duration_arg;
mod engine_args;
pub(crate) mod eval;
mod gateway_args;
pub(crate) mod guard;
mod guard_args;
pub(crate) mod model;
pub(crate) mod rag;
pub(crate) mod rpc_shard;
mod secret_args;
pub(crate) mod serve;
pub(crate) mod status;
mod url_arg;
pub(crate) mod worker;
