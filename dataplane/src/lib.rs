//! The rvs dataplane.
//!
//! Most of this crate is *sans-IO*: [`wire`] reads and rewrites packets in
//! byte buffers, and the load-balancing core ([`director`]) takes the
//! current time and a frame and returns a [`director::Verdict`]. Neither
//! calls DPDK nor reads a clock, so they are tested with plain `cargo test`.
//! [`engine`] adds what a worker does around the core (frames waiting for
//! ARP, generated packets, housekeeping) over an abstract packet I/O, and
//! [`worker`] is the thin adapter that binds it to DPDK queues.
//!
//! Hot-path rules: no allocation, no lock, no syscall and no per-packet FFI
//! call once a worker runs; everything is preallocated at start-up.

pub mod conn;
pub mod counters;
pub mod director;
pub mod engine;
pub mod exception;
pub mod family;
pub mod frame;
pub mod listing;
pub mod neighbour;
pub mod persistence;
pub mod route;
pub mod sched;
pub mod snapshot;
pub mod steering;
pub mod testing;
pub mod time;
pub mod wire;
pub mod worker;
