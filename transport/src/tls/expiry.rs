//! Certificate expiry: what is checked, the metrics, and the log lines
//! (issue 12, item 5: "certificates that will expire within a configurable
//! window are logged and counted").
//!
//! An expired certificate fails every handshake at once, in both
//! directions (webpki checks the validity period; see `verify.rs`), so a
//! node whose certificate lapses is cut off from its peers as soon as its
//! connections are re-made. Operators need the warning well before: etcd
//! leaves this to external monitoring, Consul's agent logs a warning ahead
//! of time; here the node itself reports, through the `metrics` facade and
//! `tracing`, when its material will lapse:
//!
//! - every certificate the node uses (its own chain and every CA of its
//!   bundle) that expires within the warning window (default
//!   [`CERT_EXPIRY_WARNING`], `NodeBuilder::cert_expiry_warning` in the
//!   `peerlock` crate) is logged at `warn`: at start, at each
//!   [`crate::QuicTransport::reload_tls`], and then at most once a day
//!   while it stays so;
//! - [`CERT_EXPIRY_SECONDS`] and [`CERTS_EXPIRING`] are set at each
//!   check: at start, at each reload, and every [`CHECK_EVERY`].
//!
//! The not-after date is read as the common name is (`x509.rs`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;

use super::TlsConfig;

pub use peerlock_core::metrics::{
    TLS_CERTS_EXPIRING as CERTS_EXPIRING, TLS_CERT_EXPIRY_SECONDS as CERT_EXPIRY_SECONDS,
};

/// The default warning window: certificates expiring within 30 days are
/// logged and counted.
pub const CERT_EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);

/// How often the expiry is checked while the node runs.
pub const CHECK_EVERY: Duration = Duration::from_secs(3600);

/// The longest a certificate in the window goes without a `warn` line.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(86_400);

/// A certificate's not-after time, in seconds since the Unix epoch; `None`
/// when it does not parse (see `x509.rs` for dates before 1970).
pub(crate) fn not_after_unix(der: &[u8]) -> Option<i64> {
    super::x509::validity_unix(der).map(|(_, not_after)| not_after)
}

/// Seconds since the epoch of `t`, negative before it.
fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// One certificate in or past the warning window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Expiring {
    /// Which one: "node certificate", "chain certificate 1", "CA 2 of the bundle".
    pub(crate) what: String,
    /// Its common name, if it has one.
    pub(crate) subject: Option<String>,
    /// Seconds left (negative: expired that long ago).
    pub(crate) seconds_left: i64,
}

/// What one check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Report {
    /// Seconds until the node's own certificate expires; `None` if its
    /// date does not parse (it was checked valid when loaded).
    pub(crate) own_seconds_left: Option<i64>,
    /// Every certificate within the window, own chain first.
    pub(crate) expiring: Vec<Expiring>,
}

/// Checks `tls`'s certificates against `window` at `now`. Pure.
pub(crate) fn check(tls: &TlsConfig, window: Duration, now: SystemTime) -> Report {
    let now = unix(now);
    let window = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
    let left = |c: &CertificateDer<'_>| not_after_unix(c).map(|t| t.saturating_sub(now));
    let mut expiring = Vec::new();
    let mut note = |what: String, c: &CertificateDer<'_>| {
        if let Some(s) = left(c).filter(|s| *s <= window) {
            expiring.push(Expiring {
                what,
                subject: super::common_name(c),
                seconds_left: s,
            });
        }
    };
    for (i, c) in tls.chain.iter().enumerate() {
        let what = match i {
            0 => "node certificate".to_owned(),
            i => format!("chain certificate {i}"),
        };
        note(what, c);
    }
    for (i, c) in tls.cas.iter().enumerate() {
        note(format!("CA {} of the bundle", i + 1), c);
    }
    Report {
        own_seconds_left: tls.chain.first().and_then(left),
        expiring,
    }
}

