//! End-to-end tests: a real nginx with the built module, in a fresh prefix on a free loopback
//! port, in front of the mock WCS (`common/` is the harness). One test binary with a module
//! per behaviour, so the harness is compiled and linked once; run one part with a filter, e.g.
//! `cargo test --release --test e2e churn::`.

mod common;

mod churn;
mod client_ip;
mod configuration;
mod fail_closed;
mod header_list;
mod hostile_requests;
mod http2;
mod memory;
mod origin;
mod sessions;
mod shared_token_store;
mod signed_directives;
mod signed_sessions;
mod subrequests;
mod token_auth;
mod token_cli;
mod version_mismatch;
