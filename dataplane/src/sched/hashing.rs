//! dh and sh, as IPVS's `ip_vs_dh.c` and `ip_vs_sh.c`: a static table of
//! 256 buckets, each naming a real server, indexed by a hash of the
//! packet's destination (dh) or source (sh) address.
//!
//! The table is filled in list order, cycling through the servers: dh
//! gives each server one bucket per turn whatever its weight (IPVS's dh
//! ignores weights beyond "0 is unavailable"), sh gives each `weight`
//! buckets in a row (at least one, so a quiesced server keeps a bucket, as
//! in IPVS). The hash is the kernel's `hash_32` of the address folded to
//! 32 bits (plus the client port with `sh-port`), so a client lands on the
//! bucket IPVS would choose.
//!
//! A bucket whose server is unavailable (weight 0 or overloaded) yields
//! no server, unless `sh-fallback` is set: then the buckets are tried in
//! turn from a point derived from the hash (twice the first bucket, as the
//! kernel computes it) until an available server is found.

use std::fmt;
use std::net::IpAddr;

use super::{PickInput, Servers};
use crate::snapshot::RealServer;

/// Buckets in a table (IPVS's `IP_VS_SH_TAB_SIZE`, `IP_VS_DH_TAB_SIZE`).
pub(super) const BUCKETS: usize = 1 << BUCKET_BITS;
const BUCKET_BITS: u32 = 8;
/// A bucket of an empty service.
const NO_SERVER: u32 = u32::MAX;

/// Server indices by bucket.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct BucketTable(Box<[u32; BUCKETS]>);

impl BucketTable {
    /// dh's table (`ip_vs_dh_reassign`): one bucket per server in turn.
    pub(super) fn one_each(real_servers: &[RealServer]) -> BucketTable {
        BucketTable::fill(real_servers, |_| 1)
    }

    /// sh's table (`ip_vs_sh_reassign`): `weight` buckets per server in
    /// turn, at least one.
    pub(super) fn by_weight(real_servers: &[RealServer]) -> BucketTable {
        BucketTable::fill(real_servers, |rs| rs.weight.max(1))
    }

    fn fill(real_servers: &[RealServer], run: impl Fn(&RealServer) -> u32) -> BucketTable {
        let mut buckets = Box::new([NO_SERVER; BUCKETS]);
        let mut turns = real_servers
            .iter()
            .enumerate()
            .cycle()
            .flat_map(|(i, rs)| std::iter::repeat_n(i as u32, run(rs) as usize));
        for bucket in buckets.iter_mut() {
            match turns.next() {
                Some(i) => *bucket = i,
                None => break,
            }
        }
        BucketTable(buckets)
    }

    /// The server for `key`: its bucket's, if available; with `fallback`
    /// the first available one in the buckets that follow.
    pub(super) fn pick(&self, servers: &Servers<'_>, key: u32, fallback: bool) -> Option<usize> {
        let first = hash_32(key, BUCKET_BITS) as usize;
        let server = self.server(first)?;
        if servers.available(server) {
            return Some(server);
        }
        if !fallback {
            return None;
        }
        (0..BUCKETS)
            .filter_map(|offset| self.server(2 * first + offset))
            .find(|&i| servers.available(i))
    }

    fn server(&self, bucket: usize) -> Option<usize> {
        match self.0[bucket % BUCKETS] {
            NO_SERVER => None,
            i => Some(i as usize),
        }
    }
}

impl fmt::Debug for BucketTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let servers = self.0.iter().filter(|&&i| i != NO_SERVER).max();
        write!(f, "BucketTable({BUCKETS} buckets, last server {servers:?})")
    }
}

/// The kernel's `hash_32`: multiplicative hashing by the golden ratio,
/// keeping the top `bits`.
#[inline]
pub(super) fn hash_32(value: u32, bits: u32) -> u32 {
    value.wrapping_mul(0x61C8_8647) >> (32 - bits)
}

/// An address folded to 32 bits as IPVS folds it: IPv4 as is, IPv6 as
/// the xor of its four words.
#[inline]
pub(super) fn fold(address: IpAddr) -> u32 {
    match address {
        IpAddr::V4(v4) => v4.to_bits(),
        IpAddr::V6(v6) => {
            let bits = v6.to_bits();
            (bits as u32) ^ ((bits >> 32) as u32) ^ ((bits >> 64) as u32) ^ ((bits >> 96) as u32)
        }
    }
}

