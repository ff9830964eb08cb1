//! One ACME order (RFC 8555, HTTP-01) with `instant-acme`: the account (kept in
//! `tls/account.json`, 0600, per directory), the answers (files in `run/acme-challenge/`,
//! served by the front, or by this run when it can bind `tls.http_port` itself), the CSR and key
//! (`rcgen`, through `instant-acme`), the chain. Only a complete, parsed chain that covers every
//! name is installed; on any failure the certificate in place is untouched.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use serde::{Deserialize, Serialize};

use super::{CertificateInfo, record};
use crate::paths::StateDir;
use crate::settings::{Settings, TlsSettings};

/// The longest an order may take, from the directory to the chain.
const ORDER_TIMEOUT: Duration = Duration::from_secs(120);

/// Why no certificate was obtained. The certificate in place (if any) is untouched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeError {
    /// The ACME server refused or failed a step (its problem document, or the transport).
    #[error("ACME {step} at {directory} failed: {reason}")]
    Server {
        /// The step: `directory`, `account`, `order`, `challenge`, `finalize`, `certificate`.
        step: &'static str,
        /// The directory URL.
        directory: String,
        /// The server's problem, or the transport's error.
        reason: String,
    },
    /// The order did not complete within its time.
    #[error("ACME order at {directory} did not complete within {}s", ORDER_TIMEOUT.as_secs())]
    Timeout {
        /// The directory URL.
        directory: String,
    },
    /// Something local: a file of the state directory.
    #[error("{0}")]
    Local(String),
    /// `tls.http_port` could not be listened on for the HTTP-01 answers (no front holds it).
    #[error("cannot listen on tls.http_port {port} for the ACME HTTP-01 challenge: {reason}")]
    Port {
        /// The port.
        port: u16,
        /// The system's reason.
        reason: String,
    },
}

impl AcmeError {
    /// How to fix it.
    pub fn hint(&self, tls: &TlsSettings) -> String {
        let (step, reason) = match self {
            Self::Server { step, reason, .. } => (*step, reason.as_str()),
            Self::Timeout { .. } => ("", ""),
            Self::Local(_) => {
                return "check the permissions of the state directory's tls/ and run/".to_owned();
            }
            Self::Port { port, .. } => {
                return format!(
                    "free port {port}, or run the control plane as root or with CAP_NET_BIND_SERVICE (`AmbientCapabilities=CAP_NET_BIND_SERVICE`, as `livekit-provision units` writes it): ports below 1024 need it"
                );
            }
        };
        if reason.contains("rateLimited") {
            "the CA rate-limits this account or these names: the certificate in place keeps serving; the next attempt waits (`livekit-provision status` says when)".to_owned()
        } else if step == "challenge" {
            format!(
                "the CA must reach http://{}:{}{}<token> on this node: point the DNS of every name at it and open TCP port {} (HTTP-01)",
                tls.domain,
                tls.http_port,
                super::http01::PREFIX,
                tls.http_port
            )
        } else {
            format!(
                "check that {} is an ACME directory this node can reach (tls.acme_directory; tls.acme_ca_root for a private CA)",
                tls.acme_directory
            )
        }
    }
}

/// `tls/account.json`: the account of one directory.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

fn account_path(state: &StateDir) -> PathBuf {
    super::tls_dir(state).join("account.json")
}

/// Obtain a certificate for the names of `tls` and make it live. Blocking (an async runtime
/// of its own): `ensure` calls it, in the daemon on a blocking thread.
pub(crate) fn obtain(
    state: &StateDir,
    settings: &Settings,
    tls: &TlsSettings,
    now: SystemTime,
) -> Result<CertificateInfo, AcmeError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AcmeError::Local(format!("cannot start an async runtime: {e}")))?;
    let lifetime_hint = super::assess(state, settings, tls, now)
        .info
        .and_then(|i| i.not_after.duration_since(i.not_before).ok())
        .unwrap_or(Duration::from_secs(90 * 86_400));
    let attempt = record::begin(state, &tls.acme_directory, now);
    let result = runtime.block_on(async {
        tokio::time::timeout(ORDER_TIMEOUT, order(state, settings, tls, now))
            .await
            .unwrap_or_else(|_| {
                Err(AcmeError::Timeout {
                    directory: tls.acme_directory.clone(),
                })
            })
    });
    match &result {
        Ok(info) => {
            tracing::info!(names = ?info.names, serial = %info.serial, "certificate obtained");
            record::success(state, attempt, now);
        }
        Err(e) => record::failure(state, attempt, &e.to_string(), lifetime_hint, now),
    }
    result
}

