//! `NodeBuilder`: collects and checks the options, binds QUIC, finds the
//! peers, and starts the driver. Wiring only; the logic lives in the core
//! and transport crates.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use peerlock_core::config::MembershipConfig;
use peerlock_core::raft::{MemoryPeers, StartParams};

use crate::durable::Durable;
use peerlock_core::{Error, NodeHandle};
use peerlock_transport::{QuicTransport, TlsConfig};
use tokio::sync::mpsc;

use crate::node::Node;

#[path = "builder_derived.rs"]
mod derived;
#[path = "builder_start.rs"]
mod start;

/// How long `start` waits for the peers unless told (`startup_timeout`).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The advice when neither `data_dir` nor `in_memory` was called.
#[cfg(feature = "disk")]
const NO_STORAGE: &str = "no storage chosen: call .data_dir(path) for durable storage, or .in_memory() for tests and for state you accept to lose when every node restarts";
#[cfg(not(feature = "disk"))]
const NO_STORAGE: &str = "no storage chosen: call .in_memory() (this build has no durable storage: peerlock's `disk` feature is off)";

/// Options for a [`Node`]. Start with [`Node::builder`].
#[derive(Default)]
pub struct NodeBuilder {
    listen: Option<SocketAddr>,
    socket: Option<UdpSocket>,
    advertise: Option<SocketAddr>,
    peers: Vec<String>,
    seeds: Vec<String>,
    tls: Option<TlsConfig>,
    data_dir: Option<PathBuf>,
    in_memory: bool,
    session_ttl: Option<Duration>,
    lock_delay: Option<Duration>,
    max_voters: Option<usize>,
    tick: Option<Duration>,
    startup_timeout: Option<Duration>,
    membership: Option<MembershipConfig>,
    leave_on_shutdown: Option<bool>,
    name: Option<String>,
    zone: Option<String>,
    bootstrap_expect: Option<usize>,
    cert_expiry_warning: Option<Duration>,
    /// Shared with the `Node` and the runs of a rejoin (`tls_reload.rs`).
    tls_slot: Option<Arc<crate::tls_reload::TlsSlot>>,
    /// Resolves the seeds again in place of DNS (tests).
    #[cfg(test)]
    pub(crate) reresolve_for_tests: Option<crate::resolve::Reresolve>,
}

impl NodeBuilder {
    /// The UDP address to bind (port 0 lets the OS choose).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Use an already bound UDP socket instead of [`NodeBuilder::listen`]
    /// (tests bind `127.0.0.1:0` first to learn every node's address).
    pub fn socket(mut self, socket: UdpSocket) -> Self {
        self.socket = Some(socket);
        self
    }

    /// The address peers reach this node at; defaults to the bound address.
    pub fn advertise(mut self, addr: SocketAddr) -> Self {
        self.advertise = Some(addr);
        self
    }

    /// The initial cluster: `host:port` strings or `SocketAddr`s, and may
    /// include this node itself.
    pub fn peers<I>(mut self, peers: I) -> Self
    where
        I: IntoIterator,
        I::Item: ToString,
    {
        self.peers = peers.into_iter().map(|p| p.to_string()).collect();
        self
    }

    /// Join a running cluster through any of these addresses (`host:port`;
    /// a DNS name stands for every address it resolves to), instead of
    /// founding one with [`NodeBuilder::peers`]: the node asks the seeds
    /// that answer, gets a Raft id the cluster allocates, and starts as a
    /// learner; the leader promotes it when a voter is wanted (issue 9).
    /// A seeded node never founds a cluster, unless
    /// [`NodeBuilder::bootstrap_expect`] is given and no cluster answers.
    /// Seeds that answer for two different clusters stop the start with an
    /// error (a split brain, not to be joined at random): the join waits
    /// until the first round of dialing the seeds ends (every seed reached,
    /// or 3 s) and the seeds reached answer (2 s at most).
    pub fn seeds<I>(mut self, seeds: I) -> Self
    where
        I: IntoIterator,
        I::Item: ToString,
    {
        self.seeds = seeds.into_iter().map(|p| p.to_string()).collect();
        self
    }

