# mod A B: prints the remainder of A divided by B; B = 0 is an error.
mod() {
    if [ "$2" -eq 0 ]; then
        echo "error: division by zero" >&2
        return 1
    fi
    echo $(($1 % $2))
}
