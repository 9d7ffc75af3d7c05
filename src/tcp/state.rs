//! The eleven connection states of RFC 9293 §3.3.2 (Figure 5).

use std::fmt;

/// A connection state, spelled as in RFC 9293 when displayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// No connection.
    Closed,
    /// Waiting for a connection request (listeners only).
    Listen,
    /// Sent a SYN, waiting for the peer's SYN.
    SynSent,
    /// Received a SYN (and sent ours), waiting for its acknowledgment.
    SynReceived,
    /// Open: data flows both ways.
    Established,
    /// We sent FIN, waiting for its ACK (or the peer's FIN).
    FinWait1,
    /// Our FIN is acknowledged; waiting for the peer's FIN.
    FinWait2,
    /// The peer sent FIN; waiting for the local application to close.
    CloseWait,
    /// Both sides sent FIN at once; waiting for the ACK of ours.
    Closing,
    /// We sent FIN after the peer's; waiting for its ACK.
    LastAck,
    /// Waiting 2×MSL so that delayed segments of this connection die out.
    TimeWait,
}

impl State {
    /// States in which the SYNs have been exchanged (RFC 9293 §3.5).
    pub fn is_synchronized(self) -> bool {
        !matches!(
            self,
            State::Closed | State::Listen | State::SynSent | State::SynReceived
        )
    }

    /// States in which we may still receive data from the peer.
    pub fn can_receive(self) -> bool {
        matches!(self, State::Established | State::FinWait1 | State::FinWait2)
    }

    /// States in which the application may still queue data to send.
    pub fn can_send(self) -> bool {
        matches!(
            self,
            State::SynSent | State::SynReceived | State::Established | State::CloseWait
        )
    }
}

impl State {
    /// The RFC's name: `SYN-SENT`, `FIN-WAIT-1`, ... (RFC 9293 Figure 5
    /// spells SYN-RECEIVED `SYN-RCVD`).
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "CLOSED",
            State::Listen => "LISTEN",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RCVD",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_uses_rfc_spelling() {
        assert_eq!(State::SynReceived.to_string(), "SYN-RCVD");
        assert_eq!(State::FinWait1.to_string(), "FIN-WAIT-1");
        assert_eq!(State::TimeWait.to_string(), "TIME-WAIT");
        assert_eq!(State::CloseWait.to_string(), "CLOSE-WAIT");
    }

    #[test]
    fn synchronized_states() {
        assert!(!State::SynSent.is_synchronized());
        assert!(!State::SynReceived.is_synchronized());
        assert!(State::Established.is_synchronized());
        assert!(State::TimeWait.is_synchronized());
    }
}
