//! rvsd: start the dataplane from a configuration and serve the control
//! socket until told to stop.
//!
//! Start-up checks everything it can before touching DPDK (the file, and
//! what the dataplane supports), then initialises EAL, creates the packet
//! pool, configures and starts every port with one queue pair per worker
//! and all multicast (see `multicast`), gives each port with a
//! `kernel_interface` its kernel twin and starts the exception path's
//! thread (see `exception`), publishes the first configuration snapshot
//! and launches the workers, one per worker lcore (or `[dataplane]
//! workers` of them). The calling thread, on EAL's main lcore, becomes the
//! control thread: it serves the control socket (from
//! helper threads that inherit its core), samples rates, frees retired
//! snapshots and reclaims drained slots. SIGINT or SIGTERM stop the
//! workers, the exception path and its twins, the ports and EAL in that
//! order. SIGHUP, like `rvsadm --reload`, rereads the file and
//! applies what changed (see [`reload`]). With `[metrics]`, a thread of
//! its own serves Prometheus's `/metrics` (see [`metrics`]). Real servers
//! of services with a `health_check` are checked by threads of their own,
//! whose verdicts reach the workers as changes (see [`health`]).
//!
//! A change from `rvsadm` is answered only once every worker runs the
//! configuration that contains it, so a script that adds a real server and
//! then sends traffic sees the server in use.

mod exception;
pub mod health;
mod listing;
pub mod metrics;
mod multicast;
pub mod reload;
mod server;
mod state;
mod stats;

pub use server::{ControlSocket, Handler};
pub use state::{Change, Control, Limits, Refusal};
pub use stats::Estimator;

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use dataplane::conn::HashSeed;
use dataplane::counters::{LOAD_MERGE_INTERVAL_MS, WorkerCounters, merge_loads};
use dataplane::director::{Director, DirectorParams};
use dataplane::engine::Engine;
use dataplane::listing::ConnMailbox;
use dataplane::persistence::{self, Templates};
use dataplane::snapshot::{Retired, SnapshotCell};
use dataplane::steering::NeighbourExchange;
use dataplane::time::CycleClock;
use dataplane::wire::MacAddr;
use dataplane::worker::{HandOffRings, IdleBackoff, PortQueues, Worker};
use dpdk_bind::{
    Eal, LcoreHandle, MbufRing, Mempool, Port, PortConfig as DpdkPortConfig, PortId, QueueId, tsc,
};

use crate::config::{Config, FieldError};
use crate::protocol::{
    ConnListRequest, ConnPage, DaemonInfo, Reply, Request, Status, WorkerStatus,
};

use listing::ConnListing;
use state::PersistentConns;

/// Room in the dataplane's per-worker tables.
pub const LIMITS: Limits = Limits {
    services: 4096,
    real_servers: 65536,
};
/// Next hops a worker's neighbour table holds.
const NEIGHBOURS: usize = 4096;
/// How long a change waits for every worker to adopt it.
const ADOPTION_TIMEOUT: StdDuration = StdDuration::from_secs(2);

/// How often the control thread reclaims slots, frees old snapshots and
/// samples rates.
const TICK_INTERVAL: StdDuration = StdDuration::from_millis(100);

/// Mbufs a worker may hold outside the NIC rings: a receive burst, the
/// transmit buffers, frames waiting for ARP, its mempool cache.
const MBUFS_PER_WORKER: u32 = 32 * 4 + dataplane::engine::WAITING_CAPACITY as u32;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Config { problems: Vec<FieldError> },
    #[error("EAL: {0}")]
    Eal(#[from] dpdk_bind::EalError),
    #[error("{0}")]
    Setup(String),
    #[error("control socket {path}: {source}")]
    Socket {
        path: String,
        source: std::io::Error,
    },
}

fn setup_error(what: impl std::fmt::Display) -> DaemonError {
    DaemonError::Setup(what.to_string())
}

/// Mbufs each ring between two workers holds (see
/// `dataplane::steering`): a few bursts, so that a worker that falls
/// behind drops (and counts) rather than holding the pool.
const HAND_OFF_RING: u32 = 1024;

