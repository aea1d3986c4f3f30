//! Owner steering: which worker owns a connection, and what workers tell
//! each other so that each can act alone.
//!
//! rvs's invariant is that every packet of a connection, in both
//! directions, is handled by the connection's owner, so connection tables
//! need no lock. The owner follows from any packet of the connection,
//! without a table:
//!
//! * a packet from the client (to a VIP) names its owner by its source,
//!   CIP:cport; a NAT reply (from a real server to the client) by its
//!   destination, the same CIP:cport: [`client_owner`];
//! * a FULLNAT reply goes to LIP:lport, and each worker hands out its own
//!   share of every local address's ports (`director/ports.rs`), so lport
//!   names the worker that created the connection: [`local_port_owner`];
//! * an ICMP error quoting a connection's packet is owned as that packet.
//!
//! A worker looks a packet up in its own table first; only a miss asks
//! whom the packet belongs to, so a NIC that steers every packet to its
//! owner costs nothing here. When a NIC spreads packets otherwise (RSS on
//! the whole five-tuple, a kernel fanout behind net_af_packet), the packet
//! is handed to its owner over a ring and counted.
//!
//! Neighbours are the other per-worker state that one worker learns for
//! all: an ARP reply to worker 1's request may reach worker 0. Whatever a
//! worker learns from ARP or Neighbour Discovery it publishes on the
//! [`NeighbourExchange`], and each worker adopts its peers' news in
//! housekeeping.

use std::net::IpAddr;

use crossbeam_queue::ArrayQueue;

use crate::director::ports::LOCAL_PORTS;
use crate::wire::MacAddr;

/// The worker of `workers` that owns the connections of client
/// `client:port`.
///
/// A multiplicative hash of the address folded to 64 bits and the port,
/// mapped onto the workers by the high bits (Lemire's reduction), so that
/// any number of workers gets an even share.
#[inline]
pub fn client_owner(client: IpAddr, port: u16, workers: u16) -> u16 {
    let folded = match client {
        IpAddr::V4(v4) => u64::from(v4.to_bits()),
        IpAddr::V6(v6) => {
            let bits = v6.to_bits();
            (bits as u64) ^ ((bits >> 64) as u64)
        }
    };
    let mixed =
        (folded ^ (u64::from(port) << 48) ^ u64::from(port)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let high = (mixed >> 32) as u32;
    ((u64::from(high) * u64::from(workers.max(1))) >> 32) as u16
}

/// The worker of `workers` whose share of FULLNAT local ports holds
/// `port` (worker `w` takes the ports `p` with `(p - 1024) % workers ==
/// w`); ports below that range belong to worker 0.
#[inline]
pub fn local_port_owner(port: u16, workers: u16) -> u16 {
    port.saturating_sub(*LOCAL_PORTS.start()) % workers.max(1)
}

/// A neighbour a worker learned, for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighbourNews {
    pub address: IpAddr,
    pub mac: MacAddr,
    /// Whether the news may create an entry (see
    /// `NeighbourTable::learn`), as it did for the worker that learned it.
    pub create: bool,
}

/// News a worker's inbox holds at most; more is lost (and counted), and
/// the worker resolves the neighbour itself when it needs it.
pub const NEWS_CAPACITY: usize = 256;

/// Every worker's inbox of neighbour news (see the module docs): bounded,
/// lock-free, allocated once.
#[derive(Debug)]
pub struct NeighbourExchange {
    inboxes: Box<[ArrayQueue<NeighbourNews>]>,
}

impl NeighbourExchange {
    pub fn new(workers: u16) -> NeighbourExchange {
        NeighbourExchange {
            inboxes: (0..workers.max(1))
                .map(|_| ArrayQueue::new(NEWS_CAPACITY))
                .collect(),
        }
    }

    /// Gives `news` to every worker but `from`; returns how many inboxes
    /// were full.
    pub fn publish(&self, from: u16, news: NeighbourNews) -> u64 {
        let mut lost = 0;
        for (worker, inbox) in self.inboxes.iter().enumerate() {
            if worker != usize::from(from) && inbox.push(news).is_err() {
                lost += 1;
            }
        }
        lost
    }

    /// The next news for `worker`.
    pub fn receive(&self, worker: u16) -> Option<NeighbourNews> {
        self.inboxes.get(usize::from(worker))?.pop()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn one_worker_owns_everything() {
        for port in [0, 1024, 40000, 65535] {
            assert_eq!(client_owner(Ipv4Addr::new(10, 0, 0, 1).into(), port, 1), 0);
            assert_eq!(local_port_owner(port, 1), 0);
        }
    }

    #[test]
    fn client_ports_spread_evenly_over_the_workers() {
        for workers in [2u16, 3, 8, 32] {
            let mut counts = vec![0u32; usize::from(workers)];
            for host in 0..64u32 {
                let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + host));
                for port in 32768..33792u16 {
                    counts[usize::from(client_owner(client, port, workers))] += 1;
                }
            }
            let expected = 64.0 * 1024.0 / f64::from(workers);
            for &count in &counts {
                assert!(
                    (f64::from(count) - expected).abs() < 0.05 * expected,
                    "{workers} workers: {counts:?}"
                );
            }
        }
        let v6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2));
        let owners: std::collections::HashSet<u16> = (40000..40100)
            .map(|port| client_owner(v6, port, 4))
            .collect();
        assert_eq!(owners.len(), 4);
    }

    #[test]
    fn local_ports_name_the_worker_that_handed_them_out() {
        assert_eq!(local_port_owner(1024, 4), 0);
        assert_eq!(local_port_owner(1025, 4), 1);
        assert_eq!(local_port_owner(1031, 4), 3);
        assert_eq!(local_port_owner(65535, 2), 1);
        assert_eq!(local_port_owner(80, 3), 0);
    }

    #[test]
    fn news_reaches_every_other_worker_and_overflow_is_counted() {
        let exchange = NeighbourExchange::new(3);
        let news = NeighbourNews {
            address: Ipv4Addr::new(198, 18, 1, 11).into(),
            mac: MacAddr([2, 0, 0, 0, 0, 11]),
            create: true,
        };
        assert_eq!(exchange.publish(1, news), 0);
        assert_eq!(exchange.receive(0), Some(news));
        assert_eq!(exchange.receive(1), None, "not to itself");
        assert_eq!(exchange.receive(2), Some(news));
        assert_eq!(exchange.receive(0), None);
        for _ in 0..NEWS_CAPACITY {
            exchange.publish(0, news);
        }
        assert_eq!(exchange.publish(0, news), 2, "both inboxes full");
        assert_eq!(exchange.receive(7), None);
    }
}
