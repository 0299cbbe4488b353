//! The fuzz entry point of `veil-client`: the incremental parser of the inner (Binary HTTP)
//! response, which reads decrypted chunked-OHTTP plaintext as it arrives.
//!
//! Shared by the cargo-fuzz target `fuzz_targets/inner_response.rs` and by the stable smoke
//! test `client-sdk/tests/client/fuzz_smoke.rs` (included with `#[path]`); it depends on nothing
//! but `std` and `veil-client`.

use veil_client::fuzz_inner_response;

/// `inner_response`: the bytes as an inner response, fed whole, in pieces of every size
/// from 1 to 7 bytes, and in the pieces the first byte picks. How the bytes are cut must
/// not change what is parsed, or whether it is refused.
pub fn inner_response(data: &[u8]) {
    let whole = fuzz_inner_response(&[data]);
    let step = 1 + usize::from(data.first().copied().unwrap_or(0) % 64);
    for size in (1..=7).chain([step]) {
        let pieces: Vec<&[u8]> = data.chunks(size).collect();
        let cut = fuzz_inner_response(&pieces);
        assert_eq!(
            whole.as_ref().ok(),
            cut.as_ref().ok(),
            "pieces of {size} bytes parse differently"
        );
        assert_eq!(
            whole.is_ok(),
            cut.is_ok(),
            "pieces of {size} bytes: accepted one way, refused the other"
        );
    }
    if let Ok((status, _, _)) = &whole {
        assert!(
            status.is_some_and(|s| (200..=599).contains(&s)),
            "a complete response without a final status: {status:?}"
        );
    }
}
