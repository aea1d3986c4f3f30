//! The per-worker connection table.
//!
//! # Layout
//!
//! * `conns`: every entry, preallocated at start-up; free entries form a
//!   list. Nothing is allocated after construction.
//! * `index`: a bucketized hash index. A bucket is one 64-byte cache line
//!   holding ten slots (a 16-bit tag from the tuple's keyed hash and the
//!   entry number with the direction bit) and an overflow count. A tuple
//!   lives in its home bucket or, when that is full, in the next bucket
//!   with room; every bucket it passed counts it in `overflow`, so a
//!   lookup stops at the first bucket whose overflow is zero. Deletion
//!   needs no tombstones. With both tuples of every connection inserted
//!   the index is at most 80% full: 16 bytes per connection, one cache
//!   line per lookup almost always, which a batched lookup prefetches.
//!   With the 48-byte entry that is 64 bytes per IPv4 connection.
//! * `wheel`: a timer wheel of 8192 slots of [`TICK_NANOS`] (about 67 ms;
//!   one turn is about 9 minutes). An entry sits in the slot of the tick at
//!   which it would expire if it saw no more packets. Packets only record
//!   `last_seen` and never relink the entry; when its slot comes round, the
//!   entry's real deadline is recomputed and it is either expired or moved
//!   on (lazy rescheduling, so the per-packet cost is one store). Deadlines
//!   beyond one turn wait in the slot just behind the cursor and are
//!   re-examined once a turn. A state change to a shorter timeout relinks at
//!   once, so that closing connections leave on time.
//!
//! # Eviction
//!
//! When the table is full, an insert evicts the entry nearest to its
//! deadline: the wheel is scanned from the cursor, and an entry found
//! early only because it was not yet rescheduled is moved on, up to a
//! small bound. Among connections with the same timeout that is the least
//! recently used one (as Katran's LRU); across states, half-open and
//! closing connections (short timeouts) go before idle established ones.
//!
//! # Hash flooding
//!
//! The hash is keyed with a [`HashSeed`] chosen at start-up, so clients
//! cannot aim many tuples at one probe chain.

use super::{Address, Conn, ConnState, Direction, FlowKey, StateTimeouts};
use crate::time::Instant;

pub(super) const NIL: u32 = u32::MAX;
/// Marks a free entry in its `wheel_prev` field.
const FREE: u32 = u32::MAX - 1;

const TICK_SHIFT: u32 = 26;
/// Granularity of connection expiry, in nanoseconds (about 67 ms).
pub const TICK_NANOS: u64 = 1 << TICK_SHIFT;
const WHEEL_SLOTS: u32 = 8192;
const WHEEL_MASK: u32 = WHEEL_SLOTS - 1;
/// Entries an eviction may reschedule before it takes what it finds.
const EVICTION_PROBES: usize = 32;
/// Largest capacity: entry numbers plus one, shifted by the direction bit,
/// must fit an index slot's 32 bits.
const MAX_CAPACITY: u32 = (1 << 30) - 1;
const BUCKET_SLOTS: usize = 10;
/// Slots per connection: two tuples in a bucket array at most 80% full.
const SLOTS_PER_CONN_NUMERATOR: usize = 5;
const SLOTS_PER_CONN_DENOMINATOR: usize = 2;

/// One cache line of the index (see the module docs).
///
/// The tags are twelve 16-bit lanes in three words, so that a lookup
/// compares them a word at a time: lanes 0 to 9 are the slots' tags, lanes
/// 10 and 11 hold the overflow count (tuples stored beyond this bucket
/// whose probe passed it).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    tags: [u64; 3],
    /// 0: empty; otherwise `(entry << 1 | direction) + 1`.
    slots: [u32; BUCKET_SLOTS],
}

const EMPTY_BUCKET: Bucket = Bucket {
    tags: [0; 3],
    slots: [0; BUCKET_SLOTS],
};

