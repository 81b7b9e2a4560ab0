//! The writer of one peer: gets the pair's connection when there is
//! something to send, sends batched frames on one long-lived stream, and
//! (on the lower id) closes the connection once the pair stopped talking.
//!
//! # Connections on demand (issue 10)
//!
//! Every pair of nodes used to keep its connection open for ever, and
//! quinn's keep-alive pinged each idle one from both sides every
//! [`crate::KEEP_ALIVE`]: about 2 n (n - 1) pings a second for n nodes,
//! 31 356 datagrams a second at 100 idle nodes, though in a Raft group only
//! the leader talks to every member all the time (heartbeats, Raft thesis
//! §3.4); followers and learners talk to each other only in an election
//! (§3.4, votes; learners never vote) or a leadership transfer (§3.10).
//! Now:
//!
//! - The lower id, which owns the pair's connection (see
//!   [`crate::QuicTransport`]), dials only on demand: a message queued for
//!   the peer, a dial request from it (a probe, whose accept pokes this
//!   writer), or a connection that died while in use (so a dead or
//!   restarted peer of an active pair is re-dialed at once, as before).
//! - It closes the connection ([`CLOSE_IDLE`]) once no message went either
//!   way for [`crate::IDLE_CLOSE`]. Heartbeats (empty frames, sent on a poke) and
//!   QUIC's pings do not count. Only with a peer of ALPN 4, which asks for a
//!   connection again when it needs one.
//! - The higher id, with a message queued and no connection, sends a dial
//!   request (`Shared::request_dial`), again after 50 ms doubling to 1 s
//!   while it still waits, and drops what waited [`STALE_AFTER`] (Raft
//!   sends again), as it did while waiting for a lost connection.
//!
//! What depends on a connection being up: nothing outside this crate. The
//! [`peerlock_core::transport::Transport`] trait has no notion of one; a
//! member's liveness is judged by the leader from Raft's answers to its
//! heartbeats (`LiveTell`), which keep the leader's connections busy. A
//! member whose pair with another follower is closed is not "dead".

use std::sync::Arc;
use std::time::Duration;

use peerlock_core::transport::PeerMessage;
use peerlock_core::NodeId;
use quinn::{Connection, SendStream, VarInt};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::Instrument;

use crate::activity::Activity;
use crate::codec::{self, FrameBody};
use crate::endpoint::{Shared, BACKOFF_MAX, BACKOFF_MIN};
use crate::error::TransportError;
use crate::peer::{live, read_connection, CLOSE_IDLE, CLOSE_PROBE, STALE_AFTER};

/// Queued batches taken at once by the writer.
const RECV_BATCHES: usize = 64;
/// Messages are packed into frames of about this many bytes (one bigger
/// message, such as a snapshot, gets a frame of its own).
const FRAME_BUDGET: usize = 4 * 1024 * 1024;
/// Failed dials after which an unconfigured peer is forgotten.
const FORGET_AFTER: u32 = 10;
/// A dial in flight this long is abandoned for a new one when the peer
/// probes again (its new process may not answer the old dial's packets
/// until their retransmission). Several handshakes' time on a busy host.
const DIAL_STALLED: Duration = Duration::from_millis(250);

/// One peer's writer state.
struct Writer {
    shared: Arc<Shared>,
    peer: NodeId,
    /// This node owns the pair's connection (the lower id).
    owner: bool,
    queue: crate::queue::Receiver,
    conn_rx: watch::Receiver<Option<Connection>>,
    poke: Arc<Notify>,
    activity: Arc<Activity>,
    /// Messages taken from the queue, not written yet.
    batch: Vec<Vec<PeerMessage>>,
    /// Since when something waits for a connection (messages in `batch`,
    /// a poke, a connection lost while in use).
    demand: Option<Instant>,
    backoff: Duration,
    failures: u32,
    first_dial: bool,
    redial_after: Option<Duration>,
    /// The higher id's next dial request, and the wait after it.
    next_request: Instant,
    request_backoff: Duration,
}

