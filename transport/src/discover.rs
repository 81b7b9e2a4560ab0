//! Start-up discovery: dial every configured address, learn each peer's
//! name (from its certificate, or its claim on a shared one; see
//! `preamble.rs`), and recognise this node among them.

use peerlock_core::collect::{id_key, sort_by_u128};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use peerlock_core::Error;
use quinn::{Connection, VarInt};
use tracing::Instrument;

use crate::endpoint::{Discovery, PeerInfo, Shared, BACKOFF_MAX, BACKOFF_MIN};
use crate::peer::{self, CLOSE_PROBE};

/// How long discovery waits for its own accept side to confirm that an
/// address that presented this node's name is this node.
const SELF_CHECK: Duration = Duration::from_secs(2);
/// How long the first dial of an address may take before it is given up
/// and dialed anew; each later one may take twice as long, up to
/// [`LONGEST_ATTEMPT`]. A QUIC client resends its first packet only
/// after a probe timeout that doubles (about 1 s, then 2 s), so a peer
/// that comes up after the first packet was lost was reached only at
/// those resends: a seed up 1.5 s into a 3 s round of dialing was missed
/// (issue 9: a seed of another cluster went unseen and the node joined
/// the first one). A new dial sends a new first packet at once.
const FIRST_ATTEMPT: Duration = Duration::from_millis(500);
/// The longest one dial may take before it is made anew (a handshake on
/// a loaded machine takes well under this).
const LONGEST_ATTEMPT: Duration = Duration::from_secs(2);
/// Label for the TLS exporter that recognises a connection to oneself.
const SELF_LABEL: &[u8] = b"EXPORTER-peerlock-self-check";

/// See [`crate::QuicTransport::discover`].
pub(crate) async fn discover(
    shared: &Arc<Shared>,
    deadline: tokio::time::Instant,
    require_all: bool,
) -> Result<Vec<PeerInfo>, Error> {
    // Writers of peers that connected first hold their dials until this
    // is done (see `Shared::discovery_settled`); the guard also covers
    // errors and cancellation.
    struct Settle<'a>(&'a Shared);
    impl Drop for Settle<'_> {
        fn drop(&mut self) {
            self.0.discovery.send_replace(Discovery::Done);
        }
    }
    shared.discovery.send_replace(Discovery::Running);
    let _settle = Settle(shared);
    let span = tracing::info_span!("discover", node = %shared.name);
    let configured = shared.configured.lock().clone();
    let probes = async {
        let mut set = tokio::task::JoinSet::new();
        for &addr in &configured {
            set.spawn(
                probe(Arc::clone(shared), addr, deadline).instrument(tracing::Span::current()),
            );
        }
        let mut out = Vec::with_capacity(configured.len());
        while let Some(r) = set.join_next().await {
            match r {
                Ok(p) => out.push(p),
                Err(e) => tracing::error!(error = %e, "discovery probe failed"),
            }
        }
        out
    }
    .instrument(span);
    let mut results = tokio::select! {
        biased;
        () = shared.stopped() => return Err(Error::Shutdown),
        r = probes => r,
    };
    // A probe task that failed (it cannot panic, but be sure) counts as
    // unreachable rather than silently missing.
    for &addr in &configured {
        if !results.iter().any(|p| p.addr() == addr) {
            results.push(Probe::Unreachable(addr, Some("probe task failed".into())));
        }
    }
    shared.register_discovered(results, require_all)
}

/// What probing one configured address found.
pub(crate) enum Probe {
    /// Another node, with the probe's connection.
    Peer(PeerInfo, Connection),
    /// This node itself.
    Myself(SocketAddr),
    /// Another node presenting this node's own name.
    Impostor(SocketAddr),
    /// Nothing answered before the deadline.
    Unreachable(SocketAddr, Option<String>),
}

impl Probe {
    fn addr(&self) -> SocketAddr {
        match self {
            Self::Peer(info, _) => info.addr,
            Self::Myself(a) | Self::Impostor(a) | Self::Unreachable(a, _) => *a,
        }
    }
}

