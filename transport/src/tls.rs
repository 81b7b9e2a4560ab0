//! `TlsConfig`: the cluster CA certificates, this node's certificate chain
//! and key, and the rustls configurations built from them.
//!
//! Mutual TLS always: a node accepts only peers whose certificate chains to
//! a trusted cluster CA, and presents its own. Both directions run webpki's
//! chain verification (signature, validity period, key usage); the dialer
//! does not require the certificate to name the address it dialed, because
//! pod and VM addresses are not known when certificates are issued
//! (cert-manager, SPIFFE). The node's identity is its certificate's common
//! name, read after the handshake (see [`verify`]). Node certificates need
//! no SANs at all, but both the serverAuth and clientAuth extended key
//! usages (every node dials and accepts), or no extended key usage.
//!
//! The CA input is a PEM bundle: every certificate in it is a trusted root
//! on both sides, so a cluster can move to a new CA without a new cluster:
//! every node first trusts old and new CA, then nodes are re-issued from
//! the new one, one by one, and finally the old CA leaves the bundles;
//! without a restart through `Node::reload_tls` of the `peerlock` crate
//! (issue 12), which documents the procedure. The bundle's first
//! certificate is the one [`TlsConfig::ca_fingerprint`] names, which ties
//! data directories to their cluster: a directory made under any CA of the
//! bundle is accepted and recorded under the first at each start (and each
//! reload), so put the new CA first while rotating, and every directory
//! has moved to it before the old CA leaves the bundle.
//!
//! One crypto provider, ring, is passed explicitly, so no process-wide
//! default is needed; [`provider`] says which of its parts are in it.

pub(crate) mod expiry;
mod provider;
mod verify;
pub(crate) mod x509;

pub(crate) use verify::SERVER_NAME;
pub(crate) use x509::common_name;

use provider::{provider, verify_algs};

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use peerlock_core::Error;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

/// ALPN protocol id of peerlock's wire format, version 1: frames only.
pub const ALPN: &[u8] = b"peerlock/1";
/// ALPN protocol id of version 2: version 1 plus bulk streams (one large
/// Raft message per stream; see the crate docs). Both sides offer both ids,
/// 2 first, so a node of this version and an older one agree on 1.
pub const ALPN_V2: &[u8] = b"peerlock/2";
/// ALPN protocol id of version 3: version 2, and each side first sends the
/// member name it claims (see `preamble.rs`), so nodes sharing one
/// certificate are told apart. Offered first; a node of version 2 agrees
/// on 2 and is known by its certificate's name.
pub const ALPN_V3: &[u8] = b"peerlock/3";
/// ALPN protocol id of version 4: version 3's bytes on the wire, and
/// connections on demand (issue 10): the lower id closes a connection that
/// carried no message for [`crate::IDLE_CLOSE`], and the higher id asks
/// for one with a probe when it has something to send (see `writer.rs`).
/// Offered first; with a node of version 3 the pair's connection is kept
/// open as before, since that node would never ask for it again.
pub const ALPN_V4: &[u8] = b"peerlock/4";

/// The ids offered, most preferred first.
fn alpn_ids() -> Vec<Vec<u8>> {
    vec![
        ALPN_V4.to_vec(),
        ALPN_V3.to_vec(),
        ALPN_V2.to_vec(),
        ALPN.to_vec(),
    ]
}

/// Mutual TLS material for one node: the trusted cluster CA certificates,
/// the node's certificate and its key. The certificate's common name is the
/// node's name and identity; its SANs are not checked (see the module docs).
///
/// `Debug` never shows the key. Cloning copies the material (it is small).
pub struct TlsConfig {
    /// The trusted CAs, in bundle order; never empty.
    cas: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// The certificate's common name.
    name: String,
    /// The member name claimed instead of `name` (a shared certificate).
    member: Option<String>,
}

impl Clone for TlsConfig {
    fn clone(&self) -> Self {
        Self {
            cas: self.cas.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            name: self.name.clone(),
            member: self.member.clone(),
        }
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("node_name", &self.node_name())
            .field("common_name", &self.name)
            .field("key", &"<hidden>")
            .finish()
    }
}

