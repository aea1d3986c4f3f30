//! ARP (RFC 826) for Ethernet and IPv4, the only pairing rvs speaks.

use core::fmt;
use core::net::Ipv4Addr;

use super::{Error, MacAddr, Result, check_min_len, fields, view};

/// An ARP operation code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpOperation(pub u16);

impl ArpOperation {
    pub const REQUEST: Self = Self(1);
    pub const REPLY: Self = Self(2);
}

impl fmt::Display for ArpOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::REQUEST => f.write_str("request"),
            Self::REPLY => f.write_str("reply"),
            Self(other) => write!(f, "operation {other}"),
        }
    }
}

mod field {
    use crate::wire::Field;

    pub(super) const HTYPE: Field = 0..2;
    pub(super) const PTYPE: Field = 2..4;
    pub(super) const HLEN: Field = 4..5;
    pub(super) const PLEN: Field = 5..6;
    pub(super) const OPER: Field = 6..8;
    pub(super) const SHA: Field = 8..14;
    pub(super) const SPA: Field = 14..18;
    pub(super) const THA: Field = 18..24;
    pub(super) const TPA: Field = 24..28;
}

const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;

view! {
    /// An ARP packet for Ethernet and IPv4.
    ///
    /// Once `check_len` has passed, no accessor or setter panics.
    ArpPacket
}

fields! {
    ArpPacket {
        hardware_type, set_hardware_type: u16 = field::HTYPE;
        protocol_type, set_protocol_type: u16 = field::PTYPE;
        hardware_len, set_hardware_len: u8 = field::HLEN;
        protocol_len, set_protocol_len: u8 = field::PLEN;
        operation, set_operation: ArpOperation = field::OPER;
        sender_hardware_addr, set_sender_hardware_addr: MacAddr = field::SHA;
        sender_protocol_addr, set_sender_protocol_addr: Ipv4Addr = field::SPA;
        target_hardware_addr, set_target_hardware_addr: MacAddr = field::THA;
        target_protocol_addr, set_target_protocol_addr: Ipv4Addr = field::TPA;
    }
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// The length of an Ethernet/IPv4 ARP packet.
    pub const LEN: usize = field::TPA.end;

    /// Checks that the buffer holds a whole packet (`Truncated`) whose
    /// hardware and protocol are Ethernet and IPv4 (`Malformed`).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        check_min_len(self.buffer.as_ref(), Self::LEN)?;
        if self.hardware_type() != HTYPE_ETHERNET
            || self.protocol_type() != PTYPE_IPV4
            || self.hardware_len() != 6
            || self.protocol_len() != 4
        {
            return Err(Error::Malformed);
        }
        Ok(())
    }
}

impl<T: AsRef<[u8]>> fmt::Display for ArpPacket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match ArpRepr::parse(self) {
            Ok(repr) => repr.fmt(f),
            Err(err) => write!(f, "[arp: {err}]"),
        }
    }
}

/// An Ethernet/IPv4 ARP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    pub operation: ArpOperation,
    pub source_hardware_addr: MacAddr,
    pub source_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: MacAddr,
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<Self> {
        packet.check_len()?;
        Ok(Self {
            operation: packet.operation(),
            source_hardware_addr: packet.sender_hardware_addr(),
            source_protocol_addr: packet.sender_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    #[inline]
    pub const fn buffer_len(&self) -> usize {
        field::TPA.end
    }

    /// Writes the whole packet, hardware and protocol types included. The
    /// buffer must hold at least [`Self::buffer_len`] bytes, or this panics.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(PTYPE_IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_sender_hardware_addr(self.source_hardware_addr);
        packet.set_sender_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

impl fmt::Display for ArpRepr {
    /// tcpdump's wording: `who-has` for requests, `is-at` for replies.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (tpa, spa, sha) = (
            self.target_protocol_addr,
            self.source_protocol_addr,
            self.source_hardware_addr,
        );
        match self.operation {
            ArpOperation::REQUEST => write!(f, "ARP request who-has {tpa} tell {spa} ({sha})"),
            ArpOperation::REPLY => write!(f, "ARP reply {spa} is-at {sha} to {tpa}"),
            other => write!(f, "ARP {other} {spa} ({sha}) > {tpa}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ARP request as Linux sends it: who has 198.18.0.10? Tell
    /// 198.18.0.2.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // Ethernet/IPv4, request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // sender MAC
        0xc6, 0x12, 0x00, 0x02, // sender IP
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // target MAC
        0xc6, 0x12, 0x00, 0x0a, // target IP
    ];

    fn request_repr() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::REQUEST,
            source_hardware_addr: MacAddr([2, 0, 0, 0, 0, 1]),
            source_protocol_addr: Ipv4Addr::new(198, 18, 0, 2),
            target_hardware_addr: MacAddr::ZERO,
            target_protocol_addr: Ipv4Addr::new(198, 18, 0, 10),
        }
    }

    #[test]
    fn parse_request() {
        let packet = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(packet.hardware_type(), 1);
        assert_eq!(packet.protocol_type(), 0x0800);
        assert_eq!((packet.hardware_len(), packet.protocol_len()), (6, 4));
        assert_eq!(packet.operation(), ArpOperation::REQUEST);
        assert_eq!(packet.sender_hardware_addr(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(packet.sender_protocol_addr(), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(packet.target_hardware_addr(), MacAddr::ZERO);
        assert_eq!(packet.target_protocol_addr(), Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(ArpRepr::parse(&packet), Ok(request_repr()));
        assert_eq!(
            packet.to_string(),
            "ARP request who-has 198.18.0.10 tell 198.18.0.2 (02:00:00:00:00:01)"
        );
    }

    #[test]
    fn emit_request() {
        let repr = request_repr();
        let mut bytes = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut ArpPacket::new_unchecked(&mut bytes));
        assert_eq!(bytes, REQUEST);
    }

    #[test]
    fn reply_in_place() {
        let mut packet = ArpPacket::new_checked(REQUEST.to_vec()).unwrap();
        packet.set_operation(ArpOperation::REPLY);
        packet.set_target_hardware_addr(packet.sender_hardware_addr());
        packet.set_target_protocol_addr(packet.sender_protocol_addr());
        packet.set_sender_hardware_addr(MacAddr([2, 0, 0, 0, 0, 0x10]));
        packet.set_sender_protocol_addr(Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(
            packet.to_string(),
            "ARP reply 198.18.0.10 is-at 02:00:00:00:00:10 to 198.18.0.2"
        );
    }

    #[test]
    fn malformed() {
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]).err(),
            Some(Error::Truncated)
        );
        for (at, value) in [(1, 6), (2, 0x86), (4, 8), (5, 16)] {
            let mut bytes = REQUEST;
            bytes[at] = value;
            assert_eq!(
                ArpPacket::new_checked(&bytes[..]).err(),
                Some(Error::Malformed),
                "byte {at}"
            );
        }
        let mut bytes = REQUEST;
        bytes[1] = 6; // IEEE 802 hardware
        assert_eq!(
            ArpPacket::new_unchecked(&bytes[..]).to_string(),
            "[arp: malformed]"
        );
    }
}
