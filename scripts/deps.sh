# deps.sh: sourced by the other scripts. need_packages P... installs the
# Debian packages that are missing, with apt-get as root or through sudo.
need_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
            missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    echo "Installing missing Debian packages: ${missing[*]}"
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || {
            echo "error: need root or sudo to install: ${missing[*]}" >&2
            exit 1
        }
        sudo=sudo
    fi
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
}

BUILD_PACKAGES=(cmake make gcc libc6-dev pkg-config uthash-dev)
# libclang-rt-dev: the sanitizer and fuzzer runtimes of the default clang.
TEST_PACKAGES=(libcriterion-dev valgrind clang libclang-rt-dev graphviz)
