//! Behaviour of in-process clusters over real QUIC on 127.0.0.1.
//! One binary with numbered cases (each binary relinks everything on CI).

#[path = "../common/mod.rs"]
mod common;

mod t05_config;
mod t100_election;
mod t105_nested;
mod t10_lock_basic;
mod t110_semaphore;
mod t111_rwlock;
mod t112_multilock;
mod t119_break_cancel;
mod t119_break_delay;
mod t119_break_failover;
mod t119_break_fails;
mod t119_break_misc;
mod t119_break_multi;
mod t119_break_nested;
mod t119_break_restart;
mod t119_break_rw;
mod t119_break_sem;
mod t119_break_tokens;
mod t11_support;
mod t120_tls_rotation;
mod t121_locks;
mod t122_blocking;
mod t123_break_metrics;
mod t123_break_tls;
mod t123_break_user;
mod t126_cert_lifetime;
mod t130_break9;
mod t130_break9_findings;
mod t131_formation_views;
mod t132_join_instead_other_cluster;
mod t133_status_members_paced;
mod t20_fifo;
mod t30_fencing;
mod t40_lease_loss;
mod t50_failover;
mod t60_restart;
mod t64_founder_restart;
mod t66_full_restart_seeds;
mod t70_membership;
mod t75_bootstrap_expect;
mod t76_names;
mod t77_leave;
mod t79_removed;
mod t80_bad_input;
mod t82_name_in_use;
mod t90_no_quorum;
mod t91_blocked_runtime;
mod t92_failover_ttl;
mod t93_durations;
mod t94_issue_10_election_after_idle;
mod t95_issue_8_large_table;
