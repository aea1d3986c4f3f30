//! The connection listing (`rvsadm -Lnc`), the daemon's side.
//!
//! A listing is a series of [`ConnPage`] requests, each going on from the
//! previous page's cursor. A page walks each worker's IPv4 table, then its
//! IPv6 table, worker after worker, asking the worker through its
//! [`ConnMailbox`] (only the owner may read a connection table), then
//! lists the persistence templates, which every worker shares.
//!
//! The client thread waits for a worker with short sleeps, holding no
//! lock of the control state. A worker that does not answer in time
//! fails the request with an error that names it, and the request is
//! withdrawn so that the worker does not go on working for nobody.
//!
//! A page stops early, with a cursor to go on from, once it is full or
//! has taken [`PAGE_TIME_BUDGET`]: sparse tables of millions of entries
//! are then listed in many quick requests rather than one long one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::conn::Method;
use dataplane::listing::{ConnMailbox, ConnRecord, SCAN_BUDGET, SCAN_PER_PAGE, TablePosition};
use dataplane::persistence::Templates;

use crate::model::Protocol;
use crate::protocol::{CONN_PAGE_MAX, ConnCursor, ConnEntry, ConnListRequest, ConnPage, Status};

use super::state::{Refusal, TemplateTargets};

/// How long a worker may take to answer, besides the housekeeping passes
/// a page legitimately needs (see [`ConnListing::new`]).
pub(super) const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);
/// Time after which a page is sent as it is, with a cursor to go on.
pub(super) const PAGE_TIME_BUDGET: Duration = Duration::from_millis(200);
/// Pause between two looks at a worker's mailbox: about one housekeeping
/// interval of a busy worker.
const POLL_INTERVAL: Duration = Duration::from_micros(100);

/// Every worker's mailbox and the shared templates.
#[derive(Debug)]
pub(super) struct ConnListing {
    /// In worker order.
    mailboxes: Vec<Arc<ConnMailbox>>,
    templates: Arc<Templates>,
    answer_timeout: Duration,
}

impl ConnListing {
    /// `idle_sleep` is how long an idle worker sleeps between polls: a
    /// page may need a housekeeping pass for each [`SCAN_BUDGET`] entries
    /// of [`SCAN_PER_PAGE`], and an idle worker makes a pass per poll, so
    /// a worker is given [`ANSWER_TIMEOUT`] beyond those passes.
    pub(super) fn new(
        mailboxes: Vec<Arc<ConnMailbox>>,
        templates: Arc<Templates>,
        idle_sleep: Duration,
    ) -> ConnListing {
        let passes = SCAN_PER_PAGE.div_ceil(SCAN_BUDGET);
        ConnListing {
            mailboxes,
            templates,
            answer_timeout: ANSWER_TIMEOUT + idle_sleep * passes,
        }
    }

    pub(super) fn templates(&self) -> &Templates {
        &self.templates
    }

    /// One page of the listing. `second` is the current second on the
    /// workers' clock (templates expire by it); `targets` tells what the
    /// templates' slots stand for, and is called only once the page
    /// reaches the templates.
    pub(super) fn page(
        &self,
        request: ConnListRequest,
        second: u32,
        targets: impl FnOnce() -> TemplateTargets,
    ) -> Result<ConnPage, Refusal> {
        let limit = request.limit.clamp(1, CONN_PAGE_MAX) as usize;
        let mut cursor = request.cursor.unwrap_or(ConnCursor::START);
        let mut connections = Vec::new();
        // Taken once, when the page reaches the templates.
        let mut targets = Some(targets);
        let mut template_targets = None;
        let started = Instant::now();
        let mut records = Vec::new();
        loop {
            if connections.len() >= limit || started.elapsed() >= PAGE_TIME_BUDGET {
                return Ok(ConnPage {
                    connections,
                    next: Some(cursor),
                });
            }
            let wanted = limit - connections.len();
            cursor = match cursor {
                ConnCursor::Ipv4 { worker, entry } | ConnCursor::Ipv6 { worker, entry } => {
                    let Some(mailbox) = self.mailboxes.get(worker as usize) else {
                        cursor = ConnCursor::Templates { entry: 0 };
                        continue;
                    };
                    let from = match cursor {
                        ConnCursor::Ipv4 { .. } => TablePosition::Ipv4(entry),
                        _ => TablePosition::Ipv6(entry),
                    };
                    records.clear();
                    let next = self.ask(worker, mailbox, from, wanted, &mut records)?;
                    connections.extend(records.iter().filter_map(conn_entry));
                    match next {
                        TablePosition::Ipv4(entry) => ConnCursor::Ipv4 { worker, entry },
                        TablePosition::Ipv6(entry) => ConnCursor::Ipv6 { worker, entry },
                        TablePosition::End => ConnCursor::Ipv4 {
                            worker: worker.saturating_add(1),
                            entry: 0,
                        },
                    }
                }
                ConnCursor::Templates { entry } => {
                    let targets: &TemplateTargets = template_targets.get_or_insert_with(|| {
                        targets.take().map(|targets| targets()).unwrap_or_default()
                    });
                    let from = usize::try_from(entry).unwrap_or(usize::MAX);
                    let next = self.templates.scan(from, wanted, second, |template| {
                        connections.extend(targets.entry(&template, second));
                    });
                    match next {
                        Some(entry) => ConnCursor::Templates {
                            entry: entry as u64,
                        },
                        None => {
                            return Ok(ConnPage {
                                connections,
                                next: None,
                            });
                        }
                    }
                }
            };
        }
    }

