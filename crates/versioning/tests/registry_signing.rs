//! A registry with a trust policy: publish, promote and load refuse a
//! version no trusted key signed; signatures travel with their version.

#![allow(clippy::result_large_err)]

mod common;

use common::{card, model, Linear};
use model_persistence_core::signing::{sign, SignatureError, SigningKey};
use model_persistence_core::BundleWriter;
use model_persistence_versioning::{Error, Registry};
use semver::Version;

fn bundle(version: &str, seed: f64) -> Vec<u8> {
    let m = model(seed);
    let mut c = card("m", &m, &[]);
    c.version = Version::parse(version).expect("semver");
    BundleWriter::default().to_bytes(&m, &c).expect("bundle")
}

fn refused_for(e: &Error) -> &SignatureError {
    match e {
        Error::Signature { source, .. } => source,
        other => panic!("expected a signature refusal, got {other:?}"),
    }
}

#[test]
fn a_trust_policy_refuses_unsigned_and_wrongly_signed_versions_everywhere() {
    let dir = tempfile::tempdir().expect("dir");
    let open = Registry::create(dir.path()).expect("registry");
    let release = SigningKey::generate();
    let stranger = SigningKey::generate();
    let strict = open.clone().trust(vec![release.public_key()]);

    // Publishing: unsigned, and signed by a stranger, are refused.
    let one = bundle("1.0.0", 1.0);
    let err = strict.publish_signed(&one, None).expect_err("unsigned");
    assert!(matches!(refused_for(&err), SignatureError::Unsigned));
    let by_stranger = sign(&one, "m.bundle", &stranger).expect("sign");
    let err = strict.publish_signed(&one, Some(&by_stranger)).expect_err("stranger");
    assert!(matches!(refused_for(&err), SignatureError::UntrustedSigner { .. }));
    // A signature of other bytes.
    let two = bundle("1.1.0", 2.0);
    let of_two = sign(&two, "m.bundle", &release).expect("sign");
    let err = strict.publish_signed(&one, Some(&of_two)).expect_err("other bytes");
    assert!(matches!(refused_for(&err), SignatureError::Tampered { .. }));
    assert!(strict.versions("m").expect("list").is_empty(), "nothing was published");

    // Signed by the release key: published, stored with its signature.
    let good = sign(&one, "m.bundle", &release).expect("sign");
    let v1 = strict.publish_signed(&one, Some(&good)).expect("published").version;
    assert_eq!(strict.signature("m", &v1).expect("read").as_deref(), Some(&good[..]));
    strict
        .set_alias("m", "production", &v1)
        .expect("promote a signed version");
    let loaded = strict
        .load::<Linear>(&"m@production".parse().expect("ref"))
        .expect("load");
    assert_eq!(loaded.card().version, v1);

    // A version published without a policy is refused by the strict handle
    // on promote and on load.
    let v2 = open.publish_bundle(&two).expect("published unsigned").version;
    let err = strict.set_alias("m", "production", &v2).expect_err("unsigned promote");
    assert!(matches!(refused_for(&err), SignatureError::Unsigned));
    let err = strict
        .load::<Linear>(&format!("m@{v2}").parse().expect("ref"))
        .expect_err("unsigned load");
    assert!(matches!(refused_for(&err), SignatureError::Unsigned));
    assert_eq!(
        strict.alias("m", "production").expect("alias").map(|t| t.version),
        Some(v1.clone())
    );

    // A signature file damaged in storage is refused.
    let sig_path = dir.path().join("m/versions/1.0.0/model.bundle.sig");
    let text = std::fs::read(&sig_path).expect("sig");
    std::fs::write(&sig_path, &text[..text.len() / 2]).expect("truncate");
    let err = strict
        .load::<Linear>(&"m@1.0.0".parse().expect("ref"))
        .expect_err("damaged signature");
    assert!(matches!(refused_for(&err), SignatureError::Malformed { .. }));
    // Without a policy, loads do not look at signatures.
    assert!(open.load::<Linear>(&"m@1.0.0".parse().expect("ref")).is_ok());
}
