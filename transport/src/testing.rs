//! Test helpers, hidden from the docs: they send bytes a well-behaved
//! transport never sends, to prove the receiving side copes.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use peerlock_core::Error;
use quinn::crypto::rustls::QuicClientConfig;
use quinn::{ConnectionError, Endpoint};

use crate::tls::TlsConfig;

/// Dials `to` presenting `tls`'s certificate, claims `tls`'s name (the
/// preamble, on a connection of ALPN 3), writes `bytes` on a new stream,
/// and waits up to `wait` for the peer to close the connection. Returns
/// the peer's application close code, if it closed it.
///
/// # Errors
///
/// [`Error::Io`] or [`Error::Tls`] when the connection cannot be made (for
/// example, a certificate from another CA), [`Error::Tls`] too when the
/// peer refuses this certificate right after the handshake.
pub async fn send_raw(
    tls: &TlsConfig,
    to: SocketAddr,
    bytes: &[u8],
    wait: Duration,
) -> Result<Option<u64>, Error> {
    let preamble = crate::preamble::encode(tls.node_name());
    send_streams(tls, to, &[&preamble, bytes], wait).await
}

/// Like [`send_raw`], writing each of `streams` on a stream of its own, in
/// order, and no preamble of its own: the first stream is the preamble a
/// peer of ALPN 3 reads (or, if it is not one, a malformed one).
///
/// # Errors
///
/// As [`send_raw`].
pub async fn send_streams(
    tls: &TlsConfig,
    to: SocketAddr,
    streams: &[&[u8]],
    wait: Duration,
) -> Result<Option<u64>, Error> {
    let io = |e: &dyn std::fmt::Display| Error::Io(std::io::Error::other(e.to_string()));
    let bind: SocketAddr = if to.is_ipv4() {
        (Ipv4Addr::LOCALHOST, 0).into()
    } else {
        (Ipv6Addr::LOCALHOST, 0).into()
    };
    let client_tls = tls.client_config().map_err(|e| Error::Tls(e.to_string()))?;
    let crypto = QuicClientConfig::try_from(client_tls).map_err(|e| Error::Tls(e.to_string()))?;
    let mut endpoint = Endpoint::client(bind).map_err(|e| io(&e))?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let conn = endpoint
        .connect(to, crate::tls::SERVER_NAME)
        .map_err(|e| io(&e))?
        .await
        .map_err(|e| Error::Tls(format!("handshake with {to} failed: {e}")))?;
    for bytes in streams {
        // The peer may close the connection before the last stream is
        // written (it refused the first): its close code is the answer.
        let Ok(mut stream) = conn.open_uni().await else {
            break;
        };
        if stream.write_all(bytes).await.is_err() {
            break;
        }
        let _ = stream.finish();
    }
    let code = match tokio::time::timeout(wait, conn.closed()).await {
        Ok(ConnectionError::ApplicationClosed(c)) => Some(c.error_code.into_inner()),
        // In TLS 1.3 the client's handshake ends before the server has
        // checked the client's certificate: a refusal arrives as a TLS
        // alert (QUIC crypto error 0x100..=0x1ff) on a connection that
        // seemed made.
        Ok(ConnectionError::ConnectionClosed(c))
            if (0x100..=0x1ff).contains(&u64::from(c.error_code)) =>
        {
            endpoint.close(0u32.into(), b"done");
            return Err(Error::Tls(format!(
                "{to} refused this certificate after the handshake: {c}"
            )));
        }
        Ok(_) | Err(_) => None,
    };
    conn.close(0u32.into(), b"done");
    endpoint.close(0u32.into(), b"done");
    Ok(code)
}