impl Bucket {
    #[inline]
    fn overflow(&self) -> u32 {
        (self.tags[2] >> 32) as u32
    }

    #[inline]
    fn set_overflow(&mut self, overflow: u32) {
        self.tags[2] = (self.tags[2] & 0xFFFF_FFFF) | (u64::from(overflow) << 32);
    }

    #[inline]
    fn set_tag(&mut self, slot: usize, tag: u16) {
        let (word, shift) = (slot / 4, 16 * (slot % 4));
        self.tags[word] = (self.tags[word] & !(0xFFFF << shift)) | (u64::from(tag) << shift);
    }

    /// Which slots hold `tag`: for each group of four slots (its first
    /// slot and a word), the top bit of each slot's lane is set where the
    /// tag matches. Three words compared at once (SWAR) instead of ten
    /// compares and branches.
    #[inline]
    fn tag_matches(&self, tag: u16) -> [(usize, u64); 3] {
        const LOW: u64 = 0x7FFF_7FFF_7FFF_7FFF;
        // The overflow count's lanes must never match.
        const TAG_LANES: [u64; 3] = [u64::MAX, u64::MAX, 0xFFFF_FFFF];
        let spread = u64::from(tag) * 0x0001_0001_0001_0001;
        // A lane of `x` is zero exactly where its top bit ends up set.
        let zero_lanes = |x: u64| !(((x & LOW) + LOW) | x | LOW);
        [0, 1, 2].map(|word| {
            (
                4 * word,
                zero_lanes(self.tags[word] ^ spread) & TAG_LANES[word],
            )
        })
    }
}

/// Key of the tuple hash, chosen randomly by the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashSeed(pub [u64; 2]);

/// Names an entry of a [`ConnTable`]; valid until the entry is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// Another connection already answers from the same real-server tuple.
    OutTupleInUse,
}

/// A fixed-capacity connection table for one worker (see the module docs).
pub struct ConnTable<A> {
    conns: Box<[Conn<A>]>,
    free_head: u32,
    len: u32,
    index: Box<[Bucket]>,
    modifications: u64,
    seed: HashSeed,
    wheel: Box<[u32]>,
    cursor: u32,
    timeout_ticks: [u32; ConnState::COUNT],
}

impl<A> std::fmt::Debug for ConnTable<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnTable")
            .field("len", &self.len)
            .field("capacity", &self.conns.len())
            .finish_non_exhaustive()
    }
}

#[inline]
fn tick(now: Instant) -> u32 {
    (now.0 >> TICK_SHIFT) as u32
}

