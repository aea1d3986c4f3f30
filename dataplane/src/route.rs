//! Where a packet leaves: the longest matching route, from the ports' own
//! subnets (connected routes) and the configured static routes, one table
//! per address family.
//!
//! A director has a handful of routes, so a table is a short array sorted
//! by prefix length and scanned in order; each route is compiled to a
//! (network, mask) pair, so a test is an AND and a compare.

use crate::family::{Family, Mask};

/// A route: packets to `destination` leave on `port`, towards `gateway`
/// if there is one, else straight to their destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<A: Family> {
    pub destination: A::Cidr,
    pub gateway: Option<A>,
    pub port: u16,
}

/// The result of a lookup: the port and the neighbour to send to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop<A> {
    pub port: u16,
    pub address: A,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable<A: Family> {
    routes: Vec<Route<A>>,
    masks: Vec<Mask>,
}

impl<A: Family> Default for RouteTable<A> {
    fn default() -> Self {
        RouteTable {
            routes: Vec::new(),
            masks: Vec::new(),
        }
    }
}

impl<A: Family> RouteTable<A> {
    /// A table of the ports' subnets (`connected`: each prefix with its
    /// port) and `static_routes`.
    pub fn new(
        connected: impl IntoIterator<Item = (u16, A::Cidr)>,
        static_routes: Vec<Route<A>>,
    ) -> Self {
        let connected = connected.into_iter().map(|(port, destination)| Route {
            destination,
            gateway: None,
            port,
        });
        let mut routes: Vec<Route<A>> = connected.chain(static_routes).collect();
        // Longest prefix first; the stable sort keeps connected routes ahead
        // of static ones of the same length.
        routes.sort_by_key(|route| std::cmp::Reverse(A::cidr(&route.destination).1));
        let masks = routes
            .iter()
            .map(|route| Mask::new::<A>(&route.destination))
            .collect();
        RouteTable { routes, masks }
    }

    #[inline]
    pub fn lookup(&self, destination: A) -> Option<NextHop<A>> {
        let index = self
            .masks
            .iter()
            .position(|mask| mask.contains(destination))?;
        let route = &self.routes[index];
        Some(NextHop {
            port: route.port,
            address: route.gateway.unwrap_or(destination),
        })
    }

    pub fn routes(&self) -> &[Route<A>] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::wire::{Ipv4Cidr, Ipv6Cidr};

    fn cidr(text: &str) -> Ipv4Cidr {
        text.parse().unwrap()
    }

    #[test]
    fn the_longest_prefix_wins_and_connected_routes_need_no_gateway() {
        let table = RouteTable::new(
            [(0, cidr("198.18.0.1/24")), (1, cidr("198.18.1.1/24"))],
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
        let connected_only = RouteTable::new([(0, cidr("198.18.0.1/24"))], Vec::new());
        assert_eq!(connected_only.lookup(Ipv4Addr::new(8, 8, 8, 8)), None);
    }

    #[test]
    fn ipv6_routes_work_the_same_way() {
        let v6 = |text: &str| text.parse::<Ipv6Cidr>().unwrap();
        let gateway: Ipv6Addr = "fd00::fe".parse().unwrap();
        let table = RouteTable::new(
            [(1, v6("fd00:1::1/64"))],
            vec![Route {
                destination: v6("::/0"),
                gateway: Some(gateway),
                port: 0,
            }],
        );
        let rs: Ipv6Addr = "fd00:1::11".parse().unwrap();
        assert_eq!(
            table.lookup(rs),
            Some(NextHop {
                port: 1,
                address: rs
            })
        );
        assert_eq!(
            table.lookup("2001:db8::1".parse().unwrap()),
            Some(NextHop {
                port: 0,
                address: gateway
            })
        );
    }
}
