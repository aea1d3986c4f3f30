//! Connection tracking: the per-worker table of connections, their states
//! and their expiry.
//!
//! A connection is remembered once, in a fixed-size [`Conn`] entry, and
//! indexed twice: by the tuple its client sends (direction In) and by the
//! tuple its real server answers with (direction Out), so that a lookup of
//! any packet's own five-tuple finds the entry and tells which way the
//! packet travels.

mod state;
mod table;

pub use state::{ConnState, Direction, StateTimeouts, TcpSignal, tcp_transition};
pub use table::{ConnId, ConnTable, HashSeed, InsertError, TICK_NANOS};

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An IP address family the table can hold.
pub trait Address: Copy + Eq + fmt::Debug + fmt::Display {
    const UNSPECIFIED: Self;
    /// The address folded into 64 bits for hashing.
    fn fold(&self) -> u64;
}

impl Address for Ipv4Addr {
    const UNSPECIFIED: Self = Ipv4Addr::UNSPECIFIED;

    #[inline]
    fn fold(&self) -> u64 {
        u64::from(u32::from(*self))
    }
}

impl Address for Ipv6Addr {
    const UNSPECIFIED: Self = Ipv6Addr::UNSPECIFIED;

    #[inline]
    fn fold(&self) -> u64 {
        let bits = u128::from(*self);
        (bits as u64) ^ ((bits >> 64) as u64).rotate_left(29)
    }
}

/// The five-tuple of a packet as it is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey<A> {
    pub protocol: u8,
    pub src: A,
    pub src_port: u16,
    pub dst: A,
    pub dst_port: u16,
}

/// How the connection's packets are forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Method {
    Nat = 0,
    DirectRoute,
    Tunnel,
    FullNat,
}

impl Method {
    /// Replies bypass the director: only the In direction is ever seen.
    pub fn is_input_only(self) -> bool {
        matches!(self, Method::DirectRoute | Method::Tunnel)
    }
}

/// A tracked connection: 48 bytes for IPv4, 96 for IPv6.
///
/// The In tuple is `client:client_port -> vip:vport`; the Out tuple is
/// `real:real_port -> local:local_port`, where `local` is the client itself
/// except in FULLNAT, where it is the director's local address (LIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn<A> {
    pub client: A,
    pub vip: A,
    pub real: A,
    pub local: A,
    pub client_port: u16,
    pub vport: u16,
    pub real_port: u16,
    pub local_port: u16,
    pub protocol: u8,
    pub state: ConnState,
    pub method: Method,
    /// The entry counts as inactive on its real server (see `ConnState::is_active`).
    pub counted_inactive: bool,
    /// Service slot, for counters and scheduler state.
    pub service: u16,
    wheel_slot: u16,
    /// Real server slot, for counters.
    pub real_server: u32,
    // Maintained by the table: last activity in ticks and timer wheel links.
    last_seen: u32,
    wheel_next: u32,
    wheel_prev: u32,
}

impl<A: Address> Conn<A> {
    /// A new connection entry in its initial state, not yet in a table.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        protocol: u8,
        method: Method,
        client: (A, u16),
        vip: (A, u16),
        real: (A, u16),
        local: (A, u16),
        service: u16,
        real_server: u32,
    ) -> Conn<A> {
        let state = if protocol == crate::wire::IpProtocol::TCP.0 {
            ConnState::TcpNone
        } else {
            ConnState::Udp
        };
        Conn {
            client: client.0,
            vip: vip.0,
            real: real.0,
            local: local.0,
            client_port: client.1,
            vport: vip.1,
            real_port: real.1,
            local_port: local.1,
            protocol,
            state,
            method,
            counted_inactive: true,
            service,
            real_server,
            last_seen: 0,
            wheel_next: table::NIL,
            wheel_prev: table::NIL,
            wheel_slot: 0,
        }
    }

    /// The tuple of packets from the client.
    #[inline]
    pub fn in_key(&self) -> FlowKey<A> {
        FlowKey {
            protocol: self.protocol,
            src: self.client,
            src_port: self.client_port,
            dst: self.vip,
            dst_port: self.vport,
        }
    }

    /// The tuple of packets from the real server.
    #[inline]
    pub fn out_key(&self) -> FlowKey<A> {
        FlowKey {
            protocol: self.protocol,
            src: self.real,
            src_port: self.real_port,
            dst: self.local,
            dst_port: self.local_port,
        }
    }

    #[inline]
    pub fn key(&self, direction: Direction) -> FlowKey<A> {
        match direction {
            Direction::In => self.in_key(),
            Direction::Out => self.out_key(),
        }
    }

    /// Whether the table indexes the Out tuple (replies pass the director).
    #[inline]
    pub fn has_out_key(&self) -> bool {
        !self.method.is_input_only()
    }
}
