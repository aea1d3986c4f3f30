//! Ethernet II frames, 802.1Q/802.1ad VLAN tags and MAC addresses.

use core::fmt;
use core::net::Ipv6Addr;
use core::str::FromStr;

use super::{
    Error, Result, check_min_len, clamped, clamped_mut, fields, read_u16, view, write_u16,
};

/// An Ethernet (EUI-48) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: Self = Self([0xff; 6]);
    pub const ZERO: Self = Self([0; 6]);

    #[inline]
    pub const fn is_broadcast(&self) -> bool {
        matches!(self.0, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    }

    /// True for group addresses (broadcast included): the I/G bit is set.
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    #[inline]
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// The Ethernet address that IPv6 multicast `addr` maps to (RFC 2464):
    /// 33:33 followed by the address's last four bytes.
    #[inline]
    pub const fn ipv6_multicast(addr: &Ipv6Addr) -> Self {
        let o = addr.octets();
        Self([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = Error;

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-` between the bytes).
    fn from_str(s: &str) -> Result<Self> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let part = parts.next().ok_or(Error::Malformed)?;
            // from_str_radix alone would also take a sign such as "+f".
            if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::Malformed);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| Error::Malformed)?;
        }
        match parts.next() {
            None => Ok(Self(out)),
            Some(_) => Err(Error::Malformed),
        }
    }
}

/// The EtherType of an Ethernet frame or VLAN tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: Self = Self(0x0800);
    pub const ARP: Self = Self(0x0806);
    pub const IPV6: Self = Self(0x86DD);
    /// 802.1Q customer VLAN tag.
    pub const VLAN: Self = Self(0x8100);
    /// 802.1ad service VLAN tag (the outer tag of QinQ).
    pub const QINQ: Self = Self(0x88A8);

    /// True for the two tag types that a [`VlanTag`] follows.
    #[inline]
    pub const fn is_vlan(self) -> bool {
        self.0 == Self::VLAN.0 || self.0 == Self::QINQ.0
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IPV4 => f.write_str("IPv4"),
            Self::ARP => f.write_str("ARP"),
            Self::IPV6 => f.write_str("IPv6"),
            Self::VLAN => f.write_str("802.1Q"),
            Self::QINQ => f.write_str("802.1ad"),
            Self(other) => write!(f, "ethertype 0x{other:04x}"),
        }
    }
}

mod field {
    use crate::wire::Field;

    pub(super) const DESTINATION: Field = 0..6;
    pub(super) const SOURCE: Field = 6..12;
    pub(super) const ETHERTYPE: Field = 12..14;
    pub(super) const PAYLOAD: usize = 14;

    pub(super) const TCI: Field = 0..2;
    pub(super) const INNER_ETHERTYPE: Field = 2..4;
    pub(super) const TAG_PAYLOAD: usize = 4;
}

view! {
    /// An Ethernet II frame: destination, source, EtherType, payload (no FCS).
    ///
    /// Once `check_len` has passed, no accessor or setter panics.
    EthernetFrame
}

fields! {
    EthernetFrame {
        dst_addr, set_dst_addr: MacAddr = field::DESTINATION;
        src_addr, set_src_addr: MacAddr = field::SOURCE;
        ethertype, set_ethertype: EtherType = field::ETHERTYPE;
    }
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Checks that the buffer holds the 14-byte header.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        check_min_len(self.buffer.as_ref(), Self::HEADER_LEN)
    }

    /// Everything after the header, Ethernet padding included.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), field::PAYLOAD, usize::MAX)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        clamped_mut(self.buffer.as_mut(), field::PAYLOAD, usize::MAX)
    }
}

impl<T: AsRef<[u8]>> fmt::Display for EthernetFrame<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.check_len() {
            Ok(()) => {
                let len = self.payload().len();
                let (src, dst, ethertype) = (self.src_addr(), self.dst_addr(), self.ethertype());
                write!(f, "{src} > {dst}, {ethertype}, len {len}")
            }
            Err(err) => write!(f, "[ethernet: {err}]"),
        }
    }
}

view! {
    /// The four bytes that follow an 802.1Q or 802.1ad EtherType: priority,
    /// drop eligibility, VLAN id, and the inner EtherType.
    ///
    /// Once `check_len` has passed, no accessor or setter panics.
    VlanTag
}

fields! {
    VlanTag {
        /// The EtherType of what follows the tag.
        ethertype, set_ethertype: EtherType = field::INNER_ETHERTYPE;
    }
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    pub const HEADER_LEN: usize = field::TAG_PAYLOAD;

    #[inline]
    pub fn check_len(&self) -> Result<()> {
        check_min_len(self.buffer.as_ref(), Self::HEADER_LEN)
    }

    /// Priority code point (802.1p), 0..=7.
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN identifier, 0..=4095.
    #[inline]
    pub fn vlan_id(&self) -> u16 {
        self.tci() & 0x0FFF
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), field::TAG_PAYLOAD, usize::MAX)
    }

    #[inline]
    fn tci(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::TCI)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Sets the priority; only the low three bits of `pcp` are used.
    #[inline]
    pub fn set_pcp(&mut self, pcp: u8) {
        self.set_tci(0x1FFF, u16::from(pcp & 0x07) << 13);
    }

    #[inline]
    pub fn set_dei(&mut self, dei: bool) {
        self.set_tci(!0x1000, u16::from(dei) << 12);
    }

    /// Sets the VLAN id; only the low twelve bits of `vlan_id` are used.
    #[inline]
    pub fn set_vlan_id(&mut self, vlan_id: u16) {
        self.set_tci(0xF000, vlan_id & 0x0FFF);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        clamped_mut(self.buffer.as_mut(), field::TAG_PAYLOAD, usize::MAX)
    }

    /// Keeps the TCI bits in `keep` and ors in `bits`.
    #[inline]
    fn set_tci(&mut self, keep: u16, bits: u16) {
        let tci = (self.tci() & keep) | bits;
        write_u16(self.buffer.as_mut(), field::TCI, tci);
    }
}

impl<T: AsRef<[u8]>> fmt::Display for VlanTag<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.check_len() {
            Ok(()) => {
                let (id, pcp, ethertype) = (self.vlan_id(), self.pcp(), self.ethertype());
                write!(f, "vlan {id}, p {pcp}")?;
                if self.dei() {
                    f.write_str(", DEI")?;
                }
                write!(f, ", {ethertype}")
            }
            Err(err) => write!(f, "[vlan: {err}]"),
        }
    }
}

/// The header of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    pub src_addr: MacAddr,
    pub dst_addr: MacAddr,
    pub ethertype: EtherType,
}

impl EthernetRepr {
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<Self> {
        frame.check_len()?;
        Ok(Self {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// The header length; the payload comes on top.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        field::PAYLOAD
    }

    /// Writes the header. The frame must hold at least
    /// [`Self::buffer_len`] bytes, or this panics.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_src_addr(self.src_addr);
        frame.set_dst_addr(self.dst_addr);
        frame.set_ethertype(self.ethertype);
    }
}

impl fmt::Display for EthernetRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} > {}, {}",
            self.src_addr, self.dst_addr, self.ethertype
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header of a captured frame carrying 802.1Q VLAN 100, priority 5,
    /// then IPv4.
    const TAGGED: [u8; 20] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x81, 0x00, // 802.1Q
        0xa0, 0x64, // pcp 5, dei 0, vid 100
        0x08, 0x00, // IPv4
        0x45, 0x00, // start of the IPv4 header
    ];

    #[test]
    fn parse_tagged_frame() {
        let frame = EthernetFrame::new_checked(&TAGGED[..]).unwrap();
        assert_eq!(frame.dst_addr(), MacAddr([2, 0, 0, 0, 0, 2]));
        assert_eq!(frame.src_addr(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(frame.ethertype(), EtherType::VLAN);
        assert!(frame.ethertype().is_vlan());
        assert_eq!(frame.payload().len(), 6);
        let tag = VlanTag::new_checked(frame.payload()).unwrap();
        assert_eq!((tag.pcp(), tag.dei(), tag.vlan_id()), (5, false, 100));
        assert_eq!(tag.ethertype(), EtherType::IPV4);
        assert_eq!(tag.payload(), &[0x45, 0x00]);
        assert_eq!(tag.to_string(), "vlan 100, p 5, IPv4");
        assert_eq!(
            frame.to_string(),
            "02:00:00:00:00:01 > 02:00:00:00:00:02, 802.1Q, len 6"
        );
    }

    #[test]
    fn set_tag_fields_independently() {
        let mut bytes = [0u8; 4];
        let mut tag = VlanTag::new_checked(&mut bytes[..]).unwrap();
        tag.set_vlan_id(0xFFFF);
        tag.set_pcp(0xFF);
        tag.set_dei(true);
        assert_eq!((tag.pcp(), tag.dei(), tag.vlan_id()), (7, true, 0x0FFF));
        tag.set_vlan_id(42);
        tag.set_dei(false);
        assert_eq!((tag.pcp(), tag.dei(), tag.vlan_id()), (7, false, 42));
        tag.set_pcp(0);
        tag.set_ethertype(EtherType::IPV6);
        assert_eq!(bytes, [0x00, 0x2a, 0x86, 0xdd]);
    }

    #[test]
    fn repr_round_trip() {
        let repr = EthernetRepr {
            src_addr: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_addr: MacAddr([2, 0, 0, 0, 0, 2]),
            ethertype: EtherType::VLAN,
        };
        let mut bytes = [0u8; 14];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, TAGGED[..14]);
        let parsed = EthernetRepr::parse(&EthernetFrame::new_checked(&bytes[..]).unwrap());
        assert_eq!(parsed, Ok(repr));
        assert_eq!(
            repr.to_string(),
            "02:00:00:00:00:01 > 02:00:00:00:00:02, 802.1Q"
        );
    }

    #[test]
    fn short_buffers() {
        assert_eq!(
            EthernetFrame::new_checked(&TAGGED[..13]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            VlanTag::new_checked(&TAGGED[..3]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            EthernetFrame::new_unchecked(&TAGGED[..3]).to_string(),
            "[ethernet: truncated]"
        );
    }

    #[test]
    fn mac_addresses() {
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(!MacAddr::ZERO.is_multicast());
        assert!(MacAddr([2, 0, 0, 0, 0, 1]).is_unicast());
        assert!(MacAddr([0x01, 0, 0x5e, 0, 0, 1]).is_multicast());
        let addr: MacAddr = "02:00:5E:10:00:0a".parse().unwrap();
        assert_eq!(addr, MacAddr([2, 0, 0x5e, 0x10, 0, 0x0a]));
        assert_eq!(addr.to_string(), "02:00:5e:10:00:0a");
        assert_eq!("02-00-5e-10-00-0a".parse(), Ok(addr));
        for bad in [
            "",
            "02:00:5e:10:00",
            "02:00:5e:10:00:0a:0b",
            "02:00:5e:10:00:0g",
            "002:0:5e:10:00:0a",
            "02::5e:10:00:0a",
            "+2:00:5e:10:00:0a",
        ] {
            assert_eq!(bad.parse::<MacAddr>(), Err(Error::Malformed), "{bad}");
        }
        let group: Ipv6Addr = "ff02::1:ff00:1234".parse().unwrap();
        assert_eq!(
            MacAddr::ipv6_multicast(&group),
            MacAddr([0x33, 0x33, 0xff, 0, 0x12, 0x34])
        );
    }

    #[test]
    fn ethertype_names() {
        assert_eq!(EtherType::ARP.to_string(), "ARP");
        assert_eq!(EtherType::QINQ.to_string(), "802.1ad");
        assert_eq!(EtherType(0x88cc).to_string(), "ethertype 0x88cc");
    }
}
