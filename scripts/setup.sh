#!/usr/bin/env bash
# Set up a Debian 12 control node for llmfleet and its lab (run as root).
# Idempotent: installs only what is missing. Used by the README and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the lab's hosts (sshd, dockerd, namespaces, traffic control),
# the lab image's rootfs (debootstrap), the HTML report check (chromium).
APT_PACKAGES=(
  docker.io openssh-server openssh-client iproute2 nftables iputils-ping util-linux procps kmod curl
  python3 python3-venv debootstrap ca-certificates chromium docker-registry zstd
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The toolkit itself (editable, so `invoke` in this checkout and the `llmfleet`
# script run the same code), with the lab's and the tests' extras.
python3 -m pip install -q --disable-pip-version-check -e '.[lab,test,lint]' 2>&1 | grep -v -e "^WARNING: Running pip as" -e "^WARNING: Location" >&2 || true
python3 -c "import llmfleet, invoke, fabric, rich, jinja2, yaml" # fail loudly if the install did not work
