//! Connection states and their timeouts, with the semantics of Linux IPVS
//! (`ip_vs_proto_tcp.c`, `ip_vs_proto_udp.c`).
//!
//! IPVS does not track TCP sequence numbers; it follows the flags it sees
//! in each direction through a fixed transition table, and each state has
//! its own idle timeout. Connections whose real server answers through the
//! director (NAT, FULLNAT) use the INPUT and OUTPUT tables; DR and TUN only
//! ever see the client's side and use the INPUT-ONLY table.

use std::fmt;

use crate::time::Duration;

/// State of a connection entry. TCP states first, in IPVS's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ConnState {
    TcpNone = 0,
    TcpEstablished,
    TcpSynSent,
    TcpSynRecv,
    TcpFinWait,
    TcpTimeWait,
    TcpClose,
    TcpCloseWait,
    TcpLastAck,
    TcpListen,
    TcpSynAck,
    /// A UDP flow: one state, as in IPVS.
    Udp,
}

impl ConnState {
    pub const COUNT: usize = ConnState::Udp as usize + 1;

    /// Every state, indexed by its number.
    pub const ALL: [ConnState; ConnState::COUNT] = [
        ConnState::TcpNone,
        ConnState::TcpEstablished,
        ConnState::TcpSynSent,
        ConnState::TcpSynRecv,
        ConnState::TcpFinWait,
        ConnState::TcpTimeWait,
        ConnState::TcpClose,
        ConnState::TcpCloseWait,
        ConnState::TcpLastAck,
        ConnState::TcpListen,
        ConnState::TcpSynAck,
        ConnState::Udp,
    ];

    /// The name ipvsadm prints in the `state` column of `-Lnc`.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            ConnState::TcpNone => "NONE",
            ConnState::TcpEstablished => "ESTABLISHED",
            ConnState::TcpSynSent => "SYN_SENT",
            ConnState::TcpSynRecv => "SYN_RECV",
            ConnState::TcpFinWait => "FIN_WAIT",
            ConnState::TcpTimeWait => "TIME_WAIT",
            ConnState::TcpClose => "CLOSE",
            ConnState::TcpCloseWait => "CLOSE_WAIT",
            ConnState::TcpLastAck => "LAST_ACK",
            ConnState::TcpListen => "LISTEN",
            ConnState::TcpSynAck => "SYNACK",
            ConnState::Udp => "UDP",
        }
    }

    /// Whether ipvsadm counts the connection under ActiveConn (otherwise
    /// InActConn): only established TCP connections are active.
    pub fn is_active(self) -> bool {
        self == ConnState::TcpEstablished
    }

    /// Whether a new SYN may take over this entry's tuple (IPVS's
    /// `conn_reuse_mode`): the old connection is closing or closed.
    pub fn allows_reuse(self, input_only: bool) -> bool {
        matches!(self, ConnState::TcpTimeWait | ConnState::TcpClose)
            || (input_only && self == ConnState::TcpFinWait)
    }
}

impl fmt::Display for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ipvsadm_name())
    }
}

/// Which way a packet travels relative to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Direction {
    /// From the client towards the real server.
    In = 0,
    /// From the real server back towards the client.
    Out = 1,
}

/// The TCP flags that drive state transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpSignal {
    pub syn: bool,
    pub fin: bool,
    pub ack: bool,
    pub rst: bool,
}

impl TcpSignal {
    /// Row of the transition table, by IPVS's precedence: RST, SYN, FIN, ACK.
    fn row(self) -> Option<usize> {
        if self.rst {
            Some(3)
        } else if self.syn {
            Some(0)
        } else if self.fin {
            Some(1)
        } else if self.ack {
            Some(2)
        } else {
            None
        }
    }

    /// A SYN that opens a connection (no ACK): what may be scheduled.
    pub fn opens_connection(self) -> bool {
        self.syn && !self.ack && !self.rst
    }
}

use ConnState::{
    TcpClose as CL, TcpCloseWait as CW, TcpEstablished as ES, TcpFinWait as FW, TcpLastAck as LA,
    TcpListen as LI, TcpSynRecv as SR, TcpSynSent as SS, TcpTimeWait as TW,
};

/// Rows syn, fin, ack, rst; columns the current state in IPVS order
/// (NONE, ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT, TIME_WAIT, CLOSE,
/// CLOSE_WAIT, LAST_ACK, LISTEN, SYNACK).
type Table = [[ConnState; 11]; 4];

