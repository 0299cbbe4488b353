//! The real `veil-server` binary as a child process: started on a free loopback port with
//! the default model, its stderr written to a file the test reads (and searches) later.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running `veil-server serve`; killed when dropped unless it already exited.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub base: String,
    pub log: PathBuf,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The default model's weights file (fetched and cached once per machine).
pub fn model_path() -> PathBuf {
    let s = super::source();
    s.dir.join(&s.manifest.weights().expect("weights").0.name)
}

/// Runs `veil-server ARGS` to completion; returns its output.
pub fn run(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_veil-server"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run veil-server")
}

/// A key database at `db` with one key, made by `veil-server keys create`; returns the key.
pub fn create_key(db: &Path, name: &str) -> String {
    let out = run(
        &[
            "keys",
            "create",
            "--name",
            name,
            "--db",
            db.to_str().expect("UTF-8 path"),
        ],
        db.parent().expect("directory"),
    );
    assert!(
        out.status.success(),
        "keys create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout)
        .expect("UTF-8 key")
        .trim()
        .to_owned();
    assert!(key.starts_with("veil_sk_"), "a Veil key");
    key
}

/// Starts `veil-server serve --listen 127.0.0.1:0 --tee simulated --model DEFAULT EXTRA` in
/// `cwd` with `RUST_LOG=rust_log`, its stderr in `log`, and waits until it listens.
pub fn start(extra: &[&str], cwd: &Path, log: &Path, rust_log: &str) -> ServerProcess {
    start_with(
        Command::new(env!("CARGO_BIN_EXE_veil-server")),
        extra,
        cwd,
        log,
        rust_log,
    )
}

/// As [`start`], with `command` as the program to run (its arguments follow).
pub fn start_with(
    mut command: Command,
    extra: &[&str],
    cwd: &Path,
    log: &Path,
    rust_log: &str,
) -> ServerProcess {
    let model = model_path();
    let stderr = File::create(log).expect("log file");
    let child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--tee", "simulated"])
        .args(extra)
        .arg("--model")
        .arg(&model)
        .current_dir(cwd)
        .env("RUST_LOG", rust_log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start veil-server");
    let mut server = ServerProcess {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        base: String::new(),
        log: log.to_owned(),
    };
    // The server prints `veil-server: listening on http://ADDR` once it accepts connections.
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(addr) = text
            .lines()
            .find_map(|l| l.split("listening on http://").nth(1))
        {
            server.addr = addr.trim().parse().expect("socket address");
            server.base = format!("http://{}", server.addr);
            return server;
        }
        if let Some(status) = server.child.try_wait().expect("try_wait") {
            panic!("veil-server exited ({status}) before listening:\n{text}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "server listening within 120 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl ServerProcess {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.pid()).expect("pid"))
            .expect("non-zero pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Everything the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).expect("log")
    }
}

/// Sends one raw HTTP/1.1 request (`Connection: close`) and reads the whole answer.
pub fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    s.write_all(request).expect("send");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// A `POST path` request with a JSON body and optional `Authorization`, closing after.
pub fn post(path: &str, body: &str, authorization: Option<&str>) -> Vec<u8> {
    let auth = authorization.map_or_else(String::new, |a| format!("Authorization: {a}\r\n"));
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{auth}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The status code of a raw HTTP answer.
pub fn status(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP answer: {answer:?}"))
}
