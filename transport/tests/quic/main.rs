//! The QUIC transport over real sockets on 127.0.0.1 (port 0). Every wait
//! is bounded; the whole binary runs in a few seconds.
//!
//! One test binary (each binary relinks everything), its cases split by
//! what they prove; `harness` holds what they share.

mod harness;

mod bulk;
mod certs;
mod discovery;
mod exchange;
mod hostile;
mod restart;
