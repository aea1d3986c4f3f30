//! ICMPv6 (RFC 4443) and Neighbour Discovery (RFC 4861).

use core::fmt;
use core::net::Ipv6Addr;
use core::ops::BitOr;

use super::checksum::{self, Zero};
use super::icmp::{self, HEADER_LEN, icmp_header};
use super::{Error, MacAddr, Result, clamped, fields, view};

/// An ICMPv6 message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Icmpv6Type(pub u8);

impl Icmpv6Type {
    pub const DEST_UNREACHABLE: Self = Self(1);
    pub const PACKET_TOO_BIG: Self = Self(2);
    pub const TIME_EXCEEDED: Self = Self(3);
    pub const PARAMETER_PROBLEM: Self = Self(4);
    pub const ECHO_REQUEST: Self = Self(128);
    pub const ECHO_REPLY: Self = Self(129);
    pub const MLD_QUERY: Self = Self(130);
    pub const MLD_REPORT: Self = Self(131);
    pub const MLD_DONE: Self = Self(132);
    pub const ROUTER_SOLICIT: Self = Self(133);
    pub const ROUTER_ADVERT: Self = Self(134);
    pub const NEIGHBOR_SOLICIT: Self = Self(135);
    pub const NEIGHBOR_ADVERT: Self = Self(136);
    pub const REDIRECT: Self = Self(137);
    pub const MLDV2_REPORT: Self = Self(143);

    /// True for error messages (types below 128), which quote the
    /// offending packet.
    #[inline]
    pub const fn is_error(self) -> bool {
        self.0 < 128
    }

    /// Where the options of a Neighbour Discovery message start, or `None`
    /// for types that have none.
    #[inline]
    const fn ndp_options_offset(self) -> Option<usize> {
        match self {
            Self::ROUTER_SOLICIT => Some(8),
            Self::ROUTER_ADVERT => Some(16),
            Self::NEIGHBOR_SOLICIT | Self::NEIGHBOR_ADVERT => Some(field::TARGET.end),
            Self::REDIRECT => Some(40),
            _ => None,
        }
    }
}

impl fmt::Display for Icmpv6Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::DEST_UNREACHABLE => f.write_str("unreachable"),
            Self::PACKET_TOO_BIG => f.write_str("packet too big"),
            Self::TIME_EXCEEDED => f.write_str("time exceeded"),
            Self::PARAMETER_PROBLEM => f.write_str("parameter problem"),
            Self::ECHO_REQUEST => f.write_str("echo request"),
            Self::ECHO_REPLY => f.write_str("echo reply"),
            Self::MLD_QUERY => f.write_str("multicast listener query"),
            Self::MLD_REPORT => f.write_str("multicast listener report"),
            Self::MLD_DONE => f.write_str("multicast listener done"),
            Self::ROUTER_SOLICIT => f.write_str("router solicitation"),
            Self::ROUTER_ADVERT => f.write_str("router advertisement"),
            Self::NEIGHBOR_SOLICIT => f.write_str("neighbor solicitation"),
            Self::NEIGHBOR_ADVERT => f.write_str("neighbor advertisement"),
            Self::REDIRECT => f.write_str("redirect"),
            Self::MLDV2_REPORT => f.write_str("multicast listener report v2"),
            Self(other) => write!(f, "type {other}"),
        }
    }
}

/// The flags of a neighbor advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NeighborFlags(pub u8);

impl NeighborFlags {
    /// The sender is a router.
    pub const ROUTER: Self = Self(0x80);
    /// The advertisement answers a solicitation.
    pub const SOLICITED: Self = Self(0x40);
    /// The advertisement should override a cached link-layer address.
    pub const OVERRIDE: Self = Self(0x20);

    #[inline]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for NeighborFlags {
    type Output = Self;
    #[inline]
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Display for NeighborFlags {
    /// tcpdump's letters: `[RSO]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (flag, letter) in [
            (Self::ROUTER, "R"),
            (Self::SOLICITED, "S"),
            (Self::OVERRIDE, "O"),
        ] {
            if self.contains(flag) {
                f.write_str(letter)?;
            }
        }
        f.write_str("]")
    }
}

