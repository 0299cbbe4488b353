//! A client refuses a policy that pins nothing before any traffic; `--allow-simulated` alone
//! accepts the simulated platform only. (The `veil` command's side of the same rules:
//! `client-sdk/cli/tests/cli/secure_defaults.rs`.)

use crate::support;

use support::TestServer;
use veil_client::{Client, Error, Policy, Reference, VerifyError};

#[tokio::test]
async fn connect_refuses_an_unpinned_policy_before_any_request() {
    let server = TestServer::start().await;
    for policy in [
        Policy::default(),
        Policy::default().with_reference(Reference::tdx_mrtd([1; 48])),
    ] {
        let e = Client::connect(&server.url, policy)
            .await
            .expect_err("unpinned");
        assert!(
            matches!(&e, Error::Verification(VerifyError::Unpinned(_))),
            "{e:?}"
        );
        assert_eq!(e.check(), "measurement");
    }
    assert_eq!(server.attestations(), 0, "nothing fetched");
    assert_eq!(server.posts(), 0);
    // The explicit opt-in lets it through, and the verdict says so.
    let c = Client::connect(
        &server.url,
        Policy::default()
            .allow_simulated(true)
            .accept_any_measurement(true),
    )
    .await
    .expect("accept_any_measurement");
    assert!(
        c.attested()
            .verdict
            .warnings
            .iter()
            .any(|w| w.contains("accept_any_measurement")),
        "{:?}",
        c.attested().verdict.warnings
    );
}

#[test]
fn any_marks_a_register_as_skipped_on_purpose() {
    let text = format!(
        "[[reference]]\nplatform = \"tdx\"\nmrtd = \"{m}\"\nrtmr0 = \"any\"\nrtmr1 = \"{m}\"\n\
         rtmr2 = \"{m}\"\nrtmr3 = \"{m}\"\n",
        m = "22".repeat(48)
    );
    let p = Policy::from_toml(&text).expect("parses");
    p.check_pinned().expect("every register pinned or any");
    let without = text.replace("rtmr0 = \"any\"\n", "");
    let e = Policy::from_toml(&without)
        .expect("parses")
        .check_pinned()
        .expect_err("rtmr0 left out");
    assert!(e.to_string().contains("leaves rtmr0 unpinned"), "{e}");
    assert!(Policy::from_toml(&text.replace("\"any\"", "\"anything\"")).is_err());
}

#[test]
fn binary_or_model_pins_without_a_measurement_do_not_parse() {
    let e = Policy::from_toml(&format!("[binary]\nsha256 = \"{}\"\n", "ab".repeat(32)))
        .expect_err("binary without measurement");
    assert!(
        e.to_string()
            .contains("no [[reference]] pins a launch measurement")
    );
    let e = Policy::from_toml(&format!(
        "[[reference]]\nplatform = \"tdx\"\nmrtd = \"any\"\n[model]\nsha256 = \"{}\"\n",
        "ab".repeat(32)
    ))
    .expect_err("only any");
    assert!(e.to_string().contains("[binary]/[model]"));
}

#[tokio::test]
async fn allow_simulated_without_a_policy_refuses_hardware_verdicts() {
    let p = Policy::default().allow_simulated(true);
    p.check_pinned().expect("simulated only");
    let e = p
        .check_verdict_pinned(veil_client::Platform::SevSnp)
        .expect_err("hardware refused");
    assert!(e.to_string().contains("pins no sev-snp measurement"), "{e}");
    p.check_verdict_pinned(veil_client::Platform::Simulated)
        .expect("simulated accepted");
    // And end to end: a simulated server is fine with --allow-simulated alone.
    let server = TestServer::start().await;
    Client::connect(&server.url, p).await.expect("simulated");
}
