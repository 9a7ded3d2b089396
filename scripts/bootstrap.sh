#!/usr/bin/env bash
# Create .venv and install decaylab with the extras for one purpose.
#
#   scripts/bootstrap.sh lab   the library, PyTorch and the lab (decaylab compare)
#   scripts/bootstrap.sh dev   everything above plus the test and benchmark tools,
#                              and Debian's Fashion-MNIST files when run as root
#
# Safe to rerun: an existing .venv is reused and pip skips what is installed.
set -euo pipefail

purpose="${1:-dev}"
case "$purpose" in
    lab) extras="all" ;;
    dev) extras="dev" ;;
    *)
        echo "bootstrap.sh: unknown purpose '$purpose'; use 'lab' or 'dev'" >&2
        exit 2
        ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)

# The CPU build of torch 2.13.0 first: asked for by exact version, pip takes
# the local CPU wheel where the machine has one, instead of a CUDA build.
"${pip[@]}" install "torch==2.13.0"
"${pip[@]}" install -e ".[$extras]"

# Fashion-MNIST ships as a Debian package; the test suite reads it from there.
fashion=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ "$purpose" = dev ] && [ ! -f "$fashion" ] && [ "$(id -u)" = 0 ] \
        && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi
