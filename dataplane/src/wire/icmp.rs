//! What ICMP and ICMPv6 share: the layout of the first eight bytes (RFC
//! 792, RFC 4443) and the accessors over them.

pub(super) mod field {
    use crate::wire::Field;

    pub(in crate::wire) const TYPE: Field = 0..1;
    pub(in crate::wire) const CODE: Field = 1..2;
    pub(in crate::wire) const CHECKSUM: Field = 2..4;
    pub(in crate::wire) const ECHO_IDENT: Field = 4..6;
    pub(in crate::wire) const ECHO_SEQ_NO: Field = 6..8;
    /// The four type-specific bytes: MTU, pointer, flags, or unused.
    pub(in crate::wire) const WORD: Field = 4..8;
    pub(in crate::wire) const DATA: usize = 8;
}

/// The length of the header both versions share.
pub(super) const HEADER_LEN: usize = field::DATA;

/// Declares the shared accessors of an ICMP view whose message types are
/// `$msg_type`.
macro_rules! icmp_header {
    ($view:ident, $msg_type:ty) => {
        $crate::wire::fields! {
            $view {
                msg_type, set_msg_type: $msg_type = $crate::wire::icmp::field::TYPE;
                code, set_code: u8 = $crate::wire::icmp::field::CODE;
                checksum, set_checksum: u16 = $crate::wire::icmp::field::CHECKSUM;
                echo_ident, set_echo_ident: u16 = $crate::wire::icmp::field::ECHO_IDENT;
                echo_seq_no, set_echo_seq_no: u16 = $crate::wire::icmp::field::ECHO_SEQ_NO;
            }
        }

        impl<T: AsRef<[u8]>> $view<T> {
            pub const HEADER_LEN: usize = $crate::wire::icmp::HEADER_LEN;

            /// Checks that the buffer holds the 8-byte header.
            #[inline]
            pub fn check_len(&self) -> $crate::wire::Result<()> {
                $crate::wire::check_min_len(self.buffer.as_ref(), Self::HEADER_LEN)
            }

            /// The bytes after the 8-byte header: echo data, the quoted
            /// packet of an error, or a message body.
            #[inline]
            pub fn data(&self) -> &[u8] {
                $crate::wire::clamped(self.buffer.as_ref(), Self::HEADER_LEN, usize::MAX)
            }

            /// True for error messages, which quote the offending packet.
            #[inline]
            pub fn is_error(&self) -> bool {
                self.msg_type().is_error()
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $view<T> {
            #[inline]
            pub fn data_mut(&mut self) -> &mut [u8] {
                $crate::wire::clamped_mut(self.buffer.as_mut(), Self::HEADER_LEN, usize::MAX)
            }

            /// Replaces the echo identifier and patches the checksum, as NAT
            /// does for pings; returns the old identifier.
            #[inline]
            pub fn rewrite_echo_ident(&mut self, ident: u16) -> u16 {
                $crate::wire::checksum::rewrite_u16(
                    self.buffer.as_mut(),
                    $crate::wire::icmp::field::ECHO_IDENT,
                    $crate::wire::icmp::field::CHECKSUM,
                    $crate::wire::checksum::Zero::Ordinary,
                    ident,
                )
            }
        }
    };
}
pub(super) use icmp_header;
