#!/usr/bin/env bash
# Builds the Debian package target/debian/symrss_VERSION_ARCH.deb with
# cargo-deb (`cargo install cargo-deb --locked`): the release binary, the
# systemd unit, the example configurations, and the manual pages and
# shell completions generated from the binary's own command definitions
# (so they are never written by hand). Metadata: [package.metadata.deb]
# in crates/symrss/Cargo.toml.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked -p symrss
assets=target/deb-assets
rm -rf "$assets"
mkdir -p "$assets/man"
target/release/symrss man --dir "$assets/man" 2>/dev/null
gzip -9n "$assets"/man/*.1
target/release/symrss completions bash > "$assets/symrss.bash"
target/release/symrss completions zsh > "$assets/_symrss"
target/release/symrss completions fish > "$assets/symrss.fish"
cargo deb --locked --no-build -p symrss
ls target/debian/*.deb
