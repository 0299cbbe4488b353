//! A stable-toolchain stand-in for the `inner_response` cargo-fuzz target of `fuzz/`: the
//! same entry point (`fuzz/src/client.rs`, included below) runs over every seed of
//! `fuzz/seeds/inner_response/`, deterministic mutations of each, and pseudo-random inputs
//! (`fuzz/smoke.rs`); none may panic, and how the bytes are cut must not change the parse.
//! The seeds are written by `veil-protocol`'s `regenerate_seeds` (see `fuzz/README.md`).

#[allow(
    unreachable_pub,
    reason = "the fuzz crate's public entry points, included as a private module"
)]
#[path = "../../../fuzz/src/client.rs"]
mod harness;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the shared smoke driver; each crate's smoke test uses a subset"
)]
#[path = "../../../fuzz/smoke.rs"]
mod smoke;

#[test]
fn inner_response_never_panics_and_ignores_how_bytes_are_cut() {
    let extra = smoke::random_inputs("inner_response", 2_000, 256);
    smoke::smoke("inner_response", harness::inner_response, &extra);
}

/// The seeds are complete responses, so mutations start from the deep states.
#[test]
fn seeds_parse_as_complete_responses() {
    for (name, bytes) in smoke::seeds("inner_response") {
        let (status, _, content) =
            veil_client::fuzz_inner_response(&[&bytes]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(status, Some(200), "{name}");
        assert!(!content.is_empty(), "{name}");
    }
}