mod field {
    use crate::wire::Field;

    pub(super) const NA_FLAGS: usize = 4;
    pub(super) const TARGET: Field = 8..24;
}
/// An NS or NA without options.
const NEIGHBOR_LEN: usize = field::TARGET.end;
/// A link-layer address option for Ethernet: type, length 1, six bytes.
const LINK_LAYER_OPTION_LEN: usize = 8;

view! {
    /// An ICMPv6 message: type, code, checksum, four type-specific bytes,
    /// data. The checksum covers the whole buffer and the pseudo-header,
    /// so the buffer must be exactly the message.
    ///
    /// Once `check_len` has passed, no accessor or setter panics; the
    /// Neighbour Discovery accessors report a message too short for them.
    Icmpv6Packet
}

icmp_header!(Icmpv6Packet, Icmpv6Type);

fields! {
    Icmpv6Packet {
        /// The MTU of a packet-too-big message.
        mtu, set_mtu: u32 = icmp::field::WORD;
    }
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// True if the checksum matches the message and `pseudo`, the sum from
    /// [`checksum::pseudo_header_v6`].
    #[inline]
    pub fn verify_checksum(&self, pseudo: u16) -> bool {
        checksum::verify(self.buffer.as_ref(), pseudo)
    }

    /// The target address of a neighbor solicitation or advertisement (or
    /// redirect); `Truncated` if the message is too short to hold one.
    #[inline]
    pub fn target_addr(&self) -> Result<Ipv6Addr> {
        let bytes = self
            .buffer
            .as_ref()
            .get(field::TARGET)
            .ok_or(Error::Truncated)?;
        let mut octets = [0; 16];
        octets.copy_from_slice(bytes);
        Ok(Ipv6Addr::from(octets))
    }

    /// The flags of a neighbor advertisement.
    #[inline]
    pub fn neighbor_flags(&self) -> NeighborFlags {
        NeighborFlags(self.buffer.as_ref()[field::NA_FLAGS] & 0xE0)
    }

    #[inline]
    pub fn router_flag(&self) -> bool {
        self.neighbor_flags().contains(NeighborFlags::ROUTER)
    }

    #[inline]
    pub fn solicited_flag(&self) -> bool {
        self.neighbor_flags().contains(NeighborFlags::SOLICITED)
    }

    #[inline]
    pub fn override_flag(&self) -> bool {
        self.neighbor_flags().contains(NeighborFlags::OVERRIDE)
    }

    /// The options of a Neighbour Discovery message (none for other
    /// types). The iterator ends after the last option, or after yielding
    /// an error for an option of length 0 (`Malformed`) or one running
    /// past the end (`Truncated`).
    #[inline]
    pub fn ndp_options(&self) -> NdpOptions<'_> {
        let rest = match self.msg_type().ndp_options_offset() {
            Some(offset) => clamped(self.buffer.as_ref(), offset, usize::MAX),
            None => &[],
        };
        NdpOptions { rest }
    }

    /// The address of the first source link-layer address option, if one
    /// comes before any malformed option.
    #[inline]
    pub fn source_link_layer_addr(&self) -> Option<MacAddr> {
        self.link_layer_addr(NdpOption::SOURCE_LINK_LAYER_ADDR)
    }

    /// The address of the first target link-layer address option, if one
    /// comes before any malformed option.
    #[inline]
    pub fn target_link_layer_addr(&self) -> Option<MacAddr> {
        self.link_layer_addr(NdpOption::TARGET_LINK_LAYER_ADDR)
    }

    fn link_layer_addr(&self, kind: u8) -> Option<MacAddr> {
        self.ndp_options()
            .map_while(Result::ok)
            .find(|option| option.kind == kind)
            .and_then(|option| option.mac_addr())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Sets the target address; `Truncated` (and nothing written) if the
    /// message is too short to hold one.
    #[inline]
    pub fn set_target_addr(&mut self, addr: Ipv6Addr) -> Result<()> {
        let bytes = self
            .buffer
            .as_mut()
            .get_mut(field::TARGET)
            .ok_or(Error::Truncated)?;
        bytes.copy_from_slice(&addr.octets());
        Ok(())
    }

    /// Sets the neighbor advertisement flags and clears the reserved bits
    /// that share their byte.
    #[inline]
    pub fn set_neighbor_flags(&mut self, flags: NeighborFlags) {
        self.buffer.as_mut()[field::NA_FLAGS] = flags.0 & 0xE0;
    }

    #[inline]
    pub fn set_router_flag(&mut self, value: bool) {
        self.set_neighbor_flag(NeighborFlags::ROUTER, value);
    }

    #[inline]
    pub fn set_solicited_flag(&mut self, value: bool) {
        self.set_neighbor_flag(NeighborFlags::SOLICITED, value);
    }

    #[inline]
    pub fn set_override_flag(&mut self, value: bool) {
        self.set_neighbor_flag(NeighborFlags::OVERRIDE, value);
    }

    /// Computes the checksum over the message and `pseudo` and stores it.
    #[inline]
    pub fn fill_checksum(&mut self, pseudo: u16) {
        checksum::fill(
            self.buffer.as_mut(),
            icmp::field::CHECKSUM,
            Zero::Ordinary,
            pseudo,
        );
    }

    /// Patches the checksum for a pseudo-header address that NAT changed
    /// from `old` to `new`.
    #[inline]
    pub fn update_checksum_for_address(&mut self, old: &Ipv6Addr, new: &Ipv6Addr) {
        checksum::rewrite_pseudo_address(
            self.buffer.as_mut(),
            icmp::field::CHECKSUM,
            Zero::Ordinary,
            &old.octets(),
            &new.octets(),
        );
    }

    #[inline]
    fn set_neighbor_flag(&mut self, flag: NeighborFlags, value: bool) {
        let byte = &mut self.buffer.as_mut()[field::NA_FLAGS];
        if value {
            *byte |= flag.0;
        } else {
            *byte &= !flag.0;
        }
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Icmpv6Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(err) = self.check_len() {
            return write!(f, "[icmpv6: {err}]");
        }
        let (msg_type, code, len) = (self.msg_type(), self.code(), self.data().len());
        match Icmpv6Repr::parse(self) {
            Ok(repr) => repr.fmt(f),
            // A Neighbour Discovery message that rvs would answer but cannot.
            Err(err)
                if matches!(
                    msg_type,
                    Icmpv6Type::NEIGHBOR_SOLICIT | Icmpv6Type::NEIGHBOR_ADVERT
                ) =>
            {
                write!(f, "ICMPv6 {msg_type} code {code} len {len} [{err}]")
            }
            Err(_) => write!(f, "ICMPv6 {msg_type} code {code} len {len}"),
        }
    }
}

