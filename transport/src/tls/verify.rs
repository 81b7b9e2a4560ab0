//! The dialer's check of the node it reached: the certificate chains to a
//! trusted cluster CA, and nothing about the address is required of it.
//!
//! Standard TLS clients also require the certificate to name the host they
//! dialed (a DNS or IP SAN). peerlock dials pod and VM addresses that are
//! not known when certificates are issued (cert-manager, SPIFFE, a shared
//! Secret), so that rule would force IP SANs nobody can predict. The
//! identity is the certificate's common name instead, which the transport
//! reads after the handshake and on which every frame is checked (see the
//! crate docs). Everything else webpki checks stays: the signature chain to
//! one of the trusted CAs, the validity period, the serverAuth extended key
//! usage, and the handshake signature proving the peer holds the key.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The TLS server name every dial uses. Only a syntactically valid DNS name
/// is needed: [`ClusterServerVerifier`] ignores it, and the listening side
/// presents its one certificate whatever name is asked for.
pub(crate) const SERVER_NAME: &str = "peerlock";

/// Verifies a server certificate against the cluster's CAs, ignoring the
/// server name (see the module docs).
#[derive(Debug)]
pub(crate) struct ClusterServerVerifier {
    roots: Arc<RootCertStore>,
    algs: WebPkiSupportedAlgorithms,
}

impl ClusterServerVerifier {
    pub(crate) fn new(roots: Arc<RootCertStore>, algs: WebPkiSupportedAlgorithms) -> Self {
        Self { roots, algs }
    }
}

impl ServerCertVerifier for ClusterServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // What `WebPkiServerVerifier` does, minus `verify_server_name`:
        // chain to a root, validity at `now`, serverAuth usage. No
        // revocation lists, as before (the cluster CA publishes none).
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algs.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
