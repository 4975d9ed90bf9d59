#!/bin/sh
# calc: a tiny calculator. Usage: sh calc.sh <function> <args...>
# Every function lives in lib/<name>.sh; this file loads them all and calls one.
calc_dir=$(dirname "$0")
for calc_lib in "$calc_dir"/lib/*.sh; do
    . "$calc_lib"
done
if [ $# -eq 0 ]; then
    echo "usage: sh calc.sh <function> <args...>" >&2
    exit 2
fi
"$@"
