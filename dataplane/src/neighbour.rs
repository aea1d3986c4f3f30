//! The neighbour table: MAC addresses of next hops (real servers, gateways,
//! clients on a connected subnet), learned by ARP for IPv4 and Neighbour
//! Discovery for IPv6 (one table per family).
//!
//! A fixed-capacity open-addressing table, so that the lookup on every
//! forwarded packet is a multiply and one or two compares. Entries are
//! created when the director needs a next hop (and when an on-link host
//! asks for one of the director's addresses), confirmed by ARP replies,
//! probed again during the second half of their lifetime while they are in
//! use, and dropped if no confirmation comes before they time out. Removal
//! rebuilds the table in place from a preallocated scratch copy; it happens
//! at most once per housekeeping pass, never on a packet.
//!
//! Static neighbours from the configuration are *pinned*: used as they
//! are, never probed, never changed by ARP and never expired (as Linux's
//! permanent entries).

use crate::family::Family;
use crate::time::{Duration, Instant};
use crate::wire::MacAddr;

/// Minimum spacing of ARP probes for one address.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long an unresolved entry is kept after its last probe.
const INCOMPLETE_LIFETIME: Duration = Duration::from_secs(3);

/// What the table knows of a next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Use this MAC; `probe` asks for a refresh probe to be sent (the entry
    /// is in the second half of its lifetime). Until `fresh_until` (and
    /// while the table's generation stays the same) the answer cannot
    /// change, so callers may remember it.
    Known {
        mac: MacAddr,
        probe: bool,
        fresh_until: Instant,
    },
    /// Not resolved; `probe` asks for an ARP request to be sent now.
    Unknown { probe: bool },
    /// Unresolved and the table is full: nothing can be remembered.
    TableFull,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry<A> {
    /// `UNSPECIFIED` marks an empty slot (never a neighbour's address).
    address: A,
    mac: Option<MacAddr>,
    confirmed: Instant,
    probed: Option<Instant>,
    pinned: bool,
}

impl<A: Family> Entry<A> {
    const EMPTY: Entry<A> = Entry {
        address: A::UNSPECIFIED,
        mac: None,
        confirmed: Instant(0),
        probed: None,
        pinned: false,
    };

    fn is_empty(&self) -> bool {
        self.address == A::UNSPECIFIED
    }
}

#[derive(Debug)]
pub struct NeighbourTable<A> {
    entries: Box<[Entry<A>]>,
    /// Changes whenever a MAC is learnt, changed or forgotten.
    generation: u64,
    scratch: Box<[Entry<A>]>,
    len: usize,
    capacity: usize,
    shift: u32,
}