async fn order(
    state: &StateDir,
    settings: &Settings,
    tls: &TlsSettings,
    now: SystemTime,
) -> Result<CertificateInfo, AcmeError> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let directory = tls.acme_directory.clone();
    let server = |step: &'static str| {
        let directory = directory.clone();
        move |e: instant_acme::Error| AcmeError::Server {
            step,
            directory: directory.clone(),
            reason: innermost(&e),
        }
    };
    let account = account(state, tls).await?;
    let _responder = Responder::start(state, tls).await?;

    let identifiers: Vec<Identifier> = tls
        .names(settings)
        .into_iter()
        .map(Identifier::Dns)
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(server("order"))?;
    let challenges = super::challenge_dir(state);
    let mut written = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(server("order"))?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        let mut challenge =
            authz
                .challenge(ChallengeType::Http01)
                .ok_or_else(|| AcmeError::Server {
                    step: "challenge",
                    directory: directory.clone(),
                    reason: "the server offers no HTTP-01 challenge".to_owned(),
                })?;
        let file = challenges.join(&challenge.token);
        crate::fsio::write_file(
            &file,
            challenge.key_authorization().as_str().as_bytes(),
            0o644,
        )
        .map_err(|e| AcmeError::Local(super::io_context("write", &file, &e)))?;
        written.push(file);
        challenge.set_ready().await.map_err(server("challenge"))?;
    }
    let retries = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(Duration::from_secs(90));
    let status = order.poll_ready(&retries).await;
    for file in &written {
        let _ = crate::fsio::remove_file(file);
    }
    match status.map_err(server("challenge"))? {
        OrderStatus::Ready => {}
        other => {
            return Err(AcmeError::Server {
                step: "challenge",
                directory,
                reason: failed_challenges(&mut order)
                    .await
                    .unwrap_or_else(|| format!("the order is {other:?}")),
            });
        }
    }
    let key_pem = zeroize::Zeroizing::new(order.finalize().await.map_err(server("finalize"))?);
    let chain = order
        .poll_certificate(&retries)
        .await
        .map_err(server("certificate"))?;
    let info = super::info::parse_chain(chain.as_bytes()).map_err(|reason| AcmeError::Server {
        step: "certificate",
        directory: directory.clone(),
        reason: format!("the chain {reason}"),
    })?;
    if let Some(name) = tls.names(settings).iter().find(|n| !info.covers(n)) {
        return Err(AcmeError::Server {
            step: "certificate",
            directory,
            reason: format!("the certificate does not cover {name}"),
        });
    }
    super::store::install(state, &chain, &key_pem, &info.serial, now).map_err(AcmeError::Local)?;
    Ok(info)
}

/// The error and its innermost cause, on one line (`client error (Connect): Connection refused
/// (os error 111)`): the layers between say nothing an operator can act on.
fn innermost(e: &instant_acme::Error) -> String {
    use std::error::Error as _;
    let text = e.to_string();
    let mut inner = None;
    let mut source = e.source();
    while let Some(cause) = source {
        inner = Some(cause.to_string());
        source = cause.source();
    }
    match inner {
        Some(inner) if !text.contains(&inner) => format!("{text}: {inner}"),
        _ => text,
    }
}

