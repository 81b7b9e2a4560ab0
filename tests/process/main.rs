//! Multi-process clusters: every peer is an `examples/node` process, driven
//! through its stdin line protocol. Real QUIC on 127.0.0.1, real signals.

#[path = "../common/mod.rs"]
mod common;

mod members;
mod procs;
mod t10_sigstop;
mod t12_election;
mod t130_break9;
mod t20_durable;
mod t30_kill;
mod t40_netns;
mod t42_netns_election;
mod t45_membership;
mod t50_rolling;
mod t52_dead_voters;
mod t55_discovery;
mod t56_startup_note;
mod t60_restored;
mod t63_scale;
mod t66_foreign_in_full_restart;
mod t70_service;
mod t72_metrics;
mod t73_locks;
mod t74_tls_reload;
mod workload;
