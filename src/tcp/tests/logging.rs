//! State transitions are logged as `{peer} -> {us} OLD -> NEW`, and the
//! end of sending with what it took.

use std::sync::Mutex;

use super::*;

/// Captures records per thread, so parallel tests don't see each other's.
struct Capture {
    lines: Mutex<Vec<(std::thread::ThreadId, String)>>,
}

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Debug
    }
    fn log(&self, r: &log::Record<'_>) {
        if let Ok(mut v) = self.lines.lock() {
            v.push((std::thread::current().id(), r.args().to_string()));
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture {
    lines: Mutex::new(Vec::new()),
};

fn captured() -> Vec<String> {
    let me = std::thread::current().id();
    CAPTURE
        .lines
        .lock()
        .map(|v| {
            v.iter()
                .filter(|(t, _)| *t == me)
                .map(|(_, s)| s.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_transition_is_logged_peer_first_in_rfc_spelling() {
    // Another logger may already be installed by some other test binary
    // setup; then there is nothing to check here.
    if log::set_logger(&CAPTURE).is_err() {
        return;
    }
    log::set_max_level(log::LevelFilter::Debug);
    let (mut l, id, snd) = server();
    l.send(ms(0), id, b"hello").unwrap();
    l.close(ms(0), id).unwrap();
    inject(&mut l, ms(20), hdr("FA", PEER_ISS + 1, snd + 6), b"");
    l.poll(Instant::from_secs(61));
    let lines: Vec<String> = captured()
        .into_iter()
        .filter(|s| s.contains(" -> 10.0.0.2:7 "))
        .collect();
    assert_eq!(
        lines,
        vec![
            "*:* -> 10.0.0.2:7 CLOSED -> LISTEN",
            "10.0.0.1:40000 -> 10.0.0.2:7 LISTEN -> SYN-RCVD",
            "10.0.0.1:40000 -> 10.0.0.2:7 SYN-RCVD -> ESTABLISHED",
            "10.0.0.1:40000 -> 10.0.0.2:7 ESTABLISHED -> FIN-WAIT-1",
            // Once our FIN is acknowledged, the sending side's summary.
            "10.0.0.1:40000 -> 10.0.0.2:7 everything sent was acknowledged: \
             0 segments retransmitted, busy:20ms",
            "10.0.0.1:40000 -> 10.0.0.2:7 FIN-WAIT-1 -> FIN-WAIT-2",
            "10.0.0.1:40000 -> 10.0.0.2:7 FIN-WAIT-2 -> TIME-WAIT",
            "10.0.0.1:40000 -> 10.0.0.2:7 TIME-WAIT -> CLOSED",
        ]
    );
}
