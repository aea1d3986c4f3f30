//! IPv4 and IPv6 behind one trait, so that connection tables, neighbour
//! tables, routes and the director's flow logic are written once.

use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::conn::Address;
use crate::wire::{Ipv4Cidr, Ipv6Cidr};

/// An address family.
pub trait Family: Address + Ord + Hash + Send + Sync + 'static {
    /// The family's prefix type (`Ipv4Cidr`, `Ipv6Cidr`).
    type Cidr: Copy + fmt::Debug + PartialEq + Eq + Send + Sync;
    /// Address length in bits.
    const BITS: u32;

    /// The address as an integer, in the low bits of a u128.
    fn to_bits(self) -> u128;
    fn from_bits(bits: u128) -> Self;
    fn from_ip(address: IpAddr) -> Option<Self>;
    fn to_ip(self) -> IpAddr;
    /// A prefix's address and length.
    fn cidr(cidr: &Self::Cidr) -> (Self, u8);
    /// Multicast addresses never take part in load balancing.
    fn is_multicast(self) -> bool;
}

impl Family for Ipv4Addr {
    type Cidr = Ipv4Cidr;
    const BITS: u32 = 32;

    #[inline]
    fn to_bits(self) -> u128 {
        u128::from(Ipv4Addr::to_bits(self))
    }

    #[inline]
    fn from_bits(bits: u128) -> Self {
        Ipv4Addr::from_bits(bits as u32)
    }

    fn from_ip(address: IpAddr) -> Option<Self> {
        match address {
            IpAddr::V4(address) => Some(address),
            IpAddr::V6(_) => None,
        }
    }

    fn to_ip(self) -> IpAddr {
        IpAddr::V4(self)
    }

    fn cidr(cidr: &Ipv4Cidr) -> (Self, u8) {
        (cidr.address(), cidr.prefix_len())
    }

    fn is_multicast(self) -> bool {
        Ipv4Addr::is_multicast(&self) || self.is_broadcast()
    }
}

impl Family for Ipv6Addr {
    type Cidr = Ipv6Cidr;
    const BITS: u32 = 128;

    #[inline]
    fn to_bits(self) -> u128 {
        Ipv6Addr::to_bits(self)
    }

    #[inline]
    fn from_bits(bits: u128) -> Self {
        Ipv6Addr::from_bits(bits)
    }

    fn from_ip(address: IpAddr) -> Option<Self> {
        match address {
            IpAddr::V6(address) => Some(address),
            IpAddr::V4(_) => None,
        }
    }

    fn to_ip(self) -> IpAddr {
        IpAddr::V6(self)
    }

    fn cidr(cidr: &Ipv6Cidr) -> (Self, u8) {
        (cidr.address(), cidr.prefix_len())
    }

    fn is_multicast(self) -> bool {
        Ipv6Addr::is_multicast(&self)
    }
}

/// A prefix as (network, mask) bits, for fast containment tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mask {
    network: u128,
    mask: u128,
}

impl Mask {
    pub fn new<A: Family>(cidr: &A::Cidr) -> Mask {
        let (address, len) = A::cidr(cidr);
        let len = u32::from(len).min(A::BITS);
        let mask = if len == 0 {
            0
        } else {
            (u128::MAX << (A::BITS - len)) & (u128::MAX >> (128 - A::BITS))
        };
        Mask {
            network: address.to_bits() & mask,
            mask,
        }
    }

    #[inline]
    pub fn contains<A: Family>(&self, address: A) -> bool {
        address.to_bits() & self.mask == self.network
    }
}

/// Whether `cidr` holds `address`.
#[inline]
pub fn contains<A: Family>(cidr: &A::Cidr, address: A) -> bool {
    Mask::new::<A>(cidr).contains(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_contain_what_the_prefix_covers() {
        let v4: Ipv4Cidr = "198.18.1.1/24".parse().unwrap();
        assert!(contains(&v4, Ipv4Addr::new(198, 18, 1, 200)));
        assert!(!contains(&v4, Ipv4Addr::new(198, 18, 2, 1)));
        let all: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(contains(&all, Ipv4Addr::new(8, 8, 8, 8)));
        let v6: Ipv6Cidr = "fd00:1::1/64".parse().unwrap();
        assert!(contains(&v6, "fd00:1::abcd".parse::<Ipv6Addr>().unwrap()));
        assert!(!contains(&v6, "fd00:2::1".parse::<Ipv6Addr>().unwrap()));
        let host: Ipv6Cidr = "fd00::10/128".parse().unwrap();
        assert!(contains(&host, "fd00::10".parse::<Ipv6Addr>().unwrap()));
        assert!(!contains(&host, "fd00::11".parse::<Ipv6Addr>().unwrap()));
    }
}
