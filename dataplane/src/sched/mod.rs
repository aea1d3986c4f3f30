//! Schedulers: which real server takes a new connection.
//!
//! Every LVS scheduler is here, with the semantics of Linux IPVS (the
//! `net/netfilter/ipvs/ip_vs_*.c` modules): rr, wrr, lc, wlc, sed, nq,
//! lblc, lblcr, dh, sh, fo, ovf, twos and mh. Each family's file says what
//! it follows and where it deliberately differs.
//!
//! A service's scheduler has two halves. The immutable half
//! ([`Scheduler`]: the algorithm, its flags and the tables precomputed
//! from the weights, such as the Maglev lookup table) lives in the
//! configuration snapshot, built by the control thread, which may
//! allocate. The mutable half ([`SchedulerState`]: round-robin positions,
//! overload flags, the lblc/lblcr destination tables, the random
//! generator of twos) belongs to each worker, so picking never takes a
//! lock. When a new snapshot changes a service's scheduler, real servers,
//! weights or thresholds, the worker's state adapts the way IPVS's does
//! when its destinations change ([`SchedulerState::prepare`]).
//!
//! [`SchedulerState::pick`] runs once per new connection on a worker: it
//! allocates nothing, takes no lock and makes no system call.
//!
//! With several workers each keeps its own position, so round-robin is
//! exact per worker and fair overall; the least-connection family reads
//! connection counts through [`Load`], whose implementation decides how
//! fresh other workers' counts are.
//!
//! # Common rules (IPVS's)
//!
//! - Weight 0 quiesces a real server: it takes no new connections, in
//!   every scheduler.
//! - A real server whose connections (active + inactive) reach its upper
//!   threshold (`-x`) is *overloaded* and takes no new connections until
//!   they fall below its lower threshold (`-y`), or below three quarters of
//!   the upper one when the lower is 0 (`overload.rs`).
//! - Loads are compared without division, by cross-multiplication, as IPVS
//!   does: `a / wa < b / wb` is `a * wb < b * wa`.
//! - Ties go to the first real server in the service's list.

mod hashing;
mod least_connection;
mod locality;
mod maglev;
mod overload;
mod random;
mod round_robin;
#[cfg(test)]
mod testing;

use std::net::IpAddr;
use std::ops::BitOr;

use crate::snapshot::{RealServer, Service};
use crate::time::Instant;

use self::hashing::BucketTable;
use self::least_connection::Cost;
use self::locality::LocalityTable;
use self::maglev::MaglevTable;
use self::overload::{Overload, ServerState};
use self::random::Rng;
use self::round_robin::Rotation;

/// Open connections of a real server, as IPVS counts them: ESTABLISHED TCP
/// is active, everything else (handshakes, closing, UDP) inactive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Connections {
    pub active: u64,
    pub inactive: u64,
}

impl Connections {
    /// IPVS's `ip_vs_dest_conn_overhead`: an active connection is taken to
    /// cost 256 times an inactive one.
    #[inline]
    pub fn overhead(self) -> u64 {
        self.active
            .saturating_mul(256)
            .saturating_add(self.inactive)
    }

    /// What the connection thresholds count (IPVS's
    /// `ip_vs_dest_totalconns`).
    #[inline]
    pub fn total(self) -> u64 {
        self.active.saturating_add(self.inactive)
    }
}

/// Where schedulers read the load of real servers, by slot.
///
/// In rvsd this is the worker's counters: its own connections, exact,
/// plus the other workers' as the control thread last merged them (every
/// [`LOAD_MERGE_INTERVAL_MS`](crate::counters::LOAD_MERGE_INTERVAL_MS)
/// milliseconds), so a least-connection pick may miss at most that long
/// of the other workers' openings and closings. IPVS's counts are exact
/// because its connections share one table; sharing counters on the hot
/// path would cost every worker a contended cache line per connection.
pub trait Load {
    fn connections(&self, slot: u32) -> Connections;
}

/// What a scheduler may look at to place a new connection.
#[derive(Clone, Copy)]
pub struct PickInput<'a> {
    /// The client (CIP:cport): sh and mh hash it.
    pub client: IpAddr,
    pub client_port: u16,
    /// The packet's destination (VIP:vport): dh hashes it, lblc and lblcr
    /// remember a server (set) per destination address.
    pub destination: IpAddr,
    pub destination_port: u16,
    pub now: Instant,
    pub load: &'a dyn Load,
}

impl std::fmt::Debug for PickInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PickInput")
            .field("client", &self.client)
            .field("client_port", &self.client_port)
            .field("destination", &self.destination)
            .field("destination_port", &self.destination_port)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// The LVS schedulers, by ipvsadm's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    /// `rr`
    RoundRobin,
    /// `wrr`
    WeightedRoundRobin,
    /// `lc`
    LeastConnection,
    /// `wlc`
    WeightedLeastConnection,
    /// `sed`
    ShortestExpectedDelay,
    /// `nq`
    NeverQueue,
    /// `lblc`
    LocalityLeastConnection,
    /// `lblcr`
    LocalityLeastConnectionReplicated,
    /// `dh`
    DestinationHashing,
    /// `sh`
    SourceHashing,
    /// `fo`
    WeightedFailover,
    /// `ovf`
    WeightedOverflow,
    /// `twos`
    TwoRandomChoices,
    /// `mh`
    MaglevHashing,
}

impl SchedulerKind {
    pub const ALL: [SchedulerKind; 14] = [
        SchedulerKind::RoundRobin,
        SchedulerKind::WeightedRoundRobin,
        SchedulerKind::LeastConnection,
        SchedulerKind::WeightedLeastConnection,
        SchedulerKind::ShortestExpectedDelay,
        SchedulerKind::NeverQueue,
        SchedulerKind::LocalityLeastConnection,
        SchedulerKind::LocalityLeastConnectionReplicated,
        SchedulerKind::DestinationHashing,
        SchedulerKind::SourceHashing,
        SchedulerKind::WeightedFailover,
        SchedulerKind::WeightedOverflow,
        SchedulerKind::TwoRandomChoices,
        SchedulerKind::MaglevHashing,
    ];

    /// ipvsadm's name (`-s NAME`).
    pub const fn name(self) -> &'static str {
        match self {
            SchedulerKind::RoundRobin => "rr",
            SchedulerKind::WeightedRoundRobin => "wrr",
            SchedulerKind::LeastConnection => "lc",
            SchedulerKind::WeightedLeastConnection => "wlc",
            SchedulerKind::ShortestExpectedDelay => "sed",
            SchedulerKind::NeverQueue => "nq",
            SchedulerKind::LocalityLeastConnection => "lblc",
            SchedulerKind::LocalityLeastConnectionReplicated => "lblcr",
            SchedulerKind::DestinationHashing => "dh",
            SchedulerKind::SourceHashing => "sh",
            SchedulerKind::WeightedFailover => "fo",
            SchedulerKind::WeightedOverflow => "ovf",
            SchedulerKind::TwoRandomChoices => "twos",
            SchedulerKind::MaglevHashing => "mh",
        }
    }
}

/// IPVS's three scheduler flag bits, ipvsadm's `-b`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SchedulerFlags(u8);

impl SchedulerFlags {
    pub const NONE: SchedulerFlags = SchedulerFlags(0);
    /// Bit 1 (`IP_VS_SVC_F_SCHED1`): `sh-fallback`, `mh-fallback`.
    pub const FALLBACK: SchedulerFlags = SchedulerFlags(1);
    /// Bit 2 (`IP_VS_SVC_F_SCHED2`): `sh-port`, `mh-port`.
    pub const PORT: SchedulerFlags = SchedulerFlags(2);
    /// Bit 3 (`IP_VS_SVC_F_SCHED3`): no scheduler uses it.
    pub const FLAG_3: SchedulerFlags = SchedulerFlags(4);

    /// The flag of ipvsadm's bit number (1 to 3).
    pub const fn bit(bit: u8) -> Option<SchedulerFlags> {
        match bit {
            1..=3 => Some(SchedulerFlags(1 << (bit - 1))),
            _ => None,
        }
    }

    pub const fn contains(self, other: SchedulerFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for SchedulerFlags {
    type Output = SchedulerFlags;

    fn bitor(self, rhs: SchedulerFlags) -> SchedulerFlags {
        SchedulerFlags(self.0 | rhs.0)
    }
}

/// The Maglev lookup table size the issue asks for (a prime; IPVS builds
/// in 4093 by default and offers primes up to 131071).
pub const MAGLEV_TABLE_SIZE: u32 = 65_537;

/// How a service schedules: the algorithm and its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SchedulerConfig {
    pub kind: SchedulerKind,
    pub flags: SchedulerFlags,
    /// mh's lookup table size M. A size that is not a prime is raised to
    /// the next prime, since the Maglev permutations need one.
    pub maglev_table_size: u32,
}

impl SchedulerConfig {
    pub const fn new(kind: SchedulerKind) -> SchedulerConfig {
        SchedulerConfig {
            kind,
            flags: SchedulerFlags::NONE,
            maglev_table_size: MAGLEV_TABLE_SIZE,
        }
    }

    pub const fn with_flags(self, flags: SchedulerFlags) -> SchedulerConfig {
        SchedulerConfig { flags, ..self }
    }

    pub const fn with_maglev_table_size(self, size: u32) -> SchedulerConfig {
        SchedulerConfig {
            maglev_table_size: size,
            ..self
        }
    }
}

impl From<SchedulerKind> for SchedulerConfig {
    fn from(kind: SchedulerKind) -> SchedulerConfig {
        SchedulerConfig::new(kind)
    }
}

/// The algorithm of a service and what it precomputes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduler {
    config: SchedulerConfig,
    algorithm: Algorithm,
    /// Whether a real server has an upper threshold: only then do picks
    /// track overload (without one a real server is never overloaded).
    thresholds: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Algorithm {
    RoundRobin,
    WeightedRoundRobin {
        /// Largest weight, less (gcd - 1), as IPVS computes it.
        max_weight: i64,
        /// Greatest common divisor of the weights.
        gcd: i64,
    },
    LeastConnection,
    WeightedLeastConnection,
    ShortestExpectedDelay,
    NeverQueue,
    Locality,
    LocalityReplicated,
    DestinationHashing(BucketTable),
    SourceHashing {
        table: BucketTable,
        fallback: bool,
        port: bool,
    },
    /// Both hold the servers by weight, heaviest first.
    Failover(Box<[u32]>),
    Overflow(Box<[u32]>),
    TwoRandomChoices,
    Maglev {
        table: MaglevTable,
        fallback: bool,
        port: bool,
    },
}

impl Scheduler {
    /// Builds the scheduler for these real servers, with its tables. Runs
    /// on the control thread: this is where allocation happens.
    pub fn new(config: impl Into<SchedulerConfig>, real_servers: &[RealServer]) -> Scheduler {
        let config = config.into();
        let fallback = config.flags.contains(SchedulerFlags::FALLBACK);
        let port = config.flags.contains(SchedulerFlags::PORT);
        let algorithm = match config.kind {
            SchedulerKind::RoundRobin => Algorithm::RoundRobin,
            SchedulerKind::WeightedRoundRobin => {
                let gcd = weight_gcd(real_servers.iter().map(|rs| rs.weight)).max(1);
                let max = real_servers.iter().map(|rs| rs.weight).max().unwrap_or(0);
                let (max, gcd) = (i64::from(max), i64::from(gcd));
                Algorithm::WeightedRoundRobin {
                    max_weight: if max == 0 { 0 } else { max - (gcd - 1) },
                    gcd,
                }
            }
            SchedulerKind::LeastConnection => Algorithm::LeastConnection,
            SchedulerKind::WeightedLeastConnection => Algorithm::WeightedLeastConnection,
            SchedulerKind::ShortestExpectedDelay => Algorithm::ShortestExpectedDelay,
            SchedulerKind::NeverQueue => Algorithm::NeverQueue,
            SchedulerKind::LocalityLeastConnection => Algorithm::Locality,
            SchedulerKind::LocalityLeastConnectionReplicated => Algorithm::LocalityReplicated,
            SchedulerKind::DestinationHashing => {
                Algorithm::DestinationHashing(BucketTable::one_each(real_servers))
            }
            SchedulerKind::SourceHashing => Algorithm::SourceHashing {
                table: BucketTable::by_weight(real_servers),
                fallback,
                port,
            },
            SchedulerKind::WeightedFailover => {
                Algorithm::Failover(least_connection::by_weight(real_servers))
            }
            SchedulerKind::WeightedOverflow => {
                Algorithm::Overflow(least_connection::by_weight(real_servers))
            }
            SchedulerKind::TwoRandomChoices => Algorithm::TwoRandomChoices,
            SchedulerKind::MaglevHashing => Algorithm::Maglev {
                table: MaglevTable::new(real_servers, config.maglev_table_size),
                fallback,
                port,
            },
        };
        Scheduler {
            config,
            algorithm,
            thresholds: real_servers.iter().any(|rs| rs.upper_threshold != 0),
        }
    }

    pub fn kind(&self) -> SchedulerKind {
        self.config.kind
    }

    pub fn config(&self) -> SchedulerConfig {
        self.config
    }
}

/// Greatest common divisor of the non-zero weights; 0 if there are none.
fn weight_gcd(weights: impl Iterator<Item = u32>) -> u32 {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    weights.filter(|&w| w > 0).fold(0, gcd)
}

/// A worker's scheduling state for one service.
#[derive(Debug, Clone)]
pub struct SchedulerState {
    /// The service's `schedule_fingerprint` this state was adapted to.
    fingerprint: u64,
    kind: Option<SchedulerKind>,
    /// Per real server (by index): overload flags and what they depend on.
    overload: Overload,
    /// rr and wrr.
    rotation: Rotation,
    /// twos.
    rng: Rng,
    /// lblc and lblcr, allocated when the service first uses them.
    locality: Option<Box<LocalityTable>>,
}

/// Seed of [`SchedulerState::default`]'s random generator.
const DEFAULT_SEED: u64 = 0x5eed_5eed_5eed_5eed;

impl Default for SchedulerState {
    fn default() -> Self {
        SchedulerState::with_seed(DEFAULT_SEED)
    }
}

impl SchedulerState {
    /// A fresh state whose random generator (twos) starts from `seed`:
    /// give each worker (and service) its own, so that workers do not
    /// draw the same sequence.
    pub fn with_seed(seed: u64) -> SchedulerState {
        SchedulerState {
            fingerprint: 0,
            kind: None,
            overload: Overload::default(),
            rotation: Rotation::default(),
            rng: Rng::new(seed),
            locality: None,
        }
    }

    /// Adapts the state to the service's current configuration, if it
    /// changed: a new scheduler starts afresh (IPVS `init_service`),
    /// changed real servers, weights or thresholds keep what IPVS's
    /// `add_dest`/`upd_dest`/`del_dest` keep.
    ///
    /// This is where the state may allocate (the overload flags when the
    /// service grows, the lblc/lblcr table when a service starts using
    /// one), so a worker calls it for every service when it adopts a
    /// snapshot. [`pick`](Self::pick) calls it too, for a state that was
    /// not prepared; then the first pick after a change may allocate.
    pub fn prepare(&mut self, service: &Service) {
        if self.kind.is_some() && self.fingerprint == service.schedule_fingerprint {
            return;
        }
        let kind = service.scheduler.kind();
        let fresh = self.kind != Some(kind);
        self.fingerprint = service.schedule_fingerprint;
        self.kind = Some(kind);
        self.overload.adapt(&service.real_servers);
        self.rotation
            .adapt(&service.scheduler.algorithm, &service.real_servers, fresh);
        match (&service.scheduler.algorithm, &mut self.locality) {
            (Algorithm::Locality | Algorithm::LocalityReplicated, Some(table)) => {
                if fresh {
                    table.clear();
                }
            }
            (Algorithm::Locality | Algorithm::LocalityReplicated, none) => {
                *none = Some(Box::new(LocalityTable::new()));
            }
            (_, table) => *table = None,
        }
    }

    /// Picks a real server for a new connection: an index into
    /// `service.real_servers`, or `None` when none is available.
    pub fn pick(&mut self, service: &Service, input: &PickInput<'_>) -> Option<usize> {
        self.prepare(service);
        let scheduler = &service.scheduler;
        if scheduler.thresholds {
            self.overload.refresh(&service.real_servers, input.load);
        }
        let servers = Servers {
            list: &service.real_servers,
            states: self.overload.states(),
            load: input.load,
        };
        match &scheduler.algorithm {
            Algorithm::RoundRobin => self.rotation.round_robin(&servers),
            Algorithm::WeightedRoundRobin { max_weight, gcd } => {
                self.rotation.weighted(&servers, *max_weight, *gcd)
            }
            Algorithm::LeastConnection => servers.least(servers.all(), Cost::Overhead, false),
            Algorithm::WeightedLeastConnection => {
                servers.least(servers.all(), Cost::Overhead, true)
            }
            Algorithm::ShortestExpectedDelay => {
                servers.least(servers.all(), Cost::ExpectedDelay, true)
            }
            Algorithm::NeverQueue => least_connection::never_queue(&servers),
            Algorithm::Locality => self.locality.as_mut()?.lblc(&servers, input),
            Algorithm::LocalityReplicated => self.locality.as_mut()?.lblcr(&servers, input),
            Algorithm::DestinationHashing(table) => {
                table.pick(&servers, hashing::fold(input.destination), false)
            }
            Algorithm::SourceHashing {
                table,
                fallback,
                port,
            } => table.pick(&servers, hashing::client_key(input, *port), *fallback),
            Algorithm::Failover(by_weight) => least_connection::failover(&servers, by_weight),
            Algorithm::Overflow(by_weight) => least_connection::overflow(&servers, by_weight),
            Algorithm::TwoRandomChoices => random::two_choices(&servers, &mut self.rng),
            Algorithm::Maglev {
                table,
                fallback,
                port,
            } => table.pick(&servers, maglev::client_key(input, *port), *fallback),
        }
    }
}

/// A service's real servers as a pick sees them: configuration, overload
/// flags and load, by index into the service's list.
#[derive(Clone, Copy)]
struct Servers<'a> {
    list: &'a [RealServer],
    /// Same order as `list` once the state is prepared; a missing entry
    /// reads as "not overloaded".
    states: &'a [ServerState],
    load: &'a dyn Load,
}

/// A real server and its index in the service's list.
type Indexed<'a> = (usize, &'a RealServer);

impl<'a> Servers<'a> {
    fn len(&self) -> usize {
        self.list.len()
    }

    /// Every server, in list order.
    fn all(&self) -> impl Iterator<Item = Indexed<'a>> + use<'a> {
        self.list.iter().enumerate()
    }

    /// The servers at these indices.
    fn at(&self, indices: impl Iterator<Item = usize>) -> impl Iterator<Item = Indexed<'a>> {
        let list = self.list;
        indices.filter_map(move |i| list.get(i).map(|rs| (i, rs)))
    }

    /// The available ones among `servers` (see [`Servers::available`]).
    fn available_of(
        &self,
        servers: impl Iterator<Item = Indexed<'a>>,
    ) -> impl Iterator<Item = Indexed<'a>> {
        let states = self.states;
        servers
            .filter(move |&(i, rs)| rs.weight > 0 && !states.get(i).is_some_and(|s| s.overloaded))
    }

    fn weight(&self, i: usize) -> u32 {
        self.list.get(i).map_or(0, |rs| rs.weight)
    }

    fn overloaded(&self, i: usize) -> bool {
        self.states.get(i).is_some_and(|s| s.overloaded)
    }

    /// The test every IPVS scheduler makes: a positive weight and not
    /// overloaded.
    #[inline]
    fn available(&self, i: usize) -> bool {
        self.weight(i) > 0 && !self.overloaded(i)
    }

    fn connections(&self, i: usize) -> Connections {
        self.list
            .get(i)
            .map_or_else(Connections::default, |rs| self.load_of(rs))
    }

    fn load_of(&self, rs: &RealServer) -> Connections {
        self.load.connections(rs.slot)
    }

    /// `cost` of a server per unit of weight (weight 1 when `weighted` is
    /// false), for comparisons.
    fn weigh(&self, rs: &RealServer, cost: Cost, weighted: bool) -> Weighted {
        let weight = if weighted { rs.weight } else { 1 };
        Weighted::new(cost.of(self.load_of(rs)), weight)
    }
}

/// A cost per unit of weight, compared by cross-multiplication as IPVS
/// does (`h1 * w2 < h2 * w1` for `h1 / w1 < h2 / w2`), in 128 bits so that
/// nothing overflows.
#[derive(Debug, Clone, Copy)]
struct Weighted {
    cost: u64,
    weight: u32,
}

impl Weighted {
    fn new(cost: u64, weight: u32) -> Weighted {
        Weighted { cost, weight }
    }

    #[inline]
    fn lighter_than(self, other: Weighted) -> bool {
        u128::from(self.cost) * u128::from(other.weight)
            < u128::from(other.cost) * u128::from(self.weight)
    }
}

/// The first of `candidates` that no later one beats: `beats(new, best)`
/// says whether a candidate replaces the best so far.
fn best_of<T: Copy>(
    candidates: impl IntoIterator<Item = (usize, T)>,
    beats: impl Fn(T, T) -> bool,
) -> Option<usize> {
    let mut best: Option<(usize, T)> = None;
    for (i, value) in candidates {
        if best.is_none_or(|(_, b)| beats(value, b)) {
            best = Some((i, value));
        }
    }
    best.map(|(i, _)| i)
}