/// 64-bit FNV-1a of a certificate's DER.
fn fingerprint(cert: &CertificateDer<'_>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in cert.as_ref() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn tls_err(msg: impl Into<String>) -> Error {
    Error::Tls(msg.into())
}

/// What the three inputs are called in error messages: file names when
/// they came from files, descriptions otherwise.
struct Sources<'a> {
    ca: &'a str,
    cert: &'a str,
    key: &'a str,
}

pub(crate) fn parse_certs(pem: &str, source: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(format!("{source} is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(tls_err(format!(
            "no certificate in {source} (expected a PEM \"BEGIN CERTIFICATE\" block)"
        )));
    }
    Ok(certs)
}

impl TlsConfig {
    /// Loads the cluster CA certificates, this node's certificate (chain)
    /// and its private key from PEM text.
    ///
    /// `ca` may hold several certificates (a PEM bundle): all are trusted,
    /// for accepting and for dialing, so old and new CA can both be trusted
    /// while a cluster rotates its CA. Put the new CA first (see
    /// [`TlsConfig::ca_fingerprint`]).
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] when a PEM block is missing or invalid, the node
    /// certificate has no common name, the key does not match the
    /// certificate, or the certificate is not signed by one of the CAs or
    /// lacks the serverAuth or clientAuth extended key usage.
    pub fn from_pem(ca: &str, cert: &str, key: &str) -> Result<Self, Error> {
        Self::load(
            ca,
            cert,
            key,
            &Sources {
                ca: "the CA certificate",
                cert: "the node certificate",
                key: "the node key",
            },
        )
    }

    /// Like [`TlsConfig::from_pem`], reading the three PEM files.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file when one cannot be read, and the
    /// errors of [`TlsConfig::from_pem`], naming the file at fault.
    pub fn from_pem_files(
        ca: impl AsRef<Path>,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| {
                Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("cannot read {}: {e}", p.display()),
                ))
            })
        };
        let (ca, cert, key) = (ca.as_ref(), cert.as_ref(), key.as_ref());
        let (ca_name, cert_name, key_name) = (
            ca.display().to_string(),
            cert.display().to_string(),
            key.display().to_string(),
        );
        Self::load(
            &read(ca)?,
            &read(cert)?,
            &read(key)?,
            &Sources {
                ca: &ca_name,
                cert: &cert_name,
                key: &key_name,
            },
        )
    }

    fn load(ca: &str, cert: &str, key: &str, src: &Sources<'_>) -> Result<Self, Error> {
        // `parse_certs` refuses an empty bundle.
        let cas = parse_certs(ca, src.ca)?;
        let chain = parse_certs(cert, src.cert)?;
        let key_der = rustls_pemfile::private_key(&mut key.as_bytes())
            .map_err(|e| tls_err(format!("{} is not valid PEM: {e}", src.key)))?
            .ok_or_else(|| {
                tls_err(format!(
                    "no private key in {} (expected a PEM \"BEGIN PRIVATE KEY\" block)",
                    src.key
                ))
            })?;
        let leaf = chain
            .first()
            .cloned()
            .ok_or_else(|| tls_err(format!("no certificate in {}", src.cert)))?;
        let name = common_name(&leaf).ok_or_else(|| {
            tls_err(format!(
                "the certificate in {} has no common name (the node's name); issue it with ClusterCa::issue_node",
                src.cert
            ))
        })?;
        let cfg = Self {
            cas,
            chain,
            key: key_der,
            name,
            member: None,
        };
        cfg.verify_own(src)?;
        Ok(cfg)
    }

    /// Checks the node's certificate against the bundle and its key, as
    /// peers will in every handshake.
    fn verify_own(&self, src: &Sources<'_>) -> Result<(), Error> {
        let cfg = self;
        let leaf = cfg
            .chain
            .first()
            .cloned()
            .ok_or_else(|| tls_err(format!("no certificate in {}", src.cert)))?;
        // Check now what peers will check in every handshake, so a
        // mismatched file fails at start-up with a clear message.
        let roots = cfg
            .roots()
            .map_err(|e| tls_err(format!("{} cannot be used as a CA: {e}", src.ca)))?;
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| tls_err(format!("{} cannot be used as a CA: {e}", src.ca)))?;
        let intermediates = cfg.chain.get(1..).unwrap_or_default();
        verifier
            .verify_client_cert(&leaf, intermediates, UnixTime::now())
            .map_err(|e| {
                tls_err(format!(
                    "the certificate in {} is not valid for the CA in {}: {e}; issue it with this cluster's CA",
                    src.cert, src.ca
                ))
            })?;
        // The same certificate serves accepted connections: dialers check
        // it as a server certificate (serverAuth usage).
        let roots = cfg
            .roots()
            .map_err(|e| tls_err(format!("{} cannot be used as a CA: {e}", src.ca)))?;
        let name = ServerName::try_from(SERVER_NAME)
            .map_err(|e| tls_err(format!("invalid TLS server name: {e}")))?;
        verify::ClusterServerVerifier::new(roots, verify_algs())
            .verify_server_cert(&leaf, intermediates, &name, &[], UnixTime::now())
            .map_err(|e| {
                tls_err(format!(
                    "the certificate in {} cannot serve peers: {e}; node certificates need both the serverAuth and clientAuth extended key usages",
                    src.cert
                ))
            })?;
        cfg.server_config().map_err(|e| {
            tls_err(format!(
                "the key in {} does not match the certificate in {}: {e}",
                src.key, src.cert
            ))
        })?;
        cfg.client_config().map_err(|e| {
            tls_err(format!(
                "the key in {} does not match the certificate in {}: {e}",
                src.key, src.cert
            ))
        })?;
        Ok(())
    }

    /// The node's name, and its identity among its peers: the member name
    /// set with [`TlsConfig::with_member_name`], else its certificate's
    /// common name.
    pub fn node_name(&self) -> &str {
        self.member.as_deref().unwrap_or(&self.name)
    }

    /// The certificate's common name.
    pub fn common_name(&self) -> &str {
        &self.name
    }

    /// Whether this node claims a name other than its certificate's: its
    /// certificate is shared, and names in its cluster are claims, not
    /// proofs (see the crate docs, "Identity").
    pub fn name_is_claimed(&self) -> bool {
        self.node_name() != self.name
    }

    /// This node's member name when its certificate is shared by several
    /// nodes (one Kubernetes Secret for a Deployment): the node presents
    /// `name` on every connection (the name preamble of ALPN `peerlock/3`)
    /// and is known by it. Peers that present this same certificate take
    /// the name as given; a node with a certificate of its own refuses a
    /// name that is not its peer's certificate's. Names are then claims:
    /// any holder of the shared certificate can pose as any member.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `name` is not 1 to 256 bytes (the rule for
    /// member names).
    pub fn with_member_name(mut self, name: &str) -> Result<Self, Error> {
        let member = peerlock_core::NodeName(name.to_owned());
        if peerlock_core::machine::validate_member(&member, None).is_err() {
            return Err(Error::Config(format!(
                "the member name {name:?} is {} bytes; a member name is 1 to {} bytes",
                name.len(),
                peerlock_core::machine::MAX_MEMBER_NAME
            )));
        }
        self.member = Some(member.0);
        Ok(self)
    }

    /// `N` (at most 32) secret bytes for `label`: HMAC-SHA256 keyed with
    /// this node's private key. Every process of this node (with this key)
    /// derives the same bytes; nobody without the key can. Different labels
    /// give independent secrets, and none reveals the key.
    pub(crate) fn derive_secret<const N: usize>(&self, label: &[u8]) -> [u8; N] {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.key.secret_der());
        let tag = ring::hmac::sign(&key, label);
        let mut out = [0u8; N];
        for (o, t) in out.iter_mut().zip(tag.as_ref()) {
            *o = *t;
        }
        out
    }

    /// A fingerprint of the cluster CA (64-bit FNV-1a of its DER): what
    /// makes a data directory belong to one cluster. For a CA bundle it is
    /// the fingerprint of the bundle's *first* certificate, so a single-CA
    /// configuration keeps the value it always had. A data directory made
    /// under any CA of the bundle is accepted, and recorded under this one
    /// at each start (and each reload): while rotating to a new CA, put it
    /// first in every node's bundle, so that the old one can leave the
    /// bundle later. See [`TlsConfig::ca_fingerprints`] for all of them.
    pub fn ca_fingerprint(&self) -> u64 {
        // `cas` is never empty (`load` refuses an empty bundle); 0 is
        // returned for the impossible case instead of a panic.
        self.cas.first().map_or(0, |c| fingerprint(c))
    }

    /// The fingerprints of every trusted CA, in bundle order (the first is
    /// [`TlsConfig::ca_fingerprint`]). A data directory recorded under any
    /// of them belongs to a cluster this node still trusts.
    pub fn ca_fingerprints(&self) -> Vec<u64> {
        self.cas.iter().map(|c| fingerprint(c)).collect()
    }

    /// When this node's own certificate (the leaf of its chain) expires;
    /// `None` if its date cannot be read (it was valid when loaded). See
    /// [`crate::CERT_EXPIRY_SECONDS`] for the metric.
    pub fn not_after(&self) -> Option<std::time::SystemTime> {
        let secs = expiry::not_after_unix(self.chain.first()?)?;
        let secs = u64::try_from(secs).ok()?;
        std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs))
    }

    /// This node's own certificate (the leaf of its chain), DER.
    pub fn certificate_der(&self) -> &[u8] {
        self.chain.first().map_or(&[], |c| c.as_ref())
    }

    /// How many CA certificates the trusted bundle holds.
    pub fn ca_count(&self) -> usize {
        self.cas.len()
    }

    /// The same node certificate and key, trusting the CAs of `ca_bundle`
    /// (PEM, one or more certificates) instead: steps 1 and 3 of a CA
    /// rotation (see `Node::reload_tls` in the `peerlock` crate) change
    /// only the bundle. The member name, if set, is kept.
    ///
    /// # Errors
    ///
    /// As [`TlsConfig::from_pem`]: in particular [`Error::Tls`] when this
    /// node's certificate does not chain to any CA of the new bundle (a
    /// CA dropped before the node was re-issued from the new one).
    pub fn with_ca_bundle(&self, ca_bundle: &str) -> Result<Self, Error> {
        let cas = parse_certs(ca_bundle, "the CA bundle")?;
        let cfg = Self {
            cas,
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            name: self.name.clone(),
            member: self.member.clone(),
        };
        cfg.verify_own(&Sources {
            ca: "the CA bundle",
            cert: "the node certificate",
            key: "the node key",
        })?;
        Ok(cfg)
    }

    /// Every CA of the bundle as a trusted root.
    fn roots(&self) -> Result<Arc<RootCertStore>, rustls::Error> {
        let mut roots = RootCertStore::empty();
        for ca in &self.cas {
            roots.add(ca.clone())?;
        }
        Ok(Arc::new(roots))
    }

    /// The server side: requires a client certificate signed by a trusted CA.
    pub(crate) fn server_config(&self) -> Result<rustls::ServerConfig, rustls::Error> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots()?, provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = alpn_ids();
        Ok(cfg)
    }

    /// The client side: trusts only the cluster CAs, whatever server name
    /// was dialed (see [`verify`]), and presents this node's certificate.
    pub(crate) fn client_config(&self) -> Result<rustls::ClientConfig, rustls::Error> {
        let verifier = verify::ClusterServerVerifier::new(self.roots()?, verify_algs());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        // Every dial asks for the same server name, so a session cache keyed
        // by it would pool all peers' tickets and offer each to peers that
        // cannot use it. Connections are long-lived: a full handshake each
        // time costs nothing, and a CA dropped from the bundle stops being
        // trusted at the next connection, not when a ticket expires.
        cfg.resumption = rustls::client::Resumption::disabled();
        cfg.alpn_protocols = alpn_ids();
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests;
