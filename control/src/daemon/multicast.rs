//! All-multicast reception on rvsd's ports.
//!
//! rvsd answers IPv6 neighbour solicitations for its addresses and VIPs,
//! which arrive at solicited-node multicast groups (33:33:ff:xx:xx:xx),
//! and hands VRRP adverts and MLD to a port's kernel twin. A NIC that
//! filters multicast drops those groups, since rvsd never programs the
//! filter, so every port is put in all-multicast mode. Not promiscuous
//! mode: rvsd only needs frames for its own MAC address and multicast, and
//! unicast for other hosts (flooded by a switch) would cost rx bandwidth
//! and be dropped anyway.

use std::path::Path;

use dpdk_bind::Port;

/// `<linux/if.h>` flags in `/sys/class/net/NAME/flags` under which an
/// interface accepts every multicast group.
const IFF_PROMISC: u32 = 0x100;
const IFF_ALLMULTI: u32 = 0x200;

/// What is lost where multicast is filtered.
const MISSED: &str = "IPv6 neighbour solicitations for its addresses and VIPs (solicited-node \
                      multicast) and VRRP and MLD for a kernel twin will not reach rvsd";

/// Puts `port` in all-multicast mode. `Ok(Some(warning))` when its PMD
/// has no such mode (ENOTSUP) and multicast may be filtered on the way
/// (see [`refused`]); `Ok(None)` when all is well.
///
/// # Errors
///
/// Any other failure of the PMD, which leaves the port in doubt.
pub(super) fn enable(
    port: &mut Port,
    driver: &str,
    device: &str,
) -> Result<Option<String>, dpdk_bind::PortError> {
    match port.enable_all_multicast() {
        Ok(()) => Ok(None),
        Err(error) if error.is_unsupported() => {
            Ok(refused(driver, device, Path::new("/sys/class/net")))
        }
        Err(error) => Err(error),
    }
}

/// The warning for a port whose PMD `driver` has no all-multicast mode,
/// or `None` when nothing on the way filters multicast; `sysfs` is where
/// kernel interfaces are described (`/sys/class/net`).
fn refused(driver: &str, device: &str, sysfs: &Path) -> Option<String> {
    match driver {
        // A shared-memory link to one peer: whatever the peer sends arrives.
        "net_memif" => None,
        // The packet socket sees what the kernel interface accepts: a
        // veth every frame, a NIC only the groups the kernel joined,
        // unless the interface is all-multicast or promiscuous. Only a
        // NIC has a `device` link in sysfs.
        "net_af_packet" => {
            let Some(interface) = device
                .split(',')
                .find_map(|argument| argument.strip_prefix("iface="))
            else {
                return Some(format!("the device cannot receive all multicast: {MISSED}"));
            };
            let path = sysfs.join(interface);
            let flags = std::fs::read_to_string(path.join("flags"))
                .ok()
                .and_then(|text| u32::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok())
                .unwrap_or(0);
            let filters = path.join("device").exists() && flags & (IFF_ALLMULTI | IFF_PROMISC) == 0;
            filters.then(|| {
                format!(
                    "{interface} is a NIC, which filters multicast: {MISSED} unless it is \
                     all-multicast (ip link set dev {interface} allmulticast on)"
                )
            })
        }
        _ => Some(format!(
            "the device cannot receive all multicast: if it filters multicast, {MISSED}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sysfs tree with `nic0` (a NIC with `flags`) and `veth0`.
    fn sysfs(flags: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("temp dir");
        for (name, device) in [("nic0", true), ("veth0", false)] {
            let interface = root.path().join(name);
            std::fs::create_dir(&interface).expect("interface dir");
            std::fs::write(interface.join("flags"), format!("{flags}\n")).expect("flags");
            if device {
                std::fs::create_dir(interface.join("device")).expect("device dir");
            }
        }
        root
    }

    #[test]
    fn memif_and_virtual_interfaces_lose_nothing() {
        let root = sysfs("0x1003");
        assert_eq!(
            refused("net_memif", "net_memif0,role=server", root.path()),
            None
        );
        assert_eq!(
            refused(
                "net_af_packet",
                "net_af_packet0,iface=veth0,qpairs=2",
                root.path()
            ),
            None
        );
    }

    #[test]
    fn a_nic_behind_af_packet_filters_unless_it_is_allmulticast() {
        let filtering = sysfs("0x1003");
        let warning = refused(
            "net_af_packet",
            "net_af_packet0,iface=nic0",
            filtering.path(),
        )
        .expect("a filtering NIC is warned about");
        assert!(
            warning.contains("ip link set dev nic0 allmulticast on"),
            "{warning}"
        );
        assert!(warning.contains("neighbour solicitations"), "{warning}");
        for open in ["0x1203", "0x1103"] {
            let root = sysfs(open);
            assert_eq!(
                refused("net_af_packet", "net_af_packet0,iface=nic0", root.path()),
                None,
                "flags {open}"
            );
        }
    }

    #[test]
    fn other_devices_are_warned_about() {
        let root = sysfs("0x1003");
        for (driver, device) in [
            ("net_vdev_x", "net_vdev_x0"),
            ("net_af_packet", "net_af_packet0"),
        ] {
            let warning = refused(driver, device, root.path()).expect("warned");
            assert!(warning.contains("VRRP and MLD"), "{warning}");
        }
    }
}
