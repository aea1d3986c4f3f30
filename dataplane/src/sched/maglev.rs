//! mh: Maglev consistent hashing, as IPVS's `ip_vs_mh.c` (after Eisenbud
//! et al., "Maglev", NSDI 2016, section 3.4).
//!
//! Each real server has a preference order over the M positions of a
//! lookup table (M prime): it starts at an `offset` and steps by a `skip`,
//! both hashed from its address and port. The servers take turns claiming
//! their next preferred free position until the table is full; a server
//! claims `weight / gcd` positions per turn (shifted right, as IPVS does,
//! so that the largest takes at most a few dozen), so the table shares
//! follow the weights. A client's address (and port with `mh-port`) hashes
//! to a position, whose server is the pick. Removing a server moves its
//! clients and very few others.
//!
//! A position whose server is unavailable (weight 0 or overloaded) yields
//! no server, unless `mh-fallback` is set: then the client is rehashed
//! with a growing offset, up to M times, until an available server comes
//! up (IPVS's `ip_vs_mh_get_fallback`).
//!
//! Deliberate differences from IPVS: the hash is a 64-bit mixer (fmix64)
//! rather than the kernel's keyed `hsiphash`, which makes a lookup a few
//! multiplications; a server's key includes its full port rather than the
//! sum `port + address`, so that two servers cannot share a preference
//! order; and the table is built from the current weights, since the
//! snapshot keeps no weight history: IPVS builds it from each server's
//! last non-zero weight, so a quiesced server keeps its positions (and its
//! clients get no server without `mh-fallback`), whereas here a quiesced
//! server leaves the table and its clients move to the others at once.

use std::fmt;

use super::hashing::fold;
use super::{PickInput, Servers, weight_gcd};
use crate::snapshot::RealServer;

/// Largest table accepted, to bound the memory a configuration can ask for.
const MAX_TABLE_SIZE: u32 = 1 << 24;
/// A position no server claimed (only in the table of an empty service).
const NO_SERVER: u32 = u32::MAX;
/// Salts that make independent hash functions of one mixer.
const OFFSET_SALT: u64 = 0x6d68_5f6f_6666_7365;
const SKIP_SALT: u64 = 0x6d68_5f73_6b69_7070;

/// Server indices by table position.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct MaglevTable {
    positions: Box<[u32]>,
}

impl MaglevTable {
    /// Builds the table of `size` positions (raised to a prime) for these
    /// servers (IPVS's `ip_vs_mh_permutate` and `ip_vs_mh_populate`).
    pub(super) fn new(real_servers: &[RealServer], size: u32) -> MaglevTable {
        let size = next_prime(size.clamp(2, MAX_TABLE_SIZE));
        let mut positions = vec![NO_SERVER; size as usize].into_boxed_slice();
        let gcd = weight_gcd(real_servers.iter().map(|rs| rs.weight));
        if gcd == 0 {
            // No server has a weight: nothing to place.
            return MaglevTable { positions };
        }
        let max = real_servers.iter().map(|rs| rs.weight).max().unwrap_or(0);
        let shift = bit_length(max / gcd).saturating_sub(turn_bits(size));
        let mut preferences: Vec<Preference> = real_servers
            .iter()
            .map(|rs| {
                let key = server_key(rs);
                let turns = (rs.weight / gcd) >> shift;
                Preference {
                    next: hash(key, OFFSET_SALT) % u64::from(size),
                    skip: hash(key, SKIP_SALT) % u64::from(size - 1) + 1,
                    // A positive weight always claims at least one.
                    turns: if turns == 0 {
                        u32::from(rs.weight != 0)
                    } else {
                        turns
                    },
                }
            })
            .collect();
        let mut filled = 0usize;
        // Terminates: gcd > 0 means some server claims a position per
        // round, and with M prime every preference order visits every
        // position, so a free one is always found while filled < M.
        'fill: loop {
            for (server, preference) in preferences.iter_mut().enumerate() {
                for _ in 0..preference.turns {
                    let position = preference.claim(&positions, size);
                    positions[position] = server as u32;
                    filled += 1;
                    if filled == positions.len() {
                        break 'fill;
                    }
                }
            }
        }
        MaglevTable { positions }
    }

    /// The server for `key`, or with `fallback` the first available one
    /// among the key's rehashes.
    pub(super) fn pick(&self, servers: &Servers<'_>, key: u64, fallback: bool) -> Option<usize> {
        let server = self.server(key, 0)?;
        if servers.available(server) {
            return Some(server);
        }
        // Without any available server the M rehashes would find nothing:
        // skip them.
        if !fallback || servers.available_of(servers.all()).next().is_none() {
            return None;
        }
        (1..=self.positions.len() as u64)
            .filter_map(|offset| self.server(key, offset))
            .find(|&i| servers.available(i))
    }

    fn server(&self, key: u64, salt: u64) -> Option<usize> {
        // The hash scaled to [0, M) by a multiplication rather than a
        // division (Lemire's fast range): as uniform, and cheaper per pick.
        let scaled = u128::from(hash(key, salt)) * self.positions.len() as u128;
        match self.positions.get((scaled >> 64) as usize) {
            Some(&NO_SERVER) | None => None,
            Some(&i) => Some(i as usize),
        }
    }

    #[cfg(test)]
    pub(super) fn size(&self) -> usize {
        self.positions.len()
    }

    #[cfg(test)]
    pub(super) fn positions_of(&self, server: usize) -> usize {
        self.positions
            .iter()
            .filter(|&&i| i as usize == server)
            .count()
    }
}

