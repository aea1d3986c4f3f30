//! A lab: a client, a director (rvsd, or the kernel as a reference), two
//! real servers and, where the mode needs one, a router, wired for one
//! forwarding mode (see the crate docs for the pictures).

use std::fmt::Write as _;
use std::fs;
use std::net::IpAddr;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::host::{Netns, Process, Switch, run_name, veth};
use crate::plan::{
    CLIENT_HOSTS, CLIENT_SUBNET, DIRECTOR_HOST, Family, LAN_SUBNET, LIP_HOST, REAL_SERVER_HOSTS,
    ROUTER_HOST, SERVER_SUBNET, VIP_HOST, WAN_SUBNET, endpoint, url,
};
use crate::rvsd::{self, NetworkPlan, PortPlan, Rvsd, RvsdOptions};
use crate::servers::{UNHEALTHY, start_dnsmasq, start_ipip, start_nginx, write_big_file};
use crate::{REAL_SERVER_MACS, UDP_PORT, WHOAMI, require_prerequisites, run};

/// The forwarding mode a lab is wired for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Two-armed; the real servers' default gateway is the DIP.
    Nat,
    /// Two-armed; the real servers have no route beyond their own subnet.
    FullNat,
    /// One-armed: the director and the real servers share the LAN behind
    /// the client's router; the real servers hold the VIP on `lo` and do
    /// not answer ARP for it, and reply through the router.
    DirectRouting,
    /// One-armed: the real servers are on their own subnet behind the
    /// router, hold the VIP on `lo`, decapsulate IP-in-IP in userspace
    /// (`rvs-ipip decap`) and reply through the router.
    Tunnel,
}

impl Mode {
    /// rvsadm's option for real servers forwarded this way.
    pub fn rvsadm_option(self) -> &'static str {
        match self {
            Mode::Nat => "-m",
            Mode::FullNat => "--fullnat",
            Mode::DirectRouting => "-g",
            Mode::Tunnel => "-i",
        }
    }

    /// The Forward column of `rvsadm -Ln`.
    pub fn forward_name(self) -> &'static str {
        match self {
            Mode::Nat => "Masq",
            Mode::FullNat => "FullNat",
            Mode::DirectRouting => "Route",
            Mode::Tunnel => "Tunnel",
        }
    }

    fn one_armed(self) -> bool {
        matches!(self, Mode::DirectRouting | Mode::Tunnel)
    }
}

/// A transport protocol of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    fn rvsadm_option(self) -> &'static str {
        match self {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
        }
    }
}

/// What directs the lab's traffic.
#[derive(Debug, Clone)]
pub enum Director {
    /// rvsd, on af_packet ports on the director's veths.
    Rvsd(RvsdOptions),
    /// The Linux kernel of the director namespace, as a reference that
    /// checks the lab without rvsd: nftables DNAT (and SNAT to the LIP) for
    /// NAT and FULLNAT, an nftables ingress hook that rewrites destination
    /// MACs for DR, proxy ARP/NDP and `rvs-ipip encap` for TUN. NAT and
    /// FULLNAT balance round robin, DR and TUN by a flow hash.
    Kernel,
}

/// What lab to build.
#[derive(Debug, Clone)]
pub struct LabSpec {
    pub mode: Mode,
    /// Give every host IPv6 addresses too (IPv4 is always there).
    pub ipv6: bool,
    /// Put a router between the client and the director. DR and TUN labs
    /// always have one.
    pub client_router: bool,
    /// The MTU of the router's interface towards the client. The client
    /// keeps 1500 (and so announces a full-size MSS): full-size packets
    /// towards it make the router send ICMP "fragmentation needed" or
    /// ICMPv6 "packet too big" back to their source.
    pub client_mtu: u16,
    pub director: Director,
}

impl LabSpec {
    /// IPv4 only, no client router (unless the mode needs one), MTU 1500,
    /// rvsd with default options.
    pub fn new(mode: Mode) -> LabSpec {
        LabSpec {
            mode,
            ipv6: false,
            client_router: mode.one_armed(),
            client_mtu: 1500,
            director: Director::Rvsd(RvsdOptions::default()),
        }
    }
}

