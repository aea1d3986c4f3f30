//! The final JSON summary of a run (rvs-pktgen prints it on stdout;
//! rvs-bench reads it back), and the counters it is made of.

use serde::{Deserialize, Serialize};

use crate::histogram::LatencySummary;
use crate::packet::Profile;

/// The summary's format version; bumped on incompatible changes.
pub const SUMMARY_VERSION: u32 = 1;

/// Counters of one side (IPv4 frames only; ARP is counted apart).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideCounters {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Transmissions the port refused (a full ring), each refused attempt
    /// counted: originated frames stay queued and go again, replies are
    /// dropped. A sign of backpressure, not of loss in the director.
    pub tx_refused: u64,
    /// ARP requests answered.
    pub arp_answered: u64,
    /// Frames received that the side did not understand (not IPv4/ARP,
    /// malformed, other protocols).
    pub rx_other: u64,
}

/// TCP events seen by the stateless client and server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpEvents {
    /// SYNs the client side originated.
    pub syn_sent: u64,
    /// SYNs that reached the server side.
    pub syn_received: u64,
    /// SYN-ACKs that came back to the client side.
    pub syn_ack_received: u64,
    /// Data + FIN segments that reached the server side.
    pub fin_received: u64,
    /// FIN-ACKs that came back to the client side.
    pub fin_ack_received: u64,
    /// Last ACKs that reached the server side: whole connections.
    pub completed: u64,
    /// Resets seen on either side.
    pub resets: u64,
}

/// Loss on the way from the client side to the server side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Loss {
    /// Client-side transmissions that never reached the server side
    /// (negative when more arrived than were sent, e.g. a forwarder that
    /// answers on its own).
    pub packets: i64,
    /// `packets` over the client side's transmissions.
    pub ratio: f64,
}

/// Latency through the director, from the stamps of sampled packets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// Client side to server side: one pass through the director.
    pub one_way: LatencySummary,
    /// Client side, responder, back to the client side: two passes and
    /// the responder (UDP echo only).
    pub round_trip: LatencySummary,
}

/// The warm-up round that opens each flow before the measurement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Warmup {
    pub sent: u64,
    pub received: u64,
    pub seconds: f64,
}

/// What a run measured; `duration_s` and every rate cover the
/// measurement only (after ARP, link and warm-up).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub version: u32,
    pub profile: Profile,
    /// Frame size with FCS, as given.
    pub frame_size: u16,
    pub flows: u64,
    /// 0: as fast as possible.
    pub rate_limit_pps: u64,
    pub respond: bool,
    pub duration_s: f64,
    pub tsc_hz: u64,
    pub client: SideCounters,
    pub server: Option<SideCounters>,
    pub client_tx_pps: f64,
    pub server_rx_pps: f64,
    pub client_rx_pps: f64,
    pub loss: Loss,
    pub tcp: TcpEvents,
    /// New connections per second through the director: SYNs that reached
    /// the server side (`syn`) or completed connections (`handshake`).
    pub connections_per_second: Option<f64>,
    pub latency: Latency,
    pub warmup: Option<Warmup>,
    /// Whether a signal stopped the run before its duration.
    pub interrupted: bool,
}

impl Summary {
    /// The forwarding rate the run measured: what reached the server side
    /// per second, or without a server side what came back.
    pub fn forwarded_pps(&self) -> f64 {
        if self.server.is_some() {
            self.server_rx_pps
        } else {
            self.client_rx_pps
        }
    }

    /// Whether the run carried traffic end to end.
    pub fn has_traffic(&self) -> bool {
        self.client.tx_packets > 0 && self.forwarded_pps() > 0.0
    }
}