const INPUT: Table = [
    [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
    [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
];

const OUTPUT: Table = [
    [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
    [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
    [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
    [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
];

const INPUT_ONLY: Table = [
    [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
    [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];

/// The state after a TCP segment with `signal` travelling in `direction`.
/// `input_only` selects IPVS's table for DR and TUN, where replies bypass
/// the director. A segment without any of SYN/FIN/ACK/RST closes, as in
/// IPVS.
pub fn tcp_transition(
    state: ConnState,
    direction: Direction,
    input_only: bool,
    signal: TcpSignal,
) -> ConnState {
    let column = state as usize;
    let (Some(row), true) = (signal.row(), state != ConnState::Udp) else {
        return ConnState::TcpClose;
    };
    let table = match (direction, input_only) {
        (Direction::Out, _) => &OUTPUT,
        (Direction::In, false) => &INPUT,
        (Direction::In, true) => &INPUT_ONLY,
    };
    table[row][column]
}

/// Idle timeout of each state, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateTimeouts {
    by_state: [Duration; ConnState::COUNT],
}

impl StateTimeouts {
    /// IPVS's defaults, with the three that ipvsadm `--set` changes
    /// (established, FIN_WAIT and UDP) given in seconds.
    pub fn new(tcp_established: u32, tcp_fin_wait: u32, udp: u32) -> StateTimeouts {
        let secs = |s: u32| Duration::from_secs(u64::from(s));
        let mut by_state = [Duration::from_secs(2); ConnState::COUNT];
        for (state, timeout) in [
            (ConnState::TcpNone, secs(2)),
            (ConnState::TcpEstablished, secs(tcp_established)),
            (ConnState::TcpSynSent, secs(120)),
            (ConnState::TcpSynRecv, secs(60)),
            (ConnState::TcpFinWait, secs(tcp_fin_wait)),
            (ConnState::TcpTimeWait, secs(120)),
            (ConnState::TcpClose, secs(10)),
            (ConnState::TcpCloseWait, secs(60)),
            (ConnState::TcpLastAck, secs(30)),
            (ConnState::TcpListen, secs(120)),
            (ConnState::TcpSynAck, secs(120)),
            (ConnState::Udp, secs(udp)),
        ] {
            by_state[state as usize] = timeout;
        }
        StateTimeouts { by_state }
    }

    #[inline]
    pub fn of(&self, state: ConnState) -> Duration {
        self.by_state[state as usize]
    }
}

impl Default for StateTimeouts {
    fn default() -> Self {
        StateTimeouts::new(900, 120, 300)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYN: TcpSignal = TcpSignal {
        syn: true,
        fin: false,
        ack: false,
        rst: false,
    };
    const SYN_ACK: TcpSignal = TcpSignal {
        syn: true,
        fin: false,
        ack: true,
        rst: false,
    };
    const ACK: TcpSignal = TcpSignal {
        syn: false,
        fin: false,
        ack: true,
        rst: false,
    };
    const FIN_ACK: TcpSignal = TcpSignal {
        syn: false,
        fin: true,
        ack: true,
        rst: false,
    };
    const RST: TcpSignal = TcpSignal {
        syn: false,
        fin: false,
        ack: false,
        rst: true,
    };

    fn walk(input_only: bool, steps: &[(Direction, TcpSignal)]) -> Vec<ConnState> {
        let mut state = ConnState::TcpNone;
        steps
            .iter()
            .map(|&(direction, signal)| {
                state = tcp_transition(state, direction, input_only, signal);
                state
            })
            .collect()
    }

    #[test]
    fn nat_handshake_and_client_close_follow_ipvs() {
        use Direction::{In, Out};
        let states = walk(
            false,
            &[
                (In, SYN),
                (Out, SYN_ACK),
                (In, ACK),
                (In, FIN_ACK),
                (Out, FIN_ACK),
                (In, ACK),
            ],
        );
        assert_eq!(
            states,
            [SR, SR, ES, CW, TW, TW],
            "client closes first: CLOSE_WAIT, then TIME_WAIT"
        );
    }

    #[test]
    fn server_close_and_reset_follow_ipvs() {
        use Direction::{In, Out};
        let states = walk(
            false,
            &[
                (In, SYN),
                (Out, SYN_ACK),
                (In, ACK),
                (Out, FIN_ACK),
                (In, FIN_ACK),
            ],
        );
        assert_eq!(states, [SR, SR, ES, FW, TW]);
        let reset = walk(false, &[(In, SYN), (Out, SYN_ACK), (In, ACK), (Out, RST)]);
        assert_eq!(reset.last(), Some(&CL));
    }

    #[test]
    fn input_only_connections_close_on_the_clients_fin() {
        use Direction::In;
        let states = walk(true, &[(In, SYN), (In, ACK), (In, FIN_ACK), (In, ACK)]);
        assert_eq!(states, [SR, ES, FW, FW]);
    }

    #[test]
    fn a_segment_without_flags_closes() {
        let state = tcp_transition(ES, Direction::In, false, TcpSignal::default());
        assert_eq!(state, CL);
        assert_eq!(
            tcp_transition(ConnState::Udp, Direction::In, false, ACK),
            CL
        );
    }

    #[test]
    fn only_established_counts_as_active() {
        assert!(ES.is_active());
        assert!(!SR.is_active() && !TW.is_active() && !ConnState::Udp.is_active());
    }

    #[test]
    fn default_timeouts_are_ipvs_defaults() {
        let timeouts = StateTimeouts::default();
        assert_eq!(timeouts.of(ES), Duration::from_secs(900));
        assert_eq!(timeouts.of(FW), Duration::from_secs(120));
        assert_eq!(timeouts.of(ConnState::Udp), Duration::from_secs(300));
        assert_eq!(timeouts.of(SR), Duration::from_secs(60));
        assert_eq!(timeouts.of(CL), Duration::from_secs(10));
    }

    #[test]
    fn reuse_is_allowed_only_for_closing_tuples() {
        assert!(TW.allows_reuse(false));
        assert!(CL.allows_reuse(false));
        assert!(!ES.allows_reuse(false));
        assert!(!FW.allows_reuse(false));
        assert!(FW.allows_reuse(true));
    }
}
