//! What tests read of the endpoint and set on it, hidden from the docs.

use super::*;

impl QuicTransport {
    /// How many peers this node has an open connection with (tests).
    #[doc(hidden)]
    pub fn open_connections(&self) -> usize {
        self.shared.open_connections()
    }

    /// How many peers have a slot (a writer and a bulk sender): those a
    /// message went to or came from, not every member learned (tests).
    #[doc(hidden)]
    pub fn peer_slots(&self) -> usize {
        self.shared.peer_slots()
    }

    /// Sets how long an unused connection stays open (default
    /// [`IDLE_CLOSE`]), for tests that watch connections close.
    #[doc(hidden)]
    pub fn set_idle_close(&self, idle: Duration) {
        self.shared.set_idle_close(idle);
    }
}
