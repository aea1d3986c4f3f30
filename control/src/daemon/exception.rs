//! Sets up the exception path (see [`dataplane::exception`]): each port
//! with a `kernel_interface` gets a TAP twin that EAL created from the
//! config's `--vdev=net_tap_rvsN,iface=NAME`; rvsd gives it the port's MAC
//! address and MTU, brings it up and puts the port's addresses on it with
//! ip(8), so that the host's stack owns them like on any interface.
//!
//! The `[[routes]]` of a port with a twin go into the host's routing table
//! too, through the twin, so that the host reaches what the dataplane
//! reaches (real servers behind a router, for the health checks) without
//! routes of its own that would vanish with the twin at every restart.
//! Default routes are the exception: the host's default route is usually
//! its management interface's, and rvsd must not take it over.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use dataplane::exception::{ExceptionCounters, ExceptionPath, Twin};
use dataplane::wire::MacAddr;
use dataplane::worker::KernelRings;
use dpdk_bind::{
    Eal, MbufRing, Mempool, Port, PortConfig as DpdkPortConfig, PortId, QueueId, RingConsumer,
    SocketId,
};

use super::{DaemonError, setup_error};
use crate::config::{Config, PortConfig};

/// Frames each ring of the exception path holds.
pub(super) const EXCEPTION_RING: u32 = 1024;
/// Descriptors of a twin's queues: the host's traffic is light.
const TWIN_DESCRIPTORS: u16 = 512;

/// The running exception path: its thread and the twins it drives.
#[derive(Debug)]
pub(super) struct KernelTwins {
    thread: JoinHandle<()>,
    stop: Arc<AtomicBool>,
    pub(super) counters: Arc<ExceptionCounters>,
    /// The pool the twins receive into.
    pub(super) pool: Mempool,
    ports: Vec<(String, Port)>,
}

