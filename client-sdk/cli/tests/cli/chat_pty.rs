//! `veil chat` in a pseudo-terminal, as a person uses it: the attested platform is shown
//! first, a typed question gets the test server's streamed answer through the sealed
//! path, and Ctrl-D ends the session with exit status 0. Every wait is bounded.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::process::{Child, Command};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::support::{ANSWER, MEASUREMENT, TestServer};
use rustix::fs::OFlags;
use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};

/// The whole session must end within this, or the test fails (and kills the child).
const DEADLINE: Duration = Duration::from_secs(60);

/// A new pseudo-terminal: the master (ours) and the slave (the child's terminal).
fn open_pty() -> (File, File) {
    let master =
        openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).expect("openpt");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("ptsname");
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        // Never become this test process's controlling terminal.
        .custom_flags(OFlags::NOCTTY.bits() as i32)
        .open(std::ffi::OsStr::from_bytes(name.as_bytes()))
        .expect("open the pty slave");
    (File::from(master), slave)
}

/// What the terminal shows, with colours and carriage returns removed.
fn screen(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                // A CSI sequence ends with a byte in 0x40..=0x7e.
                for c in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&c) {
                        break;
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// The terminal's output so far, read by a thread that forwards every read.
struct Terminal {
    rx: Receiver<Vec<u8>>,
    raw: Vec<u8>,
    start: Instant,
}

impl Terminal {
    fn new(master: &File) -> Self {
        let mut reader = master.try_clone().expect("clone master");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once the child has exited and every slave handle is closed.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Self {
            rx,
            raw: Vec::new(),
            start: Instant::now(),
        }
    }

    /// Waits until `done` holds for the screen; panics (after killing `child`) at the deadline.
    fn wait_for(&mut self, child: &mut Child, what: &str, done: impl Fn(&str) -> bool) -> String {
        loop {
            let text = screen(&self.raw);
            if done(&text) {
                return text;
            }
            let closed = match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(bytes) => {
                    self.raw.extend(bytes);
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            if closed || self.start.elapsed() >= DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} waiting for {what}; the terminal shows:\n{text}",
                    if closed {
                        "terminal closed"
                    } else {
                        "timed out"
                    }
                );
            }
        }
    }
}

fn wait_exit(child: &mut Child, start: Instant) -> std::process::ExitStatus {
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() >= DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("veil chat did not exit after Ctrl-D");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_in_a_terminal_shows_the_platform_streams_the_answer_and_quits_on_ctrl_d() {
    let server = TestServer::start().await;
    let url = server.url.clone();
    let (status, shown) = tokio::task::spawn_blocking(move || {
        let (mut master, slave) = open_pty();
        let mut child = {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_veil"));
            cmd.args(["chat", &url, "--allow-simulated"])
                .env_remove("NO_COLOR")
                .stdin(slave.try_clone().expect("slave"))
                .stdout(slave.try_clone().expect("slave"))
                .stderr(slave);
            cmd.spawn().expect("spawn veil chat")
            // `cmd` drops here with our slave handles: only the child holds the terminal.
        };
        let mut term = Terminal::new(&master);
        let start = term.start;

        let head = term.wait_for(&mut child, "the first prompt", |t| {
            t.contains("verified:") && t.trim_end().ends_with('>')
        });
        master
            .write_all(b"What does the server say?\n")
            .expect("type a question");
        let answer = ANSWER.concat();
        let after = term.wait_for(&mut child, "the answer and the next prompt", |t| {
            t.split_once(answer.as_str())
                .is_some_and(|(_, rest)| rest.trim_end().ends_with('>'))
        });
        // Ctrl-D at the start of a line: end of input for the chat.
        master.write_all(&[0x04]).expect("send Ctrl-D");
        (wait_exit(&mut child, start), (head, after))
    })
    .await
    .expect("join");

    let (head, all) = shown;
    let lines: Vec<&str> = head.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines[0].starts_with("attesting http://127.0.0.1:"),
        "{head}"
    );
    assert_eq!(
        lines[1],
        format!(
            "verified: platform simulated  measurement {}",
            hex::encode(MEASUREMENT)
        ),
        "{head}"
    );
    assert!(
        lines[2].starts_with("model test-model (digest 0202"),
        "{head}"
    );
    assert!(
        head.contains("warning: SIMULATED platform"),
        "the simulated platform is flagged: {head}"
    );
    let question = all
        .find("What does the server say?")
        .expect("echoed question");
    let answer = all.find(ANSWER.concat().as_str()).expect("answer shown");
    assert!(question < answer, "{all}");
    assert!(status.success(), "exit status {status:?}; terminal:\n{all}");
    assert!(server.posts() >= 1, "the question went through the gateway");
}
