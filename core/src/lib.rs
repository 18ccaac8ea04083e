//! The pure logic of the `wcs_token_auth` nginx module: no nginx types, no `unsafe`.
//!
//! The module's FFI layer extracts header values as byte slices, calls [`auth::authorize`],
//! and turns its `Result<(), auth::Refusal>` into an nginx status and the refusal's own log line.

#![forbid(unsafe_code)]

pub mod auth;
pub mod cache;
pub mod cookie;
pub mod directive;
pub mod expiry;
pub mod header_name;
pub mod origin;
pub mod session;
pub mod signed;
pub mod store;
pub mod token;
