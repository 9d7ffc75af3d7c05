//! The application at one end of one connection: writes its stream, reads
//! and checks the peer's, and closes (or aborts) as its plan says. It acts
//! when the stack wakes it (an event) or its own timer fires (pacing,
//! lingering, a planned close or abort).

use std::time::Duration;

use tunstack::time::Instant;

use super::check::StreamChecker;
use super::host::{Handle, Host, Io};
use super::rng::{fill, stream_key, Rng};
use super::scenario::{AbortKind, EndpointPlan, ShutRule};

/// One application endpoint.
#[derive(Debug)]
pub struct Endpoint {
    /// 0: client, 1: server.
    pub side: usize,
    pub conn: usize,
    pub plan: EndpointPlan,
    rng: Rng,
    pub handle: Option<Handle>,
    /// Bytes the stack accepted from `send`.
    pub sent: u64,
    /// Checks what `recv` returns against the peer's stream.
    pub checker: StreamChecker,
    out_key: u64,
    /// `recv` returned end of stream.
    pub eof: bool,
    /// The FIN was queued (`shutdown`, or `close`).
    pub shut: bool,
    /// The handle was given back (`close` or `abort`).
    pub released: bool,
    /// The plan's abort happened.
    pub aborted: bool,
    /// A call failed (a reset, or worse).
    pub error: Option<Io>,
    /// When `recv` last returned data (the goodput harness's end of a
    /// transfer).
    pub last_read_at: Option<Instant>,
    /// The stack signalled something for this endpoint.
    pub woken: bool,
    /// Pausing until then (events are ignored meanwhile).
    pub pace_until: Option<Instant>,
    /// A planned action (close at, linger end, abort at).
    pub timer: Option<Instant>,
    done_at: Option<Instant>,
    buf: Vec<u8>,
}

/// Prints one trace line for an endpoint's action.
fn tr(verbose: bool, now: Instant, side: usize, conn: usize, what: std::fmt::Arguments<'_>) {
    if verbose {
        eprintln!(
            "{now} {} app c{conn}: {what}",
            if side == 0 { "A" } else { "B" }
        );
    }
}

impl Endpoint {
    /// The endpoint `side` of connection `conn` in the run of `seed`.
    pub fn new(seed: u64, conn: usize, side: usize, plan: EndpointPlan, rng: Rng) -> Endpoint {
        let buf = vec![0; plan.write_chunk.max(plan.read_chunk)];
        Endpoint {
            side,
            conn,
            plan,
            rng,
            handle: None,
            sent: 0,
            checker: StreamChecker::new(stream_key(seed, conn, 1 - side)),
            out_key: stream_key(seed, conn, side),
            eof: false,
            shut: false,
            released: false,
            aborted: false,
            error: None,
            last_read_at: None,
            woken: false,
            pace_until: None,
            timer: None,
            done_at: None,
            buf,
        }
    }

    /// Whether it should run at `now`.
    pub fn due(&self, now: Instant) -> bool {
        if self.released || self.handle.is_none() {
            return false;
        }
        match self.pace_until {
            Some(t) => t <= now,
            None => self.woken || self.timer.is_some_and(|t| t <= now),
        }
    }

    /// When it next wants to run on its own.
    pub fn next_wake(&self) -> Option<Instant> {
        if self.released || self.handle.is_none() {
            return None;
        }
        // A pause holds everything else back (see `due`).
        self.pace_until.or(self.timer)
    }

