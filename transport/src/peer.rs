//! Per-connection and per-peer tasks: the reader that checks every frame
//! against the certificate's identity, and the writer that keeps one
//! connection per peer pair alive and sends batched frames on it.

use std::sync::Arc;
use std::time::Duration;

use peerlock_core::transport::{Incoming, PeerMessage};
use peerlock_core::NodeId;
use quinn::{Connection, RecvStream, VarInt};
use tokio::sync::mpsc;

use crate::codec::{self, FrameBody, FrameDecoder};
use crate::endpoint::{PeerInfo, Shared};
use crate::error::TransportError;
use crate::tls::common_name;

/// Close code: the peer broke the wire protocol.
pub(crate) const CLOSE_PROTOCOL: u32 = 1;
/// Close code: a frame claimed another sender.
pub(crate) const CLOSE_SPOOFED: u32 = 2;
/// Close code: this connection duplicates the pair's connection.
pub(crate) const CLOSE_DUPLICATE: u32 = 3;
/// Close code: shutting down.
pub(crate) const CLOSE_SHUTDOWN: u32 = 0;

/// The identity a connection's certificate proves.
pub(crate) fn identity(conn: &Connection) -> Result<(NodeId, String), TransportError> {
    let any = conn.peer_identity().ok_or(TransportError::NoIdentity)?;
    let certs = any
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .map_err(|_| TransportError::NoIdentity)?;
    let leaf = certs.first().ok_or(TransportError::NoIdentity)?;
    let name = common_name(leaf).ok_or(TransportError::NoIdentity)?;
    Ok((NodeId::from_name(&name), name))
}

/// Reads every unidirectional stream the peer opens on `conn`.
pub(crate) async fn read_connection(shared: Arc<Shared>, conn: Connection, peer: NodeId) {
    loop {
        match conn.accept_uni().await {
            Ok(stream) => {
                let (shared, conn) = (shared.clone(), conn.clone());
                tokio::spawn(async move {
                    if let Err(e) = read_stream(&shared, &conn, stream, peer).await {
                        let code = match e {
                            TransportError::Spoofed { .. } => CLOSE_SPOOFED,
                            _ => CLOSE_PROTOCOL,
                        };
                        tracing::warn!(peer = %peer, error = %e, "bad input from peer; closing the connection");
                        conn.close(VarInt::from_u32(code), e.to_string().as_bytes());
                    }
                });
            }
            Err(e) => {
                tracing::debug!(peer = %peer, error = %e, "connection ended");
                return;
            }
        }
    }
}

/// Decodes frames from one stream until it ends. An error means the peer
/// broke the protocol; the caller closes the connection.
async fn read_stream(
    shared: &Shared,
    conn: &Connection,
    mut stream: RecvStream,
    peer: NodeId,
) -> Result<(), TransportError> {
    let mut decoder = FrameDecoder::new();
    loop {
        let Some(chunk) = stream.read_chunk(256 * 1024, true).await? else {
            return Ok(());
        };
        decoder.extend(&chunk.bytes);
        while let Some(FrameBody { from, msgs }) = decoder.decode()? {
            if from != peer {
                return Err(TransportError::Spoofed {
                    claimed: from,
                    actual: peer,
                });
            }
            if shared.incoming.send(Incoming { from: peer, msgs }).await.is_err() {
                // The node is gone; stop reading.
                conn.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"shutdown");
                return Ok(());
            }
        }
    }
}

/// Keeps the connection to one peer and sends its queued messages.
///
/// Exactly one connection per pair: the node with the lower id dials (and
/// re-dials with backoff when the connection dies); the other waits for it.
/// Both send on their own unidirectional stream over that connection.
pub(crate) async fn write_loop(
    shared: Arc<Shared>,
    peer: PeerInfo,
    mut queue: mpsc::Receiver<Vec<PeerMessage>>,
    mut initial: Option<Connection>,
) {
    let mut backoff = Duration::from_millis(50);
    let mut batch: Vec<Vec<PeerMessage>> = Vec::with_capacity(64);
    loop {
        let conn = match initial.take() {
            Some(c) if c.close_reason().is_none() => c,
            _ if shared.me < peer.id => match shared.dial(peer.addr, Some(peer.id)).await {
                Ok(c) => {
                    shared.set_pair(peer.id, c.clone());
                    tokio::spawn(read_connection(shared.clone(), c.clone(), peer.id));
                    c
                }
                Err(e) => {
                    tracing::debug!(peer = %peer.id, addr = %peer.addr, error = %e, "dial failed; retrying");
                    drain(&mut queue);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            _ => {
                let Some(c) = shared.wait_pair(peer.id).await else {
                    return;
                };
                c
            }
        };
        let mut stream = match conn.open_uni().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(peer = %peer.id, error = %e, "could not open a stream");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        loop {
            tokio::select! {
                n = queue.recv_many(&mut batch, 64) => {
                    if n == 0 {
                        return;
                    }
                    let mut msgs: Vec<PeerMessage> = Vec::new();
                    for b in batch.drain(..) {
                        msgs.extend(b);
                    }
                    let frame = match codec::encode(&FrameBody { from: shared.me, msgs }) {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::error!(peer = %peer.id, error = %e, "frame not sent");
                            continue;
                        }
                    };
                    if let Err(e) = stream.write_all(&frame).await {
                        tracing::debug!(peer = %peer.id, error = %e, "write failed; reconnecting");
                        break;
                    }
                }
                _ = conn.closed() => break,
            }
        }
    }
}

/// Drops whatever is queued while the peer is unreachable (Raft retries).
fn drain(queue: &mut mpsc::Receiver<Vec<PeerMessage>>) {
    while queue.try_recv().is_ok() {}
}
