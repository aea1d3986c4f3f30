//! Finds the system DPDK with pkg-config, generates the private bindings
//! with bindgen and compiles the C shim that exports DPDK's `static inline`
//! fast-path functions as real symbols.
//!
//! Link flags come from pkg-config (shared libraries). Poll-mode drivers and
//! the mempool drivers are not linked: the Debian build of EAL loads them
//! from its plugin directory (`RTE_EAL_PMD_PATH`) during `rte_eal_init`, so
//! `-Wl,--no-as-needed` is not needed for their constructors.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const MIN_VERSION: &str = "22.11";
const INSTALL_HINT: &str = "apt-get install dpdk dpdk-dev libdpdk-dev libclang-dev pkg-config";

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let dpdk = match pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .probe("libdpdk")
    {
        Ok(library) => library,
        Err(err) => {
            eprintln!("{err}");
            panic!(
                "dpdk-bind needs DPDK >= {MIN_VERSION} found through pkg-config (libdpdk). \
                 On Debian/Ubuntu: {INSTALL_HINT}"
            );
        }
    };
    let cflags = raw_cflags();

    cc::Build::new()
        .file("shim/shim.c")
        .flags(&cflags)
        .includes(&dpdk.include_paths)
        .opt_level(2)
        .warnings(true)
        .extra_warnings(true)
        .compile("rvs_dpdk_shim");

    generate_bindings(&cflags);
}

/// The compiler flags exactly as pkg-config prints them.
///
/// The `pkg-config` crate keeps only `-I` and `-D`, but DPDK's cflags also
/// carry `-include rte_config.h` and `-march=...`, which both the shim and
/// bindgen need to see the same configuration as the installed libraries.
/// pkg-config output is split on whitespace (DPDK's paths contain none).
fn raw_cflags() -> Vec<String> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_owned());
    let output = Command::new(&pkg_config)
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|err| {
            panic!("running `{pkg_config} --cflags libdpdk`: {err}; {INSTALL_HINT}")
        });
    if !output.status.success() {
        panic!(
            "`{pkg_config} --cflags libdpdk` failed: {}; {INSTALL_HINT}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn generate_bindings(cflags: &[String]) {
    let bindings = bindgen::Builder::default()
        .header("shim/shim.h")
        .clang_args(cflags)
        .rust_edition(bindgen::RustEdition::Edition2024)
        .use_core()
        .generate_comments(false)
        .layout_tests(true)
        .derive_default(true)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        // Types whose fields rvs reads or fills.
        .allowlist_type("rte_mbuf")
        .allowlist_type("rte_eth_conf")
        .allowlist_type("rte_eth_dev_info")
        .allowlist_type("rte_eth_link")
        .allowlist_type("rte_eth_stats")
        .allowlist_type("rte_ether_addr")
        // Handles rvs only passes around: no fields needed.
        .opaque_type("rte_mempool")
        .opaque_type("rte_ring")
        .opaque_type("rte_device")
        .opaque_type("rte_mbuf_ext_shared_info")
        // Functions (real symbols in the DPDK libraries).
        .allowlist_function("rte_eal_init")
        .allowlist_function("rte_eal_cleanup")
        .allowlist_function("rte_eal_get_runtime_dir")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_get_main_lcore")
        .allowlist_function("rte_get_next_lcore")
        .allowlist_function("rte_lcore_count")
        .allowlist_function("rte_lcore_is_enabled")
        .allowlist_function("rte_lcore_to_socket_id")
        .allowlist_function("rte_get_tsc_hz")
        .allowlist_function("rte_eal_remote_launch")
        .allowlist_function("rte_eal_wait_lcore")
        .allowlist_function("rte_pktmbuf_pool_create")
        .allowlist_function("rte_pktmbuf_free_bulk")
        .allowlist_function("rte_mempool_avail_count")
        .allowlist_function("rte_mempool_in_use_count")
        .allowlist_function("rte_mempool_free")
        .allowlist_function("rte_ring_create")
        .allowlist_function("rte_ring_free")
        .allowlist_function("rte_eth_dev_count_avail")
        .allowlist_function("rte_eth_dev_get_port_by_name")
        .allowlist_function("rte_eth_dev_info_get")
        .allowlist_function("rte_eth_dev_socket_id")
        .allowlist_function("rte_eth_dev_configure")
        .allowlist_function("rte_eth_dev_adjust_nb_rx_tx_desc")
        .allowlist_function("rte_eth_rx_queue_setup")
        .allowlist_function("rte_eth_tx_queue_setup")
        .allowlist_function("rte_eth_dev_start")
        .allowlist_function("rte_eth_dev_stop")
        .allowlist_function("rte_eth_dev_close")
        .allowlist_function("rte_eth_macaddr_get")
        .allowlist_function("rte_eth_dev_default_mac_addr_set")
        .allowlist_function("rte_eth_link_get_nowait")
        .allowlist_function("rte_eth_stats_get")
        .allowlist_function("rte_eth_stats_reset")
        .allowlist_function("rte_eth_promiscuous_enable")
        .allowlist_function("rte_eth_promiscuous_disable")
        .allowlist_function("rte_eth_allmulticast_enable")
        // The shim: wrappers for DPDK's static inline functions.
        .allowlist_function("rvs_.*")
        .allowlist_var("rvs_.*")
        // Constants.
        .allowlist_var("RTE_MAX_LCORE")
        .allowlist_var("RTE_MAX_ETHPORTS")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_MBUF_DEFAULT_BUF_SIZE")
        .allowlist_var("LCORE_ID_ANY")
        .allowlist_var("EBUSY")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("RING_F_SP_ENQ")
        .allowlist_var("RING_F_SC_DEQ")
        .allowlist_var("RING_F_EXACT_SZ")
        .allowlist_var("RTE_MBUF_F_RX_RSS_HASH")
        .allowlist_var("RTE_MBUF_F_RX_IP_CKSUM_.*")
        .allowlist_var("RTE_MBUF_F_RX_L4_CKSUM_.*")
        .allowlist_var("RTE_ETH_LINK_FULL_DUPLEX")
        .allowlist_var("RTE_ETH_LINK_UP")
        .allowlist_var("RTE_ETH_SPEED_NUM_NONE")
        .allowlist_var("RTE_ETH_SPEED_NUM_UNKNOWN")
        .allowlist_var("RTE_ETH_MQ_RX_RSS")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|err| {
            panic!("bindgen failed on the DPDK headers: {err}; is libclang-dev installed? {INSTALL_HINT}")
        });

    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| panic!("cargo sets OUT_DIR")));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .unwrap_or_else(|err| panic!("writing bindings.rs: {err}"));
}
