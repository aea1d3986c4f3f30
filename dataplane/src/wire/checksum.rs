//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! All values are `u16` in host order. A *sum* is the ones-complement sum
//! of big-endian 16-bit words folded to 16 bits, not inverted; a checksum
//! field holds `!sum`. Because 2^16 ≡ 1 (mod 0xFFFF), words may be added
//! in wider integers and folded at the end; and because folding a nonzero
//! value never gives 0, a sum is 0 only for all-zero data. That is what
//! makes the incremental updates below agree bit for bit with a full
//! recomputation.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::{Field, IpProtocol, read_u16, write_u16};

/// The sum of `bytes`; an odd trailing byte is padded with zero.
#[inline]
pub fn data(bytes: &[u8]) -> u16 {
    // The sum does not depend on byte order except for a final swap (RFC
    // 1071, 2(B)), so words are read in native order and the result is
    // swapped once. Eight bytes a step, split into two 32-bit halves, so
    // that the additions carry into the spare high bits instead of
    // depending on each other's carry flag, which lets the loop vectorise;
    // a block of 2^28 steps cannot overflow the u64.
    const BLOCK: usize = 1 << 28;
    let (chunks, rest) = bytes.as_chunks::<8>();
    let mut total = 0u64;
    for block in chunks.chunks(BLOCK) {
        let mut acc = 0u64;
        for chunk in block {
            let word = u64::from_ne_bytes(*chunk);
            acc += (word >> 32) + (word & 0xFFFF_FFFF);
        }
        total += u64::from(fold(acc));
    }
    let (words, last) = rest.as_chunks::<2>();
    for word in words {
        total += u64::from(u16::from_ne_bytes(*word));
    }
    if let [byte] = *last {
        total += u64::from(u16::from_ne_bytes([byte, 0]));
    }
    u16::from_be(fold(total))
}

/// The ones-complement sum of several sums.
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&sum| u64::from(sum)).sum())
}

/// The sum of the IPv4 pseudo-header (RFC 793) for a TCP or UDP segment of
/// `length` bytes.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, length: u32) -> u16 {
    fold(
        u64::from(src.to_bits())
            + u64::from(dst.to_bits())
            + u64::from(protocol.0)
            + u64::from(length),
    )
}

/// The sum of the IPv6 pseudo-header (RFC 8200, section 8.1) for an
/// upper-layer packet of `length` bytes.
#[inline]
pub fn pseudo_header_v6(
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
    next_header: IpProtocol,
    length: u32,
) -> u16 {
    fold(
        u64::from(data(&src.octets()))
            + u64::from(data(&dst.octets()))
            + u64::from(next_header.0)
            + u64::from(length),
    )
}

/// The checksum field value after a 16-bit word of the covered data changed
/// from `old` to `new`: HC' = ~(~HC + ~m + m') (RFC 1624, eqn. 3).
#[inline]
pub fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    !fold(u64::from(!checksum) + u64::from(!old) + u64::from(new))
}

/// [`update_u16`] for an aligned 32-bit field such as an IPv4 address.
#[inline]
pub fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    !fold(u64::from(!checksum) + u64::from(!old) + u64::from(new))
}

/// [`update_u16`] for a run of words, such as an IPv6 address: `old` and
/// `new` must have the same even length. On a mismatch (a bug, caught by
/// the debug assertion) only their common even prefix is accounted for.
#[inline]
pub fn update_bytes(checksum: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len(), "update_bytes on unequal lengths");
    debug_assert_eq!(old.len() % 2, 0, "update_bytes on an odd length");
    let len = old.len().min(new.len()) & !1;
    let (old, new) = (&old[..len], &new[..len]);
    !fold(u64::from(!checksum) + u64::from(!data(old)) + u64::from(data(new)))
}

/// Folds a wide ones-complement accumulator to 16 bits. Four steps always
/// suffice for a u64, so there is no loop to predict.
#[inline]
const fn fold(sum: u64) -> u16 {
    let sum = (sum & 0xFFFF_FFFF) + (sum >> 32);
    let sum = (sum & 0xFFFF) + (sum >> 16);
    let sum = (sum & 0xFFFF) + (sum >> 16);
    let sum = (sum & 0xFFFF) + (sum >> 16);
    sum as u16
}

/// How a transport checksum field treats zero; TCP and UDP share their
/// incremental rewrites and differ only here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Zero {
    /// TCP, ICMP: zero is an ordinary checksum value.
    Ordinary,
    /// UDP: zero means "no checksum" and stays zero; a computed zero is
    /// sent as 0xFFFF (RFC 768).
    MeansNone,
}

impl Zero {
    /// Applies `update` to a stored checksum under this zero rule.
    #[inline]
    pub(super) fn patch(self, stored: u16, update: impl FnOnce(u16) -> u16) -> u16 {
        match self {
            Zero::Ordinary => update(stored),
            Zero::MeansNone if stored == 0 => 0,
            Zero::MeansNone => nonzero(update(stored)),
        }
    }

