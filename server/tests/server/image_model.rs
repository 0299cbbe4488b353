//! `serve --image-model-manifest`: in a measured image the server serves only the model the
//! manifest baked into the image pins. The model directory's own `manifest.json` does not
//! count, so weights swapped on a disk (with a manifest to match) are refused.
//! (Serving the pinned model is tested by booting the image: `tests/image_boot.rs`.)

use crate::common;

use common::binary;

#[test]
fn refuses_a_model_other_than_the_image_pins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = common::source();
    let weights = binary::model_path();
    let model_dir = dir.path().join("model");
    std::fs::create_dir(&model_dir).expect("model dir");
    let name = weights.file_name().expect("file name");
    std::os::unix::fs::symlink(&weights, model_dir.join(name)).expect("symlink");
    // The directory's own manifest matches its files: outside an image they would load.
    std::fs::write(
        model_dir.join("manifest.json"),
        serde_json::to_vec(&source.manifest).expect("json"),
    )
    .expect("manifest");
    // The image pins other weights.
    let mut pinned = source.manifest.clone();
    pinned.files[0].sha256 = "ab".repeat(32);
    let pinned_path = dir.path().join("pinned.json");
    std::fs::write(&pinned_path, serde_json::to_vec(&pinned).expect("json")).expect("pin");

    let out = binary::run(
        &[
            "serve",
            "--tee",
            "simulated",
            "--no-auth",
            "--listen",
            "127.0.0.1:0",
            "--model",
            model_dir.to_str().expect("utf-8"),
            "--image-model-manifest",
            pinned_path.to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "served a model the image does not pin: {err}"
    );
    assert!(
        err.contains(&format!("the manifest pins {}", "ab".repeat(32))),
        "{err}"
    );
    assert!(!err.contains("listening"), "{err}");
}
