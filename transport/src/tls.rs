//! `TlsConfig`: the cluster CA, this node's certificate chain and key, and
//! the rustls configurations built from them.
//!
//! Mutual TLS always: a node accepts only peers whose certificate the
//! cluster CA signed, and presents its own. When dialing, the peer's IP
//! address is the server name, so node certificates carry IP SANs and are
//! checked with standard webpki verification. The node's identity is its
//! certificate's common name. One crypto provider, ring, is passed
//! explicitly, so no process-wide default is needed.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use peerlock_core::Error;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

/// ALPN protocol id of peerlock's wire format.
pub const ALPN: &[u8] = b"peerlock/1";

/// Mutual TLS material for one node.
pub struct TlsConfig {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    name: String,
}

impl Clone for TlsConfig {
    fn clone(&self) -> Self {
        Self {
            ca: self.ca.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            name: self.name.clone(),
        }
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("node_name", &self.name)
            .field("key", &"<hidden>")
            .finish()
    }
}

fn tls_err(msg: impl Into<String>) -> Error {
    Error::Tls(msg.into())
}

fn parse_certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(format!("{what}: not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(tls_err(format!("{what}: no certificate found (expected a PEM \"CERTIFICATE\" block)")));
    }
    Ok(certs)
}

/// The common name of a DER certificate: a peer's identity.
pub(crate) fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_owned();
    (!cn.is_empty()).then_some(cn)
}

impl TlsConfig {
    /// Loads the cluster CA certificate, this node's certificate (chain) and
    /// its private key from PEM text.
    pub fn from_pem(ca: &str, cert: &str, key: &str) -> Result<Self, Error> {
        let ca = parse_certs(ca, "CA certificate")?
            .into_iter()
            .next()
            .ok_or_else(|| tls_err("CA certificate: none found"))?;
        let chain = parse_certs(cert, "node certificate")?;
        let key = rustls_pemfile::private_key(&mut key.as_bytes())
            .map_err(|e| tls_err(format!("node key: not valid PEM: {e}")))?
            .ok_or_else(|| tls_err("node key: no private key found (expected a PEM \"PRIVATE KEY\" block)"))?;
        let leaf = chain.first().ok_or_else(|| tls_err("node certificate: empty chain"))?;
        let name = common_name(leaf).ok_or_else(|| {
            tls_err("node certificate has no common name; issue it with ClusterCa::issue_node(name, ..)")
        })?;
        let cfg = Self { ca, chain, key, name };
        // Build both configurations once now, so a key that does not match
        // its certificate, or a CA rustls refuses, fails here and not later.
        cfg.server_config()?;
        cfg.client_config()?;
        Ok(cfg)
    }

    /// Like [`TlsConfig::from_pem`], reading the three files.
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
        Self::from_pem(&read(ca)?, &read(cert)?, &read(key)?).map_err(|e| match e {
            Error::Tls(m) => Error::Tls(format!("{m} (files: {}, {}, {})", ca.display(), cert.display(), key.display())),
            other => other,
        })
    }

    /// The node's name: its certificate's common name, and its identity.
    pub fn node_name(&self) -> &str {
        &self.name
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, Error> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca.clone())
            .map_err(|e| tls_err(format!("CA certificate refused: {e}")))?;
        Ok(Arc::new(roots))
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// The server side: requires a client certificate signed by the CA.
    pub(crate) fn server_config(&self) -> Result<rustls::ServerConfig, Error> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots()?, Self::provider())
            .build()
            .map_err(|e| tls_err(format!("client verifier: {e}")))?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(Self::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| tls_err(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| tls_err(format!("node certificate and key do not fit together: {e}")))?;
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        Ok(cfg)
    }

    /// The client side: trusts only the CA and presents this node's certificate.
    pub(crate) fn client_config(&self) -> Result<rustls::ClientConfig, Error> {
        let mut cfg = rustls::ClientConfig::builder_with_provider(Self::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| tls_err(e.to_string()))?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| tls_err(format!("node certificate and key do not fit together: {e}")))?;
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        Ok(cfg)
    }
}
