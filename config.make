# Sourced by nginx's auto/make after `config`: appends the rule that builds the Rust code.
# cargo tracks its own inputs, so the rule always runs and is a no-op when nothing changed.

cat << END                                                  >> $NGX_MAKEFILE

.PHONY: $ngx_wcs_lib

$ngx_wcs_lib:
	NGINX_SOURCE_DIR="$ngx_wcs_source" NGINX_BUILD_DIR="$ngx_wcs_objs" \\
	$NGX_CARGO rustc --release --locked --lib --crate-type staticlib \\
		--manifest-path "$ngx_addon_dir/Cargo.toml" \\
		--no-default-features --target-dir "$ngx_wcs_target_dir"

END

if [ "$ngx_wcs_link" = DYNAMIC ]; then
    # nginx's link rule for the module lists only C objects as prerequisites.
    cat << END                                              >> $NGX_MAKEFILE
$NGX_OBJS/ngx_http_wcs_token_auth_module$ngx_modext:	$ngx_wcs_lib

END
fi
