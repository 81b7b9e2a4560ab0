//! Per-peer tasks: the reader that checks every frame against the
//! certificate's identity before delivering it, and the sender of large
//! messages on bulk streams. (The writer, which keeps the pair's
//! connection and sends batched frames on one long-lived stream, is in
//! `writer.rs`.)

use std::sync::Arc;
use std::time::Duration;

use peerlock_core::transport::{Incoming, PeerMessage};
use peerlock_core::NodeId;
use quinn::{Connection, RecvStream, VarInt};
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tracing::Instrument;

use crate::activity::Activity;
use crate::bulk;
use crate::codec::{FrameBody, FrameDecoder};
use crate::endpoint::{Shared, HANDSHAKE_TIMEOUT};
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

/// Close code: the lower id closed the pair's connection, unused for
/// [`crate::IDLE_CLOSE`] (issue 10); it is dialed again on demand.
pub(crate) const CLOSE_IDLE: u32 = 6;

/// Close code: asked to re-make the connection (tests: see
/// `QuicTransport::close_connections`); re-dialed at once if in use.
pub(crate) const CLOSE_RECONNECT: u32 = 7;

/// Messages queued for a peer without a connection this long are stale.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(1);
/// The most bytes taken from a stream at once.
const READ_CHUNK: usize = 256 * 1024;

/// Close code: the peer's name preamble was malformed or its claim refused.
pub(crate) const CLOSE_NAME: u32 = 5;
/// Close code: another live process presents the same name (issue 9; see
/// `endpoint/name_in_use.rs`); the reason says where.
pub(crate) const CLOSE_NAME_IN_USE: u32 = 8;

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
    // A peer without a slot (a probe being turned away) counts nowhere.
    let activity = shared
        .activity(peer)
        .unwrap_or_else(|| Arc::new(Activity::new()));
    loop {
        match conn.accept_uni().await {
            Ok(stream) => {
                let task = read_stream(
                    Arc::clone(&shared),
                    conn.clone(),
                    stream,
                    (peer, Arc::clone(&activity)),
                    Arc::clone(&bulk_busy),
                );
                shared.spawn(task.instrument(tracing::Span::current()));
            }
            Err(e) => {
                tracing::debug!(error = %e, "connection ended");
                shared.note_name_in_use(&e);
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
    (peer, activity): (NodeId, Arc<Activity>),
    bulk_busy: Arc<Semaphore>,
) {
    match dispatch_stream(&shared, stream, (peer, &activity), &bulk_busy).await {
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
    (peer, activity): (NodeId, &Activity),
    bulk_busy: &Semaphore,
) -> Result<(), TransportError> {
    let mut head: Vec<u8> = Vec::new();
    loop {
        let is_bulk = head.get(..3) == Some(&bulk::BULK_MAGIC[..]);
        if is_bulk && head.len() >= bulk::BULK_HEADER {
            return receive_bulk(shared, stream, &head, (peer, activity), bulk_busy).await;
        }
        if head.len() >= 3 && !is_bulk {
            return decode_stream(shared, stream, head, (peer, activity)).await;
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
    (peer, activity): (NodeId, &Activity),
    bulk_busy: &Semaphore,
) -> Result<(), TransportError> {
    // Not read until the one before is delivered: flow control holds the
    // sender back meanwhile.
    let Ok(_permit) = bulk_busy.acquire().await else {
        return Ok(());
    };
    if let Some(msg) = bulk::receive(stream, head, peer).await? {
        activity.touch();
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
    (peer, activity): (NodeId, &Activity),
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
                // A heartbeat (see `writer.rs`): not a message.
                continue;
            }
            activity.touch();
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
/// [`STALE_AFTER`] for a connection (the writer, poked, dials or asks for
/// one), then is dropped: Raft sends it again.
pub(crate) async fn bulk_loop(
    shared: Arc<Shared>,
    mut queue: mpsc::Receiver<PeerMessage>,
    mut conn_rx: watch::Receiver<Option<Connection>>,
    poke: Arc<Notify>,
    activity: Arc<Activity>,
) {
    while let Some(msg) = queue.recv().await {
        activity.touch();
        let conn = match live(&mut conn_rx) {
            Some(c) => c,
            None => {
                poke.notify_one();
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
pub(crate) fn live(conn_rx: &mut watch::Receiver<Option<Connection>>) -> Option<Connection> {
    conn_rx
        .borrow_and_update()
        .as_ref()
        .filter(|c| c.close_reason().is_none())
        .cloned()
}
