//! The connection listing (`rvsadm -Lnc`): how the control thread reads
//! connection tables that only their worker may touch.
//!
//! Each worker has a [`ConnMailbox`], shared as an `Arc` with the control
//! thread:
//!
//! 1. The control thread [posts](ConnMailbox::post) a request: where to
//!    start ([`TablePosition`]) and how many records it wants.
//! 2. The worker notices it in housekeeping (one atomic load while nothing
//!    is asked) and [serves](ConnMailbox::serve) it, examining at most
//!    [`SCAN_BUDGET`] table entries per housekeeping pass and copying the
//!    connections it finds into a page allocated once, with the mailbox.
//! 3. The worker publishes the page when it is full, when both tables are
//!    done (the IPv4 table, then the IPv6 table), or once [`SCAN_PER_PAGE`]
//!    entries were examined for it: a sparse table of millions of entries
//!    then answers in bounded time, with pages that may be short or even
//!    empty, each saying where the next one starts.
//! 4. The control thread [collects](PendingPage::collect) the page and
//!    posts the next request.
//!
//! The page sits behind a `Mutex` that the worker only ever `try_lock`s:
//! when the control thread holds it, the worker tries again on its next
//! pass. A worker therefore never blocks and never allocates for a listing.
//!
//! A table that changes during a listing is listed like any changing
//! table: a connection created or removed meanwhile may be missed, but
//! none is listed twice, since entries never move.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use crate::conn::{Conn, ConnState, ConnTable, Method};
use crate::family::Family;
use crate::time::{Duration, Instant};

/// Records a page holds at most (as many as a page of the control
/// protocol's connection listing).
pub const PAGE_CAPACITY: usize = 1024;
/// Table entries a worker examines per housekeeping pass, so that serving
/// a listing keeps its pause within a few microseconds.
pub const SCAN_BUDGET: u32 = 1024;
/// Table entries examined for one page before it is published however
/// few records it holds.
pub const SCAN_PER_PAGE: u32 = 64 * SCAN_BUDGET;

/// Where a listing of one worker's connections stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TablePosition {
    /// Entry `n` of the IPv4 table.
    Ipv4(u32),
    /// Entry `n` of the IPv6 table (after the whole IPv4 table).
    Ipv6(u32),
    /// Both tables are done.
    End,
}

impl TablePosition {
    pub const START: TablePosition = TablePosition::Ipv4(0);
}

/// One connection as listings show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRecord {
    pub protocol: u8,
    pub state: ConnState,
    pub method: Method,
    /// Whole seconds before the connection expires unless a packet comes.
    pub expires_in: u32,
    /// CIP:cport.
    pub client: SocketAddr,
    /// VIP:vport.
    pub virtual_address: SocketAddr,
    /// RIP:rport.
    pub real_server: SocketAddr,
    /// The source the real server sees: LIP:lport in FULLNAT, otherwise
    /// the client.
    pub local: SocketAddr,
}

impl ConnRecord {
    pub fn new<A: Family>(conn: &Conn<A>, expires_in: Duration) -> ConnRecord {
        let endpoint = |address: A, port| SocketAddr::new(address.to_ip(), port);
        ConnRecord {
            protocol: conn.protocol,
            state: conn.state,
            method: conn.method,
            expires_in: u32::try_from(expires_in.as_secs()).unwrap_or(u32::MAX),
            client: endpoint(conn.client, conn.client_port),
            virtual_address: endpoint(conn.vip, conn.vport),
            real_server: endpoint(conn.real, conn.real_port),
            local: endpoint(conn.local, conn.local_port),
        }
    }
}

/// A worker's end of the connection listing (see the module docs).
#[derive(Debug)]
pub struct ConnMailbox {
    /// A request waits for the worker: raised by `post`, lowered when the
    /// page is published or the request withdrawn.
    pending: AtomicBool,
    page: Mutex<Page>,
    /// Held by the control thread whose request is outstanding, so that
    /// two listings of the same worker take turns.
    turn: Mutex<()>,
}

#[derive(Debug)]
struct Page {
    phase: Phase,
    /// The next entry to examine; once published, where the next page
    /// starts.
    position: TablePosition,
    limit: usize,
    /// Entries examined for this page so far.
    examined: u32,
    /// Allocated with room for [`PAGE_CAPACITY`] records and never filled
    /// beyond `limit`, which is at most that: pushing never allocates.
    records: Vec<ConnRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Filling,
    Published,
}

impl Default for ConnMailbox {
    fn default() -> Self {
        ConnMailbox {
            pending: AtomicBool::new(false),
            page: Mutex::new(Page {
                phase: Phase::Idle,
                position: TablePosition::End,
                limit: 0,
                examined: 0,
                records: Vec::with_capacity(PAGE_CAPACITY),
            }),
            turn: Mutex::new(()),
        }
    }
}

