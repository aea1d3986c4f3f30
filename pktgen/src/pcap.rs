//! Writes a profile's frames to a classic pcap file (microsecond
//! timestamps, Ethernet link type), one frame per flow, for DPDK's
//! `net_pcap` driver to replay (`rx_pcap=FILE,infinite_rx=1`) in the
//! single-core harness.

use std::io::{self, Write};

use crate::flows::FlowCursor;
use crate::packet::Template;

const MAGIC: u32 = 0xa1b2_c3d4;
const LINKTYPE_ETHERNET: u32 = 1;
const SNAPLEN: u32 = 65535;

/// Writes the pcap header, then one frame from `template` per tuple of one
/// round of `cursor` (each flow once). Returns the number of frames.
pub fn write_round(
    out: &mut impl Write,
    template: &Template,
    cursor: &mut FlowCursor,
) -> io::Result<u64> {
    write_header(out)?;
    let mut frame = vec![0; template.len()];
    for _ in 0..cursor.limit() {
        template.write(&mut frame, cursor.next_tuple(), None);
        write_record(out, &frame)?;
    }
    Ok(cursor.limit())
}

fn write_header(out: &mut impl Write) -> io::Result<()> {
    let mut header = Vec::with_capacity(24);
    header.extend_from_slice(&MAGIC.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&0i32.to_le_bytes()); // GMT offset
    header.extend_from_slice(&0u32.to_le_bytes()); // timestamp accuracy
    header.extend_from_slice(&SNAPLEN.to_le_bytes());
    header.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    out.write_all(&header)
}

fn write_record(out: &mut impl Write, frame: &[u8]) -> io::Result<()> {
    let len = u32::try_from(frame.len()).map_err(|_| io::Error::other("frame too long"))?;
    let mut record = [0u8; 16];
    record[8..12].copy_from_slice(&len.to_le_bytes()); // captured
    record[12..16].copy_from_slice(&len.to_le_bytes()); // on the wire
    out.write_all(&record)?;
    out.write_all(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::ClientSpace;
    use crate::packet::{Endpoints, FrameKind};
    use dataplane::wire::MacAddr;
    use std::net::Ipv4Addr;

    #[test]
    fn records_follow_the_header() {
        let space = ClientSpace::new(Ipv4Addr::new(198, 19, 0, 0), 1, 1000, 10).unwrap();
        let endpoints = Endpoints {
            client_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            next_hop_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            vip: "198.18.0.10:80".parse().unwrap(),
        };
        let template = Template::new(FrameKind::Udp, &endpoints, 64, space.tuple(0));
        let mut out = Vec::new();
        let count = write_round(&mut out, &template, &mut space.cursor(3).unwrap()).unwrap();
        assert_eq!(count, 3);
        assert_eq!(out.len(), 24 + 3 * (16 + 60));
        assert_eq!(&out[..4], &MAGIC.to_le_bytes());
        // The second frame's source port (offset 34 in the frame).
        let second = 24 + (16 + 60) + 16;
        assert_eq!(&out[second + 34..second + 36], &1001u16.to_be_bytes());
    }
}
