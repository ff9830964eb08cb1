//! Drive one release download through the extracting pass: an async producer (HTTP) feeds a
//! bounded channel that a blocking thread reads as `io::Read`, or the thread reads a `file://`
//! mirror directly. Either way the archive is never held in memory.

use std::cell::Cell;
use std::io::{self, Read};

use tokio::sync::mpsc;

use crate::fsio::StagedFile;
use crate::version::LivekitVersion;

use super::error::FetchError;
use super::extract::{ExtractError, Extracted, SizeLimits, SourceStop, extract_binary};
use super::http::{Feed, Http, StreamError};
use super::source::local_path;
use crate::redact::url as redact_url;

/// Chunks in flight between the network and the extracting thread. With reqwest's chunks of at
/// most a few hundred KiB this bounds the buffered body to a few MiB.
const CHANNEL_CHUNKS: usize = 8;

/// Reads the producer's chunks as a byte stream.
struct FeedReader<'a> {
    feed: &'a mut mpsc::Receiver<Feed>,
    current: Vec<u8>,
    offset: usize,
    stop: &'a Cell<Option<SourceStop>>,
    ended: bool,
}

impl Read for FeedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.offset == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            match self.feed.blocking_recv() {
                Some(Feed::Data(chunk)) => {
                    self.current = chunk;
                    self.offset = 0;
                }
                Some(Feed::End) => self.ended = true,
                Some(Feed::Restart) => {
                    self.stop.set(Some(SourceStop::Restart));
                    return Err(io::Error::other("download restarts from byte 0"));
                }
                None => {
                    self.stop.set(Some(SourceStop::Failed));
                    return Err(io::Error::other("download failed"));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.offset);
        buf[..n].copy_from_slice(&self.current[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

/// Download (or read) the archive at `url`, extracting the binary into `staged`. Returns the
/// digests; says nothing yet about whether they are the expected ones.
pub(crate) async fn fetch_archive(
    http: &Http,
    url: &reqwest::Url,
    version: &LivekitVersion,
    limits: SizeLimits,
    staged: StagedFile,
) -> Result<(Extracted, StagedFile), FetchError> {
    let shown = redact_url(url);
    if let Some(path) = local_path(url) {
        let version = version.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut staged = staged;
            let file = std::fs::File::open(&path).map_err(|source| {
                mirror_error(path.clone(), &version, source, &redact_path(&path))
            })?;
            let stop = Cell::new(None);
            let out = extract_binary(io::BufReader::new(file), &stop, &mut staged, limits);
            match out {
                Ok(x) => Ok((x, staged)),
                Err(e) => Err(extract_error(
                    e,
                    &redact_path(&path),
                    &version,
                    limits,
                    staged.path(),
                )),
            }
        });
        return task
            .await
            .map_err(|_| FetchError::Interrupted { url: shown })?;
    }

    let (tx, mut rx) = mpsc::channel(CHANNEL_CHUNKS);
    let consumer_version = version.clone();
    let consumer_url = shown.clone();
    let consumer = tokio::task::spawn_blocking(move || {
        let mut staged = staged;
        loop {
            let stop = Cell::new(None);
            let reader = FeedReader {
                feed: &mut rx,
                current: Vec::new(),
                offset: 0,
                stop: &stop,
                ended: false,
            };
            match extract_binary(reader, &stop, &mut staged, limits) {
                Ok(x) => return Ok((x, staged)),
                Err(ExtractError::Source(SourceStop::Restart)) => {
                    staged.truncate().map_err(|source| FetchError::Io {
                        action: "truncate",
                        path: staged.path().to_path_buf(),
                        source,
                    })?;
                }
                // Dropping `rx` here tells the producer to stop.
                Err(e) => {
                    return Err(extract_error(
                        e,
                        &consumer_url,
                        &consumer_version,
                        limits,
                        staged.path(),
                    ));
                }
            }
        }
    });
    let produced = http.stream(url, version, limits.max_download, tx).await;
    let extracted = consumer
        .await
        .map_err(|_| FetchError::Interrupted { url: shown })?;
    match (produced, extracted) {
        // A download failure explains a consumer that saw its feed end early.
        (Err(StreamError::Fetch(e)), _) | (_, Err(e)) => Err(e),
        (Ok(()) | Err(StreamError::ConsumerGone), Ok(done)) => Ok(done),
    }
}

fn redact_path(path: &std::path::Path) -> String {
    format!("file://{}", path.display())
}

fn mirror_error(
    path: std::path::PathBuf,
    version: &LivekitVersion,
    source: io::Error,
    shown: &str,
) -> FetchError {
    if source.kind() == io::ErrorKind::NotFound {
        FetchError::NotFound {
            url: shown.to_owned(),
            version: version.clone(),
        }
    } else {
        FetchError::ReadMirror {
            path,
            version: version.clone(),
            source,
        }
    }
}

fn extract_error(
    e: ExtractError,
    shown: &str,
    version: &LivekitVersion,
    limits: SizeLimits,
    staged: &std::path::Path,
) -> FetchError {
    let url = shown.to_owned();
    match e {
        ExtractError::Source(SourceStop::TooLarge) => FetchError::TooLarge {
            url,
            what: "download",
            limit: limits.max_download,
        },
        ExtractError::BinaryTooLarge => FetchError::TooLarge {
            url,
            what: "livekit-server entry",
            limit: limits.max_binary,
        },
        ExtractError::Source(SourceStop::Failed | SourceStop::Restart) => {
            FetchError::Interrupted { url }
        }
        ExtractError::NotGzip(source) => FetchError::NotAnArchive {
            url,
            version: version.clone(),
            source,
        },
        ExtractError::Problem(problem) => FetchError::UnsafeArchive {
            url,
            version: version.clone(),
            problem,
        },
        ExtractError::Write(source) => FetchError::Io {
            action: "write",
            path: staged.to_path_buf(),
            source,
        },
    }
}

/// Read a small local file (a mirror's `checksums.txt`), refusing more than `limit` bytes.
pub(crate) fn read_local_small(
    path: &std::path::Path,
    version: &LivekitVersion,
    limit: u64,
) -> Result<Vec<u8>, FetchError> {
    let shown = redact_path(path);
    let file = std::fs::File::open(path)
        .map_err(|e| mirror_error(path.to_path_buf(), version, e, &shown))?;
    let mut body = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|e| mirror_error(path.to_path_buf(), version, e, &shown))?;
    if body.len() as u64 > limit {
        return Err(FetchError::TooLarge {
            url: shown,
            what: "download",
            limit,
        });
    }
    Ok(body)
}