    /// The field value for a freshly computed `checksum`.
    #[inline]
    pub(super) fn fill(self, checksum: u16) -> u16 {
        match self {
            Zero::Ordinary => checksum,
            Zero::MeansNone => nonzero(checksum),
        }
    }
}

#[inline]
fn nonzero(checksum: u16) -> u16 {
    if checksum == 0 { 0xFFFF } else { checksum }
}

/// Computes the checksum of `covered` (which holds the `checksum` field)
/// plus a pseudo-header sum (0 if none) and stores it under `zero`'s rule.
#[inline]
pub(super) fn fill(covered: &mut [u8], checksum: Field, zero: Zero, pseudo: u16) {
    write_u16(covered, checksum.clone(), 0);
    let sum = !combine(&[pseudo, data(covered)]);
    write_u16(covered, checksum, zero.fill(sum));
}

/// True if `covered`, with its checksum field, plus a pseudo-header sum
/// adds up to the ones-complement zero.
#[inline]
pub(super) fn verify(covered: &[u8], pseudo: u16) -> bool {
    combine(&[pseudo, data(covered)]) == 0xFFFF
}

/// Writes `new` into the 16-bit `field` of a segment whose checksum covers
/// it and patches the checksum; returns the old value.
#[inline]
pub(super) fn rewrite_u16(
    segment: &mut [u8],
    field: Field,
    checksum: Field,
    zero: Zero,
    new: u16,
) -> u16 {
    let old = read_u16(segment, field.clone());
    write_u16(segment, field, new);
    let stored = read_u16(segment, checksum.clone());
    write_u16(
        segment,
        checksum,
        zero.patch(stored, |sum| update_u16(sum, old, new)),
    );
    old
}

/// Patches a segment's checksum for a pseudo-header address that changed
/// from `old` to `new` (4 or 16 bytes), as NAT does.
#[inline]
pub(super) fn rewrite_pseudo_address(
    segment: &mut [u8],
    checksum: Field,
    zero: Zero,
    old: &[u8],
    new: &[u8],
) {
    let stored = read_u16(segment, checksum.clone());
    write_u16(
        segment,
        checksum,
        zero.patch(stored, |sum| update_bytes(sum, old, new)),
    );
}

/// Replaces a 16-bit port field and accounts for a 32-bit pseudo-header
/// address changing from `old_address` to `new_address`, with a single
/// checksum patch: IPv4 NAT's whole transport rewrite.
#[inline]
pub(super) fn rewrite_port_and_address_v4(
    segment: &mut [u8],
    port_field: Field,
    checksum: Field,
    zero: Zero,
    port: u16,
    old_address: u32,
    new_address: u32,
) {
    let old_port = read_u16(segment, port_field.clone());
    write_u16(segment, port_field, port);
    let stored = read_u16(segment, checksum.clone());
    write_u16(
        segment,
        checksum,
        zero.patch(stored, |sum| {
            !fold(
                u64::from(!sum)
                    + u64::from(!old_port)
                    + u64::from(port)
                    + u64::from(!old_address)
                    + u64::from(new_address),
            )
        }),
    );
}

