//! `RuntimeJson::parse` on arbitrary text: never panics; errors and values format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livekit_provision::Hint;
use livekit_provision::render::RuntimeJson;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match RuntimeJson::parse(text) {
        Ok(parsed) => {
            let _ = format!("{parsed:?}");
            assert_eq!(parsed.credentials().key, parsed.api_key);
        }
        Err(e) => {
            let _ = (e.to_string(), e.hint(), e.file());
        }
    }
});
