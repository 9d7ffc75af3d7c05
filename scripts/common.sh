# shellcheck shell=bash
# Helpers shared by tunstack's scripts (bench.sh; later demo.sh, test.sh).
# Source it, don't run it:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
#
# find_cargo     sets CARGO to a working cargo, even under sudo (whose
#                secure_path hides ~/.cargo/bin), and puts its directory on
#                PATH so cargo finds rustc.
# ensure_tools   checks for commands and, as root on Debian/Ubuntu, installs
#                the packages that provide the missing ones with apt-get.
#
# Both print what they do on stderr, prefixed with $SCRIPT_NAME (default:
# the name of the script that sourced this file), and return non-zero on
# failure (they never exit the calling shell).

SCRIPT_NAME="${SCRIPT_NAME:-$(basename "${BASH_SOURCE[1]:-$0}" .sh)}"

# say MESSAGE...: a line on stderr, prefixed with the script's name.
say() {
    echo "$SCRIPT_NAME: $*" >&2
}

is_root() {
    [[ $EUID -eq 0 ]]
}

# The home directory of a user, from the passwd database.
home_of() {
    local user=$1 entry
    entry=$(getent passwd "$user" 2>/dev/null) || return 1
    echo "$entry" | cut -d: -f6
}

# find_cargo: sets and exports CARGO (the path of a cargo that runs) and
# prepends its directory to PATH. Looks at, in order: $CARGO, cargo on
# $PATH, $CARGO_HOME/bin, the invoking user's ~/.cargo/bin when run under
# sudo ($SUDO_USER), $HOME/.cargo/bin and /root/.cargo/bin. A rustup proxy
# found in some user's ~/.cargo/bin whose toolchains are not where
# RUSTUP_HOME (default ~/.rustup of the current $HOME) says gets
# RUSTUP_HOME pointed at that user's ~/.rustup, as under sudo.
find_cargo() {
    local candidates=() c dir home sudo_home=""
    [[ -n ${CARGO:-} ]] && candidates+=("$CARGO")
    c=$(command -v cargo 2>/dev/null) && candidates+=("$c")
    [[ -n ${CARGO_HOME:-} ]] && candidates+=("$CARGO_HOME/bin/cargo")
    if [[ -n ${SUDO_USER:-} ]]; then
        sudo_home=$(home_of "$SUDO_USER") || sudo_home=""
        [[ -n $sudo_home ]] && candidates+=("$sudo_home/.cargo/bin/cargo")
    fi
    [[ -n ${HOME:-} ]] && candidates+=("$HOME/.cargo/bin/cargo")
    candidates+=(/root/.cargo/bin/cargo)
    for c in "${candidates[@]}"; do
        [[ -x $c ]] || continue
        dir=$(dirname "$c")
        if ! "$c" --version >/dev/null 2>&1; then
            # Perhaps a rustup proxy looking for its toolchains in the
            # wrong home: try the home it was installed in.
            home=${dir%/.cargo/bin}
            [[ -z ${RUSTUP_HOME:-} && $home != "$dir" && -d $home/.rustup ]] || continue
            RUSTUP_HOME="$home/.rustup" "$c" --version >/dev/null 2>&1 || continue
            export RUSTUP_HOME="$home/.rustup"
        fi
        export CARGO="$c"
        case ":$PATH:" in
        *":$dir:"*) ;;
        *) export PATH="$dir:$PATH" ;;
        esac
        return 0
    done
    say "cargo not found (looked at: ${candidates[*]}). Install Rust (https://rustup.rs);" \
        "under sudo, keep your PATH: sudo env \"PATH=\$PATH\" $0"
    return 1
}

# The Debian package that provides a command.
declare -A COMMON_PACKAGE_OF=(
    [ip]=iproute2 [tc]=iproute2 [taskset]=util-linux [unshare]=util-linux
    [nsenter]=util-linux [timeout]=coreutils [mkfifo]=coreutils
    [nproc]=coreutils [sha256sum]=coreutils [awk]=mawk [sed]=sed
    [getent]=libc-bin [ping]=iputils-ping [python3]=python3 [curl]=curl
    [tshark]=tshark [nmap]=nmap [ps]=procps [pgrep]=procps [sysctl]=procps
    [git]=git
)

# ensure_tools COMMAND...: returns 0 if every command is on PATH. Otherwise,
# as root with apt-get, installs the packages that provide the missing ones
# (apt-get update first) and checks again; says what is missing and how to
# get it if that is not possible.
ensure_tools() {
    local tool missing=() packages=() pkg
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    ((${#missing[@]})) || return 0
    for tool in "${missing[@]}"; do
        pkg=${COMMON_PACKAGE_OF[$tool]:-$tool}
        [[ " ${packages[*]} " == *" $pkg "* ]] || packages+=("$pkg")
    done
    if is_root && command -v apt-get >/dev/null 2>&1; then
        say "installing ${packages[*]} (for: ${missing[*]})"
        export DEBIAN_FRONTEND=noninteractive
        if [[ " ${packages[*]} " == *" tshark "* ]] && command -v debconf-set-selections >/dev/null 2>&1; then
            # Otherwise the package asks whether non-root users may capture.
            echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
        fi
        { apt-get update -q && apt-get install -y -q --no-install-recommends "${packages[@]}"; } </dev/null >&2 ||
            say "warning: apt-get could not install ${packages[*]}"
        missing=()
        for tool in "$@"; do
            command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
        done
        ((${#missing[@]})) || return 0
        say "still missing: ${missing[*]}"
        return 1
    fi
    if is_root; then
        say "missing ${missing[*]} and no apt-get here; install: ${packages[*]}"
    else
        say "missing ${missing[*]}; install them with: sudo apt-get install ${packages[*]}"
    fi
    return 1
}
