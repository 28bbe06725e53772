#!/bin/sh
# Installs kvplace's dependencies from Debian, builds it, and runs the built-in default
# scenario.  As root, or as a user with sudo.
set -e
cd "$(dirname "$0")"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update
$SUDO apt-get install -y build-essential pkg-config libinih-dev libcjson-dev libglpk-dev \
    gnuplot-nox python3-numpy
make
./build/kvplace