    /// This node's member name when its certificate is shared by every
    /// instance (one Kubernetes Secret for a Deployment; default: the
    /// certificate's common name). Give each instance its own, stable name
    /// (the pod name): the cluster tells nodes apart by name, and a blank
    /// restart under a known name is recognised as that member's new
    /// incarnation. 1 to 256 bytes, checked by `start`.
    ///
    /// Weaker than one certificate per node, and documented so: with a
    /// shared certificate a name is a claim, and any holder of the
    /// certificate can pose as any member. A node started with `name(..)`
    /// therefore never replaces a silent voter early because a newcomer
    /// took its name: it waits for `dead_after` (see
    /// [`MembershipConfig`]). Nodes with certificates of their own refuse
    /// names other than their peers' certificates', so one cluster uses
    /// either kind, not both.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// This node's failure zone (a rack, an availability zone; at most 64
    /// bytes, checked by `start`): when the leader promotes learners to
    /// voters it prefers durable members, then zones the voters lack, then
    /// the longest stable. A hint, not a guarantee: voters already chosen
    /// are not moved for it.
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = Some(zone.into());
        self
    }

    /// Form a new cluster from the seeds when none runs yet (issue 9): a
    /// blank node that finds no cluster through its [`NodeBuilder::seeds`]
    /// waits until it sees `n` blank candidates (itself included; forming
    /// nodes tell each other the peers they know, so one seed each is
    /// enough), the set unchanged for a few seconds; each promises to the
    /// lowest-named of them, which founds the cluster once `n` promised
    /// (see "Membership" in the README for how split promises gather
    /// again); the others
    /// join it, and the leader promotes them to voters. A node with data
    /// never founds, nor does one while any seed answers for a running
    /// cluster (it joins that). Give every instance the same `n` (the
    /// number first deployed: two clusters would need `2n` blank
    /// instances before the first one answers); candidates given different
    /// counts stop with an error. A start that never sees `n` candidates
    /// fails at [`NodeBuilder::startup_timeout`], naming how many it saw.
    ///
    /// `bootstrap_expect(1)` without seeds asks for a one-node cluster
    /// explicitly. `n` = 0, `n` > 1 without seeds, and any `n` together
    /// with [`NodeBuilder::peers`] (the other, static, way to found) are
    /// configuration errors.
    pub fn bootstrap_expect(mut self, n: usize) -> Self {
        self.bootstrap_expect = Some(n);
        self
    }

    /// Mutual TLS material (required).
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Durable storage in `path` (created if missing): the Raft log,
    /// snapshots and this node's identity. A directory is only ever used by
    /// the node and the cluster that created it.
    ///
    /// Needs the `disk` feature (on by default); without it nodes keep
    /// their log in memory only ([`NodeBuilder::in_memory`]).
    #[cfg(feature = "disk")]
    pub fn data_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(path.into());
        self
    }

    /// Keep the Raft log in memory only (see the README for what that loses).
    pub fn in_memory(mut self) -> Self {
        self.in_memory = true;
        self
    }

    /// How long a session lives without an acknowledged keepalive (default
    /// 10 s, at least 1 s: shorter leases cannot outlive a leader change).
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = Some(ttl);
        self
    }

    /// How long a lock freed by session expiry stays ungranted (default 0).
    pub fn lock_delay(mut self, delay: Duration) -> Self {
        self.lock_delay = Some(delay);
        self
    }

    /// The most members that vote (default 5, or 3 when fewer than 5 peers
    /// are listed); the rest are learners. 1, 3, 5 or 7: an even number is
    /// refused by `start` with [`Error::Config`](crate::Error::Config),
    /// since it tolerates no more failures than the odd number below it
    /// (Raft dissertation §4.2.1). The leader aims for the largest odd
    /// number of voters not above this and the live, caught-up members.
    pub fn max_voters(mut self, n: usize) -> Self {
        self.max_voters = Some(n);
        self
    }

    /// Raft's tick period (default 50 ms, or `ttl / 80` when the session
    /// TTL is under 4 s; the election timeout is 10 ticks). A tick
    /// too coarse for the TTL to survive a leader change is refused by
    /// `start` with the minimum TTL in the message.
    pub fn raft_tick(mut self, tick: Duration) -> Self {
        self.tick = Some(tick);
        self
    }

    /// How the leader keeps the voters: how long a silent voter is waited
    /// for before a learner replaces it (`dead_after`, default 20 s, at
    /// least the session TTL), how long a learner must be live and caught
    /// up before it is promoted (`stabilization`, default 5 s), the
    /// fewest voters silence may leave (`min_voters`, default 3; odd), and
    /// whether a node the cluster removed starts again by itself under a
    /// new id (`rejoin_when_removed`, default true). See the README's
    /// "Membership" section.
    pub fn membership(mut self, membership: MembershipConfig) -> Self {
        self.membership = Some(membership);
        self
    }

    /// Whether [`Node::shutdown`] leaves the membership (default `true`).
    ///
    /// Leaving: after its locks are released, the node asks to leave
    /// (a committed `Leave`), hands leadership over if it leads, and waits
    /// up to 5 s for the leader to replace it with a learner or demote it,
    /// so the voters never count a member that is gone (issue 9, item 7).
    /// A durable node that left starts blank next time and joins under a
    /// new id: its directory is marked, and wiped at the next start.
    ///
    /// Turn it off for instances that come back with their disk (a
    /// StatefulSet with volumes): they restart as themselves, with no
    /// membership change; one that never returns is replaced after
    /// `dead_after`.
    ///
    /// [`Node::shutdown`]: crate::Node::shutdown
    pub fn leave_on_shutdown(mut self, leave: bool) -> Self {
        self.leave_on_shutdown = Some(leave);
        self
    }

    /// Certificates (this node's chain and every trusted CA) that expire
    /// within `window` of now are logged at `warn`, at start, at each
    /// [`Node::reload_tls`] and then once a day, and counted in the gauge
    /// `peerlock_tls_certs_expiring`; the gauge
    /// `peerlock_tls_cert_expiry_seconds` holds the seconds until this
    /// node's own certificate expires (both checked every hour). Default
    /// 30 days; `Duration::ZERO` reports only expired certificates.
    pub fn cert_expiry_warning(mut self, window: Duration) -> Self {
        self.cert_expiry_warning = Some(window);
        self
    }

    /// How long `start` waits for the peers to be reachable (default 60 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = Some(timeout);
        self
    }

    /// [`NodeBuilder::start`]'s body (`builder_start.rs` says why apart).
    pub(crate) async fn start_inner(mut self) -> Result<Node, Error> {
        let slot = crate::tls_reload::TlsSlot::new(self.name.clone(), self.data_dir.clone());
        self.tls_slot = Some(Arc::clone(&slot));
        let rejoin = self
            .membership
            .as_ref()
            .is_none_or(|m| m.rejoin_when_removed);
        // A socket handed over is bound already: a new run binds its address.
        let bound = self
            .socket
            .as_ref()
            .and_then(|s| s.local_addr().ok())
            .or(self.listen);
        let recipe = rejoin.then(|| {
            let again = self.again();
            match bound {
                Some(addr) => again.listen(addr),
                None => again,
            }
        });
        let wait = self.startup_timeout.unwrap_or(STARTUP_TIMEOUT);
        let (handle, local_addr) = match (self.start_core().await, &recipe) {
            // The directory's id was removed while the node was away (its
            // directory is now marked): start once more, blank.
            (Err(Error::Removed), Some(recipe)) => {
                tracing::warn!("the cluster removed this node while it was away; starting blank under a new id");
                crate::rejoin::start_blank(recipe).await?
            }
            (started, _) => started?,
        };
        let node = Node::new(handle, local_addr, rejoin.then_some(wait), slot);
        if let Some(recipe) = recipe {
            crate::rejoin::watch(&node, recipe.listen(local_addr));
        }
        Ok(node)
    }

    /// [`NodeBuilder::start`] without the rejoin watch: the core handle and
    /// the bound address (called through `start_core`, see
    /// `builder_start.rs`).
    async fn start_core_body(self) -> Result<(NodeHandle, SocketAddr), Error> {
        let data_dir = match (self.data_dir.clone(), self.in_memory) {
            (Some(_), true) => {
                return Err(Error::Config(
                    "both data_dir(..) and in_memory() were given; choose one".into(),
                ))
            }
            (None, false) => return Err(Error::Config(NO_STORAGE.into())),
            (dir, _) => dir,
        };
        let mut tls = self.tls.clone().ok_or_else(|| {
            Error::Config(
                "tls(..) is required: peerlock always uses mutual TLS; make certificates with peerlock::certs::ClusterCa".into(),
            )
        })?;
        if let Some(name) = &self.name {
            tls = tls.with_member_name(name)?;
        }
        // A rejoin starts with the configuration of the last reload.
        if let Some(reloaded) = self.tls_slot.as_ref().and_then(|s| s.reloaded()) {
            tls = reloaded;
        }
        self.check_lists()?;
        let join_only = self.peers.is_empty();
        // Seeds: join, or form with bootstrap_expect (0: join only).
        // bootstrap_expect(1) alone: no seeds, a one-node cluster.
        let expect = self.bootstrap_expect.map_or(0, |n| n as u64);
        let seeded = !self.seeds.is_empty();
        let reresolve = self.reresolve().filter(|_| seeded);
        let peers = if join_only {
            crate::resolve::resolve_all(&self.seeds).await?
        } else {
            crate::resolve::resolve_peers(&self.peers).await?
        };
        let config = self.config(peers.len().max(1));
        config.validate()?;
        let startup = self.startup_timeout.unwrap_or(STARTUP_TIMEOUT);
        if startup.is_zero() {
            return Err(Error::Config(
                "startup_timeout must be more than zero".into(),
            ));
        }

        // A data directory is checked before anything binds: it must be this
        // node's, of this cluster.
        let mut durable = match &data_dir {
            Some(dir) => Some(Durable::open(dir, &tls)?),
            None => None,
        };
        let recorded = durable.as_ref().and_then(Durable::recorded);
        let joined = durable.as_ref().and_then(Durable::joined);
        let first_start = recorded.is_none() && joined.is_none();

        let (tx, rx) = mpsc::channel(1024);
        let transport = match (self.socket, self.listen) {
            (Some(socket), _) => {
                QuicTransport::bind_socket(socket, self.advertise, &tls, peers.clone(), tx)?
            }
            (None, Some(addr)) => {
                QuicTransport::bind(addr, self.advertise, &tls, peers.clone(), tx)?
            }
            (None, None) => {
                return Err(Error::Config(
                    "listen(..) is required: the UDP address this node binds".into(),
                ))
            }
        };
        let local_addr = transport.local_addr();
        if let Some(slot) = &self.tls_slot {
            slot.attach(&transport, &tls);
        }
        transport.watch_cert_expiry(
            self.cert_expiry_warning
                .unwrap_or(peerlock_transport::CERT_EXPIRY_WARNING),
        );
        let me_addr = self.advertise.unwrap_or(local_addr);
        let mut rx = rx;
        // A startup_timeout too large to add to the clock waits for ever
        // (30 years), rather than overflowing (issue 8, item 6).
        let now = tokio::time::Instant::now();
        let deadline = now
            .checked_add(startup)
            .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400));
        // Issue 9: a directory of another cluster is refused before Raft.
        if let Some(d) = durable.as_mut().filter(|_| seeded && recorded.is_some()) {
            d.check_foreign(&transport, &mut rx, &peers, me_addr, deadline)
                .await
                .inspect_err(|_| transport.close())?;
        }
        let found = crate::members::find(
            &transport,
            recorded,
            joined,
            if seeded {
                crate::members::First::Seeded(crate::members::Seeded {
                    seeds: peers.as_slice(),
                    reresolve: reresolve.clone(),
                    expect,
                    me_addr,
                })
            } else {
                crate::members::First::Static(crate::members::Static {
                    peers: peers.as_slice(),
                    me_addr,
                })
            },
            durable.as_ref(),
            &mut rx,
            deadline,
        )
        .await
        .inspect_err(|_| transport.close())?;
        Self::check_member_addr(&found, first_start).inspect_err(|_| transport.close())?;
        let reseed = crate::join_seeds::Reseed::new(&transport, reresolve, found.join_only, &peers);
        let closer = Arc::clone(&transport);
        let params = StartParams {
            config,
            me: found.me,
            members: found.members,
            transport: transport.clone(),
            incoming: rx,
            join_timeout: deadline.saturating_duration_since(tokio::time::Instant::now()),
            on_stop: Some(Box::new(move || closer.close())),
            incarnation: None,
            peer_memory: Box::new(MemoryPeers::default()),
            hooks: peerlock_core::raft::Hooks::default(),
            joined: found.joined,
            join_only: found.join_only,
            durable: durable.is_some(),
            on_joined: durable.as_ref().map(Durable::on_joined),
            on_left: durable.as_ref().map(Durable::on_left),
        };
        let start = async move {
            match durable {
                None => peerlock_core::raft::start(params).await,
                Some(d) => d.start(params).await,
            }
        };
        let started = crate::join_seeds::while_joining(&transport, start, reseed, deadline).await;
        // A start that failed closes what it bound.
        started
            .map(|handle| (handle, local_addr))
            .inspect_err(|_| transport.close())
    }
}