impl ConnMailbox {
    /// Asks the worker for up to `limit` records (at most
    /// [`PAGE_CAPACITY`]) from `from` on. Waits while another control
    /// thread has a request outstanding on this mailbox. Dropping the
    /// returned [`PendingPage`] withdraws the request.
    pub fn post(&self, from: TablePosition, limit: usize) -> PendingPage<'_> {
        let turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
        {
            let mut page = self.lock_page();
            page.phase = Phase::Filling;
            page.position = from;
            page.limit = limit.clamp(1, PAGE_CAPACITY);
            page.examined = 0;
            page.records.clear();
        }
        self.pending.store(true, Ordering::Release);
        PendingPage {
            mailbox: self,
            _turn: turn,
        }
    }

    /// The worker's part, from housekeeping: a bounded step of the posted
    /// request, if there is one (see the module docs).
    pub fn serve(&self, now: Instant, ipv4: &ConnTable<Ipv4Addr>, ipv6: &ConnTable<Ipv6Addr>) {
        if !self.pending.load(Ordering::Acquire) {
            return;
        }
        let mut page = match self.page.try_lock() {
            Ok(page) => page,
            // Every request resets the page, whatever a panic left in it.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        if page.phase != Phase::Filling {
            return;
        }
        let mut budget = SCAN_BUDGET;
        while budget > 0 && page.records.len() < page.limit {
            let examined = match page.position {
                TablePosition::Ipv4(from) => page.fill(
                    ipv4,
                    from,
                    budget,
                    now,
                    TablePosition::Ipv4,
                    TablePosition::Ipv6(0),
                ),
                TablePosition::Ipv6(from) => page.fill(
                    ipv6,
                    from,
                    budget,
                    now,
                    TablePosition::Ipv6,
                    TablePosition::End,
                ),
                TablePosition::End => break,
            };
            budget -= examined;
            page.examined = page.examined.saturating_add(examined);
        }
        if page.records.len() >= page.limit
            || page.position == TablePosition::End
            || page.examined >= SCAN_PER_PAGE
        {
            page.phase = Phase::Published;
            self.pending.store(false, Ordering::Release);
        }
    }

    /// The control thread's lock: the worker holds the page only for a
    /// pass, so waiting for it is short.
    fn lock_page(&self) -> MutexGuard<'_, Page> {
        self.page.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Page {
    /// Copies the connections of `table` from entry `from` on, examining
    /// at most `budget` entries; moves the position on (within the table
    /// with `here`, to `after` once the table is done) and returns how
    /// many entries were examined.
    fn fill<A: Family>(
        &mut self,
        table: &ConnTable<A>,
        from: u32,
        budget: u32,
        now: Instant,
        here: fn(u32) -> TablePosition,
        after: TablePosition,
    ) -> u32 {
        let (records, limit) = (&mut self.records, self.limit);
        let next = table.visit(from, budget, |id, conn| {
            if records.len() >= limit {
                return false;
            }
            records.push(ConnRecord::new(conn, table.expires_in(id, now)));
            true
        });
        self.position = if next >= table.capacity() {
            after
        } else {
            here(next)
        };
        next.saturating_sub(from)
    }
}

/// A request posted to a worker, until its page is collected.
#[derive(Debug)]
pub struct PendingPage<'a> {
    mailbox: &'a ConnMailbox,
    _turn: MutexGuard<'a, ()>,
}

impl PendingPage<'_> {
    /// Once the worker has published the page: appends its records to
    /// `records` and returns where the next page starts
    /// ([`TablePosition::End`] after the last one).
    pub fn collect(&mut self, records: &mut Vec<ConnRecord>) -> Option<TablePosition> {
        if self.mailbox.pending.load(Ordering::Acquire) {
            return None;
        }
        let mut page = self.mailbox.lock_page();
        if page.phase != Phase::Published {
            return None;
        }
        records.extend_from_slice(&page.records);
        page.phase = Phase::Idle;
        Some(page.position)
    }
}