/// Sets up the twins of `config`'s ports (`macs` in port order) and starts
/// the exception thread; returns each worker's rings, or `None` when no
/// port has a twin.
pub(super) fn start(
    eal: &Eal,
    config: &Config,
    macs: &[MacAddr],
    workers: usize,
    socket: SocketId,
) -> Result<Option<(KernelTwins, Vec<KernelRings>)>, DaemonError> {
    let with_twins: Vec<(usize, &PortConfig)> = config
        .ports
        .iter()
        .enumerate()
        .filter(|(_, port)| port.kernel_interface.is_some())
        .collect();
    if with_twins.is_empty() {
        return Ok(None);
    }
    let mbufs = with_twins.len() as u32 * u32::from(TWIN_DESCRIPTORS) + EXCEPTION_RING + 64;
    let pool = Mempool::new(
        eal,
        "rvs_exception_pool",
        mbufs,
        0,
        config.dataplane.mbuf_data_room,
        socket,
    )
    .map_err(|error| setup_error(format!("exception path pool: {error}")))?;
    let mut ports = Vec::new();
    let mut twins = Vec::new();
    for &(index, port_config) in &with_twins {
        let (Some(twin_name), Some(interface)) = (
            port_config.kernel_twin_name(index),
            &port_config.kernel_interface,
        ) else {
            continue;
        };
        let named = |error: &dyn std::fmt::Display| {
            setup_error(format!(
                "ports[{index}].kernel_interface (\"{interface}\"): {error}"
            ))
        };
        let id = PortId::by_name(eal, &twin_name).map_err(|e| named(&e))?;
        let settings = DpdkPortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_descriptors: TWIN_DESCRIPTORS,
            tx_descriptors: TWIN_DESCRIPTORS,
            mtu: port_config.mtu,
            rss: false,
            // A twin receives what the kernel sends through it, unfiltered:
            // unlike the ports, it needs no all-multicast mode.
            promiscuous: false,
        };
        let mut port = Port::configure(eal, id, &settings, &pool, socket).map_err(|e| named(&e))?;
        port.set_mac_address(macs[index].0).map_err(|e| named(&e))?;
        port.start().map_err(|e| named(&e))?;
        configure_interface(interface, port_config).map_err(|e| named(&e))?;
        twins.push(Twin {
            port: index as u16,
            rx: port.rx_queue(QueueId(0)).map_err(|e| named(&e))?,
            tx: port.tx_queue(QueueId(0)).map_err(|e| named(&e))?,
        });
        tracing::info!(port = %port_config.name, %interface, mac = %macs[index], "kernel twin up");
        ports.push((interface.clone(), port));
    }
    add_kernel_routes(config);

    let ring = |name: String| {
        MbufRing::new(eal, &name, EXCEPTION_RING, socket)
            .map(MbufRing::split)
            .map_err(|error| setup_error(format!("{name}: {error}")))
    };
    let (to_worker, from_kernel) = ring("rvs_from_kernel".to_owned())?;
    // The first worker transmits what the kernel sends.
    let mut from_kernel = Some(from_kernel);
    let mut rings = Vec::new();
    let mut from_workers: Vec<RingConsumer> = Vec::new();
    for worker in 0..workers {
        let (to_kernel, consumer) = ring(format!("rvs_to_kernel_{worker}"))?;
        from_workers.push(consumer);
        rings.push(KernelRings {
            to_kernel,
            from_kernel: from_kernel.take(),
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(ExceptionCounters::default());
    let path = ExceptionPath {
        twins,
        from_workers,
        to_worker,
        counters: Arc::clone(&counters),
        stop: Arc::clone(&stop),
    };
    let thread = std::thread::Builder::new()
        .name("rvs-exception".to_owned())
        .spawn(move || path.run())
        .map_err(|error| setup_error(format!("exception path thread: {error}")))?;
    Ok(Some((
        KernelTwins {
            thread,
            stop,
            counters,
            pool,
            ports,
        },
        rings,
    )))
}

impl KernelTwins {
    /// Stops the exception thread, then the twins (their interfaces go
    /// with them).
    pub(super) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if self.thread.join().is_err() {
            tracing::warn!("the exception path thread panicked");
        }
        let counters = &self.counters;
        tracing::info!(
            to_kernel = counters.to_kernel.load(Ordering::Relaxed),
            to_kernel_dropped = counters.to_kernel_dropped.load(Ordering::Relaxed),
            from_kernel = counters.from_kernel.load(Ordering::Relaxed),
            from_kernel_dropped = counters.from_kernel_dropped.load(Ordering::Relaxed),
            "exception path counters"
        );
        for (interface, port) in self.ports {
            if let Err(error) = port.close() {
                tracing::warn!(%interface, %error, "closing the kernel twin failed");
            }
        }
    }
}

/// Brings the twin `interface` up with `port`'s addresses.
fn configure_interface(interface: &str, port: &PortConfig) -> Result<(), String> {
    ip(&["link", "set", "dev", interface, "up"])?;
    for net in &port.addresses {
        let address = net.to_string();
        let mut args = vec!["address", "add", &address, "dev", interface];
        // The address is the director's already: duplicate address
        // detection would only hold it back for a second or two.
        if net.addr().is_ipv6() {
            args.push("nodad");
        }
        ip(&args)?;
    }
    Ok(())
}

/// Adds each non-default `[[routes]]` entry of a port with a twin to the
/// host's main table through the twin. A route the host has already is
/// the host's to keep: `ip route add` refuses to replace it, and rvsd only
/// warns, since the dataplane's forwarding does not depend on it.
fn add_kernel_routes(config: &Config) {
    for route in &config.routes {
        let Some(interface) = config
            .route_port(route)
            .and_then(|index| config.ports[index].kernel_interface.as_ref())
        else {
            continue;
        };
        if route.destination.prefix_len() == 0 {
            tracing::info!(
                destination = %route.destination,
                %interface,
                "default route left to the host"
            );
            continue;
        }
        let destination = route.destination.to_string();
        let gateway = route.gateway.to_string();
        let args = [
            "route",
            "add",
            &destination,
            "via",
            &gateway,
            "dev",
            interface,
        ];
        match ip(&args) {
            Ok(()) => tracing::info!(%destination, %gateway, %interface, "host route added"),
            Err(error) => tracing::warn!(%error, "host route not added"),
        }
    }
}

/// Runs ip(8) (iproute2) with `args`; its complaint on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|error| format!("running ip {}: {error} (install iproute2)", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
