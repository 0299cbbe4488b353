//! `veil-server endorsements show|fetch`.

use std::process::Command;

use veil_attest::attester::EndorsementSource as _;

use super::fake::pccs_for;
use super::{TestClock, endorser, vector};

fn veil_server(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_veil-server"))
        .args(args)
        .output()
        .expect("run veil-server")
}

#[test]
fn show_prints_each_set_with_its_window_sources_and_state() {
    let dir = "tdx/v4-20a06f-near";
    let c: serde_json::Value =
        serde_json::from_slice(&vector(&format!("{dir}/collateral.json"))).expect("json");
    let pccs = pccs_for(vec![("20A06F000000".to_owned(), c)], None);
    let cache = tempfile::tempdir().expect("cache");
    let e = endorser(
        cache.path(),
        "http://127.0.0.1:9",
        &pccs.url,
        TestClock::at("2025-09-03T11:46:40Z"),
    );
    e.tdx_collateral(&vector(&format!("{dir}/quote.bin")))
        .expect("fetched");

    let out = veil_server(&[
        "endorsements",
        "show",
        "--endorsement-cache",
        cache.path().to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tdx-20A06F000000-platform: TDX FMSPC 20A06F000000, PCK platform CA"),
        "{text}"
    );
    assert!(text.contains("valid 2025-09-02T"), "{text}");
    assert!(
        text.contains(&format!(
            "from {}/tdx/certification/v4/tcb?fmspc=20A06F000000",
            pccs.url
        )),
        "{text}"
    );
    // Today is long after the vector's nextUpdate.
    assert!(text.contains("EXPIRED (not served)"), "{text}");
}

#[test]
fn show_on_an_empty_cache_and_fetch_without_hardware() {
    let cache = tempfile::tempdir().expect("cache");
    let c = cache.path().to_str().expect("utf-8");
    let out = veil_server(&["endorsements", "show", "--endorsement-cache", c]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("(empty)"));

    let out = veil_server(&["endorsements", "fetch", "--tee", "simulated"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing to fetch"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = veil_server(&[
        "endorsements",
        "fetch",
        "--tee",
        "configfs",
        "--tsm-root",
        "/nonexistent/tsm",
        "--endorsement-cache",
        c,
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("configfs-tsm not available"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
