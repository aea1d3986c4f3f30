//! The client side's tuples: `addresses × ports` source (address, port)
//! pairs, enumerated in a fixed order without repeats.
//!
//! Index `i` maps to address `first_address + i / ports` and port
//! `first_port + i % ports`: a bijection between `0..capacity` and the
//! tuples, so a run over `n <= capacity` consecutive indices never repeats
//! a tuple. The hot path walks it with a [`FlowCursor`], which only adds
//! and compares (no division per packet).

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// Why a client space cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("the client space is empty (no address or no port)")]
    Empty,
    #[error("{flows} flows do not fit in the client space ({capacity} address × port tuples)")]
    TooManyFlows { flows: u64, capacity: u64 },
    #[error("the client addresses run past 255.255.255.255")]
    AddressOverflow,
    #[error("the client ports run past 65535")]
    PortOverflow,
}

/// Client tuples: `addresses` consecutive IPv4 addresses from
/// `first_address`, each with `ports` consecutive ports from `first_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSpace {
    first_address: Ipv4Addr,
    addresses: u32,
    first_port: u16,
    ports: u16,
}

impl ClientSpace {
    /// Checks that the addresses and ports stay in range and that the space
    /// holds at least one tuple.
    pub fn new(
        first_address: Ipv4Addr,
        addresses: u32,
        first_port: u16,
        ports: u16,
    ) -> Result<ClientSpace, FlowError> {
        if addresses == 0 || ports == 0 {
            return Err(FlowError::Empty);
        }
        if first_address.to_bits().checked_add(addresses - 1).is_none() {
            return Err(FlowError::AddressOverflow);
        }
        if first_port.checked_add(ports - 1).is_none() {
            return Err(FlowError::PortOverflow);
        }
        Ok(ClientSpace {
            first_address,
            addresses,
            first_port,
            ports,
        })
    }

    /// Number of distinct tuples.
    pub fn capacity(&self) -> u64 {
        u64::from(self.addresses) * u64::from(self.ports)
    }

    /// The first address.
    pub fn first_address(&self) -> Ipv4Addr {
        self.first_address
    }

    /// The first port.
    pub fn first_port(&self) -> u16 {
        self.first_port
    }

    /// Whether `address` is one of the client addresses.
    pub fn contains_address(&self, address: Ipv4Addr) -> bool {
        address
            .to_bits()
            .checked_sub(self.first_address.to_bits())
            .is_some_and(|offset| offset < self.addresses)
    }

    /// The tuple of index `index` (taken modulo the capacity).
    pub fn tuple(&self, index: u64) -> (Ipv4Addr, u16) {
        let index = index % self.capacity();
        let ports = u64::from(self.ports);
        // Both quotients are below `addresses` and `ports` (u32, u16).
        let address = self.first_address.to_bits() + (index / ports) as u32;
        let port = self.first_port + (index % ports) as u16;
        (Ipv4Addr::from_bits(address), port)
    }

    /// A cursor over indices `0..limit`, wrapping to 0 after `limit - 1`.
    ///
    /// # Errors
    ///
    /// [`FlowError::TooManyFlows`] when `limit` exceeds the capacity (tuples
    /// would repeat within one round), [`FlowError::Empty`] when it is 0.
    pub fn cursor(&self, limit: u64) -> Result<FlowCursor, FlowError> {
        if limit == 0 {
            return Err(FlowError::Empty);
        }
        if limit > self.capacity() {
            return Err(FlowError::TooManyFlows {
                flows: limit,
                capacity: self.capacity(),
            });
        }
        let mut cursor = FlowCursor {
            space: *self,
            limit,
            index: 0,
            address: 0,
            port: 0,
            round: 0,
        };
        cursor.seek(0);
        Ok(cursor)
    }
}

impl fmt::Display for ClientSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last_address = Ipv4Addr::from_bits(self.first_address.to_bits() + (self.addresses - 1));
        write!(
            f,
            "{}-{} ports {}-{}",
            self.first_address,
            last_address,
            self.first_port,
            self.first_port + (self.ports - 1)
        )
    }
}

/// Walks a [`ClientSpace`] over indices `0..limit`, one tuple per call,
/// wrapping around; counts the completed rounds.
#[derive(Debug, Clone)]
pub struct FlowCursor {
    space: ClientSpace,
    limit: u64,
    index: u64,
    /// `index / ports` and `index % ports`, kept in step with `index`.
    address: u32,
    port: u16,
    round: u64,
}

impl FlowCursor {
    /// The next tuple.
    #[inline]
    pub fn next_tuple(&mut self) -> (Ipv4Addr, u16) {
        let tuple = (
            Ipv4Addr::from_bits(self.space.first_address.to_bits() + self.address),
            self.space.first_port + self.port,
        );
        self.index += 1;
        if self.index == self.limit {
            self.round += 1;
            self.seek(0);
        } else {
            self.port += 1;
            if self.port == self.space.ports {
                self.port = 0;
                self.address += 1;
            }
        }
        tuple
    }

    /// Steps back `n` tuples (those the NIC refused), so that they are
    /// sent again next and no flow is skipped in a round.
    pub fn rewind(&mut self, n: u64) {
        let n = n % self.limit;
        let total = self.round * self.limit + self.index;
        let total = total.saturating_sub(n);
        self.round = total / self.limit;
        self.seek(total % self.limit);
    }

    /// Index of the next tuple within `0..limit`.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Completed rounds over all `limit` tuples.
    pub fn rounds(&self) -> u64 {
        self.round
    }

