//! Policy decisions on claims from real recorded evidence (the SGX and TDX sample quotes that
//! ship with dcap-qvl), at a fixed time inside their collateral's validity.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use chiron_attest::dcap::Collateral;
use chiron_attest::{Endorsements, Evidence, Policy, TcbStatus, VerifiedClaims, verify};

const AT: u64 = 1_751_328_000; // 2025-07-01
const SGX_MRENCLAVE: &str = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb";
const SGX_MRSIGNER: &str = "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6";
const TDX_MRTD: &str = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7";

fn sample(name: &str) -> (Evidence, Endorsements) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/dcap/");
    let quote = std::fs::read(format!("{dir}{name}")).unwrap();
    let collateral = std::fs::read(format!("{dir}{name}_collateral.json")).unwrap();
    (
        Evidence::detect(quote).unwrap(),
        Endorsements {
            dcap: Some(Collateral::from_json(&collateral).unwrap()),
            snp: None,
        },
    )
}

fn decide(policy: &str, name: &str) -> Result<VerifiedClaims, String> {
    let (e, end) = sample(name);
    verify(&e, &end, &Policy::from_toml(policy).unwrap(), AT).map_err(|e| e.to_string())
}

#[test]
fn tdx_quote_accepted_by_a_policy_that_lists_it() {
    let claims = decide(
        &format!("backends = [\"tdx\"]\nmeasurements = [\"{TDX_MRTD}\"]\n"),
        "tdx_quote",
    )
    .unwrap();
    assert_eq!(claims.tcb_status, Some(TcbStatus::UpToDate));
}

#[test]
fn up_to_date_only_by_default_and_opt_in_per_advisory() {
    let base = format!("backends = [\"sgx\"]\nmeasurements = [\"{SGX_MRENCLAVE}\"]\n");
    let err = decide(&base, "sgx_quote").unwrap_err();
    assert!(
        err.contains("TCB status ConfigurationAndSWHardeningNeeded is not accepted"),
        "{err}"
    );

    let opted =
        format!("{base}tcb_statuses = [\"UpToDate\", \"ConfigurationAndSWHardeningNeeded\"]\n");
    decide(&opted, "sgx_quote").unwrap();

    let one_advisory = format!("{opted}allowed_advisories = [\"INTEL-SA-00289\"]\n");
    let err = decide(&one_advisory, "sgx_quote").unwrap_err();
    assert!(
        err.contains("advisory INTEL-SA-00615 is not in the policy's accepted advisories"),
        "{err}"
    );
    let both = format!("{opted}allowed_advisories = [\"INTEL-SA-00289\", \"INTEL-SA-00615\"]\n");
    decide(&both, "sgx_quote").unwrap();
}

#[test]
fn measurement_signer_backend_svn_and_collateral_age_rules() {
    let ok = format!(
        "backends = [\"sgx\"]\nmeasurements = [\"{SGX_MRENCLAVE}\"]\ntcb_statuses = [\"ConfigurationAndSWHardeningNeeded\"]\n"
    );
    decide(
        &format!("{ok}sgx_signers = [\"{SGX_MRSIGNER}\"]\nsgx_product_ids = [0]\n"),
        "sgx_quote",
    )
    .unwrap();

    let wrong_m = ok.replace(SGX_MRENCLAVE, &"00".repeat(32));
    assert!(
        decide(&wrong_m, "sgx_quote")
            .unwrap_err()
            .contains("not in the policy's allow-list")
    );

    let wrong_signer = format!("{ok}sgx_signers = [\"{}\"]\n", "11".repeat(32));
    assert!(
        decide(&wrong_signer, "sgx_quote")
            .unwrap_err()
            .contains("signer")
    );

    let wrong_product = format!("{ok}sgx_product_ids = [7]\n");
    assert!(
        decide(&wrong_product, "sgx_quote")
            .unwrap_err()
            .contains("product id")
    );

    let svn = format!("{ok}min_svn = 1\n");
    assert!(
        decide(&svn, "sgx_quote")
            .unwrap_err()
            .contains("below the policy's minimum 1")
    );

    let tdx_only = ok.replace("[\"sgx\"]", "[\"tdx\"]");
    assert!(
        decide(&tdx_only, "sgx_quote")
            .unwrap_err()
            .contains("backend sgx is not allowed")
    );

    // Collateral issued 2025-06-19; at 2025-07-01 it is 12 days old.
    decide(&format!("{ok}max_collateral_age_days = 30\n"), "sgx_quote").unwrap();
    let err = decide(&format!("{ok}max_collateral_age_days = 7\n"), "sgx_quote").unwrap_err();
    assert!(err.contains("days old, the policy allows 7"), "{err}");
}

#[test]
fn debug_enclaves_are_never_accepted() {
    let (e, end) = sample("sgx_quote");
    let mut claims = chiron_attest::verify_evidence(&e, &end, AT).unwrap();
    claims.debug = true;
    let policy = Policy::from_toml(
        "backends = [\"sgx\"]\nallow_any_measurement = true\ntcb_statuses = [\"ConfigurationAndSWHardeningNeeded\"]\n",
    )
    .unwrap();
    let err = policy.check(&claims, AT).unwrap_err().to_string();
    assert!(err.contains("debug mode"), "{err}");
    // And there is no way to write a policy that allows it.
    let err = Policy::from_toml(
        "backends = [\"sgx\"]\nallow_any_measurement = true\nallow_debug = true\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn malformed_policies_are_refused_with_the_field_named() {
    for (text, expect) in [
        (
            "backends = []\nallow_any_measurement = true\n",
            "at least one backend",
        ),
        (
            "backends = [\"sgx\"]\n",
            "at least one accepted measurement",
        ),
        (
            "backends = [\"tpm\"]\nallow_any_measurement = true\n",
            "unknown backend",
        ),
        (
            "backends = [\"sgx\"]\nmeasurements = [\"xyz\"]\n",
            "not hex",
        ),
        (
            "backends = [\"sgx\"]\nallow_any_measurement = true\ntcb_statuses = [\"Fine\"]\n",
            "unknown TCB status",
        ),
        (
            "backends = [\"sgx\"]\nallow_any_measurement = true\nmeasurements = [\"00\"]\n",
            "contradicts",
        ),
    ] {
        let err = Policy::from_toml(text).unwrap_err().to_string();
        assert!(err.contains(expect), "{text}: {err}");
    }
}

#[test]
fn example_policies_in_docs_parse_and_the_sgx_tdx_one_accepts_the_tdx_sample() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../docs/policies");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Policy::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 3);
    let (e, end) = sample("tdx_quote");
    let prod = Policy::load(&std::path::Path::new(dir).join("production-sgx-tdx.toml")).unwrap();
    verify(&e, &end, &prod, AT).unwrap();
}