/// Checks a configuration as rvsd would before starting: the file's own
/// rules and what the dataplane supports. Touches no DPDK.
/// The packet pool is checked against the workers `dataplane.workers` or
/// the EAL arguments' lcore list give, or one worker when only EAL can
/// tell (`--lcores` groups): rvsd checks again with EAL's count at start.
pub fn check(config: &Config) -> Result<(), DaemonError> {
    let macs = vec![MacAddr::ZERO; config.ports.len()];
    let mut problems = Control::new(config, macs, LIMITS).err().unwrap_or_default();
    let workers = config
        .dataplane
        .workers
        .or_else(|| worker_lcores_in(&config.eal.args))
        .unwrap_or(1);
    problems.extend(pool_problem(config, workers.max(1)));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(DaemonError::Config { problems })
    }
}

/// Whether the packet pool can fill every ring that `workers` workers
/// use: each worker's rx and tx descriptors on every port, what a worker
/// holds, its share of the pool's cache, the hand-off rings from the
/// other workers and its ring to the kernel.
fn pool_problem(config: &Config, workers: u32) -> Option<FieldError> {
    let ports = config.ports.len() as u32;
    let dataplane = &config.dataplane;
    let descriptors = u32::from(dataplane.rx_descriptors) + u32::from(dataplane.tx_descriptors);
    let to_kernel_ring = if config.ports.iter().any(|p| p.kernel_interface.is_some()) {
        exception::EXCEPTION_RING
    } else {
        0
    };
    let needed = workers
        * (ports * descriptors
            + MBUFS_PER_WORKER
            + dataplane.mbuf_cache
            + (workers - 1) * HAND_OFF_RING
            + to_kernel_ring);
    (dataplane.mbufs < needed).then(|| FieldError {
        path: "dataplane.mbufs".to_owned(),
        message: format!(
            "{} mbufs cannot fill {ports} port(s) x {workers} worker(s) x {descriptors} descriptors plus what workers hold; give at least {needed}",
            dataplane.mbufs
        ),
    })
}

/// The worker lcores (all but the main one) that EAL arguments give
/// plainly: `-l` with numbers and ranges (`0-3,6`) or `-c` with a
/// hexadecimal mask. `None` when they give none, or only in a form EAL
/// alone reads (`--lcores` groups such as `(0-2)@4`).
fn worker_lcores_in(args: &[String]) -> Option<u32> {
    let value = |flag: &str| {
        args.iter()
            .enumerate()
            .find_map(|(i, arg)| match arg.strip_prefix(flag)? {
                "" => args.get(i + 1).map(String::as_str),
                glued => Some(glued),
            })
    };
    let lcores = if let Some(list) = value("-l") {
        let mut cores = std::collections::BTreeSet::new();
        for part in list.split(',') {
            let (first, last) = part.split_once('-').unwrap_or((part, part));
            let (first, last) = (first.parse::<u32>().ok()?, last.parse::<u32>().ok()?);
            if first > last || last - first >= 1024 {
                return None;
            }
            cores.extend(first..=last);
        }
        cores.len() as u32
    } else {
        let mask = value("-c")?;
        let digits = mask.strip_prefix("0x").unwrap_or(mask);
        u128::from_str_radix(digits, 16).ok()?.count_ones()
    };
    lcores.checked_sub(1)
}

/// The daemon's shared state, reached from the control socket's threads.
#[derive(Debug)]
struct Daemon {
    control: Mutex<Control>,
    snapshots: Arc<SnapshotCell>,
    retired: Mutex<Retired>,
    workers: Vec<Arc<WorkerCounters>>,
    /// The lcore of each worker, in worker order.
    worker_lcores: Vec<u32>,
    tsc_hz: u64,
    /// The workers' clock: persistence templates expire by its seconds.
    clock: CycleClock,
    /// Each worker's end of the connection listing, and the templates.
    connections: ConnListing,
    estimator: Mutex<Estimator>,
    info: DaemonInfo,
    /// The file rvsd was started with, reread by a reload.
    config_path: PathBuf,
    /// Its contents as last applied: what a reload may not change is
    /// compared with it.
    file: Mutex<Config>,
    /// The health checkers, which report to the daemon itself.
    health: health::Supervisor,
    /// The packet pools, for their use in metrics; emptied when rvsd
    /// stops, since the metrics endpoint's thread keeps the daemon alive
    /// and EAL's cleanup wants every pool handle gone.
    mempools: Mutex<Vec<Mempool>>,
    /// The exception thread's counters, when ports have kernel twins.
    exception: Option<Arc<dataplane::exception::ExceptionCounters>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock left consistent data behind: every
    // change is validated before anything is modified.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Daemon {
    fn counters(&self) -> Vec<&WorkerCounters> {
        self.workers.iter().map(AsRef::as_ref).collect()
    }