/// Declares the NAT rewrites of a TCP or UDP view, whose `mod field`
/// names `SRC_PORT`, `DST_PORT` and `CHECKSUM`, under the zero rule
/// `$zero` (UDP keeps a zero checksum zero).
macro_rules! transport_rewrites {
    ($view:ident, $zero:expr) => {
        impl<T: AsRef<[u8]> + AsMut<[u8]>> $view<T> {
            /// Replaces the source port and patches the checksum; returns
            /// the old port.
            #[inline]
            pub fn rewrite_src_port(&mut self, port: u16) -> u16 {
                let segment = self.buffer.as_mut();
                checksum::rewrite_u16(segment, field::SRC_PORT, field::CHECKSUM, $zero, port)
            }

            /// Replaces the destination port and patches the checksum;
            /// returns the old port.
            #[inline]
            pub fn rewrite_dst_port(&mut self, port: u16) -> u16 {
                let segment = self.buffer.as_mut();
                checksum::rewrite_u16(segment, field::DST_PORT, field::CHECKSUM, $zero, port)
            }

            /// Patches the checksum for a pseudo-header address that NAT
            /// changed from `old` to `new` (both 4 or both 16 bytes).
            #[inline]
            pub fn update_checksum_for_address(&mut self, old: &[u8], new: &[u8]) {
                let segment = self.buffer.as_mut();
                checksum::rewrite_pseudo_address(segment, field::CHECKSUM, $zero, old, new);
            }

            /// IPv4 destination NAT in one checksum patch: the destination
            /// port becomes `port` and the pseudo-header's destination
            /// address changed from `old` to `new`.
            #[inline]
            pub fn nat_destination_v4(
                &mut self,
                old: core::net::Ipv4Addr,
                new: core::net::Ipv4Addr,
                port: u16,
            ) {
                let segment = self.buffer.as_mut();
                checksum::rewrite_port_and_address_v4(
                    segment,
                    field::DST_PORT,
                    field::CHECKSUM,
                    $zero,
                    port,
                    old.to_bits(),
                    new.to_bits(),
                );
            }

            /// IPv4 source NAT in one checksum patch: the source port
            /// becomes `port` and the pseudo-header's source address changed
            /// from `old` to `new`.
            #[inline]
            pub fn nat_source_v4(
                &mut self,
                old: core::net::Ipv4Addr,
                new: core::net::Ipv4Addr,
                port: u16,
            ) {
                let segment = self.buffer.as_mut();
                checksum::rewrite_port_and_address_v4(
                    segment,
                    field::SRC_PORT,
                    field::CHECKSUM,
                    $zero,
                    port,
                    old.to_bits(),
                    new.to_bits(),
                );
            }
        }
    };
}
pub(super) use transport_rewrites;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 1071 word by word, as the reference for the fast version.
    fn reference(bytes: &[u8]) -> u16 {
        let mut sum = 0u32;
        for pair in bytes.chunks(2) {
            let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
            sum += u32::from(word);
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn rfc1071_example() {
        // The worked example of RFC 1071, section 3.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&bytes), 0xddf2);
    }

    #[test]
    fn edges() {
        assert_eq!(data(&[]), 0);
        assert_eq!(data(&[0xab]), 0xab00);
        assert_eq!(data(&[0xff; 64]), 0xffff);
        assert_eq!(combine(&[]), 0);
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
        assert_eq!(fold(u64::MAX), 0xffff);
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624, section 4: HC = 0xDD2F, m = 0x5555 -> m' = 0x3285.
        assert_eq!(update_u16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn pseudo_headers_match_their_bytes() {
        let (a, b) = (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 10));
        let bytes = [198, 18, 0, 2, 198, 18, 0, 10, 0, 6, 0, 0, 0x05, 0xdc];
        assert_eq!(pseudo_header_v4(a, b, IpProtocol::TCP, 1500), data(&bytes));

        let (a, b): (Ipv6Addr, Ipv6Addr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&a.octets());
        bytes.extend_from_slice(&b.octets());
        bytes.extend_from_slice(&70_000u32.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 17]);
        assert_eq!(
            pseudo_header_v6(&a, &b, IpProtocol::UDP, 70_000),
            data(&bytes)
        );
    }

    #[test]
    fn zero_rules() {
        assert_eq!(Zero::MeansNone.patch(0, |_| 0x1234), 0);
        assert_eq!(Zero::MeansNone.patch(1, |_| 0), 0xffff);
        assert_eq!(Zero::Ordinary.patch(1, |_| 0), 0);
        assert_eq!(Zero::MeansNone.fill(0), 0xffff);
        assert_eq!(Zero::Ordinary.fill(0), 0);
    }

    #[test]
    fn update_bytes_survives_mismatched_lengths_in_release() {
        if cfg!(debug_assertions) {
            return;
        }
        assert_eq!(update_bytes(0x1234, &[1, 2, 3], &[1, 2]), 0x1234);
    }

    proptest! {
        #[test]
        fn data_matches_reference(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(data(&bytes), reference(&bytes));
        }

        #[test]
        fn data_of_unaligned_slices(bytes in proptest::collection::vec(any::<u8>(), 1..64), skip in 0usize..8) {
            let skip = skip.min(bytes.len());
            prop_assert_eq!(data(&bytes[skip..]), reference(&bytes[skip..]));
        }

        /// Changing any word, pair of words or run of words and patching
        /// the checksum gives exactly the recomputed checksum. The first
        /// word is kept nonzero, as in every real header.
        #[test]
        fn updates_match_recomputation(
            mut bytes in proptest::collection::vec(any::<u8>(), 40..41),
            at in 0usize..12,
            new in proptest::collection::vec(any::<u8>(), 16..17),
        ) {
            bytes[0] |= 0x40;
            let checksum = !data(&bytes);
            let at = 2 + at * 2;

            let mut b16 = bytes.clone();
            let old16 = u16::from_be_bytes([b16[at], b16[at + 1]]);
            let new16 = u16::from_be_bytes([new[0], new[1]]);
            b16[at..at + 2].copy_from_slice(&new[..2]);
            prop_assert_eq!(update_u16(checksum, old16, new16), !data(&b16));

            let mut b32 = bytes.clone();
            let old32 = u32::from_be_bytes([b32[at], b32[at + 1], b32[at + 2], b32[at + 3]]);
            let new32 = u32::from_be_bytes([new[0], new[1], new[2], new[3]]);
            b32[at..at + 4].copy_from_slice(&new[..4]);
            prop_assert_eq!(update_u32(checksum, old32, new32), !data(&b32));

            let mut b128 = bytes.clone();
            b128[at..at + 16].copy_from_slice(&new);
            prop_assert_eq!(update_bytes(checksum, &bytes[at..at + 16], &new), !data(&b128));
        }
    }
}
