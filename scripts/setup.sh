#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of Remora from Debian's packages.
# Idempotent: packages that are already installed are skipped, so a second run costs ~1 s.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache clang-format
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libhiredis-dev librdkafka-dev libyaml-cpp-dev nlohmann-json3-dev libboost-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev prometheus-cpp-dev libcli11-dev
  redis-server wrk nginx-light nodejs npm curl procps python3 iproute2
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# node/npm preinstalled outside dpkg count as present.
filtered=()
for p in "${missing[@]}"; do
  case "$p" in
    nodejs) command -v node >/dev/null || filtered+=("$p") ;;
    npm) command -v npm >/dev/null || filtered+=("$p") ;;
    *) filtered+=("$p") ;;
  esac
done

if ((${#filtered[@]})); then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "setup: installing ${filtered[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${filtered[@]}" >/dev/null
fi
echo "setup: all dependencies present"