/// The problems of the failed challenges of an invalid order.
async fn failed_challenges(order: &mut instant_acme::Order) -> Option<String> {
    let mut problems = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let name = authz.identifier().to_string();
        if let Ok(state) = authz.refresh().await {
            for c in &state.challenges {
                if let Some(problem) = &c.error {
                    problems.push(format!("{name}: {problem}"));
                }
            }
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// The account of `tls.acme_directory`: the stored one, or a new one (stored 0600 at once).
async fn account(state: &StateDir, tls: &TlsSettings) -> Result<Account, AcmeError> {
    let path = account_path(state);
    let builder = || match &tls.acme_ca_root {
        Some(root) => Account::builder_with_root(root),
        None => Account::builder(),
    };
    let account_error = |e: instant_acme::Error| AcmeError::Server {
        step: "account",
        directory: tls.acme_directory.clone(),
        reason: innermost(&e),
    };
    let stored = crate::fsio::read_regular(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<StoredAccount>(&bytes).ok())
        .filter(|a| a.directory == tls.acme_directory);
    if let Some(stored) = stored {
        // Restoring an account only reads the directory.
        return builder()
            .map_err(account_error)?
            .from_credentials(stored.credentials)
            .await
            .map_err(|e| AcmeError::Server {
                step: "directory",
                directory: tls.acme_directory.clone(),
                reason: innermost(&e),
            });
    }
    let contact = tls.acme_email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder()
        .map_err(account_error)?
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            tls.acme_directory.clone(),
            None,
        )
        .await
        .map_err(account_error)?;
    let stored = StoredAccount {
        directory: tls.acme_directory.clone(),
        credentials,
    };
    let bytes = zeroize::Zeroizing::new(
        serde_json::to_vec(&stored).map_err(|e| AcmeError::Local(e.to_string()))?,
    );
    crate::fsio::create_private_dir(&super::tls_dir(state), true)
        .or_else(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(|e| AcmeError::Local(super::io_context("create", &super::tls_dir(state), &e)))?;
    crate::fsio::write_file(&path, &bytes, 0o600)
        .map_err(|e| AcmeError::Local(super::io_context("write", &path, &e)))?;
    Ok(account)
}

/// The HTTP-01 answers of this run: served by a listener of its own when `tls.http_port` is
/// free (no front runs yet), else by whoever holds it (the front serves the same directory).
struct Responder {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Responder {
    async fn start(state: &StateDir, tls: &TlsSettings) -> Result<Self, AcmeError> {
        let dir = super::challenge_dir(state);
        prepare_dir(&dir)?;
        let listener = match tokio::net::TcpListener::bind(("0.0.0.0", tls.http_port)).await {
            Ok(listener) => listener,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                tracing::debug!(port = tls.http_port, "HTTP-01 port held: the front answers");
                return Ok(Self { task: None });
            }
            Err(e) => {
                return Err(AcmeError::Port {
                    port: tls.http_port,
                    reason: e.to_string(),
                });
            }
        };
        let task = tokio::spawn(super::http01::serve(listener, dir, None));
        Ok(Self { task: Some(task) })
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn prepare_dir(dir: &Path) -> Result<(), AcmeError> {
    match crate::fsio::create_private_dir(dir, true) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(AcmeError::Local(super::io_context("create", dir, &e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(step: &'static str, reason: &str) -> AcmeError {
        AcmeError::Server {
            step,
            directory: "https://ca.example/dir".to_owned(),
            reason: reason.to_owned(),
        }
    }

    #[test]
    fn each_failure_gets_the_hint_for_its_cause() {
        let tls = TlsSettings {
            domain: "lk.example.com".to_owned(),
            ..TlsSettings::default()
        };
        let port = AcmeError::Port {
            port: 80,
            reason: "Permission denied (os error 13)".to_owned(),
        };
        assert!(port.to_string().contains("tls.http_port 80"), "{port}");
        assert!(port.hint(&tls).contains("CAP_NET_BIND_SERVICE"));
        let limited = server(
            "order",
            "API error (urn:ietf:params:acme:error:rateLimited)",
        );
        assert!(limited.hint(&tls).contains("rate-limits"));
        let challenge = server(
            "challenge",
            "could not connect (urn:ietf:params:acme:error:connection)",
        );
        let hint = challenge.hint(&tls);
        assert!(
            hint.contains("http://lk.example.com:80/.well-known/acme-challenge/"),
            "{hint}"
        );
        let directory = server(
            "directory",
            "client error (Connect): Connection refused (os error 111)",
        );
        assert!(directory.hint(&tls).contains("tls.acme_directory"));
    }
}
