//! Deploying: systemd, Kubernetes, certificates.
//!
//! peerlock is a library: it is deployed as your application is, one node
//! per instance. What the platform must give each instance:
//!
//! - a **UDP port** that the other instances can reach (7100 below);
//! - the **CA certificate** and a **node certificate and key** (see
//!   [`certificates`](super::certificates));
//! - a **data directory** that outlives the process, if the lock table
//!   must survive a restart of every instance at once
//!   ([`NodeBuilder::data_dir`](crate::NodeBuilder::data_dir)); without
//!   one, [`NodeBuilder::in_memory`](crate::NodeBuilder::in_memory) keeps
//!   the table as long as a majority of instances runs;
//! - a **stop signal with time to act**: on `SIGTERM` call
//!   [`Node::shutdown`](crate::Node::shutdown), which releases this node's
//!   locks at once (instead of one TTL later), hands Raft leadership over
//!   and leaves the membership. It takes about 11 s at most, so give the
//!   process at least 15 s to stop.
//!
//! ```rust
//! use std::time::Duration;
//!
//! /// Runs the service until SIGTERM or Ctrl-C, then stops the node cleanly.
//! /// (tokio's `signal` feature.)
//! async fn run_until_stopped(node: peerlock::Node) -> Result<(), peerlock::Error> {
//!     let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
//!     tokio::select! {
//!         _ = term.recv() => {}
//!         _ = tokio::signal::ctrl_c() => {}
//!     }
//!     // Bounded (about 11 s); `Err(NoQuorum)` when the session could not be
//!     // closed: its locks are then freed one TTL later, by expiry.
//!     match tokio::time::timeout(Duration::from_secs(14), node.shutdown()).await {
//!         Ok(result) => result,
//!         Err(_) => Ok(()), // the platform is about to kill us anyway
//!     }
//! }
//! ```
//!
//! # systemd
//!
//! Three machines, a static peer list, a durable data directory, and the
//! certificates passed as credentials (systemd 247 or newer):
//!
//! ```ini
//! # /etc/systemd/system/orders.service
//! [Unit]
//! Description=orders service (embeds a peerlock node)
//! After=network-online.target
//! Wants=network-online.target
//!
//! [Service]
//! ExecStart=/usr/local/bin/orders
//! Environment=PEERLOCK_LISTEN=10.0.0.1:7100
//! Environment=PEERLOCK_PEERS=10.0.0.1:7100,10.0.0.2:7100,10.0.0.3:7100
//! # /var/lib/orders, owned by the service's user; the node uses a subdirectory
//! StateDirectory=orders
//! Environment=PEERLOCK_DATA_DIR=/var/lib/orders/peerlock
//! # Readable by this service only, under $CREDENTIALS_DIRECTORY
//! LoadCredential=ca.pem:/etc/orders/tls/ca.pem
//! LoadCredential=node.pem:/etc/orders/tls/node-a.pem
//! LoadCredential=node.key:/etc/orders/tls/node-a.key
//! DynamicUser=yes
//! KillSignal=SIGTERM
//! TimeoutStopSec=20
//! Restart=on-failure
//! RestartSec=2
//!
//! [Install]
//! WantedBy=multi-user.target
//! ```
//!
//! Open UDP 7100 between the three machines (and nothing else is needed:
//! QUIC carries everything). The application reads its environment:
//!
//! ```rust,no_run
//! # async fn start() -> Result<peerlock::Node, Box<dyn std::error::Error>> {
//! let env = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set"));
//! let creds = std::path::PathBuf::from(env("CREDENTIALS_DIRECTORY")?);
//! let node = peerlock::Node::builder()
//!     .listen(env("PEERLOCK_LISTEN")?.parse()?)
//!     .peers(env("PEERLOCK_PEERS")?.split(','))
//!     .tls(peerlock::TlsConfig::from_pem_files(
//!         creds.join("ca.pem"),
//!         creds.join("node.pem"),
//!         creds.join("node.key"),
//!     )?)
//!     .data_dir(env("PEERLOCK_DATA_DIR")?)
//!     .leave_on_shutdown(false) // the machine comes back with its disk
//!     .start()
//!     .await?;
//! # Ok(node) }
//! ```
//!
//! `leave_on_shutdown(false)` suits instances that return as themselves
//! with their disk (a restart, a reboot): they keep their place as voters.
//! Keep the default `true` for instances that are gone for good when they
//! stop. An empty `PEERLOCK_PEERS` is refused by `start()`: instances
//! misconfigured alike cannot each found a cluster of their own.
//!
//! # Kubernetes
//!
//! Pods come and go with new addresses, so nodes find each other through
//! DNS rather than a static list. Give them a **headless Service** that
//! lists pods before they are ready (a pod must be found to become ready):
//!
//! ```yaml
//! apiVersion: v1
//! kind: Service
//! metadata: { name: orders-peers, namespace: shop }
//! spec:
//!   clusterIP: None                  # headless: DNS lists every pod
//!   publishNotReadyAddresses: true
//!   selector: { app: orders }
//!   ports: [{ name: peerlock, port: 7100, protocol: UDP }]
//! ```
//!
//! and start every pod alike, with the Service as its seed and the number
//! of replicas first deployed:
//!
//! ```rust,no_run
//! # async fn start() -> Result<peerlock::Node, Box<dyn std::error::Error>> {
//! // POD_NAME and POD_IP from the downward API (below).
//! let pod_name = std::env::var("POD_NAME")?;
//! let pod_ip = std::env::var("POD_IP")?;
//! let node = peerlock::Node::builder()
//!     .listen(format!("{pod_ip}:7100").parse()?)
//!     .seeds(["orders-peers.shop.svc:7100"]) // every pod the Service lists
//!     .bootstrap_expect(3) // the first 3 found the cluster; later pods join
//!     .name(pod_name) // with one certificate shared by every pod
//!     .tls(peerlock::TlsConfig::from_pem_files(
//!         "/etc/peerlock/ca.pem",
//!         "/etc/peerlock/tls.crt",
//!         "/etc/peerlock/tls.key",
//!     )?)
//!     .in_memory() // Deployment; a StatefulSet uses .data_dir(..), below
//!     .start()
//!     .await?;
//! # Ok(node) }
//! ```
//!
//! **Deployment or StatefulSet?**
//!
//! | | Deployment | StatefulSet |
//! |---|---|---|
//! | storage | `.in_memory()` (or an `emptyDir`) | `.data_dir(..)` on a volume from `volumeClaimTemplates` |
//! | a stopped pod | leaves; its replacement joins as a new member | keeps its identity and restarts from its disk |
//! | `leave_on_shutdown` | `true` (the default) | `false` |
//! | rollout | `maxSurge: 1`, `maxUnavailable: 0`, so a learner exists when a voter leaves | `OrderedReady` or `Parallel`, one pod at a time |
//! | lock table after every pod stops at once | lost (a fresh cluster starts; tokens still rise) | kept |
//! | certificates | one shared certificate + `.name(pod name)` | shared + `.name(..)`, or one per pod |
//!
//! Either way:
//!
//! - `terminationGracePeriodSeconds: 20` or more, and call
//!   [`Node::shutdown`](crate::Node::shutdown) on `SIGTERM` (above);
//! - a readiness probe on [`Node::ready`](crate::Node::ready) (served
//!   through your HTTP port, as the `service` example's `GET /healthz`):
//!   "this node has a leader and a lease", not "the cluster is healthy",
//!   which would empty the Service when the cluster is degraded;
//! - `minReadySeconds` of at least the membership's `stabilization` + 2 s
//!   (7 s by default), and a PodDisruptionBudget with `maxUnavailable: 1`,
//!   so a rollout never takes a voter down before its replacement has been
//!   promoted;
//! - 3 or 5 replicas; more are learners (they hold locks like any node,
//!   but do not vote).
//!
//! The pod spec's part for peerlock:
//!
//! ```yaml
//! spec:
//!   terminationGracePeriodSeconds: 20
//!   containers:
//!   - name: orders
//!     ports: [{ name: peerlock, containerPort: 7100, protocol: UDP }]
//!     env:
//!     - name: POD_NAME
//!       valueFrom: { fieldRef: { fieldPath: metadata.name } }
//!     - name: POD_IP
//!       valueFrom: { fieldRef: { fieldPath: status.podIP } }
//!     readinessProbe: { httpGet: { path: /healthz, port: 8080 }, periodSeconds: 2 }
//!     volumeMounts: [{ name: peerlock-tls, mountPath: /etc/peerlock, readOnly: true }]
//!   volumes:
//!   - name: peerlock-tls
//!     projected:
//!       sources:
//!       - secret: { name: orders-peerlock-ca, items: [{ key: ca.pem, path: ca.pem }] }
//!       - secret: { name: orders-peerlock-node }   # tls.crt, tls.key
//! ```
//!
//! # Certificates as Secrets
//!
//! Create the CA once, outside the cluster, and store only its certificate
//! in the cluster; keep `ca.key` in your secret manager:
//!
//! ```text
//! cargo run --example certs -- ./certs orders        # one shared certificate, CN "orders"
//! kubectl -n shop create secret generic orders-peerlock-ca --from-file=ca.pem=certs/ca.pem
//! kubectl -n shop create secret tls orders-peerlock-node \
//!     --cert=certs/orders.pem --key=certs/orders.key
//! ```
//!
//! cert-manager can issue the node certificates instead (a `Certificate`
//! with `usages: [server auth, client auth]` and a `commonName`); mount its
//! Secret the same way. To rotate, update the Secrets as described in
//! [`certificates`](super::certificates): Kubernetes refreshes mounted
//! Secrets in place, and a restart (or `Node::reload_tls`, issue 12,
//! item 5) picks them up.
//!
//! # Sizing
//!
//! Three voters tolerate one failure, five tolerate two; more instances
//! join as learners and cost the leader a little CPU each (a 25-node
//! cluster's leader used about 2 % of a core idle). An idle node uses well
//! under 1 % of a core and a few MiB of memory, plus a few hundred bytes
//! per held lock (about 400 to 650 with short names).
