//! The stable-toolchain stand-in for libFuzzer, shared by the smoke tests of every crate
//! with fuzz targets (`attest/`, `protocol/`, `client-sdk/` `tests/*/fuzz_smoke.rs`, which
//! include this file with `#[path]`; it is not part of the fuzz crate).
//!
//! [`smoke`] runs an entry point over every seed of `fuzz/seeds/<target>/` and over
//! deterministic mutations of each (bit flips, byte and 32-bit overwrites, inserts,
//! deletes, truncation, duplicated chunks; xorshift PRNG seeded by the file name), and
//! fails on any panic, saving the input under `CARGO_TARGET_TMPDIR`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// Mutations of each seed per run.
pub const MUTATIONS_PER_SEED: usize = 2_000;

/// `fuzz/seeds/`, from any crate next to `fuzz/`.
pub fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds")
}

/// The seed files of one target, sorted by name.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = seeds_dir().join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (
                p.file_name()
                    .expect("file name")
                    .to_string_lossy()
                    .into_owned(),
                bytes,
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// Writes one seed file (for the `regenerate_seeds` tests).
pub fn write_seed(target: &str, name: &str, bytes: &[u8]) {
    let dir = seeds_dir().join(target);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

/// xorshift64*: tiny, deterministic, good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: &[u8]) -> Self {
        // FNV-1a of the seed name: every seed gets its own, stable, sequence.
        let h = seed.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Self(h | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Values that tend to find edge cases in lengths, offsets and counts.
const INTERESTING_U32: [u32; 8] = [0, 1, 24, 0x7f, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff];

/// One to four byte-level mutations: bit flips, byte and 32-bit overwrites, inserts,
/// deletes, truncation and duplication of a chunk.
pub fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = [0x00, 0x01, 0x30, 0x7f, 0x80, 0xff, rng.byte()][rng.below(7)];
            }
            2 if len >= 4 => {
                let i = rng.below(len - 3);
                let x = match rng.below(3) {
                    0 => INTERESTING_U32[rng.below(INTERESTING_U32.len())],
                    1 => len as u32,
                    _ => rng.next() as u32,
                };
                v[i..i + 4].copy_from_slice(&x.to_le_bytes());
            }
            3 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
                v.splice(at..at, bytes);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(16)).min(len);
                v.drain(at..end);
            }
            5 => v.truncate(rng.below(len + 1)),
            6 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(64)).min(len);
                let chunk = v[at..end].to_vec();
                let to = rng.below(len + 1);
                v.splice(to..to, chunk);
            }
            _ => {}
        }
    }
    v
}

/// Runs `entry` on each seed of `target` and on its mutations, plus `extra` inputs (e.g.
/// random bytes); fails naming the first input that panicked, after saving it under
/// `CARGO_TARGET_TMPDIR`. Returns the number of inputs run.
pub fn smoke(target: &str, entry: fn(&[u8]), extra: &[Vec<u8>]) -> usize {
    let run = |input: &[u8], label: &str| {
        if catch_unwind(AssertUnwindSafe(|| entry(input))).is_err() {
            let saved = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("fuzz_smoke-{target}-{label}.bin"));
            let _ = std::fs::write(&saved, input);
            panic!(
                "{target}: {label} panicked; input saved to {}",
                saved.display()
            );
        }
    };
    let mut runs = 0;
    for (name, seed) in seeds(target) {
        let mut rng = Rng::new(format!("{target}/{name}").as_bytes());
        for i in 0..=MUTATIONS_PER_SEED {
            let input = if i == 0 {
                seed.clone()
            } else {
                mutate(&mut rng, &seed)
            };
            run(&input, &format!("{name}-{i}"));
            runs += 1;
        }
    }
    for (i, input) in extra.iter().enumerate() {
        run(input, &format!("extra-{i}"));
        runs += 1;
    }
    eprintln!("{target}: {runs} inputs, no panic");
    runs
}

/// `n` pseudo-random inputs of up to `max_len` bytes, deterministic per `label`.
pub fn random_inputs(label: &str, n: usize, max_len: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(label.as_bytes());
    (0..n)
        .map(|_| {
            let len = rng.below(max_len + 1);
            (0..len).map(|_| rng.byte()).collect()
        })
        .collect()
}
