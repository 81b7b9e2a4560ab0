//! Guides: what to read to run peerlock in production, beside the API
//! reference (issue 12, item 8). Documentation only; nothing here is code.
//!
//! Read in this order:
//!
//! 1. [`getting_started`]: one node in a test, then three processes that
//!    share locks.
//! 2. [`fencing`]: why a lock alone does not protect a resource, and how
//!    to fence a SQL database, an object store or an HTTP API with the
//!    token; fallible critical sections; work that outlives its lock.
//! 3. [`choosing_ttl`]: the session TTL and the lock-delay, with the
//!    failover figures they buy.
//! 4. [`certificates`]: the cluster CA, node certificates, where the CA
//!    key lives, rotation.
//! 5. [`deploying`]: systemd, Kubernetes (StatefulSet or Deployment),
//!    certificates as Secrets.
//! 6. [`operating`]: the metrics and the alerts on them, and what to do
//!    about each error.
//! 7. [`failure_modes`]: crash, pause, partition, disk loss, clock skew,
//!    and what peerlock promises in each.
//! 8. [`coming_from`]: etcd, ZooKeeper/Curator and Redis/Redisson calls
//!    mapped to peerlock's.
//!
//! The examples below run as doc tests: most start a one-node cluster in
//! memory on 127.0.0.1, which behaves like a larger one for every call
//! (a one-node cluster is asked for by giving the node its own address as
//! its only peer). Those marked `no_run` need several machines.

pub mod certificates;
pub mod choosing_ttl;
pub mod coming_from;
pub mod deploying;
pub mod failure_modes;
pub mod fencing;
pub mod getting_started;
pub mod operating;
