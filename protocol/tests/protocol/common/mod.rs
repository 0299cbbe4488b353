//! Shared test helpers: a deterministic random source and hex decoding.

#![allow(dead_code, unreachable_pub, reason = "each test binary uses a subset")]

use std::{collections::VecDeque, convert::Infallible};

use veil_protocol::rand_core::{TryCryptoRng, TryRng};

/// Yields exactly the queued bytes, in order; panics when asked for more, so a test
/// notices if the code under test draws randomness it should not.
#[derive(Debug, Default)]
pub struct FixedRng(VecDeque<u8>);

impl FixedRng {
    pub fn new(parts: &[&[u8]]) -> Self {
        Self(parts.iter().flat_map(|p| p.iter().copied()).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryRng for FixedRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for d in dst {
            *d = self.0.pop_front().expect("FixedRng exhausted");
        }
        Ok(())
    }
}

impl TryCryptoRng for FixedRng {}

/// Decodes hex, ignoring whitespace (so RFC hex dumps can be pasted as-is).
pub fn hex(s: &str) -> Vec<u8> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    ::hex::decode(clean).expect("valid hex")
}
