//! Build script of dpdk-sys: finds the system DPDK with pkg-config, runs bindgen over
//! `src/shim.h`, compiles the C shim `src/shim.c` with `cc`, and emits DPDK's link flags.
//!
//! Modes (also documented in the crate docs, `src/lib.rs`):
//! - feature `dpdk` off: does nothing; the crate is empty.
//! - feature `dpdk` on but `DOCS_RS` or `MGW_DPDK_OFFLINE` set: does nothing but set
//!   `cfg(mgw_dpdk_offline)`; the crate is empty (documented), so `cargo doc --all-features`
//!   works on a machine without DPDK.
//! - feature `dpdk` on otherwise: real bindings; a missing libdpdk or libclang is a build error
//!   that says what to install (never a silent empty crate).

#[cfg(not(feature = "dpdk"))]
fn main() {
    println!("cargo::rustc-check-cfg=cfg(mgw_dpdk_offline)");
    // Dependents' build scripts see this as DEP_DPDK_BINDINGS (package `links = "dpdk"`) and can
    // cfg their DPDK backend out when it is 0.
    println!("cargo::metadata=bindings=0");
    println!("cargo::rerun-if-changed=build.rs");
}

#[cfg(feature = "dpdk")]
fn main() {
    println!("cargo::rustc-check-cfg=cfg(mgw_dpdk_offline)");
    println!("cargo::rerun-if-env-changed=DOCS_RS");
    println!("cargo::rerun-if-env-changed=MGW_DPDK_OFFLINE");
    if std::env::var_os("DOCS_RS").is_some() || std::env::var_os("MGW_DPDK_OFFLINE").is_some() {
        println!("cargo::rustc-cfg=mgw_dpdk_offline");
        println!("cargo::metadata=bindings=0");
        return;
    }
    dpdk::build();
    println!("cargo::metadata=bindings=1");
}

#[cfg(feature = "dpdk")]
mod dpdk {
    use std::path::PathBuf;
    use std::process::Command;

    /// The oldest DPDK whose ABI (mbuf layout, ethdev fast-path ops) the shim and the
    /// `mgw-ports` DPDK backend are written against.
    const MIN_VERSION: &str = "22.11";

    pub fn build() {
        println!("cargo::rerun-if-env-changed=PKG_CONFIG_PATH");
        println!("cargo::rerun-if-env-changed=PKG_CONFIG_LIBDIR");
        println!("cargo::rerun-if-env-changed=PKG_CONFIG_SYSROOT_DIR");
        println!("cargo::rerun-if-changed=src/shim.h");
        println!("cargo::rerun-if-changed=src/shim.c");

        let version = pkg_config(&["--modversion"]);
        if pkg_config_ok(&[&format!("--atleast-version={MIN_VERSION}")]).is_err() {
            panic!("dpdk-sys: libdpdk {version} is older than {MIN_VERSION}");
        }
        println!("cargo::rustc-env=MGW_DPDK_VERSION={version}");
        // Dependents (the dataplane port backend) read this as DEP_DPDK_VERSION.
        println!("cargo::metadata=version={version}");

        // One set of cflags for both bindgen and cc: the struct layouts bindgen generates and
        // the code the shim is compiled to must agree (rte_config.h, -march, include paths).
        let cflags = split_flags(&pkg_config(&["--cflags"]));

        compile_shim(&cflags);
        emit_link_flags(&pkg_config(&["--libs"]));
        generate_bindings(&cflags);
    }

