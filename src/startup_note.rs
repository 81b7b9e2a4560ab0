//! What a start waits for, said while it waits (issue 12: a first start
//! whose peers were not up said nothing until its start-up deadline, 60 s
//! by default, so an operator could not tell a slow start from a wrong
//! address). Quiet for the first seconds, since instances deployed
//! together come up within moments of each other; then a WARN line every
//! few seconds naming what is missing and when the start gives up.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

/// Quiet this long after the start began.
const FIRST: Duration = Duration::from_secs(3);
/// Then one line this often.
const EVERY: Duration = Duration::from_secs(10);

/// When the next line is due.
pub(crate) struct StartupNote {
    started: Instant,
    next: Instant,
    deadline: Instant,
}

impl StartupNote {
    pub(crate) fn new(deadline: Instant) -> Self {
        let started = Instant::now();
        StartupNote {
            started,
            next: started + FIRST,
            deadline,
        }
    }

    /// Says that `missing` have not answered yet, if a line is due; `what`
    /// says what they are for and what to do.
    pub(crate) fn missing(&mut self, node: &str, missing: &[SocketAddr], what: &str) {
        let now = Instant::now();
        if missing.is_empty() || now < self.next {
            return;
        }
        self.next = now + EVERY;
        let list: Vec<String> = missing.iter().map(ToString::to_string).collect();
        tracing::warn!(
            node,
            not_answering = %list.join(", "),
            waited_s = (now - self.started).as_secs(),
            gives_up_in_s = self.deadline.saturating_duration_since(now).as_secs(),
            "{what}"
        );
    }
}
