#!/usr/bin/env bash
# Makes sure latexmk and pdflatex (TeX Live from Debian/Ubuntu packages) are available,
# and pdftotext (poppler-utils), with which the tests read the report's text.
# Installs them when missing and possible (root or passwordless sudo); otherwise says
# exactly what to install and fails.
set -euo pipefail

PACKAGES="texlive-latex-base texlive-latex-recommended texlive-fonts-recommended latexmk poppler-utils"

if command -v latexmk >/dev/null 2>&1 && command -v pdflatex >/dev/null 2>&1 && command -v pdftotext >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    SUDO="unavailable"
fi

if [ "$SUDO" != "unavailable" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing TeX Live for the report: $PACKAGES" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
    exit 0
fi

cat >&2 <<MSG
The report needs latexmk and pdflatex (and the tests pdftotext), which are missing and
cannot be installed here.
Install them, then rerun:
  Debian/Ubuntu:  sudo apt-get install --no-install-recommends $PACKAGES
  conda:          conda install -c conda-forge texlive-core latexmk
  macOS:          brew install --cask mactex-no-gui
MSG
exit 1
