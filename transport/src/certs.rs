//! `ClusterCa`: a cluster's own certificate authority (rcgen), which issues
//! one certificate per node. The node name becomes the certificate's common
//! name (the node's identity). SANs are optional: peers check a certificate
//! against the cluster CA and read its common name, never match it against
//! the address they dialed, so certificates can be issued before the
//! node's address is known.

use peerlock_core::Error;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::tls::TlsConfig;

/// A cluster certificate authority: it signs every node's certificate, and
/// every node trusts it. Certificates from another CA are refused in both
/// directions. To rotate to a new CA, give every node the bundle of both
/// ([`ClusterCa::bundle_pem`], the new CA first, as data directories follow
/// the first CA's fingerprint; see [`TlsConfig::ca_fingerprint`]), then
/// re-issue the nodes from the new CA ([`ClusterCa::issue_node_trusting`]),
/// then drop the old CA from the bundles. Each step is a reload, without a
/// restart: `Node::reload_tls` in the `peerlock` crate.
///
/// ```
/// # // This crate's doc tests cannot name `peerlock` (it depends on this
/// # // crate); the paths shown are the ones users import (issue 12).
/// # mod peerlock {
/// #     pub mod certs { pub use peerlock_transport::ClusterCa; }
/// #     pub use peerlock_transport::TlsConfig;
/// #     pub use peerlock_core::Error;
/// # }
/// use peerlock::{certs::ClusterCa, TlsConfig};
///
/// let ca = ClusterCa::generate("orders")?;
/// // No SANs needed: the common name "node-a" is the identity.
/// let tls: TlsConfig = ca.issue_node("node-a", &[])?;
/// assert_eq!(tls.node_name(), "node-a");
///
/// // A rotation: trust both CAs while nodes move to the new one.
/// let new_ca = ClusterCa::generate("orders-2025")?;
/// let bundle = ClusterCa::bundle_pem(&[&new_ca, &ca]);
/// let tls_a = tls.with_ca_bundle(&bundle)?; // still the old CA's certificate
/// let tls_c = new_ca.issue_node_trusting("node-c", &[], &bundle)?;
/// assert_eq!(tls_c.ca_fingerprints(), tls_a.ca_fingerprints());
///
/// // Store the CA, reload it later to add nodes.
/// let again = ClusterCa::from_pem(&ca.ca_pem(), &ca.key_pem())?;
/// let (cert_pem, key_pem) = again.issue_node_pem("node-b", &["10.0.0.2"])?;
/// let tls_b = TlsConfig::from_pem(&ca.ca_pem(), &cert_pem, &key_pem)?;
/// assert_eq!(tls_b.node_name(), "node-b");
/// # Ok::<(), peerlock::Error>(())
/// ```
#[derive(Clone)]
pub struct ClusterCa {
    ca_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("key", &"<hidden>")
            .finish()
    }
}

fn cert_err(e: rcgen::Error) -> Error {
    Error::Tls(format!("certificate generation failed: {e}"))
}

/// Checks a node name: 1 to 64 bytes of `[A-Za-z0-9._-]`.
fn check_node_name(name: &str) -> Result<(), Error> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "node name {name:?} must be 1 to 64 characters of letters, digits, '.', '_' or '-'"
        )))
    }
}