    /// Publishes the control state's next snapshot and waits until every
    /// worker runs it; brings the health checkers in line with it.
    fn publish(&self, control: &mut Control) {
        self.health.sync(control.health_targets());
        let snapshot = Arc::new(control.snapshot());
        let generation = snapshot.generation;
        lock(&self.retired).keep(Arc::clone(&snapshot));
        self.snapshots.publish(snapshot);
        let deadline = StdInstant::now() + ADOPTION_TIMEOUT;
        while self.oldest_adopted() < generation {
            if StdInstant::now() >= deadline {
                tracing::warn!(
                    generation,
                    "not every worker adopted the new configuration in time"
                );
                return;
            }
            std::thread::sleep(StdDuration::from_micros(20));
        }
    }

    fn worker_status(&self) -> Vec<WorkerStatus> {
        use dataplane::counters::{DropReason, Event};
        self.workers
            .iter()
            .zip(&self.worker_lcores)
            .enumerate()
            .map(|(index, (counters, &lcore))| WorkerStatus {
                index: index as u32,
                lcore,
                rx_packets: counters.rx_packets.load(Ordering::Relaxed),
                rx_bytes: counters.rx_bytes.load(Ordering::Relaxed),
                tx_packets: counters.tx_packets.load(Ordering::Relaxed),
                tx_bytes: counters.tx_bytes.load(Ordering::Relaxed),
                connections: counters.connections.load(Ordering::Relaxed),
                busy_cycles: counters.busy_cycles.load(Ordering::Relaxed),
                tsc_hz: self.tsc_hz,
                snapshot_generation: counters.snapshot_generation.load(Ordering::Relaxed),
                drops: DropReason::ALL
                    .iter()
                    .map(|r| (r.name().to_owned(), counters.drops(*r)))
                    .collect(),
                events: Event::ALL
                    .iter()
                    .map(|e| (e.name().to_owned(), counters.events(*e)))
                    .collect(),
            })
            .collect()
    }