/// sh's key: the client address, plus its port with `sh-port`.
#[inline]
pub(super) fn client_key(input: &PickInput<'_>, port: bool) -> u32 {
    let port = if port {
        u32::from(input.client_port)
    } else {
        0
    };
    fold(input.client).wrapping_add(port)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::super::random::Rng;
    use super::super::testing::*;
    use super::super::*;
    use super::*;

    fn config(kind: SchedulerKind, flags: SchedulerFlags) -> SchedulerConfig {
        SchedulerConfig::new(kind).with_flags(flags)
    }

    fn pick_for(
        state: &mut SchedulerState,
        svc: &Service,
        address: u32,
        port: u16,
    ) -> Option<usize> {
        let input = PickInput {
            client: IpAddr::V4(Ipv4Addr::from(address)),
            client_port: port,
            destination: IpAddr::V4(Ipv4Addr::from(address)),
            ..input(&Idle)
        };
        state.pick(svc, &input)
    }

    #[test]
    fn tables_are_filled_as_ipvs_fills_them() {
        let list = real_servers(&[2, 1, 3]);
        let sh = BucketTable::by_weight(&list);
        assert_eq!(sh.0[..8], [0, 0, 1, 2, 2, 2, 0, 0]);
        let dh = BucketTable::one_each(&list);
        assert_eq!(dh.0[..5], [0, 1, 2, 0, 1]);
        // A quiesced server keeps one bucket per turn in sh.
        let sh = BucketTable::by_weight(&real_servers(&[0, 2]));
        assert_eq!(sh.0[..6], [0, 1, 1, 0, 1, 1]);
        assert!(BucketTable::one_each(&[]).0.iter().all(|&i| i == NO_SERVER));
    }

    #[test]
    fn hash_and_fold_match_the_kernel() {
        // hash_32(0xc0a80001, 8): 0xc0a80001 * 0x61c88647 mod 2^32 = 0xc0608647.
        assert_eq!(hash_32(0xc0a8_0001, 8), 0xc0);
        assert_eq!(fold(IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1))), 0xc0a8_0001);
        let v6 = Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0xabcd, 0x0002);
        assert_eq!(
            fold(IpAddr::V6(v6)),
            0xfd00_0000 ^ 0x0000_0001 ^ 0xabcd_0002
        );
    }

    #[test]
    fn an_unavailable_bucket_yields_nothing_unless_fallback() {
        let key = (0..).find(|&k| hash_32(k, BUCKET_BITS) == 0).unwrap_or(0);
        // Bucket 0 belongs to server 0, which is quiesced.
        let plain = service(SchedulerKind::SourceHashing, &[0, 1]);
        assert_eq!(
            pick_for(&mut SchedulerState::default(), &plain, key, 0),
            None
        );
        let fallback = service(
            config(SchedulerKind::SourceHashing, SchedulerFlags::FALLBACK),
            &[0, 1],
        );
        assert_eq!(
            pick_for(&mut SchedulerState::default(), &fallback, key, 0),
            Some(1)
        );
        let nobody = service(
            config(SchedulerKind::SourceHashing, SchedulerFlags::FALLBACK),
            &[0, 0],
        );
        assert_eq!(
            pick_for(&mut SchedulerState::default(), &nobody, key, 0),
            None
        );
        let dh = service(SchedulerKind::DestinationHashing, &[0, 1]);
        assert_eq!(pick_for(&mut SchedulerState::default(), &dh, key, 0), None);
    }

    #[test]
    fn sh_port_spreads_one_client_over_the_servers() {
        let svc = service(
            config(SchedulerKind::SourceHashing, SchedulerFlags::PORT),
            &[1; 4],
        );
        let mut state = SchedulerState::default();
        let mut seen = [false; 4];
        for port in 1000..1100 {
            if let Some(i) = pick_for(&mut state, &svc, 0x0a00_0001, port) {
                seen[i] = true;
            }
        }
        assert_eq!(seen, [true; 4]);
        let svc = service(SchedulerKind::SourceHashing, &[1; 4]);
        let first = pick_for(&mut state, &svc, 0x0a00_0001, 1000);
        assert!((1001..1100).all(|port| pick_for(&mut state, &svc, 0x0a00_0001, port) == first));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// 100 000 random keys: each server's share is within 5% of its
        /// share of the buckets (five standard deviations), and a key always maps to the same server, from any
        /// worker's state.
        #[test]
        fn same_key_same_server_and_even_spread(
            servers in 2usize..=10,
            seed in any::<u64>(),
            dh in any::<bool>(),
            port in any::<bool>(),
        ) {
            let kind = if dh { SchedulerKind::DestinationHashing } else { SchedulerKind::SourceHashing };
            let flags = if port && !dh { SchedulerFlags::PORT } else { SchedulerFlags::NONE };
            let svc = service(config(kind, flags), &vec![1; servers]);
            let (mut one, mut other) = (SchedulerState::default(), SchedulerState::with_seed(seed));
            let mut rng = Rng::new(seed);
            let mut counts = vec![0usize; servers];
            for _ in 0..100_000 {
                let key = rng.next_u64();
                let (address, port) = (key as u32, (key >> 32) as u16);
                let picked = pick_for(&mut one, &svc, address, port);
                prop_assert_eq!(picked, pick_for(&mut other, &svc, address, port));
                prop_assert_eq!(picked, pick_for(&mut one, &svc, address, port));
                counts[picked.unwrap_or(0)] += 1;
            }
            // 256 buckets rarely split evenly: the first `256 % servers`
            // servers hold one bucket more than the others.
            let expected: Vec<f64> = (0..servers)
                .map(|i| {
                    let buckets = BUCKETS / servers + usize::from(i < BUCKETS % servers);
                    100_000.0 * buckets as f64 / BUCKETS as f64
                })
                .collect();
            prop_assert!(within(&counts, &expected, 0.05), "{:?}", counts);
        }
    }
}