/// One Neighbour Discovery option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NdpOption<'a> {
    pub kind: u8,
    /// The option's bytes after its type and length.
    pub data: &'a [u8],
}

impl NdpOption<'_> {
    pub const SOURCE_LINK_LAYER_ADDR: u8 = 1;
    pub const TARGET_LINK_LAYER_ADDR: u8 = 2;
    pub const PREFIX_INFORMATION: u8 = 3;
    pub const REDIRECTED_HEADER: u8 = 4;
    pub const MTU: u8 = 5;

    /// The Ethernet address carried by a link-layer address option, if
    /// the option is the Ethernet size (RFC 2464).
    #[inline]
    pub fn mac_addr(&self) -> Option<MacAddr> {
        match *self.data {
            [a, b, c, d, e, f] => Some(MacAddr([a, b, c, d, e, f])),
            _ => None,
        }
    }
}

/// The options of a Neighbour Discovery message; see
/// [`Icmpv6Packet::ndp_options`].
#[derive(Debug, Clone)]
pub struct NdpOptions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for NdpOptions<'a> {
    type Item = Result<NdpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let &[kind, len, ..] = self.rest else {
            return match core::mem::take(&mut self.rest) {
                [] => None,
                _ => Some(Err(Error::Truncated)),
            };
        };
        // Every error ends the list: a zero length would never advance.
        let len = usize::from(len) * 8;
        let result = match self.rest.get(2..len) {
            _ if len == 0 => Err(Error::Malformed),
            Some(data) => Ok(NdpOption { kind, data }),
            None => Err(Error::Truncated),
        };
        self.rest = match result {
            Ok(_) => self.rest.get(len..).unwrap_or(&[]),
            Err(_) => &[],
        };
        Some(result)
    }
}

