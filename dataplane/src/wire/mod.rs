//! Zero-copy views over packet bytes, in smoltcp's two levels.
//!
//! - A *view* such as [`Ipv4Packet<T>`] wraps any buffer `T: AsRef<[u8]>`
//!   (a `&[u8]`, a `&mut [u8]`, a `Vec<u8>`, a DPDK mbuf) and reads or writes
//!   header fields in place. Each view has a `check_len` method: once it has
//!   passed, no accessor or setter of that view panics, whatever the bytes
//!   say (header lengths included) and whatever setters were called since.
//!   Fixed fields lie inside the length `check_len` guarantees; variable
//!   ranges (options, payloads) are clamped to the buffer. Views never
//!   allocate, so they are what the per-packet path uses.
//! - A *Repr* such as [`Ipv4Repr`] is a small validated value that parses
//!   from a view and emits into one: it is how tests, the control plane and
//!   the ARP/ICMP responders build packets.
//!
//! Rewrites patch checksums incrementally (RFC 1624, see [`checksum`]) so
//! that NAT never reads the payload. [`PrettyFrame`] renders any bytes as
//! one tcpdump-like line and never fails; [`builder`] builds whole frames
//! for tests, fuzz seeds and benchmarks.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};
use core::ops::Range;

mod arp;
pub mod builder;
pub mod checksum;
mod cidr;
mod ethernet;
mod icmp;
mod icmpv4;
mod icmpv6;
mod ipv4;
mod ipv6;
mod pretty;
mod tcp;
mod udp;

#[cfg(test)]
pub(crate) mod golden;
#[cfg(test)]
mod tests;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use cidr::{Ipv4Cidr, Ipv6Cidr};
pub use ethernet::{EtherType, EthernetFrame, EthernetRepr, MacAddr, VlanTag};
pub use icmpv4::{ICMPV4_FRAG_NEEDED, Icmpv4Packet, Icmpv4Repr, Icmpv4Type};
pub use icmpv6::{Icmpv6Packet, Icmpv6Repr, Icmpv6Type, NdpOption, NdpOptions, NeighborFlags};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{
    Ipv6Fragment, Ipv6Packet, Ipv6Repr, MAX_EXT_HEADERS, UpperLayer, solicited_node_multicast,
};
pub use pretty::PrettyFrame;
pub use tcp::{TcpFlags, TcpPacket, TcpRepr};
pub use udp::{UdpPacket, UdpRepr};

/// Why bytes could not be read as a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer ends before the packet does.
    Truncated,
    /// A field holds a value the packet cannot have.
    Malformed,
    /// The checksum does not match the bytes.
    BadChecksum,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
            Error::BadChecksum => "bad checksum",
        })
    }
}

impl core::error::Error for Error {}

/// The result of reading a packet.
pub type Result<T> = core::result::Result<T, Error>;

/// An IP protocol number (IPv4 protocol, IPv6 next header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    pub const HOP_BY_HOP: Self = Self(0);
    pub const ICMP: Self = Self(1);
    pub const IPIP: Self = Self(4);
    pub const TCP: Self = Self(6);
    pub const UDP: Self = Self(17);
    pub const IPV6: Self = Self(41);
    pub const IPV6_ROUTING: Self = Self(43);
    pub const IPV6_FRAGMENT: Self = Self(44);
    pub const GRE: Self = Self(47);
    pub const ESP: Self = Self(50);
    pub const AH: Self = Self(51);
    pub const ICMPV6: Self = Self(58);
    pub const IPV6_NONE: Self = Self(59);
    pub const IPV6_DEST_OPTS: Self = Self(60);
    pub const VRRP: Self = Self(112);
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Self::HOP_BY_HOP => "hop-by-hop",
            Self::ICMP => "ICMP",
            Self::IPIP => "IPIP",
            Self::TCP => "TCP",
            Self::UDP => "UDP",
            Self::IPV6 => "IPv6",
            Self::IPV6_ROUTING => "routing",
            Self::IPV6_FRAGMENT => "fragment",
            Self::GRE => "GRE",
            Self::ESP => "ESP",
            Self::AH => "AH",
            Self::ICMPV6 => "ICMPv6",
            Self::IPV6_NONE => "no-next-header",
            Self::IPV6_DEST_OPTS => "dest-opts",
            Self::VRRP => "VRRP",
            Self(other) => return write!(f, "proto {other}"),
        };
        f.write_str(name)
    }
}

/// The source and destination ports that open every TCP and UDP header,
/// or `None` if fewer than four bytes are there. Meant for segments quoted
/// in ICMP errors, which are often too short for a full view.
#[inline]
pub fn transport_ports(segment: &[u8]) -> Option<(u16, u16)> {
    match *segment {
        [a, b, c, d, ..] => Some((u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]))),
        _ => None,
    }
}

/// The byte range of a header field; each view names its fields once in a
/// private `mod field`.
type Field = Range<usize>;

