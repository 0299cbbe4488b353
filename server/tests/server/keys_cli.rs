//! `veil-server keys …` and the key checks `serve` makes before it loads anything (no model).

use std::path::Path;
use std::process::{Command, Output};

fn veil_server(args: &[&str], db: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veil-server"))
        .args(args)
        .arg("--db")
        .arg(db)
        .env("RUST_LOG", "info")
        .output()
        .expect("run veil-server")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// `veil_sk_` and 43 base62 characters.
fn is_key(s: &str) -> bool {
    s.strip_prefix("veil_sk_")
        .is_some_and(|r| r.len() == 43 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[test]
fn create_prints_one_key_once_list_never_shows_it_and_revoke_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("nested").join("keys.sqlite3");
    let out = veil_server(
        &[
            "keys",
            "create",
            "--name",
            "ci-bot",
            "--rate",
            "1500",
            "--max-streams",
            "2",
        ],
        &db,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout is the key alone: {stdout:?}");
    let key = lines[0];
    assert!(is_key(key), "format: {key:?}");
    let random = &key["veil_sk_".len()..];
    assert!(
        !text(&out.stderr).contains(random),
        "the key goes to stdout only"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&db).expect("db").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the database is private");
    }

    let second = veil_server(&["keys", "create", "--name", "unlimited"], &db);
    assert!(second.status.success());
    let other = text(&second.stdout);
    assert!(is_key(other.trim()));
    assert_ne!(other.trim(), key, "every key is new");

    let list = veil_server(&["keys", "list"], &db);
    assert!(list.status.success());
    let listed = text(&list.stdout);
    assert!(!listed.contains(random), "list never shows a key");
    assert!(!listed.contains(&other.trim()["veil_sk_".len()..]));
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "ID",
            "NAME",
            "CREATED",
            "TOKENS/MIN",
            "CONCURRENT",
            "REVOKED"
        ]
    );
    assert_eq!(rows.len(), 3, "{listed}");
    assert_eq!((rows[1][0], rows[1][1]), ("1", "ci-bot"));
    assert!(
        rows[1][2].ends_with('Z') && rows[1][2].contains('T'),
        "RFC 3339: {}",
        rows[1][2]
    );
    assert_eq!(&rows[1][3..], ["1500", "2", "-"]);
    assert_eq!(&rows[2][1..2], ["unlimited"]);
    assert_eq!(&rows[2][3..], ["-", "-", "-"]);

    // Revoke by name, then by id.
    let revoke = veil_server(&["keys", "revoke", "ci-bot"], &db);
    assert!(revoke.status.success(), "{}", text(&revoke.stderr));
    let revoke = veil_server(&["keys", "revoke", "2"], &db);
    assert!(revoke.status.success(), "{}", text(&revoke.stderr));
    let listed = text(&veil_server(&["keys", "list"], &db).stdout);
    for row in listed.lines().skip(1) {
        let revoked = row.split_whitespace().last().expect("column");
        assert!(revoked.ends_with('Z'), "revoked at a time: {row}");
    }
}

#[test]
fn bad_requests_fail_without_printing_a_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("keys.sqlite3");
    assert!(
        veil_server(&["keys", "create", "--name", "a"], &db)
            .status
            .success()
    );
    for args in [
        &["keys", "create", "--name", "a"][..],
        &["keys", "create", "--name", "12"],
        &["keys", "create", "--name", "with space"],
        &["keys", "create", "--name", "b", "--rate", "0"],
        &["keys", "create", "--name", "b", "--max-concurrent", "0"],
        &["keys", "revoke", "nobody"],
        &["keys", "revoke", "99"],
    ] {
        let out = veil_server(args, &db);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed {:?}",
            text(&out.stdout)
        );
    }
}

#[test]
fn the_default_database_is_under_the_data_home() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |envs: &[(&str, &Path)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_veil-server"));
        c.args(["keys", "create", "--name", "default"])
            .env_remove("XDG_DATA_HOME");
        for (k, v) in envs {
            c.env(k, v);
        }
        c.output().expect("run veil-server")
    };
    let xdg = dir.path().join("xdg");
    assert!(run(&[("XDG_DATA_HOME", &xdg)]).status.success());
    assert!(xdg.join("veil").join("keys.sqlite3").is_file());
    let home = dir.path().join("home");
    assert!(run(&[("HOME", &home)]).status.success());
    assert!(home.join(".local/share/veil/keys.sqlite3").is_file());
}

#[test]
fn serve_refuses_to_start_without_an_active_key_unless_no_auth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("keys.sqlite3");
    let serve = ["serve", "--listen", "127.0.0.1:0", "--tee", "simulated"];

    let out = veil_server(&serve, &db);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("no key database") && err.contains("keys create"),
        "{err}"
    );
    assert!(!db.exists(), "serve does not create a database");

    assert!(
        veil_server(&["keys", "create", "--name", "a"], &db)
            .status
            .success()
    );
    assert!(veil_server(&["keys", "revoke", "a"], &db).status.success());
    let out = veil_server(&serve, &db);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("no active API key") && err.contains("--no-auth"),
        "{err}"
    );

    let mut both: Vec<&str> = serve.to_vec();
    both.push("--no-auth");
    let out = veil_server(&both, &db);
    assert_eq!(out.status.code(), Some(2), "--db and --no-auth conflict");
}