/// Dials `addr` until it answers or `deadline` passes.
async fn probe(shared: Arc<Shared>, addr: SocketAddr, deadline: tokio::time::Instant) -> Probe {
    if addr == shared.local_addr || Some(addr) == shared.advertise {
        return Probe::Myself(addr);
    }
    let mut backoff = BACKOFF_MIN;
    let mut last_error = None;
    let mut attempt = FIRST_ATTEMPT;
    loop {
        let now = tokio::time::Instant::now();
        let until = deadline.min(now + attempt);
        attempt = (attempt * 2).min(LONGEST_ATTEMPT);
        match tokio::time::timeout_at(until, shared.dial(addr)).await {
            Err(_) if until >= deadline => return Probe::Unreachable(addr, last_error),
            Err(_) => {
                tracing::debug!(%addr, "no answer to this dial yet; dialing again");
                last_error = Some("no answer to the QUIC handshake".into());
            }
            Ok(Ok((conn, info))) if info.id != shared.me => {
                return Probe::Peer(info, conn);
            }
            Ok(Ok((conn, _))) => {
                let verdict = shared.is_self_connection(&conn, deadline).await;
                conn.close(VarInt::from_u32(CLOSE_PROBE), b"discovery probe");
                return if verdict {
                    Probe::Myself(addr)
                } else {
                    Probe::Impostor(addr)
                };
            }
            // A name that will be refused on every try: say so now.
            Ok(Err(e)) if e.is_name_refusal() => {
                return Probe::Unreachable(addr, Some(e.to_string()));
            }
            Ok(Err(e)) => {
                tracing::debug!(%addr, error = %e, "peer not reachable yet; retrying");
                last_error = Some(e.to_string());
            }
        }
        if tokio::time::Instant::now() + backoff >= deadline {
            return Probe::Unreachable(addr, last_error);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

impl Shared {
    /// True once this endpoint has accepted the other end of `conn`.
    async fn is_self_connection(&self, conn: &Connection, deadline: tokio::time::Instant) -> bool {
        let Some(key) = keying_key(conn) else {
            return false;
        };
        let until = deadline.min(tokio::time::Instant::now() + SELF_CHECK);
        loop {
            if self.self_keys.lock().contains(&key) {
                return true;
            }
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Turns probe results into the peer table, or the configuration error.
    fn register_discovered(
        self: &Arc<Self>,
        probes: Vec<Probe>,
        require_all: bool,
    ) -> Result<Vec<PeerInfo>, Error> {
        let mut unreachable = Vec::new();
        let mut found: Vec<(PeerInfo, Connection)> = Vec::new();
        let mut self_addr = None;
        for p in probes {
            match p {
                Probe::Peer(info, conn) => found.push((info, conn)),
                Probe::Myself(addr) => {
                    self_addr = Some(self_addr.map_or(addr, |a: SocketAddr| a.min(addr)));
                }
                Probe::Impostor(addr) => {
                    return Err(Error::Config(format!(
                        "the node at {addr} presents this node's own name {:?}; every node needs its own name (its own certificate, or its own name(..) when they share one)",
                        self.name
                    )));
                }
                Probe::Unreachable(addr, err) => unreachable.push((addr, err)),
            }
        }
        if !unreachable.is_empty() && !require_all {
            // A restart from the members it recorded, or one round of a
            // first start (whose caller says what it waits for): the peers
            // still missing are dialed by their slots as usual.
            let list: Vec<String> = unreachable.iter().map(|(a, _)| a.to_string()).collect();
            tracing::debug!(unreachable = %list.join(", "), "peers not reachable in this round");
        } else if !unreachable.is_empty() {
            // Cached key: one compiled sort of (address, index) pairs
            // with the sort below (issue 12, item 9).
            unreachable.sort_by_cached_key(|(a, _)| *a);
            let list: Vec<String> = unreachable
                .iter()
                .map(|(a, e)| match e {
                    Some(e) => format!("{a} ({e})"),
                    None => a.to_string(),
                })
                .collect();
            return Err(Error::Config(format!(
                "could not reach peers {} before the start-up deadline; check they are running, that UDP is open between the nodes, and that their certificates come from this cluster's CA",
                list.join(", ")
            )));
        }
        found.sort_by_cached_key(|(info, _)| info.addr);
        for pair in found.windows(2) {
            if let [(a, _), (b, _)] = pair {
                if a.id == b.id {
                    return Err(Error::Config(format!(
                        "peers {} and {} both present the name {:?}; every node needs its own name (its own certificate, or its own name(..) when they share one)",
                        a.addr, b.addr, a.name
                    )));
                }
            }
        }
        // Same order as configured, which users recognise.
        let configured = self.configured.lock().clone();
        let order = |addr: &SocketAddr| configured.iter().position(|a| a == addr);
        let mut out: Vec<PeerInfo> = Vec::with_capacity(found.len() + 1);
        for (info, conn) in found {
            if self.me < info.id {
                // Our probe is the pair's connection: keep it.
                self.ensure_peer(info.clone(), true, Some(conn.clone()));
                let reader = peer::read_connection(Arc::clone(self), conn, info.id);
                self.spawn(reader.instrument(tracing::info_span!("peer", peer = %info.name)));
            } else {
                self.ensure_peer(info.clone(), true, None);
                conn.close(VarInt::from_u32(CLOSE_PROBE), b"discovery probe");
            }
            out.push(info);
        }
        out.push(PeerInfo {
            id: self.me,
            name: self.name.clone(),
            addr: self_addr.or(self.advertise).unwrap_or(self.local_addr),
        });
        // Unlisted last: a position above any list's.
        let place = |p: &PeerInfo| order(&p.addr).map_or(u64::MAX, |i| i as u64);
        sort_by_u128(&mut out, |p| id_key(place(p), p.id));
        Ok(out)
    }
}

/// 32 bytes both ends of one TLS session derive alike.
pub(crate) fn keying_key(conn: &Connection) -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    conn.export_keying_material(&mut key, SELF_LABEL, b"")
        .ok()?;
    Some(key)
}
