//! The pure logic of the `wcs_token_auth` nginx module: no nginx types, no `unsafe`.
//!
//! The module's FFI layer extracts header values as byte slices, calls [`auth::authorize`],
//! and turns the [`auth::Outcome`] into an nginx status and a log line.

#![forbid(unsafe_code)]

pub mod auth;
pub mod cache;
pub mod cookie;
pub mod directive;
pub mod expiry;
pub mod origin;
pub mod store;
pub mod token;