    /// Tuples per round.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    fn seek(&mut self, index: u64) {
        let ports = u64::from(self.space.ports);
        self.index = index;
        // index < limit <= capacity, so the quotient fits the address count.
        self.address = (index / ports) as u32;
        self.port = (index % ports) as u16;
    }
}

/// How the client side spreads its frames over several queue pairs, where
/// a NIC's receive-side scaling would spread them over a forwarder's
/// workers (net_memif has none: queue `q` of one end is queue `q` of the
/// other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Steering {
    /// By a hash of the client tuple that knows nothing of the forwarder,
    /// as a NIC's RSS: each flow keeps its queue, and with `n` queues a
    /// flow's queue is its rvsd owner's about one time in `n`.
    #[default]
    Hash,
    /// To the rvsd worker that owns the flow (`dataplane::steering`), as
    /// a NIC whose RSS or rte_flow rules match rvsd's ownership.
    Owner,
}

impl Steering {
    /// The queue of `queues` that `tuple`'s frames leave on.
    #[inline]
    pub fn queue(self, tuple: (Ipv4Addr, u16), queues: u16) -> u16 {
        match self {
            Steering::Hash => {
                // A 64-bit finaliser (MurmurHash3's) of address and port,
                // onto the queues by the high bits.
                let mut x = (u64::from(tuple.0.to_bits()) << 16) | u64::from(tuple.1);
                x ^= x >> 33;
                x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
                x ^= x >> 33;
                x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
                x ^= x >> 33;
                (((x >> 32) * u64::from(queues.max(1))) >> 32) as u16
            }
            Steering::Owner => {
                dataplane::steering::client_owner(tuple.0.into(), tuple.1, queues.max(1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    /// The benchmark's 2-worker case relies on this: about half of its
    /// 1 000 flows arrive at a worker that does not own them.
    #[test]
    fn hashed_queues_are_even_and_blind_to_owners() {
        let space = space(1, 64512);
        let mut cursor = space.cursor(1000).unwrap();
        let (mut on_queue_1, mut not_owner) = (0, 0);
        for _ in 0..1000 {
            let tuple = cursor.next_tuple();
            let queue = Steering::Hash.queue(tuple, 2);
            assert!(queue < 2);
            on_queue_1 += u32::from(queue);
            not_owner += u32::from(queue != Steering::Owner.queue(tuple, 2));
            assert_eq!(Steering::Hash.queue(tuple, 1), 0);
            assert_eq!(Steering::Owner.queue(tuple, 1), 0);
        }
        assert!(
            (400..600).contains(&on_queue_1),
            "{on_queue_1} of 1000 on queue 1"
        );
        assert!(
            (400..600).contains(&not_owner),
            "{not_owner} of 1000 not at their owner"
        );
    }

    fn space(addresses: u32, ports: u16) -> ClientSpace {
        ClientSpace::new(Ipv4Addr::new(198, 19, 0, 0), addresses, 1024, ports).unwrap()
    }

    proptest! {
        /// One round of a cursor visits `limit` distinct tuples, all in the
        /// space, in the order of `tuple(i)`; the next round starts over.
        #[test]
        fn a_round_never_repeats(addresses in 1u32..40, ports in 1u16..300, fill in 0.0f64..=1.0) {
            let space = space(addresses, ports);
            let limit = ((space.capacity() as f64 * fill) as u64).max(1);
            let mut cursor = space.cursor(limit).unwrap();
            let mut seen = HashSet::new();
            for i in 0..limit {
                let tuple = cursor.next_tuple();
                prop_assert_eq!(tuple, space.tuple(i));
                prop_assert!(space.contains_address(tuple.0));
                prop_assert!(tuple.1 >= 1024 && tuple.1 < 1024 + ports);
                prop_assert!(seen.insert(tuple), "repeated {:?}", tuple);
            }
            prop_assert_eq!(cursor.rounds(), 1);
            prop_assert_eq!(cursor.next_tuple(), space.tuple(0));
        }

        /// Rewinding by n after k steps gives the tuple of step k - n.
        #[test]
        fn rewind_resends_the_refused(limit in 1u64..500, steps in 0u64..2000, back in 0u64..64) {
            let space = space(7, 100);
            let mut cursor = space.cursor(limit).unwrap();
            for _ in 0..steps {
                cursor.next_tuple();
            }
            cursor.rewind(back.min(steps).min(limit - 1));
            let expected = (steps - back.min(steps).min(limit - 1)) % limit;
            prop_assert_eq!(cursor.next_tuple(), space.tuple(expected));
        }
    }

    #[test]
    fn a_million_flows_are_distinct() {
        let space = space(16, 62500);
        let mut cursor = space.cursor(1_000_000).unwrap();
        let mut seen = HashSet::with_capacity(1_000_000);
        for _ in 0..1_000_000 {
            assert!(seen.insert(cursor.next_tuple()));
        }
    }

    #[test]
    fn bounds_are_checked() {
        let first = Ipv4Addr::new(255, 255, 255, 250);
        assert_eq!(
            ClientSpace::new(first, 10, 1, 1),
            Err(FlowError::AddressOverflow)
        );
        assert_eq!(
            ClientSpace::new(first, 1, 65000, 1000),
            Err(FlowError::PortOverflow)
        );
        assert_eq!(ClientSpace::new(first, 0, 1, 1), Err(FlowError::Empty));
        assert!(matches!(
            space(2, 10).cursor(21),
            Err(FlowError::TooManyFlows { .. })
        ));
    }
}
