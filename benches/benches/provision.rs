//! Criterion benchmarks of the hot paths: rendering and parsing the three files, `check` and a
//! no-op `ensure` on a converged node, and minting an access token.
#![expect(
    clippy::expect_used,
    reason = "a benchmark whose operation fails must stop, not measure the error path"
)]

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{Criterion, criterion_group, criterion_main};
use livekit_provision::render::ParsedFiles;
use livekit_provision::token::{TokenRequest, VideoGrants};
use livekit_provision_benches::{ConvergedNode, credentials, typical_inputs};

fn render_and_parse(c: &mut Criterion) {
    let inputs = typical_inputs();
    c.bench_function("render triple", |b| {
        b.iter(|| livekit_provision::render::render(black_box(&inputs)));
    });
    let rendered = livekit_provision::render::render(&inputs);
    c.bench_function("parse triple", |b| {
        b.iter(|| ParsedFiles::parse(black_box(&rendered)).expect("parses"));
    });
}

fn converged_node(c: &mut Criterion) {
    // The in-memory store isolates the library's own work; the file store is the default a
    // node runs with (`secrets.json` in the state directory).
    for (suffix, node) in [
        ("", ConvergedNode::new()),
        (" (file store)", ConvergedNode::with_file_store()),
    ] {
        c.bench_function(&format!("check converged{suffix}"), |b| {
            b.iter(|| {
                let report = node.check();
                assert!(report.healthy);
                report
            });
        });
        c.bench_function(&format!("ensure no-op{suffix}"), |b| {
            b.iter(|| {
                let report = node.ensure();
                assert!(report.is_noop());
                report
            });
        });
    }
}

fn token(c: &mut Criterion) {
    let creds = credentials();
    let request = TokenRequest::new("participant-1", VideoGrants::join("standup"));
    let now = SystemTime::now();
    c.bench_function("token mint", |b| {
        b.iter(|| livekit_provision::token::mint(&creds, black_box(&request), now).expect("mints"));
    });
}

/// What `tls:` adds to every provisioning run and to each look of the front: reading and
/// judging the certificate, and a no-op `ensure` whose certificate step and TURN digest run.
fn tls(c: &mut Criterion) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec![
        "lk.example.com".to_owned(),
        "turn.example.com".to_owned(),
    ])
    .expect("params");
    let cert = params.self_signed(&key).expect("cert");
    let node = ConvergedNode::with_tls(&cert.pem(), &key.serialize_pem());
    let settings = livekit_provision::OperatorConfig::load(node.state())
        .expect("provision.yaml")
        .settings;
    let tls = settings.tls.clone().expect("tls:");
    let now = SystemTime::now();
    let assessed = livekit_provision::tls::assess(node.state(), &settings, &tls, now);
    assert!(
        assessed.usable && assessed.due.is_none() && assessed.info.is_some(),
        "the benchmark measures a served certificate, not an error path: {assessed:?}"
    );
    c.bench_function("tls assess", |b| {
        b.iter(|| livekit_provision::tls::assess(node.state(), &settings, black_box(&tls), now));
    });
    c.bench_function("ensure no-op (tls + turn)", |b| {
        b.iter(|| {
            let report = node.ensure();
            assert!(report.is_noop(), "{:?}", report.actions);
            report
        });
    });
}

criterion_group!(benches, render_and_parse, converged_node, token, tls);
criterion_main!(benches);
