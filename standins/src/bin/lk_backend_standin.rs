//! **Test stand-in for lk-backend** (not the real program): reads `LIVEKIT_API_KEY`,
//! `LIVEKIT_API_SECRET`, `LIVEKIT_URL` and `PORT` from its environment, fails loudly when one is
//! missing, and serves `GET /` → 200 `OK` on `127.0.0.1:PORT` until SIGTERM.

use std::process::ExitCode;

const REQUIRED: [&str; 4] = [
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
    "LIVEKIT_URL",
    "PORT",
];

fn main() -> ExitCode {
    let missing: Vec<&str> = REQUIRED
        .into_iter()
        .filter(|name| std::env::var_os(name).is_none_or(|v| v.is_empty()))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "lk-backend-standin: missing environment variable(s): {}",
            missing.join(", ")
        );
        return ExitCode::from(1);
    }
    let Some(port) = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
    else {
        eprintln!("lk-backend-standin: PORT is not a port number");
        return ExitCode::from(1);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lk-backend-standin: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("lk-backend-standin: cannot listen on 127.0.0.1:{port}: {e}");
                return ExitCode::from(1);
            }
        };
        println!("lk-backend-standin listening on 127.0.0.1:{port}");
        livekit_provision_standins::serve(listener, |request| async move {
            match request.path.as_str() {
                "/" => (200, "OK".to_owned()),
                _ => (404, "404 page not found".to_owned()),
            }
        })
        .await;
        ExitCode::SUCCESS
    })
}
