//! The validating constructors on arbitrary text: `LivekitVersion::parse`, `ApiKey::new`,
//! `Secret::api_secret`, IP parsing and `Settings::from_yaml`. Never panic; what they accept
//! round-trips, and a refused secret is never quoted in its error.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use livekit_provision::{ApiKey, LivekitVersion, Secret, Settings, livekit_url};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(version) = LivekitVersion::parse(text) {
        // Safe in URLs and file names, and both spellings read back as the same version.
        assert!(
            version
                .to_string()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'),
            "{version:?}"
        );
        assert_eq!(
            LivekitVersion::parse(&version.tag()).ok(),
            Some(version.clone())
        );
        assert_eq!(
            LivekitVersion::parse(&version.to_string()).ok(),
            Some(version)
        );
    }

    if let Ok(key) = ApiKey::new(text) {
        assert_eq!(key.as_str(), text);
        assert_eq!(key.to_string(), text);
    }

    match Secret::api_secret(text) {
        Ok(secret) => {
            assert_eq!(secret.expose(), text);
            assert_eq!(format!("{secret:?}"), "Secret(****)");
        }
        Err(e) => {
            assert!(
                e.value.is_none(),
                "a refused secret is carried in its error"
            );
            if text.len() >= 16 {
                assert!(
                    !e.to_string().contains(text),
                    "a refused secret is quoted: {e}"
                );
            }
        }
    }

    if let Ok(ip) = text.parse::<IpAddr>() {
        let url = livekit_url(ip, 7880);
        assert!(url.starts_with("ws://") && url.ends_with(":7880"), "{url}");
    }

    match Settings::from_yaml(text) {
        Ok(settings) => {
            assert!(
                settings.validate().is_ok(),
                "from_yaml accepted what validate refuses"
            );
            // What we accept, written back out, reads back the same.
            let yaml = serde_yaml::to_string(&settings).expect("settings serialize");
            match Settings::from_yaml(&yaml) {
                Ok(again) => assert_eq!(again, settings, "\n{yaml}"),
                Err(e) => panic!("re-reading {yaml:?} failed: {e}"),
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
