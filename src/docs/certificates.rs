//! Certificates: the cluster CA, node certificates, where the CA key lives,
//! rotation.
//!
//! # The model
//!
//! Nodes talk QUIC with mutual TLS. One **cluster CA** signs one
//! certificate per node; a node's identity is its certificate's common
//! name (CN), proven in the handshake, never the address it is reached at.
//! So node certificates need no IP SANs, and can be issued before the
//! node's address is known (a pod's address, say). A node accepts a peer
//! whose chain leads to a CA in its CA file, and nothing else: there is no
//! password, token or allow-list besides the CA.
//!
//! Three files on each node, loaded with
//! [`TlsConfig::from_pem_files`](crate::TlsConfig::from_pem_files):
//!
//! | file | what | who may read it |
//! |---|---|---|
//! | `ca.pem` | the CA certificate (or a bundle of several CAs) | everyone; the same on every node |
//! | `node-a.pem` | this node's certificate, CN `node-a` | everyone |
//! | `node-a.key` | this node's private key | this node only (mode 0600) |
//!
//! The **CA key** (`ca.key`) is not among them. Whoever holds it can mint
//! a cluster member, which can then take and release any lock. Keep it
//! where certificates are issued (an operator's machine, a secret manager,
//! a CI job with a protected secret), never on the nodes.
//!
//! # Create the CA once
//!
//! Create the CA **once, ahead of the first deployment**, and give its
//! certificate to every instance. Never let instances create a CA when
//! they start and find none: three instances starting at the same moment
//! would each create their own, trust only their own, and refuse each
//! other in every handshake ([`Error::Tls`](crate::Error::Tls) in the
//! logs, `start()` timing out). A CA made later by mistake cannot join
//! either: each data directory records the fingerprint of the CA it was
//! created under and refuses another at start.
//!
//! The repository's `certs` example does it from a shell; it reuses
//! `ca.pem` and `ca.key` when the directory already holds them, so the
//! same command adds nodes later:
//!
//! ```text
//! cargo run --example certs -- ./certs node-a node-b node-c
//! cargo run --example certs -- ./certs node-d          # later: same CA
//! ```
//!
//! Or with a one-off program of your own (a `build`-time tool, an admin
//! subcommand of your service). Create, store, load back, issue, store:
//!
//! ```rust
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use peerlock::certs::ClusterCa;
//! use peerlock::TlsConfig;
//!
//! let dir = tempfile::tempdir()?; // stands for your secrets directory
//! let ca_pem = dir.path().join("ca.pem");
//! let ca_key = dir.path().join("ca.key");
//!
//! // Once: create the CA and store both halves.
//! let ca = ClusterCa::generate("orders")?;
//! std::fs::write(&ca_pem, ca.ca_pem())?;
//! std::fs::write(&ca_key, ca.key_pem())?; // mode 0600, then move it off the machine
//!
//! // Any later day: load the CA back to issue more node certificates.
//! let ca = ClusterCa::from_pem(
//!     &std::fs::read_to_string(&ca_pem)?,
//!     &std::fs::read_to_string(&ca_key)?,
//! )?;
//! for name in ["node-a", "node-b", "node-c"] {
//!     // SANs are optional (peers check the CN); add DNS names or IPs if
//!     // other tools will look at the certificate.
//!     let (cert, key) = ca.issue_node_pem(name, &[])?;
//!     std::fs::write(dir.path().join(format!("{name}.pem")), cert)?;
//!     std::fs::write(dir.path().join(format!("{name}.key")), key)?;
//! }
//!
//! // On the node: the CA certificate (not its key) and its own pair.
//! let tls = TlsConfig::from_pem_files(
//!     &ca_pem,
//!     dir.path().join("node-b.pem"),
//!     dir.path().join("node-b.key"),
//! )?;
//! assert_eq!(tls.node_name(), "node-b");
//! # Ok(()) }
//! ```
//!
//! Node names are 1 to 64 characters of letters, digits, `.`, `_` and
//! `-`. [`ClusterCa::issue_node`](crate::certs::ClusterCa::issue_node)
//! returns a [`TlsConfig`](crate::TlsConfig) directly, for tests and
//! demonstrations that keep everything in memory.
//!
//! # Validity and renewal
//!
//! | certificate | valid for | constant | another period |
//! |---|---|---|---|
//! | node | 1 year | [`NODE_CERT_VALIDITY`](crate::certs::NODE_CERT_VALIDITY) | [`ClusterCa::with_node_validity`](crate::certs::ClusterCa::with_node_validity) |
//! | CA | 10 years | [`CA_CERT_VALIDITY`](crate::certs::CA_CERT_VALIDITY) | [`ClusterCa::generate_valid_for`](crate::certs::ClusterCa::generate_valid_for) |
//!
//! These are kubeadm's periods for a cluster's own certificates. A year
//! bounds what a leaked node key is worth (there is no revocation list)
//! while keeping renewal a yearly chore; if your issuance is automated, a
//! shorter period is better (cert-manager defaults to 90 days). A node
//! certificate never outlives its CA: it ends with the CA if the CA ends
//! first. Both start an hour before they are issued
//! ([`CERT_BACKDATE`](crate::certs::CERT_BACKDATE)), so a node whose clock
//! runs behind the issuing machine's accepts a fresh certificate.
//!
//! Peers check the validity period in every handshake: once a node's
//! certificate has expired, its peers refuse it as soon as its connections
//! are re-made, and it is cut off. So each node watches its own material:
//! every certificate it uses (its own, and each CA of its bundle) that
//! expires within 30 days is logged at `warn` (at start, at each reload,
//! then daily) and counted in `peerlock_tls_certs_expiring`;
//! `peerlock_tls_cert_expiry_seconds` holds the time its own certificate
//! has left. [`NodeBuilder::cert_expiry_warning`](crate::NodeBuilder::cert_expiry_warning)
//! changes the window; [`operating`](super::operating) has the alerts.
//!
//! **When to renew.** A node certificate: when the warning fires at the
//! latest; better, on a schedule that never lets it fire (a job that
//! re-issues every node's certificate at eleven months). The CA: start a
//! CA rotation (below) a year before it ends
//! ([`ClusterCa::not_after`](crate::certs::ClusterCa::not_after)), so the
//! node certificates issued from the new CA carry the cluster past it.
//!
//! **How to renew a node certificate.** Issue a new one for the same
//! name from the same CA, ship the files, and hand them to the running
//! node with [`Node::reload_tls`](crate::Node::reload_tls): new
//! connections present the new certificate, open ones stay up, nothing
//! restarts. (Example `node` reloads its PEM files when they change.) A
//! node restarted with the new files works just as well.
//!
//! ```rust
//! # fn main() -> Result<(), peerlock::Error> {
//! use std::time::{Duration, SystemTime};
//!
//! use peerlock::certs::ClusterCa;
//! use peerlock::{Node, TlsConfig};
//!
//! let ca = ClusterCa::generate("orders")?;
//! # let (ca_pem, ca_key) = (ca.ca_pem(), ca.key_pem());
//! // Where the CA key lives: load it back, issue, store the PEM texts.
//! let ca = ClusterCa::from_pem(&ca_pem, &ca_key)?;
//! let (cert, key) = ca.issue_node_pem("node-a", &[])?;
//! let tls = TlsConfig::from_pem(&ca_pem, &cert, &key)?;
//! let left = tls.not_after().unwrap().duration_since(SystemTime::now()).unwrap();
//! assert!(left > Duration::from_secs(364 * 86_400)); // a year
//!
//! // Another period, for every certificate this value issues:
//! let quarterly = ca.clone().with_node_validity(Duration::from_secs(90 * 86_400));
//! let short = quarterly.issue_node("node-a", &[])?;
//! assert!(short.not_after() < tls.not_after());
//!
//! // On the node, with the files shipped: swap them in, no restart.
//! fn renew(node: &Node) -> Result<(), peerlock::Error> {
//!     node.reload_tls(TlsConfig::from_pem_files("ca.pem", "node-a.pem", "node-a.key")?)
//! }
//! # let _ = renew;
//! # Ok(()) }
//! ```
//!
//! # Another CA (cert-manager, Vault, SPIFFE)
//!
//! Any CA works if its node certificates have a CN (the node's name) and
//! both the `serverAuth` and `clientAuth` extended key usages (or no
//! extended key usage at all), since every node both dials and accepts.
//! Point the node at the CA certificate, its certificate and its key, as
//! above. An intermediate CA works when the node's certificate file holds
//! the chain.
//!
//! # One certificate for every instance
//!
//! A Kubernetes Deployment mounts one Secret into every pod. Issue one
//! certificate (say CN `orders`) and give each instance its own member
//! name with [`NodeBuilder::name`](crate::NodeBuilder::name) (the pod
//! name). This is weaker, and documented so: any holder of the certificate
//! can pose as any member, so the cluster never replaces a silent voter
//! early because a newcomer took its name. One cluster uses either kind,
//! not both.
//!
//! # Rotation
//!
//! The CA file may hold several CA certificates, all trusted. To move to a
//! new CA without rebuilding the cluster:
//!
//! 1. Create the new CA. Put **a bundle of the new and the old CA
//!    certificates, new first**, on every node, and restart them one at a
//!    time (or reload them, below). Every node now trusts both.
//! 2. Issue every node a certificate from the new CA and deploy it the same
//!    way.
//! 3. Remove the old CA from the bundle everywhere.
//!
//! A data directory is accepted under any CA of the bundle and records the
//! first from then on, which is why the new CA goes first. Rotating a
//! single node's certificate under the same CA is step 2 alone.
//!
//! Restarts are one way; [`Node::reload_tls`](crate::Node::reload_tls)
//! swaps a running node's [`TlsConfig`](crate::TlsConfig) without one: new
//! connections use the new certificate and trust the new bundle. There is
//! no revocation list: to shut a stolen node key out, rotate the CA (or
//! wait out the stolen certificate's year).
//!
//! Rotate the CA **a year before it ends** (ten years after
//! [`ClusterCa::generate`](crate::certs::ClusterCa::generate); see
//! [`ClusterCa::not_after`](crate::certs::ClusterCa::not_after)), and
//! whenever its key may have leaked. Each node warns when a CA of its
//! bundle enters the expiry window, as for its own certificate, but 30
//! days is short for three steps on every node.
//!
//! ```rust
//! # fn main() -> Result<(), peerlock::Error> {
//! use peerlock::certs::ClusterCa;
//! use peerlock::TlsConfig;
//!
//! let old = ClusterCa::generate("orders")?;
//! let new = ClusterCa::generate("orders-2027")?;
//! let bundle = format!("{}{}", new.ca_pem(), old.ca_pem()); // new first
//!
//! // Step 1: the node keeps its old certificate and trusts both CAs.
//! let (cert, key) = old.issue_node_pem("node-a", &[])?;
//! let step1 = TlsConfig::from_pem(&bundle, &cert, &key)?;
//! // Step 2: a certificate from the new CA, still trusting both.
//! let (cert, key) = new.issue_node_pem("node-a", &[])?;
//! let step2 = TlsConfig::from_pem(&bundle, &cert, &key)?;
//! assert_eq!(step1.node_name(), step2.node_name()); // the same member
//! // Step 3: the new CA alone.
//! let step3 = TlsConfig::from_pem(&new.ca_pem(), &cert, &key)?;
//! assert_eq!(step3.ca_fingerprint(), step2.ca_fingerprint());
//! # Ok(()) }
//! ```
//!
//! Kubernetes Secrets and systemd credentials: see
//! [`deploying`](super::deploying).
