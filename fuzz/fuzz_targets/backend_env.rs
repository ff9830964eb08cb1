//! `BackendEnv::parse` on arbitrary text: never panics; errors and values format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livekit_provision::Hint;
use livekit_provision::render::BackendEnv;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match BackendEnv::parse(text) {
        Ok(parsed) => {
            let _ = format!("{parsed:?}");
            if let Some(creds) = parsed.credentials() {
                assert_eq!(Some(&creds.key), parsed.api_key.as_ref());
            }
        }
        Err(e) => {
            let _ = (e.to_string(), e.hint(), e.file());
        }
    }
});
