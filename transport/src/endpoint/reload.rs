//! Certificate rotation without a restart (issue 12, item 5): the TLS
//! configuration the endpoint uses for new connections, swapped while it
//! runs, and the expiry checks on it.
//!
//! quinn takes a server configuration per endpoint, replaceable at any time
//! (`Endpoint::set_server_config`: later handshakes use it), and a client
//! configuration per dial (`Endpoint::connect_with`). So a reload builds
//! both from the new [`TlsConfig`], installs the server side in the
//! endpoint and keeps the client side here for the next dials. Connections
//! already up were authenticated when they were made and stay up, as etcd
//! and Consul keep theirs on a certificate reload; they are re-made (with
//! the new material) when they end: closed as idle after
//! [`crate::IDLE_CLOSE`] (issue 10), a peer restarts, or the network drops
//! them. Nothing closes them for the rotation's sake.
//!
//! What a reload cannot change: the node's name (its identity; refused
//! with [`Error::TlsIdentityChanged`]) and the keys of QUIC stateless
//! resets and connection IDs, derived from the private key the endpoint
//! started with (see `endpoint_config`): they only matter to a process that
//! restarts, which derives them again from the key it then has.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::tls::expiry;

use super::*;

/// The TLS side of [`Shared`]: the configuration new connections use.
pub(crate) struct TlsState {
    config: Mutex<TlsConfig>,
    client: Mutex<quinn::ClientConfig>,
    /// The expiry checks (see `tls/expiry.rs`); `None` until asked for.
    expiry: Mutex<Option<ExpiryWatch>>,
    expiry_task: AtomicBool,
}

/// The expiry checks' state.
struct ExpiryWatch {
    window: Duration,
    /// When a certificate in the window was last logged.
    last_warn: Option<tokio::time::Instant>,
}

/// quinn's server and client configurations from `tls`.
pub(super) fn quic_configs(
    tls: &TlsConfig,
) -> Result<(quinn::ServerConfig, quinn::ClientConfig), Error> {
    let server_tls = tls
        .server_config()
        .map_err(|e| Error::Tls(format!("server configuration: {e}")))?;
    let client_tls = tls
        .client_config()
        .map_err(|e| Error::Tls(format!("client configuration: {e}")))?;
    let server_crypto = QuicServerConfig::try_from(server_tls)
        .map_err(|e| Error::Tls(format!("server configuration unusable for QUIC: {e}")))?;
    let client_crypto = QuicClientConfig::try_from(client_tls)
        .map_err(|e| Error::Tls(format!("client configuration unusable for QUIC: {e}")))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
    server.transport_config(transport_config());
    let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
    client.transport_config(transport_config());
    Ok((server, client))
}

impl TlsState {
    pub(super) fn new(config: TlsConfig, client: quinn::ClientConfig) -> Self {
        Self {
            config: Mutex::new(config),
            client: Mutex::new(client),
            expiry: Mutex::new(None),
            expiry_task: AtomicBool::new(false),
        }
    }

    /// The client configuration for the next dial.
    pub(crate) fn client(&self) -> quinn::ClientConfig {
        self.client.lock().clone()
    }
}

impl Shared {
    /// Refuses `tls` if it would change this node's identity: its name,
    /// or its certificate's common name (which tells a shared certificate's
    /// holders apart from other nodes; see `preamble.rs`).
    fn check_identity(&self, tls: &TlsConfig) -> Result<(), Error> {
        if tls.node_name() != self.name || tls.common_name() != self.cn {
            let offered = if tls.node_name() == tls.common_name() {
                tls.node_name().to_owned()
            } else {
                format!("{} (certificate {:?})", tls.node_name(), tls.common_name())
            };
            let running = if self.name == self.cn {
                self.name.clone()
            } else {
                format!("{} (certificate {:?})", self.name, self.cn)
            };
            return Err(Error::TlsIdentityChanged { running, offered });
        }
        Ok(())
    }

    /// Runs one expiry check, if they were asked for; logs at `warn` when
    /// `warn_now`, or when the last warning is a day old.
    fn check_expiry(&self, warn_now: bool) {
        let mut watch = self.tls.expiry.lock();
        let Some(w) = watch.as_mut() else {
            return;
        };
        let now = tokio::time::Instant::now();
        let due = w
            .last_warn
            .is_none_or(|t| now.duration_since(t) >= expiry::WARN_EVERY);
        let report = expiry::check(&self.tls.config.lock(), w.window, SystemTime::now());
        if expiry::publish(&self.name, &report, warn_now || due) && (warn_now || due) {
            w.last_warn = Some(now);
        }
    }
}

impl QuicTransport {
    /// Checks `tls` as [`QuicTransport::reload_tls`] would, and changes
    /// nothing.
    ///
    /// # Errors
    ///
    /// As [`QuicTransport::reload_tls`].
    pub fn check_tls(&self, tls: &TlsConfig) -> Result<(), Error> {
        if self.shared.is_closed() {
            return Err(Error::Shutdown);
        }
        self.shared.check_identity(tls)?;
        quic_configs(tls)?;
        self.check_peers_trusted(tls)
    }

