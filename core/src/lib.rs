//! peerlock-core: everything in peerlock but the network.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod config;
pub mod error;
pub mod machine;
pub mod transport;
pub mod types;

pub use error::Error;
