//! `LivekitYaml::parse` on arbitrary text: never panics; errors and values format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livekit_provision::Hint;
use livekit_provision::render::LivekitYaml;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match LivekitYaml::parse(text) {
        Ok(parsed) => {
            let _ = format!("{parsed:?}");
            let _ = parsed.credentials();
        }
        Err(e) => {
            let _ = (e.to_string(), e.hint(), e.file());
        }
    }
});
