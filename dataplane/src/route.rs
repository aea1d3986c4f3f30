//! Where a packet leaves: the longest matching route, from the ports' own
//! subnets (connected routes) and the configured static routes.
//!
//! A director has a handful of routes, so the table is a short array
//! sorted by prefix length, scanned in order: a few compares, all in one
//! or two cache lines.

use std::net::Ipv4Addr;

use crate::snapshot::PortAddresses;
use crate::wire::Ipv4Cidr;

/// A route: packets to `destination` leave on `port`, towards `gateway`
/// if there is one, else straight to their destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub destination: Ipv4Cidr,
    pub gateway: Option<Ipv4Addr>,
    pub port: u16,
}

/// The result of a lookup: the port and the neighbour to send to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    pub port: u16,
    pub address: Ipv4Addr,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// `routes` as (network, mask) pairs, so a lookup is an AND and a
    /// compare per route.
    compiled: Vec<(u32, u32)>,
}

impl RouteTable {
    pub fn new(ports: &[PortAddresses], static_routes: Vec<Route>) -> RouteTable {
        let connected = ports.iter().enumerate().flat_map(|(port, addresses)| {
            addresses.ipv4.iter().map(move |cidr| Route {
                destination: Ipv4Cidr {
                    address: cidr.network(),
                    prefix_len: cidr.prefix_len(),
                },
                gateway: None,
                port: port as u16,
            })
        });
        let mut routes: Vec<Route> = connected.chain(static_routes).collect();
        // Longest prefix first; the stable sort keeps connected routes ahead
        // of static ones of the same length.
        routes.sort_by_key(|route| std::cmp::Reverse(route.destination.prefix_len()));
        let compiled = routes
            .iter()
            .map(|route| {
                let mask = route.destination.netmask().to_bits();
                (route.destination.address().to_bits() & mask, mask)
            })
            .collect();
        RouteTable { routes, compiled }
    }

    #[inline]
    pub fn lookup(&self, destination: Ipv4Addr) -> Option<NextHop> {
        let bits = destination.to_bits();
        let index = self
            .compiled
            .iter()
            .position(|&(network, mask)| bits & mask == network)?;
        let route = &self.routes[index];
        Some(NextHop {
            port: route.port,
            address: route.gateway.unwrap_or(destination),
        })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MacAddr;

    fn cidr(text: &str) -> Ipv4Cidr {
        text.parse().unwrap()
    }

    #[test]
    fn the_longest_prefix_wins_and_connected_routes_need_no_gateway() {
        let ports = vec![
            PortAddresses {
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                ipv4: vec![cidr("198.18.0.1/24")],
            },
            PortAddresses {
                mac: MacAddr([2, 0, 0, 0, 0, 2]),
                ipv4: vec![cidr("198.18.1.1/24")],
            },
        ];
        let table = RouteTable::new(
            &ports,
            vec![
                Route {
                    destination: cidr("0.0.0.0/0"),
                    gateway: Some(Ipv4Addr::new(198, 18, 0, 254)),
                    port: 0,
                },
                Route {
                    destination: cidr("198.19.0.0/16"),
                    gateway: Some(Ipv4Addr::new(198, 18, 1, 254)),
                    port: 1,
                },
            ],
        );
        let hop = |a: [u8; 4]| table.lookup(Ipv4Addr::from(a));
        assert_eq!(
            hop([198, 18, 1, 11]),
            Some(NextHop {
                port: 1,
                address: Ipv4Addr::new(198, 18, 1, 11)
            })
        );
        assert_eq!(
            hop([198, 19, 4, 4]),
            Some(NextHop {
                port: 1,
                address: Ipv4Addr::new(198, 18, 1, 254)
            })
        );
        assert_eq!(
            hop([203, 0, 113, 9]),
            Some(NextHop {
                port: 0,
                address: Ipv4Addr::new(198, 18, 0, 254)
            })
        );
        assert_eq!(
            RouteTable::new(&ports, Vec::new()).lookup(Ipv4Addr::new(8, 8, 8, 8)),
            None
        );
    }
}