/// Keeps the connection to `peer` (see the module doc) and sends what is
/// queued for it. Ends when the slot is removed (its queue closes) or the
/// transport closes.
///
/// A `poke` with a connection writes a heartbeat: an empty frame, which
/// readers skip. It is for a peer that may have restarted: a packet on the
/// pair's connection that reaches a new process draws a stateless reset
/// (see `endpoint_config`), and the dead connection ends at once. (Without
/// a poke, quinn's keep-alive pings, sent [`crate::KEEP_ALIVE`] after the
/// last packet even to a silent peer, do the same within that time.) A
/// poke without a connection is a demand for one.
pub(crate) async fn write_loop(
    shared: Arc<Shared>,
    peer: NodeId,
    queue: crate::queue::Receiver,
    conn_rx: watch::Receiver<Option<Connection>>,
    poke: Arc<Notify>,
    activity: Arc<Activity>,
) {
    let mut w = Writer {
        owner: shared.me < peer,
        shared,
        peer,
        queue,
        conn_rx,
        poke,
        activity,
        batch: Vec::with_capacity(RECV_BATCHES),
        demand: None,
        backoff: BACKOFF_MIN,
        failures: 0,
        first_dial: true,
        redial_after: None,
        next_request: Instant::now(),
        request_backoff: BACKOFF_MIN,
    };
    loop {
        let going = match live(&mut w.conn_rx) {
            Some(conn) => w.serve(conn).await,
            None if w.owner => w.connect().await,
            None => w.await_connection().await,
        };
        if !going {
            return;
        }
    }
}

impl Writer {
    /// Waits for a message, a poke or a connection installed elsewhere;
    /// false when the queue or the slot is gone.
    async fn await_demand(&mut self) -> bool {
        if self.demand.is_some() || !self.batch.is_empty() {
            return true;
        }
        tokio::select! {
            n = self.queue.recv_many(&mut self.batch, RECV_BATCHES) => {
                if n == 0 {
                    return false;
                }
            }
            () = self.poke.notified() => {}
            r = self.conn_rx.changed() => return r.is_ok(),
        }
        self.demand = Some(Instant::now());
        true
    }

    /// Drops what waited for a connection (Raft retries).
    fn drop_waiting(&mut self) {
        let mut n: usize = self.batch.drain(..).map(|b| b.len()).sum();
        while let Ok(b) = self.queue.try_recv() {
            n += b.len();
        }
        self.demand = None;
        if n > 0 {
            tracing::debug!(n, "peer unreachable; queued messages dropped");
        }
    }

