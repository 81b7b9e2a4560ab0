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

impl super::TlsConfig {
    /// Whether a peer presenting the leaf certificate `der` would pass this
    /// configuration's handshake check now (chained to a CA of the bundle,
    /// valid, serverAuth usage: what a dial checks). Used to refuse a
    /// reload that would trust none of the running peers (issue 12).
    pub(crate) fn trusts(&self, der: &[u8]) -> bool {
        let (Ok(roots), Ok(name)) = (self.roots(), ServerName::try_from(SERVER_NAME)) else {
            return false;
        };
        let leaf = CertificateDer::from(der.to_vec());
        ClusterServerVerifier::new(roots, super::verify_algs())
            .verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
    use rustls::{CertificateError, Error};

    use super::*;
    use crate::ClusterCa;

    fn der(pem: &str) -> CertificateDer<'static> {
        let mut bytes = pem.as_bytes();
        let cert = rustls_pemfile::certs(&mut bytes).next();
        cert.unwrap().unwrap()
    }

    fn verifier(cas: &[&ClusterCa]) -> ClusterServerVerifier {
        let mut roots = RootCertStore::empty();
        for ca in cas {
            roots.add(der(&ca.ca_pem())).unwrap();
        }
        let algs = super::super::verify_algs();
        ClusterServerVerifier::new(Arc::new(roots), algs)
    }

    fn check(
        v: &ClusterServerVerifier,
        cert: &CertificateDer<'_>,
        name: &str,
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let name = ServerName::try_from(name.to_owned()).unwrap();
        v.verify_server_cert(cert, &[], &name, &[], now)
    }

    fn at_year(year: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs((year - 1970) * 365 * 86_400))
    }

    #[test]
    fn any_name_is_accepted_for_a_cluster_certificate_without_sans() {
        let ca = ClusterCa::generate("t").unwrap();
        let (pem, _) = ca.issue_node_pem("node-a", &[]).unwrap();
        let (v, cert) = (verifier(&[&ca]), der(&pem));
        for name in [SERVER_NAME, "10.1.2.3", "elsewhere.example"] {
            assert!(check(&v, &cert, name, UnixTime::now()).is_ok(), "{name}");
        }
    }

    #[test]
    fn chain_validity_and_usage_are_still_checked() {
        let ca = ClusterCa::generate("t").unwrap();
        let other = ClusterCa::generate("other").unwrap();
        let (pem, _) = ca.issue_node_pem("node-a", &["127.0.0.1"]).unwrap();
        let (foreign, _) = other.issue_node_pem("node-a", &["127.0.0.1"]).unwrap();
        let v = verifier(&[&ca]);
        let (cert, foreign) = (der(&pem), der(&foreign));
        assert!(matches!(
            check(&v, &foreign, SERVER_NAME, UnixTime::now()),
            Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
        ));
        // rcgen issues for 1975..4096.
        assert!(matches!(
            check(&v, &cert, SERVER_NAME, at_year(5000)),
            Err(Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            ))
        ));
        assert!(matches!(
            check(&v, &cert, SERVER_NAME, at_year(1971)),
            Err(Error::InvalidCertificate(
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }
            ))
        ));
        // A client-only certificate cannot serve.
        let issuer =
            Issuer::from_ca_cert_pem(&ca.ca_pem(), KeyPair::from_pem(&ca.key_pem()).unwrap())
                .unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "node-c");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_only = params
            .signed_by(&KeyPair::generate().unwrap(), &issuer)
            .unwrap();
        assert!(check(&v, client_only.der(), SERVER_NAME, UnixTime::now()).is_err());
    }

    #[test]
    fn every_ca_of_a_bundle_is_trusted() {
        let (ca1, ca2, ca3) = (
            ClusterCa::generate("one").unwrap(),
            ClusterCa::generate("two").unwrap(),
            ClusterCa::generate("three").unwrap(),
        );
        let v = verifier(&[&ca1, &ca2]);
        for ca in [&ca1, &ca2] {
            let cert = der(&ca.issue_node_pem("node-a", &[]).unwrap().0);
            assert!(check(&v, &cert, SERVER_NAME, UnixTime::now()).is_ok());
        }
        let cert = der(&ca3.issue_node_pem("node-a", &[]).unwrap().0);
        assert!(check(&v, &cert, SERVER_NAME, UnixTime::now()).is_err());
    }

    #[test]
    fn the_fixed_server_name_is_a_dns_name() {
        assert!(matches!(
            ServerName::try_from(SERVER_NAME),
            Ok(ServerName::DnsName(_))
        ));
    }
}
