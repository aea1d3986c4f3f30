//! FULLNAT's local ports: which (LIP, port) a new connection takes as its
//! source towards the real server.
//!
//! Each worker has its own share of every local address's ports (worker
//! `w` of `n` takes the ports `p` with `(p - 1024) % n == w`), so that a
//! reply to LIP:port names the worker that owns its connection and two
//! workers never hand out the same tuple. A worker keeps each address's
//! free ports in a FIFO ring, preallocated: a released port goes to the
//! back, so it rests as long as possible before it is used again (a real
//! server may still hold the old connection in TIME_WAIT).

use std::net::IpAddr;
use std::ops::RangeInclusive;

use crate::family::Family;

/// The ports FULLNAT hands out on every local address.
pub const LOCAL_PORTS: RangeInclusive<u16> = 1024..=65535;
/// Local addresses of one family a worker can serve at once.
const MAX_LOCAL_ADDRESSES: usize = 8;

#[derive(Debug)]
struct Pool<A> {
    /// `UNSPECIFIED` while unused.
    address: A,
    free: Box<[u16]>,
    head: usize,
    len: usize,
}

impl<A: Family> Pool<A> {
    fn fill(&mut self, address: A, worker: u16, workers: u16) {
        let mut len = 0;
        for port in LOCAL_PORTS
            .skip(usize::from(worker))
            .step_by(usize::from(workers.max(1)))
        {
            self.free[len] = port;
            len += 1;
        }
        self.address = address;
        self.head = 0;
        self.len = len;
    }

    fn is_idle(&self, capacity: usize) -> bool {
        self.len == capacity
    }
}

/// One worker's local ports of one address family (see the module docs).
#[derive(Debug)]
pub(super) struct LocalPorts<A> {
    pools: Vec<Pool<A>>,
    capacity: usize,
    worker: u16,
    workers: u16,
    /// Where the next allocation starts among a service's addresses.
    rotation: usize,
}

impl<A: Family> LocalPorts<A> {
    pub(super) fn new(worker: u16, workers: u16) -> LocalPorts<A> {
        let workers = workers.max(1);
        let capacity = LOCAL_PORTS
            .skip(usize::from(worker))
            .step_by(usize::from(workers))
            .count();
        LocalPorts {
            pools: (0..MAX_LOCAL_ADDRESSES)
                .map(|_| Pool {
                    address: A::UNSPECIFIED,
                    free: vec![0; capacity].into_boxed_slice(),
                    head: 0,
                    len: 0,
                })
                .collect(),
            capacity,
            worker,
            workers,
            rotation: 0,
        }
    }

    /// Serves `addresses` (the configuration's local addresses): a pool
    /// that serves one already keeps its state; a new address takes an
    /// unused pool, or one whose address left the configuration and whose
    /// ports all came back. False if some address found no pool.
    pub(super) fn assign(&mut self, addresses: impl IntoIterator<Item = A>) -> bool {
        let mut all = true;
        for address in addresses {
            if self.pools.iter().any(|pool| pool.address == address) {
                continue;
            }
            let capacity = self.capacity;
            let spare = self
                .pools
                .iter()
                .position(|pool| pool.address == A::UNSPECIFIED)
                .or_else(|| self.pools.iter().position(|pool| pool.is_idle(capacity)));
            match spare {
                Some(index) => self.pools[index].fill(address, self.worker, self.workers),
                None => all = false,
            }
        }
        all
    }

    /// Whether `address` is a local address this worker hands ports of.
    pub(super) fn serves(&self, address: A) -> bool {
        address != A::UNSPECIFIED && self.pools.iter().any(|pool| pool.address == address)
    }

