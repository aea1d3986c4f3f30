//! lblc and lblcr, as IPVS's `ip_vs_lblc.c` and `ip_vs_lblcr.c`: a table,
//! per worker, that maps a packet's destination address to the real server
//! (lblc) or server set (lblcr) that served it, so that requests for one
//! destination stay on one cache server while it copes.
//!
//! lblc: a destination goes to its remembered server unless that server is
//! gone, quiesced or *overloaded in the locality sense*: more active
//! connections than its weight while some server has fewer than half its
//! weight. Then wlc picks a server, which is remembered instead.
//!
//! lblcr: a destination goes to the least loaded (wlc) server of its set.
//! If the set has none available, or that one is overloaded in the
//! locality sense, wlc picks a server among all and it joins the set. A
//! set of several servers that has not changed for the expiration time
//! loses its most loaded member.
//!
//! Entries not used for the expiration time (IPVS's `lblc_expiration` and
//! `lblcr_expiration`, a day) are forgotten, checked when looked up.
//!
//! Deliberate differences: the table has a fixed capacity
//! ([`LOCALITY_CAPACITY`] destinations, set-associative, allocated when the
//! service starts using it), and a destination that finds its ways full
//! takes the place of the least recently used one, where IPVS grows its
//! table and collects entries idle for 6 minutes once it holds 16384; a
//! set holds up to [`SET_CAPACITY`] servers, and a server joining a full
//! one replaces its most loaded member; a remembered server that has left
//! the service is dropped from the entry when the entry is next used; and
//! lblc's remembered server is also left when it is over its connection
//! threshold, which IPVS's lblc (unlike its lblcr) does not check.

use std::fmt;
use std::net::IpAddr;

use super::least_connection::Cost;
use super::{PickInput, Servers, Weighted, best_of};
use crate::time::{Duration, Instant};

/// Destinations a table remembers.
pub(super) const LOCALITY_CAPACITY: usize = 4096;
/// Servers an lblcr set holds.
pub(super) const SET_CAPACITY: usize = 8;
/// Entries per hash bucket.
const WAYS: usize = 8;
const BUCKETS: usize = LOCALITY_CAPACITY / WAYS;
/// IPVS's default `lblc_expiration` and `lblcr_expiration`.
const EXPIRATION: Duration = Duration::from_secs(24 * 60 * 60);

/// A worker's destination table for one lblc or lblcr service.
#[derive(Clone)]
pub(super) struct LocalityTable {
    entries: Box<[Entry]>,
}

/// A destination and its server (set).
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// IPv4 as an IPv4-mapped IPv6 address (a service has one family).
    destination: u128,
    last_use: Instant,
    /// When the set last changed.
    last_modified: Instant,
    /// Members in use; 0 for a free entry.
    len: u8,
    /// Oldest first; lblc uses one.
    members: [Member; SET_CAPACITY],
}

/// A remembered server: its slot, which identifies it across
/// configuration changes, and where it was in the service's list.
#[derive(Debug, Clone, Copy, Default)]
struct Member {
    slot: u32,
    index: u32,
}

const FREE: Entry = Entry {
    destination: 0,
    last_use: Instant(0),
    last_modified: Instant(0),
    len: 0,
    members: [Member { slot: 0, index: 0 }; SET_CAPACITY],
};

impl LocalityTable {
    pub(super) fn new() -> LocalityTable {
        LocalityTable {
            entries: vec![FREE; LOCALITY_CAPACITY].into_boxed_slice(),
        }
    }

    /// Forgets every destination (a new scheduler starts afresh).
    pub(super) fn clear(&mut self) {
        self.entries.fill(FREE);
    }

    /// lblc (`ip_vs_lblc_schedule`).
    pub(super) fn lblc(&mut self, servers: &Servers<'_>, input: &PickInput<'_>) -> Option<usize> {
        let destination = key(input.destination);
        let now = input.now;
        if let Some(entry) = self.find(destination, now) {
            entry.last_use = now;
            entry.resolve(servers);
            if let Some(i) = entry.newest_first().next()
                && servers.available(i)
                && !overloaded(servers, i)
            {
                return Some(i);
            }
        }
        let picked = servers.least(servers.all(), Cost::Overhead, true)?;
        let entry = self.entry(destination, now);
        if entry.newest_first().next() != Some(picked) {
            entry.len = 0;
            entry.insert(servers, picked, now);
        }
        Some(picked)
    }

