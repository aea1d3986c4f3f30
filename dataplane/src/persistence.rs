//! Persistence templates (`ipvsadm -p timeout -M netmask`): which real
//! server a client, its address masked to the netmask, was sent to.
//!
//! IPVS keeps a template connection per (client network, service) so
//! that every connection of that client goes to the same real server until
//! the template expires. rvs's workers each own their connection table,
//! but RSS spreads one client's connections (different source ports) over
//! all of them, so the templates live in one table that every worker reads
//! and writes, lock-free:
//!
//! - An entry is one 128-bit word, changed only by compare-and-swap:
//!   a 48-bit fingerprint of (service, masked client), the service slot,
//!   the real server slot and the expiry second. Workers look templates up
//!   by fingerprint alone; a false match needs two of a service's clients
//!   to agree on 48 hash bits within one 8-entry window.
//! - The client address itself sits beside the entry, written after the
//!   entry is claimed, only for listings: a reader takes an address only
//!   if it hashes to the entry's fingerprint, so it never shows one that
//!   is half written or belongs to a previous occupant.
//! - Two workers scheduling the same new client at once both try to place
//!   a template; the second finds the first's (or loses the CAS and finds
//!   it on the retry) and adopts its real server, so the client still
//!   sees one real server.
//! - Entries are never freed: an expired entry is free space. When all
//!   eight entries a key may use are live, the one closest to expiry is
//!   evicted (and counted by the caller).
//!
//! Time is in whole seconds since the director's clock origin: templates
//! last minutes, and a 32-bit second count lasts a century.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};

use portable_atomic::AtomicU128;

use crate::family::Family;
use crate::time::Instant;

/// Entries per 64-byte cache line.
const BUCKET: usize = 4;
/// Entries a key may occupy: its home bucket and the next one.
const WINDOW: usize = 2 * BUCKET;
/// Placement attempts before giving up under contention.
const ATTEMPTS: usize = 4;

const FINGERPRINT_BITS: u32 = 48;
const FINGERPRINT_MASK: u64 = (1 << FINGERPRINT_BITS) - 1;

/// A whole second on the director's clock.
pub fn seconds(now: Instant) -> u32 {
    u32::try_from(now.0 / 1_000_000_000).unwrap_or(u32::MAX)
}

/// What a template is looked up and placed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateKey {
    service: u16,
    /// The masked client address; IPv4 as an IPv4-mapped IPv6 address.
    client: u128,
    fingerprint: u64,
    home: usize,
}

impl TemplateKey {
    /// The key of `client` at `service`, keeping `prefix` bits of the
    /// address (`-M`).
    pub fn new<A: Family>(
        templates: &Templates,
        service: u16,
        client: A,
        prefix: u8,
    ) -> TemplateKey {
        let host_bits = A::BITS - u32::from(prefix).min(A::BITS);
        let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
        let mut bits = client.to_bits() & mask;
        if A::BITS == 32 {
            bits |= 0xffff << 32;
        }
        templates.key(service, bits)
    }
}

/// What [`Templates::place`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The template now names the given real server; `evicted` says that
    /// a live template of another client made room for it.
    Placed { evicted: bool },
    /// Another worker placed a template for this client first: use its
    /// real server.
    Adopted(u32),
    /// Contention on every attempt: the connection goes without one.
    Unplaced,
}

/// A live template, as `rvsadm -Lnc` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    pub service: u16,
    /// The masked client address.
    pub client: IpAddr,
    pub real_server: u32,
    /// The second it expires, on the director's clock.
    pub expires: u32,
}

/// An entry's fields, unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    fingerprint: u64,
    service: u16,
    real_server: u32,
    expires: u32,
}

impl Entry {
    fn unpack(word: u128) -> Entry {
        Entry {
            fingerprint: word as u64 & FINGERPRINT_MASK,
            service: (word >> 48) as u16,
            real_server: (word >> 64) as u32,
            expires: (word >> 96) as u32,
        }
    }

    fn pack(self) -> u128 {
        u128::from(self.fingerprint)
            | u128::from(self.service) << 48
            | u128::from(self.real_server) << 64
            | u128::from(self.expires) << 96
    }

    fn is_for(&self, key: &TemplateKey) -> bool {
        self.fingerprint == key.fingerprint && self.service == key.service
    }

    /// Empty entries (all zero) never are.
    fn is_live(&self, now: u32) -> bool {
        self.expires > now
    }
}

