//! The replay trace: the stacks' own `log` output, stamped with the virtual
//! time and the host it came from. Only the replay installs the logger, and
//! it prints only on a thread that set a context, so sweeps stay silent.

use std::cell::Cell;

use log::{LevelFilter, Log, Metadata, Record};
use tunstack::time::Instant;

thread_local! {
    static CONTEXT: Cell<Option<(&'static str, u64)>> = const { Cell::new(None) };
}

/// Log lines from now on come from `host` at `now`.
pub fn set_context(host: &'static str, now: Instant) {
    CONTEXT.with(|c| c.set(Some((host, now.total_micros()))));
}

/// This thread stops printing log lines.
pub fn clear_context() {
    CONTEXT.with(|c| c.set(None));
}

struct SimLogger;

impl Log for SimLogger {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        CONTEXT.with(|c| c.get().is_some())
    }

    fn log(&self, record: &Record<'_>) {
        if let Some((host, t)) = CONTEXT.with(|c| c.get()) {
            eprintln!(
                "{} {host} {:<5} {}",
                Instant::from_micros(t),
                record.level(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

static LOGGER: SimLogger = SimLogger;

/// Installs the logger at `level` (once per process; later calls only
/// change the level).
pub fn install(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
