//! `ClusterCa`: a cluster's own certificate authority (rcgen), which issues
//! one certificate per node. The node name becomes the certificate's common
//! name (the node's identity). SANs are optional: peers check a certificate
//! against the cluster CA and read its common name, never match it against
//! the address they dialed, so certificates can be issued before the
//! node's address is known.
//!
//! Validity (issue 12): rcgen's default period runs from 1975 to 4096, so
//! a certificate never came near the expiry warning (`tls/expiry.rs`) and a
//! leaked node key stayed good for ever (there is no revocation list). The
//! periods follow kubeadm's: node certificates for one year
//! ([`NODE_CERT_VALIDITY`], kubeadm's `CertificateValidityPeriod`), the CA
//! for ten ([`CA_CERT_VALIDITY`], kubeadm's `CACertificateValidityPeriod`).
//! One year rather than cert-manager's 90 days because `ClusterCa` renews
//! nothing by itself: an operator (or a yearly job) re-issues, and a
//! 30-day warning window leaves eleven months of quiet between renewals.
//! Every certificate starts [`CERT_BACKDATE`] (one hour) before it is
//! issued, so that a node whose clock runs behind the issuing machine's
//! (kubeadm backdates five minutes for the same reason, its
//! `CertificateBackdate`) does not refuse a fresh certificate as "not yet
//! valid"; certificates are often issued on an operator's machine, whose
//! clock is less well kept than a server's.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
/// Node certificates are valid for [`NODE_CERT_VALIDITY`] (one year) unless
/// [`ClusterCa::with_node_validity`] says otherwise, and never beyond the
/// CA's own end; a CA from [`ClusterCa::generate`] for [`CA_CERT_VALIDITY`]
/// (ten years). Both start [`CERT_BACKDATE`] before they are issued.
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
///
/// // Validity: a year by default, or as chosen.
/// use std::time::{Duration, SystemTime};
/// let year = tls_b.not_after().unwrap().duration_since(SystemTime::now()).unwrap();
/// assert!(year > Duration::from_secs(364 * 86_400));
/// let short = again.with_node_validity(Duration::from_secs(90 * 86_400));
/// let tls_d = short.issue_node("node-d", &[])?;
/// assert!(tls_d.not_after() < tls_b.not_after());
/// # Ok::<(), peerlock::Error>(())
/// ```
#[derive(Clone)]
pub struct ClusterCa {
    ca_pem: String,
    key_pem: String,
    /// What signs: the CA's name, key identifier and key, built once. From
    /// [`ClusterCa::generate`] it comes from the parameters the CA was made
    /// with; only [`ClusterCa::from_pem`] parses a certificate for it (rcgen
    /// does that with `x509-parser`, which an application that never loads
    /// a saved CA does not link: issue 12, item 9).
    issuer: Arc<Issuer<'static, KeyPair>>,
    node_validity: Duration,
}

/// How long a node certificate from [`ClusterCa`] is valid by default: one
/// year (365 days), as kubeadm's node and component certificates. Choose
/// another with [`ClusterCa::with_node_validity`].
pub const NODE_CERT_VALIDITY: Duration = Duration::from_secs(365 * 86_400);

/// How long a CA from [`ClusterCa::generate`] is valid: ten years (3 650
/// days), as kubeadm's CA. Choose another with
/// [`ClusterCa::generate_valid_for`].
pub const CA_CERT_VALIDITY: Duration = Duration::from_secs(3650 * 86_400);

/// How long before its issue a [`ClusterCa`] certificate starts to be
/// valid: one hour, for nodes whose clock runs behind the issuing
/// machine's.
pub const CERT_BACKDATE: Duration = Duration::from_secs(3600);

/// The last second X.509 can name (9999-12-31T23:59:59Z, RFC 5280
/// §4.1.2.5), in seconds since the Unix epoch.
const LAST_X509_SECOND: u64 = 253_402_300_799;

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("key", &"<hidden>")
            .field("node_validity", &self.node_validity)
            .finish()
    }
}