/// A lab built and running; everything it created goes when it is
/// dropped. On a panic (a failed test) it first prints rvsd's worker
/// counters, its listing with statistics and the end of its log.
#[derive(Debug)]
pub struct Lab {
    // Declared first so that processes die before their namespaces go.
    rvsd: Option<Rvsd>,
    processes: Vec<Process>,
    /// nginx of each real server; `None` while stopped.
    web_servers: Vec<Option<Process>>,
    pub client: Netns,
    pub router: Option<Netns>,
    pub director: Netns,
    pub switch: Switch,
    pub real_servers: Vec<Netns>,
    spec: LabSpec,
    families: Vec<Family>,
    dir: tempfile::TempDir,
    /// rvsd's control socket (also set, but unused, with a kernel director).
    pub socket: PathBuf,
    log: PathBuf,
}

static LABS: AtomicU32 = AtomicU32::new(0);

/// Bridges of the switch namespace.
const LAN_BRIDGE: &str = "lan";
const SERVER_BRIDGE: &str = "servers";
/// The TUN device of `rvs-ipip` on real servers and reference directors.
const TUN_DEVICE: &str = "tun0";

impl Lab {
    /// Builds the lab of `spec` and starts its director; `name` keeps
    /// namespaces of concurrent labs apart.
    pub fn start(name: &str, spec: &LabSpec) -> Lab {
        require_prerequisites();
        let id = run_name(&format!("{}-{name}", LABS.fetch_add(1, Ordering::Relaxed)));
        let dir = tempfile::Builder::new()
            .prefix(&format!("{id}-"))
            .tempdir()
            .unwrap_or_else(|error| panic!("cannot create a lab directory: {error}"));
        let socket = dir.path().join("rvsd.sock");
        let log = dir.path().join("rvsd.log");
        let client_router = spec.client_router || spec.mode.one_armed();
        let mut lab = Lab {
            rvsd: None,
            processes: Vec::new(),
            web_servers: Vec::new(),
            client: Netns::new(format!("{id}-client")),
            router: client_router.then(|| Netns::new(format!("{id}-router"))),
            director: Netns::new(format!("{id}-director")),
            switch: Switch::new(format!("{id}-switch")),
            real_servers: (1..=REAL_SERVER_HOSTS.len())
                .map(|i| Netns::new(format!("{id}-rs{i}")))
                .collect(),
            spec: spec.clone(),
            families: if spec.ipv6 {
                vec![Family::V4, Family::V6]
            } else {
                vec![Family::V4]
            },
            dir,
            socket,
            log,
        };
        lab.wire();
        lab.start_real_servers();
        match &spec.director {
            Director::Rvsd(options) => {
                for port in lab.director_ports() {
                    // rvsd answers neighbour discovery itself.
                    lab.director
                        .sysctl(&[&format!("net.ipv6.conf.{}.disable_ipv6=1", port.interface)]);
                    if options.exception_path {
                        // The NIC is DPDK's: the director namespace's
                        // kernel, which holds the director's addresses on
                        // the ports' twins, must not also answer frames
                        // that af_packet copies to rvsd (packet sockets see
                        // a frame before the ingress hook drops it).
                        nft(
                            &lab.director,
                            &format!(
                                "table netdev rvs_nic {{\n  chain {0} {{\n    type filter hook ingress device {0} priority 0; policy drop;\n  }}\n}}\n",
                                port.interface
                            ),
                        );
                    }
                }
                let network = NetworkPlan {
                    ports: lab.director_ports(),
                    routes: lab.director_routes(),
                    local_addresses: if spec.mode == Mode::FullNat {
                        lab.families.iter().map(|&f| lab.lip(f)).collect()
                    } else {
                        Vec::new()
                    },
                };
                lab.rvsd = Some(Rvsd::start(
                    &lab.director,
                    lab.dir.path(),
                    (&lab.socket, &lab.log),
                    &id,
                    &network,
                    options,
                ));
            }
            Director::Kernel => lab.start_kernel_director(),
        }
        lab
    }

    /// The forwarding mode the lab is wired for.
    pub fn mode(&self) -> Mode {
        self.spec.mode
    }

    /// The families the lab has addresses of.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// Whether rvsd directs the lab (rather than the kernel).
    pub fn has_rvsd(&self) -> bool {
        self.rvsd.is_some()
    }

    /// The client's two addresses.
    pub fn cips(&self, family: Family) -> [IpAddr; 2] {
        CLIENT_HOSTS.map(|host| family.address(self.client_subnet(), host))
    }

    /// The client's first address, its source by default.
    pub fn cip(&self, family: Family) -> IpAddr {
        self.cips(family)[0]
    }

    pub fn vip(&self, family: Family) -> IpAddr {
        family.address(self.vip_subnet(), VIP_HOST)
    }

