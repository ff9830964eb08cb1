//! HTTP(S) downloads: one reqwest client with connect and read-idle timeouts (no total timeout),
//! retries with exponential backoff and jitter, `Retry-After` and GitHub rate-limit headers
//! honoured (capped), range resumption, and the GitHub token sent only to GitHub hosts.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{AUTHORIZATION, CONTENT_RANGE, HeaderMap, HeaderValue, RANGE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use tokio::sync::mpsc;

use crate::backoff;
use crate::clock::Clock;
use crate::secret::Secret;
use crate::version::LivekitVersion;

use super::error::FetchError;
use super::source::may_send_github_token;
use crate::redact::url as redact_url;

/// Connection timeouts. There is deliberately no total timeout: a slow but moving download of a
/// large release must be allowed to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Time allowed to establish a connection (TCP + TLS).
    pub connect: Duration,
    /// Longest silence allowed while waiting for bytes.
    pub read_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(15),
            read_idle: Duration::from_secs(30),
        }
    }
}

/// How failed requests are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per file, the first included.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles each time, with jitter.
    pub base_delay: Duration,
    /// Ceiling of the exponential delay.
    pub max_delay: Duration,
    /// Ceiling of a wait the server asks for (`Retry-After`, `x-ratelimit-reset`).
    pub max_server_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_server_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1`, after `attempt` failed (1-based). A server-asked
    /// wait wins (capped at `max_server_wait`); otherwise exponential backoff with jitter in
    /// [d/2, d], where `jitter` in [0, 1] picks the point.
    pub fn delay(&self, attempt: u32, server_wait: Option<Duration>, jitter: f64) -> Duration {
        if let Some(wait) = server_wait {
            return wait.min(self.max_server_wait);
        }
        // At most 20 doublings, as always (the cap decides long before).
        let full = backoff::exponential(self.base_delay, self.max_delay, attempt.min(21));
        backoff::equal_jitter(full, jitter)
    }
}

/// Whether to use proxies named by the standard environment variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyMode {
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (upper or lower case), as curl.
    #[default]
    Environment,
    /// Connect directly.
    Direct,
}

/// Something that happened during a download, for progress displays and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchEvent {
    /// A download begins (this version is not installed, or `force`): what follows is the
    /// network.
    Started,
    /// Bytes of the archive received so far, and its size when known.
    Progress {
        /// Bytes received.
        done: u64,
        /// Total size, when the server said.
        total: Option<u64>,
    },
    /// An attempt failed; the next starts after `delay`.
    Retrying {
        /// The attempt that failed (1-based).
        attempt: u32,
        /// The wait before the next.
        delay: Duration,
        /// Why (no URL credentials, no token).
        reason: String,
    },
    /// The server ignored a range request; the download starts again from byte 0.
    Restarted,
}

/// Receives [`FetchEvent`]s. Called from the download task: keep it quick.
pub type EventSink = Arc<dyn Fn(&FetchEvent) + Send + Sync>;

/// A chunk of the body, or a control message, for the extracting thread.
#[derive(Debug)]
pub(crate) enum Feed {
    Data(Vec<u8>),
    Restart,
    End,
}

/// Why the streaming producer stopped without finishing.
#[derive(Debug)]
pub(crate) enum StreamError {
    /// A download failure to report.
    Fetch(FetchError),
    /// The extracting side stopped reading (its error explains why).
    ConsumerGone,
}

/// The HTTP side of one install.
pub(crate) struct Http {
    client: reqwest::Client,
    token: Option<Secret>,
    policy: RetryPolicy,
    events: Option<EventSink>,
    clock: Clock,
}

/// What one failed attempt teaches.
enum Failure {
    Retry {
        reason: String,
        server_wait: Option<Duration>,
        last: Box<FetchError>,
    },
    Final(FetchError),
}

impl Http {
    pub(crate) fn new(
        timeouts: Timeouts,
        proxy: ProxyMode,
        policy: RetryPolicy,
        token: Option<Secret>,
        events: Option<EventSink>,
        clock: Clock,
    ) -> Result<Self, FetchError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .read_timeout(timeouts.read_idle)
            .user_agent(concat!("livekit-provision/", env!("CARGO_PKG_VERSION")));
        if proxy == ProxyMode::Direct {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| FetchError::Client {
            source: e.without_url(),
        })?;
        Ok(Self {
            client,
            token,
            policy,
            events,
            clock,
        })
    }

    fn emit(&self, event: &FetchEvent) {
        if let Some(sink) = &self.events {
            sink(event);
        }
    }

    fn request(&self, url: &Url, range_from: u64) -> Result<reqwest::RequestBuilder, FetchError> {
        let mut request = self.client.get(url.clone());
        if range_from > 0 {
            request = request.header(RANGE, format!("bytes={range_from}-"));
        }
        if let Some(token) = self.token.as_ref().filter(|_| may_send_github_token(url)) {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                    FetchError::InvalidBaseUrl {
                        url: redact_url(url),
                        reason:
                            "cannot carry the GitHub token (it has characters a header cannot hold)"
                                .to_owned(),
                    }
                })?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        Ok(request)
    }

    /// Sleep before the next attempt, or give up with the last error.
    async fn back_off(&self, attempt: u32, failure: Failure) -> Result<(), FetchError> {
        match failure {
            Failure::Final(e) => Err(e),
            Failure::Retry { last, .. } if attempt >= self.policy.max_attempts => Err(*last),
            Failure::Retry {
                reason,
                server_wait,
                ..
            } => {
                let delay = self
                    .policy
                    .delay(attempt, server_wait, backoff::unit_random());
                tracing::debug!(attempt, ?delay, %reason, "download attempt failed; retrying");
                self.emit(&FetchEvent::Retrying {
                    attempt,
                    delay,
                    reason,
                });
                tokio::time::sleep(delay).await;
                Ok(())
            }
        }
    }

    /// GET a small file (`checksums.txt`) whole, with retries.
    pub(crate) async fn get_small(
        &self,
        url: &Url,
        version: &LivekitVersion,
        limit: u64,
    ) -> Result<Vec<u8>, FetchError> {
        let shown = redact_url(url);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match self.request(url, 0)?.send().await {
                Err(e) => network_failure(&shown, version, attempt, e),
                Ok(response) if response.status().is_success() => {
                    match read_limited(response, &shown, limit).await {
                        Ok(body) => return Ok(body),
                        Err(Ok(e)) => Failure::Final(e),
                        Err(Err(e)) => network_failure(&shown, version, attempt, e),
                    }
                }
                Ok(response) => status_failure(&shown, version, attempt, &response, (self.clock)()),
            };
            self.back_off(attempt, failure).await?;
        }
    }

    /// Stream `url` into `feed`, resuming with `Range` after a broken body when the server
    /// answers 206, starting again (and telling the consumer) when it answers 200.
    pub(crate) async fn stream(
        &self,
        url: &Url,
        version: &LivekitVersion,
        limit: u64,
        feed: mpsc::Sender<Feed>,
    ) -> Result<(), StreamError> {
        let shown = redact_url(url);
        let mut received = 0u64;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match self
                .request(url, received)
                .map_err(StreamError::Fetch)?
                .send()
                .await
            {
                Err(e) => Some(network_failure(&shown, version, attempt, e)),
                Ok(mut response) => {
                    let status = response.status();
                    if status == StatusCode::PARTIAL_CONTENT && received > 0 {
                        if range_start(response.headers()) == Some(received) {
                            self.pump(
                                &mut response,
                                &shown,
                                version,
                                limit,
                                &mut received,
                                attempt,
                                &feed,
                            )
                            .await?
                        } else {
                            received = 0;
                            self.restart(&feed).await?;
                            Some(wrong_range(&shown, version, attempt))
                        }
                    } else if status == StatusCode::OK {
                        if received > 0 {
                            received = 0;
                            self.restart(&feed).await?;
                        }
                        if response.content_length().is_some_and(|n| n > limit) {
                            return Err(StreamError::Fetch(FetchError::TooLarge {
                                url: shown,
                                what: "download",
                                limit,
                            }));
                        }
                        self.pump(
                            &mut response,
                            &shown,
                            version,
                            limit,
                            &mut received,
                            attempt,
                            &feed,
                        )
                        .await?
                    } else {
                        Some(status_failure(
                            &shown,
                            version,
                            attempt,
                            &response,
                            (self.clock)(),
                        ))
                    }
                }
            };
            if let Some(failure) = failure {
                self.back_off(attempt, failure)
                    .await
                    .map_err(StreamError::Fetch)?;
            } else {
                return feed
                    .send(Feed::End)
                    .await
                    .map_err(|_| StreamError::ConsumerGone);
            }
        }
    }

    async fn restart(&self, feed: &mpsc::Sender<Feed>) -> Result<(), StreamError> {
        self.emit(&FetchEvent::Restarted);
        feed.send(Feed::Restart)
            .await
            .map_err(|_| StreamError::ConsumerGone)
    }

    /// Forward a response body; `None` when it ended cleanly, `Some(failure)` when it broke.
    #[expect(clippy::too_many_arguments, reason = "private helper of one loop")]
    async fn pump(
        &self,
        response: &mut reqwest::Response,
        shown: &str,
        version: &LivekitVersion,
        limit: u64,
        received: &mut u64,
        attempt: u32,
        feed: &mpsc::Sender<Feed>,
    ) -> Result<Option<Failure>, StreamError> {
        let total = response.content_length().map(|n| n + *received);
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    *received += chunk.len() as u64;
                    if *received > limit {
                        return Err(StreamError::Fetch(FetchError::TooLarge {
                            url: shown.to_owned(),
                            what: "download",
                            limit,
                        }));
                    }
                    feed.send(Feed::Data(chunk.into()))
                        .await
                        .map_err(|_| StreamError::ConsumerGone)?;
                    self.emit(&FetchEvent::Progress {
                        done: *received,
                        total,
                    });
                }
                Ok(None) => return Ok(None),
                Err(e) => {
                    let e = e.without_url();
                    let reason = format!("body broke after {} bytes: {e}", *received);
                    let last = if e.is_timeout() {
                        network_error(shown, version, attempt, e)
                    } else {
                        FetchError::Truncated {
                            url: shown.to_owned(),
                            version: version.clone(),
                            received: *received,
                            attempts: attempt,
                        }
                    };
                    return Ok(Some(Failure::Retry {
                        reason,
                        server_wait: None,
                        last: Box::new(last),
                    }));
                }
            }
        }
    }
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("token", &self.token.as_ref().map(|_| "****"))
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

fn wrong_range(shown: &str, version: &LivekitVersion, attempt: u32) -> Failure {
    Failure::Retry {
        reason: "the server answered a range request with the wrong range".to_owned(),
        server_wait: None,
        last: Box::new(FetchError::Truncated {
            url: shown.to_owned(),
            version: version.clone(),
            received: 0,
            attempts: attempt,
        }),
    }
}

fn network_error(
    shown: &str,
    version: &LivekitVersion,
    attempt: u32,
    e: reqwest::Error,
) -> FetchError {
    FetchError::Network {
        url: shown.to_owned(),
        version: version.clone(),
        attempts: attempt,
        source: e.without_url(),
    }
}

fn network_failure(
    shown: &str,
    version: &LivekitVersion,
    attempt: u32,
    e: reqwest::Error,
) -> Failure {
    let retryable = !(e.is_builder() || e.is_redirect());
    let e = e.without_url();
    let reason = e.to_string();
    let error = network_error(shown, version, attempt, e);
    if retryable {
        Failure::Retry {
            reason,
            server_wait: None,
            last: Box::new(error),
        }
    } else {
        Failure::Final(error)
    }
}

fn status_failure(
    shown: &str,
    version: &LivekitVersion,
    attempt: u32,
    response: &reqwest::Response,
    now: SystemTime,
) -> Failure {
    let status = response.status();
    let headers = response.headers();
    let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && header_str(headers, "x-ratelimit-remaining") == Some("0"));
    if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
        return Failure::Final(FetchError::NotFound {
            url: shown.to_owned(),
            version: version.clone(),
        });
    }
    let http_status = FetchError::HttpStatus {
        url: shown.to_owned(),
        version: version.clone(),
        status: status.as_u16(),
        attempts: attempt,
    };
    if rate_limited {
        return Failure::Retry {
            reason: format!("HTTP {status} (rate limited)"),
            server_wait: server_wait(headers, now),
            last: Box::new(FetchError::RateLimited {
                url: shown.to_owned(),
                version: version.clone(),
                attempts: attempt,
            }),
        };
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return Failure::Retry {
            reason: format!("HTTP {status}"),
            server_wait: server_wait(headers, now),
            last: Box::new(http_status),
        };
    }
    Failure::Final(http_status)
}

/// Read a whole small body; `Err(Ok)` for a final error, `Err(Err)` for a retryable one.
async fn read_limited(
    mut response: reqwest::Response,
    shown: &str,
    limit: u64,
) -> Result<Vec<u8>, Result<FetchError, reqwest::Error>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Err)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(Ok(FetchError::TooLarge {
                url: shown.to_owned(),
                what: "download",
                limit,
            }));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The first byte of a `Content-Range: bytes N-M/T` answer.
fn range_start(headers: &HeaderMap) -> Option<u64> {
    let value = header_str(headers, CONTENT_RANGE.as_str())?;
    let rest = value.strip_prefix("bytes ")?;
    rest.split('-').next()?.trim().parse().ok()
}

/// The wait a server asks for: `Retry-After` (seconds or an HTTP date), else GitHub's
/// `x-ratelimit-remaining: 0` with `x-ratelimit-reset` (epoch seconds). Uncapped.
pub fn server_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(value) = header_str(headers, RETRY_AFTER.as_str()) {
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(Duration::from_secs(seconds));
        }
        if let Some(at) = parse_http_date(value) {
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    if header_str(headers, "x-ratelimit-remaining") == Some("0") {
        let reset: u64 = header_str(headers, "x-ratelimit-reset")?.parse().ok()?;
        let at = UNIX_EPOCH + Duration::from_secs(reset);
        return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
    }
    None
}

/// Parse an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form HTTP servers send.
fn parse_http_date(text: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: u64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || year < 1970 || *h > 23 || *m > 59 || *s > 60 {
        return None;
    }
    // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(UNIX_EPOCH + Duration::from_secs(days * 86_400 + h * 3600 + m * 60 + s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            max_server_wait: Duration::from_secs(2),
        };
        assert_eq!(p.delay(1, None, 1.0), Duration::from_millis(100));
        assert_eq!(p.delay(1, None, 0.0), Duration::from_millis(50));
        assert_eq!(p.delay(2, None, 1.0), Duration::from_millis(200));
        assert_eq!(p.delay(3, None, 1.0), Duration::from_millis(350));
        assert_eq!(p.delay(40, None, 1.0), Duration::from_millis(350));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(1)), 0.0),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(90)), 0.0),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn server_wait_reads_retry_after_and_github_reset() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            server_wait(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        // 1_700_000_000 is Tue, 14 Nov 2023 22:13:20 GMT.
        let date = headers(&[("retry-after", "Tue, 14 Nov 2023 22:13:30 GMT")]);
        assert_eq!(server_wait(&date, now), Some(Duration::from_secs(10)));
        let past = headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert_eq!(server_wait(&past, now), Some(Duration::ZERO));
        let limited = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1700000042"),
        ]);
        assert_eq!(server_wait(&limited, now), Some(Duration::from_secs(42)));
        let fine = headers(&[
            ("x-ratelimit-remaining", "12"),
            ("x-ratelimit-reset", "1700000042"),
        ]);
        assert_eq!(server_wait(&fine, now), None);
        assert_eq!(server_wait(&headers(&[("retry-after", "soon")]), now), None);
    }

    #[test]
    fn http_dates_parse_exactly() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().as_secs(), 784_111_777);
        assert!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT").is_none());
        assert!(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT").is_none());
    }

    #[test]
    fn content_range_start() {
        assert_eq!(
            range_start(&headers(&[("content-range", "bytes 100-199/200")])),
            Some(100)
        );
        assert_eq!(
            range_start(&headers(&[("content-range", "items 1-2/3")])),
            None
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let http = Http::new(
            Timeouts::default(),
            ProxyMode::Direct,
            RetryPolicy::default(),
            Some(Secret::new("ghp_supersecret")),
            None,
            crate::clock::system,
        )
        .unwrap();
        assert!(!format!("{http:?}").contains("supersecret"));
    }
}