impl<A: Family> NeighbourTable<A> {
    /// A table for up to `capacity` neighbours.
    pub fn new(capacity: usize) -> NeighbourTable<A> {
        let capacity = capacity.max(1);
        let slots = (capacity * 2).next_power_of_two();
        NeighbourTable {
            entries: vec![Entry::EMPTY; slots].into_boxed_slice(),
            generation: 0,
            scratch: vec![Entry::EMPTY; slots].into_boxed_slice(),
            len: 0,
            capacity,
            shift: 32 - slots.trailing_zeros(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// A number that changes whenever an answer of [`resolve`](Self::resolve)
    /// may have changed other than by time passing.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Looks up a next hop for a packet about to leave, creating an
    /// unresolved entry if there is none, and says whether to probe.
    #[inline]
    pub fn resolve(&mut self, now: Instant, address: A, timeout: Duration) -> Resolution {
        let Some(slot) = self.find_or_insert(address) else {
            return Resolution::TableFull;
        };
        let entry = &mut self.entries[slot];
        if let (true, Some(mac)) = (entry.pinned, entry.mac) {
            return Resolution::Known {
                mac,
                probe: false,
                fresh_until: Instant(u64::MAX),
            };
        }
        let probe_due = entry
            .probed
            .is_none_or(|at| now.saturating_since(at) >= PROBE_INTERVAL);
        match entry.mac {
            Some(mac) if now.saturating_since(entry.confirmed) < timeout => {
                let ageing = now.saturating_since(entry.confirmed).0 >= timeout.0 / 2;
                let probe = ageing && probe_due;
                if probe {
                    entry.probed = Some(now);
                }
                Resolution::Known {
                    mac,
                    probe,
                    fresh_until: entry.confirmed + Duration(timeout.0 / 2),
                }
            }
            _ => {
                entry.mac = None;
                if probe_due {
                    entry.probed = Some(now);
                }
                Resolution::Unknown { probe: probe_due }
            }
        }
    }

    /// The MAC of a resolved, unexpired neighbour, without side effects.
    #[inline]
    pub fn get(&self, now: Instant, address: A, timeout: Duration) -> Option<MacAddr> {
        let entry = &self.entries[self.find(address)?];
        entry
            .mac
            .filter(|_| entry.pinned || now.saturating_since(entry.confirmed) < timeout)
    }

    /// Records that `address` is at `mac` (from an ARP packet). Existing
    /// entries are updated; a new one is created only if `create`. Returns
    /// whether the entry was unresolved before (packets may be waiting).
    pub fn learn(&mut self, now: Instant, address: A, mac: MacAddr, create: bool) -> bool {
        if address == A::UNSPECIFIED || !mac.is_unicast() {
            return false;
        }
        let slot = if create {
            self.find_or_insert(address)
        } else {
            self.find(address)
        };
        let Some(slot) = slot else {
            return false;
        };
        let entry = &mut self.entries[slot];
        if entry.pinned {
            return false;
        }
        let was_unresolved = entry.mac.is_none();
        entry.mac = Some(mac);
        entry.confirmed = now;
        entry.probed = None;
        self.generation += 1;
        was_unresolved
    }

    /// Drops entries that timed out or stayed unresolved; returns how many.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> usize {
        let stale = |entry: &Entry<A>| {
            !entry.is_empty()
                && !entry.pinned
                && match entry.mac {
                    Some(_) => {
                        now.saturating_since(entry.confirmed).0 >= timeout.0.saturating_mul(2)
                    }
                    None => entry
                        .probed
                        .is_none_or(|at| now.saturating_since(at) >= INCOMPLETE_LIFETIME),
                }
        };
        let removed = self.entries.iter().filter(|e| stale(e)).count();
        if removed > 0 {
            self.generation += 1;
            self.scratch.copy_from_slice(&self.entries);
            self.entries.fill(Entry::EMPTY);
            self.len = 0;
            for i in 0..self.scratch.len() {
                let entry = self.scratch[i];
                if !entry.is_empty()
                    && !stale(&entry)
                    && let Some(slot) = self.find_or_insert(entry.address)
                {
                    self.entries[slot] = entry;
                }
            }
        }
        removed
    }

    /// Makes exactly these neighbours the pinned ones: each is installed
    /// (or updated) and pinned; previously pinned entries not listed become
    /// ordinary ones, to be confirmed or forgotten. Returns whether every
    /// neighbour found room.
    pub fn pin(
        &mut self,
        now: Instant,
        neighbours: impl IntoIterator<Item = (A, MacAddr)>,
    ) -> bool {
        self.generation += 1;
        for entry in self.entries.iter_mut().filter(|e| e.pinned) {
            entry.pinned = false;
            entry.confirmed = now;
        }
        let mut all = true;
        for (address, mac) in neighbours {
            match self.find_or_insert(address) {
                Some(slot) => {
                    let entry = &mut self.entries[slot];
                    entry.mac = Some(mac);
                    entry.pinned = true;
                    entry.probed = None;
                }
                None => all = false,
            }
        }
        all
    }

    /// Every entry: address and MAC if resolved.
    pub fn iter(&self) -> impl Iterator<Item = (A, Option<MacAddr>)> + '_ {
        self.entries
            .iter()
            .filter(|e| !e.is_empty())
            .map(|e| (e.address, e.mac))
    }

    #[inline]
    fn home(&self, address: A) -> usize {
        let hash = (address.fold() as u32).wrapping_mul(0x9E37_79B1);
        (hash >> self.shift) as usize
    }

    #[inline]
    fn find(&self, address: A) -> Option<usize> {
        let mask = self.entries.len() - 1;
        let mut slot = self.home(address);
        loop {
            let entry = &self.entries[slot];
            if entry.address == address {
                return Some(slot);
            }
            if entry.is_empty() {
                return None;
            }
            slot = (slot + 1) & mask;
        }
    }

    fn find_or_insert(&mut self, address: A) -> Option<usize> {
        if address == A::UNSPECIFIED {
            return None;
        }
        if let Some(slot) = self.find(address) {
            return Some(slot);
        }
        if self.len >= self.capacity {
            return None;
        }
        let mask = self.entries.len() - 1;
        let mut slot = self.home(address);
        while !self.entries[slot].is_empty() {
            slot = (slot + 1) & mask;
        }
        self.entries[slot] = Entry {
            address,
            ..Entry::EMPTY
        };
        self.len += 1;
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(300);
    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 11]);

    fn at(secs: u64) -> Instant {
        Instant(0) + Duration::from_secs(secs)
    }