    /// The director's address on the real servers' side (its only one in
    /// a one-armed lab).
    pub fn dip(&self, family: Family) -> IpAddr {
        family.address(LAN_SUBNET, DIRECTOR_HOST)
    }

    /// The FULLNAT local address.
    pub fn lip(&self, family: Family) -> IpAddr {
        family.address(LAN_SUBNET, LIP_HOST)
    }

    pub fn rips(&self, family: Family) -> Vec<IpAddr> {
        REAL_SERVER_HOSTS
            .iter()
            .map(|&host| family.address(self.real_server_subnet(), host))
            .collect()
    }

    fn client_subnet(&self) -> u8 {
        if self.router.is_some() {
            CLIENT_SUBNET
        } else {
            WAN_SUBNET
        }
    }

    fn vip_subnet(&self) -> u8 {
        if self.spec.mode.one_armed() {
            LAN_SUBNET
        } else {
            WAN_SUBNET
        }
    }

    fn real_server_subnet(&self) -> u8 {
        if self.spec.mode == Mode::Tunnel {
            SERVER_SUBNET
        } else {
            LAN_SUBNET
        }
    }

    /// The director's ports: `wan` (d0) and `lan` (d1), or only `lan` (d0)
    /// in a one-armed lab.
    fn director_ports(&self) -> Vec<PortPlan> {
        let addresses = |subnet: u8| -> Vec<String> {
            self.families
                .iter()
                .map(|family| family.interface_address(subnet, DIRECTOR_HOST))
                .collect()
        };
        if self.spec.mode.one_armed() {
            vec![PortPlan {
                name: "lan",
                interface: "d0",
                addresses: addresses(LAN_SUBNET),
            }]
        } else {
            vec![
                PortPlan {
                    name: "wan",
                    interface: "d0",
                    addresses: addresses(WAN_SUBNET),
                },
                PortPlan {
                    name: "lan",
                    interface: "d1",
                    addresses: addresses(LAN_SUBNET),
                },
            ]
        }
    }

    /// The director's routes beyond its subnets: everything through the
    /// router in a one-armed lab, the client's subnet through the router
    /// in a two-armed lab that has one.
    fn director_routes(&self) -> Vec<(String, IpAddr)> {
        let mut routes = Vec::new();
        for &family in &self.families {
            if self.spec.mode.one_armed() {
                routes.push((
                    family.default_network().to_owned(),
                    family.address(LAN_SUBNET, ROUTER_HOST),
                ));
            } else if self.router.is_some() {
                routes.push((
                    family.network(CLIENT_SUBNET),
                    family.address(WAN_SUBNET, ROUTER_HOST),
                ));
            }
        }
        routes
    }

    /// Adds `interface`'s addresses as host `host` of `subnet`, in every
    /// family of the lab.
    fn address(&self, netns: &Netns, interface: &str, subnet: u8, host: u8) {
        for family in &self.families {
            netns.add_address(interface, &family.interface_address(subnet, host));
        }
    }

    /// A default route through host `host` of `subnet`, in every family.
    fn default_route(&self, netns: &Netns, subnet: u8, host: u8) {
        for &family in &self.families {
            netns.add_route("default", family.address(subnet, host));
        }
    }

