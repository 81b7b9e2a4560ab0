//! Per-peer tasks: the writer that keeps the pair's connection and sends
//! batched frames on one long-lived stream, and the reader that checks
//! every frame against the certificate's identity before delivering it.

use std::sync::Arc;
use std::time::Duration;

use peerlock_core::transport::{Incoming, PeerMessage};
use peerlock_core::NodeId;
use quinn::{Connection, RecvStream, SendStream, VarInt};
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tracing::Instrument;

use crate::bulk;
use crate::codec::{self, FrameBody, FrameDecoder};
use crate::endpoint::{Shared, BACKOFF_MAX, BACKOFF_MIN, HANDSHAKE_TIMEOUT};
use crate::error::TransportError;
use crate::tls::common_name;

/// Close code: the transport is shutting down.
pub(crate) const CLOSE_SHUTDOWN: u32 = 0;
/// Close code: the peer broke the wire protocol.
pub(crate) const CLOSE_PROTOCOL: u32 = 1;
/// Close code: a frame claimed another sender.
pub(crate) const CLOSE_SPOOFED: u32 = 2;
/// Close code: a newer connection replaced this one.
pub(crate) const CLOSE_DUPLICATE: u32 = 3;
/// Close code: a discovery probe, done.
pub(crate) const CLOSE_PROBE: u32 = 4;

/// Queued batches taken at once by the writer.
const RECV_BATCHES: usize = 64;
/// Messages are packed into frames of about this many bytes (one bigger
/// message, such as a snapshot, gets a frame of its own).
const FRAME_BUDGET: usize = 4 * 1024 * 1024;
/// Messages queued for a peer without a connection this long are stale.
const STALE_AFTER: Duration = Duration::from_secs(1);
/// Failed dials after which an unconfigured peer is forgotten.
const FORGET_AFTER: u32 = 10;
/// The most bytes taken from a stream at once.
const READ_CHUNK: usize = 256 * 1024;

/// Close code: the peer's name preamble was malformed or its claim refused.
pub(crate) const CLOSE_NAME: u32 = 5;

/// The common name of the certificate a connection's peer presented.
fn certificate_name(conn: &Connection) -> Result<String, TransportError> {
    let any = conn.peer_identity().ok_or(TransportError::NoIdentity)?;
    let certs = any
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .map_err(|_| TransportError::NoIdentity)?;
    let leaf = certs.first().ok_or(TransportError::NoIdentity)?;
    common_name(leaf).ok_or(TransportError::NoIdentity)
}

/// Who a freshly handshaken connection's peer is: name and Raft id, from
/// its certificate and, on a connection of ALPN 3, the name it claims (see
/// `preamble.rs`), after sending this node's own claim. Waits at most
/// [`HANDSHAKE_TIMEOUT`] for the peer's claim. On an error the connection
/// is closed, with [`CLOSE_NAME`] when the name is at fault, before any
/// frame was read from it.
pub(crate) async fn identify(
    shared: &Shared,
    conn: &Connection,
) -> Result<(NodeId, String), TransportError> {
    let who = async {
        let cn = certificate_name(conn)?;
        // Known before any claim is exchanged: the peer would refuse ours.
        crate::preamble::check_own(&shared.name, &shared.cn, &cn)?;
        let claimed = match tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            crate::preamble::exchange(conn, &shared.name),
        )
        .await
        {
            Ok(claimed) => claimed?,
            Err(_) => return Err(TransportError::HandshakeTimeout),
        };
        crate::preamble::resolve(cn, claimed, (&shared.name, &shared.cn))
    };
    let result = who.await;
    if let Err(e) = &result {
        let (code, reason): (u32, &[u8]) = match e {
            TransportError::BadName(_)
            | TransportError::NameNotProven { .. }
            | TransportError::MixedCertificates { .. } => (CLOSE_NAME, b"name refused"),
            TransportError::NoIdentity => (CLOSE_PROTOCOL, b"no identity"),
            _ => (CLOSE_PROTOCOL, b"no name"),
        };
        conn.close(VarInt::from_u32(code), reason);
    }
    result
}

/// Reads every stream `peer` opens on `conn`, until the connection ends.
pub(crate) async fn read_connection(shared: Arc<Shared>, conn: Connection, peer: NodeId) {
    // One bulk message in reassembly per connection (see `bulk.rs`).
    let bulk_busy = Arc::new(Semaphore::new(1));
    loop {
        match conn.accept_uni().await {
            Ok(stream) => {
                let task = read_stream(
                    Arc::clone(&shared),
                    conn.clone(),
                    stream,
                    peer,
                    Arc::clone(&bulk_busy),
                );
                shared.spawn(task.instrument(tracing::Span::current()));
            }
            Err(e) => {
                tracing::debug!(error = %e, "connection ended");
                return;
            }
        }
    }
}

