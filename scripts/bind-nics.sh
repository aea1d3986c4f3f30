#!/usr/bin/env bash
# Bind NICs to a DPDK driver (vfio-pci) for rvsd, and give them back to the
# kernel afterwards. A thin, careful wrapper around DPDK's dpdk-devbind.py.
set -euo pipefail

readonly DEFAULT_DRIVER=vfio-pci
# Not under /run/rvs: systemd empties rvsd.service's RuntimeDirectory when
# rvsd stops, and the NICs stay bound after that.
readonly STATE_FILE=${RVS_BIND_STATE:-/run/rvs-bind-nics.state}
readonly PROG=${0##*/}

usage() {
    cat <<EOF
Usage: $PROG [--force] [--driver DRIVER] NIC...
       $PROG --unbind [--driver DRIVER] NIC...
       $PROG --status
       $PROG --help

Binds each NIC to DRIVER (default $DEFAULT_DRIVER, loaded if needed) with
dpdk-devbind.py, so that rvsd can drive it: name it in rvs.toml by its PCI
address (device = "0000:03:00.0"). The interface disappears from the kernel
until it is unbound. A NIC is an interface name (enp3s0f0) or a PCI address
(0000:03:00.0). The driver each NIC had is remembered in
$STATE_FILE (RVS_BIND_STATE overrides the path).

  --force        bind even an interface that carries a default route (the
                 one this host, and probably your ssh session, uses), and
                 let dpdk-devbind.py unbind interfaces that are up
  --driver NAME  bind: the DPDK driver (vfio-pci, uio_pci_generic);
                 --unbind: the kernel driver to give the NIC back to
                 (ixgbe, i40e, ice, mlx5_core...), instead of the one
                 remembered
  --unbind       give each NIC (its PCI address, or the interface name it
                 had) back to its kernel driver
  --status       show which NICs use which driver (dpdk-devbind.py --status)
  --help         show this text

Virtual interfaces (veth, bridges, tap) have no PCI address and cannot be
bound: rvsd reaches them through DPDK vdevs such as net_af_packet instead.
NICs whose DPDK driver works beside the kernel's (mlx5) need no binding.

Needs root (but not for --help) and dpdk-devbind.py, from Debian's dpdk
package (apt-get install dpdk).
EOF
}

die() {
    echo "$PROG: $*" >&2
    exit 1
}

usage_error() {
    echo "$PROG: $*" >&2
    echo "Try '$PROG --help'." >&2
    exit 2
}

# Prints the path of dpdk-devbind.py, or dies naming the package.
devbind() {
    local candidate
    for candidate in dpdk-devbind.py dpdk-devbind /usr/sbin/dpdk-devbind.py /usr/bin/dpdk-devbind.py; do
        if command -v "$candidate" >/dev/null 2>&1; then
            command -v "$candidate"
            return
        fi
    done
    die "dpdk-devbind.py not found: install Debian's dpdk package (apt-get install dpdk)"
}

is_pci_address() {
    [[ $1 =~ ^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$ ]]
}

# The interfaces that carry a default route, IPv4 or IPv6, one a line.
default_route_interfaces() {
    { ip -4 route show default 2>/dev/null || true; ip -6 route show default 2>/dev/null || true; } |
        awk '{ for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1) }' | sort -u
}

# Dies if interface $1 carries a default route, unless --force.
refuse_default_route() {
    local interface=$1
    if ((force == 0)) && default_route_interfaces | grep -qxF -- "$interface"; then
        die "$interface carries a default route (ip route show default): binding it would cut this host off the network, and probably your ssh session with it. Bind another NIC, or give --force if you really mean it."
    fi
}

# The PCI address of interface $1, or dies saying why it has none.
pci_address_of_interface() {
    local interface=$1 device subsystem
    [[ -e /sys/class/net/$interface ]] ||
        die "there is no network interface named '$interface' (ip link lists them)"
    if [[ ! -e /sys/class/net/$interface/device ]]; then
        die "$interface has no PCI address: it is a virtual interface (veth, bridge, tap...), and only PCI NICs can be bound to a DPDK driver. rvsd reaches a virtual interface through a DPDK vdev instead (device = \"net_af_packet0,iface=$interface\" in rvs.toml)."
    fi
    device=$(readlink -f "/sys/class/net/$interface/device")
    subsystem=$(readlink -f "$device/subsystem")
    # A virtio-net interface hangs off a virtio device, itself on the PCI
    # device that DPDK's virtio driver takes.
    if [[ ${subsystem##*/} == virtio ]]; then
        device=${device%/*}
        subsystem=$(readlink -f "$device/subsystem")
    fi
    if [[ ${subsystem##*/} != pci ]]; then
        die "$interface is a ${subsystem##*/} device, not a PCI one: only PCI NICs can be bound to a DPDK driver"
    fi
    basename "$device"
}

# The driver PCI device $1 is bound to, or "none".
driver_of() {
    local link=/sys/bus/pci/devices/$1/driver
    if [[ -e $link ]]; then
        basename "$(readlink -f "$link")"
    else
        echo none
    fi
}

# The kernel's interface names of PCI device $1 (none once it is bound to
# a DPDK driver).
interfaces_of() {
    local dir
    for dir in "/sys/bus/pci/devices/$1/net" "/sys/bus/pci/devices/$1"/virtio*/net; do
        if [[ -d $dir ]]; then
            ls -1 "$dir"
        fi
    done
}

# Loads DPDK driver $1 if the kernel does not have it yet.
load_driver() {
    local driver=$1
    if [[ ! -d /sys/bus/pci/drivers/$driver ]]; then
        command -v modprobe >/dev/null 2>&1 || die "modprobe not found: install Debian's kmod package"
        modprobe "$driver" || die "cannot load the $driver module (modprobe $driver)"
    fi
    if [[ $driver == vfio-pci ]] &&
        [[ -z $(ls -A /sys/kernel/iommu_groups 2>/dev/null) ]] &&
        [[ $(cat /sys/module/vfio/parameters/enable_unsafe_noiommu_mode 2>/dev/null || echo N) != Y ]]; then
        echo "$PROG: warning: no IOMMU is enabled, and vfio-pci will refuse the NICs." >&2
        echo "$PROG: enable it (intel_iommu=on or amd_iommu=on on the kernel command line)," >&2
        echo "$PROG: or on a VM without one: echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode" >&2
    fi
}

# Remembers that PCI device $1 had driver $2 and interface name $3.
remember() {
    local pci=$1 driver=$2 interface=$3 kept=""
    mkdir -p "$(dirname "$STATE_FILE")"
    if [[ -f $STATE_FILE ]]; then
        kept=$(awk -v pci="$pci" '$1 != pci' "$STATE_FILE")
    fi
    {
        if [[ -n $kept ]]; then printf '%s\n' "$kept"; fi
        printf '%s %s %s\n' "$pci" "$driver" "${interface:--}"
    } >"$STATE_FILE.new"
    mv "$STATE_FILE.new" "$STATE_FILE"
}

forget() {
    local pci=$1 kept
    [[ -f $STATE_FILE ]] || return 0
    kept=$(awk -v pci="$pci" '$1 != pci' "$STATE_FILE")
    if [[ -n $kept ]]; then
        printf '%s\n' "$kept" >"$STATE_FILE.new"
        mv "$STATE_FILE.new" "$STATE_FILE"
    else
        rm -f "$STATE_FILE"
    fi
}

# The state line ("PCI DRIVER INTERFACE") of NIC $1, a PCI address or an
# interface name, if there is one.
remembered() {
    [[ -f $STATE_FILE ]] || return 0
    awk -v nic="$1" '$1 == nic || $3 == nic { print; exit }' "$STATE_FILE"
}

bind_nic() {
    local nic=$1 pci interface before
    if is_pci_address "$nic"; then
        pci=${nic,,}
        [[ -e /sys/bus/pci/devices/$pci ]] || die "there is no PCI device $pci (lspci -D lists them)"
    else
        refuse_default_route "$nic"
        pci=$(pci_address_of_interface "$nic")
    fi
    local -a interfaces
    mapfile -t interfaces < <(interfaces_of "$pci")
    for interface in "${interfaces[@]}"; do
        refuse_default_route "$interface"
    done
    before=$(driver_of "$pci")
    if [[ $before == "$driver" ]]; then
        echo "$pci is bound to $driver already"
        return
    fi
    remember "$pci" "$before" "${interfaces[0]:-}"
    "$DEVBIND" --bind="$driver" "${devbind_force[@]}" "$pci"
    [[ $(driver_of "$pci") == "$driver" ]] ||
        die "dpdk-devbind.py did not bind $pci to $driver (see its message above)"
    echo "$pci (${interfaces[0]:-no interface}, was $before) is bound to $driver; $PROG --unbind $pci gives it back"
}

unbind_nic() {
    local nic=$1 pci line recorded target
    line=$(remembered "$nic")
    if is_pci_address "$nic"; then
        pci=${nic,,}
    elif [[ -n $line ]]; then
        read -r pci _ _ <<<"$line"
    else
        pci=$(pci_address_of_interface "$nic")
    fi
    [[ -e /sys/bus/pci/devices/$pci ]] || die "there is no PCI device $pci (lspci -D lists them)"
    recorded=""
    if [[ -n $line ]]; then
        read -r _ recorded _ <<<"$line"
    fi
    target=${driver_given:-$recorded}
    if [[ -z $target ]]; then
        die "no driver remembered for $pci in $STATE_FILE: give it with --driver (lspci -k -s $pci names the kernel modules that fit, e.g. ixgbe, i40e, ice)"
    fi
    if [[ $target == none ]]; then
        "$DEVBIND" --unbind "$pci"
    else
        "$DEVBIND" --bind="$target" "$pci"
        [[ $(driver_of "$pci") == "$target" ]] ||
            die "dpdk-devbind.py did not bind $pci to $target (see its message above)"
    fi
    forget "$pci"
    echo "$pci is back with ${target/#none/no driver}"
}

# --- Command line.

mode=bind
force=0
driver_given=""
nics=()
while (($# > 0)); do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --status) mode=status ;;
    --unbind) mode=unbind ;;
    --force) force=1 ;;
    --driver)
        (($# > 1)) || usage_error "--driver needs a driver name"
        driver_given=$2
        shift
        ;;
    --driver=*) driver_given=${1#--driver=} ;;
    --) shift && nics+=("$@") && break ;;
    -*) usage_error "unknown option $1" ;;
    *) nics+=("$1") ;;
    esac
    shift