    /// Creates the links, addresses and routes.
    fn wire(&self) {
        let mode = self.spec.mode;
        // The client, and its router.
        let client_gateway = if let Some(router) = &self.router {
            veth(&self.client, "c0", router, "x0");
            router.exec(&[
                "ip",
                "link",
                "set",
                "x0",
                "mtu",
                &self.spec.client_mtu.to_string(),
            ]);
            self.address(router, "x0", CLIENT_SUBNET, ROUTER_HOST);
            router.sysctl(&[
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
            ]);
            (CLIENT_SUBNET, ROUTER_HOST)
        } else {
            veth(&self.client, "c0", &self.director, "d0");
            (WAN_SUBNET, DIRECTOR_HOST)
        };
        self.address(&self.client, "c0", client_gateway.0, CLIENT_HOSTS[0]);
        // The second address is used only when a program binds to it: an
        // IPv4 secondary address, a deprecated IPv6 one.
        for family in &self.families {
            let address = family.interface_address(client_gateway.0, CLIENT_HOSTS[1]);
            self.client.add_address("c0", &address);
            if *family == Family::V6 {
                self.client.exec(&[
                    "ip",
                    "addr",
                    "change",
                    &address,
                    "dev",
                    "c0",
                    "preferred_lft",
                    "0",
                ]);
            }
        }
        self.default_route(&self.client, client_gateway.0, client_gateway.1);

        // The director's links, and the router's other legs.
        self.switch.add_bridge(LAN_BRIDGE);
        if mode.one_armed() {
            self.switch.plug(LAN_BRIDGE, &self.director, "d0");
            if let Some(router) = &self.router {
                self.switch.plug(LAN_BRIDGE, router, "x1");
                self.address(router, "x1", LAN_SUBNET, ROUTER_HOST);
                if mode == Mode::Tunnel {
                    self.switch.add_bridge(SERVER_BRIDGE);
                    self.switch.plug(SERVER_BRIDGE, router, "x2");
                    self.address(router, "x2", SERVER_SUBNET, ROUTER_HOST);
                }
            }
        } else {
            if let Some(router) = &self.router {
                veth(router, "x1", &self.director, "d0");
                self.address(router, "x1", WAN_SUBNET, ROUTER_HOST);
            }
            self.switch.plug(LAN_BRIDGE, &self.director, "d1");
        }

        // The real servers.
        let bridge = if mode == Mode::Tunnel {
            SERVER_BRIDGE
        } else {
            LAN_BRIDGE
        };
        for (i, rs) in self.real_servers.iter().enumerate() {
            self.switch.plug(bridge, rs, "r0");
            rs.exec(&["ip", "link", "set", "r0", "address", REAL_SERVER_MACS[i]]);
            self.address(rs, "r0", self.real_server_subnet(), REAL_SERVER_HOSTS[i]);
            match mode {
                Mode::Nat => self.default_route(rs, LAN_SUBNET, DIRECTOR_HOST),
                Mode::FullNat => {}
                Mode::DirectRouting => {
                    self.default_route(rs, LAN_SUBNET, ROUTER_HOST);
                    self.hold_vip(rs);
                    // Never answer ARP for the VIP (it is on lo), nor use
                    // it as the source of ARP requests.
                    rs.sysctl(&[
                        "net.ipv4.conf.all.arp_ignore=1",
                        "net.ipv4.conf.all.arp_announce=2",
                        "net.ipv4.conf.r0.arp_ignore=1",
                        "net.ipv4.conf.r0.arp_announce=2",
                    ]);
                }
                Mode::Tunnel => {
                    self.default_route(rs, SERVER_SUBNET, ROUTER_HOST);
                    self.hold_vip(rs);
                    add_tun_device(rs);
                    // The decapsulated packets come in on tun0 from
                    // clients that the routes reach through r0.
                    rs.sysctl(&[
                        "net.ipv4.conf.all.rp_filter=0",
                        "net.ipv4.conf.default.rp_filter=0",
                        &format!("net.ipv4.conf.{TUN_DEVICE}.rp_filter=0"),
                    ]);
                }
            }
            // Path MTU discovery must work on its own (no probing around
            // a black hole).
            rs.sysctl(&["net.ipv4.tcp_mtu_probing=0"]);
        }
    }

    /// Puts the VIPs on `lo` (a /32 or /128: `lo` answers no neighbour
    /// discovery from other interfaces).
    fn hold_vip(&self, netns: &Netns) {
        for &family in &self.families {
            netns.add_address("lo", &family.host_prefix(self.vip(family)));
        }
    }

    /// nginx and dnsmasq on every real server, and the decapsulator on
    /// those of a TUN lab.
    fn start_real_servers(&mut self) {
        let big_file = self.dir.path().join("big.bin");
        write_big_file(&big_file);
        let mut processes = Vec::new();
        for (i, rs) in self.real_servers.iter().enumerate() {
            let name = format!("rs{}", i + 1);
            let root = self.dir.path().join(&name);
            self.web_servers
                .push(Some(start_nginx(rs, &root, &name, &big_file)));
            let mut addresses: Vec<IpAddr> = self
                .families
                .iter()
                .map(|&family| self.rips(family)[i])
                .collect();
            if self.spec.mode.one_armed() {
                addresses.extend(self.families.iter().map(|&family| self.vip(family)));
            }
            processes.push(start_dnsmasq(rs, &addresses, &root, &name));
            if self.spec.mode == Mode::Tunnel {
                processes.push(start_ipip(
                    rs,
                    TUN_DEVICE,
                    &["decap".to_owned(), TUN_DEVICE.to_owned()],
                    &root.join("rvs-ipip.log"),
                ));
            }
        }
        self.processes.extend(processes);
    }

