//! `ExtraOverlay::parse` on arbitrary text: never panics, and every overlay it accepts renders
//! into a `livekit.yaml` that parses back to what `expected` says (the overlay survives the merge
//! and does not disturb the managed keys).
#![no_main]

use libfuzzer_sys::fuzz_target;
use livekit_provision::ExtraOverlay;
use livekit_provision::Hint;
use livekit_provision::inputs::RenderInputs;
use livekit_provision::render::{LivekitYaml, expected, render};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let overlay = match ExtraOverlay::parse(text) {
        Ok(overlay) => overlay,
        Err(e) => {
            let _ = (e.to_string(), e.hint());
            return;
        }
    };
    // `.nan` is a valid YAML float but never equal to itself: the round trip cannot compare it.
    if overlay != overlay.clone() {
        return;
    }
    let inputs = RenderInputs {
        extra: overlay,
        ..livekit_provision_fuzz::typical_inputs()
    };
    let rendered = render(&inputs);
    let parsed = match LivekitYaml::parse(&rendered.livekit_yaml) {
        Ok(parsed) => parsed,
        Err(e) => panic!(
            "{e}: {e:?}\n--- extra.yaml\n{text}\n--- livekit.yaml\n{}",
            rendered.livekit_yaml
        ),
    };
    assert_eq!(
        parsed,
        expected(&inputs).livekit_yaml,
        "\n--- extra.yaml\n{text}\n--- livekit.yaml\n{}",
        rendered.livekit_yaml
    );
});
