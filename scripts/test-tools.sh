#!/usr/bin/env bash
# Installs what the optional checks of the test suite use when the machine lacks it: Debian's
# `chromium`, with which the report test renders report.html headless. Never fails: without it that
# check prints a SKIP line.
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  if timeout 900 apt-get install -y -q chromium >/dev/null 2>&1 ||
     { timeout 300 apt-get update -q >/dev/null 2>&1 && timeout 900 apt-get install -y -q chromium >/dev/null 2>&1; }; then
    echo "installed chromium for the report render check"
    exit 0
  fi
fi
echo "chromium is not installed and could not be; the report render check will print SKIP"
exit 0