    /// Stops nginx on real server `i` (from 0), as a crash would: its
    /// ports refuse connections from then on.
    pub fn stop_web_server(&mut self, i: usize) {
        if let Some(mut nginx) = self.web_servers[i].take() {
            nginx.terminate(std::time::Duration::from_secs(5));
        }
    }

    /// Starts nginx on real server `i` again, serving what it served.
    pub fn start_web_server(&mut self, i: usize) {
        if self.web_servers[i].is_none() {
            let name = format!("rs{}", i + 1);
            let root = self.dir.path().join(&name);
            let big_file = self.dir.path().join("big.bin");
            self.web_servers[i] = Some(start_nginx(&self.real_servers[i], &root, &name, &big_file));
        }
    }

    /// Makes `/health` of real server `i` answer 500 (`false`) or 200.
    pub fn set_healthy(&self, i: usize, healthy: bool) {
        let flag = self.dir.path().join(format!("rs{}", i + 1)).join(UNHEALTHY);
        let result = if healthy {
            std::fs::remove_file(&flag)
        } else {
            std::fs::write(&flag, b"")
        };
        result.unwrap_or_else(|error| panic!("{}: {error}", flag.display()));
    }

    /// Sets the director namespace's kernel up as the director of the
    /// lab's mode (see [`Director::Kernel`]).
    fn start_kernel_director(&mut self) {
        let director = &self.director;
        for port in self.director_ports() {
            for address in &port.addresses {
                director.add_address(port.interface, address);
            }
        }
        for (destination, gateway) in self.director_routes() {
            director.add_route(&destination, gateway);
        }
        director.sysctl(&[
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
            "net.ipv4.conf.all.send_redirects=0",
            "net.ipv4.conf.d0.send_redirects=0",
        ]);
        match self.spec.mode {
            Mode::Nat | Mode::FullNat => {
                for &family in &self.families {
                    director.add_address("d0", &family.host_prefix(self.vip(family)));
                    let table = nft_family(family);
                    let mut rules = format!(
                        "table {table} lab {{\n\
                         chain prerouting {{ type nat hook prerouting priority dstnat; }}\n\
                         chain postrouting {{ type nat hook postrouting priority srcnat; }}\n}}\n"
                    );
                    if self.spec.mode == Mode::FullNat {
                        let lip = self.lip(family);
                        director.add_address("d1", &family.host_prefix(lip));
                        let _ = writeln!(
                            rules,
                            "add rule {table} lab postrouting oifname \"d1\" snat to {lip}"
                        );
                    }
                    nft(director, &rules);
                }
            }
            Mode::DirectRouting => {
                // What DR does: the VIP answers ARP/NS here, and an
                // ingress hook rewrites the destination MAC of its TCP and
                // UDP packets to a real server's (by a hash of the client
                // address and port) and sends them back onto the LAN from
                // the director's own MAC (with the router's, the bridge
                // would learn the router behind the director's port).
                let own_mac = director.mac("d0");
                let mut rules = String::from(
                    "table netdev lab {\n chain ingress {\n  \
                     type filter hook ingress device \"d0\" priority 0;\n",
                );
                for &family in &self.families {
                    let vip = self.vip(family);
                    director.add_address("d0", &family.host_prefix(vip));
                    let ip = nft_family(family);
                    let _ = writeln!(
                        rules,
                        "  {ip} daddr {vip} meta l4proto {{ tcp, udp }} ether saddr set {own_mac} \
                         ether daddr set jhash {ip} saddr . th sport {} fwd to \"d0\"",
                        nft_choice(&REAL_SERVER_MACS)
                    );
                }
                rules.push_str(" }\n}\n");
                nft(director, &rules);
            }
            Mode::Tunnel => {
                // The VIP answers ARP/NS here (proxy), its packets are
                // routed into tun0, and rvs-ipip encapsulates them.
                director.sysctl(&[
                    "net.ipv4.neigh.d0.proxy_delay=0",
                    "net.ipv6.neigh.d0.proxy_delay=0",
                    "net.ipv6.conf.all.proxy_ndp=1",
                ]);
                add_tun_device(director);
                let mut arguments = vec!["encap".to_owned(), TUN_DEVICE.to_owned()];
                for &family in &self.families {
                    let vip = self.vip(family).to_string();
                    let option = family.ip_option();
                    director.exec(&["ip", option, "neigh", "add", "proxy", &vip, "dev", "d0"]);
                    director.exec(&["ip", option, "route", "add", &vip, "dev", TUN_DEVICE]);
                    arguments.extend(self.rips(family).iter().map(ToString::to_string));
                }
                let log = self.dir.path().join("rvs-ipip-encap.log");
                let encap = start_ipip(director, TUN_DEVICE, &arguments, &log);
                self.processes.push(encap);
            }
        }
    }

