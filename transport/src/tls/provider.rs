//! The crypto rustls runs on: ring, cut to what peers use.
//!
//! rustls's `ring::default_provider()` carries every cipher suite and key
//! exchange group ring has. Peerlock nodes only talk to each other over
//! QUIC, TLS 1.3 only, where both AES-GCM suites always come first in
//! rustls's order (AES-256, then AES-128, which QUIC's Initial packets
//! need, RFC 9001 §5.3) and X25519 is the first key exchange: the
//! ChaCha20-Poly1305 suite and the P-384 key exchange were never chosen
//! between two peerlock nodes, and cost about 60 KiB in every binary
//! (issue 12, item 9). Building the provider from its parts instead of
//! calling `default_provider()` keeps them out of the link; the suites
//! and groups kept are in rustls's order, so peers of any version agree
//! on what they agreed on before.
//!
//! Certificate signatures are where users' own PKIs differ (cert-manager
//! issues RSA keys by default, rcgen ECDSA P-256), so every signature
//! algorithm rustls accepts with ring stays, in rustls's order.

use std::sync::Arc;

use rustls::crypto::ring::{cipher_suite, kx_group, sign};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::crypto::{CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom};
use rustls::sign::SigningKey;
use rustls::SignatureScheme;
use rustls_pki_types::PrivateKeyDer;
use webpki::ring as alg;
use zeroize::Zeroizing;

/// The provider every configuration of this crate is built with.
pub(super) fn provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        // rustls's order, so peers agree on AES-256-GCM as before.
        cipher_suites: vec![
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_AES_128_GCM_SHA256,
        ],
        // X25519 is what two peerlock nodes agree on; P-256 stays for a
        // peer that offers only it (its arithmetic is linked for ECDSA
        // certificates in any case).
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1],
        signature_verification_algorithms: SIGNATURES,
        secure_random: &Ring,
        key_provider: &Ring,
    })
}

/// The handshake signature algorithms of [`provider`].
pub(super) fn verify_algs() -> WebPkiSupportedAlgorithms {
    SIGNATURES
}

/// The randomness and private-key loading of rustls's ring provider,
/// which are not public: the same two calls, the key's copy wiped when
/// dropped as there.
#[derive(Debug)]
struct Ring;

impl SecureRandom for Ring {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), buf)
            .map_err(|_| GetRandomFailed)
    }
}

impl KeyProvider for Ring {
    fn load_private_key(
        &self,
        key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        sign::any_supported_type(&Zeroizing::new(key_der))
    }
}

/// Every signature algorithm webpki verifies with ring, mapped to the TLS
/// 1.3 signature schemes as rustls's ring provider maps them.
static SIGNATURES: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        alg::ECDSA_P256_SHA256,
        alg::ECDSA_P256_SHA384,
        alg::ECDSA_P384_SHA256,
        alg::ECDSA_P384_SHA384,
        alg::ED25519,
        alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        alg::RSA_PKCS1_2048_8192_SHA256,
        alg::RSA_PKCS1_2048_8192_SHA384,
        alg::RSA_PKCS1_2048_8192_SHA512,
        alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
        alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
        alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    ],
    mapping: &[
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256],
        ),
        (SignatureScheme::ED25519, &[alg::ED25519]),
        (
            SignatureScheme::RSA_PSS_SHA512,
            &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA384,
            &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA256,
            &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA512,
            &[alg::RSA_PKCS1_2048_8192_SHA512],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA384,
            &[alg::RSA_PKCS1_2048_8192_SHA384],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA256,
            &[alg::RSA_PKCS1_2048_8192_SHA256],
        ),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519};
    use rustls_pki_types::PrivatePkcs8KeyDer;

    #[test]
    fn keys_of_every_kind_ring_signs_with_load() {
        for alg in [
            &PKCS_ECDSA_P256_SHA256,
            &PKCS_ECDSA_P384_SHA384,
            &PKCS_ED25519,
        ] {
            let key = KeyPair::generate_for(alg).expect("ring generates this kind");
            let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
            assert!(Ring.load_private_key(der).is_ok(), "{alg:?}");
        }
        let junk = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(vec![0x30, 0x03, 1, 2, 3]));
        assert!(Ring.load_private_key(junk).is_err());
    }

    #[test]
    fn every_tls13_scheme_of_users_certificates_is_verified() {
        let schemes = SIGNATURES.supported_schemes();
        for scheme in [
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::ECDSA_NISTP384_SHA384,
            SignatureScheme::ED25519,
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PSS_SHA384,
            SignatureScheme::RSA_PSS_SHA512,
        ] {
            assert!(schemes.contains(&scheme), "{scheme:?}");
        }
    }

    #[test]
    fn the_suites_are_rustls_order_with_quic_initial_suite_and_randomness_fills() {
        let p = provider();
        let suites: Vec<_> = p.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(
            suites,
            [
                rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
                rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
            ]
        );
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        p.secure_random.fill(&mut a).expect("fill");
        p.secure_random.fill(&mut b).expect("fill");
        assert_ne!(a, b);
    }
}
