//! Render arbitrary valid inputs and parse each file back: the parsers must return exactly what
//! `expected` projects from the inputs, the three files must agree on the credentials, and
//! rendering must be deterministic. Invalid inputs are skipped (see `FuzzInputs::build`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use livekit_provision::render::ParsedFiles;
use livekit_provision::render::{expected, render};
use livekit_provision_fuzz::FuzzInputs;

fuzz_target!(|raw: FuzzInputs| {
    let Some(inputs) = raw.build() else {
        return;
    };
    let rendered = render(&inputs);
    assert_eq!(
        rendered,
        render(&inputs.clone()),
        "rendering is not deterministic"
    );
    let parsed = match ParsedFiles::parse(&rendered) {
        Ok(parsed) => parsed,
        Err(e) => panic!(
            "{e}: {e:?}\n--- livekit.yaml\n{}\n--- backend.env\n{}\n--- runtime.json\n{}",
            rendered.livekit_yaml, rendered.backend_env, rendered.runtime_json
        ),
    };
    let want = expected(&inputs);
    assert_eq!(
        parsed.livekit_yaml, want.livekit_yaml,
        "\n{}",
        rendered.livekit_yaml
    );
    assert_eq!(
        parsed.backend_env, want.backend_env,
        "\n{}",
        rendered.backend_env
    );
    assert_eq!(
        parsed.runtime_json, want.runtime_json,
        "\n{}",
        rendered.runtime_json
    );
    assert_eq!(
        parsed.livekit_yaml.credentials().first(),
        Some(&inputs.credentials)
    );
    assert_eq!(
        parsed.backend_env.credentials(),
        Some(inputs.credentials.clone())
    );
    assert_eq!(parsed.runtime_json.credentials(), inputs.credentials);
});
