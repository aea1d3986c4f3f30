//! ICMP for IPv4 (RFC 792): echo, and the errors a load balancer meets.

use core::fmt;

use super::checksum::{self, Zero};
use super::icmp::{self, HEADER_LEN, icmp_header};
use super::{Error, Result, fields, view};

/// An ICMP message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Icmpv4Type(pub u8);

impl Icmpv4Type {
    pub const ECHO_REPLY: Self = Self(0);
    pub const DEST_UNREACHABLE: Self = Self(3);
    pub const SOURCE_QUENCH: Self = Self(4);
    pub const REDIRECT: Self = Self(5);
    pub const ECHO_REQUEST: Self = Self(8);
    pub const TIME_EXCEEDED: Self = Self(11);
    pub const PARAMETER_PROBLEM: Self = Self(12);

    /// True for the types that quote the offending packet.
    #[inline]
    pub const fn is_error(self) -> bool {
        matches!(self.0, 3 | 4 | 5 | 11 | 12)
    }
}

impl fmt::Display for Icmpv4Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ECHO_REPLY => f.write_str("echo reply"),
            Self::DEST_UNREACHABLE => f.write_str("unreachable"),
            Self::SOURCE_QUENCH => f.write_str("source quench"),
            Self::REDIRECT => f.write_str("redirect"),
            Self::ECHO_REQUEST => f.write_str("echo request"),
            Self::TIME_EXCEEDED => f.write_str("time exceeded"),
            Self::PARAMETER_PROBLEM => f.write_str("parameter problem"),
            Self(other) => write!(f, "type {other}"),
        }
    }
}

/// The destination-unreachable code for "fragmentation needed and DF
/// set", which carries the next-hop MTU (RFC 1191).
pub const ICMPV4_FRAG_NEEDED: u8 = 4;

mod field {
    use crate::wire::Field;

    pub(super) const NEXT_HOP_MTU: Field = 6..8;
}

view! {
    /// An ICMP message: type, code, checksum, four type-specific bytes,
    /// data. The checksum covers the whole buffer, so the buffer must be
    /// exactly the message (the IPv4 payload).
    ///
    /// Once `check_len` has passed, no accessor or setter panics.
    Icmpv4Packet
}

icmp_header!(Icmpv4Packet, Icmpv4Type);

fields! {
    Icmpv4Packet {
        /// The next-hop MTU of a "fragmentation needed" message.
        next_hop_mtu, set_next_hop_mtu: u16 = field::NEXT_HOP_MTU;
    }
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.buffer.as_ref(), 0)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    #[inline]
    pub fn fill_checksum(&mut self) {
        checksum::fill(
            self.buffer.as_mut(),
            icmp::field::CHECKSUM,
            Zero::Ordinary,
            0,
        );
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Icmpv4Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(err) = self.check_len() {
            return write!(f, "[icmp: {err}]");
        }
        match Icmpv4Repr::parse_unverified(self) {
            Ok(repr) => repr.fmt(f)?,
            Err(_) => write!(
                f,
                "ICMP {} code {} len {}",
                self.msg_type(),
                self.code(),
                self.data().len()
            )?,
        }
        if !self.verify_checksum() {
            f.write_str(" [bad icmp checksum]")?;
        }
        Ok(())
    }
}

