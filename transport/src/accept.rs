//! Accepting connections: the handshake, the identity its certificate
//! proves, and what an accepted connection means for the pair (see
//! [`crate::QuicTransport`]: a lower peer's connection becomes the pair's;
//! a higher peer only connects to probe, which asks this node to dial it
//! (issue 10) and may show that it restarted).

use std::sync::Arc;

use tracing::Instrument;

use crate::endpoint::{PeerInfo, Shared, HANDSHAKE_TIMEOUT};
use crate::peer;

pub(crate) async fn accept_loop(shared: Arc<Shared>) {
    while let Some(incoming) = shared.endpoint.accept().await {
        let s = Arc::clone(&shared);
        shared.spawn(accept_one(s, incoming).instrument(tracing::Span::current()));
    }
}

/// True when a handshake failed in TLS itself (a certificate, ALPN, ...):
/// QUIC carries TLS alerts as the "crypto error" codes 0x100..=0x1ff,
/// whichever side refused.
fn is_tls_refusal(e: &quinn::ConnectionError) -> bool {
    let code = match e {
        quinn::ConnectionError::TransportError(t) => t.code,
        quinn::ConnectionError::ConnectionClosed(c) => c.error_code,
        _ => return false,
    };
    (0x100..=0x1ff).contains(&u64::from(code))
}

/// Finishes one handshake, then reads the connection.
async fn accept_one(shared: Arc<Shared>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) if is_tls_refusal(&e) => {
            // A certificate from another CA ends here.
            tracing::warn!(%remote, error = %e, "TLS handshake refused; is the peer's certificate from this cluster's CA?");
            return;
        }
        Ok(Err(e)) => {
            // Lost packets (a partition), a peer that went away, ...
            tracing::debug!(%remote, error = %e, "handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "handshake timed out");
            return;
        }
    };
    let (id, name) = match peer::identify(&shared, &conn).await {
        Ok(v) => v,
        Err(e) if e.is_protocol_violation() => {
            tracing::warn!(%remote, error = %e, "peer refused");
            return;
        }
        Err(e) => {
            tracing::debug!(%remote, error = %e, "no name from the peer");
            return;
        }
    };
    if id == shared.me {
        // Our own discovery probe (or a node wrongly sharing our
        // certificate, which its own discovery will refuse). Never read.
        let Some(key) = crate::discover::keying_key(&conn) else {
            return;
        };
        shared.self_keys.lock().insert(key);
        conn.closed().await;
        shared.self_keys.lock().remove(&key);
        return;
    }
    tracing::debug!(%remote, peer = %name, "accepted connection");
    // The lower id owns the pair: its connection becomes the pair's,
    // unless the pair's connection to a process under this name elsewhere
    // is still alive: a second process (`endpoint/name_in_use.rs`).
    // Read meanwhile, as for a higher peer's probe (a spoofed frame is
    // still caught first).
    let higher = id > shared.me;
    // The slot first, so that the poke below reaches its writer.
    shared.ensure_peer(
        PeerInfo {
            id,
            name: name.clone(),
            addr: remote,
        },
        false,
        None,
    );
    if !higher {
        match shared.open_elsewhere(id, &conn) {
            None => shared.install(id, conn.clone()),
            Some(old) => {
                let s = Arc::clone(&shared);
                let c = conn.clone();
                shared.spawn(async move {
                    if s.still_answers(id, &old).await {
                        s.refuse_name(id, old.remote_address(), &c);
                    } else {
                        s.install(id, c);
                    }
                });
            }
        }
    }
    if higher {
        // A higher node only connects to probe: its discovery, as it
        // starts, or a dial request (it has a message for us and no
        // connection; issue 10). Either way this node dials it now (the
        // poke). It may also just have restarted, leaving the pair's
        // connection to its dead process. If the probe proves a new
        // process (another address or another certificate), that
        // connection is dropped now; if not, the poke finds out (a
        // stateless reset from a new process on the same address and key).
        shared.retire_stale(id, &conn);
        shared.poke(id);
    }
    peer::read_connection(shared, conn, id)
        .instrument(tracing::info_span!("peer", peer = %name))
        .await;
}

#[cfg(test)]
mod tests {
    use quinn::{ConnectionClose, ConnectionError, TransportErrorCode};

    use super::is_tls_refusal;

    #[test]
    fn only_tls_failures_blame_the_certificate() {
        // unknown_ca (48): this side refused the peer's certificate.
        let ours = ConnectionError::TransportError(TransportErrorCode::crypto(48).into());
        assert!(is_tls_refusal(&ours));
        // bad_certificate (42): the peer refused ours.
        let theirs = ConnectionError::ConnectionClosed(ConnectionClose {
            error_code: TransportErrorCode::crypto(42),
            frame_type: None,
            reason: bytes::Bytes::new(),
        });
        assert!(is_tls_refusal(&theirs));
        // A partition, a restarted peer, a broken peer: not TLS.
        assert!(!is_tls_refusal(&ConnectionError::TimedOut));
        assert!(!is_tls_refusal(&ConnectionError::Reset));
        let broken = ConnectionError::TransportError(TransportErrorCode::PROTOCOL_VIOLATION.into());
        assert!(!is_tls_refusal(&broken));
    }
}
