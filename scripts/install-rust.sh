#!/usr/bin/env bash
# Installs a current stable Rust toolchain with rustup when cargo is missing (Debian's packaged
# rustc is older than reelsmith's minimum, 1.88).
set -euo pipefail
if command -v cargo >/dev/null; then exit 0; fi
command -v curl >/dev/null || { echo "install-rust: curl is needed (apt-get install curl)" >&2; exit 1; }
echo "install-rust: installing Rust with rustup into ~/.cargo" >&2
curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain stable