impl Drop for PendingPage<'_> {
    /// Withdraws a request that was not answered (the caller gave up on
    /// the worker), so that the worker stops working on it.
    fn drop(&mut self) {
        self.mailbox.pending.store(false, Ordering::Release);
        self.mailbox.lock_page().phase = Phase::Idle;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::conn::{HashSeed, StateTimeouts};

    const TCP: u8 = 6;
    const UDP: u8 = 17;
    const SEED: HashSeed = HashSeed([1, 2]);
    const NOW: Instant = Instant(5_000_000_000);

    fn tables(capacity_v4: u32, capacity_v6: u32) -> (ConnTable<Ipv4Addr>, ConnTable<Ipv6Addr>) {
        let timeouts = StateTimeouts::default();
        (
            ConnTable::new(capacity_v4, SEED, &timeouts, NOW),
            ConnTable::new(capacity_v6, SEED, &timeouts, NOW),
        )
    }

    fn nat<A: Family>(protocol: u8, client: A, client_port: u16, vip: A, real: A) -> Conn<A> {
        Conn::new(
            protocol,
            Method::Nat,
            (client, client_port),
            (vip, 80),
            (real, 8080),
            (client, client_port),
            0,
            0,
        )
    }

    fn v4(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, last)
    }

    fn v6(last: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, last)
    }

    /// Runs housekeeping passes until the page is published; returns the
    /// records, where the next page starts and how many passes it took.
    fn page(
        mailbox: &ConnMailbox,
        tables: &(ConnTable<Ipv4Addr>, ConnTable<Ipv6Addr>),
        from: TablePosition,
        limit: usize,
    ) -> (Vec<ConnRecord>, TablePosition, usize) {
        let mut pending = mailbox.post(from, limit);
        let mut records = Vec::new();
        for passes in 1..100_000 {
            mailbox.serve(NOW, &tables.0, &tables.1);
            if let Some(next) = pending.collect(&mut records) {
                return (records, next, passes);
            }
        }
        panic!("the page was never published");
    }

    #[test]
    fn a_sparse_table_takes_several_passes_and_pages_stay_within_their_limit() {
        let mut tables = tables(5 * SCAN_BUDGET, 16);
        for port in 0..5 {
            tables
                .0
                .insert(nat(TCP, v4(2), port, v4(10), v4(11)), NOW)
                .unwrap();
        }
        let mailbox = ConnMailbox::default();
        let (records, next, passes) = page(&mailbox, &tables, TablePosition::START, 3);
        assert_eq!(records.len(), 3);
        assert!(matches!(next, TablePosition::Ipv4(_)), "{next:?}");
        assert_eq!(passes, 1, "inserted first, so at the table's start");
        // The rest and the empty remainders of both tables, a budget a
        // pass.
        let (records, next, passes) = page(&mailbox, &tables, next, 3);
        assert_eq!(records.len(), 2);
        assert_eq!(next, TablePosition::End);
        let entries_left = 5 * SCAN_BUDGET - 3 + 16;
        assert_eq!(passes, entries_left.div_ceil(SCAN_BUDGET) as usize);
    }

    #[test]
    fn a_listing_covers_ipv4_then_ipv6_once_each_and_ends() {
        let mut tables = tables(1000, 1000);
        for port in 0..300 {
            tables
                .0
                .insert(nat(UDP, v4(2), port, v4(10), v4(11)), NOW)
                .unwrap();
            tables
                .1
                .insert(nat(TCP, v6(2), port, v6(0x10), v6(0x11)), NOW)
                .unwrap();
        }
        let mailbox = ConnMailbox::default();
        let mut all = Vec::new();
        let mut position = TablePosition::START;
        let mut pages = 0;
        while position != TablePosition::End {
            let (records, next, _) = page(&mailbox, &tables, position, 128);
            assert!(records.len() <= 128);
            all.extend(records);
            position = next;
            pages += 1;
        }
        assert_eq!(pages, 600 / 128 + 1);
        assert_eq!(all.len(), 600);
        assert!(all[..300].iter().all(|r| r.client.is_ipv4()));
        assert!(all[300..].iter().all(|r| r.client.is_ipv6()));
        let mut ports: Vec<(bool, u16)> = all
            .iter()
            .map(|r| (r.client.is_ipv4(), r.client.port()))
            .collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 600, "each connection once");
    }

    #[test]
    fn an_empty_table_answers_in_bounded_pages() {
        let tables = tables(2 * SCAN_PER_PAGE + 10, 16);
        let mailbox = ConnMailbox::default();
        let (records, next, passes) = page(&mailbox, &tables, TablePosition::START, 10);
        assert!(records.is_empty());
        assert_eq!(next, TablePosition::Ipv4(SCAN_PER_PAGE));
        assert_eq!(passes, (SCAN_PER_PAGE / SCAN_BUDGET) as usize);
        let (_, next, _) = page(&mailbox, &tables, next, 10);
        let (_, next, passes) = page(&mailbox, &tables, next, 10);
        assert_eq!(next, TablePosition::End);
        assert_eq!(
            passes, 1,
            "the IPv4 table's last 10 entries and all of IPv6"
        );
    }

    #[test]
    fn pages_never_exceed_their_capacity() {
        let mut tables = tables(3 * PAGE_CAPACITY as u32, 16);
        for port in 0..(3 * PAGE_CAPACITY) as u16 {
            tables
                .0
                .insert(nat(UDP, v4(3), port, v4(10), v4(12)), NOW)
                .unwrap();
        }
        let mailbox = ConnMailbox::default();
        let (records, _, passes) = page(&mailbox, &tables, TablePosition::START, usize::MAX);
        assert_eq!(records.len(), PAGE_CAPACITY);
        assert_eq!(passes, PAGE_CAPACITY / SCAN_BUDGET as usize);
    }

    #[test]
    fn a_withdrawn_request_is_left_alone() {
        let mut tables = tables(16, 16);
        tables
            .0
            .insert(nat(TCP, v4(2), 1000, v4(10), v4(11)), NOW)
            .unwrap();
        let mailbox = ConnMailbox::default();
        drop(mailbox.post(TablePosition::START, 10));
        mailbox.serve(NOW, &tables.0, &tables.1);
        let mut pending = mailbox.post(TablePosition::START, 10);
        let mut records = Vec::new();
        assert_eq!(pending.collect(&mut records), None, "not served yet");
        mailbox.serve(NOW, &tables.0, &tables.1);
        assert_eq!(pending.collect(&mut records), Some(TablePosition::End));
        assert_eq!(records.len(), 1);
    }

    #[test]
    fn the_worker_skips_a_pass_while_the_page_is_held() {
        let tables = tables(16, 16);
        let mailbox = ConnMailbox::default();
        let mut pending = mailbox.post(TablePosition::START, 10);
        let held = mailbox.lock_page();
        mailbox.serve(NOW, &tables.0, &tables.1);
        drop(held);
        assert_eq!(pending.collect(&mut Vec::new()), None);
        mailbox.serve(NOW, &tables.0, &tables.1);
        assert_eq!(pending.collect(&mut Vec::new()), Some(TablePosition::End));
    }

    #[test]
    fn the_directors_housekeeping_serves_its_mailbox() {
        use crate::testing::{CLIENT, Lab, RIPS, TCP_RPORT, TCP_VPORT, VIP};
        let mut lab = Lab::nat();
        lab.learn_neighbours();
        lab.receive(
            crate::testing::WAN,
            &lab.client_tcp(40000, crate::wire::TcpFlags::SYN, &[]),
        );
        let listing = Arc::clone(&lab.listing);
        let mut pending = listing.post(TablePosition::START, 10);
        let mut records = Vec::new();
        // 4096 IPv4 and 1024 IPv6 entries, a budget a pass.
        for _ in 0..5 {
            assert_eq!(pending.collect(&mut records), None);
            lab.advance(Duration::from_millis(200));
        }
        assert_eq!(pending.collect(&mut records), Some(TablePosition::End));
        let [record] = records[..] else {
            panic!("{records:?}");
        };
        assert_eq!(record.state.ipvsadm_name(), "SYN_RECV");
        assert_eq!(record.expires_in, 59, "60 s in SYN_RECV, 1 s ago");
        assert_eq!(
            (record.client, record.virtual_address),
            (
                SocketAddr::from((CLIENT, 40000)),
                SocketAddr::from((VIP, TCP_VPORT))
            )
        );
        assert!(
            RIPS.iter()
                .any(|&rip| record.real_server == SocketAddr::from((rip, TCP_RPORT)))
        );
    }

    #[test]
    fn records_carry_the_endpoints_state_and_time_left() {
        let (mut ipv4, ipv6) = tables(16, 16);
        let mut fullnat = nat(TCP, v4(2), 40000, v4(10), v4(11));
        fullnat.method = Method::FullNat;
        fullnat.local = Ipv4Addr::new(198, 18, 1, 100);
        fullnat.local_port = 5001;
        let (id, _) = ipv4.insert(fullnat, NOW).unwrap();
        ipv4.set_state(id, ConnState::TcpEstablished, NOW);
        let later = NOW + Duration::from_secs(100);
        let mailbox = ConnMailbox::default();
        let mut pending = mailbox.post(TablePosition::START, 10);
        mailbox.serve(later, &ipv4, &ipv6);
        let mut records = Vec::new();
        pending.collect(&mut records);
        assert_eq!(
            records,
            [ConnRecord {
                protocol: TCP,
                state: ConnState::TcpEstablished,
                method: Method::FullNat,
                // 900 s established, less the 100 s that passed.
                expires_in: 800,
                client: "198.18.0.2:40000".parse().unwrap(),
                virtual_address: "198.18.0.10:80".parse().unwrap(),
                real_server: "198.18.0.11:8080".parse().unwrap(),
                local: "198.18.1.100:5001".parse().unwrap(),
            }]
        );
        assert_eq!(records[0].state.ipvsadm_name(), "ESTABLISHED");
    }
}
