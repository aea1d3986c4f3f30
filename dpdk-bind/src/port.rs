//! Ethernet ports (ethdev) and their rx/tx queues.

use std::cell::Cell;
use std::ffi::{CStr, CString, c_int};
use std::fmt;
use std::marker::PhantomData;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::batch::Burst;
use crate::eal::{self, Eal, SocketId};
use crate::error::{Errno, PortError};
use crate::mempool::Mempool;
use crate::sys;

/// An ethdev port id. `Debug` and `Display` print `port0`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortId(pub u16);

/// A queue index within a port. `Debug` and `Display` print `q0`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(pub u16);

impl fmt::Debug for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port{}", self.0)
    }
}

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "q{}", self.0)
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl PortId {
    /// Looks a port up by its device name: a virtual device such as
    /// `net_ring0` or `net_af_packet0`, or a PCI address such as
    /// `0000:03:00.0`.
    ///
    /// # Errors
    ///
    /// [`PortError::NotFound`] when no port has that name.
    #[cold]
    pub fn by_name(_eal: &Eal, name: &str) -> Result<PortId, PortError> {
        let c_name = CString::new(name).map_err(|_| PortError::NulInName(name.to_owned()))?;
        let mut id = 0u16;
        // SAFETY: the EAL is initialised; c_name is a valid C string and id
        // a valid output location.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut id) };
        if ret < 0 {
            return Err(PortError::NotFound {
                name: name.to_owned(),
                errno: Errno::from_negative(ret),
            });
        }
        Ok(PortId(id))
    }

    /// What the device offers (`rte_eth_dev_info_get`).
    ///
    /// # Errors
    ///
    /// [`PortError::Dpdk`], with `ENODEV` for an id that is not a port.
    #[cold]
    pub fn info(self, _eal: &Eal) -> Result<PortInfo, PortError> {
        let raw = self.raw_info()?;
        let driver_name = if raw.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: a non-NULL driver_name points to the driver's static
            // NUL-terminated name.
            unsafe { CStr::from_ptr(raw.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        // SAFETY: the id was just validated by rte_eth_dev_info_get.
        let socket = unsafe { sys::rte_eth_dev_socket_id(self.0) };
        Ok(PortInfo {
            driver_name,
            max_rx_queues: raw.max_rx_queues,
            max_tx_queues: raw.max_tx_queues,
            rx_offload_capa: raw.rx_offload_capa,
            flow_type_rss_offloads: raw.flow_type_rss_offloads,
            reta_size: raw.reta_size,
            min_mtu: raw.min_mtu,
            max_mtu: raw.max_mtu,
            socket: SocketId(socket),
        })
    }

    #[cold]
    fn raw_info(self) -> Result<sys::rte_eth_dev_info, PortError> {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: the EAL is initialised (callers hold `&Eal` or a Port);
        // info is a valid output struct; invalid ids are reported, not UB.
        let ret = unsafe { sys::rte_eth_dev_info_get(self.0, &mut info) };
        self.check(ret, "rte_eth_dev_info_get")?;
        Ok(info)
    }

    /// Maps a `-errno` return value to a `PortError::Dpdk`.
    #[inline]
    fn check(self, ret: c_int, operation: &'static str) -> Result<(), PortError> {
        if ret < 0 {
            return Err(self.dpdk_error(ret, operation));
        }
        Ok(())
    }

    #[cold]
    fn dpdk_error(self, ret: c_int, operation: &'static str) -> PortError {
        PortError::Dpdk {
            port: self,
            operation,
            errno: Errno::from_negative(ret),
        }
    }
}

/// What a device offers, from [`PortId::info`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// The PMD's name, e.g. `net_ring` or `net_af_packet`.
    pub driver_name: String,
    /// Most rx queues the device supports.
    pub max_rx_queues: u16,
    /// Most tx queues the device supports.
    pub max_tx_queues: u16,
    /// Rx offload capabilities (`RTE_ETH_RX_OFFLOAD_*` bits).
    pub rx_offload_capa: u64,
    /// Flow types RSS can hash (`RTE_ETH_RSS_*` bits); 0 without RSS.
    pub flow_type_rss_offloads: u64,
    /// Entries of the RSS redirection table.
    pub reta_size: u16,
    /// Smallest MTU.
    pub min_mtu: u16,
    /// Largest MTU.
    pub max_mtu: u16,
    /// NUMA socket the device is attached to ([`SocketId::ANY`] if unknown).
    pub socket: SocketId,
}

/// How to set a port up, for [`Port::configure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Rx queues (at least 1).
    pub rx_queues: u16,
    /// Tx queues (at least 1).
    pub tx_queues: u16,
    /// Descriptors per rx queue (adjusted to the device's limits).
    pub rx_descriptors: u16,
    /// Descriptors per tx queue (adjusted to the device's limits).
    pub tx_descriptors: u16,
    /// MTU; `None` keeps the default (1500).
    pub mtu: Option<u16>,
    /// Spread received packets over the rx queues with RSS on IP, TCP and
    /// UDP headers, and deliver the hash in the mbufs, when the device can;
    /// ignored otherwise ([`Port::rss`] tells what happened).
    pub rss: bool,
    /// Receive frames for any destination MAC address.
    pub promiscuous: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            mtu: None,
            rss: true,
            promiscuous: false,
        }
    }
}

/// Link state, from [`Port::link`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Whether the link is up.
    pub up: bool,
    /// Speed in Mbit/s, when the device knows it.
    pub speed_mbps: Option<u32>,
    /// Full duplex (as opposed to half).
    pub full_duplex: bool,
}

/// Basic port counters, from [`Port::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the device because no rx descriptor was free.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// Ports claimed by a live `Port` value.
static PORT_CLAIMED: [AtomicBool; sys::RTE_MAX_ETHPORTS as usize] =
    [const { AtomicBool::new(false) }; sys::RTE_MAX_ETHPORTS as usize];

/// A configured ethdev port.
///
/// At most one `Port` exists per port id in the process. Its queues are
/// handed out at most once each ([`rx_queue`](Port::rx_queue),
/// [`tx_queue`](Port::tx_queue)), because DPDK queues are not thread-safe:
/// a queue handle is `Send` but neither `Sync` nor `Clone`, so exactly one
/// thread polls a queue at a time. A queue goes back to the port when its
/// handle is dropped.
///
/// The port can only be stopped or closed while no queue handle exists, so
/// no thread can be polling it at that moment. When the `Port` and all its
/// queue handles are gone, the port is stopped and closed.
pub struct Port {
    shared: Arc<PortShared>,
    /// `Send` but not `Sync`: one thread drives the port's control
    /// operations, since some PMDs' `stats_get` or `link_update` are not
    /// safe to run concurrently with themselves.
    _not_sync: PhantomData<Cell<()>>,
}

/// What a port and its queue handles share.
struct PortShared {
    id: PortId,
    rx_taken: Box<[AtomicBool]>,
    tx_taken: Box<[AtomicBool]>,
    rss: bool,
    started: AtomicBool,
    closed: AtomicBool,
    /// The pool rx queues fill descriptors from; kept alive with the port.
    _rx_pool: Mempool,
}

impl Port {
    /// Configures port `id` (`rte_eth_dev_configure`), then sets up its rx
    /// queues, each filling from `rx_pool`, and its tx queues, with
    /// descriptor rings on `socket`. The port is left stopped; see
    /// [`start`](Port::start).
    ///
    /// # Errors
    ///
    /// [`PortError::PortInUse`] when another `Port` has this id,
    /// [`PortError::TooManyQueues`], [`PortError::Mtu`], or
    /// [`PortError::Dpdk`] naming the DPDK call that failed.
    #[cold]
    pub fn configure(
        _eal: &Eal,
        id: PortId,
        config: &PortConfig,
        rx_pool: &Mempool,
        socket: SocketId,
    ) -> Result<Port, PortError> {
        let claim = PORT_CLAIMED
            .get(usize::from(id.0))
            .ok_or(PortError::NoSuchPort(id))?;
        if claim.swap(true, Ordering::AcqRel) {
            return Err(PortError::PortInUse(id));
        }
        let result = Self::setup(id, config, rx_pool, socket);
        if result.is_err() {
            claim.store(false, Ordering::Release);
        }
        result
    }

    #[cold]
    fn setup(
        id: PortId,
        config: &PortConfig,
        rx_pool: &Mempool,
        socket: SocketId,
    ) -> Result<Port, PortError> {
        let info = id.raw_info()?;
        for (kind, requested, max) in [
            ("rx", config.rx_queues, info.max_rx_queues),
            ("tx", config.tx_queues, info.max_tx_queues),
        ] {
            if requested == 0 || requested > max {
                return Err(PortError::TooManyQueues {
                    port: id,
                    kind,
                    requested,
                    max,
                });
            }
        }

        let mut conf = sys::rte_eth_conf::default();
        if let Some(mtu) = config.mtu {
            if mtu < info.min_mtu || mtu > info.max_mtu {
                return Err(PortError::Mtu {
                    port: id,
                    mtu,
                    min: info.min_mtu,
                    max: info.max_mtu,
                });
            }
            conf.rxmode.mtu = u32::from(mtu);
        }
        // SAFETY: plain constants defined in the shim.
        let (wanted_rss, rss_hash_offload) = unsafe {
            (
                sys::rvs_eth_rss_ip_tcp_udp,
                sys::rvs_eth_rx_offload_rss_hash,
            )
        };
        let rss_hf = wanted_rss & info.flow_type_rss_offloads;
        let rss = config.rss && rss_hf != 0;
        if rss {
            conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            conf.rxmode.offloads |= info.rx_offload_capa & rss_hash_offload;
        }

        // SAFETY: the EAL is initialised and conf is a valid configuration
        // that DPDK copies.
        let ret =
            unsafe { sys::rte_eth_dev_configure(id.0, config.rx_queues, config.tx_queues, &conf) };
        id.check(ret, "rte_eth_dev_configure")?;

        let (mut rx_descriptors, mut tx_descriptors) =
            (config.rx_descriptors, config.tx_descriptors);
        // SAFETY: the port is configured; both pointers are valid.
        let ret = unsafe {
            sys::rte_eth_dev_adjust_nb_rx_tx_desc(id.0, &mut rx_descriptors, &mut tx_descriptors)
        };
        id.check(ret, "rte_eth_dev_adjust_nb_rx_tx_desc")?;

        for queue in 0..config.rx_queues {
            // SAFETY: the port is configured with this many rx queues; the
            // NULL rxconf selects the device default; the pool outlives the
            // port (kept in PortShared and never freed anyway).
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(
                    id.0,
                    queue,
                    rx_descriptors,
                    socket.as_raw(),
                    ptr::null(),
                    rx_pool.as_ptr(),
                )
            };
            id.check(ret, "rte_eth_rx_queue_setup")?;
        }
        for queue in 0..config.tx_queues {
            // SAFETY: the port is configured with this many tx queues; the
            // NULL txconf selects the device default.
            let ret = unsafe {
                sys::rte_eth_tx_queue_setup(
                    id.0,
                    queue,
                    tx_descriptors,
                    socket.as_raw(),
                    ptr::null(),
                )
            };
            id.check(ret, "rte_eth_tx_queue_setup")?;
        }

        if config.promiscuous {
            // SAFETY: the port is configured.
            let ret = unsafe { sys::rte_eth_promiscuous_enable(id.0) };
            id.check(ret, "rte_eth_promiscuous_enable")?;
        }

        let taken = |count: u16| (0..count).map(|_| AtomicBool::new(false)).collect();
        let port = Port {
            shared: Arc::new(PortShared {
                id,
                rx_taken: taken(config.rx_queues),
                tx_taken: taken(config.tx_queues),
                rss,
                started: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                _rx_pool: rx_pool.clone(),
            }),
            _not_sync: PhantomData,
        };
        eal::live_acquire();
        Ok(port)
    }

    /// The port's id.
    pub fn id(&self) -> PortId {
        self.shared.id
    }

    /// Whether RSS was configured (asked for and supported by the device).
    pub fn rss(&self) -> bool {
        self.shared.rss
    }

    /// Starts the port (`rte_eth_dev_start`).
    ///
    /// # Errors
    ///
    /// [`PortError::Dpdk`].
    #[cold]
    pub fn start(&mut self) -> Result<(), PortError> {
        let id = self.id();
        // SAFETY: the port is configured with all its queues set up.
        id.check(unsafe { sys::rte_eth_dev_start(id.0) }, "rte_eth_dev_start")?;
        self.shared.started.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops the port (`rte_eth_dev_stop`); it can be started again.
    ///
    /// # Errors
    ///
    /// [`PortError::QueuesInUse`] while queue handles exist, or
    /// [`PortError::Dpdk`].
    #[cold]
    pub fn stop(&mut self) -> Result<(), PortError> {
        self.ensure_no_queues()?;
        let id = self.id();
        // SAFETY: no queue handle exists, so no thread polls the port.
        id.check(unsafe { sys::rte_eth_dev_stop(id.0) }, "rte_eth_dev_stop")?;
        self.shared.started.store(false, Ordering::Release);
        Ok(())
    }

    /// Stops and closes the port, releasing the device.
    ///
    /// # Errors
    ///
    /// [`PortError::QueuesInUse`] while queue handles exist (the port is
    /// then closed when the last one is dropped), or [`PortError::Dpdk`].
    #[cold]
    pub fn close(self) -> Result<(), PortError> {
        let id = self.id();
        match Arc::into_inner(self.shared) {
            Some(shared) => shared.close(),
            None => Err(PortError::QueuesInUse(id)),
        }
    }

    /// The port's MAC address.
    ///
    /// # Errors
    ///
    /// [`PortError::Dpdk`].
    pub fn mac_address(&self) -> Result<[u8; 6], PortError> {
        let mut mac = sys::rte_ether_addr::default();
        // SAFETY: the port is configured; mac is a valid output location.
        let ret = unsafe { sys::rte_eth_macaddr_get(self.id().0, &mut mac) };
        self.id().check(ret, "rte_eth_macaddr_get")?;
        Ok(mac.addr_bytes)
    }

    /// Sets the port's MAC address (`rte_eth_dev_default_mac_addr_set`):
    /// a kernel twin of a port (net_tap) takes the port's address, so that
    /// the host's own frames leave with it.
    ///
    /// # Errors
    ///
    /// [`PortError::Dpdk`], with `ENOTSUP` when the device cannot.
    #[cold]
    pub fn set_mac_address(&mut self, mac: [u8; 6]) -> Result<(), PortError> {
        let mut address = sys::rte_ether_addr { addr_bytes: mac };
        // SAFETY: the port is configured; address is valid for the call.
        let ret = unsafe { sys::rte_eth_dev_default_mac_addr_set(self.id().0, &mut address) };
        self.id().check(ret, "rte_eth_dev_default_mac_addr_set")
    }

    /// The link state, without waiting for negotiation
    /// (`rte_eth_link_get_nowait`).
    ///
    /// # Errors
    ///
    /// [`PortError::Dpdk`].
    pub fn link(&self) -> Result<Link, PortError> {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: the port is configured; link is a valid output location.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.id().0, &mut link) };
        self.id().check(ret, "rte_eth_link_get_nowait")?;
        let speed = link.link_speed;
        Ok(Link {
            up: u32::from(link.link_status()) == sys::RTE_ETH_LINK_UP,
            speed_mbps: (speed != sys::RTE_ETH_SPEED_NUM_NONE
                && speed != sys::RTE_ETH_SPEED_NUM_UNKNOWN)
                .then_some(speed),
            full_duplex: u32::from(link.link_duplex()) == sys::RTE_ETH_LINK_FULL_DUPLEX,
        })
    }

    /// The port's basic counters (`rte_eth_stats_get`).
    ///
    /// # Errors
    ///
    /// [`PortError::Dpdk`].
    pub fn stats(&self) -> Result<PortStats, PortError> {
        let mut stats = sys::rte_eth_stats::default();
        // SAFETY: the port is configured; stats is a valid output location.
        let ret = unsafe { sys::rte_eth_stats_get(self.id().0, &mut stats) };
        self.id().check(ret, "rte_eth_stats_get")?;
        Ok(PortStats {
            ipackets: stats.ipackets,
            opackets: stats.opackets,
            ibytes: stats.ibytes,
            obytes: stats.obytes,
            imissed: stats.imissed,
            ierrors: stats.ierrors,
            oerrors: stats.oerrors,
            rx_nombuf: stats.rx_nombuf,
        })
    }

    /// Zeroes the port's counters (`rte_eth_stats_reset`).
    ///
    /// # Errors
    ///
    /// [`PortError::Dpdk`].
    pub fn reset_stats(&mut self) -> Result<(), PortError> {
        // SAFETY: the port is configured.
        let ret = unsafe { sys::rte_eth_stats_reset(self.id().0) };
        self.id().check(ret, "rte_eth_stats_reset")
    }

    /// Turns promiscuous mode on or off.
    ///
    /// # Errors
    ///
    /// [`PortError::Dpdk`], with `ENOTSUP` when the device cannot.
    #[cold]
    pub fn set_promiscuous(&mut self, on: bool) -> Result<(), PortError> {
        let id = self.id();
        if on {
            // SAFETY: the port is configured.
            id.check(
                unsafe { sys::rte_eth_promiscuous_enable(id.0) },
                "rte_eth_promiscuous_enable",
            )
        } else {
            // SAFETY: the port is configured.
            id.check(
                unsafe { sys::rte_eth_promiscuous_disable(id.0) },
                "rte_eth_promiscuous_disable",
            )
        }
    }

    /// Receives every multicast frame, whatever its group
    /// (`rte_eth_allmulticast_enable`), rather than only the groups in the
    /// device's multicast filter, which this crate never fills.
    ///
    /// Valid on a configured port, started or not: DPDK keeps the mode
    /// across [`stop`](Port::stop) and [`start`](Port::start). `&mut self`
    /// keeps it from racing the port's other control operations, as the
    /// PMD callbacks behind them are not thread-safe.
    ///
    /// # Errors
    ///
    /// [`PortError::Dpdk`], with `ENOTSUP` when the PMD has no such mode
    /// (see [`PortError::is_unsupported`]).
    #[cold]
    pub fn enable_all_multicast(&mut self) -> Result<(), PortError> {
        let id = self.id();
        // SAFETY: the port is configured (a `Port` exists only after
        // `rte_eth_dev_configure` succeeded) and not closed (closing
        // consumes the `Port`).
        id.check(
            unsafe { sys::rte_eth_allmulticast_enable(id.0) },
            "rte_eth_allmulticast_enable",
        )
    }

    /// Hands out rx queue `queue`, once: until the returned handle is
    /// dropped, asking again fails.
    ///
    /// # Errors
    ///
    /// [`PortError::NoSuchQueue`] or [`PortError::QueueTaken`].
    #[cold]
    pub fn rx_queue(&self, queue: QueueId) -> Result<RxQueue, PortError> {
        self.take(&self.shared.rx_taken, queue)?;
        Ok(RxQueue {
            port: self.id(),
            queue,
            shared: Arc::clone(&self.shared),
            _not_sync: PhantomData,
        })
    }

    /// Hands out tx queue `queue`, once: until the returned handle is
    /// dropped, asking again fails.
    ///
    /// # Errors
    ///
    /// [`PortError::NoSuchQueue`] or [`PortError::QueueTaken`].
    #[cold]
    pub fn tx_queue(&self, queue: QueueId) -> Result<TxQueue, PortError> {
        self.take(&self.shared.tx_taken, queue)?;
        Ok(TxQueue {
            port: self.id(),
            queue,
            shared: Arc::clone(&self.shared),
            _not_sync: PhantomData,
        })
    }

    #[cold]
    fn take(&self, taken: &[AtomicBool], queue: QueueId) -> Result<(), PortError> {
        let port = self.id();
        let slot = taken
            .get(usize::from(queue.0))
            .ok_or(PortError::NoSuchQueue { port, queue })?;
        if slot.swap(true, Ordering::AcqRel) {
            return Err(PortError::QueueTaken { port, queue });
        }
        Ok(())
    }

    /// Fails while queue handles exist. With `&mut self` no new handle can
    /// appear concurrently.
    fn ensure_no_queues(&self) -> Result<(), PortError> {
        if Arc::strong_count(&self.shared) > 1 {
            return Err(PortError::QueuesInUse(self.id()));
        }
        Ok(())
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("id", &self.shared.id)
            .field("rx_queues", &self.shared.rx_taken.len())
            .field("tx_queues", &self.shared.tx_taken.len())
            .field("rss", &self.shared.rss)
            .finish()
    }
}