    /// Takes a free port on one of `addresses` (those of this family),
    /// rotating among them; `None` when all are exhausted.
    pub(super) fn allocate(&mut self, addresses: &[IpAddr]) -> Option<(A, u16)> {
        let count = addresses.len();
        for step in 0..count {
            let Some(address) = A::from_ip(addresses[(self.rotation + step) % count]) else {
                continue;
            };
            let Some(pool) = self.pools.iter_mut().find(|pool| pool.address == address) else {
                continue;
            };
            if pool.len == 0 {
                continue;
            }
            let port = pool.free[pool.head];
            pool.head = (pool.head + 1) % pool.free.len();
            pool.len -= 1;
            self.rotation = self.rotation.wrapping_add(1);
            return Some((address, port));
        }
        None
    }

    /// Gives a port back when its connection ends.
    pub(super) fn release(&mut self, address: A, port: u16) {
        let capacity = self.capacity;
        if let Some(pool) = self.pools.iter_mut().find(|pool| pool.address == address)
            && pool.len < capacity
        {
            let tail = (pool.head + pool.len) % capacity;
            pool.free[tail] = port;
            pool.len += 1;
        }
    }

    /// Free ports left on `address`.
    #[cfg(test)]
    pub(super) fn available(&self, address: A) -> usize {
        self.pools
            .iter()
            .find(|pool| pool.address == address)
            .map_or(0, |pool| pool.len)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    use super::*;

    const LIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 100);
    const OTHER: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 101);

    #[test]
    fn workers_share_the_ports_without_overlap() {
        let mut seen = HashSet::new();
        for worker in 0..3 {
            let mut ports: LocalPorts<Ipv4Addr> = LocalPorts::new(worker, 3);
            assert!(ports.assign([LIP]));
            while let Some((address, port)) = ports.allocate(&[IpAddr::V4(LIP)]) {
                assert_eq!(address, LIP);
                assert_eq!((port - 1024) % 3, worker);
                assert!(seen.insert(port), "port {port} handed out twice");
            }
        }
        assert_eq!(seen.len(), LOCAL_PORTS.count());
    }

    #[test]
    fn released_ports_go_to_the_back_and_exhaustion_is_reported() {
        let mut ports: LocalPorts<Ipv4Addr> = LocalPorts::new(0, 1);
        ports.assign([LIP]);
        let first = ports.allocate(&[IpAddr::V4(LIP)]).unwrap();
        ports.release(first.0, first.1);
        let second = ports.allocate(&[IpAddr::V4(LIP)]).unwrap();
        assert_ne!(first, second, "a released port rests before reuse");
        let available = ports.available(LIP);
        for _ in 0..available {
            assert!(ports.allocate(&[IpAddr::V4(LIP)]).is_some());
        }
        assert_eq!(ports.allocate(&[IpAddr::V4(LIP)]), None);
        assert_eq!(ports.allocate(&[IpAddr::V4(OTHER)]), None, "not served");
    }

    #[test]
    fn allocation_rotates_among_a_services_addresses() {
        let mut ports: LocalPorts<Ipv4Addr> = LocalPorts::new(0, 1);
        ports.assign([LIP, OTHER]);
        let addresses = [IpAddr::V4(LIP), IpAddr::V4(OTHER)];
        let picked: Vec<Ipv4Addr> = (0..4)
            .map(|_| ports.allocate(&addresses).unwrap().0)
            .collect();
        assert_eq!(picked, [LIP, OTHER, LIP, OTHER]);
    }

    #[test]
    fn a_departed_address_keeps_its_pool_until_its_ports_return() {
        let mut ports: LocalPorts<Ipv4Addr> = LocalPorts::new(0, 1);
        let addresses: Vec<Ipv4Addr> = (1..=MAX_LOCAL_ADDRESSES as u8)
            .map(|i| Ipv4Addr::new(10, 0, 0, i))
            .collect();
        assert!(ports.assign(addresses.iter().copied()));
        let (busy, port) = ports.allocate(&[IpAddr::V4(addresses[0])]).unwrap();
        let newcomer = Ipv4Addr::new(10, 0, 1, 1);
        // Every pool is taken; the others' addresses are gone and idle.
        assert!(ports.assign([busy, newcomer]));
        assert_eq!(ports.available(newcomer), ports.capacity);
        ports.release(busy, port);
        assert_eq!(ports.available(busy), ports.capacity);
    }
}
