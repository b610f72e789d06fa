//! Ctrl-C (and SIGTERM, SIGHUP from a scheduler) for the long commands: the first signal sets a
//! flag the command checks between units of work (a training step, a sweep point) so it stops
//! with its files complete; a second one exits at once with status 130.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

/// Set by the first signal since the last [`catch`].
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Routes the termination signals to the flag (the handler is installed once per process) and
/// clears it. Without a handler (another one was set first) a signal kills the process as
/// before; `lost` says what is lost then.
pub(crate) fn catch(lost: &str) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let set = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
        if let Err(e) = set {
            eprintln!("warning: Ctrl-C will {lost} ({e})");
        }
    });
    INTERRUPTED.store(false, Ordering::SeqCst);
}

/// Whether a signal arrived since the last [`catch`].
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