    /// lblcr (`ip_vs_lblcr_schedule`).
    pub(super) fn lblcr(&mut self, servers: &Servers<'_>, input: &PickInput<'_>) -> Option<usize> {
        let destination = key(input.destination);
        let now = input.now;
        let Some(entry) = self.find(destination, now) else {
            let picked = servers.least(servers.all(), Cost::Overhead, true)?;
            self.entry(destination, now).insert(servers, picked, now);
            return Some(picked);
        };
        entry.last_use = now;
        entry.resolve(servers);
        let least = servers.least(servers.at(entry.newest_first()), Cost::Overhead, true);
        // A set that has not changed for long sheds its most loaded member
        // (possibly the one just chosen, which still takes this connection).
        if entry.len > 1
            && now > entry.last_modified + EXPIRATION
            && let Some(most) = most_loaded(servers, entry.newest_first())
        {
            entry.remove(most, now);
        }
        if let Some(i) = least
            && !overloaded(servers, i)
        {
            return Some(i);
        }
        let picked = servers.least(servers.all(), Cost::Overhead, true)?;
        entry.insert(servers, picked, now);
        Some(picked)
    }

    /// The live entry for `destination`, if any; an expired one is freed.
    fn find(&mut self, destination: u128, now: Instant) -> Option<&mut Entry> {
        let entry = self
            .bucket(destination)
            .iter_mut()
            .find(|e| e.len > 0 && e.destination == destination)?;
        if now.saturating_since(entry.last_use) >= EXPIRATION {
            entry.len = 0;
            return None;
        }
        Some(entry)
    }

    /// The entry for `destination`: its own, else a free or expired one,
    /// else the least recently used of its bucket, made empty.
    fn entry(&mut self, destination: u128, now: Instant) -> &mut Entry {
        let bucket = self.bucket(destination);
        let at = bucket
            .iter()
            .position(|e| e.len > 0 && e.destination == destination)
            .or_else(|| {
                bucket
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, e)| (e.len > 0, e.last_use))
                    .map(|(at, _)| at)
            })
            .unwrap_or(0);
        let entry = &mut bucket[at];
        if entry.len == 0 || entry.destination != destination {
            *entry = Entry {
                destination,
                last_use: now,
                last_modified: now,
                ..FREE
            };
        }
        entry
    }

    fn bucket(&mut self, destination: u128) -> &mut [Entry] {
        let folded = (destination as u64) ^ ((destination >> 64) as u64);
        let bucket = (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % BUCKETS;
        let start = bucket * WAYS;
        // In bounds: the table always holds BUCKETS * WAYS entries.
        &mut self.entries[start..start + WAYS]
    }
}

impl fmt::Debug for LocalityTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let used = self.entries.iter().filter(|e| e.len > 0).count();
        write!(
            f,
            "LocalityTable({used} of {} destinations)",
            self.entries.len()
        )
    }
}

impl Entry {
    fn members(&self) -> &[Member] {
        &self.members[..usize::from(self.len).min(SET_CAPACITY)]
    }

    /// Member indices, newest first (IPVS adds set members at the head).
    fn newest_first(&self) -> impl Iterator<Item = usize> + use<> {
        let members = self.members;
        let len = usize::from(self.len).min(SET_CAPACITY);
        (0..len).rev().map(move |m| members[m].index as usize)
    }

    /// Finds each member in the service's current list by slot, and drops
    /// those that left the service.
    fn resolve(&mut self, servers: &Servers<'_>) {
        let mut kept = 0;
        for m in 0..usize::from(self.len).min(SET_CAPACITY) {
            let Member { slot, index } = self.members[m];
            let here = |i: usize| servers.list.get(i).is_some_and(|rs| rs.slot == slot);
            let found = if here(index as usize) {
                Some(index as usize)
            } else {
                servers.all().position(|(_, rs)| rs.slot == slot)
            };
            if let Some(index) = found {
                self.members[kept] = Member {
                    slot,
                    index: index as u32,
                };
                kept += 1;
            }
        }
        self.len = kept as u8;
    }

    /// Adds server `i` unless it is a member (IPVS's
    /// `ip_vs_dest_set_insert`); a full set first loses its most loaded.
    fn insert(&mut self, servers: &Servers<'_>, i: usize, now: Instant) {
        if self.members().iter().any(|m| m.index as usize == i) {
            return;
        }
        if usize::from(self.len) >= SET_CAPACITY {
            let most = most_loaded(servers, self.newest_first());
            self.remove(most.unwrap_or(self.members[0].index as usize), now);
        }
        let slot = servers.list.get(i).map_or(0, |rs| rs.slot);
        if let Some(member) = self.members.get_mut(usize::from(self.len)) {
            *member = Member {
                slot,
                index: i as u32,
            };
            self.len += 1;
        }
        self.last_modified = now;
    }

