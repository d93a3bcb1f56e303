//! Tells the tests whether they run optimised (the simulator matrix runs 1,000 seeds there and
//! fewer in an unoptimised build, unless MGW_TCP_SEEDS says otherwise).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(mgw_tcp_optimized)");
    println!("cargo::rerun-if-env-changed=OPT_LEVEL");
    if std::env::var("OPT_LEVEL").is_ok_and(|l| l != "0") {
        println!("cargo::rustc-cfg=mgw_tcp_optimized");
    }
}
