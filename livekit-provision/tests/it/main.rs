//! Integration tests of the library, one module per area.

mod publish;