/// An ICMPv6 message of a type rvs sends or answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv6Repr<'a> {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    DestUnreachable {
        code: u8,
        quoted: &'a [u8],
    },
    PacketTooBig {
        mtu: u32,
        quoted: &'a [u8],
    },
    TimeExceeded {
        code: u8,
        quoted: &'a [u8],
    },
    NeighborSolicit {
        target_addr: Ipv6Addr,
        source_link_layer_addr: Option<MacAddr>,
    },
    NeighborAdvert {
        flags: NeighborFlags,
        target_addr: Ipv6Addr,
        target_link_layer_addr: Option<MacAddr>,
    },
}

impl<'a> Icmpv6Repr<'a> {
    /// Describes a checked message. The checksum is not verified here, as
    /// that needs the pseudo-header: see [`Icmpv6Packet::verify_checksum`].
    /// Other types, a nonzero code on echo and Neighbour Discovery
    /// messages, a short or multicast target, and broken options are
    /// `Malformed` or `Truncated`. The hop limit of 255 that Neighbour
    /// Discovery requires is the IPv6 layer's to check.
    pub fn parse<T: AsRef<[u8]>>(packet: &'a Icmpv6Packet<T>) -> Result<Self> {
        packet.check_len()?;
        let (ident, seq_no, data) = (packet.echo_ident(), packet.echo_seq_no(), packet.data());
        Ok(match (packet.msg_type(), packet.code()) {
            (Icmpv6Type::ECHO_REQUEST, 0) => Self::EchoRequest {
                ident,
                seq_no,
                data,
            },
            (Icmpv6Type::ECHO_REPLY, 0) => Self::EchoReply {
                ident,
                seq_no,
                data,
            },
            (Icmpv6Type::DEST_UNREACHABLE, code) => Self::DestUnreachable { code, quoted: data },
            (Icmpv6Type::PACKET_TOO_BIG, 0) => Self::PacketTooBig {
                mtu: packet.mtu(),
                quoted: data,
            },
            (Icmpv6Type::TIME_EXCEEDED, code) => Self::TimeExceeded { code, quoted: data },
            (Icmpv6Type::NEIGHBOR_SOLICIT, 0) => Self::NeighborSolicit {
                target_addr: neighbor_target(packet)?,
                source_link_layer_addr: packet.source_link_layer_addr(),
            },
            (Icmpv6Type::NEIGHBOR_ADVERT, 0) => Self::NeighborAdvert {
                flags: packet.neighbor_flags(),
                target_addr: neighbor_target(packet)?,
                target_link_layer_addr: packet.target_link_layer_addr(),
            },
            _ => return Err(Error::Malformed),
        })
    }

    #[inline]
    pub const fn msg_type(&self) -> Icmpv6Type {
        match self {
            Self::EchoRequest { .. } => Icmpv6Type::ECHO_REQUEST,
            Self::EchoReply { .. } => Icmpv6Type::ECHO_REPLY,
            Self::DestUnreachable { .. } => Icmpv6Type::DEST_UNREACHABLE,
            Self::PacketTooBig { .. } => Icmpv6Type::PACKET_TOO_BIG,
            Self::TimeExceeded { .. } => Icmpv6Type::TIME_EXCEEDED,
            Self::NeighborSolicit { .. } => Icmpv6Type::NEIGHBOR_SOLICIT,
            Self::NeighborAdvert { .. } => Icmpv6Type::NEIGHBOR_ADVERT,
        }
    }

