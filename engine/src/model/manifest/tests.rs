use super::*;

fn file(name: &str) -> ManifestFile {
    ManifestFile {
        name: name.to_owned(),
        size: 1,
        sha256: "00".repeat(32),
    }
}

fn manifest(files: Vec<ManifestFile>) -> ModelManifest {
    ModelManifest {
        id: "m".to_owned(),
        files,
    }
}

#[test]
fn default_manifest_is_valid() {
    ModelManifest::smollm2_135m_instruct()
        .validate()
        .expect("built-in manifest is valid");
}

#[test]
fn digest_is_pinned_for_the_default_model() {
    // Golden value: changing the canonical encoding changes what the attestation binds.
    assert_eq!(
        hex::encode(ModelManifest::smollm2_135m_instruct().digest()),
        DEFAULT_DIGEST_HEX
    );
}

// Computed independently (Python hashlib) from the encoding documented on `digest`.
const DEFAULT_DIGEST_HEX: &str = "4aa50db994e13d08ff074938214e4f5c44726e00e2ec9ccfcfb486882ee3fdf6";

#[test]
fn digest_ignores_file_order_and_json_layout() {
    let a = manifest(vec![file("a.gguf"), file("b.json")]);
    let b = manifest(vec![file("b.json"), file("a.gguf")]);
    assert_eq!(a.digest(), b.digest());
    let json = r#"{ "files": [ {"sha256": "0000000000000000000000000000000000000000000000000000000000000000", "size": 1, "name": "a.gguf"},
        {"name": "b.json", "size": 1, "sha256": "0000000000000000000000000000000000000000000000000000000000000000"} ], "id": "m" }"#;
    let parsed = ModelManifest::from_json(json.as_bytes()).expect("valid manifest");
    assert_eq!(parsed.digest(), a.digest());
}

#[test]
fn digest_changes_with_every_field() {
    let base = manifest(vec![file("a.gguf")]);
    let mut id = base.clone();
    id.id = "n".to_owned();
    let mut name = base.clone();
    name.files[0].name = "b.gguf".to_owned();
    let mut size = base.clone();
    size.files[0].size = 2;
    let mut sha = base.clone();
    sha.files[0].sha256 = format!("01{}", "00".repeat(31));
    let digests = [&base, &id, &name, &size, &sha].map(ModelManifest::digest);
    for (i, a) in digests.iter().enumerate() {
        for b in &digests[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn rejects_pickle_formats() {
    for name in [
        "pytorch_model.bin",
        "model.pt",
        "model.pth",
        "weights.pkl",
        "x.ckpt",
    ] {
        let err = manifest(vec![file(name)]).validate().expect_err(name);
        assert!(
            matches!(err, Error::UnsupportedFormat { .. }),
            "{name}: {err}"
        );
    }
}

#[test]
fn rejects_unknown_formats() {
    let err = manifest(vec![file("model.exe")])
        .validate()
        .expect_err("unknown format");
    assert!(matches!(err, Error::UnsupportedFormat { .. }), "{err}");
}

#[test]
fn rejects_path_traversal_in_names() {
    for name in ["../x.gguf", "a/b.gguf", ".hidden.gguf", "a\\b.gguf"] {
        let err = manifest(vec![file(name)]).validate().expect_err(name);
        assert!(matches!(err, Error::InvalidManifest(_)), "{name}: {err}");
    }
}

#[test]
fn rejects_malformed_digests() {
    let mut f = file("a.gguf");
    f.sha256 = "AB".repeat(32);
    let err = manifest(vec![f]).validate().expect_err("uppercase");
    assert!(matches!(err, Error::InvalidManifest(_)), "{err}");
    let mut f = file("a.gguf");
    f.sha256 = "00".repeat(31);
    assert!(manifest(vec![f]).validate().is_err());
}

#[test]
fn rejects_zero_or_two_weights_files() {
    assert!(manifest(vec![file("config.json")]).validate().is_err());
    assert!(
        manifest(vec![file("a.gguf"), file("b.safetensors")])
            .validate()
            .is_err()
    );
    assert!(
        manifest(vec![file("a.gguf"), file("a.gguf")])
            .validate()
            .is_err()
    );
}

#[test]
fn rejects_unknown_manifest_fields_and_oversized_input() {
    let json = br#"{"id":"m","files":[],"extra":1}"#;
    assert!(ModelManifest::from_json(json).is_err());
    let big = vec![b' '; MAX_MANIFEST_LEN + 1];
    assert!(ModelManifest::from_json(&big).is_err());
}
