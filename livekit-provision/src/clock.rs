//! The wall clock, read in one place.
//!
//! The library takes the time as a value where one instant is enough (`now` in
//! [`EnsureOptions`](crate::EnsureOptions), `PublishOptions`, rotation,
//! tokens) and as a [`Clock`] where it reads the time as it goes (the daemon, downloads, the
//! supervisor). Their defaults are [`system`], the only reading of the real clock in the library;
//! tests pass a fixed one. (A test in `fsio` fails on any other `SystemTime::now` in the library.)

use std::time::SystemTime;

/// A source of the wall-clock time.
pub type Clock = fn() -> SystemTime;

/// The real wall clock.
pub fn system() -> SystemTime {
    SystemTime::now()
}