/// `a - b` on the wrapping tick clock, as a signed distance.
#[inline]
fn ticks_between(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

#[inline]
fn tag(hash: u64) -> u16 {
    hash as u16
}

#[inline]
fn encode(id: u32, direction: Direction) -> u32 {
    ((id << 1) | direction as u32) + 1
}

#[inline]
fn decode(value: u32) -> (u32, Direction) {
    let value = value - 1;
    let direction = if value & 1 == 0 {
        Direction::In
    } else {
        Direction::Out
    };
    (value >> 1, direction)
}

#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl<A: Address> ConnTable<A> {
    /// A table for `capacity` connections (clamped to 1..2^30), with all its
    /// memory allocated and touched now, on transparent huge pages where
    /// the kernel offers them (a million connections span 64 MiB: 4 KiB
    /// pages would make most lookups a TLB miss too).
    pub fn new(capacity: u32, seed: HashSeed, timeouts: &StateTimeouts, now: Instant) -> Self {
        let capacity = capacity.clamp(1, MAX_CAPACITY);
        let slots =
            (capacity as usize * SLOTS_PER_CONN_NUMERATOR).div_ceil(SLOTS_PER_CONN_DENOMINATOR);
        let buckets = slots.div_ceil(BUCKET_SLOTS).max(2);
        let mut conns = Vec::with_capacity(capacity as usize);
        dpdk_bind::advise_huge_pages(conns.spare_capacity_mut());
        conns.extend((0..capacity).map(|i| {
            let mut vacant = Conn::new(
                0,
                super::Method::Nat,
                (A::UNSPECIFIED, 0),
                (A::UNSPECIFIED, 0),
                (A::UNSPECIFIED, 0),
                (A::UNSPECIFIED, 0),
                0,
                0,
            );
            vacant.wheel_next = if i + 1 < capacity { i + 1 } else { NIL };
            vacant.wheel_prev = FREE;
            vacant
        }));
        // Written bucket by bucket, which also faults the pages in now
        // rather than on the first packets.
        let mut index = Vec::with_capacity(buckets);
        dpdk_bind::advise_huge_pages(index.spare_capacity_mut());
        index.resize(buckets, EMPTY_BUCKET);
        let mut table = ConnTable {
            conns: conns.into_boxed_slice(),
            free_head: 0,
            len: 0,
            index: index.into_boxed_slice(),
            modifications: 0,
            seed,
            wheel: vec![NIL; WHEEL_SLOTS as usize].into_boxed_slice(),
            cursor: tick(now),
            timeout_ticks: [0; ConnState::COUNT],
        };
        table.set_timeouts(timeouts);
        table
    }

    /// Changes the per-state timeouts (ipvsadm `--set`). Entries already
    /// scheduled find their new deadline when their slot comes round.
    pub fn set_timeouts(&mut self, timeouts: &StateTimeouts) {
        for (state, ticks) in self.timeout_ticks.iter_mut().enumerate() {
            let nanos = timeouts.of(ConnState::ALL[state]).as_nanos();
            *ticks = nanos.div_ceil(TICK_NANOS).min(u64::from(u32::MAX / 2)) as u32;
        }
    }

    pub fn capacity(&self) -> u32 {
        self.conns.len() as u32
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of memory the table holds, all preallocated.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.conns)
            + std::mem::size_of_val(&*self.index)
            + std::mem::size_of_val(&*self.wheel)
    }

    /// Finds the connection a packet with this tuple belongs to.
    #[inline]
    pub fn lookup(&self, key: &FlowKey<A>) -> Option<(ConnId, Direction)> {
        self.lookup_hashed(key, self.hash(key))
    }

    /// The tuple's keyed hash, for [`prefetch`](Self::prefetch) and
    /// [`lookup_hashed`](Self::lookup_hashed) in batched lookups.
    #[inline]
    pub fn hash(&self, key: &FlowKey<A>) -> u64 {
        let ports = (u64::from(key.protocol) << 32)
            | (u64::from(key.src_port) << 16)
            | u64::from(key.dst_port);
        let addresses = folded_multiply(
            key.src.fold() ^ self.seed.0[0],
            key.dst.fold() ^ self.seed.0[1],
        );
        folded_multiply(addresses ^ ports, 0x9E37_79B9_7F4A_7C15)
    }

    /// Starts loading the tuple's home bucket, so that a lookup a little
    /// later finds it in cache.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        dpdk_bind::prefetch(&self.index[self.home(hash)]);
    }

    /// [`lookup`](Self::lookup) with the hash already computed.
    #[inline]
    pub fn lookup_hashed(&self, key: &FlowKey<A>, hash: u64) -> Option<(ConnId, Direction)> {
        let tag = tag(hash);
        let mut bucket = self.home(hash);
        loop {
            let candidates = &self.index[bucket];
            for (first, mut matches) in candidates.tag_matches(tag) {
                while matches != 0 {
                    let slot = first + matches.trailing_zeros() as usize / 16;
                    matches &= matches - 1;
                    let value = candidates.slots[slot];
                    if value != 0 {
                        let (id, direction) = decode(value);
                        if self.conns[id as usize].key(direction) == *key {
                            return Some((ConnId(id), direction));
                        }
                    }
                }
            }
            if candidates.overflow() == 0 {
                return None;
            }
            bucket = self.next_bucket(bucket);
        }
    }

    /// Counts inserts and removals: while it stays the same, what a lookup
    /// returned still stands.
    #[inline]
    pub fn modifications(&self) -> u64 {
        self.modifications
    }

    /// Starts loading a connection's entry.
    #[inline]
    pub fn prefetch_entry(&self, id: ConnId) {
        dpdk_bind::prefetch(&self.conns[id.0 as usize]);
    }

    #[inline]
    pub fn get(&self, id: ConnId) -> &Conn<A> {
        &self.conns[id.0 as usize]
    }

    /// Records activity on the connection.
    #[inline]
    pub fn touch(&mut self, id: ConnId, now: Instant) {
        self.conns[id.0 as usize].last_seen = tick(now);
    }

    /// Moves the connection to `state` (and records activity); returns the
    /// previous state.
    pub fn set_state(&mut self, id: ConnId, state: ConnState, now: Instant) -> ConnState {
        let conn = &mut self.conns[id.0 as usize];
        let old = conn.state;
        conn.state = state;
        conn.last_seen = tick(now);
        if self.timeout_ticks[state as usize] < self.timeout_ticks[old as usize] {
            self.unlink(id.0);
            self.link(id.0);
        }
        old
    }

    pub fn set_counted_inactive(&mut self, id: ConnId, inactive: bool) {
        self.conns[id.0 as usize].counted_inactive = inactive;
    }

    /// Time left before the connection expires without further packets.
    pub fn expires_in(&self, id: ConnId, now: Instant) -> crate::time::Duration {
        let due = self.due(id.0);
        let left = ticks_between(due, tick(now)).max(0) as u64;
        crate::time::Duration(left * TICK_NANOS)
    }

    /// Inserts a connection whose In tuple is not in the table (the caller
    /// looked it up). When the table is full, the entry nearest to expiry
    /// is evicted first and returned so the caller can settle its counters.
    pub fn insert(
        &mut self,
        conn: Conn<A>,
        now: Instant,
    ) -> Result<(ConnId, Option<Conn<A>>), InsertError> {
        debug_assert!(self.lookup(&conn.in_key()).is_none());
        if conn.has_out_key() && self.lookup(&conn.out_key()).is_some() {
            return Err(InsertError::OutTupleInUse);
        }
        let evicted = if self.free_head == NIL {
            Some(self.evict_one())
        } else {
            None
        };
        let id = self.free_head;
        let slot = &mut self.conns[id as usize];
        self.free_head = slot.wheel_next;
        *slot = conn;
        slot.last_seen = tick(now);
        self.index_insert(&conn.in_key(), id, Direction::In);
        if conn.has_out_key() {
            self.index_insert(&conn.out_key(), id, Direction::Out);
        }
        self.link(id);
        self.len += 1;
        self.modifications += 1;
        Ok((ConnId(id), evicted))
    }

    /// Removes a connection and returns it.
    pub fn remove(&mut self, id: ConnId) -> Conn<A> {
        let conn = self.conns[id.0 as usize];
        self.index_remove(&conn.in_key(), id.0, Direction::In);
        if conn.has_out_key() {
            self.index_remove(&conn.out_key(), id.0, Direction::Out);
        }
        self.unlink(id.0);
        let slot = &mut self.conns[id.0 as usize];
        slot.wheel_next = self.free_head;
        slot.wheel_prev = FREE;
        self.free_head = id.0;
        self.len -= 1;
        self.modifications += 1;
        conn
    }

    /// Expires connections whose deadline has passed, calling `on_expired`
    /// for each. At most `budget` entries are examined and at most one turn
    /// of the wheel is walked, so a worker's pause stays short; what is
    /// left is done on the next call. Returns how many expired.
    pub fn expire(
        &mut self,
        now: Instant,
        budget: usize,
        mut on_expired: impl FnMut(&Conn<A>),
    ) -> usize {
        let now_tick = tick(now);
        let mut work = 0;
        let mut expired = 0;
        let mut slots_walked = 0;
        while ticks_between(now_tick, self.cursor) >= 0
            && work < budget
            && slots_walked < WHEEL_SLOTS
        {
            let slot = (self.cursor & WHEEL_MASK) as usize;
            let mut id = self.wheel[slot];
            while id != NIL && work < budget {
                let next = self.conns[id as usize].wheel_next;
                work += 1;
                if ticks_between(now_tick, self.due(id)) >= 0 {
                    let conn = self.remove(ConnId(id));
                    on_expired(&conn);
                    expired += 1;
                } else {
                    self.unlink(id);
                    self.link(id);
                }
                id = next;
            }
            if id != NIL {
                break;
            }
            self.cursor = self.cursor.wrapping_add(1);
            slots_walked += 1;
        }
        expired
    }

    /// Visits the connections in entries `from..from + budget`, in table
    /// order, and returns the entry to continue from (the capacity once
    /// the table is done). `take` declining a connection stops the visit
    /// there, so that the next visit starts with it. Listings use this to
    /// walk a table of millions a bounded slice at a time.
    pub fn visit(
        &self,
        from: u32,
        budget: u32,
        mut take: impl FnMut(ConnId, &Conn<A>) -> bool,
    ) -> u32 {
        let end = from.saturating_add(budget).min(self.capacity());
        for id in from..end {
            let conn = &self.conns[id as usize];
            if conn.wheel_prev != FREE && !take(ConnId(id), conn) {
                return id;
            }
        }
        end
    }

    /// Visits every connection (in table order, not by age).
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn<A>)> {
        self.conns
            .iter()
            .enumerate()
            .filter(|(_, conn)| conn.wheel_prev != FREE)
            .map(|(id, conn)| (ConnId(id as u32), conn))
    }

    // --- the index ---

    #[inline]
    fn home(&self, hash: u64) -> usize {
        // The high half of the hash scaled to the bucket count (Lemire's
        // multiply-shift): any number of buckets, no division.
        (((hash >> 32) * self.index.len() as u64) >> 32) as usize
    }

    #[inline]
    fn next_bucket(&self, bucket: usize) -> usize {
        if bucket + 1 == self.index.len() {
            0
        } else {
            bucket + 1
        }
    }

    fn index_insert(&mut self, key: &FlowKey<A>, id: u32, direction: Direction) {
        let hash = self.hash(key);
        let mut bucket = self.home(hash);
        // The index is at most 80% full, so a bucket with room is found.
        loop {
            let candidates = &mut self.index[bucket];
            if let Some(slot) = candidates.slots.iter().position(|&value| value == 0) {
                candidates.slots[slot] = encode(id, direction);
                candidates.set_tag(slot, tag(hash));
                return;
            }
            candidates.set_overflow(candidates.overflow() + 1);
            bucket = self.next_bucket(bucket);
        }
    }

    fn index_remove(&mut self, key: &FlowKey<A>, id: u32, direction: Direction) {
        let hash = self.hash(key);
        let wanted = encode(id, direction);
        let home = self.home(hash);
        let mut bucket = home;
        loop {
            let candidates = &mut self.index[bucket];
            if let Some(slot) = candidates.slots.iter().position(|&value| value == wanted) {
                candidates.slots[slot] = 0;
                break;
            }
            if candidates.overflow() == 0 {
                // Not indexed: nothing to undo.
                return;
            }
            bucket = self.next_bucket(bucket);
        }
        let mut passed = home;
        while passed != bucket {
            let candidates = &mut self.index[passed];
            candidates.set_overflow(candidates.overflow() - 1);
            passed = self.next_bucket(passed);
        }
    }

    // --- the timer wheel ---

    #[inline]
    fn due(&self, id: u32) -> u32 {
        let conn = &self.conns[id as usize];
        conn.last_seen
            .wrapping_add(self.timeout_ticks[conn.state as usize])
    }

    fn link(&mut self, id: u32) {
        let ahead = ticks_between(self.due(id), self.cursor).clamp(0, WHEEL_SLOTS as i32 - 1);
        let slot = self.cursor.wrapping_add(ahead as u32) & WHEEL_MASK;
        let head = self.wheel[slot as usize];
        let conn = &mut self.conns[id as usize];
        conn.wheel_slot = slot as u16;
        conn.wheel_prev = NIL;
        conn.wheel_next = head;
        if head != NIL {
            self.conns[head as usize].wheel_prev = id;
        }
        self.wheel[slot as usize] = id;
    }

    fn unlink(&mut self, id: u32) {
        let conn = self.conns[id as usize];
        if conn.wheel_prev == NIL {
            self.wheel[conn.wheel_slot as usize] = conn.wheel_next;
        } else {
            self.conns[conn.wheel_prev as usize].wheel_next = conn.wheel_next;
        }
        if conn.wheel_next != NIL {
            self.conns[conn.wheel_next as usize].wheel_prev = conn.wheel_prev;
        }
    }

    /// Removes the entry nearest to expiry; the table must not be empty.
    fn evict_one(&mut self) -> Conn<A> {
        let mut probes = 0;
        loop {
            let Some((slot_tick, id)) = self.first_scheduled() else {
                unreachable!("a full table has scheduled entries");
            };
            probes += 1;
            let overdue_by = ticks_between(self.due(id), slot_tick);
            if overdue_by <= 0 || probes >= EVICTION_PROBES {
                return self.remove(ConnId(id));
            }
            self.unlink(id);
            self.link(id);
        }
    }

    /// The first non-empty wheel slot from the cursor: its tick and head.
    fn first_scheduled(&self) -> Option<(u32, u32)> {
        (0..WHEEL_SLOTS).find_map(|ahead| {
            let slot_tick = self.cursor.wrapping_add(ahead);
            let head = self.wheel[(slot_tick & WHEEL_MASK) as usize];
            (head != NIL).then_some((slot_tick, head))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;
    use crate::conn::Method;
    use crate::time::Duration;

    const TCP: u8 = 6;
    const UDP: u8 = 17;
    const SEED: HashSeed = HashSeed([0x1234_5678_9abc_def0, 0x0fed_cba9_8765_4321]);

    fn nat_conn(protocol: u8, client: u32, client_port: u16) -> Conn<Ipv4Addr> {
        Conn::new(
            protocol,
            Method::Nat,
            (Ipv4Addr::from(client), client_port),
            (Ipv4Addr::new(198, 18, 0, 10), 80),
            (Ipv4Addr::new(198, 18, 1, 11), 8080),
            (Ipv4Addr::from(client), client_port),
            0,
            0,
        )
    }

    fn table(capacity: u32) -> ConnTable<Ipv4Addr> {
        ConnTable::new(capacity, SEED, &StateTimeouts::default(), Instant(0))
    }

    #[test]
    fn both_tuples_find_the_entry_with_their_direction() {
        let mut table = table(16);
        let conn = nat_conn(TCP, 0xC612_0002, 40000);
        let (id, evicted) = table.insert(conn, Instant(0)).unwrap();
        assert!(evicted.is_none());
        assert_eq!(table.lookup(&conn.in_key()), Some((id, Direction::In)));
        assert_eq!(table.lookup(&conn.out_key()), Some((id, Direction::Out)));
        let mut other = conn.in_key();
        other.src_port += 1;
        assert_eq!(table.lookup(&other), None);
        assert_eq!(table.remove(id).in_key(), conn.in_key());
        assert_eq!(table.lookup(&conn.in_key()), None);
        assert_eq!(table.lookup(&conn.out_key()), None);
        assert!(table.is_empty());
    }

    #[test]
    fn input_only_connections_index_one_tuple() {
        let mut table = table(4);
        let mut conn = nat_conn(TCP, 0xC612_0002, 40000);
        conn.method = Method::DirectRoute;
        table.insert(conn, Instant(0)).unwrap();
        assert!(table.lookup(&conn.in_key()).is_some());
        assert_eq!(table.lookup(&conn.out_key()), None);
    }

    #[test]
    fn a_taken_reply_tuple_is_refused() {
        let mut table = table(4);
        let first = nat_conn(TCP, 0xC612_0002, 40000);
        table.insert(first, Instant(0)).unwrap();
        // Same client tuple to another VIP served by the same RS:port.
        let mut second = first;
        second.vip = Ipv4Addr::new(198, 18, 0, 11);
        assert_eq!(
            table.insert(second, Instant(0)),
            Err(InsertError::OutTupleInUse)
        );
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn idle_connections_expire_after_their_state_timeout() {
        let mut table = table(64);
        let udp = nat_conn(UDP, 1, 1000);
        let (udp_id, _) = table.insert(udp, Instant(0)).unwrap();
        let tcp = nat_conn(TCP, 2, 1000);
        let (tcp_id, _) = table.insert(tcp, Instant(0)).unwrap();
        table.set_state(tcp_id, ConnState::TcpEstablished, Instant(0));

        let mut expired = Vec::new();
        let at = |secs| Instant(0) + Duration::from_secs(secs);
        table.expire(at(299), usize::MAX, |c| expired.push(c.client_port));
        assert!(expired.is_empty());
        // Activity pushes the UDP deadline back.
        table.touch(udp_id, at(200));
        table.expire(at(400), usize::MAX, |c| expired.push(c.client_port));
        assert!(expired.is_empty(), "touched at 200 s, due at 500 s");
        table.expire(at(501), usize::MAX, |_| {});
        assert_eq!(table.lookup(&udp.in_key()), None);
        assert!(
            table.lookup(&tcp.in_key()).is_some(),
            "established lasts 900 s"
        );
        assert_eq!(table.expire(at(901), usize::MAX, |_| {}), 1);
        assert!(table.is_empty());
    }

    #[test]
    fn a_shorter_timeout_applies_at_once() {
        let mut table = table(8);
        let conn = nat_conn(TCP, 1, 1000);
        let (id, _) = table.insert(conn, Instant(0)).unwrap();
        table.set_state(id, ConnState::TcpEstablished, Instant(0));
        table.set_state(id, ConnState::TcpClose, Instant(0) + Duration::from_secs(5));
        assert_eq!(
            table.expire(Instant(0) + Duration::from_secs(16), usize::MAX, |_| {}),
            1
        );
    }

    #[test]
    fn expiry_work_is_bounded_and_resumes() {
        let mut table = table(1000);
        for port in 0..1000 {
            table.insert(nat_conn(UDP, 7, port), Instant(0)).unwrap();
        }
        let later = Instant(0) + Duration::from_secs(301);
        let first = table.expire(later, 100, |_| {});
        assert_eq!(first, 100);
        let mut total = first;
        while !table.is_empty() {
            total += table.expire(later, 100, |_| {});
        }
        assert_eq!(total, 1000);
    }

    #[test]
    fn a_full_table_evicts_the_least_recently_used() {
        let mut table = table(4);
        let conns: Vec<_> = (0..4).map(|port| nat_conn(UDP, 9, port)).collect();
        let ids: Vec<_> = conns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                table
                    .insert(*c, Instant(0) + Duration::from_secs(i as u64))
                    .unwrap()
                    .0
            })
            .collect();
        // Refresh the oldest so that the second oldest becomes the victim.
        table.touch(ids[0], Instant(0) + Duration::from_secs(10));
        let newcomer = nat_conn(UDP, 9, 100);
        let (_, evicted) = table
            .insert(newcomer, Instant(0) + Duration::from_secs(11))
            .unwrap();
        assert_eq!(evicted.map(|c| c.client_port), Some(1));
        assert_eq!(table.len(), 4);
        assert!(table.lookup(&newcomer.in_key()).is_some());
        assert!(table.lookup(&conns[0].in_key()).is_some());
        assert!(table.lookup(&conns[1].in_key()).is_none());
    }

    #[test]
    fn memory_per_connection_is_at_most_64_bytes() {
        assert_eq!(std::mem::size_of::<Conn<Ipv4Addr>>(), 48);
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        let table = table(1 << 16);
        let per_conn =
            (table.memory_bytes() - WHEEL_SLOTS as usize * 4) as f64 / f64::from(1 << 16);
        assert!(per_conn <= 64.0, "{per_conn} bytes per connection");
    }

    /// A full table stays correct when most buckets overflow into their
    /// neighbours (a small table, every slot of the index in use).
    #[test]
    fn a_full_index_keeps_every_tuple_reachable() {
        let mut table = table(100);
        for port in 0..100 {
            table.insert(nat_conn(UDP, 5, port), Instant(0)).unwrap();
        }
        for port in 0..100 {
            let conn = nat_conn(UDP, 5, port);
            assert!(table.lookup(&conn.in_key()).is_some(), "in {port}");
            assert!(table.lookup(&conn.out_key()).is_some(), "out {port}");
        }
        for port in (0..100).step_by(2) {
            let (id, _) = table.lookup(&nat_conn(UDP, 5, port).in_key()).unwrap();
            table.remove(id);
        }
        for port in 0..100 {
            let found = table.lookup(&nat_conn(UDP, 5, port).in_key()).is_some();
            assert_eq!(found, port % 2 == 1, "port {port}");
        }
        assert!(table.index.iter().all(|bucket| bucket.overflow() < 200));
    }

    proptest! {
        #[test]
        fn tag_matches_finds_exactly_the_equal_tags(
            tags in any::<[u16; BUCKET_SLOTS]>(),
            overflow in any::<u32>(),
            pick in 0usize..11,
        ) {
            let tag = tags.get(pick).copied().unwrap_or(0x5a5a);
            let mut bucket = EMPTY_BUCKET;
            for (slot, &value) in tags.iter().enumerate() {
                bucket.set_tag(slot, value);
            }
            bucket.set_overflow(overflow);
            prop_assert_eq!(bucket.overflow(), overflow);
            let mut found = Vec::new();
            for (first, mut matches) in bucket.tag_matches(tag) {
                while matches != 0 {
                    found.push(first + matches.trailing_zeros() as usize / 16);
                    matches &= matches - 1;
                }
            }
            let expected: Vec<usize> = (0..BUCKET_SLOTS).filter(|&i| tags[i] == tag).collect();
            prop_assert_eq!(found, expected);
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16),
        Remove(u16),
    }

    proptest! {
        /// The index agrees with a HashMap model through any mix of
        /// inserts and removes (this exercises the backward-shift deletion
        /// on long probe runs in a small table).
        #[test]
        fn index_matches_a_model(ops in prop::collection::vec(
            prop_oneof![(0u16..64).prop_map(Op::Insert), (0u16..64).prop_map(Op::Remove)],
            1..400,
        )) {
            let mut table = table(64);
            let mut model: HashMap<u16, ConnId> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(port) if !model.contains_key(&port) => {
                        let (id, evicted) = table.insert(nat_conn(TCP, 3, port), Instant(0)).unwrap();
                        prop_assert!(evicted.is_none());
                        model.insert(port, id);
                    }
                    Op::Remove(port) => {
                        if let Some(id) = model.remove(&port) {
                            prop_assert_eq!(table.remove(id).client_port, port);
                        }
                    }
                    Op::Insert(_) => {}
                }
                for port in 0..64 {
                    let conn = nat_conn(TCP, 3, port);
                    let expected = model.get(&port).copied();
                    prop_assert_eq!(table.lookup(&conn.in_key()).map(|(id, _)| id), expected);
                    prop_assert_eq!(table.lookup(&conn.out_key()).map(|(id, _)| id), expected);
                }
                prop_assert_eq!(table.len() as usize, model.len());
            }
        }
    }
}