    /// Adds a round-robin service on the VIP of `family` and `port`, with
    /// `real_servers` (same port) forwarded in the lab's mode: rvsadm
    /// commands for rvsd; for a kernel director an nftables rule in NAT
    /// and FULLNAT labs, nothing in DR and TUN labs (their kernel director
    /// sends everything for the VIP to every real server).
    pub fn add_service(
        &self,
        protocol: Protocol,
        family: Family,
        port: u16,
        real_servers: &[IpAddr],
    ) {
        let vip = self.vip(family);
        if self.rvsd.is_some() {
            let service = format!("{} {}", protocol.rvsadm_option(), endpoint(vip, port));
            self.rvsadm_ok(&format!("-A {service} -s rr"));
            for &rip in real_servers {
                self.rvsadm_ok(&format!(
                    "-a {service} -r {} {}",
                    endpoint(rip, port),
                    self.spec.mode.rvsadm_option()
                ));
            }
        } else if matches!(self.spec.mode, Mode::Nat | Mode::FullNat) {
            let table = nft_family(family);
            let transport = match protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
            };
            nft(
                &self.director,
                &format!(
                    "add rule {table} lab prerouting {table} daddr {vip} {transport} dport {port} \
                     dnat to numgen inc {}\n",
                    nft_choice(real_servers)
                ),
            );
        }
    }

    /// Runs rvsadm with whitespace-separated `args` against this lab's rvsd.
    pub fn rvsadm(&self, args: &str) -> Output {
        rvsd::rvsadm(&self.socket, args)
    }

    /// Runs `sh -ec script` in the lab's directory with rvsadm first on the
    /// PATH and talking to this lab's rvsd: a tutorial's lines as they are
    /// written, pipes and redirections included.
    pub fn rvsadm_script(&self, script: &str) -> Output {
        rvsd::rvsadm_script(&self.socket, self.dir.path(), script)
    }

    /// Runs rvsadm and returns its stdout; panics on failure.
    pub fn rvsadm_ok(&self, args: &str) -> String {
        let output = self.rvsadm(args);
        assert!(
            output.status.success(),
            "rvsadm {args} failed ({}): {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            self.log_tail()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Every worker's counters, from `rvsadm -L --workers --json`.
    pub fn workers(&self) -> serde_json::Value {
        let text = self.rvsadm_ok("-L --workers --json");
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
    }

    /// The packets and bytes rvsd's workers received and sent, summed.
    pub fn worker_traffic(&self) -> Traffic {
        let workers = self.workers();
        Traffic::read(|name| {
            workers
                .as_array()
                .map(|all| all.iter().filter_map(|w| w[name].as_u64()).sum())
                .unwrap_or(0)
        })
    }

    /// What the director's veths carried so far, as the kernel counts
    /// them (the same for rvsd and the kernel as director).
    pub fn director_port_traffic(&self) -> Traffic {
        let ports = self.director_ports();
        Traffic::read(|counter| {
            ports
                .iter()
                .map(|port| self.director.interface_counter(port.interface, counter))
                .sum()
        })
    }

    /// Packets the director's ports have received so far.
    pub fn director_rx_packets(&self) -> u64 {
        self.director_port_traffic().rx_packets
    }

    /// `count` sequential HTTP requests from the client to the VIP of
    /// `family`, port 80, each on a new connection; returns each response
    /// body, or `FAILED` and curl's error. Stops after the third failure,
    /// so that a broken lab fails its test quickly.
    pub fn http_requests(&self, family: Family, path: &str, count: usize) -> Vec<String> {
        self.http_requests_from(self.cip(family), 80, path, count)
    }

    /// [`Lab::http_requests`] from the client address `cip` (one of
    /// [`Lab::cips`]) to the VIP of its family on `port`; each connection
    /// has its own source port.
    pub fn http_requests_from(
        &self,
        cip: IpAddr,
        port: u16,
        path: &str,
        count: usize,
    ) -> Vec<String> {
        let script = format!(
            "failed=0; for i in $(seq {count}); do \
             out=$(curl -sS --max-time 5 --interface {cip} -H 'Connection: close' {} 2>&1) \
             && echo \"$out\" || \
             {{ echo \"FAILED $out\"; failed=$((failed + 1)); [ $failed -lt 3 ] || break; }}; done",
            url(self.vip(Family::of(cip)), port, path)
        );
        lines(&self.client.sh(&script))
    }

    /// `count` DNS queries (UDP) from the client to the VIP of `family`
    /// with dig, each from its own source port (20001, 20002...: random
    /// ones sometimes repeat, and a repeated port is the same flow, which
    /// goes where the first went); returns each answer (the server's
    /// name), or `FAILED` and dig's error. Stops after the third failure.
    pub fn udp_requests(&self, family: Family, count: usize) -> Vec<String> {
        let script = format!(
            "failed=0; for i in $(seq {count}); do \
             out=$(dig +short +tries=1 +time=3 -b {}#$((20000 + i)) @{} -p {UDP_PORT} TXT {WHOAMI} 2>&1) \
             && echo \"$out\" || \
             {{ echo \"FAILED $out\"; failed=$((failed + 1)); [ $failed -lt 3 ] || break; }}; done",
            self.cip(family),
            self.vip(family)
        );
        lines(&self.client.sh(&script))
            .into_iter()
            .map(|line| line.trim_matches('"').to_owned())
            .collect()
    }

    /// Downloads `/big.bin` from the VIP of `family` into the lab's
    /// directory and checks that it arrived whole and unchanged; the error
    /// says what went wrong.
    pub fn download_big_file(&self, family: Family) -> Result<(), String> {
        let output = self.dir.path().join(format!("download-{family}.bin"));
        let result = self
            .client
            .command("curl")
            // A transfer that stalls (as when ICMP errors are lost) fails
            // after 10 s.
            .args(["-sS", "--max-time", "60", "--speed-limit", "1000"])
            .args(["--speed-time", "10", "-o"])
            .arg(&output)
            .arg(url(self.vip(family), 80, "/big.bin"))
            .stdout(Stdio::null())
            .output()
            .map_err(|error| format!("cannot run curl: {error}"))?;
        let received = fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
        if !result.status.success() {
            let _ = fs::remove_file(&output);
            return Err(format!(
                "curl failed after {received} of {} bytes: {}",
                crate::BIG_FILE_BYTES,
                String::from_utf8_lossy(&result.stderr).trim()
            ));
        }
        let checksum = sha256(&output);
        let _ = fs::remove_file(&output);
        if received != crate::BIG_FILE_BYTES as u64 || checksum != big_file_sha256(self) {
            return Err(format!(
                "received {received} of {} bytes, SHA-256 {checksum}: not the file served",
                crate::BIG_FILE_BYTES
            ));
        }
        Ok(())
    }

    /// The lab's scratch directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether rvsd is still running.
    pub fn rvsd_running(&mut self) -> bool {
        self.rvsd.as_mut().is_some_and(Rvsd::running)
    }

    /// rvsd's configuration file, which a reload rereads.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("rvsd.toml")
    }

    /// Sends rvsd SIGHUP (a reload of [`Lab::config_path`]).
    pub fn hang_up_rvsd(&self) {
        match &self.rvsd {
            Some(rvsd) => rvsd.hang_up(),
            None => panic!("no rvsd in this lab"),
        }
    }

    /// rvsd's whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The end of rvsd's log, for failure messages.
    pub fn log_tail(&self) -> String {
        rvsd::log_tail(&self.log)
    }

    /// Stops rvsd with SIGTERM; returns whether it exited cleanly.
    pub fn stop_rvsd(&mut self) -> bool {
        self.rvsd.as_mut().is_some_and(Rvsd::stop)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !std::thread::panicking() || self.rvsd.is_none() {
            return;
        }
        // What rvsd counted, then a clean stop, which makes it log its
        // drop counters and port counters: usually they tell what went
        // wrong. Nothing here may panic again.
        if self.rvsd_running() {
            for args in ["-L --workers --json", "-Ln --stats"] {
                if let Some(output) = rvsd::try_rvsadm(&self.socket, args) {
                    eprintln!(
                        "--- rvsadm {args} ---\n{}{}",
                        String::from_utf8_lossy(&output.stdout),
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
            }
            self.stop_rvsd();
        } else {
            eprintln!("--- rvsd is not running ---");
        }
        eprintln!("{}", self.log_tail());
    }
}

/// Packets and bytes received and sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

impl Traffic {
    /// Reads each counter by its name (`rx_packets`, `rx_bytes`,
    /// `tx_packets`, `tx_bytes`: the same names in rvsd's worker counters
    /// and the kernel's interface statistics).
    fn read(mut counter: impl FnMut(&str) -> u64) -> Traffic {
        Traffic {
            rx_packets: counter("rx_packets"),
            rx_bytes: counter("rx_bytes"),
            tx_packets: counter("tx_packets"),
            tx_bytes: counter("tx_bytes"),
        }
    }
}

impl std::ops::Sub for Traffic {
    type Output = Traffic;

    fn sub(self, earlier: Traffic) -> Traffic {
        Traffic {
            rx_packets: self.rx_packets.saturating_sub(earlier.rx_packets),
            rx_bytes: self.rx_bytes.saturating_sub(earlier.rx_bytes),
            tx_packets: self.tx_packets.saturating_sub(earlier.tx_packets),
            tx_bytes: self.tx_bytes.saturating_sub(earlier.tx_bytes),
        }
    }
}

/// The IPv4 NAT lab of tests/nat.rs, the demo and the lab benchmark: a
/// [`Lab`] of [`Mode::Nat`] without IPv6 or router, whose requests go to
/// the IPv4 VIP.
#[derive(Debug)]
pub struct NatLab(Lab);

impl NatLab {
    /// Builds the lab and starts rvsd.
    pub fn start(name: &str, options: &RvsdOptions) -> NatLab {
        NatLab(Lab::start(
            name,
            &LabSpec {
                director: Director::Rvsd(options.clone()),
                ..LabSpec::new(Mode::Nat)
            },
        ))
    }

    /// Builds the same lab with the Linux kernel of the director namespace
    /// as the director, balancing `VIP:tcp_port` round robin over the real
    /// servers (nftables DNAT; the kernel here has no IPVS). A reference
    /// for benchmarks.
    pub fn start_kernel(name: &str, tcp_port: u16) -> NatLab {
        let lab = Lab::start(
            name,
            &LabSpec {
                director: Director::Kernel,
                ..LabSpec::new(Mode::Nat)
            },
        );
        lab.add_service(Protocol::Tcp, Family::V4, tcp_port, &lab.rips(Family::V4));
        NatLab(lab)
    }

    /// `count` sequential HTTP requests to the IPv4 VIP (see
    /// [`Lab::http_requests`]).
    pub fn http_requests(&self, path: &str, count: usize) -> Vec<String> {
        self.0.http_requests(Family::V4, path, count)
    }

    /// `count` DNS queries to the IPv4 VIP (see [`Lab::udp_requests`]).
    pub fn udp_requests(&self, count: usize) -> Vec<String> {
        self.0.udp_requests(Family::V4, count)
    }
}

impl Deref for NatLab {
    type Target = Lab;

    fn deref(&self) -> &Lab {
        &self.0
    }
}

impl DerefMut for NatLab {
    fn deref_mut(&mut self) -> &mut Lab {
        &mut self.0
    }
}

/// The SHA-256 of the file every server serves at `/big.bin`.
pub fn big_file_sha256(lab: &Lab) -> String {
    sha256(&lab.dir().join("big.bin"))
}

pub(crate) fn sha256(path: &Path) -> String {
    run("sha256sum", &[&path.to_string_lossy()])
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Creates the TUN device that `rvs-ipip` attaches to, up.
fn add_tun_device(netns: &Netns) {
    netns.exec(&["ip", "tuntap", "add", "dev", TUN_DEVICE, "mode", "tun"]);
    netns.exec(&["ip", "link", "set", TUN_DEVICE, "up"]);
}

/// nftables' name of `family` (a table family and a header).
fn nft_family(family: Family) -> &'static str {
    match family {
        Family::V4 => "ip",
        Family::V6 => "ip6",
    }
}

/// `mod N map { 0 : A, 1 : B, ... }`: one of `values` by a number
/// generator or hash before it.
fn nft_choice(values: &[impl std::fmt::Display]) -> String {
    let entries: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, value)| format!("{i} : {value}"))
        .collect();
    format!("mod {} map {{ {} }}", values.len(), entries.join(", "))
}

/// Applies nftables `rules` in `netns`.
fn nft(netns: &Netns, rules: &str) {
    let mut command = netns.command("nft");
    command
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run nft: {error}"));
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        stdin
            .write_all(rules.as_bytes())
            .unwrap_or_else(|error| panic!("nft: {error}"));
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|error| panic!("nft: {error}"));
    assert!(
        output.status.success(),
        "nft in {}: {}\n{rules}",
        netns.name,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}