done

if [[ -n $driver_given && ! $driver_given =~ ^[A-Za-z0-9_-]+$ ]]; then
    usage_error "'$driver_given' is not a driver name"
fi

case $mode in
status)
    ((${#nics[@]} == 0)) || usage_error "--status takes no NIC"
    DEVBIND=$(devbind)
    exec "$DEVBIND" --status
    ;;
bind | unbind)
    ((${#nics[@]} > 0)) || usage_error "name at least one NIC (an interface or a PCI address)"
    ;;
esac

driver=${driver_given:-$DEFAULT_DRIVER}
devbind_force=()
if ((force)); then
    devbind_force=(--force)
fi

# Refuse what can be refused before touching anything: every NIC's
# address, and a default route on any of them.
if [[ $mode == bind ]]; then
    for nic in "${nics[@]}"; do
        if ! is_pci_address "$nic"; then
            refuse_default_route "$nic"
            pci_address_of_interface "$nic" >/dev/null
        fi
    done
fi

((EUID == 0)) || die "must run as root: it rebinds PCI devices (sysfs) and loads kernel modules"
DEVBIND=$(devbind)
readonly DEVBIND

if [[ $mode == bind ]]; then
    load_driver "$driver"
    for nic in "${nics[@]}"; do
        bind_nic "$nic"
    done
else
    for nic in "${nics[@]}"; do
        unbind_nic "$nic"
    done
fi
