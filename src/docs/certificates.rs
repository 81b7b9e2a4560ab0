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
//! Certificates from `ClusterCa` carry rcgen's default validity (1975 to
//! 4096): they do not expire. Certificates from another CA do, and peers
//! check the validity period in every handshake.
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
//! Restarts are one way; `Node::reload_tls` (issue 12, item 5) swaps a
//! running node's [`TlsConfig`](crate::TlsConfig) without one: new
//! connections use the new certificate and trust the new bundle. There is
//! no revocation list: to shut a stolen node key out, rotate the CA.
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
