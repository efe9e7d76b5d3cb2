#!/usr/bin/env bash
# What `make test` needs from the system, on Debian: python3-venv (to create .venv), chromium
# (the report test drives it), and orthanc with its DICOMweb plugin (the PACS tests start a
# private Orthanc; docs/PACS.md). Installs what is missing with apt-get (through sudo
# when not root), or stops with one line saying what to install.
set -euo pipefail
PYTHON="${1:-python3}"

missing=()
command -v "$PYTHON" >/dev/null 2>&1 || missing+=(python3)
"$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)  # the path the report test uses
[ -x /usr/sbin/Orthanc ] || missing+=(orthanc)  # the paths tests/orthanc.py uses
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || missing+=(orthanc-dicomweb)
[ ${#missing[@]} -eq 0 ] && exit 0

fail() {
    echo "error: make test needs ${missing[*]}: $1" >&2
    exit 1
}
command -v apt-get >/dev/null 2>&1 || fail "install them with your system's package manager"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "run 'apt-get install ${missing[*]}' as root"
    SUDO="sudo"
fi
echo "installing ${missing[*]} with apt-get" >&2
$SUDO apt-get update -qq >/dev/null || fail "apt-get update failed; run 'sudo apt-get install ${missing[*]}'"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || fail "apt-get install failed; run 'sudo apt-get install ${missing[*]}'"
