//! API key secrets: generation, the format check, and the hash that is stored instead.

use std::fmt;

use rand::distr::{Alphanumeric, Distribution as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// Every key starts with this prefix (what secret scanners look for).
pub const KEY_PREFIX: &str = "veil_sk_";
/// Base62 characters after the prefix in a new key: 43 × log2(62) ≈ 256 bits.
pub const KEY_RANDOM_CHARS: usize = 43;
/// The fewest base62 characters a presented key may have.
const MIN_RANDOM_CHARS: usize = 32;
/// The most (longer bearer tokens are not Veil keys; bounds the hashing work).
const MAX_RANDOM_CHARS: usize = 128;

/// An API key, as given to its owner once. Never shown by `Debug`; wiped on drop.
pub struct SecretKey(Zeroizing<String>);

impl SecretKey {
    /// A new key: [`KEY_PREFIX`] and [`KEY_RANDOM_CHARS`] base62 characters drawn uniformly
    /// from `rng` (use the OS RNG).
    pub fn generate<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = Zeroizing::new(String::with_capacity(KEY_PREFIX.len() + KEY_RANDOM_CHARS));
        key.push_str(KEY_PREFIX);
        for _ in 0..KEY_RANDOM_CHARS {
            key.push(char::from(Alphanumeric.sample(rng)));
        }
        Self(key)
    }

    /// The key itself, to hand to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its hash, as stored.
    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.0)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({KEY_PREFIX}<redacted>)")
    }
}

/// Whether `presented` has the shape of a Veil key: the prefix, then 32 to 128 base62
/// characters. Checked before any lookup.
pub(super) fn well_formed(presented: &str) -> bool {
    presented.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        (MIN_RANDOM_CHARS..=MAX_RANDOM_CHARS).contains(&rest.len())
            && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// SHA-256 of a key: what the store keeps.
///
/// A fast, unsalted hash is the right tool here: keys are 256-bit random strings, not
/// passwords, so neither a dictionary nor brute force applies, and a slow password hash would
/// only cost time on every request. Keys are found by their hash; the final equality check is
/// constant time ([`KeyHash::matches`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash(pub(crate) [u8; 32]);

impl KeyHash {
    /// The hash of a presented key.
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// Constant-time equality.
    pub fn matches(&self, other: &[u8]) -> bool {
        bool::from(self.0.as_slice().ct_eq(other))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_format_and_differ() {
        let mut rng = rand::TryRngCore::unwrap_err(rand::rngs::OsRng);
        let a = SecretKey::generate(&mut rng);
        let b = SecretKey::generate(&mut rng);
        assert_eq!(a.expose().len(), KEY_PREFIX.len() + KEY_RANDOM_CHARS);
        assert!(well_formed(a.expose()));
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash(), KeyHash::of(a.expose()));
    }

    #[test]
    fn debug_never_shows_the_key_or_its_hash() {
        let mut rng = rand::rng();
        let key = SecretKey::generate(&mut rng);
        let random = &key.expose()[KEY_PREFIX.len()..];
        let shown = format!("{key:?} {:?}", key.hash());
        assert!(!shown.contains(random), "{shown}");
        assert!(!shown.contains(&hex::encode(key.hash().0)), "{shown}");
    }

    #[test]
    fn malformed_keys_are_refused() {
        let ok = format!("{KEY_PREFIX}{}", "a".repeat(32));
        assert!(well_formed(&ok));
        for bad in [
            String::new(),
            "sk-1234567890abcdefghijklmnopqrstuvwxyz".to_owned(),
            format!("{KEY_PREFIX}{}", "a".repeat(31)),
            format!("{KEY_PREFIX}{}", "a".repeat(129)),
            format!("{KEY_PREFIX}{}-", "a".repeat(40)),
            format!("VEIL_SK_{}", "a".repeat(40)),
            format!("{KEY_PREFIX}{}é", "a".repeat(40)),
        ] {
            assert!(!well_formed(&bad), "{bad}");
        }
    }

    #[test]
    fn hash_comparison_is_exact() {
        let h = KeyHash::of("veil_sk_x");
        assert!(h.matches(&h.0));
        let mut other = h.0;
        other[31] ^= 1;
        assert!(!h.matches(&other));
        assert!(!h.matches(&h.0[..31]));
    }
}