impl ClusterCa {
    /// Generates a new CA named after the cluster.
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] if key generation fails.
    pub fn generate(cluster_name: &str) -> Result<Self, Error> {
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("peerlock CA {cluster_name}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).map_err(cert_err)?;
        Ok(Self {
            ca_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Reloads a CA saved with [`ClusterCa::ca_pem`] and [`ClusterCa::key_pem`].
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] when either PEM text does not parse.
    pub fn from_pem(ca_pem: &str, key_pem: &str) -> Result<Self, Error> {
        let ca = Self {
            ca_pem: ca_pem.to_owned(),
            key_pem: key_pem.to_owned(),
        };
        ca.issuer()?;
        Ok(ca)
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, Error> {
        let key =
            KeyPair::from_pem(&self.key_pem).map_err(|e| Error::Tls(format!("CA key: {e}")))?;
        Issuer::from_ca_cert_pem(&self.ca_pem, key)
            .map_err(|e| Error::Tls(format!("CA certificate: {e}")))
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The CA private key, PEM. Keep it secret: it can mint cluster members.
    pub fn key_pem(&self) -> String {
        self.key_pem.clone()
    }

    /// Issues a certificate for `node_name` with the given SANs (IP
    /// addresses or DNS names) and returns it with its key, both PEM.
    /// Each SAN that parses as an IP address is an IP SAN, any other a DNS
    /// name. `sans` may be empty: peers never check SANs (the common name
    /// is the identity), so they only matter to other tools. The
    /// certificate has both the serverAuth and clientAuth extended key
    /// usages, as every node both dials and accepts.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a node name that is not 1 to 64 characters of
    /// `[A-Za-z0-9._-]` or an unusable SAN; [`Error::Tls`] if signing fails.
    pub fn issue_node_pem(
        &self,
        node_name: &str,
        sans: &[&str],
    ) -> Result<(String, String), Error> {
        check_node_name(node_name)?;
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, node_name);
        params.distinguished_name = dn;
        params.subject_alt_names = sans
            .iter()
            .map(|s| match s.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => s.to_string().try_into().map(SanType::DnsName).map_err(|e| {
                    Error::Config(format!(
                        "SAN {s:?} is neither an IP address nor a DNS name: {e}"
                    ))
                }),
            })
            .collect::<Result<_, _>>()?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer()?).map_err(cert_err)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Issues a certificate for `node_name` and returns it ready to use.
    ///
    /// # Errors
    ///
    /// As [`ClusterCa::issue_node_pem`].
    pub fn issue_node(&self, node_name: &str, sans: &[&str]) -> Result<TlsConfig, Error> {
        let (cert, key) = self.issue_node_pem(node_name, sans)?;
        TlsConfig::from_pem(&self.ca_pem, &cert, &key)
    }

    /// Issues a certificate for `node_name` from this CA, trusting every
    /// CA of `ca_bundle` (PEM; see [`ClusterCa::bundle_pem`]) rather than
    /// this one alone: step 2 of a CA rotation, a node moved to the new CA
    /// while its peers may still present the old one's certificates.
    ///
    /// # Errors
    ///
    /// As [`ClusterCa::issue_node_pem`], and [`Error::Tls`] when the
    /// bundle does not hold this CA.
    pub fn issue_node_trusting(
        &self,
        node_name: &str,
        sans: &[&str],
        ca_bundle: &str,
    ) -> Result<TlsConfig, Error> {
        let (cert, key) = self.issue_node_pem(node_name, sans)?;
        TlsConfig::from_pem(ca_bundle, &cert, &key)
    }

    /// The certificates of `cas`, in the order given, as one PEM bundle:
    /// what every node trusts while the cluster moves from one CA to
    /// another. Put the new CA first (see [`TlsConfig::ca_fingerprint`]).
    pub fn bundle_pem(cas: &[&ClusterCa]) -> String {
        let mut out = String::new();
        for ca in cas {
            out.push_str(&ca.ca_pem);
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_reload_and_name() {
        let ca = ClusterCa::generate("t").unwrap();
        let tls = ca
            .issue_node("node-a", &["127.0.0.1", "node-a.internal"])
            .unwrap();
        assert_eq!(tls.node_name(), "node-a");
        let again = ClusterCa::from_pem(&ca.ca_pem(), &ca.key_pem()).unwrap();
        let (cert, key) = again.issue_node_pem("node-b", &["::1"]).unwrap();
        let tls = TlsConfig::from_pem(&ca.ca_pem(), &cert, &key).unwrap();
        assert_eq!(tls.node_name(), "node-b");
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        let ca = ClusterCa::generate("t").unwrap();
        assert!(matches!(ca.issue_node("", &[]), Err(Error::Config(_))));
        assert!(matches!(ca.issue_node("a b", &[]), Err(Error::Config(_))));
        let (cert, _) = ca.issue_node_pem("n1", &["127.0.0.1"]).unwrap();
        let (_, other_key) = ca.issue_node_pem("n2", &["127.0.0.1"]).unwrap();
        assert!(matches!(
            TlsConfig::from_pem(&ca.ca_pem(), &cert, &other_key),
            Err(Error::Tls(_))
        ));
        assert!(matches!(
            TlsConfig::from_pem("junk", &cert, &other_key),
            Err(Error::Tls(_))
        ));
        assert!(matches!(
            TlsConfig::from_pem(&ca.ca_pem(), "", &other_key),
            Err(Error::Tls(_))
        ));
        assert!(ClusterCa::from_pem("junk", "junk").is_err());
        assert!(matches!(
            TlsConfig::from_pem_files("/nonexistent/ca.pem", "/x", "/y"),
            Err(Error::Io(_))
        ));
    }

    #[test]
    fn a_bundle_of_several_cas_trusts_each_and_a_node_moves_between_them() {
        let (old, new, other) = (
            ClusterCa::generate("old").unwrap(),
            ClusterCa::generate("new").unwrap(),
            ClusterCa::generate("other").unwrap(),
        );
        let both = ClusterCa::bundle_pem(&[&old, &new]);
        assert_eq!(both.matches("BEGIN CERTIFICATE").count(), 2);
        // Step 1: the old certificate, both CAs trusted.
        let a = old.issue_node("node-a", &[]).unwrap();
        let a1 = a.with_ca_bundle(&both).unwrap();
        assert_eq!((a1.ca_count(), a1.node_name()), (2, "node-a"));
        assert_eq!(a1.ca_fingerprint(), a.ca_fingerprint());
        // Step 2: a certificate from the new CA, both trusted.
        let a2 = new.issue_node_trusting("node-a", &[], &both).unwrap();
        assert_eq!(a2.ca_fingerprints(), a1.ca_fingerprints());
        // Step 3: the old CA dropped; refused while the certificate is
        // still the old CA's.
        let a3 = a2.with_ca_bundle(&new.ca_pem()).unwrap();
        assert_eq!(a3.ca_count(), 1);
        assert!(matches!(
            a1.with_ca_bundle(&new.ca_pem()),
            Err(Error::Tls(_))
        ));
        assert!(matches!(
            other.issue_node_trusting("node-a", &[], &both),
            Err(Error::Tls(_))
        ));
        assert!(matches!(a1.with_ca_bundle("junk"), Err(Error::Tls(_))));
    }
}
