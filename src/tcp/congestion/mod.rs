//! Congestion control.
//!
//! For now the connection uses [`NewReno`], the combined window and fast
//! recovery state of `legacy.rs`.

mod legacy;

pub use legacy::NewReno;