    /// The lower id without a connection: dials on demand. False when the
    /// writer is done.
    async fn connect(&mut self) -> bool {
        if let Some(delay) = self.redial_after.take() {
            // A poke (the peer just showed up) cuts the wait short.
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.poke.notified() => { self.demand.get_or_insert_with(Instant::now); }
            }
            if live(&mut self.conn_rx).is_some() {
                return true;
            }
        }
        if !self.await_demand().await {
            return false;
        }
        if self.demand.is_none() || live(&mut self.conn_rx).is_some() {
            // The connection changed (installed, or retired, which pokes):
            // look again.
            return true;
        }
        let Some((_, configured)) = self.shared.peer_addr(self.peer) else {
            return false;
        };
        if !configured && std::mem::take(&mut self.first_dial) {
            // Met through its own probe: our discovery may be dialing it
            // right now; let that connection be the one.
            self.shared.discovery_settled().await;
            if live(&mut self.conn_rx).is_some() {
                return true;
            }
        }
        let Some((addr, configured)) = self.shared.peer_addr(self.peer) else {
            return false;
        };
        // A dial to an address whose process is down waits out the
        // handshake timeout; a poke (the peer's new process just probed
        // us) abandons it and dials again at once, if the peer moved or
        // the dial looks stalled. Not a young dial to the same address:
        // the peer's dial requests, repeated while it waits, poke too.
        let started = Instant::now();
        let shared = Arc::clone(&self.shared);
        let dial = shared.dial(addr);
        tokio::pin!(dial);
        let dialed = loop {
            tokio::select! {
                r = &mut dial => break Some(r),
                () = self.poke.notified() => {
                    let moved = shared.peer_addr(self.peer).map(|(a, _)| a) != Some(addr);
                    if moved || started.elapsed() >= DIAL_STALLED {
                        break None;
                    }
                }
            }
        };
        let Some(dialed) = dialed else {
            return true;
        };
        match dialed {
            Ok((c, info)) if info.id == self.peer => {
                tracing::debug!(%addr, "connected");
                self.failures = 0;
                self.shared.install(self.peer, c.clone());
                let reader = read_connection(Arc::clone(&self.shared), c, self.peer);
                self.shared
                    .spawn(reader.instrument(tracing::Span::current()));
                return true;
            }
            Ok((c, info)) => {
                let e = TransportError::WrongPeer {
                    addr,
                    expected: self.peer,
                    found: info.name,
                };
                tracing::warn!(error = %e, "not the expected node; retrying");
                c.close(VarInt::from_u32(CLOSE_PROBE), b"wrong node");
            }
            Err(e) if e.is_name_refusal() => {
                tracing::warn!(%addr, error = %e, "name refused; retrying");
            }
            Err(e) => tracing::debug!(%addr, error = %e, "dial failed; retrying"),
        }
        self.failures = self.failures.saturating_add(1);
        if !configured && self.failures >= FORGET_AFTER && self.shared.forget(self.peer) {
            tracing::debug!("unconfigured peer stayed unreachable; forgotten");
            return false;
        }
        // Dialed again on the next demand (Raft's next message), after
        // the backoff.
        self.drop_waiting();
        self.redial_after = Some(self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        true
    }

    /// The higher id without a connection: on demand, asks the lower id
    /// to dial, and waits. False when the writer is done.
    async fn await_connection(&mut self) -> bool {
        if !self.await_demand().await {
            return false;
        }
        let Some(since) = self.demand else {
            // A connection was installed meanwhile.
            return true;
        };
        let now = Instant::now();
        if now >= self.next_request {
            self.shared.request_dial(self.peer);
            self.next_request = now + self.request_backoff;
            self.request_backoff = (self.request_backoff * 2).min(BACKOFF_MAX);
        }
        let stale_at = since + STALE_AFTER;
        match tokio::time::timeout_at(self.next_request.min(stale_at), self.conn_rx.changed()).await
        {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return false,
            Err(_) if Instant::now() >= stale_at => self.drop_waiting(),
            Err(_) => {}
        }
        true
    }