impl fmt::Debug for MaglevTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MaglevTable({} positions)", self.positions.len())
    }
}

/// A server's walk through the table while it is being filled.
struct Preference {
    /// Its next preferred position.
    next: u64,
    skip: u64,
    /// Positions it claims per round.
    turns: u32,
}

impl Preference {
    /// Its most preferred free position.
    fn claim(&mut self, positions: &[u32], size: u32) -> usize {
        while positions.get(self.next as usize) != Some(&NO_SERVER) {
            self.next = (self.next + self.skip) % u64::from(size);
        }
        self.next as usize
    }
}

/// mh's key: the client address, and its port with `mh-port`.
#[inline]
pub(super) fn client_key(input: &PickInput<'_>, port: bool) -> u64 {
    let port = if port { input.client_port } else { 0 };
    (u64::from(fold(input.client)) << 16) | u64::from(port)
}

fn server_key(rs: &RealServer) -> u64 {
    (u64::from(fold(rs.address)) << 16) | u64::from(rs.port)
}

/// `key` hashed under `salt`: MurmurHash3's 64-bit finalizer.
#[inline]
fn hash(key: u64, salt: u64) -> u64 {
    let mut x = key ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    x = (x ^ (x >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Bits of weight a server may use per turn: IPVS derives them from its
/// table size (`CONFIG_IP_VS_MH_TAB_INDEX / 2`: 6 for 4093, 8 for 65521),
/// that is half the bits of the size.
fn turn_bits(size: u32) -> u32 {
    bit_length(size - 1) / 2
}

/// The kernel's `fls`: the position of the highest bit set, 0 for 0.
fn bit_length(value: u32) -> u32 {
    u32::BITS - value.leading_zeros()
}

/// The smallest prime at or above `n` (n small enough that one exists in
/// u32, which MAX_TABLE_SIZE ensures).
fn next_prime(n: u32) -> u32 {
    (n.max(2)..).find(|&c| is_prime(c)).unwrap_or(n)
}

fn is_prime(n: u32) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use proptest::prelude::*;

    use super::super::random::Rng;
    use super::super::testing::*;
    use super::super::*;
    use super::*;

    fn maglev(list: Vec<RealServer>) -> Service {
        service_of(SchedulerKind::MaglevHashing, list)
    }

    fn table(svc: &Service) -> &MaglevTable {
        match &svc.scheduler.algorithm {
            Algorithm::Maglev { table, .. } => table,
            other => panic!("not mh: {other:?}"),
        }
    }

    /// Picks for `keys` random clients (address and port from the seed).
    fn assignments(svc: &Service, seed: u64, keys: usize) -> Vec<Option<usize>> {
        let mut state = SchedulerState::default();
        let mut rng = Rng::new(seed);
        (0..keys)
            .map(|_| {
                let key = rng.next_u64();
                let input = PickInput {
                    client: IpAddr::V4(Ipv4Addr::from(key as u32)),
                    client_port: (key >> 32) as u16,
                    ..input(&Idle)
                };
                state.pick(svc, &input)
            })
            .collect()
    }

    #[test]
    fn sizes_are_raised_to_primes() {
        assert_eq!(next_prime(65_536), 65_537);
        assert_eq!(next_prime(65_537), 65_537);
        assert_eq!(next_prime(4_093), 4_093);
        assert_eq!(next_prime(0), 2);
        assert_eq!(turn_bits(4_093), 6);
        assert_eq!(turn_bits(65_521), 8);
        assert_eq!(turn_bits(65_537), 8);
        let svc = service_of(
            SchedulerConfig::new(SchedulerKind::MaglevHashing).with_maglev_table_size(1000),
            real_servers(&[1, 1]),
        );
        assert_eq!(table(&svc).size(), 1009);
        assert_eq!(table(&maglev(real_servers(&[1]))).size(), 65_537);
    }

    /// Servers take turns, so equal weights get equal shares of the table
    /// (one position apart at most), and weights proportional shares.
    #[test]
    fn table_shares_follow_the_weights() {
        let svc = maglev(real_servers(&[1; 7]));
        let (size, t) = (65_537, table(&svc));
        for server in 0..7 {
            assert!(t.positions_of(server).abs_diff(size / 7) <= 1);
        }
        let svc = maglev(real_servers(&[2, 4, 6, 0]));
        let t = table(&svc);
        let expected = [size / 6, size / 3, size / 2, 0];
        for (server, expected) in expected.into_iter().enumerate() {
            assert!(t.positions_of(server).abs_diff(expected) <= 2, "{server}");
        }
        // Weights beyond 2^8 per gcd are shifted as IPVS shifts them
        // (3000 / 1 needs 12 bits: shifted by 4, to 62 and 187 turns).
        let svc = maglev(real_servers(&[1001, 3000]));
        let quarter = table(&svc).positions_of(0) as f64 / size as f64;
        assert!((quarter - 0.25).abs() < 0.01, "{quarter}");
    }

    #[test]
    fn an_unavailable_position_yields_nothing_unless_fallback() {
        let mut list = real_servers(&[1, 1, 1]);
        list[1].weight = 0;
        // Weight 0 leaves the table: its clients are spread over the rest.
        let without = assignments(&maglev(list.clone()), 1, 3000);
        assert!(without.iter().all(|p| matches!(p, Some(0 | 2))));
        // Overloaded keeps its positions: no server without fallback.
        let mut overloaded = real_servers(&[1, 1, 1]);
        overloaded[1].upper_threshold = 1;
        let counts = Counts::idle(3);
        counts.set(
            1,
            Connections {
                active: 1,
                inactive: 0,
            },
        );
        for flags in [SchedulerFlags::NONE, SchedulerFlags::FALLBACK] {
            let config = SchedulerConfig::new(SchedulerKind::MaglevHashing).with_flags(flags);
            let svc = service_of(config, overloaded.clone());
            let mut state = SchedulerState::default();
            let picked: Vec<_> = (0..3000u32)
                .map(|client| {
                    let input = PickInput {
                        client: IpAddr::V4(client.into()),
                        ..input(&counts)
                    };
                    state.pick(&svc, &input)
                })
                .collect();
            assert!(picked.iter().all(|&p| p != Some(1)));
            let refused = picked.iter().filter(|p| p.is_none()).count();
            if flags == SchedulerFlags::FALLBACK {
                assert_eq!(refused, 0);
            } else {
                assert!((800..1200).contains(&refused), "{refused}");
            }
        }
        assert_eq!(
            assignments(&maglev(real_servers(&[0, 0])), 1, 10),
            [None; 10]
        );
        assert_eq!(assignments(&maglev(Vec::new()), 1, 10), [None; 10]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8))]

        /// 100 000 random clients spread over N equal servers within 5%
        /// (M = 65537); removing one server moves its clients and at most
        /// 1% of all clients besides.
        #[test]
        fn spreads_evenly_and_disrupts_little(
            servers in 3usize..=12,
            removed in any::<prop::sample::Index>(),
            seed in any::<u64>(),
        ) {
            let list = real_servers(&vec![1; servers]);
            let before = assignments(&maglev(list.clone()), seed, 100_000);
            let mut counts = vec![0usize; servers];
            for p in &before {
                counts[p.unwrap_or(0)] += 1;
            }
            let expected = vec![100_000.0 / servers as f64; servers];
            prop_assert!(within(&counts, &expected, 0.05), "{:?}", counts);

            let removed = removed.index(servers);
            let mut fewer = list.clone();
            fewer.remove(removed);
            let after = assignments(&maglev(fewer.clone()), seed, 100_000);
            let mut moved = 0;
            for (b, a) in before.iter().zip(&after) {
                let (Some(b), Some(a)) = (*b, *a) else {
                    return Err(TestCaseError::fail("no server"));
                };
                if b == removed {
                    continue;
                }
                // Same server, by slot: indices after the removed one shift.
                if list[b].slot != fewer[a].slot {
                    moved += 1;
                }
            }
            prop_assert!(moved <= 1_000, "{} of 100000 moved", moved);
        }
    }
}