    #[test]
    fn unknown_neighbours_are_probed_at_most_once_a_second() {
        let mut table = NeighbourTable::<Ipv4Addr>::new(8);
        let rs = Ipv4Addr::new(198, 18, 1, 11);
        assert_eq!(
            table.resolve(at(1), rs, TIMEOUT),
            Resolution::Unknown { probe: true }
        );
        assert_eq!(
            table.resolve(at(1), rs, TIMEOUT),
            Resolution::Unknown { probe: false }
        );
        assert_eq!(
            table.resolve(at(2), rs, TIMEOUT),
            Resolution::Unknown { probe: true }
        );
        assert!(table.learn(at(2), rs, MAC, false), "was waiting");
        assert_eq!(
            table.resolve(at(3), rs, TIMEOUT),
            Resolution::Known {
                mac: MAC,
                probe: false,
                fresh_until: at(152)
            }
        );
    }

    #[test]
    fn entries_are_refreshed_in_their_second_half_and_lapse_unconfirmed() {
        let mut table = NeighbourTable::<Ipv4Addr>::new(8);
        let rs = Ipv4Addr::new(198, 18, 1, 11);
        table.learn(at(0), rs, MAC, true);
        assert_eq!(
            table.resolve(at(100), rs, TIMEOUT),
            Resolution::Known {
                mac: MAC,
                probe: false,
                fresh_until: at(150)
            }
        );
        assert_eq!(
            table.resolve(at(200), rs, TIMEOUT),
            Resolution::Known {
                mac: MAC,
                probe: true,
                fresh_until: at(150)
            }
        );
        assert_eq!(
            table.resolve(at(200), rs, TIMEOUT),
            Resolution::Known {
                mac: MAC,
                probe: false,
                fresh_until: at(150)
            }
        );
        assert_eq!(
            table.resolve(at(301), rs, TIMEOUT),
            Resolution::Unknown { probe: true }
        );
        assert_eq!(table.get(at(301), rs, TIMEOUT), None);
    }

    #[test]
    fn learning_updates_only_known_neighbours_unless_asked() {
        let mut table = NeighbourTable::<Ipv4Addr>::new(8);
        let host = Ipv4Addr::new(198, 18, 0, 2);
        assert!(!table.learn(at(0), host, MAC, false));
        assert_eq!(table.get(at(0), host, TIMEOUT), None);
        table.learn(at(0), host, MAC, true);
        assert_eq!(table.get(at(0), host, TIMEOUT), Some(MAC));
        assert!(
            !table.learn(at(0), host, MacAddr::BROADCAST, true),
            "no broadcast MACs"
        );
    }

    #[test]
    fn pinned_neighbours_are_used_as_given_and_never_expire() {
        let mut table = NeighbourTable::<Ipv4Addr>::new(8);
        let rs = Ipv4Addr::new(198, 18, 1, 11);
        let other = MacAddr([2, 0, 0, 0, 9, 9]);
        assert!(table.pin(at(0), [(rs, MAC)]));
        assert_eq!(
            table.resolve(at(5000), rs, TIMEOUT),
            Resolution::Known {
                mac: MAC,
                probe: false,
                fresh_until: Instant(u64::MAX)
            }
        );
        assert!(
            !table.learn(at(5000), rs, other, true),
            "ARP does not change it"
        );
        assert_eq!(table.expire(at(100_000), TIMEOUT), 0);
        assert_eq!(table.get(at(100_000), rs, TIMEOUT), Some(MAC));
        // Unpinned by the next configuration: an ordinary entry again.
        assert!(table.pin(at(100_000), []));
        table.learn(at(100_001), rs, other, false);
        assert_eq!(table.get(at(100_001), rs, TIMEOUT), Some(other));
    }

    #[test]
    fn a_full_table_refuses_and_expiry_makes_room() {
        let mut table = NeighbourTable::<Ipv4Addr>::new(2);
        let a = Ipv4Addr::new(198, 18, 1, 1);
        let b = Ipv4Addr::new(198, 18, 1, 2);
        let c = Ipv4Addr::new(198, 18, 1, 3);
        table.learn(at(0), a, MAC, true);
        table.resolve(at(0), b, TIMEOUT);
        assert_eq!(table.resolve(at(0), c, TIMEOUT), Resolution::TableFull);
        assert_eq!(table.expire(at(4), TIMEOUT), 1, "b never resolved");
        assert_eq!(table.len(), 1);
        assert_eq!(table.get(at(4), a, TIMEOUT), Some(MAC));
        assert_eq!(
            table.resolve(at(5), c, TIMEOUT),
            Resolution::Unknown { probe: true }
        );
        assert_eq!(table.expire(at(700), TIMEOUT), 2);
        assert!(table.is_empty());
    }
}