    /// Asks worker `worker` for up to `wanted` records from `from` on and
    /// waits for its answer: where its next page starts.
    fn ask(
        &self,
        worker: u32,
        mailbox: &ConnMailbox,
        from: TablePosition,
        wanted: usize,
        records: &mut Vec<ConnRecord>,
    ) -> Result<TablePosition, Refusal> {
        let mut pending = mailbox.post(from, wanted);
        let deadline = Instant::now() + self.answer_timeout;
        loop {
            if let Some(next) = pending.collect(records) {
                return Ok(next);
            }
            if Instant::now() >= deadline {
                // Dropping `pending` withdraws the request.
                return Err(Refusal {
                    status: Status::Internal,
                    message: format!(
                        "worker {worker} did not answer the connection listing within {} ms",
                        self.answer_timeout.as_millis()
                    ),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// A worker's record as the protocol lists it; `None` for a protocol
/// that listings cannot name (the dataplane tracks TCP and UDP only).
fn conn_entry(record: &ConnRecord) -> Option<ConnEntry> {
    let protocol = match record.protocol {
        6 => Protocol::Tcp,
        17 => Protocol::Udp,
        _ => return None,
    };
    Some(ConnEntry {
        protocol,
        state: record.state.ipvsadm_name().to_owned(),
        expires: record.expires_in,
        client: record.client,
        virtual_address: record.virtual_address,
        real_server: record.real_server,
        local: (record.method == Method::FullNat).then_some(record.local),
        template: false,
    })
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::atomic::{AtomicBool, Ordering};

    use dataplane::conn::{Conn, ConnState, ConnTable, HashSeed, StateTimeouts};
    use dataplane::family::Family;
    use dataplane::persistence::TemplateKey;
    use dataplane::time::Instant as DataplaneInstant;

    use super::*;

    const NOW: DataplaneInstant = DataplaneInstant(5_000_000_000);
    const SECOND: u32 = 5;

    type Tables = (ConnTable<Ipv4Addr>, ConnTable<Ipv6Addr>);

    fn tables() -> Tables {
        let timeouts = StateTimeouts::default();
        let seed = HashSeed([3, 4]);
        (
            ConnTable::new(4096, seed, &timeouts, NOW),
            ConnTable::new(1024, seed, &timeouts, NOW),
        )
    }

    fn conn<A: Family>(
        protocol: u8,
        method: Method,
        client: (A, u16),
        vip: A,
        real: A,
        local: (A, u16),
    ) -> Conn<A> {
        Conn::new(
            protocol,
            method,
            client,
            (vip, 80),
            (real, 8080),
            local,
            0,
            0,
        )
    }

    fn v4(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, last)
    }

    /// Workers that serve their mailboxes from their own threads, as
    /// housekeeping does, until dropped.
    struct Workers {
        stop: Arc<AtomicBool>,
        threads: Vec<std::thread::JoinHandle<()>>,
    }

    impl Workers {
        fn start(tables: Vec<Tables>) -> (Workers, Vec<Arc<ConnMailbox>>) {
            let stop = Arc::new(AtomicBool::new(false));
            let mut mailboxes = Vec::new();
            let threads = tables
                .into_iter()
                .map(|tables| {
                    let mailbox = Arc::new(ConnMailbox::default());
                    mailboxes.push(Arc::clone(&mailbox));
                    let stop = Arc::clone(&stop);
                    std::thread::spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            mailbox.serve(NOW, &tables.0, &tables.1);
                            std::thread::sleep(Duration::from_micros(50));
                        }
                    })
                })
                .collect();
            (Workers { stop, threads }, mailboxes)
        }
    }

    impl Drop for Workers {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            for thread in self.threads.drain(..) {
                let _ = thread.join();
            }
        }
    }

    fn listing(mailboxes: Vec<Arc<ConnMailbox>>) -> ConnListing {
        ConnListing::new(mailboxes, Arc::new(Templates::new(1024, 9)), Duration::ZERO)
    }

    /// Pages until the end; returns them.
    fn all_pages(listing: &ConnListing, limit: u32) -> Vec<ConnPage> {
        let mut pages = Vec::new();
        let mut cursor = None;
        loop {
            let page = listing
                .page(
                    ConnListRequest { cursor, limit },
                    SECOND,
                    TemplateTargets::default,
                )
                .unwrap();
            cursor = page.next;
            pages.push(page);
            if cursor.is_none() {
                return pages;
            }
            assert!(pages.len() < 1000, "the listing never ends");
        }
    }

    #[test]
    fn pages_walk_every_worker_then_end() {
        let mut first = tables();
        for port in 0..5 {
            first
                .0
                .insert(
                    conn(6, Method::Nat, (v4(2), port), v4(10), v4(11), (v4(2), port)),
                    NOW,
                )
                .unwrap();
        }
        let client6 = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
        let vip6 = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10);
        first
            .1
            .insert(
                conn(17, Method::Nat, (client6, 7), vip6, vip6, (client6, 7)),
                NOW,
            )
            .unwrap();
        let mut second = tables();
        let lip = Ipv4Addr::new(198, 18, 1, 100);
        let (id, _) = second
            .0
            .insert(
                conn(6, Method::FullNat, (v4(3), 9), v4(10), v4(12), (lip, 5001)),
                NOW,
            )
            .unwrap();
        second.0.set_state(id, ConnState::TcpEstablished, NOW);
        let (_workers, mailboxes) = Workers::start(vec![first, second]);
        let listing = listing(mailboxes);

        let pages = all_pages(&listing, 4);
        let entries: Vec<&ConnEntry> = pages.iter().flat_map(|p| &p.connections).collect();
        assert!(pages.iter().all(|page| page.connections.len() <= 4));
        assert_eq!(entries.len(), 7, "{pages:?}");
        assert!(entries[..5].iter().all(|e| e.client.ip() == v4(2)));
        assert_eq!(
            (entries[5].protocol, entries[5].state.as_str()),
            (Protocol::Udp, "UDP")
        );
        let fullnat = entries[6];
        assert_eq!(fullnat.state, "ESTABLISHED");
        assert_eq!(fullnat.local, Some("198.18.1.100:5001".parse().unwrap()));
        assert_eq!(fullnat.real_server, "198.18.0.12:8080".parse().unwrap());
        assert_eq!(entries[0].local, None, "NAT has no LIP");
        assert!(entries.iter().all(|e| !e.template));
        // The first page filled up in worker 0's IPv4 table.
        assert!(
            matches!(pages[0].next, Some(ConnCursor::Ipv4 { worker: 0, .. })),
            "{:?}",
            pages[0].next
        );
    }

