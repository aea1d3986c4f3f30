//! The labs' address plan: every host of every lab has one number on each
//! subnet it is on, and the same address in both families, read the same
//! way: host `H` of subnet `S` is `198.18.S.H/24` and `fd00:S::H/64`, the
//! decimal digits of `H` standing as they are (198.18.1.11 and fd00:1::11,
//! 198.18.0.10 and fd00::10).
//!
//! | subnet | what is on it |
//! |---|---|
//! | 0 | two-armed labs: rvsd's `wan` port (.1), the VIP (.10), the client (.2, .3) or its router (.254) |
//! | 1 | rvsd's `lan` port or only port (.1, the DIP), the LIP (.100); one-armed labs: the VIP (.10), the router (.254), DR real servers (.11, .12) |
//! | 2 | clients behind a router: the client (.2, .3), the router (.254) |
//! | 3 | TUN labs: the real servers (.11, .12) behind the router (.254) |

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// An address family; every lab has IPv4, and IPv6 too when asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// Host `host` of lab subnet `subnet`, as the module docs say.
    pub fn address(self, subnet: u8, host: u8) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(Ipv4Addr::new(198, 18, subnet, host)),
            Family::V6 => {
                // The decimal digits read as hexadecimal: at most 0x255.
                let digits = u16::from_str_radix(&host.to_string(), 16).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::new(
                    0xfd00,
                    u16::from(subnet),
                    0,
                    0,
                    0,
                    0,
                    0,
                    digits,
                ))
            }
        }
    }

    /// The prefix length of every lab subnet.
    pub fn prefix_len(self) -> u8 {
        match self {
            Family::V4 => 24,
            Family::V6 => 64,
        }
    }

    /// `address/prefix` of host `host` on subnet `subnet`.
    pub fn interface_address(self, subnet: u8, host: u8) -> String {
        format!("{}/{}", self.address(subnet, host), self.prefix_len())
    }

    /// The network of subnet `subnet`, as routes name it.
    pub fn network(self, subnet: u8) -> String {
        format!("{}/{}", self.address(subnet, 0), self.prefix_len())
    }

    /// The network that holds every address.
    pub fn default_network(self) -> &'static str {
        match self {
            Family::V4 => "0.0.0.0/0",
            Family::V6 => "::/0",
        }
    }

    /// A single address as a prefix (`/32`, `/128`).
    pub fn host_prefix(self, address: IpAddr) -> String {
        match self {
            Family::V4 => format!("{address}/32"),
            Family::V6 => format!("{address}/128"),
        }
    }

    /// `-4` or `-6`, for `ip`.
    pub fn ip_option(self) -> &'static str {
        match self {
            Family::V4 => "-4",
            Family::V6 => "-6",
        }
    }

    /// The family of `address`.
    pub fn of(address: IpAddr) -> Family {
        if address.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// `address:port` as ipvsadm, curl and URLs write it: `198.18.0.10:80`,
/// `[fd00::10]:80`.
pub fn endpoint(address: IpAddr, port: u16) -> String {
    SocketAddr::new(address, port).to_string()
}

/// `http://address:port/path`.
pub fn url(address: IpAddr, port: u16, path: &str) -> String {
    format!("http://{}{path}", endpoint(address, port))
}

/// Lab subnets (see the module docs).
pub(crate) const WAN_SUBNET: u8 = 0;
pub(crate) const LAN_SUBNET: u8 = 1;
pub(crate) const CLIENT_SUBNET: u8 = 2;
pub(crate) const SERVER_SUBNET: u8 = 3;

/// Host numbers on the subnets.
pub(crate) const DIRECTOR_HOST: u8 = 1;
pub(crate) const CLIENT_HOSTS: [u8; 2] = [2, 3];
pub(crate) const VIP_HOST: u8 = 10;
pub(crate) const REAL_SERVER_HOSTS: [u8; 2] = [11, 12];
pub(crate) const LIP_HOST: u8 = 100;
pub(crate) const ROUTER_HOST: u8 = 254;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_families_read_the_host_number_the_same_way() {
        assert_eq!(Family::V4.address(1, 11).to_string(), "198.18.1.11");
        assert_eq!(Family::V6.address(1, 11).to_string(), "fd00:1::11");
        assert_eq!(Family::V6.address(0, 10).to_string(), "fd00::10");
        assert_eq!(Family::V6.address(1, 254).to_string(), "fd00:1::254");
        assert_eq!(Family::V6.network(2), "fd00:2::/64");
        assert_eq!(
            endpoint(Family::V6.address(0, 10), 80),
            "[fd00::10]:80".to_owned()
        );
        assert_eq!(
            url(Family::V4.address(0, 10), 80, "/"),
            "http://198.18.0.10:80/"
        );
    }
}