    /// Runs one wake-up: abort if planned, write, read, close. `peer_sent`
    /// is what the peer has sent so far (final once it sent its FIN);
    /// `graceful` says any error is a failure.
    pub fn step(
        &mut self,
        host: &mut dyn Host,
        now: Instant,
        peer_sent: u64,
        graceful: bool,
        verbose: bool,
    ) -> Result<(), String> {
        let (side, conn) = (self.side, self.conn);
        self.woken = false;
        self.pace_until = None;
        self.timer = None;
        let Some(h) = self.handle else { return Ok(()) };
        if self.released {
            return Ok(());
        }
        if let Some(a) = self.plan.abort {
            let by_bytes = self.sent >= a.after_sent && self.checker.received() >= a.after_recv;
            if by_bytes || now >= a.at {
                match a.kind {
                    AbortKind::Abort => host.abort(now, h),
                    AbortKind::CloseEarly => {
                        let _ = host.close(now, h);
                    }
                }
                tr(
                    verbose,
                    now,
                    side,
                    conn,
                    format_args!(
                        "{:?} after sending {} and receiving {}",
                        a.kind,
                        self.sent,
                        self.checker.received()
                    ),
                );
                self.aborted = true;
                self.released = true;
                return Ok(());
            }
            self.timer = Some(a.at);
        }
        let mut busy = false;

        // Write.
        let mut ops = self.plan.write_ops;
        while !self.shut && self.error.is_none() && self.sent < self.plan.total && ops > 0 {
            let left = (self.plan.total - self.sent) as usize;
            let n = self.rng.range_usize(1, self.plan.write_chunk).min(left);
            fill(self.out_key, self.sent, &mut self.buf[..n]);
            let r = host.send(now, h, &self.buf[..n]);
            tr(verbose, now, side, conn, format_args!("send {n} -> {r:?}"));
            ops -= 1;
            match r {
                Io::Done(k) => {
                    self.sent += k as u64;
                    if k < n {
                        break; // full: wait for the stack
                    }
                    if ops == 0 && self.sent < self.plan.total {
                        busy = true;
                    }
                }
                Io::WouldBlock => break,
                e => self.error = Some(e),
            }
        }

        // Read.
        let mut ops = self.plan.read_ops;
        while !self.eof && self.error.is_none() && ops > 0 {
            let n = self.rng.range_usize(1, self.plan.read_chunk);
            let r = host.recv(now, h, &mut self.buf[..n]);
            tr(verbose, now, side, conn, format_args!("recv {n} -> {r:?}"));
            ops -= 1;
            match r {
                Io::Done(k) => {
                    self.checker.feed(&self.buf[..k])?;
                    self.last_read_at = Some(now);
                    if ops == 0 {
                        busy = true;
                    }
                }
                Io::Eof => {
                    self.eof = true;
                    self.checker.finish(peer_sent)?;
                }
                Io::WouldBlock => break,
                e => self.error = Some(e),
            }
        }

        if let Some(e) = &self.error {
            if graceful {
                return Err(format!(
                    "unexpected {e:?} (sent {}, received {})",
                    self.sent,
                    self.checker.received()
                ));
            }
            // The connection is gone: give the handle back.
            let r = host.close(now, h);
            tr(
                verbose,
                now,
                side,
                conn,
                format_args!("close after {e:?} -> {r:?}"),
            );
            self.released = true;
            return Ok(());
        }

        // FIN.
        if !self.shut && self.sent == self.plan.total {
            let ready = match self.plan.shut {
                ShutRule::WhenDone => true,
                ShutRule::AfterPeerEof => self.eof,
                ShutRule::At(t) => {
                    if t > now {
                        self.timer = Some(self.timer.map_or(t, |x| x.min(t)));
                    }
                    t <= now
                }
            };
            if ready {
                let via_close = self.plan.fin_via_close && self.eof;
                let r = if via_close {
                    host.close(now, h)
                } else {
                    host.shutdown(now, h)
                };
                tr(
                    verbose,
                    now,
                    side,
                    conn,
                    format_args!("{} -> {r:?}", if via_close { "close" } else { "shutdown" }),
                );
                match r {
                    // Not open yet (smoltcp): try again on the next wake-up.
                    Io::WouldBlock => {}
                    Io::Done(0) => {
                        self.shut = true;
                        if via_close {
                            self.released = true;
                            return Ok(());
                        }
                    }
                    r if graceful => {
                        return Err(format!("FIN failed: {r:?}"));
                    }
                    r => {
                        self.shut = true;
                        self.error = Some(r);
                    }
                }
            }
        }

        // Release once both directions are done (after lingering).
        if self.shut && (self.eof || self.error.is_some()) {
            let done = *self.done_at.get_or_insert(now);
            let end = done + Duration::from_micros(self.plan.linger_us);
            if end <= now {
                let r = host.close(now, h);
                tr(verbose, now, side, conn, format_args!("close -> {r:?}"));
                if graceful && r != Io::Done(0) {
                    return Err(format!("close failed: {r:?}"));
                }
                self.released = true;
                return Ok(());
            }
            self.timer = Some(self.timer.map_or(end, |x| x.min(end)));
        }

        if busy {
            let pause = self.rng.range(0, self.plan.pace_us);
            self.pace_until = Some(now + Duration::from_micros(pause));
        }
        Ok(())
    }
}