    #[inline]
    pub const fn buffer_len(&self) -> usize {
        match *self {
            Self::EchoRequest { data, .. } | Self::EchoReply { data, .. } => {
                HEADER_LEN + data.len()
            }
            Self::DestUnreachable { quoted, .. }
            | Self::PacketTooBig { quoted, .. }
            | Self::TimeExceeded { quoted, .. } => HEADER_LEN + quoted.len(),
            Self::NeighborSolicit {
                source_link_layer_addr: lladdr,
                ..
            }
            | Self::NeighborAdvert {
                target_link_layer_addr: lladdr,
                ..
            } => match lladdr {
                Some(_) => NEIGHBOR_LEN + LINK_LAYER_OPTION_LEN,
                None => NEIGHBOR_LEN,
            },
        }
    }

    /// Writes the whole message, checksum included; `pseudo` is the
    /// pseudo-header sum for [`Self::buffer_len`] bytes. The buffer must be
    /// exactly [`Self::buffer_len`] bytes long, as the checksum covers all
    /// of it; a shorter one panics.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Icmpv6Packet<T>, pseudo: u16) {
        packet.set_msg_type(self.msg_type());
        let target;
        let (code, word, data, lladdr): (u8, u32, &[u8], _) = match *self {
            Self::EchoRequest {
                ident,
                seq_no,
                data,
            }
            | Self::EchoReply {
                ident,
                seq_no,
                data,
            } => (0, (u32::from(ident) << 16) | u32::from(seq_no), data, None),
            Self::DestUnreachable { code, quoted } | Self::TimeExceeded { code, quoted } => {
                (code, 0, quoted, None)
            }
            Self::PacketTooBig { mtu, quoted } => (0, mtu, quoted, None),
            Self::NeighborSolicit {
                target_addr,
                source_link_layer_addr,
            } => {
                target = target_addr.octets();
                let option =
                    source_link_layer_addr.map(|mac| (NdpOption::SOURCE_LINK_LAYER_ADDR, mac));
                (0, 0, &target[..], option)
            }
            Self::NeighborAdvert {
                flags,
                target_addr,
                target_link_layer_addr,
            } => {
                target = target_addr.octets();
                let option =
                    target_link_layer_addr.map(|mac| (NdpOption::TARGET_LINK_LAYER_ADDR, mac));
                (0, u32::from(flags.0 & 0xE0) << 24, &target[..], option)
            }
        };
        packet.set_code(code);
        packet.set_mtu(word);
        let body = packet.data_mut();
        body[..data.len()].copy_from_slice(data);
        if let Some((kind, mac)) = lladdr {
            let option = &mut body[data.len()..][..LINK_LAYER_OPTION_LEN];
            option[..2].copy_from_slice(&[kind, 1]);
            option[2..].copy_from_slice(&mac.0);
        }
        packet.fill_checksum(pseudo);
    }
}

/// The target of an NS or NA, which must be there and must not be
/// multicast (RFC 4861, 7.1.1 and 7.1.2); the options must be well formed
/// too.
fn neighbor_target<T: AsRef<[u8]>>(packet: &Icmpv6Packet<T>) -> Result<Ipv6Addr> {
    let target = packet.target_addr()?;
    if target.is_multicast() {
        return Err(Error::Malformed);
    }
    for option in packet.ndp_options() {
        option?;
    }
    Ok(target)
}