/// An ICMP message of a type rvs sends or answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4Repr<'a> {
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
        /// Meaningful for [`ICMPV4_FRAG_NEEDED`], zero otherwise.
        next_hop_mtu: u16,
        /// The offending IPv4 header and at least 8 bytes of its payload.
        quoted: &'a [u8],
    },
    TimeExceeded {
        code: u8,
        quoted: &'a [u8],
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Describes a checked message whose checksum is right. Other types,
    /// and echo messages with a nonzero code, are `Malformed`.
    pub fn parse<T: AsRef<[u8]>>(packet: &'a Icmpv4Packet<T>) -> Result<Self> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        Self::parse_unverified(packet)
    }

    fn parse_unverified<T: AsRef<[u8]>>(packet: &'a Icmpv4Packet<T>) -> Result<Self> {
        packet.check_len()?;
        let (ident, seq_no, data) = (packet.echo_ident(), packet.echo_seq_no(), packet.data());
        Ok(match (packet.msg_type(), packet.code()) {
            (Icmpv4Type::ECHO_REQUEST, 0) => Self::EchoRequest {
                ident,
                seq_no,
                data,
            },
            (Icmpv4Type::ECHO_REPLY, 0) => Self::EchoReply {
                ident,
                seq_no,
                data,
            },
            (Icmpv4Type::DEST_UNREACHABLE, code) => Self::DestUnreachable {
                code,
                next_hop_mtu: packet.next_hop_mtu(),
                quoted: data,
            },
            (Icmpv4Type::TIME_EXCEEDED, code) => Self::TimeExceeded { code, quoted: data },
            _ => return Err(Error::Malformed),
        })
    }

    #[inline]
    pub const fn msg_type(&self) -> Icmpv4Type {
        match self {
            Self::EchoRequest { .. } => Icmpv4Type::ECHO_REQUEST,
            Self::EchoReply { .. } => Icmpv4Type::ECHO_REPLY,
            Self::DestUnreachable { .. } => Icmpv4Type::DEST_UNREACHABLE,
            Self::TimeExceeded { .. } => Icmpv4Type::TIME_EXCEEDED,
        }
    }

    /// The data after the 8-byte header.
    #[inline]
    pub const fn data(&self) -> &'a [u8] {
        match *self {
            Self::EchoRequest { data, .. } | Self::EchoReply { data, .. } => data,
            Self::DestUnreachable { quoted, .. } | Self::TimeExceeded { quoted, .. } => quoted,
        }
    }

    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data().len()
    }

    /// Writes the whole message, checksum included. The buffer must be
    /// exactly [`Self::buffer_len`] bytes long, as the checksum covers all
    /// of it; a shorter one panics.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Icmpv4Packet<T>) {
        let (code, first, second) = match *self {
            Self::EchoRequest { ident, seq_no, .. } | Self::EchoReply { ident, seq_no, .. } => {
                (0, ident, seq_no)
            }
            Self::DestUnreachable {
                code, next_hop_mtu, ..
            } => (code, 0, next_hop_mtu),
            Self::TimeExceeded { code, .. } => (code, 0, 0),
        };
        packet.set_msg_type(self.msg_type());
        packet.set_code(code);
        // The echo fields share their bytes with the unused and MTU fields.
        packet.set_echo_ident(first);
        packet.set_echo_seq_no(second);
        let data = self.data();
        packet.data_mut()[..data.len()].copy_from_slice(data);
        packet.fill_checksum();
    }
}

