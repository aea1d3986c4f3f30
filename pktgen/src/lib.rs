//! rvs's load generator and benchmark harness.
//!
//! `rvs-pktgen` drives two DPDK ports from one thread: the *client side*
//! sends a traffic profile towards a VIP, the *server side* (where the
//! real servers would be) counts what the director forwarded and, as a
//! responder, answers like a minimal server, so that NAT replies travel
//! back through the director. Everything per packet is stateless: frames
//! are patched copies of a template ([`packet`]), flows are an enumeration
//! of a client space ([`flows`]), and each TCP segment is derived from the
//! one received ([`exchange`]). Sampled packets carry a TSC stamp; the
//! receiving side records the latency in a fixed histogram
//! ([`histogram`]). The run ends with a JSON [`summary`].
//!
//! `rvs-bench` ([`bench`]) runs the generator against rvsd and, in the
//! same run, against `dpdk-testpmd` and the kernel, and reports the table
//! of BENCHMARKS.md.

pub mod bench;
pub mod exchange;
pub mod flows;
pub mod generator;
pub mod histogram;
pub mod packet;
pub mod pcap;
pub mod summary;