    fn remove(&mut self, i: usize, now: Instant) {
        let len = usize::from(self.len).min(SET_CAPACITY);
        if let Some(at) = self.members[..len]
            .iter()
            .position(|m| m.index as usize == i)
        {
            self.members.copy_within(at + 1..len, at);
            self.len -= 1;
            self.last_modified = now;
        }
    }
}

/// IPVS's `is_overloaded` of lblc and lblcr: more active connections than
/// its weight, while some server is under half of its weight.
fn overloaded(servers: &Servers<'_>, i: usize) -> bool {
    servers.connections(i).active > u64::from(servers.weight(i))
        && servers
            .all()
            .any(|(_, d)| servers.load_of(d).active.saturating_mul(2) < u64::from(d.weight))
}

/// IPVS's `ip_vs_dest_set_max`: the member with the most overhead per unit
/// of weight, among those with a weight; the first of equals.
fn most_loaded(servers: &Servers<'_>, members: impl Iterator<Item = usize>) -> Option<usize> {
    best_of(
        servers
            .at(members)
            .filter(|&(_, rs)| rs.weight > 0)
            .map(|(i, rs)| (i, servers.weigh(rs, Cost::Overhead, true))),
        |this: Weighted, most| most.lighter_than(this),
    )
}

fn key(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().to_bits(),
        IpAddr::V6(v6) => v6.to_bits(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::super::random::Rng;
    use super::super::testing::*;
    use super::super::*;
    use super::*;

    fn to(destination: u32, now: Instant, load: &dyn Load) -> PickInput<'_> {
        PickInput {
            destination: IpAddr::V4(Ipv4Addr::from(destination)),
            now,
            ..input(load)
        }
    }

    fn active(n: u64) -> Connections {
        Connections {
            active: n,
            inactive: 0,
        }
    }

    /// The reference wlc: least overhead per weight among available.
    fn wlc(weights: &[u32], counts: &Counts) -> Option<usize> {
        least_by(weights, |i| {
            counts.get(i).overhead() as f64 / f64::from(weights[i])
        })
    }

    /// The reference locality overload rule.
    fn locality_overloaded(weights: &[u32], counts: &Counts, i: usize) -> bool {
        counts.get(i).active > u64::from(weights[i])
            && (0..weights.len()).any(|d| counts.get(d).active * 2 < u64::from(weights[d]))
    }

    #[test]
    fn lblc_sticks_until_overloaded_with_a_lighter_server_around() {
        let svc = service(SchedulerKind::LocalityLeastConnection, &[4, 4]);
        let counts = Counts::idle(2);
        let mut state = SchedulerState::default();
        let at = Instant(0);
        assert_eq!(state.pick(&svc, &to(1, at, &counts)), Some(0));
        counts.set(0, active(4));
        // wlc would now choose 1, but destination 1 stays on 0.
        assert_eq!(state.pick(&svc, &to(1, at, &counts)), Some(0));
        assert_eq!(state.pick(&svc, &to(2, at, &counts)), Some(1));
        // 0 is over its weight, but 1 is not under half its weight.
        counts.set(0, active(5));
        counts.set(1, active(2));
        assert_eq!(state.pick(&svc, &to(1, at, &counts)), Some(0));
        // Now 1 is under half: destination 1 moves to 1, and stays there.
        counts.set(1, active(1));
        assert_eq!(state.pick(&svc, &to(1, at, &counts)), Some(1));
        counts.set(0, active(0));
        assert_eq!(state.pick(&svc, &to(1, at, &counts)), Some(1));
        // Quiescing 1 moves it back.
        let quiesced = service(SchedulerKind::LocalityLeastConnection, &[4, 0]);
        assert_eq!(state.pick(&quiesced, &to(1, at, &counts)), Some(0));
    }

    #[test]
    fn lblcr_grows_its_set_and_sheds_after_expiration() {
        let svc = service(SchedulerKind::LocalityLeastConnectionReplicated, &[2, 2, 2]);
        let counts = Counts::idle(3);
        let mut state = SchedulerState::default();
        let mut pick = |at: Instant| state.pick(&svc, &to(9, at, &counts));
        let t0 = Instant(0);
        assert_eq!(pick(t0), Some(0));
        // 0 is over its weight while others are idle: wlc's choice among
        // all (1, first of the idle) joins the set.
        counts.set(0, active(3));
        assert_eq!(pick(t0), Some(1));
        // The set is {0, 1}: its least loaded member is chosen.
        counts.set(0, active(1));
        counts.set(1, active(2));
        assert_eq!(pick(t0), Some(0));
        let noon = t0 + Duration::from_secs(12 * 60 * 60);
        assert_eq!(pick(noon), Some(0));
        // A day after the set last changed, its most loaded member (0)
        // leaves it; 1 is the least loaded anyway.
        let later = t0 + EXPIRATION + Duration::from_secs(1);
        counts.set(0, active(2));
        counts.set(1, active(1));
        assert_eq!(pick(later), Some(1));
        // 0 is idle now, but no longer in the set.
        counts.set(0, active(0));
        assert_eq!(pick(later), Some(1));
    }

    #[test]
    fn entries_expire_and_full_buckets_replace_the_least_recently_used() {
        let svc = service(SchedulerKind::LocalityLeastConnection, &[1, 1]);
        let counts = Counts::idle(2);
        let mut state = SchedulerState::default();
        assert_eq!(state.pick(&svc, &to(1, Instant(0), &counts)), Some(0));
        counts.set(0, active(1));
        let soon = Instant(0) + EXPIRATION - Duration::from_secs(1);
        assert_eq!(state.pick(&svc, &to(1, soon, &counts)), Some(0));
        let expired = soon + EXPIRATION;
        assert_eq!(state.pick(&svc, &to(1, expired, &counts)), Some(1));

        let mut table = LocalityTable::new();
        let mut time = Instant(0);
        for d in 0..(4 * LOCALITY_CAPACITY as u32) {
            time = time + Duration::from_secs(1);
            table.entry(key(IpAddr::V4(d.into())), time).len = 1;
        }
        let used = table.entries.iter().filter(|e| e.len > 0).count();
        assert_eq!(used, LOCALITY_CAPACITY);
        // The most recent destination is remembered.
        let last = key(IpAddr::V4((4 * LOCALITY_CAPACITY as u32 - 1).into()));
        assert!(table.find(last, time).is_some());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10))]

        /// 10 000 simulated connections per case to a few destinations,
        /// with loads that change at random: lblc keeps a destination on
        /// its server unless the overload rule says otherwise, and then
        /// moves it to wlc's choice; lblcr always picks within the
        /// destination's set unless the rule sends it to wlc's choice.
        #[test]
        fn locality_schedulers_follow_their_overload_rules(
            weights in prop::collection::vec(0u32..=5, 1..=6),
            seed in any::<u64>(),
        ) {
            let counts = Counts::idle(weights.len());
            let lblc = service(SchedulerKind::LocalityLeastConnection, &weights);
            let lblcr = service(SchedulerKind::LocalityLeastConnectionReplicated, &weights);
            let (mut lblc_state, mut lblcr_state) = (SchedulerState::default(), SchedulerState::default());
            let mut remembered = [None::<usize>; 4];
            let mut sets = [Vec::<usize>::new(), Vec::new(), Vec::new(), Vec::new()];
            let mut rng = Rng::new(seed);
            for _ in 0..10_000 {
                let d = rng.below(4) as usize;
                for (i, &weight) in weights.iter().enumerate() {
                    counts.set(i, active(rng.below(u64::from(weight) * 2 + 2)));
                }
                let input = to(d as u32, Instant(0), &counts);
                let wlc = wlc(&weights, &counts);

                let picked = lblc_state.pick(&lblc, &input);
                let expected = match remembered[d] {
                    Some(i) if weights[i] > 0 && !locality_overloaded(&weights, &counts, i) => Some(i),
                    _ => wlc,
                };
                prop_assert_eq!(picked, expected, "lblc");
                remembered[d] = picked.or(remembered[d]);

                let picked = lblcr_state.pick(&lblcr, &input);
                let set = &mut sets[d];
                let least = set
                    .iter()
                    .rev()
                    .copied()
                    .filter(|&i| weights[i] > 0)
                    .min_by(|&a, &b| {
                        let cost = |i: usize| counts.get(i).overhead() as f64 / f64::from(weights[i]);
                        cost(a).total_cmp(&cost(b))
                    });
                let expected = match least {
                    Some(i) if !locality_overloaded(&weights, &counts, i) => Some(i),
                    _ => wlc,
                };
                prop_assert_eq!(picked, expected, "lblcr set {:?}", set);
                if let Some(i) = picked && !set.contains(&i) {
                    set.push(i);
                }
            }
        }
    }
}
