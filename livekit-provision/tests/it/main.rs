//! Integration tests of the livekit-provision library, one module per area.

mod render;