/// Sets the gauges from `report`, and logs each certificate in the window
/// at `warn` when `warn` is true. Returns whether anything was in it.
pub(crate) fn publish(node: &str, report: &Report, warn: bool) -> bool {
    if let Some(s) = report.own_seconds_left {
        // f64 holds every plausible number of seconds exactly (< 2^53).
        metrics::gauge!(CERT_EXPIRY_SECONDS).set(s as f64);
    }
    metrics::gauge!(CERTS_EXPIRING).set(report.expiring.len() as f64);
    if warn {
        for e in &report.expiring {
            let subject = e.subject.as_deref().unwrap_or("?");
            if e.seconds_left < 0 {
                tracing::warn!(%node, certificate = %e.what, %subject, expired_seconds_ago = -e.seconds_left, "a TLS certificate has expired: peers refuse it at the next handshake; issue a new one and reload it (Node::reload_tls)");
            } else {
                tracing::warn!(%node, certificate = %e.what, %subject, seconds_left = e.seconds_left, days_left = e.seconds_left / 86_400, "a TLS certificate expires soon: issue a new one and reload it (Node::reload_tls)");
            }
        }
    }
    !report.expiring.is_empty()
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};

    use super::*;
    use crate::ClusterCa;

    /// A node certificate of `ca` valid until `not_after`.
    fn node_until(ca: &ClusterCa, name: &str, not_after: SystemTime) -> TlsConfig {
        let issuer =
            Issuer::from_ca_cert_pem(&ca.ca_pem(), KeyPair::from_pem(&ca.key_pem()).unwrap())
                .unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = (SystemTime::now() - Duration::from_secs(86_400)).into();
        params.not_after = not_after.into();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        TlsConfig::from_pem(&ca.ca_pem(), &cert.pem(), &key.serialize_pem()).unwrap()
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn a_certificate_inside_the_window_is_reported_and_one_outside_is_not() {
        let ca = ClusterCa::generate("t").unwrap();
        let now = SystemTime::now();
        let soon = node_until(&ca, "node-a", now + 10 * DAY);
        let r = check(&soon, 30 * DAY, now);
        let own = r.own_seconds_left.unwrap();
        assert!((10 * 86_400 - 5..=10 * 86_400).contains(&own), "{own}");
        assert_eq!(r.expiring.len(), 1, "{r:?}");
        assert_eq!(r.expiring[0].what, "node certificate");
        assert_eq!(r.expiring[0].subject.as_deref(), Some("node-a"));
        // The same certificate with a shorter window: nothing to report.
        let r = check(&soon, 7 * DAY, now);
        assert!(r.expiring.is_empty(), "{r:?}");
        assert!(!publish("node-a", &r, true));
        // A default node certificate (a year) is outside the default window.
        let long = ca.issue_node("node-b", &[]).unwrap();
        let r = check(&long, CERT_EXPIRY_WARNING, now);
        assert!(r.expiring.is_empty(), "{r:?}");
        let left = r.own_seconds_left.unwrap();
        assert!((364 * 86_400..=365 * 86_400).contains(&left), "{left}");
        // Issued for ten days: inside it.
        let short = ca.with_node_validity(10 * DAY);
        let r = check(
            &short.issue_node("node-c", &[]).unwrap(),
            CERT_EXPIRY_WARNING,
            now,
        );
        assert_eq!(r.expiring.len(), 1, "{r:?}");
    }

    #[test]
    fn an_expired_certificate_counts_with_negative_time_left() {
        let ca = ClusterCa::generate("t").unwrap();
        let now = SystemTime::now();
        let tls = node_until(&ca, "node-a", now + DAY);
        // Checked two days later: expired a day ago.
        let r = check(&tls, Duration::ZERO, now + 2 * DAY);
        let left = r.own_seconds_left.unwrap();
        assert!((-86_400 - 5..=-86_400 + 5).contains(&left), "{left}");
        assert_eq!(r.expiring.len(), 1);
        assert!(publish("node-a", &r, true));
    }

    #[test]
    fn a_ca_of_the_bundle_inside_the_window_is_reported() {
        let ca = ClusterCa::generate("t").unwrap();
        let tls = ca.issue_node("node-a", &[]).unwrap();
        // Eleven years on, everything has expired: the node certificate
        // (a year) and the one CA (ten years), both named.
        let later = SystemTime::now() + 11 * 365 * DAY;
        let r = check(&tls, DAY, later);
        let whats: Vec<&str> = r.expiring.iter().map(|e| e.what.as_str()).collect();
        assert_eq!(whats, ["node certificate", "CA 1 of the bundle"]);
        assert_eq!(r.expiring[1].subject.as_deref(), Some("peerlock CA t"));
    }

    #[test]
    fn not_after_reads_the_date() {
        let ca = ClusterCa::generate("t").unwrap();
        let at = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let tls = node_until(&ca, "n", at);
        let leaf = tls.chain.first().unwrap();
        assert_eq!(not_after_unix(leaf), Some(2_000_000_000));
        assert_eq!(not_after_unix(b"junk"), None);
    }
}
