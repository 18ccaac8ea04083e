//! `mock-wcs [--tls] [ADDR]`: runs the mock WCS until killed (default 127.0.0.1:8443 with TLS
//! when `--tls` is given, 127.0.0.1:8080 without).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tls = args.iter().any(|a| a == "--tls");
    let default = if tls {
        "127.0.0.1:8443"
    } else {
        "127.0.0.1:8080"
    };
    let addr = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or(default, String::as_str);
    let Ok(addr) = addr.parse() else {
        eprintln!("mock-wcs: invalid address \"{addr}\"");
        return ExitCode::FAILURE;
    };
    match mock_wcs::MockWcs::bind(addr, tls) {
        Ok(mock) => {
            println!("mock-wcs: listening on {}", mock.url());
            mock.wait();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mock-wcs: cannot listen on {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}
