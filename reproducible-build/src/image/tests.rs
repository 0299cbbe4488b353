use super::*;

fn manifest_for(name: &str, bytes: &[u8]) -> Vec<u8> {
    format!(
        r#"{{"id":"m","files":[{{"name":"{name}","size":{},"sha256":"{}"}}]}}"#,
        bytes.len(),
        hex::encode(Sha256::digest(bytes))
    )
    .into_bytes()
}

fn files() -> ImageFiles {
    ImageFiles {
        init: b"init".to_vec(),
        server: b"server".to_vec(),
        libraries: vec![("/lib64/ld-linux-x86-64.so.2".into(), b"ld".to_vec())],
        modules: vec![("kernel/net/virtio_net.ko.xz".into(), b"ko".to_vec())],
        model_manifest: manifest_for("w.gguf", b"weights"),
        model_files: vec![("w.gguf".into(), b"weights".to_vec())],
        settings: Some(ServerSettings {
            port: 8080,
            tee: "simulated".into(),
        }),
    }
}

#[test]
fn initrd_layout_and_settings() {
    let i = initrd(&files()).expect("builds");
    let paths: Vec<&str> = i.files().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        [
            "bin/veil-server",
            "etc/veil/model-manifest.json",
            "etc/veil/modules",
            "etc/veil/server.args",
            "init",
            "lib/modules/kernel/net/virtio_net.ko.xz",
            "lib64/ld-linux-x86-64.so.2",
            "model/w.gguf",
        ]
    );
    let args = i
        .files()
        .find(|(p, _)| *p == "etc/veil/server.args")
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .expect("args");
    assert!(
        args.starts_with("serve\n--listen\n0.0.0.0:8080\n--tee\nsimulated\n"),
        "{args}"
    );
    assert!(args.contains("--image-model-manifest\n/etc/veil/model-manifest.json\n"));
    let modules = i
        .files()
        .find(|(p, _)| *p == "etc/veil/modules")
        .map(|(_, b)| b.to_vec())
        .expect("list");
    assert_eq!(modules, b"/lib/modules/kernel/net/virtio_net.ko.xz\n");
    assert_eq!(
        i.to_gzip().expect("gzip"),
        initrd(&files()).expect("again").to_gzip().expect("gzip"),
        "same inputs, same bytes"
    );
}

#[test]
fn refuses_a_model_that_does_not_match_its_manifest() {
    let mut f = files();
    f.model_files[0].1 = b"other weights".to_vec();
    let err = initrd(&f).expect_err("mismatch").to_string();
    assert!(err.contains("w.gguf") && err.contains("pins"), "{err}");
    let mut f = files();
    f.model_files.clear();
    assert!(initrd(&f).is_err(), "missing file");
    let mut f = files();
    f.model_manifest = manifest_for("../etc/passwd", b"weights");
    assert!(initrd(&f).is_err(), "path in a file name");
}

#[test]
fn cmdline_carries_the_static_network() {
    assert_eq!(
        cmdline(QEMU_USER_NET),
        "console=ttyS0 panic=-1 ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off"
    );
}