/// Reads one stream; on bad input closes the whole connection.
async fn read_stream(
    shared: Arc<Shared>,
    conn: Connection,
    stream: RecvStream,
    peer: NodeId,
    bulk_busy: Arc<Semaphore>,
) {
    match dispatch_stream(&shared, stream, peer, &bulk_busy).await {
        Ok(()) => {}
        Err(e) if e.is_protocol_violation() => {
            let code = match e {
                TransportError::Spoofed { .. } => CLOSE_SPOOFED,
                _ => CLOSE_PROTOCOL,
            };
            tracing::warn!(error = %e, remote = %conn.remote_address(), "bad input from peer; closing its connection");
            conn.close(VarInt::from_u32(code), b"protocol violation");
        }
        Err(e) => tracing::debug!(error = %e, "stream ended"),
    }
}

/// Reads a stream's first bytes to tell a bulk stream from a frame stream,
/// then reads it as what it is.
async fn dispatch_stream(
    shared: &Shared,
    mut stream: RecvStream,
    peer: NodeId,
    bulk_busy: &Semaphore,
) -> Result<(), TransportError> {
    let mut head: Vec<u8> = Vec::new();
    loop {
        let is_bulk = head.get(..3) == Some(&bulk::BULK_MAGIC[..]);
        if is_bulk && head.len() >= bulk::BULK_HEADER {
            return receive_bulk(shared, stream, &head, peer, bulk_busy).await;
        }
        if head.len() >= 3 && !is_bulk {
            return decode_stream(shared, stream, head, peer).await;
        }
        let want = bulk::BULK_HEADER - head.len();
        match stream.read_chunk(want, true).await? {
            Some(chunk) => head.extend_from_slice(&chunk.bytes),
            // Shorter than any header: nothing to deliver.
            None => return Ok(()),
        }
    }
}

/// Reassembles one bulk message (one at a time per connection) and
/// delivers it.
async fn receive_bulk(
    shared: &Shared,
    stream: RecvStream,
    head: &[u8],
    peer: NodeId,
    bulk_busy: &Semaphore,
) -> Result<(), TransportError> {
    // Not read until the one before is delivered: flow control holds the
    // sender back meanwhile.
    let Ok(_permit) = bulk_busy.acquire().await else {
        return Ok(());
    };
    if let Some(msg) = bulk::receive(stream, head, peer).await? {
        let incoming = Incoming {
            from: peer,
            msgs: vec![msg],
        };
        if shared.incoming.send(incoming).await.is_err() {
            tracing::debug!("the driver is gone; bulk message dropped");
        }
    }
    Ok(())
}

/// Decodes frames from one stream (whose first bytes, `head`, were read
/// already) and delivers them. An error means the stream (and, for
/// protocol violations, the connection) is done.
async fn decode_stream(
    shared: &Shared,
    mut stream: RecvStream,
    head: Vec<u8>,
    peer: NodeId,
) -> Result<(), TransportError> {
    let mut decoder = FrameDecoder::new();
    let mut pending = Some(head);
    loop {
        if let Some(bytes) = pending.take() {
            decoder.extend(&bytes);
        } else {
            let Some(chunk) = stream.read_chunk(READ_CHUNK, true).await? else {
                if decoder.buffered() > 0 {
                    tracing::debug!(bytes = decoder.buffered(), "stream ended inside a frame");
                }
                return Ok(());
            };
            decoder.extend(&chunk.bytes);
        }
        while let Some(FrameBody { from, msgs }) = decoder.decode()? {
            // The sender is who the certificate proves, never who the
            // frame says.
            if from != peer {
                return Err(TransportError::Spoofed {
                    claimed: from,
                    actual: peer,
                });
            }
            if msgs.is_empty() {
                continue;
            }
            if shared
                .incoming
                .send(Incoming { from: peer, msgs })
                .await
                .is_err()
            {
                tracing::debug!("the driver is gone; not reading further");
                return Ok(());
            }
        }
    }
}

/// Sends the large messages queued for `peer`, each on a bulk stream of
/// the pair's connection, one after another. A message waits at most
/// [`STALE_AFTER`] for a connection (the writer dials), then is dropped:
/// Raft sends it again.
pub(crate) async fn bulk_loop(
    shared: Arc<Shared>,
    mut queue: mpsc::Receiver<PeerMessage>,
    mut conn_rx: watch::Receiver<Option<Connection>>,
) {
    while let Some(msg) = queue.recv().await {
        let conn = match live(&mut conn_rx) {
            Some(c) => c,
            None => {
                let open =
                    |c: &Option<Connection>| c.as_ref().is_some_and(|c| c.close_reason().is_none());
                match tokio::time::timeout(STALE_AFTER, conn_rx.wait_for(open)).await {
                    Ok(Ok(c)) => match c.as_ref() {
                        Some(c) => c.clone(),
                        None => continue,
                    },
                    Ok(Err(_)) => return,
                    Err(_) => {
                        tracing::debug!("peer unreachable; bulk message dropped");
                        continue;
                    }
                }
            }
        };
        if let Err(e) = bulk::send(shared.me, &conn, msg).await {
            tracing::debug!(error = %e, "bulk send failed; message dropped (Raft resends)");
        }
    }
}