    #[test]
    fn templates_come_last_as_ipvs_lists_them() {
        use super::super::state::Change;
        use super::super::state::tests::{add_real, control, service};
        use crate::model::{Persistence, SchedulerName};

        let mut control = control();
        let mut spec = service(80, SchedulerName::Rr);
        spec.persistence = Some(Persistence {
            timeout: 60,
            netmask: 32,
        });
        control.apply(&Change::AddService(spec)).unwrap();
        add_real(&mut control, 80, 11).unwrap();
        let snapshot = control.snapshot();
        let (service_slot, real_server_slot) = (
            snapshot.services[0].slot,
            snapshot.services[0].real_servers[0].slot,
        );

        let (_workers, mailboxes) = Workers::start(vec![tables()]);
        let listing = listing(mailboxes);
        let key = TemplateKey::new(listing.templates(), service_slot, v4(7), 32);
        listing
            .templates()
            .place(&key, real_server_slot, SECOND + 60, SECOND, None);
        // Without targets (its service is gone), a template is left out.
        let pages = all_pages(&listing, 10);
        assert!(pages.iter().all(|page| page.connections.is_empty()));

        // Past the last worker, the templates.
        let page = listing
            .page(
                ConnListRequest {
                    cursor: Some(ConnCursor::Ipv4 {
                        worker: 1,
                        entry: 0,
                    }),
                    limit: 10,
                },
                SECOND + 1,
                || control.template_targets(),
            )
            .unwrap();
        assert_eq!(page.next, None);
        assert_eq!(
            page.connections,
            [ConnEntry {
                protocol: Protocol::Tcp,
                state: "NONE".to_owned(),
                expires: 59,
                client: "198.18.0.7:0".parse().unwrap(),
                virtual_address: "198.18.0.10:80".parse().unwrap(),
                real_server: "198.18.1.11:80".parse().unwrap(),
                local: None,
                template: true,
            }]
        );
    }

    #[test]
    fn a_worker_that_does_not_answer_fails_the_page_and_is_let_go() {
        let mailbox = Arc::new(ConnMailbox::default());
        let listing = ConnListing {
            mailboxes: vec![Arc::clone(&mailbox)],
            templates: Arc::new(Templates::new(1024, 9)),
            answer_timeout: Duration::from_millis(20),
        };
        let refusal = listing
            .page(
                ConnListRequest {
                    cursor: None,
                    limit: 10,
                },
                SECOND,
                TemplateTargets::default,
            )
            .unwrap_err();
        assert_eq!(refusal.status, Status::Internal);
        assert_eq!(
            refusal.message,
            "worker 0 did not answer the connection listing within 20 ms"
        );
        // The request was withdrawn: a worker coming back later finds
        // nothing to do, and the next listing gets a fresh answer.
        let (ipv4, ipv6) = tables();
        mailbox.serve(NOW, &ipv4, &ipv6);
        let mut pending = mailbox.post(TablePosition::START, 10);
        assert_eq!(pending.collect(&mut Vec::new()), None);
    }
}