/// Declares a view struct with the constructors every view shares; the
/// caller supplies its doc comment and `check_len`.
macro_rules! view {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wraps `buffer` without looking at it: accessors may panic
            /// until [`Self::check_len`] has passed.
            #[inline]
            pub const fn new_unchecked(buffer: T) -> Self {
                Self { buffer }
            }

            /// Wraps `buffer` and runs [`Self::check_len`], after which no
            /// accessor or setter panics.
            #[inline]
            pub fn new_checked(buffer: T) -> $crate::wire::Result<Self> {
                let packet = Self::new_unchecked(buffer);
                packet.check_len()?;
                Ok(packet)
            }

            /// Gives the buffer back.
            #[inline]
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }

        impl<T: AsRef<[u8]>> AsRef<[u8]> for $name<T> {
            #[inline]
            fn as_ref(&self) -> &[u8] {
                self.buffer.as_ref()
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> AsMut<[u8]> for $name<T> {
            #[inline]
            fn as_mut(&mut self) -> &mut [u8] {
                self.buffer.as_mut()
            }
        }
    };
}
use view;

/// Declares a view's fixed fields, one line each, `getter, setter: Type =
/// field::NAME;`: the getter on `AsRef`, the setter on `AsMut`. Fields
/// with bits of their own (versions, lengths, flags) are written by hand.
macro_rules! fields {
    ($view:ident { $($(#[$doc:meta])* $get:ident, $set:ident: $ty:ty = $field:expr;)* }) => {
        impl<T: AsRef<[u8]>> $view<T> {
            $(
                $(#[$doc])*
                #[inline]
                pub fn $get(&self) -> $ty {
                    <$ty as $crate::wire::FieldValue>::read(self.buffer.as_ref(), $field)
                }
            )*
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $view<T> {
            $(
                #[doc = concat!("Sets [`Self::", stringify!($get), "`].")]
                #[inline]
                pub fn $set(&mut self, value: $ty) {
                    $crate::wire::FieldValue::write(value, self.buffer.as_mut(), $field);
                }
            )*
        }
    };
}
use fields;

/// A value stored big-endian in a fixed header field. Views pass fields
/// that `check_len` keeps in bounds, and whose length is the value's.
trait FieldValue: Sized {
    fn read(data: &[u8], field: Field) -> Self;
    fn write(self, data: &mut [u8], field: Field);
}

macro_rules! integer_field_value {
    ($($int:ty),*) => {$(
        impl FieldValue for $int {
            #[inline]
            fn read(data: &[u8], field: Field) -> Self {
                <$int>::from_be_bytes(read(data, field))
            }

            #[inline]
            fn write(self, data: &mut [u8], field: Field) {
                write(data, field, &self.to_be_bytes());
            }
        }
    )*};
}
integer_field_value!(u8, u16, u32);

macro_rules! newtype_field_value {
    ($($newtype:ident),*) => {$(
        impl FieldValue for $newtype {
            #[inline]
            fn read(data: &[u8], field: Field) -> Self {
                Self(FieldValue::read(data, field))
            }

            #[inline]
            fn write(self, data: &mut [u8], field: Field) {
                self.0.write(data, field);
            }
        }
    )*};
}
newtype_field_value!(
    IpProtocol,
    EtherType,
    ArpOperation,
    TcpFlags,
    Icmpv4Type,
    Icmpv6Type,
    MacAddr
);

impl FieldValue for Ipv4Addr {
    #[inline]
    fn read(data: &[u8], field: Field) -> Self {
        Self::from_bits(FieldValue::read(data, field))
    }

    #[inline]
    fn write(self, data: &mut [u8], field: Field) {
        self.to_bits().write(data, field);
    }
}

impl FieldValue for Ipv6Addr {
    #[inline]
    fn read(data: &[u8], field: Field) -> Self {
        Self::from(read::<16>(data, field))
    }

    #[inline]
    fn write(self, data: &mut [u8], field: Field) {
        write(data, field, &self.octets());
    }
}

impl FieldValue for [u8; 6] {
    #[inline]
    fn read(data: &[u8], field: Field) -> Self {
        read(data, field)
    }

    #[inline]
    fn write(self, data: &mut [u8], field: Field) {
        write(data, field, &self);
    }
}

/// Reads the `N` bytes of `field`.
#[inline]
fn read<const N: usize>(data: &[u8], field: Field) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&data[field]);
    out
}

#[inline]
fn write(data: &mut [u8], field: Field, bytes: &[u8]) {
    data[field].copy_from_slice(bytes);
}

#[inline]
fn read_u16(data: &[u8], field: Field) -> u16 {
    FieldValue::read(data, field)
}

#[inline]
fn write_u16(data: &mut [u8], field: Field, value: u16) {
    value.write(data, field);
}

/// Checks a length that a header field claims: `Malformed` if it is below
/// `min`, what the header itself needs; `Truncated` if it runs past `data`.
#[inline]
fn check_claimed_len(data: &[u8], min: usize, claimed: usize) -> Result<()> {
    if claimed < min {
        return Err(Error::Malformed);
    }
    check_min_len(data, claimed)
}

/// `Truncated` if `data` is shorter than `len`.
#[inline]
fn check_min_len(data: &[u8], len: usize) -> Result<()> {
    if data.len() < len {
        return Err(Error::Truncated);
    }
    Ok(())
}

/// `data[start..end]`, or what of it lies inside `data`: variable ranges
/// come from header fields, which setters may have changed since
/// `check_len`, so they are clamped rather than trusted.
#[inline]
fn clamped(data: &[u8], start: usize, end: usize) -> &[u8] {
    let end = end.min(data.len());
    data.get(start..end).unwrap_or(&[])
}

/// The mutable twin of [`clamped`].
#[inline]
fn clamped_mut(data: &mut [u8], start: usize, end: usize) -> &mut [u8] {
    let end = end.min(data.len());
    data.get_mut(start..end).unwrap_or(&mut [])
}
