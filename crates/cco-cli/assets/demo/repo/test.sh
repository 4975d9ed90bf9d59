#!/bin/sh
# Runs every tests/*.sh. A test file calls: check <function> "<args>" <expected output>
cd "$(dirname "$0")" || exit 1
total=0
failed=0
check() {
    total=$((total + 1))
    # shellcheck disable=SC2086 # the arguments are meant to be split
    got=$(sh ./calc.sh "$1" $2 2>&1)
    if [ "$got" != "$3" ]; then
        echo "FAIL: $1 $2: expected '$3', got '$got'"
        failed=$((failed + 1))
    fi
}
for test_file in tests/*.sh; do
    . "./$test_file"
done
echo "$total checks, $failed failed"
[ "$failed" -eq 0 ]