/// The persistence templates of every service, shared by all workers.
pub struct Templates {
    entries: Box<[AtomicU128]>,
    /// The masked client of each entry, for listings.
    clients: Box<[[AtomicU64; 2]]>,
    bucket_mask: usize,
    seed: u64,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("capacity", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Templates {
    /// Room for at least `capacity` templates (rounded up to a power of
    /// two, at least two buckets). `seed` keys the hash.
    pub fn new(capacity: u32, seed: u64) -> Templates {
        let len = (capacity as usize).max(WINDOW).next_power_of_two();
        Templates {
            entries: (0..len).map(|_| AtomicU128::new(0)).collect(),
            clients: (0..len)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
            bucket_mask: len / BUCKET - 1,
            seed,
        }
    }

    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    pub fn memory_bytes(&self) -> usize {
        self.entries.len()
            * (std::mem::size_of::<AtomicU128>() + std::mem::size_of::<[AtomicU64; 2]>())
    }

    fn key(&self, service: u16, client: u128) -> TemplateKey {
        let hash = mix(mix(self.seed ^ u64::from(service)) ^ client as u64) ^ (client >> 64) as u64;
        let hash = mix(hash);
        TemplateKey {
            service,
            client,
            // Never zero, so an empty entry matches no key.
            fingerprint: (hash >> (64 - FINGERPRINT_BITS)) | 1,
            home: hash as usize & self.bucket_mask,
        }
    }

    fn window(&self, key: &TemplateKey) -> impl Iterator<Item = usize> + use<> {
        let first = key.home * BUCKET;
        let len = self.entries.len();
        (0..WINDOW).map(move |i| (first + i) & (len - 1))
    }

    /// The real server of `key`'s live template.
    pub fn lookup(&self, key: &TemplateKey, now: u32) -> Option<u32> {
        self.window(key)
            .map(|i| Entry::unpack(self.entries[i].load(Ordering::Acquire)))
            .find(|entry| entry.is_for(key) && entry.is_live(now))
            .map(|entry| entry.real_server)
    }

    /// Makes `key`'s template name `real_server` until `expires`, unless
    /// another worker placed a live one first (naming anything but
    /// `stale`, a real server the caller found gone).
    pub fn place(
        &self,
        key: &TemplateKey,
        real_server: u32,
        expires: u32,
        now: u32,
        stale: Option<u32>,
    ) -> Placement {
        let wanted = Entry {
            fingerprint: key.fingerprint,
            service: key.service,
            real_server,
            expires,
        }
        .pack();
        for _ in 0..ATTEMPTS {
            let mut victim: Option<(usize, u128, Entry)> = None;
            for i in self.window(key) {
                let word = self.entries[i].load(Ordering::Acquire);
                let entry = Entry::unpack(word);
                if entry.is_for(key) {
                    if entry.is_live(now) && Some(entry.real_server) != stale {
                        return Placement::Adopted(entry.real_server);
                    }
                    victim = Some((i, word, entry));
                    break;
                }
                // First free entry, else the live one closest to expiry:
                // workers racing for the same key choose the same one.
                let better = match victim {
                    None => true,
                    Some((_, _, chosen)) => chosen.is_live(now) && entry.expires < chosen.expires,
                };
                if better {
                    victim = Some((i, word, entry));
                }
            }
            let Some((i, word, entry)) = victim else {
                continue;
            };
            if self.entries[i]
                .compare_exchange(word, wanted, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                let client = &self.clients[i];
                client[0].store(key.client as u64, Ordering::Release);
                client[1].store((key.client >> 64) as u64, Ordering::Release);
                return Placement::Placed {
                    evicted: entry.is_live(now) && !entry.is_for(key),
                };
            }
        }
        Placement::Unplaced
    }

    /// Pushes the expiry of `key`'s template to `expires` if that is
    /// later; a template that was evicted meanwhile stays gone.
    pub fn extend(&self, key: &TemplateKey, expires: u32) {
        for i in self.window(key) {
            let mut word = self.entries[i].load(Ordering::Acquire);
            loop {
                let entry = Entry::unpack(word);
                if !entry.is_for(key) {
                    break;
                }
                if entry.expires >= expires {
                    return;
                }
                let longer = Entry { expires, ..entry }.pack();
                match self.entries[i].compare_exchange_weak(
                    word,
                    longer,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return,
                    Err(now_there) => word = now_there,
                }
            }
        }
    }

    /// Calls `visit` with each live template from entry `cursor` on, at
    /// most `limit` of them; returns the cursor to continue from, or
    /// `None` at the end. A template placed or moved during a scan may be
    /// missed or seen twice, like any listing of a changing table.
    pub fn scan(
        &self,
        cursor: usize,
        limit: usize,
        now: u32,
        mut visit: impl FnMut(Template),
    ) -> Option<usize> {
        let mut seen = 0;
        for i in cursor..self.entries.len() {
            if seen == limit {
                return Some(i);
            }
            let entry = Entry::unpack(self.entries[i].load(Ordering::Acquire));
            if !entry.is_live(now) {
                continue;
            }
            let client = u128::from(self.clients[i][0].load(Ordering::Acquire))
                | u128::from(self.clients[i][1].load(Ordering::Acquire)) << 64;
            // The address is the entry's only if it hashes to it (it is
            // written just after the entry is claimed).
            if !entry.is_for(&self.key(entry.service, client)) {
                continue;
            }
            seen += 1;
            visit(Template {
                service: entry.service,
                client: IpAddr::V6(Ipv6Addr::from_bits(client)).to_canonical(),
                real_server: entry.real_server,
                expires: entry.expires,
            });
        }
        None
    }
}

/// A worker's memory of the templates it extended this second, so that
/// the packets of persistent connections write the shared table at most
/// once a second per template and worker, not once a packet.
#[derive(Debug)]
pub struct RecentExtensions {
    /// (fingerprint and service, second), direct-mapped by fingerprint.
    slots: Box<[(u64, u32)]>,
}

impl Default for RecentExtensions {
    fn default() -> Self {
        RecentExtensions {
            slots: vec![(0, 0); 256].into_boxed_slice(),
        }
    }
}

impl RecentExtensions {
    /// Whether `key` is not yet extended in second `now`; remembers that
    /// it is from now on.
    pub fn first_this_second(&mut self, key: &TemplateKey, now: u32) -> bool {
        let tag = key.fingerprint << 16 | u64::from(key.service);
        let slot = &mut self.slots[key.fingerprint as usize & 0xff];
        if *slot == (tag, now) {
            return false;
        }
        *slot = (tag, now);
        true
    }
}

/// A 64-bit mixing step (a folded 128-bit multiply).
#[inline]
fn mix(x: u64) -> u64 {
    let product = u128::from(x) * 0x9E37_79B9_7F4A_7C15;
    (product as u64) ^ (product >> 64) as u64
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use super::*;

    const NOW: u32 = 1000;

    fn key4(templates: &Templates, client: [u8; 4], prefix: u8) -> TemplateKey {
        TemplateKey::new(templates, 3, Ipv4Addr::from(client), prefix)
    }

    fn all(templates: &Templates, now: u32) -> Vec<Template> {
        let mut found = Vec::new();
        let mut cursor = Some(0);
        while let Some(from) = cursor {
            cursor = templates.scan(from, 7, now, |t| found.push(t));
        }
        found
    }

    #[test]
    fn a_placed_template_is_found_until_it_expires() {
        let templates = Templates::new(1024, 1);
        let key = key4(&templates, [198, 19, 0, 5], 32);
        assert_eq!(templates.lookup(&key, NOW), None);
        assert_eq!(
            templates.place(&key, 11, NOW + 300, NOW, None),
            Placement::Placed { evicted: false }
        );
        assert_eq!(templates.lookup(&key, NOW + 299), Some(11));
        assert_eq!(templates.lookup(&key, NOW + 300), None);
        templates.extend(&key, NOW + 600);
        assert_eq!(templates.lookup(&key, NOW + 599), Some(11));
        // An expired template is replaced, not adopted.
        assert_eq!(
            templates.place(&key, 12, NOW + 900, NOW + 600, None),
            Placement::Placed { evicted: false }
        );
        assert_eq!(templates.lookup(&key, NOW + 601), Some(12));
    }

    #[test]
    fn the_netmask_groups_clients_and_services_stay_apart() {
        let templates = Templates::new(1024, 1);
        let a = key4(&templates, [198, 19, 7, 1], 24);
        let b = key4(&templates, [198, 19, 7, 200], 24);
        let c = key4(&templates, [198, 19, 8, 1], 24);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let other_service = TemplateKey::new(&templates, 4, Ipv4Addr::new(198, 19, 7, 1), 24);
        templates.place(&a, 11, NOW + 60, NOW, None);
        assert_eq!(templates.lookup(&b, NOW), Some(11));
        assert_eq!(templates.lookup(&c, NOW), None);
        assert_eq!(templates.lookup(&other_service, NOW), None);
        let v6 = |s: &str| TemplateKey::new(&templates, 3, s.parse::<Ipv6Addr>().unwrap(), 64);
        assert_eq!(v6("fd00::1"), v6("fd00::ffff:1"));
        assert_ne!(v6("fd00::1"), v6("fd00:0:0:1::1"));
    }

    #[test]
    fn a_second_placement_adopts_the_first_unless_told_it_is_stale() {
        let templates = Templates::new(1024, 1);
        let key = key4(&templates, [198, 19, 0, 5], 32);
        templates.place(&key, 11, NOW + 300, NOW, None);
        assert_eq!(
            templates.place(&key, 12, NOW + 300, NOW, None),
            Placement::Adopted(11)
        );
        assert_eq!(
            templates.place(&key, 12, NOW + 300, NOW, Some(11)),
            Placement::Placed { evicted: false }
        );
        assert_eq!(templates.lookup(&key, NOW), Some(12));
        assert_eq!(all(&templates, NOW).len(), 1, "replaced in place");
    }

    #[test]
    fn a_full_window_evicts_the_template_closest_to_expiry() {
        // Two buckets: every key shares the one window.
        let templates = Templates::new(8, 1);
        assert_eq!(templates.capacity(), 8);
        let keys: Vec<TemplateKey> = (0..9)
            .map(|i| key4(&templates, [10, 0, 0, i], 32))
            .collect();
        for (i, key) in keys[..8].iter().enumerate() {
            let expires = NOW + 100 + i as u32;
            assert_eq!(
                templates.place(key, 1, expires, NOW, None),
                Placement::Placed { evicted: false }
            );
        }
        assert_eq!(
            templates.place(&keys[8], 2, NOW + 500, NOW, None),
            Placement::Placed { evicted: true }
        );
        assert_eq!(
            templates.lookup(&keys[0], NOW),
            None,
            "the earliest to expire went"
        );
        assert!(
            keys[1..]
                .iter()
                .all(|key| templates.lookup(key, NOW).is_some())
        );
    }

    #[test]
    fn listings_show_live_templates_with_their_clients() {
        let templates = Templates::new(1024, 9);
        for i in 0..100u8 {
            templates.place(
                &key4(&templates, [198, 19, 1, i], 24),
                11,
                NOW + 10 + u32::from(i),
                NOW,
                None,
            );
        }
        let v6 = TemplateKey::new(&templates, 5, "fd00::77".parse::<Ipv6Addr>().unwrap(), 128);
        templates.place(&v6, 21, NOW + 500, NOW, None);
        let listed = all(&templates, NOW);
        assert_eq!(listed.len(), 2, "one per /24 and service: {listed:?}");
        let v4 = listed.iter().find(|t| t.service == 3).unwrap();
        assert_eq!(
            (v4.client, v4.real_server, v4.expires),
            ("198.19.1.0".parse().unwrap(), 11, NOW + 10)
        );
        let v6 = listed.iter().find(|t| t.service == 5).unwrap();
        assert_eq!(v6.client, "fd00::77".parse::<IpAddr>().unwrap());
        assert!(all(&templates, NOW + 500).is_empty());
    }

    /// Workers racing to place templates for the same clients end up
    /// agreeing on one real server per client.
    #[test]
    fn racing_workers_agree_on_one_real_server_per_client() {
        assert!(AtomicU128::is_lock_free(), "cmpxchg16b is missing");
        // Roomy enough that no template is evicted, which would rightly
        // let a later worker choose afresh.
        let templates = Arc::new(Templates::new(1 << 20, 5));
        let clients = 20_000u32;
        let start = Arc::new(std::sync::Barrier::new(4));
        let workers: Vec<_> = (0..4u32)
            .map(|worker| {
                let templates = Arc::clone(&templates);
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    (0..clients)
                        .map(|c| {
                            let key = TemplateKey::new(&templates, 1, Ipv4Addr::from(c), 32);
                            match templates.lookup(&key, NOW) {
                                Some(rs) => rs,
                                None => match templates.place(&key, worker, NOW + 60, NOW, None) {
                                    Placement::Placed { evicted } => {
                                        assert!(!evicted);
                                        worker
                                    }
                                    Placement::Adopted(rs) => rs,
                                    Placement::Unplaced => panic!("no contention this long"),
                                },
                            }
                        })
                        .collect::<Vec<u32>>()
                })
            })
            .collect();
        let choices: Vec<Vec<u32>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        for c in 0..clients as usize {
            let first = choices[0][c];
            assert!(
                choices.iter().all(|w| w[c] == first),
                "client {c}: {:?}",
                choices.iter().map(|w| w[c]).collect::<Vec<_>>()
            );
        }
    }
}
