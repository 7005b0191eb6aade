//! Graceful stops: the binary installs a handler for SIGINT and SIGTERM (Ctrl-C, a Slurm
//! pre-emption); the first signal asks the running job to stop at the end of its current step
//! (after saving what lets it resume), a second one ends the process at once. Jobs poll
//! [`requested`] between steps and return [`Error::Interrupted`](crate::Error::Interrupted).

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Whether a stop was requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Asks the running job to stop (what the first signal does).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Installs the handler: the first SIGINT/SIGTERM requests a stop, the second exits with 130.
pub fn install() -> std::result::Result<(), String> {
    ctrlc::set_handler(|| {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond signal: stopping now");
            std::process::exit(130);
        }
        eprintln!("\nsignal received: stopping after the current step (send it again to stop now)");
    })
    .map_err(|e| format!("cannot install the signal handler: {e}"))
}