    /// Writes on `conn` until it ends (or, on the lower id, until it has
    /// been idle for [`crate::IDLE_CLOSE`]). False when the writer is done.
    async fn serve(&mut self, conn: Connection) -> bool {
        let mut stream = match conn.open_uni().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "could not open a stream");
                self.redial_after = Some(self.backoff);
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                return true;
            }
        };
        self.demand = None;
        self.request_backoff = BACKOFF_MIN;
        self.next_request = Instant::now();
        // A new connection is given its full idle time.
        self.activity.touch();
        let opened = Instant::now();
        let mut result = Ok(());
        if !self.batch.is_empty() {
            // What asked for this connection.
            result = write_batch(self.shared.me, &mut stream, &mut self.batch).await;
        }
        let on_demand = crate::bulk::on_demand(&conn);
        let closes_idle = self.owner && on_demand;
        let idle = tokio::time::sleep_until(self.activity.last() + self.shared.idle_close());
        tokio::pin!(idle);
        let mut closed_idle = false;
        let mut next_rtt = opened;
        while result.is_ok() {
            result = tokio::select! {
                biased;
                _ = conn.closed() => break,
                n = self.queue.recv_many(&mut self.batch, RECV_BATCHES) => {
                    if n == 0 {
                        let _ = stream.finish();
                        return false;
                    }
                    self.activity.touch();
                    sample_rtt(&conn, &mut next_rtt);
                    write_batch(self.shared.me, &mut stream, &mut self.batch).await
                }
                () = self.poke.notified() => write_frame(self.shared.me, &mut stream, Vec::new()).await,
                () = &mut idle, if closes_idle => {
                    let due = self.activity.last() + self.shared.idle_close();
                    if Instant::now() < due {
                        idle.as_mut().reset(due);
                        continue;
                    }
                    tracing::debug!("no message either way for a while; closing the connection until one is queued");
                    conn.close(VarInt::from_u32(CLOSE_IDLE), b"idle");
                    closed_idle = true;
                    break;
                }
            };
        }
        if let Err(e) = result {
            tracing::debug!(error = %e, "write failed; reconnecting");
        }
        if let Some(reason) = conn.close_reason() {
            tracing::debug!(%reason, "connection ended");
        }
        if closed_idle {
            self.backoff = BACKOFF_MIN;
            return true;
        }
        // A connection that dies while in use is wanted back at once (a
        // dead or restarted peer of an active pair), and so is any with a
        // peer of ALPN 3 or older, which never asks for one; the batch that
        // failed is lost either way (Raft retries).
        self.batch.clear();
        let recent = self.activity.last().elapsed() < self.shared.idle_close();
        if !closed_as_idle(&conn) && (recent || !on_demand) {
            self.demand = Some(Instant::now());
        }
        // A connection that lived resets the backoff; one that dies at
        // once keeps doubling it, so a flapping peer is not hammered.
        if opened.elapsed() >= BACKOFF_MAX {
            self.backoff = BACKOFF_MIN;
        }
        self.redial_after = Some(self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        true
    }
}

/// Records the connection's round trip (quinn's estimate) at most once a
/// second while messages flow: the peer round trip of the metrics catalog
/// (issue 12, item 1), without a sample per batch.
fn sample_rtt(conn: &Connection, next: &mut Instant) {
    let now = Instant::now();
    if now >= *next {
        *next = now + Duration::from_secs(1);
        metrics::histogram!(peerlock_core::metrics::PEER_RTT_SECONDS).record(conn.rtt());
    }
}

/// Whether the peer closed `conn` as idle: the pair stopped talking, and
/// nothing is wanted back (the times both sides measured differ by a
/// fraction of a round trip, so this side's own may not be up yet).
fn closed_as_idle(conn: &Connection) -> bool {
    matches!(conn.close_reason(), Some(quinn::ConnectionError::ApplicationClosed(c))
        if c.error_code == VarInt::from_u32(CLOSE_IDLE))
}

/// A cheap size estimate, to pack messages into frames.
fn estimate(m: &PeerMessage) -> usize {
    match m {
        PeerMessage::Raft(bytes) => bytes.len() + 16,
        _ => 32,
    }
}

/// Packs the batch into as few frames as fit the budget and writes them.
async fn write_batch(
    me: NodeId,
    stream: &mut SendStream,
    batch: &mut Vec<Vec<PeerMessage>>,
) -> Result<(), TransportError> {
    let mut msgs: Vec<PeerMessage> = Vec::new();
    let mut size = 0;
    for m in batch.drain(..).flatten() {
        let s = estimate(&m);
        if !msgs.is_empty() && size + s > FRAME_BUDGET {
            write_frame(me, stream, std::mem::take(&mut msgs)).await?;
            size = 0;
        }
        size += s;
        msgs.push(m);
    }
    if !msgs.is_empty() {
        write_frame(me, stream, msgs).await?;
    }
    Ok(())
}

async fn write_frame(
    me: NodeId,
    stream: &mut SendStream,
    msgs: Vec<PeerMessage>,
) -> Result<(), TransportError> {
    let n = msgs.len();
    match codec::encode(&FrameBody { from: me, msgs }) {
        // Handed over as is: quinn keeps the buffer instead of copying it.
        Ok(frame) => Ok(stream.write_chunk(frame.into()).await?),
        Err(e) => {
            tracing::error!(error = %e, n, "messages cannot be framed; dropped");
            Ok(())
        }
    }
}