/// The pair's connection, if it is open.
fn live(conn_rx: &mut watch::Receiver<Option<Connection>>) -> Option<Connection> {
    conn_rx
        .borrow_and_update()
        .as_ref()
        .filter(|c| c.close_reason().is_none())
        .cloned()
}

/// Drops what was queued while the peer was unreachable (Raft retries).
fn drop_stale(queue: &mut crate::queue::Receiver) {
    let mut n = 0;
    while let Ok(b) = queue.try_recv() {
        n += b.len();
    }
    if n > 0 {
        tracing::debug!(n, "peer unreachable; queued messages dropped");
    }
}

/// Keeps the connection to `peer` and sends what is queued for it.
///
/// The lower id dials and re-dials (backoff [`BACKOFF_MIN`] doubling to
/// [`BACKOFF_MAX`]); the higher waits for the lower's connection. Either
/// way this side writes on its own unidirectional stream. Ends when the
/// slot is removed (its queue closes) or the transport closes.
///
/// A `poke` writes a heartbeat: an empty frame, which readers skip. It is
/// for a peer that may have restarted: a packet on the pair's connection
/// that reaches a new process draws a stateless reset (see
/// `endpoint_config`), and the dead connection ends at once. (Without a
/// poke, quinn's keep-alive pings, sent [`crate::KEEP_ALIVE`] after the
/// last packet even to a silent peer, do the same within that time.)
pub(crate) async fn write_loop(
    shared: Arc<Shared>,
    peer: NodeId,
    mut queue: crate::queue::Receiver,
    mut conn_rx: watch::Receiver<Option<Connection>>,
    poke: Arc<Notify>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut failures = 0u32;
    let mut first_dial = true;
    let mut redial_after: Option<Duration> = None;
    let mut batch: Vec<Vec<PeerMessage>> = Vec::with_capacity(RECV_BATCHES);
    loop {
        let conn = match live(&mut conn_rx) {
            Some(c) => c,
            None if shared.me < peer => {
                if let Some(delay) = redial_after.take() {
                    // A poke (the peer just showed up) cuts the wait short.
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = poke.notified() => {}
                    }
                    if live(&mut conn_rx).is_some() {
                        continue;
                    }
                }
                let Some((_, configured)) = shared.peer_addr(peer) else {
                    return;
                };
                if !configured && std::mem::take(&mut first_dial) {
                    // Met through its own probe: our discovery may be
                    // dialing it right now; let that connection be the one.
                    shared.discovery_settled().await;
                    if live(&mut conn_rx).is_some() {
                        continue;
                    }
                }
                let Some((addr, configured)) = shared.peer_addr(peer) else {
                    return;
                };
                // A dial to an address whose process is down waits out the
                // handshake timeout; a poke (the peer's new process just
                // probed us) abandons it and dials again at once.
                let dialed = tokio::select! {
                    r = shared.dial(addr) => Some(r),
                    () = poke.notified() => None,
                };
                let Some(dialed) = dialed else {
                    continue;
                };
                match dialed {
                    Ok((c, info)) if info.id == peer => {
                        tracing::debug!(%addr, "connected");
                        failures = 0;
                        shared.install(peer, c.clone());
                        let reader = read_connection(Arc::clone(&shared), c, peer);
                        shared.spawn(reader.instrument(tracing::Span::current()));
                        continue;
                    }
                    Ok((c, info)) => {
                        let e = TransportError::WrongPeer {
                            addr,
                            expected: peer,
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
                failures = failures.saturating_add(1);
                if !configured && failures >= FORGET_AFTER && shared.forget(peer) {
                    tracing::debug!("unconfigured peer stayed unreachable; forgotten");
                    return;
                }
                drop_stale(&mut queue);
                redial_after = Some(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
            None => {
                // The lower peer owns the pair: wait for its connection.
                match tokio::time::timeout(STALE_AFTER, conn_rx.changed()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return,
                    Err(_) => drop_stale(&mut queue),
                }
                continue;
            }
        };
        let mut stream = match conn.open_uni().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "could not open a stream");
                redial_after = Some(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let opened = tokio::time::Instant::now();
        loop {
            let result = tokio::select! {
                biased;
                _ = conn.closed() => break,
                n = queue.recv_many(&mut batch, RECV_BATCHES) => {
                    if n == 0 {
                        let _ = stream.finish();
                        return;
                    }
                    write_batch(shared.me, &mut stream, &mut batch).await
                }
                () = poke.notified() => write_frame(shared.me, &mut stream, Vec::new()).await,
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "write failed; reconnecting");
                break;
            }
        }
        if let Some(reason) = conn.close_reason() {
            tracing::debug!(%reason, "connection lost");
        }
        // A connection that lived resets the backoff; one that dies at once
        // keeps doubling it, so a flapping peer is not hammered.
        if opened.elapsed() >= BACKOFF_MAX {
            backoff = BACKOFF_MIN;
        }
        redial_after = Some(backoff);
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
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
