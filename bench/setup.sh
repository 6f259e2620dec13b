#!/usr/bin/env bash
# Installs what bench/run.sh needs and is missing, with apt (Debian/Ubuntu,
# as root): nginx (with the ssl and http_v2 modules), wrk, curl, openssl,
# python3 and procps (pgrep). run.sh calls it only when a tool is missing;
# it can also be run by hand. It changes nothing when everything is there.
# `bench/setup.sh perf` installs perf (linux-perf; on Ubuntu linux-tools-*)
# for the per-request cost runs (COST).
#
# Usage: bench/setup.sh [TOOL...]     (default: nginx wrk curl openssl python3 pgrep)
set -euo pipefail

export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

log() { printf '[bench setup] %s\n' "$*" >&2; }
die() { printf '[bench setup] ERROR: %s\n' "$*" >&2; exit 1; }

# tool -> Debian package
declare -A PACKAGE_OF=(
    [nginx]=nginx-light
    [wrk]=wrk
    [curl]=curl
    [openssl]=openssl
    [python3]=python3
    [pgrep]=procps
    [perf]=linux-perf
)
TOOLS=(nginx wrk curl openssl python3 pgrep)

missing_packages() {
    local tool
    for tool in "${TOOLS[@]}"; do
        command -v "$tool" >/dev/null 2>&1 || printf '%s\n' "${PACKAGE_OF[$tool]}"
    done
}

apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q "$@"
}

main() {
    local pkgs=()
    mapfile -t pkgs < <(missing_packages)
    if ((${#pkgs[@]} == 0)); then
        log "all tools present"
        return 0
    fi
    [[ $(id -u) -eq 0 ]] || die "missing tools; install them first: apt-get install -y ${pkgs[*]}"
    command -v apt-get >/dev/null 2>&1 || die "missing ${pkgs[*]} and no apt-get"

    local old_pid=""
    [[ -r /run/nginx.pid ]] && old_pid=$(cat /run/nginx.pid)
    log "installing: ${pkgs[*]}"
    if ! apt_install "${pkgs[@]}"; then
        log "apt-get install failed; running apt-get update and retrying"
        apt-get -o DPkg::Lock::Timeout=600 update -q
        if ! apt_install "${pkgs[@]}"; then
            # nginx-light is gone from newer releases: fall back to nginx.
            pkgs=("${pkgs[@]/#nginx-light/nginx}")
            # Ubuntu has no linux-perf: perf comes with the kernel's tools.
            pkgs=("${pkgs[@]/#linux-perf/linux-tools-common linux-tools-$(uname -r)}")
            read -r -a pkgs <<<"${pkgs[*]}"
            apt_install "${pkgs[@]}" || die "could not install ${pkgs[*]}"
        fi
    fi

    # The Debian package may start the system nginx on :80. The benchmark
    # never leaves nginx running, so stop the instance the install started.
    if [[ -r /run/nginx.pid ]]; then
        local new_pid
        new_pid=$(cat /run/nginx.pid)
        if [[ -n $new_pid && $new_pid != "$old_pid" ]] && kill -0 "$new_pid" 2>/dev/null; then
            log "stopping the system nginx (pid $new_pid) that the package install started"
            kill -QUIT "$new_pid" 2>/dev/null || true
        fi
    fi

    mapfile -t pkgs < <(missing_packages)
    ((${#pkgs[@]} == 0)) || die "still missing after the install: ${pkgs[*]}"
}

(($# == 0)) || TOOLS=("$@")
for tool in "${TOOLS[@]}"; do
    [[ -n ${PACKAGE_OF[$tool]:-} ]] || die "unknown tool '$tool' (known: ${!PACKAGE_OF[*]})"
done
main