impl fmt::Display for Icmpv4Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ICMP {}", self.msg_type())?;
        match *self {
            Self::EchoRequest { ident, seq_no, .. } | Self::EchoReply { ident, seq_no, .. } => {
                write!(f, " id {ident} seq {seq_no}")?;
            }
            Self::DestUnreachable {
                code, next_hop_mtu, ..
            } => {
                write!(f, " code {code}")?;
                if code == ICMPV4_FRAG_NEEDED {
                    write!(f, " mtu {next_hop_mtu}")?;
                }
            }
            Self::TimeExceeded { code, .. } => write!(f, " code {code}")?,
        }
        write!(f, " len {}", self.data().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::golden::{FRAG_NEEDED, ICMP_ECHO};
    use proptest::prelude::*;

    fn echo() -> &'static [u8] {
        &ICMP_ECHO[34..]
    }

    #[test]
    fn parse_golden_echo() {
        let packet = Icmpv4Packet::new_checked(echo()).unwrap();
        assert_eq!(packet.msg_type(), Icmpv4Type::ECHO_REQUEST);
        assert_eq!(packet.code(), 0);
        assert_eq!((packet.echo_ident(), packet.echo_seq_no()), (0x1234, 1));
        assert_eq!(packet.data().len(), 48);
        assert!(!packet.is_error());
        assert!(packet.verify_checksum());
        let repr = Icmpv4Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Icmpv4Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: &echo()[8..]
            }
        );
        assert_eq!(packet.to_string(), "ICMP echo request id 4660 seq 1 len 48");

        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut bytes));
        assert_eq!(bytes, echo());
    }

    #[test]
    fn parse_golden_frag_needed() {
        let packet = Icmpv4Packet::new_checked(&FRAG_NEEDED[34..]).unwrap();
        assert_eq!(packet.msg_type(), Icmpv4Type::DEST_UNREACHABLE);
        assert_eq!(packet.code(), ICMPV4_FRAG_NEEDED);
        assert_eq!(packet.next_hop_mtu(), 1400);
        assert!(packet.is_error());
        let repr = Icmpv4Repr::parse(&packet).unwrap();
        let quoted = &FRAG_NEEDED[42..];
        assert_eq!(
            repr,
            Icmpv4Repr::DestUnreachable {
                code: 4,
                next_hop_mtu: 1400,
                quoted
            }
        );
        assert_eq!(repr.to_string(), "ICMP unreachable code 4 mtu 1400 len 28");
        let mut bytes = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut bytes));
        assert_eq!(bytes, &FRAG_NEEDED[34..]);
    }

    #[test]
    fn other_reprs_round_trip() {
        let quoted = &FRAG_NEEDED[42..];
        for repr in [
            Icmpv4Repr::EchoReply {
                ident: 1,
                seq_no: 2,
                data: b"abc",
            },
            Icmpv4Repr::TimeExceeded { code: 0, quoted },
            Icmpv4Repr::DestUnreachable {
                code: 3,
                next_hop_mtu: 0,
                quoted,
            },
        ] {
            let mut bytes = vec![0xa5; repr.buffer_len()];
            repr.emit(&mut Icmpv4Packet::new_unchecked(&mut bytes));
            let packet = Icmpv4Packet::new_checked(&bytes[..]).unwrap();
            assert_eq!(Icmpv4Repr::parse(&packet), Ok(repr));
        }
        assert_eq!(
            Icmpv4Repr::TimeExceeded { code: 1, quoted }.to_string(),
            "ICMP time exceeded code 1 len 28"
        );
    }

    #[test]
    fn refused() {
        assert_eq!(
            Icmpv4Packet::new_checked(&echo()[..7]).err(),
            Some(Error::Truncated)
        );
        let mut bytes = echo().to_vec();
        bytes[2] ^= 0xff;
        let packet = Icmpv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&packet), Err(Error::BadChecksum));
        assert!(packet.to_string().ends_with("[bad icmp checksum]"));

        let mut packet = Icmpv4Packet::new_checked(echo().to_vec()).unwrap();
        packet.set_code(1);
        packet.fill_checksum();
        assert_eq!(
            Icmpv4Repr::parse(&packet),
            Err(Error::Malformed),
            "echo with a code"
        );
        packet.set_msg_type(Icmpv4Type(13));
        packet.set_code(0);
        packet.fill_checksum();
        assert_eq!(
            Icmpv4Repr::parse(&packet),
            Err(Error::Malformed),
            "timestamp request"
        );
        assert_eq!(packet.to_string(), "ICMP type 13 code 0 len 48");
    }

    proptest! {
        #[test]
        fn echo_ident_rewrite_matches_recomputation(data: Vec<u8>, ident: u16, new_ident: u16) {
            let repr = Icmpv4Repr::EchoRequest { ident, seq_no: 7, data: &data };
            let mut bytes = vec![0; repr.buffer_len()];
            repr.emit(&mut Icmpv4Packet::new_unchecked(&mut bytes));
            let mut packet = Icmpv4Packet::new_checked(bytes).unwrap();
            prop_assert_eq!(packet.rewrite_echo_ident(new_ident), ident);
            let patched = packet.checksum();
            packet.fill_checksum();
            prop_assert_eq!(patched, packet.checksum());
        }
    }
}
