# pow A N: prints A to the power N (N >= 0).
pow() {
    pow_result=1
    pow_n=$2
    while [ "$pow_n" -gt 0 ]; do
        pow_result=$((pow_result * $1))
        pow_n=$((pow_n - 1))
    done
    echo "$pow_result"
}