    fn pkg_config_ok(args: &[&str]) -> Result<String, String> {
        let out = Command::new("pkg-config")
            .args(args)
            .arg("libdpdk")
            .output()
            .map_err(|e| format!("cannot run pkg-config: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn pkg_config(args: &[&str]) -> String {
        pkg_config_ok(args).unwrap_or_else(|e| {
            panic!(
                "dpdk-sys: feature `dpdk` needs the system DPDK (>= {MIN_VERSION}) via \
                 `pkg-config libdpdk` (Debian: apt-get install libdpdk-dev pkg-config); \
                 set MGW_DPDK_OFFLINE=1 for a documentation-only build. pkg-config said: {e}"
            )
        })
    }

    /// pkg-config output is whitespace separated; DPDK's .pc file has no quoted arguments.
    fn split_flags(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn compile_shim(cflags: &[String]) {
        let mut build = cc::Build::new();
        build
            .file("src/shim.c")
            .include("src")
            .opt_level(2)
            .warnings(true);
        // `-include rte_config.h` is two words that must stay in order: pass them as they come.
        for flag in cflags {
            build.flag(flag);
        }
        // DPDK headers trip -Wunused-parameter etc. in inline code; keep warnings for our file
        // only where they matter.
        build.flag_if_supported("-Wno-unused-parameter");
        // Emits rustc-link-lib=static=mgw_dpdk_shim before the DPDK libraries below, so the
        // linker (which runs with --as-needed) sees the shim's references to librte_* first.
        build.compile("mgw_dpdk_shim");
    }

    /// Translates `pkg-config --libs libdpdk` into cargo link directives. Debian's libdpdk.pc
    /// lists every DPDK library (about 50) after `-Wl,--as-needed`; with --as-needed only those
    /// the shim and the Rust code reference end up as DT_NEEDED entries.
    ///
    /// Poll-mode drivers (net_null, net_ring, net_af_packet, net_af_xdp, net_memif, PCI drivers)
    /// and mempool handlers (ring_mp_mc) are NOT linked: with a shared-library DPDK build the EAL
    /// loads every plugin in its compiled-in driver directory at rte_eal_init (Debian:
    /// /usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0; EAL logs "Detected shared linkage of DPDK").
    /// EAL arg `-d <path>` adds more directories or single drivers.
    fn emit_link_flags(libs: &str) {
        for flag in libs.split_whitespace() {
            if let Some(dir) = flag.strip_prefix("-L") {
                println!("cargo::rustc-link-search=native={dir}");
            } else if let Some(lib) = flag.strip_prefix("-l") {
                println!("cargo::rustc-link-lib={lib}");
            } else if flag.starts_with("-Wl,") {
                println!("cargo::rustc-link-arg={flag}");
            } else {
                println!("cargo::warning=dpdk-sys: ignoring unknown pkg-config link flag {flag}");
            }
        }
    }

    /// Types the 64-bit flag macros as `u64`, the type of the fields they go into
    /// (`rte_eth_txmode::offloads`, `rte_eth_rss_conf::rss_hf`, `rte_mbuf::ol_flags`); bindgen
    /// would otherwise pick `u32` for every flag below bit 32.
    #[derive(Debug)]
    struct U64Flags;

    impl bindgen::callbacks::ParseCallbacks for U64Flags {
        fn int_macro(&self, name: &str, _value: i64) -> Option<bindgen::callbacks::IntKind> {
            const U64_PREFIXES: [&str; 5] = [
                "RTE_ETH_TX_OFFLOAD_",
                "RTE_ETH_RX_OFFLOAD_",
                "RTE_ETH_RSS_",
                "RTE_MBUF_F_",
                "RTE_ETH_DEV_CAPA_",
            ];
            U64_PREFIXES
                .iter()
                .any(|p| name.starts_with(p))
                .then_some(bindgen::callbacks::IntKind::U64)
        }
    }

    fn generate_bindings(cflags: &[String]) {
        let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
        let bindings = bindgen::Builder::default()
            .header("src/shim.h")
            .clang_args(cflags)
            .clang_arg("-Isrc")
            .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
            .parse_callbacks(Box::new(U64Flags))
            // Macros like RTE_BIT64(n) (offload flags) are beyond bindgen's own macro evaluator;
            // the fallback asks clang to evaluate them.
            .clang_macro_fallback()
            // C enums become integer constants, not Rust enums: a value the library adds later
            // (or a corrupt one) must not be undefined behaviour in Rust.
            .default_enum_style(bindgen::EnumVariation::Consts)
            .prepend_enum_name(false)
            .derive_default(true)
            .derive_debug(false)
            .layout_tests(true)
            // A packed struct holding an aligned union: E0588 in Rust. mgwd never matches L2TP,
            // so the type stays an opaque blob of the right size (rte_flow_item_l2tpv2 keeps
            // its layout).
            .opaque_type("rte_l2tpv2_combined_msg_hdr")
            .generate_comments(true)
            .allowlist_function("rte_eal_.*")
            .allowlist_function("rte_eth_.*")
            .allowlist_function("rte_pktmbuf_.*")
            .allowlist_function("rte_mbuf_.*")
            .allowlist_function("rte_mempool_.*")
            .allowlist_function("rte_flow_.*")
            .allowlist_function("rte_ring_.*")
            .allowlist_function("rte_lcore_.*")
            .allowlist_function("rte_socket_.*")
            .allowlist_function("rte_get_main_lcore")
            .allowlist_function("rte_thread_register")
            .allowlist_function("rte_thread_unregister")
            .allowlist_function("rte_get_next_lcore")
            .allowlist_function("rte_strerror")
            .allowlist_function("rte_exit")
            .allowlist_function("rte_version")
            .allowlist_function("mgw_.*")
            .allowlist_type("rte_mbuf")
            .allowlist_type("rte_eth_.*")
            .allowlist_type("rte_flow_.*")
            .allowlist_type("rte_ether_addr")
            .allowlist_var("RTE_ETH_.*")
            .allowlist_var("RTE_MBUF_.*")
            .allowlist_var("RTE_PKTMBUF_HEADROOM")
            .allowlist_var("RTE_MAX_ETHPORTS")
            .allowlist_var("RTE_MAX_LCORE")
            .allowlist_var("RTE_MAX_QUEUES_PER_PORT")
            .allowlist_var("RTE_MEMPOOL_.*")
            .allowlist_var("RTE_RING_.*")
            .allowlist_var("RING_F_.*")
            .allowlist_var("RTE_FLOW_.*")
            .allowlist_var("RTE_PTYPE_.*")
            .allowlist_var("RTE_CACHE_LINE_SIZE")
            .allowlist_var("RTE_VER_.*")
            .allowlist_var("LCORE_ID_ANY")
            .allowlist_var("SOCKET_ID_ANY")
            .allowlist_var("RTE_ETHER_.*")
            .generate()
            .unwrap_or_else(|e| {
                panic!(
                    "dpdk-sys: bindgen failed over src/shim.h ({e}); it needs libclang \
                     (Debian: apt-get install libclang-dev clang)"
                )
            });
        bindings
            .write_to_file(out.join("bindings.rs"))
            .expect("dpdk-sys: cannot write bindings.rs to OUT_DIR");
    }
}
