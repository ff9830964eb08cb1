//! Media supervision through the daemon (livekit-server STAND-IN).
