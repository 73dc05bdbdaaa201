# Sourced by the scripts: every tool the test command uses, pinned, installed once into a cache
# outside the clone ($EP_TOOLS_ROOT, default /var/tmp/event-processor-tools), so a second run
# installs nothing and two machines run the same versions.
#
#   Python tools   a virtualenv in $TOOLS_ROOT/venv, from scripts/requirements-test.txt
#   tansu          a Kafka-protocol broker (crates.io), built with `cargo install`
#   cargo-fuzz     the libFuzzer driver (crates.io)

TOOLS_ROOT="${EP_TOOLS_ROOT:-/var/tmp/event-processor-tools}"
TANSU_VERSION=0.6.0
CARGO_FUZZ_VERSION=0.13.2
TOOLS_REQUIREMENTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/requirements-test.txt"

mkdir -p "$TOOLS_ROOT/bin"
export PATH="$TOOLS_ROOT/venv/bin:$TOOLS_ROOT/bin:$PATH"

# The Python tools (moto, cfn-lint, aws-sam-cli, schemathesis) at the pinned versions: the
# virtualenv is (re)built when the requirements file changes.
ensure_python_tools() {
  local stamp="$TOOLS_ROOT/venv/requirements.installed"
  if [ -f "$stamp" ] && cmp -s "$stamp" "$TOOLS_REQUIREMENTS"; then
    return 0
  fi
  echo "installing the pinned Python tools into $TOOLS_ROOT/venv"
  rm -rf "$TOOLS_ROOT/venv"
  python3 -m venv "$TOOLS_ROOT/venv"
  "$TOOLS_ROOT/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$TOOLS_REQUIREMENTS"
  cp "$TOOLS_REQUIREMENTS" "$stamp"
  hash -r
}

# `cargo install` of a pinned crate into $TOOLS_ROOT unless that version is there. Each build
# gets its own temporary target directory: the project's is not the place for a tool's build.
# `nice`: when run beside the workspace's own build, it takes only the CPU that build leaves.
install_crate() {
  local crate=$1 version=$2 binary=$3
  shift 3
  if [ -x "$TOOLS_ROOT/bin/$binary" ] && grep -qF "\"$crate $version (" "$TOOLS_ROOT/.crates.toml" 2>/dev/null; then
    return 0
  fi
  echo "building $crate $version into $TOOLS_ROOT (once per machine)"
  env -u CARGO_TARGET_DIR nice -n 10 cargo install "$crate" --version "$version" --locked \
    --root "$TOOLS_ROOT" --quiet "$@"
}

install_tansu() { install_crate tansu "$TANSU_VERSION" tansu --features dynostore; }
install_cargo_fuzz() { install_crate cargo-fuzz "$CARGO_FUZZ_VERSION" cargo-fuzz; }
