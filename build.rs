//! Passes what nginx-sys learned about the target nginx to the compiler and to the tests.
//!
//! Cargo only hands `DEP_NGINX_*` metadata to crates that depend on nginx-sys directly, which is
//! why `nginx-sys` is listed in our own `[dependencies]`.

fn main() {
    for var in [
        "DEP_NGINX_FEATURES",
        "DEP_NGINX_FEATURES_CHECK",
        "DEP_NGINX_VERSION_NUMBER",
        "DEP_NGINX_BUILD_DIR",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }

    let features_check = std::env::var("DEP_NGINX_FEATURES_CHECK").unwrap_or("any()".into());
    println!("cargo::rustc-check-cfg=cfg(ngx_feature, values({features_check}))");
    if let Ok(features) = std::env::var("DEP_NGINX_FEATURES") {
        for feature in features.split(',').map(str::trim) {
            println!("cargo::rustc-cfg=ngx_feature=\"{feature}\"");
        }
    }

    // `ngx_table_elt_t.next` exists since 1.23.0, when multi-valued headers became lists.
    println!("cargo::rustc-check-cfg=cfg(nginx1_23)");
    let version: u64 = std::env::var("DEP_NGINX_VERSION_NUMBER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if version >= 1_023_000 {
        println!("cargo::rustc-cfg=nginx1_23");
    }

    // The integration tests start the nginx this module was built against.
    if let Ok(dir) = std::env::var("DEP_NGINX_BUILD_DIR") {
        println!("cargo::rustc-env=WCS_NGINX_BUILD_DIR={dir}");
    }
    println!("cargo::rustc-env=WCS_NGINX_VERSION_NUMBER={version}");
}
