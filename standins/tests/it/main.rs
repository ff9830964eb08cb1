//! Integration tests of the supervision layer against the **stand-ins** for livekit-server and
//! lk-backend (the real livekit-server cannot be fetched on the build machines).

mod supervise;
mod support;
