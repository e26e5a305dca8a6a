//! Fuzzes the header parser: arbitrary bytes into `Header::decode`. It must never panic, and
//! whatever it accepts must re-encode to exactly the input (the encoding is canonical, so no two
//! byte strings decode to the same header) and decode again to the same header.

#![no_main]

use chiron_seal::Header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = Header::decode(data) else {
        return;
    };
    let encoded = header.encode();
    assert_eq!(
        encoded, data,
        "Header::decode accepted a non-canonical encoding"
    );
    match Header::decode(&encoded) {
        Ok(again) => assert_eq!(again, header, "decode(encode(h)) != h"),
        Err(e) => panic!("re-encoded header does not decode: {e}"),
    }
    // Derived sizes of an accepted header must not overflow (debug assertions are on).
    let _ = (
        header.plaintext_bytes(),
        header.chunk_count(),
        header.sealed_chunk_len(),
        header.schema.feature_bytes(),
        header.schema.split_start(header.schema.splits.len()),
    );
});