    /// Refuses a bundle that shares no CA with the running one and trusts
    /// none of the certificates the connected peers presented: such a
    /// reload (a wrong CA file, say) would cut this node off as soon as its
    /// open connections were re-made, with handshakes refused on every
    /// node. The rotation of `ClusterCa` always keeps a CA in common
    /// between two steps, so it never meets this check. A bundle that
    /// trusts some peers and not others is let through with a warning
    /// naming them: they are cut off from this node at their next
    /// handshake. (Found by a user-style test, issue 12.)
    fn check_peers_trusted(&self, tls: &TlsConfig) -> Result<(), Error> {
        let running = self.tls_config().ca_fingerprints();
        if tls.ca_fingerprints().iter().any(|f| running.contains(f)) {
            return Ok(());
        }
        let peers = self.shared.peer_certificates();
        let untrusted: Vec<&str> = peers
            .iter()
            .filter(|(_, der)| !tls.trusts(der))
            .map(|(name, _)| name.as_str())
            .collect();
        if !peers.is_empty() && untrusted.len() == peers.len() {
            return Err(Error::Tls(format!(
                "the new CA bundle shares no CA with the running one and trusts none of the connected peers' certificates ({}): this node would be cut off from them; nothing was reloaded. To move to a new CA, trust both first (ClusterCa::bundle_pem, the new CA first), move every node's certificate, then drop the old CA",
                untrusted.join(", ")
            )));
        }
        if !untrusted.is_empty() {
            tracing::warn!(
                node = %self.shared.name,
                peers = ?untrusted,
                "the reloaded CA bundle does not trust these peers' certificates: they are refused at their next handshake with this node"
            );
        }
        Ok(())
    }

    /// Makes every connection made from now on, accepted or dialed, use
    /// `tls`: its certificate, key and trusted CAs. Connections already up
    /// stay up (they were authenticated when made; see the module docs of
    /// `endpoint/reload.rs`) and are re-made with `tls` when they end.
    /// Runs an expiry check at once if [`QuicTransport::watch_cert_expiry`]
    /// was called.
    ///
    /// # Errors
    ///
    /// [`Error::TlsIdentityChanged`] when `tls` names another member (or
    /// another certificate common name) than this node's: a rotation
    /// cannot rename a member. [`Error::Tls`] when the material is
    /// unusable, or when the new bundle shares no CA with the running one
    /// and trusts none of the connected peers' certificates. [`Error::Shutdown`] once the transport is closed. Nothing
    /// is changed on an error.
    pub fn reload_tls(&self, tls: &TlsConfig) -> Result<(), Error> {
        self.check_tls(tls)?;
        let (server, client) = quic_configs(tls)?;
        {
            // One lock order (config, then client) so two reloads at once
            // leave a matching pair.
            let mut config = self.shared.tls.config.lock();
            let mut current = self.shared.tls.client.lock();
            self.shared.endpoint.set_server_config(Some(server));
            *current = client;
            *config = tls.clone();
        }
        tracing::info!(
            node = %self.shared.name,
            cas = tls.ca_count(),
            days_left = ?tls
                .not_after()
                .and_then(|t| t.duration_since(SystemTime::now()).ok())
                .map(|d| d.as_secs() / 86_400),
            "TLS configuration reloaded: new connections use it, existing ones stay up"
        );
        self.shared.check_expiry(true);
        Ok(())
    }

    /// The TLS configuration new connections use now.
    pub fn tls_config(&self) -> TlsConfig {
        self.shared.tls.config.lock().clone()
    }

    /// Checks the certificates' expiry now and every
    /// hour until the transport
    /// closes, and at each reload: sets [`crate::CERT_EXPIRY_SECONDS`] and
    /// [`crate::CERTS_EXPIRING`], and logs each certificate that expires
    /// within `window` at `warn` (now, at each reload, and at most once a
    /// day otherwise). Calling it again changes the window.
    pub fn watch_cert_expiry(&self, window: Duration) {
        {
            let mut watch = self.shared.tls.expiry.lock();
            *watch = Some(ExpiryWatch {
                window,
                last_warn: None,
            });
        }
        self.shared.check_expiry(true);
        if self.shared.tls.expiry_task.swap(true, Ordering::SeqCst) {
            return;
        }
        let shared = Arc::downgrade(&self.shared);
        self.shared.spawn(async move {
            let mut every = tokio::time::interval(expiry::CHECK_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                shared.check_expiry(false);
            }
        });
    }

    /// Closes every open connection to a peer now, as if the network had
    /// dropped it; pairs that are in use are re-made at once (with the TLS
    /// configuration of now). Returns how many were closed. For tests
    /// that must see a new handshake.
    #[doc(hidden)]
    pub fn close_connections(&self) -> usize {
        self.shared.close_connections()
    }

    /// The name and leaf certificate (DER) each open connection's peer
    /// presented, sorted by name. For tests that check which certificate
    /// a handshake used.
    #[doc(hidden)]
    pub fn peer_certificates(&self) -> Vec<(String, Vec<u8>)> {
        self.shared.peer_certificates()
    }
}
