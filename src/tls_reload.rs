//! `Node::reload_tls`'s plumbing (issue 12, item 5): the TLS configuration
//! of the node's current run, shared by the `Node` and the runs a rejoin
//! starts (`rejoin.rs`), so a reloaded configuration outlives the run it
//! was given to.
//!
//! A reload goes to the transport of the current run (which swaps the
//! configuration of new connections, see `peerlock_transport`'s
//! `QuicTransport::reload_tls`), re-records a durable node's data
//! directory under the new bundle's first CA (as a start with the new
//! bundle would; `data_dir::recluster`), and is kept for the next run.

use std::path::PathBuf;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use peerlock_core::Error;
use peerlock_transport::{QuicTransport, TlsConfig};

/// The TLS configuration of a node's runs.
pub(crate) struct TlsSlot {
    inner: Mutex<Inner>,
}

struct Inner {
    /// The configuration of the last reload; `None`: the builder's.
    reloaded: Option<TlsConfig>,
    /// The member name given to the builder (`NodeBuilder::name`).
    name: Option<String>,
    data_dir: Option<PathBuf>,
    /// The current run's transport and the configuration it runs with.
    current: Option<(Weak<QuicTransport>, TlsConfig)>,
}

impl TlsSlot {
    pub(crate) fn new(name: Option<String>, data_dir: Option<PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                reloaded: None,
                name,
                data_dir,
                current: None,
            }),
        })
    }

    /// The configuration a new run starts with, if a reload gave one.
    pub(crate) fn reloaded(&self) -> Option<TlsConfig> {
        self.inner.lock().reloaded.clone()
    }

    /// A run started on `transport` with `tls`.
    pub(crate) fn attach(&self, transport: &Arc<QuicTransport>, tls: &TlsConfig) {
        self.inner.lock().current = Some((Arc::downgrade(transport), tls.clone()));
    }

    /// The current run's transport, if it runs.
    pub(crate) fn transport(&self) -> Option<Arc<QuicTransport>> {
        self.inner.lock().current.as_ref()?.0.upgrade()
    }

    /// See `Node::reload_tls`.
    pub(crate) fn reload(&self, tls: TlsConfig) -> Result<(), Error> {
        let mut inner = self.inner.lock();
        // The builder's member name applies to a certificate shared by
        // every instance, as at start; a configuration that sets its own
        // is taken as given (and refused below if it differs).
        let tls = match &inner.name {
            Some(name) if !tls.name_is_claimed() => tls.with_member_name(name)?,
            _ => tls,
        };
        let Some((transport, running)) = inner.current.clone() else {
            return Err(Error::Shutdown);
        };
        let Some(transport) = transport.upgrade() else {
            return Err(Error::Shutdown);
        };
        // Everything that can refuse the new configuration first, so a
        // refusal changes nothing.
        transport.check_tls(&tls)?;
        if let Some(dir) = &inner.data_dir {
            crate::durable::recluster(dir, &running.ca_fingerprints(), &tls.ca_fingerprints())?;
        }
        transport.reload_tls(&tls)?;
        inner.current = Some((Arc::downgrade(&transport), tls.clone()));
        inner.reloaded = Some(tls);
        Ok(())
    }
}