/// The validity period `[now - CERT_BACKDATE, now + validity]`.
///
/// # Errors
///
/// [`Error::Config`] for a zero validity or one that ends after the last
/// date X.509 can name.
fn period(now: SystemTime, validity: Duration) -> Result<(SystemTime, SystemTime), Error> {
    if validity.is_zero() {
        return Err(Error::Config(
            "a certificate's validity must be longer than zero".into(),
        ));
    }
    let last = UNIX_EPOCH + Duration::from_secs(LAST_X509_SECOND);
    let end = now.checked_add(validity).filter(|end| *end <= last);
    let Some(end) = end else {
        return Err(Error::Config(format!(
            "a certificate valid for {} days would end after the year 9999",
            validity.as_secs() / 86_400
        )));
    };
    // Before 1970 only on a clock that is badly wrong; start then.
    let start = now.checked_sub(CERT_BACKDATE).unwrap_or(UNIX_EPOCH);
    Ok((start.max(UNIX_EPOCH), end))
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
    /// Generates a new CA named after the cluster, valid for
    /// [`CA_CERT_VALIDITY`] (ten years) from now, starting
    /// [`CERT_BACKDATE`] ago.
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] if key generation fails.
    pub fn generate(cluster_name: &str) -> Result<Self, Error> {
        Self::generate_valid_for(cluster_name, CA_CERT_VALIDITY)
    }

    /// Generates a new CA named after the cluster, valid for `validity`
    /// from now. Node certificates it issues end no later than it does.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a zero `validity` or one that ends after the
    /// year 9999; [`Error::Tls`] if key generation fails.
    pub fn generate_valid_for(cluster_name: &str, validity: Duration) -> Result<Self, Error> {
        let (start, end) = period(SystemTime::now(), validity)?;
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("peerlock CA {cluster_name}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = start.into();
        params.not_after = end.into();
        let cert = params.self_signed(&key).map_err(cert_err)?;
        Ok(Self {
            ca_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Arc::new(Issuer::new(params, key)),
            node_validity: NODE_CERT_VALIDITY,
        })
    }

    /// Reloads a CA saved with [`ClusterCa::ca_pem`] and [`ClusterCa::key_pem`].
    /// A CA made before certificates had a default validity (valid until
    /// 4096) loads too; the node certificates it issues from now on are
    /// valid for [`NODE_CERT_VALIDITY`].
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] when either PEM text does not parse.
    pub fn from_pem(ca_pem: &str, key_pem: &str) -> Result<Self, Error> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| Error::Tls(format!("CA key: {e}")))?;
        let issuer = Issuer::from_ca_cert_pem(ca_pem, key)
            .map_err(|e| Error::Tls(format!("CA certificate: {e}")))?;
        Ok(Self {
            ca_pem: ca_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            issuer: Arc::new(issuer),
            node_validity: NODE_CERT_VALIDITY,
        })
    }

    /// The same CA, issuing node certificates valid for `validity` from
    /// their issue (default [`NODE_CERT_VALIDITY`], one year), or until the
    /// CA itself ends if that comes first. Not stored in the PEM texts: set
    /// it again after [`ClusterCa::from_pem`]. A zero validity or one past
    /// the year 9999 is refused when a certificate is issued.
    #[must_use]
    pub fn with_node_validity(mut self, validity: Duration) -> Self {
        self.node_validity = validity;
        self
    }

    /// How long the node certificates this CA issues are valid (see
    /// [`ClusterCa::with_node_validity`]).
    pub fn node_validity(&self) -> Duration {
        self.node_validity
    }

    /// When the CA certificate expires; `None` if its date cannot be read.
    /// Every node certificate it signed stops being accepted then: create
    /// the next CA and rotate to it (see the type's docs) well before.
    pub fn not_after(&self) -> Option<SystemTime> {
        self.ca_not_after().ok()
    }

    fn ca_not_after(&self) -> Result<SystemTime, Error> {
        let certs = crate::tls::parse_certs(&self.ca_pem, "the CA certificate")?;
        let secs = certs
            .first()
            .and_then(|c| crate::tls::expiry::not_after_unix(c))
            .ok_or_else(|| Error::Tls("the CA certificate's validity cannot be read".into()))?;
        let at = match u64::try_from(secs) {
            Ok(s) => UNIX_EPOCH.checked_add(Duration::from_secs(s)),
            Err(_) => UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs())),
        };
        at.ok_or_else(|| Error::Tls("the CA certificate's validity is out of range".into()))
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
    /// usages, as every node both dials and accepts. It is valid from
    /// [`CERT_BACKDATE`] ago for [`ClusterCa::node_validity`] (one year by
    /// default), or until the CA ends if that comes first.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a node name that is not 1 to 64 characters of
    /// `[A-Za-z0-9._-]`, an unusable SAN, or a node validity that is zero
    /// or ends after the year 9999; [`Error::Tls`] if signing fails or the
    /// CA has expired.
    pub fn issue_node_pem(
        &self,
        node_name: &str,
        sans: &[&str],
    ) -> Result<(String, String), Error> {
        check_node_name(node_name)?;
        let now = SystemTime::now();
        let (start, end) = period(now, self.node_validity)?;
        let ca_end = self.ca_not_after()?;
        if ca_end <= now {
            return Err(Error::Tls(
                "the CA has expired: create a new one and rotate to it".into(),
            ));
        }
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
        params.not_before = start.into();
        params.not_after = end.min(ca_end).into();
        let cert = params.signed_by(&key, &*self.issuer).map_err(cert_err)?;
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
mod tests;
