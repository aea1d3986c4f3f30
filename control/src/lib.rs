//! The rvs control plane.
//!
//! * [`model`]: services, real servers, schedulers and forwarding methods as
//!   users see them; shared by the configuration, the protocol and the CLI.
//! * [`protocol`]: the request/response protocol of rvsd's control socket.
//! * [`config`]: rvsd's TOML configuration and its validation.
//! * [`ipvsadm`]: `rvsadm`'s ipvsadm-compatible command line and listings.
//!   It depends on [`model`] and [`protocol`] only, never on the dataplane.
//! * [`keepalived`]: `rvsadm --import-keepalived`, keepalived.conf's LVS
//!   part translated into rvsd configuration.
//! * [`daemon`]: rvsd itself: startup, the control socket server and the
//!   translation of the model into dataplane snapshots.

pub mod config;
pub mod daemon;
pub mod ipvsadm;
pub mod keepalived;
pub mod model;
pub mod protocol;