impl fmt::Display for Icmpv6Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ICMPv6 {}", self.msg_type())?;
        match *self {
            Self::EchoRequest {
                ident,
                seq_no,
                data,
            }
            | Self::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                write!(f, " id {ident} seq {seq_no} len {}", data.len())
            }
            Self::DestUnreachable { code, quoted } | Self::TimeExceeded { code, quoted } => {
                write!(f, " code {code} len {}", quoted.len())
            }
            Self::PacketTooBig { mtu, quoted } => write!(f, " mtu {mtu} len {}", quoted.len()),
            Self::NeighborSolicit {
                target_addr,
                source_link_layer_addr,
            } => {
                write!(f, " who-has {target_addr}")?;
                match source_link_layer_addr {
                    Some(mac) => write!(f, " from {mac}"),
                    None => Ok(()),
                }
            }
            Self::NeighborAdvert {
                flags,
                target_addr,
                target_link_layer_addr,
            } => {
                write!(f, " {target_addr}")?;
                if let Some(mac) = target_link_layer_addr {
                    write!(f, " is-at {mac}")?;
                }
                write!(f, " {flags}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::IpProtocol;
    use crate::wire::checksum::pseudo_header_v6;
    use crate::wire::golden::NEIGHBOR_SOLICIT;
    use proptest::prelude::*;

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn ns() -> &'static [u8] {
        &NEIGHBOR_SOLICIT[54..]
    }

    fn ns_pseudo(len: usize) -> u16 {
        pseudo_header_v6(
            &addr("fd00::2"),
            &addr("ff02::1:ff00:10"),
            IpProtocol::ICMPV6,
            len as u32,
        )
    }

    /// A message of `msg_type` with an NS/NA body and `options`.
    fn neighbor_message(msg_type: Icmpv6Type, options: &[u8]) -> Vec<u8> {
        let mut bytes = vec![msg_type.0, 0, 0, 0, 0, 0, 0, 0];
        bytes.extend_from_slice(&addr("fd00::10").octets());
        bytes.extend_from_slice(options);
        bytes
    }

    #[test]
    fn parse_golden_solicitation() {
        let packet = Icmpv6Packet::new_checked(ns()).unwrap();
        assert_eq!(packet.msg_type(), Icmpv6Type::NEIGHBOR_SOLICIT);
        assert_eq!(packet.code(), 0);
        assert!(!packet.is_error());
        assert!(packet.verify_checksum(ns_pseudo(32)));
        assert_eq!(packet.target_addr(), Ok(addr("fd00::10")));
        assert_eq!(packet.source_link_layer_addr(), Some(MAC));
        assert_eq!(packet.target_link_layer_addr(), None);
        let options: Vec<_> = packet.ndp_options().collect();
        assert_eq!(
            options,
            [Ok(NdpOption {
                kind: NdpOption::SOURCE_LINK_LAYER_ADDR,
                data: &MAC.0
            })]
        );
        let repr = Icmpv6Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Icmpv6Repr::NeighborSolicit {
                target_addr: addr("fd00::10"),
                source_link_layer_addr: Some(MAC)
            }
        );
        assert_eq!(
            packet.to_string(),
            "ICMPv6 neighbor solicitation who-has fd00::10 from 02:00:00:00:00:01"
        );
        let mut bytes = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut Icmpv6Packet::new_unchecked(&mut bytes), ns_pseudo(32));
        assert_eq!(bytes, ns());
    }

    #[test]
    fn reprs_round_trip() {
        let quoted = &NEIGHBOR_SOLICIT[14..62];
        for repr in [
            Icmpv6Repr::EchoRequest {
                ident: 1,
                seq_no: 2,
                data: b"abc",
            },
            Icmpv6Repr::EchoReply {
                ident: 1,
                seq_no: 2,
                data: b"",
            },
            Icmpv6Repr::DestUnreachable { code: 4, quoted },
            Icmpv6Repr::PacketTooBig { mtu: 1280, quoted },
            Icmpv6Repr::TimeExceeded { code: 0, quoted },
            Icmpv6Repr::NeighborSolicit {
                target_addr: addr("fd00::1"),
                source_link_layer_addr: None,
            },
            Icmpv6Repr::NeighborAdvert {
                flags: NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
                target_addr: addr("fd00::1"),
                target_link_layer_addr: Some(MAC),
            },
            Icmpv6Repr::NeighborAdvert {
                flags: NeighborFlags::ROUTER,
                target_addr: addr("fd00::1"),
                target_link_layer_addr: None,
            },
        ] {
            let mut bytes = vec![0xa5; repr.buffer_len()];
            repr.emit(&mut Icmpv6Packet::new_unchecked(&mut bytes), 0x1234);
            let packet = Icmpv6Packet::new_checked(&bytes[..]).unwrap();
            assert!(packet.verify_checksum(0x1234), "{repr}");
            assert_eq!(Icmpv6Repr::parse(&packet), Ok(repr));
            assert_eq!(packet.is_error(), repr.msg_type().0 < 128);
        }
    }

    #[test]
    fn neighbor_advert_fields() {
        let repr = Icmpv6Repr::NeighborAdvert {
            flags: NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
            target_addr: addr("fd00::10"),
            target_link_layer_addr: Some(MAC),
        };
        assert_eq!(
            repr.to_string(),
            "ICMPv6 neighbor advertisement fd00::10 is-at 02:00:00:00:00:01 [SO]"
        );
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(&mut Icmpv6Packet::new_unchecked(&mut bytes), 0);
        assert_eq!(bytes[4..8], [0x60, 0, 0, 0]);
        let mut packet = Icmpv6Packet::new_checked(bytes).unwrap();
        assert!(!packet.router_flag() && packet.solicited_flag() && packet.override_flag());
        assert_eq!(packet.target_link_layer_addr(), Some(MAC));
        assert_eq!(packet.source_link_layer_addr(), None);
        packet.set_router_flag(true);
        packet.set_solicited_flag(false);
        packet.set_override_flag(false);
        assert_eq!(packet.neighbor_flags(), NeighborFlags::ROUTER);
        packet.set_neighbor_flags(NeighborFlags(0xff));
        assert_eq!(packet.as_ref()[4], 0xe0, "reserved bits stay clear");
        packet.set_target_addr(addr("fd00::99")).unwrap();
        assert_eq!(packet.target_addr(), Ok(addr("fd00::99")));
    }

    #[test]
    fn broken_options() {
        // A zero-length option ends the list with an error, whatever follows.
        let bytes = neighbor_message(
            Icmpv6Type::NEIGHBOR_SOLICIT,
            &[3, 0, 1, 1, 2, 0, 0, 0, 1, 1, 2, 0, 0, 0, 0, 1],
        );
        let packet = Icmpv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            packet.ndp_options().collect::<Vec<_>>(),
            [Err(Error::Malformed)]
        );
        assert_eq!(packet.source_link_layer_addr(), None);
        assert_eq!(Icmpv6Repr::parse(&packet), Err(Error::Malformed));
        assert_eq!(
            packet.to_string(),
            "ICMPv6 neighbor solicitation code 0 len 32 [malformed]"
        );

        let bytes = neighbor_message(Icmpv6Type::NEIGHBOR_SOLICIT, &[1, 2, 2, 0, 0, 0, 0, 1]);
        let packet = Icmpv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            packet.ndp_options().collect::<Vec<_>>(),
            [Err(Error::Truncated)]
        );
        assert_eq!(Icmpv6Repr::parse(&packet), Err(Error::Truncated));

        let bytes = neighbor_message(Icmpv6Type::NEIGHBOR_SOLICIT, &[1]);
        let packet = Icmpv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            packet.ndp_options().collect::<Vec<_>>(),
            [Err(Error::Truncated)]
        );

        // Options of other kinds and sizes are walked over.
        let mut options = vec![5, 1, 0, 0, 0, 0, 5, 0xdc];
        options.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 1]);
        let bytes = neighbor_message(Icmpv6Type::NEIGHBOR_SOLICIT, &options);
        let packet = Icmpv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.ndp_options().count(), 2);
        assert_eq!(packet.source_link_layer_addr(), Some(MAC));

        // A link-layer option of the wrong size gives no address.
        let bytes = neighbor_message(
            Icmpv6Type::NEIGHBOR_SOLICIT,
            &[1, 2, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        let packet = Icmpv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.source_link_layer_addr(), None);
    }

    #[test]
    fn refused() {
        assert_eq!(
            Icmpv6Packet::new_checked(&ns()[..7]).err(),
            Some(Error::Truncated)
        );
        let short = Icmpv6Packet::new_checked(&ns()[..20]).unwrap();
        assert_eq!(short.target_addr(), Err(Error::Truncated));
        assert_eq!(Icmpv6Repr::parse(&short), Err(Error::Truncated));
        let mut bytes = ns()[..20].to_vec();
        assert_eq!(
            Icmpv6Packet::new_unchecked(&mut bytes[..]).set_target_addr(addr("::1")),
            Err(Error::Truncated)
        );

        let mut multicast = neighbor_message(Icmpv6Type::NEIGHBOR_ADVERT, &[]);
        multicast[8] = 0xff;
        let packet = Icmpv6Packet::new_checked(&multicast[..]).unwrap();
        assert_eq!(
            Icmpv6Repr::parse(&packet),
            Err(Error::Malformed),
            "multicast target"
        );

        let mut coded = ns().to_vec();
        coded[1] = 1;
        let packet = Icmpv6Packet::new_checked(&coded[..]).unwrap();
        assert_eq!(Icmpv6Repr::parse(&packet), Err(Error::Malformed), "code 1");

        let router_solicit = [133, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 0, 0, 0, 0, 1];
        let packet = Icmpv6Packet::new_checked(&router_solicit[..]).unwrap();
        assert_eq!(
            Icmpv6Repr::parse(&packet),
            Err(Error::Malformed),
            "not answered by rvs"
        );
        assert_eq!(
            packet.source_link_layer_addr(),
            Some(MAC),
            "options still readable"
        );
        assert_eq!(
            packet.to_string(),
            "ICMPv6 router solicitation code 0 len 8"
        );
    }

    proptest! {
        #[test]
        fn rewrites_match_recomputation(data: Vec<u8>, ident: u16, new_ident: u16, old: [u8; 16], new: [u8; 16]) {
            let repr = Icmpv6Repr::EchoRequest { ident, seq_no: 1, data: &data };
            let (old, new) = (Ipv6Addr::from(old), Ipv6Addr::from(new));
            let len = repr.buffer_len() as u32;
            let pseudo = |dst: &Ipv6Addr| pseudo_header_v6(&Ipv6Addr::LOCALHOST, dst, IpProtocol::ICMPV6, len);
            let mut bytes = vec![0; repr.buffer_len()];
            repr.emit(&mut Icmpv6Packet::new_unchecked(&mut bytes), pseudo(&old));
            let mut packet = Icmpv6Packet::new_checked(bytes).unwrap();
            prop_assert_eq!(packet.rewrite_echo_ident(new_ident), ident);
            packet.update_checksum_for_address(&old, &new);
            let patched = packet.checksum();
            packet.fill_checksum(pseudo(&new));
            prop_assert_eq!(patched, packet.checksum());
        }

        #[test]
        fn option_walk_ends(bytes in proptest::collection::vec(any::<u8>(), 24..120)) {
            let mut bytes = bytes;
            bytes[0] = Icmpv6Type::NEIGHBOR_ADVERT.0;
            let packet = Icmpv6Packet::new_checked(&bytes[..]).unwrap();
            // Each item consumes at least 8 bytes or ends the list.
            prop_assert!(packet.ndp_options().count() <= bytes.len() / 8 + 1);
            let _ = Icmpv6Repr::parse(&packet);
            let _ = packet.to_string();
        }
    }
}