impl PortShared {
    /// Stops and closes the device, once.
    #[cold]
    fn close(&self) -> Result<(), PortError> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let id = self.id;
        let stopped = if self.started.swap(false, Ordering::AcqRel) {
            // SAFETY: called with the last reference to PortShared, so no
            // queue handle exists and nothing polls the port.
            unsafe { sys::rte_eth_dev_stop(id.0) }
        } else {
            0
        };
        // SAFETY: as above; the port is not used after this.
        let closed = unsafe { sys::rte_eth_dev_close(id.0) };
        id.check(stopped, "rte_eth_dev_stop")?;
        id.check(closed, "rte_eth_dev_close")
    }
}

impl Drop for PortShared {
    fn drop(&mut self) {
        // Errors cannot be reported from drop; `Port::close` reports them.
        let _ = self.close();
        if let Some(claim) = PORT_CLAIMED.get(usize::from(self.id.0)) {
            claim.store(false, Ordering::Release);
        }
        eal::live_release();
    }
}

/// An rx queue of a started [`Port`], polled by one thread at a time.
///
/// `Send` but neither `Sync` nor `Clone`: DPDK rx queues are
/// single-consumer. Dropping it gives the queue back to the port.
pub struct RxQueue {
    port: PortId,
    queue: QueueId,
    shared: Arc<PortShared>,
    _not_sync: PhantomData<Cell<()>>,
}