    fn oldest_adopted(&self) -> u64 {
        self.workers
            .iter()
            .map(|w| w.snapshot_generation.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Lets each worker's schedulers see the other workers' connections.
    fn merge_loads(&self) {
        let slots = lock(&self.control).real_server_slots();
        merge_loads(&self.counters(), slots);
    }

    /// The current second on the workers' clock.
    fn second(&self) -> u32 {
        persistence::seconds(self.clock.instant(tsc()))
    }

    /// The live templates of each real server (ipvsadm's PersistConn).
    fn persistent_conns(&self) -> PersistentConns {
        state::persistent_conns(self.connections.templates(), self.second())
    }

    /// A page of `rvsadm -Lnc`. Waits for workers without holding the
    /// control state, which it takes only to name the templates' slots.
    fn list_connections(&self, request: ConnListRequest) -> Result<ConnPage, Refusal> {
        self.connections.page(request, self.second(), || {
            lock(&self.control).template_targets()
        })
    }

    /// Rereads the file and applies what changed, all or nothing (see
    /// [`reload`]); logs the outcome. Returns the changes made.
    fn reload(&self, control: &mut Control) -> Result<Vec<Change>, Refusal> {
        let path = self.config_path.display();
        let outcome = self.try_reload(control);
        match &outcome {
            Ok(changes) if changes.is_empty() => {
                tracing::info!(file = %path, "configuration reloaded: nothing changed");
            }
            Ok(changes) => {
                for change in changes {
                    tracing::info!(?change, "reload applied");
                }
                tracing::info!(file = %path, changes = changes.len(), "configuration reloaded");
            }
            Err(refusal) => {
                tracing::error!(file = %path, "reload refused, nothing changed: {}", refusal.message);
            }
        }
        outcome
    }

    fn try_reload(&self, control: &mut Control) -> Result<Vec<Change>, Refusal> {
        let invalid = |message: String| Refusal {
            status: Status::Invalid,
            message,
        };
        let path = &self.config_path;
        let wanted = crate::config::load(path).map_err(|error| invalid(error.to_string()))?;
        check(&wanted).map_err(|error| invalid(format!("{}: {error}", path.display())))?;
        let mut file = lock(&self.file);
        let problems = reload::restart_problems(&file, &wanted);
        if !problems.is_empty() {
            let lines: Vec<String> = problems
                .iter()
                .map(|problem| format!("{}: {problem}", path.display()))
                .collect();
            return Err(invalid(lines.join("\n")));
        }
        let changes = reload::changes(&control.desired(), &reload::Desired::of(&wanted));
        // Every change is tried on a copy first: a refusal half way leaves
        // the running state as it was.
        reload::apply_all(control, &changes).map_err(|refusal| Refusal {
            status: refusal.status,
            message: format!("{}: {}", path.display(), refusal.message),
        })?;
        *file = wanted;
        if !changes.is_empty() {
            self.publish(control);
        }
        Ok(changes)
    }

    /// What the metrics endpoint shows: the listings of `rvsadm -Ln
    /// --stats` and `rvsadm -L --workers`.
    fn metrics_figures(&self) -> metrics::Figures {
        let workers = self.counters();
        let services = {
            let control = lock(&self.control);
            let estimator = lock(&self.estimator);
            control
                .status(None, &workers, &estimator, &PersistentConns::new())
                .unwrap_or_default()
        };
        let exception = self.exception.as_ref().map(|counters| {
            let read = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
            metrics::ExceptionFigures {
                to_kernel: read(&counters.to_kernel),
                to_kernel_dropped: read(&counters.to_kernel_dropped),
                from_kernel: read(&counters.from_kernel),
                from_kernel_dropped: read(&counters.from_kernel_dropped),
            }
        });
        metrics::Figures {
            services,
            workers: self.worker_status(),
            dataplane: metrics::DataplaneFigures {
                connection_capacity: self.info.connection_table_size
                    / u64::from(self.info.workers.max(1)),
                mempools: lock(&self.mempools)
                    .iter()
                    .map(|pool| (pool.name().to_owned(), pool.in_use(), pool.available()))
                    .collect(),
                exception,
            },
        }
    }

    /// Stops the health checkers, under the control state so that none
    /// applies a report after this, then gives them a moment to end.
    fn stop_health_checks(&self) {
        let threads = {
            let _control = lock(&self.control);
            self.health.stop()
        };
        health::join(threads, health::STOP_GRACE);
    }

    /// A reload asked for by SIGHUP.
    fn reload_on_signal(&self) {
        let mut control = lock(&self.control);
        // The outcome is logged; there is nobody else to tell.
        let _ = self.reload(&mut control);
    }

    /// Periodic work of the control thread.
    fn tick(&self, sample_seconds: Option<f64>) {
        let workers = self.counters();
        let mut control = lock(&self.control);
        control.reclaim_slots(self.oldest_adopted(), &workers);
        if let Some(seconds) = sample_seconds {
            let (services, real_servers) = control.totals_by_slot(&workers);
            lock(&self.estimator).sample(&services, &real_servers, seconds);
        }
        drop(control);
        lock(&self.retired).collect();
    }
}

impl Handler for Daemon {
    fn handle(&self, request: Request) -> Result<Reply, Refusal> {
        // A scan of every template: done before taking the control state.
        let persistent = match request {
            Request::ListServices(_) => self.persistent_conns(),
            _ => PersistentConns::new(),
        };
        let workers = self.counters();
        let mut control = lock(&self.control);
        let change = match request {
            Request::Hello(_) => {
                return Err(Refusal {
                    status: Status::Malformed,
                    message: "hello was already exchanged".into(),
                });
            }
            Request::Info => return Ok(Reply::Info(self.info.clone())),
            Request::Workers => return Ok(Reply::Workers(self.worker_status())),
            Request::GetTimeouts => return Ok(Reply::Timeouts(control.timeouts())),
            Request::ListServices(filter) => {
                let estimator = lock(&self.estimator);
                return control
                    .status(filter.service.as_ref(), &workers, &estimator, &persistent)
                    .map(Reply::Services);
            }
            Request::ZeroCounters(filter) => {
                let mut estimator = lock(&self.estimator);
                return control
                    .zero(filter.service.as_ref(), &workers, &mut estimator)
                    .map(|()| Reply::Done {});
            }
            Request::ListConnections(page) => {
                // Workers are waited for without the control state.
                drop(control);
                return self.list_connections(page).map(Reply::Connections);
            }
            Request::AddService(spec) => Change::AddService(spec),
            Request::EditService(spec) => Change::EditService(spec),
            Request::DeleteService(key) => Change::DeleteService(key),
            Request::Flush => Change::Flush,
            Request::AddRealServer(change) => Change::AddRealServer(change),
            Request::EditRealServer(change) => Change::EditRealServer(change),
            Request::DeleteRealServer(reference) => Change::DeleteRealServer(reference),
            Request::SetTimeouts(timeouts) => Change::SetTimeouts(timeouts),
            Request::Reload => return self.reload(&mut control).map(|_| Reply::Done {}),
        };
        control.apply(&change)?;
        tracing::info!(?change, "applied");
        self.publish(&mut control);
        Ok(Reply::Done {})
    }
}

impl health::Sink for Daemon {
    fn report(&self, report: health::HealthReport) {
        let mut control = lock(&self.control);
        if self.health.apply(&mut control, report) {
            self.publish(&mut control);
        }
    }
}

/// A worker's packet counts and every non-zero drop and event counter, on
/// one line.
fn counters_summary(counters: &WorkerCounters) -> String {
    use dataplane::counters::{DropReason, Event};
    let mut line = format!(
        "rx {} packets, tx {} packets",
        counters.rx_packets.load(Ordering::Relaxed),
        counters.tx_packets.load(Ordering::Relaxed)
    );
    let drops = DropReason::ALL
        .iter()
        .map(|r| (r.name(), counters.drops(*r)));
    let events = Event::ALL.iter().map(|e| (e.name(), counters.events(*e)));
    for (name, value) in drops.chain(events).filter(|(_, value)| *value > 0) {
        line.push_str(&format!(", {name} {value}"));
    }
    line
}

/// A random key for the connection hash, so clients cannot predict it.
fn random_seed() -> HashSeed {
    let state = std::collections::hash_map::RandomState::new();
    let mut words = [0u64; 2];
    for (i, word) in words.iter_mut().enumerate() {
        let mut hasher = state.build_hasher();
        hasher.write_usize(i);
        hasher.write_u64(tsc());
        *word = hasher.finish();
    }
    HashSeed(words)
}

/// Why a virtual device cannot give each of `workers` its own queue pair,
/// said before DPDK refuses with a bare errno: net_af_packet opens as many
/// queue pairs as its `qpairs` argument (1 by default).
fn queue_pairs_problem(device: &str, workers: usize) -> Option<String> {
    if !device.starts_with("net_af_packet") {
        return None;
    }
    let qpairs = device
        .split(',')
        .find_map(|argument| argument.strip_prefix("qpairs="))
        .map_or(Some(1), |value| value.parse::<usize>().ok())?;
    (qpairs < workers).then(|| {
        format!(
            "{workers} workers need a queue pair each, and this device has {qpairs}: \
             add qpairs={workers} to it"
        )
    })
}

/// The rings between every two workers, by worker.
fn hand_off_rings(
    eal: &Eal,
    workers: usize,
    socket: dpdk_bind::SocketId,
) -> Result<Vec<HandOffRings>, DaemonError> {
    let mut rings: Vec<HandOffRings> = (0..workers)
        .map(|_| HandOffRings {
            to: (0..workers).map(|_| None).collect(),
            from: Vec::new(),
        })
        .collect();
    for from in 0..workers {
        for to in (0..workers).filter(|&to| to != from) {
            let name = format!("rvs_hand_off_{from}_{to}");
            let (producer, consumer) = MbufRing::new(eal, &name, HAND_OFF_RING, socket)
                .map_err(|error| setup_error(format!("{name}: {error}")))?
                .split();
            rings[from].to[to] = Some(producer);
            rings[to].from.push(consumer);
        }
    }
    Ok(rings)
}

/// Runs rvsd until SIGINT or SIGTERM; `config` was read from `path`,
/// which SIGHUP rereads.
pub fn run(config: Config, path: &Path) -> Result<(), DaemonError> {
    // Everything that can be refused is refused before EAL starts.
    check(&config)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(setup_error)?;
    }
    let hangup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hangup))
        .map_err(setup_error)?;

    let eal = Eal::init(&config.eal_args())?;
    let lcores: Vec<_> = eal.worker_lcores().collect();
    // Every worker lcore by default: the main lcore runs the control
    // thread (and the threads it starts inherit its affinity, so they stay
    // off the workers' cores).
    let worker_count = config
        .dataplane
        .workers
        .map_or(lcores.len(), |workers| workers as usize);
    if lcores.len() > worker_count {
        tracing::warn!(
            lcores = lcores.len(),
            workers = worker_count,
            "more worker lcores than workers; the extra lcores stay idle"
        );
    }
    if lcores.is_empty() || worker_count > lcores.len() {
        return Err(setup_error(format!(
            "dataplane.workers: {} worker(s) need as many worker lcores, and EAL has {} besides the main lcore (give more cores with -l in eal.args)",
            worker_count.max(1),
            lcores.len()
        )));
    }
    let lcores = &lcores[..worker_count];
    let socket = eal
        .lcore_socket(eal.main_lcore())
        .unwrap_or(dpdk_bind::SocketId::ANY);
    if let Some(problem) = pool_problem(&config, worker_count as u32) {
        return Err(DaemonError::Config {
            problems: vec![problem],
        });
    }
    let pool = Mempool::new(
        &eal,
        "rvs_pool",
        config.dataplane.mbufs,
        config.dataplane.mbuf_cache,
        config.dataplane.mbuf_data_room,
        socket,
    )
    .map_err(|error| setup_error(format!("packet pool: {error}")))?;

    let mut ports = Vec::new();
    let mut macs = Vec::new();
    for (i, port_config) in config.ports.iter().enumerate() {
        let named = |error: &dyn std::fmt::Display| {
            setup_error(format!(
                "ports[{i}] (\"{}\", {}): {error}",
                port_config.name, port_config.device
            ))
        };
        if let Some(problem) = queue_pairs_problem(&port_config.device, worker_count) {
            return Err(named(&problem));
        }
        let id = PortId::by_name(&eal, port_config.dpdk_name()).map_err(|e| named(&e))?;
        let settings = DpdkPortConfig {
            rx_queues: worker_count as u16,
            tx_queues: worker_count as u16,
            rx_descriptors: config.dataplane.rx_descriptors,
            tx_descriptors: config.dataplane.tx_descriptors,
            mtu: port_config.mtu,
            rss: worker_count > 1,
            promiscuous: false,
        };
        let driver = id.info(&eal).map_err(|e| named(&e))?.driver_name;
        let mut port =
            Port::configure(&eal, id, &settings, &pool, socket).map_err(|e| named(&e))?;
        if let Some(warning) = multicast::enable(&mut port, &driver, &port_config.device)
            .map_err(|e| named(&format!("cannot receive all multicast: {e}")))?
        {
            tracing::warn!(port = %port_config.name, device = %port_config.device, "{warning}");
        }
        port.start().map_err(|e| named(&e))?;
        let mac = MacAddr(port.mac_address().map_err(|e| named(&e))?);
        let link = port.link().map_err(|e| named(&e))?;
        tracing::info!(port = %port_config.name, device = %port_config.device, %mac, up = link.up, speed_mbps = ?link.speed_mbps, "port started");
        macs.push(mac);
        ports.push(port);
    }

    let (kernel_twins, mut kernel_rings) =
        match exception::start(&eal, &config, &macs, worker_count, socket)? {
            Some((twins, rings)) => (Some(twins), rings.into_iter().map(Some).collect()),
            None => (None, Vec::new()),
        };
    let mut control =
        Control::new(&config, macs, LIMITS).map_err(|problems| DaemonError::Config { problems })?;
    let first = Arc::new(control.snapshot());
    let snapshots = Arc::new(SnapshotCell::new(Arc::clone(&first)));
    let mut retired = Retired::default();
    retired.keep(first);

    let clock = CycleClock::new(tsc(), eal.tsc_hz());
    let worker_stop = Arc::new(AtomicBool::new(false));
    let hash_seed = random_seed();
    let templates = Arc::new(Templates::new(
        config.dataplane.persistence_templates,
        hash_seed.0[1],
    ));
    let idle = IdleBackoff {
        polls: config.dataplane.idle_polls,
        sleep: StdDuration::from_micros(u64::from(config.dataplane.idle_sleep_us)),
    };
    let neighbour_exchange = Arc::new(NeighbourExchange::new(worker_count as u16));
    let mut hand_offs = hand_off_rings(&eal, worker_count, socket)?;
    let mut workers = Vec::new();
    let mut mailboxes = Vec::new();
    let mut handles: Vec<LcoreHandle> = Vec::new();
    for (index, &lcore) in lcores.iter().enumerate() {
        let counters = Arc::new(WorkerCounters::new(
            LIMITS.services as usize,
            LIMITS.real_servers as usize,
        ));
        let listing = Arc::new(ConnMailbox::default());
        let director = Director::new(
            DirectorParams {
                connections: config.dataplane.connections_per_worker,
                connections_v6: config.dataplane.ipv6_connections_per_worker,
                neighbours: NEIGHBOURS,
                hash_seed,
                worker: index as u16,
                workers: worker_count as u16,
                templates: Arc::clone(&templates),
                listing: Arc::clone(&listing),
                neighbour_exchange: Arc::clone(&neighbour_exchange),
            },
            snapshots.load(),
            Arc::clone(&counters),
            clock.instant(tsc()),
        );
        let queue = QueueId(index as u16);
        let queues = ports
            .iter()
            .map(|port| {
                Ok(PortQueues {
                    rx: port.rx_queue(queue)?,
                    tx: port.tx_queue(queue)?,
                })
            })
            .collect::<Result<Vec<_>, dpdk_bind::PortError>>()
            .map_err(setup_error)?;
        let worker = Worker {
            ports: queues,
            hand_offs: std::mem::take(&mut hand_offs[index]),
            kernel: kernel_rings.get_mut(index).and_then(Option::take),
            mempool: pool.clone(),
            engine: Engine::new(director),
            snapshots: Arc::clone(&snapshots),
            stop: Arc::clone(&worker_stop),
            idle,
            clock,
        };
        let handle = eal
            .launch_on(lcore, move || worker.run())
            .map_err(|error| setup_error(format!("worker on {lcore:?}: {error}")))?;
        tracing::info!(worker = index, ?lcore, "worker started");
        handles.push(handle);
        workers.push(counters);
        mailboxes.push(listing);
    }

    let daemon = Arc::new_cyclic(|daemon: &Weak<Daemon>| Daemon {
        health: health::Supervisor::new(daemon.clone()),
        info: DaemonInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            // Both families' tables, as ipvsadm's "size=" is the one table.
            connection_table_size: (u64::from(config.dataplane.connections_per_worker)
                + u64::from(config.dataplane.ipv6_connections_per_worker))
                * worker_count as u64,
            workers: worker_count as u32,
        },
        control: Mutex::new(control),
        snapshots,
        retired: Mutex::new(retired),
        workers,
        worker_lcores: lcores.iter().map(|lcore| lcore.0).collect(),
        tsc_hz: eal.tsc_hz(),
        clock,
        connections: ConnListing::new(mailboxes, templates, idle.sleep),
        estimator: Mutex::new(Estimator::default()),
        config_path: path.to_owned(),
        file: Mutex::new(config.clone()),
        mempools: Mutex::new(
            std::iter::once(pool.clone())
                .chain(kernel_twins.as_ref().map(|twins| twins.pool.clone()))
                .collect(),
        ),
        exception: kernel_twins
            .as_ref()
            .map(|twins| Arc::clone(&twins.counters)),
    });
    let control_socket =
        ControlSocket::bind(&config.control.socket).map_err(|source| DaemonError::Socket {
            path: config.control.socket.display().to_string(),
            source,
        })?;
    control_socket
        .serve(Arc::clone(&daemon) as Arc<dyn Handler>)
        .map_err(setup_error)?;
    if let Some(metrics) = &config.metrics {
        let listener = std::net::TcpListener::bind(metrics.listen)
            .map_err(|error| setup_error(format!("metrics.listen: {}: {error}", metrics.listen)))?;
        let source = Arc::clone(&daemon);
        metrics::serve(listener, Arc::new(move || source.metrics_figures()))
            .map_err(setup_error)?;
        tracing::info!(listen = %metrics.listen, "metrics endpoint ready");
    }
    daemon.health.sync(lock(&daemon.control).health_targets());
    tracing::info!(socket = %control_socket.path().display(), workers = worker_count, "rvsd ready");

    let mut last_sample = StdInstant::now();
    let mut last_tick = StdInstant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(StdDuration::from_millis(LOAD_MERGE_INTERVAL_MS));
        daemon.merge_loads();
        if hangup.swap(false, Ordering::Relaxed) {
            daemon.reload_on_signal();
        }
        if last_tick.elapsed() < TICK_INTERVAL {
            continue;
        }
        last_tick = StdInstant::now();
        let elapsed = last_sample.elapsed();
        let sample = (elapsed >= stats::SAMPLE_INTERVAL).then(|| {
            last_sample = StdInstant::now();
            elapsed.as_secs_f64()
        });
        daemon.tick(sample);
    }

    tracing::info!("stopping");
    daemon.stop_health_checks();
    drop(control_socket);
    worker_stop.store(true, Ordering::Relaxed);
    for handle in handles {
        let lcore = handle.lcore();
        if handle.wait() != 0 {
            tracing::warn!(?lcore, "worker ended with an error");
        }
    }
    for (index, counters) in daemon.workers.iter().enumerate() {
        tracing::info!(worker = index, "{}", counters_summary(counters));
    }
    // After the workers, which hold the rings' other ends.
    if let Some(twins) = kernel_twins {
        twins.stop();
    }
    for (mut port, port_config) in ports.into_iter().zip(&config.ports) {
        if let Ok(stats) = port.stats() {
            tracing::info!(
                port = %port_config.name,
                ipackets = stats.ipackets,
                opackets = stats.opackets,
                imissed = stats.imissed,
                ierrors = stats.ierrors,
                oerrors = stats.oerrors,
                rx_nombuf = stats.rx_nombuf,
                "port counters"
            );
        }
        if let Err(error) = port.stop() {
            tracing::warn!(%error, "stopping a port");
        }
    }
    lock(&daemon.mempools).clear();
    drop(pool);
    if let Err(error) = eal.cleanup() {
        tracing::warn!(%error, "EAL cleanup");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_workers_pass_the_check() {
        let config = crate::config::parse(
            r#"[eal]
args = ["-l", "0-2"]

[dataplane]
workers = 2

[[ports]]
name = "wan"
device = "net_af_packet0,iface=d0,qpairs=2"
addresses = ["198.18.0.1/24"]
"#,
        )
        .expect("valid file");
        check(&config).expect("two workers are fine");
    }

    /// What rvsd --check-config says of the files users copy.
    #[test]
    fn the_example_files_pass_the_check() {
        for (name, text) in [
            (
                "rvs.example.toml",
                include_str!("../../../rvs.example.toml"),
            ),
            (
                "rvs.production.example.toml",
                include_str!("../../../rvs.production.example.toml"),
            ),
        ] {
            let config = crate::config::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            check(&config).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn the_lcores_of_plain_eal_arguments_are_counted() {
        let workers = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
            worker_lcores_in(&args)
        };
        assert_eq!(workers(&["-l", "0-1"]), Some(1));
        assert_eq!(workers(&["-n", "4", "-l0,2-4,4", "--no-huge"]), Some(3));
        assert_eq!(workers(&["-c", "0xf"]), Some(3));
        assert_eq!(workers(&["-c", "1"]), Some(0));
        assert_eq!(workers(&["--lcores", "(0-2)@4"]), None);
        assert_eq!(workers(&["-l", "3-1"]), None);
        assert_eq!(workers(&["--no-huge"]), None);
    }

    /// `--check-config` refuses a pool too small for the workers the file
    /// gives, as rvsd would once EAL started, naming the field.
    #[test]
    fn a_pool_too_small_for_the_lcores_is_refused_before_eal() {
        let file = |lcores: &str| {
            crate::config::parse(&format!(
                r#"[eal]
args = ["-l", "{lcores}"]

[dataplane]
mbufs = 8191

[[ports]]
name = "wan"
device = "0000:03:00.0"
addresses = ["198.18.0.1/24"]
"#
            ))
            .expect("valid file")
        };
        check(&file("0-1")).expect("one worker fits");
        let message = check(&file("0-4")).unwrap_err().to_string();
        assert!(
            message.starts_with("dataplane.mbufs: 8191 mbufs cannot fill 1 port(s) x 4 worker(s)"),
            "{message}"
        );
    }

    #[test]
    fn af_packet_ports_need_a_queue_pair_per_worker() {
        assert_eq!(queue_pairs_problem("net_af_packet0,iface=d0", 1), None);
        assert_eq!(
            queue_pairs_problem("net_af_packet0,iface=d0", 2).as_deref(),
            Some("2 workers need a queue pair each, and this device has 1: add qpairs=2 to it")
        );
        assert_eq!(
            queue_pairs_problem("net_af_packet0,iface=d0,qpairs=4", 4),
            None
        );
        assert!(queue_pairs_problem("net_af_packet0,qpairs=2,iface=d0", 3).is_some());
        assert_eq!(queue_pairs_problem("0000:03:00.0", 8), None);
        assert_eq!(queue_pairs_problem("net_memif0,role=server", 2), None);
    }
}
