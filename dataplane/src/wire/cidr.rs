//! IPv4 and IPv6 prefixes (`198.18.0.0/15`, `fd00::/8`), one definition
//! for both families.

use core::borrow::Borrow;
use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};
use core::str::FromStr;

use super::{Error, Result};

macro_rules! cidr {
    ($(#[$attr:meta])* $name:ident, $addr:ty, $bits:ty) => {
        $(#[$attr])*
        ///
        /// The fields are public for pattern matching; `new` and `FromStr`
        /// refuse a prefix length longer than the address, and the methods
        /// treat one as the full length. Host bits may be set, as in an
        /// interface address.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name {
            pub address: $addr,
            pub prefix_len: u8,
        }

        impl $name {
            /// The address length in bits, the longest prefix.
            pub const MAX_PREFIX_LEN: u8 = <$bits>::BITS as u8;

            /// `Malformed` if `prefix_len` is longer than the address.
            #[inline]
            pub const fn new(address: $addr, prefix_len: u8) -> Result<Self> {
                if prefix_len > Self::MAX_PREFIX_LEN {
                    return Err(Error::Malformed);
                }
                Ok(Self { address, prefix_len })
            }

            #[inline]
            pub const fn address(&self) -> $addr {
                self.address
            }

            #[inline]
            pub const fn prefix_len(&self) -> u8 {
                self.prefix_len
            }

            #[inline]
            pub const fn netmask(&self) -> $addr {
                <$addr>::from_bits(self.mask())
            }

            /// The address with its host bits cleared.
            #[inline]
            pub const fn network(&self) -> $addr {
                <$addr>::from_bits(self.address.to_bits() & self.mask())
            }

            /// Takes the address by value or by reference.
            #[inline]
            pub fn contains(&self, addr: impl Borrow<$addr>) -> bool {
                (addr.borrow().to_bits() ^ self.address.to_bits()) & self.mask() == 0
            }

            #[inline]
            const fn mask(&self) -> $bits {
                let len = if self.prefix_len > Self::MAX_PREFIX_LEN {
                    Self::MAX_PREFIX_LEN
                } else {
                    self.prefix_len
                };
                // A shift by the full width (for /0) overflows; checked_shl
                // turns it into None.
                match <$bits>::MAX.checked_shl(<$bits>::BITS - len as u32) {
                    Some(mask) => mask,
                    None => 0,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}/{}", self.address, self.prefix_len)
            }
        }

        impl FromStr for $name {
            type Err = Error;

            /// Parses `address/prefix-length`.
            fn from_str(s: &str) -> Result<Self> {
                let (address, prefix_len) = s.split_once('/').ok_or(Error::Malformed)?;
                // u8's parser alone would also take a sign such as "+8".
                if prefix_len.is_empty() || !prefix_len.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::Malformed);
                }
                let prefix_len = prefix_len.parse().map_err(|_| Error::Malformed)?;
                Self::new(address.parse().map_err(|_| Error::Malformed)?, prefix_len)
            }
        }
    };
}

cidr! {
    /// An IPv4 address with a prefix length, such as `198.18.0.0/15`.
    Ipv4Cidr, Ipv4Addr, u32
}

cidr! {
    /// An IPv6 address with a prefix length, such as `fd00::/8`.
    Ipv6Cidr, Ipv6Addr, u128
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4() {
        let cidr: Ipv4Cidr = "198.18.0.1/15".parse().unwrap();
        assert_eq!(
            cidr,
            Ipv4Cidr::new(Ipv4Addr::new(198, 18, 0, 1), 15).unwrap()
        );
        assert_eq!(
            (cidr.address(), cidr.prefix_len()),
            (Ipv4Addr::new(198, 18, 0, 1), 15)
        );
        assert_eq!(cidr.netmask(), Ipv4Addr::new(255, 254, 0, 0));
        assert_eq!(cidr.network(), Ipv4Addr::new(198, 18, 0, 0));
        assert!(cidr.contains(Ipv4Addr::new(198, 19, 255, 255)));
        assert!(cidr.contains(Ipv4Addr::new(198, 18, 0, 0)));
        assert!(!cidr.contains(Ipv4Addr::new(198, 20, 0, 0)));
        assert_eq!(cidr.to_string(), "198.18.0.1/15");

        let all: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert_eq!(all.netmask(), Ipv4Addr::UNSPECIFIED);
        assert!(all.contains(Ipv4Addr::BROADCAST));
        let host: Ipv4Cidr = "198.18.0.1/32".parse().unwrap();
        assert_eq!(host.netmask(), Ipv4Addr::BROADCAST);
        assert!(!host.contains(Ipv4Addr::new(198, 18, 0, 2)));

        // Pattern-built with too long a prefix: treated as a host route.
        let odd = Ipv4Cidr {
            address: Ipv4Addr::new(198, 18, 0, 1),
            prefix_len: 99,
        };
        assert_eq!(odd.netmask(), Ipv4Addr::BROADCAST);
    }

    #[test]
    fn ipv6() {
        let cidr: Ipv6Cidr = "fd00::1/8".parse().unwrap();
        assert_eq!(cidr.network(), "fd00::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(cidr.netmask(), "ff00::".parse::<Ipv6Addr>().unwrap());
        assert!(cidr.contains("fdff::1".parse::<Ipv6Addr>().unwrap()));
        assert!(!cidr.contains("fe80::1".parse::<Ipv6Addr>().unwrap()));
        assert_eq!(cidr.to_string(), "fd00::1/8");
        assert_eq!(
            "::/0".parse::<Ipv6Cidr>().unwrap().netmask(),
            Ipv6Addr::UNSPECIFIED
        );
        assert_eq!(
            "::1/128".parse::<Ipv6Cidr>().unwrap().netmask().to_bits(),
            u128::MAX
        );
    }

    #[test]
    fn refused() {
        for bad in [
            "198.18.0.0",
            "198.18.0.0/33",
            "198.18.0.0/",
            "198.18.0.0/+8",
            "198.18.0/8",
            "fd00::/8",
        ] {
            assert_eq!(bad.parse::<Ipv4Cidr>(), Err(Error::Malformed), "{bad}");
        }
        for bad in ["fd00::", "fd00::/129", "fd00::/-1", "198.18.0.0/8"] {
            assert_eq!(bad.parse::<Ipv6Cidr>(), Err(Error::Malformed), "{bad}");
        }
        assert_eq!(
            Ipv4Cidr::new(Ipv4Addr::LOCALHOST, 33),
            Err(Error::Malformed)
        );
        assert_eq!(
            Ipv6Cidr::new(Ipv6Addr::LOCALHOST, 129),
            Err(Error::Malformed)
        );
    }
}