impl RxQueue {
    /// Frees what `burst` still holds, then receives up to `N` packets into
    /// it (`rte_eth_rx_burst`) and returns how many arrived. Never blocks.
    #[inline]
    pub fn burst<const N: usize>(&mut self, burst: &mut Burst<N>) -> usize {
        let (port, queue) = (self.port.0, self.queue.0);
        // SAFETY: the queue is set up and this handle is its only user;
        // rx_burst writes at most `max` owned mbufs to the array and
        // returns their count, as `refill` requires.
        unsafe { burst.refill(|mbufs, max| sys::rvs_eth_rx_burst(port, queue, mbufs, max)) }
    }

    /// The port this queue belongs to.
    pub fn port(&self) -> PortId {
        self.port
    }

    /// The queue's index.
    pub fn queue(&self) -> QueueId {
        self.queue
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        self.shared.rx_taken[usize::from(self.queue.0)].store(false, Ordering::Release);
    }
}

impl fmt::Debug for RxQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RxQueue({}/{})", self.port, self.queue)
    }
}

/// A tx queue of a started [`Port`], used by one thread at a time through
/// [`TxBuffer::flush`](crate::TxBuffer::flush).
///
/// `Send` but neither `Sync` nor `Clone`: DPDK tx queues are
/// single-producer. Dropping it gives the queue back to the port.
pub struct TxQueue {
    port: PortId,
    queue: QueueId,
    shared: Arc<PortShared>,
    _not_sync: PhantomData<Cell<()>>,
}

impl TxQueue {
    /// Hands `mbufs` to the NIC (`rte_eth_tx_burst`) and returns how many
    /// it took, from the front; the NIC owns those now.
    ///
    /// # Safety
    ///
    /// Every pointer must be an owned mbuf. The caller keeps ownership of
    /// those past the returned count.
    #[inline]
    pub(crate) unsafe fn tx_burst(&mut self, mbufs: &mut [*mut sys::rte_mbuf]) -> usize {
        let count = u16::try_from(mbufs.len()).unwrap_or(u16::MAX);
        // SAFETY: the queue is set up and this handle is its only user; the
        // array holds at least `count` owned mbufs (caller's contract).
        usize::from(unsafe {
            sys::rvs_eth_tx_burst(self.port.0, self.queue.0, mbufs.as_mut_ptr(), count)
        })
    }

    /// The port this queue belongs to.
    pub fn port(&self) -> PortId {
        self.port
    }

    /// The queue's index.
    pub fn queue(&self) -> QueueId {
        self.queue
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        self.shared.tx_taken[usize::from(self.queue.0)].store(false, Ordering::Release);
    }
}

impl fmt::Debug for TxQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxQueue({}/{})", self.port, self.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_compactly() {
        assert_eq!(format!("{:?}", PortId(0)), "port0");
        assert_eq!(format!("{}", QueueId(7)), "q7");
    }
}
